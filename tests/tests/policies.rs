//! Policy plugins through the real host runtime: built-ins, run-time swaps, uploads and
//! hostile components that must be contained.

use pacsync_tests::{Api, Fleet, TestHost, state};
use serde_json::{Value, json};

const HOSTILE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/pacsync_hostile_policy.wasm"));

/// Pool with target {linux 6.1, vim 9.1, git 2.40}; `b` has older linux, newer vim, extra htop.
async fn fleet(api: &Api, name: &str) -> (String, String, String) {
    let fleet = Fleet::builder(api)
        .pool(name)
        .reference(
            &format!("{name}-ref"),
            state(&[("linux", "6.1-1"), ("vim", "9.1-1"), ("git", "2.40-1")]),
        )
        .member(
            &format!("{name}-b"),
            state(&[
                ("linux", "6.0-1"),
                ("vim", "9.2-1"),
                ("git", "2.40-1"),
                ("htop", "3-1"),
            ]),
        )
        .build()
        .await;
    let b = &fleet.members[0];
    (fleet.pool.clone(), b.id.clone(), b.token.clone())
}

async fn set_policy(api: &Api, pool: &str, plugin: &str, config: Value) -> pacsync_tests::Reply {
    api.put(&format!("/api/pools/{pool}/policy"))
        .json(json!({"plugin": plugin, "config": config}))
        .await
}

/// Requests a sync and cancels it again; returns the operation (or the error reply's body).
async fn plan_of(api: &Api, endpoint: &str, token: &str) -> pacsync_tests::Reply {
    let reply = api
        .as_(token)
        .post(&format!("/api/sync/{endpoint}/sync-to-latest"))
        .await;
    if reply.status.as_u16() == 202 {
        let id = reply.body["operation_id"].as_str().unwrap();
        api.as_(token)
            .post(&format!("/api/sync/operations/{id}/cancel"))
            .await
            .expect(200, None);
    }
    reply
}

