//! End to end with real pacman: real packages (built with bsdtar, indexed with repo-add), a
//! local file:// repository and archive, two throw-away pacman roots, the real `pacsync` CLI and
//! agent, the real host and PostgreSQL.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use pacsync_tests::pacman::{Forge, Machine, run};
use pacsync_tests::{Api, TestHost, shared_tempdir};

const PACSYNC: &str = env!("CARGO_BIN_EXE_pacsync-under-test");

/// Host, packages, repository, archive and two machines A and B with foo 1.0 (explicit) and
/// bar 1.0 (dependency), both registered and reported.
struct World {
    t: TestHost,
    base: tempfile::TempDir,
    archive: PathBuf,
    a: Machine,
    b: Machine,
    ea: String,
    eb: String,
}

async fn world(pacman_wrapper: bool) -> World {
    let t = TestHost::start().await;
    let api = &t.api;
    let base = shared_tempdir();
    let (repo, archive) = (base.path().join("repo"), base.path().join("archive"));
    for d in [&repo, &archive] {
        std::fs::create_dir_all(d).unwrap();
    }
    let forge = Forge {
        dir: base.path().join("build"),
    };
    // The archive has every version; the repository only the newest.
    let mut newest = Vec::new();
    for (name, version, latest) in [
        ("foo", "1.0-1", false),
        ("foo", "2.0-1", true),
        ("bar", "1.0-1", true),
        ("baz", "1.0-1", true),
    ] {
        let file = forge.build(&archive, name, version);
        if latest {
            let copy = repo.join(file.file_name().unwrap());
            std::fs::copy(&file, &copy).unwrap();
            newest.push(copy);
        }
    }
    run(Command::new("repo-add")
        .arg("-q")
        .arg(repo.join("test.db.tar.gz"))
        .args(&newest));
    let a = Machine::new(base.path(), "a", &repo, PACSYNC);
    let b = Machine::new(base.path(), "b", &repo, PACSYNC);
    for m in [&a, &b] {
        m.pacman(&[
            "-U",
            archive.join("foo-1.0-1-any.pkg.tar.zst").to_str().unwrap(),
        ]);
        m.pacman(&[
            "-U",
            "--asdeps",
            archive.join("bar-1.0-1-any.pkg.tar.zst").to_str().unwrap(),
        ]);
    }
    let pool = api.create_pool("desktops").await;
    let ea = a.register(api, &api.enrollment_token(&pool).await, "a", &archive);
    let eb = b.register(api, &api.enrollment_token(&pool).await, "b", &archive);
    if pacman_wrapper {
        // A pacman whose transactions take 2 s: long enough to cancel or kill in the middle.
        let wrapper = base.path().join("slow-pacman");
        std::fs::write(
            &wrapper,
            "#!/bin/sh\ncase \" $* \" in *\" -U \"*) sleep 2;; esac\nexec pacman \"$@\"\n",
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
        let config = std::fs::read_to_string(&b.config_file).unwrap();
        let config = config.replace(
            "command = \"pacman\"",
            &format!("command = \"{}\"", wrapper.display()),
        );
        std::fs::write(&b.config_file, config).unwrap();
    }
    assert!(a.pacsync(&["report"]).status.success());
    assert!(b.pacsync(&["report"]).status.success());
    World {
        t,
        base,
        archive,
        a,
        b,
        ea,
        eb,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_latest_sync_and_revert_leave_real_pacman_roots_as_planned() {
    let World {
        t,
        base,
        archive,
        a,
        b,
        ea,
        eb,
    } = world(false).await;
    let api = &t.api;
    let loose = base.path().join("loose");
    std::fs::create_dir_all(&loose).unwrap();
    let qux = Forge {
        dir: base.path().join("build-loose"),
    }
    .build(&loose, "qux", "1.0-1"); // in no source
    let before = b.installed();

    // A moves ahead by hand: newer foo, a new explicit package; it becomes the target.
    a.pacman(&["-S", "foo"]);
    a.pacman(&["-S", "baz"]);
    assert!(a.pacsync(&["report"]).status.success());
    let (out, json) = a.operate(api, &ea, &["set-latest"]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(json["status"], "completed");

    // B syncs: afterwards it equals the target, install reasons included.
    let status = b.pacsync(&["status", "--json"]);
    let diff: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(diff["upgrade"], serde_json::json!(["foo 1.0-1 -> 2.0-1"]));
    assert_eq!(diff["install"], serde_json::json!(["baz 1.0-1"]));
    let (out, json) = b.operate(api, &eb, &["sync"]).await;
    assert!(
        out.status.success(),
        "sync: {json} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(b.installed(), a.installed());
    let endpoint = api.get(&format!("/api/endpoints/{eb}")).await;
    assert_eq!(endpoint.body["sync_status"], "in_sync");

    // The archive loses foo 1.0-1: a revert needing it fails before anything changes, naming
    // the package (the host planned it from the archive's coverage; the agent checks first).
    let kept = base.path().join("foo-1.0-1-any.pkg.tar.zst");
    std::fs::rename(archive.join("foo-1.0-1-any.pkg.tar.zst"), &kept).unwrap();
    let (out, json) = b.operate(api, &eb, &["revert"]).await;
    std::fs::rename(&kept, archive.join("foo-1.0-1-any.pkg.tar.zst")).unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(json["error_code"], "PACKAGE_UNAVAILABLE");
    assert!(
        json["error_message"]
            .as_str()
            .unwrap()
            .contains("foo 1.0-1"),
        "{json}"
    );
    assert_eq!(b.installed(), a.installed(), "nothing changed");

    // B reverts: back to where it was, which needs foo 1.0-1 from the archive.
    let (out, json) = b.operate(api, &eb, &["revert"]).await;
    assert!(
        out.status.success(),
        "revert: {json} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(b.installed(), before);

    // A held pacman database lock fails with pacman's own message, and nothing is recorded.
    let lock = b.root.join("var/lib/pacman/db.lck");
    std::fs::write(&lock, "").unwrap();
    let (out, json) = b.operate(api, &eb, &["sync"]).await;
    std::fs::remove_file(&lock).unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(json["error_code"], "PACMAN_FAILED");
    assert!(
        json["error_message"]
            .as_str()
            .unwrap()
            .contains("unable to lock database"),
        "{json}"
    );
    assert_eq!(b.installed(), before);
    let ops = api.get(&format!("/api/sync/{eb}/operations?limit=1")).await;
    assert_eq!(ops.body["items"][0]["status"], "failed");

    // A locally built package that no source of B's has: the pool's repository analysis
    // excludes it, and B's sync skips it with the reason instead of planning it blindly.
    a.pacman(&["-U", qux.to_str().unwrap()]);
    assert!(a.pacsync(&["report"]).status.success());
    a.operate(api, &ea, &["set-latest"]).await;
    let pool = api.get(&format!("/api/endpoints/{eb}")).await.body["pool_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let analysis = api
        .get(&format!("/api/pools/{pool}/repository-analysis"))
        .await;
    let analysis = analysis.expect(200, None);
    assert_eq!(analysis["excluded"][0]["name"], "qux", "{analysis}");
    assert!(analysis["excluded"][0]["repository"].is_null());
    assert_eq!(analysis["excluded"][0]["endpoints"][0]["name"], "b");
    let common: Vec<&str> = analysis["common"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(common, ["bar", "baz", "foo"]);
    let (out, json) = b.operate(api, &eb, &["sync"]).await;
    assert!(
        out.status.success(),
        "sync: {json} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(json["plan"]["skipped"][0]["name"], "qux", "{json}");
    let mut expected = a.installed();
    expected.retain(|(name, _, _)| name != "qux");
    assert_eq!(b.installed(), expected);
    t.stop().await;
}

#[test]
fn the_cli_exits_with_distinct_codes_for_a_missing_config_and_an_unreachable_host() {
    let dir = shared_tempdir();
    let missing = dir.path().join("nope.toml");
    let out = Command::new(PACSYNC)
        .arg("--config")
        .arg(&missing)
        .arg("status")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "missing config is a usage/config error"
    );
    let config = dir.path().join("agent.toml");
    std::fs::write(
        &config,
        "server = \"http://127.0.0.1:9\"\nendpoint_id = \"00000000-0000-0000-0000-000000000000\"\ntoken = \"x\"\n",
    )
    .unwrap();
    let out = Command::new(PACSYNC)
        .arg("--config")
        .arg(&config)
        .arg("status")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4), "unreachable host");
    // waybar never blocks and never fails: it says the host is unreachable.
    let out = Command::new(PACSYNC)
        .arg("--config")
        .arg(&config)
        .env("XDG_CACHE_HOME", dir.path())
        .arg("waybar")
        .output()
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["class"], "stale");
}

/// Polls (bounded) until the operation reaches `status`.
async fn wait_for(api: &Api, op: &str, status: &str) -> serde_json::Value {
    let mut last = serde_json::Value::Null;
    for _ in 0..100 {
        last = api.get(&format!("/api/sync/operations/{op}")).await.body;
        if last["status"] == status {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("operation never became {status}: {last}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_mid_plan_and_a_killed_agent_leave_the_truth_on_record() {
    // `_base` keeps the temporary directory (roots, repository, archive) alive.
    let World {
        t,
        base: _base,
        archive,
        a,
        b,
        ea,
        eb,
    } = world(true).await;
    let api = &t.api;
    // Target: foo 2.0 and baz added, bar removed: B's plan has a transaction, then a removal.
    a.pacman(&["-S", "foo", "baz"]);
    a.pacman(&["-R", "bar"]);
    assert!(a.pacsync(&["report"]).status.success());
    a.operate(api, &ea, &["set-latest"]).await;

    // Cancel while B's (slow) transaction runs: the agent finishes it, skips the removal,
    // acknowledges, and the state it reports is the machine's real one.
    let op = api.post(&format!("/api/sync/{eb}/sync-to-latest")).await;
    let op = op.expect(202, None)["operation_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let agent = Command::new(PACSYNC)
        .arg("--config")
        .arg(&b.config_file)
        .args(["agent", "--once"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Cancel once the agent is inside its (2 s) pacman transaction.
    for _ in 0..100 {
        let now = api.get(&format!("/api/sync/operations/{op}")).await.body;
        if now["progress"]["stage"] == "installing" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let r = api.post(&format!("/api/sync/operations/{op}/cancel")).await;
    assert_eq!(r.expect(200, None)["cancel_requested"], true);
    let agent = tokio::task::spawn_blocking(move || agent.wait_with_output().unwrap())
        .await
        .unwrap();
    assert!(
        agent.status.success(),
        "agent: {}",
        String::from_utf8_lossy(&agent.stderr)
    );
    let cancelled = wait_for(api, &op, "cancelled").await;
    assert!(cancelled["result_state_id"].is_string());
    let installed: Vec<String> = b
        .installed()
        .into_iter()
        .map(|(n, v, _)| format!("{n} {v}"))
        .collect();
    assert_eq!(
        installed,
        ["bar 1.0-1", "baz 1.0-1", "foo 2.0-1"],
        "transaction done, removal skipped"
    );
    let diff = api.get(&format!("/api/endpoints/{eb}/diff")).await;
    assert_eq!(
        diff.body["remove"],
        serde_json::json!(["bar 1.0-1"]),
        "the host knows the real state"
    );
    assert_eq!(diff.body["upgrade"], serde_json::json!([]));

    // Kill the agent in the middle of a transaction: the lease expires, and the agent's next
    // start reports what pacman really did.
    b.pacman(&[
        "-U",
        archive.join("foo-1.0-1-any.pkg.tar.zst").to_str().unwrap(),
    ]);
    assert!(b.pacsync(&["report"]).status.success());
    let op = api.post(&format!("/api/sync/{eb}/sync-to-latest")).await;
    let op = op.expect(202, None)["operation_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut agent = Command::new(PACSYNC)
        .arg("--config")
        .arg(&b.config_file)
        .args(["agent", "--once"])
        .spawn()
        .unwrap();
    wait_for(api, &op, "in_progress").await;
    agent.kill().unwrap();
    agent.wait().unwrap();
    let failed = wait_for(api, &op, "failed").await;
    assert_eq!(failed["error_code"], "LEASE_EXPIRED");
    // The orphaned pacman may still finish its transaction; wait for its lock to go.
    for _ in 0..100 {
        if !b.root.join("var/lib/pacman/db.lck").exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let restart = b.pacsync(&["agent", "--once"]);
    assert!(
        restart.status.success(),
        "{}",
        String::from_utf8_lossy(&restart.stderr)
    );
    let real: Vec<String> = b
        .installed()
        .into_iter()
        .map(|(n, v, _)| format!("{n} {v}"))
        .collect();
    let diff = api.get(&format!("/api/endpoints/{eb}/diff")).await;
    let foo = real.iter().find(|p| p.starts_with("foo ")).unwrap().clone();
    let expected_upgrade = if foo == "foo 1.0-1" {
        serde_json::json!(["foo 1.0-1 -> 2.0-1"])
    } else {
        serde_json::json!([])
    };
    assert_eq!(
        diff.body["upgrade"], expected_upgrade,
        "host view matches the machine ({real:?})"
    );
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_daemon_wakes_on_its_event_stream_and_reconnects_after_a_host_restart() {
    let World {
        mut t,
        base: _base,
        archive: _,
        a,
        b,
        ea,
        eb,
    } = world(false).await;
    a.pacman(&["-S", "foo"]);
    assert!(a.pacsync(&["report"]).status.success());
    a.operate(&t.api, &ea, &["set-latest"]).await;

    // Polling is all but off (10 min): only the event stream can bring the work quickly.
    let mut daemon = Command::new(PACSYNC)
        .arg("--config")
        .arg(&b.config_file)
        .args(["agent", "--poll-ms", "600000"])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Let it report, look for work (none) and settle on the stream.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let sync = |api: &Api| {
        let api = api.clone();
        let eb = eb.clone();
        async move {
            let op = api.post(&format!("/api/sync/{eb}/sync-to-latest")).await;
            op.expect(202, None)["operation_id"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    let op = sync(&t.api).await;
    wait_for(&t.api, &op, "completed").await;
    assert!(
        b.installed()
            .contains(&("foo".into(), "2.0-1".into(), true))
    );

    // The host restarts; the agent's stream drops and it reconnects (1 s backoff), then the
    // next operation reaches it the same way.
    t.restart().await;
    a.pacman(&["-S", "baz"]);
    assert!(a.pacsync(&["report"]).status.success());
    a.operate(&t.api, &ea, &["set-latest"]).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let op = sync(&t.api).await;
    wait_for(&t.api, &op, "completed").await;
    daemon.kill().unwrap();
    daemon.wait().unwrap();
    assert_eq!(b.installed(), a.installed());
    t.stop().await;
}
