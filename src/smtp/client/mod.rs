//! The outbound SMTP client used by send connectors and mailbox delivery:
//! EHLO/HELO with the connector's FQDN, STARTTLS as the connector's TLS policy
//! says (opportunistic without validation, required, chain or domain
//! validated), AUTH PLAIN/LOGIN never before TLS when the policy forbids it,
//! then MAIL/RCPT/DATA with a result per recipient. LMTP (RFC 2033) is the
//! same dialogue with LHLO and one reply per recipient after DATA.

pub mod policy;
mod reply;
mod tls;

pub use reply::{ClientError, Reply};

pub use tls::{TlsPolicy, Tlsa, Verify};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use crate::model::Address;
use crate::observe::Observer;
use crate::observe::protolog::{Direction, SessionLog, mask_command};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpSocket, TcpStream};

/// How to talk to one next hop.
#[derive(Clone)]
pub struct ClientConfig {
    /// Name sent in EHLO/HELO/LHLO.
    pub helo_name: String,
    pub force_helo: bool,
    pub lmtp: bool,
    pub tls: TlsPolicy,
    /// (user, password) for AUTH.
    pub auth: Option<(String, String)>,
    /// Refuse to send credentials unless TLS is up (BasicAuthRequireTLS).
    pub auth_requires_tls: bool,
    /// Every read and write must make progress within this.
    pub timeout: Duration,
    pub source_ip: Option<IpAddr>,
    /// Metrics and, at Verbose, the send protocol log.
    pub observe: Option<ClientObserve>,
}

/// Where a client's sessions are observed.
#[derive(Clone)]
pub struct ClientObserve {
    pub observer: Arc<Observer>,
    /// The protocol log's connector-id (the send connector's name).
    pub connector: String,
    /// ProtocolLoggingLevel Verbose.
    pub verbose: bool,
}

type Stream = crate::smtp::stream::MaybeTls<TcpStream, tokio_rustls::client::TlsStream<TcpStream>>;

/// What the server offered in its EHLO reply.
#[derive(Debug, Default, Clone)]
pub struct Extensions {
    pub starttls: bool,
    pub auth_plain: bool,
    pub auth_login: bool,
    pub pipelining: bool,
    pub eight_bit: bool,
    pub smtputf8: bool,
    pub size: Option<u64>,
    /// RFC 3461: the server takes NOTIFY, ORCPT, RET and ENVID.
    pub dsn: bool,
    /// RFC 8689: the server takes REQUIRETLS.
    pub requiretls: bool,
}

/// What MAIL and RCPT carry besides the addresses: RFC 3461's requests
/// (passed on to a server that offers DSN) and RFC 8689's REQUIRETLS.
#[derive(Debug, Clone, Default)]
pub struct MailOptions {
    /// MAIL FROM … REQUIRETLS; the caller has checked that the connection
    /// may carry it (`validated`, and the server offers it).
    pub require_tls: bool,
    /// `FULL` or `HDRS`.
    pub ret: Option<String>,
    /// Decoded; sent as xtext.
    pub env_id: Option<String>,
    /// Per recipient, in order: NOTIFY bits (0: none given) and ORCPT.
    pub recipients: Vec<(u64, Option<String>)>,
}

/// RFC 3461 §4: xtext, `+HH` for `+`, `=` and what is not printable ASCII.
pub fn xtext(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if (33..=126).contains(&b) && b != b'+' && b != b'=' {
            out.push(b as char);
        } else {
            out.push_str(&format!("+{b:02X}"));
        }
    }
    out
}

impl MailOptions {
    /// ` NOTIFY=… ORCPT=…` for recipient `i`.
    fn rcpt_params(&self, i: usize) -> String {
        let Some((notify, orcpt)) = self.recipients.get(i) else {
            return String::new();
        };
        let mut out = String::new();
        if *notify != 0 {
            let words: Vec<&str> = if notify & smtp_proto::RCPT_NOTIFY_NEVER != 0 {
                vec!["NEVER"]
            } else {
                [
                    (smtp_proto::RCPT_NOTIFY_SUCCESS, "SUCCESS"),
                    (smtp_proto::RCPT_NOTIFY_FAILURE, "FAILURE"),
                    (smtp_proto::RCPT_NOTIFY_DELAY, "DELAY"),
                ]
                .iter()
                .filter(|(bit, _)| notify & bit != 0)
                .map(|(_, w)| *w)
                .collect()
            };
            out.push_str(&format!(" NOTIFY={}", words.join(",")));
        }
        if let Some(o) = orcpt {
            out.push_str(&format!(" ORCPT=rfc822;{}", xtext(o)));
        }
        out
    }
}

