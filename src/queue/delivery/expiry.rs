//! Expiry (rule 24: NDR 4.4.7 after messageExpirationTimeout) and delay
//! notices (rule 23: after delayNotificationTimeout).

use super::*;

impl DeliveryEngine {
    /// Rule 24 (expiry → NDR 4.4.7) and rule 23 (delay notice).
    pub(super) async fn expire_and_notify(&self, snap: &Snapshot) -> anyhow::Result<()> {
        let pool = self.queue.pool();
        let ts = &snap.transport.spec;
        let t = now_secs();
        for id in db::older_than(
            pool,
            t - ts.message_expiration_timeout.as_secs() as i64,
            false,
        )
        .await?
        {
            if self.in_flight(id) {
                continue;
            }
            let mut expired = vec![];
            for r in db::recipients(pool, id).await? {
                if r.status().is_pending() {
                    expired.push(r.address.clone());
                    let why = format!(
                        "550 4.4.7 QUEUE.Expired; message expired{}",
                        r.last_error
                            .as_ref()
                            .map(|e| format!(" (last error: {e})"))
                            .unwrap_or_default()
                    );
                    db::set_recipient(
                        pool,
                        id,
                        r.idx,
                        RecipientStatus::Failed,
                        Some(&why),
                        None,
                        0,
                    )
                    .await?;
                }
            }
            tracing::info!(internal_id = id, "EXPIRE");
            if let Some(m) = db::message(pool, id).await? {
                self.observe.tracking.record(Event {
                    detail: Some("550 4.4.7 QUEUE.Expired; message expired".into()),
                    ..event("EXPIRE", "QUEUE", &m, expired)
                });
            }
            self.finish(snap, id).await?;
        }
        if ts.external_delay_dsn_enabled || ts.internal_delay_dsn_enabled {
            for id in db::older_than(
                pool,
                t - ts.delay_notification_timeout.as_secs() as i64,
                true,
            )
            .await?
            {
                let Some(m) = db::message(pool, id).await? else {
                    continue;
                };
                db::set_delay_notified(pool, id).await?;
                if m.sender.is_empty() {
                    continue;
                }
                let rcpts = db::recipients(pool, id).await?;
                let pending: Vec<_> = rcpts.iter().filter(|r| r.status().is_pending()).collect();
                let failed: Vec<dsn::Failed<'_>> = pending
                    .iter()
                    .map(|r| dsn::Failed {
                        recipient: &r.address,
                        diagnostic: r
                            .last_error
                            .as_deref()
                            .unwrap_or("400 4.0.0 Delivery has not been completed yet"),
                        remote_host: r.remote_host.as_deref(),
                    })
                    .collect();
                let body = db::body(pool, id).await?.unwrap_or_default();
                let recipients = failed.iter().map(|f| f.recipient.to_string()).collect();
                self.send_dsn(snap, dsn::Kind::Delay, &m, &failed, &body, recipients)
                    .await?;
                tracing::info!(internal_id = id, "DSN delay");
            }
        }
        Ok(())
    }
}
