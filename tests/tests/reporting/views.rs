//! Each view of the `reporting` schema against the [`History`] built through the API, read as
//! the `pacsync_reporting` role; and every query of `docs/reporting.md`, run with `psql`, printing
//! exactly the output the document shows. After changing a view or the history, regenerate the
//! document's outputs with `PACSYNC_BLESS=1 cargo test -p pacsync-tests --test reporting` and read
//! the difference.

use std::collections::BTreeSet;
use std::path::PathBuf;

use super::{History, psql, psql_with, text};

/// Set to `1` to rewrite the outputs in `docs/reporting.md` instead of comparing with them.
const BLESS: &str = "PACSYNC_BLESS";

/// Rows of `psql -t -A` output (fields between `|`) for `sql`, as the role.
fn rows(url: &str, sql: &str) -> Vec<String> {
    let out = psql_with(url, &["-t", "-A"], &[sql]);
    assert!(out.status.success(), "{sql}: {}", text(&out.stderr));
    text(&out.stdout).lines().map(str::to_owned).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_view_reports_the_history_built_through_the_api() {
    let h = History::build().await;
    let url = h.reporting_url();

    assert_eq!(
        rows(
            &url,
            "SELECT endpoint_name, sync_status, target_generation, to_install, to_upgrade, \
             to_downgrade, to_remove, to_set_reason, out_of_sync_since IS NOT NULL \
             FROM reporting.endpoint_drift ORDER BY endpoint_name"
        ),
        [
            "ahead|ahead|3|0|0|1|1|0|t",
            "behind|behind|3|1|1|0|0|1|t",
            "quiet|unknown|3||||||f",
            "ref|in_sync|3|0|0|0|0|0|f",
            "same|in_sync|3|0|0|0|0|0|f",
        ]
    );
    assert_eq!(
        rows(
            &url,
            "SELECT package, version, endpoints, target_version, is_target_version \
             FROM reporting.package_versions ORDER BY package, version"
        ),
        [
            "curl|8.0-1|3|8.0-1|t",
            "git|2.40-1|4|2.40-1|t",
            "htop|3.0-1|1||f",
            "linux|6.0-1|1|6.1-1|f",
            "linux|6.1-1|2|6.1-1|t",
            "linux|6.2-1|1|6.1-1|f",
            "vim|9.0-1|4|9.0-1|t",
        ]
    );
    let target_changes = rows(
        &url,
        "SELECT generation, change, actor, source_endpoint_id, restored_generation, \
         state_id = previous_state_id, state_id \
         FROM reporting.target_changes ORDER BY generation",
    );
    let (target, reference, ahead) = (&h.target_state, &h.reference.id, &h.ahead.id);
    assert_eq!(target_changes.len(), 3, "{target_changes:?}");
    assert_eq!(
        target_changes[0],
        format!("1|set_latest|endpoint:{reference}|{reference}|||{target}")
    );
    assert!(
        target_changes[1].starts_with(&format!("2|set_latest|admin:test-admin|{ahead}||f|")),
        "{}",
        target_changes[1]
    );
    assert_eq!(
        target_changes[2],
        format!("3|restore|admin:test-admin||1|f|{target}")
    );
    assert_eq!(
        rows(
            &url,
            "SELECT rank, error_code, failures, endpoints, last_endpoint_name, last_error_message \
             FROM reporting.failure_reasons ORDER BY rank"
        ),
        [
            "1|PACMAN_FAILED|2|1|behind|error: curl: signature is unknown trust",
            "2|DOWNLOAD_FAILED|1|1|ahead|error: failed retrieving file",
        ]
    );
    assert_eq!(
        rows(
            &url,
            "SELECT pool_name, operation_type, status, operations, \
             duration_p50_seconds <= duration_p95_seconds \
             FROM reporting.operations_daily ORDER BY operation_type, status"
        ),
        [
            "web|set_latest|completed|2|t",
            "web|sync|completed|1|t",
            "web|sync|failed|3|t",
        ]
    );
    assert_eq!(
        rows(
            &url,
            "SELECT endpoint_name, operation_type, plugin, plugin_name, config::text, \
             plugin_sha256 ~ '^[0-9a-f]{64}$' \
             FROM reporting.operation_policies ORDER BY created_at"
        ),
        [
            "ref|set_latest||||",
            "behind|sync|holds|holds|{\"ignore\": [\"linux\"]}|t",
            "behind|sync|holds|holds|{\"ignore\": [\"linux\"]}|t",
            "ahead|sync|holds|holds|{\"ignore\": [\"linux\"]}|t",
            "same|sync|holds|holds|{\"ignore\": [\"linux\"]}|t",
            "ahead|set_latest||||",
        ]
    );
    assert_eq!(
        rows(
            &url,
            "SELECT pool_name, target_generation, endpoints, in_sync, ahead, behind, diverged, \
             unknown FROM reporting.pool_sync_status"
        ),
        ["web|3|5|2|1|1|0|1"]
    );
    assert_eq!(
        rows(
            &url,
            "SELECT endpoint_name, package, version, source FROM reporting.endpoint_offers \
             ORDER BY package"
        ),
        ["same|curl|8.0-1|sync_repository", "same|linux|6.1-1|cache"]
    );
    assert_eq!(
        rows(
            &url,
            "SELECT count(*) FILTER (WHERE status = 'failed' AND error_code IS NOT NULL), \
             count(*) FILTER (WHERE duration_seconds >= 0), count(*) FROM reporting.operations"
        ),
        ["3|6|6"]
    );
}

/// A fenced block of a Markdown document: its info string and the line range of its content.
struct Block {
    info: String,
    content: std::ops::Range<usize>,
}

fn blocks(lines: &[&str]) -> Vec<Block> {
    let mut found = Vec::new();
    let mut open: Option<(String, usize)> = None;
    for (i, line) in lines.iter().enumerate() {
        let Some(fence) = line.strip_prefix("```") else {
            continue;
        };
        match open.take() {
            None => open = Some((fence.trim().to_owned(), i + 1)),
            Some((info, start)) => found.push(Block {
                info,
                content: start..i,
            }),
        }
    }
    assert!(open.is_none(), "an unclosed code block");
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_queries_in_docs_reporting_md_print_the_output_it_shows() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/reporting.md");
    let document = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    let lines: Vec<&str> = document.lines().collect();
    let tested: Vec<Block> = blocks(&lines)
        .into_iter()
        .filter(|b| b.info.ends_with(" tested"))
        .collect();
    assert!(!tested.is_empty(), "docs/reporting.md has no tested block");

    let h = History::build().await;
    let url = h.reporting_url();
    let mut outputs = Vec::new();
    let mut queried = String::new();
    for pair in tested.chunks(2) {
        let [query, output] = pair else {
            panic!("a tested sql block without its text block after it");
        };
        assert_eq!(
            (query.info.as_str(), output.info.as_str()),
            ("sql tested", "text tested")
        );
        let sql = lines[query.content.clone()].join("\n");
        let out = psql(&url, &[&sql]);
        assert!(out.status.success(), "{sql}: {}", text(&out.stderr));
        // Line by line without trailing blanks, which psql pads with and editors strip.
        let printed: Vec<String> = text(&out.stdout)
            .lines()
            .map(|line| line.trim_end().to_owned())
            .collect();
        outputs.push((
            output.content.clone(),
            printed.join("\n").trim_end().to_owned(),
        ));
        queried.push_str(&sql);
    }

    if std::env::var_os(BLESS).is_some_and(|v| v == "1") {
        let mut rewritten: Vec<String> = Vec::new();
        let mut next = 0;
        for (range, printed) in &outputs {
            rewritten.extend(lines[next..range.start].iter().map(|l| l.to_string()));
            rewritten.extend(printed.lines().map(str::to_owned));
            next = range.end;
        }
        rewritten.extend(lines[next..].iter().map(|l| l.to_string()));
        std::fs::write(&path, rewritten.join("\n") + "\n").unwrap();
        return;
    }
    for (range, printed) in &outputs {
        let shown: Vec<&str> = lines[range.clone()].iter().map(|l| l.trim_end()).collect();
        let shown = shown.join("\n");
        assert_eq!(
            shown.trim_end(),
            printed,
            "docs/reporting.md line {} shows another output than psql prints now; regenerate \
             with `{BLESS}=1 cargo test -p pacsync-tests --test reporting` and read the difference",
            range.start + 1
        );
    }

    let db = h.host.cluster.pool().await;
    let views: BTreeSet<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.views WHERE table_schema = 'reporting'",
    )
    .fetch_all(&db)
    .await
    .unwrap()
    .into_iter()
    .collect();
    let missing: Vec<&String> = views
        .iter()
        .filter(|v| !queried.contains(&format!("reporting.{v}")))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/reporting.md has no tested query of {missing:?}"
    );
}
