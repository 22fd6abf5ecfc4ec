//! Pools: creation, renaming, deletion, status counts and targets.
//!
//! A pool's `target_setters` says who may move its target with set-as-latest; changing it takes
//! the pool lock, under which set-as-latest checks it ([`authorize_target_change`]). Admins can
//! also make any state the pool has had as its target the target again ([`restore_target`]): a
//! new generation, re-classifying every endpoint, so a bad set-as-latest is one call from undone.
//! [`target_history`] lists the targets to choose from.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use pacsync_core::{Package, PoolStatus, TargetSetters};
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgPool};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::Principal;
use crate::classification::reclassify_pool;
use crate::db;
use crate::db::endpoints::Endpoint;
use crate::db::pools::{Pool, PoolChanges, TargetGeneration};
use crate::error::{Error, ErrorCode, Result};
use crate::policy::Policies;

/// `POST /api/pools` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePool {
    /// Unique name: 1 to 128 characters, not all blank, without control characters.
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*$"
    )]
    pub name: String,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
    /// Who may move the target with set-as-latest [default: `any_endpoint`].
    #[serde(default)]
    pub target_setters: Option<TargetSetters>,
}

/// `PATCH /api/pools/{pool_id}` body; absent fields stay as they are.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdatePool {
    /// New name: 1 to 128 characters, not all blank, without control characters.
    #[serde(default)]
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*$"
    )]
    pub name: Option<String>,
    /// New description.
    #[serde(default)]
    pub description: Option<String>,
    /// Who may move the target with set-as-latest from now on.
    #[serde(default)]
    pub target_setters: Option<TargetSetters>,
}

/// `PUT /api/pools/{pool_id}/target` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RestoreTarget {
    /// A state the pool has had as its target (see `GET /api/pools/{pool_id}/targets`).
    #[schema(pattern = "^[0-9a-f]{64}$")]
    pub state_id: String,
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
    let target_setters = request.target_setters.unwrap_or_default();
    let pool =
        db::pools::create(&mut tx, &request.name, &description, target_setters, actor).await?;
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

/// Refuses a set-as-latest by `principal` on `endpoint` with `TARGET_CHANGE_FORBIDDEN` unless
/// the pool's `target_setters` admits it: admins always, endpoints by the pool's rule and their
/// `may_set_target`.
///
/// Runs in the set-as-latest transaction, which holds the endpoint lock (every permission change
/// takes it, so `may_set_target` as read with the endpoint is current). The rule is read under
/// the pool lock, which the target change takes next anyway and every change of
/// `target_setters` takes: a rule or grant withdrawn before this check is never bypassed.
pub async fn authorize_target_change(
    tx: &mut PgConnection,
    principal: &Principal,
    endpoint: &Endpoint,
) -> Result<()> {
    if principal.require_admin().is_ok() {
        return Ok(());
    }
    db::pools::lock(&mut *tx, endpoint.pool_id).await?;
    let pool = of_endpoint(&mut *tx, endpoint.pool_id).await?;
    let endpoint_id = endpoint.endpoint_id;
    let refused = match pool.target_setters {
        TargetSetters::AnyEndpoint => return Ok(()),
        TargetSetters::Designated if endpoint.may_set_target => return Ok(()),
        TargetSetters::Designated => format!(
            "pool {:?} lets only designated endpoints set its target (target_setters = designated), \
             and endpoint {endpoint_id} is not one; an admin can allow it with \
             PUT /api/endpoints/{endpoint_id}/permissions {{\"may_set_target\": true}}",
            pool.name
        ),
        TargetSetters::Admins => format!(
            "pool {:?} lets only admins set its target (target_setters = admins); an admin can \
             run set-as-latest for this endpoint, or let endpoints do it with \
             PATCH /api/pools/{} {{\"target_setters\": \"designated\"}} (or \"any_endpoint\")",
            pool.name, pool.pool_id
        ),
    };
    Err(Error::new(ErrorCode::TargetChangeForbidden, refused))
}

