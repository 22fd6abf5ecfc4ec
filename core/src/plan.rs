//! Plans: the ordered package actions an agent carries out to reach a target.

use serde::{Deserialize, Serialize};

use crate::diff::diff;
use crate::package::{InstallReason, PackageState};

/// What an action does to one package.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    /// Install a package that is not present.
    Install,
    /// Replace a package with a newer version.
    Upgrade,
    /// Replace a package with an older version.
    Downgrade,
    /// Remove a package.
    Remove,
}

/// One step of a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Action {
    /// What happens.
    pub kind: ActionKind,
    /// The package.
    pub name: String,
    /// Installed version before the action, if any.
    pub from_version: Option<String>,
    /// Version after the action; absent for removals.
    pub to_version: Option<String>,
    /// Install reason to record; absent for removals.
    pub reason: Option<InstallReason>,
}

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
    /// Actions in execution order: installs, upgrades and downgrades (one pacman transaction),
    /// then removals.
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

/// The mirror policy: install, upgrade, downgrade and remove until `current` equals `target`.
pub fn mirror_plan(current: &PackageState, target: &PackageState) -> Plan {
    let d = diff(current, target);
    let mut actions = Vec::new();
    for p in d.install {
        actions.push(Action {
            kind: ActionKind::Install,
            name: p.name,
            from_version: None,
            to_version: Some(p.version),
            reason: Some(p.reason),
        });
    }
    for (kind, pairs) in [
        (ActionKind::Upgrade, d.upgrade),
        (ActionKind::Downgrade, d.downgrade),
    ] {
        for (have, want) in pairs {
            actions.push(Action {
                kind,
                name: want.name,
                from_version: Some(have.version),
                to_version: Some(want.version),
                reason: Some(want.reason),
            });
        }
    }
    for p in d.remove {
        actions.push(Action {
            kind: ActionKind::Remove,
            name: p.name,
            from_version: Some(p.version),
            to_version: None,
            reason: None,
        });
    }
    Plan::from_parts(actions, Vec::new())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::package::Package;

    fn state(pkgs: &[(&str, &str)]) -> PackageState {
        PackageState::new(
            pkgs.iter()
                .map(|(n, v)| Package {
                    name: n.to_string(),
                    version: v.to_string(),
                    repository: None,
                    architecture: None,
                    reason: InstallReason::Dependency,
                })
                .collect(),
        )
        .unwrap()
    }

    #[test]
    fn mirror_orders_changes_before_removals() {
        let plan = mirror_plan(
            &state(&[("gone", "1-1"), ("old", "1-1"), ("new", "3-1")]),
            &state(&[("add", "1-1"), ("old", "2-1"), ("new", "2-1")]),
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
            ]
        );
        assert_eq!(
            plan.summary,
            "1 to install, 1 to upgrade, 1 to downgrade, 1 to remove"
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
