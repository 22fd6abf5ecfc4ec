//! The HTTP API: routes, the OpenAPI document, health probes, the dashboard's files, and
//! fallbacks that answer in problem+json.
//!
//! Handlers are thin: parse, authorize, call one domain function, map the result.

pub mod admin_tokens;
pub mod dashboard;
pub mod endpoints;
pub mod extract;
pub mod health;
pub mod limits;
pub mod openapi;
pub mod plugins;
pub mod pools;
pub mod state;
pub mod stream;
pub mod sync;

pub use openapi::{ApiDoc, openapi_json};
pub use state::AppState;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post, put};

use crate::error::{Error, ErrorCode};

/// Largest request body accepted (a state report of many thousand packages fits easily).
const BODY_LIMIT: usize = 16 * 1024 * 1024;

async fn method_not_allowed() -> Error {
    Error::new(
        ErrorCode::MethodNotAllowed,
        "this route does not support the method",
    )
}

/// Builds the router over `state`.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/api/openapi.json", get(openapi::serve))
        .route("/api/pools", post(pools::create).get(pools::list))
        .route(
            "/api/pools/{pool_id}",
            get(pools::get).patch(pools::update).delete(pools::delete),
        )
        .route("/api/pools/{pool_id}/status", get(pools::status))
        .route(
            "/api/pools/{pool_id}/target",
            get(pools::target).put(pools::restore_target),
        )
        .route("/api/pools/{pool_id}/targets", get(pools::targets))
        .route(
            "/api/pools/{pool_id}/repository-analysis",
            get(pools::repository_analysis),
        )
        .route(
            "/api/pools/{pool_id}/enrollment-tokens",
            post(pools::create_enrollment_token).get(pools::list_enrollment_tokens),
        )
        .route(
            "/api/pools/{pool_id}/enrollment-tokens/{token_id}",
            axum::routing::delete(pools::revoke_enrollment_token),
        )
        .route("/api/pools/{pool_id}/policy", put(plugins::set_pool_policy))
        .route("/api/plugins", post(plugins::upload).get(plugins::list))
        .route(
            "/api/plugins/{plugin_id}",
            get(plugins::get).delete(plugins::delete),
        )
        .route("/api/endpoints/register", post(endpoints::register))
        .route("/api/endpoints", get(endpoints::list))
        .route(
            "/api/endpoints/{endpoint_id}",
            get(endpoints::get).delete(endpoints::delete),
        )
        .route(
            "/api/endpoints/{endpoint_id}/pool",
            put(endpoints::move_to_pool),
        )
        .route(
            "/api/endpoints/{endpoint_id}/state",
            put(endpoints::report_state),
        )
        .route(
            "/api/endpoints/{endpoint_id}/permissions",
            put(endpoints::set_permissions),
        )
        .route("/api/endpoints/{endpoint_id}/diff", get(endpoints::diff))
        .route(
            "/api/endpoints/{endpoint_id}/states",
            get(endpoints::history),
        )
        .route("/api/sync/health", get(sync::health))
        .route(
            "/api/sync/operations/{operation_id}",
            get(sync::get_operation),
        )
        .route(
            "/api/sync/operations/{operation_id}/cancel",
            post(sync::cancel),
        )
        .route(
            "/api/sync/operations/{operation_id}/start",
            post(sync::start),
        )
        .route(
            "/api/sync/operations/{operation_id}/progress",
            post(sync::progress),
        )
        .route(
            "/api/sync/operations/{operation_id}/complete",
            post(sync::complete),
        )
        .route("/api/sync/operations/{operation_id}/fail", post(sync::fail))
        .route(
            "/api/sync/operations/{operation_id}/cancel-ack",
            post(sync::cancel_ack),
        )
        .route(
            "/api/sync/pools/{pool_id}/operations",
            get(sync::pool_operations),
        )
        .route("/api/sync/pools/{pool_id}/events", get(stream::pool_events))
        .route(
            "/api/sync/{endpoint_id}/status",
            get(stream::endpoint_status),
        )
        .route(
            "/api/sync/{endpoint_id}/sync-to-latest",
            post(sync::sync_to_latest),
        )
        .route(
            "/api/sync/{endpoint_id}/set-as-latest",
            post(sync::set_as_latest),
        )
        .route("/api/sync/{endpoint_id}/revert", post(sync::revert))
        .route(
            "/api/sync/{endpoint_id}/operations",
            get(sync::endpoint_operations),
        )
        .route("/api/admin-tokens", get(admin_tokens::list))
        .route(
            "/api/admin-tokens/{name}",
            axum::routing::delete(admin_tokens::revoke),
        )
        .route("/metrics", get(crate::metrics::render))
        .route("/health/live", get(health::live))
        .route("/health/ready", get(health::ready))
        // The dashboard's files, at every path no route has; anything else is a 404.
        .fallback(dashboard::serve_or_not_found)
        .method_not_allowed_fallback(method_not_allowed)
        // The timeout inside the rate limit, both inside the metrics: a refused or timed-out
        // request is still counted. The rate limit verifies the bearer token, once, for every
        // route: the extractors take its result from the request's extensions.
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            limits::request_timeout,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            limits::rate_limit,
        ))
        .layer(axum::middleware::from_fn(crate::metrics::track_http))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(
            tower_http::trace::TraceLayer::new_for_http()
                .make_span_with(crate::auth::redact::RequestSpan),
        )
        // Outermost: the id exists before the span is made and every layer runs within it.
        .layer(axum::middleware::from_fn(crate::request_id::assign))
        .with_state(state)
}
