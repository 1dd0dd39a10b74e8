//! The Edge Rule agent: the transport rules, in order.

use tokio::io::{AsyncRead, AsyncWrite};

use super::super::{Next, Session, Transaction};
use super::*;

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Session<S> {
    /// The Edge Rule agent: the transport rules, in order.
    pub(super) async fn edge_rules(
        &mut self,
        draft: &mut Draft,
        tx: &mut Transaction,
    ) -> Result<(), Next> {
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
