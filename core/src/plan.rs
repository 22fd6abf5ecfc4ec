//! Plans: the ordered package actions an agent carries out to reach a target.

use serde::{Deserialize, Serialize};

use std::cmp::Ordering;

use crate::diff::SyncStatus;
use crate::package::{InstallReason, Package, PackageState};

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

/// Where an obtainable package version comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// A configured sync repository offers it.
    SyncRepository,
    /// The endpoint's pacman cache holds it.
    Cache,
    /// The pool's archive holds it.
    Archive,
}

impl Source {
    /// The spelling used in JSON and in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::SyncRepository => "sync_repository",
            Source::Cache => "cache",
            Source::Archive => "archive",
        }
    }

    /// Parses the database spelling.
    pub fn parse(s: &str) -> Option<Self> {
        [Source::SyncRepository, Source::Cache, Source::Archive]
            .into_iter()
            .find(|source| source.as_str() == s)
    }

    /// The agent's order of preference (lower first).
    pub fn rank(self) -> u8 {
        self as u8
    }
}

/// A package version an endpoint can obtain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Available {
    /// Package name.
    pub name: String,
    /// Exact version.
    pub version: String,
    /// Where it comes from.
    pub source: Source,
}

/// Moves every install, upgrade or downgrade whose exact target version the endpoint cannot
/// obtain from the plan to its skipped list, so nothing is planned blindly.
///
/// `available == None` means availability is unknown and the plan is kept as it is; an empty
/// list means nothing is obtainable.
pub fn restrict_to_available(
    plan: Plan,
    available: Option<&[Available]>,
    cmp: impl Fn(&str, &str) -> Ordering,
) -> Plan {
    let Some(available) = available else {
        return plan;
    };
    // Offers in name order (the host sends them so; anything else is sorted once): an action
    // then costs a binary search, not a scan of every offer, which in a component compares
    // strings byte by byte.
    let mut offers: Vec<&Available> = available.iter().collect();
    if !offers.is_sorted_by(|a, b| a.name <= b.name) {
        offers.sort_by(|a, b| a.name.cmp(&b.name));
    }
    let mut actions = Vec::new();
    let mut skipped = plan.skipped;
    for action in plan.actions {
        let obtainable = match (&action.kind, &action.to_version) {
            (ActionKind::Remove, _) | (_, None) => true,
            (_, Some(version)) => {
                let first = offers.partition_point(|a| a.name < action.name);
                offers[first..]
                    .iter()
                    .take_while(|a| a.name == action.name)
                    .any(|a| cmp(&a.version, version) == Ordering::Equal)
            }
        };
        if obtainable {
            actions.push(action);
        } else {
            let version = action.to_version.as_deref().unwrap_or_default();
            skipped.push(Skipped {
                name: action.name,
                reason: format!(
                    "version {version} is not offered by the endpoint's sync repositories, cache or the pool archive"
                ),
            });
        }
    }
    Plan::from_parts(actions, skipped)
}

/// One difference between two states, borrowing their strings: an [`Action`] not yet copied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Difference<'a> {
    /// What removes the difference.
    pub kind: ActionKind,
    /// Package name.
    pub name: &'a str,
    /// Installed version; absent for installs.
    pub from_version: Option<&'a str>,
    /// Target version; absent for removals.
    pub to_version: Option<&'a str>,
    /// The target's install reason; absent for removals.
    pub reason: Option<InstallReason>,
}

impl Difference<'_> {
    /// The owned action.
    pub fn to_action(&self) -> Action {
        Action {
            kind: self.kind,
            name: self.name.to_owned(),
            from_version: self.from_version.map(str::to_owned),
            to_version: self.to_version.map(str::to_owned),
            reason: self.reason,
        }
    }
}

/// Every difference between `current` and `target`, in name order, each as the action that
/// removes it: install, upgrade, downgrade or remove, with both versions and the target's install
/// reason. Versions compare with `cmp`; packages differing only in install reason are not
/// differences.
///
/// This is what the host hands a policy component: proportional to what differs, not to the
/// size of the states. The host lowers them into the guest straight from the states;
/// [`differences_by`] is the owned copy.
pub fn difference_refs_by<'a>(
    current: &'a PackageState,
    target: &'a PackageState,
    cmp: impl Fn(&str, &str) -> Ordering,
) -> Vec<Difference<'a>> {
    let install = |p: &'a Package| Difference {
        kind: ActionKind::Install,
        name: &p.name,
        from_version: None,
        to_version: Some(&p.version),
        reason: Some(p.reason),
    };
    let remove = |p: &'a Package| Difference {
        kind: ActionKind::Remove,
        name: &p.name,
        from_version: Some(&p.version),
        to_version: None,
        reason: None,
    };
    // Both states iterate in name order: one merge pass, no per-package lookups.
    let mut out = Vec::new();
    let (mut haves, mut wants) = (current.iter().peekable(), target.iter().peekable());
    loop {
        match (haves.peek(), wants.peek()) {
            (None, None) => break,
            (Some(have), None) => {
                out.push(remove(have));
                haves.next();
            }
            (None, Some(want)) => {
                out.push(install(want));
                wants.next();
            }
            (Some(have), Some(want)) => match have.name.cmp(&want.name) {
                Ordering::Less => {
                    out.push(remove(have));
                    haves.next();
                }
                Ordering::Greater => {
                    out.push(install(want));
                    wants.next();
                }
                Ordering::Equal => {
                    let kind = match cmp(&have.version, &want.version) {
                        Ordering::Less => Some(ActionKind::Upgrade),
                        Ordering::Greater => Some(ActionKind::Downgrade),
                        Ordering::Equal => None,
                    };
                    if let Some(kind) = kind {
                        out.push(Difference {
                            kind,
                            name: &want.name,
                            from_version: Some(&have.version),
                            to_version: Some(&want.version),
                            reason: Some(want.reason),
                        });
                    }
                    haves.next();
                    wants.next();
                }
            },
        }
    }
    out
}

