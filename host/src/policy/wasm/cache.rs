//! The compile cache: compiled components kept on disk, so a restart deserializes a plugin
//! instead of compiling it again.
//!
//! An artifact is named by the component's sha256 and the engine's compatibility hash, so a
//! host with another wasmtime or other engine settings never reads one it cannot run. It is
//! written to a temporary name and renamed into place, so a concurrent reader sees a whole file
//! or none. The cache never fails a load: an artifact that cannot be used is logged and
//! compiled again, and one that cannot be written is simply not kept. Only compiling itself can
//! fail, and then the component is refused.
//!
//! Integrity: wasmtime runs a deserialized artifact as native code without checking it, so a
//! file in the cache is trusted only if it carries the host's MAC. Each file is an
//! HMAC-SHA256 tag followed by the artifact; the tag covers the file's name too, so a valid
//! artifact moved to another component's name fails as surely as a modified one. The key is
//! `<cache dir>-key` beside the directory (`<data-dir>/plugin-cache-key` by default): 32
//! random bytes, hex, generated on first use, and used only if it is the host's own and
//! private. The tag is verified in constant time before deserializing; a file that fails is
//! logged, deleted and compiled again, never loaded. Files are created 0600 and never opened
//! through a symlink.

use std::fs::{File, OpenOptions};
use std::hash::{Hash, Hasher};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

type HmacSha256 = Hmac<Sha256>;

/// Bytes of the tag at the start of every cached file.
const TAG_LEN: usize = 32;
/// Separates the cache's MACs from any other use of the key.
const DOMAIN: &[u8] = b"pacsync compiled plugin v1\0";

/// sha256 hex of component bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
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
    let key = match open_cache(dir) {
        Ok(key) => key,
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %e, "not caching compiled plugins");
            return Component::new(engine, bytes);
        }
    };
    let mut engine_hash = std::collections::hash_map::DefaultHasher::new();
    engine
        .precompile_compatibility_hash()
        .hash(&mut engine_hash);
    let name = format!("{}-{:016x}.cwasm", sha256_hex(bytes), engine_hash.finish());
    let path = dir.join(&name);
    match read_verified(&path, &name, &key) {
        Ok(Some(file)) => {
            // SAFETY: the tag proves this file was written under this name by a host holding
            // the key, from `precompile_component` of an engine with the same compatibility
            // hash (it is in the name).
            match unsafe { Component::deserialize(engine, &file[TAG_LEN..]) } {
                Ok(component) => return Ok(component),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "ignoring unusable compiled plugin")
                }
            }
        }
        Ok(None) => {}
        Err(Unverified::Tampered) => {
            tracing::warn!(
                path = %path.display(),
                "compiled plugin failed its integrity check (modified, swapped or torn); deleting it and compiling again"
            );
            let _ = std::fs::remove_file(&path);
        }
        Err(Unverified::Io(e)) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot read compiled plugin; compiling again")
        }
    }
    let compiled = engine.precompile_component(bytes)?;
    if let Err(e) = store(dir, &name, &key, &compiled) {
        tracing::warn!(dir = %dir.display(), error = %e, "compiled plugin not kept");
    }
    // SAFETY: `compiled` was just produced by this engine's `precompile_component`.
    unsafe { Component::deserialize(engine, &compiled) }
}

/// Why a cached file is not used.
enum Unverified {
    /// Present, but not what this host wrote under this name.
    Tampered,
    /// Unreadable.
    Io(std::io::Error),
}

/// The tag of `artifact` stored as `name`.
fn tagger(key: &[u8], name: &str) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(DOMAIN);
    mac.update(name.as_bytes());
    mac.update(b"\0");
    mac
}

/// The cached file at `path` (tag included) if it carries a valid tag for `name`; `None` if
/// there is none.
fn read_verified(path: &Path, name: &str, key: &[u8]) -> Result<Option<Vec<u8>>, Unverified> {
    let mut file = match open_read(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        // A symlink where an artifact belongs was planted.
        Err(e) if e.raw_os_error() == Some(nix::libc::ELOOP) => return Err(Unverified::Tampered),
        Err(e) => return Err(Unverified::Io(e)),
    };
    if !file.metadata().map_err(Unverified::Io)?.is_file() {
        return Err(Unverified::Tampered);
    }
    let mut contents = Vec::new();
    file.read_to_end(&mut contents).map_err(Unverified::Io)?;
    if contents.len() <= TAG_LEN {
        return Err(Unverified::Tampered);
    }
    let mut mac = tagger(key, name);
    mac.update(&contents[TAG_LEN..]);
    mac.verify_slice(&contents[..TAG_LEN])
        .map_err(|_| Unverified::Tampered)?;
    Ok(Some(contents))
}

/// Writes the tagged artifact under a temporary name and renames it into place.
fn store(dir: &Path, name: &str, key: &[u8], compiled: &[u8]) -> std::io::Result<()> {
    let mut mac = tagger(key, name);
    mac.update(compiled);
    let tag = mac.finalize().into_bytes();
    let partial = dir.join(format!(".{name}.partial-{}", random_suffix()));
    let written = create_private(&partial).and_then(|mut file| {
        file.write_all(&tag)?;
        file.write_all(compiled)
    });
    let placed = written.and_then(|()| std::fs::rename(&partial, dir.join(name)));
    if placed.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    placed
}

/// Creates the cache directory if needed and returns the MAC key, creating it on first use
/// (see [`crate::secret_file`]).
fn open_cache(dir: &Path) -> std::io::Result<Vec<u8>> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let path = key_path(dir)?;
    let key = crate::secret_file::read_or_create(&path)?;
    let metadata = &key.metadata;
    if metadata.uid() != nix::unistd::geteuid().as_raw() || metadata.mode() & 0o077 != 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            format!(
                "{} must be a file owned by the host's user and private to it (0600)",
                path.display()
            ),
        ));
    }
    if key.bytes.len() < 32 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{} holds less than 32 bytes of key", path.display()),
        ));
    }
    Ok(key.bytes)
}

/// `<dir>-key`, beside the directory, so the files it guards cannot replace it.
fn key_path(dir: &Path) -> std::io::Result<PathBuf> {
    let Some(name) = dir.file_name() else {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "the plugin cache directory needs a name (its key is kept beside it)",
        ));
    };
    let mut key_name = name.to_owned();
    key_name.push("-key");
    Ok(dir.with_file_name(key_name))
}

/// A new file, 0600, failing if anything (a symlink included) is already at `path`.
fn create_private(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(path)
}

/// Opens for reading without following a symlink or blocking on a FIFO.
fn open_read(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
        .open(path)
}

fn random_suffix() -> String {
    format!("{}-{:016x}", std::process::id(), rand::rng().next_u64())
}
