//! MTA-STS (RFC 8461) for DNS-routed delivery: the recipient domain's
//! `_mta-sts` TXT record (parsed by mail-auth) says a policy exists and its
//! id; the policy itself is fetched over HTTPS from
//! `https://mta-sts.<domain>/.well-known/mta-sts.txt` — its name resolved by
//! Ferry's DNS servers, its certificate validated against the system roots
//! and Ferry's trust anchors, no redirects, at most 64 KiB, `text/plain`,
//! within a minute — and cached until its `max_age`. A new id in DNS makes
//! the next delivery fetch again; a fetch that fails keeps the cached
//! policy until it expires (§5.1), and without one the domain has none.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mail_auth::common::parse::TxtRecordParser;

use super::dns::Dns;

/// RFC 8461 §3.3: senders may refuse bigger policies.
const MAX_POLICY: usize = 64 * 1024;
/// How long a fetch may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(60);
/// RFC 8461 §3.2: max_age is at most a year.
const MAX_AGE_LIMIT: u64 = 31_557_600;
/// The most domains whose policies are kept.
const MAX_CACHED: usize = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Enforce,
    Testing,
    None,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::Testing => "testing",
            Mode::None => "none",
        }
    }
}

/// A domain's policy, as fetched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// The id of the TXT record it was fetched for.
    pub id: String,
    pub mode: Mode,
    /// MX patterns: a name, or `*.` and a name (one more label).
    pub mx: Vec<String>,
    pub max_age: u64,
    /// Its lines, as TLS reports quote them (`policy-string`).
    pub lines: Vec<String>,
}

impl Policy {
    /// RFC 8461 §3.2: the policy file, `key: value` lines.
    pub fn parse(id: &str, text: &str) -> Result<Policy, String> {
        let (mut version, mut mode, mut max_age) = (None, None, None);
        let mut mx = vec![];
        let mut lines = vec![];
        for line in text.lines() {
            let line = line.trim_end_matches('\r');
            if line.trim().is_empty() {
                continue;
            }
            lines.push(line.trim().to_string());
            let Some((key, value)) = line.split_once(':') else {
                return Err(format!("not a key: value line: {line:?}"));
            };
            let value = value.trim();
            match key.trim() {
                "version" => version = Some(value.to_string()),
                "mode" => {
                    mode = Some(match value {
                        "enforce" => Mode::Enforce,
                        "testing" => Mode::Testing,
                        "none" => Mode::None,
                        other => return Err(format!("unknown mode {other:?}")),
                    })
                }
                "max_age" => {
                    max_age = Some(
                        value
                            .parse::<u64>()
                            .ok()
                            .filter(|a| *a <= MAX_AGE_LIMIT && value.len() <= 10)
                            .ok_or_else(|| {
                                format!("max_age {value:?} is not 0 to {MAX_AGE_LIMIT}")
                            })?,
                    )
                }
                "mx" => {
                    let pattern = value.to_ascii_lowercase();
                    let name = pattern.strip_prefix("*.").unwrap_or(&pattern);
                    if name.is_empty() || name.contains('*') || !name.contains('.') {
                        return Err(format!("mx {value:?} is not a host name pattern"));
                    }
                    mx.push(pattern.trim_end_matches('.').to_string());
                }
                // Unknown keys are ignored (extensions).
                _ => {}
            }
        }
        if version.as_deref() != Some("STSv1") {
            return Err("version is not STSv1".into());
        }
        let mode = mode.ok_or("no mode")?;
        let max_age = max_age.ok_or("no max_age")?;
        if mx.is_empty() && mode != Mode::None {
            return Err("no mx".into());
        }
        Ok(Policy {
            id: id.to_string(),
            mode,
            mx,
            max_age,
            lines,
        })
    }

