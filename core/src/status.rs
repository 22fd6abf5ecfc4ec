//! Where an endpoint stands relative to its pool's target, decided from the differences.

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};

use crate::difference::{Action, ActionKind, differences_by};
use crate::package::PackageState;
use crate::version::vercmp;

/// Where an endpoint stands relative to its pool's target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum SyncStatus {
    /// Same packages at the same versions.
    InSync,
    /// Only newer or extra packages.
    Ahead,
    /// Only older or missing packages, or install reasons still to record.
    Behind,
    /// Both newer/extra and older/missing packages.
    Diverged,
    /// No reported state, or no pool target yet.
    Unknown,
}

crate::spelling::spelled!(SyncStatus {
    InSync => "in_sync",
    Ahead => "ahead",
    Behind => "behind",
    Diverged => "diverged",
    Unknown => "unknown",
});

/// Classifies from the differences: extra or newer packages make an endpoint ahead; missing or
/// older ones, or another install reason, behind; and both diverged. A reason-only difference is
/// behind because a sync is what removes it.
pub fn classify_differences(differences: &[Action]) -> SyncStatus {
    let ahead = differences
        .iter()
        .any(|a| matches!(a.kind, ActionKind::Remove | ActionKind::Downgrade));
    let behind = differences.iter().any(|a| {
        matches!(
            a.kind,
            ActionKind::Install | ActionKind::Upgrade | ActionKind::SetReason
        )
    });
    match (ahead, behind) {
        (false, false) => SyncStatus::InSync,
        (true, false) => SyncStatus::Ahead,
        (false, true) => SyncStatus::Behind,
        (true, true) => SyncStatus::Diverged,
    }
}

/// Classifies `current` against `target`, comparing versions with pacman's `vercmp`.
pub fn classify(current: &PackageState, target: &PackageState) -> SyncStatus {
    classify_by(current, target, vercmp)
}

/// [`classify`] with a caller-supplied version order.
pub fn classify_by(
    current: &PackageState,
    target: &PackageState,
    cmp: impl Fn(&str, &str) -> Ordering,
) -> SyncStatus {
    classify_differences(&differences_by(current, target, cmp))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::state;

    #[test]
    fn classifies_each_status() {
        let target = state(&[("a", "1.0-1"), ("b", "2.0-1")]);
        let cases = [
            (state(&[("a", "1.0-1"), ("b", "2.0-1")]), SyncStatus::InSync),
            (state(&[("a", "0:1.0"), ("b", "2.0-1")]), SyncStatus::InSync),
            (state(&[("a", "1.1-1"), ("b", "2.0-1")]), SyncStatus::Ahead),
            (
                state(&[("a", "1.0-1"), ("b", "2.0-1"), ("c", "1")]),
                SyncStatus::Ahead,
            ),
            (state(&[("a", "1.0-1")]), SyncStatus::Behind),
            (state(&[("a", "0.9-1"), ("b", "2.0-1")]), SyncStatus::Behind),
            (
                state(&[("a", "0.9-1"), ("b", "2.1-1")]),
                SyncStatus::Diverged,
            ),
        ];
        for (current, expected) in cases {
            assert_eq!(classify(&current, &target), expected);
        }
        let as_deps = crate::testing::state_with(
            crate::package::InstallReason::Dependency,
            &[("a", "1.0-1"), ("b", "2.0-1")],
        );
        assert_eq!(classify(&as_deps, &target), SyncStatus::Behind);
    }

    #[test]
    fn statuses_round_trip_through_their_spelling() {
        for &status in SyncStatus::ALL {
            assert_eq!(SyncStatus::parse(status.as_str()), Some(status));
            assert_eq!(
                serde_json::to_value(status).unwrap(),
                serde_json::json!(status.as_str())
            );
        }
        assert_eq!(SyncStatus::parse("synced"), None);
    }
}
