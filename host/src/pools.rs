//! Pools: creation, renaming, deletion, status counts and targets.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use pacsync_core::{Package, PoolStatus};
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgPool};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::db;
use crate::db::pools::Pool;
use crate::error::{Error, ErrorCode, Result};

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
pub async fn create(db: &PgPool, request: CreatePool, actor: &str) -> Result<Pool> {
    crate::endpoints::validate_label("name", &request.name, 128)?;
    let description = request.description.unwrap_or_default();
    validate_description(&description)?;
    let mut tx = db.begin().await?;
    let pool = db::pools::create(&mut tx, &request.name, &description, actor).await?;
    tx.commit().await?;
    Ok(pool)
}

/// All live pools.
pub async fn list(db: &PgPool) -> Result<Vec<Pool>> {
    db::pools::list(db).await
}

/// One live pool.
pub async fn get(db: &PgPool, pool_id: Uuid) -> Result<Pool> {
    db::pools::get(db, pool_id)
        .await?
        .ok_or_else(|| Error::new(ErrorCode::PoolNotFound, format!("pool {pool_id} not found")))
}

/// The pool of an endpoint, read in the caller's transaction; a pool deleted meanwhile is
/// `POOL_NOT_FOUND`.
pub async fn of_endpoint(tx: &mut PgConnection, pool_id: Uuid) -> Result<Pool> {
    db::pools::get(&mut *tx, pool_id).await?.ok_or_else(|| {
        Error::new(
            ErrorCode::PoolNotFound,
            "the endpoint's pool no longer exists",
        )
    })
}

/// Renames or re-describes a pool.
pub async fn update(db: &PgPool, pool_id: Uuid, request: UpdatePool, actor: &str) -> Result<Pool> {
    if let Some(name) = &request.name {
        crate::endpoints::validate_label("name", name, 128)?;
    }
    if let Some(description) = &request.description {
        validate_description(description)?;
    }
    let mut tx = db.begin().await?;
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
pub async fn delete(db: &PgPool, pool_id: Uuid, actor: &str) -> Result<()> {
    db::pools::delete(db, pool_id, actor).await
}

/// Counts of live endpoints per sync status.
pub async fn status(db: &PgPool, pool_id: Uuid) -> Result<PoolStatus> {
    let pool = get(db, pool_id).await?;
    let mut status = PoolStatus {
        pool_id,
        target_generation: pool.target_generation,
        ..PoolStatus::default()
    };
    for (sync_status, count) in db::pools::status_counts(db, pool_id).await? {
        status.add(sync_status, count);
    }
    Ok(status)
}

/// The pool's target package list and generation.
pub async fn target(db: &PgPool, pool_id: Uuid) -> Result<PoolTarget> {
    let pool = get(db, pool_id).await?;
    let (packages, set_at) = match &pool.target_state_id {
        Some(state_id) => {
            let mut conn = db.acquire().await?;
            let state = db::states::load_required(&mut *conn, state_id).await?;
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
