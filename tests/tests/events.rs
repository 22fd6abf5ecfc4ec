//! Live event streams over WebSocket: protocol, resume, fan-out across replicas, database
//! restarts and slow consumers. Every wait is bounded.

use std::path::Path;
use std::time::Duration;

use pacsync_tests::{
    Api, Fleet, HostProcess, PrivateCluster, Stream, TestHost, shared_tempdir, state,
};
use serde_json::{Value, json};

// A bound on waits, not a timing claim: generous for loaded CI machines.
const WAIT: Duration = Duration::from_secs(30);

/// A pool with a target and an endpoint `b` that is behind: `(pool, b, b_token)`.
async fn fleet(api: &Api, name: &str) -> (String, String, String) {
    let fleet = Fleet::builder(api)
        .pool(name)
        .reference(&format!("{name}-ref"), state(&[("linux", "6.1-1")]))
        .member(&format!("{name}-b"), state(&[("linux", "6.0-1")]))
        .build()
        .await;
    let b = &fleet.members[0];
    (fleet.pool.clone(), b.id.clone(), b.token.clone())
}

/// Runs one whole sync on `b`: create, start, progress, complete. Returns the operation id.
async fn drive(api: &Api, b: &str, tb: &str) -> String {
    let op = api
        .as_(tb)
        .post(&format!("/api/sync/{b}/sync-to-latest"))
        .await;
    let id = op.expect(202, None)["operation_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = |action: &str| format!("/api/sync/operations/{id}/{action}");
    api.as_(tb).post(&path("start")).await.expect(200, None);
    api.as_(tb)
        .post(&path("progress"))
        .json(json!({"percentage": 50, "stage": "installing"}))
        .await
        .expect(200, None);
    api.as_(tb)
        .post(&path("complete"))
        .json(json!({"state": state(&[("linux", "6.1-1")])}))
        .await
        .expect(200, None);
    id
}

/// Creates and cancels an operation (two events). Returns its id.
async fn blip(api: &Api, b: &str, tb: &str) -> String {
    let op = api.as_(tb).post(&format!("/api/sync/{b}/revert")).await;
    let id = op.expect(202, None)["operation_id"]
        .as_str()
        .unwrap()
        .to_owned();
    api.as_(tb)
        .post(&format!("/api/sync/operations/{id}/cancel"))
        .await
        .expect(200, None);
    id
}

const LIFECYCLE: [&str; 4] = [
    "operation_created",
    "operation_started",
    "operation_progress",
    "operation_completed",
];

/// Reads until the operation completes; returns its event types and checks ids only grow.
async fn lifecycle_of(stream: &mut Stream, id: &str) -> Vec<String> {
    let mut seen = Vec::new();
    let mut last_event = 0;
    while !seen.iter().any(|t| t == "operation_completed") {
        let msg = stream
            .next(WAIT)
            .await
            .expect("stream delivers the lifecycle");
        let Some(op) = msg.get("operation") else {
            continue;
        };
        if op["operation_id"] != id {
            continue;
        }
        let event_id = msg["event_id"].as_i64().unwrap();
        assert!(event_id > last_event, "event ids increase: {msg}");
        last_event = event_id;
        seen.push(msg["type"].as_str().unwrap().to_owned());
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_endpoint_stream_admits_only_its_endpoint_and_carries_its_operations_and_status() {
    let t = TestHost::start().await;
    let api = &t.api;
    let (pool, b, tb) = fleet(api, "p").await;
    let path = format!("/api/sync/{b}/status");

    // Who may listen.
    assert_eq!(Stream::open(&api.base, &path, None).await.err(), Some(401));
    assert_eq!(
        Stream::open(&api.base, &path, Some("garbage")).await.err(),
        Some(401)
    );
    let (_, other) = api.register(&pool, "other").await;
    assert_eq!(
        Stream::open(&api.base, &path, Some(&other)).await.err(),
        Some(403)
    );
    assert_eq!(
        Stream::open(
            &api.base,
            &format!("/api/sync/pools/{pool}/events"),
            Some(&tb)
        )
        .await
        .err(),
        Some(403)
    );
    let plain = api.as_(&tb).get(&path).await;
    plain.expect(426, Some("WEBSOCKET_REQUIRED"));
    // Browsers pass the token as a query parameter.
    let mut by_query = Stream::open(&api.base, &format!("{path}?access_token={tb}"), None)
        .await
        .unwrap();
    assert_eq!(by_query.next(WAIT).await.unwrap()["type"], "connected");

    let mut stream = Stream::open(&api.base, &path, Some(&tb)).await.unwrap();
    let hello = stream.next(WAIT).await.unwrap();
    assert_eq!(
        (hello["type"].as_str(), hello["endpoint_id"].as_str()),
        (Some("connected"), Some(b.as_str()))
    );
    stream.send(json!({"type": "ping"})).await;
    assert_eq!(stream.next_of(&["pong"], WAIT).await["type"], "pong");

    let id = drive(api, &b, &tb).await;
    assert_eq!(lifecycle_of(&mut stream, &id).await, LIFECYCLE);
    let changed = stream.next_of(&["sync_status_changed"], WAIT).await;
    assert_eq!(
        (
            changed["sync_status"].as_str(),
            changed["previous_sync_status"].as_str()
        ),
        (Some("in_sync"), Some("behind"))
    );
    stream.send(json!({"type": "get_status"})).await;
    let status = stream.next_of(&["status"], WAIT).await;
    assert_eq!(status["sync_status"], "in_sync");
    assert_eq!(status["active_operation"], Value::Null);

    // The pool target moves: the endpoint hears target_changed with its new status.
    let (a, ta) = api.register(&pool, "mover").await;
    api.report(&a, &ta, &[("linux", "6.2-1")])
        .await
        .expect(200, None);
    api.set_as_latest(&a, &ta).await.expect(202, None);
    let target = stream.next_of(&["target_changed"], WAIT).await;
    assert_eq!(target["generation"], 2);
    assert_eq!(target["sync_status"], "behind");
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_after_replays_exactly_the_missed_events_then_goes_live() {
    let t = TestHost::start().await;
    let api = &t.api;
    let (pool, b, tb) = fleet(api, "p").await;
    api.report(&b, &tb, &[("linux", "6.1-1")])
        .await
        .expect(200, None); // gives b a revert point
    let path = format!("/api/sync/pools/{pool}/events");
    let mut stream = Stream::open(&api.base, &path, Some(&api.admin))
        .await
        .unwrap();
    stream.next_of(&["connected"], WAIT).await;
    let first = blip(api, &b, &tb).await;
    let cancelled = stream.next_of(&["operation_cancelled"], WAIT).await;
    assert_eq!(cancelled["operation"]["operation_id"], first.as_str());
    let last_seen = cancelled["event_id"].as_i64().unwrap();
    drop(stream);

    // Missed while disconnected.
    let second = blip(api, &b, &tb).await;
    let third = blip(api, &b, &tb).await;
    let db = t.cluster.pool().await;
    let missed: Vec<i64> = sqlx::query_scalar(
        "SELECT position FROM operation_events WHERE pool_id = $1::uuid AND position > $2 ORDER BY position",
    )
    .bind(&pool)
    .bind(last_seen)
    .fetch_all(&db)
    .await
    .unwrap();
    assert_eq!(missed.len(), 4, "two operations, created + cancelled each");

    let mut stream = Stream::open(
        &api.base,
        &format!("{path}?after={last_seen}"),
        Some(&api.admin),
    )
    .await
    .unwrap();
    // The head is where the live stream continues, not an event: the backlog comes after it
    // with ids up to it, so a client must not take it as its resume cursor.
    let hello = stream.next_of(&["connected"], WAIT).await;
    assert!(hello.get("event_id").is_none(), "{hello}");
    let head = hello["head"].as_i64().expect("connected carries its head");
    assert!(head >= *missed.last().unwrap(), "{hello}");
    let mut replayed = Vec::new();
    for _ in 0..missed.len() {
        let msg = stream.next(WAIT).await.expect("replayed event");
        replayed.push((
            msg["event_id"].as_i64().unwrap(),
            msg["operation"]["operation_id"]
                .as_str()
                .unwrap()
                .to_owned(),
        ));
    }
    assert_eq!(
        replayed.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
        missed
    );
    assert!(replayed.iter().all(|(id, _)| *id <= head));
    assert_eq!(
        replayed
            .iter()
            .map(|(_, op)| op.as_str())
            .collect::<Vec<_>>(),
        [
            second.as_str(),
            second.as_str(),
            third.as_str(),
            third.as_str()
        ]
    );
    // Then live, with nothing repeated.
    let fourth = blip(api, &b, &tb).await;
    let live = stream.next(WAIT).await.unwrap();
    assert!(live["event_id"].as_i64().unwrap() > *missed.last().unwrap());
    assert_eq!(live["operation"]["operation_id"], fourth.as_str());
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_survives_a_database_restart() {
    let t = TestHost::start().await;
    let api = &t.api;
    let (pool, b, tb) = fleet(api, "p").await;
    let mut stream = Stream::open(
        &api.base,
        &format!("/api/sync/pools/{pool}/events"),
        Some(&api.admin),
    )
    .await
    .unwrap();
    stream.next_of(&["connected"], WAIT).await;
    t.cluster.stop().await;
    t.cluster.restart().await;
    // The first requests after the restart may meet dead pooled connections; retry a few times.
    let mut id = None;
    for _ in 0..20 {
        let reply = api
            .as_(&tb)
            .post(&format!("/api/sync/{b}/sync-to-latest"))
            .await;
        if reply.status.as_u16() == 202 {
            id = reply.body["operation_id"].as_str().map(str::to_owned);
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let id = id.expect("the host recovers from the database restart");
    let created = stream.next_of(&["operation_created"], WAIT).await;
    assert_eq!(created["operation"]["operation_id"], id.as_str());
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_consumer_is_cut_off_while_others_keep_receiving() {
    let t = TestHost::start_with(|s| {
        // Roomy enough for a healthy reader on a loaded machine, far below what the
        // stalled reader falls behind by.
        s.event_buffer = Some(32);
        s.socket_send_buffer = Some(8192);
    })
    .await;
    let api = &t.api;
    let (pool, b, tb) = fleet(api, "p").await;
    api.report(&b, &tb, &[("linux", "6.1-1")])
        .await
        .expect(200, None);
    let path = format!("/api/sync/pools/{pool}/events");

    // The slow client: a tiny receive buffer, and it does not read while events flow.
    let addr: std::net::SocketAddr = api.base.trim_start_matches("http://").parse().unwrap();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(2048).unwrap();
    let tcp = socket.connect(addr).await.unwrap();
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut request = format!("ws://{addr}{path}").into_client_request().unwrap();
    request.headers_mut().insert(
        "authorization",
        format!("Bearer {}", api.admin).parse().unwrap(),
    );
    let (mut slow, _) = tokio_tungstenite::client_async(request, tcp).await.unwrap();

    let mut healthy = Stream::open(&api.base, &path, Some(&api.admin))
        .await
        .unwrap();
    healthy.next_of(&["connected"], WAIT).await;
    let rounds = 80;
    // The healthy subscriber reads as events come.
    let reader = tokio::spawn(async move {
        let mut received = 0;
        while received < rounds * 2 {
            let msg = healthy
                .next(WAIT)
                .await
                .expect("the healthy subscriber keeps receiving");
            if msg["type"] == "operation_created" || msg["type"] == "operation_cancelled" {
                received += 1;
            }
        }
        received
    });
    for _ in 0..rounds {
        blip(api, &b, &tb).await;
    }
    assert_eq!(reader.await.unwrap(), rounds * 2);

    // The slow one, when it finally reads, finds its stream ended with resync_required.
    use futures_util::StreamExt;
    let mut last_text = Value::Null;
    let deadline = tokio::time::Instant::now() + WAIT;
    while let Ok(Some(Ok(message))) = tokio::time::timeout_at(deadline, slow.next()).await {
        match message {
            tokio_tungstenite::tungstenite::Message::Text(text) => {
                last_text = serde_json::from_str(&text).unwrap()
            }
            tokio_tungstenite::tungstenite::Message::Close(_) => break,
            _ => {}
        }
    }
    assert_eq!(
        last_text["type"], "resync_required",
        "last message: {last_text}"
    );
    t.stop().await;
}

const HOST: &str = env!("CARGO_BIN_EXE_pacsync-host-under-test");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_reach_subscribers_of_another_replica_and_shutdown_says_going_away() {
    let cluster = PrivateCluster::start().await;
    let shared = shared_tempdir();
    let key = shared.path().join("jwt-secret");
    std::fs::write(&key, "0123456789abcdef0123456789abcdef-shared-secret").unwrap();
    let (dir_a, dir_b) = (shared_tempdir(), shared_tempdir());
    let url = cluster.url();
    let spawn = |dir: &Path| {
        HostProcess::spawn(
            Path::new(HOST),
            &[
                "--listen",
                "127.0.0.1:0",
                "--data-dir",
                dir.to_str().unwrap(),
                "--jwt-key-file",
                key.to_str().unwrap(),
            ],
            &[("PACSYNC_DATABASE_URL", url.as_str())],
        )
    };
    let (host_a, host_b) = (spawn(dir_a.path()), spawn(dir_b.path()));
    let out = std::process::Command::new(HOST)
        .args(["token", "issue", "--role", "admin", "--jwt-key-file"])
        .arg(&key)
        .arg("--data-dir")
        .arg(dir_a.path())
        .env("PACSYNC_DATABASE_URL", &url)
        .output()
        .unwrap();
    let admin = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let a = Api::new(host_a.base.clone(), admin.clone());
    let (pool, b, tb) = fleet(&a, "replicated").await;

    let mut on_b = Stream::open(
        &host_b.base,
        &format!("/api/sync/pools/{pool}/events"),
        Some(&admin),
    )
    .await
    .unwrap();
    on_b.next_of(&["connected"], WAIT).await;
    let id = drive(&a, &b, &tb).await;
    assert_eq!(lifecycle_of(&mut on_b, &id).await, LIFECYCLE);

    assert!(host_b.terminate().success());
    assert_eq!(
        on_b.close_code(WAIT).await,
        Some(1001),
        "going away on shutdown"
    );
    assert!(host_a.terminate().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_exported_for_admins() {
    let t = TestHost::start().await;
    let api = &t.api;
    let (pool, b, tb) = fleet(api, "m").await;
    let mut stream = Stream::open(
        &api.base,
        &format!("/api/sync/pools/{pool}/events"),
        Some(&api.admin),
    )
    .await
    .unwrap();
    stream.next_of(&["connected"], WAIT).await;
    let id = drive(api, &b, &tb).await;
    lifecycle_of(&mut stream, &id).await;

    api.anonymous()
        .get("/metrics")
        .await
        .expect(401, Some("MISSING_TOKEN"));
    api.as_(&tb)
        .get("/metrics")
        .await
        .expect(403, Some("ADMIN_REQUIRED"));
    let response = reqwest::Client::new()
        .get(format!("{}/metrics", api.base))
        .bearer_auth(&api.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let text = response.text().await.unwrap();
    for needle in [
        "pacsync_http_requests_total{route=\"/api/sync/{endpoint_id}/sync-to-latest\",method=\"POST\",status=\"202\"}",
        "pacsync_http_request_duration_seconds_bucket",
        "pacsync_operations{type=\"sync\",status=\"completed\"} 1",
        "pacsync_operation_duration_seconds_bucket",
        "pacsync_websocket_connections",
        "pacsync_events_fanned_out_total",
        "pacsync_policy_call_duration_seconds_bucket{plugin=\"mirror\",call=\"plan\"",
        "pacsync_db_pool_connections",
    ] {
        assert!(text.contains(needle), "missing {needle} in:\n{text}");
    }
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_ends_with_its_endpoint_or_its_token() {
    let t = TestHost::start().await;
    let api = &t.api;
    let (pool, b, tb) = fleet(api, "gone").await;
    let mut on_b = Stream::open(&api.base, &format!("/api/sync/{b}/status"), Some(&tb))
        .await
        .unwrap();
    let mut dashboard = Stream::open(
        &api.base,
        &format!("/api/sync/pools/{pool}/events"),
        Some(&api.admin),
    )
    .await
    .unwrap();
    for stream in [&mut on_b, &mut dashboard] {
        assert_eq!(stream.next(WAIT).await.unwrap()["type"], "connected");
    }

    api.delete(&format!("/api/endpoints/{b}"))
        .await
        .expect(204, None);
    // The endpoint's own stream hears why, then is closed: its token no longer exists.
    let deleted = on_b.next_of(&["endpoint_deleted"], WAIT).await;
    assert_eq!(deleted["endpoint_id"], b.as_str());
    assert_eq!(
        on_b.close_frame(WAIT).await,
        Some((1008, "endpoint deleted".into()))
    );
    assert_eq!(
        Stream::open(&api.base, &format!("/api/sync/{b}/status"), Some(&tb))
            .await
            .err(),
        Some(401)
    );
    // The pool's dashboard hears it too, and stays open.
    let seen = dashboard.next_of(&["endpoint_deleted"], WAIT).await;
    assert_eq!(seen["endpoint_id"], b.as_str());
    dashboard.send(json!({"type": "ping"})).await;
    assert_eq!(dashboard.next_of(&["pong"], WAIT).await["type"], "pong");

    // A stream lasts no longer than the token that opened it.
    let short = t.host.as_ref().unwrap().state.keys.issue(
        "short-lived",
        pacsync_host::auth::Role::Admin,
        None,
        Duration::from_secs(2),
    );
    let mut brief = Stream::open(
        &api.base,
        &format!("/api/sync/pools/{pool}/events"),
        Some(&short),
    )
    .await
    .unwrap();
    assert_eq!(brief.next(WAIT).await.unwrap()["type"], "connected");
    assert_eq!(
        brief.close_frame(WAIT).await,
        Some((1008, "token expired".into()))
    );
    t.stop().await;
}

/// Makes `name`, a new endpoint of `pool` with `linux` at `version`, the pool's target.
async fn new_target(api: &Api, pool: &str, name: &str, version: &str) {
    let (e, token) = api.register(pool, name).await;
    api.report(&e, &token, &[("linux", version)])
        .await
        .expect(200, None);
    api.set_as_latest(&e, &token).await.expect(202, None);
}

/// `(type, pool_id)` of target changes and moves, until the `count`th of them.
async fn pool_changes(stream: &mut Stream, count: usize) -> Vec<(String, String)> {
    let mut seen = Vec::new();
    while seen.len() < count {
        let m = stream
            .next_of(&["target_changed", "endpoint_moved"], WAIT)
            .await;
        seen.push((
            m["type"].as_str().unwrap().to_owned(),
            m["pool_id"]
                .as_str()
                .or(m["to_pool_id"].as_str())
                .unwrap_or_default()
                .to_owned(),
        ));
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_stream_follows_its_endpoint_into_another_pool() {
    let t = TestHost::start().await;
    let api = &t.api;
    let (from, b, tb) = fleet(api, "from").await;
    let to = api.create_pool("to").await;
    let open = |path: String, token: String| {
        let base = api.base.clone();
        async move { Stream::open(&base, &path, Some(&token)).await.unwrap() }
    };
    let mut on_b = open(format!("/api/sync/{b}/status"), tb.clone()).await;
    let mut old_dashboard = open(format!("/api/sync/pools/{from}/events"), api.admin.clone()).await;
    let mut new_dashboard = open(format!("/api/sync/pools/{to}/events"), api.admin.clone()).await;
    let before = on_b.next(WAIT).await.unwrap()["head"].as_i64().unwrap();

    // The old pool's target moves while b is in it, b moves, the old pool's target moves again
    // (b no longer cares), then the new pool gets its first target (b does care).
    new_target(api, &from, "from-2", "6.2-1").await;
    api.put(&format!("/api/endpoints/{b}/pool"))
        .json(json!({ "pool_id": to }))
        .await
        .expect(200, None);
    new_target(api, &from, "from-3", "6.4-1").await;
    new_target(api, &to, "to-ref", "6.3-1").await;

    let expected = vec![
        ("target_changed".to_owned(), from.clone()),
        ("endpoint_moved".to_owned(), to.clone()),
        ("target_changed".to_owned(), to.clone()),
    ];
    assert_eq!(pool_changes(&mut on_b, 3).await, expected);
    // Resumed from before all of it, the stream replays the same from the log.
    let mut resumed = open(format!("/api/sync/{b}/status?after={before}"), tb.clone()).await;
    assert_eq!(pool_changes(&mut resumed, 3).await, expected);
    for stream in [&mut old_dashboard, &mut new_dashboard] {
        let moved = stream.next_of(&["endpoint_moved"], WAIT).await;
        assert_eq!(
            (
                moved["endpoint_id"].as_str(),
                moved["from_pool_id"].as_str(),
                moved["to_pool_id"].as_str()
            ),
            (Some(b.as_str()), Some(from.as_str()), Some(to.as_str()))
        );
    }
    // A dashboard resuming from before the move gets it from the log.
    let mut replay = open(
        format!("/api/sync/pools/{from}/events?after={before}"),
        api.admin.clone(),
    )
    .await;
    let moved = replay.next_of(&["endpoint_moved"], WAIT).await;
    assert_eq!(moved["to_pool_id"], to.as_str());
    // After the move, b's status is against the new pool's target.
    on_b.send(json!({"type": "get_status"})).await;
    assert_eq!(
        on_b.next_of(&["status"], WAIT).await["sync_status"],
        "behind"
    );
    t.stop().await;
}
