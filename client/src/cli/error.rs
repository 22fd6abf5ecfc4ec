//! Why a command failed, and the one mapping from failures to exit codes.

use pacsync_core::OperationStatus;

use crate::agent::AgentError;
use crate::api::ApiError;
use crate::config::ConfigError;
use crate::pacman::PacmanError;
use crate::tls::TlsError;

/// Why a command failed. [`CliError::exit_code`] is the only place an exit code is chosen, so
/// the codes scripts and the README rely on cannot drift apart between commands.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The config file cannot be read, parsed or written.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The CA certificate cannot be used.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// An argument's value cannot be used (an unreadable or empty token file).
    #[error("{0}")]
    Usage(String),
    /// The host refused, or could not be reached or did not answer in time.
    #[error(transparent)]
    Api(#[from] ApiError),
    /// pacman could not be queried.
    #[error(transparent)]
    Pacman(#[from] PacmanError),
    /// The followed operation ended without completing.
    #[error("the operation ended {0}")]
    NotCompleted(OperationStatus),
    /// The followed operation did not end within `--timeout`.
    #[error("timed out waiting for the operation")]
    FollowTimedOut,
    /// Ctrl-C.
    #[error("interrupted")]
    Interrupted,
}

impl From<AgentError> for CliError {
    fn from(error: AgentError) -> Self {
        match error {
            AgentError::Api(e) => CliError::Api(e),
            AgentError::Pacman(e) => CliError::Pacman(e),
        }
    }
}

impl CliError {
    /// The process exit code: 1 operation failed or refused, 2 usage/config error, 3 auth
    /// error, 4 host unreachable, 5 timed out (waiting for the host or the operation, or still
    /// rate limited after the waits the host asked for: try again later), 130 interrupted.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Api(ApiError::Problem { .. })
            | CliError::Pacman(_)
            | CliError::NotCompleted(_) => 1,
            CliError::Config(_) | CliError::Tls(_) | CliError::Usage(_) => 2,
            CliError::Api(ApiError::Auth { .. }) => 3,
            CliError::Api(ApiError::Unreachable(_)) => 4,
            CliError::Api(ApiError::Timeout(_) | ApiError::RateLimited { .. })
            | CliError::FollowTimedOut => 5,
            CliError::Interrupted => 130,
        }
    }

    /// Whether the error still has to be printed: a followed operation's outcome is already on
    /// stdout, a timeout on the progress bar, and an interrupt was the user's own doing.
    pub fn needs_telling(&self) -> bool {
        !matches!(
            self,
            CliError::NotCompleted(_) | CliError::FollowTimedOut | CliError::Interrupted
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_failure_has_its_documented_exit_code() {
        let problem = |status| ApiError::Problem {
            status,
            code: "X".into(),
            detail: String::new(),
        };
        let auth = ApiError::Auth {
            code: "INVALID_TOKEN".into(),
            detail: String::new(),
        };
        let cases = [
            (CliError::Api(problem(409)), 1),
            (CliError::Api(problem(404)), 1),
            (
                CliError::Pacman(PacmanError::Failed {
                    output: "error".into(),
                }),
                1,
            ),
            (CliError::NotCompleted(OperationStatus::Failed), 1),
            (CliError::NotCompleted(OperationStatus::Cancelled), 1),
            (
                CliError::Tls(TlsError::CaFile {
                    path: "ca.pem".into(),
                    reason: "no certificate".into(),
                }),
                2,
            ),
            (CliError::Usage("no token".into()), 2),
            (CliError::Api(auth), 3),
            (CliError::Api(ApiError::Unreachable("refused".into())), 4),
            (CliError::Api(ApiError::Timeout("slow".into())), 5),
            (
                CliError::Api(ApiError::RateLimited {
                    retry_after: 2,
                    detail: String::new(),
                }),
                5,
            ),
            (CliError::FollowTimedOut, 5),
            (CliError::Interrupted, 130),
        ];
        for (error, code) in cases {
            assert_eq!(error.exit_code(), code, "{error:?}");
        }
    }

    #[test]
    fn agent_errors_keep_their_own_message_and_code() {
        let error = CliError::from(AgentError::Pacman(PacmanError::Failed {
            output: "target not found: foo".into(),
        }));
        assert_eq!(error.to_string(), "target not found: foo");
        assert_eq!(error.exit_code(), 1);
        let error = CliError::from(AgentError::Api(ApiError::Unreachable("refused".into())));
        assert_eq!(error.exit_code(), 4);
        assert!(error.needs_telling());
    }

    #[test]
    fn a_rate_limit_outlasting_the_retries_says_when_to_come_back() {
        let error = CliError::Api(ApiError::RateLimited {
            retry_after: 2,
            detail: "at most 5 at once".into(),
        });
        assert!(
            error
                .to_string()
                .starts_with("rate limited; retry after 2 s"),
            "{error}"
        );
        assert!(error.needs_telling());
    }
}
