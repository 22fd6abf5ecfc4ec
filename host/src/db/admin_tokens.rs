//! Recorded admin tokens (`sql/V9__admin_tokens.sql`): issued, listed, revoked.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgExecutor;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::error::{Error, ErrorCode, Result};

/// An admin token as recorded: never the token itself.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct AdminToken {
    /// The token's id (its `jti` claim).
    pub token_id: Uuid,
    /// Who it was issued to (its `sub` claim); unique among unrevoked tokens.
    pub name: String,
    /// Issue time.
    pub created_at: DateTime<Utc>,
    /// Expiry.
    pub expires_at: DateTime<Utc>,
    /// Who issued it.
    pub created_by: String,
    /// When it was revoked, if it was.
    pub revoked_at: Option<DateTime<Utc>>,
    /// Who revoked it.
    pub revoked_by: Option<String>,
}

const COLUMNS: &str = "token_id, name, created_at, expires_at, created_by, revoked_at, revoked_by";

/// Records a token about to be handed out, with its audit record.
pub async fn insert(
    db: impl PgExecutor<'_>,
    token_id: Uuid,
    name: &str,
    created_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    actor: &str,
) -> Result<AdminToken> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM ps_admin_token_issue($1, $2, $3, $4, $5)"
    ))
    .bind(token_id)
    .bind(name)
    .bind(created_at)
    .bind(expires_at)
    .bind(actor)
    .fetch_one(db)
    .await
    .map_err(|e| match &e {
        sqlx::Error::Database(d) if d.constraint() == Some("admin_tokens_live_name") => Error::new(
            ErrorCode::AdminTokenNameTaken,
            format!(
                "an unrevoked admin token is already named {name} (expired ones included); \
                     revoke it first or choose another name"
            ),
        ),
        _ => Error::from(e),
    })
}

/// Every recorded token, revoked ones included, oldest first.
pub async fn list(db: impl PgExecutor<'_>) -> Result<Vec<AdminToken>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM admin_tokens ORDER BY created_at, name"
    ))
    .fetch_all(db)
    .await?)
}

/// Revokes the unrevoked token named `name` (notifying every replica at commit); returns its
/// id, or `None` when no unrevoked token has this name.
pub async fn revoke(db: impl PgExecutor<'_>, name: &str, actor: &str) -> Result<Option<Uuid>> {
    Ok(sqlx::query_scalar("SELECT ps_admin_token_revoke($1, $2)")
        .bind(name)
        .bind(actor)
        .fetch_one(db)
        .await?)
}

/// The ids of the revoked tokens a replica must still refuse: those not expired yet (with a
/// minute to spare over the host's clock leeway).
pub async fn revoked_ids(db: impl PgExecutor<'_>) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT token_id FROM admin_tokens
         WHERE revoked_at IS NOT NULL AND expires_at > now() - interval '1 minute'",
    )
    .fetch_all(db)
    .await
}
