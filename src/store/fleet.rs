//! The SQL of a fleet's shared configuration (`--config-store
//! postgres://…`): the rows of the shared tables read from and written to
//! this node's SQLite copy, and the journal in PostgreSQL that every node
//! follows (`migrations/postgres`). Rows travel verbatim — ids, versions,
//! times, sealed secrets — so every node holds the same objects.

use anyhow::Context;
use serde::Serialize;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Connection, SqliteConnection};
use std::str::FromStr;
use std::time::Duration;
use time::OffsetDateTime;
use utoipa::ToSchema;

/// The object tables every node of a fleet shares (and, besides them, the
/// singleton settings and the named API tokens). Certificates (a server's
/// own keys), ACME certificates, the transport settings (the server's FQDN
/// and limits, Set-TransportServer's), the drain state, the bootstrap admin
/// token and the recipient directory stay with each server, as Exchange
/// keeps them per server.
pub const SHARED_TABLES: &[&str] = &[
    "receive_connectors",
    "send_connectors",
    "accepted_domains",
    "credentials",
    "ip_list_entries",
    "ip_list_providers",
    "dkim_keys",
    "webhooks",
];

/// Singleton documents (`settings` rows) that stay with each server.
const LOCAL_SETTINGS: &[&str] = &[crate::config::setting::SERVER_DRAIN];

/// `tbl` of a `settings` row.
const SETTINGS: &str = "settings";

/// `tbl` of an API token: named tokens are the fleet's (the bootstrap
/// admin token is each server's own, and so is each token's last use).
const API_TOKENS: &str = "api_tokens";

/// A named API token as the fleet carries it.
#[derive(Debug, Serialize, serde::Deserialize, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
struct SharedToken {
    role: String,
    token_sha256: String,
    expires_at: Option<String>,
    revoked_at: Option<String>,
    client_certificate_sha256: Option<String>,
}

/// One row of a shared table, or a tombstone.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct FleetRow {
    pub tbl: String,
    /// The id of an object, the kind of a setting.
    pub key: String,
    pub name: Option<String>,
    pub version: i64,
    pub spec: String,
    pub secret: Option<Vec<u8>>,
    pub created_at: String,
    pub updated_at: String,
    pub deleted: bool,
}

/// Every shared row of this node's copy.
pub async fn local_rows(conn: &mut SqliteConnection) -> anyhow::Result<Vec<FleetRow>> {
    let mut out = vec![];
    for t in SHARED_TABLES {
        let sql = format!(
            "SELECT '{t}' AS tbl, id AS key, name, version, spec, secret, created_at, updated_at, \
             0 AS deleted FROM {t}"
        );
        out.extend(
            sqlx::query_as::<_, FleetRow>(&sql)
                .fetch_all(&mut *conn)
                .await?,
        );
    }
    let settings: Vec<FleetRow> = sqlx::query_as(
        "SELECT 'settings' AS tbl, kind AS key, NULL AS name, version, spec, NULL AS secret, \
         created_at, updated_at, 0 AS deleted FROM settings",
    )
    .fetch_all(&mut *conn)
    .await?;
    out.extend(
        settings
            .into_iter()
            .filter(|r| !LOCAL_SETTINGS.contains(&r.key.as_str())),
    );
    let tokens: Vec<(String, String, String, SharedToken)> = sqlx::query_as::<
        _,
        (
            String,
            String,
            String,
            String,
            String,
            Option<String>,
            Option<String>,
            Option<String>,
        ),
    >(
        "SELECT id, name, created_at, role, token_sha256, expires_at, revoked_at, \
         client_certificate_sha256 FROM api_tokens WHERE bootstrap = 0",
    )
    .fetch_all(&mut *conn)
    .await?
    .into_iter()
    .map(
        |(
            id,
            name,
            created,
            role,
            token_sha256,
            expires_at,
            revoked_at,
            client_certificate_sha256,
        )| {
            (
                id,
                name,
                created,
                SharedToken {
                    role,
                    token_sha256,
                    expires_at,
                    revoked_at,
                    client_certificate_sha256,
                },
            )
        },
    )
    .collect();
    for (id, name, created_at, t) in tokens {
        let spec = serde_json::to_string(&t)?;
        // Tokens have no version: the digest of what the fleet carries.
        let digest = <sha2::Sha256 as sha2::Digest>::digest(spec.as_bytes());
        let version = i64::from_be_bytes(digest[..8].try_into().expect("8 bytes")) & i64::MAX;
        out.push(FleetRow {
            tbl: API_TOKENS.into(),
            key: id,
            name: Some(name),
            version,
            spec,
            secret: None,
            updated_at: created_at.clone(),
            created_at,
            deleted: false,
        });
    }
    Ok(out)
}

