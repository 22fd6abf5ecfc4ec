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
mod tests {
    use serde_json::json;

    use super::*;

    fn plan(actions: Value) -> Value {
        json!({ "actions": actions, "skipped": [], "summary": "crafted" })
    }

    fn fault_of(actions: Value) -> (usize, String, String, Fault) {
        match check(&plan(actions)) {
            Err(InvalidPlan::Action {
                position,
                kind,
                name,
                fault,
            }) => (position, kind, name, fault),
            other => panic!("expected a refused action, got {other:?}"),
        }
    }

    #[test]
    fn a_plan_the_host_would_make_passes_unchanged() {
        let raw = plan(json!([
            { "kind": "install", "name": "foo", "from_version": null, "to_version": "1:2.0-1", "reason": "explicit" },
            { "kind": "upgrade", "name": "lib32-glibc", "from_version": "2.39-1", "to_version": "2.40-1", "reason": "dependency" },
            { "kind": "remove", "name": "bar", "from_version": "1.0-1", "to_version": null, "reason": null },
            { "kind": "set_reason", "name": "baz", "from_version": "3-1", "to_version": "3-1", "reason": "explicit" },
        ]));
        let checked = check(&raw).unwrap();
        assert_eq!(serde_json::to_value(&checked).unwrap(), raw);
        assert_eq!(check(&Value::Null).unwrap(), Plan::default());
    }

    #[test]
    fn a_name_that_pacman_would_read_as_an_option_is_refused() {
        let (position, kind, name, fault) = fault_of(json!([
            { "kind": "remove", "name": "foo" },
            { "kind": "remove", "name": "-dd" },
        ]));
        assert_eq!(
            (position, kind.as_str(), name.as_str()),
            (2, "remove", "-dd")
        );
        assert!(matches!(fault, Fault::Name(PackageError::InvalidName(_))));
    }

    #[test]
    fn a_name_that_is_a_path_or_hidden_or_too_long_is_refused() {
        let long = "a".repeat(256);
        for bad in ["/tmp/x", "../x", ".hidden", "a b", "", long.as_str()] {
            let (_, _, name, fault) = fault_of(json!([
                { "kind": "install", "name": bad, "to_version": "1-1", "reason": "explicit" },
            ]));
            assert_eq!(name, bad);
            assert!(matches!(fault, Fault::Name(_)), "{bad:?}: {fault:?}");
        }
    }

    #[test]
    fn a_version_the_host_would_refuse_is_refused() {
        for (field, bad) in [
            ("to_version", "1/../../x"),
            ("to_version", ""),
            ("to_version", "a:1-1"),
            ("from_version", "1 -1"),
        ] {
            let mut action = json!({ "kind": "upgrade", "name": "foo", "from_version": "1-1", "to_version": "2-1", "reason": "explicit" });
            action[field] = json!(bad);
            let (_, _, _, fault) = fault_of(json!([action]));
            assert!(
                matches!(fault, Fault::Version { field: f, .. } if f == field),
                "{field}={bad:?}: {fault:?}"
            );
        }
        let long = format!("{}-1", "1".repeat(255));
        let (_, _, _, fault) = fault_of(json!([
            { "kind": "install", "name": "foo", "to_version": long, "reason": "explicit" },
        ]));
        assert!(matches!(
            fault,
            Fault::Version {
                error: VersionError::TooLong,
                ..
            }
        ));
    }

