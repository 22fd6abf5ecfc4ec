//! Admin credentials are recorded and revoked one by one: `pacsync-host token issue | list |
//! revoke` and `GET/DELETE /api/admin-tokens`. A revoked token is refused by every replica
//! within a second, lifetimes are capped at a year, a weak signing key is refused with how to
//! make a strong one, and a token passed as `?access_token=` never reaches the log.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use pacsync_host::auth::{AUDIENCE, Claims, Keys, Role};
use pacsync_tests::{Api, HostProcess, PrivateCluster, Stream, TestHost, shared_tempdir};
use serde_json::Value;

const HOST: &str = env!("CARGO_BIN_EXE_pacsync-host-under-test");
/// What the issue promises: every replica refuses a revoked token within this.
const PROPAGATION: Duration = Duration::from_secs(1);
/// Where nothing listens: commands that must fail before touching a database get this URL.
const NO_DATABASE: &str = "postgres://pacsync@127.0.0.1:1/pacsync";

/// `pacsync-host ARGS` against the database at `url` with the signing key `key`, as an
/// operator on the host's machine runs it (bounded in time).
fn host_cli(args: &[&str], url: &str, key: &Path) -> Output {
    Command::new("timeout")
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

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `token issue --role admin --name NAME`: the token it prints.
fn issue(name: &str, url: &str, key: &Path) -> String {
    let out = host_cli(
        &["token", "issue", "--role", "admin", "--name", name],
        url,
        key,
    );
    assert!(out.status.success(), "token issue {name}: {}", stderr(&out));
    stdout(&out).trim().to_owned()
}

/// A signing key shared by replicas, in its own directory.
fn shared_key() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = shared_tempdir();
    let key = dir.path().join("jwt-secret");
    std::fs::write(&key, "0123456789abcdef0123456789abcdef-shared-secret").unwrap();
    (dir, key)
}

/// The compile cache every test host shares (as `TestHost` does), so built-in policies are
/// compiled once.
fn plugin_cache() -> std::path::PathBuf {
    std::env::temp_dir().join("pacsync-test-plugin-cache")
}

fn replica(url: &str, key: &Path, data_dir: &Path) -> HostProcess {
    let cache = plugin_cache();
    HostProcess::spawn(
        Path::new(HOST),
        &[
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            data_dir.to_str().unwrap(),
            "--jwt-key-file",
            key.to_str().unwrap(),
            "--plugin-cache-dir",
            cache.to_str().unwrap(),
        ],
        &[("PACSYNC_DATABASE_URL", url)],
    )
}

