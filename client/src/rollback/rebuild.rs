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

use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::process::Command;

use super::{KeepError, pacman_paths};
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
        .unwrap_or_else(|| pacman_paths(&pacman.config().args));
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

/// Where the archive's dot files come from.
struct DotFiles {
    pkginfo: PathBuf,
    mtree: PathBuf,
    install: Option<PathBuf>,
    changelog: Option<PathBuf>,
}

/// The bsdtar spec for the package whose recorded `.MTREE` is `mtree`, installed under `root`:
/// entries without their `./` (pacman skips any entry name starting with `.` but its own dot
/// files), metadata as recorded; `size` and digests dropped (contents decide them), and for
/// `backup` files `time` too, so a modified one is taken whole from disk. Dot files come from
/// `dot`; those the database lacks are left out.
///
/// Two rules of libarchive's mtree reader shape it: a name without a `/` is relative to the
/// last directory entry so named (classic mtree), so every such top-level entry is followed by
/// `..` (a no-op after a file); and a regular file missing on disk silently becomes an empty
/// one, unless named by `contents=`, which makes it an error: every regular file gets one.
fn rewrite_spec(mtree: &str, backup: &[String], dot: &DotFiles, root: &Path, time: &str) -> String {
    let backup: HashSet<&[u8]> = backup.iter().map(|p| p.as_bytes()).collect();
    let root = escape(root);
    let root = root.trim_end_matches('/');
    let fixed = format!("type=file uid=0 gid=0 mode=644 time={time}");
    let mut out = format!(
        "#mtree\n.PKGINFO {fixed} contents={}\n.MTREE {fixed} contents={}\n",
        escape(&dot.pkginfo),
        escape(&dot.mtree)
    );
    // The type `/set` gives the entries after it (libarchive's default is a regular file).
    let mut set_type: Option<String> = None;
    for line in joined_lines(mtree) {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(set) = line.strip_prefix("/set")
            && let Some(t) = set.split_whitespace().find_map(|k| k.strip_prefix("type="))
        {
            set_type = Some(t.to_owned());
        } else if let Some(unset) = line.strip_prefix("/unset")
            && unset.split_whitespace().any(|k| k == "type" || k == "all")
        {
            set_type = None;
        }
        if line.starts_with('/') {
            out.push_str(line);
            out.push('\n');
            continue;
        }
        let (path, keywords) = line.split_once([' ', '\t']).unwrap_or((line, ""));
        let path = path.strip_prefix("./").unwrap_or(path);
        let own_contents = match path {
            ".INSTALL" => dot.install.as_deref().map(escape),
            ".CHANGELOG" => dot.changelog.as_deref().map(escape),
            _ => None,
        };
        if path.is_empty() || path == "." || (path.starts_with('.') && own_contents.is_none()) {
            continue;
        }
        let is_backup = backup.contains(unescape(path).as_slice());
        let mut kind = set_type.as_deref().unwrap_or("file");
        out.push_str(path);
        for keyword in keywords.split_whitespace() {
            let (key, value) = keyword.split_once('=').unwrap_or((keyword, ""));
            if key == "type" {
                kind = value;
            }
            let dropped = matches!(key, "size" | "cksum" | "contents" | "content")
                || key.ends_with("digest")
                || (is_backup && key == "time");
            if !dropped {
                out.push(' ');
                out.push_str(keyword);
            }
        }
        match own_contents {
            Some(file) => out.push_str(&format!(" contents={file}")),
            None if kind == "file" => out.push_str(&format!(" contents={root}/{path}")),
            None => {}
        }
        out.push('\n');
        if !path.contains('/') {
            out.push_str("..\n");
        }
    }
    out
}

/// mtree lines with `\`-continuations joined (libarchive reads them; its writer escapes a real
/// backslash as `\134`, so a trailing one is always a continuation).
fn joined_lines(text: &str) -> Vec<String> {
    let mut lines = Vec::new();
    let mut pending = String::new();
    for line in text.lines() {
        match line.strip_suffix('\\') {
            Some(start) => pending.push_str(start),
            None => lines.push(std::mem::take(&mut pending) + line),
        }
    }
    if !pending.is_empty() {
        lines.push(pending);
    }
    lines
}

/// `path` as one mtree word: anything but plain printable ASCII as `\ooo`.
fn escape(path: &Path) -> String {
    let mut out = String::new();
    for &byte in path.as_os_str().as_bytes() {
        if byte.is_ascii_graphic() && !matches!(byte, b'\\' | b'#' | b'=') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("\\{byte:03o}"));
        }
    }
    out
}

/// An mtree word's bytes: `\ooo` and the C escapes libarchive reads.
fn unescape(word: &str) -> Vec<u8> {
    let bytes = word.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|b| (b'0'..=b'7').contains(b)));
        match (bytes[i], octal, bytes.get(i + 1)) {
            (b'\\', Some(d), _) => {
                let value = d.iter().fold(0u32, |v, b| v * 8 + u32::from(b - b'0'));
                out.push(u8::try_from(value).unwrap_or(b'?'));
                i += 4;
                continue;
            }
            (b'\\', None, Some(&c)) => {
                out.push(match c {
                    b's' => b' ',
                    b't' => b'\t',
                    b'n' => b'\n',
                    b'r' => b'\r',
                    other => other,
                });
                i += 2;
                continue;
            }
            (b, _, _) => out.push(b),
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests;
