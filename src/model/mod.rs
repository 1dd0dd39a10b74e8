//! Domain types of the connector model, each parsed once and valid from then on.
//!
//! Every validation rule of `EXCHANGE-SPEC.md` lives here, pure and unit-tested,
//! so the API, the dashboard and config import share one truth. Nothing here
//! touches SQL, sockets or the clock.

#[macro_use]
mod string_type;
pub mod accepted_domain;
pub mod acme;
pub mod address;
pub mod address_rewrite;
pub mod address_space;
pub mod anti_spam;
pub mod api_token;
pub mod attachment_filter;
pub mod auth;
pub mod binding;
pub mod certificate;
pub mod content_filter;
pub mod credential;
pub mod dkim;
pub mod domain;
pub mod drain;
pub mod edge_rule;
pub mod error;
pub mod ip_range;
pub mod limit;
pub mod permissions;
pub mod receive_connector;
pub mod recipient;
pub mod schema;
pub mod send_connector;
pub mod sender_id;
pub mod timespan;
pub mod transport_settings;
pub mod webhook;

pub use accepted_domain::{AcceptedDomain, DomainType, MailboxDelivery, RecipientDirectory};
pub use address::Address;
pub use address_space::{AddressSpace, Space};
pub use auth::{AuthMechanism, AuthMechanisms, SmartHostAuthMechanism};
pub use binding::Binding;
pub use certificate::{CertificateKind, CertificateRecord};
pub use credential::{Credential, CredentialKind, LoginPrincipal};
pub use domain::{Domain, DomainPattern, Host};
pub use error::{FieldError, Invalid};
pub use ip_range::IpRange;
pub use limit::Limit;
pub use permissions::{ExtendedRight, PermissionGroup, PermissionGroups, Principal, RightEntry};
pub use receive_connector::{ReceiveConnector, ReceiveUsage};
pub use send_connector::{SendConnector, SendUsage};
pub use timespan::Timespan;
pub use transport_settings::TransportSettings;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The role a Ferry server plays, chosen at first start and fixed from then on.
/// Several rules differ by role (spec §1.2, §1.3, §1.5, §1.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum Role {
    /// An Edge Transport server: faces the Internet, has no directory.
    Edge,
    /// A Hub Transport server: inside the organisation, delivers to mailboxes.
    Hub,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Edge => "Edge",
            Role::Hub => "Hub",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "edge" => Ok(Role::Edge),
            "hub" => Ok(Role::Hub),
            _ => Err(format!("unknown role '{s}': expected 'edge' or 'hub'")),
        }
    }
}

/// What validation needs to know about the server an object lives on.
#[derive(Debug, Clone)]
pub struct ServerContext {
    pub role: Role,
    /// The server's short name (`EDGE01`), used in default connector names.
    pub server_name: String,
    /// The server's FQDN, the default for every connector `fqdn`.
    pub fqdn: Domain,
}

/// `None` or `Verbose`, for receive and send connectors (spec rule 27).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, Default)]
pub enum ProtocolLoggingLevel {
    #[default]
    None,
    Verbose,
}

/// Deserializes a JSON value into a model type, naming the JSON path of the
/// first field that does not fit (`remoteIpRanges[1]`, `smartHosts[0]`).
pub fn from_json<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> Result<T, Invalid> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        // serde names missing and unknown fields itself; lift the name into the path.
        let (field, message) = if let Some(name) = inner.strip_prefix("missing field `") {
            let name = name.split('`').next().unwrap_or_default();
            (join_path(&path, name), "is required".to_string())
        } else if let Some(name) = inner.strip_prefix("unknown field `") {
            let name = name.split('`').next().unwrap_or_default();
            let field = if path.ends_with(name) {
                path
            } else {
                join_path(&path, name)
            };
            (field, "is not a known field".to_string())
        } else {
            (if path == "." { String::new() } else { path }, inner)
        };
        Invalid::field(field, message)
    })
}