/// Asks `base` with `token` until it answers 401 `TOKEN_REVOKED`; fails after `deadline`.
async fn refused_by(base: &str, token: &str, deadline: Instant) {
    let api = Api::new(base.to_owned(), token.to_owned());
    loop {
        let reply = api.get("/api/pools").await;
        if reply.status.as_u16() == 401 {
            reply.expect(401, Some("TOKEN_REVOKED"));
            return;
        }
        reply.expect(200, None);
        assert!(
            Instant::now() < deadline,
            "{base} still accepts the revoked token {PROPAGATION:?} after the revocation"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// The line of `token list` output naming `name`.
fn listed<'a>(list: &'a str, name: &str) -> Vec<&'a str> {
    list.lines()
        .filter(|line| line.split_whitespace().next() == Some(name))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_revoked_by_name_is_refused_by_every_replica_within_a_second() {
    let cluster = PrivateCluster::start().await;
    let url = cluster.url();
    let (_keys, key) = shared_key();
    let (dir_a, dir_b) = (shared_tempdir(), shared_tempdir());
    let host_a = replica(&url, &key, dir_a.path());
    let host_b = replica(&url, &key, dir_b.path());

    let ops = issue("ops", &url, &key);
    let other = issue("other", &url, &key);
    for base in [&host_a.base, &host_b.base] {
        for token in [&ops, &other] {
            let api = Api::new(base.clone(), token.clone());
            api.get("/api/pools").await.expect(200, None);
        }
    }

    // Listed by name, id and lifetime; never the token itself.
    let out = host_cli(&["token", "list"], &url, &key);
    assert!(out.status.success(), "{}", stderr(&out));
    let list = stdout(&out);
    assert_eq!(listed(&list, "ops").len(), 1, "{list}");
    assert!(listed(&list, "ops")[0].contains("active"), "{list}");
    assert_eq!(listed(&list, "other").len(), 1, "{list}");
    assert!(!list.contains(&ops) && !list.contains(&other), "{list}");
    // A name belongs to one unrevoked token.
    let again = host_cli(
        &["token", "issue", "--role", "admin", "--name", "ops"],
        &url,
        &key,
    );
    assert_eq!(again.status.code(), Some(1), "{}", stderr(&again));
    assert!(
        stderr(&again).contains("already named ops"),
        "{}",
        stderr(&again)
    );
    assert!(stdout(&again).trim().is_empty(), "no token is printed");

    let out = host_cli(&["token", "revoke", "ops"], &url, &key);
    assert!(out.status.success(), "{}", stderr(&out));
    let deadline = Instant::now() + PROPAGATION;
    refused_by(&host_a.base, &ops, deadline).await;
    refused_by(&host_b.base, &ops, deadline).await;
    // The other admin token is untouched, on both replicas.
    for base in [&host_a.base, &host_b.base] {
        let api = Api::new(base.clone(), other.clone());
        api.get("/api/pools").await.expect(200, None);
    }

    let list = stdout(&host_cli(&["token", "list"], &url, &key));
    assert!(listed(&list, "ops")[0].contains("revoked"), "{list}");
    assert!(listed(&list, "other")[0].contains("active"), "{list}");
    // Revoking twice finds nothing; the name is free again.
    let twice = host_cli(&["token", "revoke", "ops"], &url, &key);
    assert_eq!(twice.status.code(), Some(1));
    assert!(stderr(&twice).contains("no unrevoked admin token is named ops"));
    let renewed = issue("ops", &url, &key);
    let api = Api::new(host_b.base.clone(), renewed);
    api.get("/api/pools").await.expect(200, None);
    // A replica started after the revocation refuses the old token from its first request.
    let dir_c = shared_tempdir();
    let host_c = replica(&url, &key, dir_c.path());
    refused_by(&host_c.base, &ops, Instant::now()).await;

    assert!(host_a.terminate().success());
    assert!(host_b.terminate().success());
    assert!(host_c.terminate().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_list_tokens_without_their_secrets_and_revoke_one_over_the_api() {
    let t = TestHost::start().await;
    let api = &t.api;
    let url = t.cluster.url();
    let key = t.host.as_ref().unwrap().state.config.jwt_key_file.clone();
    let ci = issue("ci", &url, &key);
    let ci_api = Api::new(api.base.clone(), ci.clone());
    let pool = ci_api.create_pool("built-by-ci").await;

    let reply = api.get("/api/admin-tokens").await;
    let tokens = reply.expect(200, None).as_array().unwrap().clone();
    let entry = tokens
        .iter()
        .find(|entry| entry["name"] == "ci")
        .unwrap_or_else(|| panic!("ci is listed: {tokens:?}"));
    assert!(entry["token_id"].is_string() && entry["expires_at"].is_string());
    assert_eq!(entry["revoked_at"], Value::Null);
    assert!(
        !reply.body.to_string().contains(&ci),
        "no token in the list"
    );
    // Endpoints neither list nor revoke admin tokens.
    let (_, endpoint) = api.register(&pool, "m").await;
    let endpoint_api = api.as_(&endpoint);
    endpoint_api
        .get("/api/admin-tokens")
        .await
        .expect(403, Some("ADMIN_REQUIRED"));
    endpoint_api
        .delete("/api/admin-tokens/ci")
        .await
        .expect(403, Some("ADMIN_REQUIRED"));

    api.delete("/api/admin-tokens/ci").await.expect(204, None);
    // This replica refuses it at once.
    refused_by(&api.base, &ci, Instant::now()).await;
    api.delete("/api/admin-tokens/ci")
        .await
        .expect(404, Some("ADMIN_TOKEN_NOT_FOUND"));
    api.delete("/api/admin-tokens/nobody")
        .await
        .expect(404, Some("ADMIN_TOKEN_NOT_FOUND"));
    let tokens = api.get("/api/admin-tokens").await;
    let entry = tokens
        .expect(200, None)
        .as_array()
        .unwrap()
        .iter()
        .find(|entry| entry["name"] == "ci")
        .cloned()
        .unwrap();
    assert!(entry["revoked_at"].is_string(), "{entry}");
    assert_eq!(entry["revoked_by"], "admin:test-admin");

    // An admin token without an id (signed before tokens were recorded) could never be revoked
    // on its own: it is refused.
    let now = chrono::Utc::now().timestamp();
    let unrecorded = Keys::load(&key, false).unwrap().sign(&Claims {
        sub: "old-admin".into(),
        role: Role::Admin,
        exp: now + 3600,
        iat: now,
        aud: AUDIENCE.into(),
        generation: None,
        jti: None,
    });
    api.as_(&unrecorded)
        .get("/api/pools")
        .await
        .expect(401, Some("TOKEN_REVOKED"));
    t.stop().await;
}

#[test]
fn a_lifetime_over_a_year_and_a_malformed_name_are_refused_before_anything_is_touched() {
    let (_keys, key) = shared_key();
    let out = host_cli(
        &[
            "token",
            "issue",
            "--role",
            "admin",
            "--name",
            "long",
            "--ttl-hours",
            "8761",
        ],
        NO_DATABASE,
        &key,
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("8760 hours (one year"),
        "{}",
        stderr(&out)
    );
    assert!(stdout(&out).is_empty());
    let out = host_cli(
        &["token", "issue", "--role", "admin", "--name", "two words"],
        NO_DATABASE,
        &key,
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stdout(&out).is_empty());
}

#[test]
fn a_short_signing_key_is_refused_with_how_to_generate_one() {
    let dir = shared_tempdir();
    let key = dir.path().join("weak-key");
    std::fs::write(&key, "0123456789").unwrap();
    let serve = Command::new("timeout")
        .arg("120")
        .arg(HOST)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .arg("--jwt-key-file")
        .arg(&key)
        .env("PACSYNC_DATABASE_URL", NO_DATABASE)
        .env_remove("PACSYNC_CONFIG")
        .output()
        .unwrap();
    let issue = host_cli(
        &["token", "issue", "--role", "admin", "--name", "x"],
        NO_DATABASE,
        &key,
    );
    for out in [serve, issue] {
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        let message = stderr(&out);
        assert!(message.contains("weak-key"), "names the file: {message}");
        assert!(message.contains("at least 32"), "{message}");
        assert!(
            message.contains("openssl rand -hex 32"),
            "says how: {message}"
        );
        assert!(stdout(&out).is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_in_the_query_string_never_reaches_the_log_even_at_trace() {
    let cluster = PrivateCluster::start().await;
    let url = cluster.url();
    let (_keys, key) = shared_key();
    let data = shared_tempdir();
    // Compiling the built-in policies at trace level would log all of cranelift's work: a
    // first start fills the compile cache, so the traced start only loads from it.
    assert!(replica(&url, &key, data.path()).terminate().success());
    let host = Transcribed::spawn(&url, &key, data.path(), "trace");
    let token = issue("dashboard", &url, &key);
    let api = Api::new(host.base.clone(), token.clone());
    let pool = api.create_pool("watched").await;

    let path = format!("/api/sync/pools/{pool}/events");
    let mut stream = Stream::open(
        &host.base,
        &format!("{path}?after=0&access_token={token}"),
        None,
    )
    .await
    .expect("the stream accepts the token in the query");
    assert_eq!(
        stream
            .next_of(&["connected"], Duration::from_secs(10))
            .await["type"],
        "connected"
    );
    // A refused one is logged too.
    let refused = Stream::open(&host.base, &format!("{path}?access_token={token}x"), None).await;
    assert_eq!(refused.err(), Some(401));
    drop(stream);

    let log = host.stop();
    assert!(
        log.contains(&path),
        "the requests were logged at all:\n{log}"
    );
    assert!(log.contains("access_token=REDACTED"), "{log}");
    // Neither the token nor any part of it that identifies it (claims, signature).
    let parts: Vec<&str> = token.split('.').collect();
    for secret in [token.as_str(), parts[1], parts[2]] {
        assert!(!log.contains(secret), "the log holds the token:\n{log}");
    }
}

/// A host process at a given `PACSYNC_LOG` level, everything it writes (stdout and stderr) kept.
struct Transcribed {
    base: String,
    child: Child,
    readers: Vec<JoinHandle<Vec<u8>>>,
}

fn read_all(mut pipe: impl Read) -> Vec<u8> {
    let mut bytes = Vec::new();
    let _ = pipe.read_to_end(&mut bytes);
    bytes
}

impl Transcribed {
    fn spawn(url: &str, key: &Path, data_dir: &Path, level: &str) -> Self {
        let mut child = Command::new(HOST)
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .arg("--jwt-key-file")
            .arg(key)
            .arg("--plugin-cache-dir")
            .arg(plugin_cache())
            .env("PACSYNC_DATABASE_URL", url)
            .env("PACSYNC_LOG", level)
            .env_remove("PACSYNC_CONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn pacsync-host");
        // Both pipes are drained as the host writes, so a chatty log never blocks it.
        let errors = child.stderr.take().unwrap();
        let errors = std::thread::spawn(move || read_all(errors));
        let mut output = BufReader::new(child.stdout.take().unwrap());
        let mut first = String::new();
        output.read_line(&mut first).expect("read host stdout");
        let Some(base) = first
            .trim()
            .strip_prefix("listening on ")
            .map(str::to_owned)
        else {
            let _ = child.kill();
            let _ = child.wait();
            let errors = errors.join().unwrap();
            panic!(
                "host did not start; first line {first:?}; stderr:\n{}",
                String::from_utf8_lossy(&errors)
            );
        };
        let output = std::thread::spawn(move || {
            let mut bytes = first.into_bytes();
            bytes.extend(read_all(output));
            bytes
        });
        Self {
            base,
            child,
            readers: vec![output, errors],
        }
    }

    /// SIGTERM, a clean exit, and everything the process wrote.
    fn stop(mut self) -> String {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
        let status = self.child.wait().expect("wait for host");
        let text: String = self
            .readers
            .drain(..)
            .map(|reader| String::from_utf8_lossy(&reader.join().unwrap()).into_owned())
            .collect();
        assert!(status.success(), "host exited with {status}:\n{text}");
        text
    }
}

impl Drop for Transcribed {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
