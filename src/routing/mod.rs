//! Routing: the categorizer and send-connector selection (spec rules 14–17),
//! and DNS resolution of next hops (rule 18).

pub mod dns;
mod hop_key;
pub mod mta_sts;
pub mod next_hop;

pub use hop_key::{HopKey, UNREACHABLE};

use uuid::Uuid;

use crate::config::Snapshot;
use crate::model::accepted_domain::MailboxDelivery;
use crate::model::address_space::Space;
use crate::model::{AcceptedDomain, Domain, DomainType, Host, Role, SendConnector};
use crate::store::Stored;

/// Where a connector hands a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NextHop {
    /// MX of the recipient domain.
    Dns(Domain),
    /// The connector's smart hosts.
    SmartHosts(Vec<Host>),
}

/// The outcome of routing one recipient.
#[derive(Debug, Clone)]
pub enum Route {
    Mailbox {
        domain: String,
        target: MailboxDelivery,
    },
    Connector {
        id: Uuid,
        name: String,
        hop: NextHop,
    },
    /// No connector matches: held in the Unreachable queue, routed again on
    /// the next configuration change or resubmit (rule 17). The reason says
    /// why, so an admin never has to guess (spec §4).
    Unreachable { reason: String },
    /// Connectors match, but every one is too small for the message (rule 17: NDR).
    TooLarge,
}

/// A delivery queue's identity and how the queue viewer shows it (rule 19).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueKey {
    pub key: HopKey,
    pub delivery_type: &'static str,
    pub display: String,
    pub connector: Option<String>,
    /// Why recipients land here (the Unreachable queue only): written to
    /// the queue's and the recipients' last error.
    pub reason: Option<String>,
}

impl Route {
    pub fn queue_key(&self) -> Option<QueueKey> {
        match self {
            Route::Mailbox { domain, .. } => Some(QueueKey {
                key: HopKey::Mailbox {
                    domain: domain.clone(),
                },
                delivery_type: "MailboxDelivery",
                display: domain.clone(),
                connector: None,
                reason: None,
            }),
            Route::Connector { id, name, hop } => {
                let (t, display) = match hop {
                    NextHop::Dns(d) => ("DnsConnectorDelivery", d.to_string()),
                    NextHop::SmartHosts(h) => (
                        "SmartHostConnectorDelivery",
                        h.iter()
                            .map(|h| h.to_string())
                            .collect::<Vec<_>>()
                            .join(","),
                    ),
                };
                Some(QueueKey {
                    key: HopKey::Connector {
                        id: *id,
                        next_hop: display.clone(),
                    },
                    delivery_type: t,
                    display,
                    connector: Some(name.clone()),
                    reason: None,
                })
            }
            Route::Unreachable { reason } => Some(QueueKey {
                key: HopKey::Unreachable,
                delivery_type: "Unreachable",
                display: UNREACHABLE.into(),
                connector: None,
                reason: Some(reason.clone()),
            }),
            Route::TooLarge => None,
        }
    }
}

/// The accepted domain a recipient domain falls in: the most specific match.
pub fn accepted_domain<'a>(
    snap: &'a Snapshot,
    domain: &Domain,
) -> Option<&'a Stored<AcceptedDomain>> {
    snap.accepted_domains
        .iter()
        .filter(|a| a.spec.covers(domain))
        .max_by_key(|a| {
            (
                a.spec.domain_name.domain().labels(),
                !a.spec.domain_name.is_wildcard(),
            )
        })
}

/// How well a connector matches a domain: (labels matched, exact, -cost);
/// greater is better.
type Specificity = (usize, bool, i32);

fn connector_match(snap: &Snapshot, c: &SendConnector, domain: &Domain) -> Option<Specificity> {
    best_space(snap, c, domain).map(|(m, _)| m)
}

/// The connector's address space that matches `domain` best, and how well.
fn best_space<'a>(
    snap: &Snapshot,
    c: &'a SendConnector,
    domain: &Domain,
) -> Option<(Specificity, &'a crate::model::address_space::AddressSpace)> {
    c.address_spaces
        .iter()
        .filter_map(|a| {
            let spec = match &a.space {
                Space::AcceptedDomains => {
                    // `--` stands for the Authoritative and InternalRelay accepted domains (rule 16).
                    let ad = accepted_domain(snap, domain)?;
                    if !matches!(
                        ad.spec.domain_type,
                        DomainType::Authoritative | DomainType::InternalRelay
                    ) {
                        return None;
                    }
                    (
                        ad.spec.domain_name.domain().labels(),
                        !ad.spec.domain_name.is_wildcard(),
                    )
                }
                _ => a.specificity(domain)?,
            };
            Some(((spec.0, spec.1, -(a.cost as i32)), a))
        })
        .max_by_key(|(m, _)| *m)
}

