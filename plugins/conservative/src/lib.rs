//! `conservative`: install and upgrade towards the target, but never downgrade or remove.
//!
//! Install reasons change only towards `explicit`: a package marked explicit can never become
//! an orphan that a cleanup (`pacman -Rns $(pacman -Qtdq)`) removes, while one marked as a
//! dependency can. So an upgrade keeps an installed package's explicit mark even when the
//! target lists it as a dependency.

use pacsync_policy_sdk::pacsync_core::{
    Action, ActionKind, InstallReason, Plan, Skipped, SyncStatus, classify_differences,
    mirror_plan_from, restrict_to_available,
};
use pacsync_policy_sdk::serde_json::Value;
use pacsync_policy_sdk::{
    PlanInput, PolicyError, PolicyLogic, StateView, VersionOrder, expect_no_config,
    no_config_schema,
};

/// The conservative policy.
pub struct Conservative;

impl PolicyLogic for Conservative {
    const NAME: &'static str = "conservative";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const SUMMARY: &'static str =
        "Install and upgrade towards the target; never downgrade, never remove.";

    fn config_schema() -> Value {
        no_config_schema()
    }

    fn validate_config(config: &Value) -> Result<(), String> {
        expect_no_config(Self::NAME, config)
    }

    /// A package the target lists as a dependency but the endpoint has explicit is never
    /// re-marked here, so it does not make the endpoint `behind`: no sync would change it.
    fn classify(
        changes: &[Action],
        _current: &dyn StateView,
        _target: &dyn StateView,
        _config: &Value,
    ) -> SyncStatus {
        let counted: Vec<Action> = changes
            .iter()
            .filter(|a| {
                !(a.kind == ActionKind::SetReason && a.reason == Some(InstallReason::Dependency))
            })
            .cloned()
            .collect();
        classify_differences(&counted)
    }

    fn plan(input: &PlanInput<'_>, cmp: VersionOrder<'_>) -> Result<Plan, PolicyError> {
        let mirror = mirror_plan_from(input.changes.clone());
        let mut actions = Vec::new();
        let mut skipped = mirror.skipped;
        for mut action in mirror.actions {
            let from = action.from_version.clone().unwrap_or_default();
            match action.kind {
                ActionKind::SetReason if action.reason != Some(InstallReason::Explicit) => {
                    skipped.push(Skipped {
                        name: action.name,
                        reason: "would mark as a dependency; the conservative policy only marks \
                                 packages explicit"
                            .into(),
                    })
                }
                ActionKind::SetReason => actions.push(action),
                ActionKind::Upgrade => {
                    let explicit = input
                        .current
                        .get(&action.name)
                        .is_some_and(|p| p.reason == InstallReason::Explicit);
                    if explicit {
                        action.reason = Some(InstallReason::Explicit);
                    }
                    actions.push(action)
                }
                ActionKind::Downgrade => skipped.push(Skipped {
                    name: action.name,
                    reason: format!(
                        "would downgrade from {from} to {}; the conservative policy never downgrades",
                        action.to_version.unwrap_or_default()
                    ),
                }),
                ActionKind::Remove => skipped.push(Skipped {
                    name: action.name,
                    reason: format!("would remove {from}; the conservative policy never removes"),
                }),
                ActionKind::Install => actions.push(action),
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
pacsync_policy_sdk::policy_component!(Conservative);

#[cfg(test)]
mod tests {
    use super::*;
    use pacsync_policy_sdk::pacsync_core::{Package, PackageState, vercmp};
    use pacsync_policy_sdk::serde_json::json;

    fn state(pkgs: &[(&str, &str)]) -> PackageState {
        state_with(InstallReason::Explicit, pkgs)
    }

    fn state_with(reason: InstallReason, pkgs: &[(&str, &str)]) -> PackageState {
        PackageState::new(
            pkgs.iter()
                .map(|(n, v)| Package {
                    name: n.to_string(),
                    version: v.to_string(),
                    repository: None,
                    architecture: None,
                    reason,
                })
                .collect(),
        )
        .unwrap()
    }

    #[test]
    fn marks_packages_explicit_but_never_as_dependencies() {
        // `up` is explicit here and a dependency in the target: it is upgraded and stays
        // explicit. `dep` is a dependency here and explicit there: it is re-marked.
        let mut current = state(&[("up", "1-1"), ("keep", "1-1")]).into_packages();
        current.extend(state_with(InstallReason::Dependency, &[("dep", "1-1")]).into_packages());
        let current = PackageState::new(current).unwrap();
        let mut target = state_with(InstallReason::Dependency, &[("up", "2-1"), ("keep", "1-1")])
            .into_packages();
        target.extend(state(&[("dep", "1-1")]).into_packages());
        let target = PackageState::new(target).unwrap();
        let input = PlanInput::new(&current, &target, json!({}), None);
        let plan = Conservative::plan(&input, &vercmp).unwrap();
        let planned: Vec<_> = plan
            .actions
            .iter()
            .map(|a| (a.kind, a.name.as_str(), a.reason))
            .collect();
        assert_eq!(
            planned,
            [
                (ActionKind::Upgrade, "up", Some(InstallReason::Explicit)),
                (ActionKind::SetReason, "dep", Some(InstallReason::Explicit)),
            ]
        );
        assert_eq!(plan.skipped[0].name, "keep");
        assert!(
            plan.skipped[0]
                .reason
                .contains("only marks packages explicit")
        );
    }

    #[test]
    fn never_downgrades_or_removes() {
        let current = state(&[("up", "1-1"), ("down", "3-1"), ("extra", "1-1")]);
        let target = state(&[("up", "2-1"), ("down", "2-1"), ("new", "1-1")]);
        let input = PlanInput::new(&current, &target, json!({}), None);
        let plan = Conservative::plan(&input, &vercmp).unwrap();
        let planned: Vec<_> = plan
            .actions
            .iter()
            .map(|a| (a.kind, a.name.as_str()))
            .collect();
        assert_eq!(
            planned,
            [(ActionKind::Install, "new"), (ActionKind::Upgrade, "up")]
        );
        let skipped: Vec<_> = plan.skipped.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(skipped, ["down", "extra"]);
        assert!(plan.skipped[0].reason.contains("never downgrades"));
        assert!(plan.skipped[1].reason.contains("never removes"));
        assert_eq!(plan.summary, "1 to install, 1 to upgrade, 2 skipped");
    }
}
