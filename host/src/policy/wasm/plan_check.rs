//! Plan checks: a plugin's plan is validated against the differences it was given before
//! anything trusts it.
//!
//! A plan is a list of steps. A `change(n)` step keeps the host's own difference number `n`,
//! which was checked when it was computed. An `action` step spells an action out; it is checked
//! against the package's difference, or else against the endpoint's current state: the kind
//! must fit the installed version (an upgrade goes to a newer one, an install is of a package
//! not installed, a removal is of one that is, a reason change keeps the installed version and
//! names a reason), the package must be in the current or the target state, and its version
//! must be valid. No package may appear in two steps.
//!
//! Failure: a step that breaks a rule fails the whole plan with `POLICY_FAULT`, naming the
//! plugin and what was wrong; nothing of a rejected plan is used. A summary that is empty or
//! longer than 1,024 bytes is not a failure: the host's own summary is kept instead.

use std::cmp::Ordering;

use pacsync_core::{
    Action, ActionKind, Difference, InstallReason, PackageState, Plan, Skipped, validate_version,
};

use super::bindings::pacsync::policy::types as wit;
use super::call::fault;
use crate::error::Error;

/// What one step of a plugin's plan turned out to be.
enum Resolved {
    /// The host's own difference at this index, as given.
    Given(usize),
    /// An action the plugin spelled out, checked against the endpoint's state.
    Own(Action),
}

