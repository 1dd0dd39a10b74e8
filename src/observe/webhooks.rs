//! The webhook dispatcher: sends what the tracking writer put in the
//! outbox (`webhook_outbox` in tracking.db, written in the same transaction
//! as the event) to each subscription's URL as signed JSON, at least once,
//! retrying with backoff for a day. It runs on its own task and never
//! touches the mail path: a receiver that is down or slow delays only its
//! own deliveries.
//!
//! Each POST carries up to 100 events, oldest first, as
//! `{"webhook": name, "deliveries": [{"deliveryId": n, "event": {...}}]}`
//! (a delivery's id is the same on every retry: receivers drop duplicates
//! by it), with `Content-Type: application/json`, `Ferry-Webhook` (the
//! subscription's name) and `Ferry-Signature: t=<unix seconds>,v1=<hex
//! HMAC-SHA256 of "<t>.<body>">` under the subscription's key (Stripe's
//! scheme: the timestamp is signed, so a receiver refuses replays older
//! than its tolerance). Batches, as SendGrid's event webhook sends, keep a
//! busy server from making a request per event.

use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use sqlx::SqlitePool;
use tokio::sync::watch;

use crate::config::Snapshot;
use crate::secrets::SecretBox;
use crate::shutdown::Shutdown;

pub const SIGNATURE_HEADER: &str = "Ferry-Signature";

/// How long a delivery is retried before it is given up (Failed).
const GIVE_UP_AFTER_MS: i64 = 24 * 3600 * 1000;
/// Deliveries in flight at once.
const PARALLEL: usize = 8;
/// Delivered and failed rows are kept this long for the API, then deleted.
const KEEP_DONE_MS: i64 = 7 * 24 * 3600 * 1000;

/// The wait before retry `n` (1 after the first failure): 2 s, 5 s, 15 s,
/// 30 s, 1 min, 5 min, 15 min, then every hour. `retry_later` writes the
/// same steps in SQL; a unit test holds them together.
pub fn backoff_ms(n: i64) -> i64 {
    const STEPS: [i64; 7] = [2, 5, 15, 30, 60, 300, 900];
    1000 * STEPS.get((n.max(1) - 1) as usize).copied().unwrap_or(3600)
}

/// [`backoff_ms`] of the next attempt, in SQL over the row's `attempts`.
const BACKOFF_SQL: &str = "CASE attempts WHEN 0 THEN 2000 WHEN 1 THEN 5000 WHEN 2 THEN 15000 \
     WHEN 3 THEN 30000 WHEN 4 THEN 60000 WHEN 5 THEN 300000 WHEN 6 THEN 900000 ELSE 3600000 END";

/// `t=<t>,v1=<hex>`: HMAC-SHA256 over `"<t>.<body>"`.
pub fn sign(key: &[u8], t: i64, body: &str) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(format!("{t}.").as_bytes());
    mac.update(body.as_bytes());
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

fn now_ms() -> i64 {
    super::tracking::now_ms()
}

#[derive(sqlx::FromRow)]
struct Due {
    id: i64,
    webhook: String,
    /// The tracking event's id; 0 when tracking was off.
    event: i64,
    /// The event's JSON: stored only when tracking was off, else read
    /// from the log when sent.
    payload: Option<String>,
}

/// Sends what is due until `shutdown`.
pub async fn run(
    pool: SqlitePool,
    config: watch::Receiver<Arc<Snapshot>>,
    secrets: SecretBox,
    mut shutdown: Shutdown,
) {
    let mut last_prune = 0;
    // One client (and its connection pool) per configuration: trust
    // anchors may change with it.
    let mut client: Option<(u64, reqwest::Client)> = None;
    loop {
        tokio::select! {
            _ = shutdown.recv() => return,
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
        let snap = config.borrow().clone();
        if client.as_ref().is_none_or(|(g, _)| *g != snap.generation) {
            match http_client(&snap) {
                Ok(c) => client = Some((snap.generation, c)),
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "webhooks: no HTTP client");
                    continue;
                }
            }
        }
        let Some((_, http)) = &client else { continue };
        if let Err(e) = round(&pool, &snap, &secrets, http).await {
            tracing::warn!(error = %format!("{e:#}"), "webhooks: a round of deliveries failed");
        }
        if now_ms() - last_prune > 60_000 {
            last_prune = now_ms();
            let _ =
                sqlx::query("DELETE FROM webhook_outbox WHERE state <> 'Pending' AND done_ms < ?")
                    .bind(now_ms() - KEEP_DONE_MS)
                    .execute(&pool)
                    .await;
        }
    }
}

