//! The Sender Id agent's checks, done by `mail-auth` on Ferry's hickory
//! resolver (the transport settings' external DNS servers): SPF on the
//! HELO and MAIL FROM identities, every DKIM signature, the ARC chain, and
//! DMARC; answers are kept in bounded caches until their TTL, and all the
//! lookups of one message together are bounded by `dnsTimeout` (past it,
//! every verdict still open is `temperror`). The result is one
//! `Authentication-Results` header (RFC 8601) and the facts the session
//! acts on (`smtp/server/session/content/`).

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use mail_auth::common::headers::HeaderWriter;
use mail_auth::dmarc::Policy;
use mail_auth::dmarc::verify::DmarcParameters;
use mail_auth::spf::verify::SpfParameters;
use mail_auth::{
    AuthenticatedMessage, AuthenticationResults, DkimResult, DmarcResult, MX, MessageAuthenticator,
    Parameters, RecordSet, ResolverCache, SpfResult, Txt,
};

use crate::routing::dns::Dns;
use crate::store::dmarc::{Published, Seen};

/// The most answers each cache keeps.
const MAX_CACHED: usize = 50_000;

/// A DNS answer cache for mail-auth: until the answer's TTL, bounded.
pub struct Cache<K, V>(Mutex<HashMap<K, (V, Instant)>>);

impl<K, V> Default for Cache<K, V> {
    fn default() -> Self {
        Cache(Mutex::new(HashMap::new()))
    }
}

impl<K: Hash + Eq, V: Clone> ResolverCache<K, V> for Cache<K, V> {
    fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.get(key)
            .filter(|(_, until)| *until > Instant::now())
            .map(|(v, _)| v.clone())
    }

    fn remove<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(key).map(|(v, _)| v)
    }

    fn insert(&self, key: K, value: V, valid_until: Instant) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_CACHED {
            map.clear();
        }
        map.insert(key, (value, valid_until));
    }
}

/// Parameters of a check with Ferry's caches.
type Cached<'x, P> = Parameters<
    'x,
    P,
    Cache<Box<str>, Txt>,
    Cache<Box<str>, RecordSet<MX>>,
    Cache<Box<str>, RecordSet<Ipv4Addr>>,
    Cache<Box<str>, RecordSet<Ipv6Addr>>,
    Cache<IpAddr, RecordSet<Box<str>>>,
>;

#[derive(Default)]
struct Caches {
    txt: Cache<Box<str>, Txt>,
    mx: Cache<Box<str>, RecordSet<MX>>,
    ipv4: Cache<Box<str>, RecordSet<Ipv4Addr>>,
    ipv6: Cache<Box<str>, RecordSet<Ipv6Addr>>,
    ptr: Cache<IpAddr, RecordSet<Box<str>>>,
}

impl Caches {
    fn with<'x, P>(&'x self, p: P) -> Cached<'x, P> {
        Parameters::new(p)
            .with_txt_cache(&self.txt)
            .with_mx_cache(&self.mx)
            .with_ipv4_cache(&self.ipv4)
            .with_ipv6_cache(&self.ipv6)
            .with_ptr_cache(&self.ptr)
    }
}

/// What the checks found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// The MAIL FROM identity's SPF result (the HELO's when MAIL FROM is
    /// `<>`).
    pub spf: SpfResult,
    pub spf_domain: String,
    /// `pass` of at least one signature; `fail` when every one failed;
    /// `none` without signatures.
    pub dkim: &'static str,
    pub arc: &'static str,
    /// The sealer of the newest ARC set, when the chain passed.
    pub arc_sealer: Option<String>,
    pub dmarc: &'static str,
    pub dmarc_policy: Policy,
    /// The RFC5322.From domain DMARC evaluated.
    pub from_domain: String,
    /// The `Authentication-Results:` header, with its CRLF.
    pub header: String,
    /// When the From domain's DMARC record asks for aggregate reports:
    /// the record and what this message showed (the disposition and its
    /// reasons are the session's to fill in).
    pub report: Option<(Published, Seen)>,
}

impl Verdict {
    /// `spf=pass dkim=pass dmarc=pass arc=none`, for tracking and logs.
    pub fn summary(&self) -> String {
        format!(
            "spf={} dkim={} dmarc={} arc={}",
            spf_word(self.spf),
            self.dkim,
            self.dmarc,
            self.arc
        )
    }
}

