//! Creating operations: one path for every kind.
//!
//! Each request locks its endpoint, settles idempotent replays, checks the endpoint is free and
//! has reported a state, then lets its kind decide the target and the plan, and records the
//! operation with `ps_op_create`. What happens next depends on the kind: set-as-latest moves the
//! pool target and completes at once; a sync or revert with nothing to do completes at once;
//! anything else waits for the agent. All of it is one transaction, so a failure anywhere leaves
//! nothing behind.

use std::sync::Arc;

use pacsync_core::{Operation, OperationType, PackageState, Plan, PolicyRecord, RevertRequest};
use sha2::{Digest, Sha256};
use sqlx::PgConnection;
use uuid::Uuid;

use super::{Lifecycle, transitioned};
use crate::auth::Principal;
use crate::availability;
use crate::classification::reclassify_pool;
use crate::db;
use crate::db::operations::{NewOperation, OperationRow};
use crate::db::pools::Pool;
use crate::error::{Error, ErrorCode, Result};
use crate::policy::Policy;

/// The result of a creation request: the operation, and whether it replays an earlier request.
pub struct Created {
    /// The operation.
    pub operation: Operation,
    /// True when an `Idempotency-Key` matched an earlier request.
    pub replayed: bool,
}

/// Everything a creation request shares: who, which endpoint, the idempotency key.
pub struct Request<'a> {
    /// Caller.
    pub principal: &'a Principal,
    /// Endpoint acted on.
    pub endpoint_id: Uuid,
    /// `Idempotency-Key` header.
    pub idempotency_key: Option<&'a str>,
}

/// The locked endpoint, its pool and its current state: what a kind decides from.
struct Context {
    endpoint: db::endpoints::Endpoint,
    pool: Pool,
    current_state_id: String,
}

/// What a kind decided: where the operation leads, and with which plan and policy.
struct Decision {
    target_state_id: String,
    target_generation: Option<i64>,
    revert_history_id: Option<i64>,
    plan: Option<Plan>,
    policy: Option<PolicyRecord>,
}

/// What locking an endpoint for a new operation found.
enum Locked {
    /// A new request.
    Fresh(Context),
    /// The `Idempotency-Key` names an earlier request with the same fingerprint.
    Replay(OperationRow),
}

fn fingerprint(kind: OperationType, endpoint_id: Uuid, body: &serde_json::Value) -> String {
    let digest = Sha256::digest(format!("{}|{endpoint_id}|{body}", kind.as_str()).as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Checks the `Idempotency-Key` header value.
pub fn validate_idempotency_key(key: &str) -> Result<()> {
    if key.is_empty() || key.len() > 255 || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Error::new(
            ErrorCode::InvalidIdempotencyKey,
            "Idempotency-Key must be 1 to 255 visible ASCII characters",
        ));
    }
    Ok(())
}

/// sync-to-latest: plan the endpoint onto the pool target with the pool's policy.
pub async fn request_sync(lc: &Lifecycle, request: Request<'_>) -> Result<Created> {
    let endpoint_id = request.endpoint_id;
    let decide = async |tx: &mut PgConnection, ctx: &Context| -> Result<Decision> {
        let target_id = ctx.pool.target_state_id.clone().ok_or_else(|| {
            Error::new(
                ErrorCode::NoPoolTarget,
                "the pool has no target yet; run set-as-latest on a reference endpoint first",
            )
        })?;
        let (policy, record) = lc.policies.for_pool(&mut *tx, &ctx.pool).await?;
        let current = db::states::load_required(&mut *tx, &ctx.current_state_id).await?;
        let target = db::states::load_required(&mut *tx, &target_id).await?;
        let plan = plan_sync(
            tx,
            policy.as_ref(),
            &ctx.pool,
            endpoint_id,
            (&current, &target),
            lc.availability_max_age,
        )
        .await?;
        Ok(Decision {
            target_state_id: target_id,
            target_generation: Some(ctx.pool.target_generation),
            revert_history_id: None,
            plan: Some(plan),
            policy: Some(record),
        })
    };
    create(
        lc,
        request,
        OperationType::Sync,
        serde_json::json!({}),
        decide,
    )
    .await
}

/// set-as-latest: the endpoint's current state becomes the pool target; completes server-side.
/// The pool's `target_setters` decides whether the caller may.
pub async fn request_set_latest(lc: &Lifecycle, request: Request<'_>) -> Result<Created> {
    let principal = request.principal;
    let decide = async |tx: &mut PgConnection, ctx: &Context| -> Result<Decision> {
        crate::pools::authorize_target_change(tx, principal, &ctx.endpoint).await?;
        Ok(Decision {
            target_state_id: ctx.current_state_id.clone(),
            target_generation: None,
            revert_history_id: None,
            plan: None,
            policy: None,
        })
    };
    let body = serde_json::json!({});
    create(lc, request, OperationType::SetLatest, body, decide).await
}

