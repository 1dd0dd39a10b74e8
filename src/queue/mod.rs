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

use crate::routing::HopKey;
use crate::shutdown::Lifecycle;
use crate::store::queue as db;
pub use db::Change;

pub mod delivery;
pub mod dsn;
pub mod envelope;
pub mod handoff;
pub mod health;
mod mailbox;
pub mod schedule;
pub mod spool;
pub mod status;

pub use envelope::{Envelope, Recipient};

pub(crate) struct Job {
    pub(crate) envelope: Envelope,
    pub(crate) body: spool::MessageBody,
    done: oneshot::Sender<anyhow::Result<i64>>,
}

/// The outcome of one outbound transaction, committed with whatever else
/// is waiting (group commit for deliveries as for acceptance).
pub(crate) struct Completion {
    completed: db::write::Completed,
    done: oneshot::Sender<anyhow::Result<bool>>,
}

/// Routing decisions of the categorizer: (message, recipient index, queue).
pub(crate) struct Routes {
    routes: Vec<(i64, i64, crate::routing::QueueKey)>,
    done: oneshot::Sender<anyhow::Result<()>>,
}

/// Changes to the delivery state, applied together or not at all.
pub(crate) struct Changes {
    changes: Vec<Change>,
    /// Fsynced before the answer (an administrator's action), or committed
    /// like delivery results (see `store::queue::write::commit_batch`).
    durable: bool,
    done: oneshot::Sender<anyhow::Result<u64>>,
}

/// What the writer thread is asked to do. Every change to `queue.db`
/// arrives here: the writer is its one write path.
pub(crate) enum Work {
    Enqueue(Box<Job>),
    Complete(Completion),
    Route(Routes),
    Apply(Changes),
    /// Commit what came before, then end: nothing writes after this.
    Stop,
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
    /// The database's file: large bodies are read from it a chunk at a time.
    db_path: Arc<std::path::PathBuf>,
    /// Committed messages kept for the delivery engine (`handoff.rs`).
    handoff: handoff::Handoff,
}

/// The most messages one transaction commits.
const MAX_BATCH: usize = 512;

impl Queue {
    /// Opens the queue; its writer thread runs under `life` until `close`.
    pub async fn open(path: &Path, life: &Lifecycle) -> anyhow::Result<Queue> {
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
        let handoff = handoff::Handoff::default();
        let kept = handoff.clone();
        let checkpoints = db::open_checkpointer(path)?;
        let (poke, pokes) = std::sync::mpsc::sync_channel(1);
        life.spawn_thread("queue-writer", move || {
            writer(conn, rx, notify, h, kept, poke)
        })?;
        life.spawn_thread("queue-checkpoint", move || checkpointer(checkpoints, pokes))?;
        Ok(Queue {
            jobs,
            pool,
            committed,
            health,
            spool_dir: Arc::new(spool_dir),
            db_path: Arc::new(path.to_path_buf()),
            handoff,
        })
    }

    /// Committed messages held in memory for delivery.
    pub fn handoff(&self) -> &handoff::Handoff {
        &self.handoff
    }

    /// Stores a message durably; returns its internal id once it is on disk.
    /// The queue database's file.
    pub fn db_path(&self) -> &Path {
        &self.db_path
    }

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

    /// Hands work to the writer and waits for its commit.
    async fn submit<T>(
        &self,
        work: impl FnOnce(oneshot::Sender<anyhow::Result<T>>) -> Work,
    ) -> anyhow::Result<T> {
        let (done, rx) = oneshot::channel();
        self.jobs
            .send(work(done))
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
        hop: &HopKey,
        remote: &str,
        results: Vec<(i64, status::RecipientStatus, String, i64)>,
    ) -> anyhow::Result<bool> {
        let completed = db::write::Completed {
            message,
            hop: hop.clone(),
            remote: remote.to_string(),
            results,
        };
        self.submit(|done| Work::Complete(Completion { completed, done }))
            .await
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
        self.submit(|done| Work::Route(Routes { routes, done }))
            .await
    }

    /// Applies delivery results and other engine bookkeeping in the next
    /// group commit, all or nothing. Returns the rows touched.
    pub(crate) async fn record(&self, changes: Vec<Change>) -> anyhow::Result<u64> {
        self.changes(changes, false).await
    }

    /// Applies an administrator's changes, all or nothing, fsynced before
    /// it returns. Returns the rows touched.
    pub async fn apply(&self, changes: Vec<Change>) -> anyhow::Result<u64> {
        self.changes(changes, true).await
    }

