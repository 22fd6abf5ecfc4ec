//! Crash safety: a host killed with SIGKILL under load loses no operation and duplicates none;
//! dead WebSocket subscribers are dropped by keepalive.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use pacsync_tests::{
    Api, Fleet, HostProcess, PrivateCluster, Stream, TestHost, shared_tempdir, state,
};

const HOST: &str = env!("CARGO_BIN_EXE_pacsync-host-under-test");

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_during_100_concurrent_operations_loses_and_duplicates_nothing() {
    let cluster = PrivateCluster::start().await;
    let data = shared_tempdir();
    let url = cluster.url();
    let args = [
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        data.path().to_str().unwrap(),
    ];
    let env = [("PACSYNC_DATABASE_URL", url.as_str())];
    let host = HostProcess::spawn(Path::new(HOST), &args, &env);
    let out = std::process::Command::new(HOST)
        .args(["token", "issue", "--role", "admin", "--data-dir"])
        .arg(data.path())
        .env("PACSYNC_DATABASE_URL", &url)
        .output()
        .unwrap();
    let admin = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let api = Api::new(host.base.clone(), admin.clone());

    let mut builder = Fleet::builder(&api)
        .pool("crashy")
        .reference("ref", state(&[("linux", "6.1-1")]));
    for i in 0..100 {
        builder = builder.member(&format!("m{i}"), state(&[("linux", "6.0-1")]));
    }
    let fleet = builder.build().await;
    let pool = fleet.pool;
    let endpoints: Vec<(String, String)> = fleet
        .members
        .into_iter()
        .map(|endpoint| (endpoint.id, endpoint.token))
        .collect();

    // 100 concurrent creations, each with its own idempotency key; SIGKILL in the middle.
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let request = |base: String, id: String, token: String| {
        let client = client.clone();
        async move {
            let response = client
                .post(format!("{base}/api/sync/{id}/sync-to-latest"))
                .bearer_auth(token)
                .header("Idempotency-Key", format!("crash-{id}"))
                .send()
                .await
                .ok()?;
            if response.status().as_u16() != 202 {
                return None;
            }
            let body: serde_json::Value = response.json().await.ok()?;
            body["operation_id"].as_str().map(str::to_owned)
        }
    };
    let tasks: Vec<_> = endpoints
        .iter()
        .map(|(id, token)| tokio::spawn(request(host.base.clone(), id.clone(), token.clone())))
        .collect();
    tokio::time::sleep(Duration::from_millis(15)).await;
    host.kill();
    let mut acknowledged = HashMap::new();
    for ((id, _), task) in endpoints.iter().zip(tasks) {
        if let Some(op) = task.await.unwrap() {
            acknowledged.insert(id.clone(), op);
        }
    }

    eprintln!(
        "{} of 100 creations were acknowledged before SIGKILL",
        acknowledged.len()
    );

    // Restart and retry every request with its key: acknowledged ones replay, lost ones either
    // replay (they had committed) or are created now. Never a second operation.
    let host = HostProcess::spawn(Path::new(HOST), &args, &env);
    for (id, token) in &endpoints {
        let op = request(host.base.clone(), id.clone(), token.clone())
            .await
            .expect("retry succeeds");
        if let Some(first) = acknowledged.get(id) {
            assert_eq!(
                &op, first,
                "an acknowledged operation is the one the retry finds"
            );
        }
    }
    let db = cluster.pool().await;
    let per_endpoint: Vec<i64> = sqlx::query_scalar(
        "SELECT count(*) FROM operations WHERE pool_id = $1::uuid AND operation_type = 'sync' GROUP BY endpoint_id",
    )
    .bind(&pool)
    .fetch_all(&db)
    .await
    .unwrap();
    assert_eq!(per_endpoint.len(), 100, "every endpoint has its operation");
    assert!(
        per_endpoint.iter().all(|n| *n == 1),
        "no duplicates: {per_endpoint:?}"
    );
    let pending: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM operations WHERE pool_id = $1::uuid AND status = 'pending'",
    )
    .bind(&pool)
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!(pending, 100, "pending operations wait for their agents");
    let unpositioned: i64 =
        sqlx::query_scalar("SELECT count(*) FROM operation_events WHERE position IS NULL")
            .fetch_one(&db)
            .await
            .unwrap();
    assert_eq!(
        unpositioned, 0,
        "every committed event is in the stream order"
    );
    let created: i64 = sqlx::query_scalar(
        "SELECT count(DISTINCT operation_id) FROM operation_events WHERE pool_id = $1::uuid AND event_type = 'operation_created'",
    )
    .bind(&pool)
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!(
        created, 101,
        "100 syncs and the set-as-latest each have their creation event"
    );
    assert!(host.terminate().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_subscribers_are_dropped_by_keepalive() {
    let t = TestHost::start_with(|s| {
        s.ws_ping_ms = Some(100);
        s.ws_timeout_ms = Some(500);
    })
    .await;
    let api = &t.api;
    let pool = api.create_pool("p").await;
    let path = format!("/api/sync/pools/{pool}/events");
    // A live client answers pings (by reading) and stays connected.
    let mut live = Stream::open(&api.base, &path, Some(&api.admin))
        .await
        .unwrap();
    assert!(
        !live.ended_within(Duration::from_millis(1500)).await,
        "a responsive client stays"
    );
    // A client that stops reading stops answering pings and is dropped.
    let mut dead = Stream::open(&api.base, &path, Some(&api.admin))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        dead.ended_within(Duration::from_secs(3)).await,
        "a silent client is dropped"
    );
    t.stop().await;
}
