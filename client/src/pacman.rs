//! Real pacman: reading the local database and running transactions.
//!
//! The local database is read through pacman's own queries (`-Q`, `-Qqe`, `-Qi`, `-Sl`) rather
//! than by parsing `/var/lib/pacman/local` directly, so `--root`/`--dbpath`/`--config` given in
//! the agent's config apply uniformly and pacman stays the authority on its format. Every call
//! with package targets puts `--` before them, so that no target is read as an option.

mod dry_run;
mod package_file;
mod paths;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;

use pacsync_core::{AvailabilityReport, Available, InstallReason, Package, Source};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use crate::config::PacmanConfig;
pub use dry_run::ASK_REMOVE_CONFLICTING;
use package_file::archive_location;
pub use package_file::parse_package_file_name;
pub use paths::{pacman_paths, verbose_paths};

/// A pacman invocation that failed, with pacman's own words.
#[derive(Debug, thiserror::Error)]
pub enum PacmanError {
    /// pacman could not be started.
    #[error("cannot run {command}: {source}")]
    Spawn {
        /// The program.
        command: String,
        /// Cause.
        source: std::io::Error,
    },
    /// pacman ran and failed.
    #[error("{output}")]
    Failed {
        /// What pacman printed (errors first).
        output: String,
    },
}

/// How to run pacman on this machine.
#[derive(Debug, Clone)]
pub struct Pacman {
    config: PacmanConfig,
    /// For the archive's HEAD checks.
    http: reqwest::Client,
}

impl Pacman {
    /// Uses the configured program and arguments; archive lookups verify servers with `tls`.
    pub fn new(config: PacmanConfig, tls: &Arc<rustls::ClientConfig>) -> Self {
        let http = crate::tls::http_client(
            tls,
            reqwest::Client::builder().timeout(std::time::Duration::from_secs(15)),
        );
        Self { config, http }
    }

    /// How pacman is run here.
    pub fn config(&self) -> &PacmanConfig {
        &self.config
    }

    fn command(&self) -> Command {
        let mut command = Command::new(&self.config.command);
        command
            .args(&self.config.args)
            .env("LC_ALL", "C")
            .stdin(Stdio::null());
        command
    }

    /// Runs pacman to completion; stdout on success, pacman's messages on failure.
    pub async fn run(&self, args: &[&str]) -> Result<String, PacmanError> {
        let output =
            self.command()
                .args(args)
                .output()
                .await
                .map_err(|source| PacmanError::Spawn {
                    command: self.config.command.clone(),
                    source,
                })?;
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        if output.status.success() {
            Ok(stdout)
        } else {
            Err(failure(&String::from_utf8_lossy(&output.stderr), &stdout))
        }
    }

    /// Runs a transaction, calling `on_line` with each line pacman prints as it goes.
    pub async fn run_streaming(
        &self,
        args: &[String],
        mut on_line: impl FnMut(&str),
    ) -> Result<(), PacmanError> {
        let mut child = self
            .command()
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| PacmanError::Spawn {
                command: self.config.command.clone(),
                source,
            })?;
        let stderr = child.stderr.take().expect("piped");
        let errors = tokio::spawn(async move {
            let mut text = String::new();
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                text.push_str(&line);
                text.push('\n');
            }
            text
        });
        let mut stdout_text = String::new();
        let mut lines = BufReader::new(child.stdout.take().expect("piped")).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            on_line(&line);
            stdout_text.push_str(&line);
            stdout_text.push('\n');
        }
        let status = child.wait().await.map_err(|source| PacmanError::Spawn {
            command: self.config.command.clone(),
            source,
        })?;
        let stderr_text = errors.await.unwrap_or_default();
        if status.success() {
            Ok(())
        } else {
            Err(failure(&stderr_text, &stdout_text))
        }
    }

    /// pacman's version (`6.0.2`).
    pub async fn version(&self) -> String {
        let text = Command::new(&self.config.command)
            .arg("--version")
            .output()
            .await
            .map(|o| o.stdout)
            .unwrap_or_default();
        String::from_utf8_lossy(&text)
            .split_whitespace()
            .find_map(|w| {
                w.strip_prefix('v')
                    .filter(|v| v.starts_with(|c: char| c.is_ascii_digit()))
            })
            .unwrap_or("unknown")
            .trim_end_matches(|c: char| !c.is_ascii_digit())
            .to_owned()
    }

    /// Every version the sync databases offer (`pacman -Sl`).
    pub async fn sync_listing(&self) -> Result<SyncListing, PacmanError> {
        Ok(SyncListing::parse(&self.run(&["-Sl"]).await?))
    }

    /// What this machine can obtain: the sync repositories' versions, the cache's package files,
    /// and which repositories the archive covers.
    pub fn availability(&self, listing: &SyncListing) -> AvailabilityReport {
        let mut offered: Vec<Available> = listing
            .entries
            .iter()
            .map(|e| Available {
                name: e.name.clone(),
                version: e.version.clone(),
                source: Source::SyncRepository,
            })
            .collect();
        offered.extend(
            self.cached_files()
                .into_iter()
                .map(|(name, version, _)| Available {
                    name,
                    version,
                    source: Source::Cache,
                }),
        );
        let archive_repositories = if self.config.archive_url.is_empty() {
            Vec::new()
        } else {
            self.config.archive_repositories.clone()
        };
        AvailabilityReport {
            offered,
            archive_repositories,
        }
    }

    /// Every installed package and its version (`pacman -Q`), in name order.
    pub async fn versions(&self) -> Result<Vec<(String, String)>, PacmanError> {
        // pacman -Q of an empty database exits 1 without a word: that is a machine with no
        // packages, not a failure.
        let local = match self.run(&["-Q"]).await {
            Err(PacmanError::Failed { output }) if output.is_empty() => String::new(),
            other => other?,
        };
        Ok(local
            .lines()
            .filter_map(|line| line.split_once(' '))
            .map(|(name, version)| (name.to_owned(), version.trim().to_owned()))
            .collect())
    }

    /// Every package file in the cache directories: name, version and path.
    pub fn cached_files(&self) -> Vec<(String, String, PathBuf)> {
        let mut files = Vec::new();
        for dir in &self.config.cache_dirs {
            let Ok(entries) = std::fs::read_dir(dir) else {
                continue;
            };
            files.extend(entries.flatten().filter_map(|entry| {
                let (name, version) = parse_package_file_name(entry.file_name().to_str()?)?;
                Some((name, version, entry.path()))
            }));
        }
        files
    }

    /// Every installed package with version, install reason, architecture and sync repository.
    pub async fn installed(&self, listing: &SyncListing) -> Result<Vec<Package>, PacmanError> {
        let local = self.versions().await?;
        let explicit: HashSet<String> = self
            .run(&["-Qqe"])
            .await
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect();
        let architectures = parse_architectures(&self.run(&["-Qi"]).await.unwrap_or_default());
        // Without sync databases there is no repository to name; that is not an error.
        let repositories = listing.repositories_of_installed();
        Ok(local
            .into_iter()
            .map(|(name, version)| Package {
                repository: repositories.get(&name).cloned(),
                architecture: architectures.get(&name).cloned(),
                reason: if explicit.contains(&name) {
                    InstallReason::Explicit
                } else {
                    InstallReason::Dependency
                },
                name,
                version,
            })
            .collect())
    }

    /// The archive location of `name` `version` for `arch`, if it exists there: a local path for
    /// `file://` templates, else a URL (checked with a HEAD request) for pacman to download. The
    /// values are substituted as URL path segments, never as URL syntax.
    pub async fn archived(&self, name: &str, version: &str, arch: &str) -> Option<String> {
        let url = archive_location(&self.config.archive_url, name, version, arch)?;
        match url.strip_prefix("file://") {
            Some(path) => PathBuf::from(path).is_file().then(|| path.to_owned()),
            None => {
                let found = self
                    .http
                    .head(&url)
                    .send()
                    .await
                    .ok()?
                    .status()
                    .is_success();
                found.then_some(url)
            }
        }
    }
}

