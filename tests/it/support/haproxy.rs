//! A private HAProxy (tests/peers/haproxy-private.sh) in front of Ferry,
//! sending the PROXY protocol; stopped when dropped.

use std::path::PathBuf;
use std::process::Command;

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/peers/haproxy-private.sh")
}

pub struct HaProxy {
    dir: tempfile::TempDir,
}

impl HaProxy {
    /// HAProxy on `front` (`ip:port`) forwarding to `back`, connecting from
    /// `source`, with PROXY `version` (`v1` or `v2`); None (the test is
    /// skipped) when HAProxy is not available.
    pub fn start(front: &str, back: &str, version: &str, source: &str) -> Option<HaProxy> {
        let available = Command::new("bash")
            .arg(script())
            .arg("available")
            .status()
            .is_ok_and(|s| s.success());
        if !crate::support::peers::require_available(
            "haproxy (installed, or fetched by tests/peers/haproxy-private.sh fetch)",
            available,
        ) {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("bash")
            .arg(script())
            .arg(dir.path().join("instance"))
            .args(["start", front, back, version, source])
            .output()
            .expect("bash runs");
        assert!(
            out.status.success(),
            "haproxy did not start: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Some(HaProxy { dir })
    }
}

impl Drop for HaProxy {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(script())
            .arg(self.dir.path().join("instance"))
            .arg("stop")
            .status();
    }
}
