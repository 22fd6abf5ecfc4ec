//! What every pacsync policy plugin shares.
//!
//! A plugin is a plain Rust type implementing [`PolicyLogic`], tested natively like any library.
//! On `wasm32` the same type becomes a component of the `pacsync:policy/policy` world with
//! [`policy_component!`], which converts between WIT types and `pacsync_core` types and wraps
//! the host's `package-state` resources as [`StateView`]s. Versions compare with
//! `pacsync_core::vercmp` in both cases: the very code the host runs, without a boundary crossing
//! per comparison (the host's `vercmp` import is there for plugins in other languages).

use std::cmp::Ordering;

pub use pacsync_core;
use pacsync_core::{
    Action, ActionKind, Available, Package, PackageState, Plan, SyncStatus, classify_differences,
    differences_by,
};
pub use serde_json;
use serde_json::Value;

#[cfg(all(
    target_arch = "wasm32",
    not(target_feature = "atomics"),
    feature = "arena"
))]
mod arena;
#[cfg(target_arch = "wasm32")]
pub mod component;

/// Version order a policy must use (pacman's `vercmp`, as `pacsync_core` implements it).
pub type VersionOrder<'a> = &'a dyn Fn(&str, &str) -> Ordering;

/// Read access to a whole package state: a host resource in a component (every read copies),
/// a [`PackageState`] natively.
pub trait StateView {
    /// Number of packages.
    fn count(&self) -> usize;
    /// One package by name.
    fn get(&self, name: &str) -> Option<Package>;
    /// Every package, in name order.
    fn packages(&self) -> Vec<Package>;
}

impl StateView for PackageState {
    fn count(&self) -> usize {
        self.len()
    }

    fn get(&self, name: &str) -> Option<Package> {
        PackageState::get(self, name).cloned()
    }

    fn packages(&self) -> Vec<Package> {
        self.iter().cloned().collect()
    }
}

/// What `plan` is asked, in core types.
pub struct PlanInput<'a> {
    /// Every difference between current and target, in name order, as the action removing it.
    pub changes: Vec<Action>,
    /// The endpoint's packages.
    pub current: &'a dyn StateView,
    /// The packages wanted.
    pub target: &'a dyn StateView,
    /// The pool's config for this policy (already validated).
    pub config: Value,
    /// What the endpoint can obtain; `None` when unknown.
    pub available: Option<Vec<Available>>,
}

impl<'a> PlanInput<'a> {
    /// The input the host would send for these states, computed natively (tests, benchmarks).
    pub fn new(
        current: &'a PackageState,
        target: &'a PackageState,
        config: Value,
        available: Option<Vec<Available>>,
    ) -> Self {
        Self {
            changes: differences_by(current, target, pacsync_core::vercmp),
            current,
            target,
            config,
            available,
        }
    }
}

/// Why a policy made no plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyError {
    /// The config is unusable.
    InvalidConfig(String),
    /// The target cannot be reached under this policy.
    Unsatisfiable(String),
}

/// A package policy, independent of how it is run.
pub trait PolicyLogic {
    /// Policy name, e.g. `mirror`.
    const NAME: &'static str;
    /// Policy version.
    const VERSION: &'static str;
    /// One line for operators.
    const SUMMARY: &'static str;

    /// JSON Schema of the config.
    fn config_schema() -> Value;

    /// Accepts a config or says what is wrong with it.
    fn validate_config(config: &Value) -> Result<(), String>;

    /// Classifies an endpoint from its differences from the target (the whole states are
    /// there when needed); by default the factual comparison.
    fn classify(
        changes: &[Action],
        current: &dyn StateView,
        target: &dyn StateView,
        config: &Value,
    ) -> SyncStatus {
        let _ = (current, target, config);
        classify_differences(changes)
    }

    /// Plans the actions that move `current` towards `target`.
    fn plan(input: &PlanInput<'_>, cmp: VersionOrder<'_>) -> Result<Plan, PolicyError>;
}

/// One step of a plan as the component returns it (the WIT `step`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// `changes[n]`, exactly as given.
    Change(u32),
    /// Anything else, spelled out.
    Action(Action),
}

/// How far past its previous match a kind's next change is looked for before falling back to a
/// binary search.
const RESUME_WINDOW: usize = 64;

