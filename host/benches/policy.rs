//! Policy benchmark: the `mirror` component through the host's wasmtime runtime against the same
//! library called natively, in the same run, on realistic states (2,000 packages, ~5% differing).
//!
//! Run: `cargo bench -p pacsync-host --bench policy`. Prints a table; see BENCHMARKS.md.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pacsync_core::{
    ActionKind, Available, InstallReason, Package, PackageState, Source, differences_by, vercmp,
};
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

/// 2,000 installed packages, and a target where 105 (about 5%) differ: 15 new packages,
/// 40 upgrades, 30 downgrades and 20 removals.
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

/// What the host passes as `available` for a reporting endpoint: the target versions of the
/// packages that would change that the endpoint can obtain (here all but every tenth).
fn availability(current: &PackageState, target: &PackageState) -> Vec<Available> {
    differences_by(current, target, vercmp)
        .into_iter()
        .filter(|a| a.kind != ActionKind::Remove)
        .enumerate()
        .filter(|(i, _)| i % 10 != 9)
        .map(|(_, a)| Available {
            name: a.name,
            version: a.to_version.expect("not a removal"),
            source: Source::SyncRepository,
        })
        .collect()
}

/// Mean time per call over `iterations`, the best of five batches: on a shared 2-core machine
/// the minimum is the stable figure, the mean of everything mostly measures the neighbours.
fn time<R>(iterations: u32, mut f: impl FnMut() -> R) -> Duration {
    for _ in 0..iterations.min(10) {
        black_box(f());
    }
    (0..5)
        .map(|_| {
            let started = Instant::now();
            for _ in 0..iterations {
                black_box(f());
            }
            started.elapsed() / iterations
        })
        .min()
        .expect("five batches")
}

fn micros(d: Duration) -> String {
    format!("{:>10.1} µs", d.as_secs_f64() * 1e6)
}

fn main() {
    let (current, target) = states();
    let (current, target) = (Arc::new(current), Arc::new(target));
    let bytes = builtin_component("mirror").expect("mirror is built in");
    let runtime = WasmRuntime::new(Limits::default(), None);
    let config = serde_json::json!({});

    let compile = time(1, || runtime.load(bytes).expect("mirror loads"));
    let plugin = runtime.load(bytes).unwrap();
    let instantiate = time(2000, || runtime.instantiate(&plugin).unwrap());

    // Native: the library as the host would call it, including computing the differences from
    // the two states, which the wasm path also pays (on the host side).
    let native_plan = time(200, || {
        let input = PlanInput::new(&current, &target, config.clone(), None);
        Mirror::plan(&input, &vercmp).unwrap()
    });
    let wasm_plan = time(200, || {
        runtime
            .plan(&plugin, &current, &target, &config, None)
            .unwrap()
    });
    // With availability known, as for an endpoint that reports it. The native library takes it
    // by value: the copies are made before the clock starts.
    let available = availability(&current, &target);
    let mut copies: Vec<Vec<Available>> = (0..1010).map(|_| available.clone()).collect();
    let native_plan_available = time(200, || {
        let own = copies.pop().expect("enough copies");
        let input = PlanInput::new(&current, &target, config.clone(), Some(own));
        Mirror::plan(&input, &vercmp).unwrap()
    });
    let wasm_plan_available = time(200, || {
        runtime
            .plan(&plugin, &current, &target, &config, Some(&available))
            .unwrap()
    });
    let native_classify = time(200, || {
        let changes = differences_by(&current, &target, vercmp);
        Mirror::classify(&changes, &*current, &*target, &config)
    });
    let wasm_classify = time(200, || {
        runtime
            .classify(&plugin, &current, &target, &config)
            .unwrap()
    });

    let plan = Mirror::plan(
        &PlanInput::new(&current, &target, config.clone(), None),
        &vercmp,
    )
    .unwrap();
    assert_eq!(
        plan,
        runtime
            .plan(&plugin, &current, &target, &config, None)
            .unwrap(),
        "both paths agree"
    );

    let with_available = Mirror::plan(
        &PlanInput::new(&current, &target, config.clone(), Some(available.clone())),
        &vercmp,
    )
    .unwrap();
    assert_eq!(
        with_available,
        runtime
            .plan(&plugin, &current, &target, &config, Some(&available))
            .unwrap(),
        "both paths agree with availability"
    );

    println!(
        "policy benchmark: mirror, {} current / {} target packages, plan = {}; with {} available: {}",
        current.len(),
        target.len(),
        plan.summary,
        available.len(),
        with_available.summary
    );
    println!();
    println!("| measurement                                   |     per call |");
    println!("|-----------------------------------------------|--------------|");
    let rows = [
        ("compile component (Component::new + describe)", compile),
        ("instantiate (InstancePre → instance)", instantiate),
        ("plan, native library", native_plan),
        ("plan, wasm incl. instantiation + marshalling", wasm_plan),
        (
            "plan with availability, native library",
            native_plan_available,
        ),
        ("plan with availability, wasm", wasm_plan_available),
        ("classify, native library", native_classify),
        ("classify, wasm incl. instantiation", wasm_classify),
    ];
    for (what, took) in rows {
        println!("| {what:<45} | {} |", micros(took));
    }
    println!();
    println!("| ratio (wasm / native)  |        |");
    println!("|-----------------------|--------|");
    for (what, wasm, native) in [
        ("plan", wasm_plan, native_plan),
        (
            "plan with availability",
            wasm_plan_available,
            native_plan_available,
        ),
        ("classify", wasm_classify, native_classify),
    ] {
        println!(
            "| {what:<22} | {:>5.2}x |",
            wasm.as_secs_f64() / native.as_secs_f64()
        );
    }
}
