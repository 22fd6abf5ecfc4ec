//! Operations: sync-to-latest, set-as-latest and revert, from request to completion.
//!
//! Each function runs one transaction. The stored procedures enforce the lifecycle; this module
//! decides what to ask them (plans, targets, revert points) under the same advisory locks.

use std::sync::Arc;

use base64::Engine;
use chrono::{DateTime, Utc};
use pacsync_core::{PackageState, Plan};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::PgConnection;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::Principal;
use crate::availability;
use crate::db;
use crate::db::operations::{Cursor, ListFilter, NewOperation, OperationRow, Replan};
use crate::db::pools::Pool;
use crate::endpoints::{
    ParsedReport, StateReport, classify_and_store, load_state, parse_report, reclassify_pool,
};
use crate::error::{Error, ErrorCode, Result};
use crate::policy::Policy;
use crate::server::AppState;

/// The three operation types, as stored and as in JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OperationType {
    /// Make the endpoint match the pool target.
    Sync,
    /// Make the endpoint's state the pool target.
    SetLatest,
    /// Return the endpoint to an earlier state.
    Revert,
}

impl OperationType {
    /// Database spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            OperationType::Sync => "sync",
            OperationType::SetLatest => "set_latest",
            OperationType::Revert => "revert",
        }
    }
}

/// Progress as reported by the agent.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Progress {
    /// 0 to 100.
    pub percentage: i16,
    /// Coarse stage, e.g. `downloading`, `installing`.
    pub stage: Option<String>,
    /// What is happening now, e.g. `upgrading linux`.
    pub current_action: Option<String>,
}

/// An operation as the API returns it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Operation {
    /// Operation id.
    pub operation_id: Uuid,
    /// The endpoint it acts on.
    pub endpoint_id: Uuid,
    /// The endpoint's pool when the operation was created.
    pub pool_id: Uuid,
    /// `sync`, `set_latest` or `revert`.
    pub operation_type: String,
    /// `pending`, `in_progress`, `completed`, `failed` or `cancelled`.
    pub status: String,
    /// Free-form details (e.g. `replanned_from_generation`).
    pub details: serde_json::Value,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// When the agent started it.
    pub started_at: Option<DateTime<Utc>>,
    /// When it ended.
    pub completed_at: Option<DateTime<Utc>>,
    /// Stable failure code (`LEASE_EXPIRED`, or the agent's).
    pub error_code: Option<String>,
    /// Failure message (pacman's own text for pacman failures).
    pub error_message: Option<String>,
    /// Latest progress.
    pub progress: Progress,
    /// The plan the agent executes.
    #[schema(value_type = Option<Plan>)]
    pub plan: Option<serde_json::Value>,
    /// The policy (name, hash, config) the plan was computed with.
    pub policy: Option<serde_json::Value>,
    /// A cancel was requested while in progress.
    pub cancel_requested: bool,
    /// When the agent's claim runs out without progress.
    pub lease_expires_at: Option<DateTime<Utc>>,
    /// The state the operation aims for.
    pub target_state_id: Option<String>,
    /// Pool target generation the plan was made for (sync).
    pub target_generation: Option<i64>,
    /// The state the endpoint ended in.
    pub result_state_id: Option<String>,
}

/// Converts a row returned by a transition, recording the operation's duration if it ended.
fn transitioned(row: OperationRow) -> Operation {
    if row.completed_at.is_some() {
        crate::metrics::operation_ended(&row);
    }
    row.into()
}

impl From<OperationRow> for Operation {
    fn from(row: OperationRow) -> Self {
        Operation {
            operation_id: row.operation_id,
            endpoint_id: row.endpoint_id,
            pool_id: row.pool_id,
            operation_type: row.operation_type,
            status: row.status,
            details: row.details,
            created_at: row.created_at,
            started_at: row.started_at,
            completed_at: row.completed_at,
            error_code: row.error_code,
            error_message: row.error_message,
            progress: Progress {
                percentage: row.progress_percentage,
                stage: row.progress_stage,
                current_action: row.progress_action,
            },
            plan: row.plan,
            policy: row.policy,
            cancel_requested: row.cancel_requested,
            lease_expires_at: row.lease_expires_at,
            target_state_id: row.target_state_id,
            target_generation: row.target_generation,
            result_state_id: row.result_state_id,
        }
    }
}

