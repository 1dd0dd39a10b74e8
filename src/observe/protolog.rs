//! Protocol logs (spec rule 27): with a connector's ProtocolLoggingLevel at
//! `Verbose`, every command and reply of its sessions is written, as
//! Exchange writes them, to CSV files under
//! `<data-dir>/logs/ProtocolLog/SmtpReceive/RECVyyyymmdd-n.log` and
//! `…/SmtpSend/SENDyyyymmdd-n.log`, with the fields
//! `date-time,connector-id,session-id,sequence-number,local-endpoint,remote-endpoint,event,data,context`.
//!
//! A session never waits for the disk: it hands lines to a writer thread
//! per direction, which appends them, starts a new file each UTC day or
//! when the file reaches MaxFileSize, and deletes files older than MaxAge
//! or beyond MaxDirectorySize (oldest first). AUTH payloads are replaced
//! by `****` before a line is handed over, so no credential reaches a file.

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc as std_mpsc;
use std::time::{Duration, SystemTime};

use serde::Serialize;
use tokio::sync::{oneshot, watch};
use utoipa::ToSchema;

use crate::config::Snapshot;
use crate::model::Limit;
use crate::model::Timespan;
use crate::shutdown::Lifecycle;

pub const FIELDS: &str = "date-time,connector-id,session-id,sequence-number,local-endpoint,remote-endpoint,event,data,context";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Receive,
    Send,
}

impl Direction {
    fn prefix(self) -> &'static str {
        match self {
            Direction::Receive => "RECV",
            Direction::Send => "SEND",
        }
    }
    fn dir_name(self) -> &'static str {
        match self {
            Direction::Receive => "SmtpReceive",
            Direction::Send => "SmtpSend",
        }
    }
    fn log_type(self) -> &'static str {
        match self {
            Direction::Receive => "SMTP Receive Protocol Log",
            Direction::Send => "SMTP Send Protocol Log",
        }
    }
    fn limits(self, snap: &Snapshot) -> (Timespan, Limit, Limit) {
        let t = &snap.transport.spec;
        match self {
            Direction::Receive => (
                t.receive_protocol_log_max_age,
                t.receive_protocol_log_max_directory_size,
                t.receive_protocol_log_max_file_size,
            ),
            Direction::Send => (
                t.send_protocol_log_max_age,
                t.send_protocol_log_max_directory_size,
                t.send_protocol_log_max_file_size,
            ),
        }
    }
}

enum Msg {
    Line(String),
    Flush(oneshot::Sender<()>),
    Stop,
}

/// Both protocol logs of one server.
pub struct ProtocolLog {
    root: PathBuf,
    receive: std_mpsc::Sender<Msg>,
    send: std_mpsc::Sender<Msg>,
}

impl ProtocolLog {
    /// Starts a writer thread per direction under `life`, until `stop`.
    pub fn start(
        data_dir: &Path,
        config: watch::Receiver<Arc<Snapshot>>,
        life: &Lifecycle,
    ) -> anyhow::Result<Self> {
        let root = data_dir.join("logs").join("ProtocolLog");
        let spawn = |d: Direction| -> anyhow::Result<std_mpsc::Sender<Msg>> {
            let dir = root.join(d.dir_name());
            fs::create_dir_all(&dir)?;
            let (tx, rx) = std_mpsc::channel();
            let config = config.clone();
            let name = match d {
                Direction::Receive => "recv-log",
                Direction::Send => "send-log",
            };
            life.spawn_thread(name, move || Writer::new(d, dir, config).run(rx))?;
            Ok(tx)
        };
        Ok(ProtocolLog {
            receive: spawn(Direction::Receive)?,
            send: spawn(Direction::Send)?,
            root,
        })
    }

    /// A log for one session, to be written only at Verbose level.
    pub fn session(
        &self,
        direction: Direction,
        connector_id: &str,
        session: &str,
        local: Option<SocketAddr>,
        remote: SocketAddr,
    ) -> SessionLog {
        SessionLog {
            tx: match direction {
                Direction::Receive => self.receive.clone(),
                Direction::Send => self.send.clone(),
            },
            connector: csv_field(connector_id),
            session: session.to_string(),
            seq: 0,
            local: local.map(|a| a.to_string()).unwrap_or_default(),
            remote: remote.to_string(),
        }
    }

    /// Waits until every line handed over so far is in its file.
    pub async fn flush(&self) {
        for tx in [&self.receive, &self.send] {
            let (done, rx) = oneshot::channel();
            if tx.send(Msg::Flush(done)).is_ok() {
                let _ = rx.await;
            }
        }
    }

