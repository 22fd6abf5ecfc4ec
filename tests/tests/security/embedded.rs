//! The embedded database admits only the host, only the host starts, secures and stops it, and
//! the host runs only the compiled plugins it wrote itself. Each test runs the real
//! `pacsync-host` binary on its embedded PostgreSQL, as root (the cluster then belongs to
//! `nobody`), and attacks from outside the host: a local process running as `nobody` connects
//! to the cluster's socket with `psql` or replaces files in the cluster directory, a second
//! host or a token command runs beside the host, and the files in the plugin cache are
//! modified or swapped while the host is stopped.

mod data_dir;
mod plugin_cache;
mod process;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use pacsync_tests::{Api, postgres_binary, shared_tempdir};

use process::{Served, StopsCluster, admin_token, bounded, refused_start, token_issue};

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

/// Whether the test can run: it needs root, to run the host as root (the cluster then belongs
/// to `nobody`) and to act as `nobody` against it. CI and this project's machines run as root;
/// elsewhere the test says it was skipped rather than pass silently.
fn runs_as_root() -> bool {
    let root = nix::unistd::geteuid().is_root();
    if !root {
        eprintln!(
            "SKIPPED: needs root (the embedded cluster is run as `nobody` only by a root host)"
        );
    }
    root
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_user_without_the_password_is_refused_by_the_embedded_database() {
    if !runs_as_root() {
        return;
    }
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

/// A PostgreSQL program run as `nobody`, bounded in time.
fn as_nobody(program: &str) -> Command {
    let mut command = bounded(120, "runuser");
    command
        .args(["-u", "nobody", "--"])
        .arg(postgres_binary(program))
        .current_dir("/")
        .stdin(Stdio::null());
    command
}

/// Stops the cluster as its old host does when it stops (fast shutdown).
fn stop_as_nobody(cluster_dir: &Path) {
    let stopped = as_nobody("pg_ctl")
        .args(["stop", "-w", "-m", "fast", "-D"])
        .arg(cluster_dir)
        .output()
        .unwrap();
    assert!(
        stopped.status.success(),
        "pg_ctl stop: {}",
        text(&stopped.stderr)
    );
}

/// A cluster made the way hosts made it before passwords existed: `initdb --auth=trust`, owned
/// by `nobody`, with the host's database holding one row. It is left running, as its old host
/// leaves it while it runs.
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
    if !runs_as_root() {
        return;
    }
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
    // Upgrading stops the old host, and with it its cluster; the new host then secures it.
    stop_as_nobody(&cluster_dir);

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_embedded_database_without_a_password_is_never_stopped_to_secure_it() {
    if !runs_as_root() {
        return;
    }
    let data = shared_tempdir();
    let data_dir = data.path().join("state");
    let cluster_dir = data_dir.join("postgres");
    let _cleanup = StopsCluster(data_dir.clone());
    // Running: whoever runs it (an old host) would lose its database if it were stopped.
    trusting_cluster(&data_dir);

    let refused = refused_start(&data_dir);
    let said = text(&refused.stderr);
    assert!(!refused.status.success(), "the host started: {said}");
    assert!(
        said.contains("the embedded database is running without a password")
            && said.contains("systemctl stop pacsync-host"),
        "says what to do: {said}"
    );
    assert!(text(&refused.stdout).trim().is_empty(), "it never listened");
    // Nor does a token command (the host made the signing key before it refused).
    let issued = token_issue(&data_dir);
    let said = text(&issued.stderr);
    assert_eq!(issued.status.code(), Some(1), "{said}");
    assert!(said.contains("running without a password"), "{said}");
    assert!(
        text(&issued.stdout).trim().is_empty(),
        "no token is printed"
    );

    // Still running, still as it was: its user still gets in, and no password was made.
    assert!(cluster_dir.join("postmaster.pid").exists(), "still running");
    let after = psql_as_nobody(&cluster_dir, "pacsync", None, "SELECT note FROM legacy");
    assert_eq!(
        text(&after.stdout).trim(),
        "kept",
        "{}",
        text(&after.stderr)
    );
    assert!(!data_dir.join("postgres-password").exists());
    assert!(!data_dir.join("postgres-password.new").exists());
}
