//! The configuration snapshot and the service that changes it.
//!
//! The snapshot is the only road from the store to the engines: an immutable
//! `Arc<Snapshot>` published on a watch channel. The API writes in a
//! transaction under one writer lock, re-reads the whole configuration inside
//! that transaction, commits, then publishes the new snapshot. A unit of work
//! (an SMTP session, a delivery attempt) takes the snapshot current when it
//! starts and keeps it to the end.

pub mod audit;
mod bootstrap;
#[cfg(test)]
pub(crate) mod builder;
pub mod document;
pub mod fleet;
mod service;

pub use bootstrap::{Bootstrap, FirstStart};
pub use service::{Change, ConfigService, Reconciler, Replaced, ServiceError, Write};

use std::collections::HashMap;
use uuid::Uuid;

use crate::model::address_rewrite::AddressRewriteEntries;
use crate::model::anti_spam::{
    IpListConfig, IpListEntry, IpListProvider, RecipientFilterConfig, SenderFilterConfig,
    TransportAgents,
};
use crate::model::attachment_filter::AttachmentFilterConfig;
use crate::model::content_filter::ContentFilterConfig;
use crate::model::edge_rule::TransportRules;
use crate::model::{
    AcceptedDomain, CertificateKind, CertificateRecord, Credential, Domain, ReceiveConnector,
    SendConnector, ServerContext, TransportSettings,
};
use crate::store::{Stored, Table};
use crate::tls::certs::{CertificateInfo, covers_name};
use time::OffsetDateTime;

/// Everything the engines need to know, as of one committed change.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Increases with every published change.
    pub generation: u64,
    pub ctx: ServerContext,
    pub receive_connectors: Vec<Stored<ReceiveConnector>>,
    pub send_connectors: Vec<Stored<SendConnector>>,
    pub accepted_domains: Vec<Stored<AcceptedDomain>>,
    pub credentials: Vec<Stored<Credential>>,
    pub certificates: Vec<Stored<CertificateRecord>>,
    /// Parsed details of each certificate, by id.
    pub certificate_info: HashMap<Uuid, CertificateInfo>,
    pub transport: Stored<TransportSettings>,
    pub anti_spam: AntiSpam,
    /// DKIM signing keys, by domain then selector.
    pub dkim_keys: Vec<Stored<crate::model::dkim::DkimSigningKey>>,
    /// Event webhooks, their HMAC keys sealed.
    pub webhooks: Vec<Stored<crate::model::webhook::Webhook>>,
    /// Certificates Ferry keeps issued by an ACME CA, each with its
    /// account's credentials sealed.
    pub acme_certificates: Vec<Stored<crate::model::acme::AcmeCertificate>>,
    /// Whether this server is being drained, and where its mail goes.
    pub drain: Stored<crate::model::drain::DrainState>,
}

/// The anti-spam agents' configuration: their order, and Connection
/// Filtering's lists, entries and providers.
#[derive(Debug, Clone)]
pub struct AntiSpam {
    pub agents: Stored<TransportAgents>,
    pub ip_block_list_config: Stored<IpListConfig>,
    pub ip_allow_list_config: Stored<IpListConfig>,
    pub sender_filter_config: Stored<SenderFilterConfig>,
    pub recipient_filter_config: Stored<RecipientFilterConfig>,
    pub attachment_filter_config: Stored<AttachmentFilterConfig>,
    pub content_filter_config: Stored<ContentFilterConfig>,
    pub sender_id_config: Stored<crate::model::sender_id::SenderIdConfig>,
    pub address_rewrite_entries: Stored<AddressRewriteEntries>,
    pub transport_rules: Stored<TransportRules>,
    /// The enabled transport rules, their patterns compiled once.
    pub compiled_rules: std::sync::Arc<crate::model::edge_rule::Compiled>,
    pub ip_list_entries: Vec<Stored<IpListEntry>>,
    /// By priority within each list.
    pub ip_list_providers: Vec<Stored<IpListProvider>>,
}

