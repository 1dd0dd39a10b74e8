//! Receive-connector selection at accept (spec §2.1): the binding must cover
//! the local address and port; the most specific remote range containing the
//! client wins; an exact-address binding beats a wildcard one; disabled
//! connectors are skipped.

use std::net::{IpAddr, SocketAddr};

use crate::config::Snapshot;
use crate::model::ReceiveConnector;
use crate::model::binding::Binding;
use crate::model::ip_range::IpRange;
use crate::store::Stored;

/// What one connector makes of a connection.
#[derive(Debug, Clone, Copy)]
pub enum Verdict<'a> {
    Disabled,
    /// None of its bindings covers the local address and port.
    NoBinding,
    /// None of its remote ranges contains the client.
    NoRange,
    /// It could take the connection, by this binding and this range; the
    /// smallest range wins, then an exact binding, then the name.
    Candidate {
        binding: &'a Binding,
        range: &'a IpRange,
    },
}

impl Verdict<'_> {
    /// The order among candidates: smaller first.
    fn key(&self) -> Option<(u128, bool)> {
        match self {
            Verdict::Candidate { binding, range } => Some((range.span(), binding.is_wildcard())),
            _ => None,
        }
    }
}

/// An IPv4-mapped IPv6 client is the IPv4 address it is.
fn client_ip(remote: SocketAddr) -> IpAddr {
    match remote.ip() {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(remote.ip()),
        ip => ip,
    }
}

/// What `c` makes of a connection to `local` from `remote_ip`.
pub fn judge<'a>(
    c: &'a ReceiveConnector,
    server: &str,
    local: SocketAddr,
    remote_ip: IpAddr,
) -> Verdict<'a> {
    if !c.enabled {
        return Verdict::Disabled;
    }
    let Some(binding) = c
        .bindings_on(server)
        .iter()
        .filter(|b| b.covers(local))
        .min_by_key(|b| b.is_wildcard())
    else {
        return Verdict::NoBinding;
    };
    match c
        .remote_ip_ranges
        .iter()
        .filter(|r| r.contains_ip(remote_ip))
        .min_by_key(|r| r.span())
    {
        Some(range) => Verdict::Candidate { binding, range },
        None => Verdict::NoRange,
    }
}

/// The connector that takes a connection, if any.
pub fn select(
    snap: &Snapshot,
    local: SocketAddr,
    remote: SocketAddr,
) -> Option<&Stored<ReceiveConnector>> {
    explain(snap, local, remote)
        .selected
        .map(|i| &snap.receive_connectors[i])
}

/// Every connector's verdict on a connection, and the one selected (its
/// index in the snapshot): the engine's own choice, which `select` returns
/// and the explain endpoint shows.
pub struct Explanation<'a> {
    pub verdicts: Vec<(&'a Stored<ReceiveConnector>, Verdict<'a>)>,
    pub selected: Option<usize>,
}

pub fn explain(snap: &Snapshot, local: SocketAddr, remote: SocketAddr) -> Explanation<'_> {
    let ip = client_ip(remote);
    let verdicts: Vec<_> = snap
        .receive_connectors
        .iter()
        .map(|c| (c, judge(&c.spec, &snap.ctx.server_name, local, ip)))
        .collect();
    let selected = verdicts
        .iter()
        .enumerate()
        .filter_map(|(i, (c, v))| Some(((v.key()?, c.spec.name.to_ascii_lowercase()), i)))
        .min_by(|a, b| a.0.cmp(&b.0))
        .map(|(_, i)| i);
    Explanation { verdicts, selected }
}

/// Why `loser` lost to `winner`, both candidates.
pub fn why_lost(
    winner: (&ReceiveConnector, Verdict<'_>),
    loser: (&ReceiveConnector, Verdict<'_>),
) -> String {
    let (
        (
            w,
            Verdict::Candidate {
                binding: wb,
                range: wr,
            },
        ),
        (
            _,
            Verdict::Candidate {
                binding: lb,
                range: lr,
            },
        ),
    ) = (winner, loser)
    else {
        return String::new();
    };
    if lr.span() != wr.span() {
        format!(
            "'{}' has a smaller remote range containing the client: {wr} ({} addresses) against {lr} ({})",
            w.name,
            wr.span(),
            lr.span()
        )
    } else if lb.is_wildcard() != wb.is_wildcard() {
        format!(
            "'{}' binds the local address exactly ({wb}), which beats the wildcard binding {lb}",
            w.name
        )
    } else {
        format!(
            "'{}' ties on range ({wr}) and binding, and comes first by name",
            w.name
        )
    }
}

#[cfg(test)]
mod tests {
    //! Receive-connector selection (spec §2.1) as a pure function.
    use super::*;
    use crate::config::builder::SnapshotBuilder;
    use crate::model::Role;
    use serde_json::json;

    fn custom(name: &str, binding: &str, ranges: &[&str]) -> serde_json::Value {
        json!({"name": name, "usage": "Custom", "bindings": [binding], "remoteIpRanges": ranges})
    }

    fn pick<'a>(snap: &'a Snapshot, local: &str, remote: &str) -> Option<&'a str> {
        select(
            snap,
            local.parse().unwrap(),
            format!("{remote}:40000").parse().unwrap(),
        )
        .map(|c| c.spec.name.as_str())
    }

    #[test]
    fn the_smallest_containing_range_wins_and_exact_bindings_beat_wildcards() {
        let snap = SnapshotBuilder::new(Role::Edge)
            .with_receive_connector(custom(
                "Everyone",
                "0.0.0.0:25",
                &["0.0.0.0-255.255.255.255"],
            ))
            .with_receive_connector(custom("Partners", "0.0.0.0:25", &["10.1.0.0/16"]))
            .with_receive_connector(custom("One host", "0.0.0.0:25", &["10.1.2.3"]))
            .with_receive_connector(custom("Exact", "10.9.9.9:25", &["0.0.0.0-255.255.255.255"]))
            .build();
        assert_eq!(pick(&snap, "10.0.0.1:25", "10.1.2.3"), Some("One host"));
        assert_eq!(pick(&snap, "10.0.0.1:25", "10.1.2.4"), Some("Partners"));
        assert_eq!(pick(&snap, "10.0.0.1:25", "192.0.2.7"), Some("Everyone"));
        assert_eq!(
            pick(&snap, "10.9.9.9:25", "192.0.2.7"),
            Some("Exact"),
            "the exact binding beats 0.0.0.0"
        );
        assert_eq!(
            pick(&snap, "10.0.0.1:587", "192.0.2.7"),
            None,
            "no binding covers the port"
        );
        // An IPv4-mapped client is matched as the IPv4 address it is.
        assert_eq!(
            pick(&snap, "10.0.0.1:25", "[::ffff:10.1.2.3]"),
            Some("One host")
        );
    }

    #[test]
    fn disabled_connectors_are_skipped() {
        let snap = SnapshotBuilder::new(Role::Edge)
            .with_receive_connector(custom(
                "Everyone",
                "0.0.0.0:25",
                &["0.0.0.0-255.255.255.255"],
            ))
            .with_receive_connector(
                json!({"name": "Off", "usage": "Custom", "bindings": ["0.0.0.0:25"],
                "remoteIpRanges": ["10.1.2.3"], "enabled": false}),
            )
            .build();
        assert_eq!(pick(&snap, "10.0.0.1:25", "10.1.2.3"), Some("Everyone"));
    }
}
