//! Pool management routes (admin).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;
use utoipa::IntoParams;
use uuid::Uuid;

use super::AppState;
use super::extract::{Json, OptionalJson, Path, Query};
use crate::auth::Principal;
use crate::availability::{self, RepositoryAnalysis};
use crate::db::enrollment::EnrollmentTokenInfo;
use crate::db::pools::{Pool, TargetGeneration};
use crate::enrollment::{self, CreateEnrollmentToken, EnrollmentToken};
use crate::error::{Problem, Result};
use crate::pools::{self, CreatePool, PoolTarget, RestoreTarget, UpdatePool};
use pacsync_core::PoolStatus;

/// Create a pool.
#[utoipa::path(post, path = "/api/pools", tag = "pools", request_body = CreatePool,
    responses((status = 201, body = Pool), (status = "4XX", body = Problem)), security(("bearer" = [])))]
pub async fn create(
    State(app): State<AppState>,
    who: Principal,
    Json(body): Json<CreatePool>,
) -> Result<impl IntoResponse> {
    who.require_admin()?;
    let pool = pools::create(&app.db, body, &who.actor()).await?;
    Ok((StatusCode::CREATED, axum::Json(pool)))
}

/// List live pools.
#[utoipa::path(get, path = "/api/pools", tag = "pools",
    responses((status = 200, body = Vec<Pool>), (status = "4XX", body = Problem)), security(("bearer" = [])))]
pub async fn list(State(app): State<AppState>, who: Principal) -> Result<axum::Json<Vec<Pool>>> {
    who.require_admin()?;
    Ok(axum::Json(pools::list(&app.db).await?))
}

/// Get a pool.
#[utoipa::path(get, path = "/api/pools/{pool_id}", tag = "pools", params(("pool_id" = Uuid, Path)),
    responses((status = 200, body = Pool), (status = "4XX", body = Problem)), security(("bearer" = [])))]
pub async fn get(
    State(app): State<AppState>,
    who: Principal,
    Path(pool_id): Path<Uuid>,
) -> Result<axum::Json<Pool>> {
    who.require_admin()?;
    Ok(axum::Json(pools::get(&app.db, pool_id).await?))
}

/// Rename or re-describe a pool, or change who may set its target.
#[utoipa::path(patch, path = "/api/pools/{pool_id}", tag = "pools", params(("pool_id" = Uuid, Path)),
    request_body = UpdatePool,
    responses((status = 200, body = Pool), (status = "4XX", body = Problem)), security(("bearer" = [])))]
pub async fn update(
    State(app): State<AppState>,
    who: Principal,
    Path(pool_id): Path<Uuid>,
    Json(body): Json<UpdatePool>,
) -> Result<axum::Json<Pool>> {
    who.require_admin()?;
    Ok(axum::Json(
        pools::update(&app.db, pool_id, body, &who.actor()).await?,
    ))
}

/// Delete an empty pool.
#[utoipa::path(delete, path = "/api/pools/{pool_id}", tag = "pools", params(("pool_id" = Uuid, Path)),
    responses((status = 204), (status = "4XX", body = Problem)), security(("bearer" = [])))]
pub async fn delete(
    State(app): State<AppState>,
    who: Principal,
    Path(pool_id): Path<Uuid>,
) -> Result<StatusCode> {
    who.require_admin()?;
    pools::delete(&app.db, pool_id, &who.actor()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Endpoint counts per sync status.
#[utoipa::path(get, path = "/api/pools/{pool_id}/status", tag = "pools", params(("pool_id" = Uuid, Path)),
    responses((status = 200, body = PoolStatus), (status = "4XX", body = Problem)), security(("bearer" = [])))]
pub async fn status(
    State(app): State<AppState>,
    who: Principal,
    Path(pool_id): Path<Uuid>,
) -> Result<axum::Json<PoolStatus>> {
    who.require_admin()?;
    Ok(axum::Json(pools::status(&app.db, pool_id).await?))
}

/// The target package list and generation.
#[utoipa::path(get, path = "/api/pools/{pool_id}/target", tag = "pools", params(("pool_id" = Uuid, Path)),
    responses((status = 200, body = PoolTarget), (status = "4XX", body = Problem)), security(("bearer" = [])))]
pub async fn target(
    State(app): State<AppState>,
    who: Principal,
    Path(pool_id): Path<Uuid>,
) -> Result<axum::Json<PoolTarget>> {
    who.require_admin()?;
    Ok(axum::Json(pools::target(&app.db, pool_id).await?))
}

/// `GET /api/pools/{pool_id}/targets` parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct TargetsParams {
    /// Generations to return, 1 to 500 [default: 100].
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
    /// Only generations older than this one: the last `generation` of the previous page.
    pub before: Option<i64>,
}

