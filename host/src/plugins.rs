//! The plugin registry: uploading, listing and deleting policy components, and choosing a
//! pool's policy at run time.

use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::db;
use crate::db::plugins::{NewPlugin, StoredPlugin};
use crate::db::pools::Pool;
use crate::error::{Error, ErrorCode, Result};
use crate::policy::Policies;

/// A plugin as listed: built-ins (id = name) and uploaded components.
#[derive(Debug, Serialize, ToSchema)]
pub struct PluginInfo {
    /// Uploaded plugin id, or the built-in's name.
    pub plugin_id: String,
    /// Whether it is embedded in the host.
    pub builtin: bool,
    /// Reported name.
    pub name: String,
    /// Reported version.
    pub version: String,
    /// One-line summary.
    pub summary: String,
    /// sha256 of the component.
    pub sha256: String,
    /// JSON Schema of the config.
    pub config_schema: serde_json::Value,
}

impl From<StoredPlugin> for PluginInfo {
    fn from(p: StoredPlugin) -> Self {
        PluginInfo {
            plugin_id: p.plugin_id.to_string(),
            builtin: false,
            name: p.name,
            version: p.version,
            summary: p.summary,
            sha256: p.sha256,
            config_schema: p.config_schema,
        }
    }
}

/// `PUT /api/pools/{pool_id}/policy` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetPolicy {
    /// A built-in name (`mirror`, `conservative`, `holds`) or an uploaded plugin id.
    pub plugin: String,
    /// The plugin's config; validated by the plugin itself [default: {}].
    #[serde(default = "empty_object")]
    #[schema(value_type = Object)]
    pub config: serde_json::Value,
}

fn empty_object() -> serde_json::Value {
    serde_json::json!({})
}

/// Validates and stores an uploaded component; returns it and whether it is new.
pub async fn upload(
    db: &PgPool,
    policies: &Policies,
    bytes: &[u8],
    actor: &str,
) -> Result<(PluginInfo, bool)> {
    if bytes.is_empty() {
        return Err(Error::new(
            ErrorCode::InvalidPlugin,
            "the body must be the component's bytes",
        ));
    }
    let plugin = policies
        .runtime()
        .load(bytes)
        .map_err(|e| e.into_error(ErrorCode::InvalidPlugin, ""))?;
    let d = &plugin.description;
    let mut tx = db.begin().await?;
    let (stored, created) = db::plugins::insert(
        &mut tx,
        NewPlugin {
            sha256: &plugin.sha256,
            name: &d.name,
            version: &d.version,
            summary: &d.summary,
            config_schema: &d.config_schema,
            component: bytes,
            actor,
        },
    )
    .await?;
    tx.commit().await?;
    Ok((stored.into(), created))
}

/// Built-ins first, then uploads.
pub async fn list(db: &PgPool, policies: &Policies) -> Result<Vec<PluginInfo>> {
    let mut all: Vec<PluginInfo> = policies
        .builtins()
        .map(|(name, p)| PluginInfo {
            plugin_id: name.to_owned(),
            builtin: true,
            name: p.description.name.clone(),
            version: p.description.version.clone(),
            summary: p.description.summary.clone(),
            sha256: p.sha256.clone(),
            config_schema: p.description.config_schema.clone(),
        })
        .collect();
    all.sort_by(|a, b| a.plugin_id.cmp(&b.plugin_id));
    all.extend(
        db::plugins::list(db)
            .await?
            .into_iter()
            .map(PluginInfo::from),
    );
    Ok(all)
}

/// One uploaded plugin or built-in.
pub async fn get(db: &PgPool, policies: &Policies, plugin_id: &str) -> Result<PluginInfo> {
    list(db, policies)
        .await?
        .into_iter()
        .find(|p| p.plugin_id == plugin_id)
        .ok_or_else(|| {
            Error::new(
                ErrorCode::PluginNotFound,
                format!("plugin {plugin_id} not found"),
            )
        })
}

/// Deletes an uploaded plugin no pool uses.
pub async fn delete(db: &PgPool, policies: &Policies, plugin_id: &str, actor: &str) -> Result<()> {
    let not_found = || {
        Error::new(
            ErrorCode::PluginNotFound,
            format!("plugin {plugin_id} not found"),
        )
    };
    if policies.builtin(plugin_id).is_some() {
        return Err(Error::new(
            ErrorCode::BuiltinPlugin,
            "built-in plugins are part of the host and cannot be deleted",
        ));
    }
    let id: Uuid = plugin_id.parse().map_err(|_| not_found())?;
    let mut tx = db.begin().await?;
    if !db::plugins::delete(&mut tx, id, actor).await? {
        return Err(not_found());
    }
    tx.commit().await?;
    Ok(())
}

/// Switches a pool's policy after the plugin accepted the config, and re-classifies the pool's
/// endpoints under it. Takes effect for the next classification or plan; no restart.
pub async fn set_pool_policy(
    db: &PgPool,
    policies: &Policies,
    pool_id: Uuid,
    request: SetPolicy,
    actor: &str,
) -> Result<Pool> {
    crate::policy::require_object_config(&request.config)?;
    let mut tx = db.begin().await?;
    let (plugin, builtin_name, plugin_id) = match policies.builtin(&request.plugin) {
        Some(p) => (p, request.plugin.clone(), None),
        None => {
            let id: Uuid = request.plugin.parse().map_err(|_| {
                Error::new(
                    ErrorCode::PluginNotFound,
                    format!("no built-in or uploaded plugin {:?}", request.plugin),
                )
            })?;
            (
                policies.uploaded(&mut *tx, id).await?,
                "uploaded".to_owned(),
                Some(id),
            )
        }
    };
    if let Err(message) = policies
        .runtime()
        .validate_config(&plugin, &request.config)?
    {
        return Err(Error::new(ErrorCode::InvalidPolicyConfig, message));
    }
    db::pools::lock(&mut *tx, pool_id).await?;
    if !db::plugins::set_pool_policy(
        &mut tx,
        pool_id,
        &builtin_name,
        plugin_id,
        &request.config,
        actor,
    )
    .await?
    {
        return Err(Error::new(
            ErrorCode::PoolNotFound,
            format!("pool {pool_id} not found"),
        ));
    }
    crate::classification::reclassify_pool(policies, &mut tx, pool_id).await?;
    let pool = db::pools::get(&mut *tx, pool_id)
        .await?
        .ok_or_else(|| Error::internal("pool vanished"))?;
    tx.commit().await?;
    Ok(pool)
}
