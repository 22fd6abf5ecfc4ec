//! Pools: creation, status, targets and enrollment tokens.

use std::sync::Arc;

use base64::Engine;
use chrono::{DateTime, Utc};
use pacsync_core::Package;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::db;
use crate::db::pools::Pool;
use crate::endpoints::hash_enrollment_token;
use crate::error::{Error, ErrorCode, Result};
use crate::server::AppState;

/// `POST /api/pools` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePool {
    /// Unique name, 1 to 128 characters.
    pub name: String,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
}

/// `PATCH /api/pools/{pool_id}` body; absent fields stay as they are.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdatePool {
    /// New name.
    #[serde(default)]
    pub name: Option<String>,
    /// New description.
    #[serde(default)]
    pub description: Option<String>,
}

/// `GET /api/pools/{pool_id}/status` response: live endpoints per sync status.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct PoolStatus {
    /// The pool.
    pub pool_id: Uuid,
    /// Target generation the counts refer to.
    pub target_generation: i64,
    /// All live endpoints.
    pub total: i64,
    /// Matching the target.
    pub in_sync: i64,
    /// Only newer or extra packages.
    pub ahead: i64,
    /// Only older or missing packages.
    pub behind: i64,
    /// Both.
    pub diverged: i64,
    /// Not reported yet, or no target.
    pub unknown: i64,
}

/// `GET /api/pools/{pool_id}/target` response.
#[derive(Debug, Serialize, ToSchema)]
pub struct PoolTarget {
    /// The pool.
    pub pool_id: Uuid,
    /// Target generation; 0 when no target has been set.
    pub generation: i64,
    /// Content address of the target state.
    pub state_id: Option<String>,
    /// When this generation was set.
    pub set_at: Option<DateTime<Utc>>,
    /// The target packages, by name.
    pub packages: Vec<Package>,
}

/// `POST /api/pools/{pool_id}/enrollment-tokens` body (optional).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateEnrollmentToken {
    /// Lifetime in seconds, 60 to 2592000 (30 days) [default: 86400].
    #[serde(default)]
    pub expires_in_seconds: Option<i64>,
    /// How many registrations it allows [default: unlimited until expiry].
    #[serde(default)]
    pub max_uses: Option<i32>,
}

/// `POST /api/pools/{pool_id}/enrollment-tokens` response.
#[derive(Debug, Serialize, ToSchema)]
pub struct EnrollmentToken {
    /// The secret; shown once, only its hash is stored.
    pub token: String,
    /// The pool it enrolls into.
    pub pool_id: Uuid,
    /// Expiry.
    pub expires_at: DateTime<Utc>,
    /// Registrations allowed, if limited.
    pub max_uses: Option<i32>,
}

fn validate_description(description: &str) -> Result<()> {
    if description.chars().count() > 4096 {
        return Err(Error::new(
            ErrorCode::ValidationFailed,
            "description is limited to 4096 characters",
        ));
    }
    Ok(())
}

/// Creates a pool.
pub async fn create(app: &AppState, request: CreatePool, actor: &str) -> Result<Pool> {
    crate::endpoints::validate_label("name", &request.name, 128)?;
    let description = request.description.unwrap_or_default();
    validate_description(&description)?;
    let mut tx = app.db.begin().await?;
    let pool = db::pools::create(&mut tx, &request.name, &description, actor).await?;
    tx.commit().await?;
    Ok(pool)
}

/// All live pools.
pub async fn list(app: &AppState) -> Result<Vec<Pool>> {
    db::pools::list(&app.db).await
}

/// One live pool.
pub async fn get(app: &AppState, pool_id: Uuid) -> Result<Pool> {
    db::pools::get(&app.db, pool_id)
        .await?
        .ok_or_else(|| Error::new(ErrorCode::PoolNotFound, format!("pool {pool_id} not found")))
}

/// Renames or re-describes a pool.
pub async fn update(
    app: &AppState,
    pool_id: Uuid,
    request: UpdatePool,
    actor: &str,
) -> Result<Pool> {
    if let Some(name) = &request.name {
        crate::endpoints::validate_label("name", name, 128)?;
    }
    if let Some(description) = &request.description {
        validate_description(description)?;
    }
    let mut tx = app.db.begin().await?;
    let pool = db::pools::update(
        &mut tx,
        pool_id,
        request.name.as_deref(),
        request.description.as_deref(),
        actor,
    )
    .await?
    .ok_or_else(|| Error::new(ErrorCode::PoolNotFound, format!("pool {pool_id} not found")))?;
    tx.commit().await?;
    Ok(pool)
}

/// Deletes an empty pool.
pub async fn delete(app: &AppState, pool_id: Uuid, actor: &str) -> Result<()> {
    db::pools::delete(&app.db, pool_id, actor).await
}

/// Counts of live endpoints per sync status.
pub async fn status(app: &AppState, pool_id: Uuid) -> Result<PoolStatus> {
    let pool = get(app, pool_id).await?;
    let mut status = PoolStatus {
        pool_id,
        target_generation: pool.target_generation,
        ..PoolStatus::default()
    };
    for (sync_status, count) in db::pools::status_counts(&app.db, pool_id).await? {
        status.total += count;
        match sync_status.as_str() {
            "in_sync" => status.in_sync = count,
            "ahead" => status.ahead = count,
            "behind" => status.behind = count,
            "diverged" => status.diverged = count,
            _ => status.unknown += count,
        }
    }
    Ok(status)
}

/// The pool's target package list and generation.
pub async fn target(app: &AppState, pool_id: Uuid) -> Result<PoolTarget> {
    let pool = get(app, pool_id).await?;
    let (packages, set_at) = match &pool.target_state_id {
        Some(state_id) => {
            let mut conn = app.db.acquire().await?;
            let state = crate::endpoints::load_state(&mut conn, state_id).await?;
            let set_at =
                db::pools::target_set_at(&mut *conn, pool_id, pool.target_generation).await?;
            (Arc::unwrap_or_clone(state).into_packages(), set_at)
        }
        None => (Vec::new(), None),
    };
    Ok(PoolTarget {
        pool_id,
        generation: pool.target_generation,
        state_id: pool.target_state_id,
        set_at,
        packages,
    })
}

/// Creates an enrollment token for the pool.
pub async fn create_enrollment_token(
    app: &AppState,
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
    get(app, pool_id).await?;
    let mut secret = [0u8; 32];
    rand::rng().fill_bytes(&mut secret);
    let token = format!(
        "pse_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret)
    );
    let expires_at = Utc::now() + chrono::Duration::seconds(seconds);
    db::enrollment::create(
        &app.db,
        &hash_enrollment_token(&token),
        pool_id,
        expires_at,
        request.max_uses,
        actor,
    )
    .await?;
    Ok(EnrollmentToken {
        token,
        pool_id,
        expires_at,
        max_uses: request.max_uses,
    })
}
