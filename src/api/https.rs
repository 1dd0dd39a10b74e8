//! The API over HTTPS (`--api-tls`): a listener that completes each TLS
//! handshake on its own task (a slow client holds up no one) with the
//! certificate Ferry's store holds for the server FQDN, chosen afresh for
//! every connection — a certificate imported or renewed through the API is
//! served from the next connection on, without a restart.
//!
//! Automation may authenticate with a client certificate instead of a
//! bearer token (mutual TLS): a token can be bound to a certificate's
//! SHA-256 thumbprint, and while any is, clients are asked (never required)
//! for one. The handshake proves the client holds the certificate's key;
//! the thumbprint then names the token, as an SSH key names its user.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;

use super::access::Tokens;
use crate::config::ConfigService;
use crate::tls::server::TlsCache;

/// Who is at the other end of an API connection.
#[derive(Debug, Clone)]
pub struct ApiPeer {
    pub addr: SocketAddr,
    /// The SHA-256 (hex) of the client certificate presented over TLS.
    pub client_certificate: Option<String>,
}

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, TlsListener>>
    for ApiPeer
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, TlsListener>) -> Self {
        let client_certificate = stream
            .io()
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first())
            .map(|c| {
                use sha2::Digest;
                hex::encode(sha2::Sha256::digest(c.as_ref()))
            });
        ApiPeer {
            addr: *stream.remote_addr(),
            client_certificate,
        }
    }
}

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, TcpListener>>
    for ApiPeer
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, TcpListener>) -> Self {
        ApiPeer {
            addr: *stream.remote_addr(),
            client_certificate: None,
        }
    }
}

/// How long a client has to finish its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

pub struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl TlsListener {
    /// Starts accepting on `tcp`; stops when the listener is dropped.
    pub fn start(
        tcp: TcpListener,
        config: Arc<ConfigService>,
        tokens: Arc<Tokens>,
    ) -> std::io::Result<TlsListener> {
        let local = tcp.local_addr()?;
        let (tx, ready) = mpsc::channel(64);
        let cache = Arc::new(TlsCache::new(config.secrets.clone()));
        // Any certificate: it is a key, bound to a token by its thumbprint.
        let clients: Arc<dyn rustls::server::danger::ClientCertVerifier> = Arc::new(
            crate::tls::any::AcceptAny(Arc::new(rustls::crypto::ring::default_provider())),
        );
        tokio::spawn(async move {
            loop {
                let (stream, peer) = tokio::select! {
                    _ = tx.closed() => break,
                    r = tcp.accept() => match r {
                        Ok(x) => x,
                        Err(e) => {
                            // Out of descriptors and the like: wait, retry.
                            tracing::warn!(error = %e, "API accept failed");
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            continue;
                        }
                    },
                };
                let snap = config.snapshot();
                let ask = tokens.any_client_certificate().then(|| clients.clone());
                let Some(server) = cache.api_config(&snap, ask) else {
                    tracing::error!(fqdn = %snap.ctx.fqdn,
                        "no certificate with a private key to serve the API over HTTPS: import one, or restart without --api-tls on loopback");
                    continue;
                };
                let tx = tx.clone();
                tokio::spawn(async move {
                    let acceptor = tokio_rustls::TlsAcceptor::from(server);
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "API TLS handshake failed")
                        }
                        Err(_) => tracing::debug!(%peer, "API TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(TlsListener { ready, local })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(x) => x,
            // The accept task only ends once this listener is dropped.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}
