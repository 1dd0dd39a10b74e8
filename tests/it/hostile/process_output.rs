//! What the binary writes where a script reads it: no colour codes into a
//! pipe or file, no panic when a pipe closes early, and a banner that does
//! not pretend to be another product.

use crate::hostile::process::{Ferry, command};
use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};

#[test]
fn ferry_openapi_into_a_closed_pipe_exits_cleanly() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .arg("openapi")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Read one line, then close the pipe as `head -1` would.
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let status = child.wait().unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(first.starts_with('{'));
    assert!(!err.contains("panicked"), "{err}");
    assert!(status.success(), "{status:?}: {err}");
}

#[tokio::test]
async fn text_logs_into_a_pipe_carry_no_colour_codes_and_the_banner_names_ferry() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut c = command(&data, 210);
    c.env("FERRY_LOG", "info").stdout(Stdio::piped());
    let mut child = c.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let f = Ferry::adopt(child, &data, 210).await;
    let (mut smtp, banner) =
        crate::support::client::Client::open(&f.ip(20), &format!("{}:2525", f.ip(2))).await;
    assert!(
        banner.text.contains("Ferry ESMTP service ready"),
        "{}",
        banner.text
    );
    assert!(!banner.text.contains("Microsoft"), "{}", banner.text);
    smtp.cmd("QUIT").await;
    drop(f);
    let mut out = String::new();
    BufReader::new(stdout).read_to_string(&mut out).unwrap();
    assert!(out.contains("INFO"), "logs were written: {out}");
    assert!(
        !out.contains('\u{1b}'),
        "no ANSI escapes off a terminal: {out:?}"
    );
}
