//! Builds the hostile policy component the containment tests upload.

fn main() {
    let manifest = std::path::PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let workspace = manifest.parent().expect("tests/ is inside the workspace");
    pacsync_wasm_build::rerun_if_policy_sources_change(workspace);
    println!(
        "cargo:rerun-if-changed={}",
        manifest.join("hostile-policy").display()
    );
    pacsync_wasm_build::build_components(workspace, &["pacsync-hostile-policy"]);
}
