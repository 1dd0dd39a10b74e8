//! The only code that speaks SQL. Configuration lives in SQLite (WAL,
//! `synchronous=FULL`); schema changes are the migrations in `migrations/`.
//! Every write goes through a transaction handed out by [`Store::begin`].

use anyhow::Context;
use serde::{Serialize, de::DeserializeOwned};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{SqliteConnection, SqlitePool};
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

use crate::model::Role;

pub mod api_tokens;
pub mod audit;
mod directory;
pub mod dmarc;
pub mod fleet;
pub mod queue;
pub mod tlsrpt;
pub mod tracking;

/// A stored configuration object with its identity and version.
#[derive(Debug, Clone)]
pub struct Stored<T> {
    pub id: Uuid,
    /// Increases by one on every change; the API's ETag.
    pub version: i64,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub spec: T,
    /// Sealed secret or hash, never shown by the API.
    pub secret: Option<Vec<u8>>,
}

impl<T> Stored<T> {
    /// A singleton document that was never written: its default, version 0.
    pub fn unwritten(spec: T) -> Stored<T> {
        Stored {
            id: Uuid::nil(),
            version: 0,
            created_at: OffsetDateTime::UNIX_EPOCH,
            updated_at: OffsetDateTime::UNIX_EPOCH,
            spec,
            secret: None,
        }
    }
}

/// The tables that hold configuration objects of one kind each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    ReceiveConnectors,
    SendConnectors,
    AcceptedDomains,
    Credentials,
    Certificates,
    IpListEntries,
    IpListProviders,
    DkimKeys,
    Webhooks,
    AcmeCertificates,
}

impl Table {
    fn name(self) -> &'static str {
        match self {
            Table::ReceiveConnectors => "receive_connectors",
            Table::SendConnectors => "send_connectors",
            Table::AcceptedDomains => "accepted_domains",
            Table::Credentials => "credentials",
            Table::Certificates => "certificates",
            Table::IpListEntries => "ip_list_entries",
            Table::IpListProviders => "ip_list_providers",
            Table::DkimKeys => "dkim_keys",
            Table::Webhooks => "webhooks",
            Table::AcmeCertificates => "acme_certificates",
        }
    }
}

/// The server row written at first start.
#[derive(Debug, Clone)]
pub struct ServerRow {
    pub role: Role,
    pub server_name: String,
    pub admin_token_sha256: String,
}

#[derive(sqlx::FromRow)]
struct Row {
    id: String,
    version: i64,
    spec: String,
    secret: Option<Vec<u8>>,
    created_at: String,
    updated_at: String,
}

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .expect("0 is valid")
}

fn ts(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).expect("UTC times format")
}

fn parse_row<T: DeserializeOwned>(r: Row) -> anyhow::Result<Stored<T>> {
    Ok(Stored {
        id: Uuid::parse_str(&r.id)?,
        version: r.version,
        created_at: OffsetDateTime::parse(&r.created_at, &Rfc3339)?,
        updated_at: OffsetDateTime::parse(&r.updated_at, &Rfc3339)?,
        spec: serde_json::from_str(&r.spec)
            .with_context(|| format!("stored object {} does not parse", r.id))?,
        secret: r.secret,
    })
}

#[derive(Clone)]
pub struct Store {
    pool: SqlitePool,
}

pub type Tx = sqlx::Transaction<'static, sqlx::Sqlite>;

/// What to do about a damaged configuration database.
const CONFIG_RECOVERY: &str = "Stop Ferry and keep a copy of the file. Restore ferry.db from a \
    backup, or salvage it with `sqlite3 ferry.db .recover | sqlite3 ferry-recovered.db` and put \
    that in its place (the sqlite3 package). Moving ferry.db away starts from the default \
    configuration";

/// What to do about a damaged queue.
pub const QUEUE_RECOVERY: &str = "Stop Ferry and keep a copy of the file (and queue.db-wal if \
    present). Salvage it with `sqlite3 queue.db .recover | sqlite3 queue-recovered.db` (the \
    sqlite3 package) and put that in its place; or move queue.db away to start with an empty \
    queue, knowing that the messages in it will not be delivered";

/// What to do about a damaged tracking log.
pub const TRACKING_RECOVERY: &str = "Stop Ferry and move tracking.db away: it holds only the \
    message tracking log, and a new one is created at start";

/// `PRAGMA quick_check` on an existing database before Ferry trusts it:
/// a damaged file refuses the start, naming the file and the way out,
/// rather than acknowledging mail into storage that cannot be read back.
pub fn check_integrity(path: &Path, recovery: &str) -> anyhow::Result<()> {
    if !path.exists() {
        return Ok(());
    }
    let damaged =
        |why: String| anyhow::anyhow!("{} is damaged ({why}). {recovery}", path.display());
    let conn = rusqlite::Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| damaged(e.to_string()))?;
    let mut stmt = conn
        .prepare("PRAGMA quick_check")
        .map_err(|e| damaged(e.to_string()))?;
    let rows: Vec<String> = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .and_then(|rows| rows.collect())
        .map_err(|e| damaged(e.to_string()))?;
    if rows.len() == 1 && rows[0] == "ok" {
        return Ok(());
    }
    Err(damaged(
        rows.into_iter().take(3).collect::<Vec<_>>().join("; "),
    ))
}

