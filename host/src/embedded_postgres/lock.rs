//! `<data-dir>/host.lock`: which process may start, secure and stop the embedded cluster.
//!
//! Protocol: an exclusive `flock` on the file. A host takes it before it touches the cluster
//! and holds it until it exits. A `pacsync-host token` command tries it without waiting, and if
//! it gets it (no host runs) holds it while it starts the cluster for itself, uses it and stops
//! it. Whoever holds the lock writes `host <pid>` or `command <pid>` into the file, so a process
//! that finds the lock taken knows by whom:
//! - a host finding a host fails at once: two hosts on one cluster would stop it under each
//!   other;
//! - a command finding a host uses the host's running cluster through its socket, and never
//!   starts or stops it;
//! - either finding a command (or an unreadable record) waits for it, up to [`COMMAND_WAIT`]:
//!   a command is done in seconds.
//!
//! Failure modes: the kernel drops the lock with its holder, so a crashed process never leaves
//! a stale lock, only a stale record, which is read only while the lock is taken again: a new
//! holder rewrites it at once, and a contender that reads the old one in between takes the new
//! holder for the old one. The descriptor is close-on-exec (as every file Rust opens), so the
//! PostgreSQL server a holder starts never inherits the lock. The file is opened without
//! following a symlink and must be a regular file.

use std::fs::File;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;
use std::time::{Duration, Instant};

use super::{EmbeddedPostgresError, io_err};

/// The lock file, in the data directory.
pub const LOCK_FILE: &str = "host.lock";
/// How long a process waits for a command that holds the lock.
const COMMAND_WAIT: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(100);

/// Who holds, or wants, the lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Holder {
    /// `pacsync-host serve`.
    Host,
    /// `pacsync-host token`.
    Command,
}

impl Holder {
    fn word(self) -> &'static str {
        match self {
            Holder::Host => "host",
            Holder::Command => "command",
        }
    }
}

/// The lock, held until dropped.
#[derive(Debug)]
pub struct DataDirLock {
    file: File,
}

impl Drop for DataDirLock {
    fn drop(&mut self) {
        // The record goes first; closing the file then releases the lock.
        let _ = self.file.set_len(0);
    }
}

/// Takes the lock for a host; fails if another host holds it.
pub async fn take_for_host(data_dir: &Path) -> Result<DataDirLock, EmbeddedPostgresError> {
    match take(data_dir, Holder::Host).await? {
        Some(lock) => Ok(lock),
        None => unreachable!("a host contending with a host fails in take()"),
    }
}

/// Takes the lock for a command; `None` when a host holds it.
pub async fn take_for_command(
    data_dir: &Path,
) -> Result<Option<DataDirLock>, EmbeddedPostgresError> {
    take(data_dir, Holder::Command).await
}

async fn take(data_dir: &Path, me: Holder) -> Result<Option<DataDirLock>, EmbeddedPostgresError> {
    let path = data_dir.join(LOCK_FILE);
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
        .open(&path)
        .map_err(io_err(format!("cannot open {}", path.display())))?;
    let regular = file
        .metadata()
        .map_err(io_err(format!("cannot stat {}", path.display())))?
        .is_file();
    if !regular {
        return Err(EmbeddedPostgresError::UntrustedFile {
            path,
            why: "it is not a regular file".into(),
        });
    }
    let deadline = Instant::now() + COMMAND_WAIT;
    loop {
        match file.try_lock() {
            Ok(()) => {
                let record = format!("{} {}\n", me.word(), std::process::id());
                file.set_len(0)
                    .and_then(|()| file.write_all_at(record.as_bytes(), 0))
                    .map_err(io_err(format!("cannot write {}", path.display())))?;
                return Ok(Some(DataDirLock { file }));
            }
            Err(std::fs::TryLockError::WouldBlock) => {}
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(io_err(format!("cannot lock {}", path.display()))(e));
            }
        }
        let (holder, pid) = read_record(&file);
        match (holder, me) {
            (Some(Holder::Host), Holder::Host) => {
                return Err(EmbeddedPostgresError::AnotherHost {
                    data_dir: data_dir.to_owned(),
                    pid,
                });
            }
            (Some(Holder::Host), Holder::Command) => return Ok(None),
            _ if Instant::now() >= deadline => {
                return Err(EmbeddedPostgresError::Locked { path, pid });
            }
            _ => tokio::time::sleep(POLL).await,
        }
    }
}

/// Who holds the lock, as its record says, and its pid (`?` if unknown).
fn read_record(file: &File) -> (Option<Holder>, String) {
    let mut buf = [0u8; 64];
    let len = file.read_at(&mut buf, 0).unwrap_or(0);
    let text = String::from_utf8_lossy(&buf[..len]);
    let mut words = text.split_whitespace();
    let holder = match words.next() {
        Some("host") => Some(Holder::Host),
        Some("command") => Some(Holder::Command),
        _ => None,
    };
    let pid = words
        .next()
        .filter(|pid| pid.bytes().all(|b| b.is_ascii_digit()))
        .unwrap_or("?")
        .to_owned();
    (holder, pid)
}