/// Whether a connector's sourceTransportServers names this server, by its
/// short name or its FQDN, in any case: Exchange admins write either
/// (`-SourceTransportServers hub01.contoso.com`).
fn is_source_server(snap: &Snapshot, c: &SendConnector) -> bool {
    let fqdns = [
        snap.ctx.fqdn.to_string(),
        snap.transport.spec.server_fqdn.to_string(),
    ];
    c.source_transport_servers.iter().any(|s| {
        let s = s.trim_end_matches('.');
        s.eq_ignore_ascii_case(&snap.ctx.server_name)
            || fqdns
                .iter()
                .any(|f| s.eq_ignore_ascii_case(f.trim_end_matches('.')))
    })
}

/// The send connector a draining server hands every message to, if any.
pub fn transfer_connector(snap: &Snapshot) -> Option<&Stored<SendConnector>> {
    let d = &snap.drain.spec;
    let name = d.transfer_via.as_deref().filter(|_| d.draining)?;
    snap.send_connectors
        .iter()
        .find(|c| c.spec.enabled && c.spec.name.eq_ignore_ascii_case(name))
}

/// Routes one recipient domain for a message of `size` bytes.
pub fn route(snap: &Snapshot, domain: &Domain, size: u64) -> Route {
    // A server drained with transfer hands everything to the other server,
    // its own mailboxes' mail too: it is going away.
    if let Some(c) = transfer_connector(snap) {
        return Route::Connector {
            id: c.id,
            name: c.spec.name.clone(),
            hop: NextHop::SmartHosts(c.spec.smart_hosts.clone()),
        };
    }
    if let Some(ad) = accepted_domain(snap, domain)
        && snap.ctx.role == Role::Hub
        && ad.spec.domain_type == DomainType::Authoritative
        && let Some(target) = &ad.spec.mailbox_delivery
    {
        return Route::Mailbox {
            domain: ad.spec.domain_name.domain().to_string(),
            target: target.clone(),
        };
    }
    let covering: Vec<(&Stored<SendConnector>, Specificity)> = snap
        .send_connectors
        .iter()
        .filter(|c| c.spec.enabled)
        .filter_map(|c| connector_match(snap, &c.spec, domain).map(|m| (c, m)))
        .collect();
    let (matching, elsewhere): (Vec<_>, Vec<_>) = covering
        .into_iter()
        .partition(|(c, _)| snap.ctx.role == Role::Edge || is_source_server(snap, &c.spec));
    if matching.is_empty() {
        let reason = if elsewhere.is_empty() {
            format!("no enabled send connector has an address space that covers {domain}")
        } else {
            let names: Vec<String> = elsewhere
                .iter()
                .map(|(c, _)| {
                    format!(
                        "'{}' (sourceTransportServers {:?})",
                        c.spec.name, c.spec.source_transport_servers
                    )
                })
                .collect();
            format!(
                "send connector {} covers {domain} but does not list this server ({} or {}) as a source transport server",
                names.join(", "),
                snap.ctx.server_name,
                snap.transport.spec.server_fqdn
            )
        };
        return Route::Unreachable { reason };
    }
    let fitting = matching
        .into_iter()
        .filter(|(c, _)| c.spec.max_message_size.allows(size));
    let best = fitting.max_by(|(a, ma), (b, mb)| {
        ma.cmp(mb).then_with(|| {
            b.spec
                .name
                .to_ascii_lowercase()
                .cmp(&a.spec.name.to_ascii_lowercase())
        })
    });
    match best {
        None => Route::TooLarge,
        Some((c, _)) => Route::Connector {
            id: c.id,
            name: c.spec.name.clone(),
            hop: if c.spec.dns_routing_enabled {
                NextHop::Dns(domain.clone())
            } else {
                NextHop::SmartHosts(c.spec.smart_hosts.clone())
            },
        },
    }
}