/// Writes rows from the fleet into this node's copy: tombstones first,
/// then the rows (a rename elsewhere frees a name before it is taken).
/// `full`: these are all the fleet's rows, so local shared rows not among
/// them go.
pub async fn apply_rows(
    conn: &mut SqliteConnection,
    rows: &[FleetRow],
    full: bool,
) -> anyhow::Result<()> {
    if full {
        for t in SHARED_TABLES {
            sqlx::query(&format!("DELETE FROM {t}"))
                .execute(&mut *conn)
                .await?;
        }
        let mut q = sqlx::QueryBuilder::new("DELETE FROM settings WHERE kind NOT IN (");
        let mut sep = q.separated(", ");
        for k in LOCAL_SETTINGS {
            sep.push_bind(*k);
        }
        q.push(")");
        q.build().execute(&mut *conn).await?;
        sqlx::query("DELETE FROM api_tokens WHERE bootstrap = 0")
            .execute(&mut *conn)
            .await?;
    }
    for r in rows.iter().filter(|r| r.deleted) {
        if r.tbl == API_TOKENS {
            sqlx::query("DELETE FROM api_tokens WHERE id = ? AND bootstrap = 0")
                .bind(&r.key)
                .execute(&mut *conn)
                .await?;
        } else if r.tbl == SETTINGS {
            sqlx::query("DELETE FROM settings WHERE kind = ?")
                .bind(&r.key)
                .execute(&mut *conn)
                .await?;
        } else if SHARED_TABLES.contains(&r.tbl.as_str()) {
            sqlx::query(&format!("DELETE FROM {} WHERE id = ?", r.tbl))
                .bind(&r.key)
                .execute(&mut *conn)
                .await?;
        }
    }
    for r in rows.iter().filter(|r| !r.deleted) {
        if r.tbl == API_TOKENS {
            let t: SharedToken = serde_json::from_str(&r.spec)?;
            // This server's record of the token's last use stays.
            sqlx::query(
                "INSERT INTO api_tokens (id, name, role, token_sha256, bootstrap, created_at, \
                 expires_at, revoked_at, client_certificate_sha256) VALUES (?, ?, ?, ?, 0, ?, ?, ?, ?) \
                 ON CONFLICT (id) DO UPDATE SET name = excluded.name, role = excluded.role, \
                 token_sha256 = excluded.token_sha256, expires_at = excluded.expires_at, \
                 revoked_at = excluded.revoked_at, \
                 client_certificate_sha256 = excluded.client_certificate_sha256",
            )
            .bind(&r.key)
            .bind(&r.name)
            .bind(&t.role)
            .bind(&t.token_sha256)
            .bind(&r.created_at)
            .bind(&t.expires_at)
            .bind(&t.revoked_at)
            .bind(&t.client_certificate_sha256)
            .execute(&mut *conn)
            .await?;
        } else if r.tbl == SETTINGS {
            if LOCAL_SETTINGS.contains(&r.key.as_str()) {
                continue;
            }
            sqlx::query(
                "INSERT OR REPLACE INTO settings (kind, version, spec, created_at, updated_at) \
                 VALUES (?, ?, ?, ?, ?)",
            )
            .bind(&r.key)
            .bind(r.version)
            .bind(&r.spec)
            .bind(&r.created_at)
            .bind(&r.updated_at)
            .execute(&mut *conn)
            .await?;
        } else if SHARED_TABLES.contains(&r.tbl.as_str()) {
            // REPLACE also drops a row of another id holding the name,
            // which the same batch deletes or renames anyway.
            sqlx::query(&format!(
                "INSERT OR REPLACE INTO {} (id, name, version, spec, secret, created_at, updated_at) \
                 VALUES (?, ?, ?, ?, ?, ?, ?)",
                r.tbl
            ))
            .bind(&r.key)
            .bind(&r.name)
            .bind(r.version)
            .bind(&r.spec)
            .bind(&r.secret)
            .bind(&r.created_at)
            .bind(&r.updated_at)
            .execute(&mut *conn)
            .await?;
        }
    }
    Ok(())
}

