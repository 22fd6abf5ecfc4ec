//! What the commands print: diffs, operation lines, a followed operation's progress and
//! outcome, and waybar's module JSON.

use std::path::PathBuf;
use std::time::Duration;

use chrono::SecondsFormat;
use clap::CommandFactory;
use pacsync_core::{Operation, TargetDiff};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::api::Api;
use crate::rollback::RollbackStore;

/// `status --json`: the host's answer as it sent it, plus the local rollback store's size.
pub(super) fn diff_json(diff: &TargetDiff, store: &RollbackStore) -> Value {
    let mut value = serde_json::to_value(diff).expect("a diff serializes");
    let (packages, bytes) = store.usage();
    value["rollback_store"] = json!({
        "dir": store.dir(),
        "packages": packages,
        "bytes": bytes,
    });
    value
}

/// `status`: the sync status, then each non-empty list of changes, then the rollback store.
pub(super) fn print_diff(diff: &TargetDiff, store: &RollbackStore) {
    let (packages, bytes) = store.usage();
    println!("sync status: {}", diff.sync_status);
    println!(
        "rollback store: {packages} package(s), {:.1} MiB in {}",
        bytes as f64 / (1024.0 * 1024.0),
        store.dir().display()
    );
    for (items, label) in [
        (&diff.install, "to install"),
        (&diff.upgrade, "to upgrade"),
        (&diff.downgrade, "to downgrade"),
        (&diff.remove, "to remove"),
        (&diff.set_reason, "to re-mark"),
    ] {
        if items.is_empty() {
            continue;
        }
        println!("{label} ({}):", items.len());
        for item in items {
            println!("  {item}");
        }
    }
}

/// One line of `ops`.
pub(super) fn print_operation_line(op: &Operation, json: bool) {
    if json {
        println!(
            "{}",
            json!({
                "operation_id": op.operation_id,
                "type": op.operation_type,
                "status": op.status,
                "created_at": op.created_at,
            })
        );
    } else {
        // The time as the host sends it in JSON, so both outputs agree.
        let created_at = op.created_at.to_rfc3339_opts(SecondsFormat::AutoSi, true);
        println!(
            "{}  {:<10} {:<11} {}",
            created_at,
            op.operation_type.as_str(),
            op.status.as_str(),
            op.operation_id
        );
    }
}

/// The bar a followed operation's progress is drawn on; hidden for `--json`.
pub(super) fn progress_bar(json: bool) -> indicatif::ProgressBar {
    if json {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(100);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} [{bar:30}] {pos:>3}% {msg}")
            .expect("template")
            .progress_chars("=> "),
    );
    bar
}

pub(super) fn show_progress(bar: &indicatif::ProgressBar, op: &Operation) {
    let pct = u64::try_from(op.progress.percentage).unwrap_or(0);
    let stage = op.progress.stage.as_deref().unwrap_or(op.status.as_str());
    let action = op.progress.current_action.as_deref().unwrap_or("");
    bar.set_message(format!("{stage} {action}"));
    // After the message, so the bar never shows a new percentage with an old stage.
    bar.set_position(pct);
}

/// How a followed operation ended.
pub(super) fn print_outcome(op: &Operation, json: bool) {
    if json {
        println!(
            "{}",
            json!({
                "operation_id": op.operation_id,
                "operation_type": op.operation_type,
                "status": op.status,
                "error_code": op.error_code,
                "error_message": op.error_message,
                "plan": op.plan,
            })
        );
        return;
    }
    let summary = op
        .plan
        .as_ref()
        .map(|p| p.summary.clone())
        .unwrap_or_default();
    println!(
        "{} {}: {} {}",
        op.operation_type, op.operation_id, op.status, summary
    );
    for skipped in op.plan.iter().flat_map(|p| &p.skipped) {
        println!("  skipped {}: {}", skipped.name, skipped.reason);
    }
    if let Some(message) = &op.error_message {
        println!("{message}");
    }
}

/// waybar's custom-module JSON; never blocks the bar: 2 s, then the last known status, stale.
pub(super) async fn waybar(api: &Api, endpoint: Uuid) -> Value {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir)
        .join("pacsync")
        .join("waybar.json");
    match tokio::time::timeout(Duration::from_secs(2), api.diff(endpoint)).await {
        Ok(Ok(diff)) => {
            let status = diff.sync_status.as_str();
            let (install, upgrade, downgrade, remove) = (
                diff.install.len(),
                diff.upgrade.len(),
                diff.downgrade.len(),
                diff.remove.len(),
            );
            let pending = install + upgrade + downgrade + remove;
            let out = json!({
                "text": if pending == 0 { status.to_owned() } else { format!("{status} ({pending})") },
                "alt": status,
                "class": status,
                "tooltip": format!(
                    "pool {}: {install} to install, {upgrade} to upgrade, {downgrade} to downgrade, {remove} to remove",
                    diff.pool_name
                ),
            });
            if let Some(dir) = cache.parent() {
                let _ = std::fs::create_dir_all(dir);
            }
            let _ = std::fs::write(&cache, out.to_string());
            out
        }
        _ => match std::fs::read_to_string(&cache)
            .ok()
            .and_then(|t| serde_json::from_str::<Value>(&t).ok())
        {
            Some(mut last) => {
                last["class"] = json!("stale");
                last["tooltip"] = json!(format!(
                    "{} (stale: host unreachable)",
                    last["tooltip"].as_str().unwrap_or("")
                ));
                last
            }
            None => {
                json!({"text": "?", "alt": "unknown", "class": "stale", "tooltip": "pacsync host unreachable"})
            }
        },
    }
}

/// Writes `shell`'s completion script for `pacsync` to `out`.
pub(super) fn completions(shell: clap_complete::Shell, out: &mut impl std::io::Write) {
    clap_complete::generate(shell, &mut super::Cli::command(), "pacsync", out);
}

/// Writes the man page to `out`.
pub(super) fn man_page(out: &mut impl std::io::Write) -> std::io::Result<()> {
    clap_mangen::Man::new(super::Cli::command()).render(out)
}
