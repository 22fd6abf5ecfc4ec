//! The private PostgreSQL cluster the host runs when no database URL is configured.
//!
//! The cluster lives in `<data-dir>/postgres`, listens only on a Unix socket inside that
//! directory (mode 0700), and is started and stopped with `pg_ctl`. PostgreSQL refuses to run as
//! root, so when the host is root the cluster belongs to `nobody` and every PostgreSQL command
//! runs through `runuser`. Reaching the socket is therefore not enough: every connection needs
//! the password the host keeps in `<data-dir>/postgres-password` (`password.rs` holds the
//! protocol).
//! A cluster that still trusts its socket (made before the password existed) is given one on
//! start, offline in single-user mode, so it never accepts a connection in between.
//! Tests start their clusters through this same module.

mod command;
mod password;

use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use sqlx::postgres::PgConnectOptions;

pub use password::PASSWORD_FILE;

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
    /// The password file holds no usable password.
    #[error(
        "{0} does not hold a password (at least 16 printable ASCII characters); delete it and a new one is generated"
    )]
    BadPasswordFile(PathBuf),
    /// Connecting to the fresh cluster failed.
    #[error("cannot connect to the embedded cluster: {0}")]
    Connect(#[from] sqlx::Error),
}

fn io_err(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> EmbeddedPostgresError {
    let context = context.into();
    move |source| EmbeddedPostgresError::Io { context, source }
}

/// A private PostgreSQL cluster in a directory.
pub struct EmbeddedPostgres {
    cluster_dir: PathBuf,
    bin_dir: PathBuf,
    /// `Some((uid, gid))` when commands must run as the unprivileged user.
    run_as: Option<(u32, u32)>,
    /// The superuser's password, known once the cluster has been started.
    password: Mutex<Option<String>>,
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

    /// Creates the cluster on first use (or gives an old one a password), starts it (or adopts
    /// a running one) and makes sure the host's database exists.
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
        let initialised = self.cluster_dir.join("PG_VERSION").exists();
        let trusting = initialised && password::trusts(&self.read_hba()?);
        let password = match password::read_committed(data_dir)? {
            Some(password) if initialised && !trusting => password,
            committed => self.secure(committed, initialised).await?,
        };
        *self.password.lock().expect("password lock") = Some(password.clone());
        if !self.is_running().await {
            self.launch().await?;
        }
        match self.ensure_database().await {
            // The committed file always matches the cluster unless someone changed either;
            // the host's file is the one that counts.
            Err(EmbeddedPostgresError::Connect(e)) if is_auth_failure(&e) => {
                tracing::warn!(
                    file = PASSWORD_FILE,
                    "the embedded cluster refused the host's password; setting it again"
                );
                self.set_password_offline(&password).await?;
                self.launch().await?;
                self.ensure_database().await
            }
            other => other,
        }
    }

    /// Gives the cluster a password it requires from every connection: `initdb` for a new one,
    /// single-user mode for an existing one. Commits a new password only once it is required.
    async fn secure(
        &self,
        committed: Option<String>,
        initialised: bool,
    ) -> Result<String, EmbeddedPostgresError> {
        let data_dir = self.data_dir();
        let new = committed.is_none();
        let password = match committed {
            Some(password) => password,
            None => password::create_pending(data_dir)?,
        };
        if initialised {
            tracing::info!("requiring a password for the embedded PostgreSQL cluster");
            self.set_password_offline(&password).await?;
        } else {
            self.initdb(&password).await?;
        }
        if new {
            password::commit(data_dir)?;
        }
        Ok(password)
    }

    /// Stops the cluster if it runs, sets the superuser's password in single-user mode (no
    /// connection is accepted meanwhile) and makes `pg_hba.conf` require it.
    async fn set_password_offline(&self, password: &str) -> Result<(), EmbeddedPostgresError> {
        self.stop().await?;
        // A verifier holds only base64, digits, `$` and `:`: safe inside a quoted literal.
        let statement = format!(
            "ALTER ROLE \"{USER}\" PASSWORD '{}';\n",
            password::verifier(password)
        );
        self.run_with_input(
            "postgres",
            &[
                "--single".into(),
                "-D".into(),
                self.cluster_dir.clone().into(),
                "-c".into(),
                "exit_on_error=on".into(),
                "postgres".into(),
            ],
            Some(statement.as_bytes()),
        )
        .await?;
        let hba = password::require_password(&self.read_hba()?);
        // Written beside and renamed over, so a crash leaves the old rules or the new ones.
        let partial = self.cluster_dir.join("pg_hba.conf.partial");
        password::write_private(&partial, hba.as_bytes(), self.run_as)?;
        std::fs::rename(&partial, self.cluster_dir.join("pg_hba.conf"))
            .map_err(io_err("cannot replace pg_hba.conf"))
    }

    fn read_hba(&self) -> Result<String, EmbeddedPostgresError> {
        let path = self.cluster_dir.join("pg_hba.conf");
        std::fs::read_to_string(&path).map_err(io_err(format!("cannot read {}", path.display())))
    }

    /// `pg_ctl start` on the private socket.
    async fn launch(&self) -> Result<(), EmbeddedPostgresError> {
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
        .await
        .map(|_| ())
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

    /// Creates the cluster with `password` required on every connection.
    async fn initdb(&self, password: &str) -> Result<(), EmbeddedPostgresError> {
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
        // initdb reads the superuser's password from a file its user can read: give it the
        // verifier, which it stores as is, so the password never leaves the host's own files.
        let pwfile = self.data_dir().join("postgres-verifier.initdb");
        password::write_private(
            &pwfile,
            password::verifier(password).as_bytes(),
            self.run_as,
        )?;
        let mut pwfile_arg = OsString::from("--pwfile=");
        pwfile_arg.push(&pwfile);
        let outcome = self
            .run(
                "initdb",
                &[
                    "-D".into(),
                    self.cluster_dir.clone().into(),
                    "-U".into(),
                    USER.into(),
                    pwfile_arg,
                    "--auth=scram-sha-256".into(),
                    "--encoding=UTF8".into(),
                    "--no-locale".into(),
                ],
            )
            .await;
        let _ = std::fs::remove_file(&pwfile);
        outcome.map(|_| ())
    }

    async fn ensure_database(&self) -> Result<(), EmbeddedPostgresError> {
        use sqlx::Connection;
        let mut conn =
            sqlx::PgConnection::connect_with(&self.connect_options().database("postgres")).await?;
        crate::db::create_database_if_missing(&mut conn, DATABASE).await?;
        conn.close().await?;
        Ok(())
    }
}

/// Whether PostgreSQL refused the password (SQLSTATE 28P01).
fn is_auth_failure(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .and_then(|e| e.code())
        .is_some_and(|code| code == "28P01")
}
