//! The queue viewer's reads: delivery queues, messages, attempts, depth.

use sqlx::SqlitePool;

use super::state::{MESSAGE_COLS, StoredMessage};
use crate::queue::status::ViewStatus;

/// Messages in the queue (all states).
pub async fn count(pool: &SqlitePool) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar("SELECT COUNT(*) FROM messages")
        .fetch_one(pool)
        .await?)
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct QueueRow {
    pub id: i64,
    pub next_hop: String,
    pub delivery_type: String,
    pub display: String,
    pub connector: Option<String>,
    pub suspended: bool,
    pub failures: i64,
    pub next_retry_ms: i64,
    pub last_error: Option<String>,
    pub message_count: i64,
}

const QUEUE_SELECT: &str = concat!(
    "SELECT q.rowid AS id, q.next_hop, q.delivery_type, q.display, q.connector, q.suspended, \
    q.failures, q.next_retry_ms, q.last_error, \
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
        "SELECT {MESSAGE_COLS} FROM messages m WHERE {filter} ORDER BY id LIMIT ?4 OFFSET ?5"
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
    pub at_ms: i64,
    pub next_hop: String,
    pub remote_host: Option<String>,
    pub outcome: String,
    pub detail: Option<String>,
}

pub async fn attempts(pool: &SqlitePool, message: i64) -> anyhow::Result<Vec<AttemptRow>> {
    Ok(sqlx::query_as("SELECT at_ms, next_hop, remote_host, outcome, detail FROM attempts WHERE message = ? ORDER BY id")
        .bind(message)
        .fetch_all(pool)
        .await?)
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
