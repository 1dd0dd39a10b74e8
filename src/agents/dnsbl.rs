//! DNS lists (DNSBLs and DNS allow lists, RFC 5782) for Connection
//! Filtering: one A query per provider through hickory, bounded by the
//! provider's timeout so a dead list never stalls a session, and answers
//! cached for their TTL (a name that does not exist for a minute).

use std::net::Ipv4Addr;
use std::time::Duration;

use super::cache::TtlCache;

use crate::config::Snapshot;
use crate::routing::dns::Dns;

#[derive(Default)]
pub struct Dnsbl {
    dns: Dns,
    cache: TtlCache<Vec<Ipv4Addr>>,
}

/// What a list said about a name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The A records (none: not listed).
    Records(Vec<Ipv4Addr>),
    /// No answer within the timeout, or a DNS failure: treated as not listed.
    Failed(String),
}

impl Dnsbl {
    /// Asks a list about `name` (already reversed under its zone).
    pub async fn ask(&self, snap: &Snapshot, name: &str, timeout: Duration) -> Answer {
        if let Some(ips) = self.cache.get(name) {
            return Answer::Records(ips);
        }
        let ts = &snap.transport.spec;
        let servers = ts.external_lookup_servers();
        match tokio::time::timeout(timeout, self.dns.list_entry(&servers, name)).await {
            Ok(Ok((ips, ttl))) => {
                self.cache.put(name.to_string(), ips.clone(), ttl);
                Answer::Records(ips)
            }
            Ok(Err(e)) => Answer::Failed(e),
            Err(_) => Answer::Failed(format!(
                "no answer about {name} within {} ms",
                timeout.as_millis()
            )),
        }
    }
}
