//! HTTPS and WSS: a host serving its own certificate (issued by a private CA made here), the
//! real `pacsync` CLI trusting that CA with `--ca-cert`, and the agent's event stream over
//! `wss://`. Also what happens without the CA, with a bad CA file and with a bad key pair; and
//! the host's own connections to an external PostgreSQL that requires TLS.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use pacsync_client::config::AgentConfig;
use pacsync_client::stream::{Event, EventStream};
use pacsync_core::ServerMessage;
use pacsync_host::config::{Config, Settings};
use pacsync_host::db::DatabaseSetupError;
use pacsync_host::server::{Host, StartError};
use pacsync_host::tls::TlsError;
use pacsync_tests::{Api, HostProcess, PrivateCluster, TestHost, shared_tempdir, test_settings};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

const PACSYNC: &str = env!("CARGO_BIN_EXE_pacsync-under-test");
const HOST: &str = env!("CARGO_BIN_EXE_pacsync-host-under-test");

/// A private CA, a `localhost` certificate it issued, and that certificate's key; plus a key
/// that belongs to nothing.
struct Pki {
    _dir: tempfile::TempDir,
    issuer: Issuer<'static, KeyPair>,
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
    stray_key: PathBuf,
    /// DER of the certificate now in `cert`.
    cert_der: Vec<u8>,
}

fn pki() -> Pki {
    let dir = shared_tempdir();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "pacsync test CA");
    let ca_key = KeyPair::generate().unwrap();
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let write = |name: &str, pem: String| {
        let path = dir.path().join(name);
        std::fs::write(&path, pem).unwrap();
        path
    };
    let mut pki = Pki {
        issuer: Issuer::new(ca_params, ca_key),
        ca: write("ca.pem", ca_cert.pem()),
        cert: dir.path().join("cert.pem"),
        key: dir.path().join("key.pem"),
        stray_key: write("stray.pem", KeyPair::generate().unwrap().serialize_pem()),
        cert_der: Vec::new(),
        _dir: dir,
    };
    pki.renew();
    pki
}

impl Pki {
    /// Issues a new `localhost` certificate and key, written over `cert` and `key`.
    fn renew(&mut self) {
        let key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .unwrap()
            .signed_by(&key, &self.issuer)
            .unwrap();
        std::fs::write(&self.cert, leaf.pem()).unwrap();
        std::fs::write(&self.key, key.serialize_pem()).unwrap();
        self.cert_der = leaf.der().to_vec();
    }
}

/// Runs the CLI from `cwd` (relative paths are relative to it).
fn pacsync_in(cwd: &Path, config: &Path, args: &[&str]) -> Output {
    Command::new(PACSYNC)
        .current_dir(cwd)
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .unwrap()
}

