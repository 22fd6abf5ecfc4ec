//! The analysts' role: `pacsync-host reporting-password` prints a connection string that logs
//! in (on an external database URL and on the embedded cluster), and the role behind it reads
//! the `reporting` views and nothing else, even with its read-only default turned off.

use pacsync_tests::{PrivateCluster, TestHost};

use super::{psql, reporting_password, text};

/// Runs `sql` through `url` and returns stdout, failing with psql's stderr if it is refused.
#[track_caller]
fn read(url: &str, sql: &str) -> String {
    let out = psql(url, &[sql]);
    assert!(out.status.success(), "{sql}: {}", text(&out.stderr));
    text(&out.stdout)
}

/// Runs `sql` through `url` and asserts it is refused with a message containing `why`.
#[track_caller]
fn refused(url: &str, sql: &str, why: &str) {
    let out = psql(url, &[sql]);
    let stderr = text(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains(why),
        "{sql} should be refused with {why:?}; psql said {stderr:?} (stdout {:?})",
        text(&out.stdout)
    );
}

#[tokio::test]
async fn the_reporting_role_reads_the_views_and_no_base_table_and_writes_nothing() {
    let t = TestHost::start().await;
    t.api.create_pool("web").await;
    let out = reporting_password(&["--database-url", &t.cluster.url()], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let url = text(&out.stdout).trim().to_owned();
    assert!(url.starts_with("postgresql://pacsync_reporting:"), "{url}");

    let db = t.cluster.pool().await;
    let views: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.views WHERE table_schema = 'reporting'
         ORDER BY 1",
    )
    .fetch_all(&db)
    .await
    .unwrap();
    assert!(views.len() >= 9, "{views:?}");
    for view in &views {
        read(&url, &format!("SELECT * FROM reporting.{view} LIMIT 1"));
    }
    assert!(read(&url, "SELECT pool_name FROM reporting.pool_sync_status").contains("web"));

    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT tablename::text FROM pg_tables WHERE schemaname = 'public' ORDER BY 1",
    )
    .fetch_all(&db)
    .await
    .unwrap();
    assert!(tables.contains(&"operations".to_owned()), "{tables:?}");
    for table in &tables {
        refused(
            &url,
            &format!("SELECT * FROM public.{table} LIMIT 1"),
            "permission denied",
        );
    }

    // Read-only by default, and without the privileges when that default is turned off.
    refused(
        &url,
        "INSERT INTO public.pools (pool_id, name) VALUES (gen_random_uuid(), 'mine')",
        "read-only transaction",
    );
    let writable = "SET default_transaction_read_only = off";
    for (sql, why) in [
        (
            "INSERT INTO public.pools (pool_id, name) VALUES (gen_random_uuid(), 'mine')",
            "permission denied for table pools",
        ),
        (
            "TRUNCATE public.operation_events",
            "permission denied for table operation_events",
        ),
        (
            "SELECT ps_pool_delete(pool_id, 'admin:mallory') FROM reporting.pool_sync_status",
            "permission denied",
        ),
        (
            "CREATE TABLE reporting.mine (x integer)",
            "permission denied for schema reporting",
        ),
        (
            "CREATE TABLE public.mine (x integer)",
            "permission denied for schema public",
        ),
    ] {
        let out = psql(&url, &[writable, sql]);
        let stderr = text(&out.stderr);
        assert!(
            !out.status.success() && stderr.contains(why),
            "{sql} should be refused with {why:?} though writable; psql said {stderr:?}"
        );
    }
    // No view is writable by the role, whatever the view would allow.
    let writable_views = format!(
        "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = 'reporting' AND ({})",
        ["INSERT", "UPDATE", "DELETE", "TRUNCATE"]
            .map(|p| format!("has_table_privilege(c.oid, '{p}')"))
            .join(" OR ")
    );
    assert_eq!(
        read(&url, &writable_views).lines().nth(2).map(str::trim),
        Some("0")
    );
    let pools: Vec<String> =
        sqlx::query_scalar("SELECT name FROM pools WHERE deleted_at IS NULL ORDER BY name")
            .fetch_all(&db)
            .await
            .unwrap();
    assert_eq!(pools, ["web"], "nothing was written");
}