impl Store {
    /// Opens (creating if needed) the database and runs pending migrations.
    pub async fn open(path: &Path) -> anyhow::Result<Store> {
        check_integrity(path, CONFIG_RECOVERY)?;
        let opts = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(opts)
            .await
            .with_context(|| format!("opening {}", path.display()))?;
        sqlx::migrate!("./migrations/config")
            .run(&pool)
            .await
            .context("running migrations")?;
        Ok(Store { pool })
    }

    /// After a lost secret key, with the admin's consent: certificates lose
    /// the private keys sealed with it (the API then shows them without one,
    /// and STARTTLS is not offered with them), and each smart-host
    /// credential, whose password cannot be read any more, is named in the
    /// log to be set again.
    pub async fn discard_sealed_secrets(&self) -> anyhow::Result<()> {
        let mut tx = self.begin().await?;
        let certs: Vec<(String,)> =
            sqlx::query_as("SELECT name FROM certificates WHERE secret IS NOT NULL")
                .fetch_all(&mut *tx)
                .await?;
        sqlx::query("UPDATE certificates SET secret = NULL, version = version + 1")
            .execute(&mut *tx)
            .await?;
        let creds: Vec<(String,)> = sqlx::query_as(
            "SELECT name FROM credentials WHERE json_extract(spec, '$.kind') = 'SmartHost'",
        )
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        for (c,) in certs {
            tracing::warn!(certificate = %c, "the private key of this certificate was sealed with the lost secret key and has been dropped: import the certificate again with its key");
        }
        for (c,) in creds {
            tracing::warn!(credential = %c, "the password of this smart-host credential was sealed with the lost secret key: set it again with PATCH /api/v1/credentials/{{name}}");
        }
        Ok(())
    }

