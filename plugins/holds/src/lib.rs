//! `holds`: mirror, except for packages held by glob patterns (like pacman's `IgnorePkg`) and
//! critical packages (kernel, init, libc, pacman) that change only when the config allows it.
//!
//! An ignored package is never touched, not even its install reason. A critical package's
//! reason is re-marked like any other: that changes no file, and a kernel wrongly marked as a
//! dependency is one orphan cleanup away from being removed.

use pacsync_policy_sdk::pacsync_core::{
    Action, ActionKind, Plan, Skipped, SyncStatus, classify_differences, mirror_plan_from,
    restrict_to_available,
};
use pacsync_policy_sdk::serde_json::{Value, json};
use pacsync_policy_sdk::{PlanInput, PolicyError, PolicyLogic, StateView, VersionOrder};

/// Critical packages when the config does not name its own.
pub const DEFAULT_CRITICAL: [&str; 4] = ["linux*", "systemd*", "glibc", "pacman"];

/// The holds policy.
pub struct Holds;

/// Parsed configuration.
#[derive(Debug)]
pub struct HoldsConfig {
    ignore: Vec<glob::Pattern>,
    critical: Vec<glob::Pattern>,
    allow_critical: bool,
}

fn patterns(config: &Value, key: &str, default: &[&str]) -> Result<Vec<glob::Pattern>, String> {
    let raw: Vec<String> = match config.get(key) {
        None => default.iter().map(|s| s.to_string()).collect(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| format!("{key} must be a list of glob strings"))
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(format!("{key} must be a list of glob strings")),
    };
    raw.iter()
        .map(|p| glob::Pattern::new(p).map_err(|e| format!("{key}: invalid glob {p:?}: {e}")))
        .collect()
}

impl HoldsConfig {
    /// Parses and checks a config.
    pub fn parse(config: &Value) -> Result<Self, String> {
        let map = config
            .as_object()
            .ok_or("holds configuration must be a JSON object")?;
        if let Some(key) = map
            .keys()
            .find(|k| !["ignore", "critical", "allow_critical"].contains(&k.as_str()))
        {
            return Err(format!(
                "unknown holds setting {key:?}; expected ignore, critical, allow_critical"
            ));
        }
        let allow_critical = match map.get("allow_critical") {
            None => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err("allow_critical must be true or false".into()),
        };
        Ok(Self {
            ignore: patterns(config, "ignore", &[])?,
            critical: patterns(config, "critical", &DEFAULT_CRITICAL)?,
            allow_critical,
        })
    }

    /// Why `action` must not be carried out, if it must not.
    fn hold(&self, action: &Action) -> Option<String> {
        let name = action.name.as_str();
        if let Some(p) = self.ignore.iter().find(|p| p.matches(name)) {
            return Some(format!("held by ignore pattern {:?}", p.as_str()));
        }
        if !self.allow_critical
            && action.kind != ActionKind::SetReason
            && let Some(p) = self.critical.iter().find(|p| p.matches(name))
        {
            return Some(format!(
                "critical package (matches {:?}); set allow_critical to change it",
                p.as_str()
            ));
        }
        None
    }

    fn ignored(&self, name: &str) -> bool {
        self.ignore.iter().any(|g| g.matches(name))
    }
}

impl PolicyLogic for Holds {
    const NAME: &'static str = "holds";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const SUMMARY: &'static str =
        "Mirror the target, except held packages (glob patterns) and critical ones unless allowed.";

    fn config_schema() -> Value {
        json!({
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "ignore": { "type": "array", "items": { "type": "string" }, "description": "globs never touched, like IgnorePkg" },
                "critical": { "type": "array", "items": { "type": "string" }, "default": DEFAULT_CRITICAL },
                "allow_critical": { "type": "boolean", "default": false }
            }
        })
    }

    fn validate_config(config: &Value) -> Result<(), String> {
        HoldsConfig::parse(config).map(|_| ())
    }

    /// Ignored packages do not count: a machine differing only in them is in sync.
    fn classify(
        changes: &[Action],
        _current: &dyn StateView,
        _target: &dyn StateView,
        config: &Value,
    ) -> SyncStatus {
        match HoldsConfig::parse(config) {
            Ok(c) => {
                let counted: Vec<Action> = changes
                    .iter()
                    .filter(|a| !c.ignored(&a.name))
                    .cloned()
                    .collect();
                classify_differences(&counted)
            }
            Err(_) => classify_differences(changes),
        }
    }

    fn plan(input: &PlanInput<'_>, cmp: VersionOrder<'_>) -> Result<Plan, PolicyError> {
        let config = HoldsConfig::parse(&input.config).map_err(PolicyError::InvalidConfig)?;
        let mirror = mirror_plan_from(input.changes.clone());
        let mut actions = Vec::new();
        let mut skipped = mirror.skipped;
        for action in mirror.actions {
            match config.hold(&action) {
                Some(reason) => skipped.push(Skipped {
                    name: action.name,
                    reason,
                }),
                None => actions.push(action),
            }
        }
        Ok(restrict_to_available(
            Plan::from_parts(actions, skipped),
            input.available.as_deref(),
            cmp,
        ))
    }
}

