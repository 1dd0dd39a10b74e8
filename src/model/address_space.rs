//! Send connector address spaces, written `[Type:]Space[;Cost]` as in
//! `New-SendConnector -AddressSpaces` (spec §1.2).

use std::fmt;
use std::str::FromStr;

use super::domain::{Domain, DomainPattern};

/// What an address space covers.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Space {
    /// `*`: every domain.
    All,
    /// `contoso.com` or `*.contoso.com`.
    Domain(DomainPattern),
    /// `--`: every Authoritative and InternalRelay accepted domain (Edge only).
    AcceptedDomains,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AddressSpace {
    pub space: Space,
    /// 1–100, lower is preferred.
    pub cost: u8,
}

impl AddressSpace {
    /// How specifically this space matches `domain`, or `None` if it does not:
    /// more matched labels win, then an exact domain beats `*.domain`, and `*`
    /// ranks below everything (spec rules 15–16). `--` is ranked as the
    /// accepted domain that matched, which the caller supplies.
    pub fn specificity(&self, domain: &Domain) -> Option<(usize, bool)> {
        match &self.space {
            Space::All => Some((0, false)),
            Space::Domain(p) if p.matches(domain) => Some((p.domain().labels(), !p.is_wildcard())),
            Space::Domain(_) => None,
            Space::AcceptedDomains => None,
        }
    }
}

impl FromStr for AddressSpace {
    type Err = String;
    fn from_str(input: &str) -> Result<Self, String> {
        let s = input.trim();
        let (rest, cost) = match s.rsplit_once(';') {
            Some((rest, cost)) => {
                let cost: u8 = cost
                    .trim()
                    .parse()
                    .ok()
                    .filter(|c| (1..=100).contains(c))
                    .ok_or_else(|| {
                        format!("'{input}': the cost must be a whole number from 1 to 100")
                    })?;
                (rest, cost)
            }
            None => (s, 1),
        };
        let space = match rest.split_once(':') {
            Some((kind, space)) if kind.eq_ignore_ascii_case("smtp") => space,
            Some((kind, _)) => {
                return Err(format!(
                    "'{input}': only SMTP address spaces are supported, not '{kind}' \
                     (non-SMTP types belong to foreign connectors, which Ferry does not have)"
                ));
            }
            None => rest,
        };
        let space = match space.trim() {
            "*" => Space::All,
            "--" => Space::AcceptedDomains,
            d => Space::Domain(d.parse().map_err(|e| format!("'{input}': {e}"))?),
        };
        Ok(AddressSpace { space, cost })
    }
}

impl fmt::Display for AddressSpace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let space = match &self.space {
            Space::All => "*".to_string(),
            Space::AcceptedDomains => "--".to_string(),
            Space::Domain(p) => p.to_string(),
        };
        write!(f, "SMTP:{space};{}", self.cost)
    }
}

string_type!(
    AddressSpace,
    "An address space `[SMTP:]Space[;Cost]`: Space is `*`, `contoso.com`, `*.contoso.com` or `--` (the accepted domains, Edge only); Cost 1-100, default 1.",
    "SMTP:*.contoso.com;10"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_with_and_without_type_and_cost() {
        assert_eq!("*".parse::<AddressSpace>().unwrap().to_string(), "SMTP:*;1");
        assert_eq!(
            "smtp:--;1".parse::<AddressSpace>().unwrap().space,
            Space::AcceptedDomains
        );
        let a: AddressSpace = "SMTP:*.contoso.com;100".parse().unwrap();
        assert_eq!(a.cost, 100);
        assert_eq!(a.to_string(), "SMTP:*.contoso.com;100");
    }

    #[test]
    fn rejects_bad_cost_type_and_wildcards() {
        for bad in [
            "*;0",
            "*;101",
            "*;x",
            "X400:c=us;1",
            "*contoso.com",
            "SMTP:;1",
        ] {
            assert!(bad.parse::<AddressSpace>().is_err(), "{bad}");
        }
    }

    #[test]
    fn specificity_orders_exact_over_wildcard_over_star() {
        let d: Domain = "marketing.contoso.com".parse().unwrap();
        let exact = "marketing.contoso.com"
            .parse::<AddressSpace>()
            .unwrap()
            .specificity(&d);
        let wild = "*.contoso.com"
            .parse::<AddressSpace>()
            .unwrap()
            .specificity(&d);
        let star = "*".parse::<AddressSpace>().unwrap().specificity(&d);
        assert!(exact > wild && wild > star);
        assert_eq!(
            "fabrikam.com"
                .parse::<AddressSpace>()
                .unwrap()
                .specificity(&d),
            None
        );
    }
}
