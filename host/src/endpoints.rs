//! Endpoints: registration, state reports, differences, moves, permissions and deletion.

use std::sync::Arc;
use std::time::Duration;

use pacsync_core::{AvailabilityReport, PackageState, StateRecorded, StateReport, TargetDiff};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::{Keys, Role};
use crate::classification::classify_and_store;
use crate::db;
use crate::db::endpoints::{Endpoint, HistoryEntry};
use crate::error::{Error, ErrorCode, Result};
use crate::policy::Policies;

/// `POST /api/endpoints/register` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    /// Endpoint name, unique within the pool: 1 to 128 characters, not all blank, without
    /// control characters.
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*$"
    )]
    pub name: String,
    /// The machine's hostname: 1 to 255 characters, not all blank, without control characters.
    #[schema(
        min_length = 1,
        max_length = 255,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*$"
    )]
    pub hostname: String,
    /// Token from `POST /api/pools/{pool_id}/enrollment-tokens`; decides the pool.
    pub enrollment_token: String,
}

/// `POST /api/endpoints/register` response.
#[derive(Debug, Serialize, ToSchema)]
pub struct Registration {
    /// The new endpoint.
    pub endpoint: Endpoint,
    /// The endpoint's bearer token; shown once.
    pub access_token: String,
}

/// `PUT /api/endpoints/{endpoint_id}/permissions` body: what an admin allows the endpoint;
/// absent fields stay as they are, and at least one must be present.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PermissionsRequest {
    /// May set the target of a pool whose `target_setters` is `designated`.
    #[serde(default)]
    #[schema(value_type = bool)]
    pub may_set_target: Option<bool>,
    /// Whether what the endpoint can obtain limits what the rest of its pool is planned to
    /// install.
    #[serde(default)]
    #[schema(value_type = bool)]
    pub constrains_availability: Option<bool>,
}

/// Upper bound on packages per report; real systems have a few thousand.
const MAX_PACKAGES: usize = 100_000;

/// Checks a human label (name, hostname, ...): 1 to `max` characters (as PostgreSQL's
/// `length()` counts them), no control characters.
pub(crate) fn validate_label(field: &str, value: &str, max: usize) -> Result<()> {
    if value.trim().is_empty() || value.chars().count() > max || value.chars().any(char::is_control)
    {
        return Err(Error::new(
            ErrorCode::ValidationFailed,
            format!("{field} must be 1 to {max} characters without control characters"),
        ));
    }
    Ok(())
}

/// Registers an endpoint into the pool its enrollment token names and issues its token.
pub async fn register(
    db: &PgPool,
    keys: &Keys,
    token_ttl: Duration,
    request: RegisterRequest,
) -> Result<Registration> {
    validate_label("name", &request.name, 128)?;
    validate_label("hostname", &request.hostname, 255)?;
    let mut tx = db.begin().await?;
    let pool_id = crate::enrollment::redeem(&mut tx, &request.enrollment_token).await?;
    // A pool being deleted concurrently must not gain an endpoint: wait for it, then re-check.
    db::pools::lock_shared(&mut *tx, pool_id).await?;
    if db::pools::get(&mut *tx, pool_id).await?.is_none() {
        return Err(Error::new(
            ErrorCode::InvalidEnrollmentToken,
            "the enrollment token's pool was deleted",
        ));
    }
    let endpoint =
        db::endpoints::insert(&mut tx, pool_id, &request.name, &request.hostname).await?;
    tx.commit().await?;
    let access_token = keys.issue(
        &endpoint.endpoint_id.to_string(),
        Role::Endpoint,
        Some(endpoint.token_generation),
        token_ttl,
    );
    Ok(Registration {
        endpoint,
        access_token,
    })
}

/// Validates a reported package list into a state, taking the list out of the report: a
/// maximum-size report is tens of megabytes, and a copy of it per concurrent report adds up.
fn parse_state(report: &mut StateReport) -> Result<PackageState> {
    validate_label("architecture", &report.architecture, 64)?;
    validate_label("pacman_version", &report.pacman_version, 64)?;
    if report.packages.len() > MAX_PACKAGES {
        return Err(Error::new(
            ErrorCode::InvalidPackageState,
            format!("at most {MAX_PACKAGES} packages per report"),
        ));
    }
    PackageState::new(std::mem::take(&mut report.packages))
        .map_err(|e| Error::new(ErrorCode::InvalidPackageState, e.to_string()))
}

/// A state report validated before any transaction starts.
pub struct ParsedReport {
    /// The package state.
    pub state: Arc<PackageState>,
    /// What the machine can obtain, in canonical form; `None` when not reported.
    pub available: Option<AvailabilityReport>,
}

/// Validates a whole report: the package list and, if present, what the machine can obtain.
pub fn parse_report(report: &mut StateReport) -> Result<ParsedReport> {
    Ok(ParsedReport {
        state: Arc::new(parse_state(report)?),
        available: report
            .available
            .take()
            .map(crate::availability::validate)
            .transpose()?,
    })
}

