//! EHLO and HELO: greet, reset the transaction, and list the extensions
//! this connector offers in this state (spec rule 8).

use tokio::io::{AsyncRead, AsyncWrite};

use super::{Next, Session};
use crate::model::AuthMechanism as A;
use crate::model::receive_connector::SizeMode;
use crate::smtp::replies::{self, Reply};

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Session<S> {
    /// Whether AUTH may be offered and used now: BasicAuth on the connector,
    /// and TLS already up when BasicAuthRequireTLS says so.
    pub(super) fn auth_available(&self) -> bool {
        let m = &self.c().auth_mechanism;
        m.has(A::BasicAuth) && (self.tls.is_some() || !m.has(A::BasicAuthRequireTls))
    }

    pub(super) async fn ehlo(&mut self, host: String, extended: bool) -> Next {
        let host = host.trim().to_string();
        if host.is_empty() {
            return self.protocol_error(replies::SYNTAX).await;
        }
        // The name goes into the Received header and the logs: refused,
        // not cleaned, when it is not printable ASCII (RFC 5321 §4.1.1.1).
        if !host.bytes().all(|b| b.is_ascii_graphic()) || host.len() > 255 {
            return self.protocol_error(replies::BAD_HELO).await;
        }
        self.helo = Some(host);
        self.esmtp = extended;
        self.tx = None;
        let greeting = format!("{} Hello [{}]", self.fqdn(), self.remote.ip());
        if !extended {
            return self.reply(Reply::new(250, "", greeting)).await;
        }
        let c = self.c();
        let mut lines = vec![greeting];
        match c.size_enabled {
            SizeMode::Enabled => lines.push(format!("SIZE {}", c.max_message_size)),
            SizeMode::EnabledWithoutValue => lines.push("SIZE".into()),
            SizeMode::Disabled => {}
        }
        if c.pipelining_enabled {
            lines.push("PIPELINING".into());
        }
        if c.enhanced_status_codes_enabled {
            lines.push("ENHANCEDSTATUSCODES".into());
        }
        if self.tls.is_none() && self.tls_config.is_some() {
            lines.push("STARTTLS".into());
        }
        if self.auth_available() {
            lines.push("AUTH LOGIN PLAIN".into());
        }
        if c.eight_bit_mime_enabled {
            lines.push("8BITMIME".into());
        }
        if c.binary_mime_enabled && c.chunking_enabled {
            lines.push("BINARYMIME".into());
        }
        if c.chunking_enabled {
            lines.push("CHUNKING".into());
        }
        if c.dsn_enabled {
            lines.push("DSN".into());
        }
        // RFC 8689: only on a session under TLS.
        if self.tls.is_some() {
            lines.push("REQUIRETLS".into());
        }
        lines.push("SMTPUTF8".into());
        self.reply(Reply::new(250, "", lines.join("\n"))).await
    }
}
