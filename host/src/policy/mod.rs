//! The seam between the lifecycle and package policy: classification and planning.
//!
//! A pool names a policy: a built-in (`mirror`, `conservative`, `holds`, embedded components
//! built from `plugins/`) or an uploaded component, plus a JSON config. Both run in the same
//! WebAssembly runtime behind the [`Policy`] trait. Reverts use the native mirror: they return
//! to a recorded state exactly, whatever the pool's policy.

pub mod check;
pub mod wasm;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use pacsync_core::{Available, PackageState, Plan, SyncStatus, classify, mirror_plan};
use sqlx::PgExecutor;
use uuid::Uuid;

use crate::db;
use crate::db::pools::Pool;
use crate::error::{Error, ErrorCode};
use wasm::{LoadedPlugin, WasmRuntime};

/// A package policy with its config bound: how endpoints are classified and syncs planned.
pub trait Policy: Send + Sync {
    /// Where `current` stands relative to `target`.
    fn classify(
        &self,
        current: &Arc<PackageState>,
        target: &Arc<PackageState>,
    ) -> Result<SyncStatus, Error>;
    /// The actions that bring `current` to `target`, given what the endpoint can obtain.
    fn plan(
        &self,
        current: &Arc<PackageState>,
        target: &Arc<PackageState>,
        available: Option<&[Available]>,
    ) -> Result<Plan, Error>;
}

/// A pool's policy config is a JSON object, whatever the plugin's schema says.
pub fn require_object_config(config: &serde_json::Value) -> Result<(), Error> {
    if config.is_object() {
        Ok(())
    } else {
        Err(Error::new(
            ErrorCode::ValidationFailed,
            "config must be a JSON object",
        ))
    }
}

/// Match the target exactly, natively; used for reverts.
pub struct NativeMirror;

impl Policy for NativeMirror {
    fn classify(
        &self,
        current: &Arc<PackageState>,
        target: &Arc<PackageState>,
    ) -> Result<SyncStatus, Error> {
        Ok(classify(current, target))
    }

    fn plan(
        &self,
        current: &Arc<PackageState>,
        target: &Arc<PackageState>,
        available: Option<&[Available]>,
    ) -> Result<Plan, Error> {
        Ok(pacsync_core::restrict_to_available(
            mirror_plan(current, target),
            available,
            pacsync_core::vercmp,
        ))
    }
}

/// A component with the pool's config.
struct WasmPolicy {
    runtime: Arc<WasmRuntime>,
    plugin: Arc<LoadedPlugin>,
    config: serde_json::Value,
}

impl Policy for WasmPolicy {
    fn classify(
        &self,
        current: &Arc<PackageState>,
        target: &Arc<PackageState>,
    ) -> Result<SyncStatus, Error> {
        self.runtime
            .classify(&self.plugin, current, target, &self.config)
    }

    fn plan(
        &self,
        current: &Arc<PackageState>,
        target: &Arc<PackageState>,
        available: Option<&[Available]>,
    ) -> Result<Plan, Error> {
        self.runtime
            .plan(&self.plugin, current, target, &self.config, available)
    }
}

pub use pacsync_core::PolicyRecord;

/// The built-in components, compiled by `host/build.rs` from `plugins/`.
const BUILTINS: [(&str, &[u8]); 3] = [
    (
        "mirror",
        include_bytes!(concat!(env!("OUT_DIR"), "/pacsync_policy_mirror.wasm")),
    ),
    (
        "conservative",
        include_bytes!(concat!(
            env!("OUT_DIR"),
            "/pacsync_policy_conservative.wasm"
        )),
    ),
    (
        "holds",
        include_bytes!(concat!(env!("OUT_DIR"), "/pacsync_policy_holds.wasm")),
    ),
];

/// The embedded component of a built-in policy, by name.
pub fn builtin_component(name: &str) -> Option<&'static [u8]> {
    BUILTINS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, bytes)| *bytes)
}

