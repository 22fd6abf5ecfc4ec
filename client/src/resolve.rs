//! Where each package version of a plan comes from, found in a few calls rather than a few per
//! package.
//!
//! A plan of 1,000 upgrades used to start 1,000 `pacman -Sp` processes and probe the cache and
//! the archive one package at a time, which cost far more than the transaction itself. Now:
//! - one `pacman -Sl` says which sync repository offers which exact version;
//! - one `pacman -Sp --print-format '%n %v %l' -- repo/name ...` gives the URLs of all those
//!   (`--nodeps` twice: only the targets are printed, and a dependency problem is left to the
//!   transaction, which reports it in pacman's words);
//! - one scan of the cache directories finds package files by name and version;
//! - the archive is asked only about what is still left, a few requests at a time;
//! - the rollback store last.
//!
//! The same sources say which installed versions can come back after they are replaced or
//! removed ([`Sources::lost_if_replaced`]): those a sync repository offers, those of a
//! repository the archive keeps in every version, and those the archive answers for. The rest
//! is what the rollback store must keep.
//!
//! Failure: an unreadable sync listing or a failing `-Sp` leaves the sync repositories out (the
//! cache, archive and store may still have everything); a version nothing has is returned as
//! missing, with the store's reason when it refused a copy.

use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use futures_util::StreamExt;
use pacsync_core::{Action, vercmp};

use crate::pacman::{Pacman, SyncListing};
use crate::rollback::RollbackStore;

/// Archive requests in flight at once.
const ARCHIVE_CONCURRENCY: usize = 8;

/// What this machine can take package files from.
pub struct Sources<'a> {
    pacman: &'a Pacman,
    store: &'a RollbackStore,
    /// name → (repository, version) for every offer of the sync repositories.
    offered: HashMap<String, Vec<(String, String)>>,
    /// The repository each installed package belongs to, as pacman would pick it.
    repository_of: HashMap<String, String>,
    /// name → (version, file) for every package file in the cache directories.
    cached: HashMap<String, Vec<(String, PathBuf)>>,
}

impl<'a> Sources<'a> {
    /// Reads the sync listing and scans the cache once.
    pub async fn load(pacman: &'a Pacman, store: &'a RollbackStore) -> Self {
        let listing = pacman.sync_listing().await.unwrap_or_default();
        Self::from_listing(pacman, store, &listing)
    }

    fn from_listing(pacman: &'a Pacman, store: &'a RollbackStore, listing: &SyncListing) -> Self {
        let mut offered: HashMap<String, Vec<(String, String)>> = HashMap::new();
        for e in &listing.entries {
            offered
                .entry(e.name.clone())
                .or_default()
                .push((e.repository.clone(), e.version.clone()));
        }
        let mut cached: HashMap<String, Vec<(String, PathBuf)>> = HashMap::new();
        for (name, version, path) in pacman.cached_files() {
            cached.entry(name).or_default().push((version, path));
        }
        Self {
            pacman,
            store,
            offered,
            repository_of: listing.repositories_of_installed(),
            cached,
        }
    }

    /// The sync repository offering exactly `name` `version`, if one does.
    fn repository_offering(&self, name: &str, version: &str) -> Option<&str> {
        self.offered
            .get(name)?
            .iter()
            .find_map(|(repo, v)| (vercmp(v, version) == Ordering::Equal).then_some(repo.as_str()))
    }

    /// A cached package file of exactly `name` `version`.
    pub fn cached(&self, name: &str, version: &str) -> Option<PathBuf> {
        self.cached
            .get(name)?
            .iter()
            .find_map(|(v, path)| (vercmp(v, version) == Ordering::Equal).then(|| path.clone()))
    }

