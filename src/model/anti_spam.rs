//! The Edge's anti-spam agents as configuration (spec §1.9 and rule 33):
//! the transport agents and their order (Get-/Set-TransportAgent), and
//! Connection Filtering — the IP Block and Allow lists, their entries and
//! their providers (DNSBL and DNS allow lists).

use std::net::{IpAddr, Ipv4Addr};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;
use utoipa::ToSchema;

use super::domain::Domain;
use super::error::{Errors, Invalid};
use super::{IpRange, Role, Timespan, check_name, from_json, merge_patch};

/// The transport agents Ferry runs, in Exchange's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub enum AgentName {
    #[serde(rename = "Connection Filtering Agent")]
    ConnectionFiltering,
    #[serde(rename = "Sender Filter Agent")]
    SenderFiltering,
    #[serde(rename = "Recipient Filter Agent")]
    RecipientFiltering,
    #[serde(rename = "Attachment Filtering Agent")]
    AttachmentFiltering,
    #[serde(rename = "Sender Id Agent")]
    SenderId,
    #[serde(rename = "Content Filter Agent")]
    ContentFilter,
    #[serde(rename = "Edge Rule Agent")]
    EdgeRule,
    #[serde(rename = "Address Rewriting Inbound Agent")]
    AddressRewritingInbound,
    #[serde(rename = "Address Rewriting Outbound Agent")]
    AddressRewritingOutbound,
}

impl AgentName {
    /// In their default order (which is Exchange's, but for the Content
    /// Filter running before the Edge Rule agent so that rules can read the
    /// SCL). Address rewriting inbound rewrites at the end of data, so it
    /// sits with the content agents.
    pub const ALL: [AgentName; 9] = [
        AgentName::ConnectionFiltering,
        AgentName::SenderFiltering,
        AgentName::RecipientFiltering,
        AgentName::SenderId,
        AgentName::AddressRewritingInbound,
        AgentName::ContentFilter,
        AgentName::EdgeRule,
        AgentName::AttachmentFiltering,
        AgentName::AddressRewritingOutbound,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            AgentName::ConnectionFiltering => "Connection Filtering Agent",
            AgentName::SenderFiltering => "Sender Filter Agent",
            AgentName::RecipientFiltering => "Recipient Filter Agent",
            AgentName::AttachmentFiltering => "Attachment Filtering Agent",
            AgentName::SenderId => "Sender Id Agent",
            AgentName::ContentFilter => "Content Filter Agent",
            AgentName::EdgeRule => "Edge Rule Agent",
            AgentName::AddressRewritingInbound => "Address Rewriting Inbound Agent",
            AgentName::AddressRewritingOutbound => "Address Rewriting Outbound Agent",
        }
    }

    /// The SMTP events the agent acts at.
    pub const fn events(self) -> &'static [&'static str] {
        match self {
            AgentName::ConnectionFiltering => &["OnConnect", "OnRcptCommand", "OnEndOfHeaders"],
            AgentName::SenderFiltering => &["OnMailCommand", "OnEndOfHeaders"],
            AgentName::RecipientFiltering => &["OnRcptCommand"],
            AgentName::AttachmentFiltering
            | AgentName::SenderId
            | AgentName::ContentFilter
            | AgentName::EdgeRule
            | AgentName::AddressRewritingInbound
            | AgentName::AddressRewritingOutbound => &["OnEndOfData"],
        }
    }

    pub fn parse(s: &str) -> Option<AgentName> {
        AgentName::ALL
            .into_iter()
            .find(|a| a.as_str().eq_ignore_ascii_case(s))
    }
}

/// One agent's place in the pipeline (Get-TransportAgent).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TransportAgent {
    pub identity: AgentName,
    pub enabled: bool,
    /// 1 runs first; priorities are 1..n without gaps.
    pub priority: u32,
}

/// The agents in their order, as one document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TransportAgents {
    pub agents: Vec<TransportAgent>,
}