pub async fn local_revision(conn: &mut SqliteConnection) -> anyhow::Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT revision FROM fleet_state WHERE id = 1")
            .fetch_one(&mut *conn)
            .await?,
    )
}

pub async fn set_local_revision(conn: &mut SqliteConnection, revision: i64) -> anyhow::Result<()> {
    sqlx::query("UPDATE fleet_state SET revision = ? WHERE id = 1")
        .bind(revision)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Why a write to the fleet did not happen.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// Another node wrote first: this node must catch up, then retry.
    #[error("the configuration was changed on another server (now at revision {0})")]
    Stale(i64),
    #[error("PostgreSQL: {0}")]
    Unreachable(String),
}

/// A node of the fleet, as the registry has it.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct ServerEntry {
    pub name: String,
    pub role: String,
    /// Ferry's version on it.
    pub version: String,
    pub fqdn: String,
    /// Where its API listens.
    pub api: String,
    /// The shared configuration's revision it runs.
    pub revision: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub heartbeat_at: OffsetDateTime,
    /// Its queue totals, as its queue viewer counts them (JSON).
    #[serde(skip)]
    pub queue: String,
}

/// The journal in PostgreSQL.
#[derive(Clone)]
pub struct Journal {
    pool: PgPool,
    url: String,
}

/// How long a statement may wait for PostgreSQL before the node calls it
/// unreachable (and refuses the change with 503).
const PG_TIMEOUT: Duration = Duration::from_secs(3);

