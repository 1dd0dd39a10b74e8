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

pub mod queue;
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

/// The tables that hold configuration objects of one kind each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    ReceiveConnectors,
    SendConnectors,
    AcceptedDomains,
    Credentials,
    Certificates,
}

impl Table {
    fn name(self) -> &'static str {
        match self {
            Table::ReceiveConnectors => "receive_connectors",
            Table::SendConnectors => "send_connectors",
            Table::AcceptedDomains => "accepted_domains",
            Table::Credentials => "credentials",
            Table::Certificates => "certificates",
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

impl Store {
    /// Opens (creating if needed) the database and runs pending migrations.
    pub async fn open(path: &Path) -> anyhow::Result<Store> {
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
        Ok(())
    }

    pub async fn set_admin_token_hash(
        conn: &mut SqliteConnection,
        hash: &str,
    ) -> anyhow::Result<()> {
        sqlx::query("UPDATE server SET admin_token_sha256 = ? WHERE id = 1")
            .bind(hash)
            .execute(&mut *conn)
            .await?;
        Ok(())
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