    async fn changes(&self, changes: Vec<Change>, durable: bool) -> anyhow::Result<u64> {
        if changes.is_empty() {
            return Ok(0);
        }
        self.submit(|done| {
            Work::Apply(Changes {
                changes,
                durable,
                done,
            })
        })
        .await
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

    /// Ends the writer once what was handed to it is committed, and
    /// closes the readers. Call when nothing produces any more; the
    /// lifecycle joins the writer thread.
    pub async fn close(&self) {
        let _ = self.jobs.send(Work::Stop).await;
        self.pool.close().await;
    }
}

/// The group-commit loop: take whatever is waiting, commit it at once.
fn writer(
    mut conn: rusqlite::Connection,
    mut rx: mpsc::Receiver<Work>,
    committed: Arc<Notify>,
    health: Arc<health::QueueHealth>,
    handoff: handoff::Handoff,
    checkpoint: std::sync::mpsc::SyncSender<()>,
) {
    let mut synchronous_full = true;
    let mut stopping = false;
    while !stopping && let Some(first) = rx.blocking_recv() {
        let mut work = vec![first];
        while work.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(w) => work.push(w),
                Err(_) => break,
            }
        }
        if let Some(stop) = work.iter().position(|w| matches!(w, Work::Stop)) {
            // What arrived after Stop is dropped unanswered: its sender
            // hears that the writer has stopped.
            work.truncate(stop);
            stopping = true;
            if work.is_empty() {
                break;
            }
        }
        // New messages are committed first, on their own, and answered at
        // once: their 250 waits only for their own rows and fsync, not for
        // the delivery results and changes that came in with them (issue
        // 22). The rest follows in a second transaction, in the order a
        // single one would have applied it (messages first).
        let (enqueues, rest): (Vec<Work>, Vec<Work>) = work
            .into_iter()
            .partition(|w| matches!(w, Work::Enqueue(_)));
        for part in [enqueues, rest] {
            if !part.is_empty() {
                commit_work(
                    &mut conn,
                    &mut synchronous_full,
                    part,
                    &committed,
                    &health,
                    &handoff,
                );
            }
        }
        // Pokes coalesce: one waiting is enough.
        let _ = checkpoint.try_send(());
    }
}

/// The least time between two of the checkpointer's checkpoints: each
/// fsyncs the database file, so they are spaced, not run after every
/// commit.
const CHECKPOINT_SPACING: std::time::Duration = std::time::Duration::from_millis(100);

/// Copies committed WAL frames into the database file, on its own thread
/// and connection, after the writer's commits (at most one checkpoint per
/// `CHECKPOINT_SPACING`). Ends when the writer does.
fn checkpointer(conn: rusqlite::Connection, pokes: std::sync::mpsc::Receiver<()>) {
    while pokes.recv().is_ok() {
        if let Err(e) = db::checkpoint(&conn) {
            tracing::warn!(error = %e, "queue checkpoint failed; the writer checkpoints instead");
        }
        std::thread::sleep(CHECKPOINT_SPACING);
    }
}

