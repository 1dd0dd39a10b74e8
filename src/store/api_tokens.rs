//! The API tokens' SQL (`api_tokens` in `ferry.db`).

use super::{Store, now, ts};
use uuid::Uuid;

/// One token as stored: its secret only as a SHA-256.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TokenRow {
    pub id: String,
    pub name: String,
    pub role: String,
    pub token_sha256: String,
    pub bootstrap: bool,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub revoked_at: Option<String>,
    pub last_used_at: Option<String>,
    pub last_used_from: Option<String>,
    pub client_certificate_sha256: Option<String>,
}

/// The id of the bootstrap admin token's row.
pub const BOOTSTRAP_ID: &str = "00000000-0000-0000-0000-00000000a001";

impl Store {
    pub async fn api_tokens(&self) -> anyhow::Result<Vec<TokenRow>> {
        Ok(sqlx::query_as(
            "SELECT id, name, role, token_sha256, bootstrap, created_at, expires_at, revoked_at, \
             last_used_at, last_used_from, client_certificate_sha256 FROM api_tokens ORDER BY bootstrap DESC, created_at, name",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// Adds a token; `Ok(None)` when the name (or the client certificate)
    /// is taken.
    pub async fn insert_api_token(
        &self,
        name: &str,
        role: &str,
        sha256: &str,
        expires_at: Option<&str>,
        client_certificate: Option<&str>,
    ) -> anyhow::Result<Option<Uuid>> {
        let id = Uuid::new_v4();
        let r = sqlx::query(
            "INSERT INTO api_tokens (id, name, role, token_sha256, created_at, expires_at, client_certificate_sha256) \
             VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        )
        .bind(id.to_string())
        .bind(name)
        .bind(role)
        .bind(sha256)
        .bind(ts(now()))
        .bind(expires_at)
        .bind(client_certificate)
        .execute(&self.pool)
        .await?;
        Ok((r.rows_affected() == 1).then_some(id))
    }

    /// Revokes a token unless that would leave no working Administrator
    /// token (checked in the same transaction). `Ok(false)`: refused.
    pub async fn revoke_api_token(&self, id: &str) -> anyhow::Result<bool> {
        let mut tx = self.begin().await?;
        let at = ts(now());
        sqlx::query("UPDATE api_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL")
            .bind(&at)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let (admins,): (i64,) = sqlx::query_as(
            "SELECT count(*) FROM api_tokens WHERE role = 'Administrator' AND revoked_at IS NULL \
             AND (expires_at IS NULL OR expires_at > ?)",
        )
        .bind(&at)
        .fetch_one(&mut *tx)
        .await?;
        if admins == 0 {
            return Ok(false);
        }
        tx.commit().await?;
        Ok(true)
    }

    /// A new secret for a token (the old one stops working), and
    /// optionally a new expiry.
    pub async fn rotate_api_token(
        &self,
        id: &str,
        sha256: &str,
        expires_at: Option<Option<&str>>,
    ) -> anyhow::Result<()> {
        let mut q = sqlx::QueryBuilder::new("UPDATE api_tokens SET token_sha256 = ");
        q.push_bind(sha256);
        if let Some(e) = expires_at {
            q.push(", expires_at = ").push_bind(e);
        }
        q.push(" WHERE id = ").push_bind(id);
        q.build().execute(&self.pool).await?;
        Ok(())
    }

    /// Records a token's use.
    pub async fn touch_api_token(&self, id: &str, at: &str, from: &str) -> anyhow::Result<()> {
        sqlx::query("UPDATE api_tokens SET last_used_at = ?, last_used_from = ? WHERE id = ?")
            .bind(at)
            .bind(from)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Sets the bootstrap admin token (`--admin-token`), and makes it
    /// work again if it had been revoked: giving it is how an operator
    /// with shell access gets back in.
    pub async fn set_bootstrap_token(
        conn: &mut sqlx::SqliteConnection,
        sha256: &str,
    ) -> anyhow::Result<()> {
        sqlx::query(
            "INSERT INTO api_tokens (id, name, role, token_sha256, bootstrap, created_at) \
             VALUES (?1, 'admin', 'Administrator', ?2, 1, ?3) \
             ON CONFLICT (id) DO UPDATE SET token_sha256 = ?2, revoked_at = NULL, expires_at = NULL",
        )
        .bind(BOOTSTRAP_ID)
        .bind(sha256)
        .bind(ts(now()))
        .execute(&mut *conn)
        .await?;
        Ok(())
    }
}
