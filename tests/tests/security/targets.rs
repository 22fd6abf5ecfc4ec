//! Who may change a pool's target, and who may join a pool. A pool's `target_setters` decides
//! whether its endpoints may run set-as-latest (any of them, those an admin designated, or
//! none), and an admin's grant does not follow an endpoint into another pool; a bad target is
//! one admin call from undone; enrollment tokens can be listed (never their secret) and
//! revoked; and endpoint names belong to their pool, so one pool's machines cannot take
//! another's names.

mod enrollment;
mod restore;

use pacsync_tests::{Api, TestHost};
use serde_json::{Value, json};
use uuid::Uuid;

/// The pool's target generation, as `GET /api/pools/{id}/target` shows it.
async fn generation(api: &Api, pool: &str) -> i64 {
    api.get(&format!("/api/pools/{pool}/target"))
        .await
        .expect(200, None)["generation"]
        .as_i64()
        .unwrap()
}

/// Creates a pool with `target_setters` and returns its id.
async fn pool_with_setters(api: &Api, name: &str, setters: &str) -> String {
    let reply = api
        .post("/api/pools")
        .json(json!({ "name": name, "target_setters": setters }))
        .await;
    let body = reply.expect(201, None);
    assert_eq!(body["target_setters"], setters);
    body["pool_id"].as_str().unwrap().to_owned()
}

/// Registers `name` with `enrollment_token`, whatever the answer.
async fn register_with(api: &Api, enrollment_token: &str, name: &str) -> pacsync_tests::Reply {
    api.anonymous()
        .post("/api/endpoints/register")
        .json(json!({ "name": name, "hostname": "h", "enrollment_token": enrollment_token }))
        .await
}

/// `PUT /api/endpoints/{id}/permissions` by the admin.
async fn permit(api: &Api, endpoint: &str, body: Value) -> Value {
    api.put(&format!("/api/endpoints/{endpoint}/permissions"))
        .json(body)
        .await
        .expect(200, None)
        .clone()
}