    #[test]
    fn a_target_version_spelled_as_no_package_version_is_refused() {
        for bad in [
            "1-1%2f..%2f..%2fx",
            "1-1?x#",
            "1&x=1-1",
            "1#-1",
            "..",
            ".1-1",
            "_1-1",
            "1-1.a",
            "1-1-1",
            "1-1..2",
            "1-",
            "1:2:3-1",
        ] {
            let (_, _, _, fault) = fault_of(json!([
                { "kind": "install", "name": "foo", "to_version": bad, "reason": "explicit" },
            ]));
            assert_eq!(fault, Fault::UnusualVersion(bad.into()), "{bad:?}");
        }
        for good in [
            "1:2.0-1",
            "2.12.1+r3.g1a2b_3~rc1-2.1",
            "r123.abcdef-1",
            "20240101-3",
            "1.0",
        ] {
            let raw = plan(json!([
                { "kind": "install", "name": "foo", "to_version": good, "reason": "explicit" },
            ]));
            assert!(check(&raw).is_ok(), "{good:?}");
        }
        // The installed version only names what is removed; pacman never fetches it.
        let removal = plan(json!([{ "kind": "remove", "name": "foo", "from_version": "1%x-1" }]));
        assert!(check(&removal).is_ok());
    }

    #[test]
    fn the_message_of_an_unusual_version_says_how_versions_are_spelled() {
        let error = check(&plan(json!([
            { "kind": "upgrade", "name": "foo", "to_version": "1-1?x#", "reason": "explicit" },
        ])))
        .unwrap_err();
        let message = error.to_string();
        assert!(
            message.starts_with("action 1 (upgrade \"foo\"): to_version: \"1-1?x#\""),
            "{message}"
        );
        assert!(message.contains("[epoch:]pkgver[-pkgrel]"), "{message}");
    }

    #[test]
    fn a_change_without_a_target_version_is_refused() {
        let (_, kind, _, fault) = fault_of(json!([{ "kind": "downgrade", "name": "foo" }]));
        assert_eq!(
            (kind.as_str(), fault),
            ("downgrade", Fault::NoTargetVersion)
        );
    }

    #[test]
    fn a_reason_change_without_a_reason_is_refused() {
        let (_, kind, _, fault) = fault_of(json!([
            { "kind": "set_reason", "name": "foo", "from_version": "1-1", "to_version": "1-1" },
        ]));
        assert_eq!((kind.as_str(), fault), ("set_reason", Fault::NoReason));
    }

    #[test]
    fn a_repeated_name_is_refused_at_its_second_action() {
        let (position, kind, name, fault) = fault_of(json!([
            { "kind": "install", "name": "foo", "to_version": "1-1", "reason": "explicit" },
            { "kind": "remove", "name": "foo" },
        ]));
        assert_eq!(
            (position, kind.as_str(), name.as_str(), fault),
            (2, "remove", "foo", Fault::Repeated)
        );
    }

    #[test]
    fn an_unknown_kind_is_refused_naming_the_entry() {
        let (position, kind, name, fault) = fault_of(json!([{ "kind": "purge", "name": "foo" }]));
        assert_eq!(
            (position, kind.as_str(), name.as_str(), fault),
            (1, "purge", "foo", Fault::UnknownKind)
        );
        let (_, _, _, fault) = fault_of(json!([{ "name": "foo" }]));
        assert_eq!(fault, Fault::UnknownKind);
    }

    #[test]
    fn a_known_kind_with_unreadable_fields_is_refused() {
        let (_, _, _, fault) = fault_of(json!([{ "kind": "remove", "name": 7 }]));
        assert!(matches!(fault, Fault::Unreadable(_)), "{fault:?}");
        let (_, _, _, fault) = fault_of(json!([
            { "kind": "install", "name": "foo", "to_version": "1-1", "reason": "whim" },
        ]));
        assert!(matches!(fault, Fault::Unreadable(_)), "{fault:?}");
    }

    #[test]
    fn something_that_is_not_a_plan_is_refused() {
        for raw in [json!("rm -rf /"), json!({ "actions": {} }), json!({})] {
            assert!(
                matches!(check(&raw), Err(InvalidPlan::Malformed(_))),
                "{raw}"
            );
        }
    }

    #[test]
    fn the_message_names_the_action_and_the_rule() {
        let error = check(&plan(json!([{ "kind": "remove", "name": "-dd" }]))).unwrap_err();
        let message = error.to_string();
        assert!(
            message.starts_with("action 1 (remove \"-dd\"): "),
            "{message}"
        );
        assert!(message.contains("invalid package name"), "{message}");
    }
}
