//! Carrying out a plan with pacman.
//!
//! Every install, upgrade or downgrade is resolved to a package file at the exact version first
//! (sync repository, then cache, then archive, then the rollback store: `resolve`, in a few
//! calls for the whole plan); if any has no source, nothing is touched. Versions the plan replaces or removes that no durable source keeps are
//! copied into the rollback store. Then one `pacman -U` transaction installs them all so
//! dependencies resolve together, install reasons (of what was installed and of what is only
//! re-marked) are set with `pacman -D`, and the removals still left run last. Cancels are
//! honoured between steps, and every step that can take long repeats the last progress each
//! keepalive, so the lease never runs out while the agent works.
//!
//! Conflicts and replacements (`pipewire-jack` for `jack2`) sync in that one transaction: with
//! `--ask 4` pacman removes the installed package that conflicts with a new one as part of the
//! install, as it does when a user answers "yes", and checks that every other package's
//! dependencies stay satisfied (the new package `provides` the old one). Removing first would
//! break the dependents; installing first without it fails on pacman's question. `--ask`
//! answers every conflict question alike, so when the plan removes anything the transaction is
//! first resolved against a scratch copy of the database (`pacman::dry_run`), and a plan whose
//! install would remove a package it keeps fails with `UNPLANNED_REMOVAL` before anything
//! changes. A plan that removes nothing runs without `--ask`: any conflict then fails it.
//!
//! The plan has passed `plan_check` already; still, every call ends its options with `--`
//! before the targets, so that no target can ever be read as an option.

use std::collections::HashMap;
use std::time::Duration;

use pacsync_core::{ActionKind, InstallReason, Plan};
use tokio::sync::mpsc::error::TryRecvError;

use crate::pacman::{ASK_REMOVE_CONFLICTING, Pacman, PacmanError};
use crate::resolve::Sources;
use crate::rollback::RollbackStore;

/// Receives progress and answers whether a cancel was requested.
pub trait Reporter {
    /// Progress at `percentage` in `stage`, doing `action`; returns true to stop at the next
    /// safe point.
    fn progress(
        &mut self,
        percentage: u8,
        stage: &str,
        action: Option<&str>,
    ) -> impl Future<Output = bool>;

    /// How long pacman may stay silent before the last progress is repeated: a transaction
    /// without output (a long hook, a slow download) must not let the lease run out.
    fn keepalive(&self) -> Duration;
}

/// Why a plan was not carried out.
#[derive(Debug, thiserror::Error)]
pub enum ExecuteError {
    /// Some package versions have no source; nothing was changed.
    #[error("no sync repository, cache, archive or rollback copy has {}", .0.join(", "))]
    Unavailable(Vec<String>),
    /// Installing the plan would remove packages, as conflicts, that the plan keeps; nothing
    /// was changed.
    #[error(
        "installing the plan would remove {} (in conflict with a package it installs), which the plan keeps",
        .0.join(", ")
    )]
    UnplannedRemoval(Vec<String>),
    /// pacman failed; its message.
    #[error("{0}")]
    Pacman(#[from] PacmanError),
    /// A cancel was requested and honoured at a safe point.
    #[error("cancelled")]
    Cancelled,
}

impl ExecuteError {
    /// The failure code reported to the host.
    pub fn code(&self) -> &'static str {
        match self {
            ExecuteError::Unavailable(_) => "PACKAGE_UNAVAILABLE",
            ExecuteError::UnplannedRemoval(_) => "UNPLANNED_REMOVAL",
            ExecuteError::Pacman(_) => "PACMAN_FAILED",
            ExecuteError::Cancelled => "CANCELLED",
        }
    }
}

