//! RCPT TO: recipient limits and the relay check of spec rules 9 and 28.

use smtp_proto::RcptTo;
use tokio::io::{AsyncRead, AsyncWrite};

use super::{Next, Session};
use crate::agents::callout::Verified;
use crate::agents::connection_filter::Verdict;
use crate::model::Address;
use crate::model::ExtendedRight as R;
use crate::model::anti_spam::{AgentName, TransportAgent};
use crate::model::{DomainType, RecipientDirectory};
use crate::queue::Recipient;
use crate::smtp::replies::{self, Reply};

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Session<S> {
    /// Whether `address` is in a domain delivered to mailboxes here that
    /// uses the recipient list, and the list does not know it.
    fn mailbox_unknown(&self, address: &Address) -> bool {
        let Some(domain) = address.domain_name() else {
            return false;
        };
        self.snap.accepted_domains.iter().any(|d| {
            d.spec.mailbox_delivery.is_some()
                && d.spec.recipient_directory == Some(RecipientDirectory::List)
                && d.spec.covers(&domain)
        }) && self.shared.directory.lookup(address.as_str()).is_none()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Session<S> {
    /// What a remote directory's answer means at RCPT: None to go on
    /// (known: accept; unknown: refuse below), Some to stop here (a 450
    /// written: the directory cannot answer now). A lookup that asked is
    /// reported as the action `how`.
    async fn directory_answer(
        &mut self,
        how: &str,
        verified: Verified,
        asked: bool,
        address: &Address,
        sender: &Address,
    ) -> Option<Option<Next>> {
        if asked {
            self.report_agent(
                AgentName::RecipientFiltering,
                how,
                &format!("looked up {address}: {verified:?}"),
                sender,
                vec![address.to_string()],
            );
        }
        match verified {
            Verified::Known => Some(None),
            Verified::Unknown(_) => None,
            Verified::Unavailable(_) => {
                Some(Some(self.reply(replies::DIRECTORY_UNAVAILABLE).await))
            }
        }
    }
}

/// Unknown recipients one session may try before it is closed, so that
/// recipient validation is no oracle for harvesting addresses (on top of
/// the tarpit every 5xx reply waits out).
const MAX_UNKNOWN_RECIPIENTS: u32 = 10;

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Session<S> {
    /// The Recipient Filter agent: the blocked-recipients list, then
    /// recipient validation against the domain's directory. Some(next)
    /// when it refused (the reply is written).
    async fn recipient_filter(&mut self, address: &Address) -> Option<Next> {
        let snap = self.snap.clone();
        let f = &snap.anti_spam.recipient_filter_config.spec;
        if !self
            .origin()
            .filtered(f.enabled, f.external_mail_enabled, f.internal_mail_enabled)
            || self.connection_verdict().await == Verdict::Allowed
        {
            return None;
        }
        let sender = self
            .tx
            .as_ref()
            .map(|t| t.sender.clone())
            .unwrap_or_default();
        if f.blocks(address) {
            self.report_agent(
                AgentName::RecipientFiltering,
                "Reject",
                "blocked recipient",
                &sender,
                vec![address.to_string()],
            );
            return Some(self.reply(replies::RECIPIENT_BLOCKED).await);
        }
        if !f.recipient_validation_enabled {
            return None;
        }
        let domain = address.domain_name()?;
        let directory = snap
            .accepted_domains
            .iter()
            .find(|d| d.spec.domain_type == DomainType::Authoritative && d.spec.covers(&domain))
            .and_then(|d| d.spec.recipient_directory.clone())?;
        match directory {
            RecipientDirectory::List => {
                if self.shared.directory.lookup(address.as_str()).is_some() {
                    return None;
                }
            }
            RecipientDirectory::Callout {
                positive_ttl,
                negative_ttl,
            } => {
                let (verified, asked) = self
                    .shared
                    .agents
                    .callout
                    .verify(
                        &snap,
                        &self.shared.config.secrets,
                        &self.shared.observe,
                        address,
                        (positive_ttl.duration(), negative_ttl.duration()),
                    )
                    .await;
                if let Some(next) = self
                    .directory_answer("Callout", verified, asked, address, &sender)
                    .await
                {
                    return next;
                }
            }
            RecipientDirectory::Ldap {
                url,
                base_dn,
                filter,
                bind_credential,
                start_tls,
                positive_ttl,
                negative_ttl,
            } => {
                let query = crate::agents::ldap::LdapQuery {
                    url: &url,
                    base_dn: &base_dn,
                    filter: &filter,
                    bind_credential: bind_credential.as_deref(),
                    start_tls,
                    ttl: (positive_ttl.duration(), negative_ttl.duration()),
                };
                let (verified, asked) = self
                    .shared
                    .agents
                    .ldap
                    .verify(&snap, &self.shared.config.secrets, address, &query)
                    .await;
                if let Some(next) = self
                    .directory_answer("Ldap", verified, asked, address, &sender)
                    .await
                {
                    return next;
                }
            }
        }
        self.unknown_recipients += 1;
        self.report_agent(
            AgentName::RecipientFiltering,
            "Reject",
            "recipient not found in the directory",
            &sender,
            vec![address.to_string()],
        );
        if self.unknown_recipients > MAX_UNKNOWN_RECIPIENTS {
            self.write(&replies::TOO_MANY_UNKNOWN_RECIPIENTS);
            return Some(Next::Close);
        }
        Some(self.reply(replies::RECIPIENT_NOT_FOUND).await)
    }

    pub(super) async fn rcpt(&mut self, to: RcptTo<String>) -> Next {
        let Some(tx) = &self.tx else {
            return self.protocol_error(replies::NEED_MAIL).await;
        };
        let smtputf8 = tx.smtputf8;
        let count = tx.recipients.len();
        let dsn_flags = smtp_proto::RCPT_NOTIFY_SUCCESS
            | smtp_proto::RCPT_NOTIFY_FAILURE
            | smtp_proto::RCPT_NOTIFY_DELAY
            | smtp_proto::RCPT_NOTIFY_NEVER;
        if (to.orcpt.is_some() || to.flags & dsn_flags != 0) && !self.c().dsn_enabled {
            return self
                .protocol_error(Reply::unsupported_parameter("NOTIFY/ORCPT"))
                .await;
        }
        if to.flags & !dsn_flags != 0 {
            return self
                .protocol_error(Reply::unsupported_parameter("RCPT TO"))
                .await;
        }
        let (orcpt, notify) = (to.orcpt.clone(), to.flags & dsn_flags);
        if !to.address.is_ascii() && !smtputf8 {
            return self.reply(replies::NON_ASCII_NEEDS_SMTPUTF8).await;
        }
        if count >= self.c().max_recipients_per_message as usize {
            return self.reply(replies::TOO_MANY_RECIPIENTS).await;
        }
        let Ok(address) = Address::parse(to.address) else {
            return self.protocol_error(replies::BAD_RECIPIENT).await;
        };
        // The anti-spam agents act here, in their priority order, before
        // any other recipient check.
        let mut agents: Vec<&TransportAgent> = self
            .snap
            .anti_spam
            .agents
            .spec
            .agents
            .iter()
            .filter(|a| a.enabled)
            .collect();
        agents.sort_by_key(|a| a.priority);
        let order: Vec<AgentName> = agents.iter().map(|a| a.identity).collect();
        for agent in order {
            match agent {
                AgentName::ConnectionFiltering => {
                    if let Verdict::Blocked { text, bypassed } = self.connection_verdict().await
                        && !bypassed
                            .iter()
                            .any(|r| r.eq_ignore_ascii_case(address.as_str()))
                    {
                        self.refused_by_agent = true;
                        return self.reply(Reply::new(550, "5.7.1", text)).await;
                    }
                }
                AgentName::RecipientFiltering => {
                    if let Some(next) = self.recipient_filter(&address).await {
                        return next;
                    }
                }
                // The others act at MAIL or at the end of data.
                _ => {}
            }
        }
        // <postmaster> without a domain is always local (RFC 5321 §4.5.1).
        let local = address.is_bare_postmaster()
            || address
                .domain_name()
                .is_some_and(|d| self.snap.accepted_domains.iter().any(|a| a.spec.covers(&d)));
        if !local && !self.has_right(R::AcceptAnyRecipient) {
            return self.reply(replies::UNABLE_TO_RELAY).await;
        }
        // `user%other@contoso.test` is local here but relay at a next hop
        // that honours the percent hack: only for clients that may relay.
        if address.has_source_routing() && !self.has_right(R::AcceptAnyRecipient) {
            return self.reply(replies::UNTRUSTED_ROUTING).await;
        }
        // A domain whose mailboxes live here and are listed in the directory
        // has no other recipients: refused now rather than bounced later.
        if local && self.mailbox_unknown(&address) {
            return self.reply(replies::RECIPIENT_NOT_FOUND).await;
        }
        if let Some(tx) = self.tx.as_mut() {
            tx.recipients.push(Recipient {
                address,
                orcpt,
                notify,
                route: None,
            });
        }
        self.reply(replies::RECIPIENT_OK).await
    }
}
