//! Delivery into mailboxes (Hub): written to Maildir here, or handed to
//! an LMTP/SMTP mail store through the shared connect-and-send loop.

use super::outcome::RecipientResult;
use super::*;
use crate::model::{MailboxDelivery, RecipientDirectory};

const MAILDIR_DONE: &str = "250 2.0.0 delivered to Maildir";
const NOT_FOUND: &str =
    "550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup";

impl DeliveryEngine {
    pub(super) async fn deliver_mailbox(
        &self,
        snap: &Snapshot,
        hop: &HopKey,
        domain: &str,
        batch: &[i64],
    ) -> anyhow::Result<()> {
        let accepted = snap
            .accepted_domains
            .iter()
            .find(|d| d.spec.domain_name.domain().as_str() == domain);
        let target = accepted.and_then(|d| d.spec.mailbox_delivery.clone());
        let directory =
            accepted.is_some_and(|d| d.spec.recipient_directory == Some(RecipientDirectory::List));
        let Some(target) = target else {
            // The domain no longer delivers to mailboxes: route these again.
            self.queue
                .record(vec![Change::UnrouteQueue { hop: hop.clone() }])
                .await?;
            return Ok(());
        };
        match target {
            MailboxDelivery::Maildir => self.deliver_maildir(snap, hop, batch, directory).await,
            MailboxDelivery::Lmtp { ref host } | MailboxDelivery::Smtp { ref host } => {
                let lmtp = matches!(target, MailboxDelivery::Lmtp { .. });
                let (h, port) = crate::model::accepted_domain::split_host_port(host)
                    .ok_or_else(|| anyhow::anyhow!("bad mailbox host {host}"))?;
                let store = match next_hop::mail_store_target(&self.dns, snap, &h).await {
                    Ok(t) => t,
                    Err(e) => return self.connection_failed(snap, hop, batch, &e).await,
                };
                let cfg = policy::for_mail_store(snap, domain, lmtp, self.source_ip, &self.observe);
                self.connect_and_send(snap, hop, &[store], port, &cfg, batch, &Default::default())
                    .await
            }
        }
    }

    /// Writes each pending recipient's copy into its Maildir.
    async fn deliver_maildir(
        &self,
        snap: &Snapshot,
        hop: &HopKey,
        batch: &[i64],
        directory: bool,
    ) -> anyhow::Result<()> {
        let pool = self.queue.pool();
        for id in batch {
            let Some(m) = db::message(pool, *id).await? else {
                continue;
            };
            let body = Arc::new(db::body(pool, *id).await?.unwrap_or_default());
            // The Content Filter's verdict, stamped by the Edge (or this
            // server) and kept only from sessions trusted with the
            // organization's headers.
            let junk = snap.anti_spam.content_filter_config.spec.junk(
                crate::smtp::server::session::data_header_value(&body, "X-Ferry-Organization-SCL")
                    .as_deref(),
            );
            for r in db::pending_for_hop(pool, *id, hop).await? {
                // A domain with a directory has only the mailboxes it lists:
                // an alias delivers to its primary address, an unknown
                // address bounces (Exchange's NDR).
                let mailbox = if directory {
                    match self
                        .directory
                        .lookup(r.address.as_str())
                        .and_then(|p| Address::parse(p).ok())
                    {
                        Some(primary) => primary,
                        None => {
                            let unknown = RecipientResult {
                                idx: r.idx,
                                address: r.address,
                                status: RecipientStatus::Failed,
                                text: NOT_FOUND.into(),
                                next_attempt_ms: 0,
                            };
                            let outcome = Outcome {
                                hop: Some(hop),
                                connector: Some("mailbox".into()),
                                metered: true,
                                results: vec![unknown],
                                ..Outcome::new(&m, Source::StoreDriver)
                            };
                            self.record(snap, outcome).await?;
                            continue;
                        }
                    }
                } else {
                    r.address.clone()
                };
                let (dir, sender, rcpt, b) = (
                    self.data_dir.clone(),
                    m.sender.clone(),
                    r.address.clone(),
                    body.clone(),
                );
                let written = tokio::task::spawn_blocking(move || {
                    crate::queue::mailbox::deliver(&dir, &sender, &rcpt, &mailbox, &b, junk)
                })
                .await?;
                let wants_success = r.notify as u64 & smtp_proto::RCPT_NOTIFY_SUCCESS != 0;
                let (result, remote_host) = match written {
                    Ok(path) => {
                        tracing::info!(internal_id = id, recipient = %r.address, path = %path.display(), event = "DELIVER", "delivery");
                        let done = RecipientResult {
                            idx: r.idx,
                            address: r.address,
                            status: RecipientStatus::Delivered,
                            text: MAILDIR_DONE.into(),
                            next_attempt_ms: 0,
                        };
                        (done, Some("Maildir".to_string()))
                    }
                    Err(e) => {
                        let later = RecipientResult {
                            idx: r.idx,
                            address: r.address,
                            status: RecipientStatus::Retry,
                            text: format!("451 4.3.0 Maildir write failed: {e}"),
                            next_attempt_ms: retry_at(snap),
                        };
                        (later, None)
                    }
                };
                let success = if wants_success && result.status == RecipientStatus::Delivered {
                    vec![(result.idx, crate::queue::dsn::Kind::Delivered)]
                } else {
                    vec![]
                };
                self.record(
                    snap,
                    Outcome {
                        hop: Some(hop),
                        connector: Some("mailbox".into()),
                        remote_host,
                        metered: true,
                        results: vec![result],
                        success,
                        ..Outcome::new(&m, Source::StoreDriver)
                    },
                )
                .await?;
            }
        }
        Ok(())
    }
}
