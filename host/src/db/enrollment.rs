//! Enrollment tokens: secrets that let new machines register into a pool, stored as hashes and
//! known to admins by their `token_id`.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgExecutor;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::error::Result;

/// Why an enrollment token was not accepted.
#[derive(Debug, PartialEq, Eq)]
pub enum Rejection {
    /// No such token.
    Unknown,
    /// An admin revoked it.
    Revoked,
    /// Past its expiry.
    Expired,
    /// Used `max_uses` times already.
    Exhausted,
}

/// What an admin sees of an enrollment token: never the secret, nor its hash.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct EnrollmentTokenInfo {
    /// The token's id (for `DELETE /api/pools/{pool_id}/enrollment-tokens/{token_id}`).
    pub token_id: Uuid,
    /// The pool it enrolls into.
    pub pool_id: Uuid,
    /// Registrations made with it.
    pub uses: i32,
    /// Registrations allowed, if limited.
    pub max_uses: Option<i32>,
    /// Expiry.
    pub expires_at: DateTime<Utc>,
    /// Who created it.
    pub created_by: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<DateTime<Utc>>,
}

const INFO_COLUMNS: &str =
    "token_id, pool_id, uses, max_uses, expires_at, created_by, created_at, revoked_at";

/// Stores the hash of a new token, audited; returns its id.
pub async fn create(
    tx: &mut sqlx::PgConnection,
    token_hash: &str,
    pool_id: Uuid,
    expires_at: DateTime<Utc>,
    max_uses: Option<i32>,
    actor: &str,
) -> Result<Uuid> {
    let token_id: Uuid = sqlx::query_scalar(
        "INSERT INTO enrollment_tokens (token_hash, pool_id, expires_at, max_uses, created_by)
         VALUES ($1, $2, $3, $4, $5) RETURNING token_id",
    )
    .bind(token_hash)
    .bind(pool_id)
    .bind(expires_at)
    .bind(max_uses)
    .bind(actor)
    .fetch_one(&mut *tx)
    .await?;
    audit(
        &mut *tx,
        actor,
        "enrollment_token.create",
        token_id,
        serde_json::json!({ "pool_id": pool_id, "expires_at": expires_at, "max_uses": max_uses }),
    )
    .await?;
    Ok(token_id)
}

/// Counts one use of the token and returns its pool, or why it cannot be used.
pub async fn consume(
    tx: &mut sqlx::PgConnection,
    token_hash: &str,
) -> Result<Result<Uuid, Rejection>> {
    let pool: Option<Uuid> = sqlx::query_scalar(
        "UPDATE enrollment_tokens SET uses = uses + 1
         WHERE token_hash = $1 AND revoked_at IS NULL AND expires_at > now()
           AND (max_uses IS NULL OR uses < max_uses)
         RETURNING pool_id",
    )
    .bind(token_hash)
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(pool) = pool {
        return Ok(Ok(pool));
    }
    let found: Option<(bool, bool)> = sqlx::query_as(
        "SELECT revoked_at IS NOT NULL, expires_at <= now() FROM enrollment_tokens WHERE token_hash = $1",
    )
    .bind(token_hash)
    .fetch_optional(&mut *tx)
    .await?;
    Ok(Err(match found {
        None => Rejection::Unknown,
        Some((true, _)) => Rejection::Revoked,
        Some((false, true)) => Rejection::Expired,
        Some((false, false)) => Rejection::Exhausted,
    }))
}

/// The pool's tokens, newest first, revoked and expired ones included.
pub async fn list(db: impl PgExecutor<'_>, pool_id: Uuid) -> Result<Vec<EnrollmentTokenInfo>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {INFO_COLUMNS} FROM enrollment_tokens WHERE pool_id = $1
         ORDER BY created_at DESC, token_id"
    ))
    .bind(pool_id)
    .fetch_all(db)
    .await?)
}

/// Revokes the pool's token `token_id`, audited (a second revocation keeps the first time);
/// false when the pool has no such token.
pub async fn revoke(
    tx: &mut sqlx::PgConnection,
    pool_id: Uuid,
    token_id: Uuid,
    actor: &str,
) -> Result<bool> {
    let revoked: Option<DateTime<Utc>> = sqlx::query_scalar(
        "UPDATE enrollment_tokens SET revoked_at = coalesce(revoked_at, now())
         WHERE token_id = $1 AND pool_id = $2 RETURNING revoked_at",
    )
    .bind(token_id)
    .bind(pool_id)
    .fetch_optional(&mut *tx)
    .await?;
    if revoked.is_none() {
        return Ok(false);
    }
    audit(
        &mut *tx,
        actor,
        "enrollment_token.revoke",
        token_id,
        serde_json::json!({ "pool_id": pool_id }),
    )
    .await?;
    Ok(true)
}

async fn audit(
    db: impl PgExecutor<'_>,
    actor: &str,
    action: &str,
    token_id: Uuid,
    details: serde_json::Value,
) -> Result<()> {
    sqlx::query("SELECT ps_audit($1, $2, 'enrollment_token', $3, $4)")
        .bind(actor)
        .bind(action)
        .bind(token_id.to_string())
        .bind(details)
        .execute(db)
        .await?;
    Ok(())
}
