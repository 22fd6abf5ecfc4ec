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
pub mod states;

use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPoolOptions};

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
    use sqlx::Connection;
    let connection = PgConnection::connect_with(options)
        .await
        .map_err(DatabaseSetupError::MigrationConnect)?;
    let mut migrator = migrator::Migrator(connection);
    sqlx::query(MIGRATION_LOCK)
        .execute(&mut migrator.0)
        .await
        .map_err(DatabaseSetupError::MigrationConnect)?;
    let outcome = migrations::runner().run_async(&mut migrator).await;
    // Closing the session releases the lock too; an unlock failure (a dropped connection)
    // must not hide the migration's own error.
    let _ = sqlx::query(MIGRATION_UNLOCK).execute(&mut migrator.0).await;
    let _ = migrator.0.close().await;
    let report = outcome?;
    for migration in report.applied_migrations() {
        tracing::info!(migration = %migration, "applied database migration");
    }
    let pool = PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options.clone())
        .await?;
    Ok(pool)
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
