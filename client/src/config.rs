//! The agent's configuration file (`/etc/pacsync/agent.toml` by default, mode 0600: it holds the
//! endpoint's token).

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Default location of the config file.
pub const DEFAULT_PATH: &str = "/etc/pacsync/agent.toml";

/// Where packages at an exact version are fetched when no sync repository or cache has them:
/// the Arch Linux Archive layout. `{name}`, `{version}`, `{arch}` and `{first}` (the name's
/// first character) are substituted. A `file://` template points at a local directory.
pub const DEFAULT_ARCHIVE: &str =
    "https://archive.archlinux.org/packages/{first}/{name}/{name}-{version}-{arch}.pkg.tar.zst";

/// How pacman is run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PacmanConfig {
    /// The pacman program.
    #[serde(default = "default_command")]
    pub command: String,
    /// Extra arguments for every call, e.g. `--root`, `--dbpath`, `--cachedir`, `--config`.
    #[serde(default)]
    pub args: Vec<String>,
    /// The package cache directories searched for exact versions.
    #[serde(default = "default_cache")]
    pub cache_dirs: Vec<PathBuf>,
    /// Archive URL template (see [`DEFAULT_ARCHIVE`]); empty for no archive.
    #[serde(default = "default_archive")]
    pub archive_url: String,
    /// Sync repositories whose every version the archive keeps (the Arch Linux Archive keeps
    /// the official ones). Reported to the host, which counts their packages as obtainable.
    #[serde(default = "default_archive_repositories")]
    pub archive_repositories: Vec<String>,
}

fn default_command() -> String {
    "pacman".into()
}
fn default_cache() -> Vec<PathBuf> {
    vec![PathBuf::from("/var/cache/pacman/pkg")]
}
fn default_archive() -> String {
    DEFAULT_ARCHIVE.into()
}
fn default_archive_repositories() -> Vec<String> {
    DEFAULT_ARCHIVE_REPOSITORIES
        .iter()
        .map(|r| (*r).to_owned())
        .collect()
}

/// The official repositories, current and past, that the Arch Linux Archive keeps.
pub const DEFAULT_ARCHIVE_REPOSITORIES: [&str; 9] = [
    "core",
    "extra",
    "multilib",
    "core-testing",
    "extra-testing",
    "multilib-testing",
    "community",
    "testing",
    "community-testing",
];

impl Default for PacmanConfig {
    fn default() -> Self {
        Self {
            command: default_command(),
            args: Vec::new(),
            cache_dirs: default_cache(),
            archive_url: default_archive(),
            archive_repositories: default_archive_repositories(),
        }
    }
}

/// The whole config file.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// Host base URL, e.g. `https://pacsync.lan:8080`.
    pub server: String,
    /// A CA certificate (PEM) trusted for the host besides the system's roots, for a host with
    /// a private certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_cert: Option<PathBuf>,
    /// This machine's endpoint id.
    pub endpoint_id: Uuid,
    /// This machine's bearer token.
    pub token: String,
    /// pacman settings.
    #[serde(default)]
    pub pacman: PacmanConfig,
    /// The rollback store: copies of package versions that nothing else could give back.
    #[serde(default)]
    pub rollback: RollbackConfig,
}

/// Where the rollback store lives and how much it keeps (see `rollback`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RollbackConfig {
    /// The store's directory.
    #[serde(default = "default_rollback_dir")]
    pub dir: PathBuf,
    /// How many of this machine's last reported states the store keeps versions for.
    #[serde(default = "default_keep_states")]
    pub keep_states: usize,
}

fn default_rollback_dir() -> PathBuf {
    PathBuf::from(crate::rollback::DEFAULT_DIR)
}
fn default_keep_states() -> usize {
    crate::rollback::DEFAULT_KEEP_STATES
}

impl Default for RollbackConfig {
    fn default() -> Self {
        Self {
            dir: default_rollback_dir(),
            keep_states: default_keep_states(),
        }
    }
}

// Hand-written so that the token never reaches a log line.
impl std::fmt::Debug for AgentConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentConfig")
            .field("server", &self.server)
            .field("ca_cert", &self.ca_cert)
            .field("endpoint_id", &self.endpoint_id)
            .field("token", &"<redacted>")
            .field("pacman", &self.pacman)
            .field("rollback", &self.rollback)
            .finish()
    }
}

/// Why the config could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Missing or unreadable file.
    #[error("cannot read {path}: {source} (run `pacsync register` first)")]
    Read {
        /// File.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The file holds settings but no registration: the packaged example, before `pacsync
    /// register` replaced it.
    #[error("{path} holds no registration (run `pacsync register` first)")]
    NotRegistered {
        /// File.
        path: PathBuf,
    },
    /// Not valid TOML for the config. Only the parser's message and the line are kept: the
    /// offending source line could be the token itself.
    #[error("invalid config {path} (line {line}): {message}")]
    Parse {
        /// File.
        path: PathBuf,
        /// 1-based line of the error (0 if unknown).
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// Cannot be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// File.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
}

impl AgentConfig {
    /// Reads the config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.into(),
            source,
        })?;
        let registration = ["server", "endpoint_id", "token"];
        if text
            .parse::<toml::Table>()
            .is_ok_and(|table| !registration.iter().any(|key| table.contains_key(*key)))
        {
            return Err(ConfigError::NotRegistered { path: path.into() });
        }
        toml::from_str(&text).map_err(|e: toml::de::Error| ConfigError::Parse {
            path: path.into(),
            line: e.span().map_or(0, |span| {
                text[..span.start.min(text.len())].lines().count().max(1)
            }),
            message: e.message().to_owned(),
        })
    }

    /// Writes the config file with mode 0600 (it holds a secret), replacing it atomically.
    pub fn save(&self, path: &Path) -> Result<(), ConfigError> {
        let err = |source| ConfigError::Write {
            path: path.into(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(err)?;
        }
        let text = toml::to_string_pretty(self).expect("config serializes");
        let partial = path.with_extension("toml.partial");
        let _ = std::fs::remove_file(&partial);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&partial)
            .map_err(err)?;
        file.write_all(text.as_bytes()).map_err(err)?;
        std::fs::rename(&partial, path).map_err(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "pacsync-agent-config-{}-{name}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("agent.toml")
    }

    #[test]
    fn round_trips_with_private_permissions() {
        use std::os::unix::fs::PermissionsExt;
        let path = temp("roundtrip");
        let config = AgentConfig {
            server: "https://h:8080".into(),
            ca_cert: Some(PathBuf::from("/etc/pacsync/ca.pem")),
            endpoint_id: Uuid::new_v4(),
            token: "secret-token".into(),
            pacman: PacmanConfig::default(),
            rollback: RollbackConfig::default(),
        };
        config.save(&path).unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let loaded = AgentConfig::load(&path).unwrap();
        assert_eq!(
            (loaded.endpoint_id, loaded.token.as_str()),
            (config.endpoint_id, "secret-token")
        );
        assert_eq!(loaded.ca_cert, config.ca_cert);
        assert!(!format!("{loaded:?}").contains("secret-token"));
    }

    #[test]
    fn parse_errors_never_quote_the_token() {
        let path = temp("broken");
        std::fs::write(&path, "server = \"http://h\"\nendpoint_id = \"00000000-0000-0000-0000-000000000000\"\ntoken = abc123secret\n").unwrap();
        let err = AgentConfig::load(&path).unwrap_err().to_string();
        assert!(err.contains("line 3"), "{err}");
        assert!(!err.contains("abc123secret"), "{err}");
    }
}
