//! The recipient directory's SQL (`recipients` in the configuration
//! database). The in-memory index and its rules live in `directory/`.

use sqlx::{QueryBuilder, Sqlite, SqliteConnection};

use super::Store;

/// Rows per INSERT: two parameters each, well under SQLite's limit.
const CHUNK: usize = 5000;

impl Store {
    /// Every (address, primary address) row.
    pub async fn directory(&self) -> anyhow::Result<Vec<(String, String)>> {
        Ok(
            sqlx::query_as("SELECT address, primary_address FROM recipients")
                .fetch_all(&self.pool)
                .await?,
        )
    }

    /// Writes recipients' rows in one transaction: all others first removed
    /// when `replace`, else the named recipients' old rows replaced.
    pub async fn write_directory(
        &self,
        rows: &[(String, String)],
        replace: bool,
    ) -> anyhow::Result<()> {
        let mut tx = self.begin().await?;
        if replace {
            sqlx::query("DELETE FROM recipients")
                .execute(&mut *tx)
                .await?;
        } else {
            let mut primaries: Vec<&str> = rows.iter().map(|(_, p)| p.as_str()).collect();
            primaries.dedup();
            for chunk in primaries.chunks(CHUNK) {
                let mut q: QueryBuilder<Sqlite> =
                    QueryBuilder::new("DELETE FROM recipients WHERE primary_address IN (");
                let mut sep = q.separated(", ");
                for p in chunk {
                    sep.push_bind(*p);
                }
                q.push(")");
                q.build().execute(&mut *tx).await?;
            }
        }
        insert(&mut tx, rows).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Removes the recipient whose primary address is `primary`.
    pub async fn remove_recipient(&self, primary: &str) -> anyhow::Result<u64> {
        Ok(
            sqlx::query("DELETE FROM recipients WHERE primary_address = ?")
                .bind(primary)
                .execute(&self.pool)
                .await?
                .rows_affected(),
        )
    }
}

async fn insert(conn: &mut SqliteConnection, rows: &[(String, String)]) -> anyhow::Result<()> {
    for chunk in rows.chunks(CHUNK) {
        let mut q: QueryBuilder<Sqlite> =
            QueryBuilder::new("INSERT OR REPLACE INTO recipients (address, primary_address) ");
        q.push_values(chunk, |mut b, (a, p)| {
            b.push_bind(a).push_bind(p);
        });
        q.build().execute(&mut *conn).await?;
    }
    Ok(())
}
