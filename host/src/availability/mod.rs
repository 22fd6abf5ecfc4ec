//! What endpoints can obtain: recording their reports, the pool's repository analysis, and
//! keeping plans to packages the whole pool can obtain.
//!
//! A pool syncs only packages available everywhere in it. A target package
//! that some endpoint can neither keep (installed at the target version) nor obtain (its sync
//! repositories, its cache, or an archive covering the package's repository) is excluded: sync
//! plans skip it on every endpoint, with the reason. Endpoints that have not reported what they
//! can obtain are listed as unknown and do not constrain the pool; nor do endpoints whose last
//! report is older than `availability_max_age_days` (listed as stale): a machine switched off
//! for months must not hold the rest of the pool back.
//!
//! Any endpoint's report can exclude packages for everyone, so one wrong or hostile report
//! ("I can obtain nothing") could freeze a pool. The analysis therefore names, per excluded
//! package, the endpoints that lack it and ranks endpoints by how much they exclude; an admin who
//! distrusts one sets its `constrains_availability` to false
//! (`PUT /api/endpoints/{id}/permissions`). Its gaps are then still analysed and shown, marked
//! as ignored, but exclude nothing for the pool: only its own plans (syncs and reverts) are kept
//! to what it reported it can obtain.
//!
//! - [`analysis`]: the repository analysis admins read;
//! - [`limits`]: what a plan for one endpoint may use.

mod analysis;
mod limits;

pub use analysis::{
    AnalysedEndpoint, CommonPackage, EndpointGaps, EndpointRef, ExcludedPackage, Excluder,
    RepositoryAnalysis, StaleEndpoint, analyse_pool,
};
pub use limits::{PlanLimits, revert_limits, sync_limits};

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use pacsync_core::{
    ActionKind, AvailabilityReport, Available, Gap, Lookup, Obtainability, Package, PackageState,
    Plan, Skipped, analyse, differences_by, restrict_to_available, vercmp,
};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::db;
use crate::db::endpoints::PoolEndpoint;
use crate::db::pools::Pool;
use crate::error::{Error, ErrorCode, Result};

/// Validates an agent's availability report into canonical form. Done before any transaction
/// starts: a large report must not be sorted while the endpoint and its pool are locked.
pub fn validate(report: AvailabilityReport) -> Result<AvailabilityReport> {
    report
        .canonical()
        .map_err(|e| Error::new(ErrorCode::InvalidAvailability, e.to_string()))
}

/// Endpoints of a pool with their reports loaded, restricted to the packages of `target`.
struct Loaded {
    endpoints: Vec<PoolEndpoint>,
    /// Endpoints whose report is too old to use (their `availability_id` is cleared).
    stale: HashSet<Uuid>,
    states: HashMap<String, PackageState>,
    reports: HashMap<String, AvailabilityReport>,
}

impl Loaded {
    /// Loads the pool's endpoints, or only `only` of them, ignoring reports older than
    /// `max_age` (`None`: reports never go stale) except that of `own`, the endpoint being
    /// planned for: what it can obtain itself is better known from an old report than not at all.
    async fn load(
        tx: &mut PgConnection,
        pool_id: Uuid,
        target: &PackageState,
        only: Option<Uuid>,
        (max_age, own): (Option<Duration>, Option<Uuid>),
    ) -> Result<Self> {
        let mut endpoints = db::endpoints::in_pool(&mut *tx, pool_id).await?;
        if let Some(only) = only {
            endpoints.retain(|e| e.endpoint_id == only);
        }
        let cutoff = max_age
            .and_then(|age| chrono::Duration::from_std(age).ok())
            .and_then(|age| Utc::now().checked_sub_signed(age));
        let mut stale = HashSet::new();
        for e in &mut endpoints {
            if let (Some(cutoff), Some(at)) = (cutoff, e.availability_reported_at)
                && at < cutoff
                && own != Some(e.endpoint_id)
                && e.availability_id.take().is_some()
            {
                stale.insert(e.endpoint_id);
            }
        }
        let ids = |f: fn(&PoolEndpoint) -> Option<&String>| {
            let mut ids: Vec<String> = endpoints.iter().filter_map(f).cloned().collect();
            ids.sort();
            ids.dedup();
            ids
        };
        let state_ids = ids(|e| {
            e.current_state_id
                .as_ref()
                .filter(|_| e.availability_id.is_some())
        });
        let availability_ids = ids(|e| e.availability_id.as_ref());
        let names: Vec<String> = target.iter().map(|p| p.name.clone()).collect();
        // Only the target's packages matter: whole states of every endpoint would be far more.
        let states = db::states::load_many(&mut *tx, &state_ids, Some(&names)).await?;
        let reports = db::availability::load_many(&mut *tx, &availability_ids, &names).await?;
        Ok(Self {
            endpoints,
            stale,
            states,
            reports,
        })
    }

