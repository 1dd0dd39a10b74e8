//! Receive connectors (spec §1.3): where Ferry listens, whom it accepts mail
//! from, and under which limits and rights.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::auth::{AuthMechanism as A, AuthMechanisms};
use super::binding::Binding;
use super::domain::Domain;
use super::error::{Errors, Invalid, in_range};
use super::ip_range::{Conflict, Coverage, IpRange, conflicts};
use super::limit::{Limit, check_limit};
use super::permissions::{
    ExtendedRight, PermissionGroup as G, PermissionGroups, Principal, RightEntry, effective_rights,
};
use super::timespan::{Timespan, check_range};
use super::{ProtocolLoggingLevel, Role, ServerContext, check_name, from_json, merge_patch};

/// What a connector is for; sets its defaults at creation (spec §1.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, Default)]
pub enum ReceiveUsage {
    /// Authenticated users submitting mail (Hub only); port 587.
    Client,
    /// Nothing preset: no permission groups.
    #[default]
    Custom,
    /// Other transport servers of the organisation.
    Internal,
    /// Anonymous mail from the Internet; every remote address.
    Internet,
    /// Partner domains over mutually authenticated TLS.
    Partner,
}

/// How the SIZE extension is advertised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, Default)]
pub enum SizeMode {
    #[default]
    Enabled,
    Disabled,
    EnabledWithoutValue,
}

/// What a message rate limit counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, Default)]
pub enum MessageRateSource {
    None,
    User,
    #[default]
    IPAddress,
    All,
}

/// A receive connector, exactly as stored and as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReceiveConnector {
    /// Unique per server, at most 64 characters.
    #[schema(schema_with = super::schema::object_name)]
    pub name: String,
    /// Set at creation only.
    pub usage: ReceiveUsage,
    /// Disabled connectors do not listen and are skipped by selection.
    pub enabled: bool,
    /// Local addresses and ports this connector listens on.
    pub bindings: Vec<Binding>,
    /// Remote addresses this connector serves; the smallest containing range wins.
    pub remote_ip_ranges: Vec<IpRange>,
    pub auth_mechanism: AuthMechanisms,
    pub permission_groups: PermissionGroups,
    /// Explicit allows and denies on top of the permission groups.
    pub extended_rights: Vec<RightEntry>,
    /// Name in the banner, EHLO reply, Received header, and the name the TLS
    /// certificate must carry. `null` means the server's FQDN.
    pub fqdn: Option<Domain>,
    /// A full `220 …` banner line. `null` means
    /// `220 <fqdn> Ferry ESMTP service ready at <date>`: Ferry names
    /// itself rather than claiming to be Exchange.
    pub banner: Option<String>,
    /// Every command but EHLO, STARTTLS, NOOP, QUIT needs TLS first.
    #[serde(rename = "requireTLS")]
    #[schema(rename = "requireTLS")]
    pub require_tls: bool,
    /// Mutual TLS with partner domains; needs `Tls`.
    pub domain_secure_enabled: bool,
    /// Pins the certificate, `<I>issuer<S>subject` as the certificates API shows it.
    pub tls_certificate_name: Option<String>,
    /// Bytes, 65536–2147483647; advertised with SIZE.
    pub max_message_size: u64,
    pub size_enabled: SizeMode,
    /// 1–512000.
    pub max_recipients_per_message: u32,
    /// Bytes of header, 1–2147483647.
    pub max_header_size: u64,
    /// Received headers allowed, 1–500.
    pub max_hop_count: u32,
    /// Local Received headers allowed, 0–50 (0 = no check).
    pub max_local_hop_count: u32,
    /// Longest a connection may stay open; must exceed the inactivity timeout.
    pub connection_timeout: Timespan,
    /// Longest a client may stay silent.
    pub connection_inactivity_timeout: Timespan,
    pub max_inbound_connection: Limit,
    pub max_inbound_connection_per_source: Limit,
    /// 1–100.
    pub max_inbound_connection_percentage_per_source: u32,
    /// 0–10.
    pub max_logon_failures: u32,
    pub max_protocol_errors: Limit,
    /// Messages per minute.
    pub message_rate_limit: Limit,
    pub message_rate_source: MessageRateSource,
    /// Delay before failure replies, 0 (off) to 00:10:00.
    pub tarpit_interval: Timespan,
    /// Delay before authentication failure replies, 0 (off) to 00:10:00.
    pub auth_tarpit_interval: Timespan,
    pub protocol_logging_level: ProtocolLoggingLevel,
    pub chunking_enabled: bool,
    /// Needs chunking.
    pub binary_mime_enabled: bool,
    pub eight_bit_mime_enabled: bool,
    pub dsn_enabled: bool,
    pub enhanced_status_codes_enabled: bool,
    pub pipelining_enabled: bool,
    pub comment: Option<String>,
    /// Load balancers (addresses or ranges, at most 64) whose connections
    /// to this connector's bindings begin with a PROXY protocol header
    /// (HAProxy's v1 or v2). The client the header names is then the
    /// remote address for connector selection, rights, limits, Connection
    /// Filtering, tracking and logs. Empty (the default): no header is
    /// accepted, and a client that sends one is refused.
    #[serde(default)]
    #[schema(max_items = 64)]
    pub proxy_protocol_from: Vec<IpRange>,
    /// In a fleet (`--config-store`), the bindings this connector listens
    /// on instead of `bindings` on the servers named (server name → its
    /// bindings): a server's own addresses. Other servers use `bindings`.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub server_bindings: std::collections::BTreeMap<String, Vec<Binding>>,
}

