//! A token passed as `?access_token=` never reaches the log, even at trace level.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread::JoinHandle;
use std::time::Duration;

use pacsync_tests::{Api, PrivateCluster, Stream, shared_tempdir};
use serde_json::Value;

use super::{HOST, issue, plugin_cache, replica, shared_key};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_in_the_query_string_never_reaches_the_log_even_at_trace() {
    let cluster = PrivateCluster::start().await;
    let url = cluster.url();
    let (_keys, key) = shared_key();
    let data = shared_tempdir();
    // Compiling the built-in policies at trace level would log all of cranelift's work: a
    // first start fills the compile cache, so the traced start only loads from it.
    assert!(replica(&url, &key, data.path()).terminate().success());
    let host = Transcribed::spawn(&url, &key, data.path(), "trace");
    let token = issue("dashboard", &url, &key);
    let api = Api::new(host.base.clone(), token.clone());
    let pool = api.create_pool("watched").await;

    let path = format!("/api/sync/pools/{pool}/events");
    let mut stream = Stream::open(
        &host.base,
        &format!("{path}?after=0&access_token={token}"),
        None,
    )
    .await
    .expect("the stream accepts the token in the query");
    assert_eq!(
        stream
            .next_of(&["connected"], Duration::from_secs(10))
            .await["type"],
        "connected"
    );
    // A refused one is logged too.
    let refused = Stream::open(&host.base, &format!("{path}?access_token={token}x"), None).await;
    assert_eq!(refused.err(), Some(401));
    drop(stream);

    let log = host.stop();
    assert!(
        log.contains(&path),
        "the requests were logged at all:\n{log}"
    );
    assert!(log.contains("access_token=REDACTED"), "{log}");
    // Neither the token nor any part of it that identifies it (claims, signature).
    let parts: Vec<&str> = token.split('.').collect();
    for secret in [token.as_str(), parts[1], parts[2]] {
        assert!(!log.contains(secret), "the log holds the token:\n{log}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_is_named_by_one_id_in_its_answer_its_problem_and_its_json_log_lines() {
    let cluster = PrivateCluster::start().await;
    let url = cluster.url();
    let (_keys, key) = shared_key();
    let data = shared_tempdir();
    let json = [("PACSYNC_LOG_FORMAT", "json")];
    let host = Transcribed::spawn_with(&url, &key, data.path(), "info,tower_http=debug", &json);
    let client = reqwest::Client::new();
    let ask = |id: &'static str| {
        client
            .get(format!("{}/api/pools", host.base))
            .header("x-request-id", id)
            .send()
    };

    // The caller's own id names the answer and the problem.
    let reply = ask("ticket-4711").await.unwrap();
    assert_eq!(reply.status().as_u16(), 401);
    assert_eq!(reply.headers()["x-request-id"], "ticket-4711");
    let problem: Value = reply.json().await.unwrap();
    assert_eq!(problem["instance"], "ticket-4711", "{problem}");
    // One that is not a plain token is replaced by a fresh id, never echoed.
    let reply = ask("a b<script>").await.unwrap();
    let id = reply.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert!(uuid::Uuid::parse_str(&id).is_ok(), "{id}");
    let problem: Value = reply.json().await.unwrap();
    assert_eq!(problem["instance"], id.as_str());

    let log = host.stop();
    // Every stderr line is one JSON object; the request's lines carry its id.
    let lines: Vec<Value> = log
        .lines()
        .filter(|line| !line.starts_with("listening on "))
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    let of_request: Vec<&Value> = lines
        .iter()
        .filter(|line| line["span"]["request_id"] == "ticket-4711")
        .collect();
    assert!(!of_request.is_empty(), "{log}");
    assert!(
        of_request
            .iter()
            .all(|line| line["span"]["uri"] == "/api/pools")
    );
    assert!(!log.contains("<script>"), "{log}");
}

/// A host process at a given `PACSYNC_LOG` level, everything it writes (stdout and stderr) kept.
struct Transcribed {
    base: String,
    child: Child,
    readers: Vec<JoinHandle<Vec<u8>>>,
}

fn read_all(mut pipe: impl Read) -> Vec<u8> {
    let mut bytes = Vec::new();
    let _ = pipe.read_to_end(&mut bytes);
    bytes
}

impl Transcribed {
    fn spawn(url: &str, key: &Path, data_dir: &Path, level: &str) -> Self {
        Self::spawn_with(url, key, data_dir, level, &[])
    }

    /// [`Transcribed::spawn`] with more environment.
    fn spawn_with(
        url: &str,
        key: &Path,
        data_dir: &Path,
        level: &str,
        env: &[(&str, &str)],
    ) -> Self {
        let mut child = Command::new(HOST)
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .arg("--jwt-key-file")
            .arg(key)
            .arg("--plugin-cache-dir")
            .arg(plugin_cache())
            .env("PACSYNC_DATABASE_URL", url)
            .env("PACSYNC_LOG", level)
            .envs(env.iter().copied())
            .env_remove("PACSYNC_CONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn pacsync-host");
        // Both pipes are drained as the host writes, so a chatty log never blocks it.
        let errors = child.stderr.take().unwrap();
        let errors = std::thread::spawn(move || read_all(errors));
        let mut output = BufReader::new(child.stdout.take().unwrap());
        let mut first = String::new();
        output.read_line(&mut first).expect("read host stdout");
        let Some(base) = first
            .trim()
            .strip_prefix("listening on ")
            .map(str::to_owned)
        else {
            let _ = child.kill();
            let _ = child.wait();
            let errors = errors.join().unwrap();
            panic!(
                "host did not start; first line {first:?}; stderr:\n{}",
                String::from_utf8_lossy(&errors)
            );
        };
        let output = std::thread::spawn(move || {
            let mut bytes = first.into_bytes();
            bytes.extend(read_all(output));
            bytes
        });
        Self {
            base,
            child,
            readers: vec![output, errors],
        }
    }

    /// SIGTERM, a clean exit, and everything the process wrote.
    fn stop(mut self) -> String {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
        let status = self.child.wait().expect("wait for host");
        let text: String = self
            .readers
            .drain(..)
            .map(|reader| String::from_utf8_lossy(&reader.join().unwrap()).into_owned())
            .collect();
        assert!(status.success(), "host exited with {status}:\n{text}");
        text
    }
}

impl Drop for Transcribed {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
