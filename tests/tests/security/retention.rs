//! Package states nothing needs any more are collected once they are older than the retention,
//! and what something still needs stays: current states, recent history, one step of undo (also
//! while a revert is on its way), what operations refer to, and a pool's past targets.

use std::time::{Duration, Instant};

use pacsync_tests::{Api, Fleet, TestHost, state};
use serde_json::json;
use sqlx::PgPool;

// A bound on waits, not a timing claim: generous for loaded CI machines.
const WAIT: Duration = Duration::from_secs(30);

/// A host that collects every 200 ms, with the default retention of 30 days.
async fn collecting_host() -> TestHost {
    TestHost::start_with(|s| s.state_collect_interval_ms = Some(200)).await
}

/// `state_id` of `packages` as `id` reports them (reporting the current state again changes
/// nothing).
async fn report(api: &Api, (id, token): (&str, &str), packages: &[(&str, &str)]) -> String {
    let reply = api.report(id, token, packages).await;
    reply.expect(200, None)["state_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn stored(db: &PgPool, states: &[&String]) -> usize {
    let count: i64 =
        sqlx::query_scalar("SELECT count(*) FROM package_states WHERE state_id = ANY($1)")
            .bind(states.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .fetch_one(db)
            .await
            .unwrap();
    count as usize
}

/// Forty days pass for every stored state and for every history entry of `endpoint`.
async fn age(db: &PgPool, endpoint: &str) {
    sqlx::query("UPDATE package_states SET created_at = now() - interval '40 days'")
        .execute(db)
        .await
        .unwrap();
    sqlx::query(
        "UPDATE endpoint_states SET recorded_at = now() - interval '40 days'
         WHERE endpoint_id = $1::uuid",
    )
    .bind(endpoint)
    .execute(db)
    .await
    .unwrap();
}

/// Waits until the collector has deleted every one of `states`: a collection round has gone
/// over the history they were in.
async fn until_collected(db: &PgPool, states: &[&String]) {
    let deadline = Instant::now() + WAIT;
    while stored(db, states).await > 0 {
        assert!(
            Instant::now() < deadline,
            "old unneeded states are never collected"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The `state_id`s in the endpoint's history, newest first.
async fn history(api: &Api, endpoint: &str) -> Vec<String> {
    let reply = api.get(&format!("/api/endpoints/{endpoint}/states")).await;
    reply
        .expect(200, None)
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["state_id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn states_nothing_needs_are_collected_after_the_retention_and_needed_ones_stay() {
    let t = collecting_host().await;
    let api = &t.api;
    let fleet = Fleet::builder(api)
        .pool("kept")
        .reference("ref", state(&[("linux", "6.1-1")]))
        .member("m", state(&[("linux", "6.0-1")]))
        .build()
        .await;
    let r = &fleet.reference;
    let target = report(api, (&r.id, &r.token), &[("linux", "6.1-1")]).await;
    let m = (
        fleet.members[0].id.as_str(),
        fleet.members[0].token.as_str(),
    );
    let mut history = Vec::new();
    for version in ["6.0-1", "6.0-2", "6.0-3", "6.0-4", "6.0-5"] {
        history.push(report(api, m, &[("linux", version)]).await);
    }
    let [first, second, recent, undo, current] = &history[..] else {
        unreachable!()
    };
    // Forty days pass for every state, and for m's history but its third entry.
    let db = t.cluster.pool().await;
    sqlx::query("UPDATE package_states SET created_at = now() - interval '40 days'")
        .execute(&db)
        .await
        .unwrap();
    sqlx::query(
        "UPDATE endpoint_states SET recorded_at = now() - interval '40 days'
         WHERE endpoint_id = $1::uuid AND state_id = ANY($2)",
    )
    .bind(m.0)
    .bind(vec![
        first.clone(),
        second.clone(),
        undo.clone(),
        current.clone(),
    ])
    .execute(&db)
    .await
    .unwrap();

    until_collected(&db, &[first, second]).await;
    // Kept: history within the retention, the entry a revert returns to, the current state and
    // the pool's target.
    assert_eq!(stored(&db, &[recent, undo, current, &target]).await, 4);
    // A collected state reported again is simply stored again.
    assert_eq!(report(api, m, &[("linux", "6.0-1")]).await, *first);
    assert_eq!(stored(&db, &[first]).await, 1);
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collection_while_a_revert_is_pending_leaves_the_next_undo_step_in_place() {
    let t = collecting_host().await;
    let api = &t.api;
    let pool = api.create_pool("undo").await;
    let (e, tok) = api.register(&pool, "m").await;
    let mut reported = Vec::new();
    for version in ["1-1", "2-1", "3-1", "4-1"] {
        reported.push(report(api, (&e, &tok), &[("a", version)]).await);
    }
    let [oldest, two_back, one_back, _current] = &reported[..] else {
        unreachable!()
    };
    // An undo is requested but not run yet: once it has run, the next undo goes to two_back.
    let revert = api.as_(&tok).post(&format!("/api/sync/{e}/revert")).await;
    let revert = revert.expect(202, None).clone();
    assert_eq!(revert["target_state_id"], one_back.as_str());
    let revert = revert["operation_id"].as_str().unwrap().to_owned();

    let db = t.cluster.pool().await;
    age(&db, &e).await;
    until_collected(&db, &[oldest]).await;
    assert_eq!(stored(&db, &[two_back, one_back]).await, 2);

    api.as_(&tok)
        .post(&format!("/api/sync/operations/{revert}/start"))
        .await
        .expect(200, None);
    api.as_(&tok)
        .post(&format!("/api/sync/operations/{revert}/complete"))
        .json(json!({ "state": state(&[("a", "3-1")]) }))
        .await
        .expect(200, None);
    let next = api.as_(&tok).post(&format!("/api/sync/{e}/revert")).await;
    assert_eq!(
        next.expect(202, None)["target_state_id"],
        two_back.as_str(),
        "the undo after the undo goes one step further back"
    );
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_only_an_operation_refers_to_stays_when_its_history_entry_goes() {
    let t = collecting_host().await;
    let api = &t.api;
    let pool = api.create_pool("results").await;
    let (e, tok) = api.register(&pool, "m").await;
    let mut reported = Vec::new();
    for version in ["0-1", "1-1", "2-1"] {
        reported.push(report(api, (&e, &tok), &[("a", version)]).await);
    }
    let [oldest, revert_target, _] = &reported[..] else {
        unreachable!()
    };
    // An undo that ends somewhere else than planned (say, pacman stopped half-way), then two
    // more reports: the result's history entry is neither current nor the undo step.
    let revert = api.as_(&tok).post(&format!("/api/sync/{e}/revert")).await;
    let revert = revert.expect(202, None)["operation_id"]
        .as_str()
        .unwrap()
        .to_owned();
    api.as_(&tok)
        .post(&format!("/api/sync/operations/{revert}/start"))
        .await
        .expect(200, None);
    let result = api
        .as_(&tok)
        .post(&format!("/api/sync/operations/{revert}/complete"))
        .json(json!({ "state": state(&[("a", "1-9")]) }))
        .await;
    let result = result.expect(200, None)["result_state_id"]
        .as_str()
        .unwrap()
        .to_owned();
    report(api, (&e, &tok), &[("a", "5-1")]).await;
    report(api, (&e, &tok), &[("a", "6-1")]).await;

    let db = t.cluster.pool().await;
    age(&db, &e).await;
    until_collected(&db, &[oldest]).await;
    assert!(
        !history(api, &e).await.contains(&result),
        "the result's own history entry is collected"
    );
    // The operation still names its target and its result, and both are still stored.
    let operation = api.get(&format!("/api/sync/operations/{revert}")).await;
    let operation = operation.expect(200, None);
    assert_eq!(
        (
            operation["target_state_id"].as_str(),
            operation["result_state_id"].as_str()
        ),
        (Some(revert_target.as_str()), Some(result.as_str()))
    );
    assert_eq!(stored(&db, &[revert_target, &result]).await, 2);
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_past_target_stays_restorable_after_its_endpoint_moved_on() {
    let t = collecting_host().await;
    let api = &t.api;
    let fleet = Fleet::builder(api)
        .pool("targets")
        .reference("ref", state(&[("linux", "6.1-1")]))
        .build()
        .await;
    let (pool, r) = (&fleet.pool, &fleet.reference);
    let first = report(api, (&r.id, &r.token), &[("linux", "6.1-1")]).await;
    report(api, (&r.id, &r.token), &[("linux", "6.2-1")]).await;
    api.set_as_latest(&r.id, &r.token).await.expect(202, None);
    let passing = report(api, (&r.id, &r.token), &[("linux", "6.3-1")]).await;
    report(api, (&r.id, &r.token), &[("linux", "6.4-1")]).await;
    report(api, (&r.id, &r.token), &[("linux", "6.5-1")]).await;
    // The set-as-latest operations refer to the states they set as well (as target, result and
    // through history entries); forget that, so that only the pool's target history keeps the
    // first target.
    let db = t.cluster.pool().await;
    sqlx::query(
        "UPDATE operations
         SET target_state_id = NULL, result_state_id = NULL,
             planned_history_id = NULL, start_history_id = NULL
         WHERE pool_id = $1::uuid",
    )
    .bind(pool)
    .execute(&db)
    .await
    .unwrap();
    age(&db, &r.id).await;
    until_collected(&db, &[&passing]).await;
    assert!(
        !history(api, &r.id).await.contains(&first),
        "the first target's history entry is collected"
    );

    let restored = api
        .put(&format!("/api/pools/{pool}/target"))
        .json(json!({ "state_id": first }))
        .await;
    let restored = restored.expect(200, None);
    assert_eq!(
        (
            restored["generation"].as_i64(),
            restored["packages"][0]["version"].as_str()
        ),
        (Some(3), Some("6.1-1"))
    );
    t.stop().await;
}

/// A state nothing refers to, stored straight through `ps_store_state` and aged past the
/// retention: what a report of an old image's state meets.
async fn orphan_state(db: &PgPool, id: &str) {
    sqlx::query("SELECT ps_store_state($1, $2)")
        .bind(id)
        .bind(
            json!([{"name": "linux", "version": "6.0-1", "repository": null,
                      "architecture": null, "reason": "explicit"}]),
        )
        .execute(db)
        .await
        .unwrap();
    sqlx::query(
        "UPDATE package_states SET created_at = now() - interval '40 days' WHERE state_id = $1",
    )
    .bind(id)
    .execute(db)
    .await
    .unwrap();
}

async fn collect(db: &mut sqlx::PgConnection) -> i32 {
    sqlx::query_scalar("SELECT ps_states_collect(interval '30 days', 100)")
        .fetch_one(db)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_storing_a_state_the_collector_wants_either_keeps_it_or_stores_it_again() {
    // The default interval (an hour): only this test's own calls collect.
    let t = TestHost::start().await;
    let db = t.cluster.pool().await;

    // A report holds the state (its transaction is open): the collector skips it.
    let held = "a".repeat(64);
    orphan_state(&db, &held).await;
    let mut report = db.begin().await.unwrap();
    sqlx::query("SELECT ps_store_state($1, '[]')")
        .bind(&held)
        .execute(&mut *report)
        .await
        .unwrap();
    let mut collector = db.acquire().await.unwrap();
    assert_eq!(collect(&mut collector).await, 0, "a held state is skipped");
    report.commit().await.unwrap();
    assert_eq!(stored(&db, &[&held]).await, 1);
    // Once nothing holds it, it goes.
    assert_eq!(collect(&mut collector).await, 1);
    assert_eq!(stored(&db, &[&held]).await, 0);

    // The collector is deleting the state (its transaction is open): a report of it waits,
    // then stores it again, packages and all.
    let deleted = "b".repeat(64);
    orphan_state(&db, &deleted).await;
    let mut collecting = db.begin().await.unwrap();
    let went: i32 = sqlx::query_scalar("SELECT ps_states_collect(interval '30 days', 100)")
        .fetch_one(&mut *collecting)
        .await
        .unwrap();
    assert_eq!(went, 1);
    let pool = db.clone();
    let id = deleted.clone();
    let reporting = tokio::spawn(async move {
        sqlx::query("SELECT ps_store_state($1, $2)")
            .bind(&id)
            .bind(
                json!([{"name": "linux", "version": "6.0-1", "repository": null,
                          "architecture": null, "reason": "explicit"}]),
            )
            .execute(&pool)
            .await
            .unwrap();
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !reporting.is_finished(),
        "the report waits for the collector"
    );
    collecting.commit().await.unwrap();
    tokio::time::timeout(WAIT, reporting)
        .await
        .expect("the report goes on once the collector commits")
        .unwrap();
    let packages: i64 =
        sqlx::query_scalar("SELECT count(*) FROM state_packages WHERE state_id = $1")
            .bind(&deleted)
            .fetch_one(&db)
            .await
            .unwrap();
    assert_eq!(
        (stored(&db, &[&deleted]).await, packages),
        (1, 1),
        "stored again, with its packages"
    );
    t.stop().await;
}
