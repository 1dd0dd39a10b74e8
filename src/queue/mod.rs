//! The durable queue. A message is accepted (`250`) only once its envelope
//! and body are committed to SQLite with `synchronous=FULL`, i.e. fsynced.
//!
//! Throughput comes from group commit: sessions hand their messages to one
//! writer task, which commits everything waiting in a single transaction (one
//! fsync for the batch) and then answers every session. Nothing is weakened:
//! no session hears "queued" before its message is on disk.

use sqlx::SqlitePool;
use std::path::Path;
use std::sync::Arc;
use tokio::sync::{Notify, mpsc, oneshot};

use crate::store::queue as db;

pub mod delivery;
pub mod dsn;
pub mod health;
mod mailbox;
pub mod schedule;
pub mod spool;
pub mod status;

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
    /// The Subject header, kept for message tracking (None when subject
    /// logging is off).
    pub subject: Option<String>,
}

pub(crate) struct Job {
    pub(crate) envelope: Envelope,
    pub(crate) body: spool::MessageBody,
    done: oneshot::Sender<anyhow::Result<i64>>,
}

/// The outcome of one outbound transaction, committed with whatever else
/// is waiting (group commit for deliveries as for acceptance).
pub(crate) struct Completion {
    pub(crate) message: i64,
    pub(crate) hop: String,
    pub(crate) remote: String,
    /// (recipient index, status, reply text, next attempt)
    pub(crate) results: Vec<(i64, status::RecipientStatus, String, i64)>,
    done: oneshot::Sender<anyhow::Result<bool>>,
}

/// Routing decisions of the categorizer: (message, recipient index, queue).
pub(crate) struct Routes {
    pub(crate) routes: Vec<(i64, i64, crate::routing::QueueKey)>,
    done: oneshot::Sender<anyhow::Result<()>>,
}

pub(crate) enum Work {
    Enqueue(Box<Job>),
    Complete(Completion),
    Route(Routes),
}

/// A handle to the queue; cheap to clone.
#[derive(Clone)]
pub struct Queue {
    jobs: mpsc::Sender<Work>,
    pool: SqlitePool,
    /// Notified after every commit, so delivery starts at once.
    committed: Arc<Notify>,
    /// Set when the database turns out damaged: acceptance stops.
    pub health: Arc<health::QueueHealth>,
    /// Where messages being received spill past their first 256 KiB.
    spool_dir: Arc<std::path::PathBuf>,
}

/// The most messages one transaction commits.
const MAX_BATCH: usize = 512;

impl Queue {
    pub async fn open(path: &Path) -> anyhow::Result<Queue> {
        let pool = db::open(path).await?;
        let (jobs, rx) = mpsc::channel(4096);
        let committed = Arc::new(Notify::new());
        // The writer is a thread of its own with its own connection: it
        // chooses each batch's durability (see `commit_batch`) and runs its
        // statements as plain calls, with no async round trip per statement
        // between a message's arrival and its 250.
        let spool_dir = path
            .parent()
            .unwrap_or_else(|| Path::new("."))
            .join("spool");
        std::fs::create_dir_all(&spool_dir)?;
        let conn = db::open_writer(path)?;
        let notify = committed.clone();
        let health = Arc::new(health::QueueHealth::default());
        let h = health.clone();
        std::thread::Builder::new()
            .name("ferry-queue-writer".into())
            .spawn(move || writer(conn, rx, notify, h))?;
        Ok(Queue {
            jobs,
            pool,
            committed,
            health,
            spool_dir: Arc::new(spool_dir),
        })
    }

    /// Stores a message durably; returns its internal id once it is on disk.
    /// A spool for a message about to be received.
    pub fn spool(&self) -> spool::Spool {
        spool::Spool::new(&self.spool_dir)
    }