pub fn spf_word(r: SpfResult) -> &'static str {
    match r {
        SpfResult::Pass => "pass",
        SpfResult::Fail => "fail",
        SpfResult::SoftFail => "softfail",
        SpfResult::Neutral => "neutral",
        SpfResult::TempError => "temperror",
        SpfResult::PermError => "permerror",
        SpfResult::None => "none",
    }
}

fn dkim_word(r: &DkimResult) -> &'static str {
    match r {
        DkimResult::Pass => "pass",
        DkimResult::Neutral(_) => "neutral",
        DkimResult::Fail(_) => "fail",
        DkimResult::PermError(_) => "permerror",
        DkimResult::TempError(_) => "temperror",
        DkimResult::None => "none",
    }
}

fn dmarc_word(r: &DmarcResult) -> &'static str {
    match r {
        DmarcResult::Pass => "pass",
        DmarcResult::Fail(_) => "fail",
        DmarcResult::TempError(_) => "temperror",
        DmarcResult::PermError(_) => "permerror",
        DmarcResult::None => "none",
    }
}

/// The message's envelope, as the checks see it.
pub struct Envelope<'a> {
    pub ip: IpAddr,
    pub helo: &'a str,
    /// MAIL FROM, empty for `<>`.
    pub sender: &'a str,
}

/// The checks, shared by every session: resolvers and caches.
#[derive(Default)]
pub struct Verifier {
    dns: Dns,
    caches: Caches,
    /// The RFC 7208 walk's findings by domain and client address, for a
    /// minute: a sender's run of messages is walked once.
    strict: super::cache::TtlCache<Option<String>>,
}

impl Verifier {
    pub async fn verify(
        &self,
        servers: &[SocketAddr],
        authserv_id: &str,
        host_domain: &str,
        message: &[u8],
        env: &Envelope<'_>,
        timeout: Duration,
    ) -> Verdict {
        let temperror = |header_from: String| Verdict {
            spf: SpfResult::TempError,
            spf_domain: String::new(),
            dkim: "temperror",
            arc: "temperror",
            arc_sealer: None,
            dmarc: "temperror",
            dmarc_policy: Policy::Unspecified,
            report: None,
            header: format!(
                "Authentication-Results: {authserv_id};\r\n\tspf=temperror smtp.mailfrom=\"{}\";\r\n\tdkim=temperror;\r\n\tdmarc=temperror header.from={}\r\n",
                env.sender.replace(['"', '\r', '\n'], ""),
                header_from
            ),
            from_domain: header_from,
        };
        let Ok(resolver) = self.dns.resolver_for(servers) else {
            return temperror(String::new());
        };
        let auth = MessageAuthenticator((*resolver).clone());
        match tokio::time::timeout(
            timeout,
            self.check(&auth, authserv_id, host_domain, message, env),
        )
        .await
        {
            Ok(v) => v,
            Err(_) => temperror(String::new()),
        }
    }