    pub async fn begin(&self) -> anyhow::Result<Tx> {
        Ok(self.pool.begin().await?)
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    pub async fn server(conn: &mut SqliteConnection) -> anyhow::Result<Option<ServerRow>> {
        let row: Option<(String, String, String)> =
            sqlx::query_as("SELECT role, server_name, admin_token_sha256 FROM server WHERE id = 1")
                .fetch_optional(&mut *conn)
                .await?;
        row.map(|(role, server_name, admin_token_sha256)| {
            Ok(ServerRow {
                role: role.parse().map_err(anyhow::Error::msg)?,
                server_name,
                admin_token_sha256,
            })
        })
        .transpose()
    }

    pub async fn insert_server(conn: &mut SqliteConnection, s: &ServerRow) -> anyhow::Result<()> {
        sqlx::query("INSERT INTO server (id, role, server_name, admin_token_sha256, created_at) VALUES (1, ?, ?, ?, ?)")
            .bind(s.role.as_str())
            .bind(&s.server_name)
            .bind(&s.admin_token_sha256)
            .bind(ts(now()))
            .execute(&mut *conn)
            .await?;
        Store::set_bootstrap_token(conn, &s.admin_token_sha256).await
    }

    pub async fn set_admin_token_hash(
        conn: &mut SqliteConnection,
        hash: &str,
    ) -> anyhow::Result<()> {
        sqlx::query("UPDATE server SET admin_token_sha256 = ? WHERE id = 1")
            .bind(hash)
            .execute(&mut *conn)
            .await?;
        Store::set_bootstrap_token(conn, hash).await
    }

    pub async fn transport_settings<T: DeserializeOwned>(
        conn: &mut SqliteConnection,
    ) -> anyhow::Result<Stored<T>> {
        let row: Row = sqlx::query_as(
            "SELECT '00000000-0000-0000-0000-000000000001' AS id, version, spec, NULL AS secret, created_at, updated_at \
             FROM transport_settings WHERE id = 1",
        )
        .fetch_one(&mut *conn)
        .await
        .context("transport settings are missing")?;
        parse_row(row)
    }

    /// Writes the transport settings; `expected` is the version the caller
    /// read (None at first start). Returns the new version.
    pub async fn put_transport_settings<T: Serialize>(
        conn: &mut SqliteConnection,
        spec: &T,
        expected: Option<i64>,
    ) -> anyhow::Result<i64> {
        let json = serde_json::to_string(spec)?;
        let t = ts(now());
        match expected {
            None => {
                sqlx::query("INSERT INTO transport_settings (id, version, spec, created_at, updated_at) VALUES (1, 1, ?, ?, ?)")
                    .bind(json)
                    .bind(&t)
                    .bind(&t)
                    .execute(&mut *conn)
                    .await?;
                Ok(1)
            }
            Some(v) => {
                let done = sqlx::query("UPDATE transport_settings SET version = version + 1, spec = ?, updated_at = ? WHERE id = 1 AND version = ?")
                    .bind(json)
                    .bind(&t)
                    .bind(v)
                    .execute(&mut *conn)
                    .await?;
                anyhow::ensure!(
                    done.rows_affected() == 1,
                    "transport settings changed concurrently"
                );
                Ok(v + 1)
            }
        }
    }

    /// A singleton document by kind; None while it is at its default.
    pub async fn setting<T: DeserializeOwned>(
        conn: &mut SqliteConnection,
        kind: &str,
    ) -> anyhow::Result<Option<Stored<T>>> {
        let row: Option<Row> = sqlx::query_as(
            "SELECT '00000000-0000-0000-0000-000000000002' AS id, version, spec, NULL AS secret, created_at, updated_at \
             FROM settings WHERE kind = ?",
        )
        .bind(kind)
        .fetch_optional(&mut *conn)
        .await?;
        row.map(parse_row).transpose()
    }

    /// Writes a singleton document if it is still at `expected` (0: never
    /// written). Returns the new version.
    pub async fn put_setting<T: Serialize>(
        conn: &mut SqliteConnection,
        kind: &str,
        spec: &T,
        expected: i64,
    ) -> anyhow::Result<i64> {
        let json = serde_json::to_string(spec)?;
        let t = ts(now());
        let done = if expected == 0 {
            sqlx::query(
                "INSERT INTO settings (kind, version, spec, created_at, updated_at) VALUES (?, 1, ?, ?, ?) \
                 ON CONFLICT (kind) DO NOTHING",
            )
            .bind(kind)
            .bind(json)
            .bind(&t)
            .bind(&t)
            .execute(&mut *conn)
            .await?
        } else {
            sqlx::query(
                "UPDATE settings SET version = version + 1, spec = ?, updated_at = ? WHERE kind = ? AND version = ?",
            )
            .bind(json)
            .bind(&t)
            .bind(kind)
            .bind(expected)
            .execute(&mut *conn)
            .await?
        };
        anyhow::ensure!(done.rows_affected() == 1, "{kind} changed concurrently");
        Ok(expected + 1)
    }

    pub async fn list<T: DeserializeOwned>(
        conn: &mut SqliteConnection,
        table: Table,
    ) -> anyhow::Result<Vec<Stored<T>>> {
        let sql = format!(
            "SELECT id, version, spec, secret, created_at, updated_at FROM {} ORDER BY name COLLATE NOCASE",
            table.name()
        );
        let rows: Vec<Row> = sqlx::query_as(&sql).fetch_all(&mut *conn).await?;
        rows.into_iter().map(parse_row).collect()
    }

    /// Inserts a new object at version 1.
    pub async fn insert<T: Serialize>(
        conn: &mut SqliteConnection,
        table: Table,
        id: Uuid,
        name: &str,
        spec: &T,
        secret: Option<&[u8]>,
    ) -> anyhow::Result<()> {
        let t = ts(now());
        let sql = format!(
            "INSERT INTO {} (id, name, version, spec, secret, created_at, updated_at) VALUES (?, ?, 1, ?, ?, ?, ?)",
            table.name()
        );
        sqlx::query(&sql)
            .bind(id.to_string())
            .bind(name)
            .bind(serde_json::to_string(spec)?)
            .bind(secret)
            .bind(&t)
            .bind(&t)
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    /// Replaces an object if it is still at `expected` version; `secret`
    /// None keeps the stored one.
    pub async fn update<T: Serialize>(
        conn: &mut SqliteConnection,
        table: Table,
        id: Uuid,
        expected: i64,
        name: &str,
        spec: &T,
        secret: Option<&[u8]>,
    ) -> anyhow::Result<()> {
        let sql = format!(
            "UPDATE {} SET name = ?, version = version + 1, spec = ?, secret = COALESCE(?, secret), updated_at = ? \
             WHERE id = ? AND version = ?",
            table.name()
        );
        let done = sqlx::query(&sql)
            .bind(name)
            .bind(serde_json::to_string(spec)?)
            .bind(secret)
            .bind(ts(now()))
            .bind(id.to_string())
            .bind(expected)
            .execute(&mut *conn)
            .await?;
        anyhow::ensure!(
            done.rows_affected() == 1,
            "object {id} changed concurrently"
        );
        Ok(())
    }

    pub async fn delete(
        conn: &mut SqliteConnection,
        table: Table,
        id: Uuid,
        expected: i64,
    ) -> anyhow::Result<()> {
        let sql = format!("DELETE FROM {} WHERE id = ? AND version = ?", table.name());
        let done = sqlx::query(&sql)
            .bind(id.to_string())
            .bind(expected)
            .execute(&mut *conn)
            .await?;
        anyhow::ensure!(
            done.rows_affected() == 1,
            "object {id} changed concurrently"
        );
        Ok(())
    }
}
