//! The real `pacsync-host` binary: two replicas on one database, and the embedded database's
//! start / stop / restart cycle.

use std::path::Path;

use pacsync_tests::{Api, HostProcess, PrivateCluster, shared_tempdir};

const HOST: &str = env!("CARGO_BIN_EXE_pacsync-host-under-test");

/// An admin token recorded in the host's database: `url`'s, or the embedded one in `data_dir`.
fn admin_token(data_dir: &Path, key_file: Option<&Path>, url: Option<&str>) -> String {
    let mut command = std::process::Command::new(HOST);
    command
        .args(["token", "issue", "--role", "admin", "--data-dir"])
        .arg(data_dir);
    if let Some(key) = key_file {
        command.arg("--jwt-key-file").arg(key);
    }
    if let Some(url) = url {
        command.env("PACSYNC_DATABASE_URL", url);
    }
    let out = command.output().expect("token issue runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_host_processes_on_one_database_behave_as_one_service() {
    let cluster = PrivateCluster::start().await;
    let shared = shared_tempdir();
    let key = shared.path().join("jwt-secret");
    std::fs::write(&key, "0123456789abcdef0123456789abcdef-shared-secret").unwrap();
    let (dir_a, dir_b) = (shared_tempdir(), shared_tempdir());
    let url = cluster.url();
    let spawn = |dir: &Path| {
        HostProcess::spawn(
            Path::new(HOST),
            &[
                "--listen",
                "127.0.0.1:0",
                "--data-dir",
                dir.to_str().unwrap(),
                "--jwt-key-file",
                key.to_str().unwrap(),
            ],
            &[("PACSYNC_DATABASE_URL", url.as_str())],
        )
    };
    let host_a = spawn(dir_a.path());
    let host_b = spawn(dir_b.path());
    let admin = admin_token(dir_a.path(), Some(&key), Some(&url));
    let a = Api::new(host_a.base.clone(), admin.clone());
    let b = Api::new(host_b.base.clone(), admin);

    // `systemctl reload` sends SIGHUP: a plain-HTTP host has nothing to reload and keeps serving.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(host_a.pid() as i32),
        nix::sys::signal::Signal::SIGHUP,
    )
    .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let pool = a.create_pool("replicated").await;
    let (reference, reference_token) = a.register(&pool, "ref").await;
    let (endpoint, token) = b.register(&pool, "m").await;
    a.report(&reference, &reference_token, &[("linux", "6.1-1")])
        .await
        .expect(200, None);
    b.set_as_latest(&reference, &reference_token)
        .await
        .expect(202, None);
    b.report(&endpoint, &token, &[("linux", "6.0-1")])
        .await
        .expect(200, None);

    // Created through A ...
    let op = a
        .as_(&token)
        .post(&format!("/api/sync/{endpoint}/sync-to-latest"))
        .await;
    let id = op.expect(202, None)["operation_id"]
        .as_str()
        .unwrap()
        .to_owned();
    // ... visible through B, and conflicting there too ...
    assert_eq!(
        b.get(&format!("/api/sync/operations/{id}"))
            .await
            .expect(200, None)["status"],
        "pending"
    );
    b.as_(&token)
        .post(&format!("/api/sync/{endpoint}/sync-to-latest"))
        .await
        .expect(409, Some("OPERATION_CONFLICT"));
    // ... and cancellable through B.
    let cancelled = b.post(&format!("/api/sync/operations/{id}/cancel")).await;
    assert_eq!(cancelled.expect(200, None)["status"], "cancelled");
    assert_eq!(
        a.get(&format!("/api/sync/operations/{id}"))
            .await
            .expect(200, None)["status"],
        "cancelled"
    );

    assert!(host_a.terminate().success());
    assert!(host_b.terminate().success());
}

#[tokio::test]
async fn embedded_database_starts_stops_cleanly_and_keeps_data() {
    let data = shared_tempdir();
    let data_dir = data.path().join("state");
    let args = [
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        data_dir.to_str().unwrap(),
    ];
    // Make sure no external database leaks in from the environment.
    let env = [("PACSYNC_DATABASE_URL", "")];

    let host = HostProcess::spawn(Path::new(HOST), &args, &env);
    let api = Api::new(host.base.clone(), admin_token(&data_dir, None, None));
    let pool = api.create_pool("survives-restarts").await;
    let cluster_dir = data_dir.join("postgres");
    assert!(cluster_dir.join("PG_VERSION").exists());
    assert!(
        cluster_dir.join("postmaster.pid").exists(),
        "cluster runs while the host runs"
    );
    // Unix socket only: nothing listens on TCP for PostgreSQL.
    let conf = std::fs::read_to_string(cluster_dir.join("postmaster.opts")).unwrap();
    assert!(conf.contains("listen_addresses="), "{conf}");

    // The built-in policies were compiled once and kept for the next start.
    let compiled = std::fs::read_dir(data_dir.join("plugin-cache"))
        .unwrap()
        .count();
    assert_eq!(compiled, 3, "one compiled artifact per built-in policy");

    assert!(host.terminate().success(), "clean exit on SIGTERM");
    assert!(
        !cluster_dir.join("postmaster.pid").exists(),
        "cluster stopped with the host"
    );

    let host = HostProcess::spawn(Path::new(HOST), &args, &env);
    let api = Api::new(host.base.clone(), admin_token(&data_dir, None, None));
    let reply = api.get(&format!("/api/pools/{pool}")).await;
    assert_eq!(reply.expect(200, None)["name"], "survives-restarts");
    assert!(host.terminate().success());
}

#[test]
fn vercmp_subcommand_prints_like_pacman() {
    for (a, b, expected) in [
        ("1.0", "1.0-1", "0"),
        ("1.0a", "1.0", "-1"),
        ("1:1.0", "2.0", "1"),
    ] {
        let out = std::process::Command::new(HOST)
            .args(["vercmp", a, b])
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8(out.stdout).unwrap().trim(),
            expected,
            "{a} {b}"
        );
        let real = std::process::Command::new("vercmp")
            .args([a, b])
            .output()
            .expect("pacman's vercmp");
        assert_eq!(
            String::from_utf8(real.stdout).unwrap().trim(),
            expected,
            "pacman agrees on {a} {b}"
        );
    }
}

#[test]
fn bad_configuration_fails_with_a_message() {
    let dir = shared_tempdir();
    let config = dir.path().join("host.toml");
    std::fs::write(&config, "lisen = \"x\"\n").unwrap();
    let out = std::process::Command::new(HOST)
        .args(["serve", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid config file"));
    let out = std::process::Command::new(HOST)
        .args([
            "serve",
            "--database-url",
            "postgres://user:hunter2@127.0.0.1:1/db",
            "--data-dir",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("hunter2"), "password leaked: {stderr}");
}
