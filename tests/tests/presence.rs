//! Presence: an endpoint is online while its own agent holds its event stream open, announced on
//! the pool's stream as `endpoint_online` and `endpoint_offline`, and read as `online` on the
//! endpoint and as a count in the pool's status. An admin watching the endpoint's stream does
//! not make it online.

use std::time::Duration;

use pacsync_tests::{Api, Stream, TestHost};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(10);

async fn online(api: &Api, endpoint: &str, pool: &str) -> (Value, Value) {
    let endpoint = api.get(&format!("/api/endpoints/{endpoint}")).await;
    let status = api.get(&format!("/api/pools/{pool}/status")).await;
    (
        endpoint.expect(200, None)["online"].clone(),
        status.expect(200, None)["online"].clone(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_is_online_while_its_agent_holds_its_stream_and_the_pool_is_told() {
    let t = TestHost::start().await;
    let api = &t.api;
    let pool = api.create_pool("desks").await;
    let (endpoint, token) = api.register(&pool, "desk").await;
    let mut watch = Stream::open(
        &api.base,
        &format!("/api/sync/pools/{pool}/events"),
        Some(&api.admin),
    )
    .await
    .unwrap();
    watch.next_of(&["connected"], WAIT).await;
    assert_eq!(
        online(api, &endpoint, &pool).await,
        (Value::Bool(false), 0.into())
    );

    // An admin watching the endpoint does not make it online.
    let path = format!("/api/sync/{endpoint}/status");
    let mut admin = Stream::open(&api.base, &path, Some(&api.admin))
        .await
        .unwrap();
    admin.next_of(&["connected"], WAIT).await;
    assert_eq!(
        online(api, &endpoint, &pool).await,
        (Value::Bool(false), 0.into())
    );

    let mut agent = Stream::open(&api.base, &path, Some(&token)).await.unwrap();
    agent.next_of(&["connected"], WAIT).await;
    let event = watch.next_of(&["endpoint_online"], WAIT).await;
    assert_eq!(event["endpoint_id"], endpoint.as_str());
    assert_eq!(event["pool_id"], pool.as_str());
    assert_eq!(
        online(api, &endpoint, &pool).await,
        (Value::Bool(true), 1.into())
    );

    // A second stream of the same agent, then the first one gone: still online.
    let mut again = Stream::open(&api.base, &path, Some(&token)).await.unwrap();
    again.next_of(&["connected"], WAIT).await;
    drop(agent);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        online(api, &endpoint, &pool).await,
        (Value::Bool(true), 1.into())
    );

    drop(again);
    let event = watch.next_of(&["endpoint_offline"], WAIT).await;
    assert_eq!(event["endpoint_id"], endpoint.as_str());
    assert_eq!(
        online(api, &endpoint, &pool).await,
        (Value::Bool(false), 0.into())
    );
    drop(admin);
}
