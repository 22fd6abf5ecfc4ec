//! The package functions, run on a source tree of this checkout with the binaries under test as
//! the release build, and what they stage.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use tempfile::TempDir;

use super::{AGENT, HOST, installed, packaging, read, repo, run};

/// Each package of the PKGBUILD and the program it ships.
const PACKAGES: [(&str, &str); 2] = [
    ("pacsync-host", "pacsync-host"),
    ("pacsync-agent", "pacsync"),
];

/// The files each package stages and their modes; `*` rows are for both packages, with
/// `{package}` and `{program}` filled in.
const STAGED: &str = "
    *             755 usr/bin/{program}
    *             644 usr/lib/tmpfiles.d/{package}.conf
    *             644 usr/share/bash-completion/completions/{program}
    *             644 usr/share/zsh/site-functions/_{program}
    *             644 usr/share/fish/vendor_completions.d/{program}.fish
    *             644 usr/share/man/man1/{program}.1
    *             644 usr/share/licenses/{package}/LICENSE-MIT
    *             644 usr/share/licenses/{package}/LICENSE-APACHE
    pacsync-host  644 usr/lib/systemd/system/pacsync-host.service
    pacsync-host  644 usr/lib/sysusers.d/pacsync.conf
    pacsync-host  640 etc/pacsync/host.toml
    pacsync-agent 644 usr/lib/systemd/system/pacsync-agent.service
    pacsync-agent 644 usr/share/libalpm/hooks/pacsync.hook
    pacsync-agent 644 usr/share/pacsync/waybar-module.jsonc
    pacsync-agent 600 etc/pacsync/agent.toml
";

/// What the package functions read from the source tree, besides the release build.
const SOURCES: &str = "host/dist client/dist packaging/arch LICENSE-MIT LICENSE-APACHE";

/// The packages as their functions stage them: `<root>/<package>/...`.
struct Staged {
    _dir: TempDir,
    root: PathBuf,
}

