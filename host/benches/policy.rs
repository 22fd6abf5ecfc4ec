//! Policy benchmark: the `mirror` component through the host's wasmtime runtime against the same
//! library called natively, in the same run, on realistic states (2,000 packages, ~5% differing).
//!
//! Run: `cargo bench -p pacsync-host --bench policy`. Prints a table; see BENCHMARKS.md.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

mod fixtures;

use fixtures::{availability, states};
use pacsync_core::{Available, differences_by, vercmp};
use pacsync_host::policy::builtin_component;
use pacsync_host::policy::wasm::{Limits, WasmRuntime};
use pacsync_policy_mirror::Mirror;
use pacsync_policy_sdk::{PlanInput, PolicyLogic};

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

/// Batches per comparison; the native and wasm batches alternate.
const ROUNDS: usize = 9;

/// Like [`time`], for a native and a wasm path compared as a ratio: their batches alternate, so
/// both minimums come from the same stretch of the run rather than from whenever each path's
/// turn came (on this shared machine that alone moved the ratio by ±5%).
fn time_pair<A, B>(
    iterations: u32,
    mut native: impl FnMut() -> A,
    mut wasm: impl FnMut() -> B,
) -> (Duration, Duration) {
    for _ in 0..iterations.min(10) {
        black_box(native());
        black_box(wasm());
    }
    let batch = |f: &mut dyn FnMut()| {
        let started = Instant::now();
        for _ in 0..iterations {
            f();
        }
        started.elapsed() / iterations
    };
    let (mut best_native, mut best_wasm) = (Duration::MAX, Duration::MAX);
    for _ in 0..ROUNDS {
        best_native = best_native.min(batch(&mut || {
            black_box(native());
        }));
        best_wasm = best_wasm.min(batch(&mut || {
            black_box(wasm());
        }));
    }
    (best_native, best_wasm)
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
    let (native_plan, wasm_plan) = time_pair(
        200,
        || {
            let input = PlanInput::new(&current, &target, config.clone(), None);
            Mirror::plan(&input, &vercmp).unwrap()
        },
        || {
            runtime
                .plan(&plugin, &current, &target, &config, None)
                .unwrap()
        },
    );
    // With availability known, as for an endpoint that reports it. The native library takes it
    // by value: the copies are made before the clock starts.
    let available = availability(&current, &target);
    let mut copies: Vec<Vec<Available>> =
        (0..10 + 200 * ROUNDS).map(|_| available.clone()).collect();
    let (native_plan_available, wasm_plan_available) = time_pair(
        200,
        || {
            let own = copies.pop().expect("enough copies");
            let input = PlanInput::new(&current, &target, config.clone(), Some(own));
            Mirror::plan(&input, &vercmp).unwrap()
        },
        || {
            runtime
                .plan(&plugin, &current, &target, &config, Some(&available))
                .unwrap()
        },
    );
    let (native_classify, wasm_classify) = time_pair(
        200,
        || {
            let changes = differences_by(&current, &target, vercmp);
            Mirror::classify(&changes, &*current, &*target, &config)
        },
        || {
            runtime
                .classify(&plugin, &current, &target, &config)
                .unwrap()
        },
    );

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
    println!("|------------------------|--------|");
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
