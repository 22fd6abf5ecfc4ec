//! `reporting.vercmp` against pacman's `vercmp` binary, on every ordered pair of versions chosen
//! for the rules they exercise: epochs (empty, zero, missing), releases on one side only,
//! separators of different kinds and lengths, leading zeros, letters against digits, trailing
//! letters, and bytes outside ASCII. The view `endpoint_drift` counts upgrades and downgrades
//! with it, so it must order versions exactly as pacman does.

use std::process::Command;

use pacsync_tests::PrivateCluster;

const VERSIONS: &[&str] = &[
    "", "1", "2", "9", "10", "001", "1.0", "1.00", "01.0", "1.0.0", "1.0.0.0", "1..0", "1.0.",
    "1_0", "1+0", "1~0", "1.0-1", "1.0-2", "1.0-10", "1.0-0", "1.0-1.1", "1.0-1.a", "1.0-",
    "1.0-r1", "0:1.0", "1:1.0", "10:1.0", ":1.0", "1:", "1:-", "1:1.0-1", "1.0a", "1.0.a",
    "1.0alpha", "1.0beta", "1.0rc1", "1.0.rc1", "1.0_1", "1.0..1", "1.0+1", "1.0~1", "a", "b",
    "1a", "1.a1", "alpha", "git", "r123.abc", "20240101", "1.2.3-4", "1.2.3-10", "1.0.é", "1.0é1",
    "1.0ée",
];

/// What pacman's `vercmp` prints for `a` against `b`.
fn pacman_vercmp(a: &str, b: &str) -> i32 {
    let out = Command::new("vercmp")
        .arg(a)
        .arg(b)
        .output()
        .expect("pacman's vercmp is installed (Debian: pacman-package-manager)");
    assert!(out.status.success(), "vercmp {a:?} {b:?} failed");
    String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .parse::<i32>()
        .unwrap()
        .signum()
}

#[tokio::test]
async fn reporting_vercmp_orders_every_pair_as_pacman_does() {
    let cluster = PrivateCluster::start().await;
    let options = pacsync_host::db::options_from_url(&cluster.url()).expect("cluster URL");
    let db = pacsync_host::db::connect_and_migrate(&options, 1)
        .await
        .expect("the migrations apply");
    let (left, right): (Vec<&str>, Vec<&str>) = VERSIONS
        .iter()
        .flat_map(|a| VERSIONS.iter().map(move |b| (*a, *b)))
        .unzip();
    let ours: Vec<i32> = sqlx::query_scalar(
        "SELECT reporting.vercmp(a, b) FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS p(a, b, n)
         ORDER BY n",
    )
    .bind(&left)
    .bind(&right)
    .fetch_all(&db)
    .await
    .unwrap();
    let disagreements: Vec<String> = left
        .iter()
        .zip(&right)
        .zip(&ours)
        .filter_map(|((a, b), ours)| {
            let theirs = pacman_vercmp(a, b);
            (theirs != *ours).then(|| format!("vercmp {a:?} {b:?}: pacman {theirs}, ours {ours}"))
        })
        .collect();
    assert!(
        disagreements.is_empty(),
        "{} of {} pairs disagree:\n{}",
        disagreements.len(),
        ours.len(),
        disagreements.join("\n")
    );
}
