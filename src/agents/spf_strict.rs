//! Three rules of RFC 7208 that `mail-auth` 0.13 does not apply, checked
//! beside its evaluation (Ferry follows the RFC where a crate does not):
//! - §4.5: more than one `v=spf1` record at a domain is a `permerror` (the
//!   crate takes the first that parses);
//! - §4.6 and §12: a record with a term that is not a known mechanism or a
//!   well-formed modifier (`ip4:999.1.1.1`, `a/99`, `foo:bar`) is a
//!   `permerror` (the crate skips what it cannot read);
//! - §4.6.4: more than two "void" lookups (NXDOMAIN or no answer) while
//!   evaluating are a `permerror`.
//!
//! The walk follows the evaluation order of §4.6: terms left to right,
//! `include:` into the included record, `redirect=` when nothing matched,
//! stopping at the first mechanism that matches, so that a void lookup after
//! a match is not counted. Terms with macros are left to the crate (the
//! walk stops there without a verdict).

use std::net::IpAddr;
use std::str::FromStr;

use hickory_resolver::TokioResolver;
use hickory_resolver::proto::rr::RData;

/// What the walk found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Strict {
    /// Nothing the crate would miss: its verdict stands.
    Fine,
    /// A `permerror` the crate would not give, and why.
    PermError(String),
}

enum Looked {
    Found(Vec<String>),
    Void,
    Error,
}

/// The qualifier matched, as the walk learns it (see `Walk::check`).
type Evaluation<'b> = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<Option<Option<char>>, String>> + Send + 'b>,
>;

struct Walk<'a> {
    resolver: &'a TokioResolver,
    ip: IpAddr,
    voids: u32,
    lookups: u32,
}

fn fqdn(name: &str) -> String {
    format!("{}.", name.trim_end_matches('.'))
}

