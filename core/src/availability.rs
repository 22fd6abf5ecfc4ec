//! What endpoints can obtain, and which target packages a whole pool can therefore sync.
//!
//! An agent reports the versions its sync repositories and its cache offer, plus the
//! repositories its archive covers (the Arch Linux Archive keeps every version of the official
//! repositories but cannot be listed). The pool's repository analysis checks every target package
//! against every endpoint: a package that some endpoint can neither keep (already installed at
//! the target version) nor obtain is excluded from synchronization for the whole pool, unless
//! only endpoints that do not constrain the pool lack it (one machine's report, wrong or
//! hostile, must not hold the others back once an admin has said so): it is then only ignored.

use std::cmp::Ordering;
use std::collections::{BTreeSet, HashMap, HashSet};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::difference::ActionKind;
use crate::package::{Package, PackageError, PackageState, validate_name};
use crate::plan::{Plan, Skipped};
use crate::version::validate_version;

/// Where an obtainable package version comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// A configured sync repository offers it.
    SyncRepository,
    /// The endpoint's pacman cache holds it.
    Cache,
    /// The pool's archive holds it.
    Archive,
    /// The endpoint's rollback store holds a copy the agent kept before removing or replacing
    /// it, because no other source could give it back.
    Rollback,
}

crate::spelling::spelled!(Source {
    SyncRepository => "sync_repository",
    Cache => "cache",
    Archive => "archive",
    Rollback => "rollback",
});

impl Source {
    /// The agent's order of preference (lower first).
    pub fn rank(self) -> u8 {
        self as u8
    }
}

/// A package version an endpoint can obtain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Available {
    /// Package name.
    pub name: String,
    /// Exact version.
    pub version: String,
    /// Where it comes from.
    pub source: Source,
}

/// Moves every install, upgrade or downgrade whose exact target version the endpoint cannot
/// obtain from the plan to its skipped list, so nothing is planned blindly.
///
/// `available == None` means availability is unknown and the plan is kept as it is; an empty
/// list means nothing is obtainable.
pub fn restrict_to_available(
    plan: Plan,
    available: Option<&[Available]>,
    cmp: impl Fn(&str, &str) -> Ordering,
) -> Plan {
    let Some(available) = available else {
        return plan;
    };
    // Offers in name order (the host sends them so; anything else is sorted once): an action
    // then costs a binary search, not a scan of every offer, which in a component compares
    // strings byte by byte.
    let mut offers: Vec<&Available> = available.iter().collect();
    if !offers.is_sorted_by(|a, b| a.name <= b.name) {
        offers.sort_by(|a, b| a.name.cmp(&b.name));
    }
    let mut actions = Vec::new();
    let mut skipped = plan.skipped;
    for action in plan.actions {
        let obtainable = match (&action.kind, &action.to_version) {
            // Nothing to obtain: the package goes, or stays at its installed version.
            (ActionKind::Remove | ActionKind::SetReason, _) | (_, None) => true,
            (_, Some(version)) => {
                let first = offers.partition_point(|a| a.name < action.name);
                offers[first..]
                    .iter()
                    .take_while(|a| a.name == action.name)
                    .any(|a| cmp(&a.version, version) == Ordering::Equal)
            }
        };
        if obtainable {
            actions.push(action);
        } else {
            let version = action.to_version.as_deref().unwrap_or_default();
            skipped.push(Skipped {
                name: action.name,
                reason: format!(
                    "version {version} is not offered by the endpoint's sync repositories, cache or the pool archive"
                ),
            });
        }
    }
    Plan::from_parts(actions, skipped)
}

/// Upper bound on offered versions per report: the official repositories hold about 15,000.
pub const MAX_OFFERED: usize = 500_000;

/// What one endpoint reported it can obtain.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AvailabilityReport {
    /// Every version the sync repositories (`pacman -Sl`), the package cache, the archive (for
    /// foreign packages, checked one by one) and the rollback store offer.
    pub offered: Vec<Available>,
    /// Sync repositories whose every version the configured archive keeps (empty: no archive).
    #[serde(default)]
    pub archive_repositories: Vec<String>,
}

impl AvailabilityReport {
    /// Validates the report and puts it in canonical order (sorted, duplicates dropped), so equal
    /// reports from different machines share one content address.
    pub fn canonical(self) -> Result<Self, PackageError> {
        self.canonical_within(MAX_OFFERED)
    }

    /// [`AvailabilityReport::canonical`] with at most `limit` offers.
    pub fn canonical_within(mut self, limit: usize) -> Result<Self, PackageError> {
        if self.offered.len() > limit {
            return Err(PackageError::TooMany(limit));
        }
        for a in &self.offered {
            validate_name(&a.name)?;
            validate_version(&a.version).map_err(|source| PackageError::InvalidVersion {
                name: a.name.clone(),
                source,
            })?;
        }
        for repository in &self.archive_repositories {
            crate::package::validate_word("archive", "repository", Some(repository))?;
        }
        self.offered.sort_by(|a, b| {
            (&a.name, &a.version, a.source.as_str()).cmp(&(&b.name, &b.version, b.source.as_str()))
        });
        self.offered.dedup();
        self.archive_repositories.sort();
        self.archive_repositories.dedup();
        Ok(self)
    }

