//! Endpoint routes: registration, state reports, moves, history.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;
use utoipa::IntoParams;
use uuid::Uuid;

use super::AppState;
use super::extract::{Json, Path, Query};
use crate::auth::Principal;
use crate::db::endpoints::{Endpoint, HistoryEntry};
use crate::endpoints::{self, PermissionsRequest, RegisterRequest, Registration};
use crate::error::{Error, ErrorCode, Problem, Result};
use pacsync_core::{StateRecorded, StateReport, TargetDiff};

/// `GET /api/endpoints` filters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    /// Only endpoints of this pool.
    pub pool_id: Option<Uuid>,
}

/// `GET /api/endpoints/{id}/states` parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct HistoryParams {
    /// Entries to return, 1 to 1000 [default: 100].
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
}

/// `PUT /api/endpoints/{id}/pool` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MoveRequest {
    /// The destination pool.
    pub pool_id: Uuid,
}

/// Register a machine with an enrollment token (no other authentication).
#[utoipa::path(post, path = "/api/endpoints/register", tag = "endpoints", request_body = RegisterRequest,
    responses((status = 201, body = Registration), (status = "4XX", body = Problem)))]
pub async fn register(
    State(app): State<AppState>,
    Json(body): Json<RegisterRequest>,
) -> Result<impl IntoResponse> {
    let registration =
        endpoints::register(&app.db, &app.keys, app.config.endpoint_token_ttl, body).await?;
    Ok((StatusCode::CREATED, axum::Json(registration)))
}

/// List endpoints.
#[utoipa::path(get, path = "/api/endpoints", tag = "endpoints", params(ListParams),
    responses((status = 200, body = Vec<Endpoint>), (status = "4XX", body = Problem)), security(("bearer" = [])))]
pub async fn list(
    State(app): State<AppState>,
    who: Principal,
    Query(params): Query<ListParams>,
) -> Result<axum::Json<Vec<Endpoint>>> {
    who.require_admin()?;
    Ok(axum::Json(endpoints::list(&app.db, params.pool_id).await?))
}

/// Get an endpoint (admin, or the endpoint itself).
#[utoipa::path(get, path = "/api/endpoints/{endpoint_id}", tag = "endpoints", params(("endpoint_id" = Uuid, Path)),
    responses((status = 200, body = Endpoint), (status = "4XX", body = Problem)), security(("bearer" = [])))]
pub async fn get(
    State(app): State<AppState>,
    who: Principal,
    Path(endpoint_id): Path<Uuid>,
) -> Result<axum::Json<Endpoint>> {
    who.require_admin_or_endpoint(endpoint_id)?;
    Ok(axum::Json(endpoints::get(&app.db, endpoint_id).await?))
}

/// Delete an endpoint (admin, or the endpoint itself): revokes its tokens, keeps its history.
#[utoipa::path(delete, path = "/api/endpoints/{endpoint_id}", tag = "endpoints", params(("endpoint_id" = Uuid, Path)),
    responses((status = 204), (status = "4XX", body = Problem)), security(("bearer" = [])))]
pub async fn delete(
    State(app): State<AppState>,
    who: Principal,
    Path(endpoint_id): Path<Uuid>,
) -> Result<StatusCode> {
    who.require_admin_or_endpoint(endpoint_id)?;
    endpoints::delete(&app.db, endpoint_id, &who.actor()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Move an endpoint to another pool.
#[utoipa::path(put, path = "/api/endpoints/{endpoint_id}/pool", tag = "endpoints", params(("endpoint_id" = Uuid, Path)),
    request_body = MoveRequest,
    responses((status = 200, body = Endpoint), (status = "4XX", body = Problem)), security(("bearer" = [])))]
pub async fn move_to_pool(
    State(app): State<AppState>,
    who: Principal,
    Path(endpoint_id): Path<Uuid>,
    Json(body): Json<MoveRequest>,
) -> Result<axum::Json<Endpoint>> {
    who.require_admin()?;
    Ok(axum::Json(
        endpoints::move_to_pool(
            &app.db,
            &app.policies,
            endpoint_id,
            body.pool_id,
            &who.actor(),
        )
        .await?,
    ))
}

/// Change what the endpoint is allowed (admin; audited): setting the target of a `designated`
/// pool, and limiting its pool's plans by what it can obtain.
#[utoipa::path(put, path = "/api/endpoints/{endpoint_id}/permissions", tag = "endpoints", params(("endpoint_id" = Uuid, Path)),
    request_body = PermissionsRequest,
    responses((status = 200, body = Endpoint), (status = "4XX", body = Problem)), security(("bearer" = [])))]
pub async fn set_permissions(
    State(app): State<AppState>,
    who: Principal,
    Path(endpoint_id): Path<Uuid>,
    Json(body): Json<PermissionsRequest>,
) -> Result<axum::Json<Endpoint>> {
    who.require_admin()?;
    Ok(axum::Json(
        endpoints::set_permissions(&app.db, endpoint_id, body, &who.actor()).await?,
    ))
}

/// Report the machine's full package state (the endpoint itself).
#[utoipa::path(put, path = "/api/endpoints/{endpoint_id}/state", tag = "endpoints", params(("endpoint_id" = Uuid, Path)),
    request_body = StateReport,
    responses((status = 200, body = StateRecorded), (status = "4XX", body = Problem)), security(("bearer" = [])))]
pub async fn report_state(
    State(app): State<AppState>,
    who: Principal,
    Path(endpoint_id): Path<Uuid>,
    Json(body): Json<StateReport>,
) -> Result<axum::Json<StateRecorded>> {
    who.require_endpoint(endpoint_id)?;
    Ok(axum::Json(
        endpoints::report_state(&app.db, &app.policies, endpoint_id, body).await?,
    ))
}

/// The sync status and the difference from the pool target (admin, or the endpoint itself).
#[utoipa::path(get, path = "/api/endpoints/{endpoint_id}/diff", tag = "endpoints", params(("endpoint_id" = Uuid, Path)),
    responses((status = 200, body = TargetDiff), (status = "4XX", body = Problem)), security(("bearer" = [])))]
pub async fn diff(
    State(app): State<AppState>,
    who: Principal,
    Path(endpoint_id): Path<Uuid>,
) -> Result<axum::Json<TargetDiff>> {
    who.require_admin_or_endpoint(endpoint_id)?;
    Ok(axum::Json(endpoints::diff(&app.db, endpoint_id).await?))
}

/// The endpoint's state history, newest first.
#[utoipa::path(get, path = "/api/endpoints/{endpoint_id}/states", tag = "endpoints",
    params(("endpoint_id" = Uuid, Path), HistoryParams),
    responses((status = 200, body = Vec<HistoryEntry>), (status = "4XX", body = Problem)), security(("bearer" = [])))]
pub async fn history(
    State(app): State<AppState>,
    who: Principal,
    Path(endpoint_id): Path<Uuid>,
    Query(params): Query<HistoryParams>,
) -> Result<axum::Json<Vec<HistoryEntry>>> {
    who.require_admin_or_endpoint(endpoint_id)?;
    let limit = params.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(Error::new(
            ErrorCode::InvalidQuery,
            "limit must be between 1 and 1000",
        ));
    }
    Ok(axum::Json(
        endpoints::history(&app.db, endpoint_id, limit).await?,
    ))
}
