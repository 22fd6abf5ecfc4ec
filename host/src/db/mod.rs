//! Database access: connection, migrations, and one module of SQL per concept.
//!
//! The SQL that enforces the operation lifecycle lives in `sql/` as stored procedures; the
//! modules here call them and map rows to Rust types, nothing more.

pub mod availability;
pub mod endpoints;
pub mod enrollment;
pub mod operations;
pub mod plugins;
pub mod pools;
pub mod states;

use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

refinery::embed_migrations!("../sql");

/// Session advisory lock key (class 3) held while migrating, so replicas migrate one at a time.
const MIGRATION_LOCK: &str = "SELECT pg_advisory_lock(3, 1)";
const MIGRATION_UNLOCK: &str = "SELECT pg_advisory_unlock(3, 1)";

/// Why the database could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum DatabaseSetupError {
    /// The database URL is malformed.
    #[error("invalid database URL: {0}")]
    InvalidUrl(String),
    /// Connecting for migrations failed.
    #[error("cannot connect to PostgreSQL for migrations: {0}")]
    MigrationConnect(#[from] tokio_postgres::Error),
    /// A migration failed.
    #[error("database migration failed: {0}")]
    Migration(#[from] refinery::Error),
    /// The connection pool could not be opened.
    #[error("cannot connect to PostgreSQL: {0}")]
    Connect(#[from] sqlx::Error),
}

/// Where the host's database is: connection options for sqlx and for the migration runner.
pub struct DatabaseTarget {
    /// Options for the sqlx pool.
    pub sqlx: PgConnectOptions,
    /// The same database for `tokio_postgres`, which refinery drives.
    pub migrations: tokio_postgres::Config,
}

impl DatabaseTarget {
    /// Parses an external PostgreSQL URL. The error never echoes the URL, which may hold a password.
    pub fn from_url(url: &str) -> Result<Self, DatabaseSetupError> {
        let sqlx = url.parse::<PgConnectOptions>().map_err(|_| {
            DatabaseSetupError::InvalidUrl("not a postgres:// URL sqlx accepts".into())
        })?;
        let migrations = url.parse::<tokio_postgres::Config>().map_err(|_| {
            DatabaseSetupError::InvalidUrl("not a postgres:// URL tokio-postgres accepts".into())
        })?;
        Ok(Self { sqlx, migrations })
    }
}

/// Runs pending migrations from `sql/` and opens the connection pool.
pub async fn connect_and_migrate(
    target: &DatabaseTarget,
    max_connections: u32,
) -> Result<PgPool, DatabaseSetupError> {
    let (mut client, connection) = target.migrations.connect(tokio_postgres::NoTls).await?;
    let driver = tokio::spawn(connection);
    client.execute(MIGRATION_LOCK, &[]).await?;
    let outcome = migrations::runner().run_async(&mut client).await;
    client.execute(MIGRATION_UNLOCK, &[]).await?;
    drop(client);
    let _ = driver.await;
    let report = outcome?;
    for migration in report.applied_migrations() {
        tracing::info!(migration = %migration, "applied database migration");
    }
    let pool = PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(target.sqlx.clone())
        .await?;
    Ok(pool)
}
