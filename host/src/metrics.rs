//! Prometheus metrics at `GET /metrics` (admin token): HTTP traffic, operations, WebSocket
//! fan-out, policy plugin calls and the database pool.
//!
//! Counters and histograms are per replica (what this process did); the operation gauges are
//! read from the database at scrape time, so every replica reports the same fleet-wide numbers.

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::auth::Principal;
use crate::db::operations::OperationRow;
use crate::error::Result;
use sqlx::PgPool;

/// The process-wide recorder (one per process, shared by every host a test runs in it).
fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets(&[
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0, 60.0, 600.0,
            ])
            .expect("static buckets")
            .build_recorder();
        let handle = recorder.handle();
        // Fails only if another recorder was installed first; the handle still renders ours.
        let _ = metrics::set_global_recorder(recorder);
        handle
    })
}

/// Installs the recorder; call once at start-up.
pub fn install() {
    handle();
}

/// Middleware: requests by route template and status, and their latency.
///
/// Every label takes a bounded set of values whatever clients send: the route is a template of
/// the router (or `unmatched`), the method one of HTTP's own (or `other`), the status a number.
pub async fn track_http(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".into());
    let method = method_label(request.method());
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("pacsync_http_requests_total", "route" => route.clone(), "method" => method, "status" => status)
        .increment(1);
    metrics::histogram!("pacsync_http_request_duration_seconds", "route" => route, "method" => method)
        .record(started.elapsed().as_secs_f64());
    response
}

/// The `method` label: a standard method's name, `other` for any extension method.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
}

/// Records an operation that reached a terminal state through this replica.
pub fn operation_ended(row: &OperationRow) {
    if let Some(ended) = row.completed_at {
        let seconds = (ended - row.created_at).num_milliseconds() as f64 / 1000.0;
        metrics::histogram!("pacsync_operation_duration_seconds",
            "type" => row.operation_type.as_str(), "status" => row.status.as_str())
        .record(seconds.max(0.0));
    }
}

/// A WebSocket subscriber connected (+1) or left (-1).
pub fn websocket_connections(delta: f64) {
    metrics::gauge!("pacsync_websocket_connections").increment(delta);
}

/// An event was sent to a subscriber.
pub fn event_fanned_out() {
    metrics::counter!("pacsync_events_fanned_out_total").increment(1);
}

/// A policy plugin call finished (or faulted).
pub fn policy_call(plugin: &str, call: &str, seconds: f64, faulted: bool) {
    metrics::histogram!("pacsync_policy_call_duration_seconds", "plugin" => plugin.to_owned(), "call" => call.to_owned())
        .record(seconds);
    if faulted {
        metrics::counter!("pacsync_policy_faults_total", "plugin" => plugin.to_owned(), "call" => call.to_owned()).increment(1);
    }
}

/// `GET /metrics` in the Prometheus text format.
#[utoipa::path(get, path = "/metrics", tag = "metrics",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain")),
    security(("bearer" = [])))]
pub async fn render(State(db): State<PgPool>, who: Principal) -> Result<impl IntoResponse> {
    who.require_admin()?;
    let counts = crate::db::operations::counts(&db).await?;
    for (kind, status, count) in counts {
        metrics::gauge!("pacsync_operations", "type" => kind, "status" => status).set(count as f64);
    }
    metrics::gauge!("pacsync_db_pool_connections").set(f64::from(db.size()));
    metrics::gauge!("pacsync_db_pool_idle_connections").set(db.num_idle() as f64);
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        handle().render(),
    ))
}
