//! A recording SMTP/LMTP peer for delivery tests: it logs every command it
//! receives, answers recipients by their local part (`reject…` → 550 5.1.1,
//! `defer…` → 451 4.2.0 while deferrals last), can offer STARTTLS and AUTH,
//! and keeps every message it accepts.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

#[derive(Clone, Default)]
pub struct SinkOptions {
    pub lmtp: bool,
    /// Advertise AUTH PLAIN LOGIN (accepting any credentials).
    pub offer_auth: bool,
    /// Defer `defer…` recipients this many times, then accept them.
    pub deferrals: usize,
    /// Close the connection (no QUIT asked) after each accepted message,
    /// as a server ending an idle session does.
    pub close_after_message: bool,
    /// After each accepted message, say `421` at once but keep the
    /// connection open: a server ending an idle session, heard before it
    /// closes.
    pub notice_after_message: bool,
}

#[derive(Default)]
pub struct Recorded {
    /// Every command line received, in order, across connections.
    pub commands: Vec<String>,
    /// Accepted messages: (sender, recipients, data).
    pub messages: Vec<(String, Vec<String>, String)>,
    pub connections: usize,
    deferred: usize,
}

#[derive(Clone)]
pub struct Sink {
    #[allow(dead_code)]
    pub addr: SocketAddr,
    pub rec: Arc<Mutex<Recorded>>,
}

impl Sink {
    pub async fn start(addr: &str, opts: SinkOptions) -> Sink {
        let listener = TcpListener::bind(addr).await.expect("sink binds");
        let addr = listener.local_addr().unwrap();
        let rec: Arc<Mutex<Recorded>> = Arc::default();
        let r = rec.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                r.lock().unwrap().connections += 1;
                tokio::spawn(session(stream, r.clone(), opts.clone()));
            }
        });
        Sink { addr, rec }
    }

    pub fn messages(&self) -> Vec<(String, Vec<String>, String)> {
        self.rec.lock().unwrap().messages.clone()
    }

    pub fn commands(&self) -> Vec<String> {
        self.rec.lock().unwrap().commands.clone()
    }
}

async fn session(stream: tokio::net::TcpStream, rec: Arc<Mutex<Recorded>>, opts: SinkOptions) {
    let (r, mut w) = stream.into_split();
    let mut r = BufReader::new(r);
    let _ = w.write_all(b"220 sink.test ESMTP\r\n").await;
    let mut from = String::new();
    let mut rcpts: Vec<String> = vec![];
    let mut line = String::new();
    loop {
        line.clear();
        if r.read_line(&mut line).await.unwrap_or(0) == 0 {
            return;
        }
        let cmd = line.trim_end().to_string();
        rec.lock().unwrap().commands.push(cmd.clone());
        let upper = cmd.to_ascii_uppercase();
        let reply: String = if upper.starts_with("EHLO")
            || upper.starts_with("LHLO")
            || upper.starts_with("HELO")
        {
            let mut s = String::from("250-sink.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n");
            if opts.offer_auth {
                s.push_str("250-AUTH PLAIN LOGIN\r\n");
            }
            s.push_str("250 SIZE 100000000\r\n");
            s
        } else if upper.starts_with("AUTH") {
            "235 2.7.0 ok\r\n".into()
        } else if upper.starts_with("MAIL FROM:") {
            from = cmd[10..]
                .split_whitespace()
                .next()
                .unwrap_or("")
                .trim_matches(['<', '>'])
                .to_string();
            rcpts.clear();
            "250 2.1.0 ok\r\n".into()
        } else if upper.starts_with("RCPT TO:") {
            let addr = cmd[8..]
                .split_whitespace()
                .next()
                .unwrap_or("")
                .trim_matches(['<', '>'])
                .to_string();
            let local = addr.split('@').next().unwrap_or("").to_ascii_lowercase();
            if local.starts_with("reject") {
                "550 5.1.1 User unknown\r\n".into()
            } else if local.starts_with("defer") && {
                let mut g = rec.lock().unwrap();
                let defer = g.deferred < opts.deferrals;
                if defer {
                    g.deferred += 1;
                }
                defer
            } {
                "451 4.2.0 Try again later\r\n".into()
            } else {
                rcpts.push(addr);
                "250 2.1.5 ok\r\n".into()
            }
        } else if upper == "DATA" && rcpts.is_empty() {
            "554 5.5.1 Error: no valid recipients\r\n".into()
        } else if upper == "DATA" {
            let _ = w.write_all(b"354 go ahead\r\n").await;
            let mut data = Vec::new();
            loop {
                let mut l = Vec::new();
                if r.read_until(b'\n', &mut l).await.unwrap_or(0) == 0 {
                    return;
                }
                if l == b".\r\n" {
                    break;
                }
                if l.starts_with(b"..") {
                    l.remove(0);
                }
                data.extend_from_slice(&l);
            }
            rec.lock().unwrap().messages.push((
                from.clone(),
                rcpts.clone(),
                String::from_utf8_lossy(&data).into_owned(),
            ));
            if opts.close_after_message {
                let _ = w.write_all(b"250 2.0.0 queued\r\n").await;
                return;
            }
            if opts.notice_after_message {
                let _ = w
                    .write_all(b"250 2.0.0 queued\r\n421 4.4.2 idle too long, closing\r\n")
                    .await;
                continue;
            }
            if opts.lmtp {
                let replies: String = rcpts.iter().map(|_| "250 2.0.0 delivered\r\n").collect();
                replies
            } else {
                "250 2.0.0 queued\r\n".into()
            }
        } else if upper == "QUIT" {
            let _ = w.write_all(b"221 2.0.0 bye\r\n").await;
            return;
        } else if upper == "RSET" || upper == "NOOP" {
            "250 2.0.0 ok\r\n".into()
        } else {
            "502 5.5.2 not implemented\r\n".into()
        };
        if w.write_all(reply.as_bytes()).await.is_err() {
            return;
        }
    }
    #[allow(unreachable_code)]
    {
        let _ = r.read(&mut [0u8; 1]).await;
    }
}