/// Runs each package function as makepkg would (in `$srcdir`, `$pkgname` the package, umask
/// 022, errexit) on `$srcdir/$pkgbase-$pkgver`: links to the files of this checkout the
/// functions read, and the binaries under test as `target/release`.
fn stage() -> Staged {
    let pkgbuild = packaging("PKGBUILD");
    let names = r#"set -e; source "$1"; echo "$pkgbase-$pkgver"; echo "${pkgname[*]}""#;
    let names = run(Command::new("bash")
        .args(["-c", names, "bash"])
        .arg(&pkgbuild));
    let (srcname, pkgnames) = names.trim().split_once('\n').expect("two lines");
    let packages = PACKAGES.map(|(p, _)| p).join(" ");
    assert_eq!(pkgnames, packages, "the PKGBUILD's packages");
    let dir = tempfile::tempdir().unwrap();
    let srcdir = dir.path().join("src");
    let tree = srcdir.join(srcname);
    for source in SOURCES.split_whitespace() {
        let link = tree.join(source);
        std::fs::create_dir_all(link.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(repo().join(source), link).unwrap();
    }
    std::fs::create_dir_all(tree.join("target/release")).unwrap();
    for (built, name) in [(HOST, "pacsync-host"), (AGENT, "pacsync")] {
        std::os::unix::fs::symlink(built, tree.join("target/release").join(name)).unwrap();
    }
    let root = dir.path().join("pkg");
    let script = r#"set -e; source "$1"; srcdir=$2; pkgdir=$3; pkgname=$4
        umask 022; cd "$srcdir"; "package_$pkgname""#;
    for (package, _) in PACKAGES {
        let mut bash = Command::new("bash");
        bash.args(["-c", script, "bash"])
            .arg(&pkgbuild)
            .arg(&srcdir);
        run(bash.arg(root.join(package)).arg(package));
    }
    Staged { _dir: dir, root }
}

/// Every file under `dir` (relative path) with its permission bits.
fn files(dir: &Path) -> BTreeMap<String, u32> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, u32>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            if meta.is_dir() {
                walk(base, &path, out);
            } else {
                let relative = path.strip_prefix(base).unwrap().display().to_string();
                out.insert(relative, meta.permissions().mode() & 0o7777);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// `Key=Value` entries of `[section]` (`Key = Value` in pacman hooks), comments skipped.
fn entries(text: &str, section: &str) -> Vec<(String, String)> {
    let mut current = "";
    let mut out = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with(['#', ';']) {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = name;
        } else if current == section
            && let Some((key, value)) = line.split_once('=')
        {
            out.push((key.trim().to_owned(), value.trim().to_owned()));
        }
    }
    out
}

/// The fields of the entries of the tmpfiles.d files under `root`.
fn tmpfiles(root: &Path) -> Vec<Vec<String>> {
    let dir = std::fs::read_dir(root.join("usr/lib/tmpfiles.d")).unwrap();
    let texts: Vec<String> = dir.map(|entry| read(&entry.unwrap().path())).collect();
    let lines = texts.iter().flat_map(|text| text.lines());
    let entries = lines.filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'));
    entries
        .map(|l| l.split_whitespace().map(str::to_owned).collect())
        .collect()
}

#[test]
fn the_package_functions_stage_every_path_the_units_and_the_hook_name() {
    let staged = stage();
    for (package, program) in PACKAGES {
        let root = staged.root.join(package);
        let found = files(&root);
        println!("{package}/");
        for (file, mode) in &found {
            println!("    {file}  {mode:o}");
        }
        let rows = STAGED
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>());
        let ours = rows.filter(|row| row.len() == 3 && (row[0] == "*" || row[0] == package));
        let expected: BTreeMap<String, u32> = ours
            .map(|row| {
                let file = row[2].replace("{package}", package);
                let mode = u32::from_str_radix(row[1], 8).unwrap();
                (file.replace("{program}", program), mode)
            })
            .collect();
        assert_eq!(found, expected, "{package}: staged files and modes");

        // Completions and the man page, made by the binary for its installed name.
        let doc = |file: &str| read(&root.join(file));
        let bash_file = format!("usr/share/bash-completion/completions/{program}");
        let bash = doc(&bash_file);
        let suffix = format!(" {program}");
        let registers = |l: &str| l.trim().starts_with("complete -F") && l.ends_with(&suffix);
        assert!(bash.lines().any(registers), "not for `{program}`:\n{bash}");
        assert!(
            !bash.contains("under-test"),
            "named after the test binary:\n{bash}"
        );
        run(Command::new("bash").arg("-n").arg(root.join(&bash_file)));
        let zsh = doc(&format!("usr/share/zsh/site-functions/_{program}"));
        assert!(zsh.starts_with(&format!("#compdef {program}\n")), "{zsh}");
        let fish = doc(&format!(
            "usr/share/fish/vendor_completions.d/{program}.fish"
        ));
        assert!(fish.contains(&format!("complete -c {program} ")), "{fish}");
        let man = doc(&format!("usr/share/man/man1/{program}.1"));
        let title = format!(".TH {program} 1");
        assert!(man.lines().any(|l| l.starts_with(&title)), "{man}");

        // What the units and the hook name: files of the package, or state its tmpfiles make.
        let tmpfiles = tmpfiles(&root);
        let present = |path: &str, named_by: &str| {
            if path.starts_with("/var/") {
                let made = tmpfiles.iter().any(|f| f[0] == "d" && f[1] == path);
                assert!(
                    made,
                    "{named_by} names {path}; no tmpfiles.d entry of {package} makes it"
                );
            } else {
                let file = root.join(path.trim_start_matches('/'));
                assert!(file.exists(), "{named_by} names {path}, not in {package}");
            }
        };
        let mut commands = Vec::new();
        for file in found.keys().filter(|f| f.ends_with(".service")) {
            let service = entries(&doc(file), "Service");
            let value = |key: &str| {
                service
                    .iter()
                    .find(|(k, _)| k == key)
                    .map(|(_, v)| v.clone())
            };
            for (key, setting) in &service {
                if key == "ExecStart" {
                    commands.push((file.clone(), setting.clone()));
                } else if key == "Environment" {
                    let values = setting.split_whitespace().filter_map(|a| a.split_once('='));
                    for (_, path) in values.filter(|(_, v)| v.starts_with('/')) {
                        present(path, file);
                    }
                }
            }
            // A unit's own user must be able to read what its command line names under /etc.
            if let Some(user) = value("User").filter(|u| u != "root") {
                let group = value("Group").unwrap_or(user);
                let start = value("ExecStart").unwrap_or_default();
                for path in start.split_whitespace().filter(|w| w.starts_with("/etc/")) {
                    let readable = |f: &&Vec<String>| {
                        let mode = u32::from_str_radix(&f[2], 8);
                        f[0] == "z"
                            && f[1] == path
                            && f.get(4) == Some(&group)
                            && mode.is_ok_and(|m| m & 0o040 != 0)
                    };
                    let entry = tmpfiles.iter().find(readable);
                    assert!(
                        entry.is_some(),
                        "{file}: no tmpfiles.d `z` entry lets {group} read {path}"
                    );
                }
            }
        }
        for file in found.keys().filter(|f| f.ends_with(".hook")) {
            let action = entries(&doc(file), "Action");
            let exec = action.into_iter().filter(|(k, _)| k == "Exec");
            commands.extend(exec.map(|(_, v)| (file.clone(), v)));
        }
        assert!(!commands.is_empty(), "{package} ships no unit or hook");
        for (file, command) in commands {
            let command = command.trim_start_matches(['-', '@', ':', '+', '!']);
            let program = command.split_whitespace().next().expect("a program");
            let mode = found.get(program.trim_start_matches('/'));
            assert_eq!(
                mode,
                Some(&0o755),
                "{file} runs {program}: not a program of {package}"
            );
            for path in command.split_whitespace().filter(|w| w.starts_with('/')) {
                present(path, &file);
            }
        }
    }
}

#[test]
fn systemd_accepts_the_staged_units() {
    if !installed("systemd-analyze") {
        println!("note: systemd-analyze is not installed; systemd-analyze verify skipped");
        return;
    }
    let staged = stage();
    let copies = tempfile::tempdir().unwrap();
    for (package, _) in PACKAGES {
        let root = staged.root.join(package);
        let units: Vec<String> = files(&root)
            .into_keys()
            .filter(|f| f.ends_with(".service"))
            .collect();
        assert!(!units.is_empty(), "{package} ships no unit");
        for unit in units {
            // `verify` refuses a program that does not exist: the staged binary stands in for
            // /usr/bin, everything else is the unit as shipped.
            let bin = format!("{}/usr/bin/", root.display());
            let text = read(&root.join(&unit)).replace("/usr/bin/", &bin);
            let name = Path::new(&unit)
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let copy = copies.path().join(&name);
            std::fs::write(&copy, text).unwrap();
            let mut verify = Command::new("systemd-analyze");
            let out = verify
                .arg("verify")
                .arg(&copy)
                .stdin(Stdio::null())
                .output();
            let out = out.expect("systemd-analyze runs");
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "{unit}: {stderr}");
            // An unknown key or an unparsable value is only a warning ("..., ignoring").
            let complaints: Vec<&str> = stderr.lines().filter(|l| l.contains(&name)).collect();
            assert!(complaints.is_empty(), "{complaints:#?}");
        }
    }
}
