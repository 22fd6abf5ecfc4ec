//! The host's database and signing key, for commands that work on them outside `serve`.
//!
//! It is the database `serve` uses: the external URL, or the embedded cluster in the data dir.
//! A command only opens what a host made: it never creates a data directory, a cluster or a
//! key, and it runs only as the data directory's owner (the host's user), so that nothing it
//! starts or touches ends up belonging to another user ([`check_host_files`]).
//!
//! The embedded cluster is reached through [`EmbeddedPostgres::attach`]: while a host runs,
//! through the host's socket, never starting or stopping it (waiting for one still starting);
//! when none runs, the command starts the cluster for itself under the data directory's lock and
//! stops it after. A cluster that is not secured yet, or refuses the host's password, is left as
//! it is: only a host's start secures it.
//!
//! A command never migrates: the database may serve a host of an older version (a package
//! upgrade installs the new command before the host restarts), whose queries a newer schema
//! would break under it. It refuses a schema that lacks a migration it knows, and says to start
//! or restart the host, which migrates it ([`check_schema`]).

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::bail;
use clap::Args;
use sqlx::PgPool;
use sqlx::postgres::PgConnectOptions;

use crate::config::{Config, ConfigError, Settings};
use crate::db::{self, DatabaseSetupError};
use crate::embedded_postgres::{self, Attached, EmbeddedPostgres, EmbeddedPostgresError};

/// The `application_name` of this command's sessions.
const APPLICATION: &str = "pacsync-host-cli";
/// Where the shipped unit (`host/dist/pacsync-host.service`) keeps the host's data.
const UNIT_DATA_DIR: &str = "/var/lib/pacsync";
/// How long a command waits for a starting host to migrate its new database, looking again
/// every [`POLL`].
const HOST_START_WAIT: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(200);

/// Where the host keeps its database and signing key: the settings `serve` reads.
#[derive(Debug, Args)]
pub(super) struct HostArgs {
    /// TOML config file (data_dir, database_url, jwt_key_file, postgres_bin_dir are read).
    #[arg(long, env = "PACSYNC_CONFIG")]
    config: Option<PathBuf>,
    /// The host's data directory (its embedded database and default signing key); it must
    /// exist, and the command runs as its owner [the unit's: /var/lib/pacsync, user pacsync].
    #[arg(long, env = "PACSYNC_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// The host's external PostgreSQL URL [default: the embedded cluster in the data dir].
    #[arg(long, env = "PACSYNC_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// The host's signing key file, which must exist [default: <data-dir>/jwt-secret].
    #[arg(long, env = "PACSYNC_JWT_KEY_FILE")]
    jwt_key_file: Option<PathBuf>,
    /// Directory holding initdb/pg_ctl, for the embedded database.
    #[arg(long, env = "PACSYNC_POSTGRES_BIN_DIR")]
    postgres_bin_dir: Option<PathBuf>,
}

impl HostArgs {
    pub(super) fn resolve(self) -> Result<Config, ConfigError> {
        let settings = Settings {
            data_dir: self.data_dir,
            database_url: self.database_url,
            jwt_key_file: self.jwt_key_file,
            postgres_bin_dir: self.postgres_bin_dir,
            ..Settings::default()
        };
        Config::resolve(settings, self.config.as_deref())
    }
}

/// Refuses, before anything is touched, to work on files no host made or as another user than
/// the host's: the data directory must exist and be this user's when the command uses it (the
/// embedded database, or the signing key inside it), with the cluster in it; with `needs_key`,
/// the signing key must exist.
pub(super) fn check_host_files(config: &Config, needs_key: bool) -> anyhow::Result<()> {
    let data_dir = &config.data_dir;
    let embedded = config.database_url.is_none();
    let key = &config.jwt_key_file;
    if embedded || (needs_key && key.starts_with(data_dir)) {
        let Ok(metadata) = std::fs::metadata(data_dir) else {
            bail!(
                "no host data directory at {}; pass --data-dir (the unit's is {UNIT_DATA_DIR}) and run as the host's user",
                data_dir.display()
            );
        };
        if !metadata.is_dir() {
            bail!("{} is not a directory", data_dir.display());
        }
        let me = nix::unistd::geteuid().as_raw();
        if metadata.uid() != me {
            let owner = user_name(metadata.uid());
            bail!(
                "{} belongs to {owner}, and this command runs as {}: run it as the host's user, \
                 e.g. `sudo -u {owner} pacsync-host token ...`",
                data_dir.display(),
                user_name(me)
            );
        }
        if embedded && !data_dir.join("postgres").join("PG_VERSION").exists() {
            return Err(EmbeddedPostgresError::NoCluster(data_dir.clone()).into());
        }
    }
    if needs_key && std::fs::symlink_metadata(key).is_err() {
        bail!(
            "no signing key at {}; a host makes <data-dir>/jwt-secret on its first start: pass the host's --data-dir (the unit's is {UNIT_DATA_DIR}) or its --jwt-key-file",
            key.display()
        );
    }
    Ok(())
}

