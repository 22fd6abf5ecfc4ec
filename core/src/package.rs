//! Installed packages and content-addressed package states.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::version::{VersionError, validate_version};

/// Why a package was installed, as pacman records it (`%REASON%` in the local db).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum InstallReason {
    /// Installed on request (`pacman -S foo`).
    Explicit,
    /// Pulled in as a dependency (`--asdeps`).
    Dependency,
}

impl InstallReason {
    /// The spelling used in JSON and in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            InstallReason::Explicit => "explicit",
            InstallReason::Dependency => "dependency",
        }
    }

    /// Parses the database spelling.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "explicit" => Some(InstallReason::Explicit),
            "dependency" => Some(InstallReason::Dependency),
            _ => None,
        }
    }
}

/// One installed package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Package {
    /// Package name, e.g. `linux`.
    pub name: String,
    /// Full version, `[epoch:]pkgver-pkgrel`.
    pub version: String,
    /// Sync repository the package belongs to, if it is in one (`core`, `extra`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    /// Package architecture (`x86_64`, `any`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub architecture: Option<String>,
    /// Install reason.
    pub reason: InstallReason,
}

/// Why a package list cannot become a state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PackageError {
    /// A package name pacman would not accept.
    #[error(
        "invalid package name {0:?}: names use letters, digits and @._+- and do not start with '-' or '.'"
    )]
    InvalidName(String),
    /// A package with an invalid version.
    #[error("package {name}: {source}")]
    InvalidVersion {
        /// The package.
        name: String,
        /// What is wrong with its version.
        source: VersionError,
    },
    /// The same package appears twice.
    #[error("package {0:?} is listed more than once")]
    Duplicate(String),
    /// More entries than any real machine reports.
    #[error("at most {0} entries per report")]
    TooMany(usize),
    /// An optional field is present but empty or malformed.
    #[error("package {name}: {field} must be a non-empty word without whitespace")]
    InvalidField {
        /// The package.
        name: String,
        /// The field (`repository` or `architecture`).
        field: &'static str,
    },
}

/// Checks a package name against makepkg's rules for `pkgname`.
pub fn validate_name(name: &str) -> Result<(), PackageError> {
    let ok = !name.is_empty()
        && name.len() <= 255
        && !name.starts_with(['-', '.'])
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"@._+-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(PackageError::InvalidName(name.to_owned()))
    }
}

/// Checks an optional single-word field (repository, architecture) of package `name`.
pub(crate) fn validate_word(
    name: &str,
    field: &'static str,
    value: Option<&str>,
) -> Result<(), PackageError> {
    match value {
        Some(v) if v.is_empty() || v.len() > 255 || !v.bytes().all(|b| b.is_ascii_graphic()) => {
            Err(PackageError::InvalidField {
                name: name.to_owned(),
                field,
            })
        }
        _ => Ok(()),
    }
}

/// A machine's full set of installed packages, sorted by name, with its content address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct PackageState {
    packages: BTreeMap<String, Package>,
}

impl PackageState {
    /// Builds a state from a reported package list, rejecting anything pacman would not produce.
    pub fn new(mut packages: Vec<Package>) -> Result<Self, PackageError> {
        // Reports usually arrive sorted: a stable sort then costs one comparison per package,
        // duplicates become neighbours, and the map is bulk-built instead of searched per insert.
        packages.sort_by(|a, b| a.name.cmp(&b.name));
        if let Some(pair) = packages.windows(2).find(|w| w[0].name == w[1].name) {
            return Err(PackageError::Duplicate(pair[0].name.clone()));
        }
        for package in &packages {
            validate_name(&package.name)?;
            validate_version(&package.version).map_err(|source| PackageError::InvalidVersion {
                name: package.name.clone(),
                source,
            })?;
            validate_word(&package.name, "repository", package.repository.as_deref())?;
            validate_word(
                &package.name,
                "architecture",
                package.architecture.as_deref(),
            )?;
        }
        Ok(Self {
            packages: packages
                .into_iter()
                .map(|p| (p.name.clone(), p))
                .collect::<BTreeMap<_, _>>(),
        })
    }

    /// The content address: sha256 over the canonical, name-sorted package list.
    ///
    /// Each package contributes `name \t version \t repository \t architecture \t reason \n`,
    /// with absent fields empty. Tabs and newlines cannot occur in validated fields, so the
    /// encoding is unambiguous and identical states on different machines share one id.
    pub fn state_id(&self) -> String {
        let mut hasher = Sha256::new();
        for p in self.packages.values() {
            hasher.update(p.name.as_bytes());
            hasher.update(b"\t");
            hasher.update(p.version.as_bytes());
            hasher.update(b"\t");
            hasher.update(p.repository.as_deref().unwrap_or("").as_bytes());
            hasher.update(b"\t");
            hasher.update(p.architecture.as_deref().unwrap_or("").as_bytes());
            hasher.update(b"\t");
            hasher.update(p.reason.as_str().as_bytes());
            hasher.update(b"\n");
        }
        hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// Looks a package up by name.
    pub fn get(&self, name: &str) -> Option<&Package> {
        self.packages.get(name)
    }

    /// Iterates packages in name order.
    pub fn iter(&self) -> impl Iterator<Item = &Package> {
        self.packages.values()
    }

    /// Number of packages.
    pub fn len(&self) -> usize {
        self.packages.len()
    }

    /// Whether the state has no packages.
    pub fn is_empty(&self) -> bool {
        self.packages.is_empty()
    }

    /// The packages in name order, consuming the state.
    pub fn into_packages(self) -> Vec<Package> {
        self.packages.into_values().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkg(name: &str, version: &str) -> Package {
        Package {
            name: name.into(),
            version: version.into(),
            repository: Some("core".into()),
            architecture: Some("x86_64".into()),
            reason: InstallReason::Explicit,
        }
    }

    #[test]
    fn state_id_ignores_report_order_but_not_content() {
        let a = PackageState::new(vec![pkg("a", "1-1"), pkg("b", "2-1")]).unwrap();
        let b = PackageState::new(vec![pkg("b", "2-1"), pkg("a", "1-1")]).unwrap();
        let c = PackageState::new(vec![pkg("a", "1-1"), pkg("b", "2-2")]).unwrap();
        assert_eq!(a.state_id(), b.state_id());
        assert_ne!(a.state_id(), c.state_id());
        assert_eq!(a.state_id().len(), 64);
    }

    #[test]
    fn rejects_bad_lists() {
        assert_eq!(
            PackageState::new(vec![pkg("a", "1-1"), pkg("a", "1-2")]),
            Err(PackageError::Duplicate("a".into()))
        );
        assert!(matches!(
            PackageState::new(vec![pkg("Bad Name", "1")]),
            Err(PackageError::InvalidName(_))
        ));
        assert!(matches!(
            PackageState::new(vec![pkg("a", "")]),
            Err(PackageError::InvalidVersion { .. })
        ));
        let mut empty_repo = pkg("a", "1");
        empty_repo.repository = Some(String::new());
        assert!(matches!(
            PackageState::new(vec![empty_repo]),
            Err(PackageError::InvalidField {
                field: "repository",
                ..
            })
        ));
    }
}
