//! Real pacman: reading the local database and running transactions.
//!
//! The local database is read through pacman's own queries (`-Q`, `-Qqe`, `-Qi`, `-Sl`) rather
//! than by parsing `/var/lib/pacman/local` directly, so `--root`/`--dbpath`/`--config` given in
//! the agent's config apply uniformly and pacman stays the authority on its format.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::process::Stdio;

use pacsync_core::{InstallReason, Package};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use crate::config::PacmanConfig;

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
}

impl Pacman {
    /// Uses the configured program and arguments.
    pub fn new(config: PacmanConfig) -> Self {
        Self { config }
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

    /// Every installed package with version, install reason, architecture and sync repository.
    pub async fn installed(&self) -> Result<Vec<Package>, PacmanError> {
        let listing = self.run(&["-Q"]).await?;
        let explicit: HashSet<String> = self
            .run(&["-Qqe"])
            .await
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect();
        let architectures = parse_architectures(&self.run(&["-Qi"]).await.unwrap_or_default());
        // Without sync databases there is no repository to name; that is not an error.
        let repositories = parse_repositories(&self.run(&["-Sl"]).await.unwrap_or_default());
        Ok(listing
            .lines()
            .filter_map(|line| line.split_once(' '))
            .map(|(name, version)| Package {
                name: name.to_owned(),
                version: version.trim().to_owned(),
                repository: repositories.get(name).cloned(),
                architecture: architectures.get(name).cloned(),
                reason: if explicit.contains(name) {
                    InstallReason::Explicit
                } else {
                    InstallReason::Dependency
                },
            })
            .collect())
    }

    /// The URL a sync repository offers `name` at, if it offers exactly `version`.
    pub async fn sync_source(&self, name: &str, version: &str) -> Option<String> {
        let out = self
            .run(&["-Sp", "--print-format", "%n %v %l", name])
            .await
            .ok()?;
        // The listing may include dependencies: take the package's own line.
        out.lines().find_map(|line| {
            let mut words = line.split(' ');
            let (n, offered, url) = (words.next()?, words.next()?, words.next()?);
            (n == name && pacsync_core::vercmp(offered, version) == std::cmp::Ordering::Equal)
                .then(|| url.to_owned())
        })
    }

    /// A cached package file for exactly `name` `version`, if any.
    pub fn cached(&self, name: &str, version: &str) -> Option<PathBuf> {
        self.config.cache_dirs.iter().find_map(|dir| {
            ["any", std::env::consts::ARCH].iter().find_map(|arch| {
                let path = dir.join(format!("{name}-{version}-{arch}.pkg.tar.zst"));
                path.is_file().then_some(path)
            })
        })
    }

    /// The archive location of `name` `version` for `arch`, if it exists there: a local path for
    /// `file://` templates, else a URL (checked with a HEAD request) for pacman to download.
    pub async fn archived(&self, name: &str, version: &str, arch: &str) -> Option<String> {
        let first = name.chars().next()?.to_string();
        let url = self
            .config
            .archive_url
            .replace("{first}", &first)
            .replace("{name}", name)
            .replace("{version}", version)
            .replace("{arch}", arch);
        match url.strip_prefix("file://") {
            Some(path) => PathBuf::from(path).is_file().then(|| path.to_owned()),
            None => {
                let client = reqwest::Client::builder()
                    .timeout(std::time::Duration::from_secs(15))
                    .build()
                    .ok()?;
                let found = client.head(&url).send().await.ok()?.status().is_success();
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

fn parse_repositories(list: &str) -> HashMap<String, String> {
    list.lines()
        .filter(|l| l.contains("[installed"))
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            Some((
                words.nth(1)?.to_owned(),
                l.split_whitespace().next()?.to_owned(),
            ))
        })
        .collect()
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
        let repos = parse_repositories(
            "core linux 6.1-1 [installed]\ntest foo 2.0-1 [installed: 1.0-1]\nextra vim 9-1\n",
        );
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
