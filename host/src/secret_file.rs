//! Private random secrets on disk: the token signing key, the embedded database's password and
//! the plugin cache's MAC key.
//!
//! A generated secret is 32 random bytes, hex, in a file only its owner may read (0600). It is
//! written whole under a temporary name beside its place and hard-linked into place: a link never
//! replaces a file that is already there, a symlink included, so of two processes creating the
//! same secret at once the second keeps the first one's, and a reader sees the whole secret or
//! no file at all.
//!
//! An existing secret is opened without following a symlink (`O_NOFOLLOW`: a symlink planted
//! where a secret belongs fails instead of leading elsewhere) or blocking on a FIFO, and must be
//! a regular file. The file's metadata comes with its contents, read through the same
//! descriptor, for the checks only a caller knows to make (its owner, its mode, its length).

use std::fs::{File, Metadata, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rand::RngCore;

/// A secret file as read: its contents, and the file's metadata.
pub struct Secret {
    /// The file's bytes, untrimmed.
    pub bytes: Vec<u8>,
    /// Owner, mode and type of the file these bytes were read from.
    pub metadata: Metadata,
}

/// A fresh secret: 32 random bytes, hex.
pub fn generate() -> String {
    let mut secret = [0u8; 32];
    rand::rng().fill_bytes(&mut secret);
    secret.iter().map(|b| format!("{b:02x}")).collect()
}

/// Writes a fresh secret to a new file at `path` and returns it; fails with
/// [`std::io::ErrorKind::AlreadyExists`] if anything (a symlink included) is already there.
pub fn create(path: &Path) -> std::io::Result<String> {
    let secret = generate();
    let partial = partial_path(path);
    let placed = create_private(&partial)
        .and_then(|mut file| {
            file.write_all(secret.as_bytes())?;
            file.sync_all()
        })
        .and_then(|()| std::fs::hard_link(&partial, path));
    let _ = std::fs::remove_file(&partial);
    placed.map(|()| secret)
}

/// Reads the secret at `path`: a regular file, never reached through a symlink.
pub fn read(path: &Path) -> std::io::Result<Secret> {
    let mut file = OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
        .open(path)
        .map_err(explain)?;
    let metadata = file.metadata()?;
    if !metadata.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    Ok(Secret { bytes, metadata })
}

/// Reads the secret at `path`, generating it first if there is none.
pub fn read_or_create(path: &Path) -> std::io::Result<Secret> {
    match read(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => match create(path) {
            Ok(_) => read(path),
            // Another process made it meanwhile: theirs is the one.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => read(path),
            Err(e) => Err(e),
        },
        other => other,
    }
}

/// A new file, 0600, failing if anything (a symlink included) is already at `path`.
fn create_private(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(path)
}

/// `<path>.partial-<pid>-<random>`: a name no other writer picks.
fn partial_path(path: &Path) -> PathBuf {
    let mut partial = path.as_os_str().to_owned();
    partial.push(format!(
        ".partial-{}-{:016x}",
        std::process::id(),
        rand::rng().next_u64()
    ));
    PathBuf::from(partial)
}

/// `ELOOP` from `O_NOFOLLOW` says "too many levels of symbolic links"; say what it means here.
fn explain(error: std::io::Error) -> std::io::Error {
    if error.raw_os_error() == Some(nix::libc::ELOOP) {
        std::io::Error::new(
            error.kind(),
            "is a symbolic link, which is not followed for a secret; name the file itself",
        )
    } else {
        error
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    /// A fresh directory of its own.
    fn dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "pacsync-secret-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_secret_is_created_private_once_and_read_back() {
        let dir = dir();
        let path = dir.join("secret");
        let first = read_or_create(&path).unwrap();
        assert_eq!(first.bytes.len(), 64);
        assert!(first.bytes.iter().all(u8::is_ascii_hexdigit));
        assert_eq!(first.metadata.permissions().mode() & 0o777, 0o600);
        assert_eq!(read_or_create(&path).unwrap().bytes, first.bytes, "reused");
        let again = create(&path).unwrap_err();
        assert_eq!(again.kind(), std::io::ErrorKind::AlreadyExists);
        let left: Vec<_> = std::fs::read_dir(dir).unwrap().collect();
        assert_eq!(left.len(), 1, "no partial file is left behind");
    }

    #[test]
    fn a_symlink_is_neither_followed_nor_replaced() {
        let dir = dir();
        let target = dir.join("elsewhere");
        std::fs::write(&target, "not the secret").unwrap();
        let path = dir.join("secret");
        std::os::unix::fs::symlink(&target, &path).unwrap();
        let error = read(&path).err().expect("refused");
        assert!(error.to_string().contains("symbolic link"), "{error}");
        assert!(read_or_create(&path).is_err());
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "not the secret");
        assert!(std::fs::symlink_metadata(&path).unwrap().is_symlink());
    }
}
