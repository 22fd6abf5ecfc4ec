//! The example configs the packages install name only settings the code reads, at its defaults.

use std::collections::BTreeSet;
use std::process::Command;

use pacsync_client::config::{AgentConfig, PacmanConfig, RollbackConfig};
use pacsync_host::config::{Config, Settings};

use super::{HOST, packaging, read, run};

/// The flag a line of `--help` introduces (`--name` or `--name <VALUE>`, after `-x, ` if it
/// has a short form), not a line of a description that happens to start with one.
fn flag(line: &str) -> Option<&str> {
    let line = line.trim();
    let short = line
        .split_once(", ")
        .filter(|(s, _)| s.len() == 2 && s.starts_with('-'));
    let line = short.map_or(line, |(_, long)| long).strip_prefix("--")?;
    let (flag, rest) = line.split_once(' ').unwrap_or((line, ""));
    let name = flag
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    (name && (rest.is_empty() || rest.starts_with('<'))).then_some(flag)
}

/// The example with every commented-out setting (`#key = value`, `#[table]`) uncommented.
fn uncommented(example: &str) -> String {
    let setting = |l: &str| {
        l.strip_prefix('#')
            .is_some_and(|l| l.starts_with(|c: char| c.is_ascii_lowercase() || c == '['))
    };
    let lines = example
        .lines()
        .map(|l| if setting(l) { &l[1..] } else { l });
    lines.collect::<Vec<_>>().join("\n")
}

#[test]
fn the_example_configs_name_only_real_settings_at_the_code_defaults() {
    let dir = tempfile::tempdir().unwrap();

    // host.toml: every setting of `serve` and nothing else, each accepted by the host.
    let host = uncommented(&read(&packaging("host.toml")));
    let settings = host.lines().filter(|l| !l.starts_with('#'));
    let keys: BTreeSet<String> = settings
        .filter_map(|l| l.split_once(" = "))
        .map(|(k, _)| k.to_owned())
        .collect();
    let help = run(Command::new(HOST).args(["serve", "--help"]));
    let flags = help
        .lines()
        .filter_map(flag)
        .filter(|f| !["config", "help", "version"].contains(f));
    let flags: BTreeSet<String> = flags.map(|f| f.replace('-', "_")).collect();
    assert_eq!(
        keys, flags,
        "host.toml shows every setting of `pacsync-host serve --help`"
    );
    let path = dir.path().join("host.toml");
    std::fs::write(&path, &host).unwrap();
    if let Err(e) = Config::resolve(Settings::default(), Some(&path)) {
        panic!("host.toml, uncommented: {e}\n{host}");
    }

    // agent.toml: no credentials, so the agent says to register; every setting at the agent's
    // default.
    let unregistered = AgentConfig::load(&packaging("agent.toml")).unwrap_err();
    assert!(
        unregistered
            .to_string()
            .contains("run `pacsync register` first"),
        "{unregistered}"
    );
    let agent = uncommented(&read(&packaging("agent.toml")));
    for line in agent.lines() {
        let key = line.split_once('=').map(|(k, _)| k.trim());
        let credential = matches!(key, Some("server" | "endpoint_id" | "token"));
        assert!(!credential, "agent.toml: {line}");
    }
    let registered = format!(
        "server = \"https://pacsync.example.org:8080\"\n\
         endpoint_id = \"00000000-0000-0000-0000-000000000000\"\ntoken = \"t\"\n{agent}"
    );
    let path = dir.path().join("agent.toml");
    std::fs::write(&path, registered).unwrap();
    let config = AgentConfig::load(&path).unwrap_or_else(|e| panic!("agent.toml: {e}"));
    assert_eq!(config.pacman, PacmanConfig::default());
    let rollback = RollbackConfig::default();
    assert_eq!(config.rollback, rollback);
    // The store's default directory is inside one the package's tmpfiles entry makes.
    let tmpfiles = read(&packaging("pacsync-agent.tmpfiles"));
    let mut made = tmpfiles
        .lines()
        .filter_map(|l| l.strip_prefix("d ")?.split_whitespace().next());
    let store = rollback.dir.display();
    let message = format!("{store} is in no directory of pacsync-agent.tmpfiles");
    assert!(made.any(|d| rollback.dir.starts_with(d)), "{message}");
}
