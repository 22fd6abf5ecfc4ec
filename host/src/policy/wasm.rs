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
//! copying two 2,000-package lists into every instance cost 60 times the policy's own work. A
//! plan names the differences it keeps by index, so only what the plugin changed is lifted
//! back; the host copies the kept differences, borrowed from the states, into the plan. Instances live in the pooling allocator's pre-reserved slots, one per concurrent
//! call (see BENCHMARKS.md for what each of these choices bought).

use std::cmp::Ordering;
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use pacsync_core::{
    Action, ActionKind, Available, Difference, InstallReason, Package, PackageState, Plan, Skipped,
    SyncStatus, difference_refs_by, validate_version,
};
use sha2::{Digest, Sha256};
use wasmtime::component::{
    Component, HasSelf, Instance, InstancePre, Linker, Resource, ResourceTable,
};
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, StoreLimits,
    StoreLimitsBuilder, Trap,
};

use crate::error::{Error, ErrorCode};

mod borrowed;

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
use borrowed::{ActionRef, AvailableRef, Exports, PlanRequestRef, reason_to};

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

/// Linear memory a freed instance slot keeps mapped and zeroes with `memset` instead of
/// `madvise`, so the next call does not page-fault its way back in. A built-in policy call
/// touches less than this; the rest of a larger memory is decommitted as usual.
const KEEP_RESIDENT: usize = 256 << 10;

/// The pooling allocator: every call reuses a pre-reserved instance slot instead of mapping,
/// faulting in and unmapping a fresh linear memory (which cost more than the policy itself).
fn pooling(limits: &Limits) -> PoolingAllocationConfig {
    let slots = limits.concurrent_calls.max(1);
    let mut pool = PoolingAllocationConfig::default();
    // A component is several core instances (the guest, shims holding its tables). The
    // per-component caps make the totals suffice for `slots` calls of any component that loads
    // at all; one needing more is refused at upload instead of starving the pool under load.
    const CORE_INSTANCES: u32 = 8;
    const MEMORIES: u32 = 2;
    const TABLES: u32 = 4;
    pool.total_component_instances(slots)
        .max_core_instances_per_component(CORE_INSTANCES)
        .max_memories_per_component(MEMORIES)
        .max_tables_per_component(TABLES)
        .total_core_instances(slots.saturating_mul(CORE_INSTANCES))
        .total_memories(slots.saturating_mul(MEMORIES))
        .total_tables(slots.saturating_mul(TABLES))
        .max_memory_size(limits.memory_bytes)
        .linear_memory_keep_resident(KEEP_RESIDENT)
        .table_keep_resident(64 << 10);
    pool
}

/// Instance slots not in use; a call holds one for its whole run.
struct Slots {
    free: Mutex<u32>,
    freed: Condvar,
}

/// One taken slot, given back when dropped.
struct Slot<'a>(&'a Slots);

impl Slots {
    fn new(count: u32) -> Self {
        Self {
            free: Mutex::new(count.max(1)),
            freed: Condvar::new(),
        }
    }

    /// Takes a slot, waiting until `until` at the latest.
    fn take(&self, until: Instant) -> Option<Slot<'_>> {
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        while *free == 0 {
            let left = until.checked_duration_since(Instant::now())?;
            free = self
                .freed
                .wait_timeout(free, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        *free -= 1;
        Some(Slot(self))
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        *self.0.free.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        self.0.freed.notify_one();
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

/// The engine and the epoch ticker shared by every plugin.
pub struct WasmRuntime {
    engine: Engine,
    limits: Limits,
    slots: Slots,
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
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pooling(&limits)));
        // Copying a small guest's data segments is cheaper than mapping its image each call.
        config.memory_init_cow(false);
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
            slots: Slots::new(limits.concurrent_calls),
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
        self.call(&plugin.pre, plugin.name(), "instantiate", |_, _| Ok(()))
    }

