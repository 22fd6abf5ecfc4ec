//! The package's mtree: reading its entries and digests, and rewriting it into the spec bsdtar
//! builds the copy from.

use std::collections::{HashMap, HashSet};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Each entry of an mtree (paths as written, without `./`) with its SHA-256 when it has one,
/// leaving out the package's dot files and `backup` files, whose contents are kept as they are
/// on disk.
pub(super) fn digests(mtree: &str, backup: &[String]) -> HashMap<String, Option<String>> {
    let backup: HashSet<&[u8]> = backup.iter().map(|p| p.as_bytes()).collect();
    joined_lines(mtree)
        .iter()
        .filter_map(|line| {
            let line = line.trim();
            if line.is_empty() || line.starts_with(['#', '/']) {
                return None;
            }
            let (path, keywords) = line.split_once([' ', '\t']).unwrap_or((line, ""));
            let path = path.strip_prefix("./").unwrap_or(path);
            let digest = keywords
                .split_whitespace()
                .find_map(|k| k.strip_prefix("sha256digest="));
            (!path.starts_with('.') && !backup.contains(unescape(path).as_slice()))
                .then(|| (path.to_owned(), digest.map(str::to_owned)))
        })
        .collect()
}

/// The first recorded file the archive lacks or holds other bytes for. (An archive gives the
/// bytes of a set of hard links once, with one of its names: the others carry no digest.)
pub(super) fn first_changed(
    recorded: &HashMap<String, Option<String>>,
    built: &HashMap<String, Option<String>>,
) -> Option<String> {
    let mut paths: Vec<&String> = recorded.keys().collect();
    paths.sort();
    paths
        .into_iter()
        .find(|path| match (&recorded[*path], built.get(*path)) {
            (Some(_), None) => true,
            (Some(want), Some(Some(have))) => want != have,
            _ => false,
        })
        .cloned()
}

/// Where the archive's dot files come from.
pub(super) struct DotFiles {
    pub(super) pkginfo: PathBuf,
    pub(super) mtree: PathBuf,
    pub(super) install: Option<PathBuf>,
    pub(super) changelog: Option<PathBuf>,
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
pub(super) fn rewrite_spec(
    mtree: &str,
    backup: &[String],
    dot: &DotFiles,
    root: &Path,
    time: &str,
) -> String {
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
            // Defaults may set how an entry looks, never where its contents come from.
            let kept: Vec<&str> = line
                .split_whitespace()
                .filter(|k| {
                    let key = k.split_once('=').map_or(*k, |(key, _)| key);
                    !(matches!(key, "size" | "cksum" | "contents" | "content")
                        || key.ends_with("digest"))
                })
                .collect();
            out.push_str(&kept.join(" "));
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
pub(super) fn joined_lines(text: &str) -> Vec<String> {
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
pub(super) fn escape(path: &Path) -> String {
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
pub(super) fn unescape(word: &str) -> Vec<u8> {
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
