//! Address rewriting (New-AddressRewriteEntry): an organisation's internal
//! addresses shown to the Internet as external ones, and mail to the
//! external ones brought back inside. The rules here are pure; the agent
//! that applies them to the envelope and the address headers comes with the
//! content agents.
//!
//! An entry maps, as Exchange's do:
//! - one address to one address (`john@corp.contoso.test` ↔ `support@contoso.test`);
//! - a domain to a domain (`corp.contoso.test` ↔ `contoso.test`), the local
//!   part kept;
//! - a domain and all its subdomains to one domain (`*.contoso.test` →
//!   `contoso.test`), which cannot be undone inbound and so must be
//!   `outboundOnly`.
//!
//! `exceptionList` names internal addresses or subdomains a domain entry
//! leaves alone.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::error::{Errors, Invalid};
use super::{check_name, from_json, merge_patch};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AddressRewriteEntry {
    /// Unique.
    #[schema(schema_with = super::schema::object_name)]
    pub name: String,
    /// An address, a domain, or `*.domain` (the domain and its subdomains).
    pub internal_address: String,
    /// An address when the internal side is one; a domain otherwise.
    pub external_address: String,
    /// Internal addresses or subdomains a domain entry does not rewrite.
    #[serde(default)]
    pub exception_list: Vec<String>,
    /// Rewrite outbound only: mail to the external address is not brought
    /// back inside. Required for `*.domain` entries.
    pub outbound_only: bool,
}

/// What the internal side of an entry is.
enum Side<'a> {
    Address(&'a str),
    Domain(&'a str),
    DomainAndSubdomains(&'a str),
}

impl AddressRewriteEntry {
    pub fn from_create(body: &Value) -> Result<Self, Invalid> {
        let mut value = serde_json::json!({"outboundOnly": false});
        merge_patch(&mut value, body);
        let e: Self = from_json(value)?;
        e.validate()?;
        Ok(e)
    }

    pub fn patched(&self, patch: &Value) -> Result<Self, Invalid> {
        let e: Self = super::apply_patch(self, patch, &[])?;
        e.validate()?;
        Ok(e)
    }

    fn internal(&self) -> Side<'_> {
        let i = self.internal_address.as_str();
        if let Some(d) = i.strip_prefix("*.") {
            Side::DomainAndSubdomains(d)
        } else if i.contains('@') {
            Side::Address(i)
        } else {
            Side::Domain(i)
        }
    }

    pub fn validate(&self) -> Result<(), Invalid> {
        let mut e = Errors::default();
        check_name(&mut e, &self.name, 64);
        let domain = |d: &str| d.parse::<super::Domain>().is_ok();
        let address = |a: &str| {
            a.rsplit_once('@')
                .is_some_and(|(l, d)| !l.is_empty() && domain(d))
        };
        match self.internal() {
            Side::Address(a) => {
                e.check(
                    !address(a),
                    "internalAddress",
                    "must be an address, a domain or *.domain",
                );
                e.check(
                    !address(&self.external_address),
                    "externalAddress",
                    "must be an address when the internal side is one",
                );
            }
            Side::Domain(d) | Side::DomainAndSubdomains(d) => {
                e.check(
                    !domain(d),
                    "internalAddress",
                    "must be an address, a domain or *.domain",
                );
                e.check(
                    !domain(&self.external_address),
                    "externalAddress",
                    "must be a domain when the internal side is one",
                );
            }
        }
        e.check(
            matches!(self.internal(), Side::DomainAndSubdomains(_)) && !self.outbound_only,
            "outboundOnly",
            "must be true for *.domain: many domains cannot be rewritten back into one",
        );
        e.finish()
    }

    fn excepted(&self, address: &str, domain: &str) -> bool {
        self.exception_list.iter().any(|x| {
            x.eq_ignore_ascii_case(address)
                || x.eq_ignore_ascii_case(domain)
                || x.strip_prefix("*.").is_some_and(|d| {
                    domain
                        .to_ascii_lowercase()
                        .ends_with(&format!(".{}", d.to_ascii_lowercase()))
                })
        })
    }

    /// The external form of an internal address, if this entry rewrites it.
    pub fn outbound(&self, address: &str) -> Option<String> {
        let (local, domain) = address.rsplit_once('@')?;
        if self.excepted(address, domain) {
            return None;
        }
        let lower = domain.to_ascii_lowercase();
        match self.internal() {
            Side::Address(a) => a
                .eq_ignore_ascii_case(address)
                .then(|| self.external_address.clone()),
            Side::Domain(d) => d
                .eq_ignore_ascii_case(domain)
                .then(|| format!("{local}@{}", self.external_address)),
            Side::DomainAndSubdomains(d) => {
                let d = d.to_ascii_lowercase();
                (lower == d || lower.ends_with(&format!(".{d}")))
                    .then(|| format!("{local}@{}", self.external_address))
            }
        }
    }

    /// The internal form of an external address, if this entry brings it
    /// back inside (never for `outboundOnly`).
    pub fn inbound(&self, address: &str) -> Option<String> {
        if self.outbound_only {
            return None;
        }
        let (local, domain) = address.rsplit_once('@')?;
        let back = match self.internal() {
            Side::Address(a) => self
                .external_address
                .eq_ignore_ascii_case(address)
                .then(|| a.to_string()),
            Side::Domain(d) => self
                .external_address
                .eq_ignore_ascii_case(domain)
                .then(|| format!("{local}@{d}")),
            Side::DomainAndSubdomains(_) => None,
        }?;
        let (_, back_domain) = back.rsplit_once('@')?;
        (!self.excepted(&back, back_domain)).then_some(back)
    }
}

/// The entries, as one document (Get-AddressRewriteEntry).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AddressRewriteEntries {
    pub entries: Vec<AddressRewriteEntry>,
}

