//! Test harness: private PostgreSQL clusters, hosts (in-process or as real processes) and a small
//! API client. Everything is real: clusters are started by the host's own `embedded_postgres`
//! module, hosts listen on loopback, requests go over HTTP.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use pacsync_host::config::{Config, Settings};
use pacsync_host::embedded_postgres::EmbeddedPostgres;
use pacsync_host::server::Host;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tempfile::TempDir;

/// A temporary directory that an unprivileged PostgreSQL owner can traverse.
pub fn shared_tempdir() -> TempDir {
    let dir = tempfile::Builder::new()
        .prefix("pacsync-test-")
        .tempdir()
        .expect("tempdir");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
        .expect("chmod tempdir");
    dir
}

/// A private PostgreSQL cluster in a temporary directory, stopped on drop.
pub struct PrivateCluster {
    cluster: EmbeddedPostgres,
    dir: TempDir,
}

impl PrivateCluster {
    /// initdb + start, exactly as the host's embedded mode does.
    pub async fn start() -> Self {
        let dir = shared_tempdir();
        let cluster = EmbeddedPostgres::new(dir.path(), None).expect("PostgreSQL binaries");
        cluster.start().await.expect("start private cluster");
        Self { cluster, dir }
    }

    /// A URL for the host's `--database-url` (Unix socket).
    pub fn url(&self) -> String {
        let socket_dir = self
            .cluster
            .cluster_dir()
            .display()
            .to_string()
            .replace('/', "%2F");
        format!("postgresql://pacsync@{socket_dir}:5432/pacsync")
    }

    /// A direct sqlx pool, for assertions the way an analyst would query.
    pub async fn pool(&self) -> sqlx::PgPool {
        sqlx::postgres::PgPoolOptions::new()
            .max_connections(4)
            .connect_with(self.cluster.connect_options())
            .await
            .expect("connect to private cluster")
    }

    /// Stops the server (fast), keeping the data.
    pub async fn stop(&self) {
        self.cluster.stop().await.expect("stop cluster");
    }

    /// Starts it again.
    pub async fn restart(&self) {
        self.cluster.start().await.expect("restart cluster");
    }

    /// Directory of the cluster.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Restarts the cluster listening on 127.0.0.1 (a free port) as an external PostgreSQL
    /// would, with TLS required for TCP: `pg_hba.conf` rejects unencrypted connections. The
    /// certificate and key are copied into the cluster, owned by its user and private to it
    /// (PostgreSQL refuses a key others can read). Returns the port.
    pub async fn serve_tls(&self, cert: &Path, key: &Path) -> u16 {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        self.stop().await;
        let dir = self.cluster.cluster_dir();
        let owner = std::fs::metadata(dir).expect("cluster dir");
        for (from, name) in [(cert, "server.crt"), (key, "server.key")] {
            let to = dir.join(name);
            std::fs::copy(from, &to).expect("copy TLS file");
            std::os::unix::fs::chown(&to, Some(owner.uid()), Some(owner.gid())).expect("chown");
            std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        }
        std::fs::write(
            dir.join("pg_hba.conf"),
            "local all all trust\nhostssl all all 127.0.0.1/32 trust\nhostnossl all all 127.0.0.1/32 reject\n",
        )
        .expect("pg_hba.conf");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let options = format!(
            "-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories='{}' \
             -c unix_socket_permissions=0700 -c ssl=on -c ssl_cert_file=server.crt \
             -c ssl_key_file=server.key",
            dir.display()
        );
        let status = pg_ctl()
            .args(["start", "-w", "-t", "60", "-D"])
            .arg(dir)
            .arg("-l")
            .arg(dir.join("postgres.log"))
            .arg("-o")
            .arg(options)
            .current_dir("/")
            .stdout(Stdio::null())
            .status()
            .expect("pg_ctl");
        assert!(status.success(), "PostgreSQL with TLS did not start");
        port
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        stop_cluster_blocking(self.cluster.cluster_dir());
    }
}

