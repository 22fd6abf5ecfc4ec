//! The documentation in `docs/` stays true to the code in the two ways a test can see:
//!
//! - every fenced code block says whether a test runs it: its info string is a language and
//!   `tested` (run verbatim by a test: only `reporting.md`'s, by `tests/tests/reporting/views.rs`)
//!   or `example` (illustrative);
//! - `troubleshooting.md` has a `### `CODE`` section for every problem code the host can answer
//!   with, and for no other. The codes are read from `ErrorCode::as_str` in `host/src/error.rs`,
//!   whose match the compiler keeps exhaustive, so a new variant cannot be missed.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every `docs/*.md`, by file name.
fn documents() -> Vec<(String, String)> {
    let mut found: Vec<(String, String)> = std::fs::read_dir(repo().join("docs"))
        .expect("docs/ exists")
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "md"))
        .map(|path| {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, read(&path))
        })
        .collect();
    found.sort();
    found
}

/// The info strings of the fenced blocks of `text`, with their line numbers.
fn fences(text: &str) -> Vec<(usize, String)> {
    let mut open = false;
    let mut found = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if let Some(info) = line.trim_start().strip_prefix("```") {
            if !open {
                found.push((i + 1, info.trim().to_owned()));
            }
            open = !open;
        }
    }
    assert!(!open, "an unclosed code block");
    found
}

#[test]
fn every_code_block_in_docs_says_whether_a_test_runs_it() {
    let mut problems = Vec::new();
    for (name, text) in documents() {
        for (line, info) in fences(&text) {
            let words: Vec<&str> = info.split_whitespace().collect();
            let ok = match words.as_slice() {
                [_, "example"] => true,
                [_, "tested"] => name == "reporting.md",
                _ => false,
            };
            if !ok {
                problems.push(format!("docs/{name}:{line}: ```{info}"));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "code blocks need a language and `example` (or `tested`, in reporting.md, whose test runs \
         them):\n{}",
        problems.join("\n")
    );
}

/// The spellings in `ErrorCode::as_str`.
fn host_codes() -> BTreeSet<String> {
    let source = read(&repo().join("host/src/error.rs"));
    let start = source
        .find("pub fn as_str(self)")
        .expect("ErrorCode::as_str");
    let body = &source[start..];
    let body = &body[..body.find("\n    }\n").expect("the end of as_str")];
    let codes: BTreeSet<String> = body
        .split("=> \"")
        .skip(1)
        .map(|rest| rest[..rest.find('"').unwrap()].to_owned())
        .collect();
    assert!(codes.len() > 40, "read too few codes: {codes:?}");
    codes
}

#[test]
fn troubleshooting_explains_every_problem_code_the_host_has_and_no_other() {
    let text = read(&repo().join("docs/troubleshooting.md"));
    let documented: BTreeSet<String> = text
        .lines()
        .filter_map(|line| line.strip_prefix("### `"))
        .filter_map(|rest| rest.strip_suffix('`'))
        .map(str::to_owned)
        .collect();
    let host = host_codes();
    let missing: Vec<&String> = host.difference(&documented).collect();
    let stale: Vec<&String> = documented.difference(&host).collect();
    assert!(
        missing.is_empty() && stale.is_empty(),
        "docs/troubleshooting.md lacks {missing:?} and names codes the host no longer has: \
         {stale:?}"
    );
}
