//! refinery's migration runner driven over an sqlx connection.
//!
//! refinery ships drivers for other PostgreSQL clients only. Running it over sqlx means one
//! client, one URL syntax and one TLS setup (`sslmode`, `sslrootcert`) for both the migrations
//! and the pool; the bookkeeping table is refinery's own, unchanged.

use refinery_core::Migration;
use refinery_core::traits::r#async::{AsyncMigrate, AsyncQuery, AsyncTransaction};
use sqlx::{Connection, Executor, PgConnection, Row};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// A connection that refinery migrates through.
pub struct Migrator(pub PgConnection);

/// Why refinery's bookkeeping could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum MigratorError {
    /// The statement failed.
    #[error(transparent)]
    Sql(#[from] sqlx::Error),
    /// A row of refinery's history table is not what refinery writes.
    #[error("unreadable migration history row: {0}")]
    History(String),
}

#[async_trait::async_trait]
impl AsyncTransaction for Migrator {
    type Error = MigratorError;

    /// Runs the scripts in one transaction (a migration and its history row commit together).
    async fn execute(&mut self, queries: &[&str]) -> Result<usize, Self::Error> {
        let mut tx = self.0.begin().await?;
        for query in queries {
            // Without arguments sqlx uses the simple-query protocol, which takes a whole script
            // (many statements, `$$` bodies).
            tx.execute(*query).await?;
        }
        tx.commit().await?;
        Ok(queries.len())
    }
}

#[async_trait::async_trait]
impl AsyncQuery<Vec<Migration>> for Migrator {
    async fn query(&mut self, query: &str) -> Result<Vec<Migration>, Self::Error> {
        let rows = self.0.fetch_all(query).await?;
        rows.iter()
            .map(|row| {
                let version: i32 = row.try_get(0)?;
                let name: String = row.try_get(1)?;
                let applied_on: String = row.try_get(2)?;
                let checksum: String = row.try_get(3)?;
                let applied_on = OffsetDateTime::parse(&applied_on, &Rfc3339)
                    .map_err(|e| MigratorError::History(format!("applied_on: {e}")))?;
                let checksum = checksum
                    .parse::<u64>()
                    .map_err(|e| MigratorError::History(format!("checksum: {e}")))?;
                Ok(Migration::applied(version, name, applied_on, checksum))
            })
            .collect()
    }
}

impl AsyncMigrate for Migrator {}
