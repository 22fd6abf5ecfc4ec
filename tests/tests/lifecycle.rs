//! The operation lifecycle through the API, against a real private PostgreSQL cluster.

use std::time::Duration;

use pacsync_tests::{Api, Endpoint, Fleet, TestHost, state};
use serde_json::{Value, json};

/// A pool `desktops` with a reference endpoint `a` whose state is the target (set as latest by
/// the admin), and an endpoint `b` that has reported nothing.
struct Desktops {
    api: Api,
    pool: String,
    a: Endpoint,
    b: Endpoint,
}

async fn fleet(api: &Api) -> Desktops {
    let fleet = Fleet::builder(api)
        .pool("desktops")
        .reference(
            "a",
            state(&[("linux", "6.1-1"), ("vim", "9.0-1"), ("git", "2.40-1")]),
        )
        .unreported("b")
        .latest_set_by_admin()
        .build()
        .await;
    assert_eq!(fleet.set_latest["status"], "completed");
    let Fleet {
        pool,
        reference,
        mut members,
        ..
    } = fleet;
    Desktops {
        api: api.clone(),
        pool,
        a: reference,
        b: members.remove(0),
    }
}

impl Desktops {
    async fn op(&self, verb: &str, endpoint: &Endpoint) -> Value {
        let r = self
            .api
            .as_(&endpoint.token)
            .post(&format!("/api/sync/{}/{verb}", endpoint.id))
            .await;
        r.expect(202, None).clone()
    }

    async fn agent(
        &self,
        endpoint: &Endpoint,
        op: &str,
        action: &str,
        body: Option<Value>,
    ) -> pacsync_tests::Reply {
        let request = self
            .api
            .as_(&endpoint.token)
            .post(&format!("/api/sync/operations/{op}/{action}"));
        match body {
            Some(body) => request.json(body).await,
            None => request.await,
        }
    }

    async fn endpoint(&self, endpoint: &Endpoint) -> Value {
        self.api
            .get(&format!("/api/endpoints/{}", endpoint.id))
            .await
            .expect(200, None)
            .clone()
    }
}

#[tokio::test]
async fn sync_to_latest_runs_pending_to_completed_and_classifies() {
    let t = TestHost::start().await;
    let f = fleet(&t.api).await;
    // b is behind (older linux, missing git) and ahead (extra htop): diverged.
    f.api
        .report(
            &f.b.id,
            &f.b.token,
            &[("linux", "6.0-1"), ("vim", "9.0-1"), ("htop", "3.2-1")],
        )
        .await
        .expect(200, None);
    assert_eq!(f.endpoint(&f.b).await["sync_status"], "diverged");

    let r = f
        .api
        .as_(&f.b.token)
        .post(&format!("/api/sync/{}/sync-to-latest", f.b.id))
        .await;
    let op = r.expect(202, None).clone();
    let id = op["operation_id"].as_str().unwrap().to_owned();
    assert_eq!(
        r.headers["location"],
        format!("/api/sync/operations/{id}").as_str()
    );
    assert_eq!(op["status"], "pending");
    assert_eq!(op["operation_type"], "sync");
    let kinds: Vec<(String, String)> = op["plan"]["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["kind"].as_str().unwrap().into(),
                a["name"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("install".into(), "git".into()),
            ("upgrade".into(), "linux".into()),
            ("remove".into(), "htop".into())
        ]
    );
    assert_eq!(op["policy"]["plugin"], "mirror");

    let started = f.agent(&f.b, &id, "start", None).await;
    let started = started.expect(200, None);
    assert_eq!(started["status"], "in_progress");
    assert!(started["lease_expires_at"].is_string());
    assert!(started["started_at"].is_string());
    // Planned again at start, nothing had changed: the plan on record stands.
    assert!(
        started["details"]
            .get("replanned_from_generation")
            .is_none(),
        "{started}"
    );
    assert_eq!(started["plan"], op["plan"]);

    let p = f
        .agent(&f.b, &id, "progress", Some(json!({"percentage": 40, "stage": "installing", "current_action": "upgrading linux"})))
        .await;
    let p = p.expect(200, None);
    assert_eq!(
        p["progress"],
        json!({"percentage": 40, "stage": "installing", "current_action": "upgrading linux"})
    );

    let final_state = state(&[("linux", "6.1-1"), ("vim", "9.0-1"), ("git", "2.40-1")]);
    let done = f
        .agent(&f.b, &id, "complete", Some(json!({ "state": final_state })))
        .await;
    let done = done.expect(200, None);
    assert_eq!(done["status"], "completed");
    assert!(done["completed_at"].is_string());
    assert_eq!(done["progress"]["percentage"], 100);
    assert_eq!(f.endpoint(&f.b).await["sync_status"], "in_sync");

    let status = f.api.get(&format!("/api/pools/{}/status", f.pool)).await;
    let status = status.expect(200, None);
    assert_eq!(
        (status["total"].as_i64(), status["in_sync"].as_i64()),
        (Some(2), Some(2))
    );

    // The analyst's view of the same history, straight from SQL.
    let db = t.cluster.pool().await;
    let (kind, st, actions): (String, String, i32) = sqlx::query_as(
        "SELECT operation_type, status, planned_actions FROM reporting.operations WHERE operation_id = $1::uuid",
    )
    .bind(&id)
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!(
        (kind.as_str(), st.as_str(), actions),
        ("sync", "completed", 3)
    );
    let events: Vec<String> = sqlx::query_scalar(
        "SELECT event_type FROM operation_events WHERE operation_id = $1::uuid ORDER BY event_id",
    )
    .bind(&id)
    .fetch_all(&db)
    .await
    .unwrap();
    assert_eq!(
        events,
        [
            "operation_created",
            "operation_started",
            "operation_progress",
            "operation_completed"
        ]
    );
    t.stop().await;
}