/// Runs `plan` on this machine, keeping in `store` what it replaces or removes that no source
/// could give back.
pub async fn execute(
    pacman: &Pacman,
    store: &RollbackStore,
    plan: &Plan,
    reporter: &mut impl Reporter,
) -> Result<(), ExecuteError> {
    // What pacman installs: reason changes keep the installed package and need no file.
    let changes: Vec<_> = plan
        .actions
        .iter()
        .filter(|a| !matches!(a.kind, ActionKind::Remove | ActionKind::SetReason))
        .collect();
    let removals: Vec<&str> = plan
        .actions
        .iter()
        .filter(|a| a.kind == ActionKind::Remove)
        .map(|a| a.name.as_str())
        .collect();
    let total = plan.actions.len().max(1);

    if reporter.progress(1, "resolving", None).await {
        return Err(ExecuteError::Cancelled);
    }
    let (resolved, cancel) = keeping_alive(reporter, 1, "resolving", async {
        let installed = installed_versions(pacman).await?;
        let sources = Sources::load(pacman, store).await;
        let files = sources
            .resolve(&changes)
            .await
            .map_err(ExecuteError::Unavailable)?;
        Ok::<_, ExecuteError>((installed, sources, files))
    })
    .await;
    let (installed, sources, files) = resolved?;
    // A conflict answered "remove" may only remove what the plan removes anyway.
    let conflicts_allowed = !changes.is_empty() && !removals.is_empty();
    if cancel || reporter.progress(2, "checking conflicts", None).await {
        return Err(ExecuteError::Cancelled);
    }
    if conflicts_allowed {
        let (removed, cancel) = keeping_alive(
            reporter,
            2,
            "checking conflicts",
            pacman.conflict_removals(&files),
        )
        .await;
        let unplanned: Vec<String> = removed?
            .into_iter()
            .filter(|name| !removals.contains(&name.as_str()))
            .collect();
        if !unplanned.is_empty() {
            return Err(ExecuteError::UnplannedRemoval(unplanned));
        }
        if cancel {
            return Err(ExecuteError::Cancelled);
        }
    }
    if reporter.progress(3, "keeping", None).await {
        return Err(ExecuteError::Cancelled);
    }
    let ((), cancel) = keeping_alive(
        reporter,
        3,
        "keeping",
        keep_what_cannot_come_back(pacman, store, &sources, plan, &installed),
    )
    .await;
    if cancel {
        return Err(ExecuteError::Cancelled);
    }

    if !changes.is_empty() {
        if reporter.progress(5, "installing", None).await {
            return Err(ExecuteError::Cancelled);
        }
        let mut args = vec!["-U".to_owned(), "--noconfirm".to_owned()];
        if conflicts_allowed {
            args.extend(["--ask".to_owned(), ASK_REMOVE_CONFLICTING.to_owned()]);
        }
        args.push("--".to_owned());
        args.extend(files);
        let cancel = run_reporting(
            pacman,
            &args,
            reporter,
            "installing",
            (0, changes.len(), total),
        )
        .await?;
        set_reasons(pacman, plan).await?;
        if cancel {
            return Err(ExecuteError::Cancelled);
        }
    } else {
        set_reasons(pacman, plan).await?;
    }
    // The transaction may have removed some of them already, as conflicts.
    let removals = if conflicts_allowed {
        let now = installed_versions(pacman).await?;
        removals
            .iter()
            .filter(|name| now.contains_key(**name))
            .map(|s| s.to_string())
            .collect()
    } else {
        removals.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    };
    if !removals.is_empty() {
        if reporter
            .progress((5 + 85 * changes.len() / total) as u8, "removing", None)
            .await
        {
            return Err(ExecuteError::Cancelled);
        }
        let mut args = vec!["-R".to_owned(), "--noconfirm".to_owned(), "--".to_owned()];
        args.extend(removals.iter().cloned());
        let stages = (changes.len(), removals.len(), total);
        run_reporting(pacman, &args, reporter, "removing", stages).await?;
    }
    reporter.progress(100, "completed", None).await;
    Ok(())
}

/// Runs `work` while repeating progress `percentage` in `stage` every keepalive, so a long
/// step (a slow archive, a dry run that downloads, many copies to make) does not let the lease
/// run out; also says whether a cancel was requested meanwhile.
async fn keeping_alive<T>(
    reporter: &mut impl Reporter,
    percentage: u8,
    stage: &str,
    work: impl Future<Output = T>,
) -> (T, bool) {
    let keepalive = reporter.keepalive();
    let mut cancel = false;
    let mut work = std::pin::pin!(work);
    loop {
        tokio::select! {
            out = &mut work => return (out, cancel),
            () = tokio::time::sleep(keepalive) => {
                cancel |= reporter.progress(percentage, stage, None).await;
            }
        }
    }
}

/// Every installed package and its version.
async fn installed_versions(pacman: &Pacman) -> Result<HashMap<String, String>, PacmanError> {
    Ok(pacman.versions().await?.into_iter().collect())
}

