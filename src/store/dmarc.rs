//! DMARC aggregate reporting's SQL, in `tracking.db` beside the tracking
//! log: the evaluations counted per period (written by the tracking
//! writer, in its batches) and the reports made of them.

use serde::{Deserialize, Serialize};
use sqlx::SqlitePool;
use utoipa::ToSchema;

/// The DMARC record as published, as RFC 7489's `policy_published` and
/// the report addresses it asked for.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Published {
    /// Where the record was found.
    pub domain: String,
    /// `r` or `s`.
    pub adkim: String,
    pub aspf: String,
    /// none, quarantine or reject.
    pub p: String,
    pub sp: String,
    pub pct: u8,
    pub fo: String,
    /// `rua` mailto addresses with their size limits (0: none).
    pub rua: Vec<(String, u64)>,
}

/// What one message showed: a row of the report, counted.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Seen {
    pub source_ip: String,
    /// The disposition applied: none, quarantine or reject.
    pub disposition: String,
    /// The DMARC-aligned DKIM and SPF results: pass or fail.
    pub dkim: String,
    pub spf: String,
    /// Policy overrides (type, comment), RFC 7489's PolicyOverrideReason.
    pub reasons: Vec<(String, Option<String>)>,
    pub envelope_from: String,
    pub header_from: String,
    /// Every DKIM signature: (d=, s=, result).
    pub dkim_results: Vec<(String, String, String)>,
    /// SPF: (domain, scope helo/mfrom, result).
    pub spf_results: Vec<(String, String, String)>,
}

/// One evaluation, as the tracking writer adds it.
#[derive(Debug, Clone)]
pub struct Evaluation {
    pub period_start: i64,
    pub published: Published,
    pub seen: Seen,
}

/// Counts evaluations in the writer's transaction.
pub fn add(tx: &rusqlite::Transaction<'_>, evaluations: &[Evaluation]) -> anyhow::Result<()> {
    let mut upsert = tx.prepare_cached(
        "INSERT INTO dmarc_records (period_start, policy_domain, policy, row, count) VALUES (?1, ?2, ?3, ?4, 1) \
         ON CONFLICT (period_start, policy_domain, policy, row) DO UPDATE SET count = count + 1",
    )?;
    for e in evaluations {
        upsert.execute(rusqlite::params![
            e.period_start,
            e.published.domain,
            serde_json::to_string(&e.published)?,
            serde_json::to_string(&e.seen)?,
        ])?;
    }
    Ok(())
}

/// A period's rows for one domain and policy: what one report holds.
pub struct Group {
    pub period_start: i64,
    pub published: Published,
    policy: String,
    pub rows: Vec<(Seen, i64)>,
}

/// Every group of a period that started before `before`.
pub async fn closed(pool: &SqlitePool, before: i64) -> anyhow::Result<Vec<Group>> {
    let rows: Vec<(i64, String, String, i64)> = sqlx::query_as(
        "SELECT period_start, policy, row, count FROM dmarc_records WHERE period_start < ? \
         ORDER BY period_start, policy_domain, policy, row",
    )
    .bind(before)
    .fetch_all(pool)
    .await?;
    let mut groups: Vec<Group> = vec![];
    for (period_start, policy, row, count) in rows {
        let seen: Seen = serde_json::from_str(&row)?;
        match groups.last_mut() {
            Some(g) if g.period_start == period_start && g.policy == policy => {
                g.rows.push((seen, count))
            }
            _ => groups.push(Group {
                period_start,
                published: serde_json::from_str(&policy)?,
                policy,
                rows: vec![(seen, count)],
            }),
        }
    }
    Ok(groups)
}

/// A report as listed by the API.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct ReportRow {
    pub id: i64,
    /// Unix milliseconds.
    pub created_ms: i64,
    pub report_id: String,
    pub policy_domain: String,
    /// The period, Unix seconds.
    pub begin_s: i64,
    pub end_s: i64,
    /// Rows in the report, and the messages they count.
    pub records: i64,
    pub messages: i64,
    /// The report message's size in bytes.
    pub size: i64,
    /// The addresses it was queued to.
    #[sqlx(json)]
    pub recipients: Vec<String>,
    /// `Queued`, or `NotSent` when no address could take it.
    pub status: String,
    /// Addresses left out, and why.
    pub detail: Option<String>,
    pub message_id: Option<String>,
}

/// Records the report made of `g` and deletes its rows, in one transaction.
pub async fn done(pool: &SqlitePool, g: &Group, r: &ReportRow) -> anyhow::Result<()> {
    let mut tx = pool.begin().await?;
    sqlx::query(
        "DELETE FROM dmarc_records WHERE period_start = ? AND policy_domain = ? AND policy = ?",
    )
    .bind(g.period_start)
    .bind(&g.published.domain)
    .bind(&g.policy)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO dmarc_reports (created_ms, report_id, policy_domain, begin_s, end_s, records, messages, size, \
         recipients, status, detail, message_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(r.created_ms)
    .bind(&r.report_id)
    .bind(&r.policy_domain)
    .bind(r.begin_s)
    .bind(r.end_s)
    .bind(r.records)
    .bind(r.messages)
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

/// Deletes rows of periods that started before `before` without a report
/// (recorded while reports could not be sent, and now too old to matter).
pub async fn forget(pool: &SqlitePool, before: i64) -> anyhow::Result<u64> {
    Ok(
        sqlx::query("DELETE FROM dmarc_records WHERE period_start < ?")
            .bind(before)
            .execute(pool)
            .await?
            .rows_affected(),
    )
}

/// The newest reports first.
pub async fn reports(pool: &SqlitePool, limit: i64) -> anyhow::Result<Vec<ReportRow>> {
    Ok(sqlx::query_as(
        "SELECT id, created_ms, report_id, policy_domain, begin_s, end_s, records, messages, size, recipients, \
         status, detail, message_id FROM dmarc_reports ORDER BY id DESC LIMIT ?",
    )
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

/// Messages counted and not yet reported, by policy domain.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct Pending {
    pub policy_domain: String,
    pub messages: i64,
    /// The oldest period's start, Unix seconds.
    pub since_s: i64,
}

pub async fn pending(pool: &SqlitePool) -> anyhow::Result<Vec<Pending>> {
    Ok(sqlx::query_as(
        "SELECT policy_domain, SUM(count) AS messages, MIN(period_start) AS since_s FROM dmarc_records \
         GROUP BY policy_domain ORDER BY policy_domain",
    )
    .fetch_all(pool)
    .await?)
}

/// Deletes reports listed before `before_ms` (the tracking retention).
pub fn prune(conn: &rusqlite::Connection, before_ms: i64) -> anyhow::Result<usize> {
    Ok(conn.execute(
        "DELETE FROM dmarc_reports WHERE created_ms < ?1",
        [before_ms],
    )?)
}
