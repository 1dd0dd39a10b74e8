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

use crate::observe::vocabulary::{EventKind, Source};

/// One event as recorded.
#[derive(Debug, Clone, Default)]
pub struct NewEvent {
    pub time_ms: i64,
    pub event: EventKind,
    pub source: Source,
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
    super::check_integrity(path, super::TRACKING_RECOVERY)?;
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

/// The tracking writer's own connection (rusqlite, on the writer's
/// thread: plain calls, no async round trip per row). The database must
/// exist and be migrated (`open`).
pub fn open_writer(path: &Path) -> anyhow::Result<rusqlite::Connection> {
    let conn = rusqlite::Connection::open(path)
        .with_context(|| format!("opening the tracking writer on {}", path.display()))?;
    conn.busy_timeout(Duration::from_secs(30))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    Ok(conn)
}

/// Inserts events, and counts DMARC evaluations, in one transaction.
/// An event as written: whether it goes into the log (tracking on), and
/// the webhooks it is sent to.
pub struct Written<'a> {
    pub event: &'a NewEvent,
    pub log: bool,
    pub webhooks: Vec<String>,
}

/// The JSON a webhook receives for a logged event, read back from the log.
pub fn stored_event_json(t: &TrackingEvent) -> serde_json::Value {
    let mut v = serde_json::to_value(t).unwrap_or_default();
    let time = time::OffsetDateTime::from_unix_timestamp_nanos(t.time_ms as i128 * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        });
    v["time"] = serde_json::json!(time);
    v
}

/// Logged events by id, for the webhooks' dispatcher.
pub async fn events_by_id(pool: &SqlitePool, ids: &[i64]) -> anyhow::Result<Vec<TrackingEvent>> {
    Ok(sqlx::query_as(
        "SELECT id, time_ms, event, source, internal_id, message_id, sender, recipients, size, subject, connector, \
         client_ip, client_hostname, server_ip, server_hostname, next_hop, tls, auth, detail, related, session \
         FROM events WHERE id IN (SELECT value FROM json_each(?))",
    )
    .bind(serde_json::to_string(ids)?)
    .fetch_all(pool)
    .await?)
}

/// The JSON a webhook receives for an event: the tracking event as the
/// API shows it (`id` 0 when tracking is off).
pub fn event_json(e: &NewEvent, id: i64) -> serde_json::Value {
    let time = time::OffsetDateTime::from_unix_timestamp_nanos(e.time_ms as i128 * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        });
    serde_json::json!({
        "id": id, "timeMs": e.time_ms, "time": time, "event": e.event.as_str(), "source": e.source.as_str(),
        "internalId": e.internal_id, "messageId": e.message_id, "sender": e.sender,
        "recipients": e.recipients, "size": e.size, "subject": e.subject, "connector": e.connector,
        "clientIp": e.client_ip, "clientHostname": e.client_hostname, "serverIp": e.server_ip,
        "serverHostname": e.server_hostname, "nextHop": e.next_hop, "tls": e.tls, "auth": e.auth,
        "detail": e.detail, "related": e.related, "session": e.session,
    })
}