/// Events in one POST, at most.
const BATCH: usize = 100;

fn http_client(snap: &Snapshot) -> anyhow::Result<reqwest::Client> {
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
    .with_root_certificates(crate::tls::roots::trust_roots(snap))
    .with_no_client_auth();
    Ok(reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .connect_timeout(Duration::from_secs(5))
        .build()?)
}

async fn round(
    pool: &SqlitePool,
    snap: &Snapshot,
    secrets: &SecretBox,
    client: &reqwest::Client,
) -> anyhow::Result<()> {
    use futures_util::{StreamExt, stream};
    let due: Vec<Due> = sqlx::query_as(
        "SELECT id, webhook, event, payload FROM webhook_outbox \
         WHERE state = 'Pending' AND next_attempt_ms <= ? ORDER BY id LIMIT 2000",
    )
    .bind(now_ms())
    .fetch_all(pool)
    .await?;
    if due.is_empty() {
        return Ok(());
    }
    // Logged events are read back from the log, all at once.
    let wanted: Vec<i64> = due
        .iter()
        .filter(|d| d.payload.is_none())
        .map(|d| d.event)
        .collect();
    let logged: std::collections::HashMap<i64, String> =
        crate::store::tracking::events_by_id(pool, &wanted)
            .await?
            .iter()
            .map(|t| {
                (
                    t.id,
                    crate::store::tracking::stored_event_json(t).to_string(),
                )
            })
            .collect();
    let mut due = due;
    for d in &mut due {
        if d.payload.is_none() {
            // An event pruned from the log before it could be sent (its
            // retention is shorter than a day of retries) goes as null.
            d.payload = Some(logged.get(&d.event).cloned().unwrap_or("null".into()));
        }
    }
    // By webhook, oldest first: each webhook's batches go one after the
    // other, the webhooks side by side.
    let mut by_hook: Vec<(String, Vec<Due>)> = vec![];
    for d in due {
        match by_hook.iter_mut().find(|(w, _)| *w == d.webhook) {
            Some((_, v)) => v.push(d),
            None => by_hook.push((d.webhook.clone(), vec![d])),
        }
    }
    let results: Vec<anyhow::Result<()>> = stream::iter(by_hook)
        .map(|(hook, rows)| deliver(pool, snap, secrets, client, hook, rows))
        .buffer_unordered(PARALLEL)
        .collect()
        .await;
    results.into_iter().collect()
}

/// The ids of `rows` as a JSON array, for `IN (SELECT value FROM json_each(?))`.
fn ids(rows: &[Due]) -> String {
    serde_json::to_string(&rows.iter().map(|d| d.id).collect::<Vec<_>>()).unwrap_or_default()
}