/// The result of a creation request: the operation, and whether it replays an earlier request.
pub struct Created {
    /// The operation.
    pub operation: Operation,
    /// True when an `Idempotency-Key` matched an earlier request.
    pub replayed: bool,
}

/// `POST /api/sync/{endpoint_id}/revert` body.
#[derive(Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RevertRequest {
    /// A state from the endpoint's history; without it, the state before the latest change.
    #[serde(default)]
    pub state_id: Option<String>,
}

/// `POST /api/sync/operations/{id}/progress` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProgressReport {
    /// 0 to 100.
    pub percentage: i32,
    /// Coarse stage, up to 64 characters.
    pub stage: String,
    /// What is happening now, up to 512 characters.
    #[serde(default)]
    pub current_action: Option<String>,
}

/// `POST /api/sync/operations/{id}/complete` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompleteReport {
    /// The machine's state after the operation.
    pub state: StateReport,
}

/// `POST /api/sync/operations/{id}/fail` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FailReport {
    /// Stable code, `[A-Z0-9_]{1,64}`, e.g. `PACMAN_FAILED`.
    pub code: String,
    /// What went wrong, up to 16 KiB (pacman's own message).
    pub message: String,
}

/// `POST /api/sync/operations/{id}/cancel-ack` body.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelAck {
    /// The state the machine is in after stopping, if known.
    #[serde(default)]
    pub state: Option<StateReport>,
}