/// Stops a cluster from a destructor, where nothing can be awaited.
pub fn stop_cluster_blocking(cluster_dir: &Path) {
    if !cluster_dir.join("postmaster.pid").exists() {
        return;
    }
    let _ = pg_ctl()
        .args(["stop", "-m", "immediate", "-w", "-D"])
        .arg(cluster_dir)
        .current_dir("/")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// `pg_ctl`, run as the clusters' owner (`nobody` when the tests run as root).
fn pg_ctl() -> Command {
    let pg_ctl = which("pg_ctl");
    if nix::unistd::geteuid().is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "nobody", "--"]).arg(pg_ctl);
        c
    } else {
        Command::new(pg_ctl)
    }
}

fn which(program: &str) -> PathBuf {
    std::env::var_os("PATH")
        .and_then(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join(program))
                .find(|p| p.is_file())
        })
        .or_else(|| {
            let mut dirs: Vec<_> = std::fs::read_dir("/usr/lib/postgresql")
                .ok()?
                .flatten()
                .map(|e| e.path())
                .collect();
            dirs.sort();
            dirs.pop().map(|d| d.join("bin").join(program))
        })
        .unwrap_or_else(|| PathBuf::from(program))
}

/// Host settings used by tests: short leases and a fast reaper so expiry is observable.
pub fn test_settings(database_url: String, data_dir: &Path) -> Settings {
    Settings {
        listen: Some("127.0.0.1:0".parse().unwrap()),
        data_dir: Some(data_dir.to_owned()),
        database_url: Some(database_url),
        lease_seconds: Some(2),
        reaper_interval_ms: Some(200),
        // Compiled components are shared by every test host, so each compiles at most once.
        plugin_cache_dir: Some(std::env::temp_dir().join("pacsync-test-plugin-cache")),
        ..Settings::default()
    }
}

/// An in-process host on its own private cluster.
pub struct TestHost {
    /// The running host.
    pub host: Option<Host>,
    /// API client with an admin token.
    pub api: Api,
    /// The cluster (kept alive for the host's lifetime).
    pub cluster: PrivateCluster,
    _data: TempDir,
}

impl TestHost {
    /// Starts a cluster and a host on it.
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// Like [`TestHost::start`], with settings adjusted by `adjust`.
    pub async fn start_with(adjust: impl FnOnce(&mut Settings)) -> Self {
        let cluster = PrivateCluster::start().await;
        let data = shared_tempdir();
        let mut settings = test_settings(cluster.url(), data.path());
        adjust(&mut settings);
        let config = Config::resolve(settings, None).expect("config");
        let tls = config.tls.clone();
        let host = Host::start(config).await.expect("host starts");
        let admin = host.state.keys.issue(
            "test-admin",
            pacsync_host::auth::Role::Admin,
            None,
            Duration::from_secs(3600),
        );
        let api = match tls {
            // A host serving TLS is addressed by the name in its certificate; the test's CA
            // file sits beside the certificate as `ca.pem`.
            Some(files) => {
                let ca = files.cert.with_file_name("ca.pem");
                let ca = std::fs::read(&ca).unwrap_or_else(|e| panic!("{}: {e}", ca.display()));
                Api::with_ca(
                    format!("https://localhost:{}", host.addr.port()),
                    admin,
                    &ca,
                )
            }
            None => Api::new(format!("http://{}", host.addr), admin),
        };
        Self {
            host: Some(host),
            api,
            cluster,
            _data: data,
        }
    }

    /// Stops the host and starts it again on the same address, database and data directory
    /// (so every token stays valid), as an admin restarting the service would.
    pub async fn restart(&mut self) {
        let host = self.host.take().expect("host running");
        let addr = host.addr;
        host.stop().await.expect("host stops");
        let mut settings = test_settings(self.cluster.url(), self._data.path());
        settings.listen = Some(addr);
        let config = Config::resolve(settings, None).expect("config");
        self.host = Some(Host::start(config).await.expect("host restarts"));
    }

    /// Stops the host gracefully.
    pub async fn stop(mut self) {
        if let Some(host) = self.host.take() {
            host.stop().await.expect("host stops");
        }
    }
}

