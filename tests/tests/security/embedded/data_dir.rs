//! The data directory belongs to one host: a second host on it is refused, a token command
//! opens only a host's existing directory and only as its owner, and a file `nobody` swapped in
//! the cluster directory is refused instead of read by the root host. Nor does a token command
//! change the schema of a database a host of another version may be using.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Output, Stdio};

use pacsync_tests::{Api, PrivateCluster, shared_tempdir};

use super::process::{Served, StopsCluster, admin_token, bounded, refused_start, token_issue};
use super::{runs_as_root, text};

const HOST: &str = env!("CARGO_BIN_EXE_pacsync-host-under-test");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_host_on_the_same_data_directory_is_refused_and_the_first_keeps_serving() {
    if !runs_as_root() {
        return;
    }
    let data = shared_tempdir();
    let data_dir = data.path().join("state");
    let mut host = Served::start(&data_dir, &data.path().join("first.log"));
    let api = Api::new(host.base.clone(), admin_token(&data_dir));
    api.create_pool("kept").await;

    let second = refused_start(&data_dir);
    let said = text(&second.stderr);
    assert!(!second.status.success(), "the second host started: {said}");
    assert!(
        said.contains("another host uses this data directory"),
        "{said}"
    );
    assert!(text(&second.stdout).trim().is_empty(), "it never listened");

    // The first host's database was neither stopped nor touched.
    assert!(data_dir.join("postgres/postmaster.pid").exists());
    let pools = api.get("/api/pools").await;
    assert_eq!(pools.expect(200, None).as_array().map(Vec::len), Some(1));
    // A token command beside it still uses its cluster.
    let api = Api::new(host.base.clone(), admin_token(&data_dir));
    api.get("/api/pools").await.expect(200, None);
    host.stop();
}

#[test]
fn the_token_command_opens_only_an_existing_host_data_directory_and_only_as_its_owner() {
    if !runs_as_root() {
        return;
    }
    let data = shared_tempdir();
    let missing = data.path().join("missing");
    let out = token_issue(&missing);
    let said = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("no host data directory at"), "{said}");
    assert!(
        said.contains("/var/lib/pacsync"),
        "names the unit's: {said}"
    );
    assert!(text(&out.stdout).is_empty());
    assert!(!missing.exists(), "no data directory was made");

    // The host's user's directory: root is told whom to run as, and touches nothing in it.
    let theirs = data.path().join("theirs");
    std::fs::create_dir(&theirs).unwrap();
    let nobody = nix::unistd::User::from_name("nobody").unwrap().unwrap();
    std::os::unix::fs::chown(
        &theirs,
        Some(nobody.uid.as_raw()),
        Some(nobody.gid.as_raw()),
    )
    .unwrap();
    let out = token_issue(&theirs);
    let said = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(
        said.contains("sudo -u nobody"),
        "says whom to run as: {said}"
    );
    assert!(text(&out.stdout).is_empty());
    let made: Vec<_> = std::fs::read_dir(&theirs).unwrap().flatten().collect();
    assert!(made.is_empty(), "made {made:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pg_hba_conf_swapped_for_a_symlink_is_refused_and_what_it_points_to_never_copied() {
    if !runs_as_root() {
        return;
    }
    let data = shared_tempdir();
    let data_dir = data.path().join("state");
    let cluster_dir = data_dir.join("postgres");
    let _cleanup = StopsCluster(data_dir.clone());
    let mut host = Served::start(&data_dir, &data.path().join("first.log"));
    host.stop();

    // A file only root may read, and `nobody`, who owns the cluster directory, points
    // pg_hba.conf at it while the host is stopped.
    const MARKER: &str = "ROOT-ONLY-LINE";
    let secret = data.path().join("root-only");
    std::fs::write(&secret, format!("local all all trust # {MARKER}\n")).unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    let hba = cluster_dir.join("pg_hba.conf");
    let swapped = bounded(30, "runuser")
        .args(["-u", "nobody", "--", "ln", "-sfn"])
        .arg(&secret)
        .arg(&hba)
        .current_dir("/")
        .output()
        .unwrap();
    assert!(swapped.status.success(), "{}", text(&swapped.stderr));

    let refused = refused_start(&data_dir);
    let said = text(&refused.stderr);
    assert!(!refused.status.success(), "the host started: {said}");
    assert!(
        said.contains("pg_hba.conf") && said.contains("symbolic link"),
        "names the file and why: {said}"
    );
    assert!(!said.contains(MARKER), "{said}");
    assert!(
        std::fs::symlink_metadata(&hba).unwrap().is_symlink(),
        "left as it is"
    );
    for entry in std::fs::read_dir(&cluster_dir).unwrap().flatten() {
        let path = entry.path();
        if std::fs::symlink_metadata(&path).unwrap().is_file() {
            let bytes = std::fs::read(&path).unwrap();
            assert!(
                !String::from_utf8_lossy(&bytes).contains(MARKER),
                "{} holds the root-only file's line",
                path.display()
            );
        }
    }
}

