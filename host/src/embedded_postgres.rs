//! The private PostgreSQL cluster the host runs when no database URL is configured.
//!
//! The cluster lives in `<data-dir>/postgres`, listens only on a Unix socket inside that
//! directory (mode 0700), and is started and stopped with `pg_ctl` (`lifecycle.rs`). PostgreSQL
//! refuses to run as root, so when the host is root the cluster belongs to `nobody`, every
//! PostgreSQL command runs through `runuser` (`command.rs`), and the host trusts no file in the
//! cluster directory (`files.rs`). Reaching the socket is not enough: every connection needs
//! the password the host keeps in `<data-dir>/postgres-password` (`password.rs`).
//!
//! One process at a time starts, secures and stops the cluster: the holder of
//! `<data-dir>/host.lock` (`lock.rs`). A host holds it for its whole life, so a second host on
//! the same data directory fails at start. A command beside the host (`pacsync-host token`,
//! [`EmbeddedPostgres::attach`]) uses a running host's cluster through its socket (waiting for
//! a host that is still starting, `starting.rs`), or, when no host runs, starts the cluster for
//! itself under the lock and stops it after.
//!
//! A cluster that still trusts its socket (made before the password existed), or refuses the
//! host's password, is given the password offline, in single-user mode, so it never accepts a
//! connection in between (`secure.rs`). Only a host that holds the lock and found the cluster
//! stopped does that: a cluster already running may serve another process (a host from before
//! the lock), whose database must not stop under it, so the start fails and says to restart the
//! host instead. Commands never do it. Tests start their clusters through this same module.

mod command;
mod files;
mod lifecycle;
mod lock;
mod password;
mod secure;
mod starting;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use sqlx::postgres::PgConnectOptions;

pub use lock::LOCK_FILE;
pub use password::PASSWORD_FILE;
pub use password::verifier as scram_verifier;

/// The superuser created by `initdb` and used by the host.
pub const USER: &str = "pacsync";
/// The database the host keeps its data in.
pub const DATABASE: &str = "pacsync";
/// The unprivileged account that owns the cluster when the host runs as root.
const UNPRIVILEGED_USER: &str = "nobody";
/// Unix socket paths longer than this do not fit in `sockaddr_un`.
const MAX_SOCKET_PATH: usize = 100;

/// What [`EmbeddedPostgresError::Unsecured`] says of a cluster still trusting its socket.
const WITHOUT_PASSWORD: &str = "is running without a password";
/// ... of one that requires a password the host has no copy of.
const UNKNOWN_PASSWORD: &str = "requires a password the host does not hold";
/// ... of one that refuses the host's copy.
const REFUSED_PASSWORD: &str = "refuses the password in postgres-password";

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
    /// The password file holds no usable password.
    #[error(
        "{0} does not hold a password (at least 16 printable ASCII characters); delete it and a new one is generated"
    )]
    BadPasswordFile(PathBuf),
    /// A file in the cluster directory is not the one PostgreSQL made.
    #[error(
        "refusing {path}: {why}. Something replaced the file PostgreSQL made; restore it (a regular file of the cluster's user) and start again"
    )]
    UntrustedFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        why: String,
    },
    /// Another host holds the data directory's lock.
    #[error(
        "another host uses this data directory ({data_dir}, pid {pid}); stop it first, or give this host its own --data-dir"
    )]
    AnotherHost {
        /// The data directory.
        data_dir: PathBuf,
        /// The other host's process id, as its lock record says.
        pid: String,
    },
    /// A command held the data directory's lock for too long.
    #[error(
        "{path} is held by `pacsync-host token` (pid {pid}) and was not released within 30 s; try again once it has finished"
    )]
    Locked {
        /// The lock file.
        path: PathBuf,
        /// The holder's process id, as its lock record says.
        pid: String,
    },
    /// A command found the host still starting its cluster, and waited as long as it may.
    #[error("the host is still starting; retry in a moment")]
    HostStarting,
    /// The cluster needs its password set offline, and this process may not stop it.
    #[error(
        "the embedded database {0}; stop the host (systemctl stop pacsync-host) and start it again to secure it"
    )]
    Unsecured(&'static str),
    /// A command found no cluster to use.
    #[error(
        "{0} holds no embedded database (no postgres/PG_VERSION); pass the host's --data-dir, or --database-url for an external database"
    )]
    NoCluster(PathBuf),
    /// Connecting to the fresh cluster failed.
    #[error("cannot connect to the embedded cluster: {0}")]
    Connect(#[from] sqlx::Error),
}

fn io_err(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> EmbeddedPostgresError {
    let context = context.into();
    move |source| EmbeddedPostgresError::Io { context, source }
}

/// How [`EmbeddedPostgres::attach`] reached the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attached {
    /// No host runs and the cluster was stopped: this process started it, holds the lock, and
    /// stops it when done.
    Started,
    /// No host runs, but the cluster was running (a host crashed, or one from before the lock
    /// runs): used as it is and left running.
    Running,
    /// A host runs: its cluster is used through the socket, never started or stopped.
    HostRuns,
}

/// A private PostgreSQL cluster in a directory.
pub struct EmbeddedPostgres {
    cluster_dir: PathBuf,
    bin_dir: PathBuf,
    /// `Some((uid, gid))` when commands must run as the unprivileged user.
    run_as: Option<(u32, u32)>,
    /// The superuser's password, known once the cluster has been started.
    password: Mutex<Option<String>>,
    /// The data directory's lock, once taken; released on drop.
    lock: Mutex<Option<lock::DataDirLock>>,
}

