//! Endpoints: registration, state reports, classification, moves and deletion.

use std::collections::HashMap;
use std::sync::Arc;

use pacsync_core::{AvailabilityReport, Package, PackageState, SyncStatus};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::PgConnection;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::Role;
use crate::db;
use crate::db::endpoints::{Endpoint, HistoryEntry};
use crate::db::enrollment::Rejection;
use crate::error::{Error, ErrorCode, Result};
use crate::server::AppState;

/// `POST /api/endpoints/register` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    /// Unique endpoint name.
    pub name: String,
    /// The machine's hostname.
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

/// `PUT /api/endpoints/{id}/state` body: the machine's full package list.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StateReport {
    /// Machine architecture (`x86_64`).
    pub architecture: String,
    /// `pacman --version`'s version.
    pub pacman_version: String,
    /// Every installed package.
    pub packages: Vec<Package>,
    /// What the machine can obtain, for the pool's repository analysis; absent from agents that
    /// do not report it (the previous report then stays in force).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available: Option<AvailabilityReport>,
}

/// `PUT /api/endpoints/{id}/state` response.
#[derive(Debug, Serialize, ToSchema)]
pub struct StateRecorded {
    /// Content address of the reported state.
    pub state_id: String,
    /// Classification against the pool target.
    pub sync_status: SyncStatus,
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

/// sha256 hex of an enrollment token; only hashes are stored.
pub fn hash_enrollment_token(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Registers an endpoint into the pool its enrollment token names and issues its token.
pub async fn register(app: &AppState, request: RegisterRequest) -> Result<Registration> {
    validate_label("name", &request.name, 128)?;
    validate_label("hostname", &request.hostname, 255)?;
    let mut tx = app.db.begin().await?;
    let pool_id =
        match db::enrollment::consume(&mut tx, &hash_enrollment_token(&request.enrollment_token))
            .await?
        {
            Ok(pool_id) => pool_id,
            Err(Rejection::Unknown) => {
                return Err(Error::new(
                    ErrorCode::InvalidEnrollmentToken,
                    "unknown enrollment token",
                ));
            }
            Err(Rejection::Expired) => {
                return Err(Error::new(
                    ErrorCode::EnrollmentTokenExpired,
                    "the enrollment token has expired",
                ));
            }
            Err(Rejection::Exhausted) => {
                return Err(Error::new(
                    ErrorCode::EnrollmentTokenExhausted,
                    "the enrollment token has no uses left",
                ));
            }
        };
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
    let access_token = app.keys.issue(
        &endpoint.endpoint_id.to_string(),
        Role::Endpoint,
        Some(endpoint.token_generation),
        app.config.endpoint_token_ttl,
    );
    Ok(Registration {
        endpoint,
        access_token,
    })
}

/// Validates a reported package list into a state.
fn parse_state(report: &StateReport) -> Result<PackageState> {
    validate_label("architecture", &report.architecture, 64)?;
    validate_label("pacman_version", &report.pacman_version, 64)?;
    if report.packages.len() > MAX_PACKAGES {
        return Err(Error::new(
            ErrorCode::InvalidPackageState,
            format!("at most {MAX_PACKAGES} packages per report"),
        ));
    }
    PackageState::new(report.packages.clone())
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
    app: &AppState,
    endpoint_id: Uuid,
    mut report: StateReport,
) -> Result<StateRecorded> {
    let ParsedReport { state, available } = parse_report(&mut report)?;
    let mut tx = app.db.begin().await?;
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
    let sync_status = classify_and_store(app, &mut tx, &endpoint, Some(&state)).await?;
    tx.commit().await?;
    Ok(StateRecorded {
        state_id,
        sync_status,
    })
}

/// Classifies one endpoint against its pool's target with the pool's policy and stores the result.
///
/// The caller holds the endpoint lock and a shared pool lock (every procedure that changes an
/// endpoint's state or pool takes them), so the target cannot move underneath.
pub async fn classify_and_store(
    app: &AppState,
    tx: &mut PgConnection,
    endpoint: &Endpoint,
    known_state: Option<&Arc<PackageState>>,
) -> Result<SyncStatus> {
    let pool = db::pools::get(&mut *tx, endpoint.pool_id)
        .await?
        .ok_or_else(|| {
            Error::new(
                ErrorCode::PoolNotFound,
                "the endpoint's pool no longer exists",
            )
        })?;
    let status = match (&endpoint.current_state_id, &pool.target_state_id) {
        (Some(current_id), Some(target_id)) => {
            let current = match known_state {
                Some(state) => Arc::clone(state),
                None => load_state(&mut *tx, current_id).await?,
            };
            let target = load_state(&mut *tx, target_id).await?;
            let (policy, _) = app.policies.for_pool(&mut *tx, &pool).await?;
            policy.classify(&current, &target)?
        }
        _ => SyncStatus::Unknown,
    };
    db::endpoints::set_sync_status(&mut *tx, endpoint.endpoint_id, status.as_str()).await?;
    Ok(status)
}

/// Re-classifies every endpoint of a pool after its target changed. The caller holds the pool
/// lock exclusively.
pub async fn reclassify_pool(app: &AppState, tx: &mut PgConnection, pool_id: Uuid) -> Result<()> {
    let pool = db::pools::get(&mut *tx, pool_id)
        .await?
        .ok_or_else(|| Error::new(ErrorCode::PoolNotFound, format!("pool {pool_id} not found")))?;
    let endpoints = db::endpoints::in_pool(&mut *tx, pool_id).await?;
    let Some(target_id) = pool.target_state_id.clone() else {
        return Ok(());
    };
    let mut wanted: Vec<String> = endpoints
        .iter()
        .filter_map(|e| e.current_state_id.clone())
        .collect();
    wanted.push(target_id.clone());
    wanted.sort();
    wanted.dedup();
    // Content addressing pays off here: endpoints sharing a state are loaded once.
    let states: HashMap<String, Arc<PackageState>> = db::states::load_many(&mut *tx, &wanted, None)
        .await?
        .into_iter()
        .map(|(id, state)| (id, Arc::new(state)))
        .collect();
    let target = states
        .get(&target_id)
        .ok_or_else(|| Error::internal(format!("target state {target_id} is missing")))?;
    let (policy, _) = app.policies.for_pool(&mut *tx, &pool).await?;
    for endpoint in endpoints {
        let status = match endpoint.current_state_id.and_then(|id| states.get(&id)) {
            Some(current) => policy.classify(current, target)?,
            None => SyncStatus::Unknown,
        };
        db::endpoints::set_sync_status(&mut *tx, endpoint.endpoint_id, status.as_str()).await?;
    }
    Ok(())
}

/// Loads a stored state that must exist.
pub async fn load_state(tx: &mut PgConnection, state_id: &str) -> Result<Arc<PackageState>> {
    db::states::load(&mut *tx, state_id)
        .await?
        .map(Arc::new)
        .ok_or_else(|| Error::internal(format!("state {state_id} is referenced but not stored")))
}

/// `GET /api/endpoints/{id}/diff` response: what a sync would change.
#[derive(Debug, Serialize, ToSchema)]
pub struct TargetDiff {
    /// The endpoint.
    pub endpoint_id: Uuid,
    /// Its pool.
    pub pool_id: Uuid,
    /// The pool's name.
    pub pool_name: String,
    /// Classification by the pool's policy.
    pub sync_status: String,
    /// Target generation compared against (0: no target).
    pub target_generation: i64,
    /// `name version` of packages to install.
    pub install: Vec<String>,
    /// `name from -> to` of packages to upgrade.
    pub upgrade: Vec<String>,
    /// `name from -> to` of packages to downgrade.
    pub downgrade: Vec<String>,
    /// `name version` of packages to remove.
    pub remove: Vec<String>,
}

/// The endpoint's difference from its pool's target (exact, whatever the policy would skip).
pub async fn diff(app: &AppState, endpoint_id: Uuid) -> Result<TargetDiff> {
    let endpoint = get(app, endpoint_id).await?;
    let pool = crate::pools::get(app, endpoint.pool_id).await?;
    let mut out = TargetDiff {
        endpoint_id,
        pool_id: pool.pool_id,
        pool_name: pool.name.clone(),
        sync_status: endpoint.sync_status.clone(),
        target_generation: pool.target_generation,
        install: Vec::new(),
        upgrade: Vec::new(),
        downgrade: Vec::new(),
        remove: Vec::new(),
    };
    if let (Some(current), Some(target)) = (&endpoint.current_state_id, &pool.target_state_id) {
        let mut conn = app.db.acquire().await?;
        let d = pacsync_core::diff(
            &*load_state(&mut conn, current).await?,
            &*load_state(&mut conn, target).await?,
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
    }
    Ok(out)
}

/// One live endpoint.
pub async fn get(app: &AppState, endpoint_id: Uuid) -> Result<Endpoint> {
    db::endpoints::get(&app.db, endpoint_id)
        .await?
        .ok_or_else(|| {
            Error::new(
                ErrorCode::EndpointNotFound,
                format!("endpoint {endpoint_id} not found"),
            )
        })
}

/// Live endpoints, optionally of one pool.
pub async fn list(app: &AppState, pool_id: Option<Uuid>) -> Result<Vec<Endpoint>> {
    if let Some(pool_id) = pool_id {
        crate::pools::get(app, pool_id).await?;
    }
    db::endpoints::list(&app.db, pool_id).await
}

/// Moves an endpoint to another pool and classifies it against that pool's target.
pub async fn move_to_pool(
    app: &AppState,
    endpoint_id: Uuid,
    pool_id: Uuid,
    actor: &str,
) -> Result<Endpoint> {
    let mut tx = app.db.begin().await?;
    let endpoint = db::endpoints::move_to_pool(&mut *tx, endpoint_id, pool_id, actor).await?;
    classify_and_store(app, &mut tx, &endpoint, None).await?;
    let endpoint = db::endpoints::get(&mut *tx, endpoint_id)
        .await?
        .ok_or_else(|| Error::internal("moved endpoint vanished"))?;
    tx.commit().await?;
    Ok(endpoint)
}

/// Deletes an endpoint: revokes its tokens and ends its active operation; history is kept.
pub async fn delete(app: &AppState, endpoint_id: Uuid, actor: &str) -> Result<()> {
    db::endpoints::delete(&app.db, endpoint_id, actor).await
}

/// The endpoint's state history, newest first.
pub async fn history(app: &AppState, endpoint_id: Uuid, limit: i64) -> Result<Vec<HistoryEntry>> {
    get(app, endpoint_id).await?;
    db::endpoints::history(&app.db, endpoint_id, limit).await
}
