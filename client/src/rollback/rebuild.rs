//! Rebuilding an installed package from what pacman recorded about it.
//!
//! pacman keeps, for each installed package, its `desc` (the metadata of `.PKGINFO`), `files`
//! (with the `%BACKUP%` list), `mtree` (the package's gzip'd `.MTREE`: every entry's type,
//! owner, mode, time, link target, size and digests) and `install` (its `.INSTALL`). Once
//! `pacman -Qkk` has confirmed that the installed files still match that `mtree`, an archive
//! built by bsdtar from the `mtree` itself (read as a spec, contents taken from the root) holds
//! the same files with the same metadata as the original package. The package's dot files are
//! never read from the root: `.PKGINFO` is generated from `desc` and `files`, `.INSTALL` and
//! `.CHANGELOG` come from the database, `.MTREE` is the recorded `mtree` itself, and
//! `.BUILDINFO` (which pacman does not keep) is left out. A modified `backup` file, which
//! `-Qkk` does not count as altered, goes in as it is on disk (contents and time).

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::process::Command;

use super::KeepError;
use crate::pacman::{Pacman, PacmanError};

/// How many of pacman's warnings a refusal quotes.
const QUOTED_WARNINGS: usize = 5;

/// `desc` sections and the `.PKGINFO` keys they become (one line per value).
const PKGINFO_KEYS: [(&str, &str); 16] = [
    ("NAME", "pkgname"),
    ("BASE", "pkgbase"),
    ("VERSION", "pkgver"),
    ("DESC", "pkgdesc"),
    ("URL", "url"),
    ("BUILDDATE", "builddate"),
    ("PACKAGER", "packager"),
    ("SIZE", "size"),
    ("ARCH", "arch"),
    ("LICENSE", "license"),
    ("GROUPS", "group"),
    ("REPLACES", "replaces"),
    ("DEPENDS", "depend"),
    ("OPTDEPENDS", "optdepend"),
    ("CONFLICTS", "conflict"),
    ("PROVIDES", "provides"),
];