// By hand: the password stays out of debug output.
impl std::fmt::Debug for EmbeddedPostgres {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedPostgres")
            .field("cluster_dir", &self.cluster_dir)
            .field("bin_dir", &self.bin_dir)
            .field("run_as", &self.run_as)
            .finish_non_exhaustive()
    }
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
            None => command::find_bin_dir()?,
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
            password: Mutex::new(None),
            lock: Mutex::new(None),
        })
    }

    /// The cluster directory (also the socket directory).
    pub fn cluster_dir(&self) -> &Path {
        &self.cluster_dir
    }

    /// The superuser's password, once [`EmbeddedPostgres::start`] has run.
    pub fn password(&self) -> Option<String> {
        self.password.lock().expect("password lock").clone()
    }

    fn set_password(&self, password: &str) {
        *self.password.lock().expect("password lock") = Some(password.to_owned());
    }

    /// Connection options for the host's database over the private socket.
    pub fn connect_options(&self) -> PgConnectOptions {
        let options = PgConnectOptions::new()
            .socket(&self.cluster_dir)
            .port(5432)
            .username(USER)
            .database(DATABASE);
        match self.password() {
            Some(password) => options.password(&password),
            None => options,
        }
    }

    fn data_dir(&self) -> &Path {
        self.cluster_dir.parent().expect("cluster dir has a parent")
    }

    /// The uid the cluster's files belong to.
    fn cluster_owner(&self) -> u32 {
        self.run_as
            .map_or_else(|| nix::unistd::geteuid().as_raw(), |(uid, _)| uid)
    }

    /// For the host: takes the data directory's lock for as long as this value lives, creates
    /// the cluster on first use (or gives a stopped old one a password), starts it (or adopts a
    /// running one) and makes sure the host's database exists.
    pub async fn start(&self) -> Result<(), EmbeddedPostgresError> {
        let data_dir = self.data_dir();
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
        // Held already when a test restarts its cluster.
        if self.lock.lock().expect("data dir lock").is_none() {
            let held = lock::take_for_host(data_dir).await?;
            *self.lock.lock().expect("data dir lock") = Some(held);
        }
        let initialised = self.cluster_dir.join("PG_VERSION").exists();
        // Under the lock, a running cluster was started by a host that does not take it, or
        // outlived its host: it may be serving, so it is never stopped here.
        let running = initialised && self.is_running().await;
        let trusting = initialised && password::trusts(&self.read_hba()?);
        let password = match password::read_committed(data_dir)? {
            Some(password) if initialised && !trusting => password,
            _ if running => {
                let state = if trusting {
                    WITHOUT_PASSWORD
                } else {
                    UNKNOWN_PASSWORD
                };
                return Err(EmbeddedPostgresError::Unsecured(state));
            }
            committed => self.secure(committed, initialised).await?,
        };
        self.set_password(&password);
        if !running {
            self.launch().await?;
        }
        match self.ensure_database().await {
            // The committed file always matches the cluster unless someone changed either;
            // the host's file is the one that counts.
            Err(EmbeddedPostgresError::Connect(e)) if is_auth_failure(&e) => {
                if running {
                    return Err(EmbeddedPostgresError::Unsecured(REFUSED_PASSWORD));
                }
                tracing::warn!(
                    file = PASSWORD_FILE,
                    "the embedded cluster refused the host's password; setting it again"
                );
                self.stop().await?;
                self.set_password_offline(&password).await?;
                self.launch().await?;
                self.ensure_database().await
            }
            other => other,
        }
    }

    /// For a command beside the host: reaches the existing cluster, secured by a host before,
    /// without creating, securing or migrating anything. A running host's cluster is used
    /// through its socket, once the host has made it ready; otherwise this takes the data
    /// directory's lock for as long as this value lives, and starts the cluster if it is
    /// stopped. See [`Attached`].
    pub async fn attach(&self) -> Result<Attached, EmbeddedPostgresError> {
        let data_dir = self.data_dir();
        if !self.cluster_dir.join("PG_VERSION").exists() {
            return Err(EmbeddedPostgresError::NoCluster(data_dir.to_owned()));
        }
        let deadline = Instant::now() + starting::HOST_START_WAIT;
        // The lock is tried on every look: a host that fails to start releases it, and the
        // command then works on the cluster as it was left.
        let held = loop {
            if let Some(held) = lock::take_for_command(data_dir).await? {
                break held;
            }
            let look = self.look().await?;
            match starting::next(look, Instant::now() >= deadline) {
                starting::Next::Use => return Ok(Attached::HostRuns),
                starting::Next::Refuse => {
                    return Err(EmbeddedPostgresError::Unsecured(REFUSED_PASSWORD));
                }
                starting::Next::GiveUp => return Err(EmbeddedPostgresError::HostStarting),
                starting::Next::Wait => tokio::time::sleep(starting::POLL).await,
            }
        };
        *self.lock.lock().expect("data dir lock") = Some(held);
        let committed = password::read_committed(data_dir)?;
        let running = self.is_running().await;
        if password::trusts(&self.read_hba()?) {
            return Err(EmbeddedPostgresError::Unsecured(if running {
                WITHOUT_PASSWORD
            } else {
                "has no password yet"
            }));
        }
        let password = committed.ok_or(EmbeddedPostgresError::Unsecured(UNKNOWN_PASSWORD))?;
        self.set_password(&password);
        if running {
            return Ok(Attached::Running);
        }
        if let Err(e) = self.launch().await {
            // A server that came up too slowly for pg_ctl is this command's to stop.
            let _ = self.stop().await;
            return Err(e);
        }
        Ok(Attached::Started)
    }
}

/// Whether PostgreSQL refused the password (SQLSTATE 28P01).
pub fn is_auth_failure(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .and_then(|e| e.code())
        .is_some_and(|code| code == "28P01")
}
