//! Who may join a pool: enrollment tokens an admin can list (never their secret) and revoke, and
//! endpoint names that belong to their pool.

use pacsync_tests::TestHost;
use serde_json::{Value, json};
use uuid::Uuid;

use super::register_with;

#[tokio::test]
async fn enrollment_tokens_are_listed_without_secrets_and_a_revoked_one_registers_nothing() {
    let t = TestHost::start().await;
    let api = &t.api;
    let pool = api.create_pool("lab").await;
    let other_pool = api.create_pool("other").await;
    let create = |body: Value| {
        let api = api.clone();
        let pool = pool.clone();
        async move {
            let reply = api
                .post(&format!("/api/pools/{pool}/enrollment-tokens"))
                .json(body)
                .await;
            let body = reply.expect(201, None);
            (
                body["token_id"].as_str().unwrap().to_owned(),
                body["token"].as_str().unwrap().to_owned(),
            )
        }
    };
    let (first_id, first) = create(json!({"max_uses": 5})).await;
    let (second_id, second) = create(json!({})).await;
    register_with(api, &first, "one").await.expect(201, None);

    let listed = api
        .get(&format!("/api/pools/{pool}/enrollment-tokens"))
        .await;
    let text = listed.expect(200, None).to_string();
    for secret in [&first, &second] {
        assert!(!text.contains(secret.as_str()), "secret listed: {text}");
    }
    let tokens = listed.body.as_array().unwrap();
    assert_eq!(tokens.len(), 2);
    for token in tokens {
        let mut fields: Vec<&str> = token
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        fields.sort_unstable();
        assert_eq!(
            fields,
            [
                "created_at",
                "created_by",
                "expires_at",
                "max_uses",
                "pool_id",
                "revoked_at",
                "token_id",
                "uses"
            ]
        );
    }
    let first_listed = tokens
        .iter()
        .find(|token| token["token_id"] == first_id.as_str())
        .expect("the first token is listed");
    assert_eq!(
        (
            first_listed["uses"].as_i64(),
            first_listed["max_uses"].as_i64(),
            first_listed["created_by"].as_str()
        ),
        (Some(1), Some(5), Some("admin:test-admin"))
    );

    api.delete(&format!("/api/pools/{pool}/enrollment-tokens/{first_id}"))
        .await
        .expect(204, None);
    register_with(api, &first, "two")
        .await
        .expect(401, Some("INVALID_ENROLLMENT_TOKEN"));
    register_with(api, &second, "two").await.expect(201, None);
    let listed = api
        .get(&format!("/api/pools/{pool}/enrollment-tokens"))
        .await;
    let revoked: Vec<(String, bool)> = listed
        .expect(200, None)
        .as_array()
        .unwrap()
        .iter()
        .map(|token| {
            (
                token["token_id"].as_str().unwrap().to_owned(),
                !token["revoked_at"].is_null(),
            )
        })
        .collect();
    assert!(revoked.contains(&(first_id.clone(), true)), "{revoked:?}");
    assert!(revoked.contains(&(second_id.clone(), false)), "{revoked:?}");

    // A token is revoked only through its own pool, and unknown ids say so.
    api.delete(&format!(
        "/api/pools/{other_pool}/enrollment-tokens/{second_id}"
    ))
    .await
    .expect(404, Some("ENROLLMENT_TOKEN_NOT_FOUND"));
    api.delete(&format!(
        "/api/pools/{pool}/enrollment-tokens/{}",
        Uuid::new_v4()
    ))
    .await
    .expect(404, Some("ENROLLMENT_TOKEN_NOT_FOUND"));
    register_with(api, &second, "three").await.expect(201, None);
    api.get(&format!("/api/pools/{}/enrollment-tokens", Uuid::new_v4()))
        .await
        .expect(404, Some("POOL_NOT_FOUND"));

    let db = t.cluster.pool().await;
    let revocations: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_log WHERE action = 'enrollment_token.revoke' AND subject_id = $1",
    )
    .bind(&first_id)
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!(revocations, 1);
    t.stop().await;
}

#[tokio::test]
async fn endpoint_names_are_unique_within_a_pool_but_not_across_pools() {
    let t = TestHost::start().await;
    let api = &t.api;
    let a = api.create_pool("a").await;
    let b = api.create_pool("b").await;
    let (in_a, _) = api.register(&a, "laptop").await;
    // Another pool's machines cannot squat the name, nor be refused because of it.
    let (in_b, _) = api.register(&b, "laptop").await;
    assert_ne!(in_a, in_b);

    let token = api.enrollment_token(&a).await;
    register_with(api, &token, "laptop")
        .await
        .expect(409, Some("ENDPOINT_NAME_TAKEN"));
    api.put(&format!("/api/endpoints/{in_b}/pool"))
        .json(json!({ "pool_id": a }))
        .await
        .expect(409, Some("ENDPOINT_NAME_TAKEN"));

    // A deleted endpoint frees its name in its pool.
    api.delete(&format!("/api/endpoints/{in_a}"))
        .await
        .expect(204, None);
    register_with(api, &token, "laptop").await.expect(201, None);
    t.stop().await;
}