fn join_path(path: &str, name: &str) -> String {
    if path == "." || path.is_empty() {
        name.to_string()
    } else {
        format!("{path}.{name}")
    }
}

/// RFC 7396 JSON merge patch: objects merge key by key, `null` removes a key,
/// anything else replaces.
pub fn merge_patch(target: &mut serde_json::Value, patch: &serde_json::Value) {
    use serde_json::Value;
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = Value::Object(Default::default());
            }
            let t = target.as_object_mut().expect("object");
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        other => *target = other.clone(),
    }
}

/// Applies a merge patch to an object, refusing changes to fields that can
/// only be set at creation, and parses the result again so every rule is
/// checked on the whole new object.
pub fn apply_patch<T>(
    current: &T,
    patch: &serde_json::Value,
    create_only: &[&str],
) -> Result<T, Invalid>
where
    T: serde::Serialize + serde::de::DeserializeOwned,
{
    let Some(obj) = patch.as_object() else {
        return Err(Invalid::field(
            "",
            "a PATCH body must be a JSON object (RFC 7396 merge patch)",
        ));
    };
    let mut value = serde_json::to_value(current).expect("model types serialize");
    for field in create_only {
        if let Some(v) = obj.get(*field)
            && value.get(*field) != Some(v)
        {
            return Err(Invalid::field(
                *field,
                "can only be set when the object is created",
            ));
        }
    }
    merge_patch(&mut value, patch);
    from_json(value)
}

/// Names: what every configuration object is called by. Short, printable,
/// without leading or trailing blanks.
pub fn check_name(errors: &mut error::Errors, name: &str, max: usize) {
    if name.trim().is_empty() {
        errors.add("name", "is required");
    } else if name.trim() != name {
        errors.add("name", "must not start or end with blanks");
    } else if name.chars().count() > max {
        errors.add("name", format!("must be at most {max} characters"));
    } else if name.chars().any(|c| c.is_control()) || name.contains('/') {
        errors.add("name", "must not contain control characters or '/'");
    } else if name.chars().any(is_invisible) {
        errors.add(
            "name",
            "must not contain bidirectional controls or zero-width characters, which make two \
             names look alike or reorder what an admin reads",
        );
    }
}

/// Bidi embeddings, overrides, isolates and marks, and zero-width
/// characters (the "Trojan Source" set, CVE-2021-42574).
fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{061C}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}')
}

#[cfg(test)]
mod json_tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_refuse_invisible_characters() {
        for bad in [
            "a\u{202E}b",
            "zero\u{200B}width",
            "\u{FEFF}bom",
            "iso\u{2066}late",
        ] {
            let mut e = error::Errors::default();
            check_name(&mut e, bad, 64);
            assert!(e.finish().is_err(), "{bad:?}");
        }
        let mut e = error::Errors::default();
        check_name(&mut e, "Frôm Intérnet 1", 64);
        assert!(e.finish().is_ok());
    }

    #[test]
    fn merge_patch_follows_rfc7396() {
        let mut v = json!({"a": 1, "b": {"c": 2, "d": 3}});
        merge_patch(&mut v, &json!({"a": null, "b": {"c": 5}, "e": [1]}));
        assert_eq!(v, json!({"b": {"c": 5, "d": 3}, "e": [1]}));
    }

    #[test]
    fn parse_errors_name_the_field() {
        #[derive(serde::Deserialize, Debug)]
        #[serde(deny_unknown_fields, rename_all = "camelCase")]
        #[allow(dead_code)]
        struct T {
            ranges: Vec<IpRange>,
            port: u16,
        }
        let e = from_json::<T>(json!({"ranges": ["10.0.0.1", "nope"], "port": 1})).unwrap_err();
        assert_eq!(e.first_field(), "ranges[1]");
        let e = from_json::<T>(json!({"ranges": [], "port": 1, "extra": 1})).unwrap_err();
        assert_eq!(e.first_field(), "extra");
        let e = from_json::<T>(json!({"ranges": []})).unwrap_err();
        assert_eq!(e.first_field(), "port");
    }
}
