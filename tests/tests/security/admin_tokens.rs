//! Admin credentials are recorded and revoked one by one: `pacsync-host token issue | list |
//! revoke` and `GET/DELETE /api/admin-tokens`. A revoked token is refused by every replica
//! within a second, lifetimes are capped at a year, a weak signing key is refused with how to
//! make a strong one, and a token passed as `?access_token=` never reaches the log.

mod api;
mod query_string;
mod refusals;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use pacsync_tests::{Api, HostProcess, PrivateCluster, shared_tempdir};

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
