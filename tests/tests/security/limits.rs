//! Rates, connections and sizes are bounded: a flood from one caller is refused with 429 while
//! everybody else is served, streams and their requests are capped, a resume over a long log
//! arrives whole, slow requests end and metrics labels stay bounded.

use std::time::{Duration, Instant};

use pacsync_tests::{Api, Fleet, Reply, Stream, TestHost, state};
use reqwest::Method;
use serde_json::json;

// A bound on waits, not a timing claim: generous for loaded CI machines.
const WAIT: Duration = Duration::from_secs(30);

/// A pool with a target and members `names` behind it: `(pool, [(id, token)])`.
async fn fleet(api: &Api, names: &[&str]) -> (String, Vec<(String, String)>) {
    let mut builder = Fleet::builder(api)
        .pool("limits")
        .reference("ref", state(&[("linux", "6.1-1")]));
    for name in names {
        builder = builder.member(name, state(&[("linux", "6.0-1")]));
    }
    let fleet = builder.build().await;
    let members = fleet.members.into_iter().map(|m| (m.id, m.token)).collect();
    (fleet.pool, members)
}

/// Sends `request` until one is refused; returns the refusal and how many passed before it.
async fn flood(count: usize, mut request: impl AsyncFnMut() -> Reply) -> (Reply, usize) {
    for passed in 0..count {
        let reply = request().await;
        if reply.status.as_u16() == 429 {
            return (reply, passed);
        }
    }
    panic!("{count} requests in a row were all served");
}

