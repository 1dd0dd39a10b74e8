//! Send connectors (spec §1.2): which recipient domains they carry, how they
//! find the next hop (DNS or smart hosts), and how they talk to it.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::net::IpAddr;
use utoipa::ToSchema;

use super::address_space::{AddressSpace, Space};
use super::auth::SmartHostAuthMechanism;
use super::domain::{Domain, DomainPattern, Host};
use super::error::{Errors, Invalid, in_range};
use super::limit::{Limit, check_limit};
use super::timespan::{Timespan, check_range};
use super::{ProtocolLoggingLevel, Role, ServerContext, check_name, from_json, merge_patch};

/// A label that also picks the default MaxMessageSize; all usages get the
/// same permissions (spec §1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, Default)]
pub enum SendUsage {
    #[default]
    Custom,
    Internal,
    Internet,
    Partner,
}

/// How strictly the remote certificate is checked when TLS is required.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum TlsAuthLevel {
    /// Encrypt; accept any certificate.
    EncryptionOnly,
    /// The chain must lead to a trusted root or a trust anchor.
    CertificateValidation,
    /// As CertificateValidation, and the name must match `tlsDomain`.
    DomainValidation,
}

/// The recipient domain's TLS policy a DNS-routed connector honours
/// (Exchange Online's per-connector switch, for MTA-STS, RFC 8461).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, Default)]
pub enum DnsTlsPolicy {
    /// STARTTLS when offered, nothing validated; the domain's policy is
    /// not looked up.
    Opportunistic,
    /// The domain's MTA-STS policy, when it publishes one: in `enforce`
    /// mode only the MX hosts it names, over TLS validated for their
    /// names; otherwise as Opportunistic. The default: it costs nothing
    /// where no policy is published and stops downgrades where one is.
    #[default]
    MtaSts,
    /// DANE (RFC 7672): when the domain's MX records are DNSSEC-signed, each
    /// MX host with TLSA records only over TLS those records vouch for; a
    /// bogus answer is never answered with cleartext. Otherwise as
    /// Opportunistic.
    Dane,
    /// DANE where the domain has it, else its MTA-STS policy (RFC 8461 §2).
    MtaStsAndDane,
}

/// How errors are classified for this connector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
pub enum ErrorPolicy {
    Default,
    /// Treat every DNS error as transient.
    DowngradeDnsFailures,
    DowngradeCustomFailures,
    UpgradeCustomFailures,
}

/// A send connector, exactly as stored and as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SendConnector {
    /// Unique per organisation.
    #[schema(schema_with = super::schema::object_name)]
    pub name: String,
    /// Set at creation only.
    pub usage: SendUsage,
    /// Disabled connectors are ignored by routing.
    pub enabled: bool,
    /// The recipient domains this connector carries, with their costs.
    pub address_spaces: Vec<AddressSpace>,
    /// Find the next hop by MX lookup. Must be false when smart hosts are set.
    pub dns_routing_enabled: bool,
    /// Relay through these hosts instead of DNS routing.
    pub smart_hosts: Vec<Host>,
    pub smart_host_auth_mechanism: SmartHostAuthMechanism,
    /// Name of the smart-host credential presented with basic auth.
    pub authentication_credential: Option<String>,
    /// Remote port, 1–65535.
    #[schema(minimum = 1, maximum = 65535)]
    pub port: u16,
    /// Name sent in EHLO/HELO; `null` means the server's FQDN.
    pub fqdn: Option<Domain>,
    /// Send HELO instead of EHLO.
    #[serde(rename = "forceHELO")]
    #[schema(rename = "forceHELO")]
    pub force_helo: bool,
    /// Every message must go over TLS.
    #[serde(rename = "requireTLS")]
    #[schema(rename = "requireTLS")]
    pub require_tls: bool,
    /// Never use STARTTLS, even when offered.
    #[serde(rename = "ignoreSTARTTLS")]
    #[schema(rename = "ignoreSTARTTLS")]
    pub ignore_starttls: bool,
    /// Only with requireTLS and without ignoreSTARTTLS.
    pub tls_auth_level: Option<TlsAuthLevel>,
    /// The name the remote certificate must carry under DomainValidation.
    pub tls_domain: Option<DomainPattern>,
    /// Pins the client certificate, `<I>issuer<S>subject`.
    pub tls_certificate_name: Option<String>,
    /// With DNS routing: the recipient domain's TLS policy to honour.
    #[serde(default)]
    pub tls_policy: DnsTlsPolicy,
    /// Mutual TLS with partner domains.
    pub domain_secure_enabled: bool,
    /// Bytes, or `unlimited`; a message larger than this is not routed here.
    #[schema(schema_with = super::schema::limit_from_0)]
    pub max_message_size: Limit,
    #[schema(schema_with = super::schema::timespan_1s_1d)]
    pub connection_inactivity_timeout: Timespan,
    /// Messages sent over one connection before it is closed and reopened.
    #[schema(minimum = 1, maximum = 10000)]
    pub smtp_max_messages_per_connection: u32,
    /// Hub only: the servers that may use this connector.
    pub source_transport_servers: Vec<String>,
    /// Edge only: the local address outbound connections come from.
    #[serde(rename = "sourceIPAddress")]
    #[schema(rename = "sourceIPAddress")]
    #[schema(schema_with = super::schema::optional_ip_address)]
    pub source_ip_address: Option<IpAddr>,
    /// Resolve MX through the transport settings' external DNS servers.
    #[serde(rename = "useExternalDNSServersEnabled")]
    #[schema(rename = "useExternalDNSServersEnabled")]
    pub use_external_dns_servers_enabled: bool,
    pub protocol_logging_level: ProtocolLoggingLevel,
    pub error_policies: Vec<ErrorPolicy>,
    pub comment: Option<String>,
}

