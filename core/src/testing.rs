//! Package states for unit tests, written as `(name, version)` pairs.

use crate::package::{InstallReason, Package, PackageState};

/// A state whose packages all have `reason`.
pub fn state_with(reason: InstallReason, pkgs: &[(&str, &str)]) -> PackageState {
    PackageState::new(
        pkgs.iter()
            .map(|(n, v)| Package {
                name: n.to_string(),
                version: v.to_string(),
                repository: None,
                architecture: None,
                reason,
            })
            .collect(),
    )
    .unwrap()
}

/// A state of explicitly installed packages.
pub fn state(pkgs: &[(&str, &str)]) -> PackageState {
    state_with(InstallReason::Explicit, pkgs)
}