fn actions(op: &Value) -> Vec<(String, String)> {
    op["plan"]["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["kind"].as_str().unwrap().to_owned(),
                a["name"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn built_in_policies_run_as_components_and_swap_at_run_time() {
    let t = TestHost::start().await;
    let api = &t.api;
    let plugins = api.get("/api/plugins").await;
    let names: Vec<&str> = plugins
        .expect(200, None)
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["plugin_id"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["conservative", "holds", "mirror"]);
    assert_eq!(
        api.get("/api/plugins/holds").await.expect(200, None)["builtin"],
        true
    );

    let (pool, b, tb) = fleet(api, "p").await;
    // Default: mirror, run through the wasm runtime.
    let op = plan_of(api, &b, &tb).await;
    let op = op.expect(202, None);
    assert_eq!(
        actions(op),
        [
            ("upgrade".into(), "linux".into()),
            ("downgrade".into(), "vim".into()),
            ("remove".into(), "htop".into())
        ]
    );
    assert_eq!(op["policy"]["plugin"], "mirror");
    assert_eq!(op["policy"]["hash"].as_str().unwrap().len(), 64);

    // Swap to conservative: no restart, the next plan follows it.
    let r = set_policy(api, &pool, "conservative", json!({})).await;
    assert_eq!(r.expect(200, None)["policy_plugin"], "conservative");
    let op = plan_of(api, &b, &tb).await;
    let op = op.expect(202, None);
    assert_eq!(actions(op), [("upgrade".into(), "linux".into())]);
    let skipped: Vec<&str> = op["plan"]["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(skipped, ["vim", "htop"]);
    assert_eq!(op["policy"]["plugin"], "conservative");

    // holds: linux is critical by default; vim is ignored by config.
    set_policy(api, &pool, "holds", json!({"ignore": ["vim"]}))
        .await
        .expect(200, None);
    let op = plan_of(api, &b, &tb).await;
    let op = op.expect(202, None);
    assert_eq!(actions(op), [("remove".into(), "htop".into())]);
    assert_eq!(op["policy"]["config"], json!({"ignore": ["vim"]}));

    // The plugin validates its own config.
    let r = set_policy(api, &pool, "holds", json!({"ignore": "vim"})).await;
    assert!(
        r.expect(422, Some("INVALID_POLICY_CONFIG"))["detail"]
            .as_str()
            .unwrap()
            .contains("list of glob strings")
    );
    set_policy(api, &pool, "mirror", json!({"x": 1}))
        .await
        .expect(422, Some("INVALID_POLICY_CONFIG"));
    set_policy(api, &pool, "mirror", json!([]))
        .await
        .expect(422, Some("VALIDATION_FAILED"));
    set_policy(api, &pool, "no-such-policy", json!({}))
        .await
        .expect(404, Some("PLUGIN_NOT_FOUND"));
    set_policy(api, &uuid::Uuid::new_v4().to_string(), "mirror", json!({}))
        .await
        .expect(404, Some("POOL_NOT_FOUND"));
    api.get("/api/plugins/nope")
        .await
        .expect(404, Some("PLUGIN_NOT_FOUND"));
    t.stop().await;
}

#[tokio::test]
async fn uploads_are_validated_stored_by_hash_and_protected_while_used() {
    let t = TestHost::start().await;
    let api = &t.api;
    let upload = |bytes: Vec<u8>| {
        let api = api.clone();
        async move {
            let response = reqwest::Client::new()
                .post(format!("{}/api/plugins", api.base))
                .bearer_auth(&api.admin)
                .header("content-type", "application/wasm")
                .body(bytes)
                .send()
                .await
                .unwrap();
            (
                response.status().as_u16(),
                response.json::<Value>().await.unwrap(),
            )
        }
    };
    // Larger than the host accepts: a problem document, not a bare 413.
    let (status, body) = upload(vec![0u8; 17 * 1024 * 1024]).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (413, Some("PAYLOAD_TOO_LARGE")),
        "{body}"
    );
    // Not a component: garbage, a bare core module, nothing.
    for bytes in [b"garbage".to_vec(), b"\0asm\x01\0\0\0".to_vec(), Vec::new()] {
        let (status, body) = upload(bytes).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (422, Some("INVALID_PLUGIN")),
            "{body}"
        );
    }
    let (status, body) = upload(HOSTILE.to_vec()).await;
    assert_eq!(status, 201, "{body}");
    let id = body["plugin_id"].as_str().unwrap().to_owned();
    assert_eq!(body["name"], "hostile");
    let (status, again) = upload(HOSTILE.to_vec()).await;
    assert_eq!(
        (status, again["plugin_id"].as_str()),
        (200, Some(id.as_str()))
    );

    let pool = api.create_pool("uses-it").await;
    set_policy(api, &pool, &id, json!({"mode": "none"}))
        .await
        .expect(200, None);
    api.delete(&format!("/api/plugins/{id}"))
        .await
        .expect(409, Some("PLUGIN_IN_USE"));
    api.delete("/api/plugins/mirror")
        .await
        .expect(409, Some("BUILTIN_PLUGIN"));
    set_policy(api, &pool, "mirror", json!({}))
        .await
        .expect(200, None);
    api.delete(&format!("/api/plugins/{id}"))
        .await
        .expect(204, None);
    api.delete(&format!("/api/plugins/{id}"))
        .await
        .expect(404, Some("PLUGIN_NOT_FOUND"));
    // Endpoints cannot touch the registry.
    let (_, token) = api.register(&pool, "m").await;
    api.as_(&token)
        .get("/api/plugins")
        .await
        .expect(403, Some("ADMIN_REQUIRED"));
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_components_fail_only_their_own_requests() {
    let t = TestHost::start().await;
    let api = &t.api;
    let response = reqwest::Client::new()
        .post(format!("{}/api/plugins", api.base))
        .bearer_auth(&api.admin)
        .body(HOSTILE.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 201);
    let id = response.json::<Value>().await.unwrap()["plugin_id"]
        .as_str()
        .unwrap()
        .to_owned();

    let (hostile_pool, b, tb) = fleet(api, "hostile").await;
    let (_, healthy_b, healthy_tb) = fleet(api, "healthy").await;
    for (mode, expected) in [
        ("loop", "deadline"),
        ("alloc", "trapped"),
        ("trap", "outside the policy world"),
        ("garbage", "invalid plan"),
        (
            "sneak",
            "SetReason of htop does not fit the endpoint's state",
        ),
        // Not hostile: proves a plugin can read the whole states through its resources.
        (
            "inspect",
            "read 4 current packages (linux 6.0-1), 3 target packages",
        ),
    ] {
        set_policy(api, &hostile_pool, &id, json!({"mode": mode}))
            .await
            .expect(200, None);
        let reply = plan_of(api, &b, &tb).await;
        let detail = reply.expect(502, Some("POLICY_FAULT"))["detail"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(detail.contains(expected), "{mode}: {detail}");
        // Nothing was created for the failed request, and the rest of the host carries on.
        let ops = api
            .get(&format!(
                "/api/sync/pools/{hostile_pool}/operations?type=sync"
            ))
            .await;
        assert_eq!(ops.expect(200, None)["items"], json!([]), "{mode}");
        let healthy = plan_of(api, &healthy_b, &healthy_tb).await;
        assert_eq!(
            healthy.expect(202, None)["policy"]["plugin"],
            "mirror",
            "{mode}"
        );
    }
    // Back to a well-behaved mode: the same component plans normally again.
    set_policy(api, &hostile_pool, &id, json!({"mode": "none"}))
        .await
        .expect(200, None);
    plan_of(api, &b, &tb).await.expect(202, None);
    t.stop().await;
}

#[tokio::test]
async fn a_pending_plan_follows_a_policy_swap_and_a_new_machine_state() {
    let t = TestHost::start().await;
    let api = &t.api;
    let (pool, b, tb) = fleet(api, "stale").await;
    let agent = |id: String, action: &'static str, body: Option<Value>| {
        let (api, tb) = (api.clone(), tb.clone());
        async move {
            let request = api
                .as_(&tb)
                .post(&format!("/api/sync/operations/{id}/{action}"));
            match body {
                Some(body) => request.json(body).await,
                None => request.await,
            }
        }
    };
    // Planned under mirror; the pool switches to conservative before the agent starts it.
    let op = api
        .as_(&tb)
        .post(&format!("/api/sync/{b}/sync-to-latest"))
        .await;
    let id = op.expect(202, None)["operation_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(actions(&op.body).len(), 3);
    set_policy(api, &pool, "conservative", json!({}))
        .await
        .expect(200, None);
    let started = agent(id.clone(), "start", None).await;
    let started = started.expect(200, None);
    assert_eq!(actions(started), [("upgrade".into(), "linux".into())]);
    assert_eq!(started["policy"]["plugin"], "conservative");
    agent(id, "fail", Some(json!({"code": "TEST", "message": "stop"})))
        .await
        .expect(200, None);

    // Planned while linux was old; the machine upgrades it by hand before the agent starts:
    // under conservative nothing is left to do, so the operation completes at once.
    let op = api
        .as_(&tb)
        .post(&format!("/api/sync/{b}/sync-to-latest"))
        .await;
    let id = op.expect(202, None)["operation_id"]
        .as_str()
        .unwrap()
        .to_owned();
    api.report(
        &b,
        &tb,
        &[
            ("linux", "6.1-1"),
            ("vim", "9.2-1"),
            ("git", "2.40-1"),
            ("htop", "3-1"),
        ],
    )
    .await
    .expect(200, None);
    let started = agent(id, "start", None).await;
    let started = started.expect(200, None);
    assert_eq!(started["status"], "completed");
    assert_eq!(started["plan"]["actions"], json!([]));
    t.stop().await;
}

/// Runs `pacsync-host plugin check` with `args`; a run past 60 s (a component deadline that
/// does not hold) is killed and fails the test instead of hanging it.
fn plugin_check(args: &[&std::ffi::OsStr]) -> std::process::Output {
    use std::process::Stdio;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_pacsync-host-under-test"))
        .args(["plugin", "check"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > std::time::Duration::from_secs(60) {
            let _ = child.kill();
            panic!("plugin check {args:?} ran past 60 s");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn plugin_authors_can_check_a_component_offline() {
    let dir = pacsync_tests::shared_tempdir();
    let write = |name: &str, bytes: &[u8]| {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    };
    let conservative = write(
        "conservative.wasm",
        pacsync_host::policy::builtin_component("conservative").unwrap(),
    );
    let hostile = write("hostile.wasm", HOSTILE);
    let current = write(
        "current.json",
        pacsync_tests::state(&[("linux", "6.1-1"), ("vim", "9.1-1")])
            .to_string()
            .as_bytes(),
    );
    let target = write(
        "target.json",
        pacsync_tests::state(&[("linux", "6.2-1")])
            .to_string()
            .as_bytes(),
    );
    let states = [
        "--current".as_ref(),
        current.as_os_str(),
        "--target".as_ref(),
        target.as_os_str(),
    ];

    // Described, classified and planned, as the server would.
    let mut args = vec![conservative.as_os_str()];
    args.extend(states);
    let out = plugin_check(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["description"]["name"], "conservative");
    assert_eq!(report["sha256"].as_str().unwrap().len(), 64);
    assert_eq!(report["sync_status"], "diverged");
    assert_eq!(report["plan"]["actions"][0]["name"], "linux");
    assert_eq!(report["plan"]["actions"][0]["kind"], "upgrade");
    assert_eq!(report["plan"]["skipped"][0]["name"], "vim");

    // A config the plugin refuses: its message, exit 1, nothing planned.
    let out = plugin_check(&[
        conservative.as_os_str(),
        "--policy-config".as_ref(),
        r#"{"bogus": true}"#.as_ref(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(report["config_error"].is_string(), "{report}");
    assert!(report.get("plan").is_none());

    // A component that loops is stopped by the deadline: POLICY_FAULT, exit 1.
    let mut args = vec![
        hostile.as_os_str(),
        "--policy-config".as_ref(),
        r#"{"mode": "loop"}"#.as_ref(),
    ];
    args.extend(states);
    let out = plugin_check(&args);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("POLICY_FAULT") && stderr.contains("deadline"),
        "{stderr}"
    );

    // Not a component at all; unreadable input; half the states.
    let out = plugin_check(&[current.as_os_str()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("INVALID_PLUGIN"));
    let out = plugin_check(&[dir.path().join("missing.wasm").as_os_str()]);
    assert_eq!(out.status.code(), Some(2));
    let out = plugin_check(&[
        conservative.as_os_str(),
        "--policy-config".as_ref(),
        "[1]".as_ref(),
    ]);
    assert_eq!(out.status.code(), Some(1), "a pool config is an object");
    assert!(String::from_utf8_lossy(&out.stderr).contains("JSON object"));
    let out = plugin_check(&[
        conservative.as_os_str(),
        "--policy-config".as_ref(),
        "{".as_ref(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let out = plugin_check(&[
        conservative.as_os_str(),
        "--current".as_ref(),
        current.as_os_str(),
    ]);
    assert_eq!(out.status.code(), Some(2), "--current needs --target");
}
