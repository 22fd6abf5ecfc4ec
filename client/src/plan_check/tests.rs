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
