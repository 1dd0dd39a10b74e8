//! Next-hop resolution: the hosts to try for a delivery queue, in order,
//! with their addresses — the MX hosts of the recipient domain for DNS
//! routing, the connector's smart hosts otherwise, or a mailbox domain's
//! mail store. The router decides the queue; this says where it leads.

use std::net::{IpAddr, SocketAddr};

use rand::seq::SliceRandom;

use super::dns::{Dns, DnsError};
use crate::config::Snapshot;
use crate::model::{Host, SendConnector};

/// A host to connect to, by name, with its addresses in the order to try.
#[derive(Debug, Clone)]
pub struct Target {
    pub name: String,
    pub addresses: Vec<IpAddr>,
}

fn servers(list: &[crate::model::transport_settings::DnsServer]) -> Vec<SocketAddr> {
    list.iter().map(|s| s.0).collect()
}

/// The DNS servers a DNS-routed connector looks the recipient domain up
/// with: the external ones when it asks for them and they are set.
pub fn lookup_servers(snap: &Snapshot, c: &SendConnector) -> Vec<SocketAddr> {
    let ts = &snap.transport.spec;
    if c.use_external_dns_servers_enabled && !ts.external_dns_servers.is_empty() {
        servers(&ts.external_dns_servers)
    } else {
        servers(&ts.internal_dns_servers)
    }
}

/// The hosts a send connector's queue for `next_hop` leads to, in order.
pub async fn connector_targets(
    dns: &Dns,
    snap: &Snapshot,
    c: &SendConnector,
    next_hop: &str,
) -> Result<Vec<Target>, DnsError> {
    let internal = servers(&snap.transport.spec.internal_dns_servers);
    let mut out = vec![];
    if c.dns_routing_enabled {
        let servers = &lookup_servers(snap, c);
        let mx = dns.mail_exchangers(servers, next_hop).await?;
        let mut last = None;
        for host in mx {
            match dns.addresses(servers, &host).await {
                Ok(addresses) => out.push(Target {
                    name: host,
                    addresses,
                }),
                Err(e) => last = Some(e),
            }
        }
        if out.is_empty() {
            return Err(match last {
                Some(DnsError::Permanent(e)) => DnsError::Permanent(e),
                Some(DnsError::Transient(e)) => DnsError::Transient(e),
                None => DnsError::Transient(format!("451 4.4.0 no mail exchanger for {next_hop}")),
            });
        }
    } else {
        // Smart hosts are load-balanced: start with a random one, fail over in turn.
        let mut hosts = c.smart_hosts.clone();
        if !hosts.is_empty() {
            let start = rand::random::<usize>() % hosts.len();
            hosts.rotate_left(start);
        }
        let mut last = None;
        for h in hosts {
            match h {
                Host::Ip(ip) => out.push(Target {
                    name: ip.to_string(),
                    addresses: vec![ip],
                }),
                Host::Name(n) => match dns.addresses(&internal, n.as_str()).await {
                    Ok(mut addresses) => {
                        addresses.shuffle(&mut rand::thread_rng());
                        out.push(Target {
                            name: n.to_string(),
                            addresses,
                        })
                    }
                    Err(e) => last = Some(e),
                },
            }
        }
        if out.is_empty() {
            return Err(match last {
                // A smart host's name that does not resolve is the
                // admin's to fix; the queue retries, so the code is 4xx.
                Some(e) => e.into_transient(),
                None => DnsError::Transient("451 4.4.0 no smart host".into()),
            });
        }
    }
    Ok(out)
}

/// The mail store of a mailbox domain (LMTP or SMTP): one host, resolved
/// with the internal DNS servers. A name that does not resolve is a
/// transient failure: the queue retries.
pub async fn mail_store_target(dns: &Dns, snap: &Snapshot, host: &Host) -> Result<Target, String> {
    let addresses = match host {
        Host::Ip(ip) => vec![*ip],
        Host::Name(n) => {
            let internal = servers(&snap.transport.spec.internal_dns_servers);
            dns.addresses(&internal, n.as_str())
                .await
                .map_err(|e| match e.into_transient() {
                    DnsError::Transient(e) | DnsError::Permanent(e) => e,
                })?
        }
    };
    Ok(Target {
        name: host.to_string(),
        addresses,
    })
}
