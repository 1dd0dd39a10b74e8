//! dnsmasq on a loopback address, serving the test's MX and A records.
//! Names under `.test` that it does not know are NXDOMAIN.

use std::process::{Child, Command, Stdio};

pub struct Dnsmasq {
    child: Child,
    pub server: String,
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
        let child = Command::new("dnsmasq")
            .args([
                "--keep-in-foreground",
                "--no-resolv",
                "--no-hosts",
                "--bind-interfaces",
                "--conf-file=/dev/null",
            ])
            .args([
                "--local=/test/",
                "--pid-file=",
                "--user=root",
                "--log-facility=-",
            ])
            .arg(format!("--listen-address={ip}"))
            .arg(format!("--port={port}"))
            .args(records)
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
        }
    }
}
