//! A private OpenLDAP server (tests/peers/slapd-private.sh) with a test
//! directory, on one loopback address; stopped when dropped.

use std::path::PathBuf;
use std::process::Command;

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/peers/slapd-private.sh")
}

pub struct Slapd {
    dir: tempfile::TempDir,
    /// `ldap://addr:port`
    pub url: String,
}

impl Slapd {
    /// slapd on `addr` (`ip:port`) serving `suffix` with the entries of
    /// `ldif`; None (the test is skipped) when slapd is not available.
    pub fn start(addr: &str, suffix: &str, ldif: &str) -> Option<Slapd> {
        Self::start_tls(addr, suffix, ldif, None)
    }

    /// The same, offering StartTLS with `tls` (certificate PEM, key PEM).
    pub fn start_tls(
        addr: &str,
        suffix: &str,
        ldif: &str,
        tls: Option<(&str, &str)>,
    ) -> Option<Slapd> {
        let available = Command::new("bash")
            .arg(script())
            .arg("available")
            .status()
            .is_ok_and(|s| s.success());
        if !crate::support::peers::require_available(
            "slapd (installed, or fetched by tests/peers/slapd-private.sh fetch)",
            available,
        ) {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data.ldif");
        std::fs::write(&data, ldif).unwrap();
        let mut cmd = Command::new("bash");
        cmd.arg(script())
            .arg(dir.path().join("instance"))
            .args(["start", addr, suffix])
            .arg(&data);
        if let Some((cert, key)) = tls {
            let (c, k) = (dir.path().join("ldap.crt"), dir.path().join("ldap.key"));
            std::fs::write(&c, cert).unwrap();
            std::fs::write(&k, key).unwrap();
            cmd.arg(&c).arg(&k);
        }
        let out = cmd.output().expect("bash runs");
        assert!(
            out.status.success(),
            "slapd did not start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Some(Slapd {
            dir,
            url: format!("ldap://{addr}"),
        })
    }

    pub fn stop(&self) {
        let _ = Command::new("bash")
            .arg(script())
            .arg(self.dir.path().join("instance"))
            .arg("stop")
            .status();
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        self.stop();
    }
}