impl Journal {
    /// Connects lazily: the node starts, and keeps running on its copy,
    /// whether or not PostgreSQL answers.
    pub fn new(url: &str) -> anyhow::Result<Journal> {
        let opts = PgConnectOptions::from_str(url)
            .with_context(|| "--config-store is not a valid postgres:// URL")?
            .application_name("ferry");
        let pool = PgPoolOptions::new()
            .max_connections(4)
            .acquire_timeout(PG_TIMEOUT)
            .connect_lazy_with(opts);
        Ok(Journal {
            pool,
            url: url.to_string(),
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// The journal's schema (sqlx's migrator locks it: two servers
    /// starting at once migrate one after the other).
    pub async fn migrate(&self) -> anyhow::Result<()> {
        tokio::time::timeout(
            PG_TIMEOUT * 4,
            sqlx::migrate!("./migrations/postgres").run(&self.pool),
        )
        .await
        .context("PostgreSQL did not answer")?
        .context("running the PostgreSQL migrations")?;
        Ok(())
    }

    pub async fn head(&self) -> anyhow::Result<i64> {
        Ok(tokio::time::timeout(
            PG_TIMEOUT,
            sqlx::query_scalar("SELECT revision FROM ferry_head WHERE id = 1")
                .fetch_one(&self.pool),
        )
        .await
        .context("PostgreSQL did not answer")??)
    }

    /// The rows changed after `revision` (tombstones included), and the
    /// revision they bring the node to; all rows (no tombstones) from 0.
    pub async fn since(&self, revision: i64) -> anyhow::Result<(i64, Vec<FleetRow>)> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            .execute(&mut *tx)
            .await?;
        let head: i64 = sqlx::query_scalar("SELECT revision FROM ferry_head WHERE id = 1")
            .fetch_one(&mut *tx)
            .await?;
        let rows: Vec<FleetRow> = sqlx::query_as(
            "SELECT tbl, key, name, version, spec, secret, created_at, updated_at, deleted \
             FROM ferry_rows WHERE revision > $1 AND (NOT deleted OR $1 > 0)",
        )
        .bind(revision)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok((head, rows))
    }

    /// Writes `rows` as the next revision, if the fleet is still at
    /// `expected`; the new revision. Every node is told by NOTIFY.
    pub async fn push(
        &self,
        expected: i64,
        rows: &[FleetRow],
        server: &str,
    ) -> Result<i64, PushError> {
        let unreachable = |e: &dyn std::fmt::Display| PushError::Unreachable(e.to_string());
        let work = async {
            let mut tx = self.pool.begin().await.map_err(|e| unreachable(&e))?;
            let head: i64 =
                sqlx::query_scalar("SELECT revision FROM ferry_head WHERE id = 1 FOR UPDATE")
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(|e| unreachable(&e))?;
            if head != expected {
                return Err(PushError::Stale(head));
            }
            let next = head + 1;
            for r in rows {
                sqlx::query(
                    "INSERT INTO ferry_rows (tbl, key, name, version, spec, secret, created_at, \
                     updated_at, revision, deleted) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
                     ON CONFLICT (tbl, key) DO UPDATE SET name = $3, version = $4, spec = $5, \
                     secret = $6, created_at = $7, updated_at = $8, revision = $9, deleted = $10",
                )
                .bind(&r.tbl)
                .bind(&r.key)
                .bind(&r.name)
                .bind(r.version)
                .bind(&r.spec)
                .bind(&r.secret)
                .bind(&r.created_at)
                .bind(&r.updated_at)
                .bind(next)
                .bind(r.deleted)
                .execute(&mut *tx)
                .await
                .map_err(|e| unreachable(&e))?;
            }
            sqlx::query(
                "UPDATE ferry_head SET revision = $1, changed_at = now(), changed_by = $2 WHERE id = 1",
            )
            .bind(next)
            .bind(server)
            .execute(&mut *tx)
            .await
            .map_err(|e| unreachable(&e))?;
            sqlx::query("SELECT pg_notify('ferry_config', $1)")
                .bind(next.to_string())
                .execute(&mut *tx)
                .await
                .map_err(|e| unreachable(&e))?;
            tx.commit().await.map_err(|e| unreachable(&e))?;
            Ok(next)
        };
        match tokio::time::timeout(PG_TIMEOUT * 2, work).await {
            Ok(r) => r,
            Err(_) => Err(PushError::Unreachable("it did not answer in time".into())),
        }
    }

    /// A connection that hears every change (LISTEN ferry_config).
    pub async fn listen(&self) -> anyhow::Result<sqlx::postgres::PgListener> {
        let mut l =
            tokio::time::timeout(PG_TIMEOUT, sqlx::postgres::PgListener::connect(&self.url))
                .await
                .context("PostgreSQL did not answer")??;
        l.listen("ferry_config").await?;
        Ok(l)
    }

    /// Records this node's heartbeat.
    pub async fn heartbeat(&self, s: &ServerEntry) -> anyhow::Result<()> {
        tokio::time::timeout(
            PG_TIMEOUT,
            sqlx::query(
                "INSERT INTO ferry_servers (name, role, version, fqdn, api, revision, started_at, \
                 heartbeat_at, queue) VALUES ($1, $2, $3, $4, $5, $6, $7, now(), $8) \
                 ON CONFLICT (name) DO UPDATE SET role = $2, version = $3, fqdn = $4, api = $5, \
                 revision = $6, started_at = $7, heartbeat_at = now(), queue = $8",
            )
            .bind(&s.name)
            .bind(&s.role)
            .bind(&s.version)
            .bind(&s.fqdn)
            .bind(&s.api)
            .bind(s.revision)
            .bind(s.started_at)
            .bind(&s.queue)
            .execute(&self.pool),
        )
        .await
        .context("PostgreSQL did not answer")??;
        Ok(())
    }

    pub async fn servers(&self) -> anyhow::Result<Vec<ServerEntry>> {
        Ok(tokio::time::timeout(
            PG_TIMEOUT,
            sqlx::query_as(
                "SELECT name, role, version, fqdn, api, revision, started_at, heartbeat_at, queue \
                 FROM ferry_servers ORDER BY name",
            )
            .fetch_all(&self.pool),
        )
        .await
        .context("PostgreSQL did not answer")??)
    }

    /// Whether PostgreSQL answers now.
    pub async fn ping(&self) -> bool {
        let Ok(Ok(mut c)) = tokio::time::timeout(PG_TIMEOUT, self.pool.acquire()).await else {
            return false;
        };
        matches!(tokio::time::timeout(PG_TIMEOUT, c.ping()).await, Ok(Ok(())))
    }
}
