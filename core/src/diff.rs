//! The difference between an endpoint's state and a target, and the sync status it implies.

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};

use crate::package::{Package, PackageState};
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
    /// Only older or missing packages.
    Behind,
    /// Both newer/extra and older/missing packages.
    Diverged,
    /// No reported state, or no pool target yet.
    Unknown,
}

impl SyncStatus {
    /// The spelling used in JSON and in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            SyncStatus::InSync => "in_sync",
            SyncStatus::Ahead => "ahead",
            SyncStatus::Behind => "behind",
            SyncStatus::Diverged => "diverged",
            SyncStatus::Unknown => "unknown",
        }
    }

    /// Parses the database spelling.
    pub fn parse(s: &str) -> Option<Self> {
        [
            SyncStatus::InSync,
            SyncStatus::Ahead,
            SyncStatus::Behind,
            SyncStatus::Diverged,
            SyncStatus::Unknown,
        ]
        .into_iter()
        .find(|status| status.as_str() == s)
    }
}

/// What would have to change to turn `current` into `target`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Diff {
    /// In the target, missing on the endpoint.
    pub install: Vec<Package>,
    /// Older on the endpoint than in the target: `(current, target)`.
    pub upgrade: Vec<(Package, Package)>,
    /// Newer on the endpoint than in the target: `(current, target)`.
    pub downgrade: Vec<(Package, Package)>,
    /// On the endpoint, absent from the target.
    pub remove: Vec<Package>,
}

impl Diff {
    /// Whether the two states hold the same versions of the same packages.
    pub fn is_empty(&self) -> bool {
        self.install.is_empty()
            && self.upgrade.is_empty()
            && self.downgrade.is_empty()
            && self.remove.is_empty()
    }
}

/// Computes the package-level difference, comparing versions with pacman's `vercmp`.
///
/// Versions that `vercmp` calls equal (e.g. `1.0` and `0:1.0`) are not a difference.
pub fn diff(current: &PackageState, target: &PackageState) -> Diff {
    diff_by(current, target, vercmp)
}

/// [`diff`] with a caller-supplied version order; plugins pass the host's `vercmp` import.
pub fn diff_by(
    current: &PackageState,
    target: &PackageState,
    cmp: impl Fn(&str, &str) -> Ordering,
) -> Diff {
    // Both states iterate in name order: one merge pass, no per-package lookups.
    let mut out = Diff::default();
    let (mut haves, mut wants) = (current.iter().peekable(), target.iter().peekable());
    loop {
        match (haves.peek(), wants.peek()) {
            (None, None) => break,
            (Some(have), None) => {
                out.remove.push((*have).clone());
                haves.next();
            }
            (None, Some(want)) => {
                out.install.push((*want).clone());
                wants.next();
            }
            (Some(have), Some(want)) => match have.name.cmp(&want.name) {
                Ordering::Less => {
                    out.remove.push((*have).clone());
                    haves.next();
                }
                Ordering::Greater => {
                    out.install.push((*want).clone());
                    wants.next();
                }
                Ordering::Equal => {
                    match cmp(&have.version, &want.version) {
                        Ordering::Less => out.upgrade.push(((*have).clone(), (*want).clone())),
                        Ordering::Greater => out.downgrade.push(((*have).clone(), (*want).clone())),
                        Ordering::Equal => {}
                    }
                    haves.next();
                    wants.next();
                }
            },
        }
    }
    out
}

/// Classifies `current` against `target`: extra or newer packages make it ahead, missing or
/// older ones behind, and both diverged.
pub fn classify(current: &PackageState, target: &PackageState) -> SyncStatus {
    classify_by(current, target, vercmp)
}

/// [`classify`] with a caller-supplied version order.
pub fn classify_by(
    current: &PackageState,
    target: &PackageState,
    cmp: impl Fn(&str, &str) -> Ordering,
) -> SyncStatus {
    crate::plan::classify_differences(&crate::plan::differences_by(current, target, cmp))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::package::InstallReason;

    fn state(pkgs: &[(&str, &str)]) -> PackageState {
        PackageState::new(
            pkgs.iter()
                .map(|(n, v)| Package {
                    name: n.to_string(),
                    version: v.to_string(),
                    repository: None,
                    architecture: None,
                    reason: InstallReason::Explicit,
                })
                .collect(),
        )
        .unwrap()
    }

    #[test]
    fn classifies_each_status() {
        let target = state(&[("a", "1.0-1"), ("b", "2.0-1")]);
        assert_eq!(
            classify(&state(&[("a", "1.0-1"), ("b", "2.0-1")]), &target),
            SyncStatus::InSync
        );
        assert_eq!(
            classify(&state(&[("a", "0:1.0"), ("b", "2.0-1")]), &target),
            SyncStatus::InSync
        );
        assert_eq!(
            classify(&state(&[("a", "1.1-1"), ("b", "2.0-1")]), &target),
            SyncStatus::Ahead
        );
        assert_eq!(
            classify(
                &state(&[("a", "1.0-1"), ("b", "2.0-1"), ("c", "1")]),
                &target
            ),
            SyncStatus::Ahead
        );
        assert_eq!(
            classify(&state(&[("a", "1.0-1")]), &target),
            SyncStatus::Behind
        );
        assert_eq!(
            classify(&state(&[("a", "0.9-1"), ("b", "2.0-1")]), &target),
            SyncStatus::Behind
        );
        assert_eq!(
            classify(&state(&[("a", "0.9-1"), ("b", "2.1-1")]), &target),
            SyncStatus::Diverged
        );
    }

    #[test]
    fn diff_lists_every_kind() {
        let d = diff(
            &state(&[("a", "1-1"), ("b", "3-1"), ("x", "1-1")]),
            &state(&[("a", "2-1"), ("b", "2-1"), ("n", "1-1")]),
        );
        assert_eq!(
            d.install
                .iter()
                .map(|p| p.name.as_str())
                .collect::<Vec<_>>(),
            ["n"]
        );
        assert_eq!(d.upgrade[0].1.version, "2-1");
        assert_eq!(d.downgrade[0].1.version, "2-1");
        assert_eq!(d.remove[0].name, "x");
    }
}
