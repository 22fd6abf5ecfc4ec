//! The private PostgreSQL cluster the host runs when no database URL is configured.
//!
//! The cluster lives in `<data-dir>/postgres`, listens only on a Unix socket inside that
//! directory (mode 0700, trust auth: reaching the socket is the authentication), and is started
//! and stopped with `pg_ctl`. PostgreSQL refuses to run as root, so when the host is root the
//! cluster belongs to `nobody` and every PostgreSQL command runs through `runuser`.
//! Tests start their clusters through this same module.

use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use sqlx::postgres::PgConnectOptions;
use tokio::process::Command;

/// The superuser created by `initdb` and used by the host.
pub const USER: &str = "pacsync";
/// The database the host keeps its data in.
pub const DATABASE: &str = "pacsync";
/// The unprivileged account that owns the cluster when the host runs as root.
const UNPRIVILEGED_USER: &str = "nobody";
/// Unix socket paths longer than this do not fit in `sockaddr_un`.
const MAX_SOCKET_PATH: usize = 100;

/// Why the embedded cluster could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum EmbeddedPostgresError {
    /// A PostgreSQL server binary is missing.
    #[error(
        "cannot find PostgreSQL's `{0}`; install PostgreSQL (Debian: apt install postgresql) or set --postgres-bin-dir"
    )]
    MissingBinary(&'static str),
    /// A command failed.
    #[error("`{command}` failed: {output}")]
    Command {
        /// The command line.
        command: String,
        /// Its stderr/stdout.
        output: String,
    },
    /// Filesystem trouble around the data directory.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The data directory path is too long for a Unix socket.
    #[error("data directory {0} is too long for a Unix socket path; choose a shorter --data-dir")]
    PathTooLong(PathBuf),
    /// The unprivileged user does not exist.
    #[error(
        "running as root needs the `nobody` user to own the database cluster, but it does not exist"
    )]
    NoUnprivilegedUser,
    /// Connecting to the fresh cluster failed.
    #[error("cannot connect to the embedded cluster: {0}")]
    Connect(#[from] sqlx::Error),
}

