//! Database access: connection, migrations, and one module of SQL per concept.
//!
//! The SQL that enforces the operation lifecycle lives in `sql/` as stored procedures; the
//! modules here call them and map rows to Rust types, nothing more.

pub mod admin_tokens;
pub mod availability;
pub mod cluster;
pub mod endpoints;
pub mod enrollment;
pub mod events;
pub mod leases;
pub mod migrator;
pub mod operations;
pub mod plugins;
pub mod pools;
pub mod reporting;
pub mod states;

use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPoolOptions};

refinery::embed_migrations!("../sql");

/// Session advisory lock key (class 3) held while migrating, so replicas migrate one at a time.
const MIGRATION_LOCK: &str = "SELECT pg_advisory_lock(3, 1)";
const MIGRATION_UNLOCK: &str = "SELECT pg_advisory_unlock(3, 1)";
/// Taken by a reader of the schema history: it waits for a migration in progress to finish.
const MIGRATION_WAIT: &str = "SELECT pg_advisory_lock_shared(3, 1)";
/// How long a reader waits for a migration in progress (lock_not_available, 55P03, after).
const MIGRATION_WAIT_TIMEOUT: &str = "SET lock_timeout = '60s'";
/// refinery's history table, one row per applied migration.
const HISTORY_TABLE_EXISTS: &str = "SELECT to_regclass('refinery_schema_history') IS NOT NULL";

/// Why the database could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum DatabaseSetupError {
    /// The database URL is malformed.
    #[error("invalid database URL: {0}")]
    InvalidUrl(String),
    /// Connecting for migrations failed (refused, authentication, TLS).
    #[error("cannot connect to PostgreSQL for migrations: {0}")]
    MigrationConnect(sqlx::Error),
    /// A migration failed.
    #[error("database migration failed: {0}")]
    Migration(#[from] refinery::Error),
    /// The connection pool could not be opened.
    #[error("cannot connect to PostgreSQL: {0}")]
    Connect(#[from] sqlx::Error),
}

/// Parses an external PostgreSQL URL as sqlx reads it (with libpq-style `sslmode`, `sslrootcert`).
/// The error never echoes the URL, which may hold a password.
pub fn options_from_url(url: &str) -> Result<PgConnectOptions, DatabaseSetupError> {
    // sqlx reads any scheme as PostgreSQL; a `mysql://` URL would fail later and less clearly.
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err(DatabaseSetupError::InvalidUrl(
            "it must start with postgres:// or postgresql://".into(),
        ));
    }
    url.parse::<PgConnectOptions>()
        .map_err(|e| DatabaseSetupError::InvalidUrl(without_secrets(&e)))
}

/// sqlx's reason for refusing a URL, unless it might quote the URL (and so a password).
fn without_secrets(error: &sqlx::Error) -> String {
    match error {
        sqlx::Error::Configuration(reason) if !reason.to_string().contains('@') => {
            reason.to_string()
        }
        _ => "not a postgres:// URL".into(),
    }
}

/// Runs pending migrations from `sql/` and opens the connection pool.
pub async fn connect_and_migrate(
    options: &PgConnectOptions,
    max_connections: u32,
) -> Result<PgPool, DatabaseSetupError> {
    migrate(options, refinery::Target::Latest).await?;
    connect(options, max_connections).await
}

/// Runs the pending migrations up to `version` and no further: the schema a host of an older
/// version leaves, for tests of what meets it.
pub async fn migrate_up_to(
    options: &PgConnectOptions,
    version: u32,
) -> Result<(), DatabaseSetupError> {
    migrate(options, refinery::Target::Version(version)).await
}

async fn migrate(
    options: &PgConnectOptions,
    target: refinery::Target,
) -> Result<(), DatabaseSetupError> {
    use sqlx::Connection;
    let connection = PgConnection::connect_with(options)
        .await
        .map_err(DatabaseSetupError::MigrationConnect)?;
    let mut migrator = migrator::Migrator(connection);
    sqlx::query(MIGRATION_LOCK)
        .execute(&mut migrator.0)
        .await
        .map_err(DatabaseSetupError::MigrationConnect)?;
    let outcome = migrations::runner()
        .set_target(target)
        .run_async(&mut migrator)
        .await;
    // Closing the session releases the lock too; an unlock failure (a dropped connection)
    // must not hide the migration's own error.
    let _ = sqlx::query(MIGRATION_UNLOCK).execute(&mut migrator.0).await;
    let _ = migrator.0.close().await;
    let report = outcome?;
    for migration in report.applied_migrations() {
        tracing::info!(migration = %migration, "applied database migration");
    }
    Ok(())
}

