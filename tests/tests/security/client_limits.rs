//! The limits as the people they limit meet them. The real `pacsync` CLI, rate limited by a real
//! host, waits the `Retry-After` it is told and carries on, and says when to come back once it
//! has waited as long as it may. An admin's event stream ends when its token is revoked, not
//! hours later when the token expires.

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use pacsync_client::config::{AgentConfig, PacmanConfig};
use pacsync_tests::{Api, Stream, TestHost, shared_tempdir};

const PACSYNC: &str = env!("CARGO_BIN_EXE_pacsync-under-test");
const HOST: &str = env!("CARGO_BIN_EXE_pacsync-host-under-test");
// A bound on waits, not a timing claim: generous for loaded CI machines.
const WAIT: Duration = Duration::from_secs(30);

/// A host letting each endpoint send two requests at once, then one a second.
async fn strict_host() -> TestHost {
    TestHost::start_with(|s| {
        s.rate_limit_endpoint_per_second = Some(1);
        s.rate_limit_endpoint_burst = Some(2);
    })
    .await
}

/// A registered machine whose pacman is a stub reporting one package.
struct Machine {
    _dir: tempfile::TempDir,
    config: PathBuf,
    id: String,
    token: String,
}

impl Machine {
    async fn register(api: &Api, pool: &str) -> Self {
        let (id, token) = api.register(pool, "m").await;
        let dir = shared_tempdir();
        let pacman = dir.path().join("pacman");
        std::fs::write(
            &pacman,
            "#!/bin/sh\ncase \"$1\" in\n--version) echo 'Pacman v7.0.0 - libalpm v15.0.0' ;;\n-Q) echo 'linux 6.0-1' ;;\nesac\n",
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&pacman, std::fs::Permissions::from_mode(0o755)).unwrap();
        let config = dir.path().join("agent.toml");
        AgentConfig {
            server: api.base.clone(),
            ca_cert: None,
            endpoint_id: id.parse().unwrap(),
            token: token.clone(),
            pacman: PacmanConfig {
                command: pacman.display().to_string(),
                args: Vec::new(),
                cache_dirs: vec![dir.path().to_owned()],
                archive_url: String::new(),
                archive_repositories: Vec::new(),
            },
        }
        .save(&config)
        .unwrap();
        Self {
            _dir: dir,
            config,
            id,
            token,
        }
    }

    /// `pacsync ARGS` to its end.
    async fn pacsync(&self, args: &[&str]) -> Output {
        let run = tokio::process::Command::new(PACSYNC)
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output();
        tokio::time::timeout(WAIT, run)
            .await
            .unwrap_or_else(|_| panic!("pacsync {args:?} ends"))
            .unwrap()
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_commands_faster_than_the_endpoint_rate_wait_their_turn_and_all_succeed() {
    let t = strict_host().await;
    let api = &t.api;
    let pool = api.create_pool("patient").await;
    let machine = Machine::register(api, &pool).await;

    let started = Instant::now();
    let commands: [&[&str]; 6] = [
        &["report"],
        &["status"],
        &["ops"],
        &["report"],
        &["status", "--json"],
        &["ops"],
    ];
    for args in commands {
        let out = machine.pacsync(args).await;
        assert!(
            out.status.success(),
            "pacsync {args:?} exited {:?}: {}",
            out.status.code(),
            text(&out.stderr)
        );
    }
    // Six requests at two at once and one a second after that: the host turned some away, and
    // the commands waited instead of failing.
    assert!(
        started.elapsed() >= Duration::from_secs(3),
        "six requests passed in {:?}",
        started.elapsed()
    );
    let endpoint = api.get(&format!("/api/endpoints/{}", machine.id)).await;
    assert!(
        endpoint.expect(200, None)["current_state_id"].is_string(),
        "the reports were recorded"
    );
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_still_rate_limited_after_its_retries_says_when_to_come_back() {
    let t = strict_host().await;
    let api = &t.api;
    let pool = api.create_pool("crowded").await;
    let machine = Machine::register(api, &pool).await;
    // Something else on the machine spends the endpoint's every request as soon as it refills.
    let stop = Arc::new(AtomicBool::new(false));
    let mut flooders = Vec::new();
    for _ in 0..3 {
        let (api, token, stop) = (api.clone(), machine.token.clone(), stop.clone());
        flooders.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                api.as_(&token).get("/api/sync/health").await;
            }
        }));
    }
    let deadline = Instant::now() + WAIT;
    while api.as_(&machine.token).get("/api/sync/health").await.status != 429 {
        assert!(
            Instant::now() < deadline,
            "the flood never reached the limit"
        );
    }

    let started = Instant::now();
    let out = machine.pacsync(&["status"]).await;
    let waited = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    for flooder in flooders {
        flooder.await.unwrap();
    }
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{stderr}");
    assert!(
        stderr.contains("rate limited; retry after 1 s"),
        "says when to come back: {stderr}"
    );
    assert!(out.stdout.is_empty(), "{}", text(&out.stdout));
    assert!(
        waited >= Duration::from_secs(3),
        "gave up after {waited:?}, before waiting out three retries"
    );
    // Once the machine is quiet, the same command goes through.
    let out = machine.pacsync(&["status"]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    t.stop().await;
}

/// `pacsync-host ARGS` against the database at `url` with the signing key `key`, as an
/// operator on the host's machine runs it.
fn host_cli(args: &[&str], url: &str, key: &Path) -> Output {
    std::process::Command::new("timeout")
        .arg("120")
        .arg(HOST)
        .args(args)
        .arg("--jwt-key-file")
        .arg(key)
        .arg("--data-dir")
        .arg(key.parent().unwrap())
        .env("PACSYNC_DATABASE_URL", url)
        .env_remove("PACSYNC_CONFIG")
        .stdin(Stdio::null())
        .output()
        .expect("pacsync-host runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_stream_closes_with_1008_once_its_token_is_revoked() {
    let t = TestHost::start_with(|s| s.ws_ping_ms = Some(200)).await;
    let api = &t.api;
    let key = t.host.as_ref().unwrap().state.config.jwt_key_file.clone();
    let out = host_cli(
        &["token", "issue", "--role", "admin", "--name", "dashboard"],
        &t.cluster.url(),
        &key,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let dashboard = text(&out.stdout).trim().to_owned();
    let pool = api.create_pool("watched").await;
    let path = format!("/api/sync/pools/{pool}/events");
    let mut revoked = Stream::open(&api.base, &path, Some(dashboard.as_str()))
        .await
        .unwrap();
    revoked.next_of(&["connected"], WAIT).await;
    let mut kept = Stream::open(&api.base, &path, Some(api.admin.as_str()))
        .await
        .unwrap();
    kept.next_of(&["connected"], WAIT).await;
    // Open across a few keepalive pings before the revocation.
    assert!(!revoked.ended_within(Duration::from_millis(600)).await);

    api.delete("/api/admin-tokens/dashboard")
        .await
        .expect(204, None);
    // The token lives an hour more; the stream ends within a few pings of 200 ms.
    let closed = revoked.close_frame(Duration::from_secs(5)).await;
    assert_eq!(closed, Some((1008, "token revoked".to_owned())));
    // Another admin's stream goes on.
    assert!(!kept.ended_within(Duration::from_millis(600)).await);
    kept.send(serde_json::json!({"type": "ping"})).await;
    assert_eq!(kept.next_of(&["pong"], WAIT).await["type"], "pong");
    t.stop().await;
}