/// Per-recipient outcome of one transaction.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// For each recipient in order: the reply that settled it.
    pub recipients: Vec<Reply>,
}

pub struct SmtpClient {
    stream: Stream,
    buf: Vec<u8>,
    pub remote: SocketAddr,
    pub extensions: Extensions,
    /// "version=TLSv1_3 cipher=…" once TLS is up.
    pub tls: Option<String>,
    /// TLS is up and the certificate was validated for the next hop's
    /// configured name (chain and name): what REQUIRETLS needs.
    pub validated: bool,
    timeout: Duration,
    lmtp: bool,
    /// This connection's id in the send protocol log.
    pub session: String,
    plog: Option<SessionLog>,
    observer: Option<Arc<Observer>>,
}

impl SmtpClient {
    /// Whether this is final delivery (LMTP into a mailbox store).
    pub fn is_lmtp(&self) -> bool {
        self.lmtp
    }
}

impl Drop for SmtpClient {
    fn drop(&mut self) {
        if let Some(l) = &mut self.plog {
            l.disconnect();
        }
    }
}

impl SmtpClient {
    /// Connects, reads the banner, greets, and does STARTTLS and AUTH as `cfg` says.
    pub async fn open(
        addr: SocketAddr,
        server_name: &str,
        cfg: &ClientConfig,
    ) -> Result<SmtpClient, ClientError> {
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()
        } else {
            TcpSocket::new_v6()
        }
        .map_err(|e| ClientError::transient(format!("421 4.4.0 socket: {e}")))?;
        if let Some(ip) = cfg.source_ip.filter(|ip| ip.is_ipv4() == addr.is_ipv4()) {
            socket.bind(SocketAddr::new(ip, 0)).map_err(|e| {
                ClientError::transient(format!("421 4.4.0 cannot bind source address {ip}: {e}"))
            })?;
        }
        let stream = tokio::time::timeout(cfg.timeout, socket.connect(addr))
            .await
            .map_err(|_| {
                ClientError::transient(format!("421 4.4.1 connection to {addr} timed out"))
            })?
            .map_err(|e| {
                ClientError::transient(format!("421 4.4.1 connection to {addr} failed: {e}"))
            })?;
        let _ = stream.set_nodelay(true);
        let session = format!("{:016X}", rand::random::<u64>());
        let plog = cfg.observe.as_ref().filter(|o| o.verbose).map(|o| {
            let mut l = o.observer.protolog.session(
                Direction::Send,
                &o.connector,
                &session,
                stream.local_addr().ok(),
                addr,
            );
            l.connect();
            l
        });
        let mut c = SmtpClient {
            stream: Stream::Plain(stream),
            buf: vec![],
            remote: addr,
            extensions: Extensions::default(),
            tls: None,
            validated: false,
            timeout: cfg.timeout,
            lmtp: cfg.lmtp,
            session,
            plog,
            observer: cfg.observe.as_ref().map(|o| o.observer.clone()),
        };
        let banner = c.reply().await?;
        if banner.code != 220 {
            return Err(ClientError::from_reply("banner", banner));
        }
        c.hello(cfg).await?;
        if c.extensions.starttls && !matches!(cfg.tls, TlsPolicy::Ignore) {
            c.starttls(server_name, cfg).await?;
            c.hello(cfg).await?;
        } else if matches!(cfg.tls, TlsPolicy::Required(_)) {
            return Err(ClientError::transient(
                "451 5.7.3 STARTTLS is required to send mail",
            ));
        }
        if let Some((user, password)) = &cfg.auth {
            if cfg.auth_requires_tls && c.tls.is_none() {
                return Err(ClientError::transient(
                    "451 5.7.3 Require STARTTLS to do basic authentication",
                ));
            }
            c.authenticate(user, password).await?;
        }
        Ok(c)
    }

    async fn hello(&mut self, cfg: &ClientConfig) -> Result<(), ClientError> {
        let verb = if cfg.lmtp {
            "LHLO"
        } else if cfg.force_helo {
            "HELO"
        } else {
            "EHLO"
        };
        let line = format!("{verb} {}", cfg.helo_name);
        self.send_line(&line, &line).await?;
        let (mut r, mut raw) = self.reply_raw().await?;
        if verb == "EHLO" && r.code >= 500 {
            let line = format!("HELO {}", cfg.helo_name);
            self.send_line(&line, &line).await?;
            (r, raw) = self.reply_raw().await?;
        }
        if r.code != 250 {
            return Err(ClientError::from_reply(verb, r));
        }
        self.extensions = Extensions::from_ehlo(&raw);
        Ok(())
    }

    async fn starttls(&mut self, server_name: &str, cfg: &ClientConfig) -> Result<(), ClientError> {
        let r = self.command("STARTTLS").await?;
        if r.code != 220 {
            return match cfg.tls {
                TlsPolicy::Required(_) => Err(ClientError::transient(format!(
                    "451 5.7.3 STARTTLS is required to send mail ({r})"
                ))),
                _ => Err(ClientError::from_reply("STARTTLS", r)),
            };
        }
        let config = tls::client_config(&cfg.tls)
            .map_err(|e| ClientError::transient(format!("454 4.7.5 {e}")))?;
        let name = rustls::pki_types::ServerName::try_from(server_name.to_string())
            .unwrap_or_else(|_| rustls::pki_types::ServerName::IpAddress(self.remote.ip().into()));
        let Stream::Plain(plain) = std::mem::replace(&mut self.stream, Stream::Closed) else {
            return Err(ClientError::transient(
                "421 4.4.0 STARTTLS on a closed connection",
            ));
        };
        let connected = tokio::time::timeout(
            self.timeout,
            tokio_rustls::TlsConnector::from(config).connect(name, plain),
        )
        .await
        .map_err(|_| ClientError::transient("421 4.4.1 TLS handshake timed out"))
        .and_then(|r| {
            r.map_err(|e| {
                ClientError::transient(format!(
                    "421 4.7.5 TLS negotiation with {} failed: {e}",
                    self.remote
                ))
            })
        });
        if let Some(o) = &self.observer {
            o.metrics.tls(false, connected.is_ok());
        }
        let connected = match connected {
            Ok(c) => c,
            Err(e) => {
                if let Some(l) = &mut self.plog {
                    l.info(&e.message, "");
                }
                return Err(e);
            }
        };
        let (_, state) = connected.get_ref();
        self.validated = matches!(
            cfg.tls,
            TlsPolicy::Required(Verify::ChainAndName(_) | Verify::Dane(_))
        );
        self.tls = Some(format!(
            "version={} cipher={}",
            state
                .protocol_version()
                .map(|v| format!("{v:?}"))
                .unwrap_or_default(),
            state
                .negotiated_cipher_suite()
                .map(|c| format!("{:?}", c.suite()))
                .unwrap_or_default()
        ));
        if let Some(l) = &mut self.plog {
            l.info(
                &format!(
                    "TLS negotiation succeeded: {}",
                    self.tls.as_deref().unwrap_or_default()
                ),
                "",
            );
        }
        self.stream = Stream::Tls(Box::new(connected));
        self.buf.clear();
        Ok(())
    }

    async fn authenticate(&mut self, user: &str, password: &str) -> Result<(), ClientError> {
        let r = if self.extensions.auth_plain {
            let token = STANDARD.encode(format!("\0{user}\0{password}"));
            self.command(&format!("AUTH PLAIN {token}")).await?
        } else if self.extensions.auth_login {
            let r = self.command("AUTH LOGIN").await?;
            if r.code != 334 {
                return Err(ClientError::from_reply("AUTH LOGIN", r));
            }
            let r = self.secret_command(&STANDARD.encode(user)).await?;
            if r.code != 334 {
                return Err(ClientError::from_reply("AUTH LOGIN", r));
            }
            self.secret_command(&STANDARD.encode(password)).await?
        } else {
            return Err(ClientError::transient(
                "451 5.7.3 Require basic authentication (the server offers no AUTH PLAIN or LOGIN)",
            ));
        };
        if r.code != 235 {
            // A rejected login is the connector's problem, not the message's:
            // keep the queue in Retry rather than bouncing mail.
            return Err(ClientError {
                permanent: false,
                message: format!("AUTH: {r}"),
                reply: Some(r),
            });
        }
        Ok(())
    }

    /// One transaction. A permanent refusal of a recipient settles only that
    /// recipient; a failure at MAIL or DATA settles them all.
    pub async fn send(
        &mut self,
        from: &Address,
        recipients: &[Address],
        body: Content<'_>,
        dsn: &MailOptions,
    ) -> Result<Delivery, ClientError> {
        let mut mail = format!("MAIL FROM:{}", from.path());
        // Without DSN at the far end the requests stop here (the engine
        // then sends the "relayed" notices SUCCESS asks for).
        let dsn = if self.extensions.dsn {
            dsn.clone()
        } else {
            MailOptions {
                require_tls: dsn.require_tls,
                ..MailOptions::default()
            }
        };
        if let Some(max) = self.extensions.size {
            if body.len() > max {
                let r = Reply {
                    code: 552,
                    text: format!(
                        "5.3.4 Message size {} exceeds the remote limit {max}",
                        body.len()
                    ),
                };
                return Ok(Delivery {
                    recipients: vec![r; recipients.len()],
                });
            }
            mail.push_str(&format!(" SIZE={}", body.len()));
        }
        if self.extensions.eight_bit && !body.is_ascii() {
            mail.push_str(" BODY=8BITMIME");
        }
        if self.extensions.smtputf8
            && (!from.as_str().is_ascii() || recipients.iter().any(|r| !r.as_str().is_ascii()))
        {
            mail.push_str(" SMTPUTF8");
        }
        if dsn.require_tls {
            mail.push_str(" REQUIRETLS");
        }
        if let Some(ret) = &dsn.ret {
            mail.push_str(&format!(" RET={ret}"));
        }
        if let Some(id) = &dsn.env_id {
            mail.push_str(&format!(" ENVID={}", xtext(id)));
        }
        if self.extensions.pipelining && !self.lmtp {
            return self.send_pipelined(&mail, recipients, body, &dsn).await;
        }
        let r = self.command(&mail).await?;
        if r.code != 250 {
            return Ok(Delivery {
                recipients: vec![r; recipients.len()],
            });
        }
        let mut results: Vec<Option<Reply>> = Vec::with_capacity(recipients.len());
        for (i, rcpt) in recipients.iter().enumerate() {
            let r = self
                .command(&format!("RCPT TO:{}{}", rcpt.path(), dsn.rcpt_params(i)))
                .await?;
            results.push(if r.code == 250 || r.code == 251 {
                None
            } else {
                Some(r)
            });
        }
        if results.iter().all(Option::is_some) {
            let _ = self.command("RSET").await;
            return Ok(Delivery {
                recipients: results.into_iter().map(Option::unwrap).collect(),
            });
        }
        let r = self.command("DATA").await?;
        if r.code != 354 {
            return Ok(Delivery {
                recipients: results
                    .into_iter()
                    .map(|x| x.unwrap_or_else(|| r.clone()))
                    .collect(),
            });
        }
        self.write_content(body).await?;
        if self.lmtp {
            // RFC 2033: one reply per accepted recipient.
            let mut out = vec![];
            for x in results {
                out.push(match x {
                    Some(refused) => refused,
                    None => self.reply().await?,
                });
            }
            return Ok(Delivery { recipients: out });
        }
        let end = self.reply().await?;
        Ok(Delivery {
            recipients: results
                .into_iter()
                .map(|x| x.unwrap_or_else(|| end.clone()))
                .collect(),
        })
    }

    /// RFC 2920: MAIL, every RCPT and DATA in one write, then their replies.
    async fn send_pipelined(
        &mut self,
        mail: &str,
        recipients: &[Address],
        body: Content<'_>,
        dsn: &MailOptions,
    ) -> Result<Delivery, ClientError> {
        let mut batch = format!("{mail}\r\n");
        for (i, rcpt) in recipients.iter().enumerate() {
            batch.push_str(&format!(
                "RCPT TO:{}{}\r\n",
                rcpt.path(),
                dsn.rcpt_params(i)
            ));
        }
        batch.push_str("DATA\r\n");
        if let Some(l) = &mut self.plog {
            for line in batch.lines() {
                l.sent(line);
            }
        }
        self.write(batch.as_bytes()).await?;
        let mail_reply = self.reply().await?;
        let mut results: Vec<Option<Reply>> = Vec::with_capacity(recipients.len());
        for _ in recipients {
            let r = self.reply().await?;
            results.push(if r.code == 250 || r.code == 251 {
                None
            } else {
                Some(r)
            });
        }
        let data_reply = self.reply().await?;
        if mail_reply.code != 250 {
            if data_reply.code == 354 {
                self.write(b".\r\n").await?;
                let _ = self.reply().await?;
            }
            let _ = self.command("RSET").await;
            return Ok(Delivery {
                recipients: vec![mail_reply; recipients.len()],
            });
        }
        if data_reply.code != 354 {
            // Every recipient refused (so the server refuses DATA), or DATA itself refused.
            let _ = self.command("RSET").await;
            return Ok(Delivery {
                recipients: results
                    .into_iter()
                    .map(|x| x.unwrap_or_else(|| data_reply.clone()))
                    .collect(),
            });
        }
        if results.iter().all(Option::is_some) {
            // DATA accepted with no recipient: end it empty, then reset.
            self.write(b".\r\n").await?;
            let _ = self.reply().await?;
            let _ = self.command("RSET").await;
            return Ok(Delivery {
                recipients: results.into_iter().map(Option::unwrap).collect(),
            });
        }
        self.write_content(body).await?;
        let end = self.reply().await?;
        Ok(Delivery {
            recipients: results
                .into_iter()
                .map(|x| x.unwrap_or_else(|| end.clone()))
                .collect(),
        })
    }

    /// Address verification (a callout): `MAIL FROM:<>`, `RCPT TO`, `RSET`.
    /// Gives the RCPT reply; nothing is sent. A refused MAIL is an error:
    /// it says nothing about the recipient.
    pub async fn verify(&mut self, recipient: &Address) -> Result<Reply, ClientError> {
        let mail = self.command("MAIL FROM:<>").await?;
        if !mail.is_positive() {
            return Err(ClientError::from_reply("MAIL FROM:<>", mail));
        }
        let rcpt = self
            .command(&format!("RCPT TO:{}", recipient.path()))
            .await?;
        let _ = self.command("RSET").await;
        Ok(rcpt)
    }

    pub async fn rset(&mut self) -> Result<(), ClientError> {
        self.command("RSET").await.map(|_| ())
    }

    /// Whether a plain connection kept open has heard nothing since its
    /// last reply: no byte waiting and no end of stream (a server that
    /// timed the session out sends 421 or closes). A look at the socket,
    /// no round trip: a kept connection so is reused without RSET. A TLS
    /// connection is never called quiet (rustls may hold what the server
    /// said), so it is checked with RSET.
    pub fn quiet(&self) -> bool {
        use crate::smtp::stream::MaybeTls;
        let MaybeTls::Plain(tcp) = &self.stream else {
            return false;
        };
        if !self.buf.is_empty() {
            return false;
        }
        let mut byte = [std::mem::MaybeUninit::<u8>::uninit(); 1];
        // The socket is non-blocking: WouldBlock is silence.
        matches!(socket2::SockRef::from(tcp).peek(&mut byte),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
    }

    /// Whether the server still answers: RSET and a 2xx reply, within 10 s
    /// (a connection kept open between transactions is checked so).
    pub async fn rset_positive(&mut self) -> bool {
        let reset = tokio::time::timeout(Duration::from_secs(10), self.command("RSET"));
        matches!(reset.await, Ok(Ok(reply)) if reply.is_positive())
    }

    pub async fn quit(mut self) {
        let _ = self.command("QUIT").await;
        let _ = self.stream.shutdown().await;
    }

    /// DATA's content, dot-stuffed and ended with `.`: at once from memory,
    /// or a chunk at a time from the queue (never whole in memory).
    async fn write_content(&mut self, body: Content<'_>) -> Result<(), ClientError> {
        let streamed = match body {
            Content::Bytes(b) => return self.write(&dot_stuff(b)).await,
            Content::Stream(s) => s,
        };
        let mut stuffer = DotStuffer::default();
        let mut out = Vec::with_capacity(streamed.prefix.len() + 2 * STREAM_CHUNK);
        stuffer.push(&streamed.prefix, &mut out);
        let mut sent = streamed.prefix.len() as u64;
        let mut chunks = (streamed.open)();
        while let Some(chunk) = chunks.recv().await {
            let chunk = chunk.map_err(|e| {
                ClientError::transient(format!("451 4.3.0 reading the message from the queue: {e}"))
            })?;
            sent += chunk.len() as u64;
            stuffer.push(&chunk, &mut out);
            self.write(&out).await?;
            out.clear();
        }
        if sent != streamed.len {
            // Never end a DATA with less than the message: the connection
            // is dropped and the message tried again.
            return Err(ClientError::transient(format!(
                "451 4.3.0 the message read from the queue is {sent} bytes, not {}",
                streamed.len
            )));
        }
        stuffer.finish(&mut out);
        self.write(&out).await
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        let io = async {
            self.stream.write_all(bytes).await?;
            self.stream.flush().await
        };
        tokio::time::timeout(self.timeout, io)
            .await
            .map_err(|_| {
                ClientError::transient("421 4.4.2 timed out writing to the remote server")
            })?
            .map_err(|e| {
                ClientError::transient(format!("421 4.4.2 connection to {} lost: {e}", self.remote))
            })
    }

    async fn command(&mut self, line: &str) -> Result<Reply, ClientError> {
        let logged = mask_command(line);
        self.command_logged_as(line, &logged).await
    }

    /// A command line that is a credential: logged as `****`.
    async fn secret_command(&mut self, line: &str) -> Result<Reply, ClientError> {
        self.command_logged_as(line, "****").await
    }

    async fn command_logged_as(&mut self, line: &str, logged: &str) -> Result<Reply, ClientError> {
        self.send_line(line, logged).await?;
        self.reply().await
    }

    /// Writes one command line (`logged` is what the protocol log shows).
    async fn send_line(&mut self, line: &str, logged: &str) -> Result<(), ClientError> {
        if let Some(l) = &mut self.plog {
            l.sent(logged);
        }
        self.write(format!("{line}\r\n").as_bytes()).await
    }
}

