//! The end of a message's attempt: delete it when nothing is pending,
//! bounce its failed recipients with a DSN, or notify a delay.

use super::*;

impl DeliveryEngine {
    /// After an attempt: NDR for newly failed recipients (never to <>),
    /// and the message is deleted once nothing is pending.
    pub(super) async fn finish(&self, snap: &Snapshot, id: i64) -> anyhow::Result<()> {
        let pool = self.queue.pool();
        let Some(m) = db::message(pool, id).await? else {
            return Ok(());
        };
        let rcpts = db::recipients(pool, id).await?;
        let failed: Vec<_> = rcpts
            .iter()
            .filter(|r| r.status() == RecipientStatus::Failed)
            .collect();
        if !failed.is_empty() {
            if !m.sender.is_empty() {
                let list: Vec<dsn::Failed<'_>> = failed
                    .iter()
                    .map(|r| dsn::Failed {
                        recipient: &r.address,
                        diagnostic: r
                            .last_error
                            .as_deref()
                            .unwrap_or("550 5.0.0 Delivery failed"),
                        remote_host: r
                            .remote_host
                            .as_deref()
                            .map(|h| h.split(" [").next().unwrap_or(h)),
                    })
                    .collect();
                let body = db::body(pool, id).await?.unwrap_or_default();
                let recipients = failed.iter().map(|r| r.address.clone()).collect();
                self.send_dsn(snap, dsn::Kind::Failure, &m, &list, &body, recipients)
                    .await?;
                tracing::info!(internal_id = id, recipients = failed.len(), to = %m.sender, "DSN failure");
            } else {
                tracing::info!(internal_id = id, "no NDR for the null sender");
            }
            for r in &failed {
                sqlx::query(
                    "UPDATE recipients SET status = 'Bounced' WHERE message = ? AND idx = ?",
                )
                .bind(id)
                .bind(r.idx)
                .execute(pool)
                .await?;
            }
        }
        if db::finished(pool, id).await? {
            db::delete_message(pool, id).await?;
        }
        Ok(())
    }

    pub(super) async fn send_dsn(
        &self,
        snap: &Snapshot,
        kind: dsn::Kind,
        m: &db::StoredMessage,
        failed: &[dsn::Failed<'_>],
        original: &[u8],
        about: Vec<String>,
    ) -> anyhow::Result<()> {
        let postmaster = snap.postmaster();
        let report = dsn::build(
            kind,
            &postmaster,
            snap.ctx.fqdn.as_str(),
            &m.sender,
            &m.received_at,
            &m.message_id,
            failed,
            original,
            snap.transport.spec.external_dsn_max_message_attach_size,
        );
        let message_id = crate::smtp::server::session::data_header_value(&report, "message-id")
            .unwrap_or_default()
            .trim()
            .to_string();
        let subject = crate::smtp::server::session::data_header_value(&report, "subject")
            .map(|s| s.trim().to_string());
        let size = report.len() as i64;
        let internal = self
            .queue
            .enqueue(
                Envelope {
                    message_id: message_id.trim().to_string(),
                    sender: String::new(),
                    recipients: vec![Recipient {
                        address: m.sender.clone(),
                        orcpt: None,
                        notify: 0,
                    }],
                    receive_connector: "Ferry DSN".into(),
                    client_ip: "127.0.0.1".into(),
                    client_helo: None,
                    auth_user: None,
                    env_id: None,
                    ret: None,
                    body_type: None,
                    smtputf8: false,
                    subject: subject.clone(),
                },
                report,
            )
            .await?;
        let kind_name = match kind {
            dsn::Kind::Failure => "failure",
            dsn::Kind::Delay => "delay",
        };
        // On the original: which notice went to whom.
        self.observe.tracking.record(Event {
            detail: Some(format!(
                "{kind_name} notice to {} about {}",
                if m.sender.is_empty() { "<>" } else { &m.sender },
                about.join(", ")
            )),
            related: Some(message_id.clone()),
            ..event("DSN", "DSN", m, vec![m.sender.clone()])
        });
        // The notice itself enters the queue like any message.
        self.observe.tracking.record(Event {
            event: "RECEIVE",
            source: "DSN",
            internal_id: internal,
            message_id,
            sender: String::new(),
            recipients: vec![m.sender.clone()],
            size: Some(size),
            subject,
            related: Some(m.message_id.clone()),
            detail: Some(format!("{kind_name} notice")),
            ..Default::default()
        });
        Ok(())
    }
}
