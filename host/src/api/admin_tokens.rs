//! Admin token routes (admin): list the recorded tokens, revoke one by name. Tokens are issued
//! only by `pacsync-host token issue`.

use axum::extract::State;
use axum::http::StatusCode;

use super::AppState;
use super::extract::Path;
use crate::auth::{Principal, admin_tokens};
use crate::db::admin_tokens::AdminToken;
use crate::error::{Problem, Result};

/// Recorded admin tokens, revoked ones included: names, ids and lifetimes, never the tokens.
#[utoipa::path(get, path = "/api/admin-tokens", tag = "admin-tokens",
    responses((status = 200, body = Vec<AdminToken>), (status = "4XX", body = Problem)),
    security(("bearer" = [])))]
pub async fn list(
    State(app): State<AppState>,
    who: Principal,
) -> Result<axum::Json<Vec<AdminToken>>> {
    who.require_admin()?;
    Ok(axum::Json(admin_tokens::list(&app.db).await?))
}

/// Revoke the unrevoked admin token with this name: every replica refuses it (401
/// `TOKEN_REVOKED`) within a second, this one at once.
#[utoipa::path(delete, path = "/api/admin-tokens/{name}", tag = "admin-tokens",
    params(("name" = String, Path)),
    responses((status = 204), (status = "4XX", body = Problem)), security(("bearer" = [])))]
pub async fn revoke(
    State(app): State<AppState>,
    who: Principal,
    Path(name): Path<String>,
) -> Result<StatusCode> {
    who.require_admin()?;
    let token_id = admin_tokens::revoke(&app.db, &name, &who.actor()).await?;
    app.keys.revocations().insert(token_id);
    Ok(StatusCode::NO_CONTENT)
}
