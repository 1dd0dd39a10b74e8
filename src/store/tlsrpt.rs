//! TLS reporting's SQL (RFC 8460), in `tracking.db` beside the DMARC
//! counts: outbound TLS sessions counted per period, domain, policy and
//! outcome (written by the tracking writer), and the reports made of them.

use serde::{Deserialize, Serialize};
use sqlx::SqlitePool;
use utoipa::ToSchema;

/// The policy a session was held to, as the report's `policy` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Applied {
    /// `sts` (MTA-STS) or `tlsa` (DANE).
    pub policy_type: String,
    /// The policy's lines, as fetched.
    pub policy_string: Vec<String>,
    /// Its MX patterns.
    pub mx_host: Vec<String>,
}

/// Where and why a session failed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub struct FailedAt {
    pub receiving_mx_hostname: Option<String>,
    pub receiving_ip: Option<String>,
    /// Free text, the RFC's `additional-information`.
    pub additional_information: Option<String>,
}

/// One session, as the tracking writer adds it.
#[derive(Debug, Clone)]
pub struct Session {
    pub period_start: i64,
    pub policy_domain: String,
    pub applied: Applied,
    /// None for success, else the RFC's result-type.
    pub result: Option<String>,
    pub at: FailedAt,
}

/// Counts sessions in the writer's transaction.
pub fn add(tx: &rusqlite::Transaction<'_>, sessions: &[Session]) -> anyhow::Result<()> {
    let mut upsert = tx.prepare_cached(
        "INSERT INTO tlsrpt_sessions (period_start, policy_domain, policy, result, detail, count) \
         VALUES (?1, ?2, ?3, ?4, ?5, 1) \
         ON CONFLICT (period_start, policy_domain, policy, result, detail) DO UPDATE SET count = count + 1",
    )?;
    for s in sessions {
        upsert.execute(rusqlite::params![
            s.period_start,
            s.policy_domain,
            serde_json::to_string(&s.applied)?,
            s.result.clone().unwrap_or_default(),
            serde_json::to_string(&s.at)?,
        ])?;
    }
    Ok(())
}

/// One row: a policy and an outcome, counted.
pub struct Row {
    pub applied: Applied,
    pub result: Option<String>,
    pub at: FailedAt,
    pub count: i64,
}

/// A period's rows for one domain: what one report holds.
pub struct Group {
    pub period_start: i64,
    pub policy_domain: String,
    pub rows: Vec<Row>,
}

/// Every group of a period that started before `before`.
pub async fn closed(pool: &SqlitePool, before: i64) -> anyhow::Result<Vec<Group>> {
    let rows: Vec<(i64, String, String, String, String, i64)> = sqlx::query_as(
        "SELECT period_start, policy_domain, policy, result, detail, count FROM tlsrpt_sessions \
         WHERE period_start < ? ORDER BY period_start, policy_domain, policy, result, detail",
    )
    .bind(before)
    .fetch_all(pool)
    .await?;
    let mut groups: Vec<Group> = vec![];
    for (period_start, domain, policy, result, detail, count) in rows {
        let row = Row {
            applied: serde_json::from_str(&policy)?,
            result: (!result.is_empty()).then_some(result),
            at: serde_json::from_str(&detail)?,
            count,
        };
        match groups.last_mut() {
            Some(g) if g.period_start == period_start && g.policy_domain == domain => {
                g.rows.push(row)
            }
            _ => groups.push(Group {
                period_start,
                policy_domain: domain,
                rows: vec![row],
            }),
        }
    }
    Ok(groups)
}

/// A report as listed by the API.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct TlsReportRow {
    pub id: i64,
    /// Unix milliseconds.
    pub created_ms: i64,
    pub report_id: String,
    pub policy_domain: String,
    /// The period, Unix seconds.
    pub begin_s: i64,
    pub end_s: i64,
    /// Sessions that succeeded and failed.
    pub successes: i64,
    pub failures: i64,
    /// The report message's size in bytes.
    pub size: i64,
    #[sqlx(json)]
    pub recipients: Vec<String>,
    /// `Queued`, or `NotSent` when no address could take it.
    pub status: String,
    /// Addresses left out, and why.
    pub detail: Option<String>,
    pub message_id: Option<String>,
}

/// Records the report made of `g` and deletes its rows, in one transaction.
pub async fn done(pool: &SqlitePool, g: &Group, r: &TlsReportRow) -> anyhow::Result<()> {
    let mut tx = pool.begin().await?;
    sqlx::query("DELETE FROM tlsrpt_sessions WHERE period_start = ? AND policy_domain = ?")
        .bind(g.period_start)
        .bind(&g.policy_domain)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO tls_reports (created_ms, report_id, policy_domain, begin_s, end_s, successes, failures, size, \
         recipients, status, detail, message_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(r.created_ms)
    .bind(&r.report_id)
    .bind(&r.policy_domain)
    .bind(r.begin_s)
    .bind(r.end_s)
    .bind(r.successes)
    .bind(r.failures)
    .bind(r.size)
    .bind(serde_json::to_string(&r.recipients)?)
    .bind(&r.status)
    .bind(&r.detail)
    .bind(&r.message_id)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Deletes rows of periods that started before `before` without a report.
pub async fn forget(pool: &SqlitePool, before: i64) -> anyhow::Result<u64> {
    Ok(
        sqlx::query("DELETE FROM tlsrpt_sessions WHERE period_start < ?")
            .bind(before)
            .execute(pool)
            .await?
            .rows_affected(),
    )
}

/// The newest reports first.
pub async fn reports(pool: &SqlitePool, limit: i64) -> anyhow::Result<Vec<TlsReportRow>> {
    Ok(sqlx::query_as(
        "SELECT id, created_ms, report_id, policy_domain, begin_s, end_s, successes, failures, size, recipients, \
         status, detail, message_id FROM tls_reports ORDER BY id DESC LIMIT ?",
    )
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

/// Sessions counted and not yet reported, by policy domain.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct TlsPending {
    pub policy_domain: String,
    pub sessions: i64,
    /// The oldest period's start, Unix seconds.
    pub since_s: i64,
}

pub async fn pending(pool: &SqlitePool) -> anyhow::Result<Vec<TlsPending>> {
    Ok(sqlx::query_as(
        "SELECT policy_domain, SUM(count) AS sessions, MIN(period_start) AS since_s FROM tlsrpt_sessions \
         GROUP BY policy_domain ORDER BY policy_domain",
    )
    .fetch_all(pool)
    .await?)
}

/// Deletes reports listed before `before_ms` (the tracking retention).
pub fn prune(conn: &rusqlite::Connection, before_ms: i64) -> anyhow::Result<usize> {
    Ok(conn.execute("DELETE FROM tls_reports WHERE created_ms < ?1", [before_ms])?)
}
