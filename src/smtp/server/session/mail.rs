//! MAIL FROM: the checks of spec rule 9 in order — hello, Submit, rate,
//! size, and the authoritative-domain and send-as rights.

use smtp_proto::MailFrom;
use tokio::io::{AsyncRead, AsyncWrite};

use super::{Next, Session, Transaction};
use crate::agents::connection_filter::Verdict;
use crate::model::Address;
use crate::model::anti_spam::{AgentName, SenderFilterAction};
use crate::model::{DomainType, ExtendedRight as R, Principal};
use crate::smtp::replies::{self, Reply};

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Session<S> {
    pub(super) async fn mail(&mut self, from: MailFrom<String>) -> Next {
        if self.helo.is_none() {
            return self.protocol_error(replies::HELLO_FIRST).await;
        }
        if self.tx.is_some() {
            return self.protocol_error(replies::SENDER_ALREADY).await;
        }
        if !self.has_right(R::Submit) {
            return match self.principal {
                Principal::Anonymous => self.reply(replies::NOT_AUTHENTICATED).await,
                _ => self.reply(replies::NO_SUBMIT).await,
            };
        }
        // Back pressure: a transient refusal now, before the disk or the
        // memory runs out and something fails.
        if self.shared.queue.health.back_pressure().is_some() {
            return self.reply(replies::INSUFFICIENT_RESOURCES).await;
        }
        // DSN (RFC 3461) where the connector offers it; not the other
        // extensions smtp-proto knows.
        let dsn = self.c().dsn_enabled;
        let unsupported = [
            (from.env_id.is_some() && !dsn, "ENVID"),
            (
                from.flags & (smtp_proto::MAIL_RET_FULL | smtp_proto::MAIL_RET_HDRS) != 0 && !dsn,
                "RET",
            ),
            // RFC 8689: offered only once the session is under TLS.
            (
                from.flags & smtp_proto::MAIL_REQUIRETLS != 0 && self.tls.is_none(),
                "REQUIRETLS",
            ),
            (from.trans_id.is_some(), "TRANSID"),
            (from.by != 0, "BY"),
            (from.mtrk.is_some(), "MTRK"),
            (from.hold_for != 0 || from.hold_until != 0, "HOLDFOR"),
            (from.mt_priority != 0, "MT-PRIORITY"),
            (from.solicit.is_some(), "SOLICIT"),
        ];
        if let Some((_, p)) = unsupported.iter().find(|(bad, _)| *bad) {
            return self.protocol_error(Reply::unsupported_parameter(p)).await;
        }
        let smtputf8 = from.flags & smtp_proto::MAIL_SMTPUTF8 != 0;
        if !from.address.is_ascii() && !smtputf8 {
            return self.reply(replies::NON_ASCII_NEEDS_SMTPUTF8).await;
        }
        if from.flags & smtp_proto::MAIL_BODY_8BITMIME != 0 && !self.c().eight_bit_mime_enabled {
            return self
                .protocol_error(Reply::unsupported_parameter("BODY=8BITMIME"))
                .await;
        }
        let binary = from.flags & smtp_proto::MAIL_BODY_BINARYMIME != 0;
        if binary && !(self.c().binary_mime_enabled && self.c().chunking_enabled) {
            return self
                .protocol_error(Reply::unsupported_parameter("BODY=BINARYMIME"))
                .await;
        }
        let ip = self.remote.ip();
        let user = self.auth_user.clone();
        if !self
            .shared
            .limiter
            .rate_allows(self.connector.id, self.c(), ip, user.as_deref())
        {
            self.write(&replies::RATE_LIMITED);
            return Next::Close;
        }
        if from.size as u64 > self.c().max_message_size
            && !self.has_right(R::BypassMessageSizeLimit)
        {
            return self.reply(replies::SIZE_EXCEEDED).await;
        }
        let Ok(sender) = Address::parse(from.address) else {
            return self.protocol_error(replies::BAD_SENDER).await;
        };
        if !sender.is_null() {
            let domain = sender.domain_name();
            let authoritative = domain.as_ref().is_some_and(|d| {
                self.snap
                    .accepted_domains
                    .iter()
                    .any(|a| a.spec.domain_type == DomainType::Authoritative && a.spec.covers(d))
            });
            // An authenticated login may always send as its own addresses
            // (its primary address and aliases, or its directory
            // recipient's); the rights below decide everything else.
            let own = self
                .auth_addresses
                .iter()
                .any(|a| crate::model::credential::same_mailbox(a, sender.as_str()));
            if authoritative && !own && !self.has_right(R::AcceptAuthoritativeDomainSender) {
                return self.reply(replies::NO_SEND_AS).await;
            }
            // Without Any-Sender, an authenticated user may send only as itself.
            if self.auth_user.is_some()
                && self.principal != Principal::Anonymous
                && !own
                && !self.has_right(R::AcceptAnySender)
            {
                return self.reply(replies::NO_SEND_AS).await;
            }
        }
        // The Sender Filter agent, unless the client is on an allow list.
        let mut stamps = vec![];
        let filter = self.snap.anti_spam.sender_filter_config.spec.clone();
        if self
            .snap
            .anti_spam
            .agents
            .spec
            .enabled(AgentName::SenderFiltering)
            && self.origin().filtered(
                filter.enabled,
                filter.external_mail_enabled,
                filter.internal_mail_enabled,
            )
            && self.connection_verdict().await != Verdict::Allowed
            && let Some(reason) = filter.blocks(&sender)
        {
            let action = match filter.action {
                SenderFilterAction::Reject => "Reject",
                SenderFilterAction::StampStatus => "StampStatus",
            };
            self.report_agent(AgentName::SenderFiltering, action, &reason, &sender, vec![]);
            match filter.action {
                SenderFilterAction::Reject => return self.reply(replies::SENDER_DENIED).await,
                SenderFilterAction::StampStatus => {
                    stamps.push(format!("X-Ferry-Sender-Filter: Blocked ({reason})"))
                }
            }
        }
        let auth_param = from
            .auth
            .filter(|a| a != "<>" && self.has_right(R::AcceptAuthenticationFlag));
        self.tx = Some(Transaction {
            sender,
            body_type: if binary {
                Some("BINARYMIME")
            } else if from.flags & smtp_proto::MAIL_BODY_8BITMIME != 0 {
                Some("8BITMIME")
            } else if from.flags & smtp_proto::MAIL_BODY_7BIT != 0 {
                Some("7BIT")
            } else {
                None
            },
            smtputf8,
            auth_param,
            env_id: from.env_id.clone(),
            require_tls: from.flags & smtp_proto::MAIL_REQUIRETLS != 0,
            ret: if from.flags & smtp_proto::MAIL_RET_HDRS != 0 {
                Some("HDRS")
            } else if from.flags & smtp_proto::MAIL_RET_FULL != 0 {
                Some("FULL")
            } else {
                None
            },
            stamps,
            ..Default::default()
        });
        self.reply(replies::SENDER_OK).await
    }
}