impl Walk<'_> {
    async fn txt(&mut self, domain: &str) -> Looked {
        match self.resolver.txt_lookup(fqdn(domain).as_str()).await {
            Ok(l) => Looked::Found(
                l.answers()
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
                    .collect(),
            ),
            Err(e) if e.is_nx_domain() || e.is_no_records_found() => Looked::Void,
            Err(_) => Looked::Error,
        }
    }

    async fn addresses(&mut self, domain: &str) -> Looked {
        let name = fqdn(domain);
        let r = if self.ip.is_ipv4() {
            self.resolver.ipv4_lookup(name.as_str()).await.map(|l| {
                l.answers()
                    .iter()
                    .filter_map(|r| match &r.data {
                        RData::A(a) => Some(a.0.to_string()),
                        _ => None,
                    })
                    .collect::<Vec<_>>()
            })
        } else {
            self.resolver.ipv6_lookup(name.as_str()).await.map(|l| {
                l.answers()
                    .iter()
                    .filter_map(|r| match &r.data {
                        RData::AAAA(a) => Some(a.0.to_string()),
                        _ => None,
                    })
                    .collect::<Vec<_>>()
            })
        };
        match r {
            Ok(v) if v.is_empty() => Looked::Void,
            Ok(v) => Looked::Found(v),
            Err(e) if e.is_nx_domain() || e.is_no_records_found() => Looked::Void,
            Err(_) => Looked::Error,
        }
    }

    async fn mx(&mut self, domain: &str) -> Looked {
        match self.resolver.mx_lookup(fqdn(domain).as_str()).await {
            Ok(l) => Looked::Found(
                l.answers()
                    .iter()
                    .filter_map(|r| match &r.data {
                        RData::MX(m) => Some(m.exchange.to_ascii()),
                        _ => None,
                    })
                    .collect(),
            ),
            Err(e) if e.is_nx_domain() || e.is_no_records_found() => Looked::Void,
            Err(_) => Looked::Error,
        }
    }

    fn void(&mut self) -> Result<(), String> {
        self.voids += 1;
        if self.voids > 2 {
            return Err("more than two void DNS lookups (RFC 7208 §4.6.4)".into());
        }
        Ok(())
    }

    fn lookup(&mut self) -> Result<(), String> {
        self.lookups += 1;
        if self.lookups > 10 {
            return Err("more than ten DNS lookups (RFC 7208 §4.6.4)".into());
        }
        Ok(())
    }

    /// The qualifier of the mechanism of `domain`'s record that matched
    /// (`Some(Some('+'))` for pass), `Some(None)` when none did, None when
    /// the walk cannot say (macros, DNS errors, no record).
    fn check<'b>(&'b mut self, domain: &'b str, depth: u32) -> Evaluation<'b> {
        Box::pin(async move {
            if depth > 10 {
                return Ok(None);
            }
            let records = match self.txt(domain).await {
                Looked::Found(all) => all,
                Looked::Void => return Ok(None),
                Looked::Error => return Ok(None),
            };
            let spf: Vec<&String> = records.iter().filter(|r| is_spf(r)).collect();
            if spf.len() > 1 {
                return Err(format!(
                    "{domain} publishes {} SPF records (RFC 7208 §4.5)",
                    spf.len()
                ));
            }
            let Some(record) = spf.first() else {
                return Ok(None);
            };
            let terms = parse(record).map_err(|t| {
                format!("{domain}'s SPF record has a bad term '{t}' (RFC 7208 §4.6)")
            })?;
            let mut redirect = None;
            for t in &terms {
                if t.target.as_deref().is_some_and(|x| x.contains('%')) {
                    return Ok(None);
                }
                let target = t.target.clone().unwrap_or_else(|| domain.to_string());
                let matched = match t.name.as_str() {
                    "all" => true,
                    "ip4" | "ip6" => t.net.is_some_and(|(net, len)| in_net(self.ip, net, len)),
                    "a" => {
                        self.lookup()?;
                        match self.addresses(&target).await {
                            Looked::Found(ips) => ips
                                .iter()
                                .filter_map(|i| IpAddr::from_str(i).ok())
                                .any(|i| in_net(self.ip, i, t.cidr(self.ip))),
                            Looked::Void => {
                                self.void()?;
                                false
                            }
                            Looked::Error => return Ok(None),
                        }
                    }
                    "mx" => {
                        self.lookup()?;
                        match self.mx(&target).await {
                            Looked::Found(hosts) => {
                                let mut any = false;
                                for h in hosts.iter().take(10) {
                                    if let Looked::Found(ips) = self.addresses(h).await
                                        && ips
                                            .iter()
                                            .filter_map(|i| IpAddr::from_str(i).ok())
                                            .any(|i| in_net(self.ip, i, t.cidr(self.ip)))
                                    {
                                        any = true;
                                    }
                                }
                                any
                            }
                            Looked::Void => {
                                self.void()?;
                                false
                            }
                            Looked::Error => return Ok(None),
                        }
                    }
                    "exists" => {
                        self.lookup()?;
                        match self.addresses(&target).await {
                            Looked::Found(_) => true,
                            Looked::Void => {
                                self.void()?;
                                false
                            }
                            Looked::Error => return Ok(None),
                        }
                    }
                    "include" => {
                        self.lookup()?;
                        match self.check(&target, depth + 1).await? {
                            // include matches when the included record passes.
                            Some(q) => q == Some('+'),
                            None => return Ok(None),
                        }
                    }
                    "ptr" => return Ok(None),
                    "redirect" => {
                        redirect = Some(target);
                        false
                    }
                    _ => false,
                };
                if matched {
                    return Ok(Some(Some(t.qualifier)));
                }
            }
            match redirect {
                Some(r) => {
                    self.lookup()?;
                    self.check(&r, depth + 1).await
                }
                None => Ok(Some(None)),
            }
        })
    }
}

fn is_spf(r: &str) -> bool {
    let r = r.trim_start();
    r.len() >= 6
        && r[..6].eq_ignore_ascii_case("v=spf1")
        && r[6..].chars().next().is_none_or(|c| c == ' ')
}

