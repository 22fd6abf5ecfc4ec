//! Offers, gaps, the pool analysis and plans restricted to what an endpoint can obtain.

use super::*;
use crate::package::InstallReason;
use crate::version::vercmp;

fn pkg(name: &str, version: &str, repository: Option<&str>) -> Package {
    Package {
        name: name.into(),
        version: version.into(),
        repository: repository.map(Into::into),
        architecture: None,
        reason: InstallReason::Explicit,
    }
}

fn offer(name: &str, version: &str, source: Source) -> Available {
    Available {
        name: name.into(),
        version: version.into(),
        source,
    }
}

fn state(pkgs: &[(&str, &str)]) -> PackageState {
    PackageState::new(pkgs.iter().map(|(n, v)| pkg(n, v, None)).collect()).unwrap()
}

#[test]
fn offers_in_any_order_and_several_per_package_are_found() {
    let plan = crate::plan::mirror_plan(
        &state(&[("a", "1-1"), ("c", "1-1")]),
        &state(&[("a", "2-1"), ("b", "1-1"), ("c", "1:1-1")]),
    );
    let offer = |name: &str, version: &str, source| Available {
        name: name.into(),
        version: version.into(),
        source,
    };
    let available = [
        offer("c", "1-1", Source::Cache),
        offer("a", "3-1", Source::SyncRepository),
        offer("c", "1:1-1", Source::Archive),
        offer("a", "2-1", Source::Cache),
        offer("b", "0.9-1", Source::SyncRepository),
    ];
    let restricted = restrict_to_available(plan, Some(&available), vercmp);
    let planned: Vec<_> = restricted.actions.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(planned, ["a", "c"]);
    let skipped: Vec<_> = restricted.skipped.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(skipped, ["b"]);
}

#[test]
fn unobtainable_versions_are_skipped_not_planned() {
    let plan = crate::plan::mirror_plan(
        &state(&[("a", "1-1"), ("gone", "1-1")]),
        &state(&[("a", "2-1"), ("b", "1-1")]),
    );
    let available = [Available {
        name: "a".into(),
        version: "2-1".into(),
        source: Source::Archive,
    }];
    let restricted = restrict_to_available(plan.clone(), Some(&available), vercmp);
    let planned: Vec<_> = restricted.actions.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(planned, ["a", "gone"]);
    assert_eq!(restricted.skipped.len(), 1);
    assert_eq!(restricted.skipped[0].name, "b");
    assert!(restricted.summary.contains("1 skipped"));
    assert_eq!(restrict_to_available(plan.clone(), None, vercmp), plan);
}

#[test]
fn lookup_prefers_installed_then_sync_then_cache_then_archive() {
    let installed = PackageState::new(vec![pkg("kept", "1-1", Some("core"))]).unwrap();
    let report = AvailabilityReport {
        offered: vec![
            offer("both", "2-1", Source::Cache),
            offer("both", "2-1", Source::SyncRepository),
            offer("cached", "1:3-1", Source::Cache),
            offer("old", "1-1", Source::SyncRepository),
            offer("old", "0.9-1", Source::Cache),
        ],
        archive_repositories: vec!["core".into()],
    };
    let o = Obtainability::new(Some(&installed), &report);
    let l = |p: &Package| o.lookup(p, vercmp);
    assert_eq!(l(&pkg("kept", "1-1", Some("core"))), Lookup::Installed);
    assert_eq!(
        l(&pkg("both", "2-1", Some("extra"))),
        Lookup::Obtainable(Source::SyncRepository)
    );
    // Versions compare as pacman does: an explicit `1:` epoch matches itself only.
    assert_eq!(
        l(&pkg("cached", "1:3-1", None)),
        Lookup::Obtainable(Source::Cache)
    );
    assert_eq!(
        l(&pkg("old", "2-1", Some("core"))),
        Lookup::Obtainable(Source::Archive)
    );
    assert_eq!(
        l(&pkg("old", "2-1", Some("extra"))),
        Lookup::Gap(vec!["0.9-1".into(), "1-1".into()])
    );
    assert_eq!(l(&pkg("aur-thing", "1-1", None)), Lookup::Gap(vec![]));
}

