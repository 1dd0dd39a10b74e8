//! Routing: the categorizer and send-connector selection (spec rules 14–17),
//! and DNS resolution of next hops (rule 18).

pub mod dns;

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
    /// the next configuration change or resubmit (rule 17).
    Unreachable,
    /// Connectors match, but every one is too small for the message (rule 17: NDR).
    TooLarge,
}

/// A delivery queue's identity and how the queue viewer shows it (rule 19).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueKey {
    pub key: String,
    pub delivery_type: &'static str,
    pub display: String,
    pub connector: Option<String>,
}

pub const UNREACHABLE: &str = "Unreachable";

impl Route {
    pub fn queue_key(&self) -> Option<QueueKey> {
        match self {
            Route::Mailbox { domain, .. } => Some(QueueKey {
                key: format!("mailbox|{domain}"),
                delivery_type: "MailboxDelivery",
                display: domain.clone(),
                connector: None,
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
                    key: format!("{id}|{display}"),
                    delivery_type: t,
                    display,
                    connector: Some(name.clone()),
                })
            }
            Route::Unreachable => Some(QueueKey {
                key: UNREACHABLE.into(),
                delivery_type: "Unreachable",
                display: UNREACHABLE.into(),
                connector: None,
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
            Some((spec.0, spec.1, -(a.cost as i32)))
        })
        .max()
}

/// Routes one recipient domain for a message of `size` bytes.
pub fn route(snap: &Snapshot, domain: &Domain, size: u64) -> Route {
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
    let server = &snap.ctx.server_name;
    let matching: Vec<(&Stored<SendConnector>, Specificity)> = snap
        .send_connectors
        .iter()
        .filter(|c| c.spec.enabled)
        .filter(|c| {
            snap.ctx.role == Role::Edge
                || c.spec
                    .source_transport_servers
                    .iter()
                    .any(|s| s.eq_ignore_ascii_case(server))
        })
        .filter_map(|c| connector_match(snap, &c.spec, domain).map(|m| (c, m)))
        .collect();
    if matching.is_empty() {
        return Route::Unreachable;
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