    async fn check(
        &self,
        auth: &MessageAuthenticator,
        authserv_id: &str,
        host_domain: &str,
        message: &[u8],
        env: &Envelope<'_>,
    ) -> Verdict {
        let helo = if env.helo.is_empty() {
            "unknown"
        } else {
            env.helo
        };
        let helo_spf = auth
            .verify_spf(
                self.caches
                    .with(SpfParameters::verify_ehlo(env.ip, helo, host_domain)),
            )
            .await;
        // RFC 7208 §2.4: the null sender is checked as postmaster@HELO.
        let postmaster = format!("postmaster@{helo}");
        let sender = if env.sender.is_empty() {
            postmaster.as_str()
        } else {
            env.sender
        };
        let spf = auth
            .verify_spf(self.caches.with(SpfParameters::verify_mail_from(
                env.ip,
                helo,
                host_domain,
                sender,
            )))
            .await;
        // What RFC 7208 makes a permerror and the crate does not.
        let strict = |out: mail_auth::SpfOutput| async move {
            if matches!(
                out.result(),
                SpfResult::PermError | SpfResult::TempError | SpfResult::None
            ) {
                return out;
            }
            let key = format!("{}|{}", out.domain().to_ascii_lowercase(), env.ip);
            let found = match self.strict.get(&key) {
                Some(found) => found,
                None => {
                    let found = match super::spf_strict::check(&auth.0, out.domain(), env.ip).await
                    {
                        super::spf_strict::Strict::PermError(why) => Some(why),
                        super::spf_strict::Strict::Fine => None,
                    };
                    self.strict.put(key, found.clone(), Duration::from_secs(60));
                    found
                }
            };
            match found {
                Some(why) => {
                    tracing::debug!(domain = out.domain(), why, "SPF permerror");
                    mail_auth::SpfOutput::new(out.domain().to_string())
                        .with_result(SpfResult::PermError)
                }
                None => out,
            }
        };
        let helo_spf = strict(helo_spf).await;
        let spf = strict(spf).await;
        let mail_from_domain = sender.rsplit_once('@').map_or(helo, |(_, d)| d).to_string();
        let mut results = AuthenticationResults::new(authserv_id);
        let Some(msg) = AuthenticatedMessage::parse(message) else {
            results = results
                .with_spf_ehlo_result(&helo_spf, env.ip, helo)
                .with_spf_mailfrom_result(&spf, env.ip, env.sender, helo);
            return Verdict {
                spf: spf.result(),
                spf_domain: spf.domain().to_string(),
                dkim: "none",
                arc: "none",
                arc_sealer: None,
                dmarc: "none",
                dmarc_policy: Policy::Unspecified,
                from_domain: String::new(),
                header: results.to_header(),
                report: None,
            };
        };
        let dkim = auth.verify_dkim(self.caches.with(&msg)).await;
        let arc = auth.verify_arc(self.caches.with(&msg)).await;
        let dmarc = auth
            .verify_dmarc(self.caches.with(DmarcParameters::new(
                &msg,
                &dkim,
                &mail_from_domain,
                &spf,
            )))
            .await;
        let header_from = msg.from.first().map(|f| f.as_str()).unwrap_or("");
        results = results
            .with_dkim_results(&dkim, header_from)
            .with_spf_ehlo_result(&helo_spf, env.ip, helo)
            .with_spf_mailfrom_result(&spf, env.ip, env.sender, helo)
            .with_arc_result(&arc, env.ip)
            .with_dmarc_result(&dmarc);
        let dkim_summary = if dkim.is_empty() {
            "none"
        } else if dkim.iter().any(|d| d.result() == &DkimResult::Pass) {
            "pass"
        } else {
            dkim.iter()
                .map(|d| dkim_word(d.result()))
                .find(|w| *w == "temperror")
                .unwrap_or("fail")
        };
        let arc_word = dkim_word(arc.result());
        let arc_sealer = (arc.result() == &DkimResult::Pass)
            .then(|| {
                arc.sets()
                    .last()
                    .map(|s| s.seal.header.d.to_ascii_lowercase())
            })
            .flatten();
        let report = match dmarc.dmarc_record() {
            Some(record) if !record.rua.is_empty() => {
                let (spf_scope, spf_identity) = if env.sender.is_empty() {
                    ("helo", helo)
                } else {
                    ("mfrom", mail_from_domain.as_str())
                };
                let mut spf_results = vec![(
                    spf_identity.to_ascii_lowercase(),
                    spf_scope.to_string(),
                    spf_word(spf.result()).to_string(),
                )];
                if spf_scope == "mfrom" {
                    spf_results.push((
                        helo.to_ascii_lowercase(),
                        "helo".into(),
                        spf_word(helo_spf.result()).to_string(),
                    ));
                }
                let aligned = |r: &DmarcResult| {
                    if *r == DmarcResult::Pass {
                        "pass"
                    } else {
                        "fail"
                    }
                };
                let seen = Seen {
                    source_ip: env.ip.to_string(),
                    disposition: "none".into(),
                    dkim: aligned(dmarc.dkim_result()).into(),
                    spf: aligned(dmarc.spf_result()).into(),
                    reasons: vec![],
                    envelope_from: spf_identity.to_ascii_lowercase(),
                    header_from: dmarc.domain().to_ascii_lowercase(),
                    dkim_results: dkim
                        .iter()
                        .filter_map(|d| {
                            let sig = d.signature()?;
                            Some((
                                sig.d.to_ascii_lowercase(),
                                sig.s.clone(),
                                dkim_word(d.result()).to_string(),
                            ))
                        })
                        .collect(),
                    spf_results,
                };
                let domain = self.policy_domain(auth, dmarc.domain(), record).await;
                Some((published(domain, record), seen))
            }
            _ => None,
        };
        Verdict {
            report,
            spf: spf.result(),
            spf_domain: spf.domain().to_string(),
            dkim: dkim_summary,
            arc: arc_word,
            arc_sealer,
            dmarc: dmarc_word(&dmarc.result()),
            dmarc_policy: dmarc.policy(),
            from_domain: dmarc.domain().to_string(),
            header: results.to_header(),
        }
    }
}

