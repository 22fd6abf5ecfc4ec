//! Running PostgreSQL's binaries for the embedded cluster: which ones, as whom, and how their
//! output is reported.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Stdio;

use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use super::{EmbeddedPostgres, EmbeddedPostgresError, UNPRIVILEGED_USER, io_err};

impl EmbeddedPostgres {
    /// Runs a PostgreSQL binary, as the unprivileged user when the host is root.
    pub(super) async fn run(
        &self,
        program: &'static str,
        args: &[OsString],
    ) -> Result<String, EmbeddedPostgresError> {
        self.run_with_input(program, args, None).await
    }

    /// Like [`EmbeddedPostgres::run`], writing `input` to the program's stdin. Input stays out
    /// of the command line, where any local user could read it.
    pub(super) async fn run_with_input(
        &self,
        program: &'static str,
        args: &[OsString],
        input: Option<&[u8]>,
    ) -> Result<String, EmbeddedPostgresError> {
        let binary = self.bin_dir.join(program);
        if !binary.exists() {
            return Err(EmbeddedPostgresError::MissingBinary(program));
        }
        let mut command = if self.run_as.is_some() {
            let mut c = Command::new("runuser");
            c.args(["-u", UNPRIVILEGED_USER, "--"]).arg(&binary);
            c
        } else {
            Command::new(&binary)
        };
        command
            .args(args)
            .stdin(if input.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .current_dir(&self.bin_dir);
        // pg_ctl start leaves the server running; its output must not hold our pipes open.
        let output = if program == "pg_ctl" && args.first().is_some_and(|a| a == "start") {
            // Its own process group, so a Ctrl-C aimed at the host does not stop the database
            // under in-flight requests; the host stops it after draining.
            command
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .process_group(0);
            let child = command
                .spawn()
                .map_err(io_err(format!("cannot run {program}")))?;
            child.wait_with_output().await
        } else {
            command.stdout(Stdio::piped()).stderr(Stdio::piped());
            let mut child = command
                .spawn()
                .map_err(io_err(format!("cannot run {program}")))?;
            if let (Some(input), Some(mut stdin)) = (input, child.stdin.take()) {
                // A program that exits early closes the pipe; its status tells why.
                let _ = stdin.write_all(input).await;
            }
            child.wait_with_output().await
        }
        .map_err(io_err(format!("cannot run {program}")))?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        if output.status.success() {
            Ok(text)
        } else {
            let command = format!(
                "{} {}",
                program,
                args.iter()
                    .map(|a| a.to_string_lossy())
                    .collect::<Vec<_>>()
                    .join(" ")
            );
            // A failed statement is echoed in the log; a password verifier has no place there.
            let output = text
                .lines()
                .filter(|line| !line.contains("SCRAM-SHA-256$"))
                .collect::<Vec<_>>()
                .join("\n");
            Err(EmbeddedPostgresError::Command {
                command,
                output: output.trim().to_owned(),
            })
        }
    }
}

/// Finds the directory holding `initdb` and `pg_ctl`: PATH first, then Debian's versioned dirs.
pub(super) fn find_bin_dir() -> Result<PathBuf, EmbeddedPostgresError> {
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            if dir.join("initdb").is_file() && dir.join("pg_ctl").is_file() {
                return Ok(dir);
            }
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions
        .pop()
        .map(|(_, dir)| dir)
        .ok_or(EmbeddedPostgresError::MissingBinary("initdb"))
}
