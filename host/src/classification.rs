//! Classification: where each endpoint stands relative to its pool's target, by the pool's
//! policy, stored on the endpoint (and announced as `sync_status_changed` when it changes).
//!
//! Callers hold the locks that keep the inputs still: the endpoint lock and a shared pool lock
//! for one endpoint, the pool lock exclusively for a whole pool. A policy that faults fails the
//! caller's transaction, so no endpoint is ever left classified against a half-applied change.

use std::collections::HashMap;
use std::sync::Arc;

use pacsync_core::{PackageState, SyncStatus};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::db;
use crate::db::endpoints::Endpoint;
use crate::error::{Error, ErrorCode, Result};
use crate::policy::Policies;

/// Classifies one endpoint against its pool's target with the pool's policy and stores the result.
///
/// The caller holds the endpoint lock and a shared pool lock (every procedure that changes an
/// endpoint's state or pool takes them), so the target cannot move underneath.
pub async fn classify_and_store(
    policies: &Policies,
    tx: &mut PgConnection,
    endpoint: &Endpoint,
    known_state: Option<&Arc<PackageState>>,
) -> Result<SyncStatus> {
    let pool = crate::pools::of_endpoint(&mut *tx, endpoint.pool_id).await?;
    let status = match (&endpoint.current_state_id, &pool.target_state_id) {
        (Some(current_id), Some(target_id)) => {
            let current = match known_state {
                Some(state) => Arc::clone(state),
                None => db::states::load_required(&mut *tx, current_id).await?,
            };
            let target = db::states::load_required(&mut *tx, target_id).await?;
            let (policy, _) = policies.for_pool(&mut *tx, &pool).await?;
            policy.classify(&current, &target)?
        }
        _ => SyncStatus::Unknown,
    };
    db::endpoints::set_sync_status(&mut *tx, endpoint.endpoint_id, status).await?;
    Ok(status)
}

/// Re-classifies every endpoint of a pool after its target changed. The caller holds the pool
/// lock exclusively.
pub async fn reclassify_pool(
    policies: &Policies,
    tx: &mut PgConnection,
    pool_id: Uuid,
) -> Result<()> {
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
    let (policy, _) = policies.for_pool(&mut *tx, &pool).await?;
    for endpoint in endpoints {
        let status = match endpoint.current_state_id.and_then(|id| states.get(&id)) {
            Some(current) => policy.classify(current, target)?,
            None => SyncStatus::Unknown,
        };
        db::endpoints::set_sync_status(&mut *tx, endpoint.endpoint_id, status).await?;
    }
    Ok(())
}
