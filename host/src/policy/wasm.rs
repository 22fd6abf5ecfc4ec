//! The WebAssembly policy runtime: wasmtime components of the `pacsync:policy/policy` world.
//!
//! Components are compiled once per sha256 and kept as an `InstancePre`, so a call costs an
//! instantiation (microseconds), not a compile. Every call gets a fresh `Store` with a memory
//! cap (`StoreLimits`) and an epoch deadline, so a plugin that loops, allocates without bound,
//! traps or returns nonsense fails only the request that used it, with `POLICY_FAULT`.
//! Plugins get no WASI: the imports a `wasm32-wasip2` std guest carries are defined as traps.
//!
//! A call passes the differences between the two states (computed here, natively) and the
//! states themselves as `package-state` resources, which the plugin reads only if it needs to:
//! copying two 2,000-package lists into every instance cost 60 times the policy's own work.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use pacsync_core::{
    Action, ActionKind, Available, InstallReason, Package, PackageState, Plan, Skipped, Source,
    SyncStatus, differences_by, validate_version,
};
use sha2::{Digest, Sha256};
use wasmtime::component::{Component, HasSelf, Linker, Resource, ResourceTable};
use wasmtime::{Config, Engine, Store, StoreLimits, StoreLimitsBuilder, Trap};

use crate::error::{Error, ErrorCode};

mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "policy",
        with: { "pacsync:policy/types/package-state": super::SharedState },
        // Resource lookups can fail on a forged handle: that must trap, not panic.
        imports: { default: trappable },
    });
}

/// A state lent to one call as a `package-state` resource; shared, never copied whole.
pub struct SharedState(Arc<PackageState>);

use bindings::pacsync::policy::{host, types as wit};
use bindings::{Policy as PolicyWorld, PolicyPre};

/// Per-call resource limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Wall-clock budget per call (enforced with epoch interruption).
    pub deadline: Duration,
    /// Linear memory cap per instance, in bytes.
    pub memory_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            deadline: Duration::from_millis(1000),
            memory_bytes: 64 << 20,
        }
    }
}

/// How often the engine's epoch advances; deadlines are counted in these ticks.
const EPOCH_TICK: Duration = Duration::from_millis(5);

/// Store data of one call.
struct CallState {
    limits: StoreLimits,
    plugin: String,
    table: ResourceTable,
}

impl wit::Host for CallState {}

fn package_to(p: &Package) -> wit::Package {
    wit::Package {
        name: p.name.clone(),
        version: p.version.clone(),
        repository: p.repository.clone(),
        architecture: p.architecture.clone(),
        reason: reason_to(p.reason),
    }
}

fn reason_to(r: InstallReason) -> wit::InstallReason {
    match r {
        InstallReason::Explicit => wit::InstallReason::Explicit,
        InstallReason::Dependency => wit::InstallReason::Dependency,
    }
}

impl wit::HostPackageState for CallState {
    fn count(&mut self, state: Resource<SharedState>) -> wasmtime::Result<u32> {
        Ok(u32::try_from(self.table.get(&state)?.0.len()).unwrap_or(u32::MAX))
    }

    fn get(
        &mut self,
        state: Resource<SharedState>,
        name: String,
    ) -> wasmtime::Result<Option<wit::Package>> {
        Ok(self.table.get(&state)?.0.get(&name).map(package_to))
    }

    fn packages(&mut self, state: Resource<SharedState>) -> wasmtime::Result<Vec<wit::Package>> {
        Ok(self.table.get(&state)?.0.iter().map(package_to).collect())
    }

    fn drop(&mut self, state: Resource<SharedState>) -> wasmtime::Result<()> {
        self.table.delete(state)?;
        Ok(())
    }
}

impl host::Host for CallState {
    fn vercmp(&mut self, a: String, b: String) -> wasmtime::Result<i32> {
        Ok(pacsync_core::vercmp(&a, &b) as i32)
    }

