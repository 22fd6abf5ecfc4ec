//! Load tool: operation lifecycle throughput (with and without rate limiting), peak memory under
//! concurrent maximum-size state reports, and WebSocket fan-out, against real host processes on
//! a private PostgreSQL cluster.
//!
//! Run: `cargo bench -p pacsync-tests --bench load` (needs ~11,000 file descriptors for the
//! 5,000-subscriber step). `PACSYNC_BENCH_STEPS`, a comma list of `lifecycle`, `memory` and
//! `fanout`, runs only those steps. Prints tables; results are recorded in BENCHMARKS.md.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use pacsync_tests::{Api, Fleet, HostProcess, PrivateCluster, shared_tempdir, state};
use serde_json::json;
use tokio::sync::Mutex;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

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

/// Packages in a maximum-size state report: the host's cap per report.
const MAX_PACKAGES: usize = 100_000;
/// Maximum-size reports sent at once in the memory step.
const CONCURRENT_REPORTS: usize = 32;

/// A report of [`MAX_PACKAGES`] packages, distinct per `seed` so that every one is stored.
fn max_size_report(seed: usize) -> serde_json::Value {
    let packages: Vec<_> = (0..MAX_PACKAGES)
        .map(|i| {
            json!({"name": format!("package-{i:06}"), "version": format!("{}.{i}-1", seed + 1),
                   "repository": "extra", "architecture": "x86_64", "reason": "explicit"})
        })
        .collect();
    json!({"architecture": "x86_64", "pacman_version": "6.0.2", "packages": packages})
}

/// `VmRSS` or `VmHWM` (peak) of `pid`, in KiB.
fn memory_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
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

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn rss_kib(pid: u32) -> u64 {
    memory_kib(pid, "VmRSS")
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
        lifecycle_step(&cluster, &api, &api_off, &fleet).await;
    }
    let _ = unlimited_host.terminate();
    if runs("fanout") {
        fanout_step(&api, &host, &admin, &fleet).await;
    }
    // Last: the reports leave the host's allocator and PostgreSQL with work and memory that
    // would distort any step after them.
    if runs("memory") {
        memory_step(&api, &host).await;
    }
    let _ = host.terminate();
}

