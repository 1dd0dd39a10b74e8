//! The delivery engine's reads: what is unrouted, what is due, a message,
//! its body and recipients, and what has grown old.

use sqlx::SqlitePool;
use std::collections::HashSet;

use crate::model::Address;
use crate::queue::status::RecipientStatus;
use crate::routing::HopKey;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Unrouted {
    pub message: i64,
    pub idx: i64,
    pub address: Address,
    pub size: i64,
    pub message_id: String,
    pub sender: Address,
    pub subject: Option<String>,
}

/// Pending recipients that have no next hop yet.
pub async fn unrouted(pool: &SqlitePool, limit: i64) -> anyhow::Result<Vec<Unrouted>> {
    Ok(sqlx::query_as(concat!(
        "SELECT r.message, r.idx, r.address, m.size, m.message_id, m.sender, m.subject \
         FROM recipients r JOIN messages m ON m.id = r.message \
         WHERE r.next_hop IS NULL AND r.status IN ",
        crate::pending_sql!(),
        " LIMIT ?"
    ))
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

/// (next hop, message) pairs due at `now_ms`: of each queue not waiting
/// for a retry or suspended, at most `limit` messages, oldest due first, so
/// retries never starve fresh mail and the reverse.
///
/// Its cost does not grow with the queue: the queues come first (a few
/// rows), then each queue's due recipients are read in order from the index
/// (next_hop, status, next_attempt_ms), one status at a time, and the read
/// stops at the limit. A queue in Retry with a million messages costs one
/// row here.
pub async fn due(pool: &SqlitePool, now_ms: i64, limit: i64) -> anyhow::Result<Vec<(HopKey, i64)>> {
    let hops: Vec<HopKey> = sqlx::query_scalar(
        "SELECT next_hop FROM queues WHERE suspended = 0 AND next_retry_ms <= ?1 AND next_hop <> ?2",
    )
    .bind(now_ms)
    .bind(HopKey::Unreachable)
    .fetch_all(pool)
    .await?;
    let mut due = vec![];
    for hop in hops {
        let mut rows: Vec<(i64, i64)> = vec![];
        for status in RecipientStatus::PENDING {
            rows.extend(
                sqlx::query_as::<_, (i64, i64)>(
                    "SELECT r.next_attempt_ms, r.message FROM recipients r \
                     JOIN messages m ON m.id = r.message \
                     WHERE r.next_hop = ?1 AND r.status = ?2 AND r.next_attempt_ms <= ?3 \
                       AND m.suspended = 0 \
                     ORDER BY r.next_attempt_ms, r.message LIMIT ?4",
                )
                .bind(&hop)
                .bind(status.as_str())
                .bind(now_ms)
                .bind(limit)
                .fetch_all(pool)
                .await?,
            );
        }
        rows.sort_unstable();
        let mut seen = HashSet::new();
        due.extend(
            rows.into_iter()
                .filter(|(_, m)| seen.insert(*m))
                .take(limit as usize)
                .map(|(at, m)| (at, hop.clone(), m)),
        );
    }
    due.sort_by_key(|(at, _, m)| (*at, *m));
    Ok(due.into_iter().map(|(_, hop, m)| (hop, m)).collect())
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StoredMessage {
    pub id: i64,
    pub message_id: String,
    /// `Address::null()` for the null sender.
    pub sender: Address,
    pub received_ms: i64,
    pub size: i64,
    pub receive_connector: String,
    pub client_ip: String,
    pub suspended: bool,
    pub delay_notified: bool,
    pub subject: Option<String>,
    /// RFC 3461 ENVID (decoded) and RET (`FULL`, `HDRS`).
    pub env_id: Option<String>,
    pub ret: Option<String>,
    /// RFC 8689 REQUIRETLS.
    pub require_tls: bool,
}

impl StoredMessage {
    /// When it was accepted, as RFC 3339 (UTC, milliseconds).
    pub fn received_at(&self) -> String {
        rfc3339_ms(self.received_ms)
    }
}

/// A time column's value as RFC 3339 (UTC, milliseconds).
pub fn rfc3339_ms(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

pub(super) const MESSAGE_COLS: &str = "id, message_id, sender, received_ms, size, receive_connector, \
     client_ip, suspended, delay_notified, subject, env_id, ret, require_tls";

pub async fn message(pool: &SqlitePool, id: i64) -> anyhow::Result<Option<StoredMessage>> {
    Ok(
        sqlx::query_as(&format!("SELECT {MESSAGE_COLS} FROM messages WHERE id = ?"))
            .bind(id)
            .fetch_optional(pool)
            .await?,
    )
}

/// Bodies larger than this are sent to the next hop from their BLOB a
/// chunk at a time (`body_chunks`), never whole in memory.
pub const STREAM_ABOVE: i64 = 1024 * 1024;

/// The size of one chunk of a streamed body.
pub const CHUNK: usize = 256 * 1024;

/// A body's length, without reading it (SQLite's `length()` of a BLOB reads
/// only its header).
pub async fn body_len(pool: &SqlitePool, id: i64) -> anyhow::Result<Option<i64>> {
    Ok(
        sqlx::query_scalar("SELECT length(body) FROM bodies WHERE message = ?")
            .bind(id)
            .fetch_optional(pool)
            .await?,
    )
}

/// A body read from its BLOB in `CHUNK`s, in order, by a blocking thread
/// with its own read-only connection (SQLite's incremental BLOB I/O); the
/// channel holds two chunks, so at most three are in memory at once. The
/// stream ends early with an error if the message is gone.
pub fn body_chunks(
    db: &std::path::Path,
    id: i64,
) -> tokio::sync::mpsc::Receiver<std::io::Result<Vec<u8>>> {
    let (tx, rx) = tokio::sync::mpsc::channel(2);
    let db = db.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let read = || -> anyhow::Result<()> {
            let conn = rusqlite::Connection::open_with_flags(
                &db,
                rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY
                    | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )?;
            conn.busy_timeout(std::time::Duration::from_secs(30))?;
            let blob = conn.blob_open(rusqlite::DatabaseName::Main, "bodies", "body", id, true)?;
            let len = blob.len();
            let mut at = 0;
            while at < len {
                let mut chunk = vec![0; CHUNK.min(len - at)];
                blob.read_at_exact(&mut chunk, at)?;
                at += chunk.len();
                if tx.blocking_send(Ok(chunk)).is_err() {
                    return Ok(()); // the reader went away
                }
            }
            Ok(())
        };
        if let Err(e) = read() {
            let _ = tx.blocking_send(Err(std::io::Error::other(format!("{e:#}"))));
        }
    });
    rx
}

pub async fn body(pool: &SqlitePool, id: i64) -> anyhow::Result<Option<Vec<u8>>> {
    Ok(
        sqlx::query_scalar("SELECT body FROM bodies WHERE message = ?")
            .bind(id)
            .fetch_optional(pool)
            .await?,
    )
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StoredRecipient {
    pub message: i64,
    pub idx: i64,
    pub address: Address,
    pub status: String,
    pub next_hop: Option<String>,
    pub attempts: i64,
    pub next_attempt_ms: i64,
    pub last_error: Option<String>,
    pub remote_host: Option<String>,
    /// RFC 3461 ORCPT (the decoded rfc822 address) and NOTIFY
    /// (smtp-proto's RCPT_NOTIFY_* bits; 0 when the client said nothing).
    pub orcpt: Option<String>,
    pub notify: i64,
}

impl StoredRecipient {
    /// Whether a notice of `kind` may go to the sender: always when the
    /// client gave no NOTIFY (Exchange's defaults then apply), else only
    /// what it asked for (`NEVER` asks for none).
    pub fn wants(&self, kind: u64) -> bool {
        self.notify == 0 || self.notify as u64 & kind != 0
    }
}

impl StoredRecipient {
    /// The status column, typed (an unknown value reads as Failed: final,
    /// never sent again).
    pub fn status(&self) -> RecipientStatus {
        self.status.parse().unwrap_or(RecipientStatus::Failed)
    }
}

const RCPT_COLS: &str = "message, idx, address, status, next_hop, attempts, next_attempt_ms, last_error, remote_host, orcpt, notify";

pub async fn recipients(pool: &SqlitePool, message: i64) -> anyhow::Result<Vec<StoredRecipient>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {RCPT_COLS} FROM recipients WHERE message = ? ORDER BY idx"
    ))
    .bind(message)
    .fetch_all(pool)
    .await?)
}

