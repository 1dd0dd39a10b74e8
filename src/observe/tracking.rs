//! Message tracking: every step of a message's life is an event, recorded
//! without waiting (the SMTP session and the delivery engine never block
//! on the log) and written in batches by one task into `tracking.db`.
//! Events older than the retention (`messageTrackingLogMaxAge`) are
//! deleted as they age out.

use sqlx::SqlitePool;
use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;
use tokio::sync::{oneshot, watch};

use crate::config::Snapshot;
pub use crate::observe::vocabulary::{EventKind, Source};
use crate::shutdown::Lifecycle;
use crate::store::tracking as db;
pub use crate::store::tracking::{Filter, NewEvent as Event, TrackingEvent};

enum Msg {
    Event(Box<Event>),
    Dmarc(Box<crate::store::dmarc::Evaluation>),
    Tls(Box<crate::store::tlsrpt::Session>),
    Flush(oneshot::Sender<()>),
    /// Write what came before, then end.
    Stop,
}

/// A handle to the tracking log; cheap to clone.
#[derive(Clone)]
pub struct Tracker {
    tx: mpsc::Sender<Msg>,
    pool: SqlitePool,
    config: watch::Receiver<Arc<Snapshot>>,
}

pub(crate) fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// The most events one transaction writes.
const BATCH: usize = 1000;

/// How long the writer gathers events before it commits them, unless a
/// reader asks for a flush: nobody waits on an event being written, and
/// one transaction for a few hundred events writes each index page once
/// instead of once for every few events (measured at 4 KB × 20 sessions:
/// about 11 page writes a message when it committed whatever had come).
const GATHER: Duration = Duration::from_millis(20);

impl Tracker {
    /// Opens the log; its writer thread runs under `life` until `close`.
    pub async fn open(
        path: &Path,
        config: watch::Receiver<Arc<Snapshot>>,
        life: &Lifecycle,
    ) -> anyhow::Result<Self> {
        let pool = db::open(path).await?;
        let conn = db::open_writer(path)?;
        let (tx, rx) = mpsc::channel();
        let cfg = config.clone();
        life.spawn_thread("tracking-writer", move || writer(conn, rx, cfg))?;
        Ok(Tracker { tx, pool, config })
    }

    /// Whether events are being recorded (MessageTrackingLogEnabled).
    pub fn enabled(&self) -> bool {
        self.config
            .borrow()
            .transport
            .spec
            .message_tracking_log_enabled
    }

    /// Records an event now, for the log and for the webhooks that want
    /// it. The subject is dropped when subject logging is off.
    pub fn record(&self, mut e: Event) {
        let (enabled, subjects, hooks) = {
            let snap = self.config.borrow();
            let ts = &snap.transport.spec;
            (
                ts.message_tracking_log_enabled,
                ts.message_tracking_log_subject_logging_enabled,
                snap.webhooks.iter().any(|w| w.spec.enabled),
            )
        };
        if !enabled && !hooks {
            return;
        }
        if !subjects {
            e.subject = None;
        }
        if e.time_ms == 0 {
            e.time_ms = now_ms();
        }
        let _ = self.tx.send(Msg::Event(Box::new(e)));
    }

    /// Counts a DMARC evaluation for the aggregate reports (whether or
    /// not tracking is on: the reports are their own switch).
    pub fn record_dmarc(&self, e: crate::store::dmarc::Evaluation) {
        let _ = self.tx.send(Msg::Dmarc(Box::new(e)));
    }

    /// Counts an outbound TLS session for the TLS reports (RFC 8460).
    pub fn record_tls(&self, s: crate::store::tlsrpt::Session) {
        let _ = self.tx.send(Msg::Tls(Box::new(s)));
    }

    /// The log's readers.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Waits until every event recorded so far is written.
    pub async fn flush(&self) {
        let (done, rx) = oneshot::channel();
        if self.tx.send(Msg::Flush(done)).is_ok() {
            let _ = rx.await;
        }
    }

