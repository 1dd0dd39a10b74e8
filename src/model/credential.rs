//! Credentials: logins that SMTP clients AUTH as, and smart-host credentials
//! that send connectors present. The secrets themselves never live in these
//! types; the store keeps an argon2 hash (logins) or an AEAD ciphertext
//! (smart-host credentials) beside them.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::error::{Errors, Invalid};
use super::{check_name, from_json, merge_patch};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum CredentialKind {
    /// A user name and password that SMTP clients may AUTH as.
    Login,
    /// A user name and password that a send connector presents to its smart hosts.
    SmartHost,
}

/// Which permission group an authenticated login belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, Default)]
pub enum LoginPrincipal {
    /// `ExchangeUsers`: a person submitting mail.
    #[default]
    User,
    /// `ExchangeServers`: a partner transport server (e.g. a Hub relaying through an Edge).
    Server,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Credential {
    /// Unique; send connectors refer to smart-host credentials by it.
    #[schema(schema_with = super::schema::object_name)]
    pub name: String,
    /// Set at creation only.
    pub kind: CredentialKind,
    /// The AUTH identity.
    #[schema(schema_with = super::schema::user_name)]
    pub user_name: String,
    /// Logins only.
    pub principal: Option<LoginPrincipal>,
    pub comment: Option<String>,
    /// Logins only: the address this login sends as (Exchange's
    /// PrimarySmtpAddress). A login made with a user name that is an
    /// address gets it as its primary address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = super::schema::optional_email_address)]
    pub primary_address: Option<String>,
    /// Logins only: the other addresses it may send as (proxy addresses).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(schema_with = super::schema::email_addresses)]
    pub aliases: Vec<String>,
    /// Logins only, instead of `primaryAddress` and `aliases`: a recipient
    /// of Ferry's directory (`/api/v1/recipients`), by any of its
    /// addresses, whose primary address and aliases this login sends as —
    /// kept in step with the directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = super::schema::optional_email_address)]
    pub directory_recipient: Option<String>,
}

/// Two mailboxes are the same when their domains match case-insensitively
/// and their local parts exactly (RFC 5321 §2.4: the local part is case
/// sensitive; only its owner's server may fold it).
pub fn same_mailbox(a: &str, b: &str) -> bool {
    match (a.rsplit_once('@'), b.rsplit_once('@')) {
        (Some((la, da)), Some((lb, db))) => la == lb && da.eq_ignore_ascii_case(db),
        _ => false,
    }
}

/// Whether a text is an address a login can send as: `local@domain`.
fn is_mailbox(a: &str) -> bool {
    super::Address::parse(a).is_ok_and(|x| {
        !x.local_part().is_empty() && x.domain_name().is_some() && !x.has_source_routing()
    })
}

const CREATE_ONLY: &[&str] = &["kind"];

/// Takes the write-only password out of a request body.
pub fn take_password(body: &mut Value, required: bool) -> Result<Option<String>, Invalid> {
    let Some(obj) = body.as_object_mut() else {
        return Err(Invalid::field("", "the body must be a JSON object"));
    };
    match obj.remove("password") {
        None | Some(Value::Null) if required => Err(Invalid::field("password", "is required")),
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(p)) => {
            if p.is_empty() || p.len() > 1024 {
                Err(Invalid::field("password", "must be 1 to 1024 bytes"))
            } else if p.contains('\0') {
                Err(Invalid::field(
                    "password",
                    "must not contain NUL, which SASL PLAIN cannot carry",
                ))
            } else {
                Ok(Some(p))
            }
        }
        Some(_) => Err(Invalid::field("password", "must be a string")),
    }
}

impl Credential {
    pub fn from_create(body: &Value) -> Result<Self, Invalid> {
        let obj = body
            .as_object()
            .ok_or_else(|| Invalid::field("", "the body must be a JSON object"))?;
        let kind: CredentialKind = match obj.get("kind") {
            Some(k) => {
                from_json(k.clone()).map_err(|e| Invalid::field("kind", e.0[0].message.clone()))?
            }
            None => {
                return Err(Invalid::field(
                    "kind",
                    "is required: 'Login' or 'SmartHost'",
                ));
            }
        };
        if !obj.get("userName").is_some_and(Value::is_string) {
            return Err(Invalid::field("userName", "is required"));
        }
        let mut value = serde_json::json!({
            "name": obj.get("userName").cloned().unwrap_or(Value::Null),
            "principal": if kind == CredentialKind::Login { serde_json::json!("User") } else { Value::Null },
        });
        merge_patch(&mut value, body);
        let mut c: Self = from_json(value)?;
        // A user name that is an address is the login's own primary address.
        if c.kind == CredentialKind::Login
            && c.primary_address.is_none()
            && c.directory_recipient.is_none()
            && is_mailbox(&c.user_name)
        {
            c.primary_address = Some(c.user_name.clone());
        }
        c.validate()?;
        Ok(c)
    }

    pub fn patched(&self, patch: &Value) -> Result<Self, Invalid> {
        let c: Self = super::apply_patch(self, patch, CREATE_ONLY)?;
        c.validate()?;
        Ok(c)
    }