    /// Content address of a canonical report.
    pub fn availability_id(&self) -> String {
        let mut hasher = Sha256::new();
        for repository in &self.archive_repositories {
            hasher.update(b"archive\t");
            hasher.update(repository.as_bytes());
            hasher.update(b"\n");
        }
        for a in &self.offered {
            hasher.update(a.name.as_bytes());
            hasher.update(b"\t");
            hasher.update(a.version.as_bytes());
            hasher.update(b"\t");
            hasher.update(a.source.as_str().as_bytes());
            hasher.update(b"\n");
        }
        hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// How an endpoint comes by a target package, or why it cannot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// Already installed at the target version: nothing to obtain.
    Installed,
    /// Obtainable from this source.
    Obtainable(Source),
    /// Not obtainable; the versions of that name the endpoint is offered instead (may be empty).
    Gap(Vec<String>),
}

/// One endpoint's installed packages and offers, indexed for lookups by name.
pub struct Obtainability<'a> {
    installed: Option<&'a PackageState>,
    offered: HashMap<&'a str, Vec<&'a Available>>,
    archive: HashSet<&'a str>,
}

impl<'a> Obtainability<'a> {
    /// Indexes what an endpoint has and can obtain.
    pub fn new(installed: Option<&'a PackageState>, report: &'a AvailabilityReport) -> Self {
        let mut offered: HashMap<&str, Vec<&Available>> = HashMap::new();
        for a in &report.offered {
            offered.entry(a.name.as_str()).or_default().push(a);
        }
        Self {
            installed,
            offered,
            archive: report
                .archive_repositories
                .iter()
                .map(String::as_str)
                .collect(),
        }
    }

    /// How this endpoint would come by `package` at exactly its version. Sources are preferred
    /// in the agent's order: sync repository, cache, archive, rollback store.
    pub fn lookup(&self, package: &Package, cmp: impl Fn(&str, &str) -> Ordering) -> Lookup {
        let same = |v: &str| cmp(v, &package.version) == Ordering::Equal;
        if self
            .installed
            .and_then(|s| s.get(&package.name))
            .is_some_and(|p| same(&p.version))
        {
            return Lookup::Installed;
        }
        let offers = self.offered.get(package.name.as_str());
        let mut best: Option<Source> = None;
        for a in offers.into_iter().flatten() {
            if same(&a.version) && best.is_none_or(|b| a.source.rank() < b.rank()) {
                best = Some(a.source);
            }
        }
        if best.is_none()
            && package
                .repository
                .as_deref()
                .is_some_and(|r| self.archive.contains(r))
        {
            best = Some(Source::Archive);
        }
        match best {
            Some(source) => Lookup::Obtainable(source),
            None => Lookup::Gap(
                offers
                    .into_iter()
                    .flatten()
                    .map(|a| a.version.clone())
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .collect(),
            ),
        }
    }
}

/// A target package one endpoint cannot obtain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Gap {
    /// Package name.
    pub name: String,
    /// The target version it lacks.
    pub version: String,
    /// Whether no sync repository names the package (AUR or locally built).
    pub foreign: bool,
    /// Versions of the package the endpoint is offered instead; empty when it has none at all.
    pub offered: Vec<String>,
}

/// The pool-wide result: which target packages every endpoint can sync, which not.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Analysis<E> {
    /// Target packages every analysed endpoint has or can obtain.
    pub common: Vec<Package>,
    /// Target packages some constraining endpoint cannot obtain, with every endpoint that
    /// cannot (constraining or not).
    pub excluded: Vec<(Package, Vec<E>)>,
    /// Target packages only endpoints that do not constrain the pool cannot obtain, with those
    /// endpoints: the pool syncs them; only those endpoints' own plans skip them.
    pub ignored: Vec<(Package, Vec<E>)>,
    /// Per endpoint, what it cannot obtain (only endpoints with gaps).
    pub gaps: Vec<(E, Vec<Gap>)>,
}

/// Checks every target package against every endpoint; `constrains` tells whether an
/// endpoint's gaps exclude packages for the pool.
pub fn analyse<E: Clone>(
    target: &PackageState,
    endpoints: &[(E, Obtainability<'_>)],
    constrains: impl Fn(&E) -> bool,
    cmp: impl Fn(&str, &str) -> Ordering,
) -> Analysis<E> {
    let mut analysis = Analysis {
        common: Vec::new(),
        excluded: Vec::new(),
        ignored: Vec::new(),
        gaps: endpoints
            .iter()
            .map(|(e, _)| (e.clone(), Vec::new()))
            .collect(),
    };
    for package in target.iter() {
        let mut lacking = Vec::new();
        for (i, (endpoint, obtainability)) in endpoints.iter().enumerate() {
            if let Lookup::Gap(offered) = obtainability.lookup(package, &cmp) {
                lacking.push(endpoint.clone());
                analysis.gaps[i].1.push(Gap {
                    name: package.name.clone(),
                    version: package.version.clone(),
                    foreign: package.repository.is_none(),
                    offered,
                });
            }
        }
        if lacking.is_empty() {
            analysis.common.push(package.clone());
        } else if lacking.iter().any(&constrains) {
            analysis.excluded.push((package.clone(), lacking));
        } else {
            analysis.ignored.push((package.clone(), lacking));
        }
    }
    analysis.gaps.retain(|(_, gaps)| !gaps.is_empty());
    analysis
}

#[cfg(test)]
mod tests;