/// Converts a plugin's plan and rejects garbage: a step must name an existing change or be an
/// action consistent with the endpoint's state, and no package may appear twice.
///
/// `change(n)` steps take the host's own difference (it was checked when it was computed); only
/// spelled-out actions are checked against the states.
pub(super) fn check_plan(
    name: &str,
    plan: wit::Plan,
    current: &PackageState,
    differences: &[Difference<'_>],
) -> Result<Plan, Error> {
    let garbage = |why: String| fault(format!("policy {name} returned an invalid plan: {why}"));
    let mut taken = vec![false; differences.len()];
    // Packages of spelled-out actions that are not differences; rare, checked for repeats last.
    let mut outside = Vec::new();
    let mut resolved = Vec::with_capacity(plan.steps.len());
    for step in plan.steps {
        let (index, step) = match step {
            wit::Step::Change(n) => {
                let i = usize::try_from(n)
                    .ok()
                    .filter(|&i| i < differences.len())
                    .ok_or_else(|| {
                        garbage(format!(
                            "step change({n}) names none of the {} changes",
                            differences.len()
                        ))
                    })?;
                (Some(i), Resolved::Given(i))
            }
            wit::Step::Action(a) => {
                // The differences are in name order: a binary search finds a package's.
                let index = differences.binary_search_by(|d| d.name.cmp(&a.name)).ok();
                if index.is_none() {
                    outside.push(a.name.clone());
                }
                let action =
                    own_action(a, index.map(|i| &differences[i]), current).map_err(garbage)?;
                (index, Resolved::Own(action))
            }
        };
        if let Some(i) = index
            && std::mem::replace(&mut taken[i], true)
        {
            return Err(garbage(format!(
                "{} appears in more than one step",
                differences[i].name
            )));
        }
        resolved.push(step);
    }
    outside.sort_unstable();
    if let Some(twice) = outside.windows(2).find(|w| w[0] == w[1]) {
        return Err(garbage(format!(
            "{} appears in more than one step",
            twice[0]
        )));
    }
    let actions = resolved
        .into_iter()
        .map(|step| match step {
            Resolved::Given(i) => differences[i].to_action(),
            Resolved::Own(action) => action,
        })
        .collect();
    let skipped = plan
        .skipped
        .into_iter()
        .map(|s| Skipped {
            name: s.name,
            reason: s.reason,
        })
        .collect();
    let mut checked = Plan::from_parts(actions, skipped);
    if !plan.summary.is_empty() && plan.summary.len() <= 1024 {
        checked.summary = plan.summary;
    }
    Ok(checked)
}

/// Converts a spelled-out action, checked against `change` (the package's difference, if it
/// has one) or else the endpoint's state.
fn own_action(
    a: wit::Action,
    change: Option<&Difference<'_>>,
    current: &PackageState,
) -> Result<Action, String> {
    let kind = match a.kind {
        wit::ActionKind::Install => ActionKind::Install,
        wit::ActionKind::Upgrade => ActionKind::Upgrade,
        wit::ActionKind::Downgrade => ActionKind::Downgrade,
        wit::ActionKind::Remove => ActionKind::Remove,
        wit::ActionKind::SetReason => ActionKind::SetReason,
    };
    // The installed version, and whether the target has the package.
    let (have, wanted): (Option<&str>, bool) = match change {
        Some(change) => (change.from_version, change.to_version.is_some()),
        // Not a difference: the same version on both sides, or in neither state.
        None => {
            let installed = current.get(&a.name).map(|p| p.version.as_str());
            (installed, installed.is_some())
        }
    };
    // The same change with another install reason was checked when it was computed.
    let as_given =
        change.is_some_and(|c| c.kind == kind && c.to_version == a.to_version.as_deref());
    if !as_given {
        check_action(kind, &a, have, wanted)?;
    }
    Ok(Action {
        kind,
        name: a.name,
        from_version: have.map(str::to_owned),
        to_version: a.to_version,
        reason: a.reason.map(|r| match r {
            wit::InstallReason::Explicit => InstallReason::Explicit,
            wit::InstallReason::Dependency => InstallReason::Dependency,
        }),
    })
}

/// Checks an action that is not one of the given differences against the endpoint's state.
fn check_action(
    kind: ActionKind,
    a: &wit::Action,
    have: Option<&str>,
    wanted: bool,
) -> Result<(), String> {
    let consistent = match kind {
        ActionKind::Install => have.is_none() && a.to_version.is_some(),
        ActionKind::Upgrade | ActionKind::Downgrade => {
            let ordering = match (have, &a.to_version) {
                (Some(h), Some(to)) => Some(pacsync_core::vercmp(h, to)),
                _ => None,
            };
            let expected = if kind == ActionKind::Upgrade {
                Ordering::Less
            } else {
                Ordering::Greater
            };
            ordering == Some(expected)
        }
        ActionKind::Remove => have.is_some() && a.to_version.is_none(),
        // The package stays as it is installed; only the recorded reason changes.
        ActionKind::SetReason => {
            a.reason.is_some()
                && matches!((have, &a.to_version), (Some(h), Some(to))
                    if pacsync_core::vercmp(h, to) == Ordering::Equal)
        }
    };
    if !consistent {
        return Err(format!(
            "{kind:?} of {} does not fit the endpoint's state",
            a.name
        ));
    }
    if have.is_none() && !wanted {
        return Err(format!(
            "{} is in neither the current nor the target state",
            a.name
        ));
    }
    if let Some(v) = &a.to_version {
        validate_version(v).map_err(|e| format!("{}: {e}", a.name))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use pacsync_core::difference_refs_by;

    use super::super::testing::state;
    use super::*;
    use crate::error::ErrorCode;

    fn given(n: u32) -> wit::Step {
        wit::Step::Change(n)
    }

    fn spelled(kind: wit::ActionKind, name: &str, to: Option<&str>) -> wit::Step {
        wit::Step::Action(wit::Action {
            kind,
            name: name.into(),
            from_version: None,
            to_version: to.map(Into::into),
            reason: to.map(|_| wit::InstallReason::Dependency),
        })
    }

    /// Checks `steps` against current {a 1-1, b 2-1, c 1-1} and target {a 2-1, c 1-1, d 1-1},
    /// whose differences are [upgrade a, remove b, install d].
    fn check(steps: Vec<wit::Step>) -> Result<Plan, Error> {
        let current = state(&[("a", "1-1"), ("b", "2-1"), ("c", "1-1")]);
        let target = state(&[("a", "2-1"), ("c", "1-1"), ("d", "1-1")]);
        let differences = difference_refs_by(&current, &target, pacsync_core::vercmp);
        let plan = wit::Plan {
            steps,
            skipped: Vec::new(),
            summary: String::new(),
        };
        check_plan("test", plan, &current, &differences)
    }

    #[test]
    fn plan_steps_take_the_given_changes_in_the_plugins_order() {
        let plan = check(vec![given(2), given(0)]).unwrap();
        let names: Vec<_> = plan.actions.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, ["d", "a"]);
        assert_eq!(plan.actions[1].from_version.as_deref(), Some("1-1"));
        assert_eq!(plan.summary, "1 to install, 1 to upgrade");
        // A spelled-out action may change the install reason of a given change.
        let plan = check(vec![spelled(wit::ActionKind::Install, "d", Some("1-1"))]).unwrap();
        assert_eq!(plan.actions[0].reason, Some(InstallReason::Dependency));
    }

    #[test]
    fn plan_steps_that_do_not_fit_are_garbage() {
        let cases = [
            (vec![given(3)], "change(3) names none of the 3 changes"),
            (vec![given(0), given(0)], "a appears in more than one step"),
            (
                vec![
                    given(0),
                    spelled(wit::ActionKind::Upgrade, "a", Some("3-1")),
                ],
                "a appears in more than one step",
            ),
            (
                vec![spelled(wit::ActionKind::Install, "zzz", Some("1-1"))],
                "in neither the current nor the target state",
            ),
            (
                vec![spelled(wit::ActionKind::Upgrade, "c", Some("0.5-1"))],
                "does not fit",
            ),
            (
                vec![
                    spelled(wit::ActionKind::Upgrade, "c", Some("2-1")),
                    spelled(wit::ActionKind::Upgrade, "c", Some("3-1")),
                ],
                "c appears in more than one step",
            ),
        ];
        for (steps, expected) in cases {
            let err = check(steps).unwrap_err();
            assert_eq!(err.code, ErrorCode::PolicyFault);
            assert!(err.detail.contains(expected), "{}", err.detail);
        }
        // An upgrade of an unchanged package to a newer version is the plugin's call to make.
        check(vec![spelled(wit::ActionKind::Upgrade, "c", Some("2-1"))]).unwrap();
    }

    #[test]
    fn a_reason_change_must_keep_the_installed_version() {
        // Re-marking an installed package is the plugin's call to make, whatever the target says.
        let plan = check(vec![spelled(wit::ActionKind::SetReason, "c", Some("1-1"))]).unwrap();
        assert_eq!(plan.actions[0].kind, ActionKind::SetReason);
        assert_eq!(plan.summary, "1 to re-mark");
        for step in [
            spelled(wit::ActionKind::SetReason, "c", Some("2-1")),
            spelled(wit::ActionKind::SetReason, "c", None),
            spelled(wit::ActionKind::SetReason, "d", Some("1-1")),
        ] {
            let err = check(vec![step]).unwrap_err();
            assert!(err.detail.contains("does not fit"), "{}", err.detail);
        }
    }
}