pub fn insert(
    conn: &mut rusqlite::Connection,
    events: &[Written<'_>],
    dmarc: &[super::dmarc::Evaluation],
    tls: &[super::tlsrpt::Session],
) -> anyhow::Result<()> {
    use rusqlite::params;
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    {
        let mut event = tx.prepare_cached(
            "INSERT INTO events (time_ms, event, source, internal_id, message_id, sender, recipients, size, subject, \
             connector, client_ip, client_hostname, server_ip, server_hostname, next_hop, tls, auth, detail, related, session) \
             VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16,?17,?18,?19,?20)",
        )?;
        let mut rcpt =
            // One row per distinct address (the key is case-insensitive).
            tx.prepare_cached("INSERT OR IGNORE INTO event_recipients (event, address) VALUES (?1, ?2)")?;
        let mut outbox = tx.prepare_cached(
            "INSERT INTO webhook_outbox (webhook, event, payload, created_ms, next_attempt_ms) \
             VALUES (?1, ?2, ?3, ?4, ?4)",
        )?;
        for w in events {
            let e = w.event;
            let mut id = 0;
            if w.log {
                event.execute(params![
                    e.time_ms,
                    e.event,
                    e.source,
                    e.internal_id,
                    e.message_id,
                    e.sender,
                    serde_json::to_string(&e.recipients)?,
                    e.size,
                    e.subject,
                    e.connector,
                    e.client_ip,
                    e.client_hostname,
                    e.server_ip,
                    e.server_hostname,
                    e.next_hop,
                    e.tls,
                    e.auth,
                    e.detail,
                    e.related,
                    e.session,
                ])?;
                id = tx.last_insert_rowid();
                for r in &e.recipients {
                    rcpt.execute(params![id, r])?;
                }
            }
            if !w.webhooks.is_empty() {
                // A logged event is read back when it is sent; only an
                // unlogged one carries its JSON here.
                let payload = (!w.log).then(|| event_json(e, id).to_string());
                let now =
                    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64;
                for hook in &w.webhooks {
                    outbox.execute(params![hook, id, payload, now])?;
                }
            }
        }
    }
    super::dmarc::add(&tx, dmarc)?;
    super::tlsrpt::add(&tx, tls)?;
    tx.commit()?;
    Ok(())
}

const PRUNE_RECIPIENTS: &str = "DELETE FROM event_recipients WHERE (address, event) IN \
     (SELECT r.value, e.id FROM events e, json_each(e.recipients) r WHERE e.time_ms < ?1)";

/// Deletes events older than `before_ms`; returns how many.
pub fn prune(conn: &mut rusqlite::Connection, before_ms: i64) -> anyhow::Result<usize> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    // By key: each expired event's own recipient list names its rows.
    tx.execute(PRUNE_RECIPIENTS, [before_ms])?;
    let n = tx.execute("DELETE FROM events WHERE time_ms < ?1", [before_ms])?;
    super::dmarc::prune(&tx, before_ms)?;
    super::tlsrpt::prune(&tx, before_ms)?;
    tx.commit()?;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn event(time_ms: i64, recipients: &[&str]) -> NewEvent {
        NewEvent {
            time_ms,
            message_id: format!("<{time_ms}@test>"),
            sender: "s@test".into(),
            recipients: recipients.iter().map(|r| r.to_string()).collect(),
            ..Default::default()
        }
    }

    /// An event's recipients are kept once per address (case-insensitive),
    /// found by address, and pruned with their event by key, never by
    /// scanning every recipient row.
    #[tokio::test]
    async fn recipients_are_searched_and_pruned_by_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tracking.db");
        let pool = open(&path).await.unwrap();
        let mut conn = open_writer(&path).unwrap();
        let (old, new) = (
            event(1_000, &["A@x.test", "b@x.test", "a@x.test"]),
            event(5_000, &["a@x.test"]),
        );
        let written = |e| Written {
            event: e,
            log: true,
            webhooks: vec![],
        };
        insert(&mut conn, &[written(&old), written(&new)], &[], &[]).unwrap();
        let rows = || async {
            sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM event_recipients")
                .fetch_one(&pool)
                .await
                .unwrap()
        };
        assert_eq!(rows().await, 3);
        let by = |r: &str| Filter {
            recipient: Some(r.into()),
            limit: 10,
            ..Default::default()
        };
        assert_eq!(search(&pool, &by("a@X.test")).await.unwrap().len(), 2);

        assert_eq!(prune(&mut conn, 3_000).unwrap(), 1);
        assert_eq!(rows().await, 1);
        let left = search(&pool, &by("A@x.test")).await.unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].time_ms, 5_000);
        assert!(search(&pool, &by("b@x.test")).await.unwrap().is_empty());

        let plan: Vec<String> = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {PRUNE_RECIPIENTS}"))
            .unwrap()
            .query_map([0], |r| r.get::<_, String>(3))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert!(
            !plan.iter().any(|l| l.starts_with("SCAN event_recipients")),
            "{plan:?}"
        );
        assert!(
            plan.iter()
                .any(|l| l.contains("event_recipients USING PRIMARY KEY")),
            "{plan:?}"
        );
    }
}
