//! SMTP domains (RFC 1035 / RFC 5321 `Domain`), domain patterns with the
//! Exchange `*.` prefix, and hosts that may be a name or an address literal.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// A fully qualified or single-label domain name in lower-case ASCII
/// (internationalised names are given in their `xn--` A-label form).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Domain(String);

impl Domain {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn labels(&self) -> usize {
        self.0.split('.').count()
    }

    /// True when `self` equals `parent` or is below it.
    pub fn is_within(&self, parent: &Domain) -> bool {
        self.0 == parent.0 || self.0.ends_with(&format!(".{}", parent.0))
    }
}

impl FromStr for Domain {
    type Err = String;
    fn from_str(input: &str) -> Result<Self, String> {
        let s = input.strip_suffix('.').unwrap_or(input);
        if s.is_empty() {
            return Err("a domain name cannot be empty".into());
        }
        if s.len() > 253 {
            return Err(format!("'{input}' is longer than 253 characters"));
        }
        for label in s.split('.') {
            if label.is_empty() {
                return Err(format!("'{input}' has an empty label"));
            }
            if label.len() > 63 {
                return Err(format!("'{input}' has a label longer than 63 characters"));
            }
            if !label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            {
                return Err(format!(
                    "'{input}' is not a valid domain name (RFC 1035: letters, digits and hyphens only; \
                     give internationalised names in xn-- form)"
                ));
            }
            if label.starts_with('-') || label.ends_with('-') {
                return Err(format!(
                    "'{input}' has a label that starts or ends with a hyphen"
                ));
            }
        }
        Ok(Domain(s.to_ascii_lowercase()))
    }
}

impl fmt::Display for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

string_type!(
    Domain,
    "A domain name (RFC 1035), e.g. `mail.contoso.com`.",
    "mail.contoso.com",
    Some(super::schema::domain_pattern()),
    Some(253)
);

/// `contoso.com` (that domain) or `*.contoso.com` (that domain and all its
/// subdomains). No other wildcard is valid: `*contoso.com` breaks RFC 1035.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DomainPattern {
    Exact(Domain),
    WithSubdomains(Domain),
}

impl DomainPattern {
    pub fn domain(&self) -> &Domain {
        match self {
            DomainPattern::Exact(d) | DomainPattern::WithSubdomains(d) => d,
        }
    }

    pub fn is_wildcard(&self) -> bool {
        matches!(self, DomainPattern::WithSubdomains(_))
    }

    /// `*.com`, `*.co.uk`: a wildcard over a public suffix (the Mozilla
    /// list, compiled in), which takes in every domain registered under it.
    pub fn is_wildcard_over_public_suffix(&self) -> bool {
        let DomainPattern::WithSubdomains(d) = self else {
            return false;
        };
        let name = d.to_string().to_ascii_lowercase();
        let name = name.trim_end_matches('.');
        psl::suffix(name.as_bytes())
            .is_some_and(|s| s.is_known() && s.as_bytes() == name.as_bytes())
    }

    pub fn matches(&self, domain: &Domain) -> bool {
        match self {
            DomainPattern::Exact(d) => d == domain,
            DomainPattern::WithSubdomains(d) => domain.is_within(d),
        }
    }
}

impl FromStr for DomainPattern {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if let Some(rest) = s.strip_prefix("*.") {
            return Ok(DomainPattern::WithSubdomains(rest.parse()?));
        }
        if s.contains('*') {
            return Err(format!(
                "'{s}' is not valid: a wildcard may only be a leading '*.' (e.g. '*.contoso.com')"
            ));
        }
        Ok(DomainPattern::Exact(s.parse()?))
    }
}

impl fmt::Display for DomainPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DomainPattern::Exact(d) => write!(f, "{d}"),
            DomainPattern::WithSubdomains(d) => write!(f, "*.{d}"),
        }
    }
}

string_type!(
    DomainPattern,
    "A domain (`contoso.com`) or a domain with all its subdomains (`*.contoso.com`).",
    "contoso.com",
    Some(super::schema::domain_or_wildcard_pattern()),
    Some(255)
);