/// A page of operations.
#[derive(Debug, Serialize, ToSchema)]
pub struct OperationPage {
    /// Operations, newest first.
    pub items: Vec<Operation>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// Validated listing parameters.
pub struct ListQuery {
    /// Page size.
    pub limit: i64,
    /// Position.
    pub cursor: Option<String>,
    /// Status filter.
    pub status: Option<String>,
    /// Type filter.
    pub operation_type: Option<String>,
}

const STATUSES: [&str; 5] = ["pending", "in_progress", "completed", "failed", "cancelled"];
const TYPES: [&str; 3] = ["sync", "set_latest", "revert"];
/// Attempts at starting a sync whose pool target keeps moving.
const START_ATTEMPTS: usize = 3;

fn lease_seconds(app: &AppState) -> i32 {
    i32::try_from(app.config.lease.as_secs()).unwrap_or(i32::MAX)
}

fn fingerprint(kind: OperationType, endpoint_id: Uuid, body: &serde_json::Value) -> String {
    let digest = Sha256::digest(format!("{}|{endpoint_id}|{body}", kind.as_str()).as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

fn plan_json(plan: &Plan) -> Result<serde_json::Value> {
    serde_json::to_value(plan).map_err(Error::internal)
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

/// Everything a creation request shares: who, which endpoint, the idempotency key and body.
pub struct Request<'a> {
    /// Caller.
    pub principal: &'a Principal,
    /// Endpoint acted on.
    pub endpoint_id: Uuid,
    /// `Idempotency-Key` header.
    pub idempotency_key: Option<&'a str>,
}

struct Context {
    endpoint: db::endpoints::Endpoint,
    pool: db::pools::Pool,
    current_state_id: String,
}

/// What locking an endpoint for a new operation found.
enum Locked {
    /// A new request: the endpoint, its pool and its state.
    Fresh(Context),
    /// The `Idempotency-Key` names an earlier request with the same fingerprint.
    Replay(OperationRow),
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
    let pool = db::pools::get(&mut *tx, endpoint.pool_id)
        .await?
        .ok_or_else(|| {
            Error::new(
                ErrorCode::PoolNotFound,
                "the endpoint's pool no longer exists",
            )
        })?;
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

struct Creation<'a> {
    kind: OperationType,
    body: serde_json::Value,
    /// Fingerprint of `kind`, endpoint and `body`, as checked for idempotent replays.
    fingerprint: &'a str,
    target_state_id: &'a str,
    target_generation: Option<i64>,
    revert_history_id: Option<i64>,
    plan: Option<&'a Plan>,
    policy: Option<serde_json::Value>,
}

/// Calls `ps_op_create`; returns the row and whether it was a replay.
async fn create_row(
    tx: &mut PgConnection,
    request: &Request<'_>,
    c: Creation<'_>,
) -> Result<(OperationRow, bool)> {
    let proposed = Uuid::new_v4();
    let actor = request.principal.actor();
    let details = serde_json::json!({ "request": c.body });
    let row = db::operations::create(
        &mut *tx,
        NewOperation {
            operation_id: proposed,
            endpoint_id: request.endpoint_id,
            operation_type: c.kind.as_str(),
            details,
            target_state_id: Some(c.target_state_id),
            target_generation: c.target_generation,
            revert_history_id: c.revert_history_id,
            plan: c.plan.map(plan_json).transpose()?,
            policy: c.policy,
            actor: &actor,
            idempotency_key: request.idempotency_key,
            fingerprint: Some(c.fingerprint),
        },
    )
    .await?;
    let replayed = row.operation_id != proposed;
    Ok((row, replayed))
}

/// Completes an operation whose plan is empty at once: there is nothing for the agent to do.
async fn complete_at_once(
    app: &AppState,
    tx: &mut PgConnection,
    row: OperationRow,
    state_id: &str,
) -> Result<OperationRow> {
    let actor = "system:host";
    db::operations::start(&mut *tx, row.operation_id, lease_seconds(app), actor, None).await?;
    db::operations::complete(&mut *tx, row.operation_id, state_id, None, None, actor).await
}

/// Plans a sync with the pool's policy, limited to what the endpoint and the whole pool can
/// obtain (by reports no older than `max_age`).
async fn plan_sync(
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

/// sync-to-latest: plan the endpoint onto the pool target with the pool's policy.
pub async fn request_sync(app: &AppState, request: Request<'_>) -> Result<Created> {
    let request_body = serde_json::json!({});
    let mut tx = app.db.begin().await?;
    let request_fingerprint = fingerprint(OperationType::Sync, request.endpoint_id, &request_body);
    let ctx = match lock_context(&mut tx, &request, &request_fingerprint).await? {
        Locked::Fresh(ctx) => ctx,
        Locked::Replay(row) => return replay(tx, row).await,
    };
    let target_id = ctx.pool.target_state_id.clone().ok_or_else(|| {
        Error::new(
            ErrorCode::NoPoolTarget,
            "the pool has no target yet; run set-as-latest on a reference endpoint first",
        )
    })?;
    let (policy, record) = app.policies.for_pool(&mut *tx, &ctx.pool).await?;
    let current = load_state(&mut tx, &ctx.current_state_id).await?;
    let target = load_state(&mut tx, &target_id).await?;
    let plan = plan_sync(
        &mut tx,
        policy.as_ref(),
        &ctx.pool,
        request.endpoint_id,
        (&current, &target),
        app.config.availability_max_age,
    )
    .await?;
    let (mut row, replayed) = create_row(
        &mut tx,
        &request,
        Creation {
            kind: OperationType::Sync,
            body: request_body,
            fingerprint: &request_fingerprint,
            target_state_id: &target_id,
            target_generation: Some(ctx.pool.target_generation),
            revert_history_id: None,
            plan: Some(&plan),
            policy: Some(serde_json::to_value(&record).map_err(Error::internal)?),
        },
    )
    .await?;
    if !replayed && plan.is_empty() {
        row = complete_at_once(app, &mut tx, row, &ctx.current_state_id).await?;
    }
    tx.commit().await?;
    Ok(Created {
        operation: transitioned(row),
        replayed,
    })
}

/// set-as-latest: the endpoint's current state becomes the pool target; completes server-side.
pub async fn request_set_latest(app: &AppState, request: Request<'_>) -> Result<Created> {
    let request_body = serde_json::json!({});
    let mut tx = app.db.begin().await?;
    let request_fingerprint =
        fingerprint(OperationType::SetLatest, request.endpoint_id, &request_body);
    let ctx = match lock_context(&mut tx, &request, &request_fingerprint).await? {
        Locked::Fresh(ctx) => ctx,
        Locked::Replay(row) => return replay(tx, row).await,
    };
    let (row, replayed) = create_row(
        &mut tx,
        &request,
        Creation {
            kind: OperationType::SetLatest,
            body: request_body,
            fingerprint: &request_fingerprint,
            target_state_id: &ctx.current_state_id,
            target_generation: None,
            revert_history_id: None,
            plan: None,
            policy: None,
        },
    )
    .await?;
    if replayed {
        tx.commit().await?;
        return Ok(Created {
            operation: row.into(),
            replayed,
        });
    }
    let actor = request.principal.actor();
    db::pools::set_target(
        &mut *tx,
        ctx.pool.pool_id,
        &ctx.current_state_id,
        row.operation_id,
        ctx.endpoint.endpoint_id,
        &actor,
    )
    .await?;
    reclassify_pool(app, &mut tx, ctx.pool.pool_id).await?;
    db::operations::start(&mut *tx, row.operation_id, lease_seconds(app), &actor, None).await?;
    let row = db::operations::complete(
        &mut *tx,
        row.operation_id,
        &ctx.current_state_id,
        None,
        None,
        &actor,
    )
    .await?;
    tx.commit().await?;
    Ok(Created {
        operation: transitioned(row),
        replayed,
    })
}

/// revert: back to the state before the latest change (an undo stack), or to a given state.
pub async fn request_revert(
    app: &AppState,
    request: Request<'_>,
    body: RevertRequest,
) -> Result<Created> {
    let request_body = serde_json::to_value(&body).map_err(Error::internal)?;
    let mut tx = app.db.begin().await?;
    let request_fingerprint =
        fingerprint(OperationType::Revert, request.endpoint_id, &request_body);
    let ctx = match lock_context(&mut tx, &request, &request_fingerprint).await? {
        Locked::Fresh(ctx) => ctx,
        Locked::Replay(row) => return replay(tx, row).await,
    };
    let history_id = match &body.state_id {
        Some(state_id) => {
            db::endpoints::latest_history_with_state(&mut *tx, ctx.endpoint.endpoint_id, state_id)
                .await?
                .ok_or_else(|| {
                    Error::new(
                        ErrorCode::StateNotFound,
                        format!("state {state_id} is not in this endpoint's history"),
                    )
                })?
        }
        None => {
            let current = ctx
                .endpoint
                .current_history_id
                .ok_or_else(no_previous_state)?;
            let (_, _, revert_to) = db::endpoints::history_entry(&mut *tx, current)
                .await?
                .ok_or_else(|| Error::internal("current history entry missing"))?;
            revert_to.ok_or_else(no_previous_state)?
        }
    };
    let (_, target_id, _) = db::endpoints::history_entry(&mut *tx, history_id)
        .await?
        .ok_or_else(|| Error::internal("history entry missing"))?;
    let (policy, record) = app.policies.exact();
    let current = load_state(&mut tx, &ctx.current_state_id).await?;
    let target = load_state(&mut tx, &target_id).await?;
    let limits = availability::revert_limits(
        &mut tx,
        ctx.pool.pool_id,
        request.endpoint_id,
        (&current, &target),
        app.config.availability_max_age,
    )
    .await?;
    let plan = limits.enforce(policy.plan(&current, &target, limits.available.as_deref())?);
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
    let (mut row, replayed) = create_row(
        &mut tx,
        &request,
        Creation {
            kind: OperationType::Revert,
            body: request_body,
            fingerprint: &request_fingerprint,
            target_state_id: &target_id,
            target_generation: None,
            revert_history_id: Some(history_id),
            plan: Some(&plan),
            policy: Some(serde_json::to_value(&record).map_err(Error::internal)?),
        },
    )
    .await?;
    if !replayed && plan.is_empty() {
        row = complete_at_once(app, &mut tx, row, &ctx.current_state_id).await?;
    }
    tx.commit().await?;
    Ok(Created {
        operation: transitioned(row),
        replayed,
    })
}

/// Answers a replayed request with the operation the first request created.
async fn replay(tx: sqlx::Transaction<'_, sqlx::Postgres>, row: OperationRow) -> Result<Created> {
    tx.commit().await?;
    Ok(Created {
        operation: row.into(),
        replayed: true,
    })
}

fn no_previous_state() -> Error {
    Error::new(
        ErrorCode::NoPreviousState,
        "the endpoint's history has no earlier state to revert to",
    )
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
    app: &AppState,
    principal: &Principal,
    operation_id: Uuid,
    access: Access,
) -> Result<OperationRow> {
    let row = db::operations::get(&app.db, operation_id)
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
pub async fn get(app: &AppState, principal: &Principal, operation_id: Uuid) -> Result<Operation> {
    Ok(authorize(app, principal, operation_id, Access::Owner)
        .await?
        .into())
}

/// The agent claims a pending operation. A sync is planned again first, and its plan replaced
/// if it went stale while it waited (the pool target moved, the machine reported a new state,
/// the pool's policy changed, or what the pool can obtain changed); one that is now in sync
/// completes at once.
pub async fn start(app: &AppState, principal: &Principal, operation_id: Uuid) -> Result<Operation> {
    authorize(app, principal, operation_id, Access::Agent).await?;
    let actor = principal.actor();
    for attempt in 1..=START_ATTEMPTS {
        let mut tx = app.db.begin().await?;
        let row = db::operations::lock(&mut *tx, operation_id).await?;
        let mut replan = None;
        let mut now_in_sync_at = None;
        if row.operation_type == OperationType::Sync.as_str() && row.status == "pending" {
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
            let (policy, record) = app.policies.for_pool(&mut *tx, &pool).await?;
            let record = serde_json::to_value(&record).map_err(Error::internal)?;
            // The plan is stale if the target moved, the machine changed, or the pool's policy
            // (plugin or config) was swapped since it was made...
            let stale = Some(pool.target_generation) != row.target_generation
                || endpoint.current_history_id != row.planned_history_id
                || row.policy.as_ref().map(|p| (&p["hash"], &p["config"]))
                    != Some((&record["hash"], &record["config"]));
            let (current_id, target_id) =
                match (endpoint.current_state_id, pool.target_state_id.clone()) {
                    (Some(c), Some(t)) => (c, t),
                    _ => return Err(Error::internal("sync operation without states")),
                };
            let current = load_state(&mut tx, &current_id).await?;
            let target = load_state(&mut tx, &target_id).await?;
            let plan = plan_sync(
                &mut tx,
                policy.as_ref(),
                &pool,
                row.endpoint_id,
                (&current, &target),
                app.config.availability_max_age,
            )
            .await?;
            let plan_value = plan_json(&plan)?;
            // ...or if what the pool can obtain changed (an endpoint reported, or its report
            // went stale): then only the plan itself shows it.
            if stale || row.plan.as_ref() != Some(&plan_value) {
                if plan.is_empty() {
                    now_in_sync_at = Some(current_id);
                }
                replan = Some(Replan {
                    plan: plan_value,
                    target_state_id: target_id,
                    target_generation: pool.target_generation,
                    policy: record,
                });
            }
        }
        match db::operations::start(&mut *tx, operation_id, lease_seconds(app), &actor, replan)
            .await
        {
            Err(e) if e.code == ErrorCode::StalePlan && attempt < START_ATTEMPTS => continue,
            Err(e) => return Err(e),
            Ok(mut started) => {
                if let Some(state_id) = now_in_sync_at {
                    started = db::operations::complete(
                        &mut *tx,
                        operation_id,
                        &state_id,
                        None,
                        None,
                        &actor,
                    )
                    .await?;
                }
                tx.commit().await?;
                return Ok(started.into());
            }
        }
    }
    unreachable!("the last attempt returns")
}

/// Progress heartbeat from the agent; the response tells it whether a cancel was requested.
pub async fn progress(
    app: &AppState,
    principal: &Principal,
    operation_id: Uuid,
    report: ProgressReport,
) -> Result<Operation> {
    if !(0..=100).contains(&report.percentage) {
        return Err(Error::new(
            ErrorCode::ValidationFailed,
            "percentage must be between 0 and 100",
        ));
    }
    if report.stage.is_empty() || report.stage.chars().count() > 64 {
        return Err(Error::new(
            ErrorCode::ValidationFailed,
            "stage must be 1 to 64 characters",
        ));
    }
    if report
        .current_action
        .as_ref()
        .is_some_and(|a| a.chars().count() > 512)
    {
        return Err(Error::new(
            ErrorCode::ValidationFailed,
            "current_action is limited to 512 characters",
        ));
    }
    authorize(app, principal, operation_id, Access::Agent).await?;
    let row = db::operations::progress(
        &app.db,
        operation_id,
        report.percentage,
        &report.stage,
        report.current_action.as_deref(),
        lease_seconds(app),
    )
    .await?;
    Ok(row.into())
}

/// The agent finished: record the state it reached (and what the machine can obtain now) and
/// re-classify the endpoint.
pub async fn complete(
    app: &AppState,
    principal: &Principal,
    operation_id: Uuid,
    mut report: CompleteReport,
) -> Result<Operation> {
    authorize(app, principal, operation_id, Access::Agent).await?;
    let parsed = parse_report(&mut report.state)?;
    let mut tx = app.db.begin().await?;
    let state_id = db::states::store(&mut *tx, &parsed.state).await?;
    let row = db::operations::complete(
        &mut *tx,
        operation_id,
        &state_id,
        Some(&report.state.architecture),
        Some(&report.state.pacman_version),
        &principal.actor(),
    )
    .await?;
    finish_report(app, &mut tx, row.endpoint_id, &parsed).await?;
    tx.commit().await?;
    Ok(transitioned(row))
}

/// After a final transition recorded the agent's state: store what the machine can obtain and
/// re-classify the endpoint.
async fn finish_report(
    app: &AppState,
    tx: &mut PgConnection,
    endpoint_id: Uuid,
    parsed: &ParsedReport,
) -> Result<()> {
    if let Some(available) = &parsed.available {
        db::availability::record(&mut *tx, endpoint_id, available).await?;
    }
    reclassify_endpoint(app, tx, endpoint_id, &parsed.state).await
}

async fn reclassify_endpoint(
    app: &AppState,
    tx: &mut PgConnection,
    endpoint_id: Uuid,
    state: &Arc<PackageState>,
) -> Result<()> {
    let endpoint = db::endpoints::get(&mut *tx, endpoint_id)
        .await?
        .ok_or_else(|| Error::internal("endpoint of a live operation vanished"))?;
    classify_and_store(app, tx, &endpoint, Some(state)).await?;
    Ok(())
}

/// The agent failed the operation (pacman's message in `message`).
pub async fn fail(
    app: &AppState,
    principal: &Principal,
    operation_id: Uuid,
    report: FailReport,
) -> Result<Operation> {
    let code_ok = !report.code.is_empty()
        && report.code.len() <= 64
        && report
            .code
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
    if !code_ok {
        return Err(Error::new(
            ErrorCode::ValidationFailed,
            "code must match [A-Z0-9_]{1,64}",
        ));
    }
    if report.message.len() > 16 * 1024 {
        return Err(Error::new(
            ErrorCode::ValidationFailed,
            "message is limited to 16 KiB",
        ));
    }
    authorize(app, principal, operation_id, Access::Agent).await?;
    let row = db::operations::fail(
        &app.db,
        operation_id,
        &report.code,
        &report.message,
        &principal.actor(),
    )
    .await?;
    Ok(transitioned(row))
}

/// Cancels a pending operation, or asks the agent to stop an in-progress one.
pub async fn cancel(
    app: &AppState,
    principal: &Principal,
    operation_id: Uuid,
) -> Result<Operation> {
    authorize(app, principal, operation_id, Access::Owner).await?;
    Ok(transitioned(
        db::operations::cancel(&app.db, operation_id, &principal.actor()).await?,
    ))
}

/// The agent stopped at a safe point after a cancel request.
pub async fn acknowledge_cancel(
    app: &AppState,
    principal: &Principal,
    operation_id: Uuid,
    mut ack: CancelAck,
) -> Result<Operation> {
    authorize(app, principal, operation_id, Access::Agent).await?;
    let parsed = ack.state.as_mut().map(parse_report).transpose()?;
    let mut tx = app.db.begin().await?;
    let stored = match parsed {
        Some(parsed) => {
            let state_id = db::states::store(&mut *tx, &parsed.state).await?;
            Some((parsed, state_id))
        }
        None => None,
    };
    let row = db::operations::acknowledge_cancel(
        &mut *tx,
        operation_id,
        stored.as_ref().map(|(_, id)| id.as_str()),
        ack.state.as_ref().map(|s| s.architecture.as_str()),
        ack.state.as_ref().map(|s| s.pacman_version.as_str()),
        &principal.actor(),
    )
    .await?;
    if let Some((parsed, _)) = &stored {
        finish_report(app, &mut tx, row.endpoint_id, parsed).await?;
    }
    tx.commit().await?;
    Ok(transitioned(row))
}

fn encode_cursor(row: &OperationRow) -> String {
    let raw = format!(
        "{}|{}",
        row.created_at
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        row.operation_id
    );
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

fn decode_cursor(cursor: &str) -> Result<Cursor> {
    let invalid = || {
        Error::new(
            ErrorCode::InvalidCursor,
            "cursor was not produced by this API",
        )
    };
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .map_err(|_| invalid())?;
    let raw = String::from_utf8(raw).map_err(|_| invalid())?;
    let (at, id) = raw.split_once('|').ok_or_else(invalid)?;
    Ok(Cursor {
        created_at: DateTime::parse_from_rfc3339(at)
            .map_err(|_| invalid())?
            .with_timezone(&Utc),
        operation_id: id.parse().map_err(|_| invalid())?,
    })
}

/// Validates raw listing parameters.
pub fn list_query(
    limit: Option<i64>,
    cursor: Option<String>,
    status: Option<String>,
    operation_type: Option<String>,
) -> Result<ListQuery> {
    let limit = limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(Error::new(
            ErrorCode::InvalidQuery,
            "limit must be between 1 and 200",
        ));
    }
    if let Some(s) = &status
        && !STATUSES.contains(&s.as_str())
    {
        return Err(Error::new(
            ErrorCode::InvalidQuery,
            format!("status must be one of {}", STATUSES.join(", ")),
        ));
    }
    if let Some(t) = &operation_type
        && !TYPES.contains(&t.as_str())
    {
        return Err(Error::new(
            ErrorCode::InvalidQuery,
            format!("type must be one of {}", TYPES.join(", ")),
        ));
    }
    Ok(ListQuery {
        limit,
        cursor,
        status,
        operation_type,
    })
}

/// The scope of a listing.
pub enum Scope {
    /// One endpoint's operations.
    Endpoint(Uuid),
    /// One pool's operations.
    Pool(Uuid),
}

/// Lists operations newest first, one page at a time.
pub async fn list(
    app: &AppState,
    principal: &Principal,
    scope: Scope,
    query: ListQuery,
) -> Result<OperationPage> {
    let after = query.cursor.as_deref().map(decode_cursor).transpose()?;
    let (endpoint_id, pool_id) = match scope {
        Scope::Endpoint(id) => {
            principal.require_admin_or_endpoint(id)?;
            crate::endpoints::get(app, id).await?;
            (Some(id), None)
        }
        Scope::Pool(id) => {
            principal.require_admin()?;
            crate::pools::get(app, id).await?;
            (None, Some(id))
        }
    };
    let mut rows = db::operations::list(
        &app.db,
        ListFilter {
            endpoint_id,
            pool_id,
            status: query.status.as_deref(),
            operation_type: query.operation_type.as_deref(),
            after,
            limit: query.limit + 1,
        },
    )
    .await?;
    let next_cursor = if rows.len() as i64 > query.limit {
        rows.truncate(query.limit as usize);
        rows.last().map(encode_cursor)
    } else {
        None
    };
    Ok(OperationPage {
        items: rows.into_iter().map(Operation::from).collect(),
        next_cursor,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_rejected() {
        let at = DateTime::parse_from_rfc3339("2026-11-25T10:00:00.123456Z")
            .unwrap()
            .with_timezone(&Utc);
        let id = Uuid::new_v4();
        let raw = format!(
            "{}|{id}",
            at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
        );
        let cursor = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
        assert_eq!(
            decode_cursor(&cursor).unwrap(),
            Cursor {
                created_at: at,
                operation_id: id
            }
        );
        assert_eq!(
            decode_cursor("!!!").unwrap_err().code,
            ErrorCode::InvalidCursor
        );
        let no_sep = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("abc");
        assert_eq!(
            decode_cursor(&no_sep).unwrap_err().code,
            ErrorCode::InvalidCursor
        );
    }

    #[test]
    fn list_query_bounds() {
        assert!(list_query(Some(0), None, None, None).is_err());
        assert!(list_query(Some(201), None, None, None).is_err());
        assert!(list_query(None, None, Some("done".into()), None).is_err());
        assert!(list_query(None, None, None, Some("upgrade".into())).is_err());
        assert_eq!(
            list_query(None, None, Some("failed".into()), Some("sync".into()))
                .unwrap()
                .limit,
            50
        );
    }
}
