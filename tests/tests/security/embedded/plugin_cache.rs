//! The host runs only the compiled plugins it wrote itself: artifacts in the plugin cache that
//! are modified or swapped while the host is stopped are compiled again, never loaded.

use std::path::Path;

use pacsync_tests::{Api, Fleet, shared_tempdir, state};
use serde_json::Value;

use super::process::{Served, admin_token};
use super::{mode, runs_as_root};

/// What a warning about a cached artifact that failed its MAC says.
const INTEGRITY_WARNING: &str = "failed its integrity check";

/// The cached artifact of the built-in `id`, found by its component's sha256.
fn artifact(cache: &Path, sha256: &str) -> std::path::PathBuf {
    let found: Vec<_> = std::fs::read_dir(cache)
        .unwrap()
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| {
            path.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(sha256))
        })
        .collect();
    assert_eq!(found.len(), 1, "one artifact for {sha256}: {found:?}");
    found.into_iter().next().unwrap()
}

fn actions(op: &Value) -> Vec<(String, String)> {
    op["plan"]["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["kind"].as_str().unwrap().to_owned(),
                a["name"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_or_swapped_compiled_plugin_is_compiled_again_and_never_run() {
    if !runs_as_root() {
        return;
    }
    let data = shared_tempdir();
    let data_dir = data.path().join("state");
    let cache = data_dir.join("plugin-cache");
    const BUILTINS: [&str; 3] = ["mirror", "conservative", "holds"];

    let mut host = Served::start(&data_dir, &data.path().join("first.log"));
    let api = Api::new(host.base.clone(), admin_token(&data_dir));
    let mut sha256 = Vec::new();
    for id in BUILTINS {
        let plugin = api.get(&format!("/api/plugins/{id}")).await;
        sha256.push(
            plugin.expect(200, None)["sha256"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    host.stop();
    let [mirror, conservative, holds] = [0, 1, 2].map(|i| artifact(&cache, &sha256[i]));
    for file in [&mirror, &conservative, &holds] {
        assert_eq!(mode(file), 0o600, "{}", file.display());
    }
    assert_eq!(mode(&data_dir.join("plugin-cache-key")), 0o600);

    // Swap two valid artifacts, and flip one bit in the middle of the third.
    let aside = cache.join("aside");
    std::fs::rename(&mirror, &aside).unwrap();
    std::fs::rename(&conservative, &mirror).unwrap();
    std::fs::rename(&aside, &conservative).unwrap();
    let mut bytes = std::fs::read(&holds).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&holds, bytes).unwrap();

    let log = data.path().join("tampered.log");
    let mut host = Served::start(&data_dir, &log);
    let api = Api::new(host.base.clone(), admin_token(&data_dir));
    for id in BUILTINS {
        let plugin = api.get(&format!("/api/plugins/{id}")).await;
        assert_eq!(
            plugin.expect(200, None)["name"],
            id,
            "{id} runs its own code"
        );
    }
    // New pools follow `mirror`: conservative would keep vim and htop as they are.
    let fleet = Fleet::builder(&api)
        .pool("after-tampering")
        .reference(
            "ref",
            state(&[("linux", "6.1-1"), ("vim", "9.1-1"), ("git", "2.40-1")]),
        )
        .member(
            "b",
            state(&[
                ("linux", "6.0-1"),
                ("vim", "9.2-1"),
                ("git", "2.40-1"),
                ("htop", "3-1"),
            ]),
        )
        .build()
        .await;
    let b = &fleet.members[0];
    let op = api
        .as_(&b.token)
        .post(&format!("/api/sync/{}/sync-to-latest", b.id))
        .await;
    assert_eq!(
        actions(op.expect(202, None)),
        [
            ("upgrade".to_owned(), "linux".to_owned()),
            ("downgrade".to_owned(), "vim".to_owned()),
            ("remove".to_owned(), "htop".to_owned())
        ]
    );
    host.stop();
    let logged = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        logged.matches(INTEGRITY_WARNING).count(),
        3,
        "one warning per artifact:\n{logged}"
    );
    for file in [&mirror, &conservative, &holds] {
        assert_eq!(mode(file), 0o600, "rewritten {}", file.display());
    }

    // Compiled again and written back: the next start trusts them.
    let log = data.path().join("rewritten.log");
    let mut host = Served::start(&data_dir, &log);
    host.stop();
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(!logged.contains(INTEGRITY_WARNING), "{logged}");
}
