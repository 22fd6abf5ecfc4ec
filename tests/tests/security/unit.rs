//! The host as it ships: the systemd unit and sysusers entry in `host/dist/` run it as its own
//! `pacsync` user in a sandbox, systemd accepts the unit as written, and a host started as root
//! says so and points at the unit.
//!
//! The unit and sysusers files are read as the files an administrator installs, with a parser
//! no smarter than needed: `[Section]` headers and `Key=Value` lines, `#`/`;` comments skipped.
//! `systemd-analyze verify` checks the unit where it is installed (it is skipped, saying so,
//! where the tool is absent), with `ExecStart=` pointing at the binary under test, since
//! `verify` refuses a unit whose program does not exist.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use pacsync_tests::{PrivateCluster, shared_tempdir};

const HOST: &str = env!("CARGO_BIN_EXE_pacsync-host-under-test");

fn dist(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../host/dist")
        .join(file)
}

fn read(file: &str) -> String {
    let path = dist(file);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every `Key=Value` of `section`, in order (a key may repeat, as `Environment=` does).
fn section_entries(unit: &str, section: &str) -> Vec<(String, String)> {
    let mut current = String::new();
    let mut entries = Vec::new();
    for line in unit.lines().map(str::trim) {
        if line.is_empty() || line.starts_with(['#', ';']) {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = name.to_owned();
        } else if current == section
            && let Some((key, value)) = line.split_once('=')
        {
            entries.push((key.trim().to_owned(), value.trim().to_owned()));
        }
    }
    entries
}

/// The values `key` is given in the unit's `[Service]` section.
fn service_values(unit: &str, key: &str) -> Vec<String> {
    section_entries(unit, "Service")
        .into_iter()
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v)
        .collect()
}

/// The one value of `key` in `[Service]`; fails if it is missing or given more than once.
fn service_value(unit: &str, key: &str) -> String {
    match service_values(unit, key).as_slice() {
        [value] => value.clone(),
        other => panic!("[Service] {key}= should be set once, is {other:?}"),
    }
}

/// The fields of a sysusers.d line, a double-quoted field kept whole.
fn sysusers_fields(line: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut rest = line.trim();
    while !rest.is_empty() {
        if let Some(quoted) = rest.strip_prefix('"') {
            let (field, after) = quoted.split_once('"').expect("closing quote");
            fields.push(field.to_owned());
            rest = after.trim_start();
        } else {
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            fields.push(rest[..end].to_owned());
            rest = rest[end..].trim_start();
        }
    }
    fields
}

#[test]
fn the_shipped_unit_runs_the_host_as_its_own_user_in_a_sandbox() {
    let unit = read("pacsync-host.service");
    for (key, expected) in [
        ("User", "pacsync"),
        ("Group", "pacsync"),
        ("StateDirectory", "pacsync"),
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
    ] {
        assert_eq!(service_value(&unit, key), expected, "[Service] {key}=");
    }
    let families: BTreeSet<String> = service_values(&unit, "RestrictAddressFamilies")
        .iter()
        .flat_map(|v| v.split_whitespace().map(str::to_owned))
        .collect();
    assert_eq!(
        families,
        BTreeSet::from(["AF_UNIX", "AF_INET", "AF_INET6"].map(str::to_owned)),
        "only local sockets and IP"
    );
    assert_eq!(
        service_value(&unit, "CapabilityBoundingSet"),
        "",
        "an empty bounding set drops every capability"
    );
    assert!(
        service_values(&unit, "AmbientCapabilities").is_empty(),
        "no capability is handed back"
    );
    assert!(
        service_value(&unit, "ExecReload").contains("-HUP"),
        "`systemctl reload` sends the SIGHUP that re-reads the certificates"
    );
    let data_dir = service_values(&unit, "Environment")
        .iter()
        .flat_map(|v| v.split_whitespace())
        .find_map(|assignment| assignment.strip_prefix("PACSYNC_DATA_DIR="))
        .map(str::to_owned)
        .expect("the unit sets PACSYNC_DATA_DIR");
    assert_eq!(
        data_dir,
        format!("/var/lib/{}", service_value(&unit, "StateDirectory")),
        "the data directory is the one systemd creates for the user"
    );
}

#[test]
fn the_sysusers_entry_creates_the_user_the_unit_runs_as_with_the_data_directory_as_home() {
    let sysusers = read("pacsync.sysusers");
    let lines: Vec<Vec<String>> = sysusers
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(sysusers_fields)
        .collect();
    let [fields] = lines.as_slice() else {
        panic!("one sysusers line expected, found {lines:?}");
    };
    assert_eq!(fields[0], "u", "a user (with its group): {fields:?}");
    assert_eq!(fields[1], "pacsync", "{fields:?}");
    assert_eq!(
        fields.get(4).map(String::as_str),
        Some("/var/lib/pacsync"),
        "home: {fields:?}"
    );
    let unit = read("pacsync-host.service");
    assert_eq!(service_value(&unit, "User"), fields[1]);
}

#[test]
fn systemd_accepts_the_shipped_unit_as_written() {
    let Ok(which) = Command::new("which").arg("systemd-analyze").output() else {
        println!("note: `which` cannot run; systemd-analyze verify skipped");
        return;
    };
    if !which.status.success() {
        println!("note: systemd-analyze is not installed; systemd-analyze verify skipped");
        return;
    }
    // `verify` refuses a program that does not exist: the binary under test stands in for
    // /usr/bin/pacsync-host, everything else is the file as shipped.
    let unit: String = read("pacsync-host.service")
        .lines()
        .map(|line| match line.strip_prefix("ExecStart=") {
            Some(command) => {
                let arguments = command.split_once(' ').map_or("", |(_, args)| args);
                format!("ExecStart={HOST} {arguments}\n")
            }
            None => format!("{line}\n"),
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("pacsync-host.service");
    std::fs::write(&copy, unit).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&copy)
        .stdin(Stdio::null())
        .output()
        .expect("systemd-analyze runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // An unknown key or an unparsable value is only a warning ("..., ignoring") to verify.
    let complaints: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("pacsync-host.service"))
        .collect();
    assert!(complaints.is_empty(), "{complaints:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_started_as_root_warns_and_recommends_the_unit() {
    if !nix::unistd::geteuid().is_root() {
        println!("note: not running as root; the root warning is not tested");
        return;
    }
    let cluster = PrivateCluster::start().await;
    let data = shared_tempdir();
    let log = data.path().join("host.log");
    let cache = std::env::temp_dir().join("pacsync-test-plugin-cache");
    let mut child = Command::new(HOST)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data.path())
        .arg("--plugin-cache-dir")
        .arg(&cache)
        .env("PACSYNC_DATABASE_URL", cluster.url())
        .env("PACSYNC_LOG", "warn")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("spawn pacsync-host");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .expect("read host stdout");
    let started = line.starts_with("listening on ");
    if started {
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
    } else {
        let _ = child.kill();
    }
    child.wait().expect("wait for host");
    let stderr = std::fs::read_to_string(&log).unwrap();
    assert!(started, "host did not start: {line:?}\n{stderr}");
    assert!(stderr.contains("running as root"), "{stderr}");
    assert!(
        stderr.contains("host/dist/pacsync-host.service"),
        "the warning names the unit to use: {stderr}"
    );
}
