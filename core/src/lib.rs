//! Types shared by the pacsync host, the endpoint agent and the policy plugins.
//!
//! Everything here is pure data and pure functions so that the same code can be compiled natively
//! and into `wasm32-wasip2` policy components. Each module builds on the ones before it:
//!
//! - [`version`]: pacman's version order (`vercmp`), exactly;
//! - [`package`]: packages and content-addressed package states;
//! - [`difference`]: the one walk that finds what differs between two states;
//! - [`status`]: where an endpoint stands relative to its target;
//! - [`plan`]: the ordered actions that take an endpoint to a target;
//! - [`availability`]: what endpoints can obtain, and plans restricted to it;
//! - [`operation`], [`report`], [`event`]: the wire vocabulary host and client share.

mod spelling;

pub mod availability;
pub mod difference;
pub mod event;
pub mod operation;
pub mod package;
pub mod plan;
pub mod report;
pub mod status;
#[cfg(test)]
mod testing;
pub mod version;

pub use availability::{
    AvailabilityReport, Available, Gap, Lookup, Obtainability, Source, analyse,
    restrict_to_available,
};
pub use difference::{
    Action, ActionKind, Diff, Difference, diff, diff_by, difference_refs_by, differences_by,
};
pub use event::{ClientMessage, ClientRequest, EventType, ServerMessage};
pub use operation::{
    Operation, OperationPage, OperationStatus, OperationType, PolicyRecord, Progress,
};
pub use package::{InstallReason, Package, PackageError, PackageState};
pub use plan::{Plan, Skipped, mirror_plan, mirror_plan_by, mirror_plan_from};
pub use report::{
    CancelAck, CompleteReport, FailReport, PoolStatus, ProgressReport, RevertRequest,
    StateRecorded, StateReport, TargetDiff, TargetSetters,
};
pub use spelling::UnknownSpelling;
pub use status::{SyncStatus, classify, classify_by, classify_differences};
pub use version::{VersionError, validate_version, vercmp};