/// Pending recipients of a message in one queue.
pub async fn pending_for_hop(
    pool: &SqlitePool,
    message: i64,
    hop: &HopKey,
) -> anyhow::Result<Vec<StoredRecipient>> {
    Ok(sqlx::query_as(&format!(
        concat!(
            "SELECT {} FROM recipients WHERE message = ? AND next_hop = ? AND status IN ",
            crate::pending_sql!(),
            " ORDER BY idx"
        ),
        RCPT_COLS
    ))
    .bind(message)
    .bind(hop)
    .fetch_all(pool)
    .await?)
}

/// The messages of a delivery batch, in one query (ids as a JSON array
/// for `json_each`): the delivery engine reads a batch at a time, not a
/// message at a time.
pub async fn messages(pool: &SqlitePool, ids: &[i64]) -> anyhow::Result<Vec<StoredMessage>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {MESSAGE_COLS} FROM messages WHERE id IN (SELECT value FROM json_each(?))"
    ))
    .bind(serde_json::to_string(ids)?)
    .fetch_all(pool)
    .await?)
}

/// The pending recipients of a batch's messages in one queue, in one
/// query, in (message, index) order. Read by the messages' primary key:
/// the unary `+` keeps SQLite off the (next_hop, status) index, which
/// would read every pending recipient of the queue (half a million rows a
/// window with the queue that deep, seen in the queue-depth benchmark).
pub async fn pending_for_batch(
    pool: &SqlitePool,
    ids: &[i64],
    hop: &HopKey,
) -> anyhow::Result<Vec<StoredRecipient>> {
    Ok(sqlx::query_as(&pending_for_batch_sql())
        .bind(serde_json::to_string(ids)?)
        .bind(hop)
        .fetch_all(pool)
        .await?)
}

