//! A small SMTP client for tests: it connects from a chosen loopback address
//! (to play a distinct host), speaks line by line, and can do STARTTLS while
//! verifying the server's certificate against a given trust anchor.

use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

pub struct Client {
    stream: Box<dyn Io>,
    buf: Vec<u8>,
}

#[derive(Debug, Clone)]
pub struct Reply {
    pub code: u16,
    /// The lines' text after the code and separator, joined with '\n'.
    pub text: String,
}

impl Reply {
    /// The reply as the catalogue renders it (single-line replies).
    pub fn line(&self) -> String {
        format!("{} {}", self.code, self.text)
    }
}

impl Client {
    pub async fn connect(from: &str, to: &str) -> std::io::Result<Client> {
        let to: std::net::SocketAddr = to.parse().unwrap();
        let socket = TcpSocket::new_v4()?;
        socket.bind(format!("{from}:0").parse().unwrap())?;
        let stream: TcpStream = socket.connect(to).await?;
        Ok(Client {
            stream: Box::new(stream),
            buf: vec![],
        })
    }

    /// Connects and reads the banner.
    pub async fn open(from: &str, to: &str) -> (Client, Reply) {
        let mut c = Client::connect(from, to).await.expect("connects");
        let banner = c.reply().await.expect("banner");
        (c, banner)
    }

    pub async fn reply(&mut self) -> Option<Reply> {
        let mut lines = vec![];
        loop {
            let line = self.line().await?;
            let code: u16 = line.get(..3)?.parse().ok()?;
            let more = line.as_bytes().get(3) == Some(&b'-');
            lines.push(line.get(4..).unwrap_or("").to_string());
            if !more {
                return Some(Reply {
                    code,
                    text: lines.join("\n"),
                });
            }
        }
    }

    async fn line(&mut self) -> Option<String> {
        loop {
            if let Some(p) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line: Vec<u8> = self.buf.drain(..p + 2).collect();
                return Some(String::from_utf8_lossy(&line[..p]).into_owned());
            }
            let mut chunk = [0u8; 4096];
            let n = tokio::time::timeout(
                std::time::Duration::from_secs(20),
                self.stream.read(&mut chunk),
            )
            .await
            .ok()?
            .ok()?;
            if n == 0 {
                return None;
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    pub async fn send(&mut self, line: &str) {
        self.raw(format!("{line}\r\n").as_bytes()).await;
    }

    pub async fn raw(&mut self, bytes: &[u8]) {
        assert!(self.try_raw(bytes).await, "write failed");
    }

    pub async fn try_raw(&mut self, bytes: &[u8]) -> bool {
        self.stream.write_all(bytes).await.is_ok() && self.stream.flush().await.is_ok()
    }

    pub async fn cmd(&mut self, line: &str) -> Reply {
        self.try_cmd(line)
            .await
            .unwrap_or_else(|| panic!("no reply to {line}"))
    }

    pub async fn try_cmd(&mut self, line: &str) -> Option<Reply> {
        if !self.try_raw(format!("{line}\r\n").as_bytes()).await {
            return None;
        }
        self.reply().await
    }

    /// True when the server has closed the connection.
    pub async fn closed(&mut self) -> bool {
        self.line().await.is_none()
    }

    /// A whole transaction; returns the final reply.
    pub async fn send_mail(&mut self, from: &str, to: &[&str], body: &str) -> Reply {
        self.try_send_mail(from, to, body)
            .await
            .expect("the server answered the transaction")
    }

    /// A whole transaction, or None if the connection broke.
    pub async fn try_send_mail(&mut self, from: &str, to: &[&str], body: &str) -> Option<Reply> {
        let r = self.try_cmd(&format!("MAIL FROM:<{from}>")).await?;
        if r.code != 250 {
            return Some(r);
        }
        for t in to {
            let r = self.try_cmd(&format!("RCPT TO:<{t}>")).await?;
            if r.code != 250 {
                return Some(r);
            }
        }
        let r = self.try_cmd("DATA").await?;
        if r.code != 354 {
            return Some(r);
        }
        let mut data = body.replace("\r\n.", "\r\n..");
        if !data.ends_with("\r\n") {
            data.push_str("\r\n");
        }
        data.push_str(".\r\n");
        if !self.try_raw(data.as_bytes()).await {
            return None;
        }
        self.reply().await
    }

    /// STARTTLS, verifying the certificate for `server_name` against `ca_pem`.
    pub async fn starttls(self, server_name: &str, ca_pem: &str) -> Result<Client, String> {
        Ok(self.starttls_thumbprint(server_name, ca_pem).await?.0)
    }

    /// STARTTLS as [`Client::starttls`], with the SHA-256 thumbprint (hex)
    /// of the certificate the server presented.
    pub async fn starttls_thumbprint(
        mut self,
        server_name: &str,
        ca_pem: &str,
    ) -> Result<(Client, String), String> {
        let r = self.cmd("STARTTLS").await;
        if r.code != 220 {
            return Err(format!("STARTTLS refused: {}", r.line()));
        }
        let mut roots = rustls::RootCertStore::empty();
        for c in ferry::tls::certs::parse_chain(ca_pem).unwrap() {
            roots.add(c).unwrap();
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let name = rustls::pki_types::ServerName::try_from(server_name.to_string()).unwrap();
        let tls = connector
            .connect(name, self.stream)
            .await
            .map_err(|e| e.to_string())?;
        let thumbprint = tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first())
            .map(|c| {
                use sha2::Digest;
                hex::encode(sha2::Sha256::digest(c.as_ref()))
            })
            .unwrap_or_default();
        Ok((
            Client {
                stream: Box::new(tls),
                buf: vec![],
            },
            thumbprint,
        ))
    }
}
