//! Endpoints, their reported states and their state history.

use chrono::{DateTime, Utc};
use pacsync_core::SyncStatus;
use serde::Serialize;
use sqlx::{PgConnection, PgExecutor};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::error::Result;

/// An endpoint as stored and as returned by the API.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct Endpoint {
    /// Endpoint id.
    pub endpoint_id: Uuid,
    /// Unique name among the pool's live endpoints.
    pub name: String,
    /// The machine's hostname.
    pub hostname: String,
    /// The pool it belongs to.
    pub pool_id: Uuid,
    /// Its latest reported state.
    pub current_state_id: Option<String>,
    /// Classification against the pool target.
    #[sqlx(try_from = "String")]
    pub sync_status: SyncStatus,
    /// Reported machine architecture.
    pub architecture: Option<String>,
    /// Reported pacman version.
    pub pacman_version: Option<String>,
    /// Last time the endpoint talked to the host.
    pub last_seen: Option<DateTime<Utc>>,
    /// Whether its agent holds its event stream open now, on any replica.
    pub online: bool,
    /// Registration time.
    pub created_at: DateTime<Utc>,
    /// An admin allowed it to set the target of a pool whose `target_setters` is `designated`.
    pub may_set_target: bool,
    /// Whether what it reports it can obtain limits what the rest of its pool is planned to
    /// install (an admin can exempt, say, a machine that is rarely online).
    pub constrains_availability: bool,
    /// Generation its tokens must carry; bumped to revoke them.
    #[serde(skip)]
    pub token_generation: i32,
    /// History row of the current state (for revert).
    #[serde(skip)]
    pub current_history_id: Option<i64>,
}

const COLUMNS: &str = "endpoint_id, name, hostname, pool_id, current_state_id, sync_status, architecture, \
                       pacman_version, last_seen, created_at, may_set_target, constrains_availability, \
                       token_generation, current_history_id, \
                       coalesce(online_until > now(), false) AS online";

/// One entry of an endpoint's state history.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct HistoryEntry {
    /// Position in the history.
    pub history_id: i64,
    /// The state.
    pub state_id: String,
    /// Number of packages in it.
    pub package_count: i32,
    /// The entry a revert from here returns to.
    pub revert_to: Option<i64>,
    /// Architecture reported with it.
    pub architecture: Option<String>,
    /// pacman version reported with it.
    pub pacman_version: Option<String>,
    /// The operation in progress when it was recorded, if any.
    pub operation_id: Option<Uuid>,
    /// When it was recorded.
    pub recorded_at: DateTime<Utc>,
}

/// Registers an endpoint.
pub async fn insert(
    tx: &mut PgConnection,
    pool_id: Uuid,
    name: &str,
    hostname: &str,
) -> Result<Endpoint> {
    let endpoint: Endpoint = sqlx::query_as(&format!(
        "INSERT INTO endpoints (endpoint_id, name, hostname, pool_id) VALUES ($1, $2, $3, $4) RETURNING {COLUMNS}"
    ))
    .bind(Uuid::new_v4())
    .bind(name)
    .bind(hostname)
    .bind(pool_id)
    .fetch_one(&mut *tx)
    .await?;
    sqlx::query("SELECT ps_audit($1, 'endpoint.register', 'endpoint', $2, $3)")
        .bind(format!("endpoint:{}", endpoint.endpoint_id))
        .bind(endpoint.endpoint_id.to_string())
        .bind(serde_json::json!({ "name": name, "hostname": hostname, "pool_id": pool_id }))
        .execute(&mut *tx)
        .await?;
    // So that the pool's watchers see it at once, before it reports anything.
    sqlx::query("SELECT ps_emit('endpoint_registered', NULL, $1, $2, $3)")
        .bind(endpoint.endpoint_id)
        .bind(pool_id)
        .bind(serde_json::json!({
            "endpoint_id": endpoint.endpoint_id, "pool_id": pool_id,
            "name": name, "hostname": hostname,
        }))
        .execute(&mut *tx)
        .await?;
    Ok(endpoint)
}

/// One live endpoint.
pub async fn get(db: impl PgExecutor<'_>, endpoint_id: Uuid) -> Result<Option<Endpoint>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM endpoints WHERE endpoint_id = $1 AND deleted_at IS NULL"
    ))
    .bind(endpoint_id)
    .fetch_optional(db)
    .await?)
}

