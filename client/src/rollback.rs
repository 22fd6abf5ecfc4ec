//! The rollback store: copies of package versions that nothing else can give back.
//!
//! A revert installs earlier versions again, which works only while some source still has
//! them. Sync repositories move on, a cache can be cleaned at any time, and nothing keeps an
//! AUR or other foreign package, or one installed with `pacman -U` from a file. So before the
//! agent removes or replaces a version that neither a sync repository nor the archive can give
//! back, it keeps a copy here: the cached package file when there is one, otherwise the package
//! rebuilt from what pacman recorded about it (`rollback/rebuild.rs`): its local database entry and the
//! installed files, once `pacman -Qkk` has confirmed the files are still the ones pacman
//! installed. Modified `backup` files (configuration) are not counted as altered by pacman and
//! are kept as they are on disk, so a copy may hold local configuration: the store is private.
//!
//! Layout under the store directory (created 0700, files 0600):
//! - `packages/NAME-VERSION.pkg.tar.zst`: the kept copies (a copied cache file keeps its own
//!   compression suffix); `pacman -U` installs them like any package file;
//! - `refused/NAME-VERSION.txt`: why a copy was not kept, so a revert that needs it can say so;
//! - `states/NNNNNNNNNNNNNNNNNNNN.json`: the last reported states, `[[name, version], ...]`,
//!   numbered in the order they were recorded;
//! - `tmp/`: work directories of copies being made, removed when done;
//! - `archive-checks.json`: which installed foreign versions the archive has (`archive_check`).
//!
//! Retention: the store keeps what the endpoint's last few reported states reference (that is
//! what a revert can go back to); [`RollbackStore::record_state_and_prune`] deletes the rest,
//! refusals included. A state must be recorded before the transaction that replaces its
//! versions, or their fresh copies are referenced by nothing and go at the next record: the
//! agent records the installed state right before it keeps anything (`execute`).
//!
//! Failure: a copy whose files differ from the record is refused ([`KeepError::Altered`]), so
//! the store never offers something other than what was installed; any other failure (no
//! database entry, bsdtar missing, disk full) is [`KeepError::Failed`]. Both are recorded and
//! returned; neither leaves anything in `packages/`, since every write is a temp file renamed
//! into place. A damaged state record stops pruning (an error) rather than losing copies.

mod rebuild;
mod retention;

use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use crate::pacman::Pacman;

/// Where the store lives by default: under the agent's own state directory, which root owns.
/// Not under the host's (`/var/lib/pacsync`, owned by the `pacsync` user) on a machine that runs
/// both: that user could swap the directory for a link that root's writes would follow.
pub const DEFAULT_DIR: &str = "/var/lib/pacsync-agent/rollback";
/// How many of the endpoint's last reported states the store keeps versions for, by default.
pub const DEFAULT_KEEP_STATES: usize = 5;

const PACKAGES: &str = "packages";
const REFUSED: &str = "refused";
const STATES: &str = "states";
const WORK: &str = "tmp";
/// Package file suffixes after `.pkg.tar`, in the order `find` prefers them.
const SUFFIXES: [&str; 9] = [
    ".zst", ".xz", ".gz", ".bz2", ".lz4", ".lzo", ".lrz", ".Z", "",
];
/// A work directory this old belongs to no copy still being made (a crashed agent's).
const STALE_WORK: Duration = Duration::from_secs(24 * 3600);

/// Distinguishes the temporary names of concurrent writes within one process.
static UNIQUE: AtomicU64 = AtomicU64::new(0);

/// Copies of package versions kept for reverts.
#[derive(Debug, Clone)]
pub struct RollbackStore {
    dir: PathBuf,
    keep_states: usize,
}

/// Why a copy was not kept.
#[derive(Debug, thiserror::Error)]
pub enum KeepError {
    /// The installed files differ from what pacman recorded (pacman -Qkk's words).
    #[error("the installed files of {name} {version} differ from what pacman recorded: {detail}")]
    Altered {
        /// Package.
        name: String,
        /// Installed version.
        version: String,
        /// pacman's warnings.
        detail: String,
    },
    /// Building or writing the copy failed.
    #[error("cannot keep {name} {version}: {detail}")]
    Failed {
        /// Package.
        name: String,
        /// Installed version.
        version: String,
        /// What went wrong.
        detail: String,
    },
}