#[tokio::test]
async fn an_endpoint_of_an_admins_only_pool_cannot_move_its_target() {
    let t = TestHost::start().await;
    let api = &t.api;
    let pool = pool_with_setters(api, "servers", "admins").await;
    let (e, te) = api.register(&pool, "web1").await;
    api.report(&e, &te, &[("linux", "6.1-1")])
        .await
        .expect(200, None);

    let refused = api.set_as_latest(&e, &te).await;
    let detail = refused.expect(403, Some("TARGET_CHANGE_FORBIDDEN"))["detail"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(detail.contains("admins"), "{detail}");
    assert_eq!(generation(api, &pool).await, 0);

    // The admin may, on the same endpoint; the endpoint still may not move it again.
    api.set_as_latest(&e, &api.admin).await.expect(202, None);
    assert_eq!(generation(api, &pool).await, 1);
    api.report(&e, &te, &[("linux", "6.2-1")])
        .await
        .expect(200, None);
    api.set_as_latest(&e, &te)
        .await
        .expect(403, Some("TARGET_CHANGE_FORBIDDEN"));
    let target = api.get(&format!("/api/pools/{pool}/target")).await;
    assert_eq!(target.expect(200, None)["generation"], 1);
    assert_eq!(target.body["packages"][0]["version"], "6.1-1");
    // Even a designated endpoint cannot: the grant only counts in designated pools.
    permit(api, &e, json!({"may_set_target": true})).await;
    api.set_as_latest(&e, &te)
        .await
        .expect(403, Some("TARGET_CHANGE_FORBIDDEN"));
    assert_eq!(generation(api, &pool).await, 1);
    t.stop().await;
}

#[tokio::test]
async fn a_designated_pool_admits_only_endpoints_the_admin_allowed_until_the_grant_is_withdrawn() {
    let t = TestHost::start().await;
    let api = &t.api;
    let pool = api.create_pool("desktops").await;
    let updated = api
        .patch(&format!("/api/pools/{pool}"))
        .json(json!({"target_setters": "designated"}))
        .await;
    assert_eq!(updated.expect(200, None)["target_setters"], "designated");
    api.patch(&format!("/api/pools/{pool}"))
        .json(json!({"target_setters": "everyone"}))
        .await
        .expect(422, Some("VALIDATION_FAILED"));
    let (e, te) = api.register(&pool, "laptop").await;
    api.report(&e, &te, &[("linux", "6.1-1")])
        .await
        .expect(200, None);

    let refused = api.set_as_latest(&e, &te).await;
    let detail = refused.expect(403, Some("TARGET_CHANGE_FORBIDDEN"))["detail"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        detail.contains("designated") && detail.contains("/permissions"),
        "the refusal names the rule and how an admin allows it: {detail}"
    );
    assert_eq!(generation(api, &pool).await, 0);

    let granted = permit(api, &e, json!({"may_set_target": true})).await;
    assert_eq!(
        (
            granted["may_set_target"].as_bool(),
            granted["constrains_availability"].as_bool()
        ),
        (Some(true), Some(true))
    );
    api.set_as_latest(&e, &te).await.expect(202, None);
    assert_eq!(generation(api, &pool).await, 1);

    // Changing another permission leaves the grant as it is.
    let other = permit(api, &e, json!({"constrains_availability": false})).await;
    assert_eq!(
        (
            other["may_set_target"].as_bool(),
            other["constrains_availability"].as_bool()
        ),
        (Some(true), Some(false))
    );
    let withdrawn = permit(api, &e, json!({"may_set_target": false})).await;
    assert_eq!(withdrawn["may_set_target"], false);
    api.report(&e, &te, &[("linux", "6.2-1")])
        .await
        .expect(200, None);
    api.set_as_latest(&e, &te)
        .await
        .expect(403, Some("TARGET_CHANGE_FORBIDDEN"));
    assert_eq!(generation(api, &pool).await, 1);
    let shown = api.get(&format!("/api/endpoints/{e}")).await;
    assert_eq!(shown.expect(200, None)["may_set_target"], false);

    // Permission changes say what to change, name a live endpoint, and are audited.
    api.put(&format!("/api/endpoints/{e}/permissions"))
        .json(json!({}))
        .await
        .expect(422, Some("VALIDATION_FAILED"));
    api.put(&format!("/api/endpoints/{}/permissions", Uuid::new_v4()))
        .json(json!({"may_set_target": true}))
        .await
        .expect(404, Some("ENDPOINT_NOT_FOUND"));
    let db = t.cluster.pool().await;
    let audited: Vec<(String, String)> = sqlx::query_as(
        "SELECT actor, action FROM audit_log
         WHERE subject_id = $1 AND action = 'endpoint.permissions' ORDER BY audit_id",
    )
    .bind(&e)
    .fetch_all(&db)
    .await
    .unwrap();
    assert_eq!(audited.len(), 3, "{audited:?}");
    assert!(audited.iter().all(|(actor, _)| actor == "admin:test-admin"));
    t.stop().await;
}

#[tokio::test]
async fn any_endpoint_stays_the_default_so_every_member_can_set_as_latest() {
    let t = TestHost::start().await;
    let api = &t.api;
    let created = api.post("/api/pools").json(json!({"name": "home"})).await;
    let pool = created.expect(201, None)["pool_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(created.body["target_setters"], "any_endpoint");
    let (e, te) = api.register(&pool, "desktop").await;
    let shown = api.get(&format!("/api/endpoints/{e}")).await;
    let shown = shown.expect(200, None);
    assert_eq!(
        (
            shown["may_set_target"].as_bool(),
            shown["constrains_availability"].as_bool()
        ),
        (Some(false), Some(true))
    );
    api.report(&e, &te, &[("linux", "6.1-1")])
        .await
        .expect(200, None);
    api.set_as_latest(&e, &te).await.expect(202, None);
    assert_eq!(generation(api, &pool).await, 1);
    t.stop().await;
}

#[tokio::test]
async fn endpoint_tokens_cannot_reach_the_target_permission_or_enrollment_token_routes() {
    let t = TestHost::start().await;
    let api = &t.api;
    let pool = pool_with_setters(api, "locked", "admins").await;
    let (e, te) = api.register(&pool, "m").await;
    let created = api
        .post(&format!("/api/pools/{pool}/enrollment-tokens"))
        .json(json!({}))
        .await;
    let token_id = created.expect(201, None)["token_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let state_id = "0".repeat(64);
    let attempts = [
        (
            reqwest::Method::PUT,
            format!("/api/endpoints/{e}/permissions"),
            Some(json!({"may_set_target": true})),
        ),
        (
            reqwest::Method::PUT,
            format!("/api/pools/{pool}/target"),
            Some(json!({"state_id": state_id})),
        ),
        (
            reqwest::Method::PATCH,
            format!("/api/pools/{pool}"),
            Some(json!({"target_setters": "any_endpoint"})),
        ),
        (
            reqwest::Method::GET,
            format!("/api/pools/{pool}/enrollment-tokens"),
            None,
        ),
        (
            reqwest::Method::DELETE,
            format!("/api/pools/{pool}/enrollment-tokens/{token_id}"),
            None,
        ),
    ];
    for (method, path, body) in attempts {
        let request = api.as_(&te).request(method.clone(), &path);
        let request = match body {
            Some(body) => request.json(body),
            None => request,
        };
        let reply = request.await;
        assert_eq!(
            (reply.status.as_u16(), reply.code()),
            (403, "ADMIN_REQUIRED"),
            "{method} {path}: {}",
            reply.body
        );
    }
    // Nothing changed: the grant, the rule and the token are as they were.
    let shown = api.get(&format!("/api/endpoints/{e}")).await;
    assert_eq!(shown.expect(200, None)["may_set_target"], false);
    let pool_now = api.get(&format!("/api/pools/{pool}")).await;
    assert_eq!(pool_now.expect(200, None)["target_setters"], "admins");
    let tokens = api
        .get(&format!("/api/pools/{pool}/enrollment-tokens"))
        .await;
    assert!(
        tokens
            .expect(200, None)
            .as_array()
            .unwrap()
            .iter()
            .all(|token| token["revoked_at"].is_null())
    );
    t.stop().await;
}

#[tokio::test]
async fn moving_an_endpoint_to_another_pool_withdraws_its_grant_to_set_the_target() {
    let t = TestHost::start().await;
    let api = &t.api;
    let from = pool_with_setters(api, "desktops", "designated").await;
    let to = pool_with_setters(api, "servers", "designated").await;
    let (e, te) = api.register(&from, "laptop").await;
    permit(
        api,
        &e,
        json!({"may_set_target": true, "constrains_availability": false}),
    )
    .await;
    api.report(&e, &te, &[("linux", "6.1-1")])
        .await
        .expect(200, None);

    let moved = api
        .put(&format!("/api/endpoints/{e}/pool"))
        .json(json!({ "pool_id": to }))
        .await;
    let moved = moved.expect(200, None);
    assert_eq!(
        (
            moved["pool_id"].as_str(),
            moved["may_set_target"].as_bool(),
            moved["constrains_availability"].as_bool()
        ),
        (Some(to.as_str()), Some(false), Some(false)),
        "the grant was for the old pool; the availability flag is about the endpoint and stays"
    );
    api.set_as_latest(&e, &te)
        .await
        .expect(403, Some("TARGET_CHANGE_FORBIDDEN"));
    assert_eq!(generation(api, &to).await, 0);
    let db = t.cluster.pool().await;
    let audited: Value = sqlx::query_scalar(
        "SELECT details FROM audit_log WHERE subject_id = $1 AND action = 'endpoint.move'",
    )
    .bind(&e)
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!(audited["may_set_target_withdrawn"], true, "{audited}");

    // Granted again for the new pool, it may.
    permit(api, &e, json!({"may_set_target": true})).await;
    api.set_as_latest(&e, &te).await.expect(202, None);
    assert_eq!(generation(api, &to).await, 1);
    t.stop().await;
}
