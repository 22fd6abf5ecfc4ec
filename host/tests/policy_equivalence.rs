//! Each built-in policy answers the same through the host's wasm runtime as its library does
//! natively, on the benchmark's realistic states (2,000 packages, ~5% differing), with and
//! without availability. The benchmark times these paths; this checks them in CI.

#[path = "../benches/fixtures/mod.rs"]
mod fixtures;

use std::sync::Arc;

use pacsync_core::{Plan, SyncStatus, differences_by, vercmp};
use pacsync_host::policy::builtin_component;
use pacsync_host::policy::wasm::{Limits, WasmRuntime};
use pacsync_policy_conservative::Conservative;
use pacsync_policy_holds::Holds;
use pacsync_policy_mirror::Mirror;
use pacsync_policy_sdk::{PlanInput, PolicyLogic};
use serde_json::{Value, json};

/// The native answers of policy `P`: its plan and its classification.
fn native<P: PolicyLogic>(input: &PlanInput<'_>, config: &Value) -> (Plan, SyncStatus) {
    let plan = P::plan(input, &vercmp).expect("the native policy plans");
    let status = P::classify(&input.changes, input.current, input.target, config);
    (plan, status)
}

#[test]
fn built_in_components_agree_with_their_libraries() {
    let (current, target) = fixtures::states();
    let available = fixtures::availability(&current, &target);
    let (shared_current, shared_target) = (Arc::new(current.clone()), Arc::new(target.clone()));
    let runtime = WasmRuntime::new(Limits::default(), None);
    let holds = json!({"ignore": ["pkg-00[0-4]*"]});
    for (name, config) in [
        ("mirror", json!({})),
        ("conservative", json!({})),
        ("holds", holds),
    ] {
        let plugin = runtime.load(builtin_component(name).unwrap()).unwrap();
        for offers in [None, Some(available.clone())] {
            let input = PlanInput::new(&current, &target, config.clone(), offers.clone());
            let (plan, status) = match name {
                "mirror" => native::<Mirror>(&input, &config),
                "conservative" => native::<Conservative>(&input, &config),
                _ => native::<Holds>(&input, &config),
            };
            let wasm_plan = runtime
                .plan(
                    &plugin,
                    &shared_current,
                    &shared_target,
                    &config,
                    offers.as_deref(),
                )
                .unwrap();
            assert_eq!(
                wasm_plan,
                plan,
                "{name} plan, availability {:?}",
                offers.is_some()
            );
            // Every policy keeps some changes; all but mirror without availability skip some,
            // so the plans are proper subsets of the differences.
            assert!(!plan.actions.is_empty(), "{name}");
            assert_eq!(
                plan.skipped.is_empty(),
                name == "mirror" && offers.is_none(),
                "{name}: {}",
                plan.summary
            );
            let wasm_status = runtime
                .classify(&plugin, &shared_current, &shared_target, &config)
                .unwrap();
            assert_eq!(wasm_status, status, "{name} classify");
        }
    }
    // The states are what the benchmark says: ~5% differ, so every policy had work to do.
    assert_eq!(differences_by(&current, &target, vercmp).len(), 105);
}
