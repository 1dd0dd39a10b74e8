//! Python with the PyPI tools the tests use as independent peers (dkimpy,
//! pyspf, authres): the virtual environment `.ci/run` makes under
//! `target/ci-venv`, or a `python3` on PATH that has them.

use std::path::PathBuf;
use std::process::{Command, Stdio};

/// A Python that imports every module named; None (the test is skipped, or
/// fails under FERRY_REQUIRE_PEERS=1) when there is none.
pub fn with(modules: &[&str]) -> Option<PathBuf> {
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/ci-venv/bin/python");
    let check = format!("import {}", modules.join(", "));
    let found = [venv, PathBuf::from("python3")].into_iter().find(|p| {
        Command::new(p)
            .args(["-c", &check])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    });
    if crate::support::peers::require_available(
        &format!(
            "Python with {} (pip install into target/ci-venv, see .ci/run)",
            modules.join(", ")
        ),
        found.is_some(),
    ) {
        found
    } else {
        None
    }
}

/// Runs `script` with `args`, the message on stdin; (success, stdout+stderr).
pub fn run(python: &PathBuf, script: &str, args: &[&str], stdin: &[u8]) -> (bool, String) {
    use std::io::Write;
    let mut child = Command::new(python)
        .arg("-c")
        .arg(script)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python runs");
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}