#[cfg(target_arch = "wasm32")]
pacsync_policy_sdk::policy_component!(Holds);

#[cfg(test)]
mod tests {
    use super::*;
    use pacsync_policy_sdk::pacsync_core::{InstallReason, Package, PackageState, vercmp};

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

    /// Plans with `config` from linux, nvidia-dkms and vim, each one version behind.
    fn plan_with(config: Value) -> Plan {
        let current = state(&[("linux", "6.0-1"), ("nvidia-dkms", "1-1"), ("vim", "9.0-1")]);
        let target = state(&[("linux", "6.1-1"), ("nvidia-dkms", "2-1"), ("vim", "9.1-1")]);
        Holds::plan(&PlanInput::new(&current, &target, config, None), &vercmp).unwrap()
    }

    fn planned(plan: &Plan) -> Vec<&str> {
        plan.actions.iter().map(|a| a.name.as_str()).collect()
    }

    #[test]
    fn critical_packages_are_held_by_default() {
        let plan = plan_with(json!({}));
        assert_eq!(planned(&plan), ["nvidia-dkms", "vim"]);
        assert!(plan.skipped[0].reason.contains("critical"));
    }

    #[test]
    fn ignore_globs_and_allow_critical() {
        let plan = plan_with(json!({"ignore": ["nvidia-*"], "allow_critical": true}));
        assert_eq!(planned(&plan), ["linux", "vim"]);
        assert!(plan.skipped[0].reason.contains("nvidia-*"));
        let plan = plan_with(json!({"critical": ["vim"]}));
        assert_eq!(planned(&plan), ["linux", "nvidia-dkms"]);
    }

    #[test]
    fn critical_packages_are_re_marked_but_ignored_ones_are_not() {
        let as_dependency = |pkgs: &[(&str, &str)]| {
            PackageState::new(
                state(pkgs)
                    .into_packages()
                    .into_iter()
                    .map(|p| Package {
                        reason: InstallReason::Dependency,
                        ..p
                    })
                    .collect(),
            )
            .unwrap()
        };
        let current = as_dependency(&[("linux", "6.1-1"), ("vim", "9.1-1")]);
        let target = state(&[("linux", "6.1-1"), ("vim", "9.1-1")]);
        let input = PlanInput::new(&current, &target, json!({"ignore": ["vim"]}), None);
        let plan = Holds::plan(&input, &vercmp).unwrap();
        assert_eq!(planned(&plan), ["linux"]);
        assert_eq!(plan.actions[0].kind, ActionKind::SetReason);
        assert_eq!(plan.actions[0].reason, Some(InstallReason::Explicit));
        assert!(plan.skipped[0].reason.contains("ignore pattern"));
    }

    #[test]
    fn ignored_packages_do_not_affect_classification() {
        let current = state(&[("a", "1-1"), ("held", "1-1")]);
        let target = state(&[("a", "1-1"), ("held", "2-1")]);
        let input = PlanInput::new(&current, &target, json!({}), None);
        let classify = |config| Holds::classify(&input.changes, &current, &target, &config);
        assert_eq!(classify(json!({"ignore": ["held"]})), SyncStatus::InSync);
        assert_eq!(classify(json!({})), SyncStatus::Behind);
    }

    #[test]
    fn rejects_bad_configs_with_reasons() {
        assert!(
            Holds::validate_config(&json!({"ignore": "linux"}))
                .unwrap_err()
                .contains("list")
        );
        assert!(
            Holds::validate_config(&json!({"ignore": ["[z-a"]}))
                .unwrap_err()
                .contains("invalid glob")
        );
        assert!(
            Holds::validate_config(&json!({"hold": []}))
                .unwrap_err()
                .contains("unknown")
        );
        assert!(Holds::validate_config(&json!({"allow_critical": "yes"})).is_err());
        assert!(
            Holds::validate_config(
                &json!({"ignore": ["foo*"], "critical": [], "allow_critical": false})
            )
            .is_ok()
        );
    }
}
