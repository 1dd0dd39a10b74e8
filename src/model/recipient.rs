//! Recipients of the directory Ferry holds (the recipient list source of
//! recipient validation, and a Hub's mailbox directory): a primary address
//! and its aliases, each an address `local@domain`, compared
//! case-insensitively (as Exchange's proxy addresses are).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::{Errors, Invalid};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DirectoryRecipient {
    #[schema(schema_with = super::schema::email_address)]
    pub primary_address: String,
    #[serde(default)]
    #[schema(schema_with = super::schema::email_addresses)]
    pub aliases: Vec<String>,
}

fn valid_address(a: &str) -> bool {
    match a.rsplit_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.parse::<super::Domain>().is_ok()
                && !a
                    .chars()
                    .any(|c| c.is_control() || c == ' ' || c == '<' || c == '>')
                && a.len() <= 320
        }
        None => false,
    }
}

impl DirectoryRecipient {
    /// Every address it answers to, lower-cased, primary first.
    pub fn addresses(&self) -> impl Iterator<Item = String> + '_ {
        std::iter::once(&self.primary_address)
            .chain(self.aliases.iter())
            .map(|a| a.to_ascii_lowercase())
    }
}

/// Checks a set of recipients: every address valid, and no address claimed
/// twice (within the set, or by `existing` outside the recipients being
/// written). Fields are named by their JSON path under `items`.
pub fn validate(
    recipients: &[DirectoryRecipient],
    existing: &HashMap<String, String>,
) -> Result<(), Invalid> {
    let mut e = Errors::default();
    let mut seen: HashMap<String, usize> = HashMap::with_capacity(recipients.len() * 2);
    for (i, r) in recipients.iter().enumerate() {
        let primary = r.primary_address.to_ascii_lowercase();
        for (j, a) in std::iter::once(&r.primary_address)
            .chain(r.aliases.iter())
            .enumerate()
        {
            let field = if j == 0 {
                format!("items[{i}].primaryAddress")
            } else {
                format!("items[{i}].aliases[{}]", j - 1)
            };
            if !valid_address(a) {
                e.add(field, "must be an address local@domain");
                continue;
            }
            let lower = a.to_ascii_lowercase();
            if let Some(k) = seen.insert(lower.clone(), i)
                && k != i
            {
                e.add(field, format!("{a} is also an address of items[{k}]"));
            } else if let Some(owner) = existing.get(&lower)
                && *owner != primary
            {
                e.add(field, format!("{a} already belongs to {owner}"));
            }
        }
        if e.len() >= 20 {
            break;
        }
    }
    e.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(p: &str, aliases: &[&str]) -> DirectoryRecipient {
        DirectoryRecipient {
            primary_address: p.into(),
            aliases: aliases.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn addresses_are_unique_across_recipients_and_valid() {
        let none = HashMap::new();
        assert!(validate(&[r("bob@contoso.test", &["robert@contoso.test"])], &none).is_ok());
        let e = validate(
            &[
                r("bob@contoso.test", &[]),
                r("carol@contoso.test", &["BOB@contoso.test"]),
            ],
            &none,
        )
        .unwrap_err();
        assert_eq!(e.0[0].field, "items[1].aliases[0]");
        let e = validate(&[r("nobody", &[])], &none).unwrap_err();
        assert_eq!(e.0[0].field, "items[0].primaryAddress");
        let existing = HashMap::from([(
            "bob@contoso.test".to_string(),
            "bob@contoso.test".to_string(),
        )]);
        let e = validate(
            &[r("robert@contoso.test", &["bob@contoso.test"])],
            &existing,
        )
        .unwrap_err();
        assert!(e.0[0].message.contains("already belongs"));
        // Rewriting a recipient's own addresses is fine.
        assert!(validate(&[r("bob@contoso.test", &[])], &existing).is_ok());
    }
}
