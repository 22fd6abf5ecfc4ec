//! Pools, endpoints, registration and authentication: every route's success and failure paths.

use pacsync_tests::{TestHost, state};
use reqwest::Method;
use serde_json::json;
use uuid::Uuid;

#[tokio::test]
async fn pools_are_created_listed_updated_and_deleted_and_refuse_bad_requests_with_a_code() {
    let t = TestHost::start().await;
    let api = &t.api;
    let r = api
        .post("/api/pools")
        .json(json!({"name": "lab", "description": "the lab"}))
        .await;
    let pool = r.expect(201, None)["pool_id"].as_str().unwrap().to_owned();
    assert_eq!(r.body["policy_plugin"], "mirror");
    assert_eq!(r.body["target_generation"], 0);
    api.post("/api/pools")
        .json(json!({"name": "lab"}))
        .await
        .expect(409, Some("POOL_NAME_TAKEN"));
    api.post("/api/pools")
        .json(json!({"name": ""}))
        .await
        .expect(422, Some("VALIDATION_FAILED"));
    api.post("/api/pools")
        .json(json!({"nom": "x"}))
        .await
        .expect(422, Some("VALIDATION_FAILED"));
    api.post("/api/pools")
        .json(json!({"name": "x".repeat(129)}))
        .await
        .expect(422, Some("VALIDATION_FAILED"));
    // PostgreSQL refuses NUL in text: still the client's mistake, never a 500.
    api.post("/api/pools")
        .json(json!({"name": "nul", "description": "a\u{0}b"}))
        .await
        .expect(422, Some("VALIDATION_FAILED"));
    // Malformed JSON and the wrong media type.
    let raw = reqwest::Client::new()
        .post(format!("{}/api/pools", api.base))
        .bearer_auth(&api.admin)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status().as_u16(), 400);
    assert_eq!(
        raw.json::<serde_json::Value>().await.unwrap()["code"],
        "INVALID_JSON"
    );
    let raw = reqwest::Client::new()
        .post(format!("{}/api/pools", api.base))
        .bearer_auth(&api.admin)
        .body("name=x")
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status().as_u16(), 415);

    assert_eq!(
        api.get("/api/pools")
            .await
            .expect(200, None)
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        api.get(&format!("/api/pools/{pool}"))
            .await
            .expect(200, None)["name"],
        "lab"
    );
    let r = api
        .patch(&format!("/api/pools/{pool}"))
        .json(json!({"description": "new"}))
        .await;
    assert_eq!(
        (
            r.expect(200, None)["name"].as_str(),
            r.body["description"].as_str()
        ),
        (Some("lab"), Some("new"))
    );
    let other = api.create_pool("other").await;
    api.patch(&format!("/api/pools/{other}"))
        .json(json!({"name": "lab"}))
        .await
        .expect(409, Some("POOL_NAME_TAKEN"));

    let target = api.get(&format!("/api/pools/{pool}/target")).await;
    assert_eq!(target.expect(200, None)["generation"], 0);
    assert_eq!(target.body["packages"], json!([]));
    let status = api.get(&format!("/api/pools/{pool}/status")).await;
    assert_eq!(status.expect(200, None)["total"], 0);

    let missing = Uuid::new_v4();
    for path in ["", "/status", "/target"] {
        api.get(&format!("/api/pools/{missing}{path}"))
            .await
            .expect(404, Some("POOL_NOT_FOUND"));
    }
    api.get("/api/pools/123")
        .await
        .expect(400, Some("INVALID_ID"));
    api.delete(&format!("/api/pools/{missing}"))
        .await
        .expect(404, Some("POOL_NOT_FOUND"));

    // A pool with endpoints cannot be deleted; an empty one can, once.
    let (endpoint, _) = api.register(&pool, "m1").await;
    api.delete(&format!("/api/pools/{pool}"))
        .await
        .expect(409, Some("POOL_NOT_EMPTY"));
    api.put(&format!("/api/endpoints/{endpoint}/pool"))
        .json(json!({"pool_id": other}))
        .await
        .expect(200, None);
    api.delete(&format!("/api/pools/{pool}"))
        .await
        .expect(204, None);
    api.get(&format!("/api/pools/{pool}"))
        .await
        .expect(404, Some("POOL_NOT_FOUND"));
    // Its name is free again.
    api.post("/api/pools")
        .json(json!({"name": "lab"}))
        .await
        .expect(201, None);

    // Unknown routes and methods also answer in problem+json.
    api.get("/api/nope")
        .await
        .expect(404, Some("ROUTE_NOT_FOUND"));
    api.put("/api/pools")
        .await
        .expect(405, Some("METHOD_NOT_ALLOWED"));
    t.stop().await;
}