/// DATA transparency (RFC 5321 §4.5.2) and the end marker. The body is
/// CRLF-normalised already (the receiver made sure of it).
pub fn dot_stuff(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + body.len() / 64 + 5);
    let mut stuffer = DotStuffer::default();
    stuffer.push(body, &mut out);
    stuffer.finish(&mut out);
    out
}

/// Dot-stuffing (RFC 5321 §4.5.2) of a body that comes in pieces: the same
/// bytes as `dot_stuff` of the whole, wherever the pieces are cut.
#[derive(Debug)]
pub struct DotStuffer {
    line_start: bool,
    /// The last two bytes seen (the end must be CRLF before the dot).
    last: [u8; 2],
    seen: u64,
}

impl Default for DotStuffer {
    fn default() -> Self {
        DotStuffer {
            line_start: true,
            last: [0; 2],
            seen: 0,
        }
    }
}

impl DotStuffer {
    pub fn push(&mut self, piece: &[u8], out: &mut Vec<u8>) {
        let Some(&end) = piece.last() else {
            return;
        };
        out.reserve(piece.len() + 8);
        // Line by line (memchr finds each LF), a line copied at once.
        let mut rest = piece;
        while !rest.is_empty() {
            if self.line_start && rest[0] == b'.' {
                out.push(b'.');
            }
            match memchr::memchr(b'\n', rest) {
                Some(i) => {
                    out.extend_from_slice(&rest[..=i]);
                    rest = &rest[i + 1..];
                    self.line_start = true;
                }
                None => {
                    out.extend_from_slice(rest);
                    rest = &[];
                    self.line_start = false;
                }
            }
        }
        self.last = match piece.len() {
            1 => [self.last[1], end],
            n => [piece[n - 2], end],
        };
        self.seen += piece.len() as u64;
    }

