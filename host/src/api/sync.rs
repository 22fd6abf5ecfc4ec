//! The sync API: requesting, reading, listing and cancelling operations, plus the agent's side.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::AppState;
use super::extract::{Json, OptionalJson, Path, Query};
use crate::auth::Principal;
use crate::error::{Error, ErrorCode, Problem, Result};
use crate::operations::Lifecycle;
use crate::operations::{self, Created, Request, Scope};
use pacsync_core::{
    CancelAck, CompleteReport, FailReport, Operation, OperationPage, ProgressReport, RevertRequest,
};

/// Header carrying the client's idempotency key.
const IDEMPOTENCY_KEY: &str = "idempotency-key";

fn idempotency_key(headers: &HeaderMap) -> Result<Option<&str>> {
    headers
        .get(IDEMPOTENCY_KEY)
        .map(|v| {
            v.to_str().map_err(|_| {
                Error::new(
                    ErrorCode::InvalidIdempotencyKey,
                    "Idempotency-Key must be visible ASCII",
                )
            })
        })
        .transpose()
}

fn accepted(created: Created) -> Response {
    let location = format!("/api/sync/operations/{}", created.operation.operation_id);
    let mut response = (StatusCode::ACCEPTED, axum::Json(created.operation)).into_response();
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    if created.replayed {
        response
            .headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    response
}

/// Make the endpoint match its pool's target.
#[utoipa::path(post, path = "/api/sync/{endpoint_id}/sync-to-latest", tag = "sync",
    params(("endpoint_id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header, pattern = "^[!-~]{1,255}$")),
    responses((status = 202, body = Operation, headers(("Location" = String))), (status = "4XX", body = Problem)),
    security(("bearer" = [])))]
pub async fn sync_to_latest(
    State(lc): State<Lifecycle>,
    who: Principal,
    Path(endpoint_id): Path<Uuid>,
    headers: HeaderMap,
) -> Result<Response> {
    let request = Request {
        principal: &who,
        endpoint_id,
        idempotency_key: idempotency_key(&headers)?,
    };
    Ok(accepted(operations::request_sync(&lc, request).await?))
}

/// Make the endpoint's current state the pool target.
#[utoipa::path(post, path = "/api/sync/{endpoint_id}/set-as-latest", tag = "sync",
    params(("endpoint_id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header, pattern = "^[!-~]{1,255}$")),
    responses((status = 202, body = Operation, headers(("Location" = String))), (status = "4XX", body = Problem)),
    security(("bearer" = [])))]
pub async fn set_as_latest(
    State(lc): State<Lifecycle>,
    who: Principal,
    Path(endpoint_id): Path<Uuid>,
    headers: HeaderMap,
) -> Result<Response> {
    let request = Request {
        principal: &who,
        endpoint_id,
        idempotency_key: idempotency_key(&headers)?,
    };
    Ok(accepted(
        operations::request_set_latest(&lc, request).await?,
    ))
}

/// Return the endpoint to its previous state, or to `state_id` from its history.
#[utoipa::path(post, path = "/api/sync/{endpoint_id}/revert", tag = "sync",
    params(("endpoint_id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header, pattern = "^[!-~]{1,255}$")),
    request_body(content = Option<RevertRequest>),
    responses((status = 202, body = Operation, headers(("Location" = String))), (status = "4XX", body = Problem)),
    security(("bearer" = [])))]
pub async fn revert(
    State(lc): State<Lifecycle>,
    who: Principal,
    Path(endpoint_id): Path<Uuid>,
    headers: HeaderMap,
    OptionalJson(body): OptionalJson<RevertRequest>,
) -> Result<Response> {
    let request = Request {
        principal: &who,
        endpoint_id,
        idempotency_key: idempotency_key(&headers)?,
    };
    Ok(accepted(
        operations::request_revert(&lc, request, body).await?,
    ))
}

/// Get an operation.
#[utoipa::path(get, path = "/api/sync/operations/{operation_id}", tag = "sync", params(("operation_id" = Uuid, Path)),
    responses((status = 200, body = Operation), (status = "4XX", body = Problem)), security(("bearer" = [])))]
pub async fn get_operation(
    State(lc): State<Lifecycle>,
    who: Principal,
    Path(id): Path<Uuid>,
) -> Result<axum::Json<Operation>> {
    Ok(axum::Json(operations::get(&lc.db, &who, id).await?))
}

/// Cancel: a pending operation ends at once; an in-progress one gets `cancel_requested`.
#[utoipa::path(post, path = "/api/sync/operations/{operation_id}/cancel", tag = "sync", params(("operation_id" = Uuid, Path)),
    responses((status = 200, body = Operation), (status = "4XX", body = Problem)), security(("bearer" = [])))]
pub async fn cancel(
    State(lc): State<Lifecycle>,
    who: Principal,
    Path(id): Path<Uuid>,
) -> Result<axum::Json<Operation>> {
    Ok(axum::Json(operations::cancel(&lc, &who, id).await?))
}

/// Agent: claim a pending operation (takes a lease).
#[utoipa::path(post, path = "/api/sync/operations/{operation_id}/start", tag = "agent", params(("operation_id" = Uuid, Path)),
    responses((status = 200, body = Operation), (status = "4XX", body = Problem)), security(("bearer" = [])))]
pub async fn start(
    State(lc): State<Lifecycle>,
    who: Principal,
    Path(id): Path<Uuid>,
) -> Result<axum::Json<Operation>> {
    Ok(axum::Json(operations::start(&lc, &who, id).await?))
}