/// Lifecycle throughput with rate limits on and off, and the raw stored-procedure sequence.
async fn lifecycle_step(cluster: &PrivateCluster, api: &Api, api_off: &Api, fleet: &Fleet) {
    // --- Lifecycle throughput: HTTP with and without rate limits, alternating in rounds so
    // both see the same stretch of the run, vs the same stored-procedure calls straight to
    // PostgreSQL.
    // ABBA order, so neither host always runs first in a round.
    let (rounds, per_round) = (4, 160);
    let ops = rounds * per_round;
    let (mut http, mut http_off) = (Duration::ZERO, Duration::ZERO);
    for round in 0..rounds {
        if round % 2 == 0 {
            http += drive(api, fleet, per_round).await;
            http_off += drive(api_off, fleet, per_round).await;
        } else {
            http_off += drive(api_off, fleet, per_round).await;
            http += drive(api, fleet, per_round).await;
        }
    }
    let db = cluster.pool().await;
    let target_state: String =
        sqlx::query_scalar("SELECT target_state_id FROM pools WHERE pool_id = $1::uuid")
            .bind(&fleet.pool)
            .fetch_one(&db)
            .await
            .unwrap();
    let started = Instant::now();
    let per = ops / DRIVERS;
    let tasks: Vec<_> = fleet
        .members
        .iter()
        .map(|endpoint| {
            let (db, id, target_state) = (db.clone(), endpoint.id.clone(), target_state.clone());
            tokio::spawn(async move {
                for _ in 0..per {
                    let op: uuid::Uuid = sqlx::query_scalar(
                        "SELECT operation_id FROM ps_op_create(gen_random_uuid(), $1::uuid, 'sync', '{}', $2, \
                         (SELECT target_generation FROM pools p JOIN endpoints e USING (pool_id) WHERE e.endpoint_id = $1::uuid), \
                         NULL, '{\"actions\": []}', NULL, 'bench', NULL, NULL)",
                    )
                    .bind(&id)
                    .bind(&target_state)
                    .fetch_one(&db)
                    .await
                    .unwrap();
                    sqlx::query("SELECT ps_op_start($1, 60, 'bench')").bind(op).execute(&db).await.unwrap();
                    for pct in [25, 50, 75] {
                        sqlx::query("SELECT ps_op_progress($1, $2, 'installing', NULL, 60)")
                            .bind(op)
                            .bind(pct)
                            .execute(&db)
                            .await
                            .unwrap();
                    }
                    sqlx::query("SELECT ps_op_complete($1, $2, NULL, NULL, 'bench')")
                        .bind(op)
                        .bind(&target_state)
                        .execute(&db)
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let raw = started.elapsed();
    // The raw path left every endpoint at the target; put them back behind for what follows.
    for endpoint in &fleet.members {
        api.report(&endpoint.id, &endpoint.token, &[("linux", "6.0-1")])
            .await
            .expect(200, None);
    }
    let http_rate = ops as f64 / http.as_secs_f64();
    let http_off_rate = ops as f64 / http_off.as_secs_f64();
    let raw_rate = ops as f64 / raw.as_secs_f64();
    println!(
        "operation lifecycle (create → start → 3 × progress → complete), {ops} operations, {DRIVERS} concurrent endpoints"
    );
    println!();
    println!("| path                                   | operations/s |");
    println!("|----------------------------------------|--------------|");
    println!("| host over HTTP (+1 state report each)  | {http_rate:>12.1} |");
    println!("| the same, rate limits off              | {http_off_rate:>12.1} |");
    println!("| stored procedures straight to Postgres | {raw_rate:>12.1} |");
    println!(
        "| ratio host / raw                       | {:>12.2} |",
        http_rate / raw_rate
    );
    println!(
        "| ratio rate limits on / off             | {:>12.3} |",
        http_rate / http_off_rate
    );
    println!();
}

/// Peak memory while maximum-size state reports arrive at once.
async fn memory_step(api: &Api, host: &HostProcess) {
    // --- Memory: maximum-size state reports arriving at once.
    let reports = {
        let mut builder = Fleet::builder(api)
            .pool("reports")
            .reference("reports-ref", state(&[("linux", "6.1-1")]));
        for i in 0..CONCURRENT_REPORTS {
            builder = builder.unreported(&format!("big{i}"));
        }
        builder.build().await
    };
    let bodies: Vec<_> = (0..CONCURRENT_REPORTS).map(max_size_report).collect();
    // 32 × 100,000 rows queue behind each other in PostgreSQL: give them time (the host too,
    // with --request-timeout-ms).
    let api = &Api::with_timeout(
        host.base.clone(),
        api.admin.clone(),
        Duration::from_secs(900),
    );
    let body_mib = serde_json::to_vec(&bodies[0]).unwrap().len() as f64 / (1024.0 * 1024.0);
    let (rss_before, peak_before) = (
        memory_kib(host.pid(), "VmRSS"),
        memory_kib(host.pid(), "VmHWM"),
    );
    let started = Instant::now();
    let tasks: Vec<_> = reports
        .members
        .iter()
        .zip(bodies)
        .map(|(endpoint, body)| {
            let (api, endpoint) = (api.clone(), endpoint.clone());
            tokio::spawn(async move {
                // More reports than database connections: some wait past the pool's acquire
                // timeout and are told to retry, as an agent would.
                let mut retries = 0u32;
                loop {
                    let reply = api
                        .put_state(&endpoint.id, &endpoint.token, body.clone())
                        .await;
                    if reply.status.as_u16() == 503 {
                        reply.expect(503, Some("DATABASE_UNAVAILABLE"));
                        retries += 1;
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    }
                    reply.expect(200, None);
                    return retries;
                }
            })
        })
        .collect();
    let mut retries = 0;
    for t in tasks {
        retries += t.await.unwrap();
    }
    let took = started.elapsed();
    let peak_after = memory_kib(host.pid(), "VmHWM");
    let mib = |kib: u64| kib as f64 / 1024.0;
    println!(
        "{CONCURRENT_REPORTS} concurrent maximum-size state reports ({MAX_PACKAGES} packages, {body_mib:.1} MiB of JSON each), {:.1} s, {retries} retried after 503 DATABASE_UNAVAILABLE",
        took.as_secs_f64()
    );
    println!();
    println!("| host memory                          |      MiB |");
    println!("|--------------------------------------|----------|");
    println!(
        "| RSS before                           | {:>8.1} |",
        mib(rss_before)
    );
    println!(
        "| peak RSS before                      | {:>8.1} |",
        mib(peak_before)
    );
    println!(
        "| peak RSS during the reports          | {:>8.1} |",
        mib(peak_after)
    );
    println!(
        "| peak growth per report               | {:>8.1} |",
        mib(peak_after.saturating_sub(peak_before.max(rss_before))) / CONCURRENT_REPORTS as f64
    );
    println!();
}

/// Events delivered to N pool subscribers while endpoints drive operations.
async fn fanout_step(api: &Api, host: &HostProcess, admin: &str, fleet: &Fleet) {
    // --- WebSocket fan-out.
    println!(
        "WebSocket fan-out: N pool subscribers, {DRIVERS} endpoints driving operations (6 events each)"
    );
    println!();
    println!(
        "| subscribers | events delivered/s | latency p50 (ms) | latency p99 (ms) | host RSS idle (MiB) |"
    );
    println!(
        "|-------------|--------------------|------------------|------------------|---------------------|"
    );
    let path = format!("/api/sync/pools/{}/events", fleet.pool);
    for n in [100usize, 1000, 5000] {
        let delivered = Arc::new(AtomicU64::new(0));
        let latencies = Arc::new(Mutex::new(Vec::<f64>::new()));
        let mut readers = Vec::new();
        for i in 0..n {
            let url = format!("{}{}", host.base.replacen("http://", "ws://", 1), path);
            let mut request = url.into_client_request().unwrap();
            request
                .headers_mut()
                .insert("authorization", format!("Bearer {admin}").parse().unwrap());
            let (mut socket, _) = tokio_tungstenite::connect_async(request)
                .await
                .expect("subscribe");
            let (delivered, latencies) = (delivered.clone(), latencies.clone());
            // Sample latency on a tenth of the subscribers to keep the tool itself cheap.
            let sample = i % 10 == 0;
            readers.push(tokio::spawn(async move {
                while let Some(Ok(message)) = socket.next().await {
                    if let Message::Text(text) = message {
                        delivered.fetch_add(1, Ordering::Relaxed);
                        if sample
                            && let Ok(v) = serde_json::from_str::<serde_json::Value>(&text)
                            && let Some(at) = v["timestamp"]
                                .as_str()
                                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                            && v["type"] != "connected"
                        {
                            let ms = (chrono::Utc::now() - at.with_timezone(&chrono::Utc))
                                .num_microseconds()
                                .unwrap_or(0) as f64
                                / 1000.0;
                            latencies.lock().await.push(ms);
                        }
                    }
                }
            }));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let idle_rss = rss_kib(host.pid()) as f64 / 1024.0;
        let before = delivered.load(Ordering::Relaxed);
        let elapsed = drive(api, fleet, 80).await;
        // Let the last events drain.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let events = delivered.load(Ordering::Relaxed) - before;
        let rate = events as f64 / (elapsed.as_secs_f64() + 0.5);
        let mut samples = latencies.lock().await.clone();
        samples.sort_by(|a, b| a.partial_cmp(b).unwrap());
        println!(
            "| {n:>11} | {rate:>18.0} | {:>16.1} | {:>16.1} | {idle_rss:>19.1} |",
            percentile(&samples, 0.5),
            percentile(&samples, 0.99)
        );
        for r in readers {
            r.abort();
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    println!();
    println!(
        "latency: event timestamp (the transaction's start, by the database clock) to receipt by the client"
    );
}
