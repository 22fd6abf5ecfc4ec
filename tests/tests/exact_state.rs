//! Exact state with real pacman: install reasons, conflicts and replacements, and reverts of
//! packages no repository keeps. Real packages (bsdtar-built, `repo-add`ed), throw-away pacman
//! roots, the real `pacsync` agent, host and PostgreSQL.

use std::path::PathBuf;

use pacsync_tests::pacman::{Forge, Machine, PackageSpec, run};
use pacsync_tests::{Api, TestHost, shared_tempdir};
use serde_json::{Value, json};

const PACSYNC: &str = env!("CARGO_BIN_EXE_pacsync-under-test");

/// Two registered machines, A (whose state becomes the target) and B (which syncs), over one
/// `[test]` repository of `packages` (built into both the repository and the archive) and a
/// directory of loose packages that no source keeps.
struct World {
    t: TestHost,
    _base: tempfile::TempDir,
    loose: PathBuf,
    a: Machine,
    b: Machine,
    ea: String,
    eb: String,
    pool: String,
}

async fn world(packages: &[PackageSpec], loose: &[PackageSpec]) -> World {
    let t = TestHost::start().await;
    let base = shared_tempdir();
    let dir = |name: &str| {
        let d = base.path().join(name);
        std::fs::create_dir_all(&d).unwrap();
        d
    };
    let (repo, archive, loose_dir) = (dir("repo"), dir("archive"), dir("loose"));
    let forge = Forge {
        dir: base.path().join("build"),
    };
    let mut files = Vec::new();
    for spec in packages {
        let file = forge.build_spec(&archive, spec);
        let copy = repo.join(file.file_name().unwrap());
        std::fs::copy(&file, &copy).unwrap();
        files.push(copy);
    }
    for spec in loose {
        forge.build_spec(&loose_dir, spec);
    }
    run(std::process::Command::new("repo-add")
        .arg("-q")
        .arg(repo.join("test.db.tar.gz"))
        .args(&files));
    let a = Machine::new(base.path(), "a", &repo, PACSYNC);
    let b = Machine::new(base.path(), "b", &repo, PACSYNC);
    let api = &t.api;
    let pool = api.create_pool("exact").await;
    let ea = a.register(api, &api.enrollment_token(&pool).await, "a", &archive);
    let eb = b.register(api, &api.enrollment_token(&pool).await, "b", &archive);
    World {
        t,
        _base: base,
        loose: loose_dir,
        a,
        b,
        ea,
        eb,
        pool,
    }
}