/// revert: back to the state before the latest change (an undo stack), or to a given state.
pub async fn request_revert(
    lc: &Lifecycle,
    request: Request<'_>,
    body: RevertRequest,
) -> Result<Created> {
    let endpoint_id = request.endpoint_id;
    let request_body = serde_json::to_value(&body).map_err(Error::internal)?;
    let decide = async |tx: &mut PgConnection, ctx: &Context| -> Result<Decision> {
        let history_id = revert_point(tx, ctx, body.state_id.as_deref()).await?;
        let (_, target_id, _) = db::endpoints::history_entry(&mut *tx, history_id)
            .await?
            .ok_or_else(|| Error::internal("history entry missing"))?;
        let (policy, record) = lc.policies.exact();
        let current = db::states::load_required(&mut *tx, &ctx.current_state_id).await?;
        let target = db::states::load_required(&mut *tx, &target_id).await?;
        let limits = availability::revert_limits(
            tx,
            ctx.pool.pool_id,
            endpoint_id,
            (&current, &target),
            lc.availability_max_age,
        )
        .await?;
        // The limits decide what is obtainable, including what is unknown rather than missing.
        let plan = limits.enforce(policy.plan(&current, &target, None)?);
        // A partial revert would move the undo pointer past a state never reached: refuse it.
        if !plan.skipped.is_empty() {
            let missing: Vec<String> = plan
                .skipped
                .iter()
                .map(|s| format!("{}: {}", s.name, s.reason))
                .collect();
            return Err(Error::new(
                ErrorCode::RevertUnobtainable,
                format!(
                    "cannot revert to state {target_id}; the endpoint cannot obtain {}",
                    missing.join("; ")
                ),
            ));
        }
        Ok(Decision {
            target_state_id: target_id,
            target_generation: None,
            revert_history_id: Some(history_id),
            plan: Some(plan),
            policy: Some(record),
        })
    };
    create(lc, request, OperationType::Revert, request_body, decide).await
}

/// The history entry a revert goes back to: the latest with `state_id`, or the one before the
/// endpoint's latest change.
async fn revert_point(tx: &mut PgConnection, ctx: &Context, state_id: Option<&str>) -> Result<i64> {
    let no_previous_state = || {
        Error::new(
            ErrorCode::NoPreviousState,
            "the endpoint's history has no earlier state to revert to",
        )
    };
    match state_id {
        Some(state_id) => {
            db::endpoints::latest_history_with_state(&mut *tx, ctx.endpoint.endpoint_id, state_id)
                .await?
                .ok_or_else(|| {
                    Error::new(
                        ErrorCode::StateNotFound,
                        format!("state {state_id} is not in this endpoint's history"),
                    )
                })
        }
        None => {
            let current = ctx
                .endpoint
                .current_history_id
                .ok_or_else(no_previous_state)?;
            let (_, _, revert_to) = db::endpoints::history_entry(&mut *tx, current)
                .await?
                .ok_or_else(|| Error::internal("current history entry missing"))?;
            revert_to.ok_or_else(no_previous_state)
        }
    }
}

/// Plans a sync with the pool's policy, limited to what the endpoint and the whole pool can
/// obtain (by reports no older than `max_age`).
pub(super) async fn plan_sync(
    tx: &mut PgConnection,
    policy: &dyn Policy,
    pool: &Pool,
    endpoint_id: Uuid,
    (current, target): (&Arc<PackageState>, &Arc<PackageState>),
    max_age: Option<std::time::Duration>,
) -> Result<Plan> {
    let states = (current.as_ref(), target.as_ref());
    let limits = availability::sync_limits(&mut *tx, pool, endpoint_id, states, max_age).await?;
    let plan = policy.plan(current, target, limits.available.as_deref())?;
    Ok(limits.enforce(plan))
}

