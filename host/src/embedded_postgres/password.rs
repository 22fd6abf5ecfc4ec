//! The embedded cluster's superuser password and the `pg_hba.conf` rules that require it.
//!
//! The host generates the password (a [`crate::secret_file`]: 32 random bytes, hex) and keeps
//! it in `<data-dir>/postgres-password` (0600, its own). PostgreSQL only ever receives its
//! SCRAM verifier, never the password: when the host is root the cluster belongs to `nobody`,
//! and nothing running as `nobody` may learn it.
//!
//! Committing is crash-safe by construction: a new password is written to
//! `postgres-password.new`, the cluster is given its verifier and told to require it, and only
//! then is the file renamed to `postgres-password`. So a committed file always matches the
//! cluster, and a crash at any step leaves no committed file: the next start simply does it
//! again with a fresh password.

use std::path::Path;

use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};

use super::{EmbeddedPostgresError, io_err};
use crate::secret_file;

/// The committed password, in the data directory.
pub const PASSWORD_FILE: &str = "postgres-password";
/// A password not yet known to the cluster.
const PENDING_FILE: &str = "postgres-password.new";
/// PostgreSQL's own default iteration count for SCRAM verifiers.
const ITERATIONS: u32 = 4096;

/// The committed password, if there is one.
pub fn read_committed(data_dir: &Path) -> Result<Option<String>, EmbeddedPostgresError> {
    let path = data_dir.join(PASSWORD_FILE);
    let file = match secret_file::read(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(format!("cannot read {}", path.display()))(e)),
    };
    let text = String::from_utf8_lossy(&file.bytes);
    let password = text.trim();
    // ASCII only: PostgreSQL and its clients normalise other passwords (SASLprep) differently.
    if password.len() < 16 || !password.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(EmbeddedPostgresError::BadPasswordFile(path));
    }
    Ok(Some(password.to_owned()))
}

/// Generates a password into the pending file (replacing one left by a crash) and returns it.
pub fn create_pending(data_dir: &Path) -> Result<String, EmbeddedPostgresError> {
    let path = data_dir.join(PENDING_FILE);
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err(format!("cannot replace {}", path.display()))(e)),
    }
    secret_file::create(&path).map_err(io_err(format!("cannot write {}", path.display())))
}

/// Makes the pending password the committed one; call once the cluster requires it.
pub fn commit(data_dir: &Path) -> Result<(), EmbeddedPostgresError> {
    std::fs::rename(data_dir.join(PENDING_FILE), data_dir.join(PASSWORD_FILE))
        .map_err(io_err(format!("cannot commit {PASSWORD_FILE}")))
}

/// The SCRAM-SHA-256 verifier PostgreSQL stores for `password`, with a random salt.
pub fn verifier(password: &str) -> String {
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    verifier_with_salt(password, &salt)
}

/// `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>` (RFC 5802/7677), the form
/// `ALTER ROLE … PASSWORD` and `initdb --pwfile` store as is instead of hashing again.
fn verifier_with_salt(password: &str, salt: &[u8]) -> String {
    // Hi(): PBKDF2 with HMAC-SHA-256 and a single output block.
    let mut block = hmac(password.as_bytes(), &[salt, &1u32.to_be_bytes()]);
    let mut salted = block;
    for _ in 1..ITERATIONS {
        block = hmac(password.as_bytes(), &[&block]);
        for (s, b) in salted.iter_mut().zip(block) {
            *s ^= b;
        }
    }
    let client_key = hmac(&salted, &[b"Client Key"]);
    let stored_key = Sha256::digest(client_key);
    let server_key = hmac(&salted, &[b"Server Key"]);
    let b64 = base64::engine::general_purpose::STANDARD;
    format!(
        "SCRAM-SHA-256${ITERATIONS}:{}${}:{}",
        b64.encode(salt),
        b64.encode(stored_key),
        b64.encode(server_key)
    )
}

fn hmac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts keys of any length");
    for part in parts {
        mac.update(part);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(&mac.finalize().into_bytes());
    out
}

/// Whether any rule in a `pg_hba.conf` lets connections in without a password.
pub fn trusts(hba: &str) -> bool {
    hba.lines()
        .any(|line| rule(line).split_whitespace().any(|t| t == "trust"))
}

/// `hba` with every `trust` rule requiring a SCRAM password instead; other lines are kept.
pub fn require_password(hba: &str) -> String {
    let mut out = String::with_capacity(hba.len());
    for line in hba.lines() {
        let rule_part = rule(line);
        if rule_part.split_whitespace().any(|t| t == "trust") {
            let fields: Vec<&str> = rule_part
                .split_whitespace()
                .map(|t| if t == "trust" { "scram-sha-256" } else { t })
                .collect();
            out.push_str(&fields.join("\t"));
            let comment = &line[rule_part.len()..];
            if !comment.is_empty() {
                out.push(' ');
                out.push_str(comment);
            }
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

/// The part of a `pg_hba.conf` line before its comment.
fn rule(line: &str) -> &str {
    line.split('#').next().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_verifier_is_the_one_postgresql_computes() {
        // Python's hashlib/hmac over RFC 7677's password and salt, as PostgreSQL computes it.
        let salt = base64::engine::general_purpose::STANDARD
            .decode("W22ZaJ0SNY7soEsUEjb6gQ==")
            .unwrap();
        assert_eq!(
            verifier_with_salt("pencil", &salt),
            "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU="
        );
        assert_ne!(verifier("pencil"), verifier("pencil"), "salted");
    }

    #[test]
    fn trust_rules_are_rewritten_to_require_the_password() {
        let old = "# TYPE DATABASE USER ADDRESS METHOD\n\
                   # \"trust\" in a comment is no rule\n\
                   local   all   all   trust\n\
                   host    all   all   127.0.0.1/32   trust   # loopback\n\
                   local   replication all  scram-sha-256\n";
        assert!(trusts(old));
        let new = require_password(old);
        assert!(!trusts(&new), "{new}");
        assert_eq!(
            new,
            "# TYPE DATABASE USER ADDRESS METHOD\n\
             # \"trust\" in a comment is no rule\n\
             local\tall\tall\tscram-sha-256\n\
             host\tall\tall\t127.0.0.1/32\tscram-sha-256 # loopback\n\
             local   replication all  scram-sha-256\n"
        );
        assert_eq!(require_password(&new), new, "idempotent");
    }
}
