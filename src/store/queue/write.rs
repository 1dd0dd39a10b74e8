//! Every statement that changes `queue.db`. Only the queue's writer
//! thread calls these (`queue/mod.rs`), in its group commits; nothing else
//! writes to the queue.

use anyhow::Context;
use rusqlite::{Connection, params};

use crate::queue::envelope::Envelope;
use crate::queue::spool::MessageBody;
use crate::queue::status::{AttemptOutcome, RecipientStatus};
use crate::routing::{HopKey, QueueKey};

/// The results of one outbound transaction, recorded with an attempt row;
/// the message is deleted when nothing is left pending or failed.
#[derive(Debug)]
pub struct Completed {
    pub message: i64,
    pub hop: HopKey,
    pub remote: String,
    /// (recipient index, status, reply text, next attempt in ms)
    pub results: Vec<(i64, RecipientStatus, String, i64)>,
}

/// One change to the delivery state, as the delivery engine and the
/// administrator make them. A list of changes is applied atomically.
#[derive(Debug, Clone)]
pub enum Change {
    /// One recipient's outcome. `error` and `remote` keep their previous
    /// value when None; the recipient's attempt count goes up by one.
    Recipient {
        message: i64,
        idx: i64,
        status: RecipientStatus,
        error: Option<String>,
        remote: Option<String>,
        next_attempt_ms: i64,
    },
    /// The NDR for a failed recipient is queued.
    Bounced {
        message: i64,
        idx: i64,
    },
    /// A row of the message's attempt history.
    Attempt {
        message: i64,
        hop: HopKey,
        remote: Option<String>,
        outcome: AttemptOutcome,
        detail: String,
    },
    /// A connection-level failure: the queue and its pending recipients
    /// wait until `next_retry_ms`; the queue's failure count goes up.
    QueueFailed {
        hop: HopKey,
        error: String,
        next_retry_ms: i64,
    },
    /// The queue's next hop answered: failures reset.
    QueueConnected {
        hop: HopKey,
    },
    /// The message is deleted when nothing of it is pending any more.
    DeleteIfFinished {
        message: i64,
    },
    /// The delay notice was sent (or is not to be sent).
    DelayNotified {
        message: i64,
    },
    /// The message's pending recipients go back to routing (resubmit).
    UnrouteMessage {
        message: i64,
    },
    /// Every pending recipient in the queue goes back to routing.
    UnrouteQueue {
        hop: HopKey,
    },
    QueueSuspended {
        hop: HopKey,
        suspended: bool,
    },
    MessageSuspended {
        message: i64,
        suspended: bool,
    },
    /// Retry-Queue: try now. The schedule's position is kept, so a failure
    /// starts the next interval from now.
    RetryQueueNow {
        hop: HopKey,
    },
    /// A message's pending recipients, and the queues they wait in, try
    /// now (a bulk Retry of the messages matching a filter).
    RetryMessageNow {
        message: i64,
    },
    /// A connector changed: its queues try again now with the new settings.
    RetryConnectorQueues {
        connector: uuid::Uuid,
    },
}

/// Which recipients a change rewrites (their status or queue), for the
/// copies the writer hands off to delivery (`queue/handoff.rs`).
pub(crate) enum Changed {
    None,
    Message(i64),
    /// Recipients of any number of messages: those of a queue.
    Queue,
}

impl Change {
    /// Which recipients this change rewrites. Every variant is named, so a
    /// new one has to say.
    pub(crate) fn recipients_changed(&self) -> Changed {
        match self {
            Change::Recipient { message, .. }
            | Change::Bounced { message, .. }
            | Change::UnrouteMessage { message }
            | Change::DeleteIfFinished { message }
            | Change::MessageSuspended { message, .. }
            | Change::RetryMessageNow { message } => Changed::Message(*message),
            Change::QueueFailed { .. }
            | Change::UnrouteQueue { .. }
            | Change::RetryQueueNow { .. }
            | Change::RetryConnectorQueues { .. } => Changed::Queue,
            Change::Attempt { .. }
            | Change::QueueConnected { .. }
            | Change::DelayNotified { .. }
            | Change::QueueSuspended { .. } => Changed::None,
        }
    }
}