#[test]
fn a_package_one_endpoint_cannot_obtain_is_excluded_for_the_pool() {
    let target = PackageState::new(vec![
        pkg("common", "1-1", Some("core")),
        pkg("newer", "2-1", Some("extra")),
        pkg("yay", "12-1", None),
    ])
    .unwrap();
    // `a` set the target: it has everything installed.
    let a_state = target.clone();
    let a_report = AvailabilityReport::default();
    let b_report = AvailabilityReport {
        offered: vec![
            offer("common", "1-1", Source::SyncRepository),
            offer("newer", "1-1", Source::SyncRepository),
        ],
        archive_repositories: vec![],
    };
    let endpoints = [
        ("a", Obtainability::new(Some(&a_state), &a_report)),
        ("b", Obtainability::new(None, &b_report)),
    ];
    let analysis = analyse(&target, &endpoints, |_| true, vercmp);
    let names = |ps: &[Package]| ps.iter().map(|p| p.name.clone()).collect::<Vec<_>>();
    assert_eq!(names(&analysis.common), ["common"]);
    let excluded: Vec<_> = analysis
        .excluded
        .iter()
        .map(|(p, e)| (p.name.as_str(), e.clone()))
        .collect();
    assert_eq!(excluded, [("newer", vec!["b"]), ("yay", vec!["b"])]);
    assert!(analysis.ignored.is_empty());
    assert_eq!(analysis.gaps.len(), 1);
    let (endpoint, gaps) = &analysis.gaps[0];
    assert_eq!(*endpoint, "b");
    assert_eq!(gaps[0].offered, ["1-1"]);
    assert!(!gaps[0].foreign);
    assert!(gaps[1].foreign && gaps[1].offered.is_empty());
}

#[test]
fn gaps_of_endpoints_that_do_not_constrain_the_pool_are_only_ignored() {
    let target = PackageState::new(vec![
        pkg("shared", "1-1", Some("core")),
        pkg("rare", "2-1", Some("extra")),
    ])
    .unwrap();
    let everything = AvailabilityReport {
        offered: vec![
            offer("shared", "1-1", Source::SyncRepository),
            offer("rare", "2-1", Source::SyncRepository),
        ],
        archive_repositories: vec![],
    };
    let only_shared = AvailabilityReport {
        offered: vec![offer("shared", "1-1", Source::Cache)],
        archive_repositories: vec![],
    };
    let nothing = AvailabilityReport::default();
    let endpoints = [
        ("full", Obtainability::new(None, &everything)),
        ("partial", Obtainability::new(None, &only_shared)),
        ("rogue", Obtainability::new(None, &nothing)),
    ];
    let flagged = |e: &&str| *e != "rogue";
    let analysis = analyse(&target, &endpoints, flagged, vercmp);
    let listed = |list: &[(Package, Vec<&'static str>)]| {
        list.iter()
            .map(|(p, e)| (p.name.clone(), e.clone()))
            .collect::<Vec<_>>()
    };
    // `rare`: a constraining endpoint lacks it too, so it stays excluded, naming both.
    assert_eq!(
        listed(&analysis.excluded),
        [("rare".to_owned(), vec!["partial", "rogue"])]
    );
    assert_eq!(
        listed(&analysis.ignored),
        [("shared".to_owned(), vec!["rogue"])]
    );
    assert!(analysis.common.is_empty());
    // Gaps are everyone's, constraining or not.
    let with_gaps: Vec<_> = analysis.gaps.iter().map(|(e, g)| (*e, g.len())).collect();
    assert_eq!(with_gaps, [("partial", 1), ("rogue", 2)]);
}

#[test]
fn canonical_reports_share_an_address_and_bad_ones_are_refused() {
    let a = AvailabilityReport {
        offered: vec![
            offer("b", "1-1", Source::Cache),
            offer("a", "1-1", Source::SyncRepository),
            offer("a", "1-1", Source::SyncRepository),
        ],
        archive_repositories: vec!["extra".into(), "core".into()],
    }
    .canonical()
    .unwrap();
    let b = AvailabilityReport {
        offered: vec![
            offer("a", "1-1", Source::SyncRepository),
            offer("b", "1-1", Source::Cache),
        ],
        archive_repositories: vec!["core".into(), "extra".into()],
    }
    .canonical()
    .unwrap();
    assert_eq!(a.offered.len(), 2);
    assert_eq!(a.availability_id(), b.availability_id());
    let bad = AvailabilityReport {
        offered: vec![offer("a", "not a version", Source::Cache)],
        archive_repositories: vec![],
    };
    assert!(bad.canonical().is_err());
    assert_eq!(
        a.clone().canonical_within(1),
        Err(PackageError::TooMany(1)),
        "more offers than the limit"
    );
    assert!(a.canonical_within(2).is_ok());
}