/// Commits one group of work in one transaction and answers each item.
fn commit_work(
    conn: &mut rusqlite::Connection,
    synchronous_full: &mut bool,
    work: Vec<Work>,
    committed: &Notify,
    health: &health::QueueHealth,
    handoff: &handoff::Handoff,
) {
    let mut batch = db::write::Batch::default();
    let mut want_full = false;
    for w in &work {
        match w {
            Work::Enqueue(j) => {
                batch.messages.push((&j.envelope, &j.body));
                want_full = true;
            }
            Work::Complete(c) => batch.completed.push(&c.completed),
            Work::Route(r) => batch.routes.push(&r.routes),
            Work::Apply(c) => {
                batch.changes.push(&c.changes);
                want_full |= c.durable;
            }
            Work::Stop => {}
        }
    }
    let wakes = !batch.messages.is_empty() || !batch.routes.is_empty();
    forget_changed_recipients(handoff, &work);
    let now_ms = schedule::now_ms();
    let result = db::write::commit_batch(conn, synchronous_full, want_full, now_ms, &batch);
    drop(batch);
    match result {
        Ok(done) => {
            handoff.remove(&done.deleted);
            let (mut ids, mut bounces, mut changes) = (
                done.ids.into_iter(),
                done.bounces.into_iter(),
                done.changes.into_iter(),
            );
            for w in work {
                match w {
                    Work::Enqueue(j) => {
                        let id = ids.next();
                        let Job {
                            envelope,
                            body,
                            done,
                        } = *j;
                        if let Some(id) = id {
                            hand_off(handoff, id, now_ms, envelope, body);
                        }
                        let _ = done.send(id.ok_or_else(lost));
                    }
                    Work::Complete(c) => {
                        let _ = c.done.send(bounces.next().ok_or_else(lost));
                    }
                    Work::Route(r) => {
                        let _ = r.done.send(Ok(()));
                    }
                    Work::Apply(c) => {
                        let _ = c.done.send(changes.next().unwrap_or_else(|| Err(lost())));
                    }
                    Work::Stop => {}
                }
            }
            // After the hand-off, so delivery finds what was committed.
            if wakes {
                committed.notify_one();
            }
        }
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "queue commit failed");
            health.check(&e, "queue.db");
            let failed = || anyhow::anyhow!("queue commit failed: {e}");
            for w in work {
                match w {
                    Work::Enqueue(j) => {
                        let _ = j.done.send(Err(failed()));
                    }
                    Work::Complete(c) => {
                        let _ = c.done.send(Err(failed()));
                    }
                    Work::Route(r) => {
                        let _ = r.done.send(Err(failed()));
                    }
                    Work::Apply(c) => {
                        let _ = c.done.send(Err(failed()));
                    }
                    Work::Stop => {}
                }
            }
        }
    }
}

/// Before a commit: the handed-off recipients of every message whose
/// recipients it changes are forgotten (of every message, for a change to
/// a whole queue), so delivery reads what the database holds from then on.
/// Before, not after: a delivery that took a copy before this commit read
/// what it would have read from the database then.
fn forget_changed_recipients(handoff: &handoff::Handoff, work: &[Work]) {
    let mut messages = vec![];
    for w in work {
        match w {
            Work::Enqueue(_) | Work::Stop => {}
            Work::Complete(c) => messages.push(c.completed.message),
            Work::Route(r) => messages.extend(r.routes.iter().map(|(m, _, _)| *m)),
            Work::Apply(c) => {
                for change in &c.changes {
                    match change.recipients_changed() {
                        db::write::Changed::None => {}
                        db::write::Changed::Message(m) => messages.push(m),
                        db::write::Changed::Queue => {
                            handoff.forget_recipients(None);
                            return;
                        }
                    }
                }
            }
        }
    }
    if !messages.is_empty() {
        handoff.forget_recipients(Some(&messages));
    }
}

/// Keeps a committed message for the delivery engine: its row as written
/// (`insert_messages`), its recipients as written, and its body, moved, not
/// copied. A body that spilled to a file is not kept.
fn hand_off(
    handoff: &handoff::Handoff,
    id: i64,
    now_ms: i64,
    envelope: Envelope,
    body: spool::MessageBody,
) {
    if body.rest.is_some() || body.head.len() > handoff::MAX_BODY {
        return;
    }
    let e = envelope;
    let recipients = e
        .recipients
        .iter()
        .enumerate()
        .map(|(idx, r)| db::StoredRecipient {
            message: id,
            idx: idx as i64,
            address: r.address.clone(),
            status: status::RecipientStatus::Ready.to_string(),
            next_hop: r.route.as_ref().map(|k| k.key.to_string()),
            attempts: 0,
            next_attempt_ms: 0,
            last_error: r.route.as_ref().and_then(|k| k.reason.clone()),
            remote_host: None,
            orcpt: r.orcpt.clone(),
            notify: r.notify as i64,
        })
        .collect();
    handoff.put(
        handoff::Committed {
            message: db::StoredMessage {
                id,
                message_id: e.message_id,
                sender: e.sender,
                received_ms: e.arrived_ms.unwrap_or(now_ms),
                size: body.head.len() as i64,
                receive_connector: e.receive_connector,
                client_ip: e.client_ip,
                suspended: false,
                delay_notified: false,
                subject: e.subject,
                env_id: e.env_id,
                ret: e.ret,
                require_tls: e.require_tls,
            },
            body: body.head,
        },
        recipients,
    );
}

/// A commit answered fewer items than it was given (a bug, never expected).
fn lost() -> anyhow::Error {
    anyhow::anyhow!("the queue writer lost track of a batch item")
}
