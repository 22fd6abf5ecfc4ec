//! The runtime: one wasmtime engine shared by every plugin, loading a component into a
//! `LoadedPlugin`, and calling its exports.
//!
//! `load` compiles a component (or finds it in the compile cache), links its imports, checks
//! that it exports the `policy` world and asks it to `describe` itself; the result is kept
//! pre-linked, so each later call costs an instantiation. `classify` and `plan` compute the
//! differences between the two states here, natively, lend the states as resources, and
//! `plan` checks what comes back before returning it.
//!
//! Failure: a component that is not a policy, or whose `describe` fails or says nonsense, is
//! refused with a `LoadError`; no free instance slot to describe in is `LoadError::Busy`, which
//! blames nothing. A call fails with `POLICY_FAULT` or `POLICY_BUSY` (see `call`); a plugin that
//! rejects its config or cannot reach the target fails the call with `POLICY_FAULT` too.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use pacsync_core::{Available, PackageState, Plan, SyncStatus, difference_refs_by};
use wasmtime::component::InstancePre;
use wasmtime::{Config, Engine, InstanceAllocationStrategy};

use super::bindings::pacsync::policy::types as wit;
use super::bindings::{Policy as PolicyWorld, PolicyPre};
use super::borrowed::{ActionRef, AvailableRef, Exports, PlanRequestRef};
use super::cache::{compile, sha256_hex};
use super::call::{CallState, fault, tick_epochs};
use super::imports::{lend, link_imports};
use super::plan_check::check_plan;
use super::slots::{Slots, pooling};
use crate::error::{Error, ErrorCode};

/// Per-call resource limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Wall-clock budget per call (enforced with epoch interruption); a call that finds every
    /// instance slot taken waits at most this long for one.
    pub deadline: Duration,
    /// Linear memory cap per instance, in bytes.
    pub memory_bytes: usize,
    /// Plugin calls that may run at once: the number of pre-allocated instance slots.
    pub concurrent_calls: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            deadline: Duration::from_millis(1000),
            memory_bytes: 64 << 20,
            concurrent_calls: 16,
        }
    }
}

/// Why a component was refused.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// Not a component, or not one that implements the `policy` world.
    #[error("not a pacsync:policy/policy component: {0}")]
    NotAPolicy(String),
    /// `describe` itself failed.
    #[error("the component's describe() failed: {0}")]
    Describe(String),
    /// No instance slot became free to run `describe` in; nothing is wrong with the component.
    #[error("{0}")]
    Busy(Error),
}

impl LoadError {
    /// The API error: `Busy` keeps its 503 `POLICY_BUSY`; a refusal gets `code`, after `prefix`.
    pub fn into_error(self, code: ErrorCode, prefix: &str) -> Error {
        match self {
            LoadError::Busy(busy) => busy,
            refused => Error::new(code, format!("{prefix}{refused}")),
        }
    }
}

/// What a plugin says about itself.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Description {
    /// Name.
    pub name: String,
    /// Version.
    pub version: String,
    /// One line.
    pub summary: String,
    /// JSON Schema of its config.
    pub config_schema: serde_json::Value,
}

/// A compiled, pre-linked plugin.
pub struct LoadedPlugin {
    pre: InstancePre<CallState>,
    /// `classify` and `plan`, called with borrowed arguments.
    exports: Exports,
    /// Content hash of the component bytes.
    pub sha256: String,
    /// Its self-description.
    pub description: Description,
}

impl LoadedPlugin {
    /// The name it describes itself with, for logs, metrics and errors.
    fn name(&self) -> &str {
        &self.description.name
    }
}

/// The version of `wit/policy.wit` this host implements.
pub const WIT_VERSION: &str = "0.4.0";

/// The `pacsync:policy` version a component imports, when it is not [`WIT_VERSION`]: an older
/// plugin would otherwise be refused with a type mismatch deep in its exports, or link with its
/// host imports turned into traps.
fn other_interface_version(
    engine: &Engine,
    component: &wasmtime::component::Component,
) -> Option<String> {
    component
        .component_type()
        .imports(engine)
        .find_map(|(name, _)| {
            let version = name.strip_prefix("pacsync:policy/")?.split_once('@')?.1;
            (version != WIT_VERSION).then(|| version.to_owned())
        })
}

/// The engine and the epoch ticker shared by every plugin.
pub struct WasmRuntime {
    pub(super) engine: Engine,
    pub(super) limits: Limits,
    pub(super) slots: Slots,
    /// Where compiled artifacts are kept across restarts, if anywhere.
    cache_dir: Option<PathBuf>,
}

