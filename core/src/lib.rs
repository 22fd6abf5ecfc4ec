//! Types shared by the pacsync host, the endpoint agent and the policy plugins.
//!
//! Everything here is pure data and pure functions so that the same code can be compiled natively
//! and into `wasm32-wasip2` policy components.

pub mod availability;
pub mod diff;
pub mod package;
pub mod plan;
pub mod version;

pub use availability::{AvailabilityReport, Gap, Lookup, Obtainability, analyse};
pub use diff::{Diff, SyncStatus, classify, classify_by, diff, diff_by};
pub use package::{InstallReason, Package, PackageError, PackageState};
pub use plan::{
    Action, ActionKind, Available, Difference, Plan, Skipped, Source, classify_differences,
    difference_refs_by, differences_by, mirror_plan, mirror_plan_by, mirror_plan_from,
    restrict_to_available,
};
pub use version::{VersionError, validate_version, vercmp};