/// What one group commit holds.
#[derive(Default)]
pub(crate) struct Batch<'a> {
    pub messages: Vec<(&'a Envelope, &'a MessageBody)>,
    pub routes: Vec<&'a [(i64, i64, QueueKey)]>,
    pub completed: Vec<&'a Completed>,
    /// Lists of changes, each applied atomically (a savepoint each).
    pub changes: Vec<&'a [Change]>,
}

/// What a group commit gives back, in the order of its batch.
pub(crate) struct Committed {
    /// The new messages' internal ids.
    pub ids: Vec<i64>,
    /// Per completed transaction: whether failed recipients are left to bounce.
    pub bounces: Vec<bool>,
    /// Per list of changes: the rows it touched, or why it was not applied.
    pub changes: Vec<anyhow::Result<u64>>,
    /// Messages deleted because a completed transaction finished them.
    pub deleted: Vec<i64>,
}

/// One transaction for everything waiting: new messages in, routing
/// decisions, finished transactions and other changes recorded.
///
/// Only a batch that accepts messages or carries a durable change is
/// fsynced (synchronous=FULL): a 250 or an administrator's answer depends
/// on it. Routing decisions and delivery results alone are committed with
/// synchronous=NORMAL (in WAL mode: written, not fsynced). A crash may
/// lose such a commit, never corrupt the database, and the next fsynced
/// commit makes everything before it durable. Losing one means a recipient
/// is routed again or a delivered message is sent again: the documented
/// at-least-once window, never a lost message.
pub(crate) fn commit_batch(
    conn: &mut Connection,
    synchronous_full: &mut bool,
    want_full: bool,
    now_ms: i64,
    batch: &Batch<'_>,
) -> anyhow::Result<Committed> {
    // The statements that frame every commit are prepared once, not parsed
    // again for each batch (issue 22: parsing them was 6% of the writer).
    if want_full != *synchronous_full {
        conn.prepare_cached(if want_full {
            "PRAGMA synchronous = FULL"
        } else {
            "PRAGMA synchronous = NORMAL"
        })?
        .execute([])?;
        *synchronous_full = want_full;
    }
    // IMMEDIATE: the write lock is taken at BEGIN, so no snapshot taken
    // earlier in the transaction can go stale (SQLITE_BUSY_SNAPSHOT).
    conn.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
    let committed = write_batch(conn, now_ms, batch)
        .and_then(|c| Ok(conn.prepare_cached("COMMIT")?.execute([]).map(|_| c)?));
    if committed.is_err() && !conn.is_autocommit() {
        // Nothing of a failed batch stays: its callers are told it failed.
        conn.execute_batch("ROLLBACK")?;
    }
    committed
}

/// The inside of `commit_batch`'s transaction.
fn write_batch(tx: &mut Connection, now_ms: i64, batch: &Batch<'_>) -> anyhow::Result<Committed> {
    let ids = insert_messages(tx, now_ms, &batch.messages)?;
    for routes in &batch.routes {
        record_routes(tx, routes)?;
    }
    let mut bounces = Vec::with_capacity(batch.completed.len());
    let mut deleted = vec![];
    for c in &batch.completed {
        let (failed, gone) = record_transaction(tx, c, now_ms)?;
        bounces.push(failed);
        if gone {
            deleted.push(c.message);
        }
    }
    let mut changes = Vec::with_capacity(batch.changes.len());
    for list in &batch.changes {
        // A list that fails is undone alone; the rest of the batch commits.
        let sp = tx.savepoint()?;
        let mut touched = 0;
        let result = list.iter().try_for_each(|c| {
            touched += apply(&sp, c, now_ms)?;
            anyhow::Ok(())
        });
        match result {
            Ok(()) => {
                sp.commit()?;
                changes.push(Ok(touched));
            }
            Err(e) => changes.push(Err(e)),
        }
    }
    Ok(Committed {
        ids,
        bounces,
        changes,
        deleted,
    })
}

