//! DNS for delivery: MX with the implicit-MX fallback of RFC 5321 §5.1, null
//! MX (RFC 7505), and address lookups, through the transport settings' DNS
//! servers or the system resolver (which also reads /etc/hosts).

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::RData;
use rand::seq::SliceRandom;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A DNS failure, classified as spec rule 18 says.
#[derive(Debug, Clone)]
pub enum DnsError {
    /// NXDOMAIN or null MX: the domain cannot receive mail.
    Permanent(String),
    /// SERVFAIL, time-out, refused: try again later.
    Transient(String),
}

impl DnsError {
    /// The same failure as a transient one, its reply code made 4xx
    /// (`550 5.4.4 …` → `451 4.4.4 …`): for names that Ferry will retry,
    /// such as a smart host's, a queue in Retry never shows a 5xx code.
    pub fn into_transient(self) -> DnsError {
        match self {
            DnsError::Transient(e) => DnsError::Transient(e),
            DnsError::Permanent(e) => {
                let mut words = e.splitn(3, ' ');
                let (code, status, rest) = (words.next(), words.next(), words.next());
                DnsError::Transient(match (code, status, rest) {
                    (Some(c), Some(s), Some(r)) if c.starts_with('5') && s.starts_with("5.") => {
                        format!("451 4{} {r}", &s[1..])
                    }
                    _ => format!("451 4.4.0 {e}"),
                })
            }
        }
    }
}

#[derive(Default)]
pub struct Dns {
    resolvers: Mutex<HashMap<Vec<SocketAddr>, Arc<TokioResolver>>>,
    /// Validating resolvers (DNSSEC), by servers.
    validating: Mutex<HashMap<Vec<SocketAddr>, Arc<TokioResolver>>>,
}

/// DNSSEC's verdict on an answer (RFC 4035 §4.3), as DANE (RFC 7672 §2.2)
/// acts on it: only `Secure` answers count; `Bogus` never falls back to
/// anything weaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// Signed, and the chain of trust from the anchors holds.
    Secure,
    /// Provably unsigned (an insecure delegation).
    Insecure,
    /// Signed, and the signatures do not hold: an attack or a broken zone.
    Bogus,
    /// Neither could be shown.
    Indeterminate,
}

/// Orders verdicts from the weakest (Bogus) to the strongest (Secure).
fn weakest(s: &Security) -> u8 {
    match s {
        Security::Bogus => 0,
        Security::Indeterminate => 1,
        Security::Insecure => 2,
        Security::Secure => 3,
    }
}

/// A validated answer: the records of the type asked for and their verdict
/// (the weakest of them; `Insecure` for a proven absence without
/// signatures, `Secure` for one with them).
#[derive(Debug, Clone)]
pub struct Validated {
    pub records: Vec<hickory_resolver::proto::rr::Record>,
    pub security: Security,
}

impl Dns {
    pub(crate) fn resolver_for(
        &self,
        servers: &[SocketAddr],
    ) -> Result<Arc<TokioResolver>, DnsError> {
        self.resolver(servers)
    }

    fn resolver(&self, servers: &[SocketAddr]) -> Result<Arc<TokioResolver>, DnsError> {
        let mut map = self.resolvers.lock().expect("not poisoned");
        if let Some(r) = map.get(servers) {
            return Ok(r.clone());
        }
        let mut opts = ResolverOpts::default();
        opts.timeout = Duration::from_secs(3);
        opts.attempts = 2;
        // Delivery wants fresh answers; the cache would hide test and admin changes.
        opts.cache_size = 0;
        // Ask the servers one at a time, in the order configured, as the C
        // library does: the first (e.g. a container network's own DNS) knows
        // local names that a later, upstream one would answer NXDOMAIN for.
        opts.num_concurrent_reqs = 1;
        opts.server_ordering_strategy =
            hickory_resolver::config::ServerOrderingStrategy::UserProvidedOrder;
        let resolver = if servers.is_empty() {
            let mut b = hickory_resolver::Resolver::builder_tokio()
                .map_err(|e| DnsError::Transient(format!("451 4.4.0 DNS configuration: {e}")))?;
            *b.options_mut() = opts;
            b.build()
        } else {
            let ns = servers
                .iter()
                .map(|s| {
                    let mut udp = ConnectionConfig::udp();
                    udp.port = s.port();
                    let mut tcp = ConnectionConfig::tcp();
                    tcp.port = s.port();
                    let mut ns = NameServerConfig::udp_and_tcp(s.ip());
                    ns.connections = vec![udp, tcp];
                    ns
                })
                .collect();
            hickory_resolver::Resolver::builder_with_config(
                ResolverConfig::from_name_servers(ns),
                TokioRuntimeProvider::default(),
            )
            .with_options(opts)
            .build()
        }
        .map_err(|e| DnsError::Transient(format!("451 4.4.0 DNS configuration: {e}")))?;
        let r = Arc::new(resolver);
        map.insert(servers.to_vec(), r.clone());
        Ok(r)
    }

