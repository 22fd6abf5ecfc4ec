//! Starting an operation, and planning a pending sync again as its agent starts it.
//!
//! A sync's plan is made when it is requested, but the agent may start it much later. By then
//! the pool target may have moved, the machine may have reported a new state, the pool's policy
//! may have been swapped, or what the pool can obtain may have changed. So a start re-plans,
//! and replaces the plan on record if it differs; one that is now in sync completes at once.
//! `ps_op_start` refuses a plan made for a generation that is no longer the target (the target
//! moved between the read and the write): the start is then tried again, a few times.

use pacsync_core::{Operation, OperationStatus, OperationType};
use sqlx::PgConnection;
use uuid::Uuid;

use super::create::plan_sync;
use super::{Access, Lifecycle, authorize};
use crate::auth::Principal;
use crate::db;
use crate::db::operations::{OperationRow, Replan};
use crate::error::{Error, ErrorCode, Result};

/// Attempts at starting a sync whose pool target keeps moving.
const START_ATTEMPTS: usize = 3;

/// What re-planning a pending sync found.
struct Fresh {
    /// The replacement, when the plan on record went stale.
    replan: Option<Replan>,
    /// The machine's state, when the fresh plan is empty: it is in sync already.
    in_sync_at: Option<String>,
}

/// The agent claims a pending operation (see the module doc for syncs).
pub async fn start(lc: &Lifecycle, principal: &Principal, operation_id: Uuid) -> Result<Operation> {
    authorize(&lc.db, principal, operation_id, Access::Agent).await?;
    let actor = principal.actor();
    for attempt in 1..=START_ATTEMPTS {
        let mut tx = lc.db.begin().await?;
        let row = db::operations::lock(&mut *tx, operation_id).await?;
        let fresh = if row.operation_type == OperationType::Sync
            && row.status == OperationStatus::Pending
        {
            replan(lc, &mut tx, &row).await?
        } else {
            Fresh {
                replan: None,
                in_sync_at: None,
            }
        };
        let started = db::operations::start(
            &mut *tx,
            operation_id,
            lc.lease_seconds(),
            &actor,
            fresh.replan,
        )
        .await;
        let mut started = match started {
            Err(e) if e.code == ErrorCode::StalePlan && attempt < START_ATTEMPTS => continue,
            Err(e) => return Err(e),
            Ok(started) => started,
        };
        if let Some(state_id) = fresh.in_sync_at {
            started =
                db::operations::complete(&mut *tx, operation_id, &state_id, None, None, &actor)
                    .await?;
        }
        tx.commit().await?;
        return Ok(started.into());
    }
    unreachable!("the last attempt returns")
}

/// Plans a pending sync again; the plan on record is replaced if it went stale.
async fn replan(lc: &Lifecycle, tx: &mut PgConnection, row: &OperationRow) -> Result<Fresh> {
    let pool = db::pools::get(&mut *tx, row.pool_id)
        .await?
        .ok_or_else(|| {
            Error::new(
                ErrorCode::PoolNotFound,
                "the operation's pool no longer exists",
            )
        })?;
    let endpoint = db::endpoints::get(&mut *tx, row.endpoint_id)
        .await?
        .ok_or_else(|| {
            Error::new(
                ErrorCode::EndpointNotFound,
                "the operation's endpoint no longer exists",
            )
        })?;
    let (policy, record) = lc.policies.for_pool(&mut *tx, &pool).await?;
    // The plan is stale if the target moved, the machine changed, or the pool's policy (plugin
    // or config) was swapped since it was made...
    let stale = Some(pool.target_generation) != row.target_generation
        || endpoint.current_history_id != row.planned_history_id
        || row.policy.as_ref().map(|p| (&p.hash, &p.config))
            != Some((&record.hash, &record.config));
    let (current_id, target_id) = match (endpoint.current_state_id, pool.target_state_id.clone()) {
        (Some(c), Some(t)) => (c, t),
        _ => return Err(Error::internal("sync operation without states")),
    };
    let current = db::states::load_required(&mut *tx, &current_id).await?;
    let target = db::states::load_required(&mut *tx, &target_id).await?;
    let plan = plan_sync(
        tx,
        policy.as_ref(),
        &pool,
        row.endpoint_id,
        (&current, &target),
        lc.availability_max_age,
    )
    .await?;
    // ...or if what the pool can obtain changed (an endpoint reported, or its report went
    // stale): then only the plan itself shows it.
    if !stale && row.plan.as_ref() == Some(&plan) {
        return Ok(Fresh {
            replan: None,
            in_sync_at: None,
        });
    }
    Ok(Fresh {
        in_sync_at: plan.is_empty().then_some(current_id),
        replan: Some(Replan {
            plan,
            target_state_id: target_id,
            target_generation: pool.target_generation,
            policy: record,
        }),
    })
}
