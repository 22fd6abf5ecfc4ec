//! Which installed versions of foreign packages the archive keeps.
//!
//! The host counts a sync repository's packages as obtainable from the archive when the agent
//! says the archive covers that repository; a foreign package (AUR, built locally, installed
//! from a file) belongs to no repository, so nothing says whether the archive has it. At each
//! report the agent asks: one HEAD request (or file check, for `file://` archives) per foreign
//! package version, whose answer is kept in a small cache file, so each version is asked about
//! once. Found versions are reported as offered by the archive.
//!
//! Failure: an unreachable archive is an answer of "not found" that is not cached, so the next
//! report asks again; an unreadable or unwritable cache only means asking again.

use std::collections::BTreeMap;
use std::path::Path;

use pacsync_core::{Available, Package, Source};

use crate::pacman::Pacman;

/// At most this many versions are asked about per report; the rest wait for the next one.
const MAX_CHECKS_PER_REPORT: usize = 200;

/// The foreign packages of `installed` the archive keeps, at their installed version.
pub async fn foreign_in_archive(
    pacman: &Pacman,
    cache_file: &Path,
    installed: &[Package],
) -> Vec<Available> {
    if pacman.config().archive_url.is_empty() {
        return Vec::new();
    }
    let mut cache: BTreeMap<String, bool> = std::fs::read(cache_file)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default();
    let foreign: Vec<(String, &Package)> = installed
        .iter()
        .filter(|p| p.repository.is_none())
        .map(|p| (format!("{} {}", p.name, p.version), p))
        .collect();
    let mut asked = 0;
    let mut found = Vec::new();
    for (key, package) in &foreign {
        let known = match cache.get(key) {
            Some(&known) => known,
            None if asked < MAX_CHECKS_PER_REPORT => {
                asked += 1;
                let arch = package.architecture.as_deref().unwrap_or("any");
                let location = pacman.archived(&package.name, &package.version, arch).await;
                // Only a positive answer is sure: a miss may be the network.
                if location.is_some() {
                    cache.insert(key.clone(), true);
                }
                location.is_some()
            }
            None => false,
        };
        if known {
            found.push(Available {
                name: package.name.clone(),
                version: package.version.clone(),
                source: Source::Archive,
            });
        }
    }
    // Forget what is no longer installed, so the file stays the size of the machine.
    let keys: std::collections::HashSet<&str> = foreign.iter().map(|(k, _)| k.as_str()).collect();
    cache.retain(|key, _| keys.contains(key.as_str()));
    if asked > 0
        && let Ok(text) = serde_json::to_vec(&cache)
    {
        let partial = cache_file.with_extension("partial");
        if std::fs::write(&partial, text).is_ok() {
            let _ = std::fs::rename(&partial, cache_file);
        }
    }
    found
}