const CREATE_ONLY: &[&str] = &["usage"];

impl SendConnector {
    pub fn preset(ctx: &ServerContext, usage: SendUsage, name: &str) -> Self {
        SendConnector {
            name: name.to_string(),
            usage,
            enabled: true,
            address_spaces: vec![],
            dns_routing_enabled: true,
            smart_hosts: vec![],
            smart_host_auth_mechanism: SmartHostAuthMechanism::None,
            authentication_credential: None,
            port: 25,
            fqdn: None,
            force_helo: false,
            require_tls: false,
            ignore_starttls: false,
            tls_auth_level: None,
            tls_domain: None,
            tls_certificate_name: None,
            tls_policy: DnsTlsPolicy::MtaSts,
            domain_secure_enabled: false,
            // Exchange 2010: 10 MB, and unlimited for Internal usage (spec §1.2).
            max_message_size: if usage == SendUsage::Internal {
                Limit::Unlimited
            } else {
                Limit::Value(10 * 1024 * 1024)
            },
            connection_inactivity_timeout: Timespan::from_mins(10),
            smtp_max_messages_per_connection: 20,
            source_transport_servers: match ctx.role {
                Role::Hub => vec![ctx.server_name.clone()],
                Role::Edge => vec![],
            },
            source_ip_address: None,
            use_external_dns_servers_enabled: false,
            protocol_logging_level: ProtocolLoggingLevel::None,
            error_policies: vec![ErrorPolicy::Default],
            comment: None,
        }
    }

    pub fn from_create(body: &Value, ctx: &ServerContext) -> Result<Self, Invalid> {
        let obj = body
            .as_object()
            .ok_or_else(|| Invalid::field("", "the body must be a JSON object"))?;
        let usage: SendUsage = match obj.get("usage") {
            Some(u) => {
                from_json(u.clone()).map_err(|e| Invalid::field("usage", e.0[0].message.clone()))?
            }
            None => SendUsage::Custom,
        };
        let mut value = serde_json::to_value(Self::preset(ctx, usage, "")).expect("serializes");
        // Naming smart hosts implies smart-host routing, as New-SendConnector does.
        if obj
            .get("smartHosts")
            .is_some_and(|v| v.as_array().is_some_and(|a| !a.is_empty()))
            && !obj.contains_key("dnsRoutingEnabled")
        {
            value["dnsRoutingEnabled"] = Value::Bool(false);
        }
        merge_patch(&mut value, body);
        let c: Self = from_json(value)?;
        c.validate(ctx)?;
        Ok(c)
    }

    pub fn patched(&self, patch: &Value, ctx: &ServerContext) -> Result<Self, Invalid> {
        let c: Self = super::apply_patch(self, patch, CREATE_ONLY)?;
        c.validate(ctx)?;
        Ok(c)
    }

