//! Policy benchmark: the `mirror` component through the host's wasmtime runtime against the same
//! library called natively, in the same run, on realistic states (2,000 packages, ~5% differing).
//!
//! Run: `cargo bench -p pacsync-host --bench policy`. Prints a table; see BENCHMARKS.md.

use std::hint::black_box;
use std::time::{Duration, Instant};

use pacsync_core::{InstallReason, Package, PackageState, vercmp};
use pacsync_host::policy::builtin_component;
use pacsync_host::policy::wasm::{Limits, WasmRuntime};
use pacsync_policy_mirror::Mirror;
use pacsync_policy_sdk::{PlanInput, PolicyLogic};

fn package(i: usize, version: String) -> Package {
    Package {
        name: format!("pkg-{i:04}"),
        version,
        repository: Some(if i.is_multiple_of(3) { "core" } else { "extra" }.into()),
        architecture: Some("x86_64".into()),
        reason: if i.is_multiple_of(4) {
            InstallReason::Explicit
        } else {
            InstallReason::Dependency
        },
    }
}

/// 2,000 installed packages, and a target where 100 (5%) differ: 40 upgrades, 30 downgrades,
/// 15 removals and 15 new packages.
fn states() -> (PackageState, PackageState) {
    let version = |i: usize, major: usize| format!("{}.{}.{}-{}", major, i % 13, i % 5, 1 + i % 3);
    let current: Vec<Package> = (0..2000)
        .map(|i| package(i, version(i, 1 + i % 7)))
        .collect();
    let mut target = Vec::new();
    for i in 0..2000usize {
        let slot = i / 20;
        match (i.is_multiple_of(20), slot % 5) {
            (true, 0 | 1) => target.push(package(i, version(i, 10 + i % 7))),
            (true, 2) => target.push(package(i, version(i, 0))),
            (true, 3) => {}
            _ => target.push(package(i, version(i, 1 + i % 7))),
        }
    }
    // Extra downgrades and new packages to reach the mix above.
    for (n, i) in (0..2000).filter(|i| i % 20 == 10).take(10).enumerate() {
        target.retain(|p| p.name != format!("pkg-{i:04}"));
        target.push(package(i, version(i, 0)));
        if n < 15 {
            target.push(package(2000 + n, "1.0-1".into()));
        }
    }
    for n in 10..15 {
        target.push(package(2000 + n, "1.0-1".into()));
    }
    (
        PackageState::new(current).unwrap(),
        PackageState::new(target).unwrap(),
    )
}

fn time<R>(iterations: u32, mut f: impl FnMut() -> R) -> Duration {
    for _ in 0..iterations.min(10) {
        black_box(f());
    }
    let started = Instant::now();
    for _ in 0..iterations {
        black_box(f());
    }
    started.elapsed() / iterations
}

fn micros(d: Duration) -> String {
    format!("{:>10.1} µs", d.as_secs_f64() * 1e6)
}

fn main() {
    let (current, target) = states();
    let bytes = builtin_component("mirror").expect("mirror is built in");
    let runtime = WasmRuntime::new(Limits::default(), None);
    let config = serde_json::json!({});

    let compile = time(3, || runtime.load(bytes).expect("mirror loads"));
    let plugin = runtime.load(bytes).unwrap();
    let instantiate = time(2000, || runtime.instantiate(&plugin).unwrap());

    let input = PlanInput {
        current: current.clone(),
        target: target.clone(),
        config: config.clone(),
        available: None,
    };
    let native_plan = time(200, || Mirror::plan(&input, &vercmp).unwrap());
    // What the component must do too: build (and validate) both states from plain lists.
    let (current_list, target_list): (Vec<Package>, Vec<Package>) = (
        current.iter().cloned().collect(),
        target.iter().cloned().collect(),
    );
    let native_plan_from_lists = time(200, || {
        let input = PlanInput {
            current: PackageState::new(current_list.clone()).unwrap(),
            target: PackageState::new(target_list.clone()).unwrap(),
            config: config.clone(),
            available: None,
        };
        Mirror::plan(&input, &vercmp).unwrap()
    });
    let wasm_plan = time(200, || {
        runtime
            .plan(&plugin, &current, &target, &config, None)
            .unwrap()
    });
    let native_classify = time(200, || {
        Mirror::classify(&current, &target, &config, &vercmp)
    });
    let wasm_classify = time(200, || {
        runtime
            .classify(&plugin, &current, &target, &config)
            .unwrap()
    });

    let plan = Mirror::plan(&input, &vercmp).unwrap();
    assert_eq!(
        plan,
        runtime
            .plan(&plugin, &current, &target, &config, None)
            .unwrap(),
        "both paths agree"
    );

    println!(
        "policy benchmark: mirror, {} current / {} target packages, plan = {}",
        current.len(),
        target.len(),
        plan.summary
    );
    println!();
    println!("| measurement                                   |     per call |");
    println!("|-----------------------------------------------|--------------|");
    println!(
        "| compile component (Component::new + describe) | {} |",
        micros(compile)
    );
    println!(
        "| instantiate (InstancePre → instance)          | {} |",
        micros(instantiate)
    );
    println!(
        "| plan, native library                          | {} |",
        micros(native_plan)
    );
    println!(
        "| plan, native, states built from lists         | {} |",
        micros(native_plan_from_lists)
    );
    println!(
        "| plan, wasm incl. instantiation + marshalling  | {} |",
        micros(wasm_plan)
    );
    println!(
        "| classify, native library                      | {} |",
        micros(native_classify)
    );
    println!(
        "| classify, wasm incl. instantiation            | {} |",
        micros(wasm_classify)
    );
    println!();
    println!("| ratio (wasm / native) |       |");
    println!("|-----------------------|-------|");
    println!(
        "| plan                  | {:>5.2}x |",
        wasm_plan.as_secs_f64() / native_plan.as_secs_f64()
    );
    println!(
        "| plan vs native from lists | {:>5.2}x |",
        wasm_plan.as_secs_f64() / native_plan_from_lists.as_secs_f64()
    );
    println!(
        "| classify              | {:>5.2}x |",
        wasm_classify.as_secs_f64() / native_classify.as_secs_f64()
    );
}
