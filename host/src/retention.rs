//! Retention of package states: states nothing needs any more are collected once they are older
//! than `--state-retention-days`, so the database does not grow with every report forever.
//!
//! **What is kept.** A state stays while it is an endpoint's current state; in an endpoint's
//! history within the retention (and the entry a revert from the current one returns to, however
//! old: one step of undo always survives, also across a revert pending or in progress); a pool's
//! target, current or past; or the target or result of an operation, or in a history entry an
//! operation refers to. Operations are never deleted, so what they refer to stays with them.
//! Everything else older than the retention goes: first the history entries no longer kept (each
//! under its endpoint's lock, so no operation or report of that endpoint sees its history change
//! under it), then the states no row refers to.
//!
//! **A report racing the collector.** States are content-addressed, so a report may store the
//! very state the collector is deleting. `ps_store_state` holds a shared advisory lock on the
//! state until its transaction ends, and the collector deletes only states whose lock it takes
//! exclusively, skipping the others; if the collector won, the report waits for its commit and
//! stores the state again. Either way the report never refers to a deleted state, and pinning
//! a state many endpoints share writes nothing (a row lock would). The protocol is in `sql/V10__state_retention.sql`.
//!
//! **Replicas.** Every replica runs this loop; a round runs only on the replica that takes a
//! session advisory lock, on a connection of its own that is closed after the round, so a
//! replica that dies mid-round releases it. Each batch of endpoints is its own transaction and
//! holds at most [`BATCH`] endpoint locks, briefly; an endpoint busy at that moment is left
//! for the next round. A round that fails is logged and retried at the next interval.

use std::time::Duration;

use sqlx::{Connection, PgConnection, PgPool};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::db;
use crate::error::Result;

/// Endpoints whose history one transaction collects.
pub const BATCH: i32 = 100;

/// Collects every `every` until `shutdown`; with no `retention` (keep forever), does nothing.
pub async fn run(
    db: PgPool,
    retention: Option<Duration>,
    every: Duration,
    shutdown: CancellationToken,
) {
    let Some(retention) = retention else {
        return;
    };
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        match collect(&db, retention).await {
            Ok(None) | Ok(Some((0, 0))) => {}
            Ok(Some((history, states))) => tracing::info!(
                history,
                states,
                "collected package states and history older than the retention"
            ),
            Err(e) => tracing::warn!(error = %e, "cannot collect package states; retrying later"),
        }
    }
}

/// One round: the history entries, then the states, older than `retention` that nothing needs.
/// Returns how many of each went, or `None` if another replica is collecting.
pub async fn collect(db: &PgPool, retention: Duration) -> Result<Option<(i64, i32)>> {
    // A connection of its own, closed afterwards: closing the session releases the lock
    // whatever happened in between.
    let mut conn = db.acquire().await?.detach();
    let result = match db::states::try_lock_collector(&mut conn).await {
        Ok(true) => round(&mut conn, retention).await.map(Some),
        Ok(false) => Ok(None),
        Err(e) => Err(e),
    };
    let _ = conn.close().await;
    result
}

async fn round(conn: &mut PgConnection, retention: Duration) -> Result<(i64, i32)> {
    let mut history = 0i64;
    let mut after: Option<Uuid> = None;
    loop {
        let (last, deleted) =
            db::states::collect_history(&mut *conn, retention, after, BATCH).await?;
        history += i64::from(deleted);
        match last {
            Some(last) => after = Some(last),
            None => break,
        }
    }
    // States in batches: each batch's advisory locks are held only until its own commit.
    let mut states = 0;
    loop {
        let deleted = db::states::collect(&mut *conn, retention, BATCH).await?;
        states += deleted;
        if deleted < BATCH {
            break;
        }
    }
    Ok((history, states))
}
