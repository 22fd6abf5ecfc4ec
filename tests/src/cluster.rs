//! Private PostgreSQL clusters, started by the host's own `embedded_postgres` module, each in
//! a directory an unprivileged owner can traverse.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use pacsync_host::embedded_postgres::EmbeddedPostgres;
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
        // Hex: nothing in it needs escaping in a URL.
        let password = self.cluster.password().expect("the cluster was started");
        format!("postgresql://pacsync:{password}@{socket_dir}:5432/pacsync")
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
    let pg_ctl = postgres_binary("pg_ctl");
    if nix::unistd::geteuid().is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "nobody", "--"]).arg(pg_ctl);
        c
    } else {
        Command::new(pg_ctl)
    }
}

/// A PostgreSQL program: from PATH, else Debian's newest versioned directory.
pub fn postgres_binary(program: &str) -> PathBuf {
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