/// Sends one webhook's due events, in batches of up to [`BATCH`]. At the
/// first failure the rest wait too (a receiver that is down costs one
/// request a round, not one per event), each counting an attempt.
async fn deliver(
    pool: &SqlitePool,
    snap: &Snapshot,
    secrets: &SecretBox,
    client: &reqwest::Client,
    hook_id: String,
    rows: Vec<Due>,
) -> anyhow::Result<()> {
    let Some(hook) = snap.webhooks.iter().find(|w| w.id.to_string() == hook_id) else {
        return finish(pool, &rows, "Failed", Some("the webhook was deleted")).await;
    };
    if !hook.spec.enabled {
        // Kept for when it is enabled again, without counting an attempt.
        sqlx::query(
            "UPDATE webhook_outbox SET next_attempt_ms = ? WHERE id IN (SELECT value FROM json_each(?))",
        )
        .bind(now_ms() + 60_000)
        .bind(ids(&rows))
        .execute(pool)
        .await?;
        return Ok(());
    }
    let key = match hook.secret.as_deref() {
        Some(sealed) => secrets.open(&hook.id.to_string(), sealed)?,
        None => return finish(pool, &rows, "Failed", Some("the webhook has no key")).await,
    };
    let name = serde_json::Value::String(hook.spec.name.clone()).to_string();
    for (i, batch) in rows.chunks(BATCH).enumerate() {
        let mut body = format!("{{\"webhook\":{name},\"deliveries\":[");
        for (j, d) in batch.iter().enumerate() {
            if j > 0 {
                body.push(',');
            }
            body.push_str(&format!(
                "{{\"deliveryId\":{},\"event\":{}}}",
                d.id,
                d.payload.as_deref().unwrap_or("null")
            ));
        }
        body.push_str("]}");
        let t = now_ms() / 1000;
        let sent = client
            .post(&hook.spec.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("Ferry-Webhook", &hook.spec.name)
            .header(SIGNATURE_HEADER, sign(&key, t, &body))
            .body(body)
            .send()
            .await;
        let error = match sent {
            Ok(r) if r.status().is_success() => None,
            Ok(r) => Some(format!("HTTP {}", r.status())),
            Err(e) => Some(format!("{e}")),
        };
        match error {
            None => finish(pool, batch, "Delivered", None).await?,
            Some(e) => {
                // This batch and every later one wait.
                let rest = &rows[i * BATCH..];
                return retry_later(pool, rest, &e).await;
            }
        }
    }
    Ok(())
}

/// Counts a failed attempt for each row: it is tried again after its
/// backoff, or given up (Failed) a day after it was made.
async fn retry_later(pool: &SqlitePool, rows: &[Due], error: &str) -> anyhow::Result<()> {
    let now = now_ms();
    let mut tx = pool.begin().await?;
    sqlx::query(&format!(
        "UPDATE webhook_outbox SET attempts = attempts + 1, last_error = ?, next_attempt_ms = ? + \
         {BACKOFF_SQL} WHERE id IN (SELECT value FROM json_each(?))"
    ))
    .bind(error)
    .bind(now)
    .bind(ids(rows))
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "UPDATE webhook_outbox SET state = 'Failed', done_ms = ? \
         WHERE id IN (SELECT value FROM json_each(?)) AND created_ms <= ?",
    )
    .bind(now)
    .bind(ids(rows))
    .bind(now - GIVE_UP_AFTER_MS)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

async fn finish(
    pool: &SqlitePool,
    rows: &[Due],
    state: &str,
    error: Option<&str>,
) -> anyhow::Result<()> {
    sqlx::query(
        "UPDATE webhook_outbox SET state = ?, last_error = COALESCE(?, last_error), \
         attempts = attempts + 1, done_ms = ? WHERE id IN (SELECT value FROM json_each(?))",
    )
    .bind(state)
    .bind(error)
    .bind(now_ms())
    .bind(ids(rows))
    .execute(pool)
    .await?;
    Ok(())
}

/// A webhook's deliveries, as the API shows them.
#[derive(Debug, serde::Serialize, utoipa::ToSchema, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    pub id: i64,
    /// The tracking event's id (0 when tracking is off).
    pub event: i64,
    /// `Pending`, `Delivered` or `Failed` (given up after a day).
    pub state: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub created_ms: i64,
    /// When it is tried next (Pending).
    pub next_attempt_ms: i64,
    pub done_ms: Option<i64>,
}

/// Counts by state, and the newest deliveries.
pub async fn deliveries(
    pool: &SqlitePool,
    webhook: &str,
    limit: i64,
) -> anyhow::Result<(Vec<(String, i64)>, Vec<Delivery>)> {
    let counts: Vec<(String, i64)> = sqlx::query_as(
        "SELECT state, COUNT(*) FROM webhook_outbox WHERE webhook = ? GROUP BY state ORDER BY state",
    )
    .bind(webhook)
    .fetch_all(pool)
    .await?;
    let recent: Vec<Delivery> = sqlx::query_as(
        "SELECT id, event, state, attempts, last_error, created_ms, next_attempt_ms, done_ms \
         FROM webhook_outbox WHERE webhook = ? ORDER BY id DESC LIMIT ?",
    )
    .bind(webhook)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok((counts, recent))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_follow_rfc_4231() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        let s = sign(b"Jefe", 0, "");
        assert!(s.starts_with("t=0,v1="));
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(b"Jefe").unwrap();
        mac.update(b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(mac.finalize().into_bytes()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(backoff_ms(1), 2000);
        assert_eq!(backoff_ms(8), 3_600_000);
    }

    #[test]
    fn the_sql_backoff_is_the_documented_one() {
        let db = rusqlite::Connection::open_in_memory().unwrap();
        for attempts in 0..12i64 {
            let sql: i64 = db
                .query_row(
                    &format!("SELECT {}", BACKOFF_SQL.replace("attempts", "?1")),
                    [attempts],
                    |r| r.get(0),
                )
                .unwrap();
            assert_eq!(sql, backoff_ms(attempts + 1), "after {attempts} attempts");
        }
    }
}
