//! Health probes in the form container orchestrators and load balancers expect:
//! `GET /health/live` (the process answers) and `GET /health/ready` (it can serve: the database
//! answers with every migration this build knows applied, and the host is not shutting down).
//! Public, like `/api/sync/health`, and revealing nothing beyond the three answers.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;

/// `GET /health/live` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct Live {
    /// Always `live`.
    pub status: &'static str,
}

/// `GET /health/ready` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct Ready {
    /// `ready`, or `not_ready` (with status 503).
    pub status: &'static str,
    /// `ok` or `unavailable`.
    pub database: &'static str,
    /// `ok`, or `missing` when the database lacks a migration this build knows.
    pub migrations: &'static str,
    /// Whether the host is draining requests to stop.
    pub shutting_down: bool,
}

/// The process answers.
#[utoipa::path(get, path = "/health/live", tag = "health",
    responses((status = 200, body = Live, content_type = "application/json")))]
pub async fn live() -> Json<Live> {
    Json(Live { status: "live" })
}

/// Ready to serve: database reachable and migrated, not shutting down; 503 otherwise.
#[utoipa::path(get, path = "/health/ready", tag = "health", responses(
    (status = 200, body = Ready, content_type = "application/json"),
    (status = 503, body = Ready, content_type = "application/json")))]
pub async fn ready(State(app): State<AppState>) -> (StatusCode, Json<Ready>) {
    let migrated = crate::db::schema_is_current(&app.db).await;
    let shutting_down = app.shutdown.is_cancelled();
    let (database, migrations) = match migrated {
        Ok(true) => ("ok", "ok"),
        Ok(false) => ("ok", "missing"),
        Err(_) => ("unavailable", "unknown"),
    };
    let ready = migrated.unwrap_or(false) && !shutting_down;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = Ready {
        status: if ready { "ready" } else { "not_ready" },
        database,
        migrations,
        shutting_down,
    };
    (status, Json(body))
}