fn io_err(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> EmbeddedPostgresError {
    let context = context.into();
    move |source| EmbeddedPostgresError::Io { context, source }
}

/// A private PostgreSQL cluster in a directory.
#[derive(Debug)]
pub struct EmbeddedPostgres {
    cluster_dir: PathBuf,
    bin_dir: PathBuf,
    /// `Some((uid, gid))` when commands must run as the unprivileged user.
    run_as: Option<(u32, u32)>,
}

impl EmbeddedPostgres {
    /// Prepares (without starting) a cluster in `<data_dir>/postgres`.
    pub fn new(data_dir: &Path, bin_dir: Option<&Path>) -> Result<Self, EmbeddedPostgresError> {
        let cluster_dir = data_dir.join("postgres");
        if cluster_dir.join(".s.PGSQL.5432").as_os_str().len() > MAX_SOCKET_PATH {
            return Err(EmbeddedPostgresError::PathTooLong(data_dir.to_owned()));
        }
        let bin_dir = match bin_dir {
            Some(dir) => dir.to_owned(),
            None => find_bin_dir()?,
        };
        let run_as = if nix::unistd::geteuid().is_root() {
            let user = nix::unistd::User::from_name(UNPRIVILEGED_USER)
                .ok()
                .flatten()
                .ok_or(EmbeddedPostgresError::NoUnprivilegedUser)?;
            Some((user.uid.as_raw(), user.gid.as_raw()))
        } else {
            None
        };
        Ok(Self {
            cluster_dir,
            bin_dir,
            run_as,
        })
    }

    /// The cluster directory (also the socket directory).
    pub fn cluster_dir(&self) -> &Path {
        &self.cluster_dir
    }

    /// Connection options for the host's database over the private socket.
    pub fn connect_options(&self) -> PgConnectOptions {
        PgConnectOptions::new()
            .socket(&self.cluster_dir)
            .port(5432)
            .username(USER)
            .database(DATABASE)
    }

    /// Creates the cluster on first use, starts it (or adopts a running one) and makes sure
    /// the host's database exists.
    pub async fn start(&self) -> Result<(), EmbeddedPostgresError> {
        let data_dir = self.cluster_dir.parent().expect("cluster dir has a parent");
        std::fs::create_dir_all(data_dir)
            .map_err(io_err(format!("cannot create {}", data_dir.display())))?;
        if self.run_as.is_some() {
            // The unprivileged owner must be able to reach its cluster inside our data dir.
            let mut perms = std::fs::metadata(data_dir)
                .map_err(io_err(format!("cannot stat {}", data_dir.display())))?
                .permissions();
            if perms.mode() & 0o001 == 0 {
                perms.set_mode(perms.mode() | 0o711);
                std::fs::set_permissions(data_dir, perms).map_err(io_err(format!(
                    "cannot make {} traversable",
                    data_dir.display()
                )))?;
            }
        }
        if !self.cluster_dir.join("PG_VERSION").exists() {
            self.initdb().await?;
        }
        if !self.is_running().await {
            let options = format!(
                "-c listen_addresses='' -c unix_socket_directories='{}' -c unix_socket_permissions=0700 -c port=5432",
                self.cluster_dir.display()
            );
            let log = self.cluster_dir.join("postgres.log");
            self.run(
                "pg_ctl",
                &[
                    "start".into(),
                    "-w".into(),
                    "-t".into(),
                    "60".into(),
                    "-D".into(),
                    self.cluster_dir.clone().into(),
                    "-l".into(),
                    log.into(),
                    "-o".into(),
                    options.into(),
                ],
            )
            .await?;
        }
        self.ensure_database().await
    }

    /// Stops the cluster cleanly (fast shutdown: active sessions are disconnected).
    pub async fn stop(&self) -> Result<(), EmbeddedPostgresError> {
        if !self.is_running().await {
            return Ok(());
        }
        self.run(
            "pg_ctl",
            &[
                "stop".into(),
                "-w".into(),
                "-m".into(),
                "fast".into(),
                "-D".into(),
                self.cluster_dir.clone().into(),
            ],
        )
        .await
        .map(|_| ())
    }

    /// Whether a server is running on this cluster directory.
    pub async fn is_running(&self) -> bool {
        if !self.cluster_dir.join("postmaster.pid").exists() {
            return false;
        }
        self.run(
            "pg_ctl",
            &[
                "status".into(),
                "-D".into(),
                self.cluster_dir.clone().into(),
            ],
        )
        .await
        .is_ok()
    }

    async fn initdb(&self) -> Result<(), EmbeddedPostgresError> {
        std::fs::create_dir_all(&self.cluster_dir).map_err(io_err(format!(
            "cannot create {}",
            self.cluster_dir.display()
        )))?;
        std::fs::set_permissions(&self.cluster_dir, std::fs::Permissions::from_mode(0o700))
            .map_err(io_err("cannot restrict the cluster directory"))?;
        if let Some((uid, gid)) = self.run_as {
            std::os::unix::fs::chown(&self.cluster_dir, Some(uid), Some(gid)).map_err(io_err(
                format!(
                    "cannot give {} to {UNPRIVILEGED_USER}",
                    self.cluster_dir.display()
                ),
            ))?;
        }
        tracing::info!(dir = %self.cluster_dir.display(), "initialising embedded PostgreSQL cluster");
        self.run(
            "initdb",
            &[
                "-D".into(),
                self.cluster_dir.clone().into(),
                "-U".into(),
                USER.into(),
                "--auth=trust".into(),
                "--encoding=UTF8".into(),
                "--no-locale".into(),
            ],
        )
        .await
        .map(|_| ())
    }

    async fn ensure_database(&self) -> Result<(), EmbeddedPostgresError> {
        use sqlx::Connection;
        let mut conn =
            sqlx::PgConnection::connect_with(&self.connect_options().database("postgres")).await?;
        crate::db::create_database_if_missing(&mut conn, DATABASE).await?;
        conn.close().await?;
        Ok(())
    }

    /// Runs a PostgreSQL binary, as the unprivileged user when the host is root.
    async fn run(
        &self,
        program: &'static str,
        args: &[OsString],
    ) -> Result<String, EmbeddedPostgresError> {
        let binary = self.bin_dir.join(program);
        if !binary.exists() {
            return Err(EmbeddedPostgresError::MissingBinary(program));
        }
        let mut command = if self.run_as.is_some() {
            let mut c = Command::new("runuser");
            c.args(["-u", UNPRIVILEGED_USER, "--"]).arg(&binary);
            c
        } else {
            Command::new(&binary)
        };
        command
            .args(args)
            .stdin(Stdio::null())
            .current_dir(&self.bin_dir);
        // pg_ctl start leaves the server running; its output must not hold our pipes open.
        let output = if program == "pg_ctl" && args.first().is_some_and(|a| a == "start") {
            // Its own process group, so a Ctrl-C aimed at the host does not stop the database
            // under in-flight requests; the host stops it after draining.
            command
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .process_group(0);
            let child = command
                .spawn()
                .map_err(io_err(format!("cannot run {program}")))?;
            child.wait_with_output().await
        } else {
            command.output().await
        }
        .map_err(io_err(format!("cannot run {program}")))?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        if output.status.success() {
            Ok(text)
        } else {
            let command = format!(
                "{} {}",
                program,
                args.iter()
                    .map(|a| a.to_string_lossy())
                    .collect::<Vec<_>>()
                    .join(" ")
            );
            Err(EmbeddedPostgresError::Command {
                command,
                output: text.trim().to_owned(),
            })
        }
    }
}

/// Finds the directory holding `initdb` and `pg_ctl`: PATH first, then Debian's versioned dirs.
fn find_bin_dir() -> Result<PathBuf, EmbeddedPostgresError> {
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            if dir.join("initdb").is_file() && dir.join("pg_ctl").is_file() {
                return Ok(dir);
            }
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions
        .pop()
        .map(|(_, dir)| dir)
        .ok_or(EmbeddedPostgresError::MissingBinary("initdb"))
}