/// Builds `name` `version`, as installed, into `<work>/package.pkg.tar.zst`.
pub(super) async fn rebuild(
    pacman: &Pacman,
    name: &str,
    version: &str,
    work: &Path,
) -> Result<PathBuf, KeepError> {
    let failed = |detail: String| KeepError::Failed {
        name: name.to_owned(),
        version: version.to_owned(),
        detail,
    };
    // `-v` makes pacman print the root and database path it really uses, which a `--config`
    // (RootDir, DBPath) can set without any argument saying so.
    let checked = match pacman.run(&["-v", "-Qkk", "--", name]).await {
        Ok(stdout) => stdout,
        Err(PacmanError::Failed { output }) => {
            return Err(match altered_detail(&output) {
                Some(detail) => KeepError::Altered {
                    name: name.to_owned(),
                    version: version.to_owned(),
                    detail,
                },
                None => failed(format!("pacman -Qkk failed: {}", summary(&output))),
            });
        }
        Err(e) => return Err(failed(e.to_string())),
    };
    let (root, dbpath) = crate::pacman::verbose_paths(&checked)
        .unwrap_or_else(|| crate::pacman::pacman_paths(&pacman.config().args));
    // The tools below run in `work`: a relative path means what it means to pacman, here.
    let absolute = |path: PathBuf| std::path::absolute(&path).map_err(|e| failed(e.to_string()));
    let (root, dbpath) = (absolute(root)?, absolute(dbpath)?);
    let entry = dbpath.join("local").join(format!("{name}-{version}"));
    // -Qkk checked whichever version is installed: the entry proves it is this one.
    if !entry.is_dir() {
        return Err(failed(format!("{version} is not the installed version")));
    }
    let read = |file: &str| {
        std::fs::read_to_string(entry.join(file))
            .map_err(|e| failed(format!("cannot read {}: {e}", entry.join(file).display())))
    };
    let (desc, files) = (read("desc")?, read("files")?);
    let info = pkginfo(&desc, &files).map_err(&failed)?;
    if section(&desc, "NAME") != [name] || section(&desc, "VERSION") != [version] {
        return Err(failed(format!(
            "{} describes another package",
            entry.display()
        )));
    }
    let mtree_file = entry.join("mtree");
    if !mtree_file.is_file() {
        // Without an mtree -Qkk checks nothing, and nothing says what the files should be.
        return Err(failed(
            "pacman recorded no mtree to verify its files by".into(),
        ));
    }
    // `-f`: a plain (uncompressed) mtree passes through as it is.
    let mtree = tool("gzip", &[OsStr::new("-dcf"), mtree_file.as_os_str()], work)
        .await
        .and_then(|out| String::from_utf8(out).map_err(|_| "the mtree is not text".to_owned()))
        .map_err(&failed)?;
    let pkginfo_file = work.join(".PKGINFO");
    std::fs::write(&pkginfo_file, info).map_err(|e| failed(e.to_string()))?;
    let optional = |file: &str| Some(entry.join(file)).filter(|p| p.is_file());
    let dot = DotFiles {
        pkginfo: pkginfo_file,
        mtree: mtree_file,
        install: optional("install"),
        changelog: optional("changelog"),
    };
    let builddate = section(&desc, "BUILDDATE")
        .first()
        .copied()
        .filter(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
        .unwrap_or("0");
    let spec = rewrite_spec(&mtree, &backup_paths(&files), &dot, &root, builddate);
    let spec_file = work.join("spec.mtree");
    std::fs::write(&spec_file, spec).map_err(|e| failed(e.to_string()))?;
    let package = work.join("package.pkg.tar.zst");
    // `-C` applies before the spec is opened, so the spec's path is absolute (work is).
    let mut spec_arg = OsString::from("@");
    spec_arg.push(&spec_file);
    tool(
        "bsdtar",
        &[
            OsStr::new("-c"),
            OsStr::new("--zstd"),
            OsStr::new("-f"),
            package.as_os_str(),
            OsStr::new("-C"),
            root.as_os_str(),
            &spec_arg,
        ],
        work,
    )
    .await
    .map_err(failed)?;
    // -Qkk checked the files before bsdtar read them; in between, anyone owning a packaged
    // file could have swapped it (for a symlink to a file only root may read, say). What was
    // archived must be what pacman recorded, byte for byte.
    let built = tool(
        "bsdtar",
        &[
            OsStr::new("-cf"),
            OsStr::new("-"),
            OsStr::new("--format=mtree"),
            OsStr::new("--options=!all,sha256"),
            &{
                let mut arg = OsString::from("@");
                arg.push(&package);
                arg
            },
        ],
        work,
    )
    .await
    .map_err(&failed)?;
    let built = digests(&String::from_utf8_lossy(&built), &[]);
    if let Some(path) = first_changed(&digests(&mtree, &backup_paths(&files)), &built) {
        return Err(KeepError::Altered {
            name: name.to_owned(),
            version: version.to_owned(),
            detail: format!("{path} changed while it was being copied"),
        });
    }
    Ok(package)
}

/// Runs `program` (in `dir`, with pacman's C locale, so that names are stored as bytes as
/// makepkg stores them); its stdout, or its complaint.
async fn tool(program: &str, args: &[&OsStr], dir: &Path) -> Result<Vec<u8>, String> {
    let output = Command::new(program)
        .args(args)
        .current_dir(dir)
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    if output.status.success() {
        Ok(output.stdout)
    } else {
        let stderr = String::from_utf8_lossy(&output.stderr);
        Err(format!("{program} failed: {}", summary(&stderr)))
    }
}

/// The first lines of `text`, joined, saying how many more there were.
fn summary(text: &str) -> String {
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let mut out = lines[..lines.len().min(QUOTED_WARNINGS)].join("; ");
    if lines.len() > QUOTED_WARNINGS {
        out.push_str(&format!("; and {} more", lines.len() - QUOTED_WARNINGS));
    }
    out
}

/// pacman's per-file warnings in a failed `-Qkk`, if that is why it failed.
fn altered_detail(output: &str) -> Option<String> {
    let warnings: Vec<&str> = output
        .lines()
        .filter_map(|l| l.strip_prefix("warning: "))
        .collect();
    (!warnings.is_empty()).then(|| summary(&warnings.join("\n")))
}

/// The values of `%KEY%` in a pacman database file: lines after the header, up to a blank line.
fn section<'a>(text: &'a str, key: &str) -> Vec<&'a str> {
    let header = format!("%{key}%");
    let mut values = Vec::new();
    let mut current: Option<&str> = None;
    for line in text.lines() {
        match current {
            _ if line.is_empty() => current = None,
            None => current = Some(line),
            Some(h) if h == header => values.push(line),
            Some(_) => {}
        }
    }
    values
}

/// The paths of `files`' `%BACKUP%` entries (`path<TAB>md5`).
fn backup_paths(files: &str) -> Vec<String> {
    section(files, "BACKUP")
        .into_iter()
        .map(|l| l.rsplit_once('\t').map_or(l, |(path, _)| path).to_owned())
        .collect()
}

/// The `.PKGINFO` of an installed package, from its `desc` and `files`.
fn pkginfo(desc: &str, files: &str) -> Result<String, String> {
    let mut out = String::from("# rebuilt by pacsync from the local database\n");
    for (key, pkginfo_key) in PKGINFO_KEYS {
        let values = section(desc, key);
        // pacman refuses a package without these (and a version without a pkgrel).
        if (key == "NAME" || key == "VERSION") && values.len() != 1 {
            return Err(format!("the database entry has no %{key}%"));
        }
        for value in values {
            out.push_str(&format!("{pkginfo_key} = {value}\n"));
        }
    }
    for path in backup_paths(files) {
        out.push_str(&format!("backup = {path}\n"));
    }
    Ok(out)
}

mod mtree;

use mtree::{DotFiles, digests, first_changed, rewrite_spec};

#[cfg(test)]
mod tests;