impl TransportAgents {
    /// As Exchange ships them: on the Edge installed and enabled; on the
    /// Hub present and disabled (its anti-spam agents are an opt-in). The
    /// Content Filter is off on both until it is turned on: it needs an
    /// rspamd to ask; so is the Sender Id agent: it asks DNS about every
    /// message, so it waits for the DNS servers to be set.
    pub fn defaults(role: Role) -> TransportAgents {
        TransportAgents {
            agents: AgentName::ALL
                .iter()
                .enumerate()
                .map(|(i, a)| TransportAgent {
                    identity: *a,
                    enabled: role == Role::Edge
                        && !matches!(a, AgentName::ContentFilter | AgentName::SenderId),
                    priority: i as u32 + 1,
                })
                .collect(),
        }
    }

    /// Agents this version knows that a stored document predates join it
    /// at their default place in the order, with their role's default
    /// state.
    pub fn completed(mut self, role: Role) -> TransportAgents {
        self.agents.sort_by_key(|a| a.priority);
        let defaults = TransportAgents::defaults(role);
        for d in defaults.agents {
            if self.get(d.identity).is_none() {
                let at = (d.priority as usize - 1).min(self.agents.len());
                self.agents.insert(at, d);
            }
        }
        for (i, a) in self.agents.iter_mut().enumerate() {
            a.priority = i as u32 + 1;
        }
        self
    }

    pub fn get(&self, name: AgentName) -> Option<&TransportAgent> {
        self.agents.iter().find(|a| a.identity == name)
    }

    pub fn enabled(&self, name: AgentName) -> bool {
        self.get(name).is_some_and(|a| a.enabled)
    }

    /// Set-/Enable-/Disable-TransportAgent: `enabled` and `priority`. A new
    /// priority moves the agent there and shifts the others, as Exchange
    /// does.
    pub fn patched(&self, name: AgentName, patch: &Value) -> Result<TransportAgents, Invalid> {
        let obj = patch
            .as_object()
            .ok_or_else(|| Invalid::field("", "the body must be a JSON object"))?;
        let mut e = Errors::default();
        for k in obj.keys() {
            e.check(
                !matches!(k.as_str(), "enabled" | "priority"),
                k,
                "is not a setting of a transport agent (enabled, priority)",
            );
        }
        e.finish()?;
        let mut agents = self.agents.clone();
        agents.sort_by_key(|a| a.priority);
        let at = agents
            .iter()
            .position(|a| a.identity == name)
            .ok_or_else(|| Invalid::field("identity", "no such agent"))?;
        if let Some(v) = obj.get("enabled") {
            agents[at].enabled = v
                .as_bool()
                .ok_or_else(|| Invalid::field("enabled", "must be true or false"))?;
        }
        if let Some(v) = obj.get("priority") {
            let n = agents.len() as u64;
            let p = v
                .as_u64()
                .filter(|p| (1..=n).contains(p))
                .ok_or_else(|| Invalid::field("priority", format!("must be 1–{n}")))?;
            let agent = agents.remove(at);
            agents.insert(p as usize - 1, agent);
        }
        for (i, a) in agents.iter_mut().enumerate() {
            a.priority = i as u32 + 1;
        }
        Ok(TransportAgents { agents })
    }
}

/// What the Sender Filter agent does with a blocked sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, Default)]
pub enum SenderFilterAction {
    /// `554 5.1.0 Sender Denied` at MAIL FROM.
    #[default]
    Reject,
    /// Accept, and stamp `X-Ferry-Sender-Filter: Blocked (<reason>)` on the
    /// message for the content side to weigh.
    StampStatus,
}

/// Set-SenderFilterConfig.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SenderFilterConfig {
    pub enabled: bool,
    pub external_mail_enabled: bool,
    pub internal_mail_enabled: bool,
    /// Addresses, compared case-insensitively.
    #[serde(default)]
    #[schema(schema_with = super::schema::email_addresses)]
    pub blocked_senders: Vec<String>,
    /// Senders in exactly these domains.
    #[serde(default)]
    pub blocked_domains: Vec<Domain>,
    /// Senders in these domains and every subdomain of them.
    #[serde(default)]
    pub blocked_domains_and_subdomains: Vec<Domain>,
    /// Refuse the null sender `<>` (and so every bounce; off by default).
    pub blank_sender_blocking_enabled: bool,
    pub action: SenderFilterAction,
}

