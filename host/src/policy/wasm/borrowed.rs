//! Arguments of `classify` and `plan` lowered straight from the host's own data.
//!
//! `bindgen!`'s generated records own their strings, so calling through them would copy every
//! difference (up to three strings each) on the host before lowering copies it into the guest;
//! these lower straight from the states. These records have the same WIT shape but borrow;
//! wasmtime checks that shape against the component's export types when the export is looked
//! up ([`Exports::new`]).

use pacsync_core::{ActionKind, Available, Difference, InstallReason, Source};
use wasmtime::component::{
    ComponentExportIndex, ComponentType, Instance, Lower, Resource, TypedFunc,
};
use wasmtime::{AsContextMut, Store};

use super::bindings::pacsync::policy::types as wit;
use super::call::CallState;
use super::imports::SharedState;

/// `action`, borrowing a [`Difference`] (which borrows the states).
#[derive(ComponentType, Lower)]
#[component(record)]
pub(super) struct ActionRef<'a> {
    kind: wit::ActionKind,
    name: &'a str,
    #[component(name = "from-version")]
    from_version: Option<&'a str>,
    #[component(name = "to-version")]
    to_version: Option<&'a str>,
    reason: Option<wit::InstallReason>,
}

impl<'a> From<&Difference<'a>> for ActionRef<'a> {
    fn from(a: &Difference<'a>) -> Self {
        ActionRef {
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
}

/// The WIT install reason.
pub(super) fn reason_to(r: InstallReason) -> wit::InstallReason {
    match r {
        InstallReason::Explicit => wit::InstallReason::Explicit,
        InstallReason::Dependency => wit::InstallReason::Dependency,
    }
}

/// `available`, borrowing a host [`Available`].
#[derive(ComponentType, Lower)]
#[component(record)]
pub(super) struct AvailableRef<'a> {
    name: &'a str,
    version: &'a str,
    source: wit::Source,
}

impl<'a> From<&'a Available> for AvailableRef<'a> {
    fn from(a: &'a Available) -> Self {
        AvailableRef {
            name: &a.name,
            version: &a.version,
            source: match a.source {
                Source::SyncRepository => wit::Source::SyncRepository,
                Source::Cache => wit::Source::Cache,
                Source::Archive => wit::Source::Archive,
                Source::Rollback => wit::Source::Rollback,
            },
        }
    }
}

/// `plan-request`, borrowing the differences, the config and the availability.
#[derive(ComponentType, Lower)]
#[component(record)]
pub(super) struct PlanRequestRef<'a> {
    /// The differences, in name order.
    pub changes: &'a [ActionRef<'a>],
    /// The endpoint's state, lent.
    pub current: Resource<SharedState>,
    /// The pool target, lent.
    pub target: Resource<SharedState>,
    /// The pool's policy config, JSON text.
    pub config: &'a str,
    /// What the endpoint can obtain, when known.
    pub available: Option<&'a [AvailableRef<'a>]>,
}

type ClassifyParams<'a> = (
    &'a [ActionRef<'a>],
    Resource<SharedState>,
    Resource<SharedState>,
    &'a str,
);
type PlanParams<'a> = (&'a PlanRequestRef<'a>,);
type PlanResult = Result<wit::Plan, wit::PolicyError>;

/// Where `classify` and `plan` are among a component's exports.
pub(super) struct Exports {
    classify: ComponentExportIndex,
    plan: ComponentExportIndex,
}

impl Exports {
    /// Finds both exports and checks, once, that their types take the borrowed records.
    pub fn new(instance: &Instance, store: &mut Store<CallState>) -> wasmtime::Result<Self> {
        let index = |store: &mut Store<CallState>, name: &str| {
            instance
                .get_export_index(&mut *store, None, name)
                .ok_or_else(|| anyhow::anyhow!("the component exports no `{name}`"))
        };
        let exports = Exports {
            classify: index(store, "classify")?,
            plan: index(store, "plan")?,
        };
        instance.get_typed_func::<ClassifyParams<'_>, (wit::SyncStatus,)>(
            &mut *store,
            &exports.classify,
        )?;
        instance.get_typed_func::<PlanParams<'_>, (PlanResult,)>(&mut *store, &exports.plan)?;
        Ok(exports)
    }

    /// Calls `classify`.
    pub fn classify(
        &self,
        instance: &Instance,
        mut store: impl AsContextMut<Data = CallState>,
        params: ClassifyParams<'_>,
    ) -> wasmtime::Result<wit::SyncStatus> {
        let func = self.func::<ClassifyParams<'_>, (wit::SyncStatus,)>(
            instance,
            &mut store,
            &self.classify,
        )?;
        let (status,) = func.call(&mut store, params)?;
        func.post_return(&mut store)?;
        Ok(status)
    }

    /// Calls `plan`.
    pub fn plan(
        &self,
        instance: &Instance,
        mut store: impl AsContextMut<Data = CallState>,
        request: &PlanRequestRef<'_>,
    ) -> wasmtime::Result<PlanResult> {
        let func = self.func::<PlanParams<'_>, (PlanResult,)>(instance, &mut store, &self.plan)?;
        let (outcome,) = func.call(&mut store, (request,))?;
        func.post_return(&mut store)?;
        Ok(outcome)
    }

    fn func<P, R>(
        &self,
        instance: &Instance,
        mut store: impl AsContextMut<Data = CallState>,
        index: &ComponentExportIndex,
    ) -> wasmtime::Result<TypedFunc<P, R>>
    where
        P: wasmtime::component::ComponentNamedList + Lower,
        R: wasmtime::component::ComponentNamedList + wasmtime::component::Lift,
    {
        let func = instance
            .get_func(&mut store, index)
            .ok_or_else(|| anyhow::anyhow!("export vanished"))?;
        // SAFETY: `Exports::new` type-checked these parameter and result types against this
        // component's export, and every instance of the component has the same types.
        Ok(unsafe { TypedFunc::new_unchecked(func) })
    }
}
