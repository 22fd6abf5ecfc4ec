//! The component side: WIT bindings and conversions, used through [`crate::policy_component!`].

use std::cmp::Ordering;

use pacsync_core::{
    Action, ActionKind, Available, InstallReason, Package, Plan, Source, SyncStatus,
};

use crate::{PlanInput, PolicyError, PolicyLogic, StateView, Step};

/// Bindings generated from `wit/`; kept in their own module so their names do not collide with
/// `pacsync_core`'s.
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "policy",
        pub_export_macro: true,
        default_bindings_module: "pacsync_policy_sdk::component::bindings",
    });
}

use bindings::pacsync::policy::host;
use bindings::pacsync::policy::types as wit;

/// pacman's version order, computed by the host through the `vercmp` import.
///
/// Rust policies compare with `pacsync_core::vercmp` instead ([`version_order`]): it is the very
/// code the host runs, and calling it in-guest avoids one boundary crossing (two string copies)
/// per comparison, which dominated plan time on 2,000-package states (see BENCHMARKS.md). The
/// import is for plugins written in other languages.
pub fn host_vercmp(a: &str, b: &str) -> Ordering {
    host::vercmp(a, b).cmp(&0)
}

/// The version order Rust policies use in the component: the host's own implementation.
pub fn version_order(a: &str, b: &str) -> Ordering {
    pacsync_core::vercmp(a, b)
}

fn reason_from(r: wit::InstallReason) -> InstallReason {
    match r {
        wit::InstallReason::Explicit => InstallReason::Explicit,
        wit::InstallReason::Dependency => InstallReason::Dependency,
    }
}

fn reason_to(r: InstallReason) -> wit::InstallReason {
    match r {
        InstallReason::Explicit => wit::InstallReason::Explicit,
        InstallReason::Dependency => wit::InstallReason::Dependency,
    }
}

fn package_from(p: wit::Package) -> Package {
    Package {
        name: p.name,
        version: p.version,
        repository: p.repository,
        architecture: p.architecture,
        reason: reason_from(p.reason),
    }
}

/// The host's package-state resource as a [`StateView`]: each read crosses into the host.
impl StateView for wit::PackageState {
    fn count(&self) -> usize {
        wit::PackageState::count(self) as usize
    }

    fn get(&self, name: &str) -> Option<Package> {
        wit::PackageState::get(self, name).map(package_from)
    }

    fn packages(&self) -> Vec<Package> {
        wit::PackageState::packages(self)
            .into_iter()
            .map(package_from)
            .collect()
    }
}

fn action_from(a: wit::Action) -> Action {
    Action {
        kind: match a.kind {
            wit::ActionKind::Install => ActionKind::Install,
            wit::ActionKind::Upgrade => ActionKind::Upgrade,
            wit::ActionKind::Downgrade => ActionKind::Downgrade,
            wit::ActionKind::Remove => ActionKind::Remove,
            wit::ActionKind::SetReason => ActionKind::SetReason,
        },
        name: a.name,
        from_version: a.from_version,
        to_version: a.to_version,
        reason: a.reason.map(reason_from),
    }
}

fn parse_config(config: &str) -> Result<serde_json::Value, String> {
    serde_json::from_str(config).map_err(|e| format!("config is not JSON: {e}"))
}

/// `describe` for `P`.
pub fn describe<P: PolicyLogic>() -> wit::Description {
    wit::Description {
        name: P::NAME.into(),
        version: P::VERSION.into(),
        summary: P::SUMMARY.into(),
        config_schema: P::config_schema().to_string(),
    }
}

/// `validate-config` for `P`.
pub fn validate_config<P: PolicyLogic>(config: String) -> Result<(), String> {
    P::validate_config(&parse_config(&config)?)
}

/// `classify` for `P`.
pub fn classify<P: PolicyLogic>(
    changes: Vec<wit::Action>,
    current: wit::PackageState,
    target: wit::PackageState,
    config: String,
) -> wit::SyncStatus {
    let config = parse_config(&config).unwrap_or(serde_json::Value::Null);
    let changes: Vec<Action> = changes.into_iter().map(action_from).collect();
    let status = match P::classify(&changes, &current, &target, &config) {
        SyncStatus::InSync | SyncStatus::Unknown => wit::SyncStatus::InSync,
        SyncStatus::Ahead => wit::SyncStatus::Ahead,
        SyncStatus::Behind => wit::SyncStatus::Behind,
        SyncStatus::Diverged => wit::SyncStatus::Diverged,
    };
    discard(changes);
    status
}

