//! Creating, starting, stopping and probing the cluster with `initdb` and `pg_ctl`.

use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;

use super::{
    DATABASE, EmbeddedPostgres, EmbeddedPostgresError, UNPRIVILEGED_USER, USER, files, io_err,
    password,
};

impl EmbeddedPostgres {
    /// `pg_ctl start` on the private socket.
    pub(super) async fn launch(&self) -> Result<(), EmbeddedPostgresError> {
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
    pub(super) async fn initdb(&self, password: &str) -> Result<(), EmbeddedPostgresError> {
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
        files::write_private(
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

    /// Creates the host's database unless it exists.
    pub(super) async fn ensure_database(&self) -> Result<(), EmbeddedPostgresError> {
        use sqlx::Connection;
        let mut conn =
            sqlx::PgConnection::connect_with(&self.connect_options().database("postgres")).await?;
        crate::db::create_database_if_missing(&mut conn, DATABASE).await?;
        conn.close().await?;
        Ok(())
    }
}
