//! RCPT TO: recipient limits and the relay check of spec rules 9 and 28.

use smtp_proto::RcptTo;
use tokio::io::{AsyncRead, AsyncWrite};

use super::{Next, Session};
use crate::agents::connection_filter::Verdict;
use crate::model::Address;
use crate::model::ExtendedRight as R;
use crate::queue::Recipient;
use crate::smtp::replies::{self, Reply};

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Session<S> {
    pub(super) async fn rcpt(&mut self, to: RcptTo<String>) -> Next {
        let Some(tx) = &self.tx else {
            return self.protocol_error(replies::NEED_MAIL).await;
        };
        let smtputf8 = tx.smtputf8;
        let count = tx.recipients.len();
        if to.orcpt.is_some() || to.flags != 0 {
            return self
                .protocol_error(Reply::unsupported_parameter("NOTIFY/ORCPT"))
                .await;
        }
        if !to.address.is_ascii() && !smtputf8 {
            return self.reply(replies::NON_ASCII_NEEDS_SMTPUTF8).await;
        }
        if count >= self.c().max_recipients_per_message as usize {
            return self.reply(replies::TOO_MANY_RECIPIENTS).await;
        }
        let Ok(address) = Address::parse(to.address) else {
            return self.protocol_error(replies::BAD_RECIPIENT).await;
        };
        // Connection Filtering acts here, before any other recipient check.
        if let Verdict::Blocked { text, .. } = self.connection_verdict().await
            && !self
                .connection_verdict
                .as_ref()
                .is_some_and(|v| v.bypasses(address.as_str()))
        {
            self.refused_by_agent = true;
            return self.reply(Reply::new(550, "5.7.1", text)).await;
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
        if let Some(tx) = self.tx.as_mut() {
            tx.recipients.push(Recipient {
                address,
                orcpt: None,
                notify: 0,
            });
        }
        self.reply(replies::RECIPIENT_OK).await
    }
}
