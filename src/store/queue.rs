//! The queue's tables (a database of their own, `queue.db`, so queue
//! traffic never waits on configuration writes). The group-commit logic
//! lives in `queue/`; this file is only the SQL.

use crate::queue::status::{RecipientStatus, ViewStatus};
use anyhow::Context;
use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::queue::{Completion, Envelope, Job, Routes};

/// Opens (creating if needed) the queue database with `synchronous=FULL`:
/// a committed transaction is fsynced.
pub async fn open(path: &Path) -> anyhow::Result<SqlitePool> {
    super::check_integrity(path, super::QUEUE_RECOVERY)?;
    let opts = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(30));
    let pool = SqlitePoolOptions::new()
        // WAL lets readers run beside the one writer; deliveries read a lot.
        .max_connections(8)
        .connect_with(opts)
        .await
        .with_context(|| format!("opening the queue {}", path.display()))?;
    sqlx::migrate!("./migrations/queue")
        .run(&pool)
        .await
        .context("migrating the queue")?;
    Ok(pool)
}

pub async fn count(pool: &SqlitePool) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar("SELECT COUNT(*) FROM messages")
        .fetch_one(pool)
        .await?)
}

/// Opens the queue writer's own connection (rusqlite, synchronous calls on
/// the writer's thread: no async round trip per statement on the path to
/// a 250). The database must exist and be migrated (`open`).
pub(crate) fn open_writer(path: &Path) -> anyhow::Result<rusqlite::Connection> {
    let conn = rusqlite::Connection::open(path)
        .with_context(|| format!("opening the queue writer on {}", path.display()))?;
    conn.busy_timeout(Duration::from_secs(30))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(conn)
}

/// One transaction for everything waiting: new messages in, routing
/// decisions and finished transactions recorded. Returns the new ids, and
/// for each completion whether it left failed recipients to bounce.
///
/// Only a batch that accepts messages is fsynced (synchronous=FULL): their
/// 250 depends on it. Routing decisions and delivery results alone are
/// committed with synchronous=NORMAL (in WAL mode: written, not fsynced).
/// A crash may lose such a commit, never corrupt the database, and the
/// next accepting commit's fsync makes everything before it durable. Losing
/// one means a recipient is routed again or a delivered message is sent
/// again: the documented at-least-once window, never a lost message.
pub(crate) fn commit_batch(
    conn: &mut rusqlite::Connection,
    durable: &mut bool,
    batch: &[Job],
    completions: &[Completion],
    routes: &[Routes],
) -> anyhow::Result<(Vec<i64>, Vec<bool>)> {
    use rusqlite::params;
    let now = OffsetDateTime::now_utc();
    let received_at = now.format(&Rfc3339)?;
    let want = !batch.is_empty();
    if want != *durable {
        conn.pragma_update(None, "synchronous", if want { "FULL" } else { "NORMAL" })?;
        *durable = want;
    }
    // IMMEDIATE: the write lock is taken at BEGIN, so no snapshot taken
    // earlier in the transaction can go stale (SQLITE_BUSY_SNAPSHOT).
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let mut ids = Vec::with_capacity(batch.len());
    if !batch.is_empty() {
        let end: i64 = tx.query_row(
            "UPDATE id_counter SET last = last + ?1 WHERE one = 1 RETURNING last",
            [batch.len() as i64],
            |r| r.get(0),
        )?;
        let mut id = end - batch.len() as i64;
        let mut message = tx.prepare_cached(
            "INSERT INTO messages (id, message_id, sender, received_at, size, receive_connector, client_ip, client_helo, \
             auth_user, env_id, ret, body_type, smtputf8, received_unix, subject) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15)",
        )?;
        let mut body =
            tx.prepare_cached("INSERT INTO bodies (message, body) VALUES (?1, zeroblob(?2))")?;
        let mut rcpt = tx.prepare_cached(
            "INSERT INTO recipients (message, idx, address, orcpt, notify) VALUES (?1,?2,?3,?4,?5)",
        )?;
        for job in batch {
            let e: &Envelope = &job.envelope;
            id += 1;
            message.execute(params![
                id,
                e.message_id,
                e.sender,
                received_at,
                job.body.len() as i64,
                e.receive_connector,
                e.client_ip,
                e.client_helo,
                e.auth_user,
                e.env_id,
                e.ret,
                e.body_type,
                e.smtputf8,
                now.unix_timestamp(),
                e.subject,
            ])?;
            // The body is streamed into its BLOB, from memory and then from
            // its spill file: no second copy of a large message in RAM.
            body.execute(params![id, job.body.len() as i64])?;
            let mut blob =
                tx.blob_open(rusqlite::DatabaseName::Main, "bodies", "body", id, false)?;
            job.body
                .copy_to(&mut blob)
                .context("writing the message body into the queue")?;
            drop(blob);
            for (i, r) in e.recipients.iter().enumerate() {
                rcpt.execute(params![id, i as i64, r.address, r.orcpt, r.notify as i64])?;
            }
            ids.push(id);
        }
    }
    if !routes.is_empty() {
        let mut queue = tx.prepare_cached(
            "INSERT OR IGNORE INTO queues (next_hop, delivery_type, display, connector) VALUES (?1,?2,?3,?4)",
        )?;
        let mut route = tx.prepare_cached(
            "UPDATE recipients SET next_hop = ?1, last_error = COALESCE(?4, last_error) \
             WHERE message = ?2 AND idx = ?3",
        )?;
        let mut why = tx.prepare_cached("UPDATE queues SET last_error = ?1 WHERE next_hop = ?2")?;
        let mut queues_seen: Vec<&crate::routing::HopKey> = vec![];
        for (message, idx, key) in routes.iter().flat_map(|r| r.routes.iter()) {
            if !queues_seen.contains(&&key.key) {
                queues_seen.push(&key.key);
                queue.execute(params![
                    key.key,
                    key.delivery_type,
                    key.display,
                    key.connector
                ])?;
            }
            route.execute(params![key.key, message, idx, key.reason])?;
            if let Some(reason) = &key.reason {
                why.execute(params![reason, key.key])?;
            }
        }
    }
    let mut bounces = Vec::with_capacity(completions.len());
    for c in completions {
        bounces.push(record_transaction(&tx, c, now.unix_timestamp())?);
    }
    tx.commit()?;
    Ok((ids, bounces))
}