const CREATE_ONLY: &[&str] = &["usage"];

impl ReceiveConnector {
    /// The connector a usage preset gives on a role, before the admin's own values.
    pub fn preset(role: Role, usage: ReceiveUsage, name: &str) -> Self {
        let (groups, auth, bindings, remote): (Vec<G>, Vec<A>, Vec<&str>, Vec<IpRange>) =
            match usage {
                ReceiveUsage::Internet => (
                    vec![G::AnonymousUsers],
                    vec![A::Tls],
                    vec![],
                    vec![IpRange::all_v4(), IpRange::all_v6()],
                ),
                ReceiveUsage::Internal => {
                    let mut g = vec![G::ExchangeServers];
                    if role == Role::Hub {
                        g.push(G::ExchangeLegacyServers);
                    }
                    (
                        g,
                        vec![A::Tls, A::ExchangeServer],
                        vec!["0.0.0.0:25"],
                        vec![],
                    )
                }
                ReceiveUsage::Partner => (vec![G::Partners], vec![A::Tls], vec![], vec![]),
                ReceiveUsage::Client => (
                    vec![G::ExchangeUsers],
                    vec![A::Tls, A::BasicAuth, A::BasicAuthRequireTls, A::Integrated],
                    vec!["0.0.0.0:587"],
                    vec![],
                ),
                ReceiveUsage::Custom => (vec![G::None], vec![A::Tls], vec![], vec![]),
            };
        let edge = role == Role::Edge;
        ReceiveConnector {
            name: name.to_string(),
            usage,
            enabled: true,
            bindings: bindings
                .iter()
                .map(|b| b.parse().expect("valid preset"))
                .collect(),
            remote_ip_ranges: remote,
            proxy_protocol_from: vec![],
            server_bindings: Default::default(),
            auth_mechanism: AuthMechanisms::of(&auth),
            permission_groups: PermissionGroups::of(&groups),
            extended_rights: vec![],
            fqdn: None,
            banner: None,
            require_tls: false,
            domain_secure_enabled: false,
            tls_certificate_name: None,
            // Exchange 2007/2010 defaults throughout (spec §1.3): 10 MB, 200, 64 KB.
            max_message_size: 10 * 1024 * 1024,
            size_enabled: SizeMode::Enabled,
            max_recipients_per_message: 200,
            max_header_size: 64 * 1024,
            max_hop_count: 30,
            max_local_hop_count: 8,
            connection_timeout: if edge {
                Timespan::from_mins(5)
            } else {
                Timespan::from_mins(10)
            },
            connection_inactivity_timeout: if edge {
                Timespan::from_mins(1)
            } else {
                Timespan::from_mins(5)
            },
            max_inbound_connection: Limit::Value(5000),
            max_inbound_connection_per_source: Limit::Value(20),
            max_inbound_connection_percentage_per_source: 2,
            max_logon_failures: 3,
            max_protocol_errors: Limit::Value(5),
            message_rate_limit: if edge {
                Limit::Value(600)
            } else {
                Limit::Unlimited
            },
            message_rate_source: MessageRateSource::IPAddress,
            tarpit_interval: Timespan::from_secs(5),
            auth_tarpit_interval: Timespan::from_secs(5),
            protocol_logging_level: ProtocolLoggingLevel::None,
            chunking_enabled: true,
            binary_mime_enabled: true,
            eight_bit_mime_enabled: true,
            dsn_enabled: true,
            enhanced_status_codes_enabled: true,
            pipelining_enabled: true,
            comment: None,
        }
    }