fn pending_for_batch_sql() -> String {
    format!(
        concat!(
            "SELECT {} FROM recipients WHERE message IN (SELECT value FROM json_each(?)) \
             AND +next_hop = ? AND +status IN ",
            crate::pending_sql!(),
            " ORDER BY message, idx"
        ),
        RCPT_COLS
    )
}

/// The bodies of a batch's messages in one query: each one's length, and
/// the body itself when it is at most `whole_up_to` bytes (a larger one is
/// read on its own, or streamed).
pub async fn bodies(
    pool: &SqlitePool,
    ids: &[i64],
    whole_up_to: i64,
) -> anyhow::Result<Vec<(i64, i64, Option<Vec<u8>>)>> {
    Ok(sqlx::query_as(
        "SELECT message, length(body), CASE WHEN length(body) <= ?2 THEN body END \
         FROM bodies WHERE message IN (SELECT value FROM json_each(?1))",
    )
    .bind(serde_json::to_string(ids)?)
    .bind(whole_up_to)
    .fetch_all(pool)
    .await?)
}

/// How many connection failures in a row the queue has had.
pub async fn queue_failures(pool: &SqlitePool, hop: &HopKey) -> anyhow::Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT failures FROM queues WHERE next_hop = ?")
            .bind(hop)
            .fetch_optional(pool)
            .await?
            .unwrap_or(0),
    )
}

/// Messages received at or before `cutoff_ms` with recipients still
/// pending (only those without a delay notice yet, if asked).
pub async fn older_than(
    pool: &SqlitePool,
    cutoff_ms: i64,
    only_not_notified: bool,
) -> anyhow::Result<Vec<i64>> {
    Ok(sqlx::query_scalar(older_than_sql(only_not_notified))
        .bind(cutoff_ms)
        .fetch_all(pool)
        .await?)
}

