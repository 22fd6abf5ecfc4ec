//! Giving the cluster the host's password: at `initdb` for a new cluster, offline in
//! single-user mode for an existing one (which then accepts no connection until it requires
//! the password), and `pg_hba.conf` rewritten to require it.
//!
//! Both only ever run on a stopped cluster this process holds the data directory's lock for
//! ([`super::EmbeddedPostgres::start`] makes sure): stopping a cluster that serves another
//! process is not this module's call.

use super::{EmbeddedPostgres, EmbeddedPostgresError, USER, files, io_err, password};

impl EmbeddedPostgres {
    /// Gives the stopped cluster a password it requires from every connection: `initdb` for a
    /// new one, single-user mode for an existing one. Commits a new password only once it is
    /// required.
    pub(super) async fn secure(
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

    /// Sets the superuser's password of the stopped cluster in single-user mode (no connection
    /// is accepted meanwhile) and makes `pg_hba.conf` require it.
    pub(super) async fn set_password_offline(
        &self,
        password: &str,
    ) -> Result<(), EmbeddedPostgresError> {
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
        // Written beside and renamed over, so a crash leaves the old rules or the new ones; the
        // rename replaces whatever is at the name without following it.
        let partial = self.cluster_dir.join("pg_hba.conf.partial");
        files::write_private(&partial, hba.as_bytes(), self.run_as)?;
        std::fs::rename(&partial, self.cluster_dir.join("pg_hba.conf"))
            .map_err(io_err("cannot replace pg_hba.conf"))
    }

    /// `pg_hba.conf`, read as a file its user may have replaced (see `files.rs`).
    pub(super) fn read_hba(&self) -> Result<String, EmbeddedPostgresError> {
        files::read_owned(&self.cluster_dir.join("pg_hba.conf"), self.cluster_owner())
    }
}
