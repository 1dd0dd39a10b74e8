//! A small SMTP load generator for the benchmarks (`bench/run.sh`).
//!
//!   loadgen send  ADDR SESSIONS MESSAGES SIZE [ACKED_FILE]
//!     sends MESSAGES messages of SIZE bytes over SESSIONS concurrent
//!     sessions (reused), measuring for each the time from the end of DATA to
//!     the reply; prints one JSON line. With ACKED_FILE, appends the
//!     Message-ID of every message acknowledged with 250 (crash rounds).
//!     With LOADGEN_RATE=R in the environment the load is paced: message n
//!     is not started before n/R seconds, so two servers can be compared at
//!     the same offered rate rather than at the same concurrency. With
//!     LOADGEN_SECONDS=S no message is started after S seconds (a slow
//!     server is measured on what it did in that time). A session waits
//!     LOADGEN_REPLY_SECONDS (default 60) for a reply before it gives up.
//!   loadgen idle  ADDR SESSIONS SECONDS
//!     opens SESSIONS sessions, reads their banners, holds them SECONDS.
//!
//! Every address is loopback; every loop is bounded.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::Mutex;

/// How long a session waits for a reply: `LOADGEN_REPLY_SECONDS`, 60 s
/// unless set.
fn reply_wait() -> Duration {
    static WAIT: std::sync::OnceLock<Duration> = std::sync::OnceLock::new();
    *WAIT.get_or_init(|| {
        std::env::var("LOADGEN_REPLY_SECONDS")
            .ok()
            .and_then(|s| s.parse().ok())
            .map(Duration::from_secs_f64)
            .unwrap_or(Duration::from_secs(60))
    })
}

/// A reply's code, its lines appended to `text`; None when the server
/// closes or says nothing within `reply_wait()` (the load never hangs).
async fn reply_text<R: AsyncBufReadExt + Unpin>(r: &mut R, text: &mut String) -> Option<u16> {
    let mut line = String::new();
    loop {
        line.clear();
        let read = tokio::time::timeout(reply_wait(), r.read_line(&mut line)).await;
        if read.ok()?.ok()? == 0 {
            return None;
        }
        text.push_str(&line);
        if line.len() >= 4 && line.as_bytes()[3] == b' ' {
            return line[..3].parse().ok();
        }
    }
}

