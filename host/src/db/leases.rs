//! Leadership of the lease reaper: a session advisory lock held on a dedicated connection.

use sqlx::PgConnection;

/// Tries to take the reaper's advisory lock (class 3, object 2) on `conn`'s session. The lock
/// lasts as long as the session, so the connection must not go back to the pool.
pub async fn try_lead(conn: &mut PgConnection) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT pg_try_advisory_lock(3, 2)")
        .fetch_one(conn)
        .await
}
