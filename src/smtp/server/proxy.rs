//! The PROXY protocol (HAProxy's, v1 text and v2 binary): a load balancer
//! in front of Ferry begins each connection with a header naming the
//! client it accepted. Ferry reads it only from the balancers a receive
//! connector lists (`proxyProtocolFrom`), exactly (not a byte of SMTP
//! beyond it), and parses it with the `ppp` crate. The original client
//! then stands in for the TCP peer everywhere after.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::config::Snapshot;

/// The v2 header's first 12 bytes.
pub const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";

/// How long a balancer has to send its header.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// A v1 header is at most 107 bytes (the specification's bound).
const V1_MAX: usize = 107;
/// A v2 header's addresses and TLVs, at most (ours; the field allows 64 KiB).
const V2_MAX_PAYLOAD: usize = 4096;

/// Whether `peer` is a load balancer that a connector serving `local`
/// lists: then its connection begins with a PROXY header.
pub fn from_balancer(snap: &Snapshot, local: SocketAddr, peer: IpAddr) -> bool {
    snap.receive_connectors.iter().any(|c| {
        c.spec.enabled
            && !c.spec.proxy_protocol_from.is_empty()
            && c.spec
                .bindings_on(&snap.ctx.server_name)
                .iter()
                .any(|b| b.covers(local))
            && c.spec
                .proxy_protocol_from
                .iter()
                .any(|r| r.contains_ip(peer))
    })
}

/// Reads one PROXY header, v1 or v2, and nothing after it. `Ok(Some)`: the
/// client it names; `Ok(None)`: a header with no client (v1 `UNKNOWN`, v2
/// `LOCAL`, as a balancer's own health check sends), so the peer stays the
/// client.
pub async fn read_header<S: AsyncRead + Unpin>(
    stream: &mut S,
) -> Result<Option<SocketAddr>, String> {
    // 15 bytes are in every header: "PROXY UNKNOWN\r\n" is the shortest.
    let mut buf = vec![0u8; 15];
    stream
        .read_exact(&mut buf)
        .await
        .map_err(|e| format!("no PROXY header: {e}"))?;
    if buf.starts_with(V2_SIGNATURE) {
        buf.resize(16, 0);
        stream
            .read_exact(&mut buf[15..])
            .await
            .map_err(|e| format!("a truncated PROXY v2 header: {e}"))?;
        let len = u16::from_be_bytes([buf[14], buf[15]]) as usize;
        if len > V2_MAX_PAYLOAD {
            return Err(format!("a PROXY v2 header of {len} bytes is too long"));
        }
        buf.resize(16 + len, 0);
        stream
            .read_exact(&mut buf[16..])
            .await
            .map_err(|e| format!("a truncated PROXY v2 header: {e}"))?;
        let h = ppp::v2::Header::try_from(buf.as_slice())
            .map_err(|e| format!("a malformed PROXY v2 header: {e}"))?;
        if h.command == ppp::v2::Command::Local {
            return Ok(None);
        }
        return match h.addresses {
            ppp::v2::Addresses::IPv4(a) => Ok(Some(SocketAddr::new(
                a.source_address.into(),
                a.source_port,
            ))),
            ppp::v2::Addresses::IPv6(a) => Ok(Some(SocketAddr::new(
                a.source_address.into(),
                a.source_port,
            ))),
            ppp::v2::Addresses::Unspecified => Ok(None),
            ppp::v2::Addresses::Unix(_) => Err("a PROXY v2 header for a UNIX socket".into()),
        };
    }
    if !buf.starts_with(b"PROXY ") {
        return Err("the connection does not begin with a PROXY header".into());
    }
    // v1: up to CRLF, a byte at a time so nothing after it is read.
    while !buf.ends_with(b"\r\n") {
        if buf.len() >= V1_MAX {
            return Err("a PROXY v1 header longer than 107 bytes".into());
        }
        let b = stream
            .read_u8()
            .await
            .map_err(|e| format!("a truncated PROXY v1 header: {e}"))?;
        buf.push(b);
    }
    let text = std::str::from_utf8(&buf).map_err(|_| "a PROXY v1 header that is not text")?;
    let h =
        ppp::v1::Header::try_from(text).map_err(|e| format!("a malformed PROXY v1 header: {e}"))?;
    match h.addresses {
        ppp::v1::Addresses::Tcp4(a) => Ok(Some(SocketAddr::new(
            a.source_address.into(),
            a.source_port,
        ))),
        ppp::v1::Addresses::Tcp6(a) => Ok(Some(SocketAddr::new(
            a.source_address.into(),
            a.source_port,
        ))),
        ppp::v1::Addresses::Unknown => Ok(None),
    }
}