/// Save-time lints of a send connector (shown as `warnings`): it carries
/// nothing from this server (its sourceTransportServers leave it out, on a
/// Hub), or another connector takes one of its address spaces (the same
/// space at a lower cost, or at the same cost and first by name).
pub fn send_connector_lints(snap: &Snapshot, s: &Stored<SendConnector>) -> Vec<String> {
    let c = &s.spec;
    let mut out = vec![];
    if !c.enabled {
        return out;
    }
    let in_scope = |c: &SendConnector| snap.ctx.role == Role::Edge || is_source_server(snap, c);
    if !in_scope(c) {
        out.push(format!(
            "this server ({} or {}) is not among its sourceTransportServers {:?}: it carries no mail from here",
            snap.ctx.server_name, snap.transport.spec.server_fqdn, c.source_transport_servers
        ));
        return out;
    }
    for a in &c.address_spaces {
        let before = |o: &SendConnector, b: &crate::model::address_space::AddressSpace| {
            b.cost < a.cost
                || (b.cost == a.cost && o.name.to_ascii_lowercase() < c.name.to_ascii_lowercase())
        };
        if let Some((o, b)) = snap
            .send_connectors
            .iter()
            .filter(|o| o.id != s.id && o.spec.enabled && in_scope(&o.spec))
            .find_map(|o| {
                o.spec
                    .address_spaces
                    .iter()
                    .find(|b| b.space == a.space && before(&o.spec, b))
                    .map(|b| (o, b))
            })
        {
            out.push(format!(
                "address space {a} is shadowed by '{}' ({b}): mail for it goes there",
                o.spec.name
            ));
        }
    }
    out
}

/// What one send connector makes of a recipient domain.
#[derive(Debug, Clone)]
pub struct ConnectorVerdict {
    pub id: Uuid,
    pub name: String,
    /// `Selected`, `Lost`, `Disabled`, `NoAddressSpace`, `NotASource`
    /// (sourceTransportServers leaves this server out) or `TooSmall`.
    pub verdict: &'static str,
    /// The address space that matched best, with its cost.
    pub address_space: Option<String>,
    pub reason: String,
}

/// Every step of routing one recipient domain, and the route itself, which
/// is `route`'s own answer (the engine's) with the verdict of each send
/// connector beside it.
#[derive(Debug, Clone)]
pub struct RouteExplanation {
    pub steps: Vec<String>,
    pub route: Route,
    pub connectors: Vec<ConnectorVerdict>,
}

