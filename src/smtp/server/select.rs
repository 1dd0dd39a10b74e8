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
