//! The queue's tables (a database of their own, `queue.db`, so queue
//! traffic never waits on configuration writes). Three files, by who
//! calls them:
//! - `write.rs`: every statement that changes `queue.db`. Only the queue's
//!   writer thread runs them (`queue/mod.rs`), on its own connection, in
//!   its group commits: there is one write path into the queue.
//! - `state.rs`: the delivery engine's reads (what is due, unrouted, old).
//! - `view.rs`: the queue viewer's reads (the API, the metrics).
//!
//! Times are Unix milliseconds (UTC) in every column, named `*_ms`
//! (migration `20261130000001_one_time_unit.sql`).

use anyhow::Context;
use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

mod state;
mod view;
pub(crate) mod write;

pub use state::*;
pub use view::*;
pub use write::Change;

/// Opens (creating if needed) and migrates the queue database, and gives
/// the readers' pool. It never writes after the migration: every change
/// goes through the writer (`open_writer`).
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
    // The checkpoints are the checkpointer's (`open_checkpointer`), off the
    // path to a 250; the writer checkpoints itself only when the WAL has
    // grown this far, which bounds the WAL if the checkpointer falls behind
    // (its checkpoint then copies only the frames not yet copied).
    conn.pragma_update(None, "wal_autocheckpoint", WRITER_CHECKPOINT_PAGES)?;
    // Every statement the writer runs stays prepared: more than rusqlite's
    // default of 16, which made the busiest ones be parsed again.
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

#[cfg(test)]
mod tests {
    /// The time-unit migration turns every old time column into Unix
    /// milliseconds, keeping the precision the old columns had.
    #[test]
    fn old_time_columns_become_milliseconds() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        for sql in [
            include_str!("../../../migrations/queue/20261127000001_queue.sql"),
            include_str!("../../../migrations/queue/20261127000002_delivery.sql"),
            include_str!("../../../migrations/queue/20261127000003_ids_subject.sql"),
        ] {
            conn.execute_batch(sql).unwrap();
        }
        conn.execute_batch(
            "INSERT INTO messages (id, message_id, sender, received_at, size, receive_connector, client_ip, received_unix)
               VALUES (1, '<a@b>', '', '2026-11-30T01:02:03.123456789Z', 1, 'c', '127.0.0.1', 1796000523),
                      (2, '<c@d>', '', 'not a time', 1, 'c', '127.0.0.1', 1796000000);
             INSERT INTO recipients (message, idx, address, next_attempt, updated_unix) VALUES (1, 0, 'x@y', 1796000600123, 1796000524);
             INSERT INTO queues (next_hop, delivery_type, display, next_retry, last_attempt, last_success)
               VALUES ('Unreachable', 'Unreachable', 'Unreachable', 1796000700456, 1796000525, NULL);
             INSERT INTO attempts (message, at_unix, next_hop, outcome) VALUES (1, 1796000526, 'Unreachable', 'DEFER');",
        )
        .unwrap();
        conn.execute_batch(include_str!(
            "../../../migrations/queue/20261130000001_one_time_unit.sql"
        ))
        .unwrap();
        let q = |sql: &str| -> Option<i64> { conn.query_row(sql, [], |r| r.get(0)).unwrap() };
        let received = time::macros::datetime!(2026-11-30 01:02:03.123 UTC);
        let received_ms = (received.unix_timestamp_nanos() / 1_000_000) as i64;
        assert_eq!(
            q("SELECT received_ms FROM messages WHERE id = 1"),
            Some(received_ms)
        );
        // Unreadable text falls back to the seconds column.
        assert_eq!(
            q("SELECT received_ms FROM messages WHERE id = 2"),
            Some(1_796_000_000_000)
        );
        assert_eq!(
            q("SELECT next_attempt_ms FROM recipients"),
            Some(1_796_000_600_123)
        );
        assert_eq!(
            q("SELECT updated_ms FROM recipients"),
            Some(1_796_000_524_000)
        );
        assert_eq!(
            q("SELECT next_retry_ms FROM queues"),
            Some(1_796_000_700_456)
        );
        assert_eq!(
            q("SELECT last_attempt_ms FROM queues"),
            Some(1_796_000_525_000)
        );
        assert_eq!(q("SELECT last_success_ms FROM queues"), None);
        assert_eq!(q("SELECT at_ms FROM attempts"), Some(1_796_000_526_000));
        // The dead column is gone.
        assert!(conn.prepare("SELECT status FROM messages").is_err());
    }
}

/// WAL pages after which the writer checkpoints on its own (SQLite's
/// default is 1,000: 4 MB). 32 MB: at the relay rates measured in
/// `bench/RESULTS.md` about a second of messages.
pub(crate) const WRITER_CHECKPOINT_PAGES: u32 = 8_000;

/// Opens the checkpointer's own connection: it copies committed WAL
/// frames into the database file beside the writer, so a commit (and the
/// 250 waiting on it) does not also carry a checkpoint's copy and fsync.
pub(crate) fn open_checkpointer(path: &Path) -> anyhow::Result<rusqlite::Connection> {
    let conn = rusqlite::Connection::open(path)
        .with_context(|| format!("opening the queue checkpointer on {}", path.display()))?;
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    Ok(conn)
}

/// A checkpoint as SQLite reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Checkpoint {
    /// Another connection held a lock the checkpoint needed.
    pub busy: bool,
    /// Frames in the WAL, and how many of them are now in the database.
    pub frames: i64,
    pub copied: i64,
}

/// A PASSIVE checkpoint: copies what it can without blocking the writer
/// or any reader.
pub(crate) fn checkpoint(conn: &rusqlite::Connection) -> rusqlite::Result<Checkpoint> {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
        Ok(Checkpoint {
            busy: r.get::<_, i64>(0)? != 0,
            frames: r.get(1)?,
            copied: r.get(2)?,
        })
    })
}
