//! What `token issue` refuses before touching anything: a lifetime over a year, a malformed
//! name, a signing key too short to trust.

use std::process::Command;

use pacsync_tests::shared_tempdir;

use super::{HOST, NO_DATABASE, host_cli, shared_key, stderr, stdout};

#[test]
fn a_lifetime_over_a_year_and_a_malformed_name_are_refused_before_anything_is_touched() {
    let (_keys, key) = shared_key();
    let out = host_cli(
        &[
            "token",
            "issue",
            "--role",
            "admin",
            "--name",
            "long",
            "--ttl-hours",
            "8761",
        ],
        NO_DATABASE,
        &key,
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("8760 hours (one year"),
        "{}",
        stderr(&out)
    );
    assert!(stdout(&out).is_empty());
    let out = host_cli(
        &["token", "issue", "--role", "admin", "--name", "two words"],
        NO_DATABASE,
        &key,
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stdout(&out).is_empty());
}

#[test]
fn a_short_signing_key_is_refused_with_how_to_generate_one() {
    let dir = shared_tempdir();
    let key = dir.path().join("weak-key");
    std::fs::write(&key, "0123456789").unwrap();
    let serve = Command::new("timeout")
        .arg("120")
        .arg(HOST)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .arg("--jwt-key-file")
        .arg(&key)
        .env("PACSYNC_DATABASE_URL", NO_DATABASE)
        .env_remove("PACSYNC_CONFIG")
        .output()
        .unwrap();
    let issue = host_cli(
        &["token", "issue", "--role", "admin", "--name", "x"],
        NO_DATABASE,
        &key,
    );
    for out in [serve, issue] {
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        let message = stderr(&out);
        assert!(message.contains("weak-key"), "names the file: {message}");
        assert!(message.contains("at least 32"), "{message}");
        assert!(
            message.contains("openssl rand -hex 32"),
            "says how: {message}"
        );
        assert!(stdout(&out).is_empty());
    }
}
