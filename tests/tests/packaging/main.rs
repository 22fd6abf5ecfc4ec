//! The Arch packaging in `packaging/arch/`, run as makepkg runs it.
//!
//! A PKGBUILD is only tried for real on an Arch machine at release time, so this keeps it
//! honest on every run: it is valid bash; the committed `.SRCINFO` is what makepkg makes of it;
//! its package functions, run on a source tree of this checkout with the binaries under test as
//! the release build, stage exactly the expected files with the expected modes, with working
//! completions and man pages; every path the shipped units and the pacman hook name is in the
//! package that ships them (a file) or made by its tmpfiles entry (state under /var), and the
//! host's config is readable by the host's group; systemd accepts the staged units; and the
//! example configs name only settings the code reads (every setting, for the host), at the
//! code's defaults.

mod examples;
mod staged;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use pacsync_tests::shared_tempdir;

const HOST: &str = env!("CARGO_BIN_EXE_pacsync-host-under-test");
const AGENT: &str = env!("CARGO_BIN_EXE_pacsync-under-test");

pub fn repo() -> PathBuf {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/..")).to_owned()
}

pub fn packaging(file: &str) -> PathBuf {
    repo().join("packaging/arch").join(file)
}

pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Runs `command` to success (else fails the test with its output); its stdout.
pub fn run(command: &mut Command) -> String {
    let out = command.stdin(Stdio::null()).output();
    let out = out.unwrap_or_else(|e| panic!("{command:?}: {e}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{command:?}: {}\n{stderr}",
        out.status
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

pub fn installed(program: &str) -> bool {
    let mut found = Command::new("sh");
    found
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null());
    found.status().is_ok_and(|s| s.success())
}

#[test]
fn the_pkgbuild_is_valid_bash() {
    run(Command::new("bash").arg("-n").arg(packaging("PKGBUILD")));
}

/// `makepkg --printsrcinfo` of the PKGBUILD. makepkg refuses to run as root and wants to write
/// where it runs: as root it runs as `nobody`, on a copy in a directory that user owns.
fn printsrcinfo() -> String {
    let missing = "makepkg is not installed (Debian: apt-get install makepkg; .ci/run does)";
    assert!(installed("makepkg"), "{missing}");
    let dir = shared_tempdir();
    std::fs::copy(packaging("PKGBUILD"), dir.path().join("PKGBUILD")).unwrap();
    let mut makepkg = if nix::unistd::geteuid().is_root() {
        std::os::unix::fs::chown(dir.path(), Some(65534), Some(65534)).unwrap();
        let mut setpriv = Command::new("setpriv");
        setpriv.args(["--reuid=65534", "--regid=65534", "--clear-groups"]);
        setpriv.arg("makepkg");
        setpriv
    } else {
        Command::new("makepkg")
    };
    let makepkg = makepkg.arg("--printsrcinfo").current_dir(dir.path());
    run(makepkg.env("HOME", dir.path()))
}

#[test]
fn the_srcinfo_matches_the_pkgbuild() {
    let committed = read(&packaging(".SRCINFO"));
    let generated = printsrcinfo();
    assert!(
        committed == generated,
        "packaging/arch/.SRCINFO is not what makepkg makes of the PKGBUILD; regenerate it, as a \
         user other than root: cd packaging/arch && makepkg --printsrcinfo > .SRCINFO\n\
         --- committed\n{committed}--- generated\n{generated}"
    );
}
