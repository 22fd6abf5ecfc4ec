//! A command beside a host that is still starting.
//!
//! A host takes the data directory's lock before it makes, secures or starts the cluster, so a
//! command that finds the lock held by a host may find it halfway through its start: no
//! password file yet (initdb runs, or an old cluster is being secured), the server not up yet,
//! or the host's database not made yet. The command then looks again every [`POLL`], for up to
//! [`HOST_START_WAIT`], and then says the host is still starting. Only a password that exists
//! and that the server refuses means the cluster needs securing, which only a host's start
//! does: the command fails at once and says so.

use std::time::Duration;

use sqlx::Connection;

use super::{EmbeddedPostgres, EmbeddedPostgresError, password};

/// How long a command waits for a starting host's cluster.
pub(super) const HOST_START_WAIT: Duration = Duration::from_secs(30);
/// How often it looks again.
pub(super) const POLL: Duration = Duration::from_millis(200);

/// One look at a running host's cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Look {
    /// The host has committed no password yet.
    NoPassword,
    /// The server does not answer yet, or has no database for the host yet.
    NoAnswer,
    /// The server refuses the committed password.
    Refused,
    /// The server admits the committed password.
    Admitted,
}

/// What a command does after a look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Next {
    /// Uses the cluster through the host's socket.
    Use,
    /// Looks again after [`POLL`].
    Wait,
    /// Fails: the host is still starting.
    GiveUp,
    /// Fails: the cluster refuses the host's password.
    Refuse,
}

/// What to do after `look`, once `waited_out` says [`HOST_START_WAIT`] has passed.
pub(super) fn next(look: Look, waited_out: bool) -> Next {
    match look {
        Look::Admitted => Next::Use,
        Look::Refused => Next::Refuse,
        Look::NoPassword | Look::NoAnswer if waited_out => Next::GiveUp,
        Look::NoPassword | Look::NoAnswer => Next::Wait,
    }
}

/// Whether a connection failed because the server is not there yet rather than refusing it:
/// no socket or no listener yet (I/O), `cannot_connect_now` (57P03: starting up) or
/// `invalid_catalog_name` (3D000: the host has not made its database yet).
fn not_up_yet(error: &sqlx::Error) -> bool {
    if matches!(error, sqlx::Error::Io(_)) {
        return true;
    }
    error
        .as_database_error()
        .and_then(|e| e.code())
        .is_some_and(|code| code == "57P03" || code == "3D000")
}

impl EmbeddedPostgres {
    /// Looks once at a running host's cluster: its committed password (kept for the command's
    /// connections), and whether the server admits it.
    pub(super) async fn look(&self) -> Result<Look, EmbeddedPostgresError> {
        let Some(password) = password::read_committed(self.data_dir())? else {
            return Ok(Look::NoPassword);
        };
        self.set_password(&password);
        match sqlx::PgConnection::connect_with(&self.connect_options()).await {
            Ok(connection) => {
                let _ = connection.close().await;
                Ok(Look::Admitted)
            }
            Err(e) if super::is_auth_failure(&e) => Ok(Look::Refused),
            Err(e) if not_up_yet(&e) => Ok(Look::NoAnswer),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_starting_host_is_waited_for_and_only_a_refused_password_asks_to_secure_the_cluster() {
        for waited_out in [false, true] {
            assert_eq!(next(Look::Admitted, waited_out), Next::Use);
            assert_eq!(next(Look::Refused, waited_out), Next::Refuse);
        }
        for starting in [Look::NoPassword, Look::NoAnswer] {
            assert_eq!(next(starting, false), Next::Wait, "{starting:?}");
            assert_eq!(next(starting, true), Next::GiveUp, "{starting:?}");
        }
    }

    #[test]
    fn a_missing_socket_is_a_server_not_up_yet_and_other_failures_are_not() {
        let missing = std::io::Error::from(std::io::ErrorKind::NotFound);
        assert!(not_up_yet(&sqlx::Error::Io(missing)));
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert!(not_up_yet(&sqlx::Error::Io(refused)));
        assert!(!not_up_yet(&sqlx::Error::PoolTimedOut));
        assert!(!not_up_yet(&sqlx::Error::Protocol("garbled".into())));
    }
}
