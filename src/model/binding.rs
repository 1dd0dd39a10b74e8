//! A receive connector binding: the local address and port it listens on.
//! `0.0.0.0` and `[::]` stand for every local address of their family.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Binding(SocketAddr);

impl Binding {
    pub fn new(addr: SocketAddr) -> Self {
        Binding(addr)
    }

    pub fn socket_addr(&self) -> SocketAddr {
        self.0
    }

    pub fn port(&self) -> u16 {
        self.0.port()
    }

    pub fn is_wildcard(&self) -> bool {
        self.0.ip().is_unspecified()
    }

    /// Whether a connection that arrived on `local` is covered (spec rule 1).
    pub fn covers(&self, local: SocketAddr) -> bool {
        let local_ip = match local.ip() {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(local.ip()),
            ip => ip,
        };
        self.0.port() == local.port()
            && (self.0.ip() == local_ip
                || (self.is_wildcard() && self.0.ip().is_ipv4() == local_ip.is_ipv4()))
    }
}

impl FromStr for Binding {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let addr: SocketAddr = s.trim().parse().map_err(|_| {
            format!("'{s}' is not a binding: write IPv4:port (0.0.0.0:25) or [IPv6]:port ([::]:25)")
        })?;
        if addr.port() == 0 {
            return Err(format!(
                "'{s}' has port 0; a binding needs a port from 1 to 65535"
            ));
        }
        if addr.ip().is_multicast() {
            return Err(format!("'{s}' is a multicast address"));
        }
        Ok(Binding(addr))
    }
}

impl fmt::Display for Binding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

string_type!(
    Binding,
    "A local address and port: `IPv4:port` or `[IPv6]:port`; `0.0.0.0` and `[::]` mean every local address.",
    "0.0.0.0:25"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_covers_every_local_ipv4_address_on_its_port() {
        let b: Binding = "0.0.0.0:25".parse().unwrap();
        assert!(b.covers("127.0.0.2:25".parse().unwrap()));
        assert!(!b.covers("127.0.0.2:26".parse().unwrap()));
        assert!(!b.covers("[::1]:25".parse().unwrap()));
        let exact: Binding = "127.0.0.3:25".parse().unwrap();
        assert!(!exact.covers("127.0.0.2:25".parse().unwrap()));
        assert!(
            "[::]:25"
                .parse::<Binding>()
                .unwrap()
                .covers("[::1]:25".parse().unwrap())
        );
    }

    #[test]
    fn bad_bindings_are_rejected() {
        for bad in ["0.0.0.0", "0.0.0.0:0", "::1:25", "host:25", "224.0.0.1:25"] {
            assert!(bad.parse::<Binding>().is_err(), "{bad}");
        }
    }
}