fn insert_messages(
    tx: &Connection,
    now_ms: i64,
    messages: &[(&Envelope, &MessageBody)],
) -> anyhow::Result<Vec<i64>> {
    let mut ids = Vec::with_capacity(messages.len());
    if messages.is_empty() {
        return Ok(ids);
    }
    let end: i64 = tx
        .prepare_cached("UPDATE id_counter SET last = last + ?1 WHERE one = 1 RETURNING last")?
        .query_row([messages.len() as i64], |r| r.get(0))?;
    let mut id = end - messages.len() as i64;
    let mut message = tx.prepare_cached(
        "INSERT INTO messages (id, message_id, sender, received_ms, size, receive_connector, client_ip, client_helo, \
         auth_user, env_id, ret, body_type, smtputf8, subject, require_tls) \
         VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15)",
    )?;
    let mut body =
        tx.prepare_cached("INSERT INTO bodies (message, body) VALUES (?1, zeroblob(?2))")?;
    let mut rcpt = tx.prepare_cached(
        "INSERT INTO recipients (message, idx, address, orcpt, notify, next_hop, last_error) \
         VALUES (?1,?2,?3,?4,?5,?6,?7)",
    )?;
    let mut queues = Queues::new(tx)?;
    for (e, message_body) in messages {
        id += 1;
        message.execute(params![
            id,
            e.message_id,
            e.sender,
            e.arrived_ms.unwrap_or(now_ms),
            message_body.len() as i64,
            e.receive_connector,
            e.client_ip,
            e.client_helo,
            e.auth_user,
            e.env_id,
            e.ret,
            e.body_type,
            e.smtputf8,
            e.subject,
            e.require_tls,
        ])?;
        // The body is streamed into its BLOB, from memory and then from
        // its spill file: no second copy of a large message in RAM.
        body.execute(params![id, message_body.len() as i64])?;
        let mut blob = tx.blob_open(rusqlite::DatabaseName::Main, "bodies", "body", id, false)?;
        message_body
            .copy_to(&mut blob)
            .context("writing the message body into the queue")?;
        drop(blob);
        for (i, r) in e.recipients.iter().enumerate() {
            // Routed at acceptance: in its queue from this commit on.
            if let Some(key) = &r.route {
                queues.ensure(key)?;
            }
            let key = r.route.as_ref();
            rcpt.execute(params![
                id,
                i as i64,
                r.address,
                r.orcpt,
                r.notify as i64,
                key.map(|k| &k.key),
                key.and_then(|k| k.reason.as_deref()),
            ])?;
        }
        ids.push(id);
    }
    Ok(ids)
}

/// The delivery queues a group commit puts recipients in: each created on
/// first use, and for Unreachable, why its recipients are there.
struct Queues<'c> {
    create: rusqlite::CachedStatement<'c>,
    why: rusqlite::CachedStatement<'c>,
    seen: Vec<HopKey>,
}

impl<'c> Queues<'c> {
    fn new(tx: &'c Connection) -> anyhow::Result<Self> {
        Ok(Queues {
            create: tx.prepare_cached(
                "INSERT OR IGNORE INTO queues (next_hop, delivery_type, display, connector) VALUES (?1,?2,?3,?4)",
            )?,
            why: tx.prepare_cached("UPDATE queues SET last_error = ?1 WHERE next_hop = ?2")?,
            seen: vec![],
        })
    }

    fn ensure(&mut self, key: &QueueKey) -> anyhow::Result<()> {
        if !self.seen.contains(&key.key) {
            self.seen.push(key.key.clone());
            self.create.execute(params![
                key.key,
                key.delivery_type,
                key.display,
                key.connector
            ])?;
        }
        if let Some(reason) = &key.reason {
            self.why.execute(params![reason, key.key])?;
        }
        Ok(())
    }
}