/// A plan's actions as steps: `Change(n)` for an action that is `changes[n]` exactly, else the
/// action spelled out.
///
/// Finding `n` is most of a component's own work on a large plan (string comparison is
/// byte-by-byte in WebAssembly), so it expects the common shape: policies return the changes
/// they keep in the given order within each kind. Each kind resumes where its previous match
/// was and compares one name; anything else falls back to a binary search (the host gives the
/// changes in name order).
pub fn steps(actions: &[Action], changes: &[Action]) -> Vec<Step> {
    let mut resume = [0usize; ActionKind::ALL.len()];
    actions
        .iter()
        .map(|action| {
            let kind = action.kind as usize;
            let start = resume[kind].min(changes.len());
            let next = changes[start..]
                .iter()
                .take(RESUME_WINDOW)
                .position(|c| c.kind == action.kind)
                .map(|offset| start + offset);
            let found = match next {
                Some(n) if changes[n].name == action.name => Some(n),
                _ => changes.binary_search_by(|c| c.name.cmp(&action.name)).ok(),
            };
            // `found` has the action's name already; the rest decides whether it is as given.
            let as_given = |c: &Action| {
                c.kind == action.kind
                    && c.reason == action.reason
                    && c.to_version == action.to_version
                    && c.from_version == action.from_version
            };
            match found {
                Some(n) if as_given(&changes[n]) => {
                    resume[kind] = n + 1;
                    Step::Change(u32::try_from(n).expect("fewer than 2^32 changes"))
                }
                _ => Step::Action(action.clone()),
            }
        })
        .collect()
}

/// The config schema of a policy without settings.
pub fn no_config_schema() -> Value {
    serde_json::json!({ "type": "object", "additionalProperties": false, "properties": {} })
}

/// Accepts only an empty object: for policies without settings.
pub fn expect_no_config(policy: &str, config: &Value) -> Result<(), String> {
    match config.as_object() {
        Some(map) if map.is_empty() => Ok(()),
        Some(map) => Err(format!(
            "{policy} takes no configuration, but got {}",
            map.keys()
                .map(String::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        )),
        None => Err(format!("{policy} configuration must be a JSON object")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pacsync_core::{ActionKind, InstallReason, mirror_plan_from};

    fn change(kind: ActionKind, name: &str, from: Option<&str>, to: Option<&str>) -> Action {
        Action {
            kind,
            name: name.into(),
            from_version: from.map(Into::into),
            to_version: to.map(Into::into),
            reason: to.map(|_| InstallReason::Dependency),
        }
    }

    /// Name-ordered differences with the kinds interleaved.
    fn changes() -> Vec<Action> {
        (0..300)
            .map(|i| {
                let name = format!("p{i:03}");
                match i % 4 {
                    0 => change(ActionKind::Install, &name, None, Some("1-1")),
                    1 => change(ActionKind::Upgrade, &name, Some("1-1"), Some("2-1")),
                    2 => change(ActionKind::Remove, &name, Some("1-1"), None),
                    _ => change(ActionKind::SetReason, &name, Some("1-1"), Some("1-1")),
                }
            })
            .collect()
    }

    fn indices(steps: &[Step]) -> Vec<Option<u32>> {
        steps
            .iter()
            .map(|s| match s {
                Step::Change(n) => Some(*n),
                Step::Action(_) => None,
            })
            .collect()
    }

    #[test]
    fn every_given_change_is_found_in_any_order() {
        let changes = changes();
        // Grouped by kind, as the mirror returns them.
        let plan = mirror_plan_from(changes.clone());
        let found = steps(&plan.actions, &changes);
        for (step, action) in found.iter().zip(&plan.actions) {
            let Step::Change(n) = step else {
                panic!("{} was not found", action.name)
            };
            assert_eq!(&changes[*n as usize], action);
        }
        // Reversed, and with most changes left out (beyond the resume window).
        let sparse: Vec<Action> = changes.iter().rev().step_by(97).cloned().collect();
        let expected: Vec<Option<u32>> = (0..300u32).rev().step_by(97).map(Some).collect();
        assert_eq!(indices(&steps(&sparse, &changes)), expected);
    }

    #[test]
    fn anything_but_a_given_change_is_spelled_out() {
        let changes = changes();
        let mut other_reason = changes[0].clone();
        other_reason.reason = Some(InstallReason::Explicit);
        let other_version = change(ActionKind::Upgrade, "p001", Some("1-1"), Some("3-1"));
        let unknown = change(ActionKind::Install, "zzz", None, Some("1-1"));
        let actions = vec![
            other_reason.clone(),
            other_version.clone(),
            unknown.clone(),
            changes[4].clone(),
        ];
        assert_eq!(
            steps(&actions, &changes),
            [
                Step::Action(other_reason),
                Step::Action(other_version),
                Step::Action(unknown),
                Step::Change(4),
            ]
        );
    }
}
