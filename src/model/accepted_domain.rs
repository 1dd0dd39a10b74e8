//! Accepted domains (spec §1.1): the domains this organisation receives mail
//! for. A recipient in any accepted domain is not relay.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::domain::{Domain, DomainPattern};
use super::error::{Errors, Invalid};
use super::{Role, ServerContext, check_name, from_json, merge_patch};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, Default)]
pub enum DomainType {
    /// Every recipient is local; unknown recipients are refused.
    #[default]
    Authoritative,
    /// Some recipients are local, the rest go out through a connector.
    InternalRelay,
    /// No recipient is local; mail is relayed through a connector.
    ExternalRelay,
}

/// Where the mailboxes of an Authoritative domain live on a Hub.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type")]
pub enum MailboxDelivery {
    /// A Maildir per recipient under `<data-dir>/mailboxes/<domain>/<local-part>/`.
    Maildir,
    /// An LMTP mail store (RFC 2033), `host:port`.
    Lmtp {
        #[schema(schema_with = super::schema::host_port)]
        host: String,
    },
    /// An SMTP mail store, `host:port`.
    Smtp {
        #[schema(schema_with = super::schema::host_port)]
        host: String,
    },
}

impl MailboxDelivery {
    pub fn host(&self) -> Option<&str> {
        match self {
            MailboxDelivery::Maildir => None,
            MailboxDelivery::Lmtp { host } | MailboxDelivery::Smtp { host } => Some(host),
        }
    }
}

/// Where recipient validation (and a Hub's mailbox delivery) looks up
/// who exists in an Authoritative domain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type")]
pub enum RecipientDirectory {
    /// The recipient list Ferry holds (`/api/v1/recipients`).
    List,
    /// Ask the next hop (address verification, as Postfix's
    /// `reject_unverified_recipient`): `MAIL FROM:<>`, `RCPT TO`, `RSET`
    /// through the send connector, TLS and AUTH mail would take, and keep
    /// the answer for a while. A next hop that cannot answer gives
    /// `450 4.1.1`: never acceptance of an unknown address, never a false
    /// `550`.
    #[serde(rename_all = "camelCase")]
    Callout {
        /// How long a known address stays known (default 1 day).
        #[serde(default = "one_day")]
        positive_ttl: super::Timespan,
        /// How long an unknown address stays unknown (default 10 minutes,
        /// so a new mailbox is soon reachable).
        #[serde(default = "ten_minutes")]
        negative_ttl: super::Timespan,
    },
    /// An LDAP directory (Active Directory, OpenLDAP): a subtree search
    /// under `baseDn` with `filter`, `%s` standing for the address
    /// (escaped); any entry found means the recipient exists. Answers are
    /// cached like a callout's; a directory that cannot answer gives
    /// `450 4.1.1`.
    #[serde(rename_all = "camelCase")]
    Ldap {
        /// `ldap://host:port` or `ldaps://host:port`.
        #[schema(pattern = "^ldaps?://")]
        url: String,
        #[schema(pattern = "\\S")]
        base_dn: String,
        /// Default `(|(mail=%s)(proxyAddresses=smtp:%s))`.
        #[serde(default = "ldap_filter")]
        #[schema(pattern = "^\\(.*%s")]
        filter: String,
        /// A credential (kind SmartHost) whose userName is the bind DN;
        /// none binds anonymously.
        #[serde(default)]
        bind_credential: Option<String>,
        /// STARTTLS on an `ldap://` URL. TLS is validated against the
        /// system roots and the trust anchors.
        #[serde(default)]
        start_tls: bool,
        #[serde(default = "one_day")]
        positive_ttl: super::Timespan,
        #[serde(default = "ten_minutes")]
        negative_ttl: super::Timespan,
    },
}

fn ldap_filter() -> String {
    "(|(mail=%s)(proxyAddresses=smtp:%s))".into()
}

fn one_day() -> super::Timespan {
    super::Timespan::from_days(1)
}

fn ten_minutes() -> super::Timespan {
    super::Timespan::from_mins(10)
}

