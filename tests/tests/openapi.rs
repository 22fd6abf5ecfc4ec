//! The OpenAPI document is generated from the code, committed, and served.

use pacsync_tests::TestHost;

#[test]
fn committed_openapi_json_matches_the_code() {
    let committed =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../openapi.json"))
            .expect("openapi.json at the repository root");
    let generated = pacsync_host::api::openapi_json();
    assert!(
        committed.trim() == generated.trim(),
        "openapi.json is stale: run `cargo run -p pacsync-host -- openapi > openapi.json`"
    );
    let doc: serde_json::Value = serde_json::from_str(&generated).unwrap();
    for path in [
        "/api/pools",
        "/api/endpoints/register",
        "/api/sync/{endpoint_id}/sync-to-latest",
        "/api/sync/operations/{operation_id}/complete",
        "/api/sync/health",
    ] {
        assert!(
            doc["paths"][path].is_object(),
            "{path} missing from the document"
        );
    }
}

#[tokio::test]
async fn openapi_is_served() {
    let t = TestHost::start().await;
    let reply = t.api.anonymous().get("/api/openapi.json").await;
    assert_eq!(reply.expect(200, None)["info"]["title"], "pacsync host API");
    t.stop().await;
}
