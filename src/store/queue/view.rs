//! The queue viewer's reads: delivery queues, messages, attempts, depth.

use sqlx::SqlitePool;

use super::state::{MESSAGE_COLS, StoredMessage};
use crate::queue::status::ViewStatus;

/// Messages in the queue (all states), as the database keeps the count
/// (triggers on `messages`): no count of a million rows.
pub async fn count(pool: &SqlitePool) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar("SELECT n FROM message_count")
        .fetch_one(pool)
        .await?)
}

/// Each delivery queue's id and next hop, without counting its messages.
pub async fn queue_hops(pool: &SqlitePool) -> anyhow::Result<Vec<(i64, String)>> {
    Ok(sqlx::query_as("SELECT rowid, next_hop FROM queues")
        .fetch_all(pool)
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
        clauses.push("m.sender LIKE ?2 ESCAPE '\\'".into());
    }
    if f.recipient.is_some() {
        clauses.push(
            "EXISTS (SELECT 1 FROM recipients r WHERE r.message = m.id AND r.address LIKE ?3 ESCAPE '\\')"
                .into(),
        );
    }
    let filter = clauses.join(" AND ");
    let bind = |q: &str| {
        let like = |s: &Option<String>| {
            s.as_ref()
                .map(|v| format!("%{}%", escape_like(v)))
                .unwrap_or_default()
        };
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
    let total: i64 = if clauses.len() == 1 {
        count(pool).await?
    } else {
        sqlx::query_scalar(&format!("SELECT COUNT(*) FROM messages m WHERE {filter}"))
            .bind(&a)
            .bind(&b)
            .bind(&c)
            .fetch_one(pool)
            .await?
    };
    Ok((rows, total))
}

/// What a bulk action selects: every given criterion holds. Texts match as
/// parts (`LIKE %x%`, ASCII case-insensitive), a domain as the whole
/// domain of a pending recipient.
#[derive(Debug, Default, Clone)]
pub struct BulkFilter {
    /// A queue's next hop, or "" for the Submission queue.
    pub queue: Option<String>,
    pub sender: Option<String>,
    pub recipient: Option<String>,
    pub recipient_domain: Option<String>,
    pub min_size: Option<i64>,
    pub max_size: Option<i64>,
    /// Received at or before this time (Unix ms).
    pub received_before_ms: Option<i64>,
    pub last_error: Option<String>,
}

/// A message a bulk filter selected, with what its status is made of.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Selected {
    pub id: i64,
    pub suspended: bool,
    /// Some pending recipient waits for a retry.
    pub retrying: bool,
}

/// The messages a bulk action acts on, oldest first.
pub async fn select_messages(pool: &SqlitePool, f: &BulkFilter) -> anyhow::Result<Vec<Selected>> {
    let pending = crate::pending_sql!();
    let mut clauses = vec!["1 = 1".to_string()];
    if f.queue.is_some() {
        clauses.push(format!(
            "EXISTS (SELECT 1 FROM recipients r WHERE r.message = m.id AND r.status IN {pending} \
             AND ((?1 = '' AND r.next_hop IS NULL) OR r.next_hop = ?1))"
        ));
    }
    if f.sender.is_some() {
        clauses.push("m.sender LIKE ?2 ESCAPE '\\'".into());
    }
    if f.recipient.is_some() {
        clauses.push(format!(
            "EXISTS (SELECT 1 FROM recipients r WHERE r.message = m.id AND r.status IN {pending} AND r.address LIKE ?3 ESCAPE '\\')"
        ));
    }
    if f.recipient_domain.is_some() {
        clauses.push(format!(
            "EXISTS (SELECT 1 FROM recipients r WHERE r.message = m.id AND r.status IN {pending} AND r.address LIKE ?4 ESCAPE '\\')"
        ));
    }
    if f.min_size.is_some() {
        clauses.push("m.size >= ?5".into());
    }
    if f.max_size.is_some() {
        clauses.push("m.size <= ?6".into());
    }
    if f.received_before_ms.is_some() {
        clauses.push("m.received_ms <= ?7".into());
    }
    if f.last_error.is_some() {
        clauses.push(format!(
            "EXISTS (SELECT 1 FROM recipients r WHERE r.message = m.id AND r.status IN {pending} AND r.last_error LIKE ?8 ESCAPE '\\')"
        ));
    }
    let like = |s: &Option<String>| {
        s.as_ref()
            .map(|v| format!("%{}%", escape_like(v)))
            .unwrap_or_default()
    };
    let sql = format!(
        "SELECT m.id, m.suspended, EXISTS (SELECT 1 FROM recipients r WHERE r.message = m.id \
         AND r.status = 'Retry') AS retrying FROM messages m WHERE {} ORDER BY m.id",
        clauses.join(" AND ")
    );
    Ok(sqlx::query_as(&sql)
        .bind(f.queue.clone().unwrap_or_default())
        .bind(like(&f.sender))
        .bind(like(&f.recipient))
        .bind(
            f.recipient_domain
                .as_ref()
                .map(|d| format!("%@{}", escape_like(d)))
                .unwrap_or_default(),
        )
        .bind(f.min_size.unwrap_or(0))
        .bind(f.max_size.unwrap_or(0))
        .bind(f.received_before_ms.unwrap_or(0))
        .bind(like(&f.last_error))
        .fetch_all(pool)
        .await?)
}

/// `%` and `_` in a text matched as a part are themselves.
fn escape_like(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
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