/// The kinds of singleton document in the `settings` table.
pub mod setting {
    pub const TRANSPORT_AGENTS: &str = "transport-agents";
    pub const IP_BLOCK_LIST_CONFIG: &str = "ip-block-list-config";
    pub const IP_ALLOW_LIST_CONFIG: &str = "ip-allow-list-config";
    pub const SENDER_FILTER_CONFIG: &str = "sender-filter-config";
    pub const RECIPIENT_FILTER_CONFIG: &str = "recipient-filter-config";
    pub const ATTACHMENT_FILTER_CONFIG: &str = "attachment-filter-config";
    pub const CONTENT_FILTER_CONFIG: &str = "content-filter-config";
    pub const SENDER_ID_CONFIG: &str = "sender-id-config";
    pub const ADDRESS_REWRITE_ENTRIES: &str = "address-rewrite-entries";
    pub const TRANSPORT_RULES: &str = "transport-rules";
    pub const SERVER_DRAIN: &str = "server-drain";
}

impl AntiSpam {
    /// A role's defaults, as on a new server.
    pub fn defaults(role: crate::model::Role) -> AntiSpam {
        AntiSpam {
            agents: Stored::unwritten(TransportAgents::defaults(role)),
            ip_block_list_config: Stored::unwritten(IpListConfig::defaults()),
            ip_allow_list_config: Stored::unwritten(IpListConfig::defaults()),
            sender_filter_config: Stored::unwritten(SenderFilterConfig::defaults()),
            recipient_filter_config: Stored::unwritten(RecipientFilterConfig::defaults()),
            attachment_filter_config: Stored::unwritten(AttachmentFilterConfig::defaults()),
            content_filter_config: Stored::unwritten(ContentFilterConfig::defaults()),
            sender_id_config: Stored::unwritten(crate::model::sender_id::SenderIdConfig::defaults()),
            address_rewrite_entries: Stored::unwritten(AddressRewriteEntries::default()),
            transport_rules: Stored::unwritten(TransportRules::default()),
            compiled_rules: Default::default(),
            ip_list_entries: vec![],
            ip_list_providers: vec![],
        }
    }
}

impl Snapshot {
    /// The FQDN a connector answers as: its own, or the server's.
    pub fn effective_fqdn<'a>(&'a self, fqdn: &'a Option<Domain>) -> &'a Domain {
        fqdn.as_ref().unwrap_or(&self.transport.spec.server_fqdn)
    }

    pub fn default_domain(&self) -> Option<&Stored<AcceptedDomain>> {
        self.accepted_domains.iter().find(|d| d.spec.default)
    }

    /// The certificate a receive connector presents: the pinned one, else the
    /// best certificate (with a key, unexpired) whose names cover the FQDN —
    /// CA-issued before self-signed, then the most recently issued.
    pub fn select_certificate(
        &self,
        fqdn: &Domain,
        pin: Option<&str>,
    ) -> Option<(&Stored<CertificateRecord>, &CertificateInfo)> {
        let snap = self;
        let now = OffsetDateTime::now_utc();
        let mut candidates: Vec<_> = snap
            .certificates
            .iter()
            .filter(|c| c.spec.kind == CertificateKind::Certificate && c.secret.is_some())
            .filter_map(|c| snap.certificate_info.get(&c.id).map(|i| (c, i)))
            .filter(|(_, i)| match pin {
                Some(p) => i.tls_certificate_name == p,
                None => covers_name(i, fqdn),
            })
            .filter(|(_, i)| i.not_before <= now && now <= i.not_after)
            .collect();
        candidates.sort_by_key(|(_, i)| (i.self_signed, std::cmp::Reverse(i.not_before)));
        candidates.into_iter().next()
    }

    pub fn postmaster(&self) -> String {
        let d = self
            .default_domain()
            .map(|d| d.spec.domain_name.domain().to_string());
        self.transport.spec.postmaster(&self.ctx, d.as_deref())
    }
}

/// A kind of configuration object the service can store generically.
pub trait ConfigObject:
    serde::Serialize + serde::de::DeserializeOwned + Clone + Send + Sync + 'static
{
    const TABLE: Table;
    /// How an admin calls it, for messages ("receive connector").
    const KIND: &'static str;
    /// The unique name stored beside the object.
    fn name(&self) -> String;
    fn all(s: &Snapshot) -> &[Stored<Self>];
    /// Made and replaced by Ferry itself (an ACME-issued certificate):
    /// a configuration document neither carries nor deletes it.
    fn managed(&self) -> bool {
        false
    }
}

impl ConfigObject for ReceiveConnector {
    const TABLE: Table = Table::ReceiveConnectors;
    const KIND: &'static str = "receive connector";
    fn name(&self) -> String {
        self.name.clone()
    }
    fn all(s: &Snapshot) -> &[Stored<Self>] {
        &s.receive_connectors
    }
}

