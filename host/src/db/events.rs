//! The event log (`operation_events`): rows in commit order, for the hub and resuming streams
//! (which read it a page at a time, so a long log never sits in memory whole).
//!
//! Positions are assigned at commit (`ps_position_event`), so reading `position > n` in order
//! never skips a row committed later with a smaller id.

use chrono::{DateTime, Utc};
use pacsync_core::EventType;
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

/// One row of the event log.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Event {
    /// Commit-order position; clients see it as `event_id`.
    pub position: i64,
    /// What happened.
    #[sqlx(try_from = "String")]
    pub event_type: EventType,
    /// The operation, for operation events.
    pub operation_id: Option<Uuid>,
    /// The endpoint concerned, if any.
    pub endpoint_id: Option<Uuid>,
    /// The pool concerned, if any.
    pub pool_id: Option<Uuid>,
    /// Operation snapshot or event details.
    pub payload: Value,
    /// Commit time (close to).
    pub created_at: DateTime<Utc>,
}

const COLUMNS: &str =
    "position, event_type, operation_id, endpoint_id, pool_id, payload, created_at";

/// The last position in the log (0 when empty).
pub async fn head(db: &PgPool) -> Result<i64, sqlx::Error> {
    let max: Option<i64> = sqlx::query_scalar("SELECT max(position) FROM operation_events")
        .fetch_one(db)
        .await?;
    Ok(max.unwrap_or(0))
}

/// Up to `limit` events after `after`, in position order.
pub async fn after(db: &PgPool, after: i64, limit: i64) -> Result<Vec<Event>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM operation_events WHERE position > $1 ORDER BY position LIMIT $2"
    ))
    .bind(after)
    .bind(limit)
    .fetch_all(db)
    .await
}

/// Up to `limit` events in `(after, upto]` of one pool, including endpoints that moved out of
/// it, in position order.
pub async fn of_pool(
    db: &PgPool,
    pool_id: Uuid,
    (after, upto): (i64, i64),
    limit: i64,
) -> Result<Vec<Event>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM operation_events
         WHERE position > $1 AND position <= $2
           AND (pool_id = $3
                OR (event_type = 'endpoint_moved' AND payload->>'from_pool_id' = $3::text))
         ORDER BY position
         LIMIT $4"
    ))
    .bind(after)
    .bind(upto)
    .bind(pool_id)
    .bind(limit)
    .fetch_all(db)
    .await
}

/// Up to `limit` events in `(after, upto]` of one endpoint, plus the target changes of `pools`
/// (those it was in; the caller keeps each pool's while the endpoint was in it), in position
/// order.
pub async fn of_endpoint(
    db: &PgPool,
    endpoint_id: Uuid,
    pools: &[Uuid],
    (after, upto): (i64, i64),
    limit: i64,
) -> Result<Vec<Event>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM operation_events
         WHERE position > $1 AND position <= $2
           AND (endpoint_id = $3 OR (event_type = 'target_changed' AND pool_id = ANY($4)))
         ORDER BY position
         LIMIT $5"
    ))
    .bind(after)
    .bind(upto)
    .bind(endpoint_id)
    .bind(pools.to_vec())
    .bind(limit)
    .fetch_all(db)
    .await
}

/// The moves of one endpoint in `(after, upto]`, in position order: each names the pool it left
/// (`from_pool_id` in its payload) and the one it entered (`pool_id`).
pub async fn moves(
    db: &PgPool,
    endpoint_id: Uuid,
    (after, upto): (i64, i64),
) -> Result<Vec<Event>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM operation_events
         WHERE position > $1 AND position <= $2
           AND endpoint_id = $3 AND event_type = 'endpoint_moved'
         ORDER BY position"
    ))
    .bind(after)
    .bind(upto)
    .bind(endpoint_id)
    .fetch_all(db)
    .await
}