impl WasmRuntime {
    /// Creates the engine and starts its epoch ticker.
    /// Compiled components are kept in `cache_dir` (keyed by component sha256 and the engine's
    /// compatibility hash), so a restart deserializes instead of compiling.
    pub fn new(limits: Limits, cache_dir: Option<PathBuf>) -> Self {
        let mut config = Config::new();
        config.wasm_component_model(true).epoch_interruption(true);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pooling(&limits)));
        // Copying a small guest's data segments is cheaper than mapping its image each call.
        config.memory_init_cow(false);
        let engine = Engine::new(&config).expect("a valid wasmtime configuration");
        tick_epochs(&engine);
        Self {
            engine,
            limits,
            slots: Slots::new(limits.concurrent_calls),
            cache_dir,
        }
    }

    /// Compiles and links a component, checks that it implements the world, and asks it to
    /// describe itself. This is the only place a compile happens.
    pub fn load(&self, bytes: &[u8]) -> Result<LoadedPlugin, LoadError> {
        let component = compile(&self.engine, self.cache_dir.as_deref(), bytes)
            .map_err(|e| LoadError::NotAPolicy(format!("{e:#}")))?;
        if let Some(other) = other_interface_version(&self.engine, &component) {
            return Err(LoadError::NotAPolicy(format!(
                "it was built for pacsync:policy@{other}, and this host implements \
                 pacsync:policy@{WIT_VERSION}: rebuild it against the current wit/ (the Rust SDK \
                 follows it)"
            )));
        }
        let linker = link_imports(&self.engine, &component)
            .map_err(|e| LoadError::NotAPolicy(format!("{e:#}")))?;
        let instance_pre = linker
            .instantiate_pre(&component)
            .map_err(|e| LoadError::NotAPolicy(format!("{e:#}")))?;
        // Checks that the exports are the world's; calls then go through `Exports`.
        PolicyPre::new(instance_pre.clone())
            .map_err(|e| LoadError::NotAPolicy(format!("{e:#}")))?;
        let sha256 = sha256_hex(bytes);
        let (described, exports) = self
            .call(
                &instance_pre,
                &sha256[..12],
                "describe",
                |instance, store| {
                    let exports = Exports::new(instance, store)?;
                    let described =
                        PolicyWorld::new(&mut *store, instance)?.call_describe(store)?;
                    Ok((described, exports))
                },
            )
            .map_err(|e| match e.code {
                ErrorCode::PolicyBusy => LoadError::Busy(e),
                _ => LoadError::Describe(e.detail),
            })?;
        let plugin = LoadedPlugin {
            pre: instance_pre,
            exports,
            sha256,
            description: Description {
                config_schema: serde_json::from_str(&described.config_schema)
                    .map_err(|e| LoadError::Describe(format!("config schema is not JSON: {e}")))?,
                name: described.name,
                version: described.version,
                summary: described.summary,
            },
        };
        if plugin.description.name.is_empty() || plugin.description.name.len() > 128 {
            return Err(LoadError::Describe(
                "name must be 1 to 128 characters".into(),
            ));
        }
        Ok(plugin)
    }

    /// Instantiates the plugin and drops the instance: the fixed cost of every call.
    pub fn instantiate(&self, plugin: &LoadedPlugin) -> Result<(), Error> {
        self.call(&plugin.pre, plugin.name(), "instantiate", |_, _| Ok(()))
    }

    /// `validate-config`.
    pub fn validate_config(
        &self,
        plugin: &LoadedPlugin,
        config: &serde_json::Value,
    ) -> Result<Result<(), String>, Error> {
        let text = config.to_string();
        self.call(
            &plugin.pre,
            plugin.name(),
            "validate-config",
            |instance, s| PolicyWorld::new(&mut *s, instance)?.call_validate_config(s, &text),
        )
    }

    /// `classify`.
    pub fn classify(
        &self,
        plugin: &LoadedPlugin,
        current: &Arc<PackageState>,
        target: &Arc<PackageState>,
        config: &serde_json::Value,
    ) -> Result<SyncStatus, Error> {
        let differences = difference_refs_by(current, target, pacsync_core::vercmp);
        let changes: Vec<ActionRef<'_>> = differences.iter().map(ActionRef::from).collect();
        let config = config.to_string();
        let status = self.call(&plugin.pre, plugin.name(), "classify", |instance, s| {
            let (current, target) = lend(s, current, target)?;
            plugin
                .exports
                .classify(instance, s, (&changes, current, target, &config))
        })?;
        Ok(match status {
            wit::SyncStatus::InSync => SyncStatus::InSync,
            wit::SyncStatus::Ahead => SyncStatus::Ahead,
            wit::SyncStatus::Behind => SyncStatus::Behind,
            wit::SyncStatus::Diverged => SyncStatus::Diverged,
        })
    }

    /// `plan`, with the result checked before anything trusts it.
    pub fn plan(
        &self,
        plugin: &LoadedPlugin,
        current: &Arc<PackageState>,
        target: &Arc<PackageState>,
        config: &serde_json::Value,
        available: Option<&[Available]>,
    ) -> Result<Plan, Error> {
        let differences = difference_refs_by(current, target, pacsync_core::vercmp);
        let changes: Vec<ActionRef<'_>> = differences.iter().map(ActionRef::from).collect();
        let config = config.to_string();
        let available: Option<Vec<AvailableRef<'_>>> =
            available.map(|list| list.iter().map(AvailableRef::from).collect());
        let name = plugin.name();
        let outcome = self.call(&plugin.pre, name, "plan", |instance, s| {
            let (current, target) = lend(s, current, target)?;
            let request = PlanRequestRef {
                changes: &changes,
                current,
                target,
                config: &config,
                available: available.as_deref(),
            };
            plugin.exports.plan(instance, s, &request)
        })?;
        match outcome {
            Ok(plan) => check_plan(name, plan, current, &differences),
            Err(wit::PolicyError::InvalidConfig(m)) => {
                Err(fault(format!("policy {name} rejected its config: {m}")))
            }
            Err(wit::PolicyError::Unsatisfiable(m)) => {
                Err(fault(format!("policy {name} cannot reach the target: {m}")))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_component_built_for_another_interface_version_is_refused_naming_both() {
        let runtime = WasmRuntime::new(Limits::default(), None);
        let older =
            wat::parse_str(r#"(component (import "pacsync:policy/host@0.3.0" (instance)))"#)
                .expect("a valid component");
        let refused = runtime.load(&older).err().expect("refused");
        let message = refused.to_string();
        assert!(matches!(refused, LoadError::NotAPolicy(_)), "{message}");
        assert!(
            message.contains("built for pacsync:policy@0.3.0")
                && message.contains("implements pacsync:policy@0.4.0"),
            "{message}"
        );
    }
}
