//! The compile cache: compiled components kept on disk, so a restart deserializes a plugin
//! instead of compiling it again.
//!
//! An artifact is named by the component's sha256 and the engine's compatibility hash, so a
//! host with another wasmtime or other engine settings never reads one it cannot run. It is
//! written to a temporary name and renamed into place, so a concurrent reader sees a whole file
//! or none. The cache never fails a load: an artifact that cannot be deserialized is logged and
//! compiled again, and one that cannot be written is simply not kept. Only compiling itself can
//! fail, and then the component is refused.

use std::hash::{Hash, Hasher};
use std::path::Path;

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// sha256 hex of component bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Compiles a component, or loads its compiled artifact from the cache directory.
pub(super) fn compile(
    engine: &Engine,
    cache_dir: Option<&Path>,
    bytes: &[u8],
) -> wasmtime::Result<Component> {
    let Some(dir) = cache_dir else {
        return Component::new(engine, bytes);
    };
    let mut engine_hash = std::collections::hash_map::DefaultHasher::new();
    engine
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
        match unsafe { Component::deserialize_file(engine, &path) } {
            Ok(component) => return Ok(component),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "ignoring unusable compiled plugin")
            }
        }
    }
    let compiled = engine.precompile_component(bytes)?;
    if std::fs::create_dir_all(dir).is_ok() {
        // Write then rename, so a concurrent reader never sees half a file.
        let partial = path.with_extension(format!("partial-{}", std::process::id()));
        if std::fs::write(&partial, &compiled).is_ok() {
            let _ = std::fs::rename(&partial, &path);
        }
    }
    // SAFETY: `compiled` was just produced by this engine's `precompile_component`.
    unsafe { Component::deserialize(engine, &compiled) }
}