impl Verifier {
    /// Which of `addresses` may receive `domain`'s aggregate reports (RFC
    /// 7489 §7.1): those in the domain or below it, and those whose domain
    /// publishes `<domain>._report._dmarc.<their domain>`. None when DNS
    /// could not tell (try again later).
    pub async fn report_addresses(
        &self,
        servers: &[SocketAddr],
        domain: &str,
        addresses: &[String],
    ) -> Option<Vec<String>> {
        let resolver = self.dns.resolver_for(servers).ok()?;
        let auth = MessageAuthenticator((*resolver).clone());
        auth.verify_dmarc_report_address(domain, addresses, Some(&self.caches.txt))
            .await
            .map(|v| v.into_iter().cloned().collect())
    }

    /// Where `record` was published: the From domain or the closest parent
    /// carrying it (the lookups are the cached ones DMARC just made).
    async fn policy_domain(
        &self,
        auth: &MessageAuthenticator,
        from: &str,
        record: &mail_auth::dmarc::Dmarc,
    ) -> String {
        let from = from.trim_end_matches('.').to_ascii_lowercase();
        let mut name = from.as_str();
        loop {
            if let Ok(found) = auth
                .txt_lookup::<mail_auth::dmarc::Dmarc>(
                    format!("_dmarc.{name}."),
                    Some(&self.caches.txt),
                )
                .await
                && *found == *record
            {
                return name.to_string();
            }
            match name.split_once('.') {
                Some((_, parent)) if parent.contains('.') => name = parent,
                _ => return from.clone(),
            }
        }
    }
}

/// A DMARC record as an aggregate report's `policy_published` shows it.
fn published(domain: String, r: &mail_auth::dmarc::Dmarc) -> Published {
    use mail_auth::dmarc::{Alignment, Report};
    let align = |a: Alignment| if a == Alignment::Strict { "s" } else { "r" }.to_string();
    let sp = if r.sp == Policy::Unspecified {
        r.p
    } else {
        r.sp
    };
    Published {
        domain,
        adkim: align(r.adkim),
        aspf: align(r.aspf),
        p: r.p.to_string(),
        sp: sp.to_string(),
        // mail-auth evaluates DMARCbis (RFC 9989), which has no sampling:
        // every message gets the policy, `t=y` (testing) one step lower.
        pct: if r.t { 0 } else { 100 },
        fo: match r.fo {
            Report::All => "0",
            Report::Any => "1",
            Report::Dkim => "d",
            Report::Spf => "s",
            Report::DkimSpf => "d:s",
        }
        .to_string(),
        rua: r
            .rua
            .iter()
            .map(|u| (u.uri().to_string(), u.max_size() as u64))
            .collect(),
    }
}

/// The key an ARC seal is made with.
pub struct SealKey<'a> {
    pub private: &'a [u8],
    pub domain: &'a str,
    pub selector: &'a str,
}

