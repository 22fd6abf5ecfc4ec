//! What the host makes of a request body: one JSON object, as the OpenAPI document describes
//! every body. serde alone would read a struct from a JSON array too (`[null, null]` as an
//! update that changes nothing), which no client means; `null` for a body that may be omitted
//! is read as omitted.

use pacsync_tests::TestHost;
use serde_json::Value;

/// Sends `body` as JSON with the admin token; the status and the answer.
async fn send(t: &TestHost, method: reqwest::Method, path: &str, body: &str) -> (u16, Value) {
    let reply = reqwest::Client::new()
        .request(method, format!("{}{path}", t.api.base))
        .bearer_auth(&t.api.admin)
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    let status = reply.status().as_u16();
    if status >= 400 {
        let kind = reply.headers()["content-type"].to_str().unwrap().to_owned();
        assert_eq!(kind, "application/problem+json", "{path} {body}");
    }
    (status, reply.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_body_must_be_one_json_object_and_null_stands_for_an_omitted_optional_body() {
    let t = TestHost::start().await;
    let pool = t.api.create_pool("web").await;
    let post = reqwest::Method::POST;
    let patch = reqwest::Method::PATCH;

    for (method, path, body) in [
        (post.clone(), "/api/pools".to_owned(), r#"["other"]"#),
        (patch.clone(), format!("/api/pools/{pool}"), "[null, null]"),
        (patch.clone(), format!("/api/pools/{pool}"), "42"),
        (
            post.clone(),
            format!("/api/pools/{pool}/enrollment-tokens"),
            "[]",
        ),
    ] {
        let (status, problem) = send(&t, method, &path, body).await;
        assert_eq!(
            (status, problem["code"].as_str()),
            (422, Some("VALIDATION_FAILED")),
            "{path} {body}: {problem}"
        );
        assert!(
            problem["detail"]
                .as_str()
                .unwrap()
                .contains("a JSON object")
        );
    }
    let (status, problem) = send(&t, patch.clone(), &format!("/api/pools/{pool}"), "{} x").await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (400, Some("INVALID_JSON"))
    );
    let (status, problem) = send(&t, patch, &format!("/api/pools/{pool}"), "[1,").await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (400, Some("INVALID_JSON"))
    );

    // An optional body given as null is the body left out: the defaults apply.
    let (status, token) = send(
        &t,
        post,
        &format!("/api/pools/{pool}/enrollment-tokens"),
        "null",
    )
    .await;
    assert_eq!(status, 201, "{token}");
    assert!(token["token"].as_str().is_some_and(|s| !s.is_empty()));

    let pools = t.api.get("/api/pools").await.expect(200, None).clone();
    assert_eq!(
        pools.as_array().unwrap().len(),
        1,
        "nothing was created: {pools}"
    );
    assert_eq!(pools[0]["name"], "web", "nothing was renamed");
}