    /// The connectors Exchange creates at install for a role (spec §1.5).
    /// `smtp` and `submission` replace the default bindings' address and port.
    pub fn install_defaults(ctx: &ServerContext, smtp: Binding, submission: Binding) -> Vec<Self> {
        let server = &ctx.server_name;
        match ctx.role {
            Role::Edge => {
                let mut c = Self::preset(
                    Role::Edge,
                    ReceiveUsage::Internal,
                    &format!("Default internal receive connector {server}"),
                );
                c.bindings = vec![smtp];
                c.remote_ip_ranges = vec![IpRange::all_v4()];
                c.auth_mechanism = AuthMechanisms::of(&[A::Tls, A::ExchangeServer]);
                c.permission_groups =
                    PermissionGroups::of(&[G::AnonymousUsers, G::ExchangeServers, G::Partners]);
                vec![c]
            }
            Role::Hub => {
                let mut default = Self::preset(
                    Role::Hub,
                    ReceiveUsage::Internal,
                    &format!("Default {server}"),
                );
                default.bindings = vec![smtp];
                default.remote_ip_ranges = vec![IpRange::all_v4()];
                default.auth_mechanism = AuthMechanisms::of(&[
                    A::Tls,
                    A::BasicAuth,
                    A::BasicAuthRequireTls,
                    A::Integrated,
                    A::ExchangeServer,
                ]);
                default.permission_groups = PermissionGroups::of(&[
                    G::ExchangeUsers,
                    G::ExchangeServers,
                    G::ExchangeLegacyServers,
                ]);
                let mut client =
                    Self::preset(Role::Hub, ReceiveUsage::Client, &format!("Client {server}"));
                client.bindings = vec![submission];
                client.remote_ip_ranges = vec![IpRange::all_v4()];
                vec![default, client]
            }
        }
    }

    /// Builds a new connector from a creation request: the usage preset for
    /// this role, overlaid with the request's fields (spec §1.4 rules on which
    /// fields a usage requires or forbids at creation).
    pub fn from_create(body: &Value, ctx: &ServerContext) -> Result<Self, Invalid> {
        Self::build(body, ctx, true)
    }

    /// Builds a connector as a configuration document states it: as
    /// [`Self::from_create`], except that an Internet connector may list
    /// its remote ranges — a document states the connector as it is, and
    /// New-ReceiveConnector's rule is about creating one, not describing it.
    pub fn from_document(body: &Value, ctx: &ServerContext) -> Result<Self, Invalid> {
        Self::build(body, ctx, false)
    }

    fn build(body: &Value, ctx: &ServerContext, creating: bool) -> Result<Self, Invalid> {
        let obj = body
            .as_object()
            .ok_or_else(|| Invalid::field("", "the body must be a JSON object"))?;
        let usage: ReceiveUsage = match obj.get("usage") {
            Some(u) => {
                from_json(u.clone()).map_err(|e| Invalid::field("usage", e.0[0].message.clone()))?
            }
            None => ReceiveUsage::Custom,
        };
        let mut errors = Errors::default();
        if usage == ReceiveUsage::Client && ctx.role == Role::Edge {
            errors.add(
                "usage",
                "'Client' connectors are not available on an Edge server",
            );
        }
        let has = |k: &str| obj.get(k).is_some_and(|v| !v.is_null());
        if creating && usage == ReceiveUsage::Internet && has("remoteIpRanges") {
            errors.add(
                "remoteIpRanges",
                "cannot be given when creating an Internet connector: it serves every remote address \
                 (change it afterwards with PATCH, or use usage Custom or Partner)",
            );
        }
        let needs_bindings = matches!(
            usage,
            ReceiveUsage::Internet | ReceiveUsage::Partner | ReceiveUsage::Custom
        );
        if needs_bindings && !has("bindings") {
            errors.add("bindings", format!("is required for a {usage:?} connector"));
        }
        if usage != ReceiveUsage::Internet && !has("remoteIpRanges") {
            errors.add(
                "remoteIpRanges",
                format!("is required for a {usage:?} connector"),
            );
        }
        errors.finish()?;
        let name = obj.get("name").and_then(Value::as_str).unwrap_or_default();
        let mut value =
            serde_json::to_value(Self::preset(ctx.role, usage, name)).expect("serializes");
        merge_patch(&mut value, body);
        let mut c: Self = from_json(value)?;
        c.normalize();
        c.validate(ctx)?;
        Ok(c)
    }