#[tokio::test]
async fn requests_need_a_valid_token_and_reach_only_what_its_holder_may_use() {
    let t = TestHost::start().await;
    let api = &t.api;
    let pool = api.create_pool("p").await;
    let (e1, tok1) = api.register(&pool, "one").await;
    let (e2, _tok2) = api.register(&pool, "two").await;

    api.anonymous()
        .get("/api/pools")
        .await
        .expect(401, Some("MISSING_TOKEN"));
    api.as_("garbage")
        .get("/api/pools")
        .await
        .expect(401, Some("INVALID_TOKEN"));
    let raw = reqwest::Client::new()
        .get(format!("{}/api/pools", api.base))
        .header("authorization", "Basic abc")
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status().as_u16(), 401);
    // A token signed with another key.
    let dir = pacsync_tests::shared_tempdir();
    let foreign = pacsync_host::auth::Keys::load(&dir.path().join("k"), true)
        .unwrap()
        .issue(
            "mallory",
            pacsync_host::auth::Role::Admin,
            None,
            std::time::Duration::from_secs(60),
        );
    api.as_(&foreign)
        .get("/api/pools")
        .await
        .expect(401, Some("INVALID_TOKEN"));

    // Endpoint tokens: admin routes are closed, other endpoints are closed, its own is open.
    for (method, path) in [
        (Method::GET, "/api/pools".to_owned()),
        (Method::POST, format!("/api/pools/{pool}/enrollment-tokens")),
        (Method::GET, "/api/endpoints".to_owned()),
        (Method::GET, format!("/api/pools/{pool}/status")),
    ] {
        api.as_(&tok1)
            .request(method, &path)
            .await
            .expect(403, Some("ADMIN_REQUIRED"));
    }
    api.as_(&tok1)
        .get(&format!("/api/endpoints/{e2}"))
        .await
        .expect(403, Some("NOT_YOUR_ENDPOINT"));
    api.as_(&tok1)
        .get(&format!("/api/endpoints/{e2}/states"))
        .await
        .expect(403, Some("NOT_YOUR_ENDPOINT"));
    api.as_(&tok1)
        .put(&format!("/api/endpoints/{e2}/state"))
        .json(state(&[]))
        .await
        .expect(403, Some("NOT_YOUR_ENDPOINT"));
    api.as_(&tok1)
        .delete(&format!("/api/endpoints/{e2}"))
        .await
        .expect(403, Some("NOT_YOUR_ENDPOINT"));
    api.as_(&tok1)
        .put(&format!("/api/endpoints/{e1}/pool"))
        .json(json!({"pool_id": pool}))
        .await
        .expect(403, Some("ADMIN_REQUIRED"));
    // Only the endpoint itself reports its packages.
    api.put(&format!("/api/endpoints/{e1}/state"))
        .json(state(&[]))
        .await
        .expect(403, Some("ENDPOINT_REQUIRED"));
    let own = api.as_(&tok1).get(&format!("/api/endpoints/{e1}")).await;
    assert_eq!(own.expect(200, None)["name"], "one");

    // Deleting an endpoint revokes its token.
    api.as_(&tok1)
        .delete(&format!("/api/endpoints/{e1}"))
        .await
        .expect(204, None);
    api.as_(&tok1)
        .get(&format!("/api/endpoints/{e1}"))
        .await
        .expect(401, Some("TOKEN_REVOKED"));
    api.get(&format!("/api/endpoints/{e1}"))
        .await
        .expect(404, Some("ENDPOINT_NOT_FOUND"));

    // The health route is public and says nothing secret.
    let health = api.anonymous().get("/api/sync/health").await;
    assert_eq!(health.expect(200, None)["database"], "ok");
    t.stop().await;
}

