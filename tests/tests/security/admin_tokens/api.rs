//! Admins list the recorded tokens and revoke one over the API; a token without an id is refused.

use std::time::Instant;

use pacsync_host::auth::{AUDIENCE, Claims, Keys, Role};
use pacsync_tests::{Api, TestHost};
use serde_json::Value;

use super::{issue, refused_by};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_list_tokens_without_their_secrets_and_revoke_one_over_the_api() {
    let t = TestHost::start().await;
    let api = &t.api;
    let url = t.cluster.url();
    let key = t.host.as_ref().unwrap().state.config.jwt_key_file.clone();
    let ci = issue("ci", &url, &key);
    let ci_api = Api::new(api.base.clone(), ci.clone());
    let pool = ci_api.create_pool("built-by-ci").await;

    let reply = api.get("/api/admin-tokens").await;
    let tokens = reply.expect(200, None).as_array().unwrap().clone();
    let entry = tokens
        .iter()
        .find(|entry| entry["name"] == "ci")
        .unwrap_or_else(|| panic!("ci is listed: {tokens:?}"));
    assert!(entry["token_id"].is_string() && entry["expires_at"].is_string());
    assert_eq!(entry["revoked_at"], Value::Null);
    assert!(
        !reply.body.to_string().contains(&ci),
        "no token in the list"
    );
    // Endpoints neither list nor revoke admin tokens.
    let (_, endpoint) = api.register(&pool, "m").await;
    let endpoint_api = api.as_(&endpoint);
    endpoint_api
        .get("/api/admin-tokens")
        .await
        .expect(403, Some("ADMIN_REQUIRED"));
    endpoint_api
        .delete("/api/admin-tokens/ci")
        .await
        .expect(403, Some("ADMIN_REQUIRED"));

    api.delete("/api/admin-tokens/ci").await.expect(204, None);
    // This replica refuses it at once.
    refused_by(&api.base, &ci, Instant::now()).await;
    api.delete("/api/admin-tokens/ci")
        .await
        .expect(404, Some("ADMIN_TOKEN_NOT_FOUND"));
    api.delete("/api/admin-tokens/nobody")
        .await
        .expect(404, Some("ADMIN_TOKEN_NOT_FOUND"));
    let tokens = api.get("/api/admin-tokens").await;
    let entry = tokens
        .expect(200, None)
        .as_array()
        .unwrap()
        .iter()
        .find(|entry| entry["name"] == "ci")
        .cloned()
        .unwrap();
    assert!(entry["revoked_at"].is_string(), "{entry}");
    assert_eq!(entry["revoked_by"], "admin:test-admin");

    // An admin token without an id (signed before tokens were recorded) could never be revoked
    // on its own: it is refused.
    let now = chrono::Utc::now().timestamp();
    let unrecorded = Keys::load(&key, false).unwrap().sign(&Claims {
        sub: "old-admin".into(),
        role: Role::Admin,
        exp: now + 3600,
        iat: now,
        aud: AUDIENCE.into(),
        generation: None,
        jti: None,
    });
    api.as_(&unrecorded)
        .get("/api/pools")
        .await
        .expect(401, Some("TOKEN_REVOKED"));
    t.stop().await;
}