    /// Applies a merge patch and checks the result.
    pub fn patched(&self, patch: &Value, ctx: &ServerContext) -> Result<Self, Invalid> {
        let mut c: Self = super::apply_patch(self, patch, CREATE_ONLY)?;
        c.normalize();
        c.validate(ctx)?;
        Ok(c)
    }

    fn normalize(&mut self) {
        self.auth_mechanism.normalize();
        self.permission_groups.normalize();
    }

    /// Effective rights per principal on this connector.
    pub fn rights(&self) -> std::collections::BTreeMap<Principal, Vec<ExtendedRight>> {
        effective_rights(
            &self.permission_groups,
            &self.auth_mechanism,
            &self.extended_rights,
        )
    }

    /// The bindings it listens on on `server` (its `serverBindings` entry,
    /// else `bindings`).
    pub fn bindings_on(&self, server: &str) -> &[Binding] {
        self.server_bindings
            .iter()
            .find(|(s, _)| s.eq_ignore_ascii_case(server))
            .map_or(&self.bindings, |(_, b)| b)
    }

    /// Every rule of spec §1.3 that concerns this connector alone.
    pub fn validate(&self, ctx: &ServerContext) -> Result<(), Invalid> {
        let mut e = Errors::default();
        check_name(&mut e, &self.name, 64);
        e.check(
            self.bindings.is_empty(),
            "bindings",
            "needs at least one binding",
        );
        for (i, b) in self.bindings.iter().enumerate() {
            e.check(
                self.bindings[..i].contains(b),
                &format!("bindings[{i}]"),
                format!("{b} is listed twice"),
            );
        }
        e.check(
            self.remote_ip_ranges.is_empty(),
            "remoteIpRanges",
            "needs at least one range",
        );
        // A set, not a scan of the prefix: 100,000 ranges must not take minutes.
        let mut seen = std::collections::HashSet::with_capacity(self.remote_ip_ranges.len());
        for (i, r) in self.remote_ip_ranges.iter().enumerate() {
            if !seen.insert(r) {
                e.add(
                    format!("remoteIpRanges[{i}]"),
                    format!("{r} is listed twice"),
                );
            }
        }
        e.check(
            self.proxy_protocol_from.len() > 64,
            "proxyProtocolFrom",
            "lists at most 64 load balancers",
        );
        for (i, r) in self.proxy_protocol_from.iter().enumerate() {
            // A PROXY header names any address it likes: trusting it from
            // the Internet at large would let anyone pass as anyone.
            e.check(
                super::ip_range::Coverage::of([r]).is_very_wide(),
                &format!("proxyProtocolFrom[{i}]"),
                format!(
                    "{r} is wider than a load balancer's network (more than a /8, or an IPv6 /32): \
                     list the balancers' own addresses"
                ),
            );
            e.check(
                self.proxy_protocol_from[..i].contains(r),
                &format!("proxyProtocolFrom[{i}]"),
                format!("{r} is listed twice"),
            );
        }
        e.check(
            self.server_bindings.len() > 256,
            "serverBindings",
            "names at most 256 servers",
        );
        for (server, bindings) in &self.server_bindings {
            let at = format!("serverBindings.{server}");
            e.check(
                server.is_empty()
                    || server.len() > 64
                    || !server
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
                &at,
                "must be keyed by a server name: 1–64 letters, digits, '-' or '_'",
            );
            e.check(bindings.is_empty(), &at, "needs at least one binding");
            for (i, b) in bindings.iter().enumerate() {
                e.check(
                    bindings[..i].contains(b),
                    &format!("{at}[{i}]"),
                    format!("{b} is listed twice"),
                );
            }
        }
        self.auth_mechanism.validate(&mut e, "authMechanism");
        self.permission_groups
            .validate(&mut e, "permissionGroups", ctx.role);
        let auth = &self.auth_mechanism;
        e.check(
            self.require_tls && !auth.has(A::Tls),
            "requireTLS",
            "requireTLS needs 'Tls' in authMechanism",
        );
        e.check(
            auth.has(A::ExternalAuthoritative) && !self.permission_groups.has(G::ExchangeServers),
            "permissionGroups",
            "'ExternalAuthoritative' needs the 'ExchangeServers' permission group",
        );
        e.check(
            self.domain_secure_enabled && (!auth.has(A::Tls) || auth.has(A::ExternalAuthoritative)),
            "domainSecureEnabled",
            "needs 'Tls' and no 'ExternalAuthoritative' in authMechanism",
        );
        if let Some(b) = &self.banner {
            let ok = (b == "220" || b.starts_with("220 "))
                && b.len() <= 510
                && b.bytes().all(|c| (0x20..0x7f).contains(&c));
            e.check(
                !ok,
                "banner",
                "must be one line of printable ASCII starting with '220 ', at most 510 characters",
            );
        }
        if let Some(n) = &self.tls_certificate_name {
            e.check(
                !(n.starts_with("<I>") && n.contains("<S>")),
                "tlsCertificateName",
                "must be written <I>issuer<S>subject, as the certificates API shows it",
            );
        }
        in_range(
            &mut e,
            "maxMessageSize",
            self.max_message_size,
            65536,
            2_147_483_647,
        );
        in_range(
            &mut e,
            "maxRecipientsPerMessage",
            self.max_recipients_per_message,
            1,
            512_000,
        );
        in_range(
            &mut e,
            "maxHeaderSize",
            self.max_header_size,
            1,
            2_147_483_647,
        );
        in_range(&mut e, "maxHopCount", self.max_hop_count, 1, 500);
        in_range(&mut e, "maxLocalHopCount", self.max_local_hop_count, 0, 50);
        let (sec, day) = (Timespan::from_secs(1), Timespan::from_days(1));
        check_range(
            &mut e,
            "connectionTimeout",
            self.connection_timeout,
            sec,
            day,
        );
        check_range(
            &mut e,
            "connectionInactivityTimeout",
            self.connection_inactivity_timeout,
            sec,
            day,
        );
        e.check(
            self.connection_timeout <= self.connection_inactivity_timeout,
            "connectionTimeout",
            "must be longer than connectionInactivityTimeout",
        );
        check_limit(
            &mut e,
            "maxInboundConnection",
            self.max_inbound_connection,
            1,
            2_147_483_647,
            true,
        );
        check_limit(
            &mut e,
            "maxInboundConnectionPerSource",
            self.max_inbound_connection_per_source,
            1,
            10_000,
            true,
        );
        in_range(
            &mut e,
            "maxInboundConnectionPercentagePerSource",
            self.max_inbound_connection_percentage_per_source,
            1,
            100,
        );
        in_range(&mut e, "maxLogonFailures", self.max_logon_failures, 0, 10);
        check_limit(
            &mut e,
            "maxProtocolErrors",
            self.max_protocol_errors,
            0,
            2_147_483_647,
            true,
        );
        check_limit(
            &mut e,
            "messageRateLimit",
            self.message_rate_limit,
            1,
            2_147_483_647,
            true,
        );
        let zero = Timespan::from_secs(0);
        check_range(
            &mut e,
            "tarpitInterval",
            self.tarpit_interval,
            zero,
            Timespan::from_mins(10),
        );
        check_range(
            &mut e,
            "authTarpitInterval",
            self.auth_tarpit_interval,
            zero,
            Timespan::from_mins(10),
        );
        e.check(
            self.binary_mime_enabled && !self.chunking_enabled,
            "binaryMimeEnabled",
            "BINARYMIME needs chunkingEnabled",
        );
        // Safer than Exchange: refuse the open relay that spec §2.6 rule 30
        // warns of, judged on the union of the ranges (split halves, a range
        // one address short of everything, IPv4 and IPv6 together).
        if self.unauthenticated_relay() {
            let cov = Coverage::of(&self.remote_ip_ranges);
            if cov.is_open_to_the_internet() {
                e.add(
                    "remoteIpRanges",
                    format!(
                        "these ranges together cover {}, and unauthenticated clients of this connector \
                         may relay (ms-Exch-SMTP-Accept-Any-Recipient, through its permission groups, \
                         extended rights or ExternalAuthoritative): that is an open relay. Restrict \
                         remoteIpRanges to the hosts that must relay",
                        cov.describe()
                    ),
                );
            }
        }
        e.finish()
    }

