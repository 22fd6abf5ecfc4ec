//! Operations: thin wrappers over the lifecycle stored procedures, and history queries.

use chrono::{DateTime, Utc};
use pacsync_core::{Operation, OperationStatus, OperationType, Plan, PolicyRecord, Progress};
use serde::{Deserialize, Serialize};
use sqlx::PgExecutor;
use sqlx::types::Json;
use uuid::Uuid;

use crate::error::Result;

/// An `operations` row. Also the payload of operation events (`to_jsonb(operations)`).
#[derive(Debug, Clone, sqlx::FromRow, Serialize, Deserialize)]
pub struct OperationRow {
    pub operation_id: Uuid,
    pub endpoint_id: Uuid,
    pub pool_id: Uuid,
    #[sqlx(try_from = "String")]
    pub operation_type: OperationType,
    #[sqlx(try_from = "String")]
    pub status: OperationStatus,
    pub details: serde_json::Value,
    pub target_state_id: Option<String>,
    pub target_generation: Option<i64>,
    pub revert_history_id: Option<i64>,
    pub planned_history_id: Option<i64>,
    pub start_history_id: Option<i64>,
    pub result_state_id: Option<String>,
    #[sqlx(json(nullable))]
    pub plan: Option<Plan>,
    #[sqlx(json(nullable))]
    pub policy: Option<PolicyRecord>,
    pub progress_percentage: i16,
    pub progress_stage: Option<String>,
    pub progress_action: Option<String>,
    pub cancel_requested: bool,
    pub lease_expires_at: Option<DateTime<Utc>>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub created_by: String,
    pub idempotency_key: Option<String>,
    pub request_fingerprint: Option<String>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
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

/// Everything `ps_op_create` needs.
pub struct NewOperation<'a> {
    pub operation_id: Uuid,
    pub endpoint_id: Uuid,
    pub operation_type: OperationType,
    pub details: serde_json::Value,
    pub target_state_id: Option<&'a str>,
    pub target_generation: Option<i64>,
    pub revert_history_id: Option<i64>,
    pub plan: Option<&'a Plan>,
    pub policy: Option<&'a PolicyRecord>,
    pub actor: &'a str,
    pub idempotency_key: Option<&'a str>,
    pub fingerprint: Option<&'a str>,
}

/// A replacement plan computed at start because the one on record went stale (target, machine
/// state, policy or what the pool can obtain changed).
pub struct Replan {
    /// The new plan.
    pub plan: Plan,
    /// The target it leads to.
    pub target_state_id: String,
    /// The pool target generation it was made for; `ps_op_start` refuses any other (PS014).
    pub target_generation: i64,
    /// The policy record it was made with.
    pub policy: PolicyRecord,
}