/// The categorizer's decisions: each recipient's delivery queue (created
/// on first use) and, for Unreachable, why.
fn record_routes(tx: &Connection, routes: &[(i64, i64, QueueKey)]) -> anyhow::Result<()> {
    let mut queues = Queues::new(tx)?;
    let mut route = tx.prepare_cached(
        "UPDATE recipients SET next_hop = ?1, last_error = COALESCE(?4, last_error) \
         WHERE message = ?2 AND idx = ?3",
    )?;
    for (message, idx, key) in routes {
        queues.ensure(key)?;
        route.execute(params![key.key, message, idx, key.reason])?;
    }
    Ok(())
}

/// A finished outbound transaction: each recipient's result, an attempt
/// row, and the message deleted when nothing is pending or failed.
/// Returns whether failed recipients are left to bounce, and whether the
/// message was deleted.
fn record_transaction(tx: &Connection, c: &Completed, now_ms: i64) -> anyhow::Result<(bool, bool)> {
    // Every recipient delivered and none other left pending or failed: the
    // message goes at once. Its recipients' rows and an attempt row would
    // be written only to be deleted with it in this same transaction.
    if c.results.iter().all(|r| r.1 == RecipientStatus::Delivered) {
        let idxs = serde_json::to_string(&c.results.iter().map(|r| r.0).collect::<Vec<i64>>())?;
        let others: i64 = tx
            .prepare_cached(concat!(
                "SELECT COUNT(*) FROM recipients WHERE message = ?1 \
                 AND idx NOT IN (SELECT value FROM json_each(?2)) AND (status IN ",
                crate::pending_sql!(),
                " OR status = ?3)"
            ))?
            .query_row(params![c.message, idxs, RecipientStatus::Failed], |r| {
                r.get(0)
            })?;
        if others == 0 {
            tx.prepare_cached("DELETE FROM messages WHERE id = ?1")?
                .execute([c.message])?;
            return Ok((false, true));
        }
    }
    let mut update = tx.prepare_cached(
        "UPDATE recipients SET status = ?1, last_error = ?2, remote_host = ?3, next_attempt_ms = ?4, \
         attempts = attempts + 1, updated_ms = ?5 WHERE message = ?6 AND idx = ?7",
    )?;
    for (idx, status, text, next) in &c.results {
        update.execute(params![
            status, text, c.remote, next, now_ms, c.message, idx
        ])?;
    }
    tx.prepare_cached(
        "INSERT INTO attempts (message, at_ms, next_hop, remote_host, outcome, detail) \
         VALUES (?1,?2,?3,?4,?5,'transaction completed')",
    )?
    .execute(params![
        c.message,
        now_ms,
        c.hop,
        c.remote,
        AttemptOutcome::Send
    ])?;
    let (pending, failed): (i64, i64) = tx
        .prepare_cached(concat!(
            "SELECT COALESCE(SUM(status IN ",
            crate::pending_sql!(),
            "), 0), COALESCE(SUM(status = ?2), 0) FROM recipients WHERE message = ?1"
        ))?
        .query_row(params![c.message, RecipientStatus::Failed], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
    let delete = pending == 0 && failed == 0;
    if delete {
        tx.prepare_cached("DELETE FROM messages WHERE id = ?1")?
            .execute([c.message])?;
    }
    Ok((failed > 0, delete))
}

/// Applies one change; returns the rows it touched.
fn apply(tx: &Connection, change: &Change, now_ms: i64) -> anyhow::Result<u64> {
    let pending = crate::pending_sql!();
    let n = match change {
        Change::Recipient {
            message,
            idx,
            status,
            error,
            remote,
            next_attempt_ms,
        } => tx
            .prepare_cached(
                "UPDATE recipients SET status = ?1, last_error = COALESCE(?2, last_error), \
                 remote_host = COALESCE(?3, remote_host), next_attempt_ms = ?4, attempts = attempts + 1, \
                 updated_ms = ?5 WHERE message = ?6 AND idx = ?7",
            )?
            .execute(params![
                status,
                error,
                remote,
                next_attempt_ms,
                now_ms,
                message,
                idx
            ])?,
        Change::Bounced { message, idx } => tx
            .prepare_cached(
                "UPDATE recipients SET status = ?1, updated_ms = ?2 WHERE message = ?3 AND idx = ?4",
            )?
            .execute(params![RecipientStatus::Bounced, now_ms, message, idx])?,
        Change::Attempt {
            message,
            hop,
            remote,
            outcome,
            detail,
        } => tx
            .prepare_cached(
                "INSERT INTO attempts (message, at_ms, next_hop, remote_host, outcome, detail) \
                 VALUES (?1,?2,?3,?4,?5,?6)",
            )?
            .execute(params![message, now_ms, hop, remote, outcome, detail])?,
        Change::QueueFailed {
            hop,
            error,
            next_retry_ms,
        } => {
            tx.prepare_cached(
                "UPDATE queues SET failures = failures + 1, next_retry_ms = ?1, last_error = ?2, \
                 last_attempt_ms = ?3 WHERE next_hop = ?4",
            )?
            .execute(params![next_retry_ms, error, now_ms, hop])?
                + tx.prepare_cached(&format!(
                    "UPDATE recipients SET status = ?1, next_attempt_ms = ?2, last_error = ?3, updated_ms = ?4 \
                     WHERE next_hop = ?5 AND status IN {pending}"
                ))?
                .execute(params![
                    RecipientStatus::Retry,
                    next_retry_ms,
                    error,
                    now_ms,
                    hop
                ])?
        }
        Change::QueueConnected { hop } => tx
            .prepare_cached(
                "UPDATE queues SET failures = 0, next_retry_ms = 0, last_attempt_ms = ?1, \
                 last_success_ms = ?1 WHERE next_hop = ?2",
            )?
            .execute(params![now_ms, hop])?,
        // Not while a recipient is Failed: its NDR is still to be sent (by
        // another queue's attempt finishing the same message right now).
        Change::DeleteIfFinished { message } => tx
            .prepare_cached(&format!(
                "DELETE FROM messages WHERE id = ?1 AND NOT EXISTS \
                 (SELECT 1 FROM recipients WHERE message = ?1 AND (status IN {pending} OR status = ?2))"
            ))?
            .execute(params![message, RecipientStatus::Failed])?,
        Change::DelayNotified { message } => tx
            .prepare_cached("UPDATE messages SET delay_notified = 1 WHERE id = ?1")?
            .execute([message])?,
        Change::UnrouteMessage { message } => tx
            .prepare_cached(&format!(
                "UPDATE recipients SET next_hop = NULL, next_attempt_ms = 0 \
                 WHERE message = ?1 AND status IN {pending}"
            ))?
            .execute([message])?,
        Change::UnrouteQueue { hop } => tx
            .prepare_cached(&format!(
                "UPDATE recipients SET next_hop = NULL, next_attempt_ms = 0 \
                 WHERE next_hop = ?1 AND status IN {pending}"
            ))?
            .execute([hop])?,
        Change::QueueSuspended { hop, suspended } => tx
            .prepare_cached("UPDATE queues SET suspended = ?1 WHERE next_hop = ?2")?
            .execute(params![suspended, hop])?,
        Change::MessageSuspended { message, suspended } => tx
            .prepare_cached("UPDATE messages SET suspended = ?1 WHERE id = ?2")?
            .execute(params![suspended, message])?,
        Change::RetryQueueNow { hop } => {
            tx.prepare_cached("UPDATE queues SET next_retry_ms = 0 WHERE next_hop = ?1")?
                .execute([hop])?
                + tx.prepare_cached(&format!(
                    "UPDATE recipients SET next_attempt_ms = 0 WHERE next_hop = ?1 AND status IN {pending}"
                ))?
                .execute([hop])?
        }
        Change::RetryMessageNow { message } => {
            tx.prepare_cached(&format!(
                "UPDATE queues SET next_retry_ms = 0 WHERE next_hop IN \
                 (SELECT next_hop FROM recipients WHERE message = ?1 AND status IN {pending})"
            ))?
            .execute([message])?
                + tx.prepare_cached(&format!(
                    "UPDATE recipients SET next_attempt_ms = 0 WHERE message = ?1 AND status IN {pending}"
                ))?
                .execute([message])?
        }
        Change::RetryConnectorQueues { connector } => {
            let prefix = HopKey::connector_pattern(connector);
            tx.prepare_cached("UPDATE queues SET next_retry_ms = 0 WHERE next_hop LIKE ?1")?
                .execute([&prefix])?
                + tx.prepare_cached(&format!(
                    "UPDATE recipients SET next_attempt_ms = 0 WHERE next_hop LIKE ?1 AND status IN {pending}"
                ))?
                .execute([&prefix])?
        }
    };
    Ok(n as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Address;
    use crate::queue::Recipient;

    /// A recipient routed at acceptance is in its delivery queue from the
    /// commit that accepts it (the queue created on first use); one that
    /// is not waits for the categorizer with no next hop.
    #[tokio::test]
    async fn a_recipient_routed_at_acceptance_is_queued_in_the_same_commit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("queue.db");
        let pool = super::super::open(&path).await.unwrap();
        let mut conn = super::super::open_writer(&path).unwrap();
        let key = QueueKey {
            key: HopKey::Connector {
                id: uuid::Uuid::nil(),
                next_hop: "smart.test".into(),
            },
            delivery_type: "SmartHostConnectorDelivery",
            display: "smart.test".into(),
            connector: Some("Out".into()),
            reason: None,
        };
        let rcpt = |a: &str, route: Option<QueueKey>| Recipient {
            address: Address::parse(a).unwrap(),
            orcpt: None,
            notify: 0,
            route,
        };
        let envelope = Envelope {
            message_id: "<m@test>".into(),
            sender: Address::parse("s@test").unwrap(),
            recipients: vec![
                rcpt("a@one.test", Some(key.clone())),
                rcpt("b@two.test", None),
            ],
            receive_connector: "In".into(),
            client_ip: "127.0.0.1".into(),
            client_helo: None,
            auth_user: None,
            env_id: None,
            ret: None,
            body_type: None,
            smtputf8: false,
            require_tls: false,
            subject: None,
            arrived_ms: None,
        };
        let body = MessageBody::from(b"Subject: x\r\n\r\nhi\r\n".to_vec());
        let batch = Batch {
            messages: vec![(&envelope, &body)],
            ..Default::default()
        };
        let mut full = true;
        let done = commit_batch(&mut conn, &mut full, true, 1_000, &batch).unwrap();
        let id = done.ids[0];
        let hops: Vec<(i64, Option<String>)> =
            sqlx::query_as("SELECT idx, next_hop FROM recipients WHERE message = ? ORDER BY idx")
                .bind(id)
                .fetch_all(&pool)
                .await
                .unwrap();
        let stored: String = rusqlite::types::ToSql::to_sql(&key.key)
            .map(|v| match v {
                rusqlite::types::ToSqlOutput::Owned(rusqlite::types::Value::Text(t)) => t,
                other => panic!("{other:?}"),
            })
            .unwrap();
        assert_eq!(hops, vec![(0, Some(stored.clone())), (1, None)]);
        let queue: (String, String, Option<String>) = sqlx::query_as(
            "SELECT delivery_type, display, connector FROM queues WHERE next_hop = ?",
        )
        .bind(&stored)
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!(
            queue,
            (
                "SmartHostConnectorDelivery".into(),
                "smart.test".into(),
                Some("Out".into())
            )
        );
    }
}
