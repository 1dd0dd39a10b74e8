//! A private PostgreSQL (tests/peers/postgres-private.sh) on a loopback
//! address; stopped and removed when dropped.

use std::path::PathBuf;
use std::process::Command;

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/peers/postgres-private.sh")
}

pub struct Postgres {
    dir: tempfile::TempDir,
    pub url: String,
}

fn run(dir: &std::path::Path, args: &[&str]) -> String {
    let out = Command::new("bash")
        .arg(script())
        .arg(dir.join("instance"))
        .args(args)
        .output()
        .expect("bash runs");
    assert!(
        out.status.success(),
        "postgres-private.sh {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

impl Postgres {
    /// PostgreSQL on `ip:port`; None (the test is skipped) when it is not
    /// available.
    pub fn start(ip: &str, port: u16) -> Option<Postgres> {
        let available = Command::new("bash")
            .arg(script())
            .arg("available")
            .status()
            .is_ok_and(|s| s.success());
        if !crate::support::peers::require_available(
            "PostgreSQL (installed, or fetched by tests/peers/postgres-private.sh fetch)",
            available,
        ) {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let url = run(dir.path(), &["start", ip, &port.to_string()]);
        Some(Postgres { dir, url })
    }

    /// Stops it (a fast shutdown: connections are cut).
    pub fn stop(&self) {
        run(self.dir.path(), &["stop"]);
    }

    /// Starts it again, with its data.
    pub fn restart(&self) {
        run(self.dir.path(), &["restart"]);
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(script())
            .arg(self.dir.path().join("instance"))
            .arg("remove")
            .status();
    }
}