/// Keeps in the rollback store every installed version the plan replaces or removes that
/// neither a sync repository nor the archive can give back (a cache can be cleaned at any
/// time, so a cached file is copied, not trusted). It goes by what is installed, not by what
/// the plan was made from: a package upgraded by hand since is kept at its real version. The
/// state is recorded first, so that the copies are referenced by a remembered state. A copy
/// that cannot be made is recorded in the store with its reason and does not stop the sync:
/// the revert that needs it says why.
async fn keep_what_cannot_come_back(
    pacman: &Pacman,
    store: &RollbackStore,
    sources: &Sources<'_>,
    plan: &Plan,
    installed: &HashMap<String, String>,
) {
    let mut state: Vec<(String, String)> = installed
        .iter()
        .map(|(n, v)| (n.clone(), v.clone()))
        .collect();
    state.sort();
    if let Err(e) = store.record_state_and_prune(&state) {
        eprintln!("pacsync: rollback store {}: {e}", store.dir().display());
    }
    let replaced: Vec<(&str, &str)> = plan
        .actions
        .iter()
        .filter(|a| a.kind != ActionKind::SetReason && a.kind != ActionKind::Install)
        .filter_map(|a| Some((a.name.as_str(), installed.get(&a.name)?.as_str())))
        .filter(|&(name, version)| store.find(name, version).is_none())
        .collect();
    for (name, version) in sources.lost_if_replaced(&replaced).await {
        let cached = sources.cached(&name, &version);
        if let Err(e) = store.keep(pacman, &name, &version, cached.as_deref()).await {
            eprintln!("pacsync: {e}");
        }
    }
}

/// How often, at most, progress goes to the host while pacman prints steps.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(250);

/// Runs one pacman transaction of `count` actions, turning its step lines ("(3/12) upgrading
/// foo") into progress (a few reports a second at most, sent while pacman goes on) (`done` of `total` actions were finished before it) and repeating the last progress whenever
/// pacman stays silent for the reporter's keepalive. Returns whether a cancel was requested
/// meanwhile; it is honoured after the transaction, at the next safe point.
async fn run_reporting(
    pacman: &Pacman,
    args: &[String],
    reporter: &mut impl Reporter,
    stage: &str,
    (done, count, total): (usize, usize, usize),
) -> Result<bool, PacmanError> {
    let (steps, mut step_rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let transaction = async {
        let result = pacman
            .run_streaming(args, |line| {
                if let Some(step) = transaction_step(line) {
                    let _ = steps.send(step.to_owned());
                }
            })
            .await;
        drop(steps);
        result
    };
    let heartbeats = async {
        let keepalive = reporter.keepalive();
        let mut cancel = false;
        let mut seen = 0usize;
        let mut current: Option<String> = None;
        let mut open = true;
        while open {
            match tokio::time::timeout(keepalive, step_rx.recv()).await {
                Ok(Some(step)) => {
                    // Steps come far faster than a host round trip: wait a little, then send
                    // only the latest, so the reports trail pacman by at most that much.
                    tokio::time::sleep(PROGRESS_INTERVAL).await;
                    seen += 1;
                    current = Some(step);
                    loop {
                        match step_rx.try_recv() {
                            Ok(step) => {
                                seen += 1;
                                current = Some(step);
                            }
                            Err(TryRecvError::Empty) => break,
                            Err(TryRecvError::Disconnected) => {
                                open = false;
                                break;
                            }
                        }
                    }
                }
                Ok(None) => break,
                Err(_) => {} // silent: repeat the last progress to renew the lease
            }
            let pct = (5 + 85 * (done + seen.min(count)) / total) as u8;
            cancel |= reporter.progress(pct, stage, current.as_deref()).await;
        }
        cancel
    };
    let (result, cancel) = tokio::join!(transaction, heartbeats);
    result.map(|()| cancel)
}

/// `installing foo...` / `upgrading foo...` / `(3/12) upgrading foo` → the step.
pub fn transaction_step(line: &str) -> Option<&str> {
    let line = line.trim();
    let line = match line.strip_prefix('(') {
        Some(rest) => rest.split_once(')').map(|(_, r)| r.trim())?,
        None => line,
    };
    [
        "installing ",
        "upgrading ",
        "downgrading ",
        "reinstalling ",
        "removing ",
    ]
    .iter()
    .any(|verb| line.starts_with(verb))
    .then(|| line.trim_end_matches('.'))
}

/// Records the plan's install reasons (one `pacman -D` per reason), for what was just installed
/// and for what is only re-marked.
async fn set_reasons(pacman: &Pacman, plan: &Plan) -> Result<(), PacmanError> {
    for (reason, flag) in [
        (InstallReason::Explicit, "--asexplicit"),
        (InstallReason::Dependency, "--asdeps"),
    ] {
        let names: Vec<&str> = plan
            .actions
            .iter()
            .filter(|a| a.kind != ActionKind::Remove && a.reason == Some(reason))
            .map(|a| a.name.as_str())
            .collect();
        if !names.is_empty() {
            let mut args = vec!["-D", flag, "--"];
            args.extend(names);
            pacman.run(&args).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
