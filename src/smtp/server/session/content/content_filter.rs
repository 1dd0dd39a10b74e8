//! The Content Filter agent: rspamd's verdict as an SCL, and the SCL
//! thresholds.

use tokio::io::{AsyncRead, AsyncWrite};

use super::super::{Next, Session, Transaction};
use super::*;

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Session<S> {
    /// The Content Filter: rspamd's verdict as an SCL, and what the
    /// thresholds make of it.
    pub(super) async fn content_filter(
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
}
