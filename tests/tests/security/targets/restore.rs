//! An admin undoes a bad set-as-latest by making an earlier target the target again, choosing it
//! from the pool's target history.

use std::time::Duration;

use pacsync_tests::{Fleet, Stream, TestHost, state};
use serde_json::{Value, json};
use uuid::Uuid;

use super::generation;

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_restores_an_earlier_target_as_a_new_generation_and_endpoints_follow_it() {
    let t = TestHost::start().await;
    let api = &t.api;
    let good = state(&[("linux", "6.1-1"), ("vim", "9.0-1")]);
    let fleet = Fleet::builder(api)
        .pool("desktops")
        .reference("ref", good.clone())
        .member("member", good.clone())
        .build()
        .await;
    let pool = fleet.pool.clone();
    let (reference, member) = (&fleet.reference, &fleet.members[0]);
    let good_id = api
        .get(&format!("/api/pools/{pool}/target"))
        .await
        .expect(200, None)["state_id"]
        .as_str()
        .unwrap()
        .to_owned();
    // A bad set-as-latest: the reference's broken state becomes the target.
    api.report(&reference.id, &reference.token, &[("linux", "6.2-1")])
        .await
        .expect(200, None);
    api.set_as_latest(&reference.id, &reference.token)
        .await
        .expect(202, None);
    assert_eq!(generation(api, &pool).await, 2);
    let member_path = format!("/api/endpoints/{}", member.id);
    assert_eq!(
        api.get(&member_path).await.expect(200, None)["sync_status"],
        "diverged"
    );

    let mut events = Stream::open(
        &api.base,
        &format!("/api/sync/pools/{pool}/events"),
        Some(&api.admin),
    )
    .await
    .unwrap();
    assert_eq!(events.next(WAIT).await.unwrap()["type"], "connected");

    let restored = api
        .put(&format!("/api/pools/{pool}/target"))
        .json(json!({ "state_id": good_id }))
        .await;
    let restored = restored.expect(200, None);
    assert_eq!(
        (
            restored["generation"].as_i64(),
            restored["state_id"].as_str()
        ),
        (Some(3), Some(good_id.as_str()))
    );
    assert_eq!(restored["packages"].as_array().unwrap().len(), 2);
    let target = api.get(&format!("/api/pools/{pool}/target")).await;
    assert_eq!(
        (
            target.expect(200, None)["generation"].as_i64(),
            target.body["state_id"].as_str()
        ),
        (Some(3), Some(good_id.as_str()))
    );
    // Endpoints are classified against the restored target.
    assert_eq!(
        api.get(&member_path).await.expect(200, None)["sync_status"],
        "in_sync"
    );
    assert_eq!(
        api.get(&format!("/api/endpoints/{}", reference.id))
            .await
            .expect(200, None)["sync_status"],
        "diverged"
    );
    let status = api.get(&format!("/api/pools/{pool}/status")).await;
    assert_eq!(
        (
            status.expect(200, None)["target_generation"].as_i64(),
            status.body["in_sync"].as_i64()
        ),
        (Some(3), Some(1))
    );
    // Subscribers hear it as any target change.
    let changed = events.next_of(&["target_changed"], WAIT).await;
    assert_eq!(
        (
            changed["generation"].as_i64(),
            changed["state_id"].as_str(),
            changed["operation_id"].as_str()
        ),
        (Some(3), Some(good_id.as_str()), None)
    );

    // The target history and the audit log record who restored what.
    let db = t.cluster.pool().await;
    let history: Vec<(i64, String, Option<Uuid>)> = sqlx::query_as(
        "SELECT generation, state_id, operation_id FROM pool_targets
         WHERE pool_id = $1::uuid ORDER BY generation",
    )
    .bind(&pool)
    .fetch_all(&db)
    .await
    .unwrap();
    assert_eq!(history.len(), 3);
    assert_eq!((history[2].0, history[2].1.as_str()), (3, good_id.as_str()));
    assert_eq!(history[2].2, None);
    let audit: (String, Value) = sqlx::query_as(
        "SELECT actor, details FROM audit_log
         WHERE subject_id = $1 AND action = 'pool.restore_target'",
    )
    .bind(&pool)
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!(audit.0, "admin:test-admin");
    assert_eq!(
        (audit.1["generation"].as_i64(), audit.1["state_id"].as_str()),
        (Some(3), Some(good_id.as_str()))
    );
    t.stop().await;
}