#[tokio::test]
async fn every_illegal_transition_is_refused_with_its_own_code() {
    let t = TestHost::start().await;
    let f = fleet(&t.api).await;
    f.api
        .report(&f.b.id, &f.b.token, &[("linux", "6.0-1")])
        .await
        .expect(200, None);
    let id = f.op("sync-to-latest", &f.b).await["operation_id"]
        .as_str()
        .unwrap()
        .to_owned();

    // pending: progress / complete / cancel-ack are illegal.
    f.agent(
        &f.b,
        &id,
        "progress",
        Some(json!({"percentage": 1, "stage": "x"})),
    )
    .await
    .expect(409, Some("OPERATION_NOT_IN_PROGRESS"));
    f.agent(&f.b, &id, "complete", Some(json!({"state": state(&[])})))
        .await
        .expect(409, Some("OPERATION_NOT_IN_PROGRESS"));
    f.agent(&f.b, &id, "cancel-ack", None)
        .await
        .expect(409, Some("OPERATION_NOT_IN_PROGRESS"));
    // A second operation while one is active.
    f.api
        .as_(&f.b.token)
        .post(&format!("/api/sync/{}/revert", f.b.id))
        .await
        .expect(409, Some("OPERATION_CONFLICT"));

    f.agent(&f.b, &id, "start", None).await.expect(200, None);
    // in_progress: start again, and acknowledge a cancel nobody asked for.
    f.agent(&f.b, &id, "start", None)
        .await
        .expect(409, Some("OPERATION_NOT_PENDING"));
    f.agent(&f.b, &id, "cancel-ack", None)
        .await
        .expect(409, Some("CANCEL_NOT_REQUESTED"));

    f.agent(&f.b, &id, "fail", Some(json!({"code": "PACMAN_FAILED", "message": "error: failed to commit transaction (conflicting files)"})))
        .await
        .expect(200, None);
    // failed is terminal.
    f.agent(
        &f.b,
        &id,
        "fail",
        Some(json!({"code": "AGAIN", "message": "x"})),
    )
    .await
    .expect(409, Some("OPERATION_ALREADY_FINISHED"));
    f.api
        .post(&format!("/api/sync/operations/{id}/cancel"))
        .await
        .expect(409, Some("OPERATION_ALREADY_FINISHED"));
    f.agent(&f.b, &id, "start", None)
        .await
        .expect(409, Some("OPERATION_NOT_PENDING"));
    f.agent(&f.b, &id, "complete", Some(json!({"state": state(&[])})))
        .await
        .expect(409, Some("OPERATION_NOT_IN_PROGRESS"));
    f.agent(
        &f.b,
        &id,
        "progress",
        Some(json!({"percentage": 1, "stage": "x"})),
    )
    .await
    .expect(409, Some("OPERATION_NOT_IN_PROGRESS"));

    let op = f.api.get(&format!("/api/sync/operations/{id}")).await;
    let op = op.expect(200, None);
    assert_eq!(op["status"], "failed");
    assert_eq!(op["error_code"], "PACMAN_FAILED");
    assert!(
        op["error_message"]
            .as_str()
            .unwrap()
            .contains("conflicting files")
    );
    t.stop().await;
}

