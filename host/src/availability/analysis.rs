//! The pool's repository analysis: which target packages every endpoint has or can obtain,
//! which are excluded and why (naming the endpoints that lack them), which gaps are ignored
//! because their endpoints do not constrain the pool, what each endpoint lacks, and who lacks
//! the most.

use super::*;

/// An endpoint named in an analysis.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EndpointRef {
    /// Endpoint id.
    pub endpoint_id: Uuid,
    /// Endpoint name.
    pub name: String,
}

/// An endpoint whose report was analysed.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AnalysedEndpoint {
    /// Endpoint id.
    pub endpoint_id: Uuid,
    /// Endpoint name.
    pub name: String,
    /// Whether its gaps exclude packages for the pool; when false they are shown but ignored,
    /// and limit only its own plans.
    pub constrains_availability: bool,
}

/// A target package every analysed endpoint has or can obtain.
#[derive(Debug, Serialize, ToSchema)]
pub struct CommonPackage {
    /// Package name.
    pub name: String,
    /// Target version.
    pub version: String,
}

/// A target package some analysed endpoints cannot obtain.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExcludedPackage {
    /// Package name.
    pub name: String,
    /// Target version.
    pub version: String,
    /// The sync repository it came from on the reference machine; absent for foreign packages.
    pub repository: Option<String>,
    /// Why it is excluded (or not), for humans.
    pub reason: String,
    /// The endpoints that cannot obtain it, each marked with whether it constrains the pool.
    pub endpoints: Vec<AnalysedEndpoint>,
}

/// An endpoint that cannot obtain some target packages, in the pool-level ranking.
#[derive(Debug, Serialize, ToSchema)]
pub struct Excluder {
    /// Endpoint id.
    pub endpoint_id: Uuid,
    /// Endpoint name.
    pub name: String,
    /// How many target packages it cannot obtain: each is excluded for the pool if it
    /// constrains availability.
    pub excluded_count: usize,
    /// Whether its gaps exclude packages for the pool.
    pub constrains_availability: bool,
}

/// What one endpoint cannot obtain.
#[derive(Debug, Serialize, ToSchema)]
pub struct EndpointGaps {
    /// Endpoint id.
    pub endpoint_id: Uuid,
    /// Endpoint name.
    pub name: String,
    /// Whether these gaps exclude packages for the pool.
    pub constrains_availability: bool,
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
    pub analysed: Vec<AnalysedEndpoint>,
    /// Endpoints that have not reported what they can obtain; they do not constrain the pool.
    pub unknown: Vec<EndpointRef>,
    /// Endpoints whose last report is older than `availability_max_age_days`; like unknown
    /// ones, they do not constrain the pool until they report again.
    pub stale: Vec<StaleEndpoint>,
    /// Target packages every analysed endpoint has or can obtain.
    pub common: Vec<CommonPackage>,
    /// Target packages that syncs skip because a constraining endpoint cannot obtain them, with
    /// reasons and every endpoint that lacks them.
    pub excluded: Vec<ExcludedPackage>,
    /// Target packages only endpoints that do not constrain the pool cannot obtain: the pool
    /// syncs them, those endpoints' own plans skip them.
    pub ignored: Vec<ExcludedPackage>,
    /// Endpoints that cannot obtain some target packages, those lacking the most first: who
    /// holds the pool back (or would, for those that do not constrain it).
    pub excluders: Vec<Excluder>,
    /// Per endpoint, what it cannot obtain (endpoints without gaps are not listed).
    pub gaps: Vec<EndpointGaps>,
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
        ignored: Vec::new(),
        excluders: Vec::new(),
        gaps: Vec::new(),
    };
    let target = match &pool.target_state_id {
        Some(id) => db::states::load_required(&mut *tx, id).await?,
        None => Default::default(),
    };
    let loaded = Loaded::load(&mut tx, pool_id, &target, None, (max_age, None)).await?;
    tx.commit().await?;
    let (known, unknown) = loaded.split();
    let analysis = analyse(&target, &known, constrains, vercmp);
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
    out.excluded = listed(analysis.excluded, exclusion_reason);
    out.ignored = listed(analysis.ignored, ignored_reason);
    out.excluders = excluders(&analysis.gaps);
    out.gaps = analysis
        .gaps
        .into_iter()
        .map(|(e, gaps)| EndpointGaps {
            reported_at: reported_at.get(&e.endpoint_id).copied().flatten(),
            endpoint_id: e.endpoint_id,
            name: e.name,
            constrains_availability: e.constrains_availability,
            gaps,
        })
        .collect();
    Ok(out)
}

/// Packages with the endpoints that lack them, as the analysis lists them.
fn listed(
    packages: Vec<(Package, Vec<AnalysedEndpoint>)>,
    reason: fn(&Package, &[AnalysedEndpoint]) -> String,
) -> Vec<ExcludedPackage> {
    packages
        .into_iter()
        .map(|(p, lacking)| ExcludedPackage {
            reason: reason(&p, &lacking),
            name: p.name,
            version: p.version,
            repository: p.repository,
            endpoints: lacking,
        })
        .collect()
}

/// The endpoints with gaps, most gaps first (then by name).
fn excluders(gaps: &[(AnalysedEndpoint, Vec<Gap>)]) -> Vec<Excluder> {
    let mut ranked: Vec<Excluder> = gaps
        .iter()
        .map(|(e, gaps)| Excluder {
            endpoint_id: e.endpoint_id,
            name: e.name.clone(),
            excluded_count: gaps.len(),
            constrains_availability: e.constrains_availability,
        })
        .collect();
    ranked.sort_by(|a, b| {
        (b.excluded_count, &a.name, a.endpoint_id).cmp(&(a.excluded_count, &b.name, b.endpoint_id))
    });
    ranked
}