#[tokio::test]
async fn reporting_password_replaces_the_password_and_refuses_a_weak_one() {
    let t = TestHost::start().await;
    let database = t.cluster.url();
    let first = reporting_password(&["--database-url", &database], None);
    assert!(first.status.success(), "{}", text(&first.stderr));
    let first = text(&first.stdout).trim().to_owned();
    read(&first, "SELECT 1");

    let chosen = "an-analyst's-own-password/with:odd@chars";
    let second = reporting_password(
        &["--database-url", &database, "--password-stdin"],
        Some(&format!("{chosen}\n")),
    );
    assert!(second.status.success(), "{}", text(&second.stderr));
    let second = text(&second.stdout).trim().to_owned();
    assert!(
        !second.contains(chosen),
        "the password is percent-encoded: {second}"
    );
    read(&second, "SELECT 1");
    refused(&first, "SELECT 1", "password authentication failed");

    let weak = reporting_password(
        &["--database-url", &database, "--password-stdin"],
        Some("hunter2\n"),
    );
    assert_eq!(weak.status.code(), Some(2), "{}", text(&weak.stderr));
    assert!(text(&weak.stdout).is_empty());
    read(&second, "SELECT 1");
}

#[tokio::test]
async fn reporting_password_prints_the_embedded_clusters_socket_for_the_role() {
    // TestHost's cluster is the embedded kind, made and held as `serve` makes and holds it.
    let t = TestHost::start().await;
    let data_dir = t.cluster.dir().display().to_string();
    let out = reporting_password(&["--data-dir", &data_dir], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let url = text(&out.stdout).trim().to_owned();
    let socket_dir = format!("{data_dir}/postgres");
    let parsed = reqwest::Url::parse(&url).expect("a URL");
    let host = percent_encoding::percent_decode_str(parsed.host_str().unwrap_or_default());
    assert_eq!(
        (parsed.username(), host.decode_utf8_lossy().into_owned()),
        ("pacsync_reporting", socket_dir),
        "{url} names the role and the socket directory"
    );
    assert_eq!(
        read(
            &url,
            "SELECT current_user, count(*) FROM reporting.pool_sync_status"
        )
        .lines()
        .nth(2)
        .map(str::trim),
        Some("pacsync_reporting |     0")
    );
}

#[tokio::test]
async fn a_database_user_that_may_not_create_roles_still_migrates_and_is_told_what_to_do() {
    let cluster = PrivateCluster::start().await;
    let admin = cluster.pool().await;
    let password = "limited-user-password-0123456789";
    for sql in [
        format!("CREATE ROLE limited LOGIN PASSWORD '{password}'"),
        "CREATE DATABASE limited OWNER limited".to_owned(),
    ] {
        sqlx::query(&sql).execute(&admin).await.unwrap();
    }
    let mut url = reqwest::Url::parse(&cluster.url()).unwrap();
    url.set_username("limited").unwrap();
    url.set_password(Some(password)).unwrap();
    url.set_path("/limited");
    let url = url.to_string();
    let options = pacsync_host::db::options_from_url(&url).expect("URL");
    pacsync_host::db::connect_and_migrate(&options, 1)
        .await
        .expect("the migrations apply without CREATEROLE")
        .close()
        .await;
    let role: Option<String> = sqlx::query_scalar(
        "SELECT rolname::text FROM pg_roles WHERE rolname = 'pacsync_reporting'",
    )
    .fetch_optional(&admin)
    .await
    .unwrap();
    assert_eq!(role, None, "the migration could not make the role");

    let out = reporting_password(&["--database-url", &url], None);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("CREATEROLE"), "{stderr}");
    assert!(
        text(&out.stdout).is_empty(),
        "no connection string for a role without password"
    );
}