    /// A store for one call: the memory cap and the epoch deadline, counted from now.
    fn store(&self, plugin: &str) -> Store<CallState> {
        let limits = StoreLimitsBuilder::new()
            .memory_size(self.limits.memory_bytes)
            .trap_on_grow_failure(true)
            .build();
        let mut store = Store::new(
            &self.engine,
            CallState {
                limits,
                plugin: plugin.to_owned(),
                table: ResourceTable::new(),
            },
        );
        store.limiter(|s| &mut s.limits);
        let ticks = (self.limits.deadline.as_millis() / EPOCH_TICK.as_millis()).max(1) as u64;
        store.set_epoch_deadline(ticks);
        store
    }

    /// Runs one export in a fresh, limited instance, in one of the pool's instance slots.
    fn call<R>(
        &self,
        pre: &InstancePre<CallState>,
        name: &str,
        what: &str,
        f: impl FnOnce(&Instance, &mut Store<CallState>) -> wasmtime::Result<R>,
    ) -> Result<R, Error> {
        let started = Instant::now();
        let result = run_blocking(|| {
            let Some(_slot) = self.slots.take(started + self.limits.deadline) else {
                return Err(wasmtime::Error::new(Busy));
            };
            // Declared after the slot, so dropped before it: the store holds the pool's
            // instance slot until it is gone.
            let mut store = self.store(name);
            let instance = pre.instantiate(&mut store)?;
            f(&instance, &mut store)
        });
        let elapsed = started.elapsed();
        crate::metrics::policy_call(name, what, elapsed.as_secs_f64(), result.is_err());
        if result.as_ref().is_err_and(|e| e.is::<Busy>()) {
            tracing::warn!(plugin = %name, call = what, "every policy instance slot stayed busy");
            return Err(Error::new(
                ErrorCode::PolicyBusy,
                format!(
                    "all {} policy instance slots stayed busy for {} ms; retry later",
                    self.limits.concurrent_calls,
                    self.limits.deadline.as_millis()
                ),
            ));
        }
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

/// Every instance slot stayed taken for the call's whole deadline.
#[derive(Debug, thiserror::Error)]
#[error("no free policy instance slot")]
struct Busy;

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

/// What one step of a plugin's plan turned out to be.
enum Resolved {
    /// The host's own difference at this index, as given.
    Given(usize),
    /// An action the plugin spelled out, checked against the endpoint's state.
    Own(Action),
}

/// Converts a plugin's plan and rejects garbage: a step must name an existing change or be an
/// action consistent with the endpoint's state, and no package may appear twice.
///
/// `change(n)` steps take the host's own difference (it was checked when it was computed); only
/// spelled-out actions are checked against the states.
fn check_plan(
    name: &str,
    plan: wit::Plan,
    current: &PackageState,
    differences: &[Difference<'_>],
) -> Result<Plan, Error> {
    let garbage = |why: String| fault(format!("policy {name} returned an invalid plan: {why}"));
    let mut taken = vec![false; differences.len()];
    // Packages of spelled-out actions that are not differences; rare, checked for repeats last.
    let mut outside = Vec::new();
    let mut resolved = Vec::with_capacity(plan.steps.len());
    for step in plan.steps {
        let (index, step) = match step {
            wit::Step::Change(n) => {
                let i = usize::try_from(n)
                    .ok()
                    .filter(|&i| i < differences.len())
                    .ok_or_else(|| {
                        garbage(format!(
                            "step change({n}) names none of the {} changes",
                            differences.len()
                        ))
                    })?;
                (Some(i), Resolved::Given(i))
            }
            wit::Step::Action(a) => {
                // The differences are in name order: a binary search finds a package's.
                let index = differences.binary_search_by(|d| d.name.cmp(&a.name)).ok();
                if index.is_none() {
                    outside.push(a.name.clone());
                }
                let action =
                    own_action(a, index.map(|i| &differences[i]), current).map_err(garbage)?;
                (index, Resolved::Own(action))
            }
        };
        if let Some(i) = index
            && std::mem::replace(&mut taken[i], true)
        {
            return Err(garbage(format!(
                "{} appears in more than one step",
                differences[i].name
            )));
        }
        resolved.push(step);
    }
    outside.sort_unstable();
    if let Some(twice) = outside.windows(2).find(|w| w[0] == w[1]) {
        return Err(garbage(format!(
            "{} appears in more than one step",
            twice[0]
        )));
    }
    let actions = resolved
        .into_iter()
        .map(|step| match step {
            Resolved::Given(i) => differences[i].to_action(),
            Resolved::Own(action) => action,
        })
        .collect();
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

/// Converts a spelled-out action, checked against `change` (the package's difference, if it
/// has one) or else the endpoint's state.
fn own_action(
    a: wit::Action,
    change: Option<&Difference<'_>>,
    current: &PackageState,
) -> Result<Action, String> {
    let kind = match a.kind {
        wit::ActionKind::Install => ActionKind::Install,
        wit::ActionKind::Upgrade => ActionKind::Upgrade,
        wit::ActionKind::Downgrade => ActionKind::Downgrade,
        wit::ActionKind::Remove => ActionKind::Remove,
    };
    // The installed version, and whether the target has the package.
    let (have, wanted): (Option<&str>, bool) = match change {
        Some(change) => (change.from_version, change.to_version.is_some()),
        // Not a difference: the same version on both sides, or in neither state.
        None => {
            let installed = current.get(&a.name).map(|p| p.version.as_str());
            (installed, installed.is_some())
        }
    };
    // The same change with another install reason was checked when it was computed.
    let as_given =
        change.is_some_and(|c| c.kind == kind && c.to_version == a.to_version.as_deref());
    if !as_given {
        check_action(kind, &a, have, wanted)?;
    }
    Ok(Action {
        kind,
        name: a.name,
        from_version: have.map(str::to_owned),
        to_version: a.to_version,
        reason: a.reason.map(|r| match r {
            wit::InstallReason::Explicit => InstallReason::Explicit,
            wit::InstallReason::Dependency => InstallReason::Dependency,
        }),
    })
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

#[cfg(test)]
mod tests {
    use super::*;
    use pacsync_core::InstallReason;

    fn state(packages: &[(&str, &str)]) -> Arc<PackageState> {
        let packages = packages
            .iter()
            .map(|(name, version)| Package {
                name: (*name).into(),
                version: (*version).into(),
                repository: None,
                architecture: None,
                reason: InstallReason::Explicit,
            })
            .collect();
        Arc::new(PackageState::new(packages).unwrap())
    }

    fn runtime(concurrent_calls: u32) -> (WasmRuntime, LoadedPlugin) {
        let runtime = WasmRuntime::new(
            Limits {
                deadline: Duration::from_millis(200),
                concurrent_calls,
                ..Limits::default()
            },
            None,
        );
        let mirror = runtime
            .load(crate::policy::builtin_component("mirror").unwrap())
            .unwrap();
        (runtime, mirror)
    }

    #[test]
    fn a_call_that_finds_every_slot_taken_waits_its_deadline_then_is_busy() {
        let (runtime, mirror) = runtime(1);
        let held = runtime.slots.take(Instant::now()).expect("the one slot");
        let started = Instant::now();
        let err = runtime.instantiate(&mirror).unwrap_err();
        assert_eq!(err.code, ErrorCode::PolicyBusy);
        assert!(started.elapsed() >= Duration::from_millis(200));
        assert!(
            err.detail.contains("all 1 policy instance slots"),
            "{}",
            err.detail
        );
        // Loading (which runs `describe`) is busy too, and says so rather than blaming the
        // component.
        let refused = runtime
            .load(crate::policy::builtin_component("mirror").unwrap())
            .err()
            .expect("no slot to describe in");
        assert!(matches!(refused, LoadError::Busy(_)));
        let err = refused.into_error(ErrorCode::InvalidPlugin, "");
        assert_eq!(err.code, ErrorCode::PolicyBusy);
        drop(held);
        runtime
            .instantiate(&mirror)
            .expect("the slot is free again");
    }

    #[test]
    fn the_largest_configurable_memory_cap_is_a_valid_pool() {
        // `plugin_memory_mib` accepts up to 4096: the pooling allocator must take it.
        let runtime = WasmRuntime::new(
            Limits {
                memory_bytes: 4096 << 20,
                ..Limits::default()
            },
            None,
        );
        let mirror = runtime
            .load(crate::policy::builtin_component("mirror").unwrap())
            .unwrap();
        runtime.instantiate(&mirror).unwrap();
    }

    #[test]
    fn more_callers_than_slots_all_get_their_plan() {
        // Each call gives its slot back only after its instance is gone; otherwise the pooling
        // allocator would refuse the next caller's instance although the semaphore let it in.
        let (runtime, mirror) = runtime(2);
        let (current, target) = (
            state(&[("a", "1-1"), ("b", "2-1")]),
            state(&[("a", "2-1"), ("c", "1-1")]),
        );
        std::thread::scope(|scope| {
            for _ in 0..6 {
                scope.spawn(|| {
                    for _ in 0..25 {
                        let plan = runtime
                            .plan(&mirror, &current, &target, &serde_json::json!({}), None)
                            .expect("every caller is served");
                        assert_eq!(plan.actions.len(), 3);
                    }
                });
            }
        });
    }

    fn given(n: u32) -> wit::Step {
        wit::Step::Change(n)
    }

    fn spelled(kind: wit::ActionKind, name: &str, to: Option<&str>) -> wit::Step {
        wit::Step::Action(wit::Action {
            kind,
            name: name.into(),
            from_version: None,
            to_version: to.map(Into::into),
            reason: to.map(|_| wit::InstallReason::Dependency),
        })
    }

    /// Checks `steps` against current {a 1-1, b 2-1, c 1-1} and target {a 2-1, c 1-1, d 1-1},
    /// whose differences are [upgrade a, remove b, install d].
    fn check(steps: Vec<wit::Step>) -> Result<Plan, Error> {
        let current = state(&[("a", "1-1"), ("b", "2-1"), ("c", "1-1")]);
        let target = state(&[("a", "2-1"), ("c", "1-1"), ("d", "1-1")]);
        let differences = difference_refs_by(&current, &target, pacsync_core::vercmp);
        let plan = wit::Plan {
            steps,
            skipped: Vec::new(),
            summary: String::new(),
        };
        check_plan("test", plan, &current, &differences)
    }

    #[test]
    fn plan_steps_take_the_given_changes_in_the_plugins_order() {
        let plan = check(vec![given(2), given(0)]).unwrap();
        let names: Vec<_> = plan.actions.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, ["d", "a"]);
        assert_eq!(plan.actions[1].from_version.as_deref(), Some("1-1"));
        assert_eq!(plan.summary, "1 to install, 1 to upgrade");
        // A spelled-out action may change the install reason of a given change.
        let plan = check(vec![spelled(wit::ActionKind::Install, "d", Some("1-1"))]).unwrap();
        assert_eq!(plan.actions[0].reason, Some(InstallReason::Dependency));
    }

    #[test]
    fn plan_steps_that_do_not_fit_are_garbage() {
        let cases = [
            (vec![given(3)], "change(3) names none of the 3 changes"),
            (vec![given(0), given(0)], "a appears in more than one step"),
            (
                vec![
                    given(0),
                    spelled(wit::ActionKind::Upgrade, "a", Some("3-1")),
                ],
                "a appears in more than one step",
            ),
            (
                vec![spelled(wit::ActionKind::Install, "zzz", Some("1-1"))],
                "in neither the current nor the target state",
            ),
            (
                vec![spelled(wit::ActionKind::Upgrade, "c", Some("0.5-1"))],
                "does not fit",
            ),
            (
                vec![
                    spelled(wit::ActionKind::Upgrade, "c", Some("2-1")),
                    spelled(wit::ActionKind::Upgrade, "c", Some("3-1")),
                ],
                "c appears in more than one step",
            ),
        ];
        for (steps, expected) in cases {
            let err = check(steps).unwrap_err();
            assert_eq!(err.code, ErrorCode::PolicyFault);
            assert!(err.detail.contains(expected), "{}", err.detail);
        }
        // An upgrade of an unchanged package to a newer version is the plugin's call to make.
        check(vec![spelled(wit::ActionKind::Upgrade, "c", Some("2-1"))]).unwrap();
    }
}
