//! Files the host itself reads and writes inside the cluster directory, which belongs to the
//! cluster's user (`nobody` when the host is root).
//!
//! Any process running as that user may replace a file there: with a symlink or a hard link to
//! a file only root may read, whose lines a root host would then copy into a file of its own,
//! or with a FIFO that blocks the host. So a file is read only through a descriptor opened
//! without following a symlink (`O_NOFOLLOW`) or blocking (`O_NONBLOCK`), and only if it is a
//! regular file with a single link, owned by the cluster's user and of a plausible size; anything
//! else is refused with the file's name and why. A file is written fresh (0600, `create_new`,
//! never through a symlink) and renamed into place by the caller, which replaces whatever is at
//! the name, a planted symlink included, without following it.

use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use super::{EmbeddedPostgresError, io_err};

/// The largest cluster file the host reads; `pg_hba.conf` is a few kilobytes.
const MAX_LEN: u64 = 1 << 20;

/// The text of the cluster file at `path`, which must be a regular file with one link, owned
/// by `owner` (the cluster's uid).
pub(super) fn read_owned(path: &Path, owner: u32) -> Result<String, EmbeddedPostgresError> {
    let refuse = |why: String| EmbeddedPostgresError::UntrustedFile {
        path: path.to_owned(),
        why,
    };
    let context = format!("cannot read {}", path.display());
    let file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
        .open(path)
    {
        Ok(file) => file,
        Err(e) if e.raw_os_error() == Some(nix::libc::ELOOP) => {
            return Err(refuse("it is a symbolic link".into()));
        }
        Err(e) => return Err(io_err(context)(e)),
    };
    let metadata = file.metadata().map_err(io_err(context.clone()))?;
    if !metadata.is_file() {
        return Err(refuse("it is not a regular file".into()));
    }
    if metadata.nlink() != 1 {
        return Err(refuse(format!(
            "it has {} hard links, where PostgreSQL made one",
            metadata.nlink()
        )));
    }
    if metadata.uid() != owner {
        return Err(refuse(format!(
            "it belongs to uid {}, not to the cluster's user (uid {owner})",
            metadata.uid()
        )));
    }
    if metadata.len() > MAX_LEN {
        return Err(refuse(format!(
            "it holds {} bytes, more than {MAX_LEN}",
            metadata.len()
        )));
    }
    let mut text = String::new();
    (&file)
        .take(MAX_LEN)
        .read_to_string(&mut text)
        .map_err(io_err(context))?;
    Ok(text)
}

/// Writes `contents` to a fresh 0600 file at `path` (removing whatever is there, a symlink
/// included, never following it), owned by `owner` if given.
pub(super) fn write_private(
    path: &Path,
    contents: &[u8],
    owner: Option<(u32, u32)>,
) -> Result<(), EmbeddedPostgresError> {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err(format!("cannot replace {}", path.display()))(e)),
    }
    let context = format!("cannot write {}", path.display());
    // create_new: if anything appeared at the name since, this fails instead of following it.
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(path)
        .map_err(io_err(context.clone()))?;
    file.write_all(contents).map_err(io_err(context.clone()))?;
    file.sync_all().map_err(io_err(context.clone()))?;
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::fchown(&file, Some(uid), Some(gid)).map_err(io_err(context))?;
    }
    Ok(())
}
