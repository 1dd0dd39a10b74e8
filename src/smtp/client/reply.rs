//! Reading the remote server's replies: framing and parsing through
//! smtp-proto's reply parser, the EHLO capabilities through its EHLO
//! parser, and the errors a connection or transaction ends with.

use smtp_proto::response::parser::ResponseReceiver;
use tokio::io::AsyncReadExt;

use super::{Extensions, SmtpClient};

/// A reply from the remote server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    pub text: String,
}

impl Reply {
    pub fn is_positive(&self) -> bool {
        (200..400).contains(&self.code)
    }
    pub fn is_permanent(&self) -> bool {
        self.code >= 500
    }
}

impl std::fmt::Display for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.code, self.text.replace('\n', " "))
    }
}

/// Why a connection or transaction could not go on.
#[derive(Debug, Clone)]
pub struct ClientError {
    pub permanent: bool,
    /// What to record as the queue's last error, e.g. `451 5.7.3 STARTTLS is
    /// required to send mail` or `421 4.4.1 connection refused`.
    pub message: String,
    /// The remote server's reply, when it gave one.
    pub reply: Option<Reply>,
}

impl ClientError {
    pub(super) fn transient(message: impl Into<String>) -> Self {
        ClientError {
            permanent: false,
            message: message.into(),
            reply: None,
        }
    }
    pub(super) fn from_reply(stage: &str, r: Reply) -> Self {
        ClientError {
            permanent: r.is_permanent(),
            message: format!("{stage}: {r}"),
            reply: Some(r),
        }
    }
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl SmtpClient {
    pub(super) async fn reply(&mut self) -> Result<Reply, ClientError> {
        Ok(self.reply_raw().await?.0)
    }

    /// Reads one reply, single or multi-line, through smtp-proto's reply
    /// parser; gives the raw lines too (the EHLO parser reads them). The
    /// text keeps every line as sent, for diagnostics and NDRs.
    pub(super) async fn reply_raw(&mut self) -> Result<(Reply, Vec<u8>), ClientError> {
        let mut receiver = ResponseReceiver::default();
        let mut raw = Vec::new();
        let mut lines: Vec<String> = vec![];
        loop {
            let bytes = self.read_line().await?;
            let line = String::from_utf8_lossy(&bytes)
                .trim_end_matches(['\r', '\n'])
                .to_string();
            let malformed = || {
                ClientError::transient(format!(
                    "421 4.4.2 malformed reply from {}: {line:?}",
                    self.remote
                ))
            };
            raw.extend_from_slice(&bytes);
            let parsed = receiver.parse(&mut bytes.iter());
            if let Some(l) = &mut self.plog {
                l.received(&line);
            }
            lines.push(line.get(4..).unwrap_or("").to_string());
            match parsed {
                Ok(r) if (200..600).contains(&r.code) => {
                    let reply = Reply {
                        code: r.code,
                        text: lines.join("\n"),
                    };
                    return Ok((reply, raw));
                }
                Err(smtp_proto::Error::NeedsMoreData { .. }) => {}
                Err(smtp_proto::Error::ResponseTooLong) => {
                    return Err(ClientError::transient(
                        "421 4.4.2 the remote server sent an overlong reply",
                    ));
                }
                _ => return Err(malformed()),
            }
        }
    }

    /// Reads one line (up to and with its LF) within the timeout.
    async fn read_line(&mut self) -> Result<Vec<u8>, ClientError> {
        loop {
            if let Some(p) = self.buf.iter().position(|&b| b == b'\n') {
                return Ok(self.buf.drain(..=p).collect());
            }
            if self.buf.len() > 64 * 1024 {
                return Err(ClientError::transient(
                    "421 4.4.2 the remote server sent an overlong reply",
                ));
            }
            let mut chunk = [0u8; 4096];
            let n = tokio::time::timeout(self.timeout, self.stream.read(&mut chunk))
                .await
                .map_err(|_| {
                    ClientError::transient(format!(
                        "421 4.4.2 timed out waiting for {}",
                        self.remote
                    ))
                })?
                .map_err(|e| {
                    ClientError::transient(format!(
                        "421 4.4.2 connection to {} lost: {e}",
                        self.remote
                    ))
                })?;
            if n == 0 {
                return Err(ClientError::transient(format!(
                    "421 4.4.2 {} closed the connection",
                    self.remote
                )));
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

impl Extensions {
    /// What a `250` EHLO reply offers, through smtp-proto's EHLO parser.
    /// A reply it cannot read offers nothing (and is logged): plain SMTP,
    /// which a connector that requires TLS then refuses.
    pub(super) fn from_ehlo(raw: &[u8]) -> Extensions {
        use smtp_proto::{
            AUTH_LOGIN, AUTH_PLAIN, EXT_8BIT_MIME, EXT_DSN, EXT_PIPELINING, EXT_REQUIRE_TLS,
            EXT_SIZE, EXT_SMTP_UTF8, EXT_START_TLS, EhloResponse,
        };
        let ehlo = match EhloResponse::parse(&mut raw.iter()) {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(error = ?e, reply = %String::from_utf8_lossy(raw).trim_end(), "unreadable EHLO reply; no extensions assumed");
                return Extensions::default();
            }
        };
        let has = |ext: u32| ehlo.capabilities & ext != 0;
        Extensions {
            starttls: has(EXT_START_TLS),
            auth_plain: ehlo.auth_mechanisms & AUTH_PLAIN != 0,
            auth_login: ehlo.auth_mechanisms & AUTH_LOGIN != 0,
            pipelining: has(EXT_PIPELINING),
            eight_bit: has(EXT_8BIT_MIME),
            smtputf8: has(EXT_SMTP_UTF8),
            dsn: has(EXT_DSN),
            requiretls: has(EXT_REQUIRE_TLS),
            size: (has(EXT_SIZE) && ehlo.size > 0).then_some(ehlo.size as u64),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extensions_come_from_the_ehlo_reply() {
        let ext = Extensions::from_ehlo(
            b"250-mx.fabrikam.test\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-VRFY\r\n\
              250-ETRN\r\n250-STARTTLS\r\n250-AUTH PLAIN LOGIN\r\n250-ENHANCEDSTATUSCODES\r\n\
              250-8BITMIME\r\n250-DSN\r\n250-SMTPUTF8\r\n250 CHUNKING\r\n",
        );
        assert!(ext.starttls && ext.pipelining && ext.eight_bit && ext.smtputf8);
        assert!(ext.auth_plain && ext.auth_login);
        assert_eq!(ext.size, Some(10_240_000));
        let bare = Extensions::from_ehlo(b"250 mx.fabrikam.test\r\n");
        assert!(!bare.starttls && !bare.auth_plain && bare.size.is_none());
        let login_only = Extensions::from_ehlo(b"250-x\r\n250 AUTH LOGIN\r\n");
        assert!(login_only.auth_login && !login_only.auth_plain);
    }
}
