//! Uploaded policy components.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgExecutor;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::error::Result;

/// An uploaded plugin's metadata (the component bytes stay in the database).
#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct StoredPlugin {
    /// Plugin id.
    pub plugin_id: Uuid,
    /// sha256 of the component.
    pub sha256: String,
    /// Name the component reports.
    pub name: String,
    /// Version the component reports.
    pub version: String,
    /// One-line summary.
    pub summary: String,
    /// JSON Schema of its config.
    pub config_schema: serde_json::Value,
    /// Component size.
    pub size_bytes: i32,
    /// Who uploaded it.
    pub uploaded_by: String,
    /// When.
    pub created_at: DateTime<Utc>,
}

const COLUMNS: &str =
    "plugin_id, sha256, name, version, summary, config_schema, size_bytes, uploaded_by, created_at";

/// Fields of a new plugin.
pub struct NewPlugin<'a> {
    /// sha256 of `component`.
    pub sha256: &'a str,
    /// Reported name.
    pub name: &'a str,
    /// Reported version.
    pub version: &'a str,
    /// Reported summary.
    pub summary: &'a str,
    /// Reported config schema.
    pub config_schema: &'a serde_json::Value,
    /// The component.
    pub component: &'a [u8],
    /// Uploader.
    pub actor: &'a str,
}

/// Stores a plugin; an identical component already stored is returned instead (`false`).
pub async fn insert(
    db: &mut sqlx::PgConnection,
    new: NewPlugin<'_>,
) -> Result<(StoredPlugin, bool)> {
    let inserted: Option<StoredPlugin> = sqlx::query_as(&format!(
        "INSERT INTO plugins (plugin_id, sha256, name, version, summary, config_schema, component, size_bytes, uploaded_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (sha256) DO NOTHING RETURNING {COLUMNS}"
    ))
    .bind(Uuid::new_v4())
    .bind(new.sha256)
    .bind(new.name)
    .bind(new.version)
    .bind(new.summary)
    .bind(new.config_schema)
    .bind(new.component)
    .bind(i32::try_from(new.component.len()).unwrap_or(i32::MAX))
    .bind(new.actor)
    .fetch_optional(&mut *db)
    .await?;
    if let Some(plugin) = inserted {
        sqlx::query("SELECT ps_audit($1, 'plugin.upload', 'plugin', $2, $3)")
            .bind(new.actor)
            .bind(plugin.plugin_id.to_string())
            .bind(serde_json::json!({ "sha256": new.sha256, "name": new.name }))
            .execute(&mut *db)
            .await?;
        return Ok((plugin, true));
    }
    let existing = sqlx::query_as(&format!("SELECT {COLUMNS} FROM plugins WHERE sha256 = $1"))
        .bind(new.sha256)
        .fetch_one(&mut *db)
        .await?;
    Ok((existing, false))
}

/// All uploaded plugins, newest first.
pub async fn list(db: impl PgExecutor<'_>) -> Result<Vec<StoredPlugin>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM plugins ORDER BY created_at DESC"
    ))
    .fetch_all(db)
    .await?)
}

/// One plugin's metadata.
pub async fn get(db: impl PgExecutor<'_>, plugin_id: Uuid) -> Result<Option<StoredPlugin>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM plugins WHERE plugin_id = $1"
    ))
    .bind(plugin_id)
    .fetch_optional(db)
    .await?)
}

/// One plugin's component bytes.
pub async fn component(db: impl PgExecutor<'_>, plugin_id: Uuid) -> Result<Option<Vec<u8>>> {
    Ok(
        sqlx::query_scalar("SELECT component FROM plugins WHERE plugin_id = $1")
            .bind(plugin_id)
            .fetch_optional(db)
            .await?,
    )
}

/// Deletes a plugin; refused by the foreign key while a pool uses it. Returns whether it existed.
pub async fn delete(db: &mut sqlx::PgConnection, plugin_id: Uuid, actor: &str) -> Result<bool> {
    let deleted = sqlx::query("DELETE FROM plugins WHERE plugin_id = $1")
        .bind(plugin_id)
        .execute(&mut *db)
        .await?;
    if deleted.rows_affected() == 1 {
        sqlx::query("SELECT ps_audit($1, 'plugin.delete', 'plugin', $2)")
            .bind(actor)
            .bind(plugin_id.to_string())
            .execute(&mut *db)
            .await?;
    }
    Ok(deleted.rows_affected() == 1)
}

/// Sets a pool's policy; the caller holds the pool lock.
pub async fn set_pool_policy(
    db: &mut sqlx::PgConnection,
    pool_id: Uuid,
    builtin_name: &str,
    plugin_id: Option<Uuid>,
    config: &serde_json::Value,
    actor: &str,
) -> Result<bool> {
    let updated = sqlx::query(
        "UPDATE pools SET policy_plugin = $2, policy_plugin_id = $3, policy_config = $4, updated_at = now()
         WHERE pool_id = $1 AND deleted_at IS NULL",
    )
    .bind(pool_id)
    .bind(builtin_name)
    .bind(plugin_id)
    .bind(config)
    .execute(&mut *db)
    .await?;
    if updated.rows_affected() == 1 {
        sqlx::query("SELECT ps_audit($1, 'pool.set_policy', 'pool', $2, $3)")
            .bind(actor)
            .bind(pool_id.to_string())
            .bind(serde_json::json!({ "plugin": plugin_id.map(|id| id.to_string()).unwrap_or(builtin_name.to_owned()), "config": config }))
            .execute(&mut *db)
            .await?;
    }
    Ok(updated.rows_affected() == 1)
}
