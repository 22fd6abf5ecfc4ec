//! Instance slots: the pooling allocator's pre-reserved room for instances, and the semaphore
//! that bounds concurrent plugin calls to it.
//!
//! The pool reserves `concurrent_calls` instance slots up front, each sized for the memory cap,
//! so a call reuses a slot instead of mapping and faulting in a fresh linear memory. A call
//! takes a semaphore slot before it instantiates and gives it back only after its store (and so
//! its instance) is gone, so the allocator always has room for the calls the semaphore lets in.
//! A caller that finds every slot taken waits at most until its deadline; then `take` returns
//! `None` and the call fails with `POLICY_BUSY`, which says nothing about the plugin.

use std::sync::{Condvar, Mutex};
use std::time::Instant;

use wasmtime::PoolingAllocationConfig;

use super::Limits;

/// Linear memory a freed instance slot keeps mapped and zeroes with `memset` instead of
/// `madvise`, so the next call does not page-fault its way back in. A built-in policy call
/// touches less than this; the rest of a larger memory is decommitted as usual.
const KEEP_RESIDENT: usize = 256 << 10;

/// The pooling allocator: every call reuses a pre-reserved instance slot instead of mapping,
/// faulting in and unmapping a fresh linear memory (which cost more than the policy itself).
pub(super) fn pooling(limits: &Limits) -> PoolingAllocationConfig {
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
pub(super) struct Slots {
    free: Mutex<u32>,
    freed: Condvar,
}

/// One taken slot, given back when dropped.
pub(super) struct Slot<'a>(&'a Slots);

impl Slots {
    pub(super) fn new(count: u32) -> Self {
        Self {
            free: Mutex::new(count.max(1)),
            freed: Condvar::new(),
        }
    }

    /// Takes a slot, waiting until `until` at the latest.
    pub(super) fn take(&self, until: Instant) -> Option<Slot<'_>> {
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

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::super::testing::state;
    use super::super::{Limits, LoadError, LoadedPlugin, WasmRuntime};
    use crate::error::ErrorCode;

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
}
