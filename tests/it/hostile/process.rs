//! The real `ferry` binary as a child process, for defects that are about
//! the process itself: memory, locks, timeouts, start-up.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub const TOKEN: &str = "hostile-suite-admin-token-0123456789";

pub struct Ferry {
    pub child: Child,
    pub net: u8,
    pub base: String,
    pub data: PathBuf,
    http: reqwest::Client,
}

impl Drop for Ferry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The command line for `ferry serve` on `127.net.0.1:18000+net` (API) and
/// `127.net.0.2:2525` (SMTP), without starting it.
pub fn command(data: &Path, net: u8) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ferry"));
    c.args(["serve", "--data-dir"])
        .arg(data)
        .args(["--fqdn", "edge01.contoso.test", "--api-listen"])
        .arg(format!("127.{net}.0.1:{}", 18000 + net as u16))
        .args(["--default-smtp-bind", &format!("127.{net}.0.2:2525")])
        .env("FERRY_ADMIN_TOKEN", TOKEN)
        .env("FERRY_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    c
}

impl Ferry {
    /// Starts Ferry and waits until `/healthz` answers.
    pub async fn start(data: &Path, net: u8) -> Ferry {
        let child = command(data, net).spawn().expect("the ferry binary runs");
        Self::adopt(child, data, net).await
    }

    /// Waits for a Ferry started with a command of one's own.
    pub async fn adopt(child: Child, data: &Path, net: u8) -> Ferry {
        let f = Ferry {
            child,
            net,
            base: format!("http://127.{net}.0.1:{}", 18000 + net as u16),
            data: data.to_path_buf(),
            http: reqwest::Client::new(),
        };
        for _ in 0..400 {
            if f.healthz().await.is_some() {
                return f;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("ferry did not come up at {}", f.base);
    }

    pub fn ip(&self, host: u8) -> String {
        format!("127.{}.0.{host}", self.net)
    }

    pub async fn healthz(&self) -> Option<reqwest::StatusCode> {
        self.http
            .get(format!("{}/healthz", self.base))
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .ok()
            .map(|r| r.status())
    }

    pub async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut r = self
            .http
            .request(method.parse().unwrap(), format!("{}{path}", self.base))
            .bearer_auth(TOKEN);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let r = r.send().await.expect("API answers");
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// An API call that must succeed.
    pub async fn ok(&self, method: &str, path: &str, body: Value) -> Value {
        let (status, v) = self.call(method, path, Some(body)).await;
        assert!(
            (200..300).contains(&status),
            "{method} {path}: {status} {v}"
        );
        v
    }

    /// A line of /proc/PID/status in KiB (VmRSS, VmHWM).
    pub fn status_kib(&self, field: &str) -> u64 {
        let s = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        s.lines()
            .find_map(|l| l.strip_prefix(&format!("{field}:")))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("{field} in /proc status"))
    }
}