/// Asserts a 429 `RATE_LIMITED` problem with a `Retry-After` of at least a second.
#[track_caller]
fn assert_rate_limited(reply: &Reply) {
    reply.expect(429, Some("RATE_LIMITED"));
    let retry_after: u64 = reply.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry_after >= 1, "Retry-After: {retry_after}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_bursting_past_its_rate_gets_429_and_other_callers_do_not_notice() {
    let t = TestHost::start_with(|s| {
        s.rate_limit_endpoint_per_second = Some(1);
        s.rate_limit_endpoint_burst = Some(5);
    })
    .await;
    let api = &t.api;
    let (_, members) = fleet(api, &["a", "b"]).await;
    let ((a, ta), (b, tb)) = (&members[0], &members[1]);
    let path = format!("/api/sync/{a}/operations");
    let (refused, passed) = flood(30, async || api.as_(ta).get(&path).await).await;
    assert_rate_limited(&refused);
    assert!(passed <= 5, "{passed} requests passed a burst of 5");
    api.as_(tb)
        .get(&format!("/api/sync/{b}/operations"))
        .await
        .expect(200, None);
    api.get(&path).await.expect(200, None);
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registration_flood_from_one_address_gets_429_while_admins_are_served() {
    let t = TestHost::start_with(|s| {
        s.rate_limit_address_per_second = Some(1);
        s.rate_limit_address_burst = Some(5);
    })
    .await;
    let api = &t.api;
    let pool = api.create_pool("open").await;
    let body = json!({"name": "x", "hostname": "x.example", "enrollment_token": "pse_guess"});
    let (refused, passed) = flood(30, async || {
        api.anonymous()
            .post("/api/endpoints/register")
            .json(body.clone())
            .await
    })
    .await;
    assert_rate_limited(&refused);
    assert!(passed <= 5, "{passed} guesses passed a burst of 5");
    // The address is limited, not the route: its health checks wait too.
    assert_rate_limited(&api.anonymous().get("/api/sync/health").await);
    // A token holder is counted on its own.
    api.get(&format!("/api/pools/{pool}"))
        .await
        .expect(200, None);
    t.stop().await;
}

/// The host's answer to a WebSocket upgrade of `path` that it refuses, as a plain reply.
async fn refused_upgrade(api: &Api, token: &str, path: &str) -> Reply {
    api.as_(token)
        .get(path)
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .await
}

async fn open(api: &Api, path: &str, token: &str) -> Stream {
    let mut stream = Stream::open(&api.base, path, Some(token)).await.unwrap();
    stream.next_of(&["connected"], WAIT).await;
    stream
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fifth_stream_of_one_endpoint_is_refused_until_one_closes() {
    let t = TestHost::start_with(|s| s.max_streams_per_admin = Some(2)).await;
    let api = &t.api;
    let (pool, members) = fleet(api, &["b"]).await;
    let (b, tb) = &members[0];
    let path = format!("/api/sync/{b}/status");
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(open(api, &path, tb).await);
    }
    refused_upgrade(api, tb, &path)
        .await
        .expect(429, Some("TOO_MANY_STREAMS"));
    assert_eq!(
        Stream::open(&api.base, &path, Some(tb)).await.err(),
        Some(429)
    );
    // An admin watching the endpoint takes its own slots, not the endpoint's.
    let _watching = open(api, &path, &api.admin).await;
    let _dashboard = open(api, &format!("/api/sync/pools/{pool}/events"), &api.admin).await;
    refused_upgrade(api, &api.admin, &path)
        .await
        .expect(429, Some("TOO_MANY_STREAMS"));

    drop(held.pop());
    let deadline = Instant::now() + WAIT;
    loop {
        match Stream::open(&api.base, &path, Some(tb)).await {
            Ok(_) => break,
            Err(status) => {
                assert_eq!(status, 429);
                assert!(
                    Instant::now() < deadline,
                    "the closed stream's slot never came back"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    t.stop().await;
}

/// A host whose streams may send one request a second (bursts of 3), and an endpoint's open
/// status stream on it.
async fn stream_of_one_request_a_second() -> (TestHost, Stream) {
    let t = TestHost::start_with(|s| {
        s.stream_messages_per_second = Some(1);
        s.stream_message_burst = Some(3);
    })
    .await;
    let (_, members) = fleet(&t.api, &["b"]).await;
    let (b, tb) = &members[0];
    let stream = open(&t.api, &format!("/api/sync/{b}/status"), tb).await;
    (t, stream)
}

/// The stream is still open: once the rate allows, the next request is answered.
async fn answers_once_the_rate_allows(stream: &mut Stream) {
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stream.send(json!({"type": "ping"})).await;
    assert_eq!(stream.next_of(&["pong"], WAIT).await["type"], "pong");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_status_requests_is_answered_rate_limited_and_the_stream_stays_open() {
    let (t, mut stream) = stream_of_one_request_a_second().await;
    for _ in 0..20 {
        stream.send(json!({"type": "get_status"})).await;
    }
    let (mut answered, mut limited) = (0, 0);
    while answered + limited < 20 {
        let reply = stream.next_of(&["status", "error"], WAIT).await;
        if reply["type"] == "status" {
            answered += 1;
        } else {
            assert_eq!(reply["code"], "RATE_LIMITED", "{reply}");
            assert!(reply["message"].is_string(), "{reply}");
            limited += 1;
        }
    }
    assert!(answered <= 4, "{answered} of 20 status requests answered");
    assert!(limited >= 16, "{limited} of 20 status requests refused");
    answers_once_the_rate_allows(&mut stream).await;
    t.stop().await;
}

/// Creates and cancels a revert of `b` (two events).
async fn blip(api: &Api, b: &str, tb: &str) {
    let op = api.as_(tb).post(&format!("/api/sync/{b}/revert")).await;
    let id = op.expect(202, None)["operation_id"]
        .as_str()
        .unwrap()
        .to_owned();
    api.as_(tb)
        .post(&format!("/api/sync/operations/{id}/cancel"))
        .await
        .expect(200, None);
}

/// Reads `count` events from `stream` (skipping `connected`); returns their `event_id`s.
async fn event_ids(stream: &mut Stream, count: usize) -> Vec<i64> {
    let mut ids = Vec::new();
    while ids.len() < count {
        let message = stream
            .next(WAIT)
            .await
            .expect("the stream delivers the log");
        if let Some(id) = message["event_id"].as_i64() {
            ids.push(id);
        }
    }
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_from_the_start_of_a_long_log_delivers_every_event_once_in_order() {
    let t = TestHost::start_with(|s| s.event_backlog_page = Some(3)).await;
    let api = &t.api;
    let (pool, members) = fleet(api, &["b"]).await;
    let (b, tb) = &members[0];
    api.report(b, tb, &[("linux", "6.1-1")])
        .await
        .expect(200, None); // gives b a revert point
    for _ in 0..6 {
        blip(api, b, tb).await;
    }
    let db = t.cluster.pool().await;
    let of_pool: Vec<i64> = sqlx::query_scalar(
        "SELECT position FROM operation_events WHERE pool_id = $1::uuid ORDER BY position",
    )
    .bind(&pool)
    .fetch_all(&db)
    .await
    .unwrap();
    let of_endpoint: Vec<i64> = sqlx::query_scalar(
        "SELECT position FROM operation_events
         WHERE endpoint_id = $1::uuid OR (event_type = 'target_changed' AND pool_id = $2::uuid)
         ORDER BY position",
    )
    .bind(b)
    .bind(&pool)
    .fetch_all(&db)
    .await
    .unwrap();
    assert!(
        of_pool.len() >= 9 && of_endpoint.len() >= 9,
        "three pages at least"
    );

    let path = format!("/api/sync/pools/{pool}/events?after=0");
    let mut stream = open(api, &path, &api.admin).await;
    assert_eq!(event_ids(&mut stream, of_pool.len()).await, of_pool);
    let path = format!("/api/sync/{b}/status?after=0");
    let mut stream = open(api, &path, tb).await;
    assert_eq!(event_ids(&mut stream, of_endpoint.len()).await, of_endpoint);
    // The agent's own stream made its endpoint online, live after the backlog; nothing more:
    // every event came exactly once.
    let online = stream.next(Duration::from_secs(5)).await.expect("an event");
    assert_eq!(online["type"], "endpoint_online");
    assert!(online["event_id"].as_i64() > of_endpoint.last().copied());
    assert_eq!(stream.next(Duration::from_millis(500)).await, None);
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_that_outlasts_the_timeout_gets_503_and_streams_are_not_cut() {
    let t = TestHost::start_with(|s| s.request_timeout_ms = Some(2000)).await;
    let api = &t.api;
    let pool = api.create_pool("slow").await;
    let (b, tb) = api.register(&pool, "b").await;
    api.report(&b, &tb, &[("linux", "6.0-1")])
        .await
        .expect(200, None);
    let mut stream = open(api, &format!("/api/sync/{b}/status"), &tb).await;

    // Another session holds the endpoint's lock, so the next report waits for it.
    let db = t.cluster.pool().await;
    let mut holder = db.acquire().await.unwrap();
    sqlx::query("SELECT pg_advisory_lock(1, hashtext($1))")
        .bind(&b)
        .execute(&mut *holder)
        .await
        .unwrap();
    let started = Instant::now();
    let report = api.report(&b, &tb, &[("linux", "6.0-2")]);
    let reply = tokio::time::timeout(WAIT, report)
        .await
        .expect("the host answers a stuck request");
    reply.expect(503, Some("REQUEST_TIMEOUT"));
    assert!(started.elapsed() >= Duration::from_millis(2000));

    // The stream, open longer than the timeout, still answers.
    stream.send(json!({"type": "ping"})).await;
    assert_eq!(stream.next_of(&["pong"], WAIT).await["type"], "pong");
    sqlx::query("SELECT pg_advisory_unlock(1, hashtext($1))")
        .bind(&b)
        .execute(&mut *holder)
        .await
        .unwrap();
    api.report(&b, &tb, &[("linux", "6.0-2")])
        .await
        .expect(200, None);
    t.stop().await;
}

#[tokio::test]
async fn metrics_labels_stay_bounded_whatever_method_or_path_a_client_sends() {
    let t = TestHost::start().await;
    let api = &t.api;
    let foo = Method::from_bytes(b"FOO").unwrap();
    api.anonymous().request(foo, "/api/pools").await;
    api.anonymous()
        .get("/a-path-nobody-routes/3f6c0a5e")
        .await
        .expect(404, Some("ROUTE_NOT_FOUND"));
    let metrics = api.get("/metrics").await;
    let text = metrics.expect(200, None).as_str().unwrap();
    let foo = r#"pacsync_http_requests_total{route="/api/pools",method="other",status="405"}"#;
    assert!(text.contains(foo), "{text}");
    assert!(!text.contains("FOO"), "{text}");
    assert!(!text.contains("3f6c0a5e"), "{text}");
    assert!(text.contains(r#"route="unmatched""#), "{text}");
    t.stop().await;
}

/// An admin token recorded under `name`, as `pacsync-host token issue --name` hands it out.
async fn admin_token(t: &TestHost, name: &str) -> String {
    let state = &t.host.as_ref().expect("host running").state;
    pacsync_host::auth::admin_tokens::issue(&state.db, &state.keys, Some(name), 1, "admin:test")
        .await
        .expect("admin token issued")
        .token
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_with_a_revoked_admin_token_does_not_throttle_the_token_reissued_under_its_name() {
    let t = TestHost::start_with(|s| {
        s.rate_limit_admin_per_second = Some(1);
        s.rate_limit_admin_burst = Some(3);
    })
    .await;
    let api = &t.api;
    let revoked = admin_token(&t, "ops").await;
    api.delete("/api/admin-tokens/ops").await.expect(204, None);
    let reissued = admin_token(&t, "ops").await;
    // Whoever still holds the revoked token floods with it, far past the admin burst.
    for _ in 0..30 {
        let reply = api.as_(&revoked).get("/api/pools").await;
        match reply.status.as_u16() {
            401 => reply.expect(401, Some("TOKEN_REVOKED")),
            _ => reply.expect(429, Some("RATE_LIMITED")),
        };
    }
    // The name's bucket is untouched: the reissued token gets its whole burst at once.
    for _ in 0..3 {
        api.as_(&reissued).get("/api/pools").await.expect(200, None);
    }
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_that_are_not_requests_count_against_the_stream_rate_and_past_it_are_refused() {
    let (t, mut stream) = stream_of_one_request_a_second().await;
    for _ in 0..20 {
        stream.send_text("{ this is not JSON").await;
    }
    // At most the burst and a second's worth pass (and, not being requests, get no answer).
    for _ in 0..16 {
        let reply = stream.next_of(&["error"], WAIT).await;
        assert_eq!(reply["code"], "RATE_LIMITED", "{reply}");
    }
    answers_once_the_rate_allows(&mut stream).await;
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_rate_limits_off_a_burst_far_past_the_configured_rate_is_served() {
    // For a host behind a proxy that limits rates itself: the rates are configured as tiny as
    // in the test above, and switched off.
    let t = TestHost::start_with(|s| {
        s.rate_limits = Some(false);
        s.rate_limit_endpoint_per_second = Some(1);
        s.rate_limit_endpoint_burst = Some(5);
    })
    .await;
    let api = &t.api;
    let (_, members) = fleet(api, &["a"]).await;
    let (a, ta) = &members[0];
    let path = format!("/api/sync/{a}/operations");
    for _ in 0..30 {
        api.as_(ta).get(&path).await.expect(200, None);
    }
    t.stop().await;
}
