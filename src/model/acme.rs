//! An ACME certificate (RFC 8555): names Ferry keeps a certificate for,
//! issued by an ACME CA (Let's Encrypt, an internal step-ca or Pebble…),
//! renewed before it expires and swapped into STARTTLS and the API's HTTPS
//! without a restart. The issuing itself lives in `tls::acme`; each issued
//! certificate is an ordinary certificate of the store, marked with the
//! name of the ACME certificate that made it.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::error::{Errors, Invalid};
use super::{Binding, Domain, check_name, from_json, merge_patch};

/// How the CA checks that Ferry answers for each name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum AcmeChallenge {
    /// RFC 8555 §8.3: the CA fetches
    /// `http://<name>/.well-known/acme-challenge/<token>` on port 80.
    #[serde(rename = "http-01")]
    Http01,
    /// RFC 8737: the CA opens TLS to `<name>` on port 443 asking for the
    /// `acme-tls/1` protocol.
    #[serde(rename = "tls-alpn-01")]
    TlsAlpn01,
}

impl AcmeChallenge {
    pub fn default_binding(self) -> Binding {
        match self {
            AcmeChallenge::Http01 => "0.0.0.0:80".parse().expect("a binding"),
            AcmeChallenge::TlsAlpn01 => "0.0.0.0:443".parse().expect("a binding"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AcmeCertificate {
    #[schema(schema_with = super::schema::object_name)]
    pub name: String,
    /// The CA's ACME directory URL, `https://`.
    /// Let's Encrypt's is `https://acme-v02.api.letsencrypt.org/directory`.
    /// Its TLS is validated against the system's roots and Ferry's trust
    /// anchors.
    #[schema(schema_with = super::schema::acme_directory_url)]
    pub directory_url: String,
    /// Addresses the CA may write to about the account (expiry notices).
    #[serde(default)]
    #[schema(schema_with = super::schema::acme_contacts)]
    pub contact: Vec<String>,
    /// The DNS names of the certificate, the first its subject.
    /// STARTTLS needs the server's and the connectors' FQDNs.
    #[schema(min_items = 1, max_items = 100)]
    pub subject_names: Vec<Domain>,
    #[serde(default = "http01")]
    pub challenge: AcmeChallenge,
    /// Where Ferry answers the challenge, only while an order is validated.
    /// Default `0.0.0.0:80` for http-01, `0.0.0.0:443` for tls-alpn-01:
    /// the CA connects to those ports of the names' addresses (a port
    /// forward or balancer may map them elsewhere).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub challenge_binding: Option<Binding>,
    /// Renew when fewer days than this remain (default 30).
    /// A certificate that lives less than twice as long renews at half its
    /// lifetime.
    #[serde(default = "thirty")]
    #[schema(minimum = 1, maximum = 365)]
    pub renew_before_days: u32,
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

fn http01() -> AcmeChallenge {
    AcmeChallenge::Http01
}
fn thirty() -> u32 {
    30
}
fn yes() -> bool {
    true
}

impl AcmeCertificate {
    pub fn from_create(body: &Value) -> Result<Self, Invalid> {
        let mut value = serde_json::json!({});
        merge_patch(&mut value, body);
        let a: Self = from_json(value)?;
        a.validate()?;
        Ok(a)
    }

    pub fn patched(&self, patch: &Value) -> Result<Self, Invalid> {
        let a: Self = super::apply_patch(self, patch, &[])?;
        a.validate()?;
        Ok(a)
    }

    /// The binding the challenge responder listens on.
    pub fn binding(&self) -> Binding {
        self.challenge_binding
            .unwrap_or_else(|| self.challenge.default_binding())
    }

    pub fn validate(&self) -> Result<(), Invalid> {
        let mut e = Errors::default();
        check_name(&mut e, &self.name, 64);
        e.check(
            !directory_url_ok(&self.directory_url),
            "directoryUrl",
            "must be an https:// URL: a host name or address, an optional port and path",
        );
        e.check(
            self.contact.len() > 8,
            "contact",
            "must hold at most 8 addresses",
        );
        let address = regex::Regex::new(&super::schema::email_address_pattern())
            .expect("the schema's pattern compiles");
        for (i, c) in self.contact.iter().enumerate() {
            e.check(
                c.len() > 254 || !address.is_match(c),
                &format!("contact[{i}]"),
                "must be an address, local@domain",
            );
        }
        e.check(
            self.subject_names.is_empty(),
            "subjectNames",
            "needs at least one DNS name",
        );
        e.check(
            self.subject_names.len() > 100,
            "subjectNames",
            "must hold at most 100 names (the CA's limit)",
        );
        let mut seen = std::collections::HashSet::new();
        for (i, n) in self.subject_names.iter().enumerate() {
            e.check(
                !seen.insert(n.as_str()),
                &format!("subjectNames[{i}]"),
                "is listed twice",
            );
            e.check(
                !n.as_str().contains('.'),
                &format!("subjectNames[{i}]"),
                "must be a fully qualified name: a CA issues no certificate for a single label",
            );
        }
        e.check(
            !(1..=365).contains(&self.renew_before_days),
            "renewBeforeDays",
            "must be between 1 and 365",
        );
        if let Some(c) = &self.comment {
            e.check(
                c.chars().count() > 1024,
                "comment",
                "must be at most 1024 characters",
            );
        }
        e.finish()
    }
}

/// `https://host[:port][/path]`, as [`super::webhook`]'s URLs but TLS only:
/// RFC 8555 §6.1 puts every ACME resource behind HTTPS.
fn directory_url_ok(url: &str) -> bool {
    url.starts_with("https://") && super::webhook::url_ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defaults_and_refusals() {
        let a = AcmeCertificate::from_create(&json!({"name": "mail",
            "directoryUrl": "https://127.0.0.1:14000/dir",
            "subjectNames": ["mail.contoso.test"]}))
        .unwrap();
        assert_eq!(a.challenge, AcmeChallenge::Http01);
        assert_eq!(a.binding().to_string(), "0.0.0.0:80");
        assert_eq!(a.renew_before_days, 30);
        let t = a
            .patched(&json!({"challenge": "tls-alpn-01"}))
            .unwrap()
            .binding();
        assert_eq!(t.to_string(), "0.0.0.0:443");
        for (body, field) in [
            (
                json!({"name": "m", "directoryUrl": "http://ca.test/dir", "subjectNames": ["a.test"]}),
                "directoryUrl",
            ),
            (
                json!({"name": "m", "directoryUrl": "https://ca.test/dir", "subjectNames": []}),
                "subjectNames",
            ),
            (
                json!({"name": "m", "directoryUrl": "https://ca.test/dir", "subjectNames": ["a.test", "a.test"]}),
                "subjectNames[1]",
            ),
            (
                json!({"name": "m", "directoryUrl": "https://ca.test/dir", "subjectNames": ["mail"]}),
                "subjectNames[0]",
            ),
            (
                json!({"name": "m", "directoryUrl": "https://ca.test/dir", "subjectNames": ["a.test"], "renewBeforeDays": 0}),
                "renewBeforeDays",
            ),
            (
                json!({"name": "m", "directoryUrl": "https://ca.test/dir", "subjectNames": ["a.test"], "challenge": "dns-01"}),
                "challenge",
            ),
        ] {
            assert_eq!(
                AcmeCertificate::from_create(&body)
                    .unwrap_err()
                    .first_field(),
                field,
                "{body}"
            );
        }
    }
}