impl SenderFilterConfig {
    pub fn defaults() -> SenderFilterConfig {
        SenderFilterConfig {
            enabled: true,
            external_mail_enabled: true,
            internal_mail_enabled: false,
            blocked_senders: vec![],
            blocked_domains: vec![],
            blocked_domains_and_subdomains: vec![],
            blank_sender_blocking_enabled: false,
            action: SenderFilterAction::Reject,
        }
    }

    pub fn patched(&self, patch: &Value) -> Result<SenderFilterConfig, Invalid> {
        let c: SenderFilterConfig = super::apply_patch(self, patch, &[])?;
        let mut e = Errors::default();
        for (i, a) in c.blocked_senders.iter().enumerate() {
            e.check(
                !a.contains('@') || a.chars().any(|c| c.is_control() || c == ' '),
                &format!("blockedSenders[{i}]"),
                "must be an address local@domain",
            );
        }
        e.finish()?;
        Ok(c)
    }

    /// Why `sender` is blocked, if it is.
    pub fn blocks(&self, sender: &super::Address) -> Option<String> {
        if sender.is_null() {
            return self
                .blank_sender_blocking_enabled
                .then(|| "blank sender".to_string());
        }
        if let Some(s) = self
            .blocked_senders
            .iter()
            .find(|s| s.eq_ignore_ascii_case(sender.as_str()))
        {
            return Some(format!("blocked sender {s}"));
        }
        let domain = sender.domain_name()?;
        if let Some(d) = self.blocked_domains.iter().find(|d| **d == domain) {
            return Some(format!("blocked domain {d}"));
        }
        self.blocked_domains_and_subdomains
            .iter()
            .find(|d| domain == **d || domain.as_str().ends_with(&format!(".{d}")))
            .map(|d| format!("blocked domain or subdomain of {d}"))
    }
}

/// Set-RecipientFilterConfig.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RecipientFilterConfig {
    pub enabled: bool,
    pub external_mail_enabled: bool,
    pub internal_mail_enabled: bool,
    /// Refuse the addresses of `blockedRecipients`.
    pub blocked_list_enabled: bool,
    /// Addresses refused at RCPT (`550 5.7.1 Recipient not authorized`).
    #[serde(default)]
    #[schema(schema_with = super::schema::email_addresses)]
    pub blocked_recipients: Vec<String>,
    /// Refuse recipients of Authoritative domains that their recipient
    /// directory does not know (`550 5.1.10`).
    pub recipient_validation_enabled: bool,
}

impl RecipientFilterConfig {
    pub fn defaults() -> RecipientFilterConfig {
        RecipientFilterConfig {
            enabled: true,
            external_mail_enabled: true,
            internal_mail_enabled: false,
            blocked_list_enabled: false,
            blocked_recipients: vec![],
            recipient_validation_enabled: false,
        }
    }

    pub fn patched(&self, patch: &Value) -> Result<RecipientFilterConfig, Invalid> {
        let c: RecipientFilterConfig = super::apply_patch(self, patch, &[])?;
        let mut e = Errors::default();
        for (i, a) in c.blocked_recipients.iter().enumerate() {
            e.check(
                !a.contains('@') || a.chars().any(|c| c.is_control() || c == ' '),
                &format!("blockedRecipients[{i}]"),
                "must be an address local@domain",
            );
        }
        e.finish()?;
        Ok(c)
    }

    pub fn blocks(&self, recipient: &super::Address) -> bool {
        self.blocked_list_enabled
            && self
                .blocked_recipients
                .iter()
                .any(|r| r.eq_ignore_ascii_case(recipient.as_str()))
    }
}

