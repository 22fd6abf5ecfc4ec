//! WebSocket streams: one endpoint's events and a whole pool's (dashboards).
//!
//! Each caller may hold a bounded number of streams open on a replica (see
//! [`crate::events::StreamSlots`]); past it, the upgrade is refused with 429 `TOO_MANY_STREAMS`
//! before any WebSocket exists.

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::response::Response;
use serde::Deserialize;
use utoipa::IntoParams;
use uuid::Uuid;

use super::AppState;
use super::extract::{self, Path, Query};
use crate::auth::{self, Claims, Principal, Role};
use crate::error::{Error, ErrorCode, Result};
use crate::events::{self, Credential, Holder, Scope, StreamSlot};

/// Stream parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct StreamParams {
    /// Bearer token, for clients (browsers) that cannot set headers.
    pub access_token: Option<String>,
    /// Resume: first replay every event after this `event_id`, then continue live.
    pub after: Option<i64>,
}

/// The verified claims of the caller's token, from `Authorization: Bearer` or the
/// `access_token` query parameter.
pub struct StreamToken(pub Claims);

impl FromRequestParts<AppState> for StreamToken {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self> {
        extract::claims(parts, &state.keys, true).map(StreamToken)
    }
}

/// The caller, and what the session keeps checking of its token.
async fn caller(
    app: &AppState,
    StreamToken(claims): StreamToken,
) -> Result<(Principal, Credential)> {
    // An admin token's id is what its revocation is recorded under.
    let id = claims.jti.filter(|_| claims.role == Role::Admin);
    let (who, expires) = auth::authorize(&app.keys, &app.db, claims).await?;
    let revocation = id.map(|id| (app.keys.revocations().clone(), id));
    Ok((
        who,
        Credential {
            expires,
            revocation,
        },
    ))
}

/// A stream slot for `who`, or 429 `TOO_MANY_STREAMS` if it holds as many as it may.
fn slot(app: &AppState, who: &Principal) -> Result<StreamSlot> {
    let holder = match who {
        Principal::Endpoint { endpoint_id, .. } => Holder::Endpoint(*endpoint_id),
        Principal::Admin { subject, .. } => Holder::Admin(subject.clone()),
    };
    let streams = &app.limits.streams;
    let cap = streams.cap(&holder);
    streams.take(holder).ok_or_else(|| {
        Error::new(
            ErrorCode::TooManyStreams,
            format!(
                "this token already holds {cap} open event streams on this host; close one first"
            ),
        )
    })
}

/// Subscribers only send small requests; small buffers keep thousands of idle connections cheap
/// (tungstenite's defaults are 128 KiB each way per connection).
fn upgrade(
    ws: std::result::Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<WebSocketUpgrade> {
    let ws = ws.map_err(|e| {
        Error::new(
            ErrorCode::WebSocketRequired,
            format!("this route is a WebSocket: {}", e.body_text()),
        )
    })?;
    Ok(ws
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0)
        .max_message_size(64 * 1024)
        .max_frame_size(64 * 1024))
}

/// Live events of one endpoint (its token or an admin's).
#[utoipa::path(get, path = "/api/sync/{endpoint_id}/status", tag = "stream",
    params(("endpoint_id" = Uuid, Path), StreamParams),
    responses((status = 101, description = "WebSocket of operation, sync-status, target and endpoint (moved, deleted) events; closed with 1008 when the endpoint is deleted or the token expires"),
        (status = 429, description = "TOO_MANY_STREAMS: the token already holds as many streams as it may", body = crate::error::Problem)))]
pub async fn endpoint_status(
    State(app): State<AppState>,
    Path(endpoint_id): Path<Uuid>,
    Query(params): Query<StreamParams>,
    bearer: StreamToken,
    ws: std::result::Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response> {
    let (who, token) = caller(&app, bearer).await?;
    who.require_admin_or_endpoint(endpoint_id)?;
    let ws = upgrade(ws)?;
    let endpoint = crate::endpoints::get(&app.db, endpoint_id).await?;
    let scope = Scope::Endpoint {
        endpoint_id,
        pool_id: endpoint.pool_id,
    };
    let slot = slot(&app, &who)?;
    let streams = app.streams();
    // The endpoint's own agent makes it online while the stream is open; an admin watching
    // does not.
    let own = matches!(who, Principal::Endpoint { .. });
    Ok(ws.on_upgrade(move |socket| async move {
        let held = match own {
            true => Some(streams.presence.hold(&streams.db, endpoint_id).await),
            false => None,
        };
        events::run_session(streams, socket, scope, params.after, token).await;
        drop(held);
        drop(slot);
    }))
}

/// Live events of every endpoint of a pool (admin).
#[utoipa::path(get, path = "/api/sync/pools/{pool_id}/events", tag = "stream",
    params(("pool_id" = Uuid, Path), StreamParams),
    responses((status = 101, description = "WebSocket of the pool's events"),
        (status = 429, description = "TOO_MANY_STREAMS: the token already holds as many streams as it may", body = crate::error::Problem)))]
pub async fn pool_events(
    State(app): State<AppState>,
    Path(pool_id): Path<Uuid>,
    Query(params): Query<StreamParams>,
    bearer: StreamToken,
    ws: std::result::Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response> {
    let (who, token) = caller(&app, bearer).await?;
    who.require_admin()?;
    let ws = upgrade(ws)?;
    crate::pools::get(&app.db, pool_id).await?;
    let slot = slot(&app, &who)?;
    let streams = app.streams();
    Ok(ws.on_upgrade(move |socket| async move {
        let scope = Scope::Pool { pool_id };
        events::run_session(streams, socket, scope, params.after, token).await;
        drop(slot);
    }))
}
