//! What endpoints can obtain: availability reports, the pool's repository analysis, and sync
//! plans that skip what the pool cannot obtain everywhere. (The same with real pacman is in
//! `agent_pacman.rs`.)

use pacsync_tests::{Api, Fleet, TestHost, state};
use serde_json::{Value, json};

/// A state report whose packages come from `core`, except names listed in `foreign`.
fn report(packages: &[(&str, &str)], foreign: &[&str], available: Option<Value>) -> Value {
    let mut body = state(packages);
    for p in body["packages"].as_array_mut().unwrap() {
        if foreign.contains(&p["name"].as_str().unwrap()) {
            p.as_object_mut().unwrap().remove("repository");
        }
    }
    if let Some(available) = available {
        body["available"] = available;
    }
    body
}

fn offers(list: &[(&str, &str, &str)], archive: &[&str]) -> Value {
    json!({
        "offered": list.iter().map(|(n, v, s)| json!({"name": n, "version": v, "source": s})).collect::<Vec<_>>(),
        "archive_repositories": archive,
    })
}

/// The `name` of every item of a JSON list.
fn names(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|x| x["name"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pool_syncs_only_what_every_endpoint_can_obtain() {
    let t = TestHost::start().await;
    let api = &t.api;
    let pool = api.create_pool("analysed").await;
    let (a, ta) = api.register(&pool, "ref").await;
    let (b, tb) = api.register(&pool, "b").await;
    let (c, tc) = api.register(&pool, "c").await;
    let (d, td) = api.register(&pool, "silent").await;

    // Before any target there is nothing to analyse, but the endpoints are accounted for.
    let empty = api
        .get(&format!("/api/pools/{pool}/repository-analysis"))
        .await;
    let empty = empty.expect(200, None);
    assert!(empty["target_state_id"].is_null());
    assert_eq!(empty["common"], json!([]));
    assert_eq!(empty["unknown"].as_array().unwrap().len(), 4);

    // The reference machine: linux and vim newer than elsewhere, plus a locally built `yay`.
    let target = [
        ("linux", "6.2-1"),
        ("vim", "9.1-1"),
        ("git", "2.40-1"),
        ("yay", "12-1"),
    ];
    api.put_state(&a, &ta, report(&target, &["yay"], Some(offers(&[], &[]))))
        .await
        .expect(200, None);
    api.set_as_latest(&a, &ta).await.expect(202, None);

    // b: its mirror has linux 6.2 but only vim 9.0; its cache has yay; an archive covers core.
    api.put_state(
        &b,
        &tb,
        report(
            &[("linux", "6.1-1"), ("vim", "9.0-1"), ("git", "2.40-1")],
            &[],
            Some(offers(
                &[
                    ("linux", "6.2-1", "sync_repository"),
                    ("vim", "9.0-1", "sync_repository"),
                    ("git", "2.40-1", "sync_repository"),
                    ("yay", "12-1", "cache"),
                ],
                &["core"],
            )),
        ),
    )
    .await
    .expect(200, None);
    // c: an older mirror (linux 6.1 only), no archive, no yay anywhere.
    api.put_state(
        &c,
        &tc,
        report(
            &[("linux", "6.1-1"), ("vim", "9.1-1"), ("git", "2.40-1")],
            &[],
            Some(offers(
                &[
                    ("linux", "6.1-1", "sync_repository"),
                    ("vim", "9.1-1", "sync_repository"),
                ],
                &[],
            )),
        ),
    )
    .await
    .expect(200, None);
    // `silent` reports its packages but not what it can obtain.
    api.report(&d, &td, &[("linux", "6.1-1")])
        .await
        .expect(200, None);

    let analysis = api
        .get(&format!("/api/pools/{pool}/repository-analysis"))
        .await;
    let analysis = analysis.expect(200, None);
    assert_eq!(names(&analysis["analysed"]), ["b", "c", "ref"]);
    assert_eq!(names(&analysis["unknown"]), ["silent"]);
    // vim 9.1: b's mirror lacks it, but b's archive covers core. git: c has it installed.
    assert_eq!(names(&analysis["common"]), ["git", "vim"]);
    assert_eq!(names(&analysis["excluded"]), ["linux", "yay"]);
    let linux = &analysis["excluded"][0];
    assert_eq!(linux["version"], "6.2-1");
    assert_eq!(names(&linux["endpoints"]), ["c"]);
    assert!(
        linux["reason"].as_str().unwrap().contains("linux 6.2-1")
            && linux["reason"].as_str().unwrap().contains("on c"),
        "{linux}"
    );
    let yay = &analysis["excluded"][1];
    assert!(yay["repository"].is_null());
    assert!(
        yay["reason"]
            .as_str()
            .unwrap()
            .starts_with("foreign package"),
        "{yay}"
    );
    assert_eq!(names(&analysis["gaps"]), ["c"]);
    assert_eq!(
        analysis["gaps"][0]["gaps"],
        json!([
            {"name": "linux", "version": "6.2-1", "foreign": false, "offered": ["6.1-1"]},
            {"name": "yay", "version": "12-1", "foreign": true, "offered": []},
        ])
    );

    // b could obtain linux 6.2 and yay itself, but the pool cannot: its plan skips both, with
    // the pool's reasons, and upgrades only vim (from the archive).
    let op = api
        .as_(&tb)
        .post(&format!("/api/sync/{b}/sync-to-latest"))
        .await;
    let plan = &op.expect(202, None)["plan"];
    let planned: Vec<_> = plan["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            format!(
                "{} {}",
                a["kind"].as_str().unwrap(),
                a["name"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(planned, ["upgrade vim"]);
    assert_eq!(names(&plan["skipped"]), ["yay", "linux"]);
    for skipped in plan["skipped"].as_array().unwrap() {
        assert!(
            skipped["reason"]
                .as_str()
                .unwrap()
                .contains("excluded for the pool"),
            "{skipped}"
        );
    }
    assert_eq!(plan["summary"], "1 to upgrade, 2 skipped");

    // Once c's mirror catches up, linux is no longer excluded.
    api.put_state(
        &c,
        &tc,
        report(
            &[("linux", "6.1-1"), ("vim", "9.1-1"), ("git", "2.40-1")],
            &[],
            Some(offers(&[("linux", "6.2-1", "sync_repository")], &[])),
        ),
    )
    .await
    .expect(200, None);
    let analysis = api
        .get(&format!("/api/pools/{pool}/repository-analysis"))
        .await;
    assert_eq!(names(&analysis.body["excluded"]), ["yay"]);

    // A sync of an endpoint that never reported availability is still kept to what the pool
    // can obtain.
    let op = api
        .as_(&td)
        .post(&format!("/api/sync/{d}/sync-to-latest"))
        .await;
    let plan = &op.expect(202, None)["plan"];
    assert_eq!(names(&plan["skipped"]), ["yay"]);
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn analysis_and_availability_reports_refuse_bad_requests() {
    let t = TestHost::start().await;
    let api = &t.api;
    let pool = api.create_pool("strict").await;
    let (a, ta) = api.register(&pool, "a").await;

    // Analysis is for admins; unknown pools are 404, malformed ids 400.
    let r = api
        .as_(&ta)
        .get(&format!("/api/pools/{pool}/repository-analysis"))
        .await;
    r.expect(403, Some("ADMIN_REQUIRED"));
    let r = api
        .anonymous()
        .get(&format!("/api/pools/{pool}/repository-analysis"))
        .await;
    r.expect(401, Some("MISSING_TOKEN"));
    api.get("/api/pools/00000000-0000-0000-0000-000000000000/repository-analysis")
        .await
        .expect(404, Some("POOL_NOT_FOUND"));
    api.get("/api/pools/not-a-uuid/repository-analysis")
        .await
        .expect(400, Some("INVALID_ID"));

    // Invalid offers are refused whole: the state is not recorded either.
    for bad in [
        offers(&[("vim", "not a version", "cache")], &[]),
        offers(&[("-bad-name", "1-1", "cache")], &[]),
        offers(&[], &["two words"]),
    ] {
        api.put_state(&a, &ta, report(&[("vim", "9.1-1")], &[], Some(bad)))
            .await
            .expect(422, Some("INVALID_AVAILABILITY"));
    }
    let r = api
        .put_state(
            &a,
            &ta,
            report(
                &[("vim", "9.1-1")],
                &[],
                Some(json!({"offered": [{"name": "vim", "version": "1-1", "source": "teleport"}]})),
            ),
        )
        .await;
    r.expect(422, Some("VALIDATION_FAILED"));
    let endpoint = api.get(&format!("/api/endpoints/{a}")).await;
    assert!(
        endpoint.body["current_state_id"].is_null(),
        "nothing half-written"
    );
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reverts_need_what_the_endpoint_can_obtain_and_unused_reports_are_collected() {
    let t = TestHost::start().await;
    let api = &t.api;
    let pool = api.create_pool("history").await;
    let (a, ta) = api.register(&pool, "a").await;
    let no_archive = |versions: &[&str]| {
        let list: Vec<(&str, &str, &str)> = versions
            .iter()
            .map(|v| ("linux", *v, "sync_repository"))
            .collect();
        offers(&list, &[])
    };
    // linux 6.0 then 6.1; the mirror has moved on to 6.1 and there is no archive.
    api.put_state(
        &a,
        &ta,
        report(&[("linux", "6.0-1")], &[], Some(no_archive(&["6.0-1"]))),
    )
    .await
    .expect(200, None);
    api.put_state(
        &a,
        &ta,
        report(&[("linux", "6.1-1")], &[], Some(no_archive(&["6.1-1"]))),
    )
    .await
    .expect(200, None);
    let revert = |token: String| {
        let api = api.clone();
        let a = a.clone();
        async move { api.as_(&token).post(&format!("/api/sync/{a}/revert")).await }
    };
    // A revert that could only be partial is refused, naming what is missing; nothing is created.
    let refused = revert(ta.clone()).await;
    let detail = refused.expect(409, Some("REVERT_UNOBTAINABLE"))["detail"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        detail.contains("linux") && detail.contains("6.0-1"),
        "{detail}"
    );
    let ops = api.get(&format!("/api/sync/{a}/operations")).await;
    assert_eq!(ops.expect(200, None)["items"], json!([]));

    // Once an archive covering core is reported, the same revert is planned from it.
    api.put_state(
        &a,
        &ta,
        report(
            &[("linux", "6.1-1")],
            &[],
            Some(offers(&[("linux", "6.1-1", "sync_repository")], &["core"])),
        ),
    )
    .await
    .expect(200, None);
    let planned = revert(ta.clone()).await;
    let plan = &planned.expect(202, None)["plan"];
    assert_eq!(plan["actions"][0]["kind"], "downgrade");
    assert_eq!(plan["skipped"], json!([]));

    // Three reports were stored; only the current one is referenced. The collector deletes the
    // other two (the reaper does this for reports older than an hour) and keeps the live one.
    let db = t.cluster.pool().await;
    let sets: i64 = sqlx::query_scalar("SELECT count(*) FROM availability_sets")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(sets, 3);
    let collected: i32 = sqlx::query_scalar("SELECT ps_availability_collect(interval '0')")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(collected, 2);
    let kept: Option<String> = sqlx::query_scalar(
        "SELECT e.availability_id FROM endpoints e JOIN availability_sets s USING (availability_id)
         WHERE e.endpoint_id = $1::uuid",
    )
    .bind(&a)
    .fetch_optional(&db)
    .await
    .unwrap();
    assert!(kept.is_some(), "the endpoint's current report survives");
    let offers_left: i64 = sqlx::query_scalar("SELECT count(*) FROM availability_offers")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(offers_left, 1, "offers of collected reports go with them");
    t.stop().await;
}

/// A pool whose reference has linux 6.2, `b` can obtain it and `laggard` cannot: `(pool, b,
/// b's token, laggard)`.
async fn pool_with_a_laggard(api: &Api) -> (String, String, String, String) {
    let behind = |offered| report(&[("linux", "6.1-1")], &[], Some(offers(offered, &[])));
    let fleet = Fleet::builder(api)
        .pool("with-laggard")
        .reference(
            "ref",
            report(&[("linux", "6.2-1")], &[], Some(offers(&[], &[]))),
        )
        .member("b", behind(&[("linux", "6.2-1", "sync_repository")]))
        .member("laggard", behind(&[("linux", "6.1-1", "sync_repository")]))
        .build()
        .await;
    let (b, laggard) = (&fleet.members[0], &fleet.members[1]);
    (
        fleet.pool.clone(),
        b.id.clone(),
        b.token.clone(),
        laggard.id.clone(),
    )
}

/// What a sync of `endpoint` plans and skips (a pending operation is cancelled again; one with
/// nothing to do has completed at once).
async fn sync_plan(api: &Api, endpoint: &str, token: &str) -> (Vec<String>, Vec<String>) {
    let op = api
        .as_(token)
        .post(&format!("/api/sync/{endpoint}/sync-to-latest"))
        .await;
    let op = op.expect(202, None);
    let planned = (names(&op["plan"]["actions"]), names(&op["plan"]["skipped"]));
    if op["status"] == "pending" {
        let id = op["operation_id"].as_str().unwrap();
        api.as_(token)
            .post(&format!("/api/sync/operations/{id}/cancel"))
            .await
            .expect(200, None);
    }
    planned
}

/// Makes an endpoint's availability report look `days` old, as if the machine had been off.
async fn age_report(t: &TestHost, endpoint: &str, days: i32) {
    let db = t.cluster.pool().await;
    sqlx::query(
        "UPDATE endpoints SET availability_reported_at = now() - make_interval(days => $2)
         WHERE endpoint_id = $1::uuid",
    )
    .bind(endpoint)
    .bind(days)
    .execute(&db)
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_older_than_the_max_age_stops_constraining_the_pool() {
    let t = TestHost::start().await;
    let api = &t.api;
    let (pool, b, tb, laggard) = pool_with_a_laggard(api).await;
    let analysis_path = format!("/api/pools/{pool}/repository-analysis");

    let fresh = api.get(&analysis_path).await;
    assert_eq!(names(&fresh.body["excluded"]), ["linux"]);
    assert_eq!(fresh.body["stale"], json!([]));
    assert_eq!(
        sync_plan(api, &b, &tb).await,
        (vec![], vec!["linux".into()])
    );

    // A month without a report (the default limit is 30 days): the laggard is listed as stale
    // and no longer holds b back.
    age_report(&t, &laggard, 31).await;
    let aged = api.get(&analysis_path).await;
    assert_eq!(aged.body["excluded"], json!([]), "{}", aged.body);
    assert_eq!(names(&aged.body["stale"]), ["laggard"]);
    assert!(aged.body["stale"][0]["reported_at"].is_string());
    assert_eq!(names(&aged.body["unknown"]), Vec::<String>::new());
    assert_eq!(names(&aged.body["analysed"]), ["b", "ref"]);
    assert_eq!(
        sync_plan(api, &b, &tb).await,
        (vec!["linux".into()], vec![])
    );

    // 29 days is still recent enough.
    age_report(&t, &laggard, 29).await;
    let recent = api.get(&analysis_path).await;
    assert_eq!(names(&recent.body["excluded"]), ["linux"]);
    t.stop().await;

    // With the limit off (0), even a year-old report constrains the pool.
    let t = TestHost::start_with(|s| s.availability_max_age_days = Some(0)).await;
    let api = &t.api;
    let (pool, b, tb, laggard) = pool_with_a_laggard(api).await;
    age_report(&t, &laggard, 365).await;
    let kept = api
        .get(&format!("/api/pools/{pool}/repository-analysis"))
        .await;
    assert_eq!(names(&kept.body["excluded"]), ["linux"]);
    assert_eq!(
        sync_plan(api, &b, &tb).await,
        (vec![], vec!["linux".into()])
    );
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_sync_is_replanned_when_what_the_pool_can_obtain_changes() {
    let t = TestHost::start().await;
    let api = &t.api;
    let laggard = |linux_offered: &str| {
        report(
            &[("linux", "6.1-1"), ("vim", "9.1-1")],
            &[],
            Some(offers(&[("linux", linux_offered, "sync_repository")], &[])),
        )
    };
    let fleet = Fleet::builder(api)
        .pool("replanned")
        .reference(
            "ref",
            report(
                &[("linux", "6.2-1"), ("vim", "9.1-1")],
                &[],
                Some(offers(&[], &[])),
            ),
        )
        .member(
            "b",
            report(
                &[("linux", "6.1-1"), ("vim", "9.0-1")],
                &[],
                Some(offers(
                    &[
                        ("linux", "6.2-1", "sync_repository"),
                        ("vim", "9.1-1", "sync_repository"),
                    ],
                    &[],
                )),
            ),
        )
        .member("laggard", laggard("6.1-1"))
        .build()
        .await;
    let (b, tb) = (&fleet.members[0].id, &fleet.members[0].token);
    let (c, tc) = (&fleet.members[1].id, &fleet.members[1].token);

    // Planned while the laggard cannot obtain linux 6.2: only vim.
    let op = api
        .as_(tb)
        .post(&format!("/api/sync/{b}/sync-to-latest"))
        .await;
    let op = op.expect(202, None).clone();
    assert_eq!(names(&op["plan"]["actions"]), ["vim"]);
    let id = op["operation_id"].as_str().unwrap();

    // Its mirror catches up before b's agent starts: the started plan upgrades linux too.
    api.put_state(c, tc, laggard("6.2-1"))
        .await
        .expect(200, None);
    let started = api
        .as_(tb)
        .post(&format!("/api/sync/operations/{id}/start"))
        .await;
    let started = started.expect(200, None);
    assert_eq!(names(&started["plan"]["actions"]), ["linux", "vim"]);
    assert_eq!(started["plan"]["skipped"], json!([]));
    t.stop().await;
}
