//! Receive-connector selection at accept (spec §2.1): the binding must cover
//! the local address and port; the most specific remote range containing the
//! client wins; an exact-address binding beats a wildcard one; disabled
//! connectors are skipped.

use std::net::SocketAddr;

use crate::config::Snapshot;
use crate::model::ReceiveConnector;
use crate::store::Stored;

pub fn select(
    snap: &Snapshot,
    local: SocketAddr,
    remote: SocketAddr,
) -> Option<&Stored<ReceiveConnector>> {
    let remote_ip = match remote.ip() {
        std::net::IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(std::net::IpAddr::V4)
            .unwrap_or(remote.ip()),
        ip => ip,
    };
    snap.receive_connectors
        .iter()
        .filter(|c| c.spec.enabled)
        .filter_map(|c| {
            let binding = c
                .spec
                .bindings
                .iter()
                .filter(|b| b.covers(local))
                .min_by_key(|b| b.is_wildcard())?;
            let span = c
                .spec
                .remote_ip_ranges
                .iter()
                .filter(|r| r.contains_ip(remote_ip))
                .map(|r| r.span())
                .min()?;
            Some((
                (
                    span,
                    binding.is_wildcard(),
                    c.spec.name.to_ascii_lowercase(),
                ),
                c,
            ))
        })
        .min_by(|a, b| a.0.cmp(&b.0))
        .map(|(_, c)| c)
}
