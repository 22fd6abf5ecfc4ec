//! The embedded database admits only the host, and the host runs only the compiled plugins it
//! wrote itself. Each test runs the real `pacsync-host` binary on its embedded PostgreSQL, as
//! root (the cluster then belongs to `nobody`), and attacks from outside the host: a local
//! process running as `nobody` connects to the cluster's socket with `psql`, and the files in
//! the plugin cache are modified or swapped while the host is stopped.

mod process;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Output, Stdio};

use pacsync_tests::{Api, Fleet, shared_tempdir, state};
use serde_json::Value;

use process::{Served, admin_token, bounded, postgres_binary};

/// What a warning about a cached artifact that failed its MAC says.
const INTEGRITY_WARNING: &str = "failed its integrity check";

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `psql -c sql` on the cluster's socket as `nobody`, as any local process that does not hold
/// the host's files would; a password goes in the environment, never on the command line.
fn psql_as_nobody(cluster_dir: &Path, database: &str, password: Option<&str>, sql: &str) -> Output {
    let mut command = bounded(60, "runuser");
    command
        .args(["-u", "nobody", "--"])
        .arg(postgres_binary("psql"))
        .arg("-h")
        .arg(cluster_dir)
        .args(["-p", "5432", "-U", "pacsync", "-d", database])
        // -w: never prompt; fail instead.
        .args(["-w", "-X", "-t", "-A", "-c", sql])
        .env_remove("PGPASSWORD")
        .env("PGPASSFILE", "/dev/null")
        .stdin(Stdio::null())
        .current_dir("/");
    if let Some(password) = password {
        command.env("PGPASSWORD", password);
    }
    command.output().expect("run psql")
}

/// Asserts `psql` was turned away for want of the right password.
#[track_caller]
fn assert_refused(output: &Output, why: &str) {
    let stderr = text(&output.stderr);
    assert!(
        !output.status.success(),
        "{why}: psql got in; stdout: {}",
        text(&output.stdout)
    );
    assert!(
        stderr.contains("password"),
        "{why}: refused for another reason: {stderr}"
    );
}

/// The host's copy of the superuser's password, checked to be private to the host.
fn host_password(data_dir: &Path) -> String {
    let file = data_dir.join("postgres-password");
    assert_eq!(mode(&file), 0o600, "{} is private", file.display());
    let password = std::fs::read_to_string(&file).unwrap().trim().to_owned();
    assert!(
        password.len() == 64 && password.bytes().all(|b| b.is_ascii_hexdigit()),
        "32 random bytes, hex: {password:?}"
    );
    password
}

fn assert_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "these tests run as root (see .ci/run): the embedded cluster then belongs to `nobody`"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_user_without_the_password_is_refused_by_the_embedded_database() {
    assert_root();
    let data = shared_tempdir();
    let data_dir = data.path().join("state");
    let mut host = Served::start(&data_dir, &data.path().join("host.log"));
    let api = Api::new(host.base.clone(), admin_token(&data_dir));
    api.create_pool("guarded").await;
    let cluster_dir = data_dir.join("postgres");
    let password = host_password(&data_dir);

    assert_refused(
        &psql_as_nobody(&cluster_dir, "pacsync", None, "SELECT 1"),
        "no password",
    );
    let wrong = psql_as_nobody(
        &cluster_dir,
        "pacsync",
        Some("0123456789abcdef"),
        "SELECT 1",
    );
    assert_refused(&wrong, "a wrong password");
    assert!(
        text(&wrong.stderr).contains("password authentication failed"),
        "{}",
        text(&wrong.stderr)
    );
    // And `nobody` cannot read the host's copy.
    let read = bounded(30, "runuser")
        .args(["-u", "nobody", "--", "cat"])
        .arg(data_dir.join("postgres-password"))
        .current_dir("/")
        .output()
        .unwrap();
    assert!(!read.status.success(), "nobody read the password file");

    // Only the password was missing: with it, the same user on the same socket gets in.
    let admitted = psql_as_nobody(&cluster_dir, "pacsync", Some(&password), "SELECT 1");
    assert!(admitted.status.success(), "{}", text(&admitted.stderr));
    assert_eq!(text(&admitted.stdout).trim(), "1");
    host.stop();
}

