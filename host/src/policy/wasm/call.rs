//! One plugin call: a fresh, limited store and instance in an instance slot, and the mapping of
//! everything that can go wrong in it to an API error.
//!
//! A call takes an instance slot (waiting at most its deadline), builds a `Store` with the
//! memory cap and an epoch deadline counted from now, instantiates the pre-linked component and
//! runs one export. A ticker thread advances the engine's epoch every `EPOCH_TICK`, so a plugin
//! that loops is interrupted when its deadline's ticks have passed. The export runs in
//! `block_in_place` on a multi-threaded runtime, so it stalls no other task of the worker.
//!
//! Failure: no free slot within the deadline is `POLICY_BUSY` (503, retry later); a trap, an
//! interrupted deadline, a refused memory grow, a call to an import outside the world or a result
//! that does not lift is `POLICY_FAULT`, naming the plugin, the export and the reason. Every call
//! is counted in the policy metrics, failed or not.

use std::time::{Duration, Instant};

use wasmtime::component::{Instance, InstancePre, ResourceTable};
use wasmtime::{Engine, Store, StoreLimits, StoreLimitsBuilder, Trap};

use super::WasmRuntime;
use crate::error::{Error, ErrorCode};

/// How often the engine's epoch advances; deadlines are counted in these ticks.
const EPOCH_TICK: Duration = Duration::from_millis(5);

/// Store data of one call.
pub(super) struct CallState {
    limits: StoreLimits,
    /// The plugin's name, for its log lines.
    pub(super) plugin: String,
    /// The resources lent to the call.
    pub(super) table: ResourceTable,
}

/// Starts the thread that advances `engine`'s epoch every `EPOCH_TICK`; it ends once the
/// engine is dropped.
pub(super) fn tick_epochs(engine: &Engine) {
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
}

impl WasmRuntime {
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
    pub(super) fn call<R>(
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

/// A `POLICY_FAULT`: the plugin, not the request, is at fault.
pub(super) fn fault(detail: String) -> Error {
    Error::new(ErrorCode::PolicyFault, detail)
}