    /// RFC 8461 §4.1: whether an MX host's name matches the policy. A
    /// wildcard matches exactly one more label.
    pub fn allows(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.mx.iter().any(|p| match p.strip_prefix("*.") {
            Some(parent) => host
                .split_once('.')
                .is_some_and(|(label, rest)| !label.is_empty() && rest == parent),
            None => host == *p,
        })
    }

    /// `MTA-STS policy of example.com (enforce, id 2026…)`, for diagnostics.
    pub fn describe(&self, domain: &str) -> String {
        format!(
            "MTA-STS policy of {domain} ({}, id {})",
            self.mode.as_str(),
            self.id
        )
    }
}

/// What a lookup found.
#[derive(Debug, Clone)]
pub enum Found {
    /// The domain publishes no policy (or none could be had, and none is
    /// cached).
    Nothing,
    Policy(Arc<Policy>),
}

struct Cached {
    policy: Arc<Policy>,
    until: Instant,
}

/// The policies of the domains Ferry delivers to, shared by every attempt.
#[derive(Default)]
pub struct MtaSts {
    cache: Mutex<HashMap<String, Cached>>,
}

/// What to do with a cached policy, given the TXT record's id (RFC 8461
/// §5.1): use it, or fetch again (keeping it if the fetch fails).
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    UseCached,
    Fetch,
    Nothing,
}

pub fn next_step(cached: Option<&Policy>, txt_id: Option<&str>) -> Next {
    match (cached, txt_id) {
        (Some(p), Some(id)) if p.id == id => Next::UseCached,
        (_, Some(_)) => Next::Fetch,
        // No record: a cached policy still holds until it expires.
        (Some(_), None) => Next::UseCached,
        (None, None) => Next::Nothing,
    }
}

impl MtaSts {
    fn cached(&self, domain: &str) -> Option<Arc<Policy>> {
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache
            .get(domain)
            .filter(|c| c.until > Instant::now())
            .map(|c| c.policy.clone())
    }

    fn keep(&self, domain: &str, policy: Arc<Policy>) {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= MAX_CACHED {
            let now = Instant::now();
            cache.retain(|_, c| c.until > now);
            if cache.len() >= MAX_CACHED {
                cache.clear();
            }
        }
        let until = Instant::now() + Duration::from_secs(policy.max_age);
        cache.insert(domain.to_string(), Cached { policy, until });
    }

    /// The policy to apply to `domain` now.
    pub async fn policy(
        &self,
        dns: &Dns,
        servers: &[SocketAddr],
        roots: Arc<rustls::RootCertStore>,
        domain: &str,
    ) -> Found {
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        let cached = self.cached(&domain);
        let txt_id = match dns.txt(servers, &format!("_mta-sts.{domain}")).await {
            Ok(records) => {
                let sts: Vec<&String> = records
                    .iter()
                    .filter(|r| r.trim_start().starts_with("v=STSv1"))
                    .collect();
                // §3.1: more than one record is as none.
                match sts.as_slice() {
                    [one] => mail_auth::mta_sts::MtaSts::parse(one.as_bytes())
                        .ok()
                        .map(|r| r.id),
                    _ => None,
                }
            }
            Err(e) => {
                tracing::debug!(%domain, error = %e, "MTA-STS: no TXT record");
                None
            }
        };
        match next_step(cached.as_deref(), txt_id.as_deref()) {
            Next::UseCached => Found::Policy(cached.expect("next_step saw it")),
            Next::Nothing => Found::Nothing,
            Next::Fetch => {
                let id = txt_id.expect("next_step saw it");
                match fetch(dns, servers, roots, &domain).await {
                    Ok(text) => match Policy::parse(&id, &text) {
                        Ok(p) => {
                            let p = Arc::new(p);
                            tracing::info!(%domain, id = %p.id, mode = p.mode.as_str(), mx = ?p.mx, max_age = p.max_age, "MTA-STS policy fetched");
                            self.keep(&domain, p.clone());
                            Found::Policy(p)
                        }
                        Err(e) => {
                            tracing::warn!(%domain, error = %e, "MTA-STS policy ignored: it is not valid");
                            cached.map_or(Found::Nothing, Found::Policy)
                        }
                    },
                    Err(e) => {
                        tracing::warn!(%domain, error = %e, "MTA-STS policy could not be fetched");
                        cached.map_or(Found::Nothing, Found::Policy)
                    }
                }
            }
        }
    }
}