    fn log(&mut self, level: wit::LogLevel, message: String) -> wasmtime::Result<()> {
        // Plugin text is untrusted: bound it so a plugin cannot flood the log.
        let message: String = message.chars().take(2048).collect();
        let plugin = &self.plugin;
        match level {
            wit::LogLevel::Debug => tracing::debug!(plugin, "{message}"),
            wit::LogLevel::Info => tracing::info!(plugin, "{message}"),
            wit::LogLevel::Warn => tracing::warn!(plugin, "{message}"),
            wit::LogLevel::Error => tracing::error!(plugin, "{message}"),
        }
        Ok(())
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
    pre: PolicyPre<CallState>,
    /// Content hash of the component bytes.
    pub sha256: String,
    /// Its self-description.
    pub description: Description,
}

/// The engine and the epoch ticker shared by every plugin.
pub struct WasmRuntime {
    engine: Engine,
    limits: Limits,
    /// Where compiled artifacts are kept across restarts, if anywhere.
    cache_dir: Option<PathBuf>,
}

/// sha256 hex of component bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl WasmRuntime {
    /// Creates the engine and starts its epoch ticker.
    /// Compiled components are kept in `cache_dir` (keyed by component sha256 and the engine's
    /// compatibility hash), so a restart deserializes instead of compiling.
    pub fn new(limits: Limits, cache_dir: Option<PathBuf>) -> Self {
        let mut config = Config::new();
        config.wasm_component_model(true).epoch_interruption(true);
        let engine = Engine::new(&config).expect("a valid wasmtime configuration");
        let weak = engine.weak();
        std::thread::Builder::new()
            .name("pacsync-wasm-epoch".into())
            .spawn(move || {
                while let Some(engine) = weak.upgrade() {
                    engine.increment_epoch();
                    drop(engine);
                    std::thread::sleep(EPOCH_TICK);
                }
            })
            .expect("spawn epoch ticker");
        Self {
            engine,
            limits,
            cache_dir,
        }
    }

    /// Compiles and links a component, checks that it implements the world, and asks it to
    /// describe itself. This is the only place a compile happens.
    pub fn load(&self, bytes: &[u8]) -> Result<LoadedPlugin, LoadError> {
        let component = self
            .compile(bytes)
            .map_err(|e| LoadError::NotAPolicy(format!("{e:#}")))?;
        // A wasm32-wasip2 std guest imports WASI interfaces it never needs: every import is
        // first defined as a trap, then the world's real imports replace theirs.
        let mut linker = Linker::new(&self.engine);
        linker
            .define_unknown_imports_as_traps(&component)
            .map_err(|e| LoadError::NotAPolicy(format!("{e:#}")))?;
        linker.allow_shadowing(true);
        PolicyWorld::add_to_linker::<CallState, HasSelf<CallState>>(&mut linker, |s| s)
            .map_err(|e| LoadError::NotAPolicy(format!("{e:#}")))?;
        // The world's own `use` of `package-state` is a second import of the same resource
        // type; the trap pass gave it a placeholder type, so it is redefined too.
        linker
            .root()
            .resource(
                "package-state",
                wasmtime::component::ResourceType::host::<SharedState>(),
                |_, _| Ok(()),
            )
            .map_err(|e| LoadError::NotAPolicy(format!("{e:#}")))?;
        let instance_pre = linker
            .instantiate_pre(&component)
            .map_err(|e| LoadError::NotAPolicy(format!("{e:#}")))?;
        let pre =
            PolicyPre::new(instance_pre).map_err(|e| LoadError::NotAPolicy(format!("{e:#}")))?;
        let mut plugin = LoadedPlugin {
            pre,
            sha256: sha256_hex(bytes),
            description: Description {
                name: String::new(),
                version: String::new(),
                summary: String::new(),
                config_schema: serde_json::Value::Null,
            },
        };
        let described = self
            .call(&plugin, "describe", |world, store| {
                world.call_describe(store)
            })
            .map_err(|e| LoadError::Describe(e.detail))?;
        plugin.description = Description {
            config_schema: serde_json::from_str(&described.config_schema)
                .map_err(|e| LoadError::Describe(format!("config schema is not JSON: {e}")))?,
            name: described.name,
            version: described.version,
            summary: described.summary,
        };
        if plugin.description.name.is_empty() || plugin.description.name.len() > 128 {
            return Err(LoadError::Describe(
                "name must be 1 to 128 characters".into(),
            ));
        }
        Ok(plugin)
    }

