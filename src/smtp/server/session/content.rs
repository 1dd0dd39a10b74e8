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

    /// The Sender Id agent: SPF, DKIM, ARC and DMARC verdicts in one
    /// Authentication-Results header (any arriving header that claims our
    /// authserv-id removed first), and what the configuration makes of them.
    async fn sender_id(&mut self, draft: &mut Draft, tx: &mut Transaction) -> Result<(), Next> {
        use crate::agents::sender_auth::{self, Envelope, authserv_id_of};
        use crate::model::sender_id::{SpoofedDomainAction, TempErrorAction};
        use mail_auth::SpfResult;
        use mail_auth::dmarc::Policy;
        let snap = self.snap.clone();
        let cfg = &snap.anti_spam.sender_id_config.spec;
        let fqdn = self.fqdn();
        let authserv_id = cfg.authserv_id.clone().unwrap_or_else(|| fqdn.clone());
        if !self.has_right(ExtendedRight::AcceptHeadersOrganization) {
            let Ok(m) = draft.message() else {
                return Err(self.reply(replies::QUEUE_FAILED).await);
            };
            let removed = m.remove_where("Authentication-Results", |v| {
                authserv_id_of(v).eq_ignore_ascii_case(&authserv_id)
            });
            if removed > 0 {
                let (sender, rcpts) = (tx.sender.clone(), addresses(tx));
                self.report_agent(
                    AgentName::SenderId,
                    "RemovedHeader",
                    &format!("{removed} Authentication-Results claiming {authserv_id}"),
                    &sender,
                    rcpts,
                );
            }
        }
        if !self.origin().filtered(
            cfg.enabled,
            cfg.external_mail_enabled,
            cfg.internal_mail_enabled,
        ) {
            return Ok(());
        }
        let sender_domain = tx.sender.domain().unwrap_or("").to_string();
        if !sender_domain.is_empty() && cfg.bypasses_sender(&sender_domain) {
            return Ok(());
        }
        let Ok(raw) = draft.bytes() else {
            return Err(self.reply(replies::QUEUE_FAILED).await);
        };
        let ts = &snap.transport.spec;
        let servers: Vec<std::net::SocketAddr> = if ts.external_dns_servers.is_empty() {
            ts.internal_dns_servers.iter().map(|s| s.0).collect()
        } else {
            ts.external_dns_servers.iter().map(|s| s.0).collect()
        };
        let helo = self.helo.clone().unwrap_or_default();
        let ip = self.remote.ip();
        let sender = tx.sender.to_string();
        let verdict = self
            .shared
            .agents
            .verifier
            .verify(
                &servers,
                &authserv_id,
                &fqdn,
                &raw,
                &Envelope {
                    ip,
                    helo: &helo,
                    sender: &sender,
                },
                cfg.dns_timeout.duration(),
            )
            .await;
        tx.stamps.push(verdict.header.trim_end().to_string());
        draft.verified = Some(raw);
        let metrics = &self.shared.observe.metrics;
        for (method, word) in [
            ("spf", sender_auth::spf_word(verdict.spf)),
            ("dkim", verdict.dkim),
            ("dmarc", verdict.dmarc),
            ("arc", verdict.arc),
        ] {
            metrics.agent_action("Sender Id Agent", &format!("{method}={word}"));
        }
        let rcpts = addresses(tx);
        let summary = verdict.summary();
        self.report_agent(
            AgentName::SenderId,
            "Verified",
            &summary,
            &tx.sender.clone(),
            rcpts.clone(),
        );
        // Trusted forwarders, and mail only for bypassed recipients, are
        // checked and stamped, never refused.
        let trusted = cfg.trusted_forwarders.iter().any(|r| r.contains_ip(ip))
            || rcpts.iter().all(|r| {
                cfg.bypassed_recipients
                    .iter()
                    .any(|b| b.eq_ignore_ascii_case(r))
            });
        if trusted {
            return Ok(());
        }
        let sender_addr = tx.sender.clone();
        if verdict.dmarc == "fail" && cfg.dmarc_honor_policy {
            if let Some(sealer) = verdict
                .arc_sealer
                .as_deref()
                .filter(|s| cfg.trusts_sealer(s))
            {
                self.report_agent(
                    AgentName::SenderId,
                    "DmarcOverride",
                    &format!("ARC sealed by trusted {sealer}"),
                    &sender_addr,
                    rcpts,
                );
                return Ok(());
            }
            match verdict.dmarc_policy {
                Policy::Reject => {
                    let why = format!(
                        "Email rejected per DMARC policy for {}",
                        verdict.from_domain
                    );
                    self.report_agent(AgentName::SenderId, "Reject", &why, &sender_addr, rcpts);
                    return Err(self.reply(Reply::new(550, "5.7.1", why)).await);
                }
                Policy::Quarantine => {
                    let filter = &snap.anti_spam.content_filter_config.spec;
                    let why = format!("DMARC policy quarantine for {}", verdict.from_domain);
                    self.report_agent(
                        AgentName::SenderId,
                        "Quarantine",
                        &why,
                        &sender_addr,
                        rcpts.clone(),
                    );
                    match &filter.quarantine_mailbox {
                        Some(mailbox) => {
                            tx.recipients.clear();
                            quarantine(tx, mailbox, &rcpts);
                        }
                        // Without a quarantine mailbox: to the Junk folder.
                        None => {
                            let junk = filter.scl_junk_threshold as i8;
                            draft.scl = Some(draft.scl.map_or(junk, |s| s.max(junk)));
                        }
                    }
                    return Ok(());
                }
                _ => {}
            }
        }
        match verdict.spf {
            SpfResult::Fail => match cfg.spoofed_domain_action {
                SpoofedDomainAction::StampStatus => Ok(()),
                SpoofedDomainAction::Reject => {
                    let why = format!(
                        "SPF validation failed: {} does not permit {ip} to send its mail",
                        verdict.spf_domain
                    );
                    self.report_agent(AgentName::SenderId, "Reject", &why, &sender_addr, rcpts);
                    Err(self.reply(Reply::new(550, "5.7.23", why)).await)
                }
                SpoofedDomainAction::Delete => {
                    self.report_agent(
                        AgentName::SenderId,
                        "Delete",
                        "SPF fail",
                        &sender_addr,
                        rcpts,
                    );
                    Err(self.silently_dropped().await)
                }
            },
            SpfResult::TempError => match cfg.temp_error_action {
                TempErrorAction::StampStatus => Ok(()),
                TempErrorAction::Reject => {
                    self.report_agent(
                        AgentName::SenderId,
                        "TempFail",
                        "SPF temperror",
                        &sender_addr,
                        rcpts,
                    );
                    Err(self
                        .reply(Reply::new(
                            451,
                            "4.7.24",
                            "SPF could not be checked now, try again later",
                        ))
                        .await)
                }
                TempErrorAction::Delete => {
                    self.report_agent(
                        AgentName::SenderId,
                        "Delete",
                        "SPF temperror",
                        &sender_addr,
                        rcpts,
                    );
                    Err(self.silently_dropped().await)
                }
            },
            _ => Ok(()),
        }
    }

    /// ARC (RFC 8617): a message the Sender Id agent verified and an agent
    /// then changed is sealed, with the key of this server's domain (the
    /// server FQDN's, or the default accepted domain's, active DKIM key), so
    /// that the next hop can still trust what was verified here. Without a
    /// key, or over a chain that failed, it is not sealed.
    async fn arc_seal(&mut self, draft: &mut Draft, tx: &mut Transaction, original: &[u8]) {
        let snap = self.snap.clone();
        let key = snap
            .dkim_key_for(snap.transport.spec.server_fqdn.as_str())
            .or_else(|| {
                snap.default_domain()
                    .and_then(|d| snap.dkim_key_for(d.spec.domain_name.domain().as_str()))
            });
        let Some(key) = key else {
            return;
        };
        let Ok(private) = self.shared.config.secrets.open(
            &key.id.to_string(),
            key.secret.as_deref().unwrap_or_default(),
        ) else {
            tracing::error!(key = %key.spec.record_name(), "the ARC key cannot be opened");
            return;
        };
        let Ok(modified) = draft.bytes() else {
            return;
        };
        let cfg = &snap.anti_spam.sender_id_config.spec;
        let fqdn = self.fqdn();
        let authserv_id = cfg.authserv_id.clone().unwrap_or_else(|| fqdn.clone());
        let ts = &snap.transport.spec;
        let servers: Vec<std::net::SocketAddr> = if ts.external_dns_servers.is_empty() {
            ts.internal_dns_servers.iter().map(|s| s.0).collect()
        } else {
            ts.external_dns_servers.iter().map(|s| s.0).collect()
        };
        let helo = self.helo.clone().unwrap_or_default();
        let sender = tx.sender.to_string();
        let sealed = self
            .shared
            .agents
            .verifier
            .seal(
                &servers,
                &authserv_id,
                &fqdn,
                original,
                &modified,
                &crate::agents::sender_auth::Envelope {
                    ip: self.remote.ip(),
                    helo: &helo,
                    sender: &sender,
                },
                cfg.dns_timeout.duration(),
                crate::agents::sender_auth::SealKey {
                    private: &private,
                    domain: key.spec.domain.as_str(),
                    selector: &key.spec.selector,
                },
            )
            .await;
        match sealed {
            Ok(Some(set)) => {
                let (sender, rcpts) = (tx.sender.clone(), addresses(tx));
                self.report_agent(
                    AgentName::SenderId,
                    "ArcSealed",
                    &format!("d={} s={}", key.spec.domain, key.spec.selector),
                    &sender,
                    rcpts,
                );
                tx.stamps.push(set.trim_end().to_string());
            }
            Ok(None) => {}
            Err(e) => tracing::error!(error = %e, "ARC sealing failed"),
        }
    }

    /// Address Rewriting: inbound, mail from the Internet to an external
    /// address is brought to the internal one (envelope recipients and
    /// address headers); outbound, mail from inside leaves with its
    /// internal addresses shown as the external ones (envelope sender and
    /// address headers).
    async fn rewrite(
        &mut self,
        draft: &mut Draft,
        tx: &mut Transaction,
        outbound: bool,
    ) -> Result<(), Next> {
        let snap = self.snap.clone();
        let entries = &snap.anti_spam.address_rewrite_entries.spec.entries;
        let from_inside = self.origin() != Origin::External;
        if entries.is_empty() || from_inside != outbound {
            return Ok(());
        }
        let map = |a: &str| crate::model::address_rewrite::rewrite(entries, a, outbound);
        let mut done: Vec<String> = vec![];
        if outbound {
            if let Some(new) = map(tx.sender.as_str())
                && let Ok(a) = Address::parse(new.clone())
            {
                done.push(format!("{} → {new}", tx.sender));
                tx.sender = a;
            }
        } else {
            for r in tx.recipients.iter_mut() {
                if let Some(new) = map(r.address.as_str())
                    && let Ok(a) = Address::parse(new.clone())
                {
                    done.push(format!("{} → {new}", r.address));
                    r.address = a;
                }
            }
        }
        let Ok(m) = draft.message() else {
            return Err(self.reply(replies::QUEUE_FAILED).await);
        };
        let mut fields = 0;
        for name in ADDRESS_FIELDS {
            fields += m.edit(name, |v| headers::rewrite_addresses(v, &map));
        }
        if fields > 0 {
            done.push(format!("{fields} address header(s)"));
            draft.modified = true;
        }
        if !done.is_empty() {
            let agent = if outbound {
                AgentName::AddressRewritingOutbound
            } else {
                AgentName::AddressRewritingInbound
            };
            let (sender, rcpts) = (tx.sender.clone(), addresses(tx));
            self.report_agent(agent, "Rewrite", &done.join(", "), &sender, rcpts);
        }
        Ok(())
    }

    /// The Content Filter: rspamd's verdict as an SCL, and what the
    /// thresholds make of it.
    async fn content_filter(
        &mut self,
        draft: &mut Draft,
        tx: &mut Transaction,
    ) -> Result<(), Next> {
        let snap = self.snap.clone();
        let cfg = &snap.anti_spam.content_filter_config.spec;
        if !self.origin().filtered(
            cfg.enabled,
            cfg.external_mail_enabled,
            cfg.internal_mail_enabled,
        ) {
            return Ok(());
        }
        let rcpts = addresses(tx);
        if cfg.bypasses_sender(tx.sender.as_str())
            || rcpts.iter().all(|r| cfg.bypasses_recipient(r))
        {
            draft.scl.get_or_insert(-1);
            return Ok(());
        }
        // An SCL a rule set is taken as it is, without asking the scanner.
        if draft.scl.is_none() {
            let Ok(raw) = draft.bytes() else {
                return Err(self.reply(replies::QUEUE_FAILED).await);
            };
            let env = crate::agents::content_filter::Envelope {
                client_ip: self.remote.ip(),
                helo: self.helo.as_deref(),
                sender: tx.sender.as_str(),
                recipients: &rcpts,
                auth_user: self.auth_user.as_deref(),
                session: &self.id,
            };
            let verdict = self
                .shared
                .agents
                .scanner
                .check(&cfg.scanner_url, cfg.scanner_timeout.duration(), raw, &env)
                .await;
            match verdict {
                Ok(v) => {
                    tx.stamps
                        .push(format!("{CONTENT_FILTER_HEADER}: {}", v.stamp()));
                    self.shared.observe.metrics.scl(v.scl);
                    draft.scl = Some(v.scl);
                }
                Err(why) => {
                    let sender = tx.sender.clone();
                    match cfg.scanner_failure_action {
                        ScannerFailureAction::Accept => {
                            self.report_agent(
                                AgentName::ContentFilter,
                                "NotScanned",
                                &why,
                                &sender,
                                rcpts,
                            );
                            tx.stamps
                                .push(format!("{CONTENT_FILTER_HEADER}: not scanned ({why})"));
                            return Ok(());
                        }
                        ScannerFailureAction::TempFail => {
                            self.report_agent(
                                AgentName::ContentFilter,
                                "TempFail",
                                &why,
                                &sender,
                                rcpts,
                            );
                            return Err(self
                                .reply(Reply::new(
                                    451,
                                    "4.7.1",
                                    "The content filter cannot scan this message now, try again later",
                                ))
                                .await);
                        }
                    }
                }
            }
        }
        let scl = draft.scl.unwrap_or(-1);
        let action = cfg.action(scl);
        if action == SclAction::Deliver {
            return Ok(());
        }
        // Bypassed recipients get the message whatever its SCL; the others
        // get what the thresholds say.
        let (kept, filtered): (Vec<Recipient>, Vec<Recipient>) = std::mem::take(&mut tx.recipients)
            .into_iter()
            .partition(|r| cfg.bypasses_recipient(r.address.as_str()));
        tx.recipients = kept;
        let names: Vec<String> = filtered.iter().map(|r| r.address.to_string()).collect();
        let sender = tx.sender.clone();
        let reason = format!("SCL {scl}");
        match action {
            SclAction::Quarantine => {
                let mailbox = cfg.quarantine_mailbox.clone().unwrap_or_default();
                self.report_agent(
                    AgentName::ContentFilter,
                    "Quarantine",
                    &format!("{reason}, to {mailbox}"),
                    &sender,
                    names.clone(),
                );
                quarantine(tx, &mailbox, &names);
                Ok(())
            }
            SclAction::Reject if tx.recipients.is_empty() => {
                self.report_agent(AgentName::ContentFilter, "Reject", &reason, &sender, names);
                Err(self
                    .reply(Reply::new(550, "5.7.1", cfg.rejection_response.clone()))
                    .await)
            }
            // Refused for some and delivered to the bypassed others: after
            // a single reply to DATA, refused can only mean dropped.
            SclAction::Reject | SclAction::Delete => {
                self.report_agent(AgentName::ContentFilter, "Delete", &reason, &sender, names);
                if tx.recipients.is_empty() {
                    return Err(self.silently_dropped().await);
                }
                Ok(())
            }
            SclAction::Deliver => Ok(()),
        }
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
        let key = snap.dkim_key_for(&domain)?;
        let raw = match body.to_vec() {
            Ok(b) => [extra, &b].concat(),
            Err(e) => {
                tracing::error!(error = %e, "the message could not be read to sign it");
                return None;
            }
        };
        let (id, version, secret) = (key.id, key.version, key.secret.clone().unwrap_or_default());
        let (d, selector) = (key.spec.domain.to_string(), key.spec.selector.clone());
        let secrets = self.shared.config.secrets.clone();
        let signers = self.shared.agents.dkim.clone();
        let (d2, s2) = (d.clone(), selector.clone());
        let signed = tokio::task::spawn_blocking(move || {
            signers.sign(
                (id, version),
                || {
                    secrets
                        .open(&id.to_string(), &secret)
                        .map_err(|e| e.to_string())
                },
                &d2,
                &s2,
                &raw,
            )
        })
        .await;
        let result = match signed {
            Ok(Ok(header)) => Some(header),
            Ok(Err(e)) => {
                tracing::error!(domain = %d, selector = %selector, error = %e, "DKIM signing failed");
                None
            }
            Err(e) => {
                tracing::error!(error = %e, "DKIM signing failed");
                None
            }
        };
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

    /// The Attachment Filter agent at the end of data: the message as it
    /// should be queued (stripped of unwanted parts), or the session's next
    /// step when it is refused or silently dropped.
    async fn attachment_filter(
        &mut self,
        body: crate::queue::spool::MessageBody,
        headers: &[u8],
        tx: &super::Transaction,
    ) -> Result<crate::queue::spool::MessageBody, Next> {
        use crate::agents::attachment_filter::{Scan, scan, single_part, strip};
        use crate::model::anti_spam::AgentName;
        use crate::model::attachment_filter::AttachmentFilterAction as A;
        let snap = self.snap.clone();
        let cfg = &snap.anti_spam.attachment_filter_config.spec;
        if !snap
            .anti_spam
            .agents
            .spec
            .enabled(AgentName::AttachmentFiltering)
            || cfg.entries.is_empty()
            || cfg
                .exception_connectors
                .iter()
                .any(|c| c.eq_ignore_ascii_case(&self.c().name))
        {
            return Ok(body);
        }
        // A single-part message is decided by its header block alone; only
        // a multipart or attached message is read and walked whole.
        let (found, raw) = match single_part(headers, cfg) {
            Some(found) => (found, vec![]),
            None => {
                let Ok(raw) = body.to_vec() else {
                    return Err(self.reply(replies::QUEUE_FAILED).await);
                };
                // Parsing a large message is CPU work: off the async workers.
                let config = cfg.clone();
                let Ok(walked) =
                    tokio::task::spawn_blocking(move || (scan(&raw, &config), raw)).await
                else {
                    return Err(self.reply(replies::QUEUE_FAILED).await);
                };
                walked
            }
        };
        let unwanted = match found {
            // The spooled body as it was: a large one stays on disk.
            Scan::Clean => return Ok(body),
            Scan::Unwanted(u) => u,
            Scan::Unreadable => vec![],
        };
        let what = if unwanted.is_empty() {
            "the message is not readable as MIME".to_string()
        } else {
            unwanted
                .iter()
                .map(|u| u.what.clone())
                .collect::<Vec<_>>()
                .join(", ")
        };
        // Nothing can be stripped from an unreadable message, or from one
        // that is itself the attachment: it is refused instead.
        let action = match cfg.action {
            A::Strip if unwanted.is_empty() || unwanted.iter().any(|u| u.whole_message) => {
                A::Reject
            }
            a => a,
        };
        let recipients = tx
            .recipients
            .iter()
            .map(|r| r.address.to_string())
            .collect();
        let name = match action {
            A::Reject => "Reject",
            A::Strip => "Strip",
            A::SilentDelete => "SilentDelete",
        };
        self.report_agent(
            AgentName::AttachmentFiltering,
            name,
            &what,
            &tx.sender,
            recipients,
        );
        match action {
            A::Reject => Err(self
                .reply(Reply::new(550, "5.7.1", cfg.reject_response.clone()))
                .await),
            A::SilentDelete => Err(self.silently_dropped().await),
            A::Strip => Ok(strip(&raw, &unwanted, &cfg.admin_message).into()),
        }
    }

    /// The Edge Rule agent: the transport rules, in order.
    async fn edge_rules(&mut self, draft: &mut Draft, tx: &mut Transaction) -> Result<(), Next> {
        let snap = self.snap.clone();
        let rules = &snap.anti_spam.compiled_rules;
        if rules.is_empty() {
            return Ok(());
        }
        let (size, scl) = (draft.size, draft.scl);
        let Ok(m) = draft.message() else {
            return Err(self.reply(replies::QUEUE_FAILED).await);
        };
        let (body_text, attachment_names) = if rules.reads_body() {
            let raw = m.to_bytes();
            tokio::task::spawn_blocking(move || {
                crate::agents::attachment_filter::body_facts(&raw, edge_rule::TEXT_LIMIT)
            })
            .await
            .unwrap_or_default()
        } else {
            (String::new(), vec![])
        };
        let subject = m.value("subject").unwrap_or_default();
        let m_ref: &headers::Message = m;
        let header = |name: &str| m_ref.values(name);
        let rcpts = addresses(tx);
        let outcome = edge_rule::evaluate(
            rules,
            &Facts {
                sender: tx.sender.as_str(),
                recipients: &rcpts,
                header: &header,
                subject: &subject,
                body_text: &body_text,
                attachment_names: &attachment_names,
                scl,
                size,
                in_organization: self.origin() != Origin::External,
            },
        );
        let sender = tx.sender.clone();
        for (rule, did) in &outcome.log {
            self.report_agent(
                AgentName::EdgeRule,
                "Rule",
                &format!("{rule}: {did}"),
                &sender,
                rcpts.clone(),
            );
        }
        draft.modified |= !outcome.edits.is_empty();
        let m = draft.message().expect("read above");
        for edit in &outcome.edits {
            match edit {
                Edit::PrependSubject(p) => {
                    let s = m.value("subject").unwrap_or_default();
                    if !s.starts_with(p.as_str()) {
                        m.set("Subject", &format!("{p}{s}"));
                    }
                }
                Edit::SetHeader(n, v) => m.set(n, v),
                Edit::RemoveHeader(n) => {
                    m.remove(n);
                }
            }
        }
        draft.scl = outcome.scl;
        if let Some(list) = &outcome.recipients {
            tx.recipients = list.iter().filter_map(|a| recipient(a)).collect();
        }
        match outcome.end {
            Some(End::Reject { code, text }) => {
                Err(self.reply(Reply::new(550, static_code(&code), text)).await)
            }
            Some(End::Delete) => Err(self.silently_dropped().await),
            Some(End::Quarantine) => {
                match snap
                    .anti_spam
                    .content_filter_config
                    .spec
                    .quarantine_mailbox
                    .clone()
                {
                    Some(mailbox) => {
                        let original = addresses(tx);
                        tx.recipients.clear();
                        quarantine(tx, &mailbox, &original);
                        Ok(())
                    }
                    // Checked when the rule is written; a mailbox removed
                    // since leaves the message where it was going.
                    None => Ok(()),
                }
            }
            None => Ok(()),
        }
    }
}
