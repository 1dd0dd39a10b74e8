//! The Address Rewriting agents, inbound and outbound.

use tokio::io::{AsyncRead, AsyncWrite};

use super::super::{Next, Session, Transaction};
use super::*;

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Session<S> {
    /// Address Rewriting: inbound, mail from the Internet to an external
    /// address is brought to the internal one (envelope recipients and
    /// address headers); outbound, mail from inside leaves with its
    /// internal addresses shown as the external ones (envelope sender and
    /// address headers).
    pub(super) async fn rewrite(
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
}