/// A JSON response.
#[derive(Debug)]
pub struct Reply {
    /// HTTP status.
    pub status: StatusCode,
    /// Parsed body (`Null` when empty).
    pub body: Value,
    /// Response headers.
    pub headers: reqwest::header::HeaderMap,
}

impl Reply {
    /// The problem `code`, if the body is a problem document.
    pub fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or("")
    }

    /// Asserts status and, for errors, the problem content type and code.
    #[track_caller]
    pub fn expect(&self, status: u16, code: Option<&str>) -> &Value {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected status; body: {}",
            self.body
        );
        if let Some(code) = code {
            assert_eq!(
                self.code(),
                code,
                "unexpected problem code; body: {}",
                self.body
            );
            let content_type = self
                .headers
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            assert_eq!(content_type, "application/problem+json");
        }
        &self.body
    }
}

/// A small HTTP client for the host API.
///
/// A request names who sends it, then the method and path, and is sent when awaited:
/// `api.as_(&token).post(path).await`, `api.anonymous().get(path).await`, and with the admin
/// token simply `api.get(path).await`. [`Request::json`] adds a JSON body and
/// [`Request::header`] a header; every request resolves to a [`Reply`].
#[derive(Clone)]
pub struct Api {
    /// `http://addr`.
    pub base: String,
    /// Admin bearer token.
    pub admin: String,
    client: reqwest::Client,
}

impl Api {
    /// Client for `base` with an admin token.
    pub fn new(base: String, admin: String) -> Self {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        Self {
            base,
            admin,
            client,
        }
    }

    /// Client for an HTTPS `base` whose certificate is issued by the PEM CA `ca`.
    pub fn with_ca(base: String, admin: String, ca: &[u8]) -> Self {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .add_root_certificate(reqwest::Certificate::from_pem(ca).expect("CA PEM"))
            .build()
            .unwrap();
        Self {
            base,
            admin,
            client,
        }
    }

    /// Requests sent with `token` as their bearer token.
    pub fn as_(&self, token: &str) -> Caller<'_> {
        Caller {
            api: self,
            token: Some(token.to_owned()),
        }
    }

    /// Requests sent without a token.
    pub fn anonymous(&self) -> Caller<'_> {
        Caller {
            api: self,
            token: None,
        }
    }

    /// `GET path` with the admin token.
    pub fn get(&self, path: &str) -> Request<'_> {
        self.as_(&self.admin).get(path)
    }

    /// `POST path` with the admin token.
    pub fn post(&self, path: &str) -> Request<'_> {
        self.as_(&self.admin).post(path)
    }

    /// `PUT path` with the admin token.
    pub fn put(&self, path: &str) -> Request<'_> {
        self.as_(&self.admin).put(path)
    }

    /// `PATCH path` with the admin token.
    pub fn patch(&self, path: &str) -> Request<'_> {
        self.as_(&self.admin).patch(path)
    }

    /// `DELETE path` with the admin token.
    pub fn delete(&self, path: &str) -> Request<'_> {
        self.as_(&self.admin).delete(path)
    }

    /// `POST /api/sync/{endpoint_id}/set-as-latest` with `token`.
    pub async fn set_as_latest(&self, endpoint_id: &str, token: &str) -> Reply {
        self.as_(token)
            .post(&format!("/api/sync/{endpoint_id}/set-as-latest"))
            .await
    }

    /// Creates a pool and returns its id.
    pub async fn create_pool(&self, name: &str) -> String {
        let reply = self.post("/api/pools").json(json!({ "name": name })).await;
        reply.expect(201, None)["pool_id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Creates an enrollment token for a pool.
    pub async fn enrollment_token(&self, pool_id: &str) -> String {
        let reply = self
            .post(&format!("/api/pools/{pool_id}/enrollment-tokens"))
            .json(json!({}))
            .await;
        reply.expect(201, None)["token"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Registers an endpoint into a pool: `(endpoint_id, token)`.
    pub async fn register(&self, pool_id: &str, name: &str) -> (String, String) {
        let token = self.enrollment_token(pool_id).await;
        let reply = self
            .anonymous()
            .post("/api/endpoints/register")
            .json(json!({ "name": name, "hostname": format!("{name}.example"), "enrollment_token": token }))
            .await;
        let body = reply.expect(201, None);
        (
            body["endpoint"]["endpoint_id"].as_str().unwrap().to_owned(),
            body["access_token"].as_str().unwrap().to_owned(),
        )
    }

    /// Reports `packages` (`(name, version)`, explicit) as the endpoint's state.
    pub async fn report(&self, endpoint_id: &str, token: &str, packages: &[(&str, &str)]) -> Reply {
        self.put_state(endpoint_id, token, state(packages)).await
    }

    /// `PUT /api/endpoints/{endpoint_id}/state` with `token` and the report `body`.
    pub async fn put_state(&self, endpoint_id: &str, token: &str, body: Value) -> Reply {
        self.as_(token)
            .put(&format!("/api/endpoints/{endpoint_id}/state"))
            .json(body)
            .await
    }
}

/// Who requests are sent as: a bearer token, or none. Made by [`Api::as_`] and
/// [`Api::anonymous`].
#[derive(Clone)]
pub struct Caller<'a> {
    api: &'a Api,
    token: Option<String>,
}

impl<'a> Caller<'a> {
    /// A `method` request for `path` (relative to the API's base).
    pub fn request(&self, method: Method, path: &str) -> Request<'a> {
        Request {
            api: self.api,
            method,
            path: path.to_owned(),
            token: self.token.clone(),
            body: None,
            headers: Vec::new(),
        }
    }

    /// `GET path`.
    pub fn get(&self, path: &str) -> Request<'a> {
        self.request(Method::GET, path)
    }

    /// `POST path`.
    pub fn post(&self, path: &str) -> Request<'a> {
        self.request(Method::POST, path)
    }

    /// `PUT path`.
    pub fn put(&self, path: &str) -> Request<'a> {
        self.request(Method::PUT, path)
    }

    /// `PATCH path`.
    pub fn patch(&self, path: &str) -> Request<'a> {
        self.request(Method::PATCH, path)
    }

    /// `DELETE path`.
    pub fn delete(&self, path: &str) -> Request<'a> {
        self.request(Method::DELETE, path)
    }
}