/// Which list an entry or a provider belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub enum IpList {
    Block,
    Allow,
}

impl IpList {
    pub const fn as_str(self) -> &'static str {
        match self {
            IpList::Block => "Block",
            IpList::Allow => "Allow",
        }
    }
}

/// Set-IPBlockListConfig / Set-IPAllowListConfig.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IpListConfig {
    pub enabled: bool,
    /// Filter mail from outside the organisation (true).
    pub external_mail_enabled: bool,
    /// Filter mail from inside it (false: authenticated partner mail is not
    /// internal, spec §1.9).
    pub internal_mail_enabled: bool,
    /// Block list only: the reply to a client on a static entry (≤ 240
    /// characters); null for Exchange's default text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = super::schema::optional_reply_text)]
    pub static_entry_rejection_response: Option<String>,
    /// Block list only: the reply to a client added by a machine (≤ 240).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = super::schema::optional_reply_text)]
    pub machine_entry_rejection_response: Option<String>,
}

/// Exchange's default reply to a client on the static block list.
pub const STATIC_ENTRY_REJECTION: &str =
    "External client with IP address %0 does not have permissions to submit to this server";

impl IpListConfig {
    pub fn defaults() -> IpListConfig {
        IpListConfig {
            enabled: true,
            external_mail_enabled: true,
            internal_mail_enabled: false,
            static_entry_rejection_response: None,
            machine_entry_rejection_response: None,
        }
    }

    pub fn patched(&self, list: IpList, patch: &Value) -> Result<IpListConfig, Invalid> {
        let c: IpListConfig = super::apply_patch(self, patch, &[])?;
        c.validate(list)?;
        Ok(c)
    }

    pub fn validate(&self, list: IpList) -> Result<(), Invalid> {
        let mut e = Errors::default();
        for (field, v) in [
            (
                "staticEntryRejectionResponse",
                &self.static_entry_rejection_response,
            ),
            (
                "machineEntryRejectionResponse",
                &self.machine_entry_rejection_response,
            ),
        ] {
            if let Some(text) = v {
                e.check(
                    list == IpList::Allow,
                    field,
                    "belongs to the IP Block list only",
                );
                check_response(&mut e, field, text);
            }
        }
        e.finish()
    }
}

/// A rejection text goes into an SMTP reply: printable ASCII, ≤ 240.
fn check_response(e: &mut Errors, field: &str, text: &str) {
    e.check(
        text.chars().count() > 240,
        field,
        "must be at most 240 characters",
    );
    e.check(
        text.is_empty() || !text.chars().all(|c| (' '..='~').contains(&c)),
        field,
        "must be printable ASCII on one line",
    );
}

/// Add-IPBlockListEntry / Add-IPAllowListEntry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IpListEntry {
    pub list: IpList,
    /// One address, a range `a-b`, or a CIDR block; IPv4 or IPv6.
    pub ip_range: IpRange,
    /// After this time the entry no longer applies (RFC 3339).
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expiration_time: Option<OffsetDateTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

impl IpListEntry {
    pub fn from_create(list: IpList, body: &Value) -> Result<IpListEntry, Invalid> {
        let mut value = serde_json::json!({});
        merge_patch(&mut value, body);
        // The list is the path's, whatever the body says.
        value["list"] = serde_json::json!(list);
        if !body.get("ipRange").is_some_and(Value::is_string) {
            return Err(Invalid::field(
                "ipRange",
                "is required: an address, a range a-b or a CIDR block",
            ));
        }
        let entry: IpListEntry = from_json(value)?;
        let mut e = Errors::default();
        if let Some(c) = &entry.comment {
            e.check(
                c.chars().count() > 256,
                "comment",
                "must be at most 256 characters",
            );
        }
        e.finish()?;
        Ok(entry)
    }

    /// Whether the entry applies at `now` (it has not expired).
    pub fn live(&self, now: OffsetDateTime) -> bool {
        self.expiration_time.is_none_or(|t| t > now)
    }