/// Renames or re-describes a pool, or changes who may set its target.
pub async fn update(db: &PgPool, pool_id: Uuid, request: UpdatePool, actor: &str) -> Result<Pool> {
    if let Some(name) = &request.name {
        crate::endpoints::validate_label("name", name, 128)?;
    }
    if let Some(description) = &request.description {
        validate_description(description)?;
    }
    let mut tx = db.begin().await?;
    if request.target_setters.is_some() {
        // Orders the change with set-as-latest, which checks target_setters under this lock.
        db::pools::lock(&mut *tx, pool_id).await?;
    }
    let changes = PoolChanges {
        name: request.name.as_deref(),
        description: request.description.as_deref(),
        target_setters: request.target_setters,
    };
    let pool = db::pools::update(&mut tx, pool_id, changes, actor)
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
    status.online = db::pools::online_count(db, pool_id).await?;
    Ok(status)
}

/// The pool's target package list and generation.
pub async fn target(db: &PgPool, pool_id: Uuid) -> Result<PoolTarget> {
    let pool = get(db, pool_id).await?;
    let mut conn = db.acquire().await?;
    target_of(&mut conn, pool).await
}

/// Generations one target history listing returns at most.
pub const MAX_TARGETS_LISTED: i64 = 500;

/// The pool's targets, current and past, newest first: `limit` generations (1 to
/// [`MAX_TARGETS_LISTED`]) older than `before` (from the current one when `None`). Past targets
/// are never collected, so each can be restored.
pub async fn target_history(
    db: &PgPool,
    pool_id: Uuid,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<TargetGeneration>> {
    if !(1..=MAX_TARGETS_LISTED).contains(&limit) {
        return Err(Error::new(
            ErrorCode::InvalidQuery,
            format!("limit must be between 1 and {MAX_TARGETS_LISTED}"),
        ));
    }
    get(db, pool_id).await?;
    db::pools::target_history(db, pool_id, before, limit).await
}

/// Makes a state the pool has had as its target the target again, as a new generation, and
/// re-classifies its endpoints against it, in one transaction. A malformed state id is
/// `VALIDATION_FAILED`; a state that was never this pool's target is `STATE_NOT_FOUND`, as a
/// revert to a state outside an endpoint's history is.
pub async fn restore_target(
    db: &PgPool,
    policies: &Policies,
    pool_id: Uuid,
    request: RestoreTarget,
    actor: &str,
) -> Result<PoolTarget> {
    let state_id = request.state_id;
    if state_id.len() != 64
        || !state_id
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return Err(Error::new(
            ErrorCode::ValidationFailed,
            "state_id must be a state's content address: 64 lowercase hexadecimal digits",
        ));
    }
    let mut tx = db.begin().await?;
    db::pools::restore_target(&mut *tx, pool_id, &state_id, actor).await?;
    reclassify_pool(policies, &mut tx, pool_id).await?;
    let pool = db::pools::get(&mut *tx, pool_id)
        .await?
        .ok_or_else(|| Error::internal("pool vanished under its lock"))?;
    let target = target_of(&mut tx, pool).await?;
    tx.commit().await?;
    Ok(target)
}

/// The target of `pool`, read through `conn`.
async fn target_of(conn: &mut PgConnection, pool: Pool) -> Result<PoolTarget> {
    let (packages, set_at) = match &pool.target_state_id {
        Some(state_id) => {
            let state = db::states::load_required(&mut *conn, state_id).await?;
            let set_at =
                db::pools::target_set_at(&mut *conn, pool.pool_id, pool.target_generation).await?;
            (Arc::unwrap_or_clone(state).into_packages(), set_at)
        }
        None => (Vec::new(), None),
    };
    Ok(PoolTarget {
        pool_id: pool.pool_id,
        generation: pool.target_generation,
        state_id: pool.target_state_id,
        set_at,
        packages,
    })
}
