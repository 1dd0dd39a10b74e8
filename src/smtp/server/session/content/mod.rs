//! The agents at the end of data, in their priority order: Address
//! Rewriting Inbound and Outbound, the Content Filter, the Edge Rule agent
//! and Attachment Filtering. Each may edit the message or its envelope,
//! refuse it (a 5xx or 4xx after DATA), or drop it (250, no NDR); every
//! such decision is reported (tracking, metrics, protocol log).
//!
//! The message stays in its spool (a large one on disk) until an agent
//! needs to read or edit it; then it is read once and edited in memory
//! (`agents::headers`), fields the agents leave alone kept as written.
//!
//! Headers Ferry stamps for the organization (`X-Ferry-Organization-SCL`,
//! `X-Ferry-Content-Filter`) are removed from mail of a session without
//! ms-Exch-Accept-Headers-Organization, as Exchange removes its
//! organization headers, so no sender can set its own SCL.

use tokio::io::{AsyncRead, AsyncWrite};

use super::{Next, Session, Transaction};

mod attachments;
mod content_filter;
mod rewrite;
mod rules;
mod sender_id;
use crate::agents::Origin;
use crate::agents::headers::{self, ADDRESS_FIELDS};
use crate::model::anti_spam::{AgentName, TransportAgent};
use crate::model::content_filter::{ScannerFailureAction, SclAction};
use crate::model::edge_rule::{self, Edit, End, Facts};
use crate::model::{Address, ExtendedRight};
use crate::queue::Recipient;
use crate::queue::spool::MessageBody;
use crate::smtp::replies::{self, Reply};

/// The stamp of the Spam Confidence Level, for the Hub's junk handling:
/// −1 not filtered (bypassed, internal), 0–9 from the Content Filter or a
/// rule.
pub const SCL_HEADER: &str = "X-Ferry-Organization-SCL";
/// What the Content Filter's scanner said, or why it said nothing.
pub const CONTENT_FILTER_HEADER: &str = "X-Ferry-Content-Filter";

/// The message between agents.
struct Draft {
    /// The message as received, until an agent reads it.
    body: Option<MessageBody>,
    /// The message as the agents edit it, once one has read it.
    edited: Option<headers::Message>,
    scl: Option<i8>,
    size: u64,
    /// The message as the Sender Id agent verified it.
    verified: Option<Vec<u8>>,
    /// An agent changed the message after it arrived.
    modified: bool,
}

impl Draft {
    fn message(&mut self) -> std::io::Result<&mut headers::Message> {
        if self.edited.is_none() {
            let raw = match self.body.take() {
                Some(b) => b.to_vec()?,
                None => vec![],
            };
            self.edited = Some(headers::Message::parse(&raw));
        }
        Ok(self.edited.as_mut().expect("just parsed"))
    }

    fn bytes(&mut self) -> std::io::Result<Vec<u8>> {
        match (&self.edited, &self.body) {
            (Some(m), _) => Ok(m.to_bytes()),
            (None, Some(b)) => b.to_vec(),
            (None, None) => Ok(vec![]),
        }
    }

    fn into_body(self) -> MessageBody {
        match (self.edited, self.body) {
            (Some(m), _) => m.to_bytes().into(),
            (None, Some(b)) => b,
            (None, None) => Vec::new().into(),
        }
    }
}

fn addresses(tx: &Transaction) -> Vec<String> {
    tx.recipients
        .iter()
        .map(|r| r.address.to_string())
        .collect()
}

fn recipient(address: &str) -> Option<Recipient> {
    Address::parse(address).ok().map(|address| Recipient {
        address,
        orcpt: None,
        notify: 0,
        route: None,
    })
}