    /// The unique name stored beside it: one entry per list and range.
    pub fn key(&self) -> String {
        format!("{}:{}", self.list.as_str(), self.ip_range)
    }
}

/// How a provider's answer is read (Exchange's AnyMatch, BitmaskMatch and
/// IPAddressesMatch).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all_fields = "camelCase")]
pub enum ProviderMatch {
    /// Any answer in 127.0.0.0/8 is a hit.
    AnyMatch,
    /// A hit when the last octet of an answer shares a bit with the mask
    /// `127.0.0.x`.
    BitmaskMatch {
        #[schema(value_type = String, format = Ipv4)]
        bitmask: Ipv4Addr,
    },
    /// A hit when an answer is one of these addresses.
    IpAddressesMatch {
        // Named here as well as by `rename_all_fields`, which utoipa does
        // not read: the document must say `ipAddresses` as the server does.
        #[serde(rename = "ipAddresses")]
        #[schema(schema_with = super::schema::ipv4_addresses)]
        ip_addresses: Vec<Ipv4Addr>,
    },
}

impl ProviderMatch {
    /// Whether a provider's answers are a hit.
    pub fn hits(&self, answers: &[Ipv4Addr]) -> bool {
        let listed = answers.iter().filter(|a| a.octets()[0] == 127);
        match self {
            ProviderMatch::AnyMatch => listed.count() > 0,
            ProviderMatch::BitmaskMatch { bitmask } => {
                let mask = bitmask.octets()[3];
                listed.into_iter().any(|a| a.octets()[3] & mask != 0)
            }
            ProviderMatch::IpAddressesMatch { ip_addresses } => {
                answers.iter().any(|a| ip_addresses.contains(a))
            }
        }
    }
}

/// Add-IPBlockListProvider / Add-IPAllowListProvider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IpListProvider {
    pub list: IpList,
    /// Unique.
    #[schema(schema_with = super::schema::object_name)]
    pub name: String,
    /// The zone to query: `zen.spamhaus.org` is asked for
    /// `4.3.2.1.zen.spamhaus.org` about 1.2.3.4.
    pub lookup_domain: Domain,
    /// 1 is asked first; the first provider that matches stops the scan.
    #[schema(minimum = 1)]
    pub priority: u32,
    #[serde(rename = "match")]
    pub match_: ProviderMatch,
    /// Block list only: the reply on a hit (≤ 240 characters). `%0` is the
    /// client's IP, `%1` the connector, `%2` the provider's name. Null for
    /// Exchange's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = super::schema::optional_reply_text)]
    pub rejection_response: Option<String>,
    pub enabled: bool,
    /// Recipients that are accepted even from a listed client (postmaster,
    /// abuse…), compared case-insensitively.
    #[serde(default)]
    #[schema(schema_with = super::schema::email_addresses)]
    pub bypassed_recipients: Vec<String>,
    /// How long a session waits for the list's answer (1–30 s, default
    /// 2 s); no answer in time counts as not listed.
    #[schema(schema_with = super::schema::timespan_1s_30s)]
    pub lookup_timeout: Timespan,
}

impl IpListProvider {
    /// `priority` defaults to one more than the providers of its list have
    /// (Exchange's N+1).
    pub fn from_create(list: IpList, body: &Value, existing: usize) -> Result<Self, Invalid> {
        let mut value = serde_json::json!({
            "list": list,
            "priority": existing + 1,
            "match": {"type": "AnyMatch"},
            "enabled": true,
            "lookupTimeout": "00:00:02",
        });
        merge_patch(&mut value, body);
        // The list is the path's, whatever the body says.
        value["list"] = serde_json::json!(list);
        let p: IpListProvider = from_json(value)?;
        p.validate()?;
        Ok(p)
    }

    pub fn patched(&self, patch: &Value) -> Result<Self, Invalid> {
        let p: IpListProvider = super::apply_patch(self, patch, &["list"])?;
        p.validate()?;
        Ok(p)
    }