    /// A package file or URL for every change, in order; or every version nothing has.
    pub async fn resolve(&self, changes: &[&Action]) -> Result<Vec<String>, Vec<String>> {
        let wanted: Vec<(&str, &str)> = changes
            .iter()
            .map(|a| (a.name.as_str(), a.to_version.as_deref().unwrap_or_default()))
            .collect();
        let from_sync = self.sync_urls(&wanted).await;
        let mut found: Vec<Option<String>> = wanted
            .iter()
            .map(|&(name, version)| {
                from_sync
                    .get(name)
                    .cloned()
                    .or_else(|| self.cached(name, version).map(|p| p.display().to_string()))
            })
            .collect();
        let left: Vec<usize> = (0..wanted.len()).filter(|&i| found[i].is_none()).collect();
        let archived = self.in_archive(left.iter().map(|&i| wanted[i])).await;
        for (i, location) in left.into_iter().zip(archived) {
            found[i] = location.or_else(|| {
                let (name, version) = wanted[i];
                self.store
                    .find(name, version)
                    .map(|p| p.display().to_string())
            });
        }
        let missing: Vec<String> = wanted
            .iter()
            .zip(&found)
            .filter(|(_, f)| f.is_none())
            .map(
                |(&(name, version), _)| match self.store.refusal(name, version) {
                    Some(why) => format!("{name} {version} (no rollback copy: {why})"),
                    None => format!("{name} {version}"),
                },
            )
            .collect();
        if missing.is_empty() {
            Ok(found.into_iter().flatten().collect())
        } else {
            Err(missing)
        }
    }

    /// Of the installed versions `installed`, those that no sync repository offers and the
    /// archive does not keep: gone for good once replaced or removed, unless kept.
    pub async fn lost_if_replaced(&self, installed: &[(&str, &str)]) -> Vec<(String, String)> {
        let archive_keeps: HashSet<&str> = if self.pacman.config().archive_url.is_empty() {
            HashSet::new()
        } else {
            let repos = &self.pacman.config().archive_repositories;
            repos.iter().map(String::as_str).collect()
        };
        let unsure: Vec<(&str, &str)> = installed
            .iter()
            .copied()
            .filter(|&(name, version)| self.repository_offering(name, version).is_none())
            .filter(|&(name, _)| {
                self.repository_of
                    .get(name)
                    .is_none_or(|repo| !archive_keeps.contains(repo.as_str()))
            })
            .collect();
        let archived = self.in_archive(unsure.iter().copied()).await;
        unsure
            .into_iter()
            .zip(archived)
            .filter(|(_, location)| location.is_none())
            .map(|((name, version), _)| (name.to_owned(), version.to_owned()))
            .collect()
    }

    /// One `pacman -Sp` for every wanted version a sync repository offers: name → URL.
    async fn sync_urls(&self, wanted: &[(&str, &str)]) -> HashMap<String, String> {
        let targets: Vec<String> = wanted
            .iter()
            .filter_map(|&(name, version)| {
                Some(format!(
                    "{}/{name}",
                    self.repository_offering(name, version)?
                ))
            })
            .collect();
        if targets.is_empty() {
            return HashMap::new();
        }
        let mut args = vec![
            "-Sp",
            "--nodeps",
            "--nodeps",
            "--print-format",
            "%n %v %l",
            "--",
        ];
        args.extend(targets.iter().map(String::as_str));
        let versions: HashMap<&str, &str> = wanted.iter().copied().collect();
        let Ok(out) = self.pacman.run(&args).await else {
            return HashMap::new();
        };
        out.lines()
            .filter_map(|line| {
                let mut words = line.split(' ');
                let (name, offered, url) = (words.next()?, words.next()?, words.next()?);
                let version = versions.get(name)?;
                (vercmp(offered, version) == Ordering::Equal)
                    .then(|| (name.to_owned(), url.to_owned()))
            })
            .collect()
    }

    /// The archive's location of each version (this machine's architecture, then `any`),
    /// asked a few at a time; in the order given.
    async fn in_archive<'v>(
        &self,
        versions: impl Iterator<Item = (&'v str, &'v str)>,
    ) -> Vec<Option<String>> {
        if self.pacman.config().archive_url.is_empty() {
            return versions.map(|_| None).collect();
        }
        futures_util::stream::iter(versions)
            .map(|(name, version)| async move {
                for arch in [std::env::consts::ARCH, "any"] {
                    if let Some(location) = self.pacman.archived(name, version, arch).await {
                        return Some(location);
                    }
                }
                None
            })
            .buffered(ARCHIVE_CONCURRENCY)
            .collect()
            .await
    }
}
