//! Real pacman for end-to-end tests: packages built with bsdtar the way makepkg lays them out,
//! throw-away pacman roots, and the real `pacsync` agent configured for each.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use crate::Api;

/// Builds real `.pkg.tar.zst` packages the way makepkg lays them out (`.PKGINFO`, `.MTREE` and
/// the files).
pub struct Forge {
    /// Where packages are staged before they are archived.
    pub dir: PathBuf,
}

/// What one test package declares: its relations to others and its files.
#[derive(Debug, Clone, Default)]
pub struct PackageSpec {
    name: String,
    version: String,
    relations: Vec<(&'static str, String)>,
    files: Vec<(String, String)>,
}

impl PackageSpec {
    /// A package with one file, `usr/share/NAME/version`, holding its version.
    pub fn new(name: &str, version: &str) -> Self {
        Self {
            name: name.into(),
            version: version.into(),
            relations: Vec::new(),
            files: vec![(format!("usr/share/{name}/version"), version.into())],
        }
    }

    /// `depend = what`.
    pub fn depends(mut self, what: &str) -> Self {
        self.relations.push(("depend", what.into()));
        self
    }

    /// `conflict = what`.
    pub fn conflicts(mut self, what: &str) -> Self {
        self.relations.push(("conflict", what.into()));
        self
    }

    /// `provides = what`.
    pub fn provides(mut self, what: &str) -> Self {
        self.relations.push(("provides", what.into()));
        self
    }

    /// `replaces = what`.
    pub fn replaces(mut self, what: &str) -> Self {
        self.relations.push(("replaces", what.into()));
        self
    }

    /// Another file, at `path` below the root, holding `content`.
    pub fn file(mut self, path: &str, content: &str) -> Self {
        self.files.push((path.into(), content.into()));
        self
    }

    /// A file pacman treats as configuration (`backup =`): kept as the user changed it.
    pub fn backup(mut self, path: &str, content: &str) -> Self {
        self.relations.push(("backup", path.into()));
        self.file(path, content)
    }
}

impl Forge {
    /// Builds `name` `version` (one file, no relations) into `out`.
    pub fn build(&self, out: &Path, name: &str, version: &str) -> PathBuf {
        self.build_spec(out, &PackageSpec::new(name, version))
    }

