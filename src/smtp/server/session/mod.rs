//! One SMTP session: the state machine from banner to QUIT. Each verb has
//! its own file (`ehlo.rs`, `mail.rs`, `rcpt.rs`, `data.rs`, `auth.rs`,
//! `starttls.rs`); this file holds the session state, line framing,
//! timeouts, tarpitting and the command dispatcher.
//!
//! A session keeps the configuration snapshot it started with: a change made
//! through the API applies to the next session, never to one in flight.

mod auth;
mod content;
mod data;

/// The first value of a header in a message (used by the DSN builder).
pub fn data_header_value(message: &[u8], name: &str) -> Option<String> {
    data::header_value(&message[..data::header_block_len(message)], name)
}
mod ehlo;
mod mail;
mod rcpt;
mod starttls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use smtp_proto::Request;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;
use tracing::Instrument;

use super::Shared;
use crate::agents::connection_filter::{self, Verdict};
use crate::agents::{Origin, SessionInfo};
use crate::config::Snapshot;
use crate::model::anti_spam::AgentName;
use crate::model::{Address, ExtendedRight, Principal, ProtocolLoggingLevel, ReceiveConnector};
use crate::observe::metrics::SessionGauge;
use crate::observe::protolog::{Direction, SessionLog, mask_command};
use crate::queue::Recipient;
use crate::smtp::replies::{self, Reply};
use crate::store::Stored;

/// Longest command line accepted, CRLF included. RFC 5321 §4.5.3.1.4 allows
/// 512 octets plus what extensions add (SIZE, BODY, AUTH=, SMTPUTF8 …).
const MAX_LINE: usize = 2048;

/// The byte stream: plain TCP, or TLS after STARTTLS.
pub type Conn<S> = crate::smtp::stream::MaybeTls<S, tokio_rustls::server::TlsStream<S>>;

/// What to do after a command.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Next {
    Continue,
    Close,
}

/// Why reading stopped.
enum Filled {
    Data,
    /// The peer closed, or the session ended with a reply already written.
    Done,
}

/// The mail transaction between MAIL and the end of DATA/BDAT.
#[derive(Default)]
pub(crate) struct Transaction {
    sender: Address,
    body_type: Option<&'static str>,
    smtputf8: bool,
    auth_param: Option<String>,
    /// RFC 3461 ENVID (xtext-decoded) and RET (`FULL` or `HDRS`).
    env_id: Option<String>,
    ret: Option<&'static str>,
    /// RFC 8689 REQUIRETLS (only over TLS).
    require_tls: bool,
    recipients: Vec<Recipient>,
    /// Header lines the agents stamp on the message (after Received).
    stamps: Vec<String>,
    /// BDAT chunks received so far (spilled to disk past 256 KiB).
    chunks: Option<crate::queue::spool::Spool>,
    chunks_size: u64,
    chunking: bool,
    /// The original arrival time a transferring server stated (header
    /// `X-Ferry-Organization-OriginalArrivalTime`, from a session holding
    /// ms-Exch-Accept-Headers-Organization only).
    arrived_ms: Option<i64>,
}