/// A user's name, or its uid if it has none.
fn user_name(uid: u32) -> String {
    nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .ok()
        .flatten()
        .map_or_else(|| uid.to_string(), |user| user.name)
}

/// An open connection to the host's database.
pub(super) struct Database {
    /// The connection pool (of one connection).
    pub pool: PgPool,
    /// The embedded cluster (holding the data directory's lock unless a host runs).
    cluster: Option<EmbeddedPostgres>,
    /// Whether this command started the cluster, and so stops it.
    started: bool,
}

impl Database {
    /// Connects (starting the embedded cluster if no host runs and it is stopped), after
    /// checking the schema is one this command knows.
    pub async fn open(config: &Config) -> anyhow::Result<Self> {
        let (options, cluster) = match &config.database_url {
            Some(url) => (db::options_from_url(url)?, None),
            None => {
                let cluster =
                    EmbeddedPostgres::new(&config.data_dir, config.postgres_bin_dir.as_deref())?;
                let attached = cluster.attach().await?;
                (cluster.connect_options(), Some((cluster, attached)))
            }
        };
        let started = matches!(cluster, Some((_, Attached::Started)));
        let host_runs = matches!(cluster, Some((_, Attached::HostRuns)));
        let cluster = cluster.map(|(cluster, _)| cluster);
        // Named, so that close() can tell its own sessions (the schema check's may linger a
        // moment) from a host's.
        let options = options.application_name(APPLICATION);
        let opened = match check_schema(&options, host_runs).await {
            Ok(()) => db::connect(&options, 1).await.map_err(anyhow::Error::from),
            Err(e) => Err(e),
        };
        match opened {
            Ok(pool) => Ok(Self {
                pool,
                cluster,
                started,
            }),
            Err(e) => {
                if started && let Some(cluster) = &cluster {
                    let _ = cluster.stop().await;
                }
                match cluster {
                    Some(_) => Err(refused(e, &config.data_dir)),
                    None => Err(e),
                }
            }
        }
    }

    /// Whether other sessions use the cluster this command started: a host that does not take
    /// the data directory's lock may have adopted it. A session that just closed (the start's
    /// own) may linger a moment; a host's stay.
    async fn adopted(&self) -> bool {
        for _ in 0..5 {
            match db::cluster::other_sessions(&self.pool, APPLICATION).await {
                Ok(0) => return false,
                Ok(_) => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
                Err(_) => return true,
            }
        }
        true
    }

    /// The embedded cluster's socket directory; `None` on an external database.
    pub fn socket_dir(&self) -> Option<&Path> {
        self.cluster.as_ref().map(EmbeddedPostgres::cluster_dir)
    }

    /// Disconnects, stops the embedded cluster if this command started it (and nothing adopted
    /// it meanwhile), and releases the data directory's lock.
    pub async fn close(self) {
        let adopted = self.started && self.adopted().await;
        self.pool.close().await;
        if self.started
            && !adopted
            && let Some(cluster) = &self.cluster
            && let Err(e) = cluster.stop().await
        {
            eprintln!("warning: cannot stop the embedded database again: {e}");
        }
    }
}

/// Refuses a database whose schema lacks a migration this command knows, naming them: the
/// command never migrates (see the module doc). A host migrating it meanwhile is waited for;
/// while a host starts on a database it has not migrated yet (`host_runs`, no migration
/// recorded), the command looks again for up to [`HOST_START_WAIT`].
async fn check_schema(options: &PgConnectOptions, host_runs: bool) -> anyhow::Result<()> {
    let deadline = Instant::now() + HOST_START_WAIT;
    loop {
        let history = match db::schema_history(options).await {
            Ok(history) => history,
            Err(DatabaseSetupError::Connect(e)) if is_lock_timeout(&e) => bail!(
                "a host has been migrating the database for over a minute; retry once it has started"
            ),
            Err(e) => return Err(e.into()),
        };
        if history.missing.is_empty() {
            return Ok(());
        }
        if host_runs && history.applied == 0 {
            if Instant::now() >= deadline {
                return Err(EmbeddedPostgresError::HostStarting.into());
            }
            tokio::time::sleep(POLL).await;
            continue;
        }
        bail!(
            "the database schema is older than this command (missing {}); start or restart the \
             host first, which migrates it",
            history.missing.join(", ")
        );
    }
}

/// Whether a statement gave up waiting for a lock (SQLSTATE 55P03).
fn is_lock_timeout(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .and_then(|e| e.code())
        .is_some_and(|code| code == "55P03")
}

/// A failure to connect to the embedded cluster, saying what to do when it refused the password.
fn refused(error: anyhow::Error, data_dir: &Path) -> anyhow::Error {
    let refused = matches!(
        error.downcast_ref::<DatabaseSetupError>(),
        Some(DatabaseSetupError::MigrationConnect(e) | DatabaseSetupError::Connect(e))
            if embedded_postgres::is_auth_failure(e)
    );
    if !refused {
        return error;
    }
    error.context(format!(
        "the embedded database in {} refuses the password in postgres-password; stop the host \
         (systemctl stop pacsync-host) and start it again to secure it",
        data_dir.display()
    ))
}
