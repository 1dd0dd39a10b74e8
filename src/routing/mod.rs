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
    /// the next configuration change or resubmit (rule 17). The reason says
    /// why, so an admin never has to guess (spec §4).
    Unreachable { reason: String },
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
    /// Why recipients land here (the Unreachable queue only): written to
    /// the queue's and the recipients' last error.
    pub reason: Option<String>,
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
                    key: format!("{id}|{display}"),
                    delivery_type: t,
                    display,
                    connector: Some(name.clone()),
                    reason: None,
                })
            }
            Route::Unreachable { reason } => Some(QueueKey {
                key: UNREACHABLE.into(),
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
