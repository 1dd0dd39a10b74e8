//! Expiry (rule 24: NDR 4.4.7 after messageExpirationTimeout) and delay
//! notices (rule 23: after delayNotificationTimeout).

use super::outcome::RecipientResult;
use super::*;

const EXPIRED: &str = "550 4.4.7 QUEUE.Expired; message expired";

impl DeliveryEngine {
    /// Rule 24 (expiry → NDR 4.4.7) and rule 23 (delay notice).
    pub(super) async fn expire_and_notify(&self, snap: &Snapshot) -> anyhow::Result<()> {
        let pool = self.queue.pool();
        let ts = &snap.transport.spec;
        let t = now();
        let expiry_ms = ts.message_expiration_timeout.as_secs() as i64 * 1000;
        for id in db::older_than(pool, t - expiry_ms, false).await? {
            if self.in_flight(id) {
                continue;
            }
            let Some(m) = db::message(pool, id).await? else {
                continue;
            };
            let results = db::recipients(pool, id)
                .await?
                .into_iter()
                .filter(|r| r.status().is_pending())
                .map(|r| RecipientResult {
                    idx: r.idx,
                    text: format!(
                        "550 4.4.7 QUEUE.Expired; message expired{}",
                        r.last_error
                            .as_ref()
                            .map(|e| format!(" (last error: {e})"))
                            .unwrap_or_default()
                    ),
                    address: r.address,
                    status: RecipientStatus::Failed,
                    next_attempt_ms: 0,
                })
                .collect();
            tracing::info!(internal_id = id, "EXPIRE");
            let outcome = Outcome {
                results,
                summary: Some((EventKind::Expire, EXPIRED.into())),
                ..Outcome::new(&m, Source::Queue)
            };
            self.record(snap, outcome).await?;
        }
        if ts.external_delay_dsn_enabled || ts.internal_delay_dsn_enabled {
            let delay_ms = ts.delay_notification_timeout.as_secs() as i64 * 1000;
            for id in db::older_than(pool, t - delay_ms, true).await? {
                let Some(m) = db::message(pool, id).await? else {
                    continue;
                };
                self.queue
                    .record(vec![Change::DelayNotified { message: id }])
                    .await?;
                if m.sender.is_null() {
                    continue;
                }
                let rcpts = db::recipients(pool, id).await?;
                // NOTIFY without DELAY (or NEVER) asks for no delay notice.
                let pending: Vec<_> = rcpts
                    .iter()
                    .filter(|r| r.status().is_pending() && r.wants(smtp_proto::RCPT_NOTIFY_DELAY))
                    .collect();
                if pending.is_empty() {
                    continue;
                }
                let failed: Vec<dsn::Failed<'_>> = pending
                    .iter()
                    .map(|r| dsn::Failed {
                        recipient: r.address.as_str(),
                        diagnostic: r
                            .last_error
                            .as_deref()
                            .unwrap_or("400 4.0.0 Delivery has not been completed yet"),
                        remote_host: r.remote_host.as_deref(),
                        orcpt: r.orcpt.as_deref(),
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
