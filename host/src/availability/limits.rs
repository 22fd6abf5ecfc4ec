//! What a plan for one endpoint may use: the pool's exclusions among the packages that would
//! change, and what the endpoint itself can obtain of them. The pool's exclusions come from
//! constraining endpoints only; the endpoint's own report limits its own plans whether it
//! constrains the pool or not.

use super::*;

/// What a plan for one endpoint may use.
#[derive(Debug, Default)]
pub struct PlanLimits {
    /// What the endpoint can obtain of the packages a plan might change; `None` when it has not
    /// reported (the plan is then limited only by the pool's exclusions).
    pub available: Option<Vec<Available>>,
    /// Packages excluded for the whole pool (by constraining endpoints), with the reason.
    pub excluded: HashMap<String, String>,
    /// Packages whose availability the host cannot know (foreign versions nothing reported):
    /// planned anyway, for the agent to find or to fail on, naming them.
    pub unknown: HashSet<String>,
}

impl PlanLimits {
    /// Applied after the policy, whatever the policy did: nothing is planned that is excluded
    /// for the pool or that the endpoint cannot obtain.
    pub fn enforce(&self, plan: Plan) -> Plan {
        let mut actions = Vec::new();
        let mut unknown = Vec::new();
        let mut skipped = plan.skipped;
        for action in plan.actions {
            if self.unknown.contains(&action.name) {
                unknown.push(action);
                continue;
            }
            match self.excluded.get(&action.name) {
                // Removals and reason changes obtain nothing, so no exclusion applies to them.
                Some(reason)
                    if !matches!(action.kind, ActionKind::Remove | ActionKind::SetReason) =>
                {
                    skipped.push(Skipped {
                        name: action.name,
                        reason: reason.clone(),
                    })
                }
                _ => actions.push(action),
            }
        }
        let restricted = restrict_to_available(
            Plan::from_parts(actions, skipped),
            self.available.as_deref(),
            vercmp,
        );
        if unknown.is_empty() {
            return restricted;
        }
        let mut actions = restricted.actions;
        actions.extend(unknown);
        actions.sort_by_key(|a| a.kind as u8);
        Plan::from_parts(actions, restricted.skipped)
    }
}

/// The packages of `target` a plan from `current` would install, upgrade or downgrade.
fn changing(current: &PackageState, target: &PackageState) -> Result<PackageState> {
    let packages: Vec<Package> = differences_by(current, target, vercmp)
        .into_iter()
        .filter(|a| !matches!(a.kind, ActionKind::Remove | ActionKind::SetReason))
        .filter_map(|a| target.get(&a.name).cloned())
        .collect();
    PackageState::new(packages).map_err(|e| Error::internal(format!("stored state: {e}")))
}

/// What `endpoint` can obtain of `wanted`, from its own report; `None` when it has not reported.
fn obtainable_by(
    known: &[(AnalysedEndpoint, Obtainability<'_>)],
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
    let analysis = analyse(&wanted, &known, constrains, vercmp);
    Ok(PlanLimits {
        available: obtainable_by(&known, endpoint_id, &wanted),
        excluded: analysis
            .excluded
            .into_iter()
            .map(|(p, lacking)| (p.name.clone(), plan_exclusion_reason(&p, lacking.len())))
            .collect(),
        unknown: HashSet::new(),
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
    let available = obtainable_by(&known, endpoint_id, &wanted);
    // A foreign version nothing reported may still be on the machine's disk somewhere the host
    // never hears of (a rollback copy made since, a file the archive gained): unknown, not
    // unobtainable. What sync repositories name is known from their listings.
    let unknown = match &available {
        Some(available) => wanted
            .iter()
            .filter(|p| p.repository.is_none())
            .filter(|p| !available.iter().any(|a| a.name == p.name))
            .map(|p| p.name.clone())
            .collect(),
        None => HashSet::new(),
    };
    Ok(PlanLimits {
        available,
        excluded: HashMap::new(),
        unknown,
    })
}