/// A finished outbound transaction: each recipient's result, an attempt
/// row, and the message deleted when nothing is pending or failed.
fn record_transaction(
    tx: &rusqlite::Transaction<'_>,
    c: &Completion,
    now: i64,
) -> anyhow::Result<bool> {
    use rusqlite::params;
    let mut update = tx.prepare_cached(
        "UPDATE recipients SET status = ?1, last_error = ?2, remote_host = ?3, next_attempt = ?4, attempts = attempts + 1, \
         updated_unix = ?5 WHERE message = ?6 AND idx = ?7",
    )?;
    for (idx, status, text, next) in &c.results {
        update.execute(params![status, text, c.remote, next, now, c.message, idx])?;
    }
    tx.prepare_cached(
        "INSERT INTO attempts (message, at_unix, next_hop, remote_host, outcome, detail) VALUES (?1,?2,?3,?4,'SEND','transaction completed')",
    )?
    .execute(params![c.message, now, c.hop, c.remote])?;
    let (pending, failed): (i64, i64) = tx
        .prepare_cached(concat!(
            "SELECT COALESCE(SUM(status IN ",
            crate::pending_sql!(),
            "), 0), COALESCE(SUM(status = ?2), 0) FROM recipients WHERE message = ?1"
        ))?
        .query_row(params![c.message, RecipientStatus::Failed], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
    if pending == 0 && failed == 0 {
        tx.prepare_cached("DELETE FROM messages WHERE id = ?1")?
            .execute([c.message])?;
    }
    Ok(failed > 0)
}

// ----- Delivery state -------------------------------------------------------

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Unrouted {
    pub message: i64,
    pub idx: i64,
    pub address: String,
    pub size: i64,
    pub message_id: String,
    pub sender: String,
    pub subject: Option<String>,
}

/// Pending recipients that have no next hop yet.
pub async fn unrouted(pool: &SqlitePool, limit: i64) -> anyhow::Result<Vec<Unrouted>> {
    Ok(sqlx::query_as(
        concat!("SELECT r.message, r.idx, r.address, m.size, m.message_id, m.sender, m.subject FROM recipients r JOIN messages m ON m.id = r.message \
         WHERE r.next_hop IS NULL AND r.status IN ", crate::pending_sql!(), " LIMIT ?"),
    )
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

/// Sends pending recipients back to routing: those of `message` (resubmit),
/// or every one in the Unreachable queue or a given queue.
pub async fn unroute(
    pool: &SqlitePool,
    message: Option<i64>,
    queue: Option<&str>,
) -> anyhow::Result<u64> {
    let done = match (message, queue) {
        (Some(m), _) => {
            sqlx::query(concat!("UPDATE recipients SET next_hop = NULL, next_attempt = 0 WHERE message = ? AND status IN ", crate::pending_sql!(), ""))
                .bind(m)
                .execute(pool)
                .await?
        }
        (None, Some(q)) => {
            sqlx::query(concat!("UPDATE recipients SET next_hop = NULL, next_attempt = 0 WHERE next_hop = ? AND status IN ", crate::pending_sql!(), ""))
                .bind(q)
                .execute(pool)
                .await?
        }
        (None, None) => return Ok(0),
    };
    Ok(done.rows_affected())
}

/// (next hop, message) pairs due now, oldest due first, so retries never
/// starve fresh mail and the reverse.
pub async fn due(pool: &SqlitePool, now: i64, limit: i64) -> anyhow::Result<Vec<(String, i64)>> {
    Ok(sqlx::query_as(concat!(
        "SELECT r.next_hop, r.message FROM recipients r \
         JOIN messages m ON m.id = r.message JOIN queues q ON q.next_hop = r.next_hop \
         WHERE r.status IN ",
        crate::pending_sql!(),
        " AND r.next_attempt <= ?1 AND m.suspended = 0 \
           AND q.suspended = 0 AND q.next_retry <= ?1 AND r.next_hop <> 'Unreachable' \
         GROUP BY r.next_hop, r.message ORDER BY MIN(r.next_attempt), r.message LIMIT ?2"
    ))
    .bind(now)
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StoredMessage {
    pub id: i64,
    pub message_id: String,
    pub sender: String,
    pub received_at: String,
    pub received_unix: i64,
    pub size: i64,
    pub receive_connector: String,
    pub client_ip: String,
    pub suspended: bool,
    pub delay_notified: bool,
    pub subject: Option<String>,
}

pub async fn message(pool: &SqlitePool, id: i64) -> anyhow::Result<Option<StoredMessage>> {
    Ok(sqlx::query_as(
        "SELECT id, message_id, sender, received_at, received_unix, size, receive_connector, client_ip, suspended, delay_notified, subject \
         FROM messages WHERE id = ?",
    )
    .bind(id)
    .fetch_optional(pool)
    .await?)
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
    pub address: String,
    pub status: String,
    pub next_hop: Option<String>,
    pub attempts: i64,
    pub next_attempt: i64,
    pub last_error: Option<String>,
    pub remote_host: Option<String>,
}

impl StoredRecipient {
    /// The status column, typed (an unknown value reads as Failed: final,
    /// never sent again).
    pub fn status(&self) -> RecipientStatus {
        self.status.parse().unwrap_or(RecipientStatus::Failed)
    }
}

const RCPT_COLS: &str =
    "message, idx, address, status, next_hop, attempts, next_attempt, last_error, remote_host";

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
    hop: &str,
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

/// Records one recipient's outcome: `Delivered`, `Failed`, or `Retry` at `next_attempt`.
pub async fn set_recipient(
    pool: &SqlitePool,
    message: i64,
    idx: i64,
    status: RecipientStatus,
    error: Option<&str>,
    remote: Option<&str>,
    next_attempt: i64,
) -> anyhow::Result<()> {
    sqlx::query(
        "UPDATE recipients SET status = ?, last_error = COALESCE(?, last_error), remote_host = COALESCE(?, remote_host), \
         next_attempt = ?, attempts = attempts + 1, updated_unix = ? WHERE message = ? AND idx = ?",
    )
    .bind(status.as_str())
    .bind(error)
    .bind(remote)
    .bind(next_attempt)
    .bind(OffsetDateTime::now_utc().unix_timestamp())
    .bind(message)
    .bind(idx)
    .execute(pool)
    .await?;
    Ok(())
}

/// Counts a connection attempt for a message's recipients on a hop that
/// failed before any reply about them: they were attempted all the same.
pub async fn count_attempt(pool: &SqlitePool, message: i64, hop: &str) -> anyhow::Result<()> {
    sqlx::query(
        "UPDATE recipients SET attempts = attempts + 1 WHERE message = ? AND next_hop = ? AND status = ?",
    )
    .bind(message)
    .bind(hop)
    .bind(RecipientStatus::Retry.as_str())
    .execute(pool)
    .await?;
    Ok(())
}

pub async fn record_attempt(
    pool: &SqlitePool,
    message: i64,
    hop: &str,
    remote: Option<&str>,
    outcome: &str,
    detail: &str,
) -> anyhow::Result<()> {
    sqlx::query("INSERT INTO attempts (message, at_unix, next_hop, remote_host, outcome, detail) VALUES (?,?,?,?,?,?)")
        .bind(message)
        .bind(OffsetDateTime::now_utc().unix_timestamp())
        .bind(hop)
        .bind(remote)
        .bind(outcome)
        .bind(detail)
        .execute(pool)
        .await?;
    Ok(())
}

/// A connection-level failure: the queue goes to Retry until `next_retry`,
/// with its recipients; returns the queue's failure count.
pub async fn queue_failed(
    pool: &SqlitePool,
    hop: &str,
    error: &str,
    next_retry: i64,
) -> anyhow::Result<()> {
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let mut tx = pool.begin().await?;
    sqlx::query("UPDATE queues SET failures = failures + 1, next_retry = ?, last_error = ?, last_attempt = ? WHERE next_hop = ?")
        .bind(next_retry)
        .bind(error)
        .bind(now)
        .bind(hop)
        .execute(&mut *tx)
        .await?;
    sqlx::query(concat!(
        "UPDATE recipients SET status = ?, next_attempt = ?, last_error = ?, updated_unix = ? \
         WHERE next_hop = ? AND status IN ",
        crate::pending_sql!(),
        ""
    ))
    .bind(RecipientStatus::Retry.as_str())
    .bind(next_retry)
    .bind(error)
    .bind(now)
    .bind(hop)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

pub async fn queue_failures(pool: &SqlitePool, hop: &str) -> anyhow::Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT failures FROM queues WHERE next_hop = ?")
            .bind(hop)
            .fetch_optional(pool)
            .await?
            .unwrap_or(0),
    )
}

pub async fn queue_connected(pool: &SqlitePool, hop: &str) -> anyhow::Result<()> {
    let now = OffsetDateTime::now_utc().unix_timestamp();
    sqlx::query("UPDATE queues SET failures = 0, next_retry = 0, last_attempt = ?, last_success = ? WHERE next_hop = ?")
        .bind(now)
        .bind(now)
        .bind(hop)
        .execute(pool)
        .await?;
    Ok(())
}

/// Messages with nothing pending any more.
pub async fn finished(pool: &SqlitePool, message: i64) -> anyhow::Result<bool> {
    let pending: i64 = sqlx::query_scalar(concat!(
        "SELECT COUNT(*) FROM recipients WHERE message = ? AND status IN ",
        crate::pending_sql!(),
        ""
    ))
    .bind(message)
    .fetch_one(pool)
    .await?;
    Ok(pending == 0)
}

pub async fn delete_message(pool: &SqlitePool, message: i64) -> anyhow::Result<()> {
    sqlx::query("DELETE FROM messages WHERE id = ?")
        .bind(message)
        .execute(pool)
        .await?;
    Ok(())
}

/// Messages past `max_age` seconds with recipients still pending.
pub async fn older_than(
    pool: &SqlitePool,
    cutoff_unix: i64,
    only_not_notified: bool,
) -> anyhow::Result<Vec<i64>> {
    let sql = format!(
        concat!(
            "SELECT DISTINCT m.id FROM messages m JOIN recipients r ON r.message = m.id \
         WHERE m.received_unix <= ? AND r.status IN ",
            crate::pending_sql!(),
            " {}"
        ),
        if only_not_notified {
            "AND m.delay_notified = 0"
        } else {
            ""
        }
    );
    Ok(sqlx::query_scalar(&sql)
        .bind(cutoff_unix)
        .fetch_all(pool)
        .await?)
}

pub async fn set_delay_notified(pool: &SqlitePool, message: i64) -> anyhow::Result<()> {
    sqlx::query("UPDATE messages SET delay_notified = 1 WHERE id = ?")
        .bind(message)
        .execute(pool)
        .await?;
    Ok(())
}

// ----- Queue viewer -----------------------------------------------------------

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct QueueRow {
    pub id: i64,
    pub next_hop: String,
    pub delivery_type: String,
    pub display: String,
    pub connector: Option<String>,
    pub suspended: bool,
    pub failures: i64,
    pub next_retry: i64,
    pub last_error: Option<String>,
    pub message_count: i64,
}

const QUEUE_SELECT: &str = concat!(
    "SELECT q.rowid AS id, q.next_hop, q.delivery_type, q.display, q.connector, q.suspended, \
    q.failures, q.next_retry, q.last_error, \
    (SELECT COUNT(DISTINCT r.message) FROM recipients r WHERE r.next_hop = q.next_hop AND r.status IN ",
    crate::pending_sql!(),
    ") AS message_count \
    FROM queues q"
);

pub async fn queues(pool: &SqlitePool) -> anyhow::Result<Vec<QueueRow>> {
    Ok(sqlx::query_as(&format!("{QUEUE_SELECT} ORDER BY q.rowid"))
        .fetch_all(pool)
        .await?)
}

pub async fn queue(pool: &SqlitePool, id: i64) -> anyhow::Result<Option<QueueRow>> {
    Ok(sqlx::query_as(&format!("{QUEUE_SELECT} WHERE q.rowid = ?"))
        .bind(id)
        .fetch_optional(pool)
        .await?)
}

/// Messages waiting to be routed (the Submission queue).
pub async fn submission_count(pool: &SqlitePool) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar(concat!(
        "SELECT COUNT(DISTINCT message) FROM recipients WHERE next_hop IS NULL AND status IN ",
        crate::pending_sql!(),
        ""
    ))
    .fetch_one(pool)
    .await?)
}

pub async fn set_queue_suspended(
    pool: &SqlitePool,
    hop: &str,
    suspended: bool,
) -> anyhow::Result<()> {
    sqlx::query("UPDATE queues SET suspended = ? WHERE next_hop = ?")
        .bind(suspended)
        .bind(hop)
        .execute(pool)
        .await?;
    Ok(())
}

/// Retry-Queue: try now. The schedule's position is kept, so a failure
/// starts the next interval from now.
pub async fn retry_now(pool: &SqlitePool, hop: &str) -> anyhow::Result<()> {
    let mut tx = pool.begin().await?;
    sqlx::query("UPDATE queues SET next_retry = 0 WHERE next_hop = ?")
        .bind(hop)
        .execute(&mut *tx)
        .await?;
    sqlx::query(concat!(
        "UPDATE recipients SET next_attempt = 0 WHERE next_hop = ? AND status IN ",
        crate::pending_sql!(),
        ""
    ))
    .bind(hop)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

pub async fn set_message_suspended(
    pool: &SqlitePool,
    id: i64,
    suspended: bool,
) -> anyhow::Result<()> {
    sqlx::query("UPDATE messages SET suspended = ? WHERE id = ?")
        .bind(suspended)
        .bind(id)
        .execute(pool)
        .await?;
    Ok(())
}

/// Filters for the message list.
#[derive(Debug, Default)]
pub struct MessageFilter {
    pub queue: Option<String>,
    pub sender: Option<String>,
    pub recipient: Option<String>,
    pub limit: i64,
    pub offset: i64,
}

pub async fn list_messages(
    pool: &SqlitePool,
    f: &MessageFilter,
) -> anyhow::Result<(Vec<StoredMessage>, i64)> {
    let mut clauses = vec!["1 = 1".to_string()];
    if f.queue.is_some() {
        clauses.push(
            concat!(
                "EXISTS (SELECT 1 FROM recipients r WHERE r.message = m.id AND r.status IN ",
                crate::pending_sql!(),
                " \
             AND ((?1 = '' AND r.next_hop IS NULL) OR r.next_hop = ?1))"
            )
            .into(),
        );
    }
    if f.sender.is_some() {
        clauses.push("m.sender LIKE ?2".into());
    }
    if f.recipient.is_some() {
        clauses.push(
            "EXISTS (SELECT 1 FROM recipients r WHERE r.message = m.id AND r.address LIKE ?3)"
                .into(),
        );
    }
    let filter = clauses.join(" AND ");
    let bind = |q: &str| {
        let like = |s: &Option<String>| s.as_ref().map(|v| format!("%{v}%")).unwrap_or_default();
        (
            q.to_string(),
            f.queue.clone().unwrap_or_default(),
            like(&f.sender),
            like(&f.recipient),
        )
    };
    let (sql, a, b, c) = bind(&format!(
        "SELECT id, message_id, sender, received_at, received_unix, size, receive_connector, client_ip, suspended, delay_notified, subject \
         FROM messages m WHERE {filter} ORDER BY id LIMIT ?4 OFFSET ?5"
    ));
    let rows: Vec<StoredMessage> = sqlx::query_as(&sql)
        .bind(&a)
        .bind(&b)
        .bind(&c)
        .bind(f.limit)
        .bind(f.offset)
        .fetch_all(pool)
        .await?;
    let total: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM messages m WHERE {filter}"))
        .bind(&a)
        .bind(&b)
        .bind(&c)
        .fetch_one(pool)
        .await?;
    Ok((rows, total))
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AttemptRow {
    pub at_unix: i64,
    pub next_hop: String,
    pub remote_host: Option<String>,
    pub outcome: String,
    pub detail: Option<String>,
}

pub async fn attempts(pool: &SqlitePool, message: i64) -> anyhow::Result<Vec<AttemptRow>> {
    Ok(sqlx::query_as("SELECT at_unix, next_hop, remote_host, outcome, detail FROM attempts WHERE message = ? ORDER BY id")
        .bind(message)
        .fetch_all(pool)
        .await?)
}

/// A connector changed: its queues in Retry try again now with the new settings.
pub async fn retry_connector_queues(pool: &SqlitePool, connector_id: &str) -> anyhow::Result<()> {
    let prefix = format!("{connector_id}|%");
    let mut tx = pool.begin().await?;
    sqlx::query("UPDATE queues SET next_retry = 0 WHERE next_hop LIKE ?")
        .bind(&prefix)
        .execute(&mut *tx)
        .await?;
    sqlx::query(concat!(
        "UPDATE recipients SET next_attempt = 0 WHERE next_hop LIKE ? AND status IN ",
        crate::pending_sql!(),
        ""
    ))
    .bind(&prefix)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Pending recipients by next hop (its display name; `Submission` before
/// routing) and status (`Ready`, `Retry`, or `Suspended` for a suspended
/// message), for the queue-depth metric.
pub async fn depth(pool: &SqlitePool) -> anyhow::Result<Vec<(String, String, i64)>> {
    Ok(sqlx::query_as(
        concat!("SELECT COALESCE(q.display, CASE WHEN r.next_hop IS NULL THEN 'Submission' ELSE r.next_hop END) AS hop, \
                CASE WHEN m.suspended = 1 THEN ?1 ELSE r.status END AS st, COUNT(*) \
         FROM recipients r JOIN messages m ON m.id = r.message LEFT JOIN queues q ON q.next_hop = r.next_hop \
         WHERE r.status IN ", crate::pending_sql!(), " GROUP BY hop, st ORDER BY hop, st"),
    )
    .bind(ViewStatus::Suspended.as_str())
    .fetch_all(pool)
    .await?)
}
