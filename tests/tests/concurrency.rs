//! Concurrency: the database, not the host process, decides who wins.

use pacsync_tests::{Fleet, TestHost, state};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_syncs_give_one_operation_and_forty_nine_conflicts() {
    let t = TestHost::start().await;
    let api = &t.api;
    let fleet = Fleet::builder(api)
        .pool("p")
        .reference("ref", state(&[("linux", "6.1-1")]))
        .member("b", state(&[("linux", "6.0-1")]))
        .build()
        .await;
    let (b, tb) = (fleet.members[0].id.clone(), fleet.members[0].token.clone());

    let mut tasks = Vec::new();
    for _ in 0..50 {
        let api = api.clone();
        let (b, tb) = (b.clone(), tb.clone());
        tasks.push(tokio::spawn(async move {
            api.as_(&tb)
                .post(&format!("/api/sync/{b}/sync-to-latest"))
                .await
        }));
    }
    let mut accepted = 0;
    let mut conflicts = 0;
    for task in tasks {
        let reply = task.await.unwrap();
        match reply.status.as_u16() {
            202 => accepted += 1,
            409 => {
                assert_eq!(reply.code(), "OPERATION_CONFLICT");
                conflicts += 1;
            }
            other => panic!("unexpected {other}: {}", reply.body),
        }
    }
    assert_eq!((accepted, conflicts), (1, 49));
    let db = t.cluster.pool().await;
    let rows: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM operations WHERE endpoint_id = $1::uuid AND operation_type = 'sync'",
    )
    .bind(&b)
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!(rows, 1);
    t.stop().await;
}

#[tokio::test]
async fn the_partial_unique_index_holds_even_against_raw_sql() {
    // A second active operation cannot exist even if someone bypasses the procedures.
    let t = TestHost::start().await;
    let api = &t.api;
    let pool = api.create_pool("p").await;
    let (a, ta) = api.register(&pool, "ref").await;
    api.report(&a, &ta, &[("linux", "6.1-1")])
        .await
        .expect(200, None);
    api.as_(&ta)
        .post(&format!("/api/sync/{a}/revert"))
        .await
        .expect(409, Some("NO_PREVIOUS_STATE"));
    api.report(&a, &ta, &[("linux", "6.2-1")])
        .await
        .expect(200, None);
    api.as_(&ta)
        .post(&format!("/api/sync/{a}/revert"))
        .await
        .expect(202, None);
    let db = t.cluster.pool().await;
    let err = sqlx::query(
        "INSERT INTO operations (operation_id, endpoint_id, pool_id, operation_type, created_by)
         SELECT gen_random_uuid(), endpoint_id, pool_id, 'sync', 'psql' FROM endpoints WHERE endpoint_id = $1::uuid",
    )
    .bind(&a)
    .execute(&db)
    .await
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("operations_one_active_per_endpoint"),
        "{err}"
    );
    t.stop().await;
}
