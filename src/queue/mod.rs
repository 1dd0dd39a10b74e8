//! The durable queue. A message is accepted (`250`) only once its envelope
//! and body are committed to SQLite with `synchronous=FULL`, i.e. fsynced.
//!
//! Throughput comes from group commit: sessions hand their messages to one
//! writer task, which commits everything waiting in a single transaction (one
//! fsync for the batch) and then answers every session. Nothing is weakened:
//! no session hears "queued" before its message is on disk.

use anyhow::Context;
use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::sync::{mpsc, oneshot};

/// One recipient of an accepted message.
#[derive(Debug, Clone)]
pub struct Recipient {
    pub address: String,
    /// RFC 3461 ORCPT, as given.
    pub orcpt: Option<String>,
    /// RFC 3461 NOTIFY flags (smtp-proto's RCPT_NOTIFY_* bits).
    pub notify: u64,
}

/// Everything known about a message when it is accepted.
#[derive(Debug, Clone)]
pub struct Envelope {
    pub message_id: String,
    /// Empty for the null reverse-path `<>`.
    pub sender: String,
    pub recipients: Vec<Recipient>,
    pub receive_connector: String,
    pub client_ip: String,
    pub client_helo: Option<String>,
    pub auth_user: Option<String>,
    pub env_id: Option<String>,
    pub ret: Option<String>,
    pub body_type: Option<String>,
    pub smtputf8: bool,
}

struct Job {
    envelope: Envelope,
    body: Vec<u8>,
    done: oneshot::Sender<anyhow::Result<i64>>,
}

/// A handle to the queue; cheap to clone.
#[derive(Clone)]
pub struct Queue {
    jobs: mpsc::Sender<Job>,
    pool: SqlitePool,
}

/// The most messages one transaction commits.
const MAX_BATCH: usize = 512;

impl Queue {
    pub async fn open(path: &Path) -> anyhow::Result<Queue> {
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
        let (jobs, rx) = mpsc::channel(4096);
        tokio::spawn(writer(pool.clone(), rx));
        Ok(Queue { jobs, pool })
    }

    /// Stores a message durably; returns its internal id once it is on disk.
    pub async fn enqueue(&self, envelope: Envelope, body: Vec<u8>) -> anyhow::Result<i64> {
        let (done, rx) = oneshot::channel();
        self.jobs
            .send(Job {
                envelope,
                body,
                done,
            })
            .await
            .map_err(|_| anyhow::anyhow!("the queue writer has stopped"))?;
        rx.await
            .map_err(|_| anyhow::anyhow!("the queue writer has stopped"))?
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Messages in the queue (all states).
    pub async fn count(&self) -> anyhow::Result<i64> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM messages")
            .fetch_one(&self.pool)
            .await?)
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// The group-commit loop: take whatever is waiting, commit it at once.
async fn writer(pool: SqlitePool, mut rx: mpsc::Receiver<Job>) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(j) => batch.push(j),
                Err(_) => break,
            }
        }
        match commit(&pool, &batch).await {
            Ok(ids) => {
                for (job, id) in batch.into_iter().zip(ids) {
                    let _ = job.done.send(Ok(id));
                }
            }
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), messages = batch.len(), "queue commit failed");
                for job in batch {
                    let _ = job
                        .done
                        .send(Err(anyhow::anyhow!("queue commit failed: {e}")));
                }
            }
        }
    }
}

async fn commit(pool: &SqlitePool, batch: &[Job]) -> anyhow::Result<Vec<i64>> {
    let now = OffsetDateTime::now_utc().format(&Rfc3339)?;
    let mut tx = pool.begin().await?;
    let mut ids = Vec::with_capacity(batch.len());
    for job in batch {
        let e = &job.envelope;
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
