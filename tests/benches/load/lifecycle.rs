//! Lifecycle throughput: one host with rate limits on, one with them off, in alternating rounds,
//! against the same stored-procedure sequence sent straight to PostgreSQL.

use std::time::{Duration, Instant};

use pacsync_tests::{Api, Fleet, PrivateCluster};

use super::{DRIVERS, drive};

/// Lifecycle throughput with rate limits on and off, and the raw stored-procedure sequence.
pub async fn step(cluster: &PrivateCluster, api: &Api, api_off: &Api, fleet: &Fleet) {
    // --- Lifecycle throughput: HTTP with and without rate limits, alternating in rounds so
    // both see the same stretch of the run, vs the same stored-procedure calls straight to
    // PostgreSQL.
    // ABBA order, so neither host always runs first in a round.
    let (rounds, per_round) = (4, 160);
    let ops = rounds * per_round;
    let (mut http, mut http_off) = (Duration::ZERO, Duration::ZERO);
    for round in 0..rounds {
        if round % 2 == 0 {
            http += drive(api, fleet, per_round).await;
            http_off += drive(api_off, fleet, per_round).await;
        } else {
            http_off += drive(api_off, fleet, per_round).await;
            http += drive(api, fleet, per_round).await;
        }
    }
    let db = cluster.pool().await;
    let target_state: String =
        sqlx::query_scalar("SELECT target_state_id FROM pools WHERE pool_id = $1::uuid")
            .bind(&fleet.pool)
            .fetch_one(&db)
            .await
            .unwrap();
    let started = Instant::now();
    let per = ops / DRIVERS;
    let tasks: Vec<_> = fleet
        .members
        .iter()
        .map(|endpoint| {
            let (db, id, target_state) = (db.clone(), endpoint.id.clone(), target_state.clone());
            tokio::spawn(async move {
                for _ in 0..per {
                    let op: uuid::Uuid = sqlx::query_scalar(
                        "SELECT operation_id FROM ps_op_create(gen_random_uuid(), $1::uuid, 'sync', '{}', $2, \
                         (SELECT target_generation FROM pools p JOIN endpoints e USING (pool_id) WHERE e.endpoint_id = $1::uuid), \
                         NULL, '{\"actions\": []}', NULL, 'bench', NULL, NULL)",
                    )
                    .bind(&id)
                    .bind(&target_state)
                    .fetch_one(&db)
                    .await
                    .unwrap();
                    sqlx::query("SELECT ps_op_start($1, 60, 'bench')").bind(op).execute(&db).await.unwrap();
                    for pct in [25, 50, 75] {
                        sqlx::query("SELECT ps_op_progress($1, $2, 'installing', NULL, 60)")
                            .bind(op)
                            .bind(pct)
                            .execute(&db)
                            .await
                            .unwrap();
                    }
                    sqlx::query("SELECT ps_op_complete($1, $2, NULL, NULL, 'bench')")
                        .bind(op)
                        .bind(&target_state)
                        .execute(&db)
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let raw = started.elapsed();
    // The raw path left every endpoint at the target; put them back behind for what follows.
    for endpoint in &fleet.members {
        api.report(&endpoint.id, &endpoint.token, &[("linux", "6.0-1")])
            .await
            .expect(200, None);
    }
    let http_rate = ops as f64 / http.as_secs_f64();
    let http_off_rate = ops as f64 / http_off.as_secs_f64();
    let raw_rate = ops as f64 / raw.as_secs_f64();
    println!(
        "operation lifecycle (create → start → 3 × progress → complete), {ops} operations, {DRIVERS} concurrent endpoints"
    );
    println!();
    println!("| path                                   | operations/s |");
    println!("|----------------------------------------|--------------|");
    println!("| host over HTTP (+1 state report each)  | {http_rate:>12.1} |");
    println!("| the same, rate limits off              | {http_off_rate:>12.1} |");
    println!("| stored procedures straight to Postgres | {raw_rate:>12.1} |");
    println!(
        "| ratio host / raw                       | {:>12.2} |",
        http_rate / raw_rate
    );
    println!(
        "| ratio rate limits on / off             | {:>12.3} |",
        http_rate / http_off_rate
    );
    println!();
}
