//! The agent's side of an operation after it started: progress heartbeats, completion,
//! failure, and the acknowledgement of a cancel request; and cancellation by its owner.
//!
//! Bodies are validated before any transaction starts, so a malformed report is a 422 and
//! never a half-written row. A final report stores the machine's state (and what it can
//! obtain) in the same transaction as the transition and re-classifies the endpoint, so its
//! sync status never lags behind the state it reported.

use std::sync::Arc;

use pacsync_core::{
    CancelAck, CompleteReport, FailReport, Operation, PackageState, ProgressReport,
};
use sqlx::PgConnection;
use uuid::Uuid;

use super::{Access, Lifecycle, authorize, transitioned};
use crate::auth::Principal;
use crate::classification::classify_and_store;
use crate::db;
use crate::endpoints::{ParsedReport, parse_report};
use crate::error::{Error, ErrorCode, Result};
use crate::policy::Policies;

/// Progress heartbeat from the agent; the response tells it whether a cancel was requested.
pub async fn progress(
    lc: &Lifecycle,
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
    authorize(&lc.db, principal, operation_id, Access::Agent).await?;
    let row = db::operations::progress(
        &lc.db,
        operation_id,
        report.percentage,
        &report.stage,
        report.current_action.as_deref(),
        lc.lease_seconds(),
    )
    .await?;
    Ok(row.into())
}

/// The agent finished: record the state it reached (and what the machine can obtain now) and
/// re-classify the endpoint.
pub async fn complete(
    lc: &Lifecycle,
    principal: &Principal,
    operation_id: Uuid,
    mut report: CompleteReport,
) -> Result<Operation> {
    authorize(&lc.db, principal, operation_id, Access::Agent).await?;
    let parsed = parse_report(&mut report.state)?;
    let mut tx = lc.db.begin().await?;
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
    finish_report(&lc.policies, &mut tx, row.endpoint_id, &parsed).await?;
    tx.commit().await?;
    Ok(transitioned(row))
}

/// After a final transition recorded the agent's state: store what the machine can obtain and
/// re-classify the endpoint.
async fn finish_report(
    policies: &Policies,
    tx: &mut PgConnection,
    endpoint_id: Uuid,
    parsed: &ParsedReport,
) -> Result<()> {
    if let Some(available) = &parsed.available {
        db::availability::record(&mut *tx, endpoint_id, available).await?;
    }
    reclassify_endpoint(policies, tx, endpoint_id, &parsed.state).await
}

async fn reclassify_endpoint(
    policies: &Policies,
    tx: &mut PgConnection,
    endpoint_id: Uuid,
    state: &Arc<PackageState>,
) -> Result<()> {
    let endpoint = db::endpoints::get(&mut *tx, endpoint_id)
        .await?
        .ok_or_else(|| Error::internal("endpoint of a live operation vanished"))?;
    classify_and_store(policies, tx, &endpoint, Some(state)).await?;
    Ok(())
}

/// The agent failed the operation (pacman's message in `message`).
pub async fn fail(
    lc: &Lifecycle,
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
    authorize(&lc.db, principal, operation_id, Access::Agent).await?;
    let row = db::operations::fail(
        &lc.db,
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
    lc: &Lifecycle,
    principal: &Principal,
    operation_id: Uuid,
) -> Result<Operation> {
    authorize(&lc.db, principal, operation_id, Access::Owner).await?;
    Ok(transitioned(
        db::operations::cancel(&lc.db, operation_id, &principal.actor()).await?,
    ))
}

/// The agent stopped at a safe point after a cancel request.
pub async fn acknowledge_cancel(
    lc: &Lifecycle,
    principal: &Principal,
    operation_id: Uuid,
    mut ack: CancelAck,
) -> Result<Operation> {
    authorize(&lc.db, principal, operation_id, Access::Agent).await?;
    let parsed = ack.state.as_mut().map(parse_report).transpose()?;
    let mut tx = lc.db.begin().await?;
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
        finish_report(&lc.policies, &mut tx, row.endpoint_id, parsed).await?;
    }
    tx.commit().await?;
    Ok(transitioned(row))
}