    pub fn validate(&self) -> Result<(), Invalid> {
        let mut e = Errors::default();
        check_name(&mut e, &self.name, 64);
        let u = &self.user_name;
        e.check(
            u.is_empty()
                || u.chars().count() > 256
                || u.chars().any(|c| c.is_control() || c == '\0'),
            "userName",
            "must be 1 to 256 characters without control characters",
        );
        match self.kind {
            CredentialKind::Login => e.check(
                self.principal.is_none(),
                "principal",
                "is required for a login",
            ),
            CredentialKind::SmartHost => {
                e.check(
                    self.principal.is_some(),
                    "principal",
                    "applies to logins only",
                );
                for (field, set) in [
                    ("primaryAddress", self.primary_address.is_some()),
                    ("aliases", !self.aliases.is_empty()),
                    ("directoryRecipient", self.directory_recipient.is_some()),
                ] {
                    e.check(set, field, "applies to logins only");
                }
            }
        }
        if let Some(p) = &self.primary_address {
            e.check(
                !is_mailbox(p),
                "primaryAddress",
                format!("'{p}' is not an address like user@contoso.com"),
            );
        }
        e.check(
            self.aliases.len() > 1000,
            "aliases",
            "at most 1000 addresses",
        );
        for (i, a) in self.aliases.iter().enumerate() {
            let field = format!("aliases[{i}]");
            e.check(
                !is_mailbox(a),
                &field,
                format!("'{a}' is not an address like user@contoso.com"),
            );
            let earlier = self.primary_address.iter().chain(&self.aliases[..i]);
            e.check(
                earlier.clone().any(|b| same_mailbox(a, b)),
                &field,
                format!("'{a}' is listed twice"),
            );
        }
        if let Some(d) = &self.directory_recipient {
            e.check(
                !is_mailbox(d),
                "directoryRecipient",
                format!("'{d}' is not an address like user@contoso.com"),
            );
            if self.primary_address.is_some() || !self.aliases.is_empty() {
                e.joint(
                    "directoryRecipient",
                    &["primaryAddress", "aliases"],
                    "takes the addresses from the directory: leave primaryAddress and aliases out",
                );
            }
        }
        e.finish()
    }

    /// The addresses this login sends as, primary first: its own, or those
    /// of the directory recipient it is linked to.
    pub fn send_as(&self, directory: &crate::directory::Directory) -> Vec<String> {
        match &self.directory_recipient {
            Some(d) => directory
                .get(d)
                .map(|r| {
                    std::iter::once(r.primary_address.clone())
                        .chain(r.aliases)
                        .collect()
                })
                .unwrap_or_default(),
            None => self
                .primary_address
                .iter()
                .chain(&self.aliases)
                .cloned()
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn logins_default_to_user_principal() {
        let c = Credential::from_create(&json!({"kind": "Login", "userName": "hub01"})).unwrap();
        assert_eq!(c.principal, Some(LoginPrincipal::User));
        assert_eq!(c.name, "hub01");
    }

    #[test]
    fn a_user_name_that_is_an_address_is_the_primary_address() {
        let c = Credential::from_create(&json!({"kind": "Login", "userName": "ann@contoso.test"}))
            .unwrap();
        assert_eq!(c.primary_address.as_deref(), Some("ann@contoso.test"));
        let c = Credential::from_create(&json!({"kind": "Login", "userName": "pfuser"})).unwrap();
        assert_eq!(c.primary_address, None);
        let e = Credential::from_create(&json!({"kind": "Login", "userName": "u",
            "primaryAddress": "a@contoso.test", "aliases": ["b@contoso.test", "a@CONTOSO.test"]}))
        .unwrap_err();
        assert_eq!(e.first_field(), "aliases[1]");
        let e = Credential::from_create(&json!({"kind": "Login", "userName": "u",
            "primaryAddress": "not an address"}))
        .unwrap_err();
        assert_eq!(e.first_field(), "primaryAddress");
    }

    #[test]
    fn local_parts_are_case_sensitive_domains_are_not() {
        assert!(same_mailbox("Ann@contoso.test", "Ann@CONTOSO.TEST"));
        assert!(!same_mailbox("Ann@contoso.test", "ann@contoso.test"));
        assert!(!same_mailbox("ann@contoso.test", "ann@contoso.test.evil"));
    }

    #[test]
    fn smart_host_credentials_have_no_principal() {
        let e = Credential::from_create(
            &json!({"kind": "SmartHost", "userName": "u", "principal": "Server"}),
        )
        .unwrap_err();
        assert_eq!(e.first_field(), "principal");
    }

    #[test]
    fn password_is_taken_out_and_checked() {
        let mut b = json!({"kind": "Login", "userName": "u", "password": "s3cret"});
        assert_eq!(
            take_password(&mut b, true).unwrap().as_deref(),
            Some("s3cret")
        );
        assert!(b.get("password").is_none());
        assert_eq!(
            take_password(&mut json!({}), true)
                .unwrap_err()
                .first_field(),
            "password"
        );
        assert!(take_password(&mut json!({"password": "a\u{0}b"}), true).is_err());
    }
}