/// Live endpoints, optionally of one pool, by name.
pub async fn list(db: impl PgExecutor<'_>, pool_id: Option<Uuid>) -> Result<Vec<Endpoint>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM endpoints WHERE deleted_at IS NULL AND ($1::uuid IS NULL OR pool_id = $1) ORDER BY name"
    ))
    .bind(pool_id)
    .fetch_all(db)
    .await?)
}

/// Takes the endpoint's advisory lock for the rest of the transaction.
pub async fn lock(db: impl PgExecutor<'_>, endpoint_id: Uuid) -> Result<()> {
    sqlx::query("SELECT ps_lock_endpoint($1)")
        .bind(endpoint_id)
        .execute(db)
        .await?;
    Ok(())
}

/// Records a reported state (already stored) as the endpoint's current one.
pub async fn record_state(
    db: impl PgExecutor<'_>,
    endpoint_id: Uuid,
    state_id: &str,
    architecture: &str,
    pacman_version: &str,
) -> Result<Endpoint> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM ps_endpoint_record_state($1, $2, $3, $4)"
    ))
    .bind(endpoint_id)
    .bind(state_id)
    .bind(architecture)
    .bind(pacman_version)
    .fetch_one(db)
    .await?)
}

/// Stores a classification computed by the policy.
pub async fn set_sync_status(
    db: impl PgExecutor<'_>,
    endpoint_id: Uuid,
    status: SyncStatus,
) -> Result<()> {
    sqlx::query("SELECT ps_endpoint_set_sync_status($1, $2)")
        .bind(endpoint_id)
        .bind(status.as_str())
        .execute(db)
        .await?;
    Ok(())
}

/// Moves an endpoint to another pool, withdrawing its `may_set_target` (`ps_endpoint_move`).
pub async fn move_to_pool(
    db: impl PgExecutor<'_>,
    endpoint_id: Uuid,
    pool_id: Uuid,
    actor: &str,
) -> Result<Endpoint> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM ps_endpoint_move($1, $2, $3)"
    ))
    .bind(endpoint_id)
    .bind(pool_id)
    .bind(actor)
    .fetch_one(db)
    .await?)
}

/// What an admin allows an endpoint; `None` fields stay as they are.
#[derive(Debug, Clone, Copy, Default)]
pub struct Permissions {
    /// May set the target of a `designated` pool.
    pub may_set_target: Option<bool>,
    /// Its availability limits its pool's plans.
    pub constrains_availability: Option<bool>,
}

/// Changes a live endpoint's permissions under its lock (set-as-latest reads them under the same
/// lock) and audits the change; `None` when there is no such endpoint.
pub async fn set_permissions(
    tx: &mut PgConnection,
    endpoint_id: Uuid,
    permissions: Permissions,
    actor: &str,
) -> Result<Option<Endpoint>> {
    lock(&mut *tx, endpoint_id).await?;
    let endpoint: Option<Endpoint> = sqlx::query_as(&format!(
        "UPDATE endpoints
         SET may_set_target = coalesce($2, may_set_target),
             constrains_availability = coalesce($3, constrains_availability)
         WHERE endpoint_id = $1 AND deleted_at IS NULL RETURNING {COLUMNS}"
    ))
    .bind(endpoint_id)
    .bind(permissions.may_set_target)
    .bind(permissions.constrains_availability)
    .fetch_optional(&mut *tx)
    .await?;
    if endpoint.is_some() {
        sqlx::query("SELECT ps_audit($1, 'endpoint.permissions', 'endpoint', $2, $3)")
            .bind(actor)
            .bind(endpoint_id.to_string())
            .bind(serde_json::json!({
                "may_set_target": permissions.may_set_target,
                "constrains_availability": permissions.constrains_availability,
            }))
            .execute(&mut *tx)
            .await?;
    }
    Ok(endpoint)
}

/// Soft-deletes an endpoint, revoking its tokens and ending its active operation.
pub async fn delete(db: impl PgExecutor<'_>, endpoint_id: Uuid, actor: &str) -> Result<()> {
    sqlx::query("SELECT ps_endpoint_delete($1, $2)")
        .bind(endpoint_id)
        .bind(actor)
        .execute(db)
        .await?;
    Ok(())
}