    /// Builds `spec` into `out` as `NAME-VERSION-any.pkg.tar.zst`.
    pub fn build_spec(&self, out: &Path, spec: &PackageSpec) -> PathBuf {
        let (name, version) = (&spec.name, &spec.version);
        let staging = self.dir.join(format!("{name}-{version}"));
        let _ = std::fs::remove_dir_all(&staging);
        let mut tops = vec![".PKGINFO".to_owned()];
        for (path, content) in &spec.files {
            let file = staging.join(path);
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(&file, content).unwrap();
            let top = path.split('/').next().unwrap().to_owned();
            if !tops.contains(&top) {
                tops.push(top);
            }
        }
        let mut pkginfo = format!(
            "pkgname = {name}\npkgbase = {name}\npkgver = {version}\npkgdesc = pacsync test package\n\
             url = https://example.invalid\nbuilddate = 1700000000\npackager = pacsync tests\nsize = 16\n\
             arch = any\nlicense = MIT\n"
        );
        for (key, value) in &spec.relations {
            pkginfo.push_str(&format!("{key} = {value}\n"));
        }
        std::fs::write(staging.join(".PKGINFO"), pkginfo).unwrap();
        // makepkg's file list with the recorded metadata and checksums, which `pacman -Qkk`
        // (and so the rollback store) verifies installed files against.
        run(Command::new("bsdtar")
            .arg("-czf")
            .arg(staging.join(".MTREE"))
            .args([
                "--format=mtree",
                "--options=!all,use-set,type,uid,gid,mode,time,size,md5,sha256,link",
            ])
            .arg("-C")
            .arg(&staging)
            .args(&tops));
        tops.push(".MTREE".to_owned());
        let file = out.join(format!("{name}-{version}-any.pkg.tar.zst"));
        run(Command::new("bsdtar")
            .arg("--zstd")
            .arg("-cf")
            .arg(&file)
            .arg("-C")
            .arg(&staging)
            .args(&tops));
        file
    }
}

/// Runs `command`, failing the test with its output when it fails.
#[track_caller]
pub fn run(command: &mut Command) -> Output {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("{command:?}: {e}"));
    assert!(
        out.status.success(),
        "{command:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A throw-away pacman root with its own database, cache and config, and the `pacsync` agent
/// configured for it.
pub struct Machine {
    /// The root pacman installs into.
    pub root: PathBuf,
    /// The agent's config file.
    pub config_file: PathBuf,
    /// The `pacsync` binary under test.
    pacsync: PathBuf,
}

impl Machine {
    /// A root at `base/name` whose only sync repository is `repo` (`[test]`); `pacsync` is the
    /// agent binary.
    pub fn new(base: &Path, name: &str, repo: &Path, pacsync: &str) -> Self {
        let root = base.join(name);
        for dir in ["var/lib/pacman", "cache", "hooks"] {
            std::fs::create_dir_all(root.join(dir)).unwrap();
        }
        std::fs::write(
            root.join("pacman.conf"),
            format!(
                "[options]\nArchitecture = auto\nSigLevel = Never\nLocalFileSigLevel = Never\nHookDir = {}\n\n[test]\nServer = file://{}\n",
                root.join("hooks").display(),
                repo.display()
            ),
        )
        .unwrap();
        let machine = Self {
            config_file: root.join("agent.toml"),
            root,
            pacsync: pacsync.into(),
        };
        machine.pacman(&["-Sy"]);
        machine
    }

    /// The options that point pacman at this root.
    pub fn pacman_args(&self) -> Vec<String> {
        vec![
            format!("--root={}", self.root.display()),
            format!("--dbpath={}", self.root.join("var/lib/pacman").display()),
            format!("--cachedir={}", self.root.join("cache").display()),
            format!("--config={}", self.root.join("pacman.conf").display()),
        ]
    }

    /// Runs pacman on this root (`--noconfirm`), failing the test if it fails.
    pub fn pacman(&self, args: &[&str]) -> Output {
        run(Command::new("pacman")
            .args(self.pacman_args())
            .arg("--noconfirm")
            .args(args))
    }

    /// `(name, version, explicit)` of every installed package.
    pub fn installed(&self) -> Vec<(String, String, bool)> {
        let all = String::from_utf8(self.pacman(&["-Q"]).stdout).unwrap();
        let explicit = Command::new("pacman")
            .args(self.pacman_args())
            .arg("-Qqe")
            .output()
            .unwrap()
            .stdout;
        let explicit = String::from_utf8(explicit).unwrap();
        all.lines()
            .map(|l| {
                let (n, v) = l.split_once(' ').unwrap();
                (n.to_owned(), v.to_owned(), explicit.lines().any(|e| e == n))
            })
            .collect()
    }

    /// Runs `pacsync --config <this machine's> ARGS`.
    pub fn pacsync(&self, args: &[&str]) -> Output {
        Command::new(&self.pacsync)
            .arg("--config")
            .arg(&self.config_file)
            .args(args)
            .output()
            .unwrap()
    }

    /// Registers the agent with `enrollment` under `name`, with `archive` as its file://
    /// archive of the `test` repository; returns the endpoint id.
    pub fn register(&self, api: &Api, enrollment: &str, name: &str, archive: &Path) -> String {
        let mut args = vec![
            "register".to_owned(),
            "--server".to_owned(),
            api.base.clone(),
            "--enrollment-token".to_owned(),
            enrollment.to_owned(),
            "--name".to_owned(),
            name.to_owned(),
            format!("--cache-dir={}", self.root.join("cache").display()),
            format!(
                "--archive-url=file://{}/{{name}}-{{version}}-{{arch}}.pkg.tar.zst",
                archive.display()
            ),
            // The test archive keeps every version of the test repository's packages.
            "--archive-repo=test".to_owned(),
            format!("--rollback-dir={}", self.root.join("rollback").display()),
        ];
        args.extend(
            self.pacman_args()
                .into_iter()
                .map(|a| format!("--pacman-arg={a}")),
        );
        let out = Command::new(&self.pacsync)
            .arg("--config")
            .arg(&self.config_file)
            .args(&args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "register: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let config = std::fs::read_to_string(&self.config_file).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&self.config_file)
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o600
        );
        config
            .lines()
            .find_map(|l| l.strip_prefix("endpoint_id = "))
            .unwrap()
            .trim_matches('"')
            .to_owned()
    }

    /// Runs `pacsync <verb>` while this machine's agent carries the operation out.
    pub async fn operate(
        &self,
        api: &Api,
        endpoint: &str,
        verb: &[&str],
    ) -> (Output, serde_json::Value) {
        let follower = std::process::Command::new(&self.pacsync)
            .arg("--config")
            .arg(&self.config_file)
            .args(verb)
            .args(["--json", "--timeout", "60"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Wait (bounded) for the operation to exist, then let the agent handle it.
        for _ in 0..100 {
            let ops = api
                .get(&format!("/api/sync/{endpoint}/operations?limit=1"))
                .await;
            if ops.body["items"][0]["status"] == "pending" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let agent = self.pacsync(&["agent", "--once"]);
        assert!(
            agent.status.success(),
            "agent: {}",
            String::from_utf8_lossy(&agent.stderr)
        );
        let out = tokio::task::spawn_blocking(move || follower.wait_with_output().unwrap())
            .await
            .unwrap();
        let json = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
        (out, json)
    }
}