impl AddressRewriteEntries {
    /// With `entry` added, or replacing the one named `replacing`; names
    /// are unique case-insensitively.
    pub fn with(
        &self,
        entry: AddressRewriteEntry,
        replacing: Option<&str>,
    ) -> Result<AddressRewriteEntries, Invalid> {
        let mut entries: Vec<AddressRewriteEntry> = self
            .entries
            .iter()
            .filter(|e| replacing.is_none_or(|n| !e.name.eq_ignore_ascii_case(n)))
            .cloned()
            .collect();
        if entries
            .iter()
            .any(|e| e.name.eq_ignore_ascii_case(&entry.name))
        {
            return Err(Invalid::field(
                "name",
                format!("an entry named {} exists", entry.name),
            ));
        }
        if entries.iter().any(|e| {
            e.internal_address
                .eq_ignore_ascii_case(&entry.internal_address)
        }) {
            return Err(Invalid::field(
                "internalAddress",
                format!("{} is rewritten by another entry", entry.internal_address),
            ));
        }
        entries.push(entry);
        Ok(AddressRewriteEntries { entries })
    }
}

/// The first entry's rewrite of an address, most specific entries first
/// (an address entry before a domain entry before `*.domain`).
pub fn rewrite(entries: &[AddressRewriteEntry], address: &str, outbound: bool) -> Option<String> {
    let rank = |e: &AddressRewriteEntry| match e.internal() {
        Side::Address(_) => 0,
        Side::Domain(_) => 1,
        Side::DomainAndSubdomains(_) => 2,
    };
    let mut ordered: Vec<&AddressRewriteEntry> = entries.iter().collect();
    ordered.sort_by_key(|e| rank(e));
    ordered.into_iter().find_map(|e| {
        if outbound {
            e.outbound(address)
        } else {
            e.inbound(address)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entry(v: Value) -> AddressRewriteEntry {
        AddressRewriteEntry::from_create(&v).unwrap()
    }

    #[test]
    fn addresses_and_domains_round_trip_and_subdomains_go_out_only() {
        let entries = vec![
            entry(
                json!({"name": "support", "internalAddress": "john@corp.contoso.test", "externalAddress": "support@contoso.test"}),
            ),
            entry(
                json!({"name": "corp", "internalAddress": "corp.contoso.test", "externalAddress": "contoso.test",
                         "exceptionList": ["ceo@corp.contoso.test"]}),
            ),
            entry(
                json!({"name": "branches", "internalAddress": "*.branch.contoso.test", "externalAddress": "contoso.test",
                         "outboundOnly": true}),
            ),
        ];
        // The address entry wins over the domain entry, both ways.
        assert_eq!(
            rewrite(&entries, "John@corp.contoso.test", true).as_deref(),
            Some("support@contoso.test")
        );
        assert_eq!(
            rewrite(&entries, "support@contoso.test", false).as_deref(),
            Some("john@corp.contoso.test")
        );
        // The domain entry keeps the local part, and comes back.
        assert_eq!(
            rewrite(&entries, "mary@corp.contoso.test", true).as_deref(),
            Some("mary@contoso.test")
        );
        assert_eq!(
            rewrite(&entries, "mary@contoso.test", false).as_deref(),
            Some("mary@corp.contoso.test")
        );
        // Exceptions stay as they are, out and in.
        assert_eq!(rewrite(&entries, "ceo@corp.contoso.test", true), None);
        assert_eq!(rewrite(&entries, "ceo@contoso.test", false), None);
        // Subdomains collapse outbound, and nothing comes back through them.
        assert_eq!(
            rewrite(&entries, "li@paris.branch.contoso.test", true).as_deref(),
            Some("li@contoso.test")
        );
        assert_eq!(rewrite(&entries, "x@fabrikam.test", true), None);
    }

    #[test]
    fn entries_that_cannot_work_are_refused_by_field() {
        let bad = |v: Value| {
            AddressRewriteEntry::from_create(&v).unwrap_err().0[0]
                .field
                .clone()
        };
        assert_eq!(
            bad(
                json!({"name": "x", "internalAddress": "*.contoso.test", "externalAddress": "contoso.test"})
            ),
            "outboundOnly"
        );
        assert_eq!(
            bad(
                json!({"name": "x", "internalAddress": "a@contoso.test", "externalAddress": "contoso.test"})
            ),
            "externalAddress"
        );
        assert_eq!(
            bad(
                json!({"name": "x", "internalAddress": "not a domain", "externalAddress": "contoso.test"})
            ),
            "internalAddress"
        );
    }
}