/// Opens the connection pool, migrating nothing.
pub async fn connect(
    options: &PgConnectOptions,
    max_connections: u32,
) -> Result<PgPool, DatabaseSetupError> {
    let pool = PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options.clone())
        .await?;
    Ok(pool)
}

/// A database's migration history, against the migrations this build knows.
#[derive(Debug)]
pub struct SchemaHistory {
    /// How many migrations it records as applied (none before a host first migrates it).
    pub applied: usize,
    /// The migrations this build knows that it has not applied (`V9__admin_tokens`), oldest
    /// first.
    pub missing: Vec<String>,
}

/// Reads the migration history without migrating, for commands that use a database a host of
/// another version may be using. A migration in progress is waited for (up to a minute, then
/// the error is lock_not_available, 55P03), so what it applies counts.
pub async fn schema_history(
    options: &PgConnectOptions,
) -> Result<SchemaHistory, DatabaseSetupError> {
    use sqlx::Connection;
    let connection = PgConnection::connect_with(options).await?;
    let mut migrator = migrator::Migrator(connection);
    let applied = applied_migrations(&mut migrator).await;
    // Closing the session releases the shared lock.
    let _ = migrator.0.close().await;
    let applied = applied?;
    let mut missing: Vec<_> = migrations::runner()
        .get_migrations()
        .iter()
        .filter(|known| !applied.iter().any(|done| done.version() == known.version()))
        .map(|known| (known.version(), known.to_string()))
        .collect();
    // In the order they apply (V9 before V10), not as their names sort.
    missing.sort();
    let missing = missing.into_iter().map(|(_, name)| name).collect();
    Ok(SchemaHistory {
        applied: applied.len(),
        missing,
    })
}

/// The applied migrations, read once no migration is in progress; none without a history table.
async fn applied_migrations(
    migrator: &mut migrator::Migrator,
) -> Result<Vec<refinery::Migration>, DatabaseSetupError> {
    sqlx::query(MIGRATION_WAIT_TIMEOUT)
        .execute(&mut migrator.0)
        .await?;
    sqlx::query(MIGRATION_WAIT).execute(&mut migrator.0).await?;
    let exists: bool = sqlx::query_scalar(HISTORY_TABLE_EXISTS)
        .fetch_one(&mut migrator.0)
        .await?;
    if !exists {
        return Ok(Vec::new());
    }
    Ok(migrations::runner()
        .get_applied_migrations_async(migrator)
        .await?)
}

/// Creates database `name` (a fixed identifier, never user input) unless it exists.
pub async fn create_database_if_missing(
    conn: &mut PgConnection,
    name: &str,
) -> Result<(), sqlx::Error> {
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(name)
            .fetch_one(&mut *conn)
            .await?;
    if !exists {
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Whether the database answers a trivial query, for the health check.
pub async fn ping(db: &PgPool) -> bool {
    sqlx::query("SELECT 1").execute(db).await.is_ok()
}

/// Whether the database has every migration this build knows applied (a readiness check: one
/// cheap query, no lock); an error when the database does not answer.
pub async fn schema_is_current(db: &PgPool) -> Result<bool, sqlx::Error> {
    let known: Vec<i32> = migrations::runner()
        .get_migrations()
        .iter()
        .map(|m| m.version() as i32)
        .collect();
    let applied: i64 = sqlx::query_scalar(
        "SELECT count(DISTINCT version) FROM refinery_schema_history WHERE version = ANY($1)",
    )
    .bind(&known)
    .fetch_one(db)
    .await?;
    Ok(applied == known.len() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_url_is_refused_without_quoting_its_password() {
        for url in [
            "postgres://u:hunter2@db:notaport/pacsync",
            "postgres://u:hunter2@db/pacsync?sslmode=sometimes",
            "mysql://u:hunter2@db/pacsync",
        ] {
            let error = options_from_url(url).unwrap_err().to_string();
            assert!(error.starts_with("invalid database URL"), "{error}");
            assert!(!error.contains("hunter2"), "{url}: {error}");
        }
        let tls = options_from_url("postgres://u:hunter2@db/pacsync?sslmode=verify-full");
        assert!(tls.is_ok(), "libpq-style TLS options are accepted");
    }
}