impl RollbackStore {
    /// A store in `dir` that keeps versions of the last `keep_states` reported states (at
    /// least the last one).
    pub fn new(dir: PathBuf, keep_states: usize) -> Self {
        Self { dir, keep_states }
    }

    /// The store directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The kept package file of exactly `name` `version`, if any.
    pub fn find(&self, name: &str, version: &str) -> Option<PathBuf> {
        let stem = stem(name, version)?;
        SUFFIXES.iter().find_map(|suffix| {
            let path = self
                .dir
                .join(PACKAGES)
                .join(format!("{stem}.pkg.tar{suffix}"));
            path.is_file().then_some(path)
        })
    }

    /// Why a copy of `name` `version` was refused, if it was (the KeepError text).
    pub fn refusal(&self, name: &str, version: &str) -> Option<String> {
        let path = self
            .dir
            .join(REFUSED)
            .join(format!("{}.txt", stem(name, version)?));
        std::fs::read_to_string(path)
            .ok()
            .map(|t| t.trim().to_owned())
    }

    /// Every kept (name, version), sorted.
    pub fn list(&self) -> Vec<(String, String)> {
        let mut kept: Vec<_> = self.kept().into_iter().map(|(pair, _)| pair).collect();
        kept.sort();
        kept.dedup();
        kept
    }

    /// (number of kept packages, total bytes).
    pub fn usage(&self) -> (usize, u64) {
        let kept = self.kept();
        let bytes = kept
            .iter()
            .filter_map(|(_, path)| std::fs::metadata(path).ok())
            .map(|m| m.len())
            .sum();
        (kept.len(), bytes)
    }

    /// Keeps a copy of the installed `name` `version`: `cached` (a package file of exactly that
    /// version) is copied when given; otherwise the package is rebuilt from the local database
    /// entry and the installed files, after `pacman -Qkk` verified them. A refusal is recorded
    /// (see `refusal`) and returned; a success clears an earlier refusal. Writes are atomic
    /// (temp file + rename in the store dir), the store dir is created 0700.
    pub async fn keep(
        &self,
        pacman: &Pacman,
        name: &str,
        version: &str,
        cached: Option<&Path>,
    ) -> Result<PathBuf, KeepError> {
        let Some(stem) = stem(name, version) else {
            return Err(KeepError::Failed {
                name: name.to_owned(),
                version: version.to_owned(),
                detail: "the name or version cannot be a file name".into(),
            });
        };
        let result = self.make_copy(pacman, name, version, &stem, cached).await;
        let refusal = self.dir.join(REFUSED).join(format!("{stem}.txt"));
        match &result {
            Ok(_) => {
                let _ = std::fs::remove_file(&refusal);
            }
            // The refusal is what a later revert reports; failing to write it must not hide
            // the error itself.
            Err(e) => {
                let _ = create_dir(&self.dir.join(REFUSED))
                    .and_then(|()| write_atomic(&refusal, e.to_string().as_bytes()));
            }
        }
        result
    }