#[tokio::test]
async fn a_pending_operation_is_cancelled_at_once_and_a_running_one_once_its_agent_acknowledges() {
    let t = TestHost::start().await;
    let f = fleet(&t.api).await;
    f.api
        .report(&f.b.id, &f.b.token, &[("linux", "6.0-1")])
        .await
        .expect(200, None);

    let id = f.op("sync-to-latest", &f.b).await["operation_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = f
        .api
        .as_(&f.b.token)
        .post(&format!("/api/sync/operations/{id}/cancel"))
        .await;
    assert_eq!(r.expect(200, None)["status"], "cancelled");

    let id = f.op("sync-to-latest", &f.b).await["operation_id"]
        .as_str()
        .unwrap()
        .to_owned();
    f.agent(&f.b, &id, "start", None).await.expect(200, None);
    let r = f
        .api
        .post(&format!("/api/sync/operations/{id}/cancel"))
        .await;
    let body = r.expect(200, None);
    assert_eq!(
        (body["status"].as_str(), body["cancel_requested"].as_bool()),
        (Some("in_progress"), Some(true))
    );
    // The agent learns about it from its next heartbeat, stops, and reports where it got to.
    let hb = f
        .agent(
            &f.b,
            &id,
            "progress",
            Some(json!({"percentage": 50, "stage": "installing"})),
        )
        .await;
    assert_eq!(hb.expect(200, None)["cancel_requested"], true);
    let partial = state(&[("linux", "6.1-1")]);
    let r = f
        .agent(&f.b, &id, "cancel-ack", Some(json!({ "state": partial })))
        .await;
    let body = r.expect(200, None);
    assert_eq!(body["status"], "cancelled");
    assert!(body["result_state_id"].is_string());
    assert_eq!(f.endpoint(&f.b).await["sync_status"], "behind");
    t.stop().await;
}

#[tokio::test]
async fn in_sync_endpoint_completes_at_once_with_an_empty_plan() {
    let t = TestHost::start().await;
    let f = fleet(&t.api).await;
    let op = f.op("sync-to-latest", &f.a).await;
    assert_eq!(op["status"], "completed");
    assert_eq!(op["plan"]["actions"], json!([]));
    assert_eq!(op["plan"]["summary"], "nothing to do");
    t.stop().await;
}

#[tokio::test]
async fn preconditions_have_codes() {
    let t = TestHost::start().await;
    let api = &t.api;
    let pool = api.create_pool("empty").await;
    let (e, tok) = api.register(&pool, "lonely").await;
    api.set_as_latest(&e, &tok)
        .await
        .expect(409, Some("NO_REPORTED_STATE"));
    api.report(&e, &tok, &[("a", "1-1")])
        .await
        .expect(200, None);
    api.as_(&tok)
        .post(&format!("/api/sync/{e}/sync-to-latest"))
        .await
        .expect(409, Some("NO_POOL_TARGET"));
    api.as_(&tok)
        .post(&format!("/api/sync/{e}/revert"))
        .await
        .expect(409, Some("NO_PREVIOUS_STATE"));
    let missing = uuid::Uuid::new_v4();
    api.post(&format!("/api/sync/{missing}/sync-to-latest"))
        .await
        .expect(404, Some("ENDPOINT_NOT_FOUND"));
    api.post("/api/sync/not-a-uuid/sync-to-latest")
        .await
        .expect(400, Some("INVALID_ID"));
    api.get(&format!("/api/sync/operations/{missing}"))
        .await
        .expect(404, Some("OPERATION_NOT_FOUND"));
    t.stop().await;
}

#[tokio::test]
async fn pending_sync_is_replanned_when_the_target_moves() {
    let t = TestHost::start().await;
    let f = fleet(&t.api).await;
    f.api
        .report(
            &f.b.id,
            &f.b.token,
            &[("linux", "6.0-1"), ("vim", "9.0-1"), ("git", "2.40-1")],
        )
        .await
        .expect(200, None);
    let op = f.op("sync-to-latest", &f.b).await;
    assert_eq!(op["target_generation"], 1);
    // The reference machine moves on before b's agent picks the operation up.
    f.api
        .report(
            &f.a.id,
            &f.a.token,
            &[("linux", "6.2-1"), ("vim", "9.0-1"), ("git", "2.40-1")],
        )
        .await
        .expect(200, None);
    f.op("set-as-latest", &f.a).await;
    let id = op["operation_id"].as_str().unwrap();
    let started = f.agent(&f.b, id, "start", None).await;
    let started = started.expect(200, None);
    assert_eq!(started["target_generation"], 2);
    assert_eq!(started["plan"]["actions"][0]["to_version"], "6.2-1");
    assert_eq!(started["details"]["replanned_from_generation"], 1);
    t.stop().await;
}

#[tokio::test]
async fn revert_is_an_undo_stack_and_can_target_a_state() {
    let t = TestHost::start().await;
    let api = &t.api;
    let pool = api.create_pool("p").await;
    let (e, tok) = api.register(&pool, "m").await;
    let s1 = api
        .report(&e, &tok, &[("a", "1-1")])
        .await
        .expect(200, None)["state_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let s2 = api
        .report(&e, &tok, &[("a", "2-1")])
        .await
        .expect(200, None)["state_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let s3 = api
        .report(&e, &tok, &[("a", "3-1")])
        .await
        .expect(200, None)["state_id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Repeating a report does not add history.
    api.report(&e, &tok, &[("a", "3-1")])
        .await
        .expect(200, None);
    let history = api.get(&format!("/api/endpoints/{e}/states")).await;
    assert_eq!(history.expect(200, None).as_array().unwrap().len(), 3);

    let run = |target: String| {
        let api = api.clone();
        let (e, tok) = (e.clone(), tok.clone());
        async move {
            let op = api.as_(&tok).post(&format!("/api/sync/{e}/revert")).await;
            let op = op.expect(202, None).clone();
            assert_eq!(op["target_state_id"], target.as_str());
            let id = op["operation_id"].as_str().unwrap().to_owned();
            api.as_(&tok)
                .post(&format!("/api/sync/operations/{id}/start"))
                .await
                .expect(200, None);
            op
        }
    };
    let complete = |id: String, pkgs: Vec<(&'static str, &'static str)>| {
        let api = api.clone();
        let tok = tok.clone();
        async move {
            api.as_(&tok)
                .post(&format!("/api/sync/operations/{id}/complete"))
                .json(json!({"state": state(&pkgs)}))
                .await
                .expect(200, None);
        }
    };
    let op = run(s2.clone()).await;
    assert_eq!(op["plan"]["actions"][0]["kind"], "downgrade");
    complete(
        op["operation_id"].as_str().unwrap().into(),
        vec![("a", "2-1")],
    )
    .await;
    let op = run(s1.clone()).await;
    complete(
        op["operation_id"].as_str().unwrap().into(),
        vec![("a", "1-1")],
    )
    .await;
    api.as_(&tok)
        .post(&format!("/api/sync/{e}/revert"))
        .await
        .expect(409, Some("NO_PREVIOUS_STATE"));

    // An explicit state from the history.
    let r = api
        .as_(&tok)
        .post(&format!("/api/sync/{e}/revert"))
        .json(json!({"state_id": s3}))
        .await;
    assert_eq!(r.expect(202, None)["target_state_id"], s3.as_str());
    let id = r.body["operation_id"].as_str().unwrap().to_owned();
    api.as_(&tok)
        .post(&format!("/api/sync/operations/{id}/cancel"))
        .await
        .expect(200, None);
    let unknown = "0".repeat(64);
    api.as_(&tok)
        .post(&format!("/api/sync/{e}/revert"))
        .json(json!({"state_id": unknown}))
        .await
        .expect(404, Some("STATE_NOT_FOUND"));
    api.as_(&tok)
        .post(&format!("/api/sync/{e}/revert"))
        .json(json!({"state": 1}))
        .await
        .expect(422, Some("VALIDATION_FAILED"));
    t.stop().await;
}

#[tokio::test]
async fn idempotency_key_replays_the_first_response() {
    let t = TestHost::start().await;
    let f = fleet(&t.api).await;
    f.api
        .report(&f.b.id, &f.b.token, &[("linux", "6.0-1")])
        .await
        .expect(200, None);
    let path = format!("/api/sync/{}/sync-to-latest", f.b.id);
    let first = f
        .api
        .as_(&f.b.token)
        .post(&path)
        .header("Idempotency-Key", "k-1")
        .await;
    let again = f
        .api
        .as_(&f.b.token)
        .post(&path)
        .header("Idempotency-Key", "k-1")
        .await;
    first.expect(202, None);
    again.expect(202, None);
    assert_eq!(first.body["operation_id"], again.body["operation_id"]);
    assert_eq!(again.headers["idempotent-replayed"], "true");
    assert_eq!(first.headers["location"], again.headers["location"]);
    // The same key for a different request is a client error, not a replay.
    let other = format!("/api/sync/{}/revert", f.b.id);
    f.api
        .as_(&f.b.token)
        .post(&other)
        .header("Idempotency-Key", "k-1")
        .await
        .expect(422, Some("IDEMPOTENCY_KEY_MISMATCH"));
    f.api
        .as_(&f.b.token)
        .post(&path)
        .header("Idempotency-Key", "")
        .await
        .expect(400, Some("INVALID_IDEMPOTENCY_KEY"));
    t.stop().await;
}

#[tokio::test]
async fn expired_lease_fails_the_operation() {
    let t = TestHost::start().await;
    let f = fleet(&t.api).await;
    f.api
        .report(&f.b.id, &f.b.token, &[("linux", "6.0-1")])
        .await
        .expect(200, None);
    let id = f.op("sync-to-latest", &f.b).await["operation_id"]
        .as_str()
        .unwrap()
        .to_owned();
    f.agent(&f.b, &id, "start", None).await.expect(200, None);
    // Lease is 2 s in tests and the reaper runs every 200 ms; poll a bounded number of times.
    let mut status = Value::Null;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        status = f.api.get(&format!("/api/sync/operations/{id}")).await.body;
        if status["status"] == "failed" {
            break;
        }
    }
    assert_eq!(status["status"], "failed", "{status}");
    assert_eq!(status["error_code"], "LEASE_EXPIRED");
    f.agent(&f.b, &id, "complete", Some(json!({"state": state(&[])})))
        .await
        .expect(409, Some("OPERATION_NOT_IN_PROGRESS"));
    t.stop().await;
}

#[tokio::test]
async fn agent_routes_belong_to_the_endpoint_alone() {
    let t = TestHost::start().await;
    let f = fleet(&t.api).await;
    f.api
        .report(&f.b.id, &f.b.token, &[("linux", "6.0-1")])
        .await
        .expect(200, None);
    let id = f.op("sync-to-latest", &f.b).await["operation_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let bodies = [
        ("start", json!({})),
        ("progress", json!({"percentage": 1, "stage": "x"})),
        ("complete", json!({"state": state(&[])})),
        ("fail", json!({"code": "X", "message": "x"})),
        ("cancel-ack", json!({})),
    ];
    for (action, body) in bodies {
        let path = format!("/api/sync/operations/{id}/{action}");
        let admin = f.api.post(&path).json(body.clone()).await;
        admin.expect(403, Some("ENDPOINT_REQUIRED"));
        let other = f.api.as_(&f.a.token).post(&path).json(body.clone()).await;
        other.expect(403, Some("NOT_YOUR_ENDPOINT"));
        f.api
            .anonymous()
            .post(&path)
            .json(body)
            .await
            .expect(401, Some("MISSING_TOKEN"));
    }
    f.api
        .as_(&f.a.token)
        .get(&format!("/api/sync/operations/{id}"))
        .await
        .expect(403, Some("NOT_YOUR_ENDPOINT"));
    f.api
        .as_(&f.a.token)
        .post(&format!("/api/sync/operations/{id}/cancel"))
        .await
        .expect(403, Some("NOT_YOUR_ENDPOINT"));
    f.api
        .as_(&f.a.token)
        .post(&format!("/api/sync/{}/sync-to-latest", f.b.id))
        .await
        .expect(403, Some("NOT_YOUR_ENDPOINT"));
    // Agent body validation.
    f.agent(&f.b, &id, "start", None).await.expect(200, None);
    f.agent(
        &f.b,
        &id,
        "progress",
        Some(json!({"percentage": 101, "stage": "x"})),
    )
    .await
    .expect(422, Some("VALIDATION_FAILED"));
    f.agent(&f.b, &id, "progress", Some(json!({"percentage": 5})))
        .await
        .expect(422, Some("VALIDATION_FAILED"));
    f.agent(
        &f.b,
        &id,
        "fail",
        Some(json!({"code": "lower case", "message": "x"})),
    )
    .await
    .expect(422, Some("VALIDATION_FAILED"));
    let bad_state = json!({"state": {"architecture": "x86_64", "pacman_version": "6", "packages": [{"name": "a", "version": "", "reason": "explicit"}]}});
    f.agent(&f.b, &id, "complete", Some(bad_state))
        .await
        .expect(422, Some("INVALID_PACKAGE_STATE"));
    t.stop().await;
}

#[tokio::test]
async fn operation_lists_page_and_filter() {
    let t = TestHost::start().await;
    let f = fleet(&t.api).await;
    f.api
        .report(&f.b.id, &f.b.token, &[("linux", "6.0-1")])
        .await
        .expect(200, None);
    let mut ids = Vec::new();
    for _ in 0..5 {
        let id = f.op("sync-to-latest", &f.b).await["operation_id"]
            .as_str()
            .unwrap()
            .to_owned();
        f.api
            .as_(&f.b.token)
            .post(&format!("/api/sync/operations/{id}/cancel"))
            .await
            .expect(200, None);
        ids.push(id);
    }
    ids.reverse();
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..10 {
        let path = match &cursor {
            Some(c) => format!("/api/sync/{}/operations?limit=2&cursor={c}", f.b.id),
            None => format!("/api/sync/{}/operations?limit=2", f.b.id),
        };
        let page = f.api.as_(&f.b.token).get(&path).await;
        let page = page.expect(200, None).clone();
        seen.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|o| o["operation_id"].as_str().unwrap().to_owned()),
        );
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, ids);
    let pool_path = format!("/api/sync/pools/{}/operations", f.pool);
    let cancelled = f
        .api
        .get(&format!("{pool_path}?status=cancelled&type=sync"))
        .await;
    assert_eq!(
        cancelled.expect(200, None)["items"]
            .as_array()
            .unwrap()
            .len(),
        5
    );
    let set_latest = f.api.get(&format!("{pool_path}?type=set_latest")).await;
    assert_eq!(
        set_latest.expect(200, None)["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    f.api
        .get(&format!("{pool_path}?status=bogus"))
        .await
        .expect(400, Some("INVALID_QUERY"));
    f.api
        .get(&format!("{pool_path}?limit=0"))
        .await
        .expect(400, Some("INVALID_QUERY"));
    f.api
        .get(&format!("{pool_path}?limit=abc"))
        .await
        .expect(400, Some("INVALID_QUERY"));
    f.api
        .get(&format!("{pool_path}?cursor=zzz"))
        .await
        .expect(400, Some("INVALID_CURSOR"));
    f.api
        .as_(&f.b.token)
        .get(&pool_path)
        .await
        .expect(403, Some("ADMIN_REQUIRED"));
    f.api
        .get(&format!(
            "/api/sync/pools/{}/operations",
            uuid::Uuid::new_v4()
        ))
        .await
        .expect(404, Some("POOL_NOT_FOUND"));
    t.stop().await;
}
