//! The agent trusts no plan blindly. It runs pacman as root, so whoever can answer as the host
//! (a compromised host, a stolen host certificate) must not be able to turn a plan into a pacman
//! option or a path. A stub host of a few lines serves crafted plans to the real `pacsync agent`,
//! whose `pacman.command` is a wrapper that only records its arguments: the crafted plans fail
//! as `INVALID_PLAN`, naming the entry, and never reach the wrapper; a valid plan does, with
//! `--` before every target. Registration takes the enrollment token from a file or the
//! environment, so it never has to be in the process list.

mod stub_host;

use std::path::{Path, PathBuf};
use std::time::Duration;

use pacsync_tests::{TestHost, shared_tempdir};
use serde_json::{Value, json};

use stub_host::{ENDPOINT, StubHost};

const PACSYNC: &str = env!("CARGO_BIN_EXE_pacsync-under-test");

/// What the agent's state report asks pacman: the only calls allowed for a refused plan.
const READ_ONLY: [&[&str]; 5] = [&["--version"], &["-Sl"], &["-Q"], &["-Qqe"], &["-Qi"]];

/// A machine whose pacman is a wrapper that records each call's arguments and does nothing.
struct Machine {
    _dir: tempfile::TempDir,
    config: PathBuf,
    cache: PathBuf,
    log: PathBuf,
}

