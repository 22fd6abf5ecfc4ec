//! What endpoints can obtain: recording their reports, the pool's repository analysis, and
//! keeping plans to packages the whole pool can obtain.
//!
//! The original design syncs only packages available everywhere in the pool. A target package
//! that some endpoint can neither keep (installed at the target version) nor obtain (its sync
//! repositories, its cache, or an archive covering the package's repository) is excluded: sync
//! plans skip it on every endpoint, with the reason. Endpoints that have not reported what they
//! can obtain are listed as unknown and do not constrain the pool; nor do endpoints whose last
//! report is older than `availability_max_age_days` (listed as stale): a machine switched off
//! for months must not hold the rest of the pool back.

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

/// An endpoint named in an analysis.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EndpointRef {
    /// Endpoint id.
    pub endpoint_id: Uuid,
    /// Endpoint name.
    pub name: String,
}

/// A target package every analysed endpoint has or can obtain.
#[derive(Debug, Serialize, ToSchema)]
pub struct CommonPackage {
    /// Package name.
    pub name: String,
    /// Target version.
    pub version: String,
}

/// A target package excluded from synchronization.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExcludedPackage {
    /// Package name.
    pub name: String,
    /// Target version.
    pub version: String,
    /// The sync repository it came from on the reference machine; absent for foreign packages.
    pub repository: Option<String>,
    /// Why it is excluded, for humans.
    pub reason: String,
    /// The endpoints that cannot obtain it.
    pub endpoints: Vec<EndpointRef>,
}

/// What one endpoint cannot obtain.
#[derive(Debug, Serialize, ToSchema)]
pub struct EndpointGaps {
    /// Endpoint id.
    pub endpoint_id: Uuid,
    /// Endpoint name.
    pub name: String,
    /// When its availability was last reported.
    pub reported_at: Option<DateTime<Utc>>,
    /// Target packages it lacks, with the versions it is offered instead.
    pub gaps: Vec<Gap>,
}

/// An endpoint whose availability report is too old to constrain the pool.
#[derive(Debug, Serialize, ToSchema)]
pub struct StaleEndpoint {
    /// Endpoint id.
    pub endpoint_id: Uuid,
    /// Endpoint name.
    pub name: String,
    /// When its availability was last reported.
    pub reported_at: Option<DateTime<Utc>>,
}

