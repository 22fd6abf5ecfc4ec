//! Agent speed: what a `pacsync sync` of N upgrades costs next to plain pacman doing the same
//! transaction, what a report of the machine costs, and the agent's peak memory.
//!
//! For each N it forges N small packages in two versions (bsdtar, as in the end-to-end tests),
//! puts the newer ones in a `file://` repository, and sets up three throw-away roots holding the
//! older ones: A (moved to the newer ones and made the pool's target), B (synced by the real
//! agent against a real host on a private PostgreSQL) and C (upgraded by plain
//! `pacman -S --noconfirm` of the same names, from the same repository). It then times
//! `pacsync report` on B's upgraded root.
//!
//! Run: `cargo bench -p pacsync-tests --bench agent`; `PACSYNC_BENCH_SIZES` (a comma list,
//! default `100,1000,2000`) chooses the sizes. `PACSYNC_BENCH_AGENT` names another `pacsync`
//! binary to sync B with (an older build, for a before/after; its config loses the sections
//! it does not know). Prints a table; results are in BENCHMARKS.md.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pacsync_tests::pacman::{Forge, Machine, run};
use pacsync_tests::{TestHost, shared_tempdir};

const PACSYNC: &str = env!("CARGO_BIN_EXE_pacsync-under-test");

fn name(i: usize) -> String {
    format!("bench-pkg-{i:04}")
}

struct Measured {
    sync: Duration,
    plain: Duration,
    report: Duration,
    peak_rss_kib: u64,
    stages: String,
}

/// `n` packages in versions 1-1 (in `old`) and 2-1 (in the repository), indexed.
fn forge(base: &Path, n: usize) -> (PathBuf, PathBuf) {
    let (old, repo) = (base.join("old"), base.join("repo"));
    std::fs::create_dir_all(&old).unwrap();
    std::fs::create_dir_all(&repo).unwrap();
    let forge = Forge {
        dir: base.join("build"),
    };
    let mut newer = Vec::new();
    for i in 0..n {
        forge.build(&old, &name(i), "1-1");
        newer.push(forge.build(&repo, &name(i), "2-1"));
    }
    run(Command::new("repo-add")
        .arg("-q")
        .arg(repo.join("test.db.tar.gz"))
        .args(&newer));
    (old, repo)
}

/// Installs every package file of `dir` on `m` in one transaction.
fn install_all(m: &Machine, dir: &Path) {
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path().display().to_string())
        .collect();
    files.sort();
    let mut args = vec!["-U".to_owned()];
    args.extend(files);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    m.pacman(&args);
}

/// The peak resident set of `pid` so far (`VmHWM`), in KiB.
fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

