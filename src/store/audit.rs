//! The admin audit log's SQL (`audit_log` in `tracking.db`).

use serde::Serialize;
use sqlx::{QueryBuilder, Sqlite, SqlitePool};
use utoipa::ToSchema;

use crate::config::audit::FieldChange;

/// How long entries are kept: Exchange's AdminAuditLogAgeLimit default.
pub const RETENTION_MS: i64 = 90 * 24 * 3600 * 1000;

/// One mutation through the API.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditEntry {
    /// Increases with every entry; the paging cursor (`before`).
    pub id: i64,
    /// Unix milliseconds.
    pub time_ms: i64,
    /// The API token's name (its id in `tokenId`).
    pub token_name: String,
    pub token_id: String,
    /// The token's role then.
    pub role: String,
    pub client_ip: Option<String>,
    pub method: String,
    pub path: String,
    /// The resource: `receive-connectors`, `queues`, `api-tokens`…
    pub object_type: String,
    /// The object's id or name, when the path or the change names one.
    pub object_id: Option<String>,
    /// The HTTP status of the answer.
    pub status: u16,
    pub succeeded: bool,
    /// Why it failed (the problem's detail).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The fields it changed, old and new value, secrets masked.
    pub changes: Vec<FieldChange>,
    /// Changes not listed (a bulk change beyond the first 200).
    pub more_changes: i64,
}

#[derive(sqlx::FromRow)]
struct Row {
    id: i64,
    time_ms: i64,
    token_id: String,
    token_name: String,
    role: String,
    client_ip: Option<String>,
    method: String,
    path: String,
    object_type: String,
    object_id: Option<String>,
    status: i64,
    succeeded: bool,
    detail: Option<String>,
    changes: String,
    more_changes: i64,
}

pub async fn insert(pool: &SqlitePool, e: &AuditEntry) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO audit_log (time_ms, token_id, token_name, role, client_ip, method, path, \
         object_type, object_id, status, succeeded, detail, changes, more_changes) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(e.time_ms)
    .bind(&e.token_id)
    .bind(&e.token_name)
    .bind(&e.role)
    .bind(&e.client_ip)
    .bind(&e.method)
    .bind(&e.path)
    .bind(&e.object_type)
    .bind(&e.object_id)
    .bind(e.status as i64)
    .bind(e.succeeded)
    .bind(&e.detail)
    .bind(serde_json::to_string(&e.changes)?)
    .bind(e.more_changes)
    .execute(pool)
    .await?;
    Ok(())
}

/// What to look for; every part optional.
#[derive(Debug, Default)]
pub struct Query {
    /// The object's type, id or name, or a part of the path.
    pub object: Option<String>,
    pub token: Option<String>,
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
    pub succeeded: Option<bool>,
    /// Entries older than this id (paging).
    pub before: Option<i64>,
    pub limit: i64,
}

/// Newest first.
pub async fn search(pool: &SqlitePool, q: &Query) -> anyhow::Result<Vec<AuditEntry>> {
    let mut b: QueryBuilder<Sqlite> = QueryBuilder::new(
        "SELECT id, time_ms, token_id, token_name, role, client_ip, method, path, object_type, \
         object_id, status, succeeded, detail, changes, more_changes FROM audit_log WHERE 1 = 1",
    );
    if let Some(o) = &q.object {
        let like = format!(
            "%{}%",
            o.replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_")
        );
        b.push(" AND (object_type = ")
            .push_bind(o.clone())
            .push(" OR object_id = ")
            .push_bind(o.clone())
            .push(" COLLATE NOCASE OR path LIKE ")
            .push_bind(like)
            .push(" ESCAPE '\\')");
    }
    if let Some(t) = &q.token {
        b.push(" AND token_name = ")
            .push_bind(t.clone())
            .push(" COLLATE NOCASE");
    }
    if let Some(s) = q.since_ms {
        b.push(" AND time_ms >= ").push_bind(s);
    }
    if let Some(u) = q.until_ms {
        b.push(" AND time_ms < ").push_bind(u);
    }
    if let Some(ok) = q.succeeded {
        b.push(" AND succeeded = ").push_bind(ok);
    }
    if let Some(before) = q.before {
        b.push(" AND id < ").push_bind(before);
    }
    b.push(" ORDER BY id DESC LIMIT ").push_bind(q.limit);
    let rows: Vec<Row> = b.build_query_as().fetch_all(pool).await?;
    rows.into_iter()
        .map(|r| {
            Ok(AuditEntry {
                id: r.id,
                time_ms: r.time_ms,
                token_id: r.token_id,
                token_name: r.token_name,
                role: r.role,
                client_ip: r.client_ip,
                method: r.method,
                path: r.path,
                object_type: r.object_type,
                object_id: r.object_id,
                status: r.status as u16,
                succeeded: r.succeeded,
                detail: r.detail,
                changes: serde_json::from_str(&r.changes)?,
                more_changes: r.more_changes,
            })
        })
        .collect()
}

/// Drops entries past the retention, in the tracking writer's prune.
pub fn prune(conn: &rusqlite::Connection, now_ms: i64) -> anyhow::Result<usize> {
    Ok(conn.execute(
        "DELETE FROM audit_log WHERE time_ms < ?1",
        [now_ms - RETENTION_MS],
    )?)
}

#[cfg(test)]
mod tests {
    #[test]
    fn entries_older_than_the_retention_are_pruned() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.execute_batch(include_str!(
            "../../migrations/tracking/20261130000004_audit_log.sql"
        ))
        .unwrap();
        let now = 100 * super::RETENTION_MS;
        for (t, name) in [(now - super::RETENTION_MS - 1, "old"), (now - 1000, "new")] {
            conn.execute(
                "INSERT INTO audit_log (time_ms, token_id, token_name, role, method, path, object_type, \
                 status, succeeded, changes) VALUES (?1, 'i', ?2, 'Administrator', 'POST', '/', 'x', 200, 1, '[]')",
                rusqlite::params![t, name],
            )
            .unwrap();
        }
        assert_eq!(super::prune(&conn, now).unwrap(), 1);
        let left: String = conn
            .query_row("SELECT token_name FROM audit_log", [], |r| r.get(0))
            .unwrap();
        assert_eq!(left, "new");
    }
}