/// The pool's targets, current and past, newest first: each generation's state, when it was set
/// and by which set-as-latest (none for an admin's restore). Any of them can be restored with
/// `PUT /api/pools/{pool_id}/target`.
#[utoipa::path(get, path = "/api/pools/{pool_id}/targets", tag = "pools",
    params(("pool_id" = Uuid, Path), TargetsParams),
    responses((status = 200, body = Vec<TargetGeneration>), (status = "4XX", body = Problem)), security(("bearer" = [])))]
pub async fn targets(
    State(app): State<AppState>,
    who: Principal,
    Path(pool_id): Path<Uuid>,
    Query(params): Query<TargetsParams>,
) -> Result<axum::Json<Vec<TargetGeneration>>> {
    who.require_admin()?;
    let limit = params.limit.unwrap_or(100);
    Ok(axum::Json(
        pools::target_history(&app.db, pool_id, params.before, limit).await?,
    ))
}

/// Make a state the pool has had as its target the target again, as a new generation (audited
/// as `pool.restore_target`); its endpoints are re-classified against it. A state that was never
/// the pool's target is 404 `STATE_NOT_FOUND`.
#[utoipa::path(put, path = "/api/pools/{pool_id}/target", tag = "pools", params(("pool_id" = Uuid, Path)),
    request_body = RestoreTarget,
    responses((status = 200, body = PoolTarget), (status = "4XX", body = Problem)), security(("bearer" = [])))]
pub async fn restore_target(
    State(app): State<AppState>,
    who: Principal,
    Path(pool_id): Path<Uuid>,
    Json(body): Json<RestoreTarget>,
) -> Result<axum::Json<PoolTarget>> {
    who.require_admin()?;
    Ok(axum::Json(
        pools::restore_target(&app.db, &app.policies, pool_id, body, &who.actor()).await?,
    ))
}

/// Which target packages every endpoint can obtain, which are excluded from syncs and why, and
/// each endpoint's gaps.
#[utoipa::path(get, path = "/api/pools/{pool_id}/repository-analysis", tag = "pools", params(("pool_id" = Uuid, Path)),
    responses((status = 200, body = RepositoryAnalysis), (status = "4XX", body = Problem)), security(("bearer" = [])))]
pub async fn repository_analysis(
    State(app): State<AppState>,
    who: Principal,
    Path(pool_id): Path<Uuid>,
) -> Result<axum::Json<RepositoryAnalysis>> {
    who.require_admin()?;
    Ok(axum::Json(
        availability::analyse_pool(&app.db, pool_id, app.config.availability_max_age).await?,
    ))
}

/// Create an enrollment token for registering endpoints into the pool.
#[utoipa::path(post, path = "/api/pools/{pool_id}/enrollment-tokens", tag = "pools", params(("pool_id" = Uuid, Path)),
    request_body(content = Option<CreateEnrollmentToken>),
    responses((status = 201, body = EnrollmentToken), (status = "4XX", body = Problem)), security(("bearer" = [])))]
pub async fn create_enrollment_token(
    State(app): State<AppState>,
    who: Principal,
    Path(pool_id): Path<Uuid>,
    OptionalJson(body): OptionalJson<CreateEnrollmentToken>,
) -> Result<impl IntoResponse> {
    who.require_admin()?;
    let token = enrollment::create_enrollment_token(&app.db, pool_id, body, &who.actor()).await?;
    Ok((StatusCode::CREATED, axum::Json(token)))
}

/// The pool's enrollment tokens, newest first: ids, uses, limits, expiry and creator, never the
/// secret.
#[utoipa::path(get, path = "/api/pools/{pool_id}/enrollment-tokens", tag = "pools", params(("pool_id" = Uuid, Path)),
    responses((status = 200, body = Vec<EnrollmentTokenInfo>), (status = "4XX", body = Problem)), security(("bearer" = [])))]
pub async fn list_enrollment_tokens(
    State(app): State<AppState>,
    who: Principal,
    Path(pool_id): Path<Uuid>,
) -> Result<axum::Json<Vec<EnrollmentTokenInfo>>> {
    who.require_admin()?;
    Ok(axum::Json(enrollment::list(&app.db, pool_id).await?))
}

/// Revoke an enrollment token: it registers no endpoint from now on.
#[utoipa::path(delete, path = "/api/pools/{pool_id}/enrollment-tokens/{token_id}", tag = "pools",
    params(("pool_id" = Uuid, Path), ("token_id" = Uuid, Path)),
    responses((status = 204), (status = "4XX", body = Problem)), security(("bearer" = [])))]
pub async fn revoke_enrollment_token(
    State(app): State<AppState>,
    who: Principal,
    Path((pool_id, token_id)): Path<(Uuid, Uuid)>,
) -> Result<StatusCode> {
    who.require_admin()?;
    enrollment::revoke(&app.db, pool_id, token_id, &who.actor()).await?;
    Ok(StatusCode::NO_CONTENT)
}
