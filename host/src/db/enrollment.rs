//! Enrollment tokens: one-time secrets that let a new machine register into a pool.

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;
use uuid::Uuid;

use crate::error::Result;

/// Why an enrollment token was not accepted.
#[derive(Debug, PartialEq, Eq)]
pub enum Rejection {
    /// No such token.
    Unknown,
    /// Past its expiry.
    Expired,
    /// Used `max_uses` times already.
    Exhausted,
}

/// Stores the hash of a new token.
pub async fn create(
    db: impl PgExecutor<'_>,
    token_hash: &str,
    pool_id: Uuid,
    expires_at: DateTime<Utc>,
    max_uses: Option<i32>,
    actor: &str,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO enrollment_tokens (token_hash, pool_id, expires_at, max_uses, created_by) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(token_hash)
    .bind(pool_id)
    .bind(expires_at)
    .bind(max_uses)
    .bind(actor)
    .execute(db)
    .await?;
    Ok(())
}

/// Counts one use of the token and returns its pool, or why it cannot be used.
pub async fn consume(
    tx: &mut sqlx::PgConnection,
    token_hash: &str,
) -> Result<Result<Uuid, Rejection>> {
    let pool: Option<Uuid> = sqlx::query_scalar(
        "UPDATE enrollment_tokens SET uses = uses + 1
         WHERE token_hash = $1 AND expires_at > now() AND (max_uses IS NULL OR uses < max_uses)
         RETURNING pool_id",
    )
    .bind(token_hash)
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(pool) = pool {
        return Ok(Ok(pool));
    }
    let expired: Option<bool> = sqlx::query_scalar(
        "SELECT expires_at <= now() FROM enrollment_tokens WHERE token_hash = $1",
    )
    .bind(token_hash)
    .fetch_optional(&mut *tx)
    .await?;
    Ok(Err(match expired {
        None => Rejection::Unknown,
        Some(true) => Rejection::Expired,
        Some(false) => Rejection::Exhausted,
    }))
}
