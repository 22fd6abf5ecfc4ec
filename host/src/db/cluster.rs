//! The PostgreSQL cluster itself rather than the host's tables: who else is connected.

use sqlx::PgExecutor;

/// How many client sessions not named `application` the cluster has: a command that started
/// the embedded cluster for itself stops it only when nobody else (a host that does not take
/// the data directory's lock) uses it.
pub async fn other_sessions(
    db: impl PgExecutor<'_>,
    application: &str,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity
         WHERE backend_type = 'client backend' AND application_name IS DISTINCT FROM $1",
    )
    .bind(application)
    .fetch_one(db)
    .await
}
