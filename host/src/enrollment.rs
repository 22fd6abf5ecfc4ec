//! Enrollment tokens: the secrets an admin hands out so that machines can register into a pool.
//!
//! Only a token's sha256 is stored. Redeeming one consumes a use under a row lock, so a token
//! with `max_uses` admits exactly that many registrations however many race for it; an unknown,
//! expired or used-up token is refused with its own code, and a revoked one as unknown
//! (`INVALID_ENROLLMENT_TOKEN`). Admins know tokens by their `token_id`: they list a pool's
//! tokens (use counts, limits, expiry, creator; never the secret) and revoke them, and a
//! revocation takes the same row lock as a registration, so no registration completes with a
//! token after its revocation committed.

use base64::Engine;
use chrono::{DateTime, Utc};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::{PgConnection, PgPool};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::db;
use crate::db::enrollment::{EnrollmentTokenInfo, Rejection};
use crate::error::{Error, ErrorCode, Result};

/// `POST /api/pools/{pool_id}/enrollment-tokens` body (optional).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateEnrollmentToken {
    /// Lifetime in seconds, 60 to 2592000 (30 days) [default: 86400].
    #[serde(default)]
    #[schema(minimum = 60, maximum = 2_592_000)]
    pub expires_in_seconds: Option<i64>,
    /// How many registrations it allows [default: unlimited until expiry].
    #[serde(default)]
    #[schema(minimum = 1)]
    pub max_uses: Option<i32>,
}

/// `POST /api/pools/{pool_id}/enrollment-tokens` response.
#[derive(Debug, Serialize, ToSchema)]
pub struct EnrollmentToken {
    /// The token's id, for listing and revoking it.
    pub token_id: Uuid,
    /// The secret; shown once, only its hash is stored.
    pub token: String,
    /// The pool it enrolls into.
    pub pool_id: Uuid,
    /// Expiry.
    pub expires_at: DateTime<Utc>,
    /// Registrations allowed, if limited.
    pub max_uses: Option<i32>,
}

/// sha256 hex of an enrollment token; only hashes are stored.
pub fn hash_enrollment_token(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Consumes one use of an enrollment token and returns the pool it enrolls into.
pub async fn redeem(tx: &mut PgConnection, token: &str) -> Result<Uuid> {
    match db::enrollment::consume(tx, &hash_enrollment_token(token)).await? {
        Ok(pool_id) => Ok(pool_id),
        Err(Rejection::Unknown) => Err(Error::new(
            ErrorCode::InvalidEnrollmentToken,
            "unknown enrollment token",
        )),
        Err(Rejection::Revoked) => Err(Error::new(
            ErrorCode::InvalidEnrollmentToken,
            "the enrollment token has been revoked",
        )),
        Err(Rejection::Expired) => Err(Error::new(
            ErrorCode::EnrollmentTokenExpired,
            "the enrollment token has expired",
        )),
        Err(Rejection::Exhausted) => Err(Error::new(
            ErrorCode::EnrollmentTokenExhausted,
            "the enrollment token has no uses left",
        )),
    }
}

/// Creates an enrollment token for the pool.
pub async fn create_enrollment_token(
    db: &PgPool,
    pool_id: Uuid,
    request: CreateEnrollmentToken,
    actor: &str,
) -> Result<EnrollmentToken> {
    let seconds = request.expires_in_seconds.unwrap_or(86_400);
    if !(60..=2_592_000).contains(&seconds) {
        return Err(Error::new(
            ErrorCode::ValidationFailed,
            "expires_in_seconds must be between 60 and 2592000",
        ));
    }
    if request.max_uses.is_some_and(|n| n < 1) {
        return Err(Error::new(
            ErrorCode::ValidationFailed,
            "max_uses must be at least 1",
        ));
    }
    crate::pools::get(db, pool_id).await?;
    let mut secret = [0u8; 32];
    rand::rng().fill_bytes(&mut secret);
    let token = format!(
        "pse_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret)
    );
    let expires_at = Utc::now() + chrono::Duration::seconds(seconds);
    let mut tx = db.begin().await?;
    let token_id = db::enrollment::create(
        &mut tx,
        &hash_enrollment_token(&token),
        pool_id,
        expires_at,
        request.max_uses,
        actor,
    )
    .await?;
    tx.commit().await?;
    Ok(EnrollmentToken {
        token_id,
        token,
        pool_id,
        expires_at,
        max_uses: request.max_uses,
    })
}

/// The pool's enrollment tokens, newest first, without their secrets.
pub async fn list(db: &PgPool, pool_id: Uuid) -> Result<Vec<EnrollmentTokenInfo>> {
    crate::pools::get(db, pool_id).await?;
    db::enrollment::list(db, pool_id).await
}

/// Revokes one of the pool's enrollment tokens: it registers nothing from now on.
pub async fn revoke(db: &PgPool, pool_id: Uuid, token_id: Uuid, actor: &str) -> Result<()> {
    crate::pools::get(db, pool_id).await?;
    let mut tx = db.begin().await?;
    if !db::enrollment::revoke(&mut tx, pool_id, token_id, actor).await? {
        return Err(Error::new(
            ErrorCode::EnrollmentTokenNotFound,
            format!("pool {pool_id} has no enrollment token {token_id}"),
        ));
    }
    tx.commit().await?;
    Ok(())
}
