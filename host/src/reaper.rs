//! The lease reaper: fails in-progress operations whose agent stopped reporting, and collects
//! availability reports no endpoint uses any more.
//!
//! Every replica runs this loop, but only the one holding a session advisory lock on a
//! dedicated connection acts. If that replica dies, its connection closes, the lock is released,
//! and another replica takes over on its next tick.

use std::time::{Duration, Instant};

use sqlx::{Acquire, PgConnection, PgPool};
use tokio_util::sync::CancellationToken;

use crate::db;

/// How often unused availability reports are collected, and how long one must have been unused.
const COLLECT_EVERY: Duration = Duration::from_secs(300);
const UNUSED_FOR: Duration = Duration::from_secs(3600);

/// Runs until `shutdown` is cancelled.
pub async fn run(db: PgPool, interval: Duration, shutdown: CancellationToken) {
    let mut leader: Option<PgConnection> = None;
    let mut last_collect: Option<Instant> = None;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
        if leader.is_none() {
            leader = try_lead(&db).await;
        }
        if let Some(conn) = leader.as_mut() {
            match expire(conn).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(expired = n, "failed operations whose lease expired"),
                Err(e) => {
                    tracing::warn!(error = %e, "lease reaper lost its database connection; re-electing");
                    leader = None;
                    continue;
                }
            }
            if last_collect.is_none_or(|at| at.elapsed() >= COLLECT_EVERY) {
                last_collect = Some(Instant::now());
                match db::availability::collect(&mut *conn, UNUSED_FOR).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(collected = n, "deleted unused availability reports"),
                    Err(e) => tracing::warn!(error = %e, "cannot collect availability reports"),
                }
            }
        }
    }
}

/// Takes a connection out of the pool for good (so that dropping it closes the session and
/// releases the lock) and tries to become leader on it.
async fn try_lead(db: &PgPool) -> Option<PgConnection> {
    let mut conn = db.acquire().await.ok()?.detach();
    let won = db::leases::try_lead(&mut conn).await.ok()?;
    if won {
        tracing::info!("this replica now runs the lease reaper");
        Some(conn)
    } else {
        None
    }
}

async fn expire(conn: &mut PgConnection) -> Result<i32, sqlx::Error> {
    let mut tx = conn.begin().await?;
    let n = db::operations::expire_leases(&mut *tx, "system:reaper").await?;
    tx.commit().await?;
    Ok(n)
}
