//! The differences between an endpoint's state and a target: one merge walk of two name-ordered
//! states, seen either as actions (what a plan is made of) or grouped by kind (what the API's
//! diff shows).

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};

use crate::package::{InstallReason, Package, PackageState};
use crate::version::vercmp;

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
    /// Record another install reason for a package installed at the target's version
    /// (`pacman -D --asexplicit|--asdeps`). The reason decides what an orphan cleanup
    /// (`pacman -Rns $(pacman -Qtdq)`) removes, so it is part of the state.
    SetReason,
}

impl ActionKind {
    /// Every kind, in plan order (`kind as usize` indexes it).
    pub const ALL: [ActionKind; 5] = [
        ActionKind::Install,
        ActionKind::Upgrade,
        ActionKind::Downgrade,
        ActionKind::Remove,
        ActionKind::SetReason,
    ];
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
    /// Version after the action; absent for removals. A reason change keeps the installed
    /// version, so both versions are that one.
    pub to_version: Option<String>,
    /// Install reason to record; absent for removals.
    pub reason: Option<InstallReason>,
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

/// One step of the merge walk: the package on the endpoint (`have`), in the target (`want`), or
/// both with versions or install reasons that differ (`kind` says which way).
enum Change<'a> {
    Missing(&'a Package),
    Extra(&'a Package),
    Changed {
        kind: ActionKind,
        have: &'a Package,
        want: &'a Package,
    },
}

/// The one walk: both states iterate in name order, so a single merge pass finds every
/// difference without per-package lookups. Versions `cmp` calls equal are not a difference; an
/// install reason alone is one ([`ActionKind::SetReason`]).
fn walk<'a>(
    current: &'a PackageState,
    target: &'a PackageState,
    cmp: impl Fn(&str, &str) -> Ordering,
    mut visit: impl FnMut(Change<'a>),
) {
    let (mut haves, mut wants) = (current.iter().peekable(), target.iter().peekable());
    loop {
        match (haves.peek().copied(), wants.peek().copied()) {
            (None, None) => break,
            (Some(have), None) => {
                visit(Change::Extra(have));
                haves.next();
            }
            (None, Some(want)) => {
                visit(Change::Missing(want));
                wants.next();
            }
            (Some(have), Some(want)) => match have.name.cmp(&want.name) {
                Ordering::Less => {
                    visit(Change::Extra(have));
                    haves.next();
                }
                Ordering::Greater => {
                    visit(Change::Missing(want));
                    wants.next();
                }
                Ordering::Equal => {
                    let kind = match cmp(&have.version, &want.version) {
                        Ordering::Less => Some(ActionKind::Upgrade),
                        Ordering::Greater => Some(ActionKind::Downgrade),
                        Ordering::Equal => {
                            (have.reason != want.reason).then_some(ActionKind::SetReason)
                        }
                    };
                    if let Some(kind) = kind {
                        visit(Change::Changed { kind, have, want });
                    }
                    haves.next();
                    wants.next();
                }
            },
        }
    }
}

/// Every difference between `current` and `target`, in name order, each as the action that
/// removes it: install, upgrade, downgrade, remove or set-reason, with both versions and the
/// target's install reason. Versions compare with `cmp`; a package at an equal version with
/// another install reason is a set-reason difference whose two versions are the installed one.
///
/// This is what the host hands a policy component: proportional to what differs, not to the
/// size of the states. The host lowers them into the guest straight from the states;
/// [`differences_by`] is the owned copy.
pub fn difference_refs_by<'a>(
    current: &'a PackageState,
    target: &'a PackageState,
    cmp: impl Fn(&str, &str) -> Ordering,
) -> Vec<Difference<'a>> {
    let mut out = Vec::new();
    walk(current, target, cmp, |change| {
        out.push(match change {
            Change::Missing(want) => Difference {
                kind: ActionKind::Install,
                name: &want.name,
                from_version: None,
                to_version: Some(&want.version),
                reason: Some(want.reason),
            },
            Change::Extra(have) => Difference {
                kind: ActionKind::Remove,
                name: &have.name,
                from_version: Some(&have.version),
                to_version: None,
                reason: None,
            },
            Change::Changed { kind, have, want } => Difference {
                kind,
                name: &want.name,
                from_version: Some(&have.version),
                // A reason change keeps the installed spelling (`1.0` and `0:1.0` are equal).
                to_version: Some(if kind == ActionKind::SetReason {
                    &have.version
                } else {
                    &want.version
                }),
                reason: Some(want.reason),
            },
        })
    });
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

/// What would have to change to turn `current` into `target`, grouped by kind with whole
/// packages on both sides.
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
    /// At an equal version with another install reason: `(current, target)`.
    #[serde(default)]
    pub set_reason: Vec<(Package, Package)>,
}

impl Diff {
    /// Whether the two states hold the same versions of the same packages, for the same reasons.
    pub fn is_empty(&self) -> bool {
        self.install.is_empty()
            && self.upgrade.is_empty()
            && self.downgrade.is_empty()
            && self.remove.is_empty()
            && self.set_reason.is_empty()
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
    let mut out = Diff::default();
    walk(current, target, cmp, |change| match change {
        Change::Missing(want) => out.install.push(want.clone()),
        Change::Extra(have) => out.remove.push(have.clone()),
        Change::Changed {
            kind: ActionKind::Upgrade,
            have,
            want,
        } => out.upgrade.push((have.clone(), want.clone())),
        Change::Changed {
            kind: ActionKind::SetReason,
            have,
            want,
        } => out.set_reason.push((have.clone(), want.clone())),
        Change::Changed { have, want, .. } => out.downgrade.push((have.clone(), want.clone())),
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::state;

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

    #[test]
    fn differences_come_in_name_order_and_agree_with_the_diff() {
        let current = state(&[("a", "1-1"), ("b", "3-1"), ("same", "1.0"), ("x", "1-1")]);
        let target = state(&[("a", "2-1"), ("b", "2-1"), ("n", "1-1"), ("same", "0:1.0")]);
        let differences = differences_by(&current, &target, vercmp);
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
        let grouped = diff(&current, &target);
        assert_eq!(grouped.upgrade.len() + grouped.downgrade.len(), 2);
        assert_eq!(grouped.install.len() + grouped.remove.len(), 2);
    }

    #[test]
    fn an_install_reason_alone_is_a_difference_that_keeps_the_installed_version() {
        let current = crate::testing::state_with(InstallReason::Dependency, &[("a", "1.0")]);
        let target = crate::testing::state_with(InstallReason::Explicit, &[("a", "0:1.0")]);
        let differences = differences_by(&current, &target, vercmp);
        assert_eq!(
            differences,
            [Action {
                kind: ActionKind::SetReason,
                name: "a".into(),
                from_version: Some("1.0".into()),
                to_version: Some("1.0".into()),
                reason: Some(InstallReason::Explicit),
            }]
        );
        let grouped = diff(&current, &target);
        assert_eq!(grouped.set_reason.len(), 1);
        assert!(!grouped.is_empty());
        assert!(diff(&current, &current).is_empty());
    }
}