    /// Whether a client that has not authenticated may relay here: the
    /// Anonymous principal, or every session of an ExternalAuthoritative
    /// connector, holding ms-Exch-SMTP-Accept-Any-Recipient.
    pub fn unauthenticated_relay(&self) -> bool {
        let rights = self.rights();
        [Principal::Anonymous, Principal::ExternallySecuredServers]
            .iter()
            .any(|p| {
                rights
                    .get(p)
                    .is_some_and(|r| r.contains(&ExtendedRight::AcceptAnyRecipient))
            })
    }

    /// Spec rule 5, across connectors: on a shared binding, remote ranges may
    /// overlap only when one contains the other, and never be identical.
    pub fn check_against<'a>(
        &self,
        others: impl IntoIterator<Item = &'a ReceiveConnector>,
    ) -> Result<(), Invalid> {
        /// Enough to say what is wrong without a megabyte of problem JSON.
        const MAX_REPORTED: usize = 20;
        let mut e = Errors::default();
        let mut found = 0usize;
        for other in others {
            let Some(b) = self.bindings.iter().find(|b| other.bindings.contains(b)) else {
                continue;
            };
            for c in conflicts(&self.remote_ip_ranges, &other.remote_ip_ranges) {
                found += 1;
                if found > MAX_REPORTED {
                    continue;
                }
                let (Conflict::Identical(i, j) | Conflict::PartialOverlap(i, j)) = c;
                let (mine, theirs) = (&self.remote_ip_ranges[i], &other.remote_ip_ranges[j]);
                let field = format!("remoteIpRanges[{i}]");
                match c {
                    Conflict::Identical(..) => e.add(
                        field,
                        format!(
                            "binding {b} with range {mine} is already used by connector '{}'",
                            other.name
                        ),
                    ),
                    Conflict::PartialOverlap(..) => e.add(
                        field,
                        format!(
                            "{mine} partially overlaps {theirs} of connector '{}' on binding {b}; \
                             ranges on one binding may overlap only when one contains the other",
                            other.name
                        ),
                    ),
                }
            }
        }
        if found > MAX_REPORTED {
            e.add(
                "remoteIpRanges",
                format!("… and {} more conflicting ranges", found - MAX_REPORTED),
            );
        }
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
            server_name: "EDGE01".into(),
            fqdn: "edge01.contoso.test".parse().unwrap(),
        }
    }

    #[test]
    fn internet_usage_forbids_remote_ranges_at_creation() {
        let body = json!({"name": "From Internet", "usage": "Internet", "bindings": ["127.0.0.2:25"], "remoteIpRanges": ["0.0.0.0/0"]});
        let err = ReceiveConnector::from_create(&body, &ctx(Role::Edge)).unwrap_err();
        assert_eq!(err.first_field(), "remoteIpRanges");
        let ok = ReceiveConnector::from_create(
            &json!({"name": "From Internet", "usage": "Internet", "bindings": ["127.0.0.2:25"]}),
            &ctx(Role::Edge),
        )
        .unwrap();
        assert!(ok.remote_ip_ranges.contains(&IpRange::all_v4()));
        assert!(ok.permission_groups.has(G::AnonymousUsers));
    }

    #[test]
    fn client_usage_is_hub_only() {
        let body = json!({"name": "c", "usage": "Client", "remoteIpRanges": ["10.0.0.0/8"]});
        assert_eq!(
            ReceiveConnector::from_create(&body, &ctx(Role::Edge))
                .unwrap_err()
                .first_field(),
            "usage"
        );
        assert!(ReceiveConnector::from_create(&body, &ctx(Role::Hub)).is_ok());
    }

    #[test]
    fn external_authoritative_requires_exchange_servers() {
        let body = json!({"name": "x", "usage": "Custom", "bindings": ["127.0.0.3:25"], "remoteIpRanges": ["127.0.0.11"],
            "authMechanism": ["ExternalAuthoritative", "Tls"], "permissionGroups": ["AnonymousUsers"]});
        let err = ReceiveConnector::from_create(&body, &ctx(Role::Edge)).unwrap_err();
        assert_eq!(err.first_field(), "permissionGroups");
    }

    #[test]
    fn require_tls_needs_tls() {
        let body = json!({"name": "x", "usage": "Custom", "bindings": ["127.0.0.3:25"], "remoteIpRanges": ["127.0.0.11"],
            "authMechanism": ["BasicAuth"], "requireTLS": true});
        assert_eq!(
            ReceiveConnector::from_create(&body, &ctx(Role::Edge))
                .unwrap_err()
                .first_field(),
            "requireTLS"
        );
    }

    #[test]
    fn open_relay_is_refused() {
        let body = json!({"name": "relay", "usage": "Custom", "bindings": ["127.0.0.3:25"], "remoteIpRanges": ["0.0.0.0/0"],
            "permissionGroups": ["AnonymousUsers"],
            "extendedRights": [{"principal": "Anonymous", "right": "ms-Exch-SMTP-Accept-Any-Recipient"}]});
        assert_eq!(
            ReceiveConnector::from_create(&body, &ctx(Role::Edge))
                .unwrap_err()
                .first_field(),
            "remoteIpRanges"
        );
        let narrow = json!({"name": "relay", "usage": "Custom", "bindings": ["127.0.0.3:25"], "remoteIpRanges": ["127.0.0.50"],
            "permissionGroups": ["AnonymousUsers"],
            "extendedRights": [{"principal": "Anonymous", "right": "ms-Exch-SMTP-Accept-Any-Recipient"}]});
        assert!(ReceiveConnector::from_create(&narrow, &ctx(Role::Edge)).is_ok());
    }

    #[test]
    fn connection_timeout_must_exceed_inactivity() {
        let c = ReceiveConnector::preset(Role::Hub, ReceiveUsage::Internal, "x");
        let err = c
            .patched(&json!({"remoteIpRanges": ["10.0.0.1"], "connectionTimeout": "00:01:00", "connectionInactivityTimeout": "00:02:00"}), &ctx(Role::Hub))
            .unwrap_err();
        assert_eq!(err.first_field(), "connectionTimeout");
    }

    #[test]
    fn usage_cannot_change() {
        let c = ReceiveConnector::preset(Role::Hub, ReceiveUsage::Internal, "x");
        let err = c
            .patched(&json!({"usage": "Internet"}), &ctx(Role::Hub))
            .unwrap_err();
        assert_eq!(err.first_field(), "usage");
    }

    #[test]
    fn overlap_rules_across_connectors() {
        let mk = |r: &str| {
            ReceiveConnector::from_create(
                &json!({"name": r.replace('/', " slash "), "usage": "Custom", "bindings": ["127.0.0.3:25"], "remoteIpRanges": [r]}),
                &ctx(Role::Edge),
            )
            .unwrap()
        };
        let a = mk("10.0.0.11-10.0.0.13");
        assert!(mk("10.0.0.12-10.0.0.14").check_against([&a]).is_err());
        assert!(mk("10.0.0.0/28").check_against([&a]).is_ok());
        assert!(mk("10.0.0.11-10.0.0.13").check_against([&a]).is_err());
    }

    #[test]
    fn install_defaults_match_spec_1_5() {
        let c = ctx(Role::Hub);
        let b25: Binding = "0.0.0.0:25".parse().unwrap();
        let b587: Binding = "0.0.0.0:587".parse().unwrap();
        let hub = ReceiveConnector::install_defaults(&c, b25, b587);
        assert_eq!(hub.len(), 2);
        assert_eq!(hub[0].name, "Default EDGE01");
        assert!(!hub[0].permission_groups.has(G::AnonymousUsers));
        assert_eq!(hub[1].bindings, vec![b587]);
        for conn in &hub {
            conn.validate(&c).unwrap();
        }
        let edge = ReceiveConnector::install_defaults(&ctx(Role::Edge), b25, b587);
        assert_eq!(edge[0].name, "Default internal receive connector EDGE01");
        edge[0].validate(&ctx(Role::Edge)).unwrap();
    }
}