/// The policy file of `domain`, by RFC 8461 §3.3's rules.
async fn fetch(
    dns: &Dns,
    servers: &[SocketAddr],
    roots: Arc<rustls::RootCertStore>,
    domain: &str,
) -> Result<String, String> {
    let host = format!("mta-sts.{domain}");
    let addresses: Vec<IpAddr> = dns
        .addresses(servers, &host)
        .await
        .map_err(|e| format!("{host}: {e:?}"))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut builder = reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .https_only(true)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(FETCH_TIMEOUT)
        .connect_timeout(Duration::from_secs(10));
    if let Some(ip) = addresses.first() {
        // Resolved by Ferry's DNS servers, not the system's.
        builder = builder.resolve(&host, SocketAddr::new(*ip, 443));
    }
    let client = builder.build().map_err(|e| e.to_string())?;
    let url = format!("https://{host}/.well-known/mta-sts.txt");
    let mut response = client
        .get(&url)
        .send()
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    if response.status() != reqwest::StatusCode::OK {
        // §3.3: a redirect is not followed; any other answer is no policy.
        return Err(format!("{url}: HTTP {}", response.status()));
    }
    let text_plain = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().to_ascii_lowercase().starts_with("text/plain"));
    if !text_plain {
        return Err(format!("{url}: not text/plain"));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| format!("{url}: {e}"))? {
        body.extend_from_slice(&chunk);
        if body.len() > MAX_POLICY {
            return Err(format!("{url}: larger than {MAX_POLICY} bytes"));
        }
    }
    String::from_utf8(body).map_err(|_| format!("{url}: not UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_parse_as_rfc_8461_says() {
        let p = Policy::parse(
            "20260101",
            "version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.Example.NET\r\nmax_age: 604800\r\n",
        )
        .unwrap();
        assert_eq!(p.mode, Mode::Enforce);
        assert_eq!(p.max_age, 604_800);
        assert!(p.allows("mail.example.com") && p.allows("MAIL.example.com."));
        assert!(p.allows("mx1.example.net"));
        assert!(!p.allows("example.net") && !p.allows("a.b.example.net"));
        assert!(!p.allows("other.example.com"));
        for bad in [
            "mode: enforce\nmx: a.example\nmax_age: 1\n",
            "version: STSv1\nmode: enforce\nmax_age: 1\n",
            "version: STSv1\nmode: strict\nmx: a.example\nmax_age: 1\n",
            "version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 31557601\n",
            "version: STSv1\nmode: enforce\nmx: *.*.example\nmax_age: 1\n",
            "version: STSv1\nmode: enforce\nmx: a.example\n",
            "<html>",
        ] {
            assert!(Policy::parse("1", bad).is_err(), "{bad}");
        }
        // mode none needs no mx; unknown keys are ignored.
        let none =
            Policy::parse("1", "version: STSv1\nmode: none\nmax_age: 0\nfuture: x\n").unwrap();
        assert_eq!(none.mode, Mode::None);
    }

    #[test]
    fn a_new_id_fetches_again_and_a_missing_record_keeps_the_cache() {
        let p = Policy::parse(
            "a",
            "version: STSv1\nmode: testing\nmx: m.example\nmax_age: 60\n",
        )
        .unwrap();
        assert_eq!(next_step(Some(&p), Some("a")), Next::UseCached);
        assert_eq!(next_step(Some(&p), Some("b")), Next::Fetch);
        assert_eq!(next_step(None, Some("a")), Next::Fetch);
        assert_eq!(next_step(Some(&p), None), Next::UseCached);
        assert_eq!(next_step(None, None), Next::Nothing);
    }
}