    /// Compiles a component, or loads its compiled artifact from the cache directory.
    fn compile(&self, bytes: &[u8]) -> wasmtime::Result<Component> {
        let Some(dir) = &self.cache_dir else {
            return Component::new(&self.engine, bytes);
        };
        let mut engine_hash = std::collections::hash_map::DefaultHasher::new();
        self.engine
            .precompile_compatibility_hash()
            .hash(&mut engine_hash);
        let path = dir.join(format!(
            "{}-{:016x}.cwasm",
            sha256_hex(bytes),
            engine_hash.finish()
        ));
        if path.exists() {
            // SAFETY: the file was written by `precompile_component` of an engine with the same
            // compatibility hash (it is in the name), into the host's private data directory.
            match unsafe { Component::deserialize_file(&self.engine, &path) } {
                Ok(component) => return Ok(component),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "ignoring unusable compiled plugin")
                }
            }
        }
        let compiled = self.engine.precompile_component(bytes)?;
        if std::fs::create_dir_all(dir).is_ok() {
            // Write then rename, so a concurrent reader never sees half a file.
            let partial = path.with_extension(format!("partial-{}", std::process::id()));
            if std::fs::write(&partial, &compiled).is_ok() {
                let _ = std::fs::rename(&partial, &path);
            }
        }
        // SAFETY: `compiled` was just produced by this engine's `precompile_component`.
        unsafe { Component::deserialize(&self.engine, &compiled) }
    }

    /// Instantiates the plugin and drops the instance: the fixed cost of every call.
    pub fn instantiate(&self, plugin: &LoadedPlugin) -> Result<(), Error> {
        self.call(plugin, "instantiate", |_, _| Ok(()))
    }

    /// Runs one export in a fresh, limited instance.
    fn call<R>(
        &self,
        plugin: &LoadedPlugin,
        what: &str,
        f: impl FnOnce(&PolicyWorld, &mut Store<CallState>) -> wasmtime::Result<R>,
    ) -> Result<R, Error> {
        let limits = StoreLimitsBuilder::new()
            .memory_size(self.limits.memory_bytes)
            .trap_on_grow_failure(true)
            .build();
        let name = if plugin.description.name.is_empty() {
            plugin.sha256[..12].to_owned()
        } else {
            plugin.description.name.clone()
        };
        let mut store = Store::new(
            &self.engine,
            CallState {
                limits,
                plugin: name.clone(),
                table: ResourceTable::new(),
            },
        );
        store.limiter(|s| &mut s.limits);
        let ticks = (self.limits.deadline.as_millis() / EPOCH_TICK.as_millis()).max(1) as u64;
        store.set_epoch_deadline(ticks);
        let started = std::time::Instant::now();
        let result = run_blocking(|| {
            plugin
                .pre
                .instantiate(&mut store)
                .and_then(|world| f(&world, &mut store))
        });
        let elapsed = started.elapsed();
        crate::metrics::policy_call(&name, what, elapsed.as_secs_f64(), result.is_err());
        result.map_err(|e| {
            let reason = match e.downcast_ref::<Trap>() {
                Some(Trap::Interrupt) => format!(
                    "exceeded its {} ms deadline",
                    self.limits.deadline.as_millis()
                ),
                Some(trap) => format!("trapped: {trap}"),
                None => {
                    // Not a wasm trap code: a limiter refusal, a lifting error, a failed import.
                    let root = e.root_cause().to_string();
                    if root.contains("unknown import") {
                        format!("called an import outside the policy world (plugins get no WASI; a panic does this): {root}")
                    } else if root.contains("memory") {
                        format!("trapped: exceeded its {} MiB memory limit", self.limits.memory_bytes >> 20)
                    } else {
                        format!("failed: {root}")
                    }
                }
            };
            tracing::warn!(plugin = %name, call = what, ?elapsed, %reason, "policy fault");
            fault(format!("policy {name} failed in {what}: {reason}"))
        })
    }

    /// `validate-config`.
    pub fn validate_config(
        &self,
        plugin: &LoadedPlugin,
        config: &serde_json::Value,
    ) -> Result<Result<(), String>, Error> {
        let text = config.to_string();
        self.call(plugin, "validate-config", |w, s| {
            w.call_validate_config(s, &text)
        })
    }

    /// `classify`.
    pub fn classify(
        &self,
        plugin: &LoadedPlugin,
        current: &Arc<PackageState>,
        target: &Arc<PackageState>,
        config: &serde_json::Value,
    ) -> Result<SyncStatus, Error> {
        let changes = changes_to(&differences_by(current, target, pacsync_core::vercmp));
        let config = config.to_string();
        let status = self.call(plugin, "classify", |w, s| {
            let (current, target) = lend(s, current, target)?;
            w.call_classify(s, &changes, current, target, &config)
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
        let differences = differences_by(current, target, pacsync_core::vercmp);
        let changes = changes_to(&differences);
        let config = config.to_string();
        let available = available.map(|list| {
            list.iter()
                .map(|a| wit::Available {
                    name: a.name.clone(),
                    version: a.version.clone(),
                    source: match a.source {
                        Source::SyncRepository => wit::Source::SyncRepository,
                        Source::Cache => wit::Source::Cache,
                        Source::Archive => wit::Source::Archive,
                    },
                })
                .collect()
        });
        let name = plugin.description.name.clone();
        let outcome = self.call(plugin, "plan", |w, s| {
            let (current, target) = lend(s, current, target)?;
            let request = wit::PlanRequest {
                changes,
                current,
                target,
                config,
                available,
            };
            w.call_plan(s, &request)
        })?;
        match outcome {
            Ok(plan) => check_plan(&name, plan, current, &differences),
            Err(wit::PolicyError::InvalidConfig(m)) => {
                Err(fault(format!("policy {name} rejected its config: {m}")))
            }
            Err(wit::PolicyError::Unsatisfiable(m)) => {
                Err(fault(format!("policy {name} cannot reach the target: {m}")))
            }
        }
    }
}

/// Runs CPU-bound plugin code without stalling the async worker's other tasks when the host
/// runs on a multi-threaded runtime (tests on a current-thread runtime run it in place).
fn run_blocking<R>(f: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

fn fault(detail: String) -> Error {
    Error::new(ErrorCode::PolicyFault, detail)
}

/// Puts both states into the call's resource table; the plugin receives owned handles.
fn lend(
    store: &mut Store<CallState>,
    current: &Arc<PackageState>,
    target: &Arc<PackageState>,
) -> wasmtime::Result<(Resource<SharedState>, Resource<SharedState>)> {
    let table = &mut store.data_mut().table;
    Ok((
        table.push(SharedState(Arc::clone(current)))?,
        table.push(SharedState(Arc::clone(target)))?,
    ))
}

/// The differences a plugin is given, in name order (see `plan-request.changes`).
fn changes_to(differences: &[Action]) -> Vec<wit::Action> {
    differences
        .iter()
        .map(|a| wit::Action {
            kind: match a.kind {
                ActionKind::Install => wit::ActionKind::Install,
                ActionKind::Upgrade => wit::ActionKind::Upgrade,
                ActionKind::Downgrade => wit::ActionKind::Downgrade,
                ActionKind::Remove => wit::ActionKind::Remove,
            },
            name: a.name.clone(),
            from_version: a.from_version.clone(),
            to_version: a.to_version.clone(),
            reason: a.reason.map(reason_to),
        })
        .collect()
}

/// Converts a plugin's plan and rejects garbage: actions must be about packages of the current
/// or target state, carry valid versions, and say what they do consistently.
///
/// Packages are looked up among the `differences` the plugin was given first (a plan is almost
/// always about them); only others are looked up in the current state.
fn check_plan(
    name: &str,
    plan: wit::Plan,
    current: &PackageState,
    differences: &[Action],
) -> Result<Plan, Error> {
    let garbage = |why: String| fault(format!("policy {name} returned an invalid plan: {why}"));
    let changed: HashMap<&str, &Action> =
        differences.iter().map(|a| (a.name.as_str(), a)).collect();
    let mut actions = Vec::with_capacity(plan.actions.len());
    let mut seen = std::collections::HashSet::new();
    for a in plan.actions {
        if !seen.insert(a.name.clone()) {
            return Err(garbage(format!(
                "{} appears in more than one action",
                a.name
            )));
        }
        let kind = match a.kind {
            wit::ActionKind::Install => ActionKind::Install,
            wit::ActionKind::Upgrade => ActionKind::Upgrade,
            wit::ActionKind::Downgrade => ActionKind::Downgrade,
            wit::ActionKind::Remove => ActionKind::Remove,
        };
        // The installed version, and whether the target has the package.
        let change = changed.get(a.name.as_str());
        let (have, wanted): (Option<&str>, bool) = match change {
            Some(change) => (change.from_version.as_deref(), change.to_version.is_some()),
            // Not a difference: the same version on both sides, or in neither state.
            None => {
                let installed = current.get(&a.name).map(|p| p.version.as_str());
                (installed, installed.is_some())
            }
        };
        // The common case, an action that is one of the given differences, was checked when
        // the differences were computed.
        let as_given = change.is_some_and(|c| c.kind == kind && c.to_version == a.to_version);
        if !as_given {
            check_action(kind, &a, have, wanted).map_err(garbage)?;
        }
        actions.push(Action {
            kind,
            name: a.name,
            from_version: have.map(str::to_owned),
            to_version: a.to_version,
            reason: a.reason.map(|r| match r {
                wit::InstallReason::Explicit => InstallReason::Explicit,
                wit::InstallReason::Dependency => InstallReason::Dependency,
            }),
        });
    }
    let skipped = plan
        .skipped
        .into_iter()
        .map(|s| Skipped {
            name: s.name,
            reason: s.reason,
        })
        .collect();
    let mut checked = Plan::from_parts(actions, skipped);
    if !plan.summary.is_empty() && plan.summary.len() <= 1024 {
        checked.summary = plan.summary;
    }
    Ok(checked)
}

/// Checks an action that is not one of the given differences against the endpoint's state.
fn check_action(
    kind: ActionKind,
    a: &wit::Action,
    have: Option<&str>,
    wanted: bool,
) -> Result<(), String> {
    let consistent = match kind {
        ActionKind::Install => have.is_none() && a.to_version.is_some(),
        ActionKind::Upgrade | ActionKind::Downgrade => {
            let ordering = match (have, &a.to_version) {
                (Some(h), Some(to)) => Some(pacsync_core::vercmp(h, to)),
                _ => None,
            };
            let expected = if kind == ActionKind::Upgrade {
                Ordering::Less
            } else {
                Ordering::Greater
            };
            ordering == Some(expected)
        }
        ActionKind::Remove => have.is_some() && a.to_version.is_none(),
    };
    if !consistent {
        return Err(format!(
            "{kind:?} of {} does not fit the endpoint's state",
            a.name
        ));
    }
    if have.is_none() && !wanted {
        return Err(format!(
            "{} is in neither the current nor the target state",
            a.name
        ));
    }
    if let Some(v) = &a.to_version {
        validate_version(v).map_err(|e| format!("{}: {e}", a.name))?;
    }
    Ok(())
}
