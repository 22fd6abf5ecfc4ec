//! Plans: the ordered package actions an agent carries out to reach a target.

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};

use crate::difference::{Action, ActionKind, differences_by};
use crate::package::PackageState;

/// A package the policy chose not to touch, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Skipped {
    /// The package.
    pub name: String,
    /// Human-readable reason.
    pub reason: String,
}

/// The ordered actions that take an endpoint to a target, plus what was deliberately left alone.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Plan {
    /// Actions: installs, upgrades and downgrades (one pacman transaction), removals, then
    /// install-reason changes. The agent records every reason right after the transaction,
    /// before removing anything.
    pub actions: Vec<Action>,
    /// Packages not planned, with reasons.
    pub skipped: Vec<Skipped>,
    /// One line for humans, e.g. "2 to install, 1 to upgrade".
    pub summary: String,
}

impl Plan {
    /// Whether the plan changes nothing.
    pub fn is_empty(&self) -> bool {
        self.actions.is_empty()
    }

    /// Builds a plan from actions and skips, writing the summary.
    pub fn from_parts(actions: Vec<Action>, skipped: Vec<Skipped>) -> Self {
        let count = |kind| actions.iter().filter(|a| a.kind == kind).count();
        let mut parts: Vec<String> = [
            (ActionKind::Install, "to install"),
            (ActionKind::Upgrade, "to upgrade"),
            (ActionKind::Downgrade, "to downgrade"),
            (ActionKind::Remove, "to remove"),
            (ActionKind::SetReason, "to re-mark"),
        ]
        .into_iter()
        .filter_map(|(kind, label)| match count(kind) {
            0 => None,
            n => Some(format!("{n} {label}")),
        })
        .collect();
        if !skipped.is_empty() {
            parts.push(format!("{} skipped", skipped.len()));
        }
        let summary = if parts.is_empty() {
            "nothing to do".to_owned()
        } else {
            parts.join(", ")
        };
        Plan {
            actions,
            skipped,
            summary,
        }
    }
}

/// The mirror plan from the differences: every one of them, installs, upgrades and downgrades
/// first (one pacman transaction), then removals, then reason changes, each group in name order.
pub fn mirror_plan_from(mut differences: Vec<Action>) -> Plan {
    differences.sort_by_key(|a| a.kind as u8);
    Plan::from_parts(differences, Vec::new())
}

/// The mirror policy: install, upgrade, downgrade, remove and re-mark until `current` equals
/// `target`.
pub fn mirror_plan(current: &PackageState, target: &PackageState) -> Plan {
    mirror_plan_by(current, target, crate::version::vercmp)
}

/// [`mirror_plan`] with a caller-supplied version order.
pub fn mirror_plan_by(
    current: &PackageState,
    target: &PackageState,
    cmp: impl Fn(&str, &str) -> Ordering,
) -> Plan {
    mirror_plan_from(differences_by(current, target, cmp))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::package::InstallReason;

    fn state(pkgs: &[(&str, &str)]) -> PackageState {
        crate::testing::state_with(InstallReason::Dependency, pkgs)
    }

    #[test]
    fn mirror_orders_changes_before_removals() {
        // `mark` is explicit on the endpoint, a dependency in the target.
        let mut current = state(&[("gone", "1-1"), ("old", "1-1"), ("new", "3-1")]).into_packages();
        current.extend(crate::testing::state(&[("mark", "1-1")]).into_packages());
        let plan = mirror_plan(
            &PackageState::new(current).unwrap(),
            &state(&[
                ("add", "1-1"),
                ("old", "2-1"),
                ("new", "2-1"),
                ("mark", "1-1"),
            ]),
        );
        let kinds: Vec<_> = plan
            .actions
            .iter()
            .map(|a| (a.kind, a.name.as_str()))
            .collect();
        assert_eq!(
            kinds,
            [
                (ActionKind::Install, "add"),
                (ActionKind::Upgrade, "old"),
                (ActionKind::Downgrade, "new"),
                (ActionKind::Remove, "gone"),
                (ActionKind::SetReason, "mark"),
            ]
        );
        assert_eq!(
            plan.summary,
            "1 to install, 1 to upgrade, 1 to downgrade, 1 to remove, 1 to re-mark"
        );
        assert_eq!(plan.actions[0].reason, Some(InstallReason::Dependency));
    }

    #[test]
    fn mirror_of_equal_states_is_empty() {
        let s = state(&[("a", "1-1")]);
        let plan = mirror_plan(&s, &s);
        assert!(plan.is_empty());
        assert_eq!(plan.summary, "nothing to do");
    }
}