fn failure(stderr: &str, stdout: &str) -> PacmanError {
    let mut output = stderr.trim().to_owned();
    let stdout_errors: Vec<&str> = stdout.lines().filter(|l| l.starts_with("error:")).collect();
    if !stdout_errors.is_empty() {
        output.push('\n');
        output.push_str(&stdout_errors.join("\n"));
    }
    if output.trim().is_empty() {
        output = stdout
            .trim()
            .lines()
            .rev()
            .take(5)
            .collect::<Vec<_>>()
            .join("\n");
    }
    PacmanError::Failed {
        output: output.trim().to_owned(),
    }
}

fn parse_architectures(info: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut name = None;
    for line in info.lines() {
        if let Some((key, value)) = line.split_once(':') {
            match key.trim() {
                "Name" => name = Some(value.trim().to_owned()),
                "Architecture" => {
                    if let Some(n) = name.take() {
                        out.insert(n, value.trim().to_owned());
                    }
                }
                _ => {}
            }
        }
    }
    out
}

/// One line of `pacman -Sl`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncEntry {
    /// The sync repository.
    pub repository: String,
    /// Package name.
    pub name: String,
    /// The version the repository offers.
    pub version: String,
    /// Whether some version of the package is installed.
    pub installed: bool,
}

/// The sync databases' contents, as `pacman -Sl` lists them.
#[derive(Debug, Clone, Default)]
pub struct SyncListing {
    /// Every offered package, in pacman's order.
    pub entries: Vec<SyncEntry>,
}

impl SyncListing {
    /// Parses `repo name version [installed...]` lines; anything else is ignored.
    pub fn parse(text: &str) -> Self {
        let entries = text
            .lines()
            .filter_map(|line| {
                let mut words = line.split_whitespace();
                Some(SyncEntry {
                    repository: words.next()?.to_owned(),
                    name: words.next()?.to_owned(),
                    version: words.next()?.to_owned(),
                    installed: line.contains("[installed"),
                })
            })
            .collect();
        Self { entries }
    }

    /// The repository of each installed package that a sync repository names (the first one,
    /// as pacman would pick it).
    pub fn repositories_of_installed(&self) -> HashMap<String, String> {
        let mut out = HashMap::new();
        for e in self.entries.iter().filter(|e| e.installed) {
            out.entry(e.name.clone())
                .or_insert_with(|| e.repository.clone());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_pacman_listings() {
        let info = "Name            : foo\nVersion         : 1.0-1\nArchitecture    : any\n\nName            : bar\nArchitecture    : x86_64\n";
        let archs = parse_architectures(info);
        assert_eq!(archs["foo"], "any");
        assert_eq!(archs["bar"], "x86_64");
        let listing = SyncListing::parse(
            "core linux 6.1-1 [installed]\ntest foo 2.0-1 [installed: 1.0-1]\nextra vim 9-1\n",
        );
        assert_eq!(listing.entries.len(), 3);
        assert_eq!(listing.entries[2].version, "9-1");
        let repos = listing.repositories_of_installed();
        assert_eq!(repos["linux"], "core");
        assert_eq!(repos["foo"], "test");
        assert!(!repos.contains_key("vim"));
    }

    #[test]
    fn failures_lead_with_pacman_errors() {
        let PacmanError::Failed { output } = failure(
            "error: failed to init transaction (unable to lock database)\n",
            "",
        ) else {
            panic!()
        };
        assert!(output.contains("unable to lock database"));
    }
}