    pub async fn stop(&self) {
        self.flush().await;
        let _ = self.receive.send(Msg::Stop);
        let _ = self.send.send(Msg::Stop);
    }

    /// Every line of one session, from the files of both directions, in order.
    pub async fn session_lines(&self, session: &str) -> anyhow::Result<Vec<LogLine>> {
        self.flush().await;
        let root = self.root.clone();
        let session = session.to_string();
        tokio::task::spawn_blocking(move || {
            let mut out = vec![];
            for d in [Direction::Receive, Direction::Send] {
                let dir = root.join(d.dir_name());
                for (path, _, _) in log_files(&dir, d.prefix()) {
                    let Ok(f) = File::open(&path) else { continue };
                    let file = path
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    for line in BufReader::new(f).lines() {
                        let Ok(line) = line else { break };
                        if line.starts_with('#') || !line.contains(session.as_str()) {
                            continue;
                        }
                        if let Some(l) = LogLine::parse(&line, &file)
                            && l.session_id == session
                        {
                            out.push(l);
                        }
                    }
                }
            }
            out.sort_by(|a, b| {
                a.date_time
                    .cmp(&b.date_time)
                    .then(a.sequence_number.cmp(&b.sequence_number))
            });
            Ok(out)
        })
        .await?
    }

    /// The directory of one direction's files.
    pub fn dir(&self, d: Direction) -> PathBuf {
        self.root.join(d.dir_name())
    }
}

/// One parsed protocol log line.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LogLine {
    pub date_time: String,
    pub connector_id: String,
    pub session_id: String,
    pub sequence_number: u64,
    pub local_endpoint: String,
    pub remote_endpoint: String,
    /// `+` connect, `-` disconnect, `>` sent, `<` received, `*` information.
    pub event: String,
    pub data: String,
    pub context: String,
    /// The file the line is in.
    pub file: String,
}

impl LogLine {
    fn parse(line: &str, file: &str) -> Option<LogLine> {
        let f = parse_csv(line);
        if f.len() < 9 {
            return None;
        }
        let mut f = f.into_iter();
        let mut next = || f.next().unwrap_or_default();
        Some(LogLine {
            date_time: next(),
            connector_id: next(),
            session_id: next(),
            sequence_number: next().parse().ok()?,
            local_endpoint: next(),
            remote_endpoint: next(),
            event: next(),
            data: next(),
            context: next(),
            file: file.to_string(),
        })
    }
}

/// One session's side of the log: numbers its lines and hands them over.
pub struct SessionLog {
    tx: std_mpsc::Sender<Msg>,
    connector: String,
    session: String,
    seq: u64,
    local: String,
    remote: String,
}

impl SessionLog {
    pub fn connect(&mut self) {
        self.line('+', "", "");
    }
    pub fn disconnect(&mut self) {
        self.line('-', "", "");
    }
    /// A line received from the peer (a command, or a reply on the send side).
    pub fn received(&mut self, data: &str) {
        self.line('<', data, "");
    }
    /// A line sent to the peer.
    pub fn sent(&mut self, data: &str) {
        self.line('>', data, "");
    }
    pub fn info(&mut self, data: &str, context: &str) {
        self.line('*', data, context);
    }
    /// Every line of a (multi-line) reply, as separate `>` or `<` events.
    pub fn reply(&mut self, sent: bool, text: &str) {
        for l in text.split("\r\n").filter(|l| !l.is_empty()) {
            self.line(if sent { '>' } else { '<' }, l, "");
        }
    }
    pub fn set_local(&mut self, local: SocketAddr) {
        self.local = local.to_string();
    }

    fn line(&mut self, event: char, data: &str, context: &str) {
        let line = format!(
            "{},{},{},{},{},{},{},{},{}\r\n",
            iso_now(),
            self.connector,
            self.session,
            self.seq,
            self.local,
            self.remote,
            event,
            csv_field(data),
            csv_field(context)
        );
        self.seq += 1;
        let _ = self.tx.send(Msg::Line(line));
    }
}

/// An SMTP command line as it may be logged: AUTH payloads are masked.
pub fn mask_command(line: &str) -> String {
    let mut words = line.split_ascii_whitespace();
    match words.next() {
        Some(verb) if verb.eq_ignore_ascii_case("AUTH") => match (words.next(), words.next()) {
            (Some(mech), Some(_)) => format!("{verb} {mech} ****"),
            (Some(mech), None) => format!("{verb} {mech}"),
            _ => verb.to_string(),
        },
        _ => line.to_string(),
    }
}

fn iso_now() -> String {
    let f = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    time::OffsetDateTime::now_utc()
        .format(&f)
        .unwrap_or_default()
}