    /// A DNSSEC-validating resolver for `servers` with these trust anchors
    /// (the root's built into hickory when None).
    fn validating_resolver(
        &self,
        servers: &[SocketAddr],
        anchors: Option<Arc<hickory_resolver::proto::dnssec::TrustAnchors>>,
    ) -> Result<Arc<TokioResolver>, DnsError> {
        let mut map = self.validating.lock().expect("not poisoned");
        if let Some(r) = map.get(servers) {
            return Ok(r.clone());
        }
        let mut opts = ResolverOpts::default();
        opts.timeout = Duration::from_secs(3);
        opts.attempts = 2;
        opts.validate = true;
        let config = if servers.is_empty() {
            ResolverConfig::default()
        } else {
            ResolverConfig::from_name_servers(
                servers
                    .iter()
                    .map(|s| {
                        let mut udp = ConnectionConfig::udp();
                        udp.port = s.port();
                        let mut tcp = ConnectionConfig::tcp();
                        tcp.port = s.port();
                        let mut ns = NameServerConfig::udp_and_tcp(s.ip());
                        ns.connections = vec![udp, tcp];
                        ns
                    })
                    .collect(),
            )
        };
        let mut b = hickory_resolver::Resolver::builder_with_config(
            config,
            TokioRuntimeProvider::default(),
        )
        .with_options(opts);
        if let Some(a) = anchors {
            b = b.with_trust_anchor(a);
        }
        let r = Arc::new(
            b.build()
                .map_err(|e| DnsError::Transient(format!("451 4.4.0 DNS configuration: {e}")))?,
        );
        map.insert(servers.to_vec(), r.clone());
        Ok(r)
    }

    /// `name`'s records of `rtype`, validated by DNSSEC.
    pub async fn validated(
        &self,
        servers: &[SocketAddr],
        anchors: Option<Arc<hickory_resolver::proto::dnssec::TrustAnchors>>,
        name: &str,
        rtype: hickory_resolver::proto::rr::RecordType,
    ) -> Result<Validated, DnsError> {
        use hickory_resolver::proto::dnssec::Proof;
        let resolver = self.validating_resolver(servers, anchors)?;
        let fqdn = format!("{}.", name.trim_end_matches('.'));
        let verdict = |p: Proof| match p {
            Proof::Secure => Security::Secure,
            Proof::Insecure => Security::Insecure,
            Proof::Bogus => Security::Bogus,
            _ => Security::Indeterminate,
        };
        match resolver.lookup(fqdn.as_str(), rtype).await {
            Ok(lookup) => {
                let records: Vec<_> = lookup
                    .answers()
                    .iter()
                    .filter(|r| r.record_type() == rtype)
                    .cloned()
                    .collect();
                let security = records
                    .iter()
                    .map(|r| verdict(r.proof))
                    .min_by_key(weakest)
                    .unwrap_or(Security::Indeterminate);
                Ok(Validated { records, security })
            }
            Err(e) => {
                use hickory_resolver::net::{DnsError as Answer, NetError};
                // hickory reports a failed chain of trust, and a denial of
                // existence with the records that prove it, as errors:
                // here they are verdicts.
                let security = match &e {
                    NetError::Dns(Answer::DnssecBogus) => Some(Security::Bogus),
                    NetError::Dns(Answer::Nsec { proof, .. }) => Some(verdict(*proof)),
                    NetError::Dns(Answer::NoRecordsFound(no)) => Some(
                        no.authorities
                            .iter()
                            .flat_map(|a| a.iter())
                            .map(|r| verdict(r.proof))
                            .min_by_key(weakest)
                            .unwrap_or(Security::Indeterminate),
                    ),
                    _ => None,
                };
                match security {
                    Some(security) => Ok(Validated {
                        records: vec![],
                        security,
                    }),
                    None => Err(DnsError::Transient(format!("451 4.4.3 {name}: {e}"))),
                }
            }
        }
    }

