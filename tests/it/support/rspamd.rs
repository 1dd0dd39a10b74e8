//! A private rspamd (tests/peers/rspamd-private.sh) on one loopback
//! address, with Debian's rules and only the modules that need no network;
//! GTUBE gives its reject verdict. Stopped when dropped.

use std::path::PathBuf;
use std::process::Command;

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/peers/rspamd-private.sh")
}

/// The GTUBE test string: rspamd's reject verdict (SCL 9).
pub const GTUBE: &str = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X";

pub struct Rspamd {
    dir: tempfile::TempDir,
    /// `http://addr:port`, the scanner.
    pub url: String,
}

impl Rspamd {
    /// rspamd's scanner on `addr` (`ip:port`), and its milter on
    /// `milter_port` of the same address when given; None (the test is
    /// skipped) when rspamd is not available.
    pub fn start(addr: &str, milter_port: Option<u16>) -> Option<Rspamd> {
        let available = Command::new("bash")
            .arg(script())
            .arg("available")
            .status()
            .is_ok_and(|s| s.success());
        if !crate::support::peers::require_available(
            "rspamd (installed, or fetched by tests/peers/rspamd-private.sh fetch)",
            available,
        ) {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = Command::new("bash");
        cmd.arg(script())
            .arg(dir.path().join("instance"))
            .args(["start", addr]);
        if let Some(p) = milter_port {
            cmd.arg(p.to_string());
        }
        let out = cmd.output().expect("bash runs");
        assert!(
            out.status.success(),
            "rspamd did not start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Some(Rspamd {
            dir,
            url: format!("http://{addr}"),
        })
    }

    /// Stalls it (SIGSTOP to every rspamd process): connections are still
    /// accepted by the kernel, and never answered.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, sig: &str) {
        let pid = std::fs::read_to_string(self.dir.path().join("instance/rspamd.pid")).unwrap();
        let pid = pid.trim();
        let children = Command::new("pgrep").args(["-P", pid]).output().unwrap();
        let mut pids = vec![pid.to_string()];
        pids.extend(
            String::from_utf8_lossy(&children.stdout)
                .split_whitespace()
                .map(String::from),
        );
        let ok = Command::new("kill").arg(sig).args(&pids).status().unwrap();
        assert!(ok.success(), "kill {sig} {pids:?}");
    }

    pub fn stop(&self) {
        let _ = Command::new("bash")
            .arg(script())
            .arg(self.dir.path().join("instance"))
            .arg("stop")
            .status();
    }
}

impl Drop for Rspamd {
    fn drop(&mut self) {
        self.stop();
    }
}
