//! dnsmasq on a loopback address, serving the test's MX and A records.
//! Names under `.test` that it does not know are NXDOMAIN.

use std::process::{Child, Command, Stdio};

pub struct Dnsmasq {
    child: Child,
    pub server: String,
    /// The records, as a configuration file: there a quoted TXT string may
    /// hold commas (`rua=mailto:a,mailto:b`), which the command line
    /// splits into strings.
    _records: tempfile::NamedTempFile,
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Dnsmasq {
    /// `records` are dnsmasq options such as `--mx-host=…` or `--host-record=…`.
    pub async fn start(ip: &str, records: &[String]) -> Dnsmasq {
        let port = 5353;
        let file = tempfile::NamedTempFile::new().expect("a temporary file");
        let lines: Vec<&str> = records
            .iter()
            .map(|r| r.strip_prefix("--").unwrap_or(r))
            .collect();
        std::fs::write(file.path(), lines.join("\n") + "\n").expect("records written");
        let child = Command::new("dnsmasq")
            .args([
                "--keep-in-foreground",
                "--no-resolv",
                "--no-hosts",
                "--bind-interfaces",
            ])
            .args([
                "--local=/test/",
                "--pid-file=",
                "--user=root",
                "--log-facility=-",
            ])
            .arg(format!("--listen-address={ip}"))
            .arg(format!("--port={port}"))
            .arg(format!("--conf-file={}", file.path().display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("dnsmasq is installed (dnsmasq-base, see .ci/run)");
        // Wait until it answers.
        for _ in 0..100 {
            let out = Command::new("dig")
                .args([
                    "+short",
                    "+time=1",
                    "+tries=1",
                    "-p",
                    &port.to_string(),
                    &format!("@{ip}"),
                    "ready.probe.test",
                ])
                .output();
            if out.is_ok_and(|o| o.status.success()) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        Dnsmasq {
            child,
            server: format!("{ip}:{port}"),
            _records: file,
        }
    }
}