async fn measure(n: usize) -> Measured {
    let base = shared_tempdir();
    let (old, repo) = forge(base.path(), n);
    let archive = base.path().join("archive");
    std::fs::create_dir_all(&archive).unwrap();
    let [a, b, c] = ["a", "b", "c"].map(|m| Machine::new(base.path(), m, &repo, PACSYNC));
    for m in [&a, &b, &c] {
        install_all(m, &old);
    }
    let names: Vec<String> = (0..n).map(name).collect();
    let mut upgrade = vec!["-S".to_owned()];
    upgrade.extend(names.iter().cloned());
    let upgrade: Vec<&str> = upgrade.iter().map(String::as_str).collect();
    a.pacman(&upgrade);

    // The default lease (120 s), not the tests' short one: the agent renews it as in production.
    let t = TestHost::start_with(|s| s.lease_seconds = None).await;
    let api = &t.api;
    let pool = api.create_pool("bench").await;
    let ea = a.register(api, &api.enrollment_token(&pool).await, "a", &archive);
    let eb = b.register(api, &api.enrollment_token(&pool).await, "b", &archive);
    assert!(a.pacsync(&["report"]).status.success());
    assert!(b.pacsync(&["report"]).status.success());
    let (out, _) = a.operate(api, &ea, &["set-latest"]).await;
    assert!(out.status.success());
    let agent_binary = std::env::var("PACSYNC_BENCH_AGENT").unwrap_or_else(|_| PACSYNC.into());
    if agent_binary != PACSYNC {
        let config = std::fs::read_to_string(&b.config_file).unwrap();
        let known = config.split("\n[rollback]").next().unwrap().to_owned();
        std::fs::write(&b.config_file, known).unwrap();
    }

    // The sync, from the request to the agent's completion.
    let started = Instant::now();
    let follower = Command::new(&agent_binary)
        .arg("--config")
        .arg(&b.config_file)
        .args(["sync", "--json", "--timeout", "3600"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    for _ in 0..200 {
        let ops = api.get(&format!("/api/sync/{eb}/operations?limit=1")).await;
        if ops.body["items"][0]["status"] == "pending" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut agent = Command::new(&agent_binary)
        .arg("--config")
        .arg(&b.config_file)
        .args(["agent", "--once"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut peak = 0;
    while agent.try_wait().unwrap().is_none() {
        peak = peak.max(peak_rss_kib(agent.id()).unwrap_or(0));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let out = tokio::task::spawn_blocking(move || follower.wait_with_output().unwrap())
        .await
        .unwrap();
    let sync = started.elapsed();
    assert!(
        out.status.success(),
        "sync: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(b.installed(), a.installed(), "B reached the target");

    let operation: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let stages = stages(&t, operation["operation_id"].as_str().unwrap()).await;

    let started = Instant::now();
    c.pacman(&upgrade);
    let plain = started.elapsed();
    assert_eq!(c.installed(), a.installed());

    let started = Instant::now();
    assert!(b.pacsync(&["report"]).status.success());
    let report = started.elapsed();
    t.stop().await;
    Measured {
        sync,
        plain,
        report,
        peak_rss_kib: peak,
        stages,
    }
}

/// Where the operation's time went: each run of events of one type and stage, with the time
/// from its first event to the next run's (from the operation's own audit trail).
async fn stages(t: &TestHost, operation: &str) -> String {
    let db = sqlx::PgPool::connect(&t.cluster.url()).await.unwrap();
    let rows: Vec<(String, Option<String>, f64)> = sqlx::query_as(
        "SELECT event_type, payload->>'progress_stage', extract(epoch FROM created_at)::float8 \
         FROM operation_events WHERE operation_id = $1::uuid ORDER BY event_id",
    )
    .bind(operation)
    .fetch_all(&db)
    .await
    .unwrap();
    let mut runs: Vec<(String, f64)> = Vec::new();
    for (kind, stage, at) in rows {
        let kind = kind.trim_start_matches("operation_");
        let label = stage.map_or(kind.to_owned(), |stage| format!("{kind}:{stage}"));
        if runs.last().is_none_or(|(last, _)| *last != label) {
            runs.push((label, at));
        }
    }
    runs.windows(2)
        .map(|w| format!("{} {:.2} s", w[0].0, w[1].1 - w[0].1))
        .chain(runs.last().map(|(label, _)| label.clone()))
        .collect::<Vec<_>>()
        .join(", ")
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let sizes: Vec<usize> = std::env::var("PACSYNC_BENCH_SIZES")
        .unwrap_or_else(|_| "100,1000,2000".into())
        .split(',')
        .map(|s| s.trim().parse().expect("PACSYNC_BENCH_SIZES: numbers"))
        .collect();
    println!(
        "| upgrades | `pacsync sync` | plain `pacman -S` | ratio | goal (1.5× + 2 s) | `pacsync report` | agent peak RSS |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    let mut stage_lines = Vec::new();
    for n in sizes {
        let m = measure(n).await;
        let goal = m.plain.mul_f64(1.5) + Duration::from_secs(2);
        println!(
            "| {n} | {:.2} s | {:.2} s | {:.1}× | {:.2} s {} | {:.2} s | {:.1} MiB |",
            m.sync.as_secs_f64(),
            m.plain.as_secs_f64(),
            m.sync.as_secs_f64() / m.plain.as_secs_f64(),
            goal.as_secs_f64(),
            if m.sync <= goal { "met" } else { "missed" },
            m.report.as_secs_f64(),
            m.peak_rss_kib as f64 / 1024.0,
        );
        stage_lines.push(format!("{n}: {}", m.stages));
    }
    println!("\nWhere each sync's time went (from the operation's events):");
    for line in stage_lines {
        println!("- {line}");
    }
}