/// RFC 4180 quoting when needed; control characters are made visible so a
/// hostile peer cannot forge a log line.
fn csv_field(s: &str) -> String {
    let clean: String = s
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if clean.contains([',', '"']) {
        format!("\"{}\"", clean.replace('"', "\"\""))
    } else {
        clean
    }
}

fn parse_csv(line: &str) -> Vec<String> {
    let mut out = vec![];
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.trim_end_matches(['\r', '\n']).chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            ('"', true) => quoted = false,
            ('"', false) if cur.is_empty() => quoted = true,
            (',', false) => out.push(std::mem::take(&mut cur)),
            (c, _) => cur.push(c),
        }
    }
    out.push(cur);
    out
}

/// The log files of a directory with their size and modification time,
/// oldest first (by date in the name, then number).
fn log_files(dir: &Path, prefix: &str) -> Vec<(PathBuf, u64, SystemTime)> {
    let mut files: Vec<(String, u32, PathBuf, u64, SystemTime)> = vec![];
    let Ok(rd) = fs::read_dir(dir) else {
        return vec![];
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some((date, n)) = parse_name(&name, prefix) else {
            continue;
        };
        if let Ok(m) = e.metadata() {
            files.push((
                date,
                n,
                e.path(),
                m.len(),
                m.modified().unwrap_or(SystemTime::UNIX_EPOCH),
            ));
        }
    }
    files.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
    files.into_iter().map(|(_, _, p, s, t)| (p, s, t)).collect()
}

/// `RECV20261127-3.log` → ("20261127", 3).
fn parse_name(name: &str, prefix: &str) -> Option<(String, u32)> {
    let rest = name.strip_prefix(prefix)?.strip_suffix(".log")?;
    let (date, n) = rest.split_once('-')?;
    (date.len() == 8 && date.bytes().all(|b| b.is_ascii_digit()))
        .then_some(())
        .and_then(|_| n.parse().ok().map(|n| (date.to_string(), n)))
}

struct Current {
    path: PathBuf,
    date: String,
    n: u32,
    size: u64,
    out: BufWriter<File>,
}

struct Writer {
    direction: Direction,
    dir: PathBuf,
    config: watch::Receiver<Arc<Snapshot>>,
    current: Option<Current>,
}

impl Writer {
    fn new(direction: Direction, dir: PathBuf, config: watch::Receiver<Arc<Snapshot>>) -> Self {
        Writer {
            direction,
            dir,
            config,
            current: None,
        }
    }

    fn run(mut self, rx: std_mpsc::Receiver<Msg>) {
        loop {
            let first = match rx.recv_timeout(Duration::from_secs(1)) {
                Ok(m) => m,
                Err(std_mpsc::RecvTimeoutError::Timeout) => {
                    self.clean_up();
                    continue;
                }
                Err(std_mpsc::RecvTimeoutError::Disconnected) => break,
            };
            let mut flushes = vec![];
            let mut stop = false;
            let mut handle = |this: &mut Self, m: Msg| match m {
                Msg::Line(l) => this.write(&l),
                Msg::Flush(f) => flushes.push(f),
                Msg::Stop => stop = true,
            };
            handle(&mut self, first);
            while let Ok(m) = rx.try_recv() {
                handle(&mut self, m);
            }
            if let Some(c) = &mut self.current {
                let _ = c.out.flush();
            }
            for f in flushes {
                let _ = f.send(());
            }
            if stop {
                break;
            }
        }
        if let Some(c) = &mut self.current {
            let _ = c.out.flush();
        }
    }

    fn write(&mut self, line: &str) {
        let today = time::OffsetDateTime::now_utc();
        let date = format!(
            "{:04}{:02}{:02}",
            today.year(),
            today.month() as u8,
            today.day()
        );
        let max_file = self.direction.limits(&self.config.borrow()).2;
        let rotate = match &self.current {
            None => true,
            Some(c) => c.date != date || !max_file.allows(c.size + line.len() as u64) && c.size > 0,
        };
        if rotate && let Err(e) = self.open(&date, max_file) {
            tracing::warn!(dir = %self.dir.display(), error = %e, "protocol log: cannot open a file");
            return;
        }
        if let Some(c) = &mut self.current {
            match c.out.write_all(line.as_bytes()) {
                Ok(()) => c.size += line.len() as u64,
                Err(e) => {
                    tracing::warn!(file = %c.path.display(), error = %e, "protocol log: write failed")
                }
            }
        }
    }