/// The message goes to the quarantine mailbox instead of `original`, with
/// the original recipients in `X-Ferry-Original-Recipients`.
fn quarantine(tx: &mut Transaction, mailbox: &str, original: &[String]) {
    let Some(q) = recipient(mailbox) else {
        return;
    };
    tx.stamps.push(format!(
        "X-Ferry-Original-Recipients: {}",
        original.join(", ")
    ));
    if !tx
        .recipients
        .iter()
        .any(|r| r.address.as_str().eq_ignore_ascii_case(mailbox))
    {
        tx.recipients.push(q);
    }
}

/// The domain of the (first) address in a From header value.
fn from_domain(value: &str) -> Option<String> {
    let addr = match (value.rfind('<'), value.rfind('>')) {
        (Some(a), Some(b)) if a < b => &value[a + 1..b],
        _ => value.split(',').next().unwrap_or(value),
    };
    let (_, domain) = addr.trim().rsplit_once('@')?;
    let domain = domain.trim().trim_end_matches('.');
    (!domain.is_empty()).then(|| domain.to_ascii_lowercase())
}

/// A rule's enhanced status code (5.7.1 or 5.7.900–5.7.999, checked when
/// the rule is written) as the reply carries it.
fn static_code(code: &str) -> &'static str {
    static CODES: std::sync::LazyLock<Vec<&'static str>> = std::sync::LazyLock::new(|| {
        (900..=999)
            .map(|n| &*Box::leak(format!("5.7.{n}").into_boxed_str()))
            .collect()
    });
    CODES
        .iter()
        .find(|c| **c == code)
        .copied()
        .unwrap_or("5.7.1")
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Session<S> {
    /// Runs the end-of-data agents: the message to queue, or the session's
    /// next step when an agent refused or dropped it.
    pub(super) async fn end_of_data(
        &mut self,
        body: MessageBody,
        headers: &[u8],
        tx: &mut Transaction,
    ) -> Result<MessageBody, Next> {
        let snap = self.snap.clone();
        let mut agents: Vec<&TransportAgent> = snap
            .anti_spam
            .agents
            .spec
            .agents
            .iter()
            .filter(|a| a.enabled)
            .collect();
        agents.sort_by_key(|a| a.priority);
        let mut draft = Draft {
            size: body.len(),
            body: Some(body),
            edited: None,
            scl: None,
            verified: None,
            modified: false,
        };
        // No sender sets the organization's headers itself.
        if !self.has_right(ExtendedRight::AcceptHeadersOrganization)
            && [SCL_HEADER, CONTENT_FILTER_HEADER]
                .iter()
                .any(|h| super::data::header_value(headers, h).is_some())
        {
            let Ok(m) = draft.message() else {
                return Err(self.reply(replies::QUEUE_FAILED).await);
            };
            m.remove(SCL_HEADER);
            m.remove(CONTENT_FILTER_HEADER);
        }
        // The arrival time a drained server's transfer states: taken from a
        // session that may set the organization's headers (a server login),
        // when it is in the past; removed from every message.
        if let Some(v) = super::data::header_value(headers, crate::model::drain::ARRIVAL_HEADER) {
            if self.has_right(ExtendedRight::AcceptHeadersOrganization) {
                let now = time::OffsetDateTime::now_utc();
                tx.arrived_ms = time::OffsetDateTime::parse(
                    v.trim(),
                    &time::format_description::well_known::Rfc3339,
                )
                .ok()
                .filter(|t| *t <= now)
                .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64);
            }
            let Ok(m) = draft.message() else {
                return Err(self.reply(replies::QUEUE_FAILED).await);
            };
            m.remove(crate::model::drain::ARRIVAL_HEADER);
        }
        // Nor says what this server verified: Authentication-Results that
        // claim our authserv-id are removed (RFC 8601 §5), whether or not
        // the Sender Id agent runs.
        let authserv_id = self
            .snap
            .anti_spam
            .sender_id_config
            .spec
            .authserv_id
            .clone()
            .unwrap_or_else(|| self.fqdn());
        let ours = |v: &str| {
            crate::agents::sender_auth::authserv_id_of(v).eq_ignore_ascii_case(&authserv_id)
        };
        if !self.has_right(ExtendedRight::AcceptHeadersOrganization)
            && super::data::header_values(headers, "authentication-results")
                .iter()
                .any(|v| ours(v))
        {
            let Ok(m) = draft.message() else {
                return Err(self.reply(replies::QUEUE_FAILED).await);
            };
            let removed = m.remove_where("Authentication-Results", ours);
            let (sender, rcpts) = (tx.sender.clone(), addresses(tx));
            self.report_agent(
                AgentName::SenderId,
                "RemovedHeader",
                &format!("{removed} Authentication-Results claiming {authserv_id}"),
                &sender,
                rcpts,
            );
        }
        for agent in agents.iter().map(|a| a.identity) {
            let step = match agent {
                AgentName::SenderId => self.sender_id(&mut draft, tx).await,
                AgentName::AddressRewritingInbound => self.rewrite(&mut draft, tx, false).await,
                AgentName::AddressRewritingOutbound => self.rewrite(&mut draft, tx, true).await,
                AgentName::ContentFilter => self.content_filter(&mut draft, tx).await,
                AgentName::EdgeRule => self.edge_rules(&mut draft, tx).await,
                AgentName::AttachmentFiltering => {
                    let body = match draft.edited.take() {
                        Some(m) => m.to_bytes().into(),
                        None => draft.body.take().unwrap_or_else(|| Vec::new().into()),
                    };
                    // Content types are in the header block as received:
                    // no agent edits them.
                    let before = body.len();
                    match self.attachment_filter(body, headers, tx).await {
                        Ok(b) => {
                            draft.modified |= b.len() != before;
                            draft.body = Some(b);
                            Ok(())
                        }
                        Err(next) => Err(next),
                    }
                }
                _ => Ok(()),
            };
            step?;
        }
        if let Some(scl) = draft.scl {
            tx.stamps.push(format!("{SCL_HEADER}: {scl}"));
        }
        if draft.modified
            && let Some(original) = draft.verified.take()
        {
            self.arc_seal(&mut draft, tx, &original).await;
        }
        Ok(draft.into_body())
    }

    /// The DKIM signature of a message from inside (authenticated, a Hub,
    /// `internalSMTPServers`) whose From domain — or a parent of it — has
    /// an active key: signed once, at acceptance, after every agent has
    /// edited the message, so the stored message carries it through every
    /// retry unchanged. `extra` is what is added before the message (a
    /// Message-ID Ferry made). None when nothing signs it; a signing error
    /// is logged and the message goes unsigned.
    pub(super) async fn dkim_signature(
        &mut self,
        body: &MessageBody,
        extra: &[u8],
    ) -> Option<String> {
        if self.origin() == Origin::External || self.snap.dkim_keys.is_empty() {
            return None;
        }
        let snap = self.snap.clone();
        let head = &body.head[..super::data::header_block_len(&body.head)];
        let from = super::data::header_value(head, "from")?;
        let domain = from_domain(&from)?;
        snap.dkim_key_for(&domain)?;
        let raw = match body.to_vec() {
            Ok(b) => [extra, &b].concat(),
            Err(e) => {
                tracing::error!(error = %e, "the message could not be read to sign it");
                return None;
            }
        };
        let result = crate::agents::dkim::sign_for(
            &snap,
            &self.shared.config.secrets,
            &self.shared.agents.dkim,
            &domain,
            raw,
        )
        .await;
        self.shared.observe.metrics.agent_action(
            "DKIM Signing",
            if result.is_some() { "Signed" } else { "Failed" },
        );
        result
    }

    /// Accepted and dropped: the client is told what it would be told of
    /// mail that was queued, and no NDR is sent.
    async fn silently_dropped(&mut self) -> Next {
        self.reply(Reply::new(250, "2.6.0", "Queued mail for delivery"))
            .await
    }
}