/// Lets go of `value`. With the arena allocator it is not freed: the instance and its memory are
/// discarded after the call, and dropping a hundred changes would be hundreds of calls that free
/// nothing.
fn discard<T>(value: T) {
    if cfg!(feature = "arena") {
        std::mem::forget(value);
    } else {
        drop(value);
    }
}

/// `plan` for `P`.
pub fn plan<P: PolicyLogic>(request: wit::PlanRequest) -> Result<wit::Plan, wit::PolicyError> {
    let config = parse_config(&request.config).map_err(wit::PolicyError::InvalidConfig)?;
    let input = PlanInput {
        changes: request.changes.into_iter().map(action_from).collect(),
        current: &request.current,
        target: &request.target,
        config,
        available: request.available.map(|list| {
            list.into_iter()
                .map(|a| Available {
                    name: a.name,
                    version: a.version,
                    source: match a.source {
                        wit::Source::SyncRepository => Source::SyncRepository,
                        wit::Source::Cache => Source::Cache,
                        wit::Source::Archive => Source::Archive,
                        wit::Source::Rollback => Source::Rollback,
                    },
                })
                .collect()
        }),
    };
    let outcome = match P::plan(&input, &version_order) {
        Ok(plan) => Ok(plan_to(plan, &input.changes)),
        Err(PolicyError::InvalidConfig(m)) => Err(wit::PolicyError::InvalidConfig(m)),
        Err(PolicyError::Unsatisfiable(m)) => Err(wit::PolicyError::Unsatisfiable(m)),
    };
    discard(input.changes);
    discard(input.available);
    outcome
}

fn plan_to(plan: Plan, changes: &[Action]) -> wit::Plan {
    let steps = crate::steps(&plan.actions, changes)
        .into_iter()
        .map(|step| match step {
            Step::Change(n) => wit::Step::Change(n),
            Step::Action(action) => wit::Step::Action(action_to(action)),
        })
        .collect();
    discard(plan.actions);
    wit::Plan {
        steps,
        skipped: plan
            .skipped
            .into_iter()
            .map(|s| wit::Skipped {
                name: s.name,
                reason: s.reason,
            })
            .collect(),
        summary: plan.summary,
    }
}

fn action_to(a: Action) -> wit::Action {
    wit::Action {
        kind: match a.kind {
            ActionKind::Install => wit::ActionKind::Install,
            ActionKind::Upgrade => wit::ActionKind::Upgrade,
            ActionKind::Downgrade => wit::ActionKind::Downgrade,
            ActionKind::Remove => wit::ActionKind::Remove,
            ActionKind::SetReason => wit::ActionKind::SetReason,
        },
        name: a.name,
        from_version: a.from_version,
        to_version: a.to_version,
        reason: a.reason.map(reason_to),
    }
}

/// Exports a [`PolicyLogic`] type as the component's `policy` world.
#[macro_export]
macro_rules! policy_component {
    ($logic:ty) => {
        struct PolicyComponent;

        impl $crate::component::bindings::Guest for PolicyComponent {
            fn describe() -> $crate::component::bindings::pacsync::policy::types::Description {
                $crate::component::describe::<$logic>()
            }
            fn validate_config(config: String) -> Result<(), String> {
                $crate::component::validate_config::<$logic>(config)
            }
            fn classify(
                changes: Vec<$crate::component::bindings::pacsync::policy::types::Action>,
                current: $crate::component::bindings::pacsync::policy::types::PackageState,
                target: $crate::component::bindings::pacsync::policy::types::PackageState,
                config: String,
            ) -> $crate::component::bindings::pacsync::policy::types::SyncStatus {
                $crate::component::classify::<$logic>(changes, current, target, config)
            }
            fn plan(
                request: $crate::component::bindings::pacsync::policy::types::PlanRequest,
            ) -> Result<
                $crate::component::bindings::pacsync::policy::types::Plan,
                $crate::component::bindings::pacsync::policy::types::PolicyError,
            > {
                $crate::component::plan::<$logic>(request)
            }
        }

        $crate::component::bindings::export!(PolicyComponent);
    };
}