#[tokio::test]
async fn enrollment_tokens_admit_endpoints_until_used_up_or_expired_and_are_stored_hashed() {
    let t = TestHost::start().await;
    let api = &t.api;
    let pool = api.create_pool("p").await;
    let register = |token: String, name: &'static str| {
        let api = api.clone();
        async move {
            api.anonymous()
                .post("/api/endpoints/register")
                .json(json!({"name": name, "hostname": "h", "enrollment_token": token}))
                .await
        }
    };
    let once = api
        .post(&format!("/api/pools/{pool}/enrollment-tokens"))
        .json(json!({"max_uses": 1, "expires_in_seconds": 600}))
        .await;
    let once = once.expect(201, None)["token"].as_str().unwrap().to_owned();
    let r = register(once.clone(), "first").await;
    let body = r.expect(201, None);
    assert_eq!(body["endpoint"]["pool_id"], pool.as_str());
    assert_eq!(body["endpoint"]["sync_status"], "unknown");
    assert!(body["access_token"].as_str().unwrap().len() > 20);
    register(once, "second")
        .await
        .expect(401, Some("ENROLLMENT_TOKEN_EXHAUSTED"));
    register("pse_unknown".into(), "third")
        .await
        .expect(401, Some("INVALID_ENROLLMENT_TOKEN"));

    // An expired token, aged in the database the way time would.
    let short = api
        .post(&format!("/api/pools/{pool}/enrollment-tokens"))
        .json(json!({"expires_in_seconds": 60}))
        .await;
    let short = short.expect(201, None)["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let db = t.cluster.pool().await;
    sqlx::query("UPDATE enrollment_tokens SET expires_at = now() - interval '1 second' WHERE pool_id = $1::uuid AND max_uses IS NULL")
        .bind(&pool)
        .execute(&db)
        .await
        .unwrap();
    register(short, "fourth")
        .await
        .expect(401, Some("ENROLLMENT_TOKEN_EXPIRED"));

    let token = api.enrollment_token(&pool).await;
    register(token.clone(), "first")
        .await
        .expect(409, Some("ENDPOINT_NAME_TAKEN"));
    register(token.clone(), "")
        .await
        .expect(422, Some("VALIDATION_FAILED"));
    api.anonymous()
        .post("/api/endpoints/register")
        .json(json!({"name": "x"}))
        .await
        .expect(422, Some("VALIDATION_FAILED"));
    for bad in [
        json!({"expires_in_seconds": 1}),
        json!({"max_uses": 0}),
        json!({"uses": 3}),
    ] {
        api.post(&format!("/api/pools/{pool}/enrollment-tokens"))
            .json(bad)
            .await
            .expect(422, Some("VALIDATION_FAILED"));
    }
    api.post(&format!("/api/pools/{}/enrollment-tokens", Uuid::new_v4()))
        .json(json!({}))
        .await
        .expect(404, Some("POOL_NOT_FOUND"));
    // Only hashes are stored.
    let stored: i64 =
        sqlx::query_scalar("SELECT count(*) FROM enrollment_tokens WHERE token_hash = $1")
            .bind(&token)
            .fetch_one(&db)
            .await
            .unwrap();
    assert_eq!(stored, 0);
    t.stop().await;
}