/// Creates an operation, or returns the earlier one for a replayed idempotency key.
pub async fn create(db: impl PgExecutor<'_>, new: NewOperation<'_>) -> Result<OperationRow> {
    Ok(sqlx::query_as(
        "SELECT * FROM ps_op_create($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(new.operation_id)
    .bind(new.endpoint_id)
    .bind(new.operation_type.as_str())
    .bind(new.details)
    .bind(new.target_state_id)
    .bind(new.target_generation)
    .bind(new.revert_history_id)
    .bind(new.plan.map(Json))
    .bind(new.policy.map(Json))
    .bind(new.actor)
    .bind(new.idempotency_key)
    .bind(new.fingerprint)
    .fetch_one(db)
    .await?)
}

/// pending → in_progress with a lease, optionally replacing the plan.
pub async fn start(
    db: impl PgExecutor<'_>,
    operation_id: Uuid,
    lease_seconds: i32,
    actor: &str,
    replan: Option<Replan>,
) -> Result<OperationRow> {
    let (plan, state, generation, policy) = match replan {
        Some(r) => (
            Some(Json(r.plan)),
            Some(r.target_state_id),
            Some(r.target_generation),
            Some(Json(r.policy)),
        ),
        None => (None, None, None, None),
    };
    Ok(
        sqlx::query_as("SELECT * FROM ps_op_start($1, $2, $3, $4, $5, $6, $7)")
            .bind(operation_id)
            .bind(lease_seconds)
            .bind(actor)
            .bind(plan)
            .bind(state)
            .bind(generation)
            .bind(policy)
            .fetch_one(db)
            .await?,
    )
}

/// Progress heartbeat; renews the lease.
pub async fn progress(
    db: impl PgExecutor<'_>,
    operation_id: Uuid,
    percentage: i32,
    stage: &str,
    current_action: Option<&str>,
    lease_seconds: i32,
) -> Result<OperationRow> {
    Ok(
        sqlx::query_as("SELECT * FROM ps_op_progress($1, $2, $3, $4, $5)")
            .bind(operation_id)
            .bind(percentage)
            .bind(stage)
            .bind(current_action)
            .bind(lease_seconds)
            .fetch_one(db)
            .await?,
    )
}

/// in_progress → completed with the (already stored) resulting state.
pub async fn complete(
    db: impl PgExecutor<'_>,
    operation_id: Uuid,
    result_state_id: &str,
    architecture: Option<&str>,
    pacman_version: Option<&str>,
    actor: &str,
) -> Result<OperationRow> {
    Ok(
        sqlx::query_as("SELECT * FROM ps_op_complete($1, $2, $3, $4, $5)")
            .bind(operation_id)
            .bind(result_state_id)
            .bind(architecture)
            .bind(pacman_version)
            .bind(actor)
            .fetch_one(db)
            .await?,
    )
}

/// pending | in_progress → failed.
pub async fn fail(
    db: impl PgExecutor<'_>,
    operation_id: Uuid,
    code: &str,
    message: &str,
    actor: &str,
) -> Result<OperationRow> {
    Ok(sqlx::query_as("SELECT * FROM ps_op_fail($1, $2, $3, $4)")
        .bind(operation_id)
        .bind(code)
        .bind(message)
        .bind(actor)
        .fetch_one(db)
        .await?)
}

/// Cancels a pending operation or requests cancellation of an in-progress one.
pub async fn cancel(
    db: impl PgExecutor<'_>,
    operation_id: Uuid,
    actor: &str,
) -> Result<OperationRow> {
    Ok(sqlx::query_as("SELECT * FROM ps_op_cancel($1, $2)")
        .bind(operation_id)
        .bind(actor)
        .fetch_one(db)
        .await?)
}

/// The agent's acknowledgement of a cancel request.
pub async fn acknowledge_cancel(
    db: impl PgExecutor<'_>,
    operation_id: Uuid,
    result_state_id: Option<&str>,
    architecture: Option<&str>,
    pacman_version: Option<&str>,
    actor: &str,
) -> Result<OperationRow> {
    Ok(
        sqlx::query_as("SELECT * FROM ps_op_ack_cancel($1, $2, $3, $4, $5)")
            .bind(operation_id)
            .bind(result_state_id)
            .bind(architecture)
            .bind(pacman_version)
            .bind(actor)
            .fetch_one(db)
            .await?,
    )
}

/// Fails every operation whose lease has run out; returns how many.
pub async fn expire_leases(db: impl PgExecutor<'_>, actor: &str) -> Result<i32, sqlx::Error> {
    sqlx::query_scalar("SELECT ps_op_expire_leases($1)")
        .bind(actor)
        .fetch_one(db)
        .await
}

/// How many operations there are of each type and status, for the metrics page.
pub async fn counts(db: impl PgExecutor<'_>) -> Result<Vec<(String, String, i64)>> {
    Ok(
        sqlx::query_as("SELECT operation_type, status, count(*) FROM operations GROUP BY 1, 2")
            .fetch_all(db)
            .await?,
    )
}

/// Locks the operation's endpoint and returns the operation.
pub async fn lock(db: impl PgExecutor<'_>, operation_id: Uuid) -> Result<OperationRow> {
    Ok(sqlx::query_as("SELECT * FROM ps_op_lock($1)")
        .bind(operation_id)
        .fetch_one(db)
        .await?)
}

/// One operation.
pub async fn get(db: impl PgExecutor<'_>, operation_id: Uuid) -> Result<Option<OperationRow>> {
    Ok(
        sqlx::query_as("SELECT * FROM operations WHERE operation_id = $1")
            .bind(operation_id)
            .fetch_optional(db)
            .await?,
    )
}

/// The operation an actor created with an idempotency key, if any.
pub async fn find_by_idempotency_key(
    db: impl PgExecutor<'_>,
    actor: &str,
    key: &str,
) -> Result<Option<OperationRow>> {
    Ok(
        sqlx::query_as("SELECT * FROM operations WHERE created_by = $1 AND idempotency_key = $2")
            .bind(actor)
            .bind(key)
            .fetch_optional(db)
            .await?,
    )
}

/// The endpoint's pending or in-progress operation, if any.
pub async fn active_for_endpoint(
    db: impl PgExecutor<'_>,
    endpoint_id: Uuid,
) -> Result<Option<OperationRow>> {
    Ok(sqlx::query_as(
        "SELECT * FROM operations WHERE endpoint_id = $1 AND status IN ('pending', 'in_progress')",
    )
    .bind(endpoint_id)
    .fetch_optional(db)
    .await?)
}

/// Keyset position: operations strictly older than this, newest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub created_at: DateTime<Utc>,
    pub operation_id: Uuid,
}

/// Filters for listing operations; `limit` rows plus one to detect a next page.
pub struct ListFilter {
    pub endpoint_id: Option<Uuid>,
    pub pool_id: Option<Uuid>,
    pub status: Option<OperationStatus>,
    pub operation_type: Option<OperationType>,
    pub after: Option<Cursor>,
    pub limit: i64,
}

/// Operations newest first, keyset-paginated.
pub async fn list(db: impl PgExecutor<'_>, filter: ListFilter) -> Result<Vec<OperationRow>> {
    Ok(sqlx::query_as(
        "SELECT * FROM operations
         WHERE ($1::uuid IS NULL OR endpoint_id = $1)
           AND ($2::uuid IS NULL OR pool_id = $2)
           AND ($3::text IS NULL OR status = $3)
           AND ($4::text IS NULL OR operation_type = $4)
           AND ($5::timestamptz IS NULL OR (created_at, operation_id) < ($5, $6))
         ORDER BY created_at DESC, operation_id DESC
         LIMIT $7",
    )
    .bind(filter.endpoint_id)
    .bind(filter.pool_id)
    .bind(filter.status.map(OperationStatus::as_str))
    .bind(filter.operation_type.map(OperationType::as_str))
    .bind(filter.after.map(|c| c.created_at))
    .bind(filter.after.map(|c| c.operation_id))
    .bind(filter.limit)
    .fetch_all(db)
    .await?)
}
