//! The real peers tests talk to. A test that needs one calls `require`:
//! when the peer is not installed it says so on stderr and the test is
//! skipped — unless `FERRY_REQUIRE_PEERS=1` (set by `.ci/run`, which
//! installs every peer), where a missing peer fails the test instead.
//! OpenSSL, bash and curl are assumed like cargo itself (every suite's
//! certificates and scripts need them); what is checked are the peers
//! proper: Postfix, dnsmasq, swaks, Python, Chromium.

use std::path::Path;

/// Where a peer's program is looked for besides `$PATH` (Debian keeps
/// Postfix and dnsmasq in sbin, often not in a user's `$PATH`).
const SBIN: &[&str] = &["/usr/sbin", "/sbin", "/usr/local/sbin"];

fn installed(program: &str) -> bool {
    let in_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
        .unwrap_or(false);
    in_path || SBIN.iter().any(|d| Path::new(d).join(program).is_file())
}

/// Whether every program is installed; if not, the test should return at
/// once (it is skipped, and says why). Panics instead under
/// `FERRY_REQUIRE_PEERS=1`.
#[must_use]
pub fn require(programs: &[&str]) -> bool {
    // libtest names each test's thread after the test.
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("a test");
    let missing: Vec<&str> = programs.iter().copied().filter(|p| !installed(p)).collect();
    if missing.is_empty() {
        return true;
    }
    skip_or_fail(test, &missing.join(", "))
}

/// Whether a peer found some other way (`available`) can be used; if not,
/// the test is skipped, or fails under `FERRY_REQUIRE_PEERS=1`.
#[must_use]
pub fn require_available(what: &str, available: bool) -> bool {
    if available {
        return true;
    }
    let thread = std::thread::current();
    skip_or_fail(thread.name().unwrap_or("a test"), what)
}

fn skip_or_fail(test: &str, missing: &str) -> bool {
    let why = format!("{test}: needs {missing} (not installed)");
    if std::env::var("FERRY_REQUIRE_PEERS").as_deref() == Ok("1") {
        panic!("{why}; FERRY_REQUIRE_PEERS=1 makes that a failure");
    }
    eprintln!("SKIPPED {why}");
    false
}

#[test]
fn a_program_that_does_not_exist_is_missing() {
    assert!(!installed("ferry-no-such-peer"));
    assert!(installed("sh"));
}

/// The private Postfix instance of one test, stopped when dropped.
pub struct Postfix {
    pub dir: std::path::PathBuf,
}

impl Drop for Postfix {
    fn drop(&mut self) {
        let _ = std::process::Command::new("bash")
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/peers/postfix-private.sh"
            ))
            .arg(&self.dir)
            .arg("stop")
            .status();
    }
}

/// A private Postfix smart host (`tests/peers/postfix-smarthost.sh`) on
/// `ip`:2525 named `host`, delivering `domain` into its Maildir, with
/// STARTTLS (a certificate for `host` from `ca`) and AUTH for `user` /
/// `password`. Stopped when dropped.
pub fn postfix_smarthost(
    dir: &Path,
    ip: &str,
    host: &str,
    domain: &str,
    (user, password): (&str, &str),
    ca: &crate::support::pki::Ca,
) -> Postfix {
    let (crt, key) = ca.issue(&[host]);
    let (crt_path, key_path) = (
        dir.join(format!("{host}.crt")),
        dir.join(format!("{host}.key")),
    );
    std::fs::write(&crt_path, crt).unwrap();
    std::fs::write(&key_path, key).unwrap();
    let pf = Postfix {
        dir: dir.join(format!("postfix-{host}")),
    };
    let out = std::process::Command::new("bash")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/peers/postfix-smarthost.sh"
        ))
        .arg(&pf.dir)
        .args([ip, "2525", host, domain, user, password])
        .arg(&crt_path)
        .arg(&key_path)
        .output()
        .expect("bash runs");
    assert!(
        out.status.success(),
        "Postfix set-up failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    pf
}

impl Postfix {
    /// What the smart host delivered into `domain`'s Maildir.
    pub fn mailbox(&self, domain: &str) -> Vec<String> {
        std::fs::read_dir(self.dir.join("mail").join(domain).join("new"))
            .map(|d| {
                d.filter_map(|f| std::fs::read_to_string(f.ok()?.path()).ok())
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// `tests/peers/dnssec-private.sh`: NSD and ldnsutils, privately.
pub const DNSSEC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/dnssec-private.sh");

/// Whether the DNSSEC peers can be used; if not, the test is skipped (or
/// fails under `FERRY_REQUIRE_PEERS=1`).
#[must_use]
pub fn require_dnssec() -> bool {
    let available = std::process::Command::new("bash")
        .args([DNSSEC, "available"])
        .status()
        .is_ok_and(|s| s.success());
    require_available(
        "NSD and ldnsutils (bash tests/peers/dnssec-private.sh fetch)",
        available,
    )
}

/// Runs `dnssec-private.sh DIR ARGS…`, failing the test when it fails.
pub fn dnssec(dir: &Path, args: &[&str]) {
    let out = std::process::Command::new("bash")
        .arg(DNSSEC)
        .arg(dir)
        .args(args)
        .output()
        .expect("bash runs");
    assert!(
        out.status.success(),
        "dnssec-private.sh {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The NSD serving DIR, stopped when dropped.
pub struct Nsd(pub std::path::PathBuf);

impl Drop for Nsd {
    fn drop(&mut self) {
        let _ = std::process::Command::new("bash")
            .arg(DNSSEC)
            .arg(&self.0)
            .arg("stop")
            .status();
    }
}
