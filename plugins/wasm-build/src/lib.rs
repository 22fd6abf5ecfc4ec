//! Compiles policy crates of this workspace to `wasm32-wasip2` components from a build script,
//! so that `cargo build` of the host (or the tests) produces the components with no extra step.
//!
//! The nested cargo uses its own target directory (`target/policy-components`): sharing the
//! outer build's directory would deadlock on its lock.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Builds `packages` (release, `wasm32-wasip2`) and copies each `<crate>.wasm` into `OUT_DIR`,
/// returning the copied paths in order.
pub fn build_components(workspace: &Path, packages: &[&str]) -> Vec<PathBuf> {
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("called from a build script"));
    let target_dir = workspace.join("target").join("policy-components");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(workspace)
        .args([
            "build",
            "--release",
            "--locked",
            "--target",
            "wasm32-wasip2",
            "--target-dir",
        ])
        .arg(&target_dir);
    for package in packages {
        command.args(["-p", package]);
    }
    // The outer build's settings (clippy's wrapper, host rustflags, its target dir) must not leak
    // into a build for another target.
    for var in [
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTC_WRAPPER",
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
    ] {
        command.env_remove(var);
    }
    let status = command
        .status()
        .expect("run cargo for the policy components");
    assert!(
        status.success(),
        "building policy components failed; is the wasm32-wasip2 target installed? (rustup target add wasm32-wasip2)"
    );
    packages
        .iter()
        .map(|package| {
            let file = format!("{}.wasm", package.replace('-', "_"));
            let built = target_dir.join("wasm32-wasip2").join("release").join(&file);
            let copied = out_dir.join(&file);
            std::fs::copy(&built, &copied)
                .unwrap_or_else(|e| panic!("copy {}: {e}", built.display()));
            copied
        })
        .collect()
}

/// Tells cargo to rebuild when any policy source or the WIT changes.
pub fn rerun_if_policy_sources_change(workspace: &Path) {
    // `.cargo/config.toml` sets the components' link flags (their stack size).
    for dir in [
        "wit",
        "plugins",
        "core/src",
        "Cargo.lock",
        ".cargo/config.toml",
    ] {
        println!("cargo:rerun-if-changed={}", workspace.join(dir).display());
    }
}