    async fn make_copy(
        &self,
        pacman: &Pacman,
        name: &str,
        version: &str,
        stem: &str,
        cached: Option<&Path>,
    ) -> Result<PathBuf, KeepError> {
        let failed = |detail: String| KeepError::Failed {
            name: name.to_owned(),
            version: version.to_owned(),
            detail,
        };
        let packages = self.dir.join(PACKAGES);
        create_dir(&packages).map_err(|e| failed(format!("{}: {e}", packages.display())))?;
        let work = WorkDir::create(&self.dir.join(WORK)).map_err(|e| failed(e.to_string()))?;
        let (file, suffix) = match cached {
            Some(cached) => {
                let suffix = cached
                    .file_name()
                    .and_then(|f| f.to_str())
                    .and_then(|f| f.rsplit_once(".pkg.tar"))
                    .map(|(_, suffix)| suffix)
                    .filter(|suffix| SUFFIXES.contains(suffix))
                    .ok_or_else(|| failed(format!("{} is no package file", cached.display())))?;
                let copy = work.0.join("package");
                tokio::fs::copy(cached, &copy)
                    .await
                    .map_err(|e| failed(format!("cannot copy {}: {e}", cached.display())))?;
                (copy, suffix)
            }
            None => (
                rebuild::rebuild(pacman, name, version, &work.0).await?,
                ".zst",
            ),
        };
        let kept = packages.join(format!("{stem}.pkg.tar{suffix}"));
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))
            .and_then(|()| std::fs::File::open(&file)?.sync_all())
            .and_then(|()| std::fs::rename(&file, &kept))
            .map_err(|e| failed(format!("cannot store {}: {e}", kept.display())))?;
        // One copy per version: `find` must not return an older one of another compression.
        for other in SUFFIXES.iter().filter(|s| **s != suffix) {
            let _ = std::fs::remove_file(packages.join(format!("{stem}.pkg.tar{other}")));
        }
        Ok(kept)
    }
}

/// `NAME-VERSION`, if both can be part of a file name in the store.
fn stem(name: &str, version: &str) -> Option<String> {
    let unsafe_part =
        |part: &str| part.is_empty() || part.starts_with('.') || part.contains(['/', '\0']);
    (!unsafe_part(name) && !unsafe_part(version)).then(|| format!("{name}-{version}"))
}

/// (name, version) of `NAME-PKGVER-PKGREL` (neither pkgver nor pkgrel contains a `-`).
fn parse_stem(stem: &str) -> Option<(String, String)> {
    let (rest, pkgrel) = stem.rsplit_once('-')?;
    let (name, pkgver) = rest.rsplit_once('-')?;
    let pair = (name.to_owned(), format!("{pkgver}-{pkgrel}"));
    (!stem.starts_with('.') && !name.is_empty() && !pkgver.is_empty()).then_some(pair)
}

fn state_file(number: u64) -> String {
    format!("{number:020}.json")
}

/// The entries of `dir` with UTF-8 names, not counting temporary (dot) files; none if `dir`
/// does not exist yet.
fn entries(dir: &Path) -> io::Result<Vec<(String, PathBuf)>> {
    let read = match std::fs::read_dir(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        read => read?,
    };
    Ok(read
        .flatten()
        .filter_map(|e| Some((e.file_name().into_string().ok()?, e.path())))
        .filter(|(file, _)| !file.starts_with('.'))
        .collect())
}

fn create_dir(dir: &Path) -> io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

fn remove(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Writes `path` whole or not at all: a dot file beside it (ignored by every listing), renamed.
fn write_atomic(path: &Path, data: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let temp = dir.join(format!(
        ".{}.{}.tmp",
        std::process::id(),
        UNIQUE.fetch_add(1, Ordering::Relaxed)
    ));
    // On disk before it is renamed into place: after a crash the store holds the old file or
    // the whole new one, never a truncated copy.
    let written = std::fs::write(&temp, data)
        .and_then(|()| std::fs::set_permissions(&temp, std::fs::Permissions::from_mode(0o600)))
        .and_then(|()| std::fs::File::open(&temp)?.sync_all())
        .and_then(|()| std::fs::rename(&temp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    written
}

/// A work directory inside the store (absolute, so bsdtar finds the spec after `-C`), removed
/// when dropped.
struct WorkDir(PathBuf);

impl WorkDir {
    fn create(parent: &Path) -> io::Result<Self> {
        create_dir(parent)?;
        let unique = UNIQUE.fetch_add(1, Ordering::Relaxed);
        let dir = std::path::absolute(parent.join(format!("{}-{unique}", std::process::id())))?;
        std::fs::DirBuilder::new().mode(0o700).create(&dir)?;
        Ok(Self(dir))
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests;
