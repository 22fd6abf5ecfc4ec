//! One endpoint cannot hold its pool back unnoticed: an availability report claiming "I can
//! obtain nothing" excludes packages for everyone, so the repository analysis names who excludes
//! what, and an admin can stop that endpoint's gaps from constraining the pool while its own
//! plans stay limited to what it reported.

use pacsync_tests::{Api, Fleet, TestHost, state};
use serde_json::{Value, json};

/// The `name` of every item of a JSON list.
fn names(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|x| x["name"].as_str().unwrap().to_owned())
        .collect()
}

/// `(name, constrains_availability)` of every endpoint in a JSON list.
fn flagged(list: &Value) -> Vec<(String, bool)> {
    list.as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap().to_owned(),
                e["constrains_availability"].as_bool().unwrap(),
            )
        })
        .collect()
}

/// `(name, excluded_count, constrains_availability)` of the pool-level ranking.
fn ranking(analysis: &Value) -> Vec<(String, u64, bool)> {
    analysis["excluders"]
        .as_array()
        .unwrap_or_else(|| panic!("no excluders: {analysis}"))
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap().to_owned(),
                e["excluded_count"].as_u64().unwrap(),
                e["constrains_availability"].as_bool().unwrap(),
            )
        })
        .collect()
}

/// A state report of `packages` (from `core`) with what the endpoint can obtain.
fn report(packages: &[(&str, &str)], offered: &[(&str, &str)]) -> Value {
    let mut body = state(packages);
    body["available"] = json!({
        "offered": offered
            .iter()
            .map(|(n, v)| json!({"name": n, "version": v, "source": "sync_repository"}))
            .collect::<Vec<_>>(),
        "archive_repositories": [],
    });
    body
}

/// What a sync of `endpoint` plans and skips, each sorted; a pending operation is cancelled
/// again so the next request is planned afresh, and the skipped packages' reasons by name.
async fn sync_plan(api: &Api, endpoint: &str, token: &str) -> (Vec<String>, Vec<String>, Value) {
    let op = api
        .as_(token)
        .post(&format!("/api/sync/{endpoint}/sync-to-latest"))
        .await;
    let op = op.expect(202, None).clone();
    let mut planned = names(&op["plan"]["actions"]);
    let mut skipped = names(&op["plan"]["skipped"]);
    planned.sort();
    skipped.sort();
    let reasons: serde_json::Map<String, Value> = op["plan"]["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["name"].as_str().unwrap().to_owned(), s["reason"].clone()))
        .collect();
    if op["status"] == "pending" {
        let id = op["operation_id"].as_str().unwrap();
        api.as_(token)
            .post(&format!("/api/sync/operations/{id}/cancel"))
            .await
            .expect(200, None);
    }
    (planned, skipped, Value::Object(reasons))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rogue_report_is_named_in_the_analysis_and_cannot_block_the_pool_once_flagged() {
    let t = TestHost::start().await;
    let api = &t.api;
    let behind = [("bash", "5.2-1"), ("linux", "6.1-1"), ("vim", "9.0-1")];
    let fleet = Fleet::builder(api)
        .pool("held-back")
        .reference(
            "ref",
            report(
                &[("bash", "5.2-1"), ("linux", "6.2-1"), ("vim", "9.1-1")],
                &[],
            ),
        )
        // b can obtain the whole target.
        .member(
            "b",
            report(&behind, &[("linux", "6.2-1"), ("vim", "9.1-1")]),
        )
        // An honest laggard: its mirror has linux 6.2 but not vim 9.1 yet.
        .member(
            "laggard",
            report(&behind, &[("linux", "6.2-1"), ("vim", "9.0-1")]),
        )
        // The rogue claims it can obtain nothing at all.
        .member("rogue", report(&behind, &[]))
        .build()
        .await;
    let (b, tb) = (&fleet.members[0].id, &fleet.members[0].token);
    let (rogue, trogue) = (&fleet.members[2].id, &fleet.members[2].token);
    let analysis_path = format!("/api/pools/{}/repository-analysis", fleet.pool);

    // The analysis names, per excluded package, the endpoints that lack it, and ranks the
    // rogue above the honest laggard.
    let before = api.get(&analysis_path).await;
    let before = before.expect(200, None);
    assert_eq!(names(&before["common"]), ["bash"]);
    assert_eq!(names(&before["excluded"]), ["linux", "vim"], "{before}");
    assert_eq!(
        flagged(&before["excluded"][0]["endpoints"]),
        [("rogue".to_owned(), true)]
    );
    assert_eq!(
        flagged(&before["excluded"][1]["endpoints"]),
        [("laggard".to_owned(), true), ("rogue".to_owned(), true)]
    );
    assert_eq!(before["ignored"], json!([]));
    assert_eq!(
        ranking(before),
        [
            ("rogue".to_owned(), 2, true),
            ("laggard".to_owned(), 1, true)
        ]
    );
    assert_eq!(before["excluders"][0]["endpoint_id"], json!(rogue));
    // b could obtain both, but the pool cannot: it is held back.
    let (planned, skipped, _) = sync_plan(api, b, tb).await;
    assert_eq!(
        (planned, skipped),
        (vec![], vec!["linux".into(), "vim".into()])
    );

    // The rogue cannot lift its own constraint (nor would any endpoint token).
    api.as_(trogue)
        .put(&format!("/api/endpoints/{rogue}/permissions"))
        .json(json!({"constrains_availability": false}))
        .await
        .expect(403, Some("ADMIN_REQUIRED"));
    // The admin flags it.
    api.put(&format!("/api/endpoints/{rogue}/permissions"))
        .json(json!({"constrains_availability": false}))
        .await
        .expect(200, None);

    // Its gaps are still shown, marked as not constraining; only the laggard's gap excludes.
    let after = api.get(&analysis_path).await;
    let after = after.expect(200, None);
    assert_eq!(names(&after["excluded"]), ["vim"], "{after}");
    assert_eq!(
        flagged(&after["excluded"][0]["endpoints"]),
        [("laggard".to_owned(), true), ("rogue".to_owned(), false)]
    );
    assert_eq!(names(&after["ignored"]), ["linux"]);
    assert_eq!(
        flagged(&after["ignored"][0]["endpoints"]),
        [("rogue".to_owned(), false)]
    );
    let ignored_reason = after["ignored"][0]["reason"].as_str().unwrap();
    assert!(
        ignored_reason.contains("linux 6.2-1") && ignored_reason.contains("rogue"),
        "{ignored_reason}"
    );
    assert_eq!(
        ranking(after),
        [
            ("rogue".to_owned(), 2, false),
            ("laggard".to_owned(), 1, true)
        ]
    );
    assert!(
        flagged(&after["analysed"]).contains(&("rogue".to_owned(), false)),
        "{after}"
    );

    // b syncs linux again; vim waits for the laggard, whose report still counts.
    let (planned, skipped, _) = sync_plan(api, b, tb).await;
    assert_eq!(
        (planned, skipped),
        (vec!["linux".into()], vec!["vim".into()])
    );

    // The rogue's own plan is still kept to what it reported: nothing.
    let (planned, skipped, reasons) = sync_plan(api, rogue, trogue).await;
    assert_eq!(
        (planned, skipped),
        (vec![], vec!["linux".into(), "vim".into()])
    );
    let linux = reasons["linux"].as_str().unwrap();
    assert!(linux.contains("not offered by the endpoint"), "{linux}");
    t.stop().await;
}
