//! Operations: sync-to-latest, set-as-latest and revert, from request to completion.
//!
//! The stored procedures own the lifecycle (pending → in_progress → completed | failed |
//! cancelled) and refuse any other transition; this module decides what to ask them: plans,
//! targets and revert points, computed under the same advisory locks in the same transaction.
//!
//! - [`create`]: one creation path; each kind supplies only its planning;
//! - [`replan`]: a pending sync planned again when its agent starts it;
//! - [`transitions`]: the agent's progress, completion, failure and cancel acknowledgement;
//! - [`paging`]: listing with keyset cursors.

mod create;
mod paging;
mod replan;
mod transitions;

use std::time::Duration;

use pacsync_core::Operation;
use sqlx::PgPool;
use uuid::Uuid;

use crate::auth::Principal;
use crate::db;
use crate::db::operations::OperationRow;
use crate::error::{Error, ErrorCode, Result};
use crate::policy::Policies;

pub use create::{Created, Request, request_revert, request_set_latest, request_sync};
pub use paging::{ListQuery, Scope, list, list_query};
pub use replan::start;
pub use transitions::{acknowledge_cancel, cancel, complete, fail, progress};

/// What the lifecycle needs from the host: the database, the policies, and its settings.
#[derive(Clone)]
pub struct Lifecycle {
    /// Connection pool.
    pub db: PgPool,
    /// The pools' policies.
    pub policies: Policies,
    /// How long an agent's claim lasts without progress.
    pub lease: Duration,
    /// Availability reports older than this stop constraining plans (`None`: never).
    pub availability_max_age: Option<Duration>,
}

impl Lifecycle {
    fn lease_seconds(&self) -> i32 {
        i32::try_from(self.lease.as_secs()).unwrap_or(i32::MAX)
    }
}

/// Converts a row returned by a transition, recording the operation's duration if it ended.
fn transitioned(row: OperationRow) -> Operation {
    if row.completed_at.is_some() {
        crate::metrics::operation_ended(&row);
    }
    row.into()
}

/// Who may do what to an existing operation.
#[derive(Clone, Copy)]
enum Access {
    /// Admins and the operation's endpoint: read, cancel.
    Owner,
    /// Only the operation's endpoint's agent: start, progress, complete, fail, acknowledge.
    Agent,
}

async fn authorize(
    db: &PgPool,
    principal: &Principal,
    operation_id: Uuid,
    access: Access,
) -> Result<OperationRow> {
    let row = db::operations::get(db, operation_id)
        .await?
        .ok_or_else(|| {
            Error::new(
                ErrorCode::OperationNotFound,
                format!("operation {operation_id} not found"),
            )
        })?;
    match access {
        Access::Owner => principal.require_admin_or_endpoint(row.endpoint_id)?,
        Access::Agent => principal.require_endpoint(row.endpoint_id)?,
    }
    Ok(row)
}

/// One operation.
pub async fn get(db: &PgPool, principal: &Principal, operation_id: Uuid) -> Result<Operation> {
    Ok(authorize(db, principal, operation_id, Access::Owner)
        .await?
        .into())
}