    /// Every rule of spec §1.2 that concerns this connector alone.
    pub fn validate(&self, ctx: &ServerContext) -> Result<(), Invalid> {
        let mut e = Errors::default();
        check_name(&mut e, &self.name, 64);
        e.check(
            self.address_spaces.is_empty(),
            "addressSpaces",
            "needs at least one address space",
        );
        for (i, a) in self.address_spaces.iter().enumerate() {
            let field = format!("addressSpaces[{i}]");
            e.check(
                a.space == Space::AcceptedDomains && ctx.role != Role::Edge,
                &field,
                "'--' (the accepted domains) is only valid on an Edge server",
            );
            e.check(
                self.address_spaces[..i].iter().any(|b| b.space == a.space),
                &field,
                format!("{a} is listed twice"),
            );
        }
        match (self.dns_routing_enabled, self.smart_hosts.is_empty()) {
            (true, false) => e.add("smartHosts", "must be empty when dnsRoutingEnabled is true"),
            (false, true) => e.add("smartHosts", "are required when dnsRoutingEnabled is false"),
            _ => {}
        }
        let mech = self.smart_host_auth_mechanism;
        e.check(
            mech != SmartHostAuthMechanism::None && self.dns_routing_enabled,
            "smartHostAuthMechanism",
            "applies to smart-host connectors only (dnsRoutingEnabled false)",
        );
        e.check(
            mech == SmartHostAuthMechanism::ExchangeServer,
            "smartHostAuthMechanism",
            "'ExchangeServer' needs Active Directory; use 'BasicAuthRequireTLS' or mutual TLS",
        );
        match (mech.needs_credential(), &self.authentication_credential) {
            (true, None) => e.add(
                "authenticationCredential",
                format!("is required with smartHostAuthMechanism {mech:?}"),
            ),
            (false, Some(_)) => e.add(
                "authenticationCredential",
                "is only used with smartHostAuthMechanism BasicAuth or BasicAuthRequireTLS",
            ),
            _ => {}
        }
        e.check(
            mech == SmartHostAuthMechanism::BasicAuthRequireTls && self.ignore_starttls,
            "ignoreSTARTTLS",
            "cannot be true with BasicAuthRequireTLS, which needs STARTTLS",
        );
        e.check(self.port == 0, "port", "must be between 1 and 65535");
        e.check(
            self.require_tls && self.ignore_starttls,
            "ignoreSTARTTLS",
            "must be false when requireTLS is true",
        );
        if self.tls_auth_level.is_some() {
            e.check(
                !self.require_tls || self.ignore_starttls,
                "tlsAuthLevel",
                "can only be set when requireTLS is true and ignoreSTARTTLS is false",
            );
        }
        e.check(
            self.tls_auth_level == Some(TlsAuthLevel::DomainValidation)
                && self.tls_domain.is_none(),
            "tlsDomain",
            "is required when tlsAuthLevel is DomainValidation",
        );
        if let Some(n) = &self.tls_certificate_name {
            e.check(
                !(n.starts_with("<I>") && n.contains("<S>")),
                "tlsCertificateName",
                "must be written <I>issuer<S>subject, as the certificates API shows it",
            );
        }
        if self.domain_secure_enabled {
            e.check(
                !self.dns_routing_enabled,
                "domainSecureEnabled",
                "needs dnsRoutingEnabled",
            );
            e.check(
                self.ignore_starttls,
                "domainSecureEnabled",
                "cannot be combined with ignoreSTARTTLS",
            );
            e.check(
                self.address_spaces
                    .iter()
                    .any(|a| !matches!(&a.space, Space::Domain(DomainPattern::Exact(_)))),
                "domainSecureEnabled",
                "needs explicit domains in addressSpaces, no wildcards",
            );
        }
        check_limit(
            &mut e,
            "maxMessageSize",
            self.max_message_size,
            0,
            2_147_483_647,
            true,
        );
        check_range(
            &mut e,
            "connectionInactivityTimeout",
            self.connection_inactivity_timeout,
            Timespan::from_secs(1),
            Timespan::from_days(1),
        );
        in_range(
            &mut e,
            "smtpMaxMessagesPerConnection",
            self.smtp_max_messages_per_connection,
            1,
            10_000,
        );
        match ctx.role {
            Role::Edge => e.check(
                !self.source_transport_servers.is_empty(),
                "sourceTransportServers",
                "is not valid on an Edge server",
            ),
            Role::Hub => {
                e.check(
                    self.source_ip_address.is_some(),
                    "sourceIPAddress",
                    "is only valid on an Edge server",
                );
                e.check(
                    self.source_transport_servers.is_empty(),
                    "sourceTransportServers",
                    "needs at least one server",
                );
            }
        }
        if let Some(ip) = self.source_ip_address {
            e.check(
                ip.is_multicast(),
                "sourceIPAddress",
                "must be a unicast address of this host",
            );
        }
        e.check(
            self.error_policies
                .contains(&ErrorPolicy::DowngradeCustomFailures)
                && self
                    .error_policies
                    .contains(&ErrorPolicy::UpgradeCustomFailures),
            "errorPolicies",
            "cannot both downgrade and upgrade custom failures",
        );
        e.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ctx(role: Role) -> ServerContext {
        ServerContext {
            role,
            server_name: "HUB01".into(),
            fqdn: "hub01.contoso.test".parse().unwrap(),
        }
    }

    fn create(role: Role, body: Value) -> Result<SendConnector, Invalid> {
        SendConnector::from_create(&body, &ctx(role))
    }

    #[test]
    fn basic_auth_needs_a_credential() {
        let e = create(
            Role::Edge,
            json!({"name": "To Internal Org", "usage": "Internal", "addressSpaces": ["--"],
            "smartHosts": ["hub01.contoso.test"], "smartHostAuthMechanism": "BasicAuthRequireTLS"}),
        )
        .unwrap_err();
        assert_eq!(e.first_field(), "authenticationCredential");
    }

    #[test]
    fn dns_routing_excludes_smart_hosts() {
        let e = create(
            Role::Edge,
            json!({"name": "x", "addressSpaces": ["*"], "dnsRoutingEnabled": true,
            "smartHosts": ["hub01.contoso.test"]}),
        )
        .unwrap_err();
        assert_eq!(e.first_field(), "smartHosts");
        let e = create(
            Role::Edge,
            json!({"name": "x", "addressSpaces": ["*"], "dnsRoutingEnabled": false}),
        )
        .unwrap_err();
        assert_eq!(e.first_field(), "smartHosts");
    }

    #[test]
    fn accepted_domains_space_is_edge_only() {
        let e = create(
            Role::Hub,
            json!({"name": "x", "addressSpaces": ["--"], "smartHosts": ["10.0.0.1"]}),
        )
        .unwrap_err();
        assert_eq!(e.first_field(), "addressSpaces[0]");
        assert!(
            create(
                Role::Edge,
                json!({"name": "x", "addressSpaces": ["--"], "smartHosts": ["10.0.0.1"]})
            )
            .is_ok()
        );
    }

    #[test]
    fn role_specific_fields() {
        let e = create(
            Role::Hub,
            json!({"name": "x", "addressSpaces": ["*"], "sourceIPAddress": "127.0.0.2"}),
        )
        .unwrap_err();
        assert_eq!(e.first_field(), "sourceIPAddress");
        let e = create(
            Role::Edge,
            json!({"name": "x", "addressSpaces": ["*"], "sourceTransportServers": ["HUB01"]}),
        )
        .unwrap_err();
        assert_eq!(e.first_field(), "sourceTransportServers");
        let hub = create(Role::Hub, json!({"name": "x", "addressSpaces": ["*"]})).unwrap();
        assert_eq!(hub.source_transport_servers, vec!["HUB01"]);
    }

    #[test]
    fn tls_rules() {
        let e = create(Role::Edge, json!({"name": "x", "addressSpaces": ["*"], "requireTLS": true, "ignoreSTARTTLS": true})).unwrap_err();
        assert_eq!(e.first_field(), "ignoreSTARTTLS");
        let e = create(
            Role::Edge,
            json!({"name": "x", "addressSpaces": ["*"], "tlsAuthLevel": "EncryptionOnly"}),
        )
        .unwrap_err();
        assert_eq!(e.first_field(), "tlsAuthLevel");
        let e = create(Role::Edge, json!({"name": "x", "addressSpaces": ["*"], "requireTLS": true, "tlsAuthLevel": "DomainValidation"})).unwrap_err();
        assert_eq!(e.first_field(), "tlsDomain");
    }

    #[test]
    fn internal_usage_defaults_to_unlimited_size() {
        let c = create(Role::Edge, json!({"name": "x", "usage": "Internal", "addressSpaces": ["--"], "smartHosts": ["10.0.0.1"]})).unwrap();
        assert_eq!(c.max_message_size, Limit::Unlimited);
        assert!(!c.dns_routing_enabled);
    }
}