impl Verifier {
    /// An ARC set for `modified`, a message an agent changed after it was
    /// verified as `original` (RFC 8617 §5.1: the Authentication-Results
    /// are this hop's verdicts on what arrived; the seal covers what
    /// leaves). None when the chain that arrived has failed (cv=fail
    /// cannot be sealed over) or the checks ran out of time.
    #[allow(clippy::too_many_arguments)]
    pub async fn seal(
        &self,
        servers: &[SocketAddr],
        authserv_id: &str,
        host_domain: &str,
        original: &[u8],
        modified: &[u8],
        env: &Envelope<'_>,
        timeout: Duration,
        key: SealKey<'_>,
    ) -> Result<Option<String>, String> {
        let resolver = self
            .dns
            .resolver_for(servers)
            .map_err(|e| format!("{e:?}"))?;
        let auth = MessageAuthenticator((*resolver).clone());
        let work = async {
            let msg =
                AuthenticatedMessage::parse(original).ok_or("the message cannot be parsed")?;
            let out =
                AuthenticatedMessage::parse(modified).ok_or("the message cannot be parsed")?;
            let helo = if env.helo.is_empty() {
                "unknown"
            } else {
                env.helo
            };
            let postmaster = format!("postmaster@{helo}");
            let sender = if env.sender.is_empty() {
                postmaster.as_str()
            } else {
                env.sender
            };
            let spf = auth
                .verify_spf(self.caches.with(SpfParameters::verify_mail_from(
                    env.ip,
                    helo,
                    host_domain,
                    sender,
                )))
                .await;
            let dkim = auth.verify_dkim(self.caches.with(&msg)).await;
            let arc = auth.verify_arc(self.caches.with(&msg)).await;
            if !arc.can_be_sealed() {
                return Ok(None);
            }
            let mail_from_domain = sender.rsplit_once('@').map_or(helo, |(_, d)| d).to_string();
            let dmarc = auth
                .verify_dmarc(self.caches.with(DmarcParameters::new(
                    &msg,
                    &dkim,
                    &mail_from_domain,
                    &spf,
                )))
                .await;
            let header_from = msg.from.first().map(|f| f.as_str()).unwrap_or("");
            let results = AuthenticationResults::new(authserv_id)
                .with_dkim_results(&dkim, header_from)
                .with_spf_mailfrom_result(&spf, env.ip, env.sender, helo)
                .with_arc_result(&arc, env.ip)
                .with_dmarc_result(&dmarc);
            super::dkim::arc_seal(key.private, key.domain, key.selector, &out, &results, &arc)
                .map(Some)
        };
        match tokio::time::timeout(timeout, work).await {
            Ok(r) => r,
            Err(_) => Ok(None),
        }
    }
}

/// Whether one of our domains' SPF records lets one outbound address send.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SpfPathCheck {
    /// The send connector the mail leaves by.
    pub connector: String,
    /// The address it leaves from: the connector's `sourceIpAddress`, else
    /// the transport settings' `externalIpAddress`; null when neither is
    /// set (the operating system picks, and Ferry cannot know it).
    #[schema(value_type = Option<String>)]
    pub source_address: Option<IpAddr>,
    /// The SPF verdict for that address (`pass`, `fail`, `softfail`,
    /// `neutral`, `none`, `temperror`, `permerror`), or `unknown`.
    pub result: String,
    /// What the admin should know or do.
    pub explanation: String,
}

/// One accepted domain's SPF, against every way its mail leaves.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DomainSpfCheck {
    pub domain: String,
    /// The SPF records published (none, one, or — an error — several).
    pub records: Vec<String>,
    pub paths: Vec<SpfPathCheck>,
    /// `ok` when every path passes, `attention` otherwise.
    pub verdict: String,
}

/// The SPF lint: for each accepted domain, each enabled send connector that
/// routes Internet mail by DNS (address space `*`) is a path; SPF is
/// evaluated for its source address as for `postmaster@<domain>`, with no
/// cache (what DNS says now). Smart-host connectors are listed too: mail
/// leaves from the smart host, whose address the domain's SPF must list.
pub async fn spf_lint(snap: &crate::config::Snapshot) -> Vec<DomainSpfCheck> {
    use crate::model::address_space::Space;
    let ts = &snap.transport.spec;
    let servers = ts.external_lookup_servers();
    let dns = Dns::default();
    let resolver = dns.resolver_for(&servers).ok();
    let helo = snap.transport.spec.server_fqdn.to_string();
    let internet: Vec<_> = snap
        .send_connectors
        .iter()
        .filter(|c| c.spec.enabled && c.spec.address_spaces.iter().any(|a| a.space == Space::All))
        .collect();
    let lint = SpfLint {
        ts,
        servers,
        dns,
        resolver,
        helo,
        internet,
    };
    // Domains are checked side by side (16 at a time), so a DNS server that
    // never answers costs one lookup timeout, not one per domain.
    use futures_util::stream::{self, StreamExt};
    let checks: Vec<_> = snap
        .accepted_domains
        .iter()
        .map(|d| lint.domain(d.spec.domain_name.domain().to_string()))
        .collect();
    stream::iter(checks).buffered(16).collect().await
}

