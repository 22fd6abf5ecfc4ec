//! The real host binary on its embedded database, with its log kept, and the commands the tests
//! run beside it, each bounded in time.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const HOST: &str = env!("CARGO_BIN_EXE_pacsync-host-under-test");
/// A first start runs initdb and compiles the built-in policies.
const START_TIMEOUT: Duration = Duration::from_secs(180);
const STOP_TIMEOUT: Duration = Duration::from_secs(60);

/// `timeout SECONDS program`: killed if it runs longer.
pub fn bounded(seconds: u32, program: &str) -> Command {
    let mut command = Command::new("timeout");
    command.arg(seconds.to_string()).arg(program);
    command
}

/// An admin token signed with the key in `data_dir`.
pub fn admin_token(data_dir: &Path) -> String {
    let out = bounded(60, HOST)
        .args(["token", "issue", "--role", "admin", "--data-dir"])
        .arg(data_dir)
        .output()
        .expect("token issue runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// `pacsync-host token issue --role admin` on the embedded database in `data_dir`, whatever
/// it answers.
pub fn token_issue(data_dir: &Path) -> Output {
    bounded(60, HOST)
        .args(["token", "issue", "--role", "admin", "--data-dir"])
        .arg(data_dir)
        .env("PACSYNC_DATABASE_URL", "")
        .env_remove("PACSYNC_CONFIG")
        .env_remove("PACSYNC_JWT_KEY_FILE")
        .stdin(Stdio::null())
        .output()
        .expect("token issue runs")
}

/// `pacsync-host serve` on the embedded database in `data_dir` when it must refuse to start:
/// what it wrote and how it exited. One that serves instead is stopped after a minute.
pub fn refused_start(data_dir: &Path) -> Output {
    bounded(60, HOST)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .env("PACSYNC_DATABASE_URL", "")
        .env_remove("PACSYNC_CONFIG")
        .env_remove("PACSYNC_PLUGIN_CACHE_DIR")
        .env("PACSYNC_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .expect("run pacsync-host")
}

/// Stops the cluster in `<data_dir>/postgres` when dropped, whoever started it.
pub struct StopsCluster(pub PathBuf);

impl Drop for StopsCluster {
    fn drop(&mut self) {
        pacsync_tests::stop_cluster_blocking(&self.0.join("postgres"));
    }
}

/// `pacsync-host serve` on the embedded database in `data_dir`, logging warnings to a file.
pub struct Served {
    /// `http://addr`.
    pub base: String,
    child: Option<Child>,
    data_dir: PathBuf,
    log: PathBuf,
}

impl Served {
    /// Starts the host and waits (boundedly) for its "listening on" line.
    pub fn start(data_dir: &Path, log: &Path) -> Self {
        let log_file = std::fs::File::create(log).expect("host log file");
        let mut child = Command::new(HOST)
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            // The embedded database, whatever the environment says.
            .env("PACSYNC_DATABASE_URL", "")
            .env_remove("PACSYNC_CONFIG")
            .env_remove("PACSYNC_PLUGIN_CACHE_DIR")
            .env("PACSYNC_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log_file)
            .spawn()
            .expect("spawn pacsync-host");
        let stdout = child.stdout.take().unwrap();
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = sender.send(line);
        });
        let mut served = Self {
            base: String::new(),
            child: Some(child),
            data_dir: data_dir.to_owned(),
            log: log.to_owned(),
        };
        let line = receiver.recv_timeout(START_TIMEOUT).unwrap_or_default();
        match line.trim().strip_prefix("listening on ") {
            Some(base) => served.base = base.to_owned(),
            None => panic!(
                "host did not start within {START_TIMEOUT:?}; first line {line:?}; log:\n{}",
                served.log_text()
            ),
        }
        served
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, then waits (boundedly) for a clean exit.
    pub fn stop(&mut self) {
        let mut child = self.child.take().expect("host running");
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            if let Some(status) = child.try_wait().expect("wait for host") {
                assert!(
                    status.success(),
                    "host exited with {status}:\n{}",
                    self.log_text()
                );
                return;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "host did not stop within {STOP_TIMEOUT:?}:\n{}",
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        // A killed host leaves its cluster running (in its own process group).
        pacsync_tests::stop_cluster_blocking(&self.data_dir.join("postgres"));
    }
}
