//! How the host serves the dashboard's files and its health probes, over plain HTTP.

use pacsync_tests::TestHost;

/// The policy every dashboard response carries.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
    connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

#[tokio::test]
async fn the_dashboard_is_served_at_the_root_under_a_strict_content_security_policy() {
    let t = TestHost::start().await;
    let http = reqwest::Client::new();
    let base = t.api.base.clone();

    let page = http.get(format!("{base}/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let header = |name: &str| {
        page.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    assert_eq!(header("content-security-policy").as_deref(), Some(CSP));
    assert_eq!(
        header("content-type").as_deref(),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(header("x-content-type-options").as_deref(), Some("nosniff"));
    assert_eq!(header("cache-control").as_deref(), Some("no-cache"));
    let etag = header("etag").expect("an ETag");
    let html = page.text().await.unwrap();
    assert!(html.contains("src=\"/js/app.js\""), "{html}");

    // Unchanged since the last load: 304 without a body.
    let again = http
        .get(format!("{base}/"))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
    assert!(again.bytes().await.unwrap().is_empty());

    let script = http.get(format!("{base}/js/app.js")).send().await.unwrap();
    assert_eq!(script.status(), 200);
    let content_type = script.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(content_type.contains("javascript"), "{content_type}");

    // Paths that are no file, docs kept out of the binary, and writes stay the API's 404.
    for (method, path) in [
        (reqwest::Method::GET, "/no-such-page"),
        (reqwest::Method::GET, "/README.md"),
        (reqwest::Method::GET, "/api/no-such-route"),
        (reqwest::Method::POST, "/"),
    ] {
        let reply = http
            .request(method.clone(), format!("{base}{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status(), 404, "{method} {path}");
        let body: serde_json::Value = reply.json().await.unwrap();
        assert_eq!(body["code"], "ROUTE_NOT_FOUND", "{method} {path}");
    }
}

#[tokio::test]
async fn the_health_probes_say_live_and_ready_and_not_ready_without_the_database() {
    let t = TestHost::start().await;
    let http = reqwest::Client::new();
    let base = t.api.base.clone();
    let get = |path: &'static str| {
        let http = http.clone();
        let url = format!("{base}{path}");
        async move {
            let reply = http.get(url).send().await.unwrap();
            let status = reply.status().as_u16();
            (status, reply.json::<serde_json::Value>().await.unwrap())
        }
    };
    assert_eq!(
        get("/health/live").await,
        (200, serde_json::json!({"status": "live"}))
    );
    assert_eq!(
        get("/health/ready").await,
        (
            200,
            serde_json::json!({"status": "ready", "database": "ok", "migrations": "ok",
                               "shutting_down": false})
        )
    );

    // A migration the database lacks (as after restoring an older backup under a newer host).
    let db = t.cluster.pool().await;
    sqlx::query("DELETE FROM refinery_schema_history WHERE version = 12")
        .execute(&db)
        .await
        .unwrap();
    let (status, body) = get("/health/ready").await;
    assert_eq!(
        (status, &body["migrations"]),
        (503, &serde_json::json!("missing"))
    );
    db.close().await;

    t.cluster.stop().await;
    let (status, body) = get("/health/ready").await;
    assert_eq!(
        (status, &body["status"], &body["database"]),
        (
            503,
            &serde_json::json!("not_ready"),
            &serde_json::json!("unavailable")
        )
    );
    assert_eq!(
        get("/health/live").await.0,
        200,
        "the process still answers"
    );
}