/// One request to the host, sent when awaited (or by [`Request::send`]); it resolves to the
/// [`Reply`], whatever its status.
#[must_use = "a request is sent only when awaited"]
pub struct Request<'a> {
    api: &'a Api,
    method: Method,
    path: String,
    token: Option<String>,
    body: Option<Value>,
    headers: Vec<(String, String)>,
}

impl Request<'_> {
    /// Sends `body` as the JSON request body.
    pub fn json(mut self, body: Value) -> Self {
        self.body = Some(body);
        self
    }

    /// Adds the header `name: value` (e.g. `Idempotency-Key`).
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Sends the request and reads the reply; the body is parsed as JSON when it is JSON, kept
    /// as a string otherwise, and `Null` when empty.
    pub async fn send(self) -> Reply {
        let mut request = self
            .api
            .client
            .request(self.method, format!("{}{}", self.api.base, self.path));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = &self.body {
            request = request.json(body);
        }
        for (name, value) in &self.headers {
            request = request.header(name.as_str(), value.as_str());
        }
        let response = request.send().await.expect("request reaches the host");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.expect("response body");
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        Reply {
            status,
            body,
            headers,
        }
    }
}

impl<'a> std::future::IntoFuture for Request<'a> {
    type Output = Reply;
    type IntoFuture = futures_util::future::BoxFuture<'a, Reply>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.send())
    }
}

/// An endpoint registered by a [`Fleet`].
#[derive(Clone, Debug)]
pub struct Endpoint {
    /// The name it registered with.
    pub name: String,
    /// Its `endpoint_id`.
    pub id: String,
    /// Its access token.
    pub token: String,
}

/// A pool whose target is a reference endpoint's reported state, and the other endpoints
/// registered in it. Made by [`Fleet::builder`].
#[derive(Clone, Debug)]
pub struct Fleet {
    /// The pool's `pool_id`.
    pub pool: String,
    /// The endpoint whose state is the pool's target.
    pub reference: Endpoint,
    /// The other endpoints, in the order they were added to the builder.
    pub members: Vec<Endpoint>,
    /// The body of the set-as-latest reply (`202`) that made the reference's state the target.
    pub set_latest: Value,
}

