//! Pebble, Let's Encrypt's ACME test server (Debian's `pebble`), as a
//! private instance: its own configuration and HTTPS certificate in a
//! temporary directory, its own loopback address, names resolved by the
//! test's dnsmasq, stopped when dropped.

use std::process::{Child, Command, Stdio};

use super::pki::Ca;

pub struct Pebble {
    child: Child,
    /// The ACME directory URL.
    pub directory: String,
    /// The CA that signed Pebble's own HTTPS certificate: a trust anchor
    /// for Ferry to reach the directory.
    pub https_ca: String,
    management: String,
    _dir: tempfile::TempDir,
}

impl Drop for Pebble {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Pebble {
    /// Pebble on `ip`, validating http-01 on `http_port` and tls-alpn-01 on
    /// `tls_port` of the addresses `dns` (ip:port) gives.
    pub async fn start(ip: &str, dns: &str, http_port: u16, tls_port: u16) -> Pebble {
        Self::start_with_validity(ip, dns, http_port, tls_port, None).await
    }

    /// As [`Pebble::start`], issuing certificates valid for `validity`
    /// seconds (Pebble's default is five years).
    pub async fn start_with_validity(
        ip: &str,
        dns: &str,
        http_port: u16,
        tls_port: u16,
        validity: Option<u64>,
    ) -> Pebble {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::new(dir.path());
        let (cert, key) = ca.issue(&[ip]);
        std::fs::write(dir.path().join("cert.pem"), cert).unwrap();
        std::fs::write(dir.path().join("key.pem"), key).unwrap();
        std::fs::write(dir.path().join("ca.pem"), &ca.cert_pem).unwrap();
        let mut config = serde_json::json!({"pebble": {
            "listenAddress": format!("{ip}:14000"),
            "managementListenAddress": format!("{ip}:15000"),
            "certificate": dir.path().join("cert.pem"),
            "privateKey": dir.path().join("key.pem"),
            "httpPort": http_port,
            "tlsPort": tls_port,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": false,
        }});
        if let Some(seconds) = validity {
            config["pebble"]["certificateValidityPeriod"] = seconds.into();
        }
        let file = dir.path().join("pebble.json");
        std::fs::write(&file, config.to_string()).unwrap();
        let child = Command::new("pebble")
            .arg("-config")
            .arg(&file)
            .args(["-dnsserver", dns])
            // No artificial validation delays, no rejected nonces, and a
            // fresh authorization for every order (so a renewal validates).
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .env("PEBBLE_AUTHZREUSE", "0")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("pebble is installed (see .ci/run)");
        let p = Pebble {
            child,
            directory: format!("https://{ip}:14000/dir"),
            https_ca: ca.cert_pem.clone(),
            management: format!("https://{ip}:15000"),
            _dir: dir,
        };
        for _ in 0..100 {
            if p.fetch(&p.directory).is_some() {
                return p;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("pebble did not answer at {}", p.directory);
    }

    fn fetch(&self, url: &str) -> Option<String> {
        let out = Command::new("curl")
            .args(["-sf", "--max-time", "5", "--cacert"])
            .arg(self._dir.path().join("ca.pem"))
            .arg(url)
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The root that signs what Pebble issues (new at each start).
    pub fn issuing_root(&self) -> String {
        self.fetch(&format!("{}/roots/0", self.management))
            .expect("pebble's management interface answers")
    }
}