    pub fn validate(&self) -> Result<(), Invalid> {
        let mut e = Errors::default();
        check_name(&mut e, &self.name, 64);
        e.check(self.priority == 0, "priority", "must be at least 1");
        super::timespan::check_range(
            &mut e,
            "lookupTimeout",
            self.lookup_timeout,
            Timespan::from_secs(1),
            Timespan::from_secs(30),
        );
        if let Some(r) = &self.rejection_response {
            e.check(
                self.list == IpList::Allow,
                "rejectionResponse",
                "belongs to block list providers only",
            );
            check_response(&mut e, "rejectionResponse", r);
        }
        if let ProviderMatch::IpAddressesMatch { ip_addresses } = &self.match_ {
            e.check(
                ip_addresses.is_empty(),
                "match.ipAddresses",
                "must list at least one address",
            );
        }
        e.finish()
    }

    /// The name to query about `ip`: the reversed address under the zone
    /// (nibbles for IPv6, RFC 5782).
    pub fn query_name(&self, ip: IpAddr) -> String {
        let reversed = match ip {
            IpAddr::V4(v4) => {
                let o = v4.octets();
                format!("{}.{}.{}.{}", o[3], o[2], o[1], o[0])
            }
            IpAddr::V6(v6) => v6
                .octets()
                .iter()
                .rev()
                .flat_map(|b| [b & 0xf, b >> 4])
                .map(|n| format!("{n:x}"))
                .collect::<Vec<_>>()
                .join("."),
        };
        format!("{reversed}.{}.", self.lookup_domain)
    }

    /// The reply text on a hit, with Exchange's substitutions.
    pub fn rejection(&self, ip: IpAddr, connector: &str) -> String {
        let text = self.rejection_response.clone().unwrap_or_else(|| {
            "Recipient not authorized, your IP has been found on a block list".into()
        });
        text.replace("%0", &ip.to_string())
            .replace("%1", connector)
            .replace("%2", &self.name)
    }

