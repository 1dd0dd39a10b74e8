//! Administrator actions on messages, also while they are in flight:
//! suspend and remove (with or without an NDR) are deferred to the end of
//! the attempt (PendingSuspend / PendingRemove) and tracked.

use super::*;

impl DeliveryEngine {
    /// Applies an action that waited for the attempt to end.
    pub(super) async fn apply_pending(&self, snap: &Snapshot, message: i64) -> anyhow::Result<()> {
        let action = self
            .state
            .lock()
            .expect("not poisoned")
            .pending
            .remove(&message);
        match action {
            Some(Pending::Suspend) => {
                sqlx::query("UPDATE messages SET suspended = 1 WHERE id = ?")
                    .bind(message)
                    .execute(self.queue.pool())
                    .await?;
            }
            Some(Pending::Remove { ndr }) => self.remove(snap, message, ndr).await?,
            None => {}
        }
        Ok(())
    }

    /// Records an administrator's action on a message (SUSPEND, RESUME,
    /// RESUBMIT) in message tracking.
    pub async fn track_action(
        &self,
        message: i64,
        name: &'static str,
        detail: &str,
    ) -> anyhow::Result<()> {
        let pool = self.queue.pool();
        if let Some(m) = db::message(pool, message).await? {
            let pending = db::recipients(pool, message)
                .await?
                .into_iter()
                .filter(|r| r.status().is_pending())
                .map(|r| r.address)
                .collect();
            tracing::info!(internal_id = message, message_id = %m.message_id, event = name, "queue action");
            self.observe.tracking.record(Event {
                detail: Some(detail.to_string()),
                ..event(name, "ADMIN", &m, pending)
            });
        }
        Ok(())
    }

    /// Remove-Message: with an NDR for pending recipients, or silently.
    pub async fn remove(&self, snap: &Snapshot, message: i64, ndr: bool) -> anyhow::Result<()> {
        let pool = self.queue.pool();
        for r in db::recipients(pool, message).await? {
            if r.status().is_pending() {
                let status = if ndr {
                    RecipientStatus::Failed
                } else {
                    RecipientStatus::Removed
                };
                db::set_recipient(
                    pool,
                    message,
                    r.idx,
                    status,
                    Some("550 5.3.2 The message was deleted by an administrator"),
                    None,
                    0,
                )
                .await?;
            }
        }
        tracing::info!(internal_id = message, ndr, "DELETE");
        if let Some(m) = db::message(pool, message).await? {
            let all = db::recipients(pool, message)
                .await?
                .into_iter()
                .map(|r| r.address)
                .collect();
            self.observe.tracking.record(Event {
                detail: Some(if ndr {
                    "removed by an administrator, with an NDR".into()
                } else {
                    "removed by an administrator, without an NDR".into()
                }),
                ..event("DELETE", "ADMIN", &m, all)
            });
        }
        self.finish(snap, message).await
    }
}