pub struct Session<S> {
    shared: Arc<Shared>,
    snap: Arc<Snapshot>,
    connector: Stored<ReceiveConnector>,
    conn: Conn<S>,
    local: SocketAddr,
    remote: SocketAddr,
    /// Greppable id, on every log line of this session.
    id: String,
    deadline: Instant,
    inbuf: Vec<u8>,
    out: Vec<u8>,
    /// A command line longer than MAX_LINE is being skipped.
    skipping_long_line: bool,
    helo: Option<String>,
    esmtp: bool,
    /// "TLSv1_3 TLS13_AES_256_GCM_SHA384" once STARTTLS has completed.
    tls: Option<String>,
    auth_user: Option<String>,
    /// The addresses the authenticated login sends as (issue 23).
    auth_addresses: Vec<String>,
    principal: Principal,
    rights: Vec<ExtendedRight>,
    tx: Option<Transaction>,
    /// Connection Filtering's judgement, made at the first RCPT (again
    /// after a successful AUTH).
    connection_verdict: Option<Verdict>,
    /// A recipient was refused because the client is on a block list.
    refused_by_agent: bool,
    /// Recipients refused as unknown by recipient validation.
    unknown_recipients: u32,
    protocol_errors: u64,
    logon_failures: u32,
    tls_config: Option<Arc<rustls::ServerConfig>>,
    /// Keeps this connection counted until the session ends.
    _guard: Option<super::limits::ConnectionGuard>,
    /// The protocol log, when the connector's level is Verbose.
    plog: Option<SessionLog>,
    _gauge: SessionGauge,
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Session<S> {
    pub(crate) fn new(
        shared: Arc<Shared>,
        snap: Arc<Snapshot>,
        connector: Stored<ReceiveConnector>,
        stream: S,
        local: SocketAddr,
        remote: SocketAddr,
        guard: Option<super::limits::ConnectionGuard>,
    ) -> Self {
        let c = &connector.spec;
        let principal = if c
            .auth_mechanism
            .has(crate::model::AuthMechanism::ExternalAuthoritative)
        {
            Principal::ExternallySecuredServers
        } else {
            Principal::Anonymous
        };
        let rights = c.rights().remove(&principal).unwrap_or_default();
        let tls_config = if c.auth_mechanism.has(crate::model::AuthMechanism::Tls) {
            shared.tls.server_config(
                &snap,
                snap.effective_fqdn(&c.fqdn),
                c.tls_certificate_name.as_deref(),
            )
        } else {
            None
        };
        let id = format!("{:016X}", rand::random::<u64>());
        let metrics = &shared.observe.metrics;
        metrics.connection(&c.name);
        let gauge = metrics.session(&c.name);
        let plog = (c.protocol_logging_level == ProtocolLoggingLevel::Verbose).then(|| {
            shared.observe.protolog.session(
                Direction::Receive,
                &format!("{}\\{}", snap.ctx.server_name, c.name),
                &id,
                Some(local),
                remote,
            )
        });
        Session {
            deadline: Instant::now() + c.connection_timeout.duration(),
            shared,
            snap,
            connector,
            conn: Conn::Plain(stream),
            local,
            remote,
            id,
            inbuf: Vec::with_capacity(1024),
            out: Vec::with_capacity(512),
            skipping_long_line: false,
            helo: None,
            esmtp: false,
            tls: None,
            auth_user: None,
            auth_addresses: vec![],
            principal,
            rights,
            tx: None,
            connection_verdict: None,
            refused_by_agent: false,
            unknown_recipients: 0,
            protocol_errors: 0,
            logon_failures: 0,
            tls_config,
            _guard: guard,
            plog,
            _gauge: gauge,
        }
    }

    fn c(&self) -> &ReceiveConnector {
        &self.connector.spec
    }

    /// Where this session's mail comes from, for the anti-spam agents.
    fn origin(&self) -> Origin {
        let ip = self.remote.ip();
        if self.has_right(ExtendedRight::BypassAntiSpam) {
            Origin::Bypass
        } else if self.principal != Principal::Anonymous
            || self
                .snap
                .transport
                .spec
                .internal_smtp_servers
                .iter()
                .any(|r| r.contains_ip(ip))
        {
            Origin::Internal
        } else {
            Origin::External
        }
    }

    /// Records an agent's decision (tracking, metrics, log, protocol log).
    fn report_agent(
        &mut self,
        agent: AgentName,
        action: &str,
        reason: &str,
        sender: &Address,
        recipients: Vec<String>,
    ) {
        let info = SessionInfo {
            snap: &self.snap,
            client_ip: self.remote.ip(),
            connector: &self.connector.spec.name,
            session: &self.id,
            origin: self.origin(),
        };
        self.shared
            .agents
            .report(&info, agent, action, reason, sender.as_str(), recipients);
        if let Some(l) = &mut self.plog {
            l.info(&format!("{action}: {reason}"), agent.as_str());
        }
    }

    /// Connection Filtering's judgement of this client, made once.
    async fn connection_verdict(&mut self) -> Verdict {
        if let Some(v) = &self.connection_verdict {
            return v.clone();
        }
        let (snap, connector, id) = (self.snap.clone(), self.c().name.clone(), self.id.clone());
        let info = SessionInfo {
            snap: &snap,
            client_ip: self.remote.ip(),
            connector: &connector,
            session: &id,
            origin: self.origin(),
        };
        let v = connection_filter::judge(&self.shared.agents, &info).await;
        if let Some(l) = &mut self.plog {
            match &v {
                Verdict::Pass => {}
                Verdict::Allowed => l.info("on an IP Allow list", "Connection Filtering Agent"),
                Verdict::Blocked { text, .. } => l.info(text, "Connection Filtering Agent"),
            }
        }
        self.connection_verdict = Some(v.clone());
        v
    }

    fn fqdn(&self) -> String {
        self.snap
            .effective_fqdn(&self.connector.spec.fqdn)
            .to_string()
    }

    fn has_right(&self, r: ExtendedRight) -> bool {
        self.rights.contains(&r)
    }

    /// Runs the session to its end; errors only end this session.
    /// Every log line of the session carries its id, connector and peer.
    pub async fn run(self) {
        let span = tracing::info_span!("smtp", session = %self.id, connector = %self.c().name, remote = %self.remote);
        self.run_logged().instrument(span).await
    }

    async fn run_logged(mut self) {
        tracing::debug!("session start");
        if let Some(l) = &mut self.plog {
            l.connect();
        }
        // ConnectionTimeout bounds the whole session, whatever it is doing;
        // the reads and writes inside end it politely before this does.
        let hard_stop = self.deadline + Duration::from_secs(2);
        let result = match tokio::time::timeout_at(hard_stop, self.run_inner()).await {
            Ok(r) => r,
            Err(_) => Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "connection timeout",
            )),
        };
        if let Err(e) = result {
            tracing::debug!(error = %e, "session ended with an I/O error");
            if let Some(l) = &mut self.plog {
                l.info(&e.to_string(), "I/O error");
            }
        }
        // TLS ends with close_notify. A plain connection is simply closed
        // when the session drops it (close sends the FIN after whatever is
        // still queued): shutdown first would cost a system call and a
        // timer per session for nothing (issue 22).
        if matches!(self.conn, Conn::Tls(_)) {
            let _ = tokio::time::timeout(Duration::from_secs(1), self.conn.shutdown()).await;
        }
        if let Some(l) = &mut self.plog {
            l.disconnect();
        }
    }

    async fn run_inner(&mut self) -> std::io::Result<()> {
        let banner = match &self.c().banner {
            Some(b) => Reply::new(
                220,
                "",
                b.strip_prefix("220").unwrap_or(b).trim_start().to_string(),
            ),
            None => Reply::new(
                220,
                "",
                format!(
                    "{} Ferry ESMTP service ready at {}",
                    self.fqdn(),
                    rfc5322_now()
                ),
            ),
        };
        self.write(&banner);
        loop {
            while let Some(line) = self.next_line() {
                let next = match line {
                    Some(line) => self.command(line).await?,
                    None => self.protocol_error(replies::LINE_TOO_LONG).await,
                };
                if next == Next::Close {
                    self.flush().await?;
                    return Ok(());
                }
            }
            self.flush().await?;
            if let Filled::Done = self.fill(true).await? {
                return Ok(());
            }
        }
    }

    /// Takes the next complete command line out of the buffer:
    /// `Some(Some(line))`, `Some(None)` for a line that was too long, or
    /// `None` when more input is needed.
    fn next_line(&mut self) -> Option<Option<Vec<u8>>> {
        match self.inbuf.iter().position(|&b| b == b'\n') {
            Some(pos) => {
                let mut line: Vec<u8> = self.inbuf.drain(..=pos).collect();
                if std::mem::take(&mut self.skipping_long_line) || line.len() > MAX_LINE {
                    return Some(None);
                }
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                Some(Some(line))
            }
            None if self.inbuf.len() > MAX_LINE => {
                self.inbuf.clear();
                self.skipping_long_line = true;
                None
            }
            None => None,
        }
    }

    /// Reads more input, within the inactivity timeout and the connection
    /// timeout. `idle` means no command is in progress, so a shutdown may
    /// end the session here.
    async fn fill(&mut self, idle: bool) -> std::io::Result<Filled> {
        let inactivity = Instant::now() + self.c().connection_inactivity_timeout.duration();
        let (until, on_timeout) = if self.deadline < inactivity {
            (self.deadline, replies::CONNECTION_TIMEOUT)
        } else {
            (inactivity, replies::INACTIVITY_TIMEOUT)
        };
        let mut shutdown = self.shared.shutdown.clone();
        if idle && shutdown.is_shutdown() {
            return self.end_with(replies::SHUTTING_DOWN).await;
        }
        let mut chunk = [0u8; 8192];
        tokio::select! {
            r = tokio::time::timeout_at(until, self.conn.read(&mut chunk)) => match r {
                Ok(Ok(0)) => Ok(Filled::Done),
                Ok(Ok(n)) => {
                    self.inbuf.extend_from_slice(&chunk[..n]);
                    Ok(Filled::Data)
                }
                Ok(Err(e)) => Err(e),
                Err(_) => self.end_with(on_timeout).await,
            },
            _ = shutdown.recv(), if idle => self.end_with(replies::SHUTTING_DOWN).await,
        }
    }

    async fn end_with(&mut self, reply: Reply) -> std::io::Result<Filled> {
        tracing::debug!(reply = %reply.to_line(true).trim_end(), "closing");
        self.write(&reply);
        self.flush().await?;
        Ok(Filled::Done)
    }

    /// Queues a reply for the next flush.
    fn write(&mut self, reply: &Reply) {
        let enhanced = self.c().enhanced_status_codes_enabled;
        let start = self.out.len();
        reply.write_to(&mut self.out, enhanced);
        if let Some(l) = &mut self.plog {
            l.reply(true, &String::from_utf8_lossy(&self.out[start..]));
        }
    }

    /// Queues a reply, first waiting out the tarpit when it is a failure.
    async fn reply(&mut self, reply: Reply) -> Next {
        if reply.is_failure() {
            self.tarpit(self.c().tarpit_interval.duration()).await;
        }
        self.write(&reply);
        Next::Continue
    }

    async fn tarpit(&mut self, d: Duration) {
        if !d.is_zero() {
            // Answers already queued go out before the delay.
            let _ = self.flush().await;
            tokio::time::sleep(d).await;
        }
    }

    /// A syntax or sequence error: counted against MaxProtocolErrors.
    async fn protocol_error(&mut self, reply: Reply) -> Next {
        self.protocol_errors += 1;
        if !self.c().max_protocol_errors.allows(self.protocol_errors) {
            self.write(&replies::TOO_MANY_ERRORS);
            return Next::Close;
        }
        self.reply(reply).await
    }

    /// Writes the queued replies. A client that stops reading cannot hold
    /// the session (and its connection slot) by blocking our writes: they
    /// are bounded by the inactivity and connection timeouts like reads.
    async fn flush(&mut self) -> std::io::Result<()> {
        if !self.out.is_empty() {
            let inactivity = Instant::now() + self.c().connection_inactivity_timeout.duration();
            let until = self.deadline.min(inactivity);
            let (conn, out) = (&mut self.conn, &self.out);
            let written = tokio::time::timeout_at(until, async {
                conn.write_all(out).await?;
                conn.flush().await
            })
            .await;
            match written {
                Ok(r) => r?,
                Err(_) => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "the client stopped reading our replies",
                    ));
                }
            }
            self.out.clear();
        }
        Ok(())
    }

    async fn command(&mut self, line: Vec<u8>) -> std::io::Result<Next> {
        if let Some(l) = &mut self.plog {
            l.received(&mask_command(&String::from_utf8_lossy(&line)));
        }
        // A PROXY header from a client that no connector lists as its load
        // balancer: it would claim another address. Refused, not parsed.
        if super::proxy::looks_like_header(&line, &self.inbuf) {
            tracing::info!(remote = %self.remote, "a PROXY header from an address that is not a listed load balancer; refused");
            self.write(&replies::PROXY_REFUSED);
            return Ok(Next::Close);
        }
        // RFC 5321 commands are printable text; a control character (NUL,
        // ESC, BEL…) would travel on into headers, logs and the next hop.
        if line.iter().any(|&b| b < 0x20 || b == 0x7f) {
            let verb = line.get(..4).map(|v| v.to_ascii_uppercase());
            let reply = match verb.as_deref() {
                Some(b"MAIL") => replies::BAD_SENDER,
                Some(b"RCPT") => replies::BAD_RECIPIENT,
                _ => replies::CONTROL_CHARACTERS,
            };
            return Ok(self.protocol_error(reply).await);
        }
        let mut framed = line.clone();
        framed.extend_from_slice(b"\r\n");
        let request = Request::parse(&mut framed.iter());
        let request = match request {
            Ok(r) => r.into_owned(),
            Err(e) => {
                let reply = match e {
                    smtp_proto::Error::UnknownCommand => replies::UNRECOGNIZED,
                    smtp_proto::Error::InvalidSenderAddress => replies::BAD_SENDER,
                    smtp_proto::Error::InvalidRecipientAddress => replies::BAD_RECIPIENT,
                    smtp_proto::Error::UnsupportedParameter { param } => {
                        Reply::unsupported_parameter(&param)
                    }
                    smtp_proto::Error::ResponseTooLong => replies::LINE_TOO_LONG,
                    _ => replies::SYNTAX,
                };
                return Ok(self.protocol_error(reply).await);
            }
        };
        // RequireTLS: only the commands that lead to TLS are allowed before it.
        if self.c().require_tls
            && self.tls.is_none()
            && !matches!(
                request,
                Request::Ehlo { .. }
                    | Request::Helo { .. }
                    | Request::StartTls
                    | Request::Noop { .. }
                    | Request::Quit
                    | Request::Rset
            )
        {
            return Ok(self.reply(replies::MUST_STARTTLS).await);
        }
        // A client on a block list whose recipients were all refused hears
        // the list's reply once more when it goes on, and is disconnected
        // (spec rule 33: after all RCPT TO, then close).
        if let Some(Verdict::Blocked { text, .. }) = &self.connection_verdict
            && self.refused_by_agent
            && matches!(
                request,
                Request::Data | Request::Bdat { .. } | Request::Mail { .. }
            )
            && self.tx.as_ref().is_none_or(|t| t.recipients.is_empty())
        {
            let reply = Reply::new(550, "5.7.1", text.clone());
            self.write(&reply);
            return Ok(Next::Close);
        }
        Ok(match request {
            Request::Ehlo { host } => self.ehlo(host, true).await,
            Request::Helo { host } => self.ehlo(host, false).await,
            Request::Lhlo { .. } => self.protocol_error(replies::UNRECOGNIZED).await,
            Request::StartTls => return self.starttls().await,
            Request::Auth {
                mechanism,
                initial_response,
            } => return self.auth(mechanism, initial_response).await,
            Request::Mail { from } => self.mail(from).await,
            Request::Rcpt { mut to } => {
                // smtp-proto yields "" for both <> and the domain-less
                // <postmaster> that RFC 5321 §4.5.1 obliges us to accept.
                if to.address.is_empty() {
                    if String::from_utf8_lossy(&line)
                        .to_ascii_lowercase()
                        .contains("<postmaster>")
                    {
                        to.address = "postmaster".into();
                    } else {
                        return Ok(self.protocol_error(replies::BAD_RECIPIENT).await);
                    }
                }
                self.rcpt(to).await
            }
            Request::Data => return self.data().await,
            Request::Bdat {
                chunk_size,
                is_last,
            } => return self.bdat(chunk_size, is_last).await,
            Request::Rset => {
                self.tx = None;
                self.reply(replies::RESET).await
            }
            Request::Noop { .. } => self.reply(replies::NOOP).await,
            Request::Vrfy { .. } => self.reply(replies::VRFY).await,
            Request::Help { .. } => self.reply(replies::HELP).await,
            Request::Quit => {
                self.write(&replies::QUIT);
                Next::Close
            }
            Request::Expn { .. }
            | Request::Etrn { .. }
            | Request::Atrn { .. }
            | Request::Burl { .. } => self.protocol_error(replies::UNRECOGNIZED).await,
        })
    }
}

/// An RFC 5322 date, `Fri, 27 Nov 2026 17:13:21 +0000`.
pub(crate) fn rfc5322_now() -> String {
    let fmt = time::macros::format_description!(
        "[weekday repr:short], [day padding:none] [month repr:short] [year] [hour]:[minute]:[second] +0000"
    );
    time::OffsetDateTime::now_utc()
        .format(&fmt)
        .unwrap_or_default()
}