/// Splits `host:port` (or `[v6]:port`) into a host and a port.
pub fn split_host_port(s: &str) -> Option<(super::domain::Host, u16)> {
    let (host, port) = s.rsplit_once(':')?;
    let port: u16 = port.parse().ok().filter(|p| *p > 0)?;
    Some((host.parse().ok()?, port))
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AcceptedDomain {
    /// Unique.
    #[schema(schema_with = super::schema::object_name)]
    pub name: String,
    /// `contoso.com`, or `*.contoso.com` for the domain and its subdomains.
    pub domain_name: DomainPattern,
    pub domain_type: DomainType,
    /// Look recipients up before accepting them. An Edge without directory
    /// data has nothing to look up, so it defaults to false there.
    pub address_book_enabled: bool,
    /// Exactly one accepted domain is the default; the first one created is.
    pub default: bool,
    /// Hub only, Authoritative only: deliver this domain's mail to its
    /// mailboxes instead of routing it through send connectors.
    pub mailbox_delivery: Option<MailboxDelivery>,
    /// Authoritative only: where its recipients are known. With it, the
    /// Recipient Filter agent refuses unknown recipients at RCPT (when
    /// recipient validation is on), and a Hub delivers only to known
    /// mailboxes (an alias to its primary address) and bounces the rest.
    #[serde(default)]
    pub recipient_directory: Option<RecipientDirectory>,
    pub comment: Option<String>,
}

impl AcceptedDomain {
    pub fn from_create(body: &Value, ctx: &ServerContext, first: bool) -> Result<Self, Invalid> {
        let obj = body
            .as_object()
            .ok_or_else(|| Invalid::field("", "the body must be a JSON object"))?;
        let domain_type: DomainType = match obj.get("domainType") {
            Some(t) => from_json(t.clone())
                .map_err(|e| Invalid::field("domainType", e.0[0].message.clone()))?,
            None => DomainType::Authoritative,
        };
        if !obj.get("domainName").is_some_and(Value::is_string) {
            return Err(Invalid::field(
                "domainName",
                "is required, e.g. \"contoso.com\" or \"*.contoso.com\"",
            ));
        }
        let mut value = serde_json::json!({
            "name": obj.get("domainName").cloned().unwrap_or(Value::Null),
            "domainType": domain_type,
            "addressBookEnabled": domain_type == DomainType::Authoritative && ctx.role == Role::Hub,
            "default": first,
        });
        merge_patch(&mut value, body);
        let d: Self = from_json(value)?;
        d.validate()?;
        d.validate_role(ctx)?;
        if first && !d.default {
            return Err(Invalid::field(
                "default",
                "the first accepted domain is the default",
            ));
        }
        Ok(d)
    }

    pub fn patched(&self, patch: &Value, ctx: &ServerContext) -> Result<Self, Invalid> {
        let d: Self = super::apply_patch(self, patch, &[])?;
        d.validate()?;
        d.validate_role(ctx)?;
        if self.default && !d.default {
            return Err(Invalid::field(
                "default",
                "exactly one accepted domain is the default: make another domain the default instead",
            ));
        }
        Ok(d)
    }

    pub fn validate(&self) -> Result<(), Invalid> {
        let mut e = Errors::default();
        check_name(&mut e, &self.name, 64);
        e.check(
            self.domain_name.domain().as_str().len() > 256,
            "domainName",
            "must be at most 256 characters",
        );
        e.finish()
    }

    fn validate_role(&self, ctx: &ServerContext) -> Result<(), Invalid> {
        if self.recipient_directory.is_some() && self.domain_type != DomainType::Authoritative {
            let mut e = Errors::default();
            e.joint(
                "recipientDirectory",
                &["domainType"],
                "only an Authoritative domain has all its recipients here",
            );
            return e.finish();
        }
        if let Some(RecipientDirectory::Ldap {
            url,
            base_dn,
            filter,
            ..
        }) = &self.recipient_directory
        {
            let mut e = Errors::default();
            e.check(
                !(url.starts_with("ldap://") || url.starts_with("ldaps://")),
                "recipientDirectory.url",
                "must be ldap://host:port or ldaps://host:port",
            );
            e.check(
                base_dn.trim().is_empty(),
                "recipientDirectory.baseDn",
                "is required, e.g. dc=contoso,dc=com",
            );
            e.check(
                !filter.starts_with('(') || !filter.contains("%s"),
                "recipientDirectory.filter",
                "must be an LDAP filter in parentheses with %s for the address",
            );
            e.finish()?;
        }
        let Some(m) = &self.mailbox_delivery else {
            return Ok(());
        };
        let mut e = Errors::default();
        e.check(
            ctx.role != Role::Hub,
            "mailboxDelivery",
            "mailboxes live on a Hub, not on an Edge",
        );
        if self.domain_type != DomainType::Authoritative {
            e.joint(
                "mailboxDelivery",
                &["domainType"],
                "only an Authoritative domain has its mailboxes here",
            );
        }
        if let Some(h) = m.host() {
            e.check(
                split_host_port(h).is_none(),
                "mailboxDelivery.host",
                "must be host:port, e.g. 127.0.0.1:24",
            );
        }
        e.finish()
    }

    /// Whether `domain` is in this accepted domain.
    pub fn covers(&self, domain: &Domain) -> bool {
        self.domain_name.matches(domain)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ctx() -> ServerContext {
        ServerContext {
            role: Role::Hub,
            server_name: "HUB01".into(),
            fqdn: "hub01.contoso.test".parse().unwrap(),
        }
    }

    #[test]
    fn first_domain_is_default_and_named_after_domain() {
        let d = AcceptedDomain::from_create(&json!({"domainName": "contoso.test"}), &ctx(), true)
            .unwrap();
        assert!(d.default);
        assert_eq!(d.name, "contoso.test");
        assert!(d.address_book_enabled);
    }

    #[test]
    fn relay_types_default_to_no_recipient_lookup() {
        let d = AcceptedDomain::from_create(
            &json!({"domainName": "*.fabrikam.test", "domainType": "InternalRelay"}),
            &ctx(),
            false,
        )
        .unwrap();
        assert!(!d.address_book_enabled && !d.default);
        assert!(d.covers(&"a.fabrikam.test".parse().unwrap()));
    }

    #[test]
    fn embedded_wildcards_and_default_removal_are_refused() {
        let e = AcceptedDomain::from_create(&json!({"domainName": "*contoso.test"}), &ctx(), true)
            .unwrap_err();
        assert_eq!(e.first_field(), "domainName");
        let d = AcceptedDomain::from_create(&json!({"domainName": "contoso.test"}), &ctx(), true)
            .unwrap();
        assert_eq!(
            d.patched(&json!({"default": false}), &ctx())
                .unwrap_err()
                .first_field(),
            "default"
        );
        let m = d
            .patched(
                &json!({"mailboxDelivery": {"type": "Lmtp", "host": "127.0.0.1:24"}}),
                &ctx(),
            )
            .unwrap();
        assert_eq!(m.mailbox_delivery.unwrap().host(), Some("127.0.0.1:24"));
        assert!(
            d.patched(
                &json!({"mailboxDelivery": {"type": "Lmtp", "host": "nope"}}),
                &ctx()
            )
            .is_err()
        );
        let edge = ServerContext {
            role: Role::Edge,
            ..ctx()
        };
        assert!(
            d.patched(&json!({"mailboxDelivery": {"type": "Maildir"}}), &edge)
                .is_err()
        );
    }
}
