//! Operations as host, database layer, event hub and agent all see them: their kinds, their
//! lifecycle statuses and their wire form.
//!
//! The lifecycle itself (pending → in_progress → completed | failed | cancelled) is enforced by
//! the host's stored procedures; these types only name it, so a protocol change the client does
//! not follow fails to compile.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::plan::Plan;

/// The three operation types, as stored and as in JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum OperationType {
    /// Make the endpoint match the pool target.
    Sync,
    /// Make the endpoint's state the pool target.
    SetLatest,
    /// Return the endpoint to an earlier state.
    Revert,
}

crate::spelling::spelled!(OperationType {
    Sync => "sync",
    SetLatest => "set_latest",
    Revert => "revert",
});

/// Where an operation is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum OperationStatus {
    /// Created, waiting for the agent.
    Pending,
    /// Claimed by the agent under a lease.
    InProgress,
    /// The agent reached the goal.
    Completed,
    /// The agent, the reaper or a deletion ended it with an error.
    Failed,
    /// Cancelled before or while it ran.
    Cancelled,
}

crate::spelling::spelled!(OperationStatus {
    Pending => "pending",
    InProgress => "in_progress",
    Completed => "completed",
    Failed => "failed",
    Cancelled => "cancelled",
});

impl OperationStatus {
    /// Whether the operation has ended (completed, failed or cancelled).
    pub fn is_final(self) -> bool {
        matches!(
            self,
            OperationStatus::Completed | OperationStatus::Failed | OperationStatus::Cancelled
        )
    }
}

/// Progress as reported by the agent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Progress {
    /// 0 to 100.
    pub percentage: i16,
    /// Coarse stage, e.g. `downloading`, `installing`.
    pub stage: Option<String>,
    /// What is happening now, e.g. `upgrading linux`.
    pub current_action: Option<String>,
}

/// The policy a plan was computed with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PolicyRecord {
    /// Built-in name, or the uploaded plugin's id.
    pub plugin: String,
    /// The plugin's self-reported name.
    pub name: String,
    /// sha256 of the component; `native` for the built-in Rust mirror used by reverts.
    pub hash: String,
    /// The config it ran with.
    pub config: serde_json::Value,
}

/// An operation as the API returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Operation {
    /// Operation id.
    pub operation_id: Uuid,
    /// The endpoint it acts on.
    pub endpoint_id: Uuid,
    /// The endpoint's pool when the operation was created.
    pub pool_id: Uuid,
    /// `sync`, `set_latest` or `revert`.
    pub operation_type: OperationType,
    /// `pending`, `in_progress`, `completed`, `failed` or `cancelled`.
    pub status: OperationStatus,
    /// Free-form details (e.g. `replanned_from_generation`).
    pub details: serde_json::Value,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// When the agent started it.
    pub started_at: Option<DateTime<Utc>>,
    /// When it ended.
    pub completed_at: Option<DateTime<Utc>>,
    /// Stable failure code (`LEASE_EXPIRED`, or the agent's).
    pub error_code: Option<String>,
    /// Failure message (pacman's own text for pacman failures).
    pub error_message: Option<String>,
    /// Latest progress.
    pub progress: Progress,
    /// The plan the agent executes.
    pub plan: Option<Plan>,
    /// The policy (name, hash, config) the plan was computed with.
    pub policy: Option<PolicyRecord>,
    /// A cancel was requested while in progress.
    pub cancel_requested: bool,
    /// When the agent's claim runs out without progress.
    pub lease_expires_at: Option<DateTime<Utc>>,
    /// The state the operation aims for.
    pub target_state_id: Option<String>,
    /// Pool target generation the plan was made for (sync).
    pub target_generation: Option<i64>,
    /// The state the endpoint ended in.
    pub result_state_id: Option<String>,
}

/// A page of operations.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OperationPage {
    /// Operations, newest first.
    pub items: Vec<Operation>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_and_statuses_are_spelled_alike_in_json_and_the_database() {
        for kind in OperationType::ALL {
            assert_eq!(serde_json::to_value(kind).unwrap(), kind.as_str());
            assert_eq!(OperationType::try_from(kind.to_string()), Ok(*kind));
        }
        for status in OperationStatus::ALL {
            assert_eq!(serde_json::to_value(status).unwrap(), status.as_str());
            assert_eq!(OperationStatus::parse(status.as_str()), Some(*status));
        }
        assert!(OperationStatus::try_from("done".to_owned()).is_err());
    }
}