impl ConfigObject for SendConnector {
    const TABLE: Table = Table::SendConnectors;
    const KIND: &'static str = "send connector";
    fn name(&self) -> String {
        self.name.clone()
    }
    fn all(s: &Snapshot) -> &[Stored<Self>] {
        &s.send_connectors
    }
}

impl ConfigObject for AcceptedDomain {
    const TABLE: Table = Table::AcceptedDomains;
    const KIND: &'static str = "accepted domain";
    fn name(&self) -> String {
        self.name.clone()
    }
    fn all(s: &Snapshot) -> &[Stored<Self>] {
        &s.accepted_domains
    }
}

impl ConfigObject for Credential {
    const TABLE: Table = Table::Credentials;
    const KIND: &'static str = "credential";
    fn name(&self) -> String {
        self.name.clone()
    }
    fn all(s: &Snapshot) -> &[Stored<Self>] {
        &s.credentials
    }
}

impl ConfigObject for CertificateRecord {
    const TABLE: Table = Table::Certificates;
    const KIND: &'static str = "certificate";
    /// Certificates are named by their SHA-256 thumbprint.
    fn name(&self) -> String {
        crate::tls::certs::parse_chain(&self.chain_pem)
            .map(|c| crate::tls::certs::inspect(&c).sha256_fingerprint)
            .unwrap_or_default()
    }
    fn all(s: &Snapshot) -> &[Stored<Self>] {
        &s.certificates
    }
    fn managed(&self) -> bool {
        self.acme.is_some()
    }
}

impl ConfigObject for IpListEntry {
    const TABLE: Table = Table::IpListEntries;
    const KIND: &'static str = "IP list entry";
    fn name(&self) -> String {
        self.key()
    }
    fn all(s: &Snapshot) -> &[Stored<Self>] {
        &s.anti_spam.ip_list_entries
    }
}

impl ConfigObject for IpListProvider {
    const TABLE: Table = Table::IpListProviders;
    const KIND: &'static str = "IP list provider";
    fn name(&self) -> String {
        self.name.clone()
    }
    fn all(s: &Snapshot) -> &[Stored<Self>] {
        &s.anti_spam.ip_list_providers
    }
}

impl ConfigObject for crate::model::dkim::DkimSigningKey {
    const TABLE: Table = Table::DkimKeys;
    const KIND: &'static str = "DKIM signing key";
    fn name(&self) -> String {
        self.record_name()
    }
    fn all(s: &Snapshot) -> &[Stored<Self>] {
        &s.dkim_keys
    }
}

impl ConfigObject for crate::model::acme::AcmeCertificate {
    const TABLE: Table = Table::AcmeCertificates;
    const KIND: &'static str = "ACME certificate";
    fn name(&self) -> String {
        self.name.clone()
    }
    fn all(s: &Snapshot) -> &[Stored<Self>] {
        &s.acme_certificates
    }
}

impl ConfigObject for crate::model::webhook::Webhook {
    const TABLE: Table = Table::Webhooks;
    const KIND: &'static str = "webhook";
    fn name(&self) -> String {
        self.name.clone()
    }
    fn all(s: &Snapshot) -> &[Stored<Self>] {
        &s.webhooks
    }
}

impl Snapshot {
    /// The active DKIM key for mail from `domain`: its own, or else its
    /// closest parent domain's (which DMARC's relaxed alignment accepts).
    pub fn dkim_key_for(
        &self,
        domain: &str,
    ) -> Option<&Stored<crate::model::dkim::DkimSigningKey>> {
        let domain = domain.to_ascii_lowercase();
        self.dkim_keys
            .iter()
            .filter(|k| k.spec.state == crate::model::dkim::DkimKeyState::Active)
            .filter(|k| {
                let d = k.spec.domain.as_str().to_ascii_lowercase();
                domain == d || domain.ends_with(&format!(".{d}"))
            })
            .max_by_key(|k| k.spec.domain.as_str().len())
    }
}

/// Finds an object by id or, case-insensitively, by name.
pub fn find<'a, T: ConfigObject>(s: &'a Snapshot, key: &str) -> Option<&'a Stored<T>> {
    let all = T::all(s);
    if let Ok(id) = Uuid::parse_str(key)
        && let Some(o) = all.iter().find(|o| o.id == id)
    {
        return Some(o);
    }
    all.iter().find(|o| o.spec.name().eq_ignore_ascii_case(key))
}