/// Finds and caches the policy a pool uses.
#[derive(Clone)]
pub struct Policies {
    runtime: Arc<WasmRuntime>,
    builtins: Arc<HashMap<&'static str, Arc<LoadedPlugin>>>,
    /// Uploaded plugins by id; plugins are immutable, so entries never go stale.
    uploaded: Arc<Mutex<HashMap<Uuid, Arc<LoadedPlugin>>>>,
}

impl Policies {
    /// Compiles the built-ins (or loads them from `cache_dir`).
    pub fn new(limits: wasm::Limits, cache_dir: Option<std::path::PathBuf>) -> Self {
        let runtime = Arc::new(WasmRuntime::new(limits, cache_dir));
        let builtins = BUILTINS
            .iter()
            .map(|(name, bytes)| {
                let plugin = runtime
                    .load(bytes)
                    .unwrap_or_else(|e| panic!("built-in policy {name} is broken: {e}"));
                (*name, Arc::new(plugin))
            })
            .collect();
        Self {
            runtime,
            builtins: Arc::new(builtins),
            uploaded: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// The runtime, for validating uploads.
    pub fn runtime(&self) -> &WasmRuntime {
        &self.runtime
    }

    /// Built-in plugins by name.
    pub fn builtins(&self) -> impl Iterator<Item = (&'static str, &LoadedPlugin)> {
        self.builtins.iter().map(|(name, p)| (*name, p.as_ref()))
    }

    /// A built-in by name.
    pub fn builtin(&self, name: &str) -> Option<Arc<LoadedPlugin>> {
        self.builtins.get(name).cloned()
    }

    /// An uploaded plugin, compiled on first use and cached by id.
    pub async fn uploaded(
        &self,
        db: impl PgExecutor<'_>,
        plugin_id: Uuid,
    ) -> Result<Arc<LoadedPlugin>, Error> {
        if let Some(plugin) = self.uploaded.lock().expect("plugin cache").get(&plugin_id) {
            return Ok(plugin.clone());
        }
        let bytes = db::plugins::component(db, plugin_id)
            .await?
            .ok_or_else(|| {
                Error::new(
                    ErrorCode::PluginNotFound,
                    format!("plugin {plugin_id} not found"),
                )
            })?;
        let plugin = Arc::new(self.runtime.load(&bytes).map_err(|e| {
            e.into_error(
                ErrorCode::PolicyFault,
                &format!("stored plugin {plugin_id}: "),
            )
        })?);
        self.uploaded
            .lock()
            .expect("plugin cache")
            .insert(plugin_id, plugin.clone());
        Ok(plugin)
    }

    /// The policy for `pool`, with its config, and the record operations keep of it.
    pub async fn for_pool(
        &self,
        db: impl PgExecutor<'_>,
        pool: &Pool,
    ) -> Result<(Arc<dyn Policy>, PolicyRecord), Error> {
        let (plugin, reference) = match pool.policy_plugin_id {
            Some(id) => (self.uploaded(db, id).await?, id.to_string()),
            None => (
                self.builtin(&pool.policy_plugin).ok_or_else(|| {
                    Error::new(
                        ErrorCode::PolicyFault,
                        format!("pool uses unknown built-in policy {:?}", pool.policy_plugin),
                    )
                })?,
                pool.policy_plugin.clone(),
            ),
        };
        let record = PolicyRecord {
            plugin: reference,
            name: plugin.description.name.clone(),
            hash: plugin.sha256.clone(),
            config: pool.policy_config.clone(),
        };
        let policy = WasmPolicy {
            runtime: self.runtime.clone(),
            plugin,
            config: pool.policy_config.clone(),
        };
        Ok((Arc::new(policy), record))
    }

    /// The policy reverts use.
    pub fn exact(&self) -> (Arc<dyn Policy>, PolicyRecord) {
        (
            Arc::new(NativeMirror),
            PolicyRecord {
                plugin: "native-mirror".into(),
                name: "mirror".into(),
                hash: "native".into(),
                config: serde_json::json!({}),
            },
        )
    }
}