    /// Opens today's next file: the last one of today if it has room, else
    /// a new number.
    fn open(&mut self, date: &str, max_file: Limit) -> std::io::Result<()> {
        if let Some(mut c) = self.current.take() {
            let _ = c.out.flush();
            if c.date == date {
                return self.create(date, c.n + 1).map(|_| self.clean_up());
            }
        }
        let prefix = self.direction.prefix();
        let last_today = log_files(&self.dir, prefix)
            .into_iter()
            .filter_map(|(p, size, _)| {
                let name = p.file_name()?.to_string_lossy().into_owned();
                let (d, n) = parse_name(&name, prefix)?;
                (d == date).then_some((n, size))
            })
            .max();
        match last_today {
            Some((n, size)) if max_file.allows(size + 512) => {
                let path = self.dir.join(format!("{prefix}{date}-{n}.log"));
                let f = OpenOptions::new().append(true).open(&path)?;
                self.current = Some(Current {
                    path,
                    date: date.to_string(),
                    n,
                    size,
                    out: BufWriter::new(f),
                });
                Ok(())
            }
            Some((n, _)) => self.create(date, n + 1),
            None => self.create(date, 1),
        }
        .map(|_| self.clean_up())
    }

    fn create(&mut self, date: &str, n: u32) -> std::io::Result<()> {
        let prefix = self.direction.prefix();
        let path = self.dir.join(format!("{prefix}{date}-{n}.log"));
        let f = OpenOptions::new().create(true).append(true).open(&path)?;
        let header = format!(
            "#Software: Ferry\r\n#Version: {}\r\n#Log-type: {}\r\n#Date: {}\r\n#Fields: {FIELDS}\r\n",
            env!("CARGO_PKG_VERSION"),
            self.direction.log_type(),
            iso_now()
        );
        let mut out = BufWriter::new(f);
        out.write_all(header.as_bytes())?;
        self.current = Some(Current {
            path,
            date: date.to_string(),
            n,
            size: header.len() as u64,
            out,
        });
        Ok(())
    }

    /// Deletes files past MaxAge, then the oldest while the directory is
    /// over MaxDirectorySize. The file being written is never deleted.
    fn clean_up(&mut self) {
        let (max_age, max_dir, max_file) = self.direction.limits(&self.config.borrow());
        // Room is kept for the open file to grow to MaxFileSize, so the
        // directory stays within MaxDirectorySize all along.
        let growth = match (&self.current, max_file.value()) {
            (Some(c), Some(f)) => f.saturating_sub(c.size),
            _ => 0,
        };
        let current = self.current.as_ref().map(|c| c.path.clone());
        let files = log_files(&self.dir, self.direction.prefix());
        let now = SystemTime::now();
        let mut total: u64 = files.iter().map(|f| f.1).sum();
        if let Some(c) = &self.current {
            // Count what is still buffered too.
            let on_disk = files
                .iter()
                .find(|f| Some(&f.0) == current.as_ref())
                .map(|f| f.1)
                .unwrap_or(0);
            total += c.size.saturating_sub(on_disk);
        }
        for (path, size, modified) in files {
            if Some(&path) == current.as_ref() {
                continue;
            }
            let too_old = !max_age.is_zero()
                && now
                    .duration_since(modified)
                    .is_ok_and(|age| age > max_age.duration());
            if too_old || !max_dir.allows(total + growth) {
                match fs::remove_file(&path) {
                    Ok(()) => total = total.saturating_sub(size),
                    Err(e) => {
                        tracing::warn!(file = %path.display(), error = %e, "protocol log: cannot delete")
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_payloads_are_masked() {
        assert_eq!(
            mask_command("AUTH PLAIN AGJvYgBzZWNyZXQ="),
            "AUTH PLAIN ****"
        );
        assert_eq!(mask_command("auth login"), "auth login");
        assert_eq!(mask_command("AUTH LOGIN Ym9i"), "AUTH LOGIN ****");
        assert_eq!(mask_command("MAIL FROM:<a@b>"), "MAIL FROM:<a@b>");
    }

    #[test]
    fn csv_round_trip() {
        let f = csv_field("250-a, \"b\"\r\nX");
        assert_eq!(f, "\"250-a, \"\"b\"\"??X\"");
        let line = format!("t,c,s,1,l,r,>,{f},");
        let p = parse_csv(&line);
        assert_eq!(p[7], "250-a, \"b\"??X");
        assert_eq!(p.len(), 9);
    }

    #[test]
    fn file_names() {
        assert_eq!(
            parse_name("RECV20261127-12.log", "RECV"),
            Some(("20261127".into(), 12))
        );
        assert_eq!(parse_name("SEND20261127-1.log", "RECV"), None);
        assert_eq!(parse_name("RECV2026112-1.log", "RECV"), None);
    }
}
