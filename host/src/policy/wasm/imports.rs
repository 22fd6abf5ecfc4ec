//! The host imports: what a policy component may call, and nothing else.
//!
//! The `policy` world imports `vercmp` (pacman's version order, so a plugin never reimplements
//! it), `log` (into the host's log, tagged with the plugin's name), and the `package-state`
//! resource: a state lent to one call, which the plugin reads by name, counts or lists only if
//! it needs to. Everything else a component imports (the WASI interfaces a `wasm32-wasip2` std
//! guest carries) is linked as a trap.
//!
//! Failure: calling a trapping import fails the call (see `call`), and so does a forged or
//! already dropped resource handle, which traps instead of panicking the host. Log text is cut
//! at 2,048 characters, so a plugin cannot flood the log.

use std::sync::Arc;

use pacsync_core::{Package, PackageState};
use wasmtime::component::{Component, HasSelf, Linker, Resource};
use wasmtime::{Engine, Store};

use super::bindings::Policy as PolicyWorld;
use super::bindings::pacsync::policy::{host, types as wit};
use super::borrowed::reason_to;
use super::call::CallState;

/// A state lent to one call as a `package-state` resource; shared, never copied whole.
pub struct SharedState(Arc<PackageState>);

/// A linker for `component`: the world's imports, and a trap for every other import.
pub(super) fn link_imports(
    engine: &Engine,
    component: &Component,
) -> wasmtime::Result<Linker<CallState>> {
    // A wasm32-wasip2 std guest imports WASI interfaces it never needs: every import is
    // first defined as a trap, then the world's real imports replace theirs.
    let mut linker = Linker::new(engine);
    linker.define_unknown_imports_as_traps(component)?;
    linker.allow_shadowing(true);
    PolicyWorld::add_to_linker::<CallState, HasSelf<CallState>>(&mut linker, |s| s)?;
    // The world's own `use` of `package-state` is a second import of the same resource
    // type; the trap pass gave it a placeholder type, so it is redefined too.
    linker.root().resource(
        "package-state",
        wasmtime::component::ResourceType::host::<SharedState>(),
        |_, _| Ok(()),
    )?;
    Ok(linker)
}

/// Puts both states into the call's resource table; the plugin receives owned handles.
pub(super) fn lend(
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