/// Reports both machines, makes A's state the target and checks that it took.
async fn a_becomes_the_target(w: &World) {
    for m in [&w.a, &w.b] {
        let out = m.pacsync(&["report"]);
        assert!(
            out.status.success(),
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let (out, json) = w.a.operate(&w.t.api, &w.ea, &["set-latest"]).await;
    assert!(out.status.success(), "set-latest: {json}");
}

/// Runs `verb` on B; its outcome as JSON, asserting the exit code says success or failure.
async fn b_runs(w: &World, verb: &str, succeeds: bool) -> Value {
    let (out, json) = w.b.operate(&w.t.api, &w.eb, &[verb]).await;
    assert_eq!(
        out.status.success(),
        succeeds,
        "{verb}: {json} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    json
}

async fn sync_status(api: &Api, endpoint: &str) -> Value {
    api.get(&format!("/api/endpoints/{endpoint}")).await.body["sync_status"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reason_only_difference_is_synced_until_pacman_lists_the_same_explicit_packages() {
    let packages = ["tool", "lib", "cli"].map(|n| PackageSpec::new(n, "1-1"));
    let w = world(&packages, &[]).await;
    // Each way: two re-marked as explicit in one `pacman -D`, one as a dependency.
    w.a.pacman(&["-S", "tool", "cli"]);
    w.a.pacman(&["-S", "--asdeps", "lib"]);
    w.b.pacman(&["-S", "--asdeps", "tool", "cli"]);
    w.b.pacman(&["-S", "lib"]);
    a_becomes_the_target(&w).await;

    // Same versions, other reasons: behind, and the diff says what changes.
    assert_eq!(sync_status(&w.t.api, &w.eb).await, "behind");
    let status = w.b.pacsync(&["status", "--json"]);
    let diff: Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(
        diff["set_reason"],
        json!([
            "cli 1-1: dependency -> explicit",
            "lib 1-1: explicit -> dependency",
            "tool 1-1: dependency -> explicit"
        ])
    );

    let json = b_runs(&w, "sync", true).await;
    assert_eq!(json["plan"]["summary"], "3 to re-mark", "{json}");
    assert_eq!(w.b.installed(), w.a.installed());
    assert_eq!(sync_status(&w.t.api, &w.eb).await, "in_sync");
    w.t.stop().await;
}

/// `libfoo-ng` replaces `libfoo` (conflicts with it and provides it); `app` needs `libfoo`;
/// `baz` is a bystander.
fn replacement_packages() -> Vec<PackageSpec> {
    vec![
        PackageSpec::new("libfoo", "1-1"),
        PackageSpec::new("libfoo-ng", "1-1")
            .conflicts("libfoo")
            .provides("libfoo")
            .replaces("libfoo"),
        PackageSpec::new("app", "1-1").depends("libfoo"),
        PackageSpec::new("baz", "1-1"),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replacement_syncs_in_one_transaction_and_reverts_with_its_dependent_installed() {
    let w = world(&replacement_packages(), &[]).await;
    for m in [&w.a, &w.b] {
        m.pacman(&["-S", "app"]); // pulls libfoo in as a dependency
    }
    // On A the user swaps in the replacement, answering pacman's conflict question with yes.
    w.a.pacman(&["-S", "--ask", "4", "libfoo-ng"]);
    let before = w.b.installed();
    a_becomes_the_target(&w).await;

    let json = b_runs(&w, "sync", true).await;
    assert_eq!(
        json["plan"]["summary"], "1 to install, 1 to remove",
        "{json}"
    );
    let after = w.b.installed();
    assert_eq!(after, w.a.installed());
    assert!(after.iter().any(|(n, _, _)| n == "app"), "{after:?}");
    assert_eq!(sync_status(&w.t.api, &w.eb).await, "in_sync");

    // Back again: libfoo comes from the repository and pushes libfoo-ng out the same way.
    b_runs(&w, "revert", true).await;
    assert_eq!(w.b.installed(), before);
    w.t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conflict_that_would_remove_a_package_the_plan_keeps_fails_before_anything_changes() {
    let w = world(&replacement_packages(), &[]).await;
    for m in [&w.a, &w.b] {
        m.pacman(&["-S", "app", "baz"]);
    }
    w.a.pacman(&["-S", "--ask", "4", "libfoo-ng"]);
    w.a.pacman(&["-R", "baz"]);
    a_becomes_the_target(&w).await;
    // The pool holds libfoo: the plan installs libfoo-ng and removes baz, but keeps libfoo,
    // which installing libfoo-ng would take away.
    w.t.api
        .put(&format!("/api/pools/{}/policy", w.pool))
        .json(json!({"plugin": "holds", "config": {"ignore": ["libfoo"]}}))
        .await
        .expect(200, None);
    let before = w.b.installed();

    let json = b_runs(&w, "sync", false).await;
    assert_eq!(json["error_code"], "UNPLANNED_REMOVAL", "{json}");
    let message = json["error_message"].as_str().unwrap();
    assert!(message.contains("would remove libfoo"), "{message}");
    assert_eq!(w.b.installed(), before, "nothing changed");

    // A plan that removes nothing (conservative never removes) never lets pacman answer a
    // conflict with yes: pacman refuses, in its own words.
    w.t.api
        .put(&format!("/api/pools/{}/policy", w.pool))
        .json(json!({"plugin": "conservative", "config": {}}))
        .await
        .expect(200, None);
    let json = b_runs(&w, "sync", false).await;
    assert_eq!(json["error_code"], "PACMAN_FAILED", "{json}");
    let message = json["error_message"].as_str().unwrap();
    assert!(message.contains("conflict"), "{message}");
    assert_eq!(w.b.installed(), before, "nothing changed");
    w.t.stop().await;
}

/// `qux` is installed from a file no repository, cache or archive keeps; it has a config file.
fn foreign() -> PackageSpec {
    PackageSpec::new("qux", "1-1")
        .file("usr/bin/qux", "#!/bin/sh\necho qux\n")
        .backup("etc/qux.conf", "setting = default\n")
}

fn install_foreign(w: &World, m: &Machine) {
    let file = w.loose.join("qux-1-1-any.pkg.tar.zst");
    m.pacman(&["-U", file.to_str().unwrap()]);
}

fn rollback_packages(m: &Machine) -> u64 {
    let status = m.pacsync(&["status", "--json"]);
    let json: Value = serde_json::from_slice(&status.stdout).unwrap();
    json["rollback_store"]["packages"].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_package_removed_by_a_sync_comes_back_byte_identical_through_a_revert() {
    let w = world(&[PackageSpec::new("tool", "1-1")], &[foreign()]).await;
    for m in [&w.a, &w.b] {
        install_foreign(&w, m);
    }
    // B's user changed the config file: it is kept as it is on disk.
    let conf = w.b.root.join("etc/qux.conf");
    std::fs::write(&conf, "setting = mine\n").unwrap();
    let program = std::fs::read(w.b.root.join("usr/bin/qux")).unwrap();
    w.a.pacman(&["-R", "qux"]);
    let before = w.b.installed();
    a_becomes_the_target(&w).await;

    b_runs(&w, "sync", true).await;
    assert!(!w.b.root.join("usr/bin/qux").exists());
    assert_eq!(rollback_packages(&w.b), 1);

    b_runs(&w, "revert", true).await;
    assert_eq!(w.b.installed(), before);
    assert_eq!(
        std::fs::read(w.b.root.join("usr/bin/qux")).unwrap(),
        program
    );
    assert_eq!(std::fs::read_to_string(&conf).unwrap(), "setting = mine\n");
    // pacman itself finds every file as it recorded it.
    w.b.pacman(&["-Qkk", "qux"]);

    // Retention: once the two states the store keeps versions for no longer include qux 1-1,
    // the copy goes. (B holds qux again now; two changes later it is gone from both.)
    let config = std::fs::read_to_string(&w.b.config_file).unwrap();
    let two = config.replace("keep_states = 5", "keep_states = 2");
    assert_ne!(two, config, "the registered config names keep_states");
    std::fs::write(&w.b.config_file, two).unwrap();
    w.b.pacman(&["-R", "qux"]);
    assert!(w.b.pacsync(&["report"]).status.success());
    assert_eq!(
        rollback_packages(&w.b),
        1,
        "the state before still names it"
    );
    w.b.pacman(&["-S", "tool"]);
    assert!(w.b.pacsync(&["report"]).status.success());
    assert_eq!(rollback_packages(&w.b), 0);
    w.t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_whose_files_fail_verification_is_not_kept_and_the_revert_says_why() {
    let w = world(&[PackageSpec::new("tool", "1-1")], &[foreign()]).await;
    for m in [&w.a, &w.b] {
        install_foreign(&w, m);
    }
    // Something changed an installed file behind pacman's back.
    std::fs::write(w.b.root.join("usr/bin/qux"), "#!/bin/sh\necho tampered\n").unwrap();
    w.a.pacman(&["-R", "qux"]);
    a_becomes_the_target(&w).await;

    b_runs(&w, "sync", true).await;
    assert_eq!(rollback_packages(&w.b), 0);

    // The host cannot know whether B can still obtain qux 1-1, so it plans the revert; the
    // agent looks everywhere before touching anything, and says why there is no copy.
    let json = b_runs(&w, "revert", false).await;
    assert_eq!(json["error_code"], "PACKAGE_UNAVAILABLE", "{json}");
    let message = json["error_message"].as_str().unwrap();
    assert!(message.contains("qux 1-1"), "{message}");
    assert!(
        message.contains("differ from what pacman recorded"),
        "{message}"
    );
    w.t.stop().await;
}