/// Whether a command line (and the input after it) is a PROXY header sent
/// to Ferry as if it were SMTP: a v1 line, or the start of v2's signature
/// (its first CRLF ends an empty line).
pub fn looks_like_header(line: &[u8], rest: &[u8]) -> bool {
    line.starts_with(b"PROXY ") || (line.is_empty() && rest.starts_with(&V2_SIGNATURE[2..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn read(bytes: &[u8]) -> (Result<Option<SocketAddr>, String>, Vec<u8>) {
        let mut r: &[u8] = bytes;
        let out = read_header(&mut r).await;
        (out, r.to_vec())
    }

    #[tokio::test]
    async fn v1_and_v2_headers_name_the_client_and_nothing_after_them_is_read() {
        let (a, rest) = read(b"PROXY TCP4 127.0.80.5 127.0.0.1 40000 25\r\nEHLO x\r\n").await;
        assert_eq!(a, Ok(Some("127.0.80.5:40000".parse().unwrap())));
        assert_eq!(rest, b"EHLO x\r\n");
        let (a, _) = read(b"PROXY TCP6 2001:db8::5 2001:db8::1 40000 25\r\n").await;
        assert_eq!(a, Ok(Some("[2001:db8::5]:40000".parse().unwrap())));
        let (a, rest) = read(b"PROXY UNKNOWN\r\nQUIT\r\n").await;
        assert_eq!(a, Ok(None));
        assert_eq!(rest, b"QUIT\r\n");

        let client: SocketAddr = "127.0.80.5:40001".parse().unwrap();
        let server: SocketAddr = "127.0.0.1:25".parse().unwrap();
        let mut v2 = ppp::v2::Builder::with_addresses(
            ppp::v2::Version::Two | ppp::v2::Command::Proxy,
            ppp::v2::Protocol::Stream,
            (client, server),
        )
        .write_tlv(ppp::v2::Type::NoOp, b"pad")
        .unwrap()
        .build()
        .unwrap();
        v2.extend_from_slice(b"EHLO y\r\n");
        let (a, rest) = read(&v2).await;
        assert_eq!(a, Ok(Some(client)));
        assert_eq!(rest, b"EHLO y\r\n");
        let local = ppp::v2::Builder::with_addresses(
            ppp::v2::Version::Two | ppp::v2::Command::Local,
            ppp::v2::Protocol::Stream,
            (client, server),
        )
        .build()
        .unwrap();
        assert_eq!(read(&local).await.0, Ok(None));
    }

    #[tokio::test]
    async fn anything_else_is_refused() {
        for bad in [
            &b"EHLO client.example\r\n"[..],
            b"PROXY TCP4 1.2.3.4\r\n",
            b"PROXY TCP4 999.0.0.1 127.0.0.1 1 2\r\n",
            b"PROXY TCP4 127.0.0.1 127.0.0.1 1 2 and much more text after it, past the limit of 107 bytes for a v1 line\r\n",
            b"\r\n\r\n\0\r\nQUIT\n\x21\x11\xff\xff",
            b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x0c\x7f\x00",
            b"PROXY",
        ] {
            assert!(read(bad).await.0.is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn a_header_sent_as_smtp_is_recognised() {
        assert!(looks_like_header(b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2", b""));
        assert!(looks_like_header(b"", b"\r\n\0\r\nQUIT\n\x21"));
        assert!(!looks_like_header(b"", b"EHLO x\r\n"));
        assert!(!looks_like_header(b"EHLO proxy.example", b""));
    }
}
