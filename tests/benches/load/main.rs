//! Load tool: operation lifecycle throughput (with and without rate limiting), peak memory under
//! concurrent maximum-size state reports, and WebSocket fan-out, against real host processes on
//! a private PostgreSQL cluster.
//!
//! Run: `cargo bench -p pacsync-tests --bench load` (needs ~11,000 file descriptors for the
//! 5,000-subscriber step). `PACSYNC_BENCH_STEPS`, a comma list of `lifecycle`, `memory` and
//! `fanout`, runs only those steps. Prints tables; results are recorded in BENCHMARKS.md.

mod fanout;
mod lifecycle;
mod memory;

use std::path::Path;
use std::time::{Duration, Instant};

use pacsync_tests::{Api, Fleet, HostProcess, PrivateCluster, shared_tempdir, state};
use serde_json::json;

const HOST: &str = env!("CARGO_BIN_EXE_pacsync-host-under-test");
/// Endpoints driven concurrently.
const DRIVERS: usize = 8;

/// A pool `load` with a target (linux 6.1) and `drivers` endpoints behind it (linux 6.0).
async fn fleet(api: &Api, drivers: usize) -> Fleet {
    let mut builder = Fleet::builder(api)
        .pool("load")
        .reference("ref", state(&[("linux", "6.1-1")]));
    for i in 0..drivers {
        builder = builder.member(&format!("e{i}"), state(&[("linux", "6.0-1")]));
    }
    builder.build().await
}

/// One operation through its whole lifecycle over HTTP: create, start, 3 progress, complete,
/// then a report back to the old state so the next one has work to do.
async fn lifecycle(api: &Api, id: &str, token: &str) {
    let op = api
        .as_(token)
        .post(&format!("/api/sync/{id}/sync-to-latest"))
        .await;
    let op = op.expect(202, None)["operation_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = |action: &str| format!("/api/sync/operations/{op}/{action}");
    api.as_(token).post(&path("start")).await.expect(200, None);
    for pct in [25, 50, 75] {
        api.as_(token)
            .post(&path("progress"))
            .json(json!({"percentage": pct, "stage": "installing"}))
            .await
            .expect(200, None);
    }
    api.as_(token)
        .post(&path("complete"))
        .json(json!({"state": state(&[("linux", "6.1-1")])}))
        .await
        .expect(200, None);
    api.report(id, token, &[("linux", "6.0-1")])
        .await
        .expect(200, None);
}

/// Drives `count` lifecycles spread over the fleet's endpoints; returns the elapsed time.
async fn drive(api: &Api, fleet: &Fleet, count: usize) -> Duration {
    let started = Instant::now();
    let per = count / fleet.members.len();
    let tasks: Vec<_> = fleet
        .members
        .iter()
        .cloned()
        .map(|endpoint| {
            let api = api.clone();
            tokio::spawn(async move {
                for _ in 0..per {
                    lifecycle(&api, &endpoint.id, &endpoint.token).await;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    started.elapsed()
}

/// A release host on `url` with the shared signing `key`; `extra` flags after the common ones.
fn spawn_host(url: &str, key: &Path, extra: &[&str]) -> (HostProcess, tempfile::TempDir) {
    let data = shared_tempdir();
    let mut args = vec![
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        data.path().to_str().unwrap(),
        "--jwt-key-file",
        key.to_str().unwrap(),
        "--event-buffer",
        "100000",
        // Thirty-two maximum-size reports take longer than the default request timeout.
        "--request-timeout-ms",
        "900000",
        // The fan-out step holds 5,000 streams of one admin token.
        "--max-streams-per-admin",
        "10000",
    ];
    args.extend_from_slice(extra);
    let host = HostProcess::spawn(Path::new(HOST), &args, &[("PACSYNC_DATABASE_URL", url)]);
    (host, data)
}

#[tokio::main]
async fn main() {
    let cluster = PrivateCluster::start().await;
    let url = cluster.url();
    let keys = shared_tempdir();
    let key = keys.path().join("jwt-secret");
    std::fs::write(&key, "load-benchmark-signing-secret-0123456789abcdef").unwrap();
    // Two replicas on one database: rate limits on (every request counted, none refused at
    // these rates, so the check's cost is what is measured) and off.
    let unlimited = "1000000";
    let (host, data) = spawn_host(
        &url,
        &key,
        &[
            "--rate-limit-endpoint-per-second",
            unlimited,
            "--rate-limit-endpoint-burst",
            unlimited,
            "--rate-limit-admin-per-second",
            unlimited,
            "--rate-limit-admin-burst",
            unlimited,
        ],
    );
    let (unlimited_host, _unlimited_data) = spawn_host(&url, &key, &["--rate-limits", "false"]);
    let out = std::process::Command::new(HOST)
        .args([
            "token",
            "issue",
            "--role",
            "admin",
            "--name",
            "load",
            "--data-dir",
        ])
        .arg(data.path())
        .arg("--jwt-key-file")
        .arg(&key)
        .env("PACSYNC_DATABASE_URL", &url)
        .output()
        .unwrap();
    let admin = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let api = Api::new(host.base.clone(), admin.clone());
    let api_off = Api::new(unlimited_host.base.clone(), admin.clone());
    let fleet = fleet(&api, DRIVERS).await;

    let steps =
        std::env::var("PACSYNC_BENCH_STEPS").unwrap_or_else(|_| "lifecycle,memory,fanout".into());
    let runs = |step: &str| steps.split(',').any(|s| s.trim() == step);
    if runs("lifecycle") {
        lifecycle::step(&cluster, &api, &api_off, &fleet).await;
    }
    let _ = unlimited_host.terminate();
    if runs("fanout") {
        fanout::step(&api, &host, &admin, &fleet).await;
    }
    // Last: the reports leave the host's allocator and PostgreSQL with work and memory that
    // would distort any step after them.
    if runs("memory") {
        memory::step(&api, &host).await;
    }
    let _ = host.terminate();
}