/// What every domain's SPF check shares.
struct SpfLint<'a> {
    ts: &'a crate::model::TransportSettings,
    servers: Vec<std::net::SocketAddr>,
    dns: Dns,
    resolver: Option<std::sync::Arc<hickory_resolver::TokioResolver>>,
    helo: String,
    internet: Vec<&'a crate::store::Stored<crate::model::SendConnector>>,
}

impl SpfLint<'_> {
    async fn domain(&self, domain: String) -> DomainSpfCheck {
        let (ts, servers, dns, resolver, helo) = (
            self.ts,
            &self.servers,
            &self.dns,
            &self.resolver,
            &self.helo,
        );
        let internet = &self.internet;
        let records = match dns.txt(servers, &domain).await {
            Ok(all) => all
                .into_iter()
                .filter(|r| r.trim_start().to_ascii_lowercase().starts_with("v=spf1"))
                .collect(),
            Err(_) => vec![],
        };
        let mut paths = vec![];
        for c in internet.iter() {
            let source = c.spec.source_ip_address.or(ts.external_ip_address);
            let (result, explanation) = if !c.spec.dns_routing_enabled {
                (
                    "unknown".to_string(),
                    format!(
                        "mail leaves from the smart host{} {}: its outbound address must be in {domain}'s SPF record",
                        if c.spec.smart_hosts.len() == 1 {
                            ""
                        } else {
                            "s"
                        },
                        c.spec
                            .smart_hosts
                            .iter()
                            .map(|h| h.to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                )
            } else if let (Some(ip), Some(resolver)) = (source, &resolver) {
                let auth = MessageAuthenticator((**resolver).clone());
                let sender = format!("postmaster@{domain}");
                let spf = auth
                    .verify_spf(SpfParameters::verify_mail_from(ip, helo, helo, &sender))
                    .await;
                let mut word = spf_word(spf.result());
                if !matches!(
                    spf.result(),
                    SpfResult::PermError | SpfResult::TempError | SpfResult::None
                ) && let super::spf_strict::Strict::PermError(_) =
                    super::spf_strict::check(&auth.0, &domain, ip).await
                {
                    word = "permerror";
                }
                let why = match word {
                    "pass" => format!("{domain}'s SPF record authorizes {ip}"),
                    "none" => format!(
                        "{domain} publishes no SPF record: publish one that lists {ip} (e.g. \"v=spf1 ip4:{ip} -all\")"
                    ),
                    "permerror" => format!(
                        "{domain}'s SPF record is invalid (RFC 7208): receivers treat its mail as unauthenticated"
                    ),
                    "temperror" => "DNS did not answer: check again".to_string(),
                    other => {
                        format!("{domain}'s SPF record gives {other} for {ip}: add {ip} to it")
                    }
                };
                (word.to_string(), why)
            } else {
                (
                    "unknown".to_string(),
                    "no source address is set (sourceIpAddress on the connector or externalIpAddress in the transport settings): set the address mail leaves from, so it can be checked".to_string(),
                )
            };
            paths.push(SpfPathCheck {
                connector: c.spec.name.clone(),
                source_address: source,
                result,
                explanation,
            });
        }
        let ok = !paths.is_empty() && paths.iter().all(|p| p.result == "pass");
        DomainSpfCheck {
            domain,
            records,
            paths,
            verdict: if ok { "ok" } else { "attention" }.to_string(),
        }
    }
}

/// The `authserv-id` of an Authentication-Results value (RFC 8601 §2.2):
/// its first token, before any version and the first ';'.
pub fn authserv_id_of(value: &str) -> &str {
    value
        .split(';')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .next()
        .unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authserv_ids_are_read_as_rfc_8601_writes_them() {
        assert_eq!(
            authserv_id_of("mail.contoso.test; spf=pass"),
            "mail.contoso.test"
        );
        assert_eq!(
            authserv_id_of(" mail.contoso.test 1; none"),
            "mail.contoso.test"
        );
        assert_eq!(authserv_id_of("mail.contoso.test"), "mail.contoso.test");
        assert_eq!(authserv_id_of(""), "");
    }
}
