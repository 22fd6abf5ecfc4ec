//! Builds the built-in policy components so the host embeds them with no extra step.

fn main() {
    let manifest = std::path::PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let workspace = manifest.parent().expect("host/ is inside the workspace");
    pacsync_wasm_build::rerun_if_policy_sources_change(workspace);
    // Migrations are embedded by `refinery::embed_migrations!`: a new file must rebuild the host.
    println!("cargo:rerun-if-changed={}", workspace.join("sql").display());
    pacsync_wasm_build::build_components(
        workspace,
        &[
            "pacsync-policy-mirror",
            "pacsync-policy-conservative",
            "pacsync-policy-holds",
        ],
    );
}