pub fn explain(snap: &Snapshot, domain: &Domain, size: u64) -> RouteExplanation {
    let route = route(snap, domain, size);
    let mut steps = vec![];
    let ad = accepted_domain(snap, domain);
    match ad {
        Some(a) => steps.push(format!(
            "{domain} is in the accepted domain '{}' ({}, {:?})",
            a.spec.name, a.spec.domain_name, a.spec.domain_type
        )),
        None => steps.push(format!("{domain} is in no accepted domain: it is external")),
    }
    if let Route::Mailbox { target, .. } = &route {
        steps.push(format!(
            "this Hub holds its mailboxes: delivered to them ({})",
            match target {
                MailboxDelivery::Maildir => "Maildir".to_string(),
                other => format!("{other:?}"),
            }
        ));
        return RouteExplanation {
            steps,
            route,
            connectors: vec![],
        };
    }
    let selected = match &route {
        Route::Connector { id, .. } => Some(*id),
        _ => None,
    };
    let winner = selected.and_then(|id| {
        snap.send_connectors
            .iter()
            .find(|c| c.id == id)
            .and_then(|c| best_space(snap, &c.spec, domain).map(|(m, a)| (c, m, a)))
    });
    let mut connectors: Vec<ConnectorVerdict> = snap
        .send_connectors
        .iter()
        .map(|c| {
            let space = best_space(snap, &c.spec, domain);
            let (verdict, reason) = if !c.spec.enabled {
                ("Disabled", "is disabled".to_string())
            } else if space.is_none() {
                (
                    "NoAddressSpace",
                    format!("none of its address spaces covers {domain}"),
                )
            } else if snap.ctx.role == Role::Hub && !is_source_server(snap, &c.spec) {
                (
                    "NotASource",
                    format!(
                        "its sourceTransportServers {:?} do not name this server ({} or {})",
                        c.spec.source_transport_servers,
                        snap.ctx.server_name,
                        snap.transport.spec.server_fqdn
                    ),
                )
            } else if !c.spec.max_message_size.allows(size) {
                (
                    "TooSmall",
                    format!(
                        "its maxMessageSize {} is below the message's {size} bytes",
                        c.spec.max_message_size
                    ),
                )
            } else if Some(c.id) == selected {
                ("Selected", "carries the message".to_string())
            } else {
                let (m, _) = space.expect("matched");
                let reason = match winner {
                    Some((w, wm, wa)) if (wm.0, wm.1) != (m.0, m.1) => {
                        format!("'{}' has a more specific address space ({wa})", w.spec.name)
                    }
                    Some((w, wm, wa)) if wm.2 != m.2 => {
                        format!("'{}' has a lower cost ({wa})", w.spec.name)
                    }
                    Some((w, _, _)) => format!(
                        "'{}' ties on address space and cost, and comes first by name",
                        w.spec.name
                    ),
                    None => String::new(),
                };
                ("Lost", reason)
            };
            ConnectorVerdict {
                id: c.id,
                name: c.spec.name.clone(),
                verdict,
                address_space: space.map(|(_, a)| a.to_string()),
                reason,
            }
        })
        .collect();
    let rank = |v: &str| match v {
        "Selected" => 0,
        "Lost" => 1,
        "TooSmall" | "NotASource" => 2,
        "NoAddressSpace" => 3,
        _ => 4,
    };
    connectors.sort_by_key(|c| rank(c.verdict));
    match &route {
        Route::Connector { name, hop, .. } => steps.push(match hop {
            NextHop::Dns(d) => {
                format!("send connector '{name}' carries it: next hop the MX hosts of {d}")
            }
            NextHop::SmartHosts(h) => format!(
                "send connector '{name}' carries it: next hop its smart hosts {}",
                h.iter()
                    .map(|h| h.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }),
        Route::Unreachable { reason } => steps.push(format!("Unreachable: {reason}")),
        Route::TooLarge => steps.push(format!(
            "every send connector that covers {domain} is too small for {size} bytes: \
             the message is returned (NDR 5.3.4)"
        )),
        Route::Mailbox { .. } => {}
    }
    RouteExplanation {
        steps,
        route,
        connectors,
    }
}

#[cfg(test)]
mod tests {
    //! Send-connector selection (spec rules 15–17) as a pure function of a
    //! snapshot: no DNS, no peer.
    use super::*;
    use crate::config::builder::SnapshotBuilder;
    use serde_json::json;

    fn d(s: &str) -> Domain {
        s.parse().unwrap()
    }

    fn connector_name(r: &Route) -> Option<&str> {
        match r {
            Route::Connector { name, .. } => Some(name),
            _ => None,
        }
    }

    fn smart(name: &str, spaces: &[&str]) -> serde_json::Value {
        json!({"name": name, "addressSpaces": spaces, "smartHosts": ["10.0.0.1"]})
    }

    #[test]
    fn the_most_specific_address_space_wins_then_cost_then_name() {
        let snap = SnapshotBuilder::new(Role::Edge)
            .with_send_connector(smart("Everything", &["*"]))
            .with_send_connector(smart("Fabrikam subdomains", &["*.fabrikam.test"]))
            .with_send_connector(smart("Fabrikam", &["fabrikam.test;5"]))
            .with_send_connector(smart("Fabrikam cheap", &["fabrikam.test;1"]))
            .with_send_connector(smart("B tie", &["tie.test;1"]))
            .with_send_connector(smart("A tie", &["tie.test;1"]))
            .build();
        let r = |dom: &str| connector_name(&route(&snap, &d(dom), 1000)).map(str::to_string);
        assert_eq!(
            r("fabrikam.test").as_deref(),
            Some("Fabrikam cheap"),
            "exact beats wildcard; lower cost wins"
        );
        assert_eq!(
            r("mail.fabrikam.test").as_deref(),
            Some("Fabrikam subdomains")
        );
        assert_eq!(r("contoso.example").as_deref(), Some("Everything"));
        assert_eq!(
            r("tie.test").as_deref(),
            Some("A tie"),
            "then the name decides"
        );
    }

    #[test]
    fn too_small_connectors_are_skipped_and_none_left_means_too_large() {
        let snap = SnapshotBuilder::new(Role::Edge)
            .with_send_connector(json!({"name": "Small", "addressSpaces": ["fabrikam.test"],
                "smartHosts": ["10.0.0.1"], "maxMessageSize": 1_000_000}))
            .with_send_connector(json!({"name": "Big", "addressSpaces": ["*"],
                "smartHosts": ["10.0.0.2"], "maxMessageSize": 50_000_000}))
            .build();
        assert_eq!(
            connector_name(&route(&snap, &d("fabrikam.test"), 10)),
            Some("Small")
        );
        assert_eq!(
            connector_name(&route(&snap, &d("fabrikam.test"), 2_000_000)),
            Some("Big")
        );
        assert!(matches!(
            route(&snap, &d("fabrikam.test"), 60_000_000),
            Route::TooLarge
        ));
    }

    #[test]
    fn accepted_domains_space_stands_for_authoritative_and_internal_relay_domains() {
        let snap = SnapshotBuilder::new(Role::Edge)
            .with_accepted_domain(json!({"domainName": "contoso.test"}))
            .with_accepted_domain(
                json!({"domainName": "*.relay.test", "domainType": "InternalRelay"}),
            )
            .with_accepted_domain(
                json!({"domainName": "external.test", "domainType": "ExternalRelay"}),
            )
            .with_send_connector(json!({"name": "To Internal Org", "usage": "Internal",
                "addressSpaces": ["--"], "smartHosts": ["10.0.0.1"]}))
            .build();
        for dom in ["contoso.test", "a.relay.test"] {
            assert_eq!(
                connector_name(&route(&snap, &d(dom), 10)),
                Some("To Internal Org"),
                "{dom}"
            );
        }
        assert!(matches!(
            route(&snap, &d("external.test"), 10),
            Route::Unreachable { .. }
        ));
    }

    #[test]
    fn on_a_hub_only_connectors_naming_this_server_by_name_or_fqdn_are_in_scope() {
        let snap = SnapshotBuilder::new(Role::Hub)
            .with_send_connector(json!({"name": "By FQDN", "addressSpaces": ["fqdn.test"],
                "smartHosts": ["10.0.0.1"], "sourceTransportServers": ["HUB01.Contoso.Test."]}))
            .with_send_connector(json!({"name": "By name", "addressSpaces": ["name.test"],
                "smartHosts": ["10.0.0.1"], "sourceTransportServers": ["hub01"]}))
            .with_send_connector(json!({"name": "Other hub", "addressSpaces": ["other.test"],
                "smartHosts": ["10.0.0.1"], "sourceTransportServers": ["HUB02"]}))
            .build();
        assert_eq!(
            connector_name(&route(&snap, &d("fqdn.test"), 10)),
            Some("By FQDN")
        );
        assert_eq!(
            connector_name(&route(&snap, &d("name.test"), 10)),
            Some("By name")
        );
        match route(&snap, &d("other.test"), 10) {
            Route::Unreachable { reason } => {
                assert!(
                    reason.contains("'Other hub'") && reason.contains("HUB01"),
                    "{reason}"
                )
            }
            r => panic!("{r:?}"),
        }
        match route(&snap, &d("nowhere.test"), 10) {
            Route::Unreachable { reason } => {
                assert!(reason.contains("no enabled send connector"), "{reason}")
            }
            r => panic!("{r:?}"),
        }
    }

    #[test]
    fn dns_routing_or_smart_hosts_and_mailboxes_on_a_hub() {
        let snap = SnapshotBuilder::new(Role::Hub)
            .with_accepted_domain(
                json!({"domainName": "contoso.test", "mailboxDelivery": {"type": "Maildir"}}),
            )
            .with_send_connector(
                json!({"name": "Internet", "addressSpaces": ["*"], "dnsRoutingEnabled": true,
                "sourceTransportServers": ["HUB01"]}),
            )
            .build();
        assert!(matches!(
            route(&snap, &d("contoso.test"), 10),
            Route::Mailbox { .. }
        ));
        match route(&snap, &d("fabrikam.test"), 10) {
            Route::Connector {
                hop: NextHop::Dns(dom),
                ..
            } => assert_eq!(dom, d("fabrikam.test")),
            r => panic!("{r:?}"),
        }
        let disabled = SnapshotBuilder::new(Role::Edge)
            .with_send_connector(json!({"name": "Off", "addressSpaces": ["*"], "smartHosts": ["10.0.0.1"], "enabled": false}))
            .build();
        assert!(matches!(
            route(&disabled, &d("fabrikam.test"), 10),
            Route::Unreachable { .. }
        ));
    }
}
