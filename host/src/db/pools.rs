//! Pools and their targets.

use chrono::{DateTime, Utc};
use pacsync_core::{SyncStatus, TargetSetters};
use serde::Serialize;
use sqlx::{PgConnection, PgExecutor};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::error::{Error, Result};

/// A pool as stored and as returned by the API.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct Pool {
    /// Pool id.
    pub pool_id: Uuid,
    /// Unique name among live pools.
    pub name: String,
    /// Free text.
    pub description: String,
    /// Content address of the target state, once set-as-latest has run.
    pub target_state_id: Option<String>,
    /// Incremented on every target change; 0 means no target yet.
    pub target_generation: i64,
    /// Policy that classifies endpoints and plans syncs.
    pub policy_plugin: String,
    /// The policy's configuration.
    pub policy_config: serde_json::Value,
    /// The uploaded plugin, when the policy is not a built-in.
    pub policy_plugin_id: Option<Uuid>,
    /// Who may move the target with set-as-latest (admins always may).
    #[sqlx(try_from = "String")]
    pub target_setters: TargetSetters,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

const COLUMNS: &str = "pool_id, name, description, target_state_id, target_generation, policy_plugin, \
                       policy_config, policy_plugin_id, target_setters, created_at, updated_at";

/// Inserts a pool and its audit record.
pub async fn create(
    tx: &mut PgConnection,
    name: &str,
    description: &str,
    target_setters: TargetSetters,
    actor: &str,
) -> Result<Pool> {
    let pool: Pool = sqlx::query_as(&format!(
        "INSERT INTO pools (pool_id, name, description, target_setters) VALUES ($1, $2, $3, $4) RETURNING {COLUMNS}"
    ))
    .bind(Uuid::new_v4())
    .bind(name)
    .bind(description)
    .bind(target_setters.as_str())
    .fetch_one(&mut *tx)
    .await?;
    audit(
        tx,
        actor,
        "pool.create",
        pool.pool_id,
        serde_json::json!({ "name": name, "target_setters": target_setters }),
    )
    .await?;
    Ok(pool)
}

/// All live pools by name.
pub async fn list(db: impl PgExecutor<'_>) -> Result<Vec<Pool>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM pools WHERE deleted_at IS NULL ORDER BY name"
    ))
    .fetch_all(db)
    .await?)
}

/// One live pool.
pub async fn get(db: impl PgExecutor<'_>, pool_id: Uuid) -> Result<Option<Pool>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM pools WHERE pool_id = $1 AND deleted_at IS NULL"
    ))
    .bind(pool_id)
    .fetch_optional(db)
    .await?)
}

/// What a pool update changes; `None` fields stay as they are.
#[derive(Debug, Default)]
pub struct PoolChanges<'a> {
    /// New name.
    pub name: Option<&'a str>,
    /// New description.
    pub description: Option<&'a str>,
    /// New rule for who may set the target.
    pub target_setters: Option<TargetSetters>,
}

/// Changes name, description and/or who may set the target.
pub async fn update(
    tx: &mut PgConnection,
    pool_id: Uuid,
    changes: PoolChanges<'_>,
    actor: &str,
) -> Result<Option<Pool>> {
    let PoolChanges {
        name,
        description,
        target_setters,
    } = changes;
    let pool: Option<Pool> = sqlx::query_as(&format!(
        "UPDATE pools SET name = coalesce($2, name), description = coalesce($3, description),
                          target_setters = coalesce($4, target_setters), updated_at = now()
         WHERE pool_id = $1 AND deleted_at IS NULL RETURNING {COLUMNS}"
    ))
    .bind(pool_id)
    .bind(name)
    .bind(description)
    .bind(target_setters.map(TargetSetters::as_str))
    .fetch_optional(&mut *tx)
    .await?;
    if pool.is_some() {
        let details = serde_json::json!({
            "name": name,
            "description": description,
            "target_setters": target_setters,
        });
        audit(tx, actor, "pool.update", pool_id, details).await?;
    }
    Ok(pool)
}

/// Soft-deletes an empty pool (refused with POOL_NOT_EMPTY otherwise).
pub async fn delete(db: impl PgExecutor<'_>, pool_id: Uuid, actor: &str) -> Result<()> {
    sqlx::query("SELECT ps_pool_delete($1, $2)")
        .bind(pool_id)
        .bind(actor)
        .execute(db)
        .await?;
    Ok(())
}

/// Number of live endpoints per sync status.
pub async fn status_counts(
    db: impl PgExecutor<'_>,
    pool_id: Uuid,
) -> Result<Vec<(SyncStatus, i64)>> {
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT sync_status, count(*) FROM endpoints WHERE pool_id = $1 AND deleted_at IS NULL GROUP BY sync_status",
    )
    .bind(pool_id)
    .fetch_all(db)
    .await?;
    rows.into_iter()
        .map(|(status, count)| {
            Ok((
                SyncStatus::try_from(status).map_err(Error::internal)?,
                count,
            ))
        })
        .collect()
}