/// [`difference_refs_by`], owned: what native policies are given.
pub fn differences_by(
    current: &PackageState,
    target: &PackageState,
    cmp: impl Fn(&str, &str) -> Ordering,
) -> Vec<Action> {
    difference_refs_by(current, target, cmp)
        .iter()
        .map(Difference::to_action)
        .collect()
}

/// Classifies from the differences: extra or newer packages make an endpoint ahead, missing or
/// older ones behind, and both diverged.
pub fn classify_differences(differences: &[Action]) -> SyncStatus {
    let ahead = differences
        .iter()
        .any(|a| matches!(a.kind, ActionKind::Remove | ActionKind::Downgrade));
    let behind = differences
        .iter()
        .any(|a| matches!(a.kind, ActionKind::Install | ActionKind::Upgrade));
    match (ahead, behind) {
        (false, false) => SyncStatus::InSync,
        (true, false) => SyncStatus::Ahead,
        (false, true) => SyncStatus::Behind,
        (true, true) => SyncStatus::Diverged,
    }
}

/// The mirror plan from the differences: every one of them, installs, upgrades and downgrades
/// first (one pacman transaction), removals last, each group in name order.
pub fn mirror_plan_from(mut differences: Vec<Action>) -> Plan {
    differences.sort_by_key(|a| a.kind as u8);
    Plan::from_parts(differences, Vec::new())
}

/// The mirror policy: install, upgrade, downgrade and remove until `current` equals `target`.
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
    fn offers_in_any_order_and_several_per_package_are_found() {
        let plan = mirror_plan(
            &state(&[("a", "1-1"), ("c", "1-1")]),
            &state(&[("a", "2-1"), ("b", "1-1"), ("c", "1:1-1")]),
        );
        let offer = |name: &str, version: &str, source| Available {
            name: name.into(),
            version: version.into(),
            source,
        };
        let available = [
            offer("c", "1-1", Source::Cache),
            offer("a", "3-1", Source::SyncRepository),
            offer("c", "1:1-1", Source::Archive),
            offer("a", "2-1", Source::Cache),
            offer("b", "0.9-1", Source::SyncRepository),
        ];
        let restricted = restrict_to_available(plan, Some(&available), crate::version::vercmp);
        let planned: Vec<_> = restricted.actions.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(planned, ["a", "c"]);
        let skipped: Vec<_> = restricted.skipped.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(skipped, ["b"]);
    }

    #[test]
    fn unobtainable_versions_are_skipped_not_planned() {
        let plan = mirror_plan(
            &state(&[("a", "1-1"), ("gone", "1-1")]),
            &state(&[("a", "2-1"), ("b", "1-1")]),
        );
        let available = [Available {
            name: "a".into(),
            version: "2-1".into(),
            source: Source::Archive,
        }];
        let restricted =
            restrict_to_available(plan.clone(), Some(&available), crate::version::vercmp);
        let planned: Vec<_> = restricted.actions.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(planned, ["a", "gone"]);
        assert_eq!(restricted.skipped.len(), 1);
        assert_eq!(restricted.skipped[0].name, "b");
        assert!(restricted.summary.contains("1 skipped"));
        assert_eq!(
            restrict_to_available(plan.clone(), None, crate::version::vercmp),
            plan
        );
    }

    #[test]
    fn differences_come_in_name_order_and_classify_like_the_diff() {
        let current = state(&[("a", "1-1"), ("b", "3-1"), ("same", "1.0"), ("x", "1-1")]);
        let target = state(&[("a", "2-1"), ("b", "2-1"), ("n", "1-1"), ("same", "0:1.0")]);
        let differences = differences_by(&current, &target, crate::version::vercmp);
        let listed: Vec<_> = differences
            .iter()
            .map(|a| (a.kind, a.name.as_str()))
            .collect();
        assert_eq!(
            listed,
            [
                (ActionKind::Upgrade, "a"),
                (ActionKind::Downgrade, "b"),
                (ActionKind::Install, "n"),
                (ActionKind::Remove, "x"),
            ]
        );
        assert_eq!(
            classify_differences(&differences),
            crate::classify(&current, &target)
        );
        for (c, t) in [
            (&current, &current),
            (&target, &current),
            (&current, &target),
        ] {
            assert_eq!(
                classify_differences(&differences_by(c, t, crate::version::vercmp)),
                crate::classify(c, t)
            );
        }
    }

    #[test]
    fn mirror_of_equal_states_is_empty() {
        let s = state(&[("a", "1-1")]);
        let plan = mirror_plan(&s, &s);
        assert!(plan.is_empty());
        assert_eq!(plan.summary, "nothing to do");
    }
}