/// Records the endpoint's reported state and re-classifies it, in one transaction.
pub async fn report_state(
    db: &PgPool,
    policies: &Policies,
    endpoint_id: Uuid,
    mut report: StateReport,
) -> Result<StateRecorded> {
    let ParsedReport { state, available } = parse_report(&mut report)?;
    let mut tx = db.begin().await?;
    let state_id = db::states::store(&mut *tx, &state).await?;
    let endpoint = db::endpoints::record_state(
        &mut *tx,
        endpoint_id,
        &state_id,
        &report.architecture,
        &report.pacman_version,
    )
    .await?;
    if let Some(available) = &available {
        db::availability::record(&mut *tx, endpoint_id, available).await?;
    }
    let sync_status = classify_and_store(policies, &mut tx, &endpoint, Some(&state)).await?;
    tx.commit().await?;
    Ok(StateRecorded {
        state_id,
        sync_status,
    })
}

/// The endpoint's difference from its pool's target (exact, whatever the policy would skip).
pub async fn diff(db: &PgPool, endpoint_id: Uuid) -> Result<TargetDiff> {
    let endpoint = get(db, endpoint_id).await?;
    let pool = crate::pools::get(db, endpoint.pool_id).await?;
    let mut out = TargetDiff {
        endpoint_id,
        pool_id: pool.pool_id,
        pool_name: pool.name.clone(),
        sync_status: endpoint.sync_status,
        target_generation: pool.target_generation,
        install: Vec::new(),
        upgrade: Vec::new(),
        downgrade: Vec::new(),
        remove: Vec::new(),
        set_reason: Vec::new(),
    };
    if let (Some(current), Some(target)) = (&endpoint.current_state_id, &pool.target_state_id) {
        let mut conn = db.acquire().await?;
        let d = pacsync_core::diff(
            &*db::states::load_required(&mut *conn, current).await?,
            &*db::states::load_required(&mut *conn, target).await?,
        );
        out.install = d
            .install
            .iter()
            .map(|p| format!("{} {}", p.name, p.version))
            .collect();
        out.upgrade = d
            .upgrade
            .iter()
            .map(|(h, w)| format!("{} {} -> {}", h.name, h.version, w.version))
            .collect();
        out.downgrade = d
            .downgrade
            .iter()
            .map(|(h, w)| format!("{} {} -> {}", h.name, h.version, w.version))
            .collect();
        out.remove = d
            .remove
            .iter()
            .map(|p| format!("{} {}", p.name, p.version))
            .collect();
        out.set_reason = d
            .set_reason
            .iter()
            .map(|(h, w)| {
                let (from, to) = (h.reason.as_str(), w.reason.as_str());
                format!("{} {}: {from} -> {to}", h.name, h.version)
            })
            .collect();
    }
    Ok(out)
}

/// One live endpoint.
pub async fn get(db: &PgPool, endpoint_id: Uuid) -> Result<Endpoint> {
    db::endpoints::get(db, endpoint_id).await?.ok_or_else(|| {
        Error::new(
            ErrorCode::EndpointNotFound,
            format!("endpoint {endpoint_id} not found"),
        )
    })
}

/// Live endpoints, optionally of one pool.
pub async fn list(db: &PgPool, pool_id: Option<Uuid>) -> Result<Vec<Endpoint>> {
    if let Some(pool_id) = pool_id {
        crate::pools::get(db, pool_id).await?;
    }
    db::endpoints::list(db, pool_id).await
}

/// Moves an endpoint to another pool and classifies it against that pool's target. Its
/// `may_set_target` is withdrawn (an admin granted it for the pool it leaves);
/// `constrains_availability` stays.
pub async fn move_to_pool(
    db: &PgPool,
    policies: &Policies,
    endpoint_id: Uuid,
    pool_id: Uuid,
    actor: &str,
) -> Result<Endpoint> {
    let mut tx = db.begin().await?;
    let endpoint = db::endpoints::move_to_pool(&mut *tx, endpoint_id, pool_id, actor).await?;
    classify_and_store(policies, &mut tx, &endpoint, None).await?;
    let endpoint = db::endpoints::get(&mut *tx, endpoint_id)
        .await?
        .ok_or_else(|| Error::internal("moved endpoint vanished"))?;
    tx.commit().await?;
    Ok(endpoint)
}

/// Changes what an admin allows the endpoint (audited) and returns it.
pub async fn set_permissions(
    db: &PgPool,
    endpoint_id: Uuid,
    request: PermissionsRequest,
    actor: &str,
) -> Result<Endpoint> {
    let permissions = db::endpoints::Permissions {
        may_set_target: request.may_set_target,
        constrains_availability: request.constrains_availability,
    };
    if permissions.may_set_target.is_none() && permissions.constrains_availability.is_none() {
        return Err(Error::new(
            ErrorCode::ValidationFailed,
            "give may_set_target, constrains_availability or both",
        ));
    }
    let mut tx = db.begin().await?;
    let endpoint = db::endpoints::set_permissions(&mut tx, endpoint_id, permissions, actor)
        .await?
        .ok_or_else(|| {
            Error::new(
                ErrorCode::EndpointNotFound,
                format!("endpoint {endpoint_id} not found"),
            )
        })?;
    tx.commit().await?;
    Ok(endpoint)
}

/// Deletes an endpoint: revokes its tokens and ends its active operation; history is kept.
pub async fn delete(db: &PgPool, endpoint_id: Uuid, actor: &str) -> Result<()> {
    db::endpoints::delete(db, endpoint_id, actor).await
}

/// The endpoint's state history, newest first.
pub async fn history(db: &PgPool, endpoint_id: Uuid, limit: i64) -> Result<Vec<HistoryEntry>> {
    get(db, endpoint_id).await?;
    db::endpoints::history(db, endpoint_id, limit).await
}
