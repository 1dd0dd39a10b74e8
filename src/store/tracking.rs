//! The message-tracking log's SQL (`tracking.db`). The writer that batches
//! events lives in `observe/tracking.rs`.

use anyhow::Context;
use serde::Serialize;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{QueryBuilder, Sqlite, SqlitePool};
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;
use utoipa::ToSchema;

/// One event as recorded.
#[derive(Debug, Clone, Default)]
pub struct NewEvent {
    pub time_ms: i64,
    pub event: &'static str,
    pub source: &'static str,
    pub internal_id: i64,
    pub message_id: String,
    pub sender: String,
    pub recipients: Vec<String>,
    pub size: Option<i64>,
    pub subject: Option<String>,
    pub connector: Option<String>,
    pub client_ip: Option<String>,
    pub client_hostname: Option<String>,
    pub server_ip: Option<String>,
    pub server_hostname: Option<String>,
    pub next_hop: Option<String>,
    pub tls: Option<String>,
    pub auth: Option<String>,
    pub detail: Option<String>,
    pub related: Option<String>,
    pub session: Option<String>,
}

/// One event as stored and returned by the API.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct TrackingEvent {
    /// Increases with every event; the paging cursor.
    pub id: i64,
    /// Unix milliseconds.
    pub time_ms: i64,
    /// RECEIVE, ROUTE, SEND, DELIVER, DEFER, FAIL, DSN, EXPIRE, RESUBMIT,
    /// SUSPEND, RESUME or DELETE.
    pub event: String,
    /// SMTP, ROUTING, QUEUE, DSN, ADMIN or STOREDRIVER.
    pub source: String,
    pub internal_id: i64,
    pub message_id: String,
    pub sender: String,
    #[sqlx(json)]
    pub recipients: Vec<String>,
    pub size: Option<i64>,
    pub subject: Option<String>,
    /// The receive connector (RECEIVE) or send connector / mailbox target.
    pub connector: Option<String>,
    pub client_ip: Option<String>,
    pub client_hostname: Option<String>,
    pub server_ip: Option<String>,
    pub server_hostname: Option<String>,
    pub next_hop: Option<String>,
    pub tls: Option<String>,
    /// The authenticated identity (RECEIVE).
    pub auth: Option<String>,
    /// The remote reply (SEND, DEFER, FAIL), the reason, or the DSN kind.
    pub detail: Option<String>,
    /// For DSN: the notification's Message-ID; for RECEIVE of a DSN: the original's.
    pub related: Option<String>,
    /// The SMTP session id, as in the protocol log.
    pub session: Option<String>,
}

#[derive(Debug, Default, Clone)]
pub struct Filter {
    pub message_id: Option<String>,
    pub internal_id: Option<i64>,
    pub sender: Option<String>,
    pub recipient: Option<String>,
    pub events: Vec<String>,
    pub connector: Option<String>,
    pub start_ms: Option<i64>,
    pub end_ms: Option<i64>,
    /// Events with a larger id than this (paging).
    pub after: Option<i64>,
    pub limit: i64,
}

pub async fn open(path: &Path) -> anyhow::Result<SqlitePool> {
    let opts = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(30));
    let pool = SqlitePoolOptions::new()
        .max_connections(4)
        .connect_with(opts)
        .await
        .with_context(|| format!("opening the tracking log {}", path.display()))?;
    sqlx::migrate!("./migrations/tracking")
        .run(&pool)
        .await
        .context("migrating the tracking log")?;
    Ok(pool)
}

/// Inserts events in one transaction.
pub async fn insert(pool: &SqlitePool, events: &[NewEvent]) -> anyhow::Result<()> {
    let mut tx = pool.begin().await?;
    for e in events {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO events (time_ms, event, source, internal_id, message_id, sender, recipients, size, subject, \
             connector, client_ip, client_hostname, server_ip, server_hostname, next_hop, tls, auth, detail, related, session) \
             VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) RETURNING id",
        )
        .bind(e.time_ms)
        .bind(e.event)
        .bind(e.source)
        .bind(e.internal_id)
        .bind(&e.message_id)
        .bind(&e.sender)
        .bind(serde_json::to_string(&e.recipients)?)
        .bind(e.size)
        .bind(&e.subject)
        .bind(&e.connector)
        .bind(&e.client_ip)
        .bind(&e.client_hostname)
        .bind(&e.server_ip)
        .bind(&e.server_hostname)
        .bind(&e.next_hop)
        .bind(&e.tls)
        .bind(&e.auth)
        .bind(&e.detail)
        .bind(&e.related)
        .bind(&e.session)
        .fetch_one(&mut *tx)
        .await?;
        for r in &e.recipients {
            sqlx::query("INSERT INTO event_recipients (event, address) VALUES (?, ?)")
                .bind(id)
                .bind(r)
                .execute(&mut *tx)
                .await?;
        }
    }
    tx.commit().await?;
    Ok(())
}

/// Deletes events older than `before_ms`; returns how many.
pub async fn prune(pool: &SqlitePool, before_ms: i64) -> anyhow::Result<u64> {
    let mut tx = pool.begin().await?;
    sqlx::query(
        "DELETE FROM event_recipients WHERE event IN (SELECT id FROM events WHERE time_ms < ?)",
    )
    .bind(before_ms)
    .execute(&mut *tx)
    .await?;
    let n = sqlx::query("DELETE FROM events WHERE time_ms < ?")
        .bind(before_ms)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    tx.commit().await?;
    Ok(n)
}

pub async fn search(pool: &SqlitePool, f: &Filter) -> anyhow::Result<Vec<TrackingEvent>> {
    let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(
        "SELECT id, time_ms, event, source, internal_id, message_id, sender, recipients, size, subject, connector, \
         client_ip, client_hostname, server_ip, server_hostname, next_hop, tls, auth, detail, related, session \
         FROM events e WHERE 1 = 1",
    );
    if let Some(m) = &f.message_id {
        q.push(" AND e.message_id = ").push_bind(m.clone());
    }
    if let Some(i) = f.internal_id {
        q.push(" AND e.internal_id = ").push_bind(i);
    }
    if let Some(s) = &f.sender {
        q.push(" AND e.sender = ")
            .push_bind(s.clone())
            .push(" COLLATE NOCASE");
    }
    if let Some(r) = &f.recipient {
        q.push(" AND e.id IN (SELECT event FROM event_recipients WHERE address = ")
            .push_bind(r.clone())
            .push(")");
    }
    if !f.events.is_empty() {
        q.push(" AND e.event IN (");
        let mut list = q.separated(", ");
        for ev in &f.events {
            list.push_bind(ev.clone());
        }
        q.push(")");
    }
    if let Some(c) = &f.connector {
        q.push(" AND e.connector = ")
            .push_bind(c.clone())
            .push(" COLLATE NOCASE");
    }
    if let Some(t) = f.start_ms {
        q.push(" AND e.time_ms >= ").push_bind(t);
    }
    if let Some(t) = f.end_ms {
        q.push(" AND e.time_ms < ").push_bind(t);
    }
    if let Some(a) = f.after {
        q.push(" AND e.id > ").push_bind(a);
    }
    q.push(" ORDER BY e.id LIMIT ").push_bind(f.limit);
    Ok(q.build_query_as().fetch_all(pool).await?)
}

/// How many events are stored (for tests and the dashboard).
pub async fn count(pool: &SqlitePool) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar("SELECT COUNT(*) FROM events")
        .fetch_one(pool)
        .await?)
}