    /// Mail exchangers of `domain` in the order to try: by preference,
    /// shuffled among equals; the domain itself when it has no MX.
    pub async fn mail_exchangers(
        &self,
        servers: &[SocketAddr],
        domain: &str,
    ) -> Result<Vec<String>, DnsError> {
        let resolver = self.resolver(servers)?;
        let fqdn = format!("{}.", domain.trim_end_matches('.'));
        match resolver.mx_lookup(fqdn.as_str()).await {
            Ok(lookup) => {
                let mut mx: Vec<(u16, String)> = lookup
                    .answers()
                    .iter()
                    .filter_map(|r| match &r.data {
                        RData::MX(m) => Some((
                            m.preference,
                            m.exchange.to_ascii().trim_end_matches('.').to_string(),
                        )),
                        _ => None,
                    })
                    .collect();
                if mx.is_empty() {
                    return Ok(vec![domain.to_string()]);
                }
                if mx.len() == 1 && mx[0].1.is_empty() {
                    return Err(DnsError::Permanent(format!(
                        "556 5.1.10 {domain} does not accept mail (null MX, RFC 7505)"
                    )));
                }
                let mut rng = rand::thread_rng();
                mx.shuffle(&mut rng);
                mx.sort_by_key(|(p, _)| *p);
                Ok(mx
                    .into_iter()
                    .map(|(_, h)| h)
                    .filter(|h| !h.is_empty())
                    .collect())
            }
            Err(e) if e.is_nx_domain() => Err(DnsError::Permanent(format!(
                "550 5.4.4 SMTPSEND.DNS.NonExistentDomain; nonexistent domain {domain}"
            ))),
            // NOERROR without MX records: the implicit MX is the domain itself.
            Err(e) if e.is_no_records_found() => Ok(vec![domain.to_string()]),
            Err(e) => Err(DnsError::Transient(format!(
                "451 4.4.0 DNS query failed for {domain}: {e}"
            ))),
        }
    }

    /// The TXT records at `name`, each one's strings joined; none when the
    /// name or the records do not exist.
    pub async fn txt(&self, servers: &[SocketAddr], name: &str) -> Result<Vec<String>, String> {
        let resolver = self.resolver(servers).map_err(|e| format!("{e:?}"))?;
        let fqdn = format!("{}.", name.trim_end_matches('.'));
        match resolver.txt_lookup(fqdn.as_str()).await {
            Ok(lookup) => Ok(lookup
                .answers()
                .iter()
                .filter_map(|r| match &r.data {
                    RData::TXT(t) => Some(
                        t.txt_data
                            .iter()
                            .map(|s| String::from_utf8_lossy(s).into_owned())
                            .collect::<String>(),
                    ),
                    _ => None,
                })
                .collect()),
            Err(e) if e.is_nx_domain() || e.is_no_records_found() => Ok(vec![]),
            Err(e) => Err(format!("the DNS query for {name} failed: {e}")),
        }
    }

    /// The A records of a DNS list entry (`4.3.2.1.zen.example.`) and how
    /// long they may be cached. A name that does not exist (not listed) is
    /// an empty answer, cached for a minute; other failures are errors.
    pub async fn list_entry(
        &self,
        servers: &[SocketAddr],
        name: &str,
    ) -> Result<(Vec<std::net::Ipv4Addr>, Duration), String> {
        let resolver = self.resolver(servers).map_err(|e| format!("{e:?}"))?;
        match resolver.ipv4_lookup(name).await {
            Ok(lookup) => {
                let ttl = lookup
                    .valid_until()
                    .saturating_duration_since(std::time::Instant::now());
                let ips = lookup
                    .answers()
                    .iter()
                    .filter_map(|r| match &r.data {
                        RData::A(a) => Some(a.0),
                        _ => None,
                    })
                    .collect();
                Ok((ips, ttl))
            }
            Err(e) if e.is_nx_domain() || e.is_no_records_found() => {
                Ok((vec![], Duration::from_secs(60)))
            }
            Err(e) => Err(format!("DNS query for {name} failed: {e}")),
        }
    }

    /// Addresses of a host (A and AAAA).
    pub async fn addresses(
        &self,
        servers: &[SocketAddr],
        host: &str,
    ) -> Result<Vec<IpAddr>, DnsError> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(vec![ip]);
        }
        let resolver = self.resolver(servers)?;
        // As given, so that a short name (a container's, say) gets the
        // resolver's search domains.
        match resolver.lookup_ip(host).await {
            Ok(l) => {
                let ips: Vec<IpAddr> = l.iter().collect();
                if ips.is_empty() {
                    Err(DnsError::Permanent(format!(
                        "550 5.4.4 {host} has no address"
                    )))
                } else {
                    Ok(ips)
                }
            }
            Err(e) if e.is_nx_domain() || e.is_no_records_found() => Err(DnsError::Permanent(
                format!("550 5.4.4 {host} has no address record"),
            )),
            Err(e) => Err(DnsError::Transient(format!(
                "451 4.4.0 DNS query failed for {host}: {e}"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permanent_failures_become_transient_with_4xx_codes() {
        let t = |e: DnsError| match e.into_transient() {
            DnsError::Transient(s) => s,
            DnsError::Permanent(_) => unreachable!(),
        };
        assert_eq!(
            t(DnsError::Permanent(
                "550 5.4.4 gone.test has no address record".into()
            )),
            "451 4.4.4 gone.test has no address record"
        );
        assert_eq!(t(DnsError::Transient("451 4.4.0 x".into())), "451 4.4.0 x");
        assert_eq!(t(DnsError::Permanent("odd".into())), "451 4.4.0 odd");
    }
}