fn pacsync(config: &Path, args: &[&str]) -> Output {
    pacsync_in(Path::new("/"), config, args)
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_and_the_event_stream_work_over_https_and_wss_with_a_private_ca() {
    let pki = pki();
    let t = TestHost::start_with(|s| {
        s.tls_cert = Some(pki.cert.clone());
        s.tls_key = Some(pki.key.clone());
    })
    .await;
    let api = &t.api;
    assert!(api.base.starts_with("https://localhost:"), "{}", api.base);
    let pool = api.create_pool("tls").await;
    let enrollment = api.enrollment_token(&pool).await;
    let work = shared_tempdir();
    let config = work.path().join("agent.toml");

    // Without the private CA the certificate is not trusted, and nothing falls back to HTTP.
    let untrusted = pacsync(
        &config,
        &[
            "register",
            "--server",
            &api.base,
            "--enrollment-token",
            &enrollment,
        ],
    );
    assert_eq!(untrusted.status.code(), Some(4), "{}", stderr(&untrusted));
    assert!(
        stderr(&untrusted).contains("certificate"),
        "the reason names the certificate: {}",
        stderr(&untrusted)
    );
    assert!(!config.exists(), "nothing is saved after a failed register");

    // A CA file that cannot be used is a configuration error.
    let missing = pacsync(
        &config,
        &[
            "register",
            "--server",
            &api.base,
            "--ca-cert",
            "/nonexistent/ca.pem",
            "--enrollment-token",
            &enrollment,
        ],
    );
    assert_eq!(missing.status.code(), Some(2), "{}", stderr(&missing));
    assert!(
        stderr(&missing).contains("cannot read the CA certificate /nonexistent/ca.pem"),
        "{}",
        stderr(&missing)
    );

    // Given relative to where register runs, the CA is stored absolute: the agent runs from `/`.
    let registered = pacsync_in(
        pki.ca.parent().unwrap(),
        &config,
        &[
            "register",
            "--server",
            &api.base,
            "--ca-cert",
            "ca.pem",
            "--enrollment-token",
            &enrollment,
            "--name",
            "tls-box",
        ],
    );
    assert!(registered.status.success(), "{}", stderr(&registered));
    let saved = AgentConfig::load(&config).unwrap();
    assert_eq!(saved.ca_cert.as_deref(), Some(pki.ca.as_path()));
    let endpoint = saved.endpoint_id;
    let seen = api.get(&format!("/api/endpoints/{endpoint}")).await;
    assert_eq!(seen.body["name"], "tls-box", "{}", seen.body);

    // Later commands, from anywhere, reuse the stored CA.
    let ops = pacsync(&config, &["ops", "--json"]);
    assert!(ops.status.success(), "{}", stderr(&ops));

    // The event stream: wss:// with the same roots, authorized by the endpoint's token.
    let tls = pacsync_client::tls::client_config(Some(&pki.ca)).unwrap();
    let mut stream = EventStream::connect(&api.base, &saved.token, endpoint, &tls)
        .await
        .expect("wss stream opens");
    let first = tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("a first message in time");
    match first {
        Some(Event::Other(message)) => assert!(
            matches!(*message, ServerMessage::Connected { .. }),
            "{message:?}"
        ),
        other => panic!("expected the connected message, got {other:?}"),
    }
    stream.close().await;
    let system_roots_only = pacsync_client::tls::client_config(None).unwrap();
    match EventStream::connect(&api.base, &saved.token, endpoint, &system_roots_only).await {
        Err(e) => assert!(e.to_string().contains("certificate"), "{e}"),
        Ok(_) => panic!("a stream opened without trusting the host's CA"),
    }
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_handshakes_does_not_hold_up_others() {
    let pki = pki();
    let t = TestHost::start_with(|s| {
        s.tls_cert = Some(pki.cert.clone());
        s.tls_key = Some(pki.key.clone());
    })
    .await;
    let addr = t.host.as_ref().unwrap().addr;
    // Open connections that never send a ClientHello; the handshake timeout is 10 s.
    let mut silent = Vec::new();
    for _ in 0..5 {
        silent.push(tokio::net::TcpStream::connect(addr).await.unwrap());
    }
    let reply = tokio::time::timeout(Duration::from_secs(5), t.api.get("/api/sync/health"))
        .await
        .expect("served while silent connections wait for their handshakes");
    assert_eq!(reply.status.as_u16(), 200, "{}", reply.body);
    drop(silent);
    t.stop().await;
}

/// Settings pointing at TLS files; the database URL is never used because the certificate is
/// checked first.
fn settings(cert: &Path, key: &Path) -> Settings {
    Settings {
        listen: Some("127.0.0.1:0".parse().unwrap()),
        data_dir: Some(std::env::temp_dir().join("pacsync-tls-refused")),
        database_url: Some("postgres://nobody@127.0.0.1:1/none".into()),
        tls_cert: Some(cert.to_owned()),
        tls_key: Some(key.to_owned()),
        ..Settings::default()
    }
}

#[tokio::test]
async fn the_host_refuses_to_start_with_unusable_tls_files() {
    let pki = pki();
    let start = |cert: &Path, key: &Path| {
        let config = Config::resolve(settings(cert, key), None).unwrap();
        Host::start(config)
    };
    match start(&pki.cert, &pki.stray_key).await {
        Err(StartError::Tls(e @ TlsError::Config { .. })) => {
            assert!(e.to_string().contains("stray.pem"), "{e}");
        }
        Err(e) => panic!("expected a key mismatch, got {e}"),
        Ok(_) => panic!("started with a key that does not match the certificate"),
    }
    match start(Path::new("/nonexistent/cert.pem"), &pki.key).await {
        Err(StartError::Tls(TlsError::Pem { what, .. })) => assert_eq!(what, "certificate chain"),
        Err(e) => panic!("expected an unreadable certificate, got {e}"),
        Ok(_) => panic!("started without a certificate"),
    }
    // A key file given as the certificate holds no CERTIFICATE block.
    match start(&pki.key, &pki.key).await {
        Err(StartError::Tls(TlsError::Pem { what, reason, .. })) => {
            assert_eq!(what, "certificate chain");
            assert!(reason.contains("no CERTIFICATE"), "{reason}");
        }
        Err(e) => panic!("expected no certificate, got {e}"),
        Ok(_) => panic!("started with a key as its certificate"),
    }
    // A certificate given as the key holds no private key.
    match start(&pki.cert, &pki.cert).await {
        Err(StartError::Tls(TlsError::Pem { what, .. })) => assert_eq!(what, "private key"),
        Err(e) => panic!("expected no private key, got {e}"),
        Ok(_) => panic!("started with a certificate as its key"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_host_uses_an_external_postgresql_that_requires_tls() {
    let pki = pki();
    let cluster = PrivateCluster::start().await;
    let port = cluster.serve_tls(&pki.cert, &pki.key).await;
    let data = shared_tempdir();
    // A password in the URL (trust auth ignores it) must never show in an error.
    let url =
        |query: &str| format!("postgresql://pacsync:hunter2@localhost:{port}/pacsync?{query}");
    let start = |url: String| {
        let config = Config::resolve(test_settings(url, data.path()), None).unwrap();
        Host::start(config)
    };

    // Unencrypted: refused by the server, reported as a connection failure.
    match start(url("sslmode=disable")).await {
        Err(e @ StartError::Database(DatabaseSetupError::MigrationConnect(_))) => {
            let text = e.to_string();
            assert!(
                text.contains("no encryption"),
                "PostgreSQL's reason: {text}"
            );
            assert!(!text.contains("hunter2"), "{text}");
        }
        Err(e) => panic!("expected a refused connection, got {e}"),
        Ok(_) => panic!("connected without TLS to a server that requires it"),
    }
    // Verified against the system's roots only: the private CA is unknown.
    match start(url("sslmode=verify-full")).await {
        Err(StartError::Database(DatabaseSetupError::MigrationConnect(e))) => {
            let text = e.to_string();
            assert!(text.contains("UnknownIssuer"), "rustls' reason: {text}");
            assert!(!text.contains("hunter2"), "{text}");
        }
        Err(e) => panic!("expected an untrusted certificate, got {e}"),
        Ok(_) => panic!("trusted a certificate from an unknown CA"),
    }

    // With the CA: migrations and the pool both go over TLS, and the API works.
    let verified = url(&format!(
        "sslmode=verify-full&sslrootcert={}",
        pki.ca.display()
    ));
    let host = start(verified).await.expect("host starts over TLS");
    let admin = host.state.keys.issue(
        "tls-admin",
        pacsync_host::auth::Role::Admin,
        None,
        Duration::from_secs(600),
    );
    let api = Api::new(format!("http://{}", host.addr), admin);
    api.create_pool("over-tls").await;
    // Asked through the host's own pool, so at least this session is listed.
    let encrypted: Vec<bool> = sqlx::query_scalar(
        "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
         WHERE a.usename = 'pacsync' AND a.client_port IS NOT NULL",
    )
    .fetch_all(&host.state.db)
    .await
    .unwrap();
    assert!(
        !encrypted.is_empty() && encrypted.iter().all(|ssl| *ssl),
        "every TCP session of the host is encrypted: {encrypted:?}"
    );
    host.stop().await.unwrap();
}

/// The certificate a TLS server at `base` presents.
async fn served_certificate(base: &str, ca: &Path) -> Vec<u8> {
    let ca = reqwest::Certificate::from_pem(&std::fs::read(ca).unwrap()).unwrap();
    let client = reqwest::Client::builder()
        .add_root_certificate(ca)
        .tls_info(true)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let reply = client
        .get(format!("{base}/api/sync/health"))
        .send()
        .await
        .unwrap();
    reply
        .extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|info| info.peer_certificate())
        .expect("a TLS peer certificate")
        .to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_serves_a_renewed_certificate_and_keeps_the_old_one_on_errors() {
    let mut pki = pki();
    let cluster = PrivateCluster::start().await;
    let data = shared_tempdir();
    let host = HostProcess::spawn(
        Path::new(HOST),
        &[
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            data.path().to_str().unwrap(),
            "--tls-cert",
            pki.cert.to_str().unwrap(),
            "--tls-key",
            pki.key.to_str().unwrap(),
        ],
        &[("PACSYNC_DATABASE_URL", cluster.url().as_str())],
    );
    assert!(host.base.starts_with("https://"), "{}", host.base);
    let first = pki.cert_der.clone();
    assert_eq!(served_certificate(&host.base, &pki.ca).await, first);
    let hangup = || {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(host.pid() as i32),
            nix::sys::signal::Signal::SIGHUP,
        )
        .unwrap()
    };

    // Renewed on disk: still the old one until the signal, then the new one.
    pki.renew();
    assert_eq!(served_certificate(&host.base, &pki.ca).await, first);
    hangup();
    let mut served = Vec::new();
    for _ in 0..100 {
        served = served_certificate(&host.base, &pki.ca).await;
        if served == pki.cert_der {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(served, pki.cert_der, "the renewed certificate is served");

    // A broken file is refused and the host keeps serving the last good certificate; the next
    // good renewal is picked up as before.
    std::fs::write(&pki.cert, "not a certificate").unwrap();
    hangup();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(served_certificate(&host.base, &pki.ca).await, pki.cert_der);
    let before = pki.cert_der.clone();
    pki.renew();
    hangup();
    for _ in 0..100 {
        served = served_certificate(&host.base, &pki.ca).await;
        if served == pki.cert_der {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_ne!(before, pki.cert_der);
    assert_eq!(
        served, pki.cert_der,
        "reloads still work after a refused one"
    );
    assert!(host.terminate().success());
}