/// The engine asks this on every pass, so it is driven by the messages'
/// arrival index and never by the recipients' status, which would read
/// every pending recipient of the queue each time (at 300,000 queued it
/// cost more CPU than accepting the mail). Delay notices read a partial
/// index of the messages not yet notified: those already notified, however
/// many, are not walked again.
fn older_than_sql(only_not_notified: bool) -> &'static str {
    if only_not_notified {
        concat!(
            "SELECT m.id FROM messages m INDEXED BY messages_not_notified \
             WHERE m.delay_notified = 0 AND m.received_ms <= ? AND EXISTS \
             (SELECT 1 FROM recipients r WHERE r.message = m.id AND r.status IN ",
            crate::pending_sql!(),
            ")"
        )
    } else {
        concat!(
            "SELECT m.id FROM messages m INDEXED BY messages_received \
             WHERE m.received_ms <= ? AND EXISTS \
             (SELECT 1 FROM recipients r WHERE r.message = m.id AND r.status IN ",
            crate::pending_sql!(),
            ")"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A batch's recipients are read by the messages' primary key, never by
    /// walking the queue's index (which grows with the queue).
    #[tokio::test]
    async fn a_batch_is_read_by_message_not_by_queue() {
        let dir = tempfile::tempdir().unwrap();
        let pool = super::super::open(&dir.path().join("queue.db"))
            .await
            .unwrap();
        let plan: Vec<(i64, i64, i64, String)> =
            sqlx::query_as(&format!("EXPLAIN QUERY PLAN {}", pending_for_batch_sql()))
                .bind("[1,2]")
                .bind("hop")
                .fetch_all(&pool)
                .await
                .unwrap();
        let plan: Vec<String> = plan.into_iter().map(|r| r.3).collect();
        assert!(
            plan.iter().any(|l| l.contains(
                "SEARCH recipients USING INDEX sqlite_autoindex_recipients_1 (message=?)"
            )),
            "{plan:?}"
        );
        assert!(
            !plan.iter().any(|l| l.contains("recipients_hop")),
            "{plan:?}"
        );
    }

    /// The expiry and delay-notice passes, asked on every pass of the
    /// engine, start from the messages' arrival and look up each one's
    /// recipients by key: they never walk the queue's recipients.
    #[tokio::test]
    async fn the_expiry_passes_walk_old_messages_not_the_queue() {
        let dir = tempfile::tempdir().unwrap();
        let pool = super::super::open(&dir.path().join("queue.db"))
            .await
            .unwrap();
        for (notified, index) in [
            (false, "INDEX messages_received (received_ms<?)"),
            (true, "INDEX messages_not_notified (received_ms<?)"),
        ] {
            let plan: Vec<(i64, i64, i64, String)> =
                sqlx::query_as(&format!("EXPLAIN QUERY PLAN {}", older_than_sql(notified)))
                    .bind(0)
                    .fetch_all(&pool)
                    .await
                    .unwrap();
            let plan: Vec<String> = plan.into_iter().map(|r| r.3).collect();
            assert!(plan[0].contains(index), "{plan:?}");
            assert!(
                plan.iter().any(|l| l
                    .contains("SEARCH r USING INDEX sqlite_autoindex_recipients_1 (message=?)")),
                "{plan:?}"
            );
            assert!(!plan.iter().any(|l| l.starts_with("SCAN")), "{plan:?}");
        }
        // And they find what they should: a message past the cutoff with a
        // recipient pending, once, until its delay notice is sent.
        sqlx::query(
            "INSERT INTO messages (id, message_id, sender, received_ms, size, receive_connector, client_ip) \
             VALUES (1, '<a@t>', 's@t', 1000, 10, 'c', '127.0.0.1'), (2, '<b@t>', 's@t', 9000, 10, 'c', '127.0.0.1')",
        )
        .execute(&pool)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO recipients (message, idx, address, status) VALUES \
             (1, 0, 'a@t', 'Ready'), (1, 1, 'b@t', 'Retry'), (2, 0, 'c@t', 'Ready')",
        )
        .execute(&pool)
        .await
        .unwrap();
        assert_eq!(older_than(&pool, 5000, false).await.unwrap(), vec![1]);
        assert_eq!(older_than(&pool, 5000, true).await.unwrap(), vec![1]);
        sqlx::query("UPDATE messages SET delay_notified = 1 WHERE id = 1")
            .execute(&pool)
            .await
            .unwrap();
        assert!(older_than(&pool, 5000, true).await.unwrap().is_empty());
        assert_eq!(older_than(&pool, 10_000, false).await.unwrap(), vec![1, 2]);
    }
}
