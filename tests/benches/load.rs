//! Load tool: WebSocket fan-out and operation lifecycle throughput against a real host process
//! on a private PostgreSQL cluster.
//!
//! Run: `cargo bench -p pacsync-tests --bench load` (needs ~11,000 file descriptors for the
//! 5,000-subscriber step). Prints tables; results are recorded in BENCHMARKS.md.

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
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::main]
async fn main() {
    let cluster = PrivateCluster::start().await;
    let data = shared_tempdir();
    let url = cluster.url();
    let host = HostProcess::spawn(
        Path::new(HOST),
        &[
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            data.path().to_str().unwrap(),
            "--event-buffer",
            "100000",
        ],
        &[("PACSYNC_DATABASE_URL", url.as_str())],
    );
    let out = std::process::Command::new(HOST)
        .args(["token", "issue", "--role", "admin", "--data-dir"])
        .arg(data.path())
        .env("PACSYNC_DATABASE_URL", &url)
        .output()
        .unwrap();
    let admin = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let api = Api::new(host.base.clone(), admin.clone());
    let fleet = fleet(&api, DRIVERS).await;

    // --- Lifecycle throughput: HTTP vs the same stored-procedure calls straight to PostgreSQL.
    let ops = 400;
    let http = drive(&api, &fleet, ops).await;
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
    let raw_rate = ops as f64 / raw.as_secs_f64();
    println!(
        "operation lifecycle (create → start → 3 × progress → complete), {ops} operations, {DRIVERS} concurrent endpoints"
    );
    println!();
    println!("| path                                   | operations/s |");
    println!("|----------------------------------------|--------------|");
    println!("| host over HTTP (+1 state report each)  | {http_rate:>12.1} |");
    println!("| stored procedures straight to Postgres | {raw_rate:>12.1} |");
    println!(
        "| ratio host / raw                       | {:>12.2} |",
        http_rate / raw_rate
    );
    println!();

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
        let elapsed = drive(&api, &fleet, 80).await;
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
    let _ = host.terminate();
}
