//! Database errors as problem codes: the one place stored-procedure SQLSTATEs (class `PS`,
//! listed in `sql/V2__procedures.sql`) and constraint names become [`ErrorCode`]s.

use super::{Error, ErrorCode};

impl ErrorCode {
    /// The stored procedure SQLSTATE that signals this code, if any.
    pub(super) fn from_sqlstate(state: &str) -> Option<Self> {
        use ErrorCode::*;
        Some(match state {
            "PS001" => EndpointNotFound,
            "PS002" => OperationNotFound,
            "PS003" => OperationConflict,
            "PS007" => IdempotencyKeyMismatch,
            "PS008" => PoolNotFound,
            "PS010" => OperationNotPending,
            "PS011" => OperationNotInProgress,
            "PS012" => OperationAlreadyFinished,
            "PS013" => CancelNotRequested,
            "PS014" => StalePlan,
            "PS015" => EndpointBusy,
            "PS016" => PoolNotEmpty,
            "PS017" => StateNotFound,
            _ => return None,
        })
    }
}

impl From<sqlx::Error> for Error {
    fn from(err: sqlx::Error) -> Self {
        match &err {
            sqlx::Error::Database(db) => {
                if let Some(code) = db.code().as_deref().and_then(ErrorCode::from_sqlstate) {
                    return Error::new(code, db.message());
                }
                match db.code().as_deref() {
                    // Deadlock or serialization failure: transient, safe to retry.
                    Some("40P01" | "40001") => {
                        return Error::new(
                            ErrorCode::DatabaseUnavailable,
                            "the request collided with a concurrent one; retry",
                        );
                    }
                    // Data exceptions (e.g. a NUL character in text) are the client's input.
                    Some(code) if code.starts_with("22") => {
                        return Error::new(
                            ErrorCode::ValidationFailed,
                            format!("invalid value: {}", db.message()),
                        );
                    }
                    _ => {}
                }
                if db.is_foreign_key_violation()
                    && db.constraint() == Some("pools_policy_plugin_id_fkey")
                {
                    return Error::new(
                        ErrorCode::PluginInUse,
                        "a pool still uses this plugin; change its policy first",
                    );
                }
                if db.is_unique_violation() {
                    match db.constraint() {
                        Some("pools_live_name") => {
                            return Error::new(
                                ErrorCode::PoolNameTaken,
                                "a pool with this name already exists",
                            );
                        }
                        Some("endpoints_live_name") => {
                            return Error::new(
                                ErrorCode::EndpointNameTaken,
                                "an endpoint with this name already exists in this pool",
                            );
                        }
                        _ => {}
                    }
                }
                Error::internal(err)
            }
            sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed => {
                tracing::warn!(error = %err, "database unavailable");
                Error::new(
                    ErrorCode::DatabaseUnavailable,
                    "the database is unavailable; retry later",
                )
            }
            _ => Error::internal(err),
        }
    }
}
