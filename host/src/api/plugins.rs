//! Policy plugin registry routes (admin).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use uuid::Uuid;

use super::AppState;
use super::extract::{Json, Path};
use crate::auth::Principal;
use crate::db::pools::Pool;
use crate::error::{Problem, Result};
use crate::plugins::{self, PluginInfo, SetPolicy};

/// Upload a component (`application/wasm` body); 201 when new, 200 when already stored.
#[utoipa::path(post, path = "/api/plugins", tag = "plugins", request_body(content = Vec<u8>, content_type = "application/wasm"),
    responses((status = 201, body = PluginInfo), (status = 200, body = PluginInfo), (status = "4XX", body = Problem)),
    security(("bearer" = [])))]
pub async fn upload(
    State(app): State<AppState>,
    who: Principal,
    body: std::result::Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<impl IntoResponse> {
    who.require_admin()?;
    // Over the body limit: 413 PAYLOAD_TOO_LARGE as a problem document, like every other error.
    let body = body?;
    let (plugin, created) = plugins::upload(&app.db, &app.policies, &body, &who.actor()).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, axum::Json(plugin)))
}

/// List built-in and uploaded plugins.
#[utoipa::path(get, path = "/api/plugins", tag = "plugins",
    responses((status = 200, body = Vec<PluginInfo>), (status = "4XX", body = Problem)), security(("bearer" = [])))]
pub async fn list(
    State(app): State<AppState>,
    who: Principal,
) -> Result<axum::Json<Vec<PluginInfo>>> {
    who.require_admin()?;
    Ok(axum::Json(plugins::list(&app.db, &app.policies).await?))
}

/// Get a plugin (uploaded id or built-in name).
#[utoipa::path(get, path = "/api/plugins/{plugin_id}", tag = "plugins", params(("plugin_id" = String, Path)),
    responses((status = 200, body = PluginInfo), (status = "4XX", body = Problem)), security(("bearer" = [])))]
pub async fn get(
    State(app): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
) -> Result<axum::Json<PluginInfo>> {
    who.require_admin()?;
    Ok(axum::Json(plugins::get(&app.db, &app.policies, &id).await?))
}

/// Delete an uploaded plugin that no pool uses.
#[utoipa::path(delete, path = "/api/plugins/{plugin_id}", tag = "plugins", params(("plugin_id" = String, Path)),
    responses((status = 204), (status = "4XX", body = Problem)), security(("bearer" = [])))]
pub async fn delete(
    State(app): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    who.require_admin()?;
    plugins::delete(&app.db, &app.policies, &id, &who.actor()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Choose a pool's policy and its config; the plugin validates the config.
#[utoipa::path(put, path = "/api/pools/{pool_id}/policy", tag = "plugins", params(("pool_id" = Uuid, Path)),
    request_body = SetPolicy,
    responses((status = 200, body = Pool), (status = "4XX", body = Problem)), security(("bearer" = [])))]
pub async fn set_pool_policy(
    State(app): State<AppState>,
    who: Principal,
    Path(pool_id): Path<Uuid>,
    Json(body): Json<SetPolicy>,
) -> Result<axum::Json<Pool>> {
    who.require_admin()?;
    Ok(axum::Json(
        plugins::set_pool_policy(&app.db, &app.policies, pool_id, body, &who.actor()).await?,
    ))
}