/// The one creation path: lock, settle replays, let the kind decide, record, and finish what
/// needs no agent.
async fn create(
    lc: &Lifecycle,
    request: Request<'_>,
    kind: OperationType,
    body: serde_json::Value,
    decide: impl AsyncFnOnce(&mut PgConnection, &Context) -> Result<Decision>,
) -> Result<Created> {
    let request_fingerprint = fingerprint(kind, request.endpoint_id, &body);
    let mut tx = lc.db.begin().await?;
    let ctx = match lock_context(&mut tx, &request, &request_fingerprint).await? {
        Locked::Fresh(ctx) => ctx,
        Locked::Replay(row) => {
            tx.commit().await?;
            return Ok(Created {
                operation: row.into(),
                replayed: true,
            });
        }
    };
    let decision = decide(&mut tx, &ctx).await?;
    let actor = request.principal.actor();
    let proposed = Uuid::new_v4();
    let row = db::operations::create(
        &mut *tx,
        NewOperation {
            operation_id: proposed,
            endpoint_id: request.endpoint_id,
            operation_type: kind,
            details: serde_json::json!({ "request": body }),
            target_state_id: Some(&decision.target_state_id),
            target_generation: decision.target_generation,
            revert_history_id: decision.revert_history_id,
            plan: decision.plan.as_ref(),
            policy: decision.policy.as_ref(),
            actor: &actor,
            idempotency_key: request.idempotency_key,
            fingerprint: Some(&request_fingerprint),
        },
    )
    .await?;
    if row.operation_id != proposed {
        // A concurrent request with the same key won the race: answer with its operation.
        tx.commit().await?;
        return Ok(Created {
            operation: row.into(),
            replayed: true,
        });
    }
    let nothing_to_do = decision.plan.as_ref().is_some_and(Plan::is_empty);
    let row = match kind {
        OperationType::SetLatest => {
            db::pools::set_target(
                &mut *tx,
                ctx.pool.pool_id,
                &ctx.current_state_id,
                row.operation_id,
                ctx.endpoint.endpoint_id,
                &actor,
            )
            .await?;
            reclassify_pool(&lc.policies, &mut tx, ctx.pool.pool_id).await?;
            complete_at_once(lc, &mut tx, row, &ctx.current_state_id, &actor).await?
        }
        OperationType::Sync | OperationType::Revert if nothing_to_do => {
            complete_at_once(lc, &mut tx, row, &ctx.current_state_id, "system:host").await?
        }
        OperationType::Sync | OperationType::Revert => row,
    };
    tx.commit().await?;
    Ok(Created {
        operation: transitioned(row),
        replayed: false,
    })
}

/// Locks the endpoint for the transaction and loads it, its pool and its current state id, after
/// settling idempotent replays (a replay answers before any precondition is re-checked).
async fn lock_context(
    tx: &mut PgConnection,
    request: &Request<'_>,
    fingerprint: &str,
) -> Result<Locked> {
    request
        .principal
        .require_admin_or_endpoint(request.endpoint_id)?;
    db::endpoints::lock(&mut *tx, request.endpoint_id).await?;
    if let Some(key) = request.idempotency_key {
        validate_idempotency_key(key)?;
        if let Some(earlier) =
            db::operations::find_by_idempotency_key(&mut *tx, &request.principal.actor(), key)
                .await?
        {
            if earlier.request_fingerprint.as_deref() != Some(fingerprint) {
                return Err(Error::new(
                    ErrorCode::IdempotencyKeyMismatch,
                    format!("Idempotency-Key {key:?} was first used for a different request"),
                ));
            }
            return Ok(Locked::Replay(earlier));
        }
    }
    let endpoint = db::endpoints::get(&mut *tx, request.endpoint_id)
        .await?
        .ok_or_else(|| {
            Error::new(
                ErrorCode::EndpointNotFound,
                format!("endpoint {} not found", request.endpoint_id),
            )
        })?;
    // Fail fast on a busy endpoint before planning; the procedure and the unique index re-check.
    if let Some(active) =
        db::operations::active_for_endpoint(&mut *tx, endpoint.endpoint_id).await?
    {
        return Err(Error::new(
            ErrorCode::OperationConflict,
            format!(
                "endpoint {} already has active operation {}",
                endpoint.endpoint_id, active.operation_id
            ),
        ));
    }
    let pool = crate::pools::of_endpoint(&mut *tx, endpoint.pool_id).await?;
    let current_state_id = endpoint.current_state_id.clone().ok_or_else(|| {
        Error::new(
            ErrorCode::NoReportedState,
            "the endpoint has not reported its packages yet (PUT /api/endpoints/{id}/state)",
        )
    })?;
    Ok(Locked::Fresh(Context {
        endpoint,
        pool,
        current_state_id,
    }))
}

/// Starts and completes an operation in one go: there is nothing for the agent to do.
async fn complete_at_once(
    lc: &Lifecycle,
    tx: &mut PgConnection,
    row: OperationRow,
    state_id: &str,
    actor: &str,
) -> Result<OperationRow> {
    db::operations::start(&mut *tx, row.operation_id, lc.lease_seconds(), actor, None).await?;
    db::operations::complete(&mut *tx, row.operation_id, state_id, None, None, actor).await
}