struct Term {
    qualifier: char,
    name: String,
    target: Option<String>,
    /// ip4/ip6: the network and its prefix length.
    net: Option<(IpAddr, u8)>,
    cidr4: u8,
    cidr6: u8,
}

impl Term {
    fn cidr(&self, ip: IpAddr) -> u8 {
        if ip.is_ipv4() { self.cidr4 } else { self.cidr6 }
    }
}

fn in_net(ip: IpAddr, net: IpAddr, len: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            let mask = if len == 0 {
                0
            } else {
                u32::MAX << (32 - len.min(32) as u32)
            };
            u32::from(a) & mask == u32::from(b) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(b)) => {
            let mask = if len == 0 {
                0
            } else {
                u128::MAX << (128 - len.min(128) as u32)
            };
            u128::from(a) & mask == u128::from(b) & mask
        }
        _ => false,
    }
}

/// `/n` and `//m` after a domain (RFC 7208 §5.6 dual-cidr-length).
fn dual_cidr(s: &str) -> Result<(String, u8, u8), ()> {
    let (domain, rest) = match s.find('/') {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, ""),
    };
    let (mut c4, mut c6) = (32u8, 128u8);
    if let Some(r) = rest.strip_prefix("//") {
        c6 = r.parse().map_err(|_| ())?;
    } else if let Some(r) = rest.strip_prefix('/') {
        let (a, b) = match r.split_once("//") {
            Some((a, b)) => (a, Some(b)),
            None => (r, None),
        };
        c4 = a.parse().map_err(|_| ())?;
        if let Some(b) = b {
            c6 = b.parse().map_err(|_| ())?;
        }
    }
    if c4 > 32 || c6 > 128 || rest.starts_with("///") {
        return Err(());
    }
    Ok((domain.to_string(), c4, c6))
}

fn domain_spec_ok(d: &str) -> bool {
    !d.is_empty()
        && d.len() <= 253
        && d.chars().all(|c| c.is_ascii_graphic())
        && (d.contains('%') || d.split('.').all(|l| !l.is_empty() && l.len() <= 63))
}

