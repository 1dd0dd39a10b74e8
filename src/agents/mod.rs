//! Transport agents: Exchange's extension model made explicit. Agents run
//! at SMTP events in the priority order of `TransportAgents` (Get-/Set-
//! TransportAgent); each may let the session go on, allow it past the
//! other anti-spam agents, or reject. Every decision is tracked (an `AGENT`
//! event naming the agent and the reason), written to the session's
//! protocol log, and counted in `ferry_agent_actions`.
//!
//! The anti-spam agents act only on mail they are enabled for: a session
//! whose connector's principal holds ms-Exch-Bypass-Anti-Spam is never
//! filtered; an authenticated session or one from `internalSmtpServers` is
//! internal mail (filtered only where `internalMailEnabled`); any other is
//! external mail (filtered where `externalMailEnabled`, the default).
//!
//! Agents at the SMTP commands: Connection Filtering
//! (`connection_filter.rs`, with its DNS lists in `dnsbl.rs`), Sender
//! Filtering (at MAIL) and Recipient Filtering (at RCPT), whose rules are
//! the pure `blocks` of their configs in `model/anti_spam.rs`; the session
//! applies them (`smtp/server/session/mail.rs`, `rcpt.rs`).
//!
//! Agents at the end of data, run by `smtp/server/session/content/` in
//! their priority order: Address Rewriting Inbound and Outbound (rules in
//! `model/address_rewrite.rs`, header edits in `headers.rs`), the Content
//! Filter (rspamd, `content_filter.rs`; SCL and thresholds in
//! `model/content_filter.rs`), the Edge Rule agent (`model/edge_rule.rs`)
//! and Attachment Filtering (`attachment_filter.rs`).

pub mod attachment_filter;
mod cache;
pub mod callout;
pub mod connection_filter;
pub mod content_filter;
pub mod dkim;
pub mod dmarc_report;
mod dnsbl;
pub mod headers;
pub mod ldap;
pub mod reports;
pub mod sender_auth;
mod spf_strict;
pub mod tls_report;

use std::net::IpAddr;
use std::sync::Arc;

use crate::config::Snapshot;
use crate::model::anti_spam::{AgentName, IpListConfig};
use crate::observe::Observer;
use crate::observe::tracking::{Event, EventKind, Source};

/// Where a session's mail comes from, as the anti-spam agents see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// From the Internet: the default subject of every anti-spam agent.
    External,
    /// Authenticated, or from one of `internalSmtpServers`.
    Internal,
    /// The connector's principal holds ms-Exch-Bypass-Anti-Spam.
    Bypass,
}

impl Origin {
    /// Whether an agent (list) configured so acts on mail of this origin.
    pub fn filtered_by(self, c: &IpListConfig) -> bool {
        self.filtered(c.enabled, c.external_mail_enabled, c.internal_mail_enabled)
    }

    /// Whether an agent that is `enabled`, for external and internal mail
    /// as given, acts on mail of this origin.
    pub fn filtered(self, enabled: bool, external: bool, internal: bool) -> bool {
        enabled
            && match self {
                Origin::External => external,
                Origin::Internal => internal,
                Origin::Bypass => false,
            }
    }
}

/// What the agents share across sessions: their caches and where they
/// report.
pub struct Agents {
    dnsbl: dnsbl::Dnsbl,
    /// Recipient validation by callout, with its cache.
    pub callout: callout::Callout,
    /// Recipient validation against LDAP, with its cache.
    pub ldap: ldap::Ldap,
    /// The Content Filter's client to rspamd.
    pub scanner: content_filter::Scanner,
    /// DKIM signing keys, parsed once per version.
    pub dkim: Arc<dkim::Signers>,
    /// The Sender Id agent's SPF, DKIM, ARC and DMARC checks.
    pub verifier: sender_auth::Verifier,
    /// DMARC aggregate reports: the counts and the reporter.
    pub dmarc_reports: dmarc_report::DmarcReports,
    /// TLS reports (RFC 8460): the reporter.
    pub tls_reports: tls_report::TlsReports,
    observe: Arc<Observer>,
}

/// The session an agent decides about.
pub struct SessionInfo<'a> {
    pub snap: &'a Snapshot,
    pub client_ip: IpAddr,
    pub connector: &'a str,
    pub session: &'a str,
    pub origin: Origin,
}

impl Agents {
    pub fn new(observe: Arc<Observer>) -> Agents {
        Agents {
            dnsbl: dnsbl::Dnsbl::default(),
            callout: callout::Callout::default(),
            ldap: ldap::Ldap::default(),
            scanner: content_filter::Scanner::default(),
            dkim: Arc::default(),
            verifier: sender_auth::Verifier::default(),
            dmarc_reports: dmarc_report::DmarcReports::new(observe.tracking.clone()),
            tls_reports: tls_report::TlsReports::new(observe.clone()),
            observe,
        }
    }

    /// Records an agent's decision: tracking, metrics, log.
    pub fn report(
        &self,
        s: &SessionInfo<'_>,
        agent: AgentName,
        action: &str,
        reason: &str,
        sender: &str,
        recipients: Vec<String>,
    ) {
        tracing::info!(agent = agent.as_str(), action, reason, client = %s.client_ip, "agent");
        self.observe.metrics.agent_action(agent.as_str(), action);
        self.observe.tracking.record(Event {
            event: EventKind::Agent,
            source: Source::Agent,
            sender: sender.to_string(),
            recipients,
            connector: Some(s.connector.to_string()),
            client_ip: Some(s.client_ip.to_string()),
            session: Some(s.session.to_string()),
            detail: Some(format!("{}: {action}: {reason}", agent.as_str())),
            ..Default::default()
        });
    }
}
