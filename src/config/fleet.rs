//! A fleet sharing one configuration (`--config-store postgres://…`).
//!
//! Every server keeps its own SQLite copy and runs on it: that copy is the
//! last good snapshot, so a server whose PostgreSQL is away keeps
//! accepting and delivering mail. PostgreSQL holds the journal they all
//! follow (`store::fleet`):
//!
//! - a change made through any server's API is written to PostgreSQL
//!   first, in the same step as the local transaction (`ConfigService::
//!   finish`), as the next revision, if the fleet is still at the revision
//!   this server has; then it commits locally. PostgreSQL unreachable:
//!   `503`, nothing changes. Another server wrote first: `409`, this server
//!   catches up and the change can be sent again;
//! - `NOTIFY ferry_config` tells every server, which reads the rows changed
//!   since its revision, writes them into its copy and publishes the new
//!   snapshot through the same reconcile path as a local change (a binding
//!   taken here is logged, not refused: the fleet has it already);
//! - a server that reconnects (or checks, every few seconds) catches up the
//!   same way; one joining a fleet takes all of the fleet's rows, and the
//!   first server of an empty fleet seeds it with its own.
//!
//! What is shared and what stays with each server: `store::fleet`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::Notify;

use super::{ConfigService, ServiceError};
use crate::shutdown::Shutdown;
use crate::store::Tx;
use crate::store::fleet::{self, FleetRow, Journal, PushError, ServerEntry};

/// How often a server checks the fleet's revision besides NOTIFY, and
/// sends its heartbeat.
const CHECK_EVERY: Duration = Duration::from_secs(5);

/// (table, key) → version: the fleet's rows as of this server's revision.
type Mirror = HashMap<(String, String), i64>;

pub struct Fleet {
    journal: Journal,
    server: String,
    /// The revision this server's copy is at.
    revision: AtomicI64,
    mirror: Mutex<Mirror>,
    connected: AtomicBool,
    wake: Notify,
}

impl Fleet {
    /// Joins the fleet of `url` with this server's copy as it is.
    pub async fn open(url: &str, config: &ConfigService) -> anyhow::Result<Arc<Fleet>> {
        let journal = Journal::new(url)?;
        let mut conn = config.store().begin().await?;
        let revision = fleet::local_revision(&mut conn).await?;
        let rows = fleet::local_rows(&mut conn).await?;
        conn.commit().await?;
        Ok(Arc::new(Fleet {
            journal,
            server: config.snapshot().ctx.server_name.clone(),
            revision: AtomicI64::new(revision),
            mirror: Mutex::new(mirror_of(&rows)),
            connected: AtomicBool::new(false),
            wake: Notify::new(),
        }))
    }

    pub fn journal(&self) -> &Journal {
        &self.journal
    }

    pub fn revision(&self) -> i64 {
        self.revision.load(Ordering::SeqCst)
    }

    /// Whether the last word with PostgreSQL went through.
    pub fn connected(&self) -> bool {
        self.connected.load(Ordering::SeqCst)
    }

    /// Writes what the open transaction changed in the shared tables to
    /// the fleet as its next revision (nothing if it changed none of them),
    /// and the new revision into the transaction.
    pub async fn push(&self, tx: &mut Tx) -> Result<(), ServiceError> {
        let rows = fleet::local_rows(tx).await?;
        let changes = {
            let mirror = self.mirror.lock().expect("not poisoned");
            diff(&mirror, &rows)
        };
        if changes.is_empty() {
            return Ok(());
        }
        let expected = self.revision();
        match self.journal.push(expected, &changes, &self.server).await {
            Ok(next) => {
                self.connected.store(true, Ordering::SeqCst);
                fleet::set_local_revision(tx, next).await?;
                self.revision.store(next, Ordering::SeqCst);
                *self.mirror.lock().expect("not poisoned") = mirror_of(&rows);
                Ok(())
            }
            Err(PushError::Stale(now)) => {
                self.wake.notify_one();
                Err(ServiceError::Conflict {
                    field: None,
                    message: format!(
                        "the configuration was changed on another server meanwhile (revision \
                         {now}, this server had {expected}); this server is catching up: read \
                         and send the change again"
                    ),
                })
            }
            Err(PushError::Unreachable(e)) => {
                self.connected.store(false, Ordering::SeqCst);
                self.wake.notify_one();
                Err(ServiceError::Unavailable(format!(
                    "the fleet's shared configuration (PostgreSQL) is unreachable: {e}. \
                     Configuration changes are refused until it is back; mail is still \
                     accepted and delivered with the configuration in force"
                )))
            }
        }
    }

    /// Brings this server's copy to the fleet's revision (or seeds an
    /// empty fleet).
    async fn catch_up(&self, config: &ConfigService) -> anyhow::Result<()> {
        let head = self.journal.head().await?;
        let local = self.revision();
        if head == local && head > 0 {
            return Ok(());
        }
        if head == 0 {
            // An empty (or new) fleet: this server's rows are its first.
            self.mirror.lock().expect("not poisoned").clear();
            self.revision.store(0, Ordering::SeqCst);
            tracing::info!(server = %self.server, "seeding the fleet's shared configuration");
            config
                .seed_fleet()
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            return Ok(());
        }
        // Behind (or ahead of a fleet that was rebuilt): take its rows.
        let from = if local > head { 0 } else { local };
        let (head, rows) = self.journal.since(from).await?;
        let full = from == 0;
        let applied = config
            .apply_fleet(&rows, full, head)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        if applied.is_some() {
            tracing::info!(server = %self.server, from, to = head, rows = rows.len(), "configuration from the fleet applied");
        }
        Ok(())
    }

