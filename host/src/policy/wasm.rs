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
//! back; the host copies the kept differences, borrowed from the states, into the plan.
//! Instances live in the pooling allocator's pre-reserved slots, one per concurrent call (see
//! BENCHMARKS.md for what each of these choices bought).
//!
//! Map of the module:
//! - `runtime` is the public face: the engine, loading a component, calling its exports;
//! - `slots` bounds concurrent calls to the pooling allocator's pre-reserved instance slots;
//! - `imports` is what a component may import: `vercmp`, `log`, the `package-state` resources;
//! - `cache` keeps compiled components on disk, keyed by content and engine;
//! - `call` runs one export under its deadline and turns traps into `POLICY_FAULT`/`POLICY_BUSY`;
//! - `plan_check` validates a returned plan against the differences it was given;
//! - `borrowed` lowers call arguments straight from the host's data, without copying.

mod borrowed;
mod cache;
mod call;
mod imports;
mod plan_check;
mod runtime;
mod slots;

/// The `policy` world's generated types and traits; `package-state` is the host's `SharedState`.
mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "policy",
        with: { "pacsync:policy/types/package-state": super::SharedState },
        // Resource lookups can fail on a forged handle: that must trap, not panic.
        imports: { default: trappable },
    });
}

pub use cache::sha256_hex;
pub use imports::SharedState;
pub use runtime::{Description, Limits, LoadError, LoadedPlugin, WasmRuntime};

/// Fixtures shared by the submodules' tests.
#[cfg(test)]
mod testing {
    use std::sync::Arc;

    use pacsync_core::{InstallReason, Package, PackageState};

    /// A state of explicitly installed packages, given as `(name, version)`.
    pub(super) fn state(packages: &[(&str, &str)]) -> Arc<PackageState> {
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
}
