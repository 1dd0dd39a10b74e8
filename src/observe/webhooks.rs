//! The webhook dispatcher: sends what the tracking writer put in the
//! outbox (`webhook_outbox` in tracking.db, written in the same transaction
//! as the event) to each subscription's URL as signed JSON, at least once,
//! retrying with backoff for a day. It runs on its own task and never
//! touches the mail path: a receiver that is down or slow delays only its
//! own deliveries.
//!
//! Each POST carries `Content-Type: application/json`, `Ferry-Webhook`
//! (the subscription's name), `Ferry-Delivery` (the delivery's id, the
//! same on every retry: receivers drop duplicates by it) and
//! `Ferry-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`
//! under the subscription's key (Stripe's scheme: the timestamp is signed,
//! so a receiver refuses replays older than its tolerance).

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
/// 30 s, 1 min, 5 min, 15 min, then every hour.
pub fn backoff_ms(n: i64) -> i64 {
    const STEPS: [i64; 7] = [2, 5, 15, 30, 60, 300, 900];
    1000 * STEPS.get((n.max(1) - 1) as usize).copied().unwrap_or(3600)
}

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
    payload: String,
    attempts: i64,
    created_ms: i64,
}

/// Sends what is due until `shutdown`.
pub async fn run(
    pool: SqlitePool,
    config: watch::Receiver<Arc<Snapshot>>,
    secrets: SecretBox,
    mut shutdown: Shutdown,
) {
    let mut last_prune = 0;
    loop {
        tokio::select! {
            _ = shutdown.recv() => return,
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
        let snap = config.borrow().clone();
        if let Err(e) = round(&pool, &snap, &secrets).await {
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

async fn round(pool: &SqlitePool, snap: &Snapshot, secrets: &SecretBox) -> anyhow::Result<()> {
    use futures_util::{StreamExt, stream};
    let due: Vec<Due> = sqlx::query_as(
        "SELECT id, webhook, payload, attempts, created_ms FROM webhook_outbox \
         WHERE state = 'Pending' AND next_attempt_ms <= ? ORDER BY id LIMIT 500",
    )
    .bind(now_ms())
    .fetch_all(pool)
    .await?;
    if due.is_empty() {
        return Ok(());
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
    .with_root_certificates(crate::tls::roots::trust_roots(snap))
    .with_no_client_auth();
    let client = reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .connect_timeout(Duration::from_secs(5))
        .build()?;
    let results: Vec<anyhow::Result<()>> = stream::iter(due)
        .map(|d| deliver(pool, snap, secrets, &client, d))
        .buffer_unordered(PARALLEL)
        .collect()
        .await;
    results.into_iter().collect()
}

async fn deliver(
    pool: &SqlitePool,
    snap: &Snapshot,
    secrets: &SecretBox,
    client: &reqwest::Client,
    d: Due,
) -> anyhow::Result<()> {
    let Some(hook) = snap.webhooks.iter().find(|w| w.id.to_string() == d.webhook) else {
        return finish(pool, d.id, "Failed", Some("the webhook was deleted"), 0).await;
    };
    if !hook.spec.enabled {
        // Kept for when it is enabled again, without counting an attempt.
        sqlx::query("UPDATE webhook_outbox SET next_attempt_ms = ? WHERE id = ?")
            .bind(now_ms() + 60_000)
            .bind(d.id)
            .execute(pool)
            .await?;
        return Ok(());
    }
    let key = match hook.secret.as_deref() {
        Some(sealed) => secrets.open(&hook.id.to_string(), sealed)?,
        None => return finish(pool, d.id, "Failed", Some("the webhook has no key"), 1).await,
    };
    let body = format!(
        "{{\"deliveryId\":{},\"webhook\":{},\"event\":{}}}",
        d.id,
        serde_json::Value::String(hook.spec.name.clone()),
        d.payload
    );
    let t = now_ms() / 1000;
    let sent = client
        .post(&hook.spec.url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("Ferry-Webhook", &hook.spec.name)
        .header("Ferry-Delivery", d.id.to_string())
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
        None => finish(pool, d.id, "Delivered", None, 1).await,
        Some(e) if now_ms() - d.created_ms >= GIVE_UP_AFTER_MS => {
            finish(pool, d.id, "Failed", Some(&e), 1).await
        }
        Some(e) => {
            sqlx::query(
                "UPDATE webhook_outbox SET attempts = attempts + 1, last_error = ?, next_attempt_ms = ? \
                 WHERE id = ?",
            )
            .bind(&e)
            .bind(now_ms() + backoff_ms(d.attempts + 1))
            .bind(d.id)
            .execute(pool)
            .await?;
            Ok(())
        }
    }
}

async fn finish(
    pool: &SqlitePool,
    id: i64,
    state: &str,
    error: Option<&str>,
    attempt: i64,
) -> anyhow::Result<()> {
    sqlx::query(
        "UPDATE webhook_outbox SET state = ?, last_error = COALESCE(?, last_error), \
         attempts = attempts + ?, done_ms = ? WHERE id = ?",
    )
    .bind(state)
    .bind(error)
    .bind(attempt)
    .bind(now_ms())
    .bind(id)
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
}
