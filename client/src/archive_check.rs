//! Which installed versions of foreign packages the archive keeps.
//!
//! The host counts a sync repository's packages as obtainable from the archive when the agent
//! says the archive covers that repository; a foreign package (AUR, built locally, installed
//! from a file) belongs to no repository, so nothing says whether the archive has it. At each
//! report the agent asks: one HEAD request (or file check, for `file://` archives) per foreign
//! package version, a few at a time, whose answer is kept in a small cache file: a version the
//! archive has is never asked about again, one it lacks is asked again after a day. Found
//! versions are reported as offered by the archive.
//!
//! Failure: an unreachable archive counts as "not found" for a day; an unreadable or
//! unwritable cache only means asking again.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use pacsync_core::{Available, Package, Source};

use crate::pacman::Pacman;

/// At most this many versions are asked about per report; the rest wait for the next one.
const MAX_CHECKS_PER_REPORT: usize = 200;
/// Requests in flight at once.
const CONCURRENCY: usize = 8;
/// How long "the archive does not have it" is believed.
const MISS_SECONDS: u64 = 24 * 3600;

/// One remembered answer.
#[derive(serde::Serialize, serde::Deserialize, Clone, Copy)]
struct Answer {
    found: bool,
    /// Seconds since the epoch.
    at: u64,
}

/// The foreign packages of `installed` the archive keeps, at their installed version. With
/// `ask` false only remembered answers are used (no request is made).
pub async fn foreign_in_archive(
    pacman: &Pacman,
    cache_file: &Path,
    installed: &[Package],
    ask: bool,
) -> Vec<Available> {
    if pacman.config().archive_url.is_empty() {
        return Vec::new();
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut cache: BTreeMap<String, Answer> = std::fs::read(cache_file)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default();
    let foreign: Vec<(String, &Package)> = installed
        .iter()
        .filter(|p| p.repository.is_none())
        .map(|p| (format!("{} {}", p.name, p.version), p))
        .collect();
    let current = |key: &str| {
        cache
            .get(key)
            .filter(|a| a.found || now.saturating_sub(a.at) < MISS_SECONDS)
            .copied()
    };
    let to_ask: Vec<&(String, &Package)> = if ask {
        foreign
            .iter()
            .filter(|(key, _)| current(key).is_none())
            .take(MAX_CHECKS_PER_REPORT)
            .collect()
    } else {
        Vec::new()
    };
    let answers: Vec<(String, bool)> = futures_util::stream::iter(to_ask)
        .map(|(key, package)| async move {
            let arch = package.architecture.as_deref().unwrap_or("any");
            let found = pacman
                .archived(&package.name, &package.version, arch)
                .await
                .is_some();
            (key.clone(), found)
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    let asked = !answers.is_empty();
    for (key, found) in answers {
        cache.insert(key, Answer { found, at: now });
    }
    let found = foreign
        .iter()
        .filter(|(key, _)| cache.get(key).is_some_and(|a| a.found))
        .map(|(_, p)| Available {
            name: p.name.clone(),
            version: p.version.clone(),
            source: Source::Archive,
        })
        .collect();
    if asked {
        // Forget what is no longer installed, so the file stays the size of the machine.
        let keys: HashSet<&str> = foreign.iter().map(|(k, _)| k.as_str()).collect();
        cache.retain(|key, _| keys.contains(key.as_str()));
        if let Ok(text) = serde_json::to_vec(&cache) {
            let partial = cache_file.with_extension("partial");
            use std::os::unix::fs::OpenOptionsExt;
            let written = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&partial)
                .and_then(|mut file| std::io::Write::write_all(&mut file, &text));
            if written.is_ok() {
                let _ = std::fs::rename(&partial, cache_file);
            }
        }
    }
    found
}
