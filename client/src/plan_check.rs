//! The check every plan passes before the agent acts on it.
//!
//! The agent runs pacman as root, so a plan is input, not an order: a compromised or buggy host
//! (or anyone who can answer in its name) must not be able to turn a package name into a pacman
//! option (`-dd`), a path (`/tmp/x`, `../x`) or a transaction pacman would resolve differently
//! from what was planned. Every action must have a known kind, a name and versions that pass
//! exactly the rules the host applies to reported states (`pacsync_core::package::validate_name`
//! and `pacsync_core::validate_version`: no leading `-` or `.`, no `/`, at most 255 bytes), and a
//! name no other action repeats. The version to reach, which ends up in a file name and an
//! archive URL that pacman fetches, must moreover be spelled as package versions are:
//! `[epoch:]pkgver[-pkgrel]` with an epoch of digits, a pkgver of letters, digits and `._+~`
//! starting with a letter or digit, and a pkgrel of digits with at most one `.` (makepkg's
//! rules, narrowed to the characters real versions use), so that no `%`, `?`, `#` or `&` ever
//! reaches a URL. The plan is read from the host's raw JSON, so that an unknown
//! kind is refused here, naming the entry, instead of making the whole operation unreadable.
//!
//! A refused plan fails its operation with [`INVALID_PLAN`] before any progress is reported and
//! before pacman is called at all; the message names the action (position, kind, name) and the
//! rule it breaks.

use std::collections::HashSet;

use pacsync_core::package::validate_name;
use pacsync_core::{Action, ActionKind, PackageError, Plan, VersionError, validate_version};
use serde_json::Value;

/// The failure code of an operation whose plan the agent refused.
pub const INVALID_PLAN: &str = "INVALID_PLAN";

/// Why a plan was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidPlan {
    /// Not shaped like a plan at all.
    #[error("the plan cannot be read: {0}")]
    Malformed(String),
    /// One action breaks a rule.
    #[error("action {position} ({kind} {name:?}): {fault}")]
    Action {
        /// 1-based position in the plan.
        position: usize,
        /// Its kind as the host spelled it.
        kind: String,
        /// Its package name as the host spelled it.
        name: String,
        /// The rule it breaks.
        fault: Fault,
    },
}

/// The rule an action breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Fault {
    /// A kind this agent does not know how to carry out.
    #[error("unknown action kind")]
    UnknownKind,
    /// Fields missing or of the wrong type.
    #[error("{0}")]
    Unreadable(String),
    /// A name the host would refuse in a report.
    #[error(transparent)]
    Name(PackageError),
    /// A version the host would refuse in a report.
    #[error("{field}: {error}")]
    Version {
        /// `to_version` or `from_version`.
        field: &'static str,
        /// What is wrong with it.
        error: VersionError,
    },
    /// A version to reach that is not spelled as package versions are.
    #[error(
        "to_version: {0:?} is not spelled as package versions are ([epoch:]pkgver[-pkgrel]: \
         digits; letters, digits and ._+~ from a letter or digit; digits with at most one '.')"
    )]
    UnusualVersion(String),
    /// An install, upgrade, downgrade or reason change without the version to reach.
    #[error("no target version")]
    NoTargetVersion,
    /// A reason change that names no reason.
    #[error("no install reason to record")]
    NoReason,
    /// An earlier action already names this package.
    #[error("the package appears more than once in the plan")]
    Repeated,
}

/// Checks the plan of an operation as the host sent it (`null`: nothing to do) and returns it
/// typed, or says which action is refused and why.
pub fn check(raw: &Value) -> Result<Plan, InvalidPlan> {
    if raw.is_null() {
        return Ok(Plan::default());
    }
    let Some(entries) = raw.get("actions").and_then(Value::as_array) else {
        return Err(InvalidPlan::Malformed("it has no list of actions".into()));
    };
    let mut seen = HashSet::new();
    let mut actions = Vec::with_capacity(entries.len());
    for (index, entry) in entries.iter().enumerate() {
        let refuse = |fault| InvalidPlan::Action {
            position: index + 1,
            kind: entry
                .get("kind")
                .and_then(Value::as_str)
                .unwrap_or("?")
                .to_owned(),
            name: entry
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("?")
                .to_owned(),
            fault,
        };
        let action: Action = match serde_json::from_value(entry.clone()) {
            Ok(action) => action,
            Err(e) => {
                let kind = entry.get("kind").cloned().unwrap_or(Value::Null);
                let known = serde_json::from_value::<ActionKind>(kind).is_ok();
                return Err(refuse(if known {
                    Fault::Unreadable(e.to_string())
                } else {
                    Fault::UnknownKind
                }));
            }
        };
        check_action(&action).map_err(refuse)?;
        if !seen.insert(action.name.clone()) {
            return Err(refuse(Fault::Repeated));
        }
        actions.push(action);
    }
    // Skips and the summary are only shown, never handed to pacman.
    let skipped = raw
        .get("skipped")
        .cloned()
        .and_then(|s| serde_json::from_value(s).ok())
        .unwrap_or_default();
    let summary = raw
        .get("summary")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    Ok(Plan {
        actions,
        skipped,
        summary,
    })
}

/// The rules one action must pass on its own.
fn check_action(action: &Action) -> Result<(), Fault> {
    validate_name(&action.name).map_err(Fault::Name)?;
    for (field, version) in [
        ("to_version", &action.to_version),
        ("from_version", &action.from_version),
    ] {
        if let Some(version) = version {
            validate_version(version).map_err(|error| Fault::Version { field, error })?;
        }
    }
    if let Some(version) = &action.to_version
        && !spelled_as_package_version(version)
    {
        return Err(Fault::UnusualVersion(version.clone()));
    }
    if action.kind != ActionKind::Remove && action.to_version.is_none() {
        return Err(Fault::NoTargetVersion);
    }
    if action.kind == ActionKind::SetReason && action.reason.is_none() {
        return Err(Fault::NoReason);
    }
    Ok(())
}

/// Whether `version` is `[epoch:]pkgver[-pkgrel]` as packages spell it (see the module doc).
fn spelled_as_package_version(version: &str) -> bool {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let rest = match version.split_once(':') {
        Some((epoch, rest)) if digits(epoch) => rest,
        Some(_) => return false,
        None => version,
    };
    let (pkgver, pkgrel) = match rest.split_once('-') {
        Some((pkgver, pkgrel)) => (pkgver, Some(pkgrel)),
        None => (rest, None),
    };
    let pkgver_ok = pkgver.starts_with(|c: char| c.is_ascii_alphanumeric())
        && pkgver
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._+~".contains(&b));
    let pkgrel_ok = pkgrel.is_none_or(|rel| match rel.split_once('.') {
        Some((major, minor)) => digits(major) && digits(minor),
        None => digits(rel),
    });
    pkgver_ok && pkgrel_ok
}

#[cfg(test)]
mod tests;
