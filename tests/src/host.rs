//! Hosts under test: in this process (`TestHost`) or as a real `pacsync-host` process
//! (`HostProcess`), each on loopback over its own private cluster.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use pacsync_host::config::{Config, Settings};
use pacsync_host::server::Host;
use tempfile::TempDir;

use crate::api::Api;
use crate::cluster::{PrivateCluster, shared_tempdir};

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
