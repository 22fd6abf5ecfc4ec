//! The host's database, for commands that work on it outside `serve`.
//!
//! It is the database `serve` uses: the external URL, or the embedded cluster in the data dir.
//! An embedded cluster that is running (a host is up) is used through its socket and left
//! running; a stopped one is started for the command (created first on a fresh data dir, as
//! `serve` would) and stopped after it, unless a host started meanwhile and adopted it: then
//! that host stops it when it stops. Migrations run first, as at `serve`, so a command never
//! meets an older schema.

use sqlx::PgPool;

use crate::config::Config;
use crate::db;
use crate::embedded_postgres::EmbeddedPostgres;

/// The `application_name` of this command's sessions.
const APPLICATION: &str = "pacsync-host-cli";

/// An open connection to the host's database.
pub(super) struct Database {
    /// The connection pool (of one connection).
    pub pool: PgPool,
    /// The embedded cluster, when this command started it.
    started: Option<EmbeddedPostgres>,
}

impl Database {
    /// Connects (starting the embedded cluster if it is stopped) and migrates.
    pub async fn open(config: &Config) -> anyhow::Result<Self> {
        let (options, started) = match &config.database_url {
            Some(url) => (db::options_from_url(url)?, None),
            None => {
                let cluster =
                    EmbeddedPostgres::new(&config.data_dir, config.postgres_bin_dir.as_deref())?;
                let running = cluster.is_running().await;
                if let Err(e) = cluster.start().await {
                    if !running {
                        let _ = cluster.stop().await;
                    }
                    return Err(e.into());
                }
                let options = cluster.connect_options();
                (options, (!running).then_some(cluster))
            }
        };
        // Named, so that close() can tell its own sessions (the migration connection's may
        // linger a moment) from a host's.
        let options = options.application_name(APPLICATION);
        match db::connect_and_migrate(&options, 1).await {
            Ok(pool) => Ok(Self { pool, started }),
            Err(e) => {
                if let Some(cluster) = &started {
                    let _ = cluster.stop().await;
                }
                Err(e.into())
            }
        }
    }

    /// Whether other sessions use the cluster. A session that just closed (the start's own)
    /// may linger a moment; a host's stay.
    async fn adopted(&self) -> bool {
        for _ in 0..5 {
            match db::admin_tokens::other_sessions(&self.pool, APPLICATION).await {
                Ok(0) => return false,
                Ok(_) => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
                Err(_) => return true,
            }
        }
        true
    }

    /// Disconnects, and stops the embedded cluster if this command started it and no host
    /// adopted it meanwhile.
    pub async fn close(self) {
        let adopted = self.started.is_some() && self.adopted().await;
        self.pool.close().await;
        if adopted {
            return;
        }
        if let Some(cluster) = &self.started
            && let Err(e) = cluster.stop().await
        {
            eprintln!("warning: cannot stop the embedded database again: {e}");
        }
    }
}