impl Fleet {
    /// A builder for a fleet set up through `api`.
    pub fn builder(api: &Api) -> FleetBuilder<'_> {
        FleetBuilder {
            api,
            pool: "fleet".to_owned(),
            reference: None,
            members: Vec::new(),
            latest_by_admin: false,
        }
    }
}

/// Builds a [`Fleet`]. [`FleetBuilder::build`] creates the pool, registers the reference and
/// then each member, reports the reference's state and makes it the target (set-as-latest),
/// then reports each member's state, in the order the members were added. Every step must
/// succeed.
pub struct FleetBuilder<'a> {
    api: &'a Api,
    pool: String,
    reference: Option<(String, Value)>,
    members: Vec<(String, Option<Value>)>,
    latest_by_admin: bool,
}

impl FleetBuilder<'_> {
    /// The pool's name (`fleet` unless set).
    pub fn pool(mut self, name: &str) -> Self {
        self.pool = name.to_owned();
        self
    }

    /// The reference endpoint `name`, which reports the state report `state` (e.g. from
    /// [`state`]); that state becomes the pool's target.
    pub fn reference(mut self, name: &str, state: Value) -> Self {
        self.reference = Some((name.to_owned(), state));
        self
    }

    /// A member endpoint `name` that reports the state report `state` once the target is set.
    pub fn member(mut self, name: &str, state: Value) -> Self {
        self.members.push((name.to_owned(), Some(state)));
        self
    }

    /// A member endpoint `name` that is registered and reports nothing.
    pub fn unreported(mut self, name: &str) -> Self {
        self.members.push((name.to_owned(), None));
        self
    }

    /// Set-as-latest is requested with the admin token instead of the reference's own.
    pub fn latest_set_by_admin(mut self) -> Self {
        self.latest_by_admin = true;
        self
    }

    /// Sets the fleet up; panics if any step fails or no reference was given.
    pub async fn build(self) -> Fleet {
        let FleetBuilder {
            api,
            pool: pool_name,
            reference,
            members: wanted,
            latest_by_admin,
        } = self;
        let (reference_name, reference_state) =
            reference.expect("a fleet needs a reference endpoint");
        let pool = api.create_pool(&pool_name).await;
        let reference = enroll(api, &pool, reference_name).await;
        let mut members = Vec::with_capacity(wanted.len());
        let mut states = Vec::with_capacity(wanted.len());
        for (name, state) in wanted {
            members.push(enroll(api, &pool, name).await);
            states.push(state);
        }
        api.put_state(&reference.id, &reference.token, reference_state)
            .await
            .expect(200, None);
        let token = if latest_by_admin {
            &api.admin
        } else {
            &reference.token
        };
        let set_latest = api
            .set_as_latest(&reference.id, token)
            .await
            .expect(202, None)
            .clone();
        for (member, state) in members.iter().zip(states) {
            if let Some(state) = state {
                api.put_state(&member.id, &member.token, state)
                    .await
                    .expect(200, None);
            }
        }
        Fleet {
            pool,
            reference,
            members,
            set_latest,
        }
    }
}

/// Registers `name` into `pool`.
async fn enroll(api: &Api, pool: &str, name: String) -> Endpoint {
    let (id, token) = api.register(pool, &name).await;
    Endpoint { name, id, token }
}

/// A state report body for `(name, version)` pairs, all explicitly installed from `core`.
pub fn state(packages: &[(&str, &str)]) -> Value {
    json!({
        "architecture": "x86_64",
        "pacman_version": "6.0.2",
        "packages": packages.iter().map(|(name, version)| json!({
            "name": name, "version": version, "repository": "core", "architecture": "x86_64", "reason": "explicit"
        })).collect::<Vec<_>>(),
    })
}

/// A `pacsync-host` process.
pub struct HostProcess {
    /// `http://addr`.
    pub base: String,
    child: Child,
}

