//! The queue's tables (a database of their own, `queue.db`, so queue
//! traffic never waits on configuration writes). The group-commit logic
//! lives in `queue/`; this file is only the SQL.

use anyhow::Context;
use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::queue::{Envelope, Job};

/// Opens (creating if needed) the queue database with `synchronous=FULL`:
/// a committed transaction is fsynced.
pub async fn open(path: &Path) -> anyhow::Result<SqlitePool> {
    let opts = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(30));
    let pool = SqlitePoolOptions::new()
        .max_connections(4)
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

/// Inserts a batch of messages in one transaction (one fsync); returns
/// their internal ids in order.
pub(crate) async fn insert_batch(pool: &SqlitePool, batch: &[Job]) -> anyhow::Result<Vec<i64>> {
    let now = OffsetDateTime::now_utc().format(&Rfc3339)?;
    let mut tx = pool.begin().await?;
    let mut ids = Vec::with_capacity(batch.len());
    for job in batch {
        let e: &Envelope = &job.envelope;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO messages (message_id, sender, received_at, size, receive_connector, client_ip, client_helo, \
             auth_user, env_id, ret, body_type, smtputf8) VALUES (?,?,?,?,?,?,?,?,?,?,?,?) RETURNING id",
        )
        .bind(&e.message_id)
        .bind(&e.sender)
        .bind(&now)
        .bind(job.body.len() as i64)
        .bind(&e.receive_connector)
        .bind(&e.client_ip)
        .bind(&e.client_helo)
        .bind(&e.auth_user)
        .bind(&e.env_id)
        .bind(&e.ret)
        .bind(&e.body_type)
        .bind(e.smtputf8)
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query("INSERT INTO bodies (message, body) VALUES (?, ?)")
            .bind(id)
            .bind(&job.body)
            .execute(&mut *tx)
            .await?;
        for (i, r) in e.recipients.iter().enumerate() {
            sqlx::query(
                "INSERT INTO recipients (message, idx, address, orcpt, notify) VALUES (?,?,?,?,?)",
            )
            .bind(id)
            .bind(i as i64)
            .bind(&r.address)
            .bind(&r.orcpt)
            .bind(r.notify as i64)
            .execute(&mut *tx)
            .await?;
        }
        ids.push(id);
    }
    tx.commit().await?;
    Ok(ids)
}