    pub fn bypasses(&self, recipient: &str) -> bool {
        self.bypassed_recipients
            .iter()
            .any(|r| r.eq_ignore_ascii_case(recipient))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn v4(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn the_three_match_modes_read_answers_as_exchange_does() {
        let any = ProviderMatch::AnyMatch;
        assert!(any.hits(&[v4("127.0.0.2")]));
        assert!(!any.hits(&[]));
        assert!(!any.hits(&[v4("10.0.0.2")]), "only 127/8 answers list");
        let mask = ProviderMatch::BitmaskMatch {
            bitmask: v4("127.0.0.4"),
        };
        assert!(mask.hits(&[v4("127.0.0.6")]));
        assert!(!mask.hits(&[v4("127.0.0.2")]));
        let exact = ProviderMatch::IpAddressesMatch {
            ip_addresses: vec![v4("127.0.0.10"), v4("127.0.0.11")],
        };
        assert!(exact.hits(&[v4("127.0.0.3"), v4("127.0.0.11")]));
        assert!(!exact.hits(&[v4("127.0.0.2")]));
    }

    #[test]
    fn providers_are_asked_about_the_reversed_address() {
        let p = IpListProvider::from_create(
            IpList::Block,
            &json!({"name": "zen", "lookupDomain": "zen.example"}),
            2,
        )
        .unwrap();
        assert_eq!(p.priority, 3, "N+1 on add");
        assert_eq!(
            p.query_name("192.0.2.99".parse().unwrap()),
            "99.2.0.192.zen.example."
        );
        assert!(
            p.query_name("2001:db8::1".parse().unwrap())
                .starts_with("1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.zen")
        );
        let p = IpListProvider {
            rejection_response: Some("%0 is listed by %2 (via %1)".into()),
            ..p
        };
        assert_eq!(
            p.rejection("192.0.2.99".parse().unwrap(), "From Internet"),
            "192.0.2.99 is listed by zen (via From Internet)"
        );
    }

    #[test]
    fn bad_provider_and_config_settings_are_refused_by_field() {
        let bad = IpListProvider::from_create(
            IpList::Allow,
            &json!({"name": "x", "lookupDomain": "allow.example", "rejectionResponse": "no"}),
            0,
        )
        .unwrap_err();
        assert_eq!(bad.0[0].field, "rejectionResponse");
        let long = "x".repeat(241);
        let c = IpListConfig::defaults()
            .patched(
                IpList::Block,
                &json!({"staticEntryRejectionResponse": long}),
            )
            .unwrap_err();
        assert_eq!(c.0[0].field, "staticEntryRejectionResponse");
        let e =
            IpListEntry::from_create(IpList::Block, &json!({"ipRange": "300.1.1.1"})).unwrap_err();
        assert_eq!(e.0[0].field, "ipRange");
    }

    #[test]
    fn the_sender_filter_knows_senders_domains_subdomains_and_the_blank_sender() {
        let c = SenderFilterConfig::defaults()
            .patched(
                &json!({"blockedSenders": ["Spam@Fabrikam.test"], "blockedDomains": ["exact.test"],
                             "blockedDomainsAndSubdomains": ["tree.test"]}),
            )
            .unwrap();
        let a = |s: &str| crate::model::Address::parse(s).unwrap();
        assert!(c.blocks(&a("spam@fabrikam.test")).is_some());
        assert!(c.blocks(&a("ham@fabrikam.test")).is_none());
        assert!(c.blocks(&a("x@exact.test")).is_some());
        assert!(c.blocks(&a("x@sub.exact.test")).is_none());
        assert!(c.blocks(&a("x@tree.test")).is_some());
        assert!(c.blocks(&a("x@deep.sub.tree.test")).is_some());
        assert!(c.blocks(&a("x@nottree.test")).is_none());
        assert!(c.blocks(&crate::model::Address::null()).is_none());
        let blank = c
            .patched(&json!({"blankSenderBlockingEnabled": true}))
            .unwrap();
        assert!(blank.blocks(&crate::model::Address::null()).is_some());
        let bad = SenderFilterConfig::defaults()
            .patched(&json!({"blockedSenders": ["nobody"]}))
            .unwrap_err();
        assert_eq!(bad.0[0].field, "blockedSenders[0]");
    }

    #[test]
    fn agents_move_and_keep_their_priorities_without_gaps() {
        let a = TransportAgents::defaults(Role::Edge);
        assert!(a.enabled(AgentName::ConnectionFiltering));
        assert!(!TransportAgents::defaults(Role::Hub).enabled(AgentName::ConnectionFiltering));
        let moved = a
            .patched(AgentName::RecipientFiltering, &json!({"priority": 1}))
            .unwrap();
        assert_eq!(
            moved.get(AgentName::RecipientFiltering).unwrap().priority,
            1
        );
        assert_eq!(
            moved.get(AgentName::ConnectionFiltering).unwrap().priority,
            2
        );
        assert_eq!(moved.get(AgentName::SenderFiltering).unwrap().priority, 3);
        assert!(
            a.patched(AgentName::SenderFiltering, &json!({"priority": 10}))
                .is_err()
        );
        // A stored order from before the Sender Id agent gets it at its
        // default place (before address rewriting), the others' order kept.
        let mut old = moved.clone();
        old.agents.retain(|x| x.identity != AgentName::SenderId);
        let done = old.completed(Role::Edge);
        let order: Vec<AgentName> = {
            let mut v = done.agents.clone();
            v.sort_by_key(|x| x.priority);
            v.into_iter().map(|x| x.identity).collect()
        };
        assert_eq!(
            order[..4],
            [
                AgentName::RecipientFiltering,
                AgentName::ConnectionFiltering,
                AgentName::SenderFiltering,
                AgentName::SenderId,
            ]
        );
        assert_eq!(order.len(), AgentName::ALL.len());
        assert!(!done.enabled(AgentName::SenderId));
        let off = a
            .patched(AgentName::SenderFiltering, &json!({"enabled": false}))
            .unwrap();
        assert!(!off.enabled(AgentName::SenderFiltering));
    }
}