/// Takes the pool's advisory lock exclusively for the rest of the transaction.
pub async fn lock(db: impl PgExecutor<'_>, pool_id: Uuid) -> Result<()> {
    sqlx::query("SELECT ps_lock_pool($1)")
        .bind(pool_id)
        .execute(db)
        .await?;
    Ok(())
}

/// Takes the pool's advisory lock shared (as endpoint changes do) for the rest of the transaction.
pub async fn lock_shared(db: impl PgExecutor<'_>, pool_id: Uuid) -> Result<()> {
    sqlx::query("SELECT ps_lock_pool_shared($1)")
        .bind(pool_id)
        .execute(db)
        .await?;
    Ok(())
}

/// Makes `state_id` the pool's target as a new generation; returns the generation.
pub async fn set_target(
    db: impl PgExecutor<'_>,
    pool_id: Uuid,
    state_id: &str,
    operation_id: Uuid,
    endpoint_id: Uuid,
    actor: &str,
) -> Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT ps_pool_set_target($1, $2, $3, $4, $5)")
            .bind(pool_id)
            .bind(state_id)
            .bind(operation_id)
            .bind(endpoint_id)
            .bind(actor)
            .fetch_one(db)
            .await?,
    )
}

/// Makes `state_id`, which the pool has had as its target, the target again as a new
/// generation, and returns the generation. A state the pool never had is `STATE_NOT_FOUND`.
/// Takes the pool lock exclusively.
pub async fn restore_target(
    db: impl PgExecutor<'_>,
    pool_id: Uuid,
    state_id: &str,
    actor: &str,
) -> Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT ps_pool_restore_target($1, $2, $3)")
            .bind(pool_id)
            .bind(state_id)
            .bind(actor)
            .fetch_one(db)
            .await?,
    )
}

/// When the current target was set.
pub async fn target_set_at(
    db: impl PgExecutor<'_>,
    pool_id: Uuid,
    generation: i64,
) -> Result<Option<DateTime<Utc>>> {
    Ok(sqlx::query_scalar(
        "SELECT created_at FROM pool_targets WHERE pool_id = $1 AND generation = $2",
    )
    .bind(pool_id)
    .bind(generation)
    .fetch_optional(db)
    .await?)
}

/// One generation of a pool's target history.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct TargetGeneration {
    /// The generation this target was set as.
    pub generation: i64,
    /// Content address of the state.
    pub state_id: String,
    /// Number of packages in it.
    pub package_count: i32,
    /// When it was set.
    pub set_at: DateTime<Utc>,
    /// The set-as-latest operation that set it; absent when an admin restored it (audited as
    /// `pool.restore_target`).
    pub operation_id: Option<Uuid>,
    /// The endpoint whose state set-as-latest made the target; absent when an admin restored it.
    pub endpoint_id: Option<Uuid>,
}

/// Up to `limit` generations of the pool's targets older than `before` (all when `None`),
/// newest first.
pub async fn target_history(
    db: impl PgExecutor<'_>,
    pool_id: Uuid,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<TargetGeneration>> {
    Ok(sqlx::query_as(
        "SELECT t.generation, t.state_id, s.package_count, t.created_at AS set_at,
                t.operation_id, t.endpoint_id
         FROM pool_targets t JOIN package_states s ON s.state_id = t.state_id
         WHERE t.pool_id = $1 AND ($2::bigint IS NULL OR t.generation < $2)
         ORDER BY t.generation DESC LIMIT $3",
    )
    .bind(pool_id)
    .bind(before)
    .bind(limit)
    .fetch_all(db)
    .await?)
}

async fn audit(
    db: impl PgExecutor<'_>,
    actor: &str,
    action: &str,
    pool_id: Uuid,
    details: serde_json::Value,
) -> Result<()> {
    sqlx::query("SELECT ps_audit($1, $2, 'pool', $3, $4)")
        .bind(actor)
        .bind(action)
        .bind(pool_id.to_string())
        .bind(details)
        .execute(db)
        .await?;
    Ok(())
}

/// How many live endpoints of the pool are online now.
pub async fn online_count(db: impl PgExecutor<'_>, pool_id: Uuid) -> Result<i64> {
    Ok(sqlx::query_scalar(
        "SELECT count(*) FROM endpoints WHERE pool_id = $1 AND deleted_at IS NULL AND online_until > now()",
    )
    .bind(pool_id)
    .fetch_one(db)
    .await?)
}
