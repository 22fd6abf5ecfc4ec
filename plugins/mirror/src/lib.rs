//! `mirror`: match the pool target exactly — install, upgrade, downgrade, remove and re-mark
//! install reasons.

use pacsync_policy_sdk::pacsync_core::{Plan, mirror_plan_from, restrict_to_available};
use pacsync_policy_sdk::serde_json::Value;
use pacsync_policy_sdk::{
    PlanInput, PolicyError, PolicyLogic, VersionOrder, expect_no_config, no_config_schema,
};

/// The mirror policy.
pub struct Mirror;

impl PolicyLogic for Mirror {
    const NAME: &'static str = "mirror";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const SUMMARY: &'static str =
        "Match the pool target exactly: install, upgrade, downgrade, remove and re-mark.";

    fn config_schema() -> Value {
        no_config_schema()
    }

    fn validate_config(config: &Value) -> Result<(), String> {
        expect_no_config(Self::NAME, config)
    }

    fn plan(input: &PlanInput<'_>, cmp: VersionOrder<'_>) -> Result<Plan, PolicyError> {
        let plan = mirror_plan_from(input.changes.clone());
        Ok(restrict_to_available(plan, input.available.as_deref(), cmp))
    }
}

#[cfg(target_arch = "wasm32")]
pacsync_policy_sdk::policy_component!(Mirror);

#[cfg(test)]
mod tests {
    use super::*;
    use pacsync_policy_sdk::pacsync_core::{
        ActionKind, Available, InstallReason, Package, PackageState, Source, vercmp,
    };
    use pacsync_policy_sdk::serde_json::json;

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
    fn plans_every_kind_of_change() {
        let current = state(&[("a", "1-1"), ("b", "2-1"), ("x", "1-1")]);
        let target = state(&[("a", "2-1"), ("b", "1-1"), ("n", "1-1")]);
        let input = PlanInput::new(&current, &target, json!({}), None);
        let plan = Mirror::plan(&input, &vercmp).unwrap();
        let kinds: Vec<_> = plan.actions.iter().map(|a| a.kind).collect();
        assert_eq!(
            kinds,
            [
                ActionKind::Install,
                ActionKind::Upgrade,
                ActionKind::Downgrade,
                ActionKind::Remove
            ]
        );
    }

    #[test]
    fn re_marks_a_package_installed_for_another_reason() {
        let current = state(&[("a", "1-1")]);
        let target = PackageState::new(vec![Package {
            reason: InstallReason::Dependency,
            ..current.get("a").unwrap().clone()
        }])
        .unwrap();
        // Nothing has to be obtained for it, so even "nothing is obtainable" plans it.
        let input = PlanInput::new(&current, &target, json!({}), Some(Vec::new()));
        let plan = Mirror::plan(&input, &vercmp).unwrap();
        assert_eq!(plan.actions.len(), 1);
        assert_eq!(plan.actions[0].kind, ActionKind::SetReason);
        assert_eq!(plan.actions[0].reason, Some(InstallReason::Dependency));
        assert_eq!(plan.summary, "1 to re-mark");
    }

    #[test]
    fn skips_what_cannot_be_obtained() {
        let current = state(&[("a", "1-1")]);
        let target = state(&[("a", "2-1"), ("aur-only", "1-1")]);
        let available = vec![Available {
            name: "a".into(),
            version: "2-1".into(),
            source: Source::SyncRepository,
        }];
        let input = PlanInput::new(&current, &target, json!({}), Some(available));
        let plan = Mirror::plan(&input, &vercmp).unwrap();
        assert_eq!(plan.actions.len(), 1);
        assert_eq!(plan.skipped[0].name, "aur-only");
    }

    #[test]
    fn takes_no_config() {
        assert!(Mirror::validate_config(&json!({})).is_ok());
        assert!(
            Mirror::validate_config(&json!({"x": 1}))
                .unwrap_err()
                .contains("x")
        );
        assert!(Mirror::validate_config(&json!([])).is_err());
    }
}
