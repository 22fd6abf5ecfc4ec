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
    Action, Available, Package, PackageState, Plan, SyncStatus, classify_differences,
    differences_by,
};
pub use serde_json;
use serde_json::Value;

#[cfg(all(target_arch = "wasm32", feature = "arena"))]
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