/// The terms of a record, or the first one that is malformed.
fn parse(record: &str) -> Result<Vec<Term>, String> {
    let mut out = vec![];
    let (mut redirects, mut exps) = (0, 0);
    for raw in record.split_whitespace().skip(1) {
        let bad = || raw.to_string();
        let (qualifier, body) = match raw.chars().next() {
            Some(q @ ('+' | '-' | '~' | '?')) => (q, &raw[1..]),
            _ => ('+', raw),
        };
        let lower = body.to_ascii_lowercase();
        // Modifiers: name=value.
        if let Some((name, value)) = body.split_once('=')
            && !name.contains(':')
            && !name.contains('/')
        {
            let name_ok = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
            if !name_ok || qualifier != '+' || raw.starts_with('+') {
                return Err(bad());
            }
            match name.to_ascii_lowercase().as_str() {
                "redirect" => {
                    redirects += 1;
                    if !domain_spec_ok(value) {
                        return Err(bad());
                    }
                    out.push(Term {
                        qualifier,
                        name: "redirect".into(),
                        target: Some(value.to_string()),
                        net: None,
                        cidr4: 32,
                        cidr6: 128,
                    });
                }
                "exp" => exps += 1,
                _ => {}
            }
            continue;
        }
        let (name, arg) = match lower.find([':', '/']) {
            Some(i) => (&lower[..i], Some(&body[i..])),
            None => (lower.as_str(), None),
        };
        let mut t = Term {
            qualifier,
            name: name.to_string(),
            target: None,
            net: None,
            cidr4: 32,
            cidr6: 128,
        };
        match (name, arg) {
            ("all", None) => {}
            ("include" | "exists", Some(a)) => {
                let d = a.strip_prefix(':').ok_or_else(bad)?;
                if !domain_spec_ok(d) {
                    return Err(bad());
                }
                t.target = Some(d.to_string());
            }
            ("a" | "mx", arg) => {
                let spec = arg.unwrap_or("");
                let spec = spec.strip_prefix(':').unwrap_or(spec);
                let (d, c4, c6) = dual_cidr(spec).map_err(|_| bad())?;
                if arg.is_some_and(|a| a.starts_with(':')) && !domain_spec_ok(&d) {
                    return Err(bad());
                }
                t.target = (!d.is_empty()).then_some(d);
                t.cidr4 = c4;
                t.cidr6 = c6;
            }
            ("ptr", arg) => {
                if let Some(a) = arg {
                    let d = a.strip_prefix(':').ok_or_else(bad)?;
                    if !domain_spec_ok(d) {
                        return Err(bad());
                    }
                    t.target = Some(d.to_string());
                }
            }
            ("ip4", Some(a)) => {
                let a = a.strip_prefix(':').ok_or_else(bad)?;
                let (ip, len) = a.split_once('/').map_or((a, "32"), |(i, l)| (i, l));
                let ip: std::net::Ipv4Addr = ip.parse().map_err(|_| bad())?;
                let len: u8 = len.parse().map_err(|_| bad())?;
                if len > 32 {
                    return Err(bad());
                }
                t.net = Some((IpAddr::V4(ip), len));
            }
            ("ip6", Some(a)) => {
                let a = a.strip_prefix(':').ok_or_else(bad)?;
                let (ip, len) = a.rsplit_once('/').map_or((a, "128"), |(i, l)| (i, l));
                let ip: std::net::Ipv6Addr = ip.parse().map_err(|_| bad())?;
                let len: u8 = len.parse().map_err(|_| bad())?;
                if len > 128 {
                    return Err(bad());
                }
                t.net = Some((IpAddr::V6(ip), len));
            }
            _ => return Err(bad()),
        }
        out.push(t);
    }
    if redirects > 1 || exps > 1 {
        return Err("redirect or exp twice".into());
    }
    // RFC 7208 §6.1: redirect is ignored when the record has "all".
    if out.iter().any(|t| t.name == "all") {
        out.retain(|t| t.name != "redirect");
    } else if let Some(i) = out.iter().position(|t| t.name == "redirect") {
        // redirect applies only after every mechanism.
        let r = out.remove(i);
        out.push(r);
    }
    Ok(out)
}

/// Walks `domain`'s SPF evaluation for `ip` for what the crate misses.
pub async fn check(resolver: &TokioResolver, domain: &str, ip: IpAddr) -> Strict {
    let mut walk = Walk {
        resolver,
        ip,
        voids: 0,
        lookups: 0,
    };
    match walk.check(domain, 0).await {
        Err(why) => Strict::PermError(why),
        Ok(_) => Strict::Fine,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_parse_as_rfc_7208_writes_them() {
        assert!(
            parse(
                "v=spf1 ip4:192.0.2.0/24 ip6:2001:db8::/32 a mx/24 a:x.test//64 include:y.test -all"
            )
            .is_ok()
        );
        assert!(
            parse("v=spf1 exists:%{i}.ex.test redirect=z.test exp=e.test unknown-mod=1").is_ok()
        );
        for bad in [
            "v=spf1 ip4:999.1.1.1 -all",
            "v=spf1 ip4:192.0.2.1/33",
            "v=spf1 ip6:zz::1",
            "v=spf1 foo:bar",
            "v=spf1 a/99",
            "v=spf1 include",
            "v=spf1 redirect=a.test redirect=b.test",
            "v=spf1 -redirect=a.test",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        assert!(is_spf("v=spf1 -all") && is_spf("V=SPF1") && !is_spf("v=spf10 -all"));
        assert!(in_net(
            "192.0.2.7".parse().unwrap(),
            "192.0.2.0".parse().unwrap(),
            24
        ));
        assert!(!in_net(
            "192.0.3.7".parse().unwrap(),
            "192.0.2.0".parse().unwrap(),
            24
        ));
        assert!(in_net(
            "10.0.0.1".parse().unwrap(),
            "192.0.2.0".parse().unwrap(),
            0
        ));
    }
}