#[tokio::test]
async fn state_reports_are_stored_once_classified_kept_as_history_and_follow_moves() {
    let t = TestHost::start().await;
    let api = &t.api;
    let pool = api.create_pool("p").await;
    let (a, ta) = api.register(&pool, "a").await;
    let (b, tb) = api.register(&pool, "b").await;
    let r = api
        .report(&a, &ta, &[("linux", "6.1-1"), ("glibc", "2.38-1")])
        .await;
    let sa = r.expect(200, None)["state_id"].as_str().unwrap().to_owned();
    assert_eq!(r.body["sync_status"], "unknown");
    api.set_as_latest(&a, &api.admin).await.expect(202, None);
    // Identical states are stored once, whoever reports them.
    let r = api
        .report(&b, &tb, &[("glibc", "2.38-1"), ("linux", "6.1-1")])
        .await;
    assert_eq!(r.expect(200, None)["state_id"], sa.as_str());
    assert_eq!(r.body["sync_status"], "in_sync");
    let db = t.cluster.pool().await;
    let states: i64 = sqlx::query_scalar("SELECT count(*) FROM package_states")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(states, 1);

    for (pkgs, expected) in [
        (vec![("linux", "6.2-1"), ("glibc", "2.38-1")], "ahead"),
        (
            vec![("linux", "6.1-1"), ("glibc", "2.38-1"), ("vim", "9-1")],
            "ahead",
        ),
        (vec![("linux", "6.0-1"), ("glibc", "2.38-1")], "behind"),
        (vec![("linux", "6.1-1")], "behind"),
        (vec![("linux", "6.2-1")], "diverged"),
        (vec![("linux", "1:6.1-1"), ("glibc", "0:2.38")], "ahead"),
        (vec![("linux", "6.1"), ("glibc", "0:2.38-1")], "in_sync"),
    ] {
        let r = api.report(&b, &tb, &pkgs).await;
        assert_eq!(r.expect(200, None)["sync_status"], expected, "{pkgs:?}");
    }
    let history = api
        .as_(&tb)
        .get(&format!("/api/endpoints/{b}/states?limit=3"))
        .await;
    let history = history.expect(200, None).as_array().unwrap().clone();
    assert_eq!(history.len(), 3);
    assert!(history[0]["history_id"].as_i64() > history[1]["history_id"].as_i64());
    api.as_(&tb)
        .get(&format!("/api/endpoints/{b}/states?limit=0"))
        .await
        .expect(400, Some("INVALID_QUERY"));

    // Invalid reports.
    let dup = json!({"architecture": "x86_64", "pacman_version": "6", "packages": [
        {"name": "a", "version": "1-1", "reason": "explicit"}, {"name": "a", "version": "1-2", "reason": "explicit"}]});
    api.as_(&tb)
        .put(&format!("/api/endpoints/{b}/state"))
        .json(dup)
        .await
        .expect(422, Some("INVALID_PACKAGE_STATE"));
    let bad_reason = json!({"architecture": "x86_64", "pacman_version": "6", "packages": [{"name": "a", "version": "1", "reason": "maybe"}]});
    api.as_(&tb)
        .put(&format!("/api/endpoints/{b}/state"))
        .json(bad_reason)
        .await
        .expect(422, Some("VALIDATION_FAILED"));
    let bad_name = json!({"architecture": "x86_64", "pacman_version": "6", "packages": [{"name": "-a", "version": "1", "reason": "explicit"}]});
    api.as_(&tb)
        .put(&format!("/api/endpoints/{b}/state"))
        .json(bad_name)
        .await
        .expect(422, Some("INVALID_PACKAGE_STATE"));
    let no_arch = json!({"architecture": "", "pacman_version": "6", "packages": []});
    api.as_(&tb)
        .put(&format!("/api/endpoints/{b}/state"))
        .json(no_arch)
        .await
        .expect(422, Some("VALIDATION_FAILED"));

    // Listing and moving.
    let other = api.create_pool("other").await;
    assert_eq!(
        api.get(&format!("/api/endpoints?pool_id={pool}"))
            .await
            .expect(200, None)
            .as_array()
            .unwrap()
            .len(),
        2
    );
    api.get(&format!("/api/endpoints?pool_id={}", Uuid::new_v4()))
        .await
        .expect(404, Some("POOL_NOT_FOUND"));
    api.get("/api/endpoints?pool_id=nope")
        .await
        .expect(400, Some("INVALID_QUERY"));
    let moved = api
        .put(&format!("/api/endpoints/{b}/pool"))
        .json(json!({"pool_id": other}))
        .await;
    let moved = moved.expect(200, None);
    assert_eq!(
        (moved["pool_id"].as_str(), moved["sync_status"].as_str()),
        (Some(other.as_str()), Some("unknown"))
    );
    api.put(&format!("/api/endpoints/{b}/pool"))
        .json(json!({"pool_id": Uuid::new_v4()}))
        .await
        .expect(404, Some("POOL_NOT_FOUND"));
    api.put(&format!("/api/endpoints/{}/pool", Uuid::new_v4()))
        .json(json!({"pool_id": other}))
        .await
        .expect(404, Some("ENDPOINT_NOT_FOUND"));
    // An endpoint with an active operation stays where it is.
    api.put(&format!("/api/endpoints/{b}/pool"))
        .json(json!({"pool_id": pool}))
        .await
        .expect(200, None);
    api.report(&b, &tb, &[("linux", "6.0-1")])
        .await
        .expect(200, None);
    api.as_(&tb)
        .post(&format!("/api/sync/{b}/sync-to-latest"))
        .await
        .expect(202, None);
    api.put(&format!("/api/endpoints/{b}/pool"))
        .json(json!({"pool_id": other}))
        .await
        .expect(409, Some("ENDPOINT_BUSY"));
    // Deleting it ends that operation and keeps the audit trail.
    api.delete(&format!("/api/endpoints/{b}"))
        .await
        .expect(204, None);
    let (status, code): (String, String) =
        sqlx::query_as("SELECT status, error_code FROM operations WHERE endpoint_id = $1::uuid AND operation_type = 'sync'")
            .bind(&b)
            .fetch_one(&db)
            .await
            .unwrap();
    assert_eq!(
        (status.as_str(), code.as_str()),
        ("failed", "ENDPOINT_DELETED")
    );
    let actions: Vec<String> =
        sqlx::query_scalar("SELECT action FROM audit_log WHERE subject_id = $1 ORDER BY audit_id")
            .bind(&b)
            .fetch_all(&db)
            .await
            .unwrap();
    assert_eq!(
        actions,
        [
            "endpoint.register",
            "endpoint.move",
            "endpoint.move",
            "endpoint.delete"
        ]
    );
    // The logs are append-only, even to SQL.
    let err = sqlx::query("DELETE FROM audit_log")
        .execute(&db)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("append-only"), "{err}");
    let err = sqlx::query("UPDATE operation_events SET payload = '{}'")
        .execute(&db)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("append-only"), "{err}");
    api.delete(&format!("/api/endpoints/{b}"))
        .await
        .expect(404, Some("ENDPOINT_NOT_FOUND"));
    t.stop().await;
}