impl Machine {
    fn new(server: &str) -> Self {
        let dir = shared_tempdir();
        let (cache, log) = (dir.path().join("cache"), dir.path().join("pacman-calls"));
        std::fs::create_dir_all(&cache).unwrap();
        // The package database the conflict dry run copies (empty: the wrapper installs nothing).
        let db = dir.path().join("db");
        std::fs::create_dir_all(db.join("local")).unwrap();
        let wrapper = dir.path().join("pacman");
        std::fs::write(
            &wrapper,
            format!(
                "#!/bin/sh\nfor arg in \"$@\"; do printf '%s\\t' \"$arg\"; done >> '{log}'\nprintf '\\n' >> '{log}'\n\
                 [ \"$*\" = \"--dbpath={db} -Q\" ] && echo 'foo 1.0-1'\nexit 0\n",
                log = log.display(),
                db = db.display()
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
        let config = dir.path().join("agent.toml");
        std::fs::write(
            &config,
            format!(
                "server = {server:?}\nendpoint_id = {ENDPOINT:?}\ntoken = \"stub-token\"\n\n[pacman]\n\
                 command = {:?}\nargs = [{:?}]\ncache_dirs = [{:?}]\narchive_url = \"\"\narchive_repositories = []\n\n\
                 [rollback]\ndir = {:?}\n",
                wrapper.display().to_string(),
                format!("--dbpath={}", db.display()),
                cache.display().to_string(),
                dir.path().join("rollback").display().to_string(),
            ),
        )
        .unwrap();
        Self {
            _dir: dir,
            config,
            cache,
            log,
        }
    }

    /// Runs `pacsync agent --once` to its end; its stderr.
    async fn agent_once(&self) -> String {
        let run = tokio::process::Command::new(PACSYNC)
            .arg("--config")
            .arg(&self.config)
            .args(["agent", "--once"])
            .kill_on_drop(true)
            .output();
        let out = tokio::time::timeout(Duration::from_secs(60), run)
            .await
            .expect("the agent finishes within a minute")
            .unwrap();
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// The arguments of every pacman call so far.
    fn pacman_calls(&self) -> Vec<Vec<String>> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(|line| {
                let line = line.strip_suffix('\t').unwrap_or(line);
                // Every call starts with the configured `--dbpath`; what follows is the call.
                line.split('\t')
                    .skip_while(|arg| arg.starts_with("--dbpath=") && !arg.contains("dry-run"))
                    .map(str::to_owned)
                    .collect()
            })
            .collect()
    }
}

fn plan(actions: Value) -> Value {
    json!({ "actions": actions, "skipped": [], "summary": "crafted" })
}

#[tokio::test]
async fn crafted_plans_fail_as_invalid_plan_naming_the_entry_and_never_reach_pacman() {
    let crafted = [
        (
            "a name pacman would read as an option",
            json!([{ "kind": "remove", "name": "-dd" }]),
            "remove \"-dd\"",
        ),
        (
            "a name that is a path",
            json!([{ "kind": "install", "name": "/tmp/x", "from_version": null, "to_version": "1.0-1", "reason": "explicit" }]),
            "install \"/tmp/x\"",
        ),
        (
            "a version that climbs out of the cache",
            json!([{ "kind": "install", "name": "foo", "from_version": null, "to_version": "1/../../../../tmp/x", "reason": "explicit" }]),
            "install \"foo\"",
        ),
        (
            "a name planned twice",
            json!([
                { "kind": "install", "name": "foo", "from_version": null, "to_version": "1.0-1", "reason": "explicit" },
                { "kind": "remove", "name": "foo", "from_version": "1.0-1", "to_version": null, "reason": null },
            ]),
            "remove \"foo\"",
        ),
        (
            "a kind the agent does not know",
            json!([{ "kind": "purge", "name": "foo" }]),
            "purge \"foo\"",
        ),
    ];
    for (case, actions, entry) in crafted {
        let host = StubHost::start(plan(actions)).await;
        let machine = Machine::new(&host.base);
        let stderr = machine.agent_once().await;
        let calls = host.calls();

        let failed = host.transitions("fail");
        assert_eq!(
            failed.len(),
            1,
            "{case}: the operation is failed once; calls {calls:#?}; agent: {stderr}"
        );
        assert_eq!(failed[0]["code"], "INVALID_PLAN", "{case}: {}", failed[0]);
        let message = failed[0]["message"].as_str().unwrap_or_default();
        assert!(message.contains(entry), "{case}: {message:?} names {entry}");
        for action in ["progress", "complete"] {
            assert!(
                host.transitions(action).is_empty(),
                "{case}: no work started, yet the agent posted {action}"
            );
        }
        let beyond_reading: Vec<Vec<String>> = machine
            .pacman_calls()
            .into_iter()
            .filter(|argv| !READ_ONLY.iter().any(|query| argv == query))
            .collect();
        assert!(
            beyond_reading.is_empty(),
            "{case}: pacman was only asked for the state report, yet got {beyond_reading:?}"
        );
    }
}

#[tokio::test]
async fn a_valid_plan_reaches_pacman_with_every_target_after_a_double_dash() {
    let host = StubHost::start(plan(json!([
        { "kind": "install", "name": "bar", "from_version": null, "to_version": "1.0-1", "reason": "explicit" },
        { "kind": "remove", "name": "foo", "from_version": "1.0-1", "to_version": null, "reason": null },
    ])))
    .await;
    let machine = Machine::new(&host.base);
    let file = machine.cache.join("bar-1.0-1-any.pkg.tar.zst");
    std::fs::write(&file, "").unwrap();
    let stderr = machine.agent_once().await;

    assert!(
        host.transitions("fail").is_empty(),
        "{:#?}; agent: {stderr}",
        host.calls()
    );
    assert_eq!(host.transitions("complete").len(), 1, "agent: {stderr}");
    let calls = machine.pacman_calls();
    let file = file.display().to_string();
    // bar comes from the cache. The plan removes foo (which the wrapper says is installed), so
    // conflicts may be answered after a dry run on a scratch database, and foo, which no source
    // keeps, is verified before a copy of it is kept.
    let dry_run = calls
        .iter()
        .find(|argv| argv.iter().any(|a| a == "--dbonly"))
        .expect("a dry run");
    assert!(
        dry_run.ends_with(&[
            "-U".into(),
            "--dbonly".into(),
            "--noconfirm".into(),
            "--ask".into(),
            "4".into(),
            "--".into(),
            file.clone()
        ]),
        "{dry_run:?}"
    );
    // In this order: the dry run and the copy before the transaction, reasons before removals.
    let position = |expected: &[&str]| {
        calls
            .iter()
            .position(|argv| argv == expected)
            .unwrap_or_else(|| panic!("pacman was called with {expected:?}; calls: {calls:?}"))
    };
    let order = [
        calls.iter().position(|argv| argv == dry_run).unwrap(),
        position(&["-v", "-Qkk", "--", "foo"]),
        position(&["-U", "--noconfirm", "--ask", "4", "--", file.as_str()]),
        position(&["-D", "--asexplicit", "--", "bar"]),
        position(&["-R", "--noconfirm", "--", "foo"]),
    ];
    assert!(order.is_sorted(), "{order:?}; calls: {calls:?}");
}

/// `pacsync register` as `name` with `token_source` applied; (exit code, stderr, config written).
async fn register(
    base: &str,
    config: &Path,
    name: &str,
    token_source: impl FnOnce(&mut tokio::process::Command),
) -> (Option<i32>, String, Option<String>) {
    let mut command = tokio::process::Command::new(PACSYNC);
    command
        .arg("--config")
        .arg(config)
        .args(["register", "--server", base, "--name", name])
        .env_remove("PACSYNC_ENROLLMENT_TOKEN")
        .kill_on_drop(true);
    token_source(&mut command);
    let out = tokio::time::timeout(Duration::from_secs(60), command.output())
        .await
        .expect("register finishes")
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        std::fs::read_to_string(config).ok(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registering_takes_the_token_from_a_file_or_the_environment_never_from_argv() {
    let t = TestHost::start().await;
    let api = &t.api;
    let pool = api.create_pool("laptops").await;
    let dir = shared_tempdir();

    // From a file, as `echo` leaves it: with a trailing newline.
    let token = api.enrollment_token(&pool).await;
    let file = dir.path().join("enrollment-token");
    std::fs::write(&file, format!("{token}\n")).unwrap();
    let config = dir.path().join("from-file.toml");
    let (code, stderr, written) = register(&api.base, &config, "from-file", |c| {
        c.arg("--enrollment-token-file").arg(&file);
        assert!(
            !c.as_std()
                .get_args()
                .any(|a| a.to_string_lossy().contains(&token)),
            "the token is not in argv"
        );
    })
    .await;
    assert_eq!(code, Some(0), "{stderr}");
    let written = written.expect("config written");
    assert!(
        !written.contains(&token),
        "only the endpoint's own token is kept"
    );
    let endpoint = written
        .lines()
        .find_map(|l| l.strip_prefix("endpoint_id = "))
        .unwrap()
        .trim_matches('"')
        .to_owned();
    let registered = api.get(&format!("/api/endpoints/{endpoint}")).await;
    assert_eq!(registered.expect(200, None)["pool_id"], pool.as_str());

    // From the environment.
    let token = api.enrollment_token(&pool).await;
    let config = dir.path().join("from-env.toml");
    let (code, stderr, written) = register(&api.base, &config, "from-env", |c| {
        c.env("PACSYNC_ENROLLMENT_TOKEN", &token);
    })
    .await;
    assert_eq!(code, Some(0), "{stderr}");
    assert!(written.is_some());

    // Two sources, or none: a usage error, and nothing registered or written.
    let config = dir.path().join("two.toml");
    let (code, stderr, written) = register(&api.base, &config, "two", |c| {
        c.env("PACSYNC_ENROLLMENT_TOKEN", "pse_other")
            .arg("--enrollment-token-file")
            .arg(&file);
    })
    .await;
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--enrollment-token-file"), "{stderr}");
    assert!(written.is_none());
    let config = dir.path().join("none.toml");
    let (code, stderr, written) = register(&api.base, &config, "none", |_| {}).await;
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--enrollment-token"), "{stderr}");
    assert!(written.is_none());

    // An empty token file is refused before the host is asked.
    let empty = dir.path().join("empty-token");
    std::fs::write(&empty, "\n").unwrap();
    let config = dir.path().join("empty.toml");
    let (code, stderr, written) = register(&api.base, &config, "empty", |c| {
        c.arg("--enrollment-token-file").arg(&empty);
    })
    .await;
    assert_eq!(code, Some(2), "{stderr}");
    assert!(written.is_none());
    let endpoints = api.get(&format!("/api/endpoints?pool_id={pool}")).await;
    let endpoints = endpoints.expect(200, None);
    let count = endpoints.as_array().map_or(0, Vec::len);
    assert_eq!(count, 2, "only the two good registrations: {endpoints}");
    t.stop().await;
}