/// A host to connect to: a name resolved through DNS, or an address literal.
/// Written `hub01.contoso.com`, `10.0.0.1` or `[10.0.0.1]`; shown with brackets
/// around addresses, as Exchange shows next hops.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Host {
    Name(Domain),
    Ip(IpAddr),
}

impl FromStr for Host {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let inner = s
            .strip_prefix('[')
            .and_then(|r| r.strip_suffix(']'))
            .map(|r| r.strip_prefix("IPv6:").unwrap_or(r));
        if let Some(inner) = inner {
            return inner
                .parse()
                .map(Host::Ip)
                .map_err(|_| format!("'{s}' is not a valid address literal"));
        }
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Ok(Host::Ip(ip));
        }
        s.parse::<Domain>()
            .map(Host::Name)
            .map_err(|e| format!("not a host name or IP address: {e}"))
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Name(d) => write!(f, "{d}"),
            Host::Ip(ip) => write!(f, "[{ip}]"),
        }
    }
}

string_type!(
    Host,
    "A host name (`hub01.contoso.com`) or an IP address literal (`10.0.0.1` or `[10.0.0.1]`).",
    "hub01.corp.contoso.com"
);

#[cfg(test)]
mod tests {

    #[test]
    fn wildcard_over_a_public_suffix() {
        let p = |s: &str| s.parse::<DomainPattern>().unwrap();
        assert!(p("*.com").is_wildcard_over_public_suffix());
        assert!(p("*.co.uk").is_wildcard_over_public_suffix());
        assert!(!p("*.contoso.com").is_wildcard_over_public_suffix());
        assert!(!p("com").is_wildcard_over_public_suffix());
        assert!(!p("*.contoso.test").is_wildcard_over_public_suffix());
    }
    use super::*;

    #[test]
    fn domains_are_lowercased_and_trailing_dot_dropped() {
        let d: Domain = "Mail.Contoso.COM.".parse().unwrap();
        assert_eq!(d.as_str(), "mail.contoso.com");
    }

    #[test]
    fn invalid_domains_are_rejected() {
        for bad in [
            "",
            "a..b",
            "-a.com",
            "a-.com",
            "a_b.com",
            "a b.com",
            &"x".repeat(64),
        ] {
            assert!(bad.parse::<Domain>().is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn embedded_wildcard_is_rejected() {
        assert!("*contoso.com".parse::<DomainPattern>().is_err());
        assert!("mail.*.com".parse::<DomainPattern>().is_err());
        assert!(
            "*.contoso.com"
                .parse::<DomainPattern>()
                .unwrap()
                .is_wildcard()
        );
    }

    #[test]
    fn wildcard_pattern_covers_domain_and_subdomains() {
        let p: DomainPattern = "*.contoso.com".parse().unwrap();
        assert!(p.matches(&"contoso.com".parse().unwrap()));
        assert!(p.matches(&"a.b.contoso.com".parse().unwrap()));
        assert!(!p.matches(&"notcontoso.com".parse().unwrap()));
        let e: DomainPattern = "contoso.com".parse().unwrap();
        assert!(!e.matches(&"a.contoso.com".parse().unwrap()));
    }

    #[test]
    fn hosts_parse_names_and_literals() {
        assert_eq!(
            "[10.0.0.1]".parse::<Host>().unwrap(),
            Host::Ip("10.0.0.1".parse().unwrap())
        );
        assert_eq!(
            "10.0.0.1".parse::<Host>().unwrap().to_string(),
            "[10.0.0.1]"
        );
        assert_eq!(
            "[IPv6:::1]".parse::<Host>().unwrap(),
            Host::Ip("::1".parse().unwrap())
        );
        assert!(matches!(
            "hub01.corp.contoso.com".parse::<Host>().unwrap(),
            Host::Name(_)
        ));
        assert!("bad host".parse::<Host>().is_err());
    }
}
