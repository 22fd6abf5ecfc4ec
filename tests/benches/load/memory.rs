//! Peak memory: maximum-size state reports arriving at once.

use std::time::{Duration, Instant};

use pacsync_tests::{Api, Fleet, HostProcess, state};
use serde_json::json;

/// Packages in a maximum-size state report: the host's cap per report.
const MAX_PACKAGES: usize = 100_000;
/// Maximum-size reports sent at once in the memory step.
const CONCURRENT_REPORTS: usize = 32;

/// A report of [`MAX_PACKAGES`] packages, distinct per `seed` so that every one is stored.
fn max_size_report(seed: usize) -> serde_json::Value {
    let packages: Vec<_> = (0..MAX_PACKAGES)
        .map(|i| {
            json!({"name": format!("package-{i:06}"), "version": format!("{}.{i}-1", seed + 1),
                   "repository": "extra", "architecture": "x86_64", "reason": "explicit"})
        })
        .collect();
    json!({"architecture": "x86_64", "pacman_version": "6.0.2", "packages": packages})
}

/// `VmRSS` or `VmHWM` (peak) of `pid`, in KiB.
pub fn memory_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Peak memory while maximum-size state reports arrive at once.
pub async fn step(api: &Api, host: &HostProcess) {
    // --- Memory: maximum-size state reports arriving at once.
    let reports = {
        let mut builder = Fleet::builder(api)
            .pool("reports")
            .reference("reports-ref", state(&[("linux", "6.1-1")]));
        for i in 0..CONCURRENT_REPORTS {
            builder = builder.unreported(&format!("big{i}"));
        }
        builder.build().await
    };
    let bodies: Vec<_> = (0..CONCURRENT_REPORTS).map(max_size_report).collect();
    // 32 × 100,000 rows queue behind each other in PostgreSQL: give them time (the host too,
    // with --request-timeout-ms).
    let api = &Api::with_timeout(
        host.base.clone(),
        api.admin.clone(),
        Duration::from_secs(900),
    );
    let body_mib = serde_json::to_vec(&bodies[0]).unwrap().len() as f64 / (1024.0 * 1024.0);
    let (rss_before, peak_before) = (
        memory_kib(host.pid(), "VmRSS"),
        memory_kib(host.pid(), "VmHWM"),
    );
    let started = Instant::now();
    let tasks: Vec<_> = reports
        .members
        .iter()
        .zip(bodies)
        .map(|(endpoint, body)| {
            let (api, endpoint) = (api.clone(), endpoint.clone());
            tokio::spawn(async move {
                // More reports than database connections: some wait past the pool's acquire
                // timeout and are told to retry, as an agent would.
                let mut retries = 0u32;
                loop {
                    let reply = api
                        .put_state(&endpoint.id, &endpoint.token, body.clone())
                        .await;
                    if reply.status.as_u16() == 503 {
                        reply.expect(503, Some("DATABASE_UNAVAILABLE"));
                        retries += 1;
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    }
                    reply.expect(200, None);
                    return retries;
                }
            })
        })
        .collect();
    let mut retries = 0;
    for t in tasks {
        retries += t.await.unwrap();
    }
    let took = started.elapsed();
    let peak_after = memory_kib(host.pid(), "VmHWM");
    let mib = |kib: u64| kib as f64 / 1024.0;
    println!(
        "{CONCURRENT_REPORTS} concurrent maximum-size state reports ({MAX_PACKAGES} packages, {body_mib:.1} MiB of JSON each), {:.1} s, {retries} retried after 503 DATABASE_UNAVAILABLE",
        took.as_secs_f64()
    );
    println!();
    println!("| host memory                          |      MiB |");
    println!("|--------------------------------------|----------|");
    println!(
        "| RSS before                           | {:>8.1} |",
        mib(rss_before)
    );
    println!(
        "| peak RSS before                      | {:>8.1} |",
        mib(peak_before)
    );
    println!(
        "| peak RSS during the reports          | {:>8.1} |",
        mib(peak_after)
    );
    println!(
        "| peak growth per report               | {:>8.1} |",
        mib(peak_after.saturating_sub(peak_before.max(rss_before))) / CONCURRENT_REPORTS as f64
    );
    println!();
}
