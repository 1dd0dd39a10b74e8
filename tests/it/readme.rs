//! The README is the user's manual: its shell blocks, pasted in order on a
//! fresh machine, must work. This test extracts every ```sh block, starts
//! the Quick start's server (the block marked `readme-test: serve`, with
//! the built binary for `cargo run --release --`), and runs the rest in one
//! shell, in order, against it. Addresses move from 127.0.0.x to 127.213.0.x
//! so a Quick start instance may run beside the tests. A block may be marked
//! in the README source, on the line before its fence:
//! `<!-- readme-test: skip (why) -->` (not run: Docker, benchmarks, the test
//! suite itself) or `<!-- readme-test: illustrative (why) -->` (run, but
//! problem answers are allowed: example ids). Every other block must run
//! with exit code 0 and get no RFC 7807 problem from the API.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const NET: &str = "127.213.0.";

#[derive(Debug)]
struct Block {
    line: usize,
    mark: Option<String>,
    code: String,
}

fn blocks(readme: &str) -> Vec<Block> {
    let lines: Vec<&str> = readme.lines().collect();
    let mut out = vec![];
    let mut i = 0;
    while i < lines.len() {
        if lines[i].trim() == "```sh" {
            let mark = lines[..i]
                .iter()
                .rev()
                .find(|l| !l.trim().is_empty())
                .and_then(|l| l.trim().strip_prefix("<!-- readme-test: "))
                .map(|m| m.trim_end_matches("-->").trim().to_string());
            let start = i + 1;
            let mut end = start;
            while end < lines.len() && lines[end].trim() != "```" {
                end += 1;
            }
            out.push(Block {
                line: i + 1,
                mark,
                code: lines[start..end].join("\n"),
            });
            i = end;
        }
        i += 1;
    }
    out
}

#[test]
fn the_readme_shell_blocks_run_in_order_against_a_fresh_instance() {
    if !crate::support::peers::require(&["jq", "swaks"]) {
        return;
    }
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let all = blocks(&readme);
    assert!(
        all.len() > 10,
        "the README's shell blocks were found: {}",
        all.len()
    );
    let dir = tempfile::tempdir().unwrap();
    let local = |code: &str| code.replace("127.0.0.", NET);

    // The Quick start's server, as the README starts it.
    let serve = all
        .iter()
        .find(|b| b.mark.as_deref() == Some("serve"))
        .expect("a block marked readme-test: serve");
    assert!(
        serve.code.contains("cargo run --release --"),
        "{}",
        serve.code
    );
    let serve_cmd =
        local(&serve.code).replace("cargo run --release --", env!("CARGO_BIN_EXE_ferry"));
    let server = Command::new("bash")
        .args([
            "-c",
            &format!(
                "exec {}",
                serve_cmd
                    .lines()
                    .filter(|l| !l.trim_start().starts_with('#'))
                    .collect::<Vec<_>>()
                    .join("\n")
            ),
        ])
        .current_dir(dir.path())
        .env("FERRY_LOG", "warn")
        // The API's default address, 127.0.0.1:8080, moves like the rest.
        .env("FERRY_API_LISTEN", format!("{NET}1:8080"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    // Stopped whatever happens below, a failed start included.
    let mut server = Kill(server);
    let started = Instant::now();
    let health = format!("{NET}1:8080");
    while std::net::TcpStream::connect(&health).is_err() {
        if let Some(status) = server.0.try_wait().unwrap() {
            panic!("the Quick start server exited: {status:?}");
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the Quick start server did not come up"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // Every other block, in order, in one shell; each output between markers.
    let runnable: Vec<&Block> = all
        .iter()
        .filter(|b| b.mark.as_deref() != Some("serve"))
        .filter(|b| !b.mark.as_deref().is_some_and(|m| m.starts_with("skip")))
        .collect();
    // A block that fails leaves no server it started in the background
    // (which would hold the output pipe open and this test with it).
    let mut script = String::from("set -e\ntrap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n");
    // Every swaks transcript is kept whole in swaks.log as well: a block
    // that greps one line of it shows nothing else when that line is
    // missing, and the failure below prints the transcripts and logs.
    script.push_str(
        "swaks() { command swaks \"$@\" 2>&1 | tee -a swaks.log; return \"${PIPESTATUS[0]}\"; }\n",
    );
    for (i, b) in runnable.iter().enumerate() {
        // `cargo run --release --` in any block is the binary built here.
        // The repository's scripts, run from its root in the README.
        let code = local(&b.code)
            .replace("cargo run --release --", env!("CARGO_BIN_EXE_ferry"))
            .replace(
                "bash tests/peers/",
                concat!("bash ", env!("CARGO_MANIFEST_DIR"), "/tests/peers/"),
            );
        script.push_str(&format!("echo '@@@ block {i}'\n{code}\necho\n"));
    }
    script.push_str("echo '@@@ end'\n");
    let mut child = Command::new("bash")
        .args(["-c", &script])
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let status = child.wait().unwrap();
    let parts: Vec<&str> = out.split("@@@ block ").skip(1).collect();
    let failed_at = parts.len().saturating_sub(1);
    assert!(
        status.success() && out.contains("@@@ end"),
        "README block at line {} failed (exit {status:?}):\n{}\n--- output:\n{}\n--- stderr:\n{err}{}",
        runnable[failed_at].line,
        runnable[failed_at].code,
        parts.last().unwrap_or(&""),
        log_tails(dir.path())
    );
    for (i, part) in parts.iter().enumerate() {
        let b = runnable[i];
        if b.mark
            .as_deref()
            .is_some_and(|m| m.starts_with("illustrative"))
        {
            continue;
        }
        assert!(
            !part.contains("urn:ferry:problem:"),
            "README block at line {} got a problem from the API:\n{}\n--- output:\n{part}",
            b.line,
            b.code
        );
    }
    eprintln!(
        "ran {} README blocks ({} in all)",
        runnable.len(),
        all.len()
    );
}

/// The last lines of every `*.log` the blocks left in `dir` (the servers
/// they started, and swaks' transcripts).
fn log_tails(dir: &std::path::Path) -> String {
    let mut logs: Vec<_> = std::fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    logs.retain(|p| p.extension().is_some_and(|e| e == "log"));
    logs.sort();
    let mut out = String::new();
    for p in logs {
        let text = std::fs::read_to_string(&p).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(40)..].join("\n");
        out.push_str(&format!("\n--- the end of {}:\n{tail}", p.display()));
    }
    out
}