/// The token generation of a live endpoint, for token revocation checks.
pub async fn token_generation(db: impl PgExecutor<'_>, endpoint_id: Uuid) -> Result<Option<i32>> {
    Ok(sqlx::query_scalar(
        "SELECT token_generation FROM endpoints WHERE endpoint_id = $1 AND deleted_at IS NULL",
    )
    .bind(endpoint_id)
    .fetch_optional(db)
    .await?)
}

/// The endpoint's history, newest first.
pub async fn history(
    db: impl PgExecutor<'_>,
    endpoint_id: Uuid,
    limit: i64,
) -> Result<Vec<HistoryEntry>> {
    Ok(sqlx::query_as(
        "SELECT h.history_id, h.state_id, s.package_count, h.revert_to, h.architecture, h.pacman_version,
                h.operation_id, h.recorded_at
         FROM endpoint_states h JOIN package_states s ON s.state_id = h.state_id
         WHERE h.endpoint_id = $1 ORDER BY h.history_id DESC LIMIT $2",
    )
    .bind(endpoint_id)
    .bind(limit)
    .fetch_all(db)
    .await?)
}

/// A history row: `(history_id, state_id, revert_to)`.
pub async fn history_entry(
    db: impl PgExecutor<'_>,
    history_id: i64,
) -> Result<Option<(i64, String, Option<i64>)>> {
    Ok(sqlx::query_as(
        "SELECT history_id, state_id, revert_to FROM endpoint_states WHERE history_id = $1",
    )
    .bind(history_id)
    .fetch_optional(db)
    .await?)
}

/// The most recent history row of the endpoint holding `state_id`.
pub async fn latest_history_with_state(
    db: impl PgExecutor<'_>,
    endpoint_id: Uuid,
    state_id: &str,
) -> Result<Option<i64>> {
    Ok(sqlx::query_scalar(
        "SELECT history_id FROM endpoint_states WHERE endpoint_id = $1 AND state_id = $2 ORDER BY history_id DESC LIMIT 1",
    )
    .bind(endpoint_id)
    .bind(state_id)
    .fetch_optional(db)
    .await?)
}

/// A live endpoint of a pool with the availability it last reported, if any, and whether that
/// constrains the pool.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PoolEndpoint {
    /// Endpoint id.
    pub endpoint_id: Uuid,
    /// Endpoint name.
    pub name: String,
    /// Its current state.
    pub current_state_id: Option<String>,
    /// Its latest availability report.
    pub availability_id: Option<String>,
    /// When that report arrived.
    pub availability_reported_at: Option<DateTime<Utc>>,
    /// Whether what it reports it can obtain limits what the rest of the pool is planned to
    /// install.
    pub constrains_availability: bool,
}

/// The live endpoints of a pool, in name order.
pub async fn in_pool(db: impl PgExecutor<'_>, pool_id: Uuid) -> Result<Vec<PoolEndpoint>> {
    Ok(sqlx::query_as(
        "SELECT endpoint_id, name, current_state_id, availability_id, availability_reported_at,
                constrains_availability
         FROM endpoints WHERE pool_id = $1 AND deleted_at IS NULL ORDER BY name",
    )
    .bind(pool_id)
    .fetch_all(db)
    .await?)
}

/// Marks `endpoints` online for `lease` (their agents hold streams on this replica), announcing
/// `endpoint_online` for each that was offline; returns how many were.
pub async fn mark_online(
    db: impl PgExecutor<'_>,
    endpoints: &[Uuid],
    lease: std::time::Duration,
) -> Result<i32> {
    Ok(
        sqlx::query_scalar("SELECT ps_endpoints_online($1, make_interval(secs => $2))")
            .bind(endpoints)
            .bind(lease.as_secs_f64())
            .fetch_one(db)
            .await?,
    )
}

/// Marks an endpoint offline, announcing `endpoint_offline` if it was online.
pub async fn mark_offline(db: impl PgExecutor<'_>, endpoint_id: Uuid) -> Result<bool> {
    Ok(sqlx::query_scalar("SELECT ps_endpoint_offline($1)")
        .bind(endpoint_id)
        .fetch_one(db)
        .await?)
}