    /// Records rows from the fleet as written into this server's copy (the
    /// configuration service calls it with its writer lock held).
    pub(super) fn applied(&self, rows: &[FleetRow], full: bool, revision: i64) {
        let mut mirror = self.mirror.lock().expect("not poisoned");
        if full {
            mirror.clear();
        }
        for r in rows {
            let k = (r.tbl.clone(), r.key.clone());
            if r.deleted {
                mirror.remove(&k);
            } else {
                mirror.insert(k, r.version);
            }
        }
        self.revision.store(revision, Ordering::SeqCst);
    }

    /// Follows the fleet until Ferry stops: LISTEN, catch up on every
    /// NOTIFY and every few seconds, heartbeat; reconnects when
    /// PostgreSQL comes back.
    pub async fn run(self: Arc<Self>, config: Weak<ConfigService>, mut shutdown: Shutdown) {
        let mut warned = false;
        loop {
            let listener = tokio::select! {
                _ = shutdown.recv() => return,
                l = async {
                    self.journal.migrate().await?;
                    self.journal.listen().await
                } => l,
            };
            let mut listener = match listener {
                Ok(l) => l,
                Err(e) => {
                    self.connected.store(false, Ordering::SeqCst);
                    if !warned {
                        tracing::warn!(error = %format!("{e:#}"), "the fleet's PostgreSQL is unreachable: running on this server's copy of the configuration, changes refused");
                        warned = true;
                    }
                    tokio::select! {
                        _ = shutdown.recv() => return,
                        _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    }
                }
            };
            warned = false;
            self.connected.store(true, Ordering::SeqCst);
            tracing::info!(server = %self.server, "following the fleet's configuration");
            loop {
                let Some(config) = config.upgrade() else {
                    return;
                };
                if let Err(e) = self.catch_up(&config).await {
                    tracing::warn!(error = %format!("{e:#}"), "catching up with the fleet failed");
                }
                drop(config);
                tokio::select! {
                    _ = shutdown.recv() => return,
                    n = listener.try_recv() => match n {
                        Ok(Some(_)) => {}
                        // The connection is gone: reconnect.
                        Ok(None) | Err(_) => break,
                    },
                    _ = self.wake.notified() => {}
                    _ = tokio::time::sleep(CHECK_EVERY) => {
                        if !self.journal.ping().await {
                            break;
                        }
                    }
                }
            }
            self.connected.store(false, Ordering::SeqCst);
        }
    }

    /// The fleet's servers, as their heartbeats left them.
    pub async fn servers(&self) -> anyhow::Result<Vec<ServerEntry>> {
        self.journal.servers().await
    }

    /// The first word with the fleet, before this server serves: the
    /// schema, then its configuration (a joining server takes it now).
    pub async fn first_sync(&self, config: &ConfigService) -> anyhow::Result<()> {
        self.journal.migrate().await?;
        self.connected.store(true, Ordering::SeqCst);
        self.catch_up(config).await
    }
}

fn mirror_of(rows: &[FleetRow]) -> Mirror {
    rows.iter()
        .map(|r| ((r.tbl.clone(), r.key.clone()), r.version))
        .collect()
}

/// The rows that differ from the fleet's (new or at another version), and
/// tombstones for the fleet's rows this copy no longer has.
fn diff(mirror: &Mirror, rows: &[FleetRow]) -> Vec<FleetRow> {
    let mut out: Vec<FleetRow> = rows
        .iter()
        .filter(|r| mirror.get(&(r.tbl.clone(), r.key.clone())) != Some(&r.version))
        .cloned()
        .collect();
    let present: std::collections::HashSet<(&str, &str)> = rows
        .iter()
        .map(|r| (r.tbl.as_str(), r.key.as_str()))
        .collect();
    let now = OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    for ((tbl, key), version) in mirror {
        if !present.contains(&(tbl.as_str(), key.as_str())) {
            out.push(FleetRow {
                tbl: tbl.clone(),
                key: key.clone(),
                name: None,
                version: *version,
                spec: "null".into(),
                secret: None,
                created_at: now.clone(),
                updated_at: now.clone(),
                deleted: true,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(tbl: &str, key: &str, version: i64) -> FleetRow {
        FleetRow {
            tbl: tbl.into(),
            key: key.into(),
            name: Some(key.into()),
            version,
            spec: "{}".into(),
            secret: None,
            created_at: String::new(),
            updated_at: String::new(),
            deleted: false,
        }
    }

    #[test]
    fn the_diff_holds_new_changed_and_deleted_rows_only() {
        let before = vec![row("webhooks", "a", 1), row("webhooks", "b", 2)];
        let mirror = mirror_of(&before);
        let after = vec![row("webhooks", "a", 1), row("webhooks", "c", 1)];
        let mut d: Vec<(String, bool)> = diff(&mirror, &after)
            .into_iter()
            .map(|r| (r.key, r.deleted))
            .collect();
        d.sort();
        assert_eq!(d, vec![("b".into(), true), ("c".into(), false)]);
        assert!(diff(&mirror_of(&after), &after).is_empty());
        let bumped = vec![row("webhooks", "a", 2), row("webhooks", "c", 1)];
        assert_eq!(diff(&mirror_of(&after), &bumped).len(), 1);
    }
}
