//! The bodies the agent and CLI send the host, and the host's answers about one endpoint.
//!
//! Host and client share these types, so both sides of `PUT /api/endpoints/{id}/state` and the
//! operation transitions read and write the same fields.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::availability::AvailabilityReport;
use crate::package::Package;
use crate::status::SyncStatus;

/// `PUT /api/endpoints/{id}/state` body: the machine's full package list.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct StateReport {
    /// Machine architecture (`x86_64`).
    pub architecture: String,
    /// `pacman --version`'s version.
    pub pacman_version: String,
    /// Every installed package.
    pub packages: Vec<Package>,
    /// What the machine can obtain, for the pool's repository analysis; absent from agents that
    /// do not report it (the previous report then stays in force).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available: Option<AvailabilityReport>,
}

/// `PUT /api/endpoints/{id}/state` response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StateRecorded {
    /// Content address of the reported state.
    pub state_id: String,
    /// Classification against the pool target.
    pub sync_status: SyncStatus,
}

/// `POST /api/sync/{endpoint_id}/revert` body.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RevertRequest {
    /// A state from the endpoint's history; without it, the state before the latest change.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(pattern = "^[0-9a-f]{64}$"))]
    pub state_id: Option<String>,
}

/// `POST /api/sync/operations/{id}/progress` body.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ProgressReport {
    /// 0 to 100.
    #[cfg_attr(feature = "openapi", schema(minimum = 0, maximum = 100))]
    pub percentage: i32,
    /// Coarse stage, up to 64 characters.
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 64))]
    pub stage: String,
    /// What is happening now, up to 512 characters.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(max_length = 512))]
    pub current_action: Option<String>,
}

/// `POST /api/sync/operations/{id}/complete` body.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CompleteReport {
    /// The machine's state after the operation.
    pub state: StateReport,
}

/// `POST /api/sync/operations/{id}/fail` body.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct FailReport {
    /// Stable code, `[A-Z0-9_]{1,64}`, e.g. `PACMAN_FAILED`.
    #[cfg_attr(feature = "openapi", schema(pattern = "^[A-Z0-9_]{1,64}$"))]
    pub code: String,
    /// What went wrong, up to 16 KiB (pacman's own message).
    pub message: String,
}

/// `POST /api/sync/operations/{id}/cancel-ack` body.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CancelAck {
    /// The state the machine is in after stopping, if known.
    #[serde(default)]
    pub state: Option<StateReport>,
}

/// `GET /api/endpoints/{id}/diff` response: what a sync would change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TargetDiff {
    /// The endpoint.
    pub endpoint_id: Uuid,
    /// Its pool.
    pub pool_id: Uuid,
    /// The pool's name.
    pub pool_name: String,
    /// Classification by the pool's policy.
    pub sync_status: SyncStatus,
    /// Target generation compared against (0: no target).
    pub target_generation: i64,
    /// `name version` of packages to install.
    pub install: Vec<String>,
    /// `name from -> to` of packages to upgrade.
    pub upgrade: Vec<String>,
    /// `name from -> to` of packages to downgrade.
    pub downgrade: Vec<String>,
    /// `name version` of packages to remove.
    pub remove: Vec<String>,
    /// `name version: from -> to` of packages to re-mark with another install reason, e.g.
    /// `git 2.43-1: dependency -> explicit`.
    #[serde(default)]
    pub set_reason: Vec<String>,
}

/// `GET /api/pools/{pool_id}/status` response: live endpoints per sync status.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PoolStatus {
    /// The pool.
    pub pool_id: Uuid,
    /// Target generation the counts refer to.
    pub target_generation: i64,
    /// All live endpoints.
    pub total: i64,
    /// Matching the target.
    pub in_sync: i64,
    /// Only newer or extra packages.
    pub ahead: i64,
    /// Only older or missing packages.
    pub behind: i64,
    /// Both.
    pub diverged: i64,
    /// Not reported yet, or no target.
    pub unknown: i64,
    /// Live endpoints whose agent holds its event stream open now.
    #[serde(default)]
    pub online: i64,
}

impl PoolStatus {
    /// Adds `count` endpoints of one status.
    pub fn add(&mut self, status: SyncStatus, count: i64) {
        self.total += count;
        *match status {
            SyncStatus::InSync => &mut self.in_sync,
            SyncStatus::Ahead => &mut self.ahead,
            SyncStatus::Behind => &mut self.behind,
            SyncStatus::Diverged => &mut self.diverged,
            SyncStatus::Unknown => &mut self.unknown,
        } += count;
    }
}

/// Who may change a pool's target with set-as-latest. Admins always may, and only admins
/// restore an earlier target (`PUT /api/pools/{pool_id}/target`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum TargetSetters {
    /// Every endpoint of the pool: desktop users press "Set as latest".
    #[default]
    AnyEndpoint,
    /// Only endpoints an admin allowed (`PUT /api/endpoints/{id}/permissions`).
    Designated,
    /// Only admins.
    Admins,
}

crate::spelling::spelled!(TargetSetters {
    AnyEndpoint => "any_endpoint",
    Designated => "designated",
    Admins => "admins",
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_setters_are_spelled_alike_in_json_and_the_database() {
        for setters in TargetSetters::ALL {
            assert_eq!(serde_json::to_value(setters).unwrap(), setters.as_str());
            assert_eq!(TargetSetters::try_from(setters.to_string()), Ok(*setters));
        }
        assert_eq!(TargetSetters::default(), TargetSetters::AnyEndpoint);
        assert!(TargetSetters::parse("anyone").is_none());
    }
}
