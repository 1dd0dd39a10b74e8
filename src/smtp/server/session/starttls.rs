//! STARTTLS (RFC 3207): one upgrade per session, with the certificate chosen
//! by the connector's FQDN; everything the client said before is forgotten.

use tokio::io::{AsyncRead, AsyncWrite};

use super::{Conn, Next, Session};
use crate::model::{AuthMechanism, Principal};
use crate::smtp::replies;

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Session<S> {
    pub(super) async fn starttls(&mut self) -> std::io::Result<Next> {
        if self.tls.is_some() {
            return Ok(self.protocol_error(replies::TLS_ALREADY).await);
        }
        if !self.c().auth_mechanism.has(AuthMechanism::Tls) {
            return Ok(self.protocol_error(replies::UNRECOGNIZED).await);
        }
        let Some(config) = self.tls_config.clone() else {
            return Ok(self.reply(replies::TLS_UNAVAILABLE).await);
        };
        self.write(&replies::TLS_READY);
        self.flush().await?;
        // Plaintext pipelined after STARTTLS must not leak into the TLS
        // session (CVE-2011-0411).
        self.inbuf.clear();
        let Conn::Plain(plain) = std::mem::replace(&mut self.conn, Conn::Closed) else {
            return Ok(Next::Close);
        };
        let timeout = self.c().connection_inactivity_timeout.duration();
        let accepted = tokio::time::timeout(
            timeout,
            tokio_rustls::TlsAcceptor::from(config).accept(plain),
        )
        .await;
        let stream = match accepted {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                tracing::info!(error = %e, "TLS handshake failed");
                self.shared.observe.metrics.tls(true, false);
                if let Some(l) = &mut self.plog {
                    l.info(&format!("TLS negotiation failed: {e}"), "");
                }
                return Ok(Next::Close);
            }
            Err(_) => {
                self.shared.observe.metrics.tls(true, false);
                if let Some(l) = &mut self.plog {
                    l.info("TLS negotiation timed out", "");
                }
                return Ok(Next::Close);
            }
        };
        let (_, state) = stream.get_ref();
        let version = state
            .protocol_version()
            .map(|v| format!("{v:?}"))
            .unwrap_or_default();
        let cipher = state
            .negotiated_cipher_suite()
            .map(|c| format!("{:?}", c.suite()))
            .unwrap_or_default();
        self.tls = Some(format!("version={version} cipher={cipher}"));
        self.shared.observe.metrics.tls(true, true);
        if let Some(l) = &mut self.plog {
            l.info(
                &format!("TLS negotiation succeeded: {version} {cipher}"),
                "",
            );
        }
        self.conn = Conn::Tls(Box::new(stream));
        // RFC 3207 §4.2: discard all knowledge obtained from the client.
        self.helo = None;
        self.esmtp = false;
        self.tx = None;
        self.auth_addresses.clear();
        if self.auth_user.take().is_some() {
            self.principal = Principal::Anonymous;
            self.rights = self
                .c()
                .rights()
                .remove(&Principal::Anonymous)
                .unwrap_or_default();
        }
        Ok(Next::Continue)
    }
}