/// `pacsync-host token ARGS` on the database at `url`, with the signing key `<dir>/jwt-secret`.
fn token_on(url: &str, dir: &Path, args: &[&str]) -> Output {
    bounded(120, HOST)
        .arg("token")
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .arg("--jwt-key-file")
        .arg(dir.join("jwt-secret"))
        .env("PACSYNC_DATABASE_URL", url)
        .env_remove("PACSYNC_CONFIG")
        .stdin(Stdio::null())
        .output()
        .expect("pacsync-host runs")
}

/// The versions refinery's history records as applied.
async fn applied(db: &sqlx::PgPool) -> Vec<i32> {
    sqlx::query_scalar("SELECT version FROM refinery_schema_history ORDER BY version")
        .fetch_all(db)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_command_refuses_a_database_an_older_host_uses_and_never_migrates_it() {
    // No root needed: the database is an external one, as a host with --database-url uses.
    let cluster = PrivateCluster::start().await;
    let url = cluster.url();
    let options = pacsync_host::db::options_from_url(&url).unwrap();
    // What a host that knew the migrations up to V8 made, by the host's own migrator.
    pacsync_host::db::migrate_up_to(&options, 8).await.unwrap();
    let keys = shared_tempdir();
    pacsync_host::secret_file::create(&keys.path().join("jwt-secret")).unwrap();
    let db = cluster.pool().await;
    assert_eq!(applied(&db).await, (1..=8).collect::<Vec<i32>>());

    let commands: [&[&str]; 3] = [
        &["issue", "--role", "admin", "--name", "upgraded"],
        &["list"],
        &["revoke", "upgraded"],
    ];
    for args in commands {
        let out = token_on(&url, keys.path(), args);
        let said = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {said}");
        assert!(
            said.contains(
                "the database schema is older than this command (missing V9__admin_tokens, V10__state_retention"
            ) && said.contains("start or restart the host first, which migrates it"),
            "{args:?} names what is missing and what to do: {said}"
        );
        assert!(
            text(&out.stdout).is_empty(),
            "{args:?}: {}",
            text(&out.stdout)
        );
    }
    // The older host's schema is as it was: no migration recorded, no table of a later one.
    assert_eq!(applied(&db).await, (1..=8).collect::<Vec<i32>>());
    let admin_tokens: Option<String> =
        sqlx::query_scalar("SELECT to_regclass('admin_tokens')::text")
            .fetch_one(&db)
            .await
            .unwrap();
    assert_eq!(admin_tokens, None, "V9's table was created");

    // Once a host of this version has migrated it, the same command works.
    pacsync_host::db::connect_and_migrate(&options, 1)
        .await
        .unwrap()
        .close()
        .await;
    let out = token_on(&url, keys.path(), commands[0]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(!text(&out.stdout).trim().is_empty(), "the token is printed");
}