#[tokio::test]
async fn a_state_the_pool_never_had_as_target_cannot_be_restored() {
    let t = TestHost::start().await;
    let api = &t.api;
    let fleet = Fleet::builder(api)
        .pool("desktops")
        .reference("ref", state(&[("linux", "6.1-1")]))
        .build()
        .await;
    let pool = fleet.pool.clone();
    // A state the host knows (it is another pool's target, and an endpoint of this pool
    // reported it), but never this pool's target.
    let other = Fleet::builder(api)
        .pool("servers")
        .reference("srv", state(&[("linux", "7.0-1")]))
        .build()
        .await;
    let foreign = api
        .get(&format!("/api/pools/{}/target", other.pool))
        .await
        .expect(200, None)["state_id"]
        .as_str()
        .unwrap()
        .to_owned();
    api.report(
        &fleet.reference.id,
        &fleet.reference.token,
        &[("linux", "7.0-1")],
    )
    .await
    .expect(200, None);

    let path = format!("/api/pools/{pool}/target");
    api.put(&path)
        .json(json!({ "state_id": foreign }))
        .await
        .expect(404, Some("STATE_NOT_FOUND"));
    api.put(&path)
        .json(json!({ "state_id": "f".repeat(64) }))
        .await
        .expect(404, Some("STATE_NOT_FOUND"));
    api.put(&path)
        .json(json!({ "state_id": "not-a-state" }))
        .await
        .expect(422, Some("VALIDATION_FAILED"));
    api.put(&format!("/api/pools/{}/target", Uuid::new_v4()))
        .json(json!({ "state_id": foreign }))
        .await
        .expect(404, Some("POOL_NOT_FOUND"));
    assert_eq!(generation(api, &pool).await, 1);
    t.stop().await;
}

#[tokio::test]
async fn an_admin_lists_the_pools_targets_newest_first_to_choose_one_to_restore() {
    let t = TestHost::start().await;
    let api = &t.api;
    let fleet = Fleet::builder(api)
        .pool("desktops")
        .reference("ref", state(&[("linux", "6.1-1"), ("vim", "9.0-1")]))
        .build()
        .await;
    let (pool, reference) = (&fleet.pool, &fleet.reference);
    let target_id = async || {
        api.get(&format!("/api/pools/{pool}/target"))
            .await
            .expect(200, None)["state_id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let good = target_id().await;
    api.report(&reference.id, &reference.token, &[("linux", "6.2-1")])
        .await
        .expect(200, None);
    let bad = api.set_as_latest(&reference.id, &reference.token).await;
    let bad_operation = bad.expect(202, None)["operation_id"].clone();
    let bad = target_id().await;
    api.put(&format!("/api/pools/{pool}/target"))
        .json(json!({ "state_id": good }))
        .await
        .expect(200, None);

    let path = format!("/api/pools/{pool}/targets");
    let listed = api.get(&path).await;
    let listed = listed.expect(200, None).as_array().unwrap().clone();
    let generations: Vec<(i64, &str, i64)> = listed
        .iter()
        .map(|g| {
            (
                g["generation"].as_i64().unwrap(),
                g["state_id"].as_str().unwrap(),
                g["package_count"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        generations,
        [
            (3, good.as_str(), 2),
            (2, bad.as_str(), 1),
            (1, good.as_str(), 2)
        ]
    );
    // Each says how it was set: set-as-latest names its operation and endpoint, a restore
    // neither.
    assert!(listed[0]["operation_id"].is_null() && listed[0]["endpoint_id"].is_null());
    assert_eq!(
        (
            &listed[1]["operation_id"],
            listed[1]["endpoint_id"].as_str()
        ),
        (&bad_operation, Some(reference.id.as_str()))
    );
    assert_eq!(listed[2]["operation_id"], fleet.set_latest["operation_id"]);
    assert!(listed.iter().all(|g| g["set_at"].is_string()), "{listed:?}");

    // Pages continue below the last generation seen.
    let page = api.get(&format!("{path}?limit=1&before=3")).await;
    let page = page.expect(200, None).as_array().unwrap().clone();
    assert_eq!(
        page.iter()
            .map(|g| g["generation"].clone())
            .collect::<Vec<_>>(),
        [json!(2)]
    );
    api.get(&format!("{path}?limit=501"))
        .await
        .expect(400, Some("INVALID_QUERY"));
    api.get(&format!("/api/pools/{}/targets", Uuid::new_v4()))
        .await
        .expect(404, Some("POOL_NOT_FOUND"));

    // Endpoint tokens cannot read it, another pool's or this pool's own.
    let other = Fleet::builder(api)
        .pool("servers")
        .reference("srv", state(&[("linux", "7.0-1")]))
        .build()
        .await;
    for token in [&other.reference.token, &reference.token] {
        api.as_(token)
            .get(&path)
            .await
            .expect(403, Some("ADMIN_REQUIRED"));
    }
    t.stop().await;
}