/// Agent: report progress and renew the lease.
#[utoipa::path(post, path = "/api/sync/operations/{operation_id}/progress", tag = "agent", params(("operation_id" = Uuid, Path)),
    request_body = ProgressReport,
    responses((status = 200, body = Operation), (status = "4XX", body = Problem)), security(("bearer" = [])))]
pub async fn progress(
    State(lc): State<Lifecycle>,
    who: Principal,
    Path(id): Path<Uuid>,
    Json(body): Json<ProgressReport>,
) -> Result<axum::Json<Operation>> {
    Ok(axum::Json(operations::progress(&lc, &who, id, body).await?))
}

/// Agent: the operation succeeded; here is the machine's state now.
#[utoipa::path(post, path = "/api/sync/operations/{operation_id}/complete", tag = "agent", params(("operation_id" = Uuid, Path)),
    request_body = CompleteReport,
    responses((status = 200, body = Operation), (status = "4XX", body = Problem)), security(("bearer" = [])))]
pub async fn complete(
    State(lc): State<Lifecycle>,
    who: Principal,
    Path(id): Path<Uuid>,
    Json(body): Json<CompleteReport>,
) -> Result<axum::Json<Operation>> {
    Ok(axum::Json(operations::complete(&lc, &who, id, body).await?))
}

/// Agent: the operation failed.
#[utoipa::path(post, path = "/api/sync/operations/{operation_id}/fail", tag = "agent", params(("operation_id" = Uuid, Path)),
    request_body = FailReport,
    responses((status = 200, body = Operation), (status = "4XX", body = Problem)), security(("bearer" = [])))]
pub async fn fail(
    State(lc): State<Lifecycle>,
    who: Principal,
    Path(id): Path<Uuid>,
    Json(body): Json<FailReport>,
) -> Result<axum::Json<Operation>> {
    Ok(axum::Json(operations::fail(&lc, &who, id, body).await?))
}

/// Agent: acknowledge a cancel request at a safe point, with the state reached.
#[utoipa::path(post, path = "/api/sync/operations/{operation_id}/cancel-ack", tag = "agent", params(("operation_id" = Uuid, Path)),
    request_body(content = Option<CancelAck>),
    responses((status = 200, body = Operation), (status = "4XX", body = Problem)), security(("bearer" = [])))]
pub async fn cancel_ack(
    State(lc): State<Lifecycle>,
    who: Principal,
    Path(id): Path<Uuid>,
    OptionalJson(body): OptionalJson<CancelAck>,
) -> Result<axum::Json<Operation>> {
    Ok(axum::Json(
        operations::acknowledge_cancel(&lc, &who, id, body).await?,
    ))
}

/// Paging parameters for an endpoint's operations.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct PageParams {
    /// 1 to 200 [default: 50].
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// Paging and filters for a pool's operations.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct PoolPageParams {
    /// 1 to 200 [default: 50].
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Only this status.
    pub status: Option<String>,
    /// Only this type (`sync`, `set_latest`, `revert`).
    #[serde(rename = "type")]
    #[param(rename = "type")]
    pub operation_type: Option<String>,
}

/// An endpoint's operations, newest first.
#[utoipa::path(get, path = "/api/sync/{endpoint_id}/operations", tag = "sync",
    params(("endpoint_id" = Uuid, Path), PageParams),
    responses((status = 200, body = OperationPage), (status = "4XX", body = Problem)), security(("bearer" = [])))]
pub async fn endpoint_operations(
    State(lc): State<Lifecycle>,
    who: Principal,
    Path(endpoint_id): Path<Uuid>,
    Query(p): Query<PageParams>,
) -> Result<axum::Json<OperationPage>> {
    let query = operations::list_query(p.limit, p.cursor, None, None)?;
    Ok(axum::Json(
        operations::list(&lc.db, &who, Scope::Endpoint(endpoint_id), query).await?,
    ))
}

/// A pool's operations, newest first (admin).
#[utoipa::path(get, path = "/api/sync/pools/{pool_id}/operations", tag = "sync",
    params(("pool_id" = Uuid, Path), PoolPageParams),
    responses((status = 200, body = OperationPage), (status = "4XX", body = Problem)), security(("bearer" = [])))]
pub async fn pool_operations(
    State(lc): State<Lifecycle>,
    who: Principal,
    Path(pool_id): Path<Uuid>,
    Query(p): Query<PoolPageParams>,
) -> Result<axum::Json<OperationPage>> {
    let query = operations::list_query(p.limit, p.cursor, p.status, p.operation_type)?;
    Ok(axum::Json(
        operations::list(&lc.db, &who, Scope::Pool(pool_id), query).await?,
    ))
}

/// `GET /api/sync/health` response.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok` or `degraded`.
    pub status: String,
    /// `ok` or `unavailable`.
    pub database: String,
    /// Host version.
    pub version: String,
}

/// Liveness and database reachability. Public, for load balancers; reveals nothing else.
#[utoipa::path(get, path = "/api/sync/health", tag = "sync",
    responses((status = 200, body = Health), (status = 503, body = Health)))]
pub async fn health(State(app): State<AppState>) -> (StatusCode, axum::Json<Health>) {
    let db_ok = crate::db::ping(&app.db).await;
    let health = Health {
        status: if db_ok { "ok" } else { "degraded" }.into(),
        database: if db_ok { "ok" } else { "unavailable" }.into(),
        version: env!("CARGO_PKG_VERSION").into(),
    };
    let status = if db_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(health))
}