impl HostProcess {
    /// Spawns the host binary with `args` after `serve`, and waits for its "listening on" line.
    pub fn spawn(binary: &Path, args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut child = Command::new(binary)
            .arg("serve")
            .args(args)
            .envs(env.iter().copied())
            .env("PACSYNC_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn pacsync-host");
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read host stdout");
        let base = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("host did not start; first line: {line:?}"))
            .to_owned();
        Self { base, child }
    }

    /// The process id (e.g. to read its memory use).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the process with SIGKILL, as a crash would.
    pub fn kill(mut self) {
        self.child.kill().expect("SIGKILL");
        let _ = self.child.wait();
    }

    /// Sends SIGTERM and waits for a clean exit; returns the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
        self.child.wait().expect("wait for host")
    }
}

impl Drop for HostProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A WebSocket client for the event streams.
pub struct Stream {
    socket: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
}

/// Why a stream could not be opened: the HTTP status the host answered with.
pub type StreamRefused = u16;

impl Stream {
    /// Opens `path` on `base` (http://...) with a bearer token header.
    pub async fn open(base: &str, path: &str, token: Option<&str>) -> Result<Self, StreamRefused> {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let url = format!("{}{}", base.replacen("http://", "ws://", 1), path);
        let mut request = url.into_client_request().unwrap();
        if let Some(token) = token {
            request
                .headers_mut()
                .insert("authorization", format!("Bearer {token}").parse().unwrap());
        }
        match tokio_tungstenite::connect_async(request).await {
            Ok((socket, _)) => Ok(Self { socket }),
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                Err(response.status().as_u16())
            }
            Err(e) => panic!("WebSocket connect failed: {e}"),
        }
    }

    /// The next JSON message, or `None` when the stream closed or `timeout` passed.
    pub async fn next(&mut self, timeout: Duration) -> Option<Value> {
        use futures_util::StreamExt;
        use tokio_tungstenite::tungstenite::Message;
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let message = tokio::time::timeout_at(deadline, self.socket.next())
                .await
                .ok()??
                .ok()?;
            match message {
                Message::Text(text) => return serde_json::from_str(&text).ok(),
                Message::Close(_) => return None,
                _ => continue,
            }
        }
    }

    /// The next message of one of `types`, skipping others; panics after `timeout`.
    pub async fn next_of(&mut self, types: &[&str], timeout: Duration) -> Value {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let message = self
                .next(left)
                .await
                .unwrap_or_else(|| panic!("no {types:?} message within {timeout:?}"));
            if types.contains(&message["type"].as_str().unwrap_or("")) {
                return message;
            }
        }
    }

    /// Whether the server ended the stream (close, EOF or reset) within `timeout`, reading and
    /// discarding (and so answering pings for) whatever arrives meanwhile.
    pub async fn ended_within(&mut self, timeout: Duration) -> bool {
        use futures_util::StreamExt;
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, self.socket.next()).await {
                Err(_) => return false,
                Ok(None) | Ok(Some(Err(_))) => return true,
                Ok(Some(Ok(tokio_tungstenite::tungstenite::Message::Close(_)))) => return true,
                Ok(Some(Ok(_))) => continue,
            }
        }
    }

    /// Sends a JSON message.
    pub async fn send(&mut self, value: Value) {
        use futures_util::SinkExt;
        self.socket
            .send(tokio_tungstenite::tungstenite::Message::Text(
                value.to_string().into(),
            ))
            .await
            .unwrap();
    }

    /// The close code the server ended the stream with, if it did within `timeout`.
    pub async fn close_code(&mut self, timeout: Duration) -> Option<u16> {
        self.close_frame(timeout).await.map(|(code, _)| code)
    }

    /// The close code and reason the server ended the stream with, if it did within `timeout`.
    pub async fn close_frame(&mut self, timeout: Duration) -> Option<(u16, String)> {
        use futures_util::StreamExt;
        use tokio_tungstenite::tungstenite::Message;
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, self.socket.next())
                .await
                .ok()??
            {
                Ok(Message::Close(frame)) => {
                    return frame.map(|f| (u16::from(f.code), f.reason.to_string()));
                }
                Ok(_) => continue,
                Err(_) => return None,
            }
        }
    }
}