/// A cluster made the way hosts made it before passwords existed: `initdb --auth=trust`, owned
/// by `nobody`, with the host's database holding one row. It is left running, as a host that
/// crashed leaves it.
fn trusting_cluster(data_dir: &Path) {
    let cluster_dir = data_dir.join("postgres");
    std::fs::create_dir_all(&cluster_dir).unwrap();
    std::fs::set_permissions(data_dir, std::fs::Permissions::from_mode(0o711)).unwrap();
    std::fs::set_permissions(&cluster_dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let nobody = nix::unistd::User::from_name("nobody").unwrap().unwrap();
    std::os::unix::fs::chown(
        &cluster_dir,
        Some(nobody.uid.as_raw()),
        Some(nobody.gid.as_raw()),
    )
    .unwrap();
    let as_nobody = |program: &str| {
        let mut command = bounded(120, "runuser");
        command
            .args(["-u", "nobody", "--"])
            .arg(postgres_binary(program))
            .current_dir("/")
            .stdin(Stdio::null());
        command
    };
    let initdb = as_nobody("initdb")
        .arg("-D")
        .arg(&cluster_dir)
        .args([
            "-U",
            "pacsync",
            "--auth=trust",
            "--encoding=UTF8",
            "--no-locale",
        ])
        .output()
        .unwrap();
    assert!(initdb.status.success(), "initdb: {}", text(&initdb.stderr));
    let options = format!(
        "-c listen_addresses='' -c unix_socket_directories='{}' -c unix_socket_permissions=0700 -c port=5432",
        cluster_dir.display()
    );
    // The server keeps whatever pg_ctl's output is: it must not be a pipe we wait on.
    let started = as_nobody("pg_ctl")
        .args(["start", "-w", "-t", "60", "-D"])
        .arg(&cluster_dir)
        .arg("-l")
        .arg(cluster_dir.join("postgres.log"))
        .arg("-o")
        .arg(options)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(started.success(), "pg_ctl start");
    for (database, sql) in [
        ("postgres", "CREATE DATABASE pacsync"),
        (
            "pacsync",
            "CREATE TABLE legacy (note text); INSERT INTO legacy VALUES ('kept')",
        ),
    ] {
        let output = psql_as_nobody(&cluster_dir, database, None, sql);
        assert!(output.status.success(), "{sql}: {}", text(&output.stderr));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_embedded_database_made_before_passwords_requires_one_from_the_next_start() {
    assert_root();
    let data = shared_tempdir();
    let data_dir = data.path().join("state");
    let cluster_dir = data_dir.join("postgres");
    trusting_cluster(&data_dir);
    let before = psql_as_nobody(&cluster_dir, "pacsync", None, "SELECT note FROM legacy");
    assert_eq!(
        text(&before.stdout).trim(),
        "kept",
        "the old cluster admits anyone"
    );

    let mut host = Served::start(&data_dir, &data.path().join("host.log"));
    let api = Api::new(host.base.clone(), admin_token(&data_dir));
    api.create_pool("upgraded").await;
    let password = host_password(&data_dir);
    let hba = std::fs::read_to_string(cluster_dir.join("pg_hba.conf")).unwrap();
    let trusting: Vec<&str> = hba
        .lines()
        .filter(|line| {
            let rule = line.split('#').next().unwrap_or_default();
            rule.split_whitespace().any(|field| field == "trust")
        })
        .collect();
    assert!(trusting.is_empty(), "rules still trusting: {trusting:?}");
    assert_refused(
        &psql_as_nobody(&cluster_dir, "pacsync", None, "SELECT note FROM legacy"),
        "no password after the upgrade",
    );
    let kept = psql_as_nobody(
        &cluster_dir,
        "pacsync",
        Some(&password),
        "SELECT note FROM legacy",
    );
    assert_eq!(text(&kept.stdout).trim(), "kept", "{}", text(&kept.stderr));
    host.stop();

    // The next start uses the password as it is.
    let mut host = Served::start(&data_dir, &data.path().join("again.log"));
    let api = Api::new(host.base.clone(), admin_token(&data_dir));
    let pools = api.get("/api/pools").await;
    assert_eq!(pools.expect(200, None).as_array().map(Vec::len), Some(1));
    assert_eq!(host_password(&data_dir), password);
    host.stop();
}

/// The cached artifact of the built-in `id`, found by its component's sha256.
fn artifact(cache: &Path, sha256: &str) -> std::path::PathBuf {
    let found: Vec<_> = std::fs::read_dir(cache)
        .unwrap()
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| {
            path.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(sha256))
        })
        .collect();
    assert_eq!(found.len(), 1, "one artifact for {sha256}: {found:?}");
    found.into_iter().next().unwrap()
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_or_swapped_compiled_plugin_is_compiled_again_and_never_run() {
    assert_root();
    let data = shared_tempdir();
    let data_dir = data.path().join("state");
    let cache = data_dir.join("plugin-cache");
    const BUILTINS: [&str; 3] = ["mirror", "conservative", "holds"];

    let mut host = Served::start(&data_dir, &data.path().join("first.log"));
    let api = Api::new(host.base.clone(), admin_token(&data_dir));
    let mut sha256 = Vec::new();
    for id in BUILTINS {
        let plugin = api.get(&format!("/api/plugins/{id}")).await;
        sha256.push(
            plugin.expect(200, None)["sha256"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    host.stop();
    let [mirror, conservative, holds] = [0, 1, 2].map(|i| artifact(&cache, &sha256[i]));
    for file in [&mirror, &conservative, &holds] {
        assert_eq!(mode(file), 0o600, "{}", file.display());
    }
    assert_eq!(mode(&data_dir.join("plugin-cache-key")), 0o600);

    // Swap two valid artifacts, and flip one bit in the middle of the third.
    let aside = cache.join("aside");
    std::fs::rename(&mirror, &aside).unwrap();
    std::fs::rename(&conservative, &mirror).unwrap();
    std::fs::rename(&aside, &conservative).unwrap();
    let mut bytes = std::fs::read(&holds).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&holds, bytes).unwrap();

    let log = data.path().join("tampered.log");
    let mut host = Served::start(&data_dir, &log);
    let api = Api::new(host.base.clone(), admin_token(&data_dir));
    for id in BUILTINS {
        let plugin = api.get(&format!("/api/plugins/{id}")).await;
        assert_eq!(
            plugin.expect(200, None)["name"],
            id,
            "{id} runs its own code"
        );
    }
    // New pools follow `mirror`: conservative would keep vim and htop as they are.
    let fleet = Fleet::builder(&api)
        .pool("after-tampering")
        .reference(
            "ref",
            state(&[("linux", "6.1-1"), ("vim", "9.1-1"), ("git", "2.40-1")]),
        )
        .member(
            "b",
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
    let op = api
        .as_(&b.token)
        .post(&format!("/api/sync/{}/sync-to-latest", b.id))
        .await;
    assert_eq!(
        actions(op.expect(202, None)),
        [
            ("upgrade".to_owned(), "linux".to_owned()),
            ("downgrade".to_owned(), "vim".to_owned()),
            ("remove".to_owned(), "htop".to_owned())
        ]
    );
    host.stop();
    let logged = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        logged.matches(INTEGRITY_WARNING).count(),
        3,
        "one warning per artifact:\n{logged}"
    );
    for file in [&mirror, &conservative, &holds] {
        assert_eq!(mode(file), 0o600, "rewritten {}", file.display());
    }

    // Compiled again and written back: the next start trusts them.
    let log = data.path().join("rewritten.log");
    let mut host = Served::start(&data_dir, &log);
    host.stop();
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(!logged.contains(INTEGRITY_WARNING), "{logged}");
}
