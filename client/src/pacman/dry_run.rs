//! Which installed packages a `pacman -U` transaction would remove because they conflict with
//! what it installs, learned before anything changes.
//!
//! pacman resolves a conflict (`pipewire-jack` installed over `jack2`) by asking "Remove
//! jack2?"; `--noconfirm` answers no and the transaction fails, while `--ask 4` (the bit of
//! `ALPM_QUESTION_CONFLICT_PKG`) answers yes to *every* such question. The agent may only agree
//! to removals its plan makes, so it first runs the same transaction against a scratch copy of
//! the package database with `--dbonly`: pacman resolves it exactly as it would for real
//! (conflicts in both directions, matched by name or `provides`, and every remaining
//! dependency checked again after the removals), records the outcome in the copy, and writes
//! no file and runs no install script. Hooks still run (`--dbonly` does not stop them), but
//! chrooted into the empty scratch root, where they find nothing to run and cannot reach the
//! real system; a `PreTransaction` hook marked `AbortOnFail` therefore fails the dry run, and
//! the operation with it. What disappeared from the copy's `local` directory is what the real
//! transaction would remove. The database is the one pacman itself reports (`pacman -v`), so a
//! `DBPath` set in pacman.conf is honoured; a missing one fails rather than check nothing.
//!
//! Failure: pacman refusing the transaction (a removal that would break a dependency, a
//! missing package) is returned as its own error, the same one the real run would give; the
//! scratch directory is removed in every case.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::{Pacman, PacmanError};

impl Pacman {
    /// The installed packages (names) that `pacman -U --ask 4 -- SOURCES` would remove.
    pub async fn conflict_removals(&self, sources: &[String]) -> Result<Vec<String>, PacmanError> {
        let (_, dbpath) = self.paths().await;
        let local = dbpath.join("local");
        if !local.is_dir() {
            // An empty copy would let every conflict pass.
            return Err(self.spawn_error(std::io::Error::other(format!(
                "no package database at {}",
                local.display()
            ))));
        }
        let scratch = Scratch::create().map_err(|e| self.spawn_error(e))?;
        let db = scratch.0.join("db");
        std::fs::create_dir_all(&db).map_err(|e| self.spawn_error(e))?;
        for from in [local, dbpath.join("sync")] {
            if from.is_dir() {
                copy_tree(&from, &db)
                    .await
                    .map_err(|e| self.spawn_error(e))?;
            }
        }
        let before = installed_names(&db.join("local"));
        let mut args = vec![
            format!("--root={}", scratch.0.display()),
            format!("--dbpath={}", db.display()),
            format!("--logfile={}", scratch.0.join("pacman.log").display()),
            "-U".to_owned(),
            "--dbonly".to_owned(),
            "--noconfirm".to_owned(),
            "--ask".to_owned(),
            ASK_REMOVE_CONFLICTING.to_owned(),
            "--".to_owned(),
        ];
        args.extend(sources.iter().cloned());
        self.run_streaming(&args, |_| {}).await?;
        let after = installed_names(&db.join("local"));
        Ok(before.difference(&after).cloned().collect())
    }

    fn spawn_error(&self, source: std::io::Error) -> PacmanError {
        PacmanError::Spawn {
            command: format!("{} (dry run)", self.config.command),
            source,
        }
    }
}

/// `--ask`'s bit for "X and Y are in conflict. Remove Y?" (`ALPM_QUESTION_CONFLICT_PKG`): the
/// default answer, no, becomes yes.
pub const ASK_REMOVE_CONFLICTING: &str = "4";

/// A private temporary directory, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn create() -> std::io::Result<Self> {
        use std::os::unix::fs::DirBuilderExt;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let dir =
            std::env::temp_dir().join(format!("pacsync-dry-run-{}-{nanos}", std::process::id()));
        std::fs::DirBuilder::new().mode(0o700).create(&dir)?;
        Ok(Self(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `cp -a FROM INTO/`: keeps what pacman reads (modes, times) as it is.
async fn copy_tree(from: &Path, into: &Path) -> std::io::Result<()> {
    let status = tokio::process::Command::new("cp")
        .arg("-a")
        .arg("--")
        .arg(from)
        .arg(into)
        .status()
        .await?;
    if status.success() {
        Ok(())
    } else {
        Err(std::io::Error::other(format!(
            "cp -a {} failed",
            from.display()
        )))
    }
}

/// Package names in a `local` database directory, whose entries are `NAME-PKGVER-PKGREL`.
fn installed_names(local: &Path) -> BTreeSet<String> {
    let Ok(entries) = std::fs::read_dir(local) else {
        return BTreeSet::new();
    };
    entries
        .flatten()
        .filter(|e| e.path().is_dir())
        .filter_map(|e| {
            let entry = e.file_name().into_string().ok()?;
            name_of_entry(&entry).map(str::to_owned)
        })
        .collect()
}

/// `jack2-1.9.22-1` → `jack2`: the version is the last two `-`-separated fields.
fn name_of_entry(entry: &str) -> Option<&str> {
    let (rest, _pkgrel) = entry.rsplit_once('-')?;
    let (name, _pkgver) = rest.rsplit_once('-')?;
    (!name.is_empty()).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_entries_name_their_package() {
        assert_eq!(name_of_entry("jack2-1.9.22-1"), Some("jack2"));
        assert_eq!(
            name_of_entry("pipewire-jack-1:1.2.3-2"),
            Some("pipewire-jack")
        );
        assert_eq!(
            name_of_entry("lib32-glibc-2.40+r16-1.1"),
            Some("lib32-glibc")
        );
        assert_eq!(name_of_entry("ALPM_DB_VERSION"), None);
    }
}
