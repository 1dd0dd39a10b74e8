//! Administrator actions on messages and queues (Suspend-Message,
//! Resume-Message, Remove-Message, Retry-Queue, Suspend-Queue…), also
//! while a message is in flight: suspend and remove are then deferred to
//! the end of the attempt (PendingSuspend / PendingRemove). Each action
//! is tracked; the API only validates and answers.

use super::outcome::{RecipientResult, event};
use super::*;

/// When an action on a message takes effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Now,
    /// The message is in flight: applied when its attempt ends.
    WhenAttemptEnds,
}

const DELETED: &str = "550 5.3.2 The message was deleted by an administrator";

impl DeliveryEngine {
    /// Suspend-Message.
    pub async fn suspend_message(&self, message: i64) -> anyhow::Result<Applied> {
        if self.defer_action(message, Pending::Suspend) {
            self.track_action(
                message,
                EventKind::Suspend,
                "PendingSuspend: applied when the delivery in flight ends",
            )
            .await?;
            return Ok(Applied::WhenAttemptEnds);
        }
        self.queue
            .apply(vec![Change::MessageSuspended {
                message,
                suspended: true,
            }])
            .await?;
        self.track_action(message, EventKind::Suspend, "suspended by an administrator")
            .await?;
        Ok(Applied::Now)
    }

    /// Resume-Message.
    pub async fn resume_message(&self, message: i64) -> anyhow::Result<()> {
        self.queue
            .apply(vec![Change::MessageSuspended {
                message,
                suspended: false,
            }])
            .await?;
        self.track_action(message, EventKind::Resume, "resumed by an administrator")
            .await?;
        self.wake();
        Ok(())
    }

    /// Resubmit: the message's pending recipients are routed again.
    pub async fn resubmit_message(&self, message: i64) -> anyhow::Result<()> {
        self.queue
            .apply(vec![Change::UnrouteMessage { message }])
            .await?;
        self.track_action(
            message,
            EventKind::Resubmit,
            "resubmitted for routing by an administrator",
        )
        .await?;
        self.wake();
        Ok(())
    }

    /// Remove-Message: with an NDR for pending recipients, or silently.
    pub async fn remove_message(&self, message: i64, ndr: bool) -> anyhow::Result<Applied> {
        if self.defer_action(message, Pending::Remove { ndr }) {
            return Ok(Applied::WhenAttemptEnds);
        }
        self.remove(&self.config.snapshot(), message, ndr).await?;
        self.wake();
        Ok(Applied::Now)
    }

    /// Retry-Queue: a queue in Retry tries now; with `resubmit`, its
    /// messages are routed again instead.
    pub async fn retry_queue(&self, hop: &HopKey, resubmit: bool) -> anyhow::Result<()> {
        let change = if resubmit {
            Change::UnrouteQueue { hop: hop.clone() }
        } else {
            Change::RetryQueueNow { hop: hop.clone() }
        };
        self.queue.apply(vec![change]).await?;
        self.wake();
        Ok(())
    }

    /// Suspend-Queue / Resume-Queue.
    pub async fn suspend_queue(&self, hop: &HopKey, suspended: bool) -> anyhow::Result<()> {
        self.queue
            .apply(vec![Change::QueueSuspended {
                hop: hop.clone(),
                suspended,
            }])
            .await?;
        self.wake();
        Ok(())
    }

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
                self.queue
                    .apply(vec![Change::MessageSuspended {
                        message,
                        suspended: true,
                    }])
                    .await?;
            }
            Some(Pending::Remove { ndr }) => self.remove(snap, message, ndr).await?,
            None => {}
        }
        Ok(())
    }

    /// Records an administrator's action on a message (SUSPEND, RESUME,
    /// RESUBMIT) in message tracking.
    async fn track_action(
        &self,
        message: i64,
        kind: EventKind,
        detail: &str,
    ) -> anyhow::Result<()> {
        let pool = self.queue.pool();
        if let Some(m) = db::message(pool, message).await? {
            let pending = db::recipients(pool, message)
                .await?
                .into_iter()
                .filter(|r| r.status().is_pending())
                .map(|r| r.address.to_string())
                .collect();
            tracing::info!(internal_id = message, message_id = %m.message_id, event = %kind, "queue action");
            self.observe.tracking.record(Event {
                detail: Some(detail.to_string()),
                ..event(kind, Source::Admin, &m, pending)
            });
        }
        Ok(())
    }

    /// Removes a message now: its pending recipients fail (NDR) or are
    /// removed (none).
    async fn remove(&self, snap: &Snapshot, message: i64, ndr: bool) -> anyhow::Result<()> {
        let pool = self.queue.pool();
        let Some(m) = db::message(pool, message).await? else {
            return Ok(());
        };
        let status = if ndr {
            RecipientStatus::Failed
        } else {
            RecipientStatus::Removed
        };
        let results = db::recipients(pool, message)
            .await?
            .into_iter()
            .filter(|r| r.status().is_pending())
            .map(|r| RecipientResult {
                idx: r.idx,
                address: r.address,
                status,
                text: DELETED.into(),
                next_attempt_ms: 0,
            })
            .collect::<Vec<_>>();
        tracing::info!(internal_id = message, ndr, "DELETE");
        if results.is_empty() {
            // Nothing was pending: the message goes all the same.
            return self.finish(snap, message).await;
        }
        let detail = if ndr {
            "removed by an administrator, with an NDR"
        } else {
            "removed by an administrator, without an NDR"
        };
        let outcome = Outcome {
            results,
            summary: Some((EventKind::Delete, detail.into())),
            durable: true,
            ..Outcome::new(&m, Source::Admin)
        };
        self.record(snap, outcome).await
    }
}
