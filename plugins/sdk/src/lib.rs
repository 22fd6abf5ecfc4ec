//! What every pacsync policy plugin shares.
//!
//! A plugin is a plain Rust type implementing [`PolicyLogic`], tested natively like any library.
//! On `wasm32` the same type becomes a component of the `pacsync:policy/policy` world with
//! [`policy_component!`], which converts between WIT types and `pacsync_core` types and routes
//! version comparison through the host's `vercmp` import.

use std::cmp::Ordering;

pub use pacsync_core;
use pacsync_core::{Available, PackageState, Plan, SyncStatus, classify_by};
pub use serde_json;
use serde_json::Value;

#[cfg(target_arch = "wasm32")]
pub mod component;

/// Version order a policy must use: the host's `vercmp` in a component, core's natively.
pub type VersionOrder<'a> = &'a dyn Fn(&str, &str) -> Ordering;

/// What `plan` is asked, in core types.
#[derive(Debug, Clone)]
pub struct PlanInput {
    /// The endpoint's packages.
    pub current: PackageState,
    /// The packages wanted.
    pub target: PackageState,
    /// The pool's config for this policy (already validated).
    pub config: Value,
    /// What the endpoint can obtain; `None` when unknown.
    pub available: Option<Vec<Available>>,
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

    /// Classifies `current` against `target`; by default the factual comparison.
    fn classify(
        current: &PackageState,
        target: &PackageState,
        config: &Value,
        cmp: VersionOrder<'_>,
    ) -> SyncStatus {
        let _ = config;
        classify_by(current, target, cmp)
    }

    /// Plans the actions that move `current` towards `target`.
    fn plan(input: &PlanInput, cmp: VersionOrder<'_>) -> Result<Plan, PolicyError>;
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
