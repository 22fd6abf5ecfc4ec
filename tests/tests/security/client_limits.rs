//! The limits as the people they limit meet them. The real `pacsync` CLI, rate limited by a real
//! host, waits the `Retry-After` it is told and carries on; turned away by a host that keeps
//! refusing it, it says when to come back once it has waited as long as it may. An admin's
//! event stream ends when its token is revoked, not hours later when the token expires.

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use pacsync_client::config::{AgentConfig, PacmanConfig, RollbackConfig};
use pacsync_tests::{Api, Stream, TestHost, shared_tempdir};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

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

/// A machine whose pacman is a stub reporting one package.
struct Machine {
    _dir: tempfile::TempDir,
    config: PathBuf,
    id: String,
}

impl Machine {
    /// Registered with the host `api` talks to.
    async fn register(api: &Api, pool: &str) -> Self {
        let (id, token) = api.register(pool, "m").await;
        Self::configured(&api.base, &id, &token)
    }

    /// Configured as endpoint `id` of the host at `server`, without asking it.
    fn configured(server: &str, id: &str, token: &str) -> Self {
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
            server: server.to_owned(),
            ca_cert: None,
            endpoint_id: id.parse().unwrap(),
            token: token.to_owned(),
            pacman: PacmanConfig {
                command: pacman.display().to_string(),
                args: Vec::new(),
                cache_dirs: vec![dir.path().to_owned()],
                archive_url: String::new(),
                archive_repositories: Vec::new(),
            },
            rollback: RollbackConfig {
                dir: dir.path().join("rollback"),
                keep_states: 5,
            },
        }
        .save(&config)
        .unwrap();
        Self {
            _dir: dir,
            config,
            id: id.to_owned(),
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

/// A host that turns every request away with 429 `RATE_LIMITED` and `Retry-After: 1`, as a real
/// one does while something else on the machine spends the endpoint's every request, and
/// counts the requests.
struct AlwaysLimited {
    base: String,
    requests: Arc<AtomicUsize>,
}

impl AlwaysLimited {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&requests);
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                tokio::spawn(turn_away(socket, Arc::clone(&counted)));
            }
        });
        Self { base, requests }
    }

    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

/// Reads one request's head, counts it, answers it as the host's rate limit does and closes the
/// connection.
async fn turn_away(mut socket: TcpStream, requests: Arc<AtomicUsize>) {
    let mut head: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match socket.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&chunk[..n]),
        }
    }
    // Counted before it is answered: once the command has its last answer, every request it
    // sent is counted.
    requests.fetch_add(1, Ordering::SeqCst);
    let body = json!({
        "type": "urn:pacsync:problem:rate-limited",
        "title": "Too Many Requests",
        "status": 429,
        "detail": "at most 1 request a second for this endpoint",
        "code": "RATE_LIMITED",
    })
    .to_string();
    let response = format!(
        "HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/problem+json\r\n\
         retry-after: 1\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = socket.write_all(response.as_bytes()).await;
    let _ = socket.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_still_rate_limited_after_its_retries_says_when_to_come_back() {
    let host = AlwaysLimited::start().await;
    let machine = Machine::configured(
        &host.base,
        "11111111-1111-1111-1111-111111111111",
        "stub-token",
    );

    let started = Instant::now();
    let out = machine.pacsync(&["status"]).await;
    let waited = started.elapsed();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{stderr}");
    assert!(
        stderr.contains("rate limited; retry after 1 s"),
        "says when to come back: {stderr}"
    );
    assert!(out.stdout.is_empty(), "{}", text(&out.stdout));
    assert!(
        waited >= Duration::from_secs(3),
        "gave up after {waited:?}, before waiting out three retries of a second"
    );
    assert_eq!(host.requests(), 4, "the request and its three retries");
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
