//! Authentication mechanisms of receive connectors (flags, spec §1.3) and
//! of send connectors towards smart hosts (one value, spec §1.2).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::Errors;

/// One receive-connector authentication mechanism.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
pub enum AuthMechanism {
    /// No authentication at all; valid only alone.
    None,
    /// STARTTLS is offered (needs a certificate for the connector's FQDN).
    Tls,
    /// NTLM/Kerberos. Kept for fidelity with Exchange's defaults; Ferry has no
    /// directory, so it is never advertised.
    Integrated,
    /// AUTH PLAIN/LOGIN against Ferry's logins, offered before and after TLS.
    BasicAuth,
    /// Basic auth only after STARTTLS; needs `BasicAuth` and `Tls`.
    #[serde(rename = "BasicAuthRequireTLS")]
    #[schema(rename = "BasicAuthRequireTLS")]
    BasicAuthRequireTls,
    /// Exchange server authentication (X-EXPS). Kept for fidelity; Ferry uses
    /// basic auth over TLS or mutual TLS instead (spec rule 13).
    ExchangeServer,
    /// The whole connection is trusted as an externally secured server, with
    /// no handshake: RemoteIPRanges is the only guard. Combines only with
    /// `Tls` and needs the `ExchangeServers` permission group.
    ExternalAuthoritative,
}

/// A set of receive-connector authentication mechanisms.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema, Default)]
#[serde(transparent)]
pub struct AuthMechanisms(pub Vec<AuthMechanism>);

impl AuthMechanisms {
    pub fn of(items: &[AuthMechanism]) -> Self {
        let mut v = items.to_vec();
        v.sort();
        v.dedup();
        AuthMechanisms(v)
    }

    pub fn has(&self, m: AuthMechanism) -> bool {
        self.0.contains(&m)
    }

    pub fn normalize(&mut self) {
        self.0.sort();
        self.0.dedup();
        if self.0.is_empty() {
            self.0.push(AuthMechanism::None);
        }
    }

    /// The combination rules of spec §1.3 that need only the set itself.
    pub fn validate(&self, errors: &mut Errors, field: &str) {
        use AuthMechanism::*;
        if self.has(None) && self.0.len() > 1 {
            errors.add(field, "'None' cannot be combined with other mechanisms");
        }
        if self.has(BasicAuthRequireTls) && !(self.has(BasicAuth) && self.has(Tls)) {
            errors.add(
                field,
                "'BasicAuthRequireTLS' needs both 'BasicAuth' and 'Tls'",
            );
        }
        if self.has(ExternalAuthoritative)
            && self
                .0
                .iter()
                .any(|m| !matches!(m, ExternalAuthoritative | Tls))
        {
            errors.add(
                field,
                "'ExternalAuthoritative' can only be combined with 'Tls'",
            );
        }
    }
}

/// How a send connector authenticates to its smart hosts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, Default)]
pub enum SmartHostAuthMechanism {
    #[default]
    None,
    /// AUTH with the connector's credential, over TLS when offered.
    BasicAuth,
    /// STARTTLS first, validating the smart host's certificate against its
    /// configured name, then AUTH; credentials never travel in clear.
    #[serde(rename = "BasicAuthRequireTLS")]
    #[schema(rename = "BasicAuthRequireTLS")]
    BasicAuthRequireTls,
    /// Exchange server authentication; not available without a directory.
    ExchangeServer,
    /// The smart host is trusted by configuration (e.g. an IPsec path).
    ExternalAuthoritative,
}

impl SmartHostAuthMechanism {
    pub fn needs_credential(self) -> bool {
        matches!(self, Self::BasicAuth | Self::BasicAuthRequireTls)
    }
}

#[cfg(test)]
mod tests {
    use super::AuthMechanism::*;
    use super::*;

    fn check(items: &[AuthMechanism]) -> bool {
        let mut e = Errors::default();
        AuthMechanisms::of(items).validate(&mut e, "authMechanism");
        e.finish().is_ok()
    }

    #[test]
    fn none_only_alone() {
        assert!(check(&[None]));
        assert!(!check(&[None, Tls]));
    }

    #[test]
    fn basic_auth_require_tls_needs_basic_and_tls() {
        assert!(!check(&[BasicAuthRequireTls, Tls]));
        assert!(!check(&[BasicAuthRequireTls, BasicAuth]));
        assert!(check(&[BasicAuthRequireTls, BasicAuth, Tls]));
    }

    #[test]
    fn external_authoritative_combines_only_with_tls() {
        assert!(!check(&[ExternalAuthoritative, BasicAuth]));
        assert!(check(&[ExternalAuthoritative, Tls]));
    }

    #[test]
    fn names_match_exchange_spelling() {
        let v: AuthMechanisms =
            serde_json::from_str(r#"["Tls","BasicAuth","BasicAuthRequireTLS"]"#).unwrap();
        assert!(v.has(BasicAuthRequireTls));
        assert!(serde_json::from_str::<AuthMechanisms>(r#"["Kerberos"]"#).is_err());
    }
}