    pub async fn search(&self, f: &Filter) -> anyhow::Result<Vec<TrackingEvent>> {
        self.flush().await;
        db::search(&self.pool, f).await
    }

    pub async fn count(&self) -> anyhow::Result<i64> {
        self.flush().await;
        db::count(&self.pool).await
    }

    /// Writes what is waiting, ends the writer and closes the readers.
    pub async fn close(&self) {
        self.flush().await;
        let _ = self.tx.send(Msg::Stop);
        self.pool.close().await;
    }
}

/// The writer thread: batches what is waiting into one transaction, and
/// about once a second deletes what is past the retention.
fn writer(
    mut conn: rusqlite::Connection,
    rx: mpsc::Receiver<Msg>,
    config: watch::Receiver<Arc<Snapshot>>,
) {
    let mut last_prune = std::time::Instant::now();
    loop {
        if last_prune.elapsed() >= Duration::from_secs(1) {
            last_prune = std::time::Instant::now();
            // The admin audit log keeps its own 90 days, whatever the
            // tracking retention (0 keeps events for ever, not audit entries).
            if let Err(e) = crate::store::audit::prune(&conn, now_ms()) {
                tracing::warn!(error = %format!("{e:#}"), "admin audit log: pruning failed");
            }
            let max_age = config.borrow().transport.spec.message_tracking_log_max_age;
            if !max_age.is_zero() {
                let cutoff = now_ms() - max_age.duration().as_millis() as i64;
                match db::prune(&mut conn, cutoff) {
                    Ok(0) => {}
                    Ok(n) => {
                        tracing::debug!(events = n, "message tracking: expired events deleted")
                    }
                    Err(e) => {
                        tracing::warn!(error = %format!("{e:#}"), "message tracking: pruning failed")
                    }
                }
            }
        }
        let first = match rx.recv_timeout(Duration::from_secs(1)) {
            Ok(m) => m,
            Err(mpsc::RecvTimeoutError::Timeout) => continue,
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        };
        let mut events = vec![];
        let mut dmarc = vec![];
        let mut tls = vec![];
        let mut flushes = vec![];
        let mut stop = false;
        // Asleep, not waiting on the channel: a sender wakes a waiting
        // receiver with a system call, which cost more than it saved.
        if matches!(first, Msg::Event(_) | Msg::Dmarc(_) | Msg::Tls(_)) {
            std::thread::sleep(GATHER);
        }
        let mut next = Some(first);
        while let Some(m) = next {
            match m {
                Msg::Event(e) => events.push(*e),
                Msg::Dmarc(e) => dmarc.push(*e),
                Msg::Tls(s) => tls.push(*s),
                Msg::Flush(f) => flushes.push(f),
                Msg::Stop => {
                    stop = true;
                    break;
                }
            }
            next = if events.len() + dmarc.len() + tls.len() < BATCH {
                rx.try_recv().ok()
            } else {
                None
            };
        }
        // Each event goes into the log (tracking on) and into the outbox of
        // every webhook that wants it, in the same transaction.
        let written: Vec<db::Written<'_>> = {
            let snap = config.borrow();
            let log = snap.transport.spec.message_tracking_log_enabled;
            events
                .iter()
                .map(|e| db::Written {
                    event: e,
                    log,
                    webhooks: snap
                        .webhooks
                        .iter()
                        .filter(|w| {
                            w.spec
                                .wants(e.event, &e.sender, &e.recipients, e.connector.as_deref())
                        })
                        .map(|w| w.id.to_string())
                        .collect(),
                })
                .filter(|w| w.log || !w.webhooks.is_empty())
                .collect()
        };
        if !(written.is_empty() && dmarc.is_empty() && tls.is_empty())
            && let Err(e) = db::insert(&mut conn, &written, &dmarc, &tls)
        {
            tracing::warn!(error = %format!("{e:#}"), events = events.len(), dmarc = dmarc.len(), "message tracking: events could not be written");
        }
        for f in flushes {
            let _ = f.send(());
        }
        if stop {
            return;
        }
    }
}