async fn reply<R: AsyncBufReadExt + Unpin>(r: &mut R) -> Option<u16> {
    reply_text(r, &mut String::new()).await
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mode = args.get(1).map(String::as_str).unwrap_or("");
    let addr = args
        .get(2)
        .cloned()
        .unwrap_or_else(|| "127.0.0.1:2525".into());
    let sessions: usize = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(20);
    match mode {
        "idle" => {
            let secs: u64 = args.get(4).and_then(|a| a.parse().ok()).unwrap_or(10);
            let mut held = Vec::with_capacity(sessions);
            for _ in 0..sessions {
                match TcpStream::connect(&addr).await {
                    Ok(s) => {
                        let mut r = BufReader::new(s);
                        if reply(&mut r).await == Some(220) {
                            held.push(r);
                        }
                    }
                    Err(e) => {
                        eprintln!("connect failed: {e}");
                        break;
                    }
                }
            }
            println!("{{\"open\":{}}}", held.len());
            std::io::stdout().flush().ok();
            tokio::time::sleep(Duration::from_secs(secs)).await;
        }
        "send" => {
            let messages: u64 = args.get(4).and_then(|a| a.parse().ok()).unwrap_or(1000);
            let size: usize = args.get(5).and_then(|a| a.parse().ok()).unwrap_or(4096);
            let acked_file = args.get(6).cloned();
            let rate: Option<f64> = std::env::var("LOADGEN_RATE")
                .ok()
                .and_then(|r| r.parse().ok())
                .filter(|r: &f64| *r > 0.0);
            let budget: Option<Duration> = std::env::var("LOADGEN_SECONDS")
                .ok()
                .and_then(|r| r.parse().ok())
                .map(Duration::from_secs_f64);
            let next = Arc::new(AtomicU64::new(0));
            let failed = Arc::new(AtomicU64::new(0));
            let latencies = Arc::new(Mutex::new(Vec::with_capacity(messages as usize)));
            let acked: Arc<Mutex<Vec<String>>> = Arc::default();
            let line = "x".repeat(76);
            let body_lines = size / 78 + 1;
            let started = Instant::now();
            let mut tasks = vec![];
            for s in 0..sessions {
                let (addr, next, failed, latencies, acked, line) = (
                    addr.clone(),
                    next.clone(),
                    failed.clone(),
                    latencies.clone(),
                    acked.clone(),
                    line.clone(),
                );
                tasks.push(tokio::spawn(async move {
                    let Ok(stream) = TcpStream::connect(&addr).await else { return };
                    let (r, mut w) = stream.into_split();
                    let mut r = BufReader::new(r);
                    if reply(&mut r).await != Some(220) {
                        return;
                    }
                    let _ = w.write_all(b"EHLO loadgen.test\r\n").await;
                    let mut ehlo = String::new();
                    if reply_text(&mut r, &mut ehlo).await != Some(250) {
                        return;
                    }
                    // The envelope is pipelined where the server offers it
                    // (as smtp-source does), else sent a command at a time.
                    let pipelining = ehlo.to_ascii_uppercase().contains("PIPELINING");
                    loop {
                        let n = next.fetch_add(1, Ordering::SeqCst);
                        if n >= messages || budget.is_some_and(|b| started.elapsed() > b) {
                            break;
                        }
                        if let Some(rate) = rate {
                            let due = started + Duration::from_secs_f64(n as f64 / rate);
                            tokio::time::sleep_until(due.into()).await;
                        }
                        let mid = format!("<bench-{s}-{n}-{}@loadgen.test>", std::process::id());
                        let mut data = format!("Message-ID: {mid}\r\nFrom: <bench@source.test>\r\nSubject: bench {n}\r\n\r\n");
                        for _ in 0..body_lines {
                            data.push_str(&line);
                            data.push_str("\r\n");
                        }
                        data.push_str(".\r\n");
                        let env = ["MAIL FROM:<bench@source.test>\r\n", "RCPT TO:<rcpt@remote.test>\r\n", "DATA\r\n"];
                        let mut ok = true;
                        if pipelining {
                            ok = w.write_all(env.concat().as_bytes()).await.is_ok();
                        }
                        for (cmd, code) in env.iter().zip([250, 250, 354]) {
                            if ok && !pipelining {
                                ok = w.write_all(cmd.as_bytes()).await.is_ok();
                            }
                            ok = ok && reply(&mut r).await == Some(code);
                        }
                        if !ok {
                            failed.fetch_add(1, Ordering::SeqCst);
                            return;
                        }
                        let t = Instant::now();
                        if w.write_all(data.as_bytes()).await.is_err() {
                            failed.fetch_add(1, Ordering::SeqCst);
                            return;
                        }
                        match reply(&mut r).await {
                            Some(250) => {
                                latencies.lock().await.push(t.elapsed().as_micros() as u64);
                                acked.lock().await.push(mid);
                            }
                            _ => {
                                failed.fetch_add(1, Ordering::SeqCst);
                                return;
                            }
                        }
                    }
                    let _ = w.write_all(b"QUIT\r\n").await;
                }));
            }
            for t in tasks {
                let _ = t.await;
            }
            let secs = started.elapsed().as_secs_f64();
            let mut l = latencies.lock().await.clone();
            l.sort_unstable();
            let pct = |p: f64| {
                if l.is_empty() {
                    0.0
                } else {
                    l[((l.len() as f64 - 1.0) * p) as usize] as f64 / 1000.0
                }
            };
            if let Some(f) = acked_file {
                let mut out = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(f)
                    .expect("acked file");
                for m in acked.lock().await.iter() {
                    writeln!(out, "{m}").ok();
                }
            }
            println!(
                "{{\"sent\":{},\"failed\":{},\"seconds\":{secs:.3},\"msgs_per_s\":{:.0},\"p50_ms\":{:.2},\"p99_ms\":{:.2}}}",
                l.len(),
                failed.load(Ordering::SeqCst),
                l.len() as f64 / secs,
                pct(0.5),
                pct(0.99)
            );
        }
        _ => {
            eprintln!(
                "usage: loadgen send ADDR SESSIONS MESSAGES SIZE [ACKED_FILE] | loadgen idle ADDR SESSIONS SECONDS"
            );
            std::process::exit(2);
        }
    }
}