/// `GET /api/pools/{pool_id}/repository-analysis` response.
#[derive(Debug, Serialize, ToSchema)]
pub struct RepositoryAnalysis {
    /// The pool.
    pub pool_id: Uuid,
    /// Its name.
    pub pool_name: String,
    /// The target analysed; absent (and everything empty) before the first set-as-latest.
    pub target_state_id: Option<String>,
    /// Target generation analysed (0: no target).
    pub target_generation: i64,
    /// Endpoints whose reports were analysed.
    pub analysed: Vec<EndpointRef>,
    /// Endpoints that have not reported what they can obtain; they do not constrain the pool.
    pub unknown: Vec<EndpointRef>,
    /// Endpoints whose last report is older than `availability_max_age_days`; like unknown
    /// ones, they do not constrain the pool until they report again.
    pub stale: Vec<StaleEndpoint>,
    /// Target packages every analysed endpoint has or can obtain.
    pub common: Vec<CommonPackage>,
    /// Target packages that syncs skip, with reasons.
    pub excluded: Vec<ExcludedPackage>,
    /// Per endpoint, what it cannot obtain (endpoints without gaps are not listed).
    pub gaps: Vec<EndpointGaps>,
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
    fn split(&self) -> (Vec<(EndpointRef, Obtainability<'_>)>, Vec<EndpointRef>) {
        let mut known = Vec::new();
        let mut unknown = Vec::new();
        for e in &self.endpoints {
            let r = EndpointRef {
                endpoint_id: e.endpoint_id,
                name: e.name.clone(),
            };
            match e
                .availability_id
                .as_ref()
                .and_then(|id| self.reports.get(id))
            {
                Some(report) => {
                    let installed = e.current_state_id.as_ref().and_then(|s| self.states.get(s));
                    known.push((r, Obtainability::new(installed, report)));
                }
                None if self.stale.contains(&e.endpoint_id) => {}
                None => unknown.push(r),
            }
        }
        (known, unknown)
    }
}

/// Why a package is excluded, for admins: names (a few of) the endpoints that lack it.
fn exclusion_reason(package: &Package, lacking: &[EndpointRef]) -> String {
    const SHOWN: usize = 5;
    let mut names: Vec<&str> = lacking
        .iter()
        .take(SHOWN)
        .map(|e| e.name.as_str())
        .collect();
    names.sort_unstable();
    let more = match lacking.len().saturating_sub(SHOWN) {
        0 => String::new(),
        n => format!(" and {n} more"),
    };
    format!(
        "{}excluded for the pool: {} {} cannot be obtained on {}{more}",
        foreign_prefix(package),
        package.name,
        package.version,
        names.join(", ")
    )
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

/// The pool's repository analysis against its current target.
pub async fn analyse_pool(
    db: &PgPool,
    pool_id: Uuid,
    max_age: Option<Duration>,
) -> Result<RepositoryAnalysis> {
    let mut tx = db.begin().await?;
    let pool = db::pools::get(&mut *tx, pool_id)
        .await?
        .ok_or_else(|| Error::new(ErrorCode::PoolNotFound, format!("pool {pool_id} not found")))?;
    let mut out = RepositoryAnalysis {
        pool_id,
        pool_name: pool.name.clone(),
        target_state_id: pool.target_state_id.clone(),
        target_generation: pool.target_generation,
        analysed: Vec::new(),
        unknown: Vec::new(),
        stale: Vec::new(),
        common: Vec::new(),
        excluded: Vec::new(),
        gaps: Vec::new(),
    };
    let target = match &pool.target_state_id {
        Some(id) => db::states::load_required(&mut *tx, id).await?,
        None => Default::default(),
    };
    let loaded = Loaded::load(&mut tx, pool_id, &target, None, (max_age, None)).await?;
    tx.commit().await?;
    let (known, unknown) = loaded.split();
    let analysis = analyse(&target, &known, vercmp);
    let reported_at: HashMap<Uuid, Option<DateTime<Utc>>> = loaded
        .endpoints
        .iter()
        .map(|e| (e.endpoint_id, e.availability_reported_at))
        .collect();
    out.analysed = known.into_iter().map(|(e, _)| e).collect();
    out.unknown = unknown;
    out.stale = loaded
        .endpoints
        .iter()
        .filter(|e| loaded.stale.contains(&e.endpoint_id))
        .map(|e| StaleEndpoint {
            endpoint_id: e.endpoint_id,
            name: e.name.clone(),
            reported_at: e.availability_reported_at,
        })
        .collect();
    out.common = analysis
        .common
        .into_iter()
        .map(|p| CommonPackage {
            name: p.name,
            version: p.version,
        })
        .collect();
    out.excluded = analysis
        .excluded
        .into_iter()
        .map(|(p, lacking)| ExcludedPackage {
            reason: exclusion_reason(&p, &lacking),
            name: p.name,
            version: p.version,
            repository: p.repository,
            endpoints: lacking,
        })
        .collect();
    out.gaps = analysis
        .gaps
        .into_iter()
        .map(|(e, gaps)| EndpointGaps {
            reported_at: reported_at.get(&e.endpoint_id).copied().flatten(),
            endpoint_id: e.endpoint_id,
            name: e.name,
            gaps,
        })
        .collect();
    Ok(out)
}

/// What a plan for one endpoint may use.
#[derive(Debug, Default)]
pub struct PlanLimits {
    /// What the endpoint can obtain of the packages a plan might change; `None` when it has not
    /// reported (the plan is then limited only by the pool's exclusions).
    pub available: Option<Vec<Available>>,
    /// Packages excluded for the whole pool, with the reason.
    pub excluded: HashMap<String, String>,
}

impl PlanLimits {
    /// Applied after the policy, whatever the policy did: nothing is planned that is excluded
    /// for the pool or that the endpoint cannot obtain.
    pub fn enforce(&self, plan: Plan) -> Plan {
        let mut actions = Vec::new();
        let mut skipped = plan.skipped;
        for action in plan.actions {
            match self.excluded.get(&action.name) {
                Some(reason) if action.kind != ActionKind::Remove => skipped.push(Skipped {
                    name: action.name,
                    reason: reason.clone(),
                }),
                _ => actions.push(action),
            }
        }
        restrict_to_available(
            Plan::from_parts(actions, skipped),
            self.available.as_deref(),
            vercmp,
        )
    }
}

/// The packages of `target` a plan from `current` would install, upgrade or downgrade.
fn changing(current: &PackageState, target: &PackageState) -> Result<PackageState> {
    let packages: Vec<Package> = differences_by(current, target, vercmp)
        .into_iter()
        .filter(|a| a.kind != ActionKind::Remove)
        .filter_map(|a| target.get(&a.name).cloned())
        .collect();
    PackageState::new(packages).map_err(|e| Error::internal(format!("stored state: {e}")))
}

/// What `endpoint` can obtain of `wanted`, from its own report; `None` when it has not reported.
fn obtainable_by(
    known: &[(EndpointRef, Obtainability<'_>)],
    endpoint_id: Uuid,
    wanted: &PackageState,
) -> Option<Vec<Available>> {
    let (_, own) = known.iter().find(|(e, _)| e.endpoint_id == endpoint_id)?;
    Some(
        wanted
            .iter()
            .filter_map(|p| match own.lookup(p, vercmp) {
                Lookup::Obtainable(source) => Some(Available {
                    name: p.name.clone(),
                    version: p.version.clone(),
                    source,
                }),
                Lookup::Installed | Lookup::Gap(_) => None,
            })
            .collect(),
    )
}

/// Limits for a sync of `endpoint_id` from `current` to its pool's `target`: the pool's
/// exclusions among the packages that would change, and what the endpoint can obtain of them.
pub async fn sync_limits(
    tx: &mut PgConnection,
    pool: &Pool,
    endpoint_id: Uuid,
    (current, target): (&PackageState, &PackageState),
    max_age: Option<Duration>,
) -> Result<PlanLimits> {
    let wanted = changing(current, target)?;
    if wanted.is_empty() {
        return Ok(PlanLimits::default());
    }
    let freshness = (max_age, Some(endpoint_id));
    let loaded = Loaded::load(tx, pool.pool_id, &wanted, None, freshness).await?;
    let (known, _) = loaded.split();
    let analysis = analyse(&wanted, &known, vercmp);
    Ok(PlanLimits {
        available: obtainable_by(&known, endpoint_id, &wanted),
        excluded: analysis
            .excluded
            .into_iter()
            .map(|(p, lacking)| (p.name.clone(), plan_exclusion_reason(&p, lacking.len())))
            .collect(),
    })
}

/// Limits for a revert of `endpoint_id` to a recorded state: only what the endpoint itself can
/// obtain matters (its history is its own, not the pool's).
pub async fn revert_limits(
    tx: &mut PgConnection,
    pool_id: Uuid,
    endpoint_id: Uuid,
    (current, target): (&PackageState, &PackageState),
    max_age: Option<Duration>,
) -> Result<PlanLimits> {
    let wanted = changing(current, target)?;
    if wanted.is_empty() {
        return Ok(PlanLimits::default());
    }
    let freshness = (max_age, Some(endpoint_id));
    let loaded = Loaded::load(tx, pool_id, &wanted, Some(endpoint_id), freshness).await?;
    let (known, _) = loaded.split();
    Ok(PlanLimits {
        available: obtainable_by(&known, endpoint_id, &wanted),
        excluded: HashMap::new(),
    })
}