    pub async fn enqueue(
        &self,
        envelope: Envelope,
        body: impl Into<spool::MessageBody>,
    ) -> anyhow::Result<i64> {
        let body = body.into();
        if let Some(reason) = self.health.failure() {
            anyhow::bail!("the queue's storage is failing ({reason})");
        }
        let (done, rx) = oneshot::channel();
        self.jobs
            .send(Work::Enqueue(Box::new(Job {
                envelope,
                body,
                done,
            })))
            .await
            .map_err(|_| anyhow::anyhow!("the queue writer has stopped"))?;
        rx.await
            .map_err(|_| anyhow::anyhow!("the queue writer has stopped"))?
    }

    /// Records a transaction's per-recipient results (and deletes the
    /// message when it is finished without failures) in the next group
    /// commit. Returns whether failed recipients are left to bounce.
    pub(crate) async fn complete(
        &self,
        message: i64,
        hop: &str,
        remote: &str,
        results: Vec<(i64, status::RecipientStatus, String, i64)>,
    ) -> anyhow::Result<bool> {
        let (done, rx) = oneshot::channel();
        self.jobs
            .send(Work::Complete(Completion {
                message,
                hop: hop.to_string(),
                remote: remote.to_string(),
                results,
                done,
            }))
            .await
            .map_err(|_| anyhow::anyhow!("the queue writer has stopped"))?;
        rx.await
            .map_err(|_| anyhow::anyhow!("the queue writer has stopped"))?
    }

    /// Puts recipients in their delivery queues in the next group commit,
    /// so routing shares the fsync of acceptance rather than adding its own.
    pub(crate) async fn route(
        &self,
        routes: Vec<(i64, i64, crate::routing::QueueKey)>,
    ) -> anyhow::Result<()> {
        if routes.is_empty() {
            return Ok(());
        }
        let (done, rx) = oneshot::channel();
        self.jobs
            .send(Work::Route(Routes { routes, done }))
            .await
            .map_err(|_| anyhow::anyhow!("the queue writer has stopped"))?;
        rx.await
            .map_err(|_| anyhow::anyhow!("the queue writer has stopped"))?
    }

    /// Notified after every commit.
    pub fn notifier(&self) -> Arc<Notify> {
        self.committed.clone()
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Messages in the queue (all states).
    pub async fn count(&self) -> anyhow::Result<i64> {
        db::count(&self.pool).await
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// The group-commit loop: take whatever is waiting, commit it at once.
fn writer(
    mut conn: rusqlite::Connection,
    mut rx: mpsc::Receiver<Work>,
    committed: Arc<Notify>,
    health: Arc<health::QueueHealth>,
) {
    let mut durable = true;
    while let Some(first) = rx.blocking_recv() {
        let (mut jobs, mut completions, mut routes) = (vec![], vec![], vec![]);
        let mut take = |w: Work| match w {
            Work::Enqueue(j) => jobs.push(*j),
            Work::Complete(c) => completions.push(c),
            Work::Route(r) => routes.push(r),
        };
        take(first);
        for _ in 1..MAX_BATCH {
            match rx.try_recv() {
                Ok(w) => take(w),
                Err(_) => break,
            }
        }
        match db::commit_batch(&mut conn, &mut durable, &jobs, &completions, &routes) {
            Ok((ids, bounces)) => {
                if !jobs.is_empty() || !routes.is_empty() {
                    committed.notify_one();
                }
                for r in routes {
                    let _ = r.done.send(Ok(()));
                }
                for (job, id) in jobs.into_iter().zip(ids) {
                    let _ = job.done.send(Ok(id));
                }
                for (c, b) in completions.into_iter().zip(bounces) {
                    let _ = c.done.send(Ok(b));
                }
            }
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "queue commit failed");
                health.check(&e, "queue.db");
                for job in jobs {
                    let _ = job
                        .done
                        .send(Err(anyhow::anyhow!("queue commit failed: {e}")));
                }
                for c in completions {
                    let _ = c
                        .done
                        .send(Err(anyhow::anyhow!("queue commit failed: {e}")));
                }
                for r in routes {
                    let _ = r
                        .done
                        .send(Err(anyhow::anyhow!("queue commit failed: {e}")));
                }
            }
        }
    }
}