    /// The endpoints that reported (recently enough), indexed for lookups; the others, except
    /// the stale ones.
    fn split(&self) -> (Vec<(AnalysedEndpoint, Obtainability<'_>)>, Vec<EndpointRef>) {
        let mut known = Vec::new();
        let mut unknown = Vec::new();
        for e in &self.endpoints {
            match e
                .availability_id
                .as_ref()
                .and_then(|id| self.reports.get(id))
            {
                Some(report) => {
                    let installed = e.current_state_id.as_ref().and_then(|s| self.states.get(s));
                    let analysed = AnalysedEndpoint {
                        endpoint_id: e.endpoint_id,
                        name: e.name.clone(),
                        constrains_availability: e.constrains_availability,
                    };
                    known.push((analysed, Obtainability::new(installed, report)));
                }
                None if self.stale.contains(&e.endpoint_id) => {}
                None => unknown.push(EndpointRef {
                    endpoint_id: e.endpoint_id,
                    name: e.name.clone(),
                }),
            }
        }
        (known, unknown)
    }
}

/// Whether an analysed endpoint's gaps exclude packages for the pool.
fn constrains(e: &AnalysedEndpoint) -> bool {
    e.constrains_availability
}

/// Why a package is excluded, for admins: names (a few of) the constraining endpoints that lack
/// it, then those that lack it too but do not constrain the pool.
fn exclusion_reason(package: &Package, lacking: &[AnalysedEndpoint]) -> String {
    let (constraining, ignored): (Vec<_>, Vec<_>) = lacking.iter().partition(|e| constrains(e));
    let also = match ignored.len() {
        0 => String::new(),
        _ => format!(
            " (and on {}, {})",
            few_names(&ignored),
            not_constraining(ignored.len())
        ),
    };
    format!(
        "{}excluded for the pool: {} {} cannot be obtained on {}{also}",
        foreign_prefix(package),
        package.name,
        package.version,
        few_names(&constraining),
    )
}

/// Why a package only endpoints that do not constrain the pool lack is synced anyway.
fn ignored_reason(package: &Package, lacking: &[AnalysedEndpoint]) -> String {
    let lacking: Vec<&AnalysedEndpoint> = lacking.iter().collect();
    format!(
        "{}not excluded: {} {} cannot be obtained only on {}, {}: the pool syncs it",
        foreign_prefix(package),
        package.name,
        package.version,
        few_names(&lacking),
        not_constraining(lacking.len()),
    )
}

fn not_constraining(count: usize) -> &'static str {
    if count == 1 {
        "which does not constrain the pool"
    } else {
        "which do not constrain the pool"
    }
}

/// The names of (the first few of) `endpoints`, for a reason.
fn few_names(endpoints: &[&AnalysedEndpoint]) -> String {
    const SHOWN: usize = 5;
    let mut names: Vec<&str> = endpoints
        .iter()
        .take(SHOWN)
        .map(|e| e.name.as_str())
        .collect();
    names.sort_unstable();
    let more = match endpoints.len().saturating_sub(SHOWN) {
        0 => String::new(),
        n => format!(" and {n} more"),
    };
    format!("{}{more}", names.join(", "))
}

/// Why a package is skipped in a plan. Plans are visible to the endpoint's own token, which must
/// not learn the names of the pool's other machines: it gets a count.
fn plan_exclusion_reason(package: &Package, lacking: usize) -> String {
    let endpoints = if lacking == 1 {
        "endpoint"
    } else {
        "endpoints"
    };
    format!(
        "{}excluded for the pool: {} {} cannot be obtained on {lacking} {endpoints} of the pool (see its repository analysis)",
        foreign_prefix(package),
        package.name,
        package.version,
    )
}

fn foreign_prefix(package: &Package) -> &'static str {
    if package.repository.is_none() {
        "foreign package (no sync repository has it); "
    } else {
        ""
    }
}
