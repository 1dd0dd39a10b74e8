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

/// An action on every message a filter selects (Suspend-Message -Filter,
/// Remove-Message -Filter -WithNDR…).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BulkAction {
    Suspend,
    Resume,
    /// Its pending recipients, and the queues they wait in, try now.
    Retry,
    Resubmit,
    Remove {
        ndr: bool,
    },
}

/// What a bulk action did: applied now, or (in flight) when the attempt ends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BulkDone {
    pub applied: usize,
    pub when_attempt_ends: usize,
}

/// How many messages are read, tracked or removed side by side.
const BULK_PARALLEL: usize = 16;

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

    /// Applies `action` to each of `messages` as one operation: the state
    /// changes of all of them in one queue transaction (Remove: side by
    /// side, each with its NDR when asked), each tracked as its own action.
    pub async fn bulk(&self, action: BulkAction, messages: &[i64]) -> anyhow::Result<BulkDone> {
        use futures_util::{TryStreamExt, stream};
        let mut done = BulkDone::default();
        // The messages acted on now, and how each is tracked (Retry is not
        // an event of its own, as Retry-Queue is not).
        let (now, track): (Vec<i64>, Option<(EventKind, &str)>) = match action {
            BulkAction::Suspend | BulkAction::Remove { .. } => {
                let pending = match action {
                    BulkAction::Suspend => Pending::Suspend,
                    BulkAction::Remove { ndr } => Pending::Remove { ndr },
                    _ => unreachable!(),
                };
                let (later, now): (Vec<i64>, Vec<i64>) = messages
                    .iter()
                    .partition(|m| self.defer_action(**m, pending));
                done.when_attempt_ends = later.len();
                if action == BulkAction::Suspend {
                    self.track_all(
                        &later,
                        EventKind::Suspend,
                        "PendingSuspend: applied when the delivery in flight ends",
                    )
                    .await?;
                }
                // A removal is tracked with its outcome (DELETE).
                let track = (action == BulkAction::Suspend)
                    .then_some((EventKind::Suspend, "suspended by an administrator"));
                (now, track)
            }
            BulkAction::Resume => (
                messages.to_vec(),
                Some((EventKind::Resume, "resumed by an administrator")),
            ),
            BulkAction::Resubmit => (
                messages.to_vec(),
                Some((
                    EventKind::Resubmit,
                    "resubmitted for routing by an administrator",
                )),
            ),
            BulkAction::Retry => (messages.to_vec(), None),
        };
        done.applied = now.len();
        match action {
            BulkAction::Remove { ndr } => {
                let snap = self.config.snapshot();
                stream::iter(now.iter().map(Ok::<_, anyhow::Error>))
                    .try_for_each_concurrent(BULK_PARALLEL, |m| {
                        let snap = &snap;
                        async move { self.remove(snap, *m, ndr).await }
                    })
                    .await?;
            }
            _ => {
                let changes = now
                    .iter()
                    .map(|&message| match action {
                        BulkAction::Suspend => Change::MessageSuspended {
                            message,
                            suspended: true,
                        },
                        BulkAction::Resume => Change::MessageSuspended {
                            message,
                            suspended: false,
                        },
                        BulkAction::Resubmit => Change::UnrouteMessage { message },
                        _ => Change::RetryMessageNow { message },
                    })
                    .collect::<Vec<_>>();
                if !changes.is_empty() {
                    self.queue.apply(changes).await?;
                }
                if let Some((kind, detail)) = track {
                    self.track_all(&now, kind, detail).await?;
                }
            }
        }
        self.wake();
        Ok(done)
    }

    async fn track_all(
        &self,
        messages: &[i64],
        kind: EventKind,
        detail: &str,
    ) -> anyhow::Result<()> {
        use futures_util::{TryStreamExt, stream};
        stream::iter(messages.iter().map(Ok::<_, anyhow::Error>))
            .try_for_each_concurrent(BULK_PARALLEL, |m| self.track_action(*m, kind, detail))
            .await
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

    /// Applies an action that waited for the attempt to end. The
    /// administrator was told it would be applied, so a failure (a store
    /// too busy to answer in time, say) is logged and tried again, and the
    /// action waits once more if another attempt has taken the message
    /// meanwhile; it is dropped, loudly, only after the last try.
    pub(super) async fn apply_pending(&self, snap: &Snapshot, message: i64) {
        const TRIES: u32 = 8;
        let Some(action) = self
            .state
            .lock()
            .expect("not poisoned")
            .pending
            .remove(&message)
        else {
            return;
        };
        let mut wait = std::time::Duration::from_millis(200);
        for tried in 1..=TRIES {
            let result = match action {
                Pending::Suspend => self
                    .queue
                    .apply(vec![Change::MessageSuspended {
                        message,
                        suspended: true,
                    }])
                    .await
                    .map(|_| ()),
                Pending::Remove { ndr } => self.remove(snap, message, ndr).await,
            };
            let Err(e) = result else {
                return;
            };
            if tried == TRIES {
                tracing::error!(internal_id = message, ?action, error = %format!("{e:#}"),
                    "an action held until the attempt ended could not be applied; giving up");
                return;
            }
            tracing::warn!(internal_id = message, ?action, tried, error = %format!("{e:#}"),
                "an action held until the attempt ended failed; trying again");
            tokio::time::sleep(wait).await;
            wait *= 2;
            if self.defer_action(message, action) {
                return;
            }
        }
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