    pub fn finish(self, out: &mut Vec<u8>) {
        if self.seen > 0 && (self.seen < 2 || self.last != *b"\r\n") {
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b".\r\n");
    }
}

/// The chunk a streamed body is read and written in.
pub const STREAM_CHUNK: usize = 256 * 1024;

/// A body sent from the queue a chunk at a time.
pub struct StreamedBody {
    /// Bytes sent before the stored body (a header added on the way out).
    pub prefix: Vec<u8>,
    /// The whole length: the prefix and the stored body.
    pub len: u64,
    /// Whether every byte is 7-bit (else BODY=8BITMIME where offered).
    pub ascii: bool,
    /// Starts reading the stored body; called once per transaction.
    pub open: Box<dyn Fn() -> tokio::sync::mpsc::Receiver<std::io::Result<Vec<u8>>> + Send + Sync>,
}

/// What a transaction's DATA carries.
#[derive(Clone, Copy)]
pub enum Content<'a> {
    Bytes(&'a [u8]),
    Stream(&'a StreamedBody),
}

impl Content<'_> {
    pub fn len(&self) -> u64 {
        match self {
            Content::Bytes(b) => b.len() as u64,
            Content::Stream(s) => s.len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn is_ascii(&self) -> bool {
        match self {
            Content::Bytes(b) => b.is_ascii(),
            Content::Stream(s) => s.ascii,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_stuffing() {
        assert_eq!(dot_stuff(b".a\r\nb\r\n.\r\n"), b"..a\r\nb\r\n..\r\n.\r\n");
        assert_eq!(dot_stuff(b"no newline"), b"no newline\r\n.\r\n");
        assert_eq!(dot_stuff(b""), b".\r\n");
        assert_eq!(dot_stuff(b"\n"), b"\n\r\n.\r\n");
    }

    /// Pieces cut anywhere (between CR and LF, before a dot) give the same
    /// bytes as the whole.
    #[test]
    fn dot_stuffing_in_pieces_matches_the_whole() {
        let bodies: [&[u8]; 6] = [
            b".a\r\nb\r\n.\r\n..x\r\n",
            b"no newline",
            b"",
            b"\r\n.\r\n.",
            b"ends\r",
            b"x\r\n",
        ];
        for body in bodies {
            for cut in 0..=body.len() {
                for cut2 in cut..=body.len() {
                    let mut s = DotStuffer::default();
                    let mut out = vec![];
                    s.push(&body[..cut], &mut out);
                    s.push(&body[cut..cut2], &mut out);
                    s.push(&body[cut2..], &mut out);
                    s.finish(&mut out);
                    assert_eq!(
                        out,
                        dot_stuff_reference(body),
                        "{body:?} cut at {cut}, {cut2}"
                    );
                }
            }
        }
    }

    /// The rule as RFC 5321 states it, on the whole body at once.
    fn dot_stuff_reference(body: &[u8]) -> Vec<u8> {
        let mut out = vec![];
        let mut line_start = true;
        for &b in body {
            if line_start && b == b'.' {
                out.push(b'.');
            }
            out.push(b);
            line_start = b == b'\n';
        }
        if !body.is_empty() && !body.ends_with(b"\r\n") {
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b".\r\n");
        out
    }

    #[test]
    fn dsn_parameters_in_xtext() {
        assert_eq!(xtext("ENV+42=x y"), "ENV+2B42+3Dx+20y");
        assert_eq!(xtext("Bob@A.test"), "Bob@A.test");
        let d = MailOptions {
            require_tls: false,
            ret: Some("HDRS".into()),
            env_id: None,
            recipients: vec![
                (
                    smtp_proto::RCPT_NOTIFY_SUCCESS | smtp_proto::RCPT_NOTIFY_FAILURE,
                    Some("Bob+1@A.test".into()),
                ),
                (smtp_proto::RCPT_NOTIFY_NEVER, None),
                (0, None),
            ],
        };
        assert_eq!(
            d.rcpt_params(0),
            " NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;Bob+2B1@A.test"
        );
        assert_eq!(d.rcpt_params(1), " NOTIFY=NEVER");
        assert_eq!(d.rcpt_params(2), "");
        assert_eq!(d.rcpt_params(3), "");
    }
}
