//! The `reporting` schema as an analyst meets it: a known history is built through the API, the
//! real `pacsync-host reporting-password` gives the `pacsync_reporting` role a password, and the
//! views are read through that role, with the real `psql` where the connection string matters.
//!
//! - `views`: each view against the known history, and the queries of `docs/reporting.md` with
//!   the output the document shows;
//! - `role`: the role reads the views and nothing else, and the command's connection string logs
//!   in, on an external database URL and on the embedded cluster;
//! - `vercmp`: `reporting.vercmp`, which tells upgrades from downgrades, against pacman's own.

mod role;
mod vercmp;
mod views;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use pacsync_tests::{Api, Endpoint, Fleet, TestHost, postgres_binary, state};
use serde_json::{Value, json};

const HOST: &str = env!("CARGO_BIN_EXE_pacsync-host-under-test");

/// The target every endpoint is compared with once the history is built.
const TARGET: &[(&str, &str)] = &[
    ("curl", "8.0-1"),
    ("git", "2.40-1"),
    ("linux", "6.1-1"),
    ("vim", "9.0-1"),
];

/// A pool `web` whose history holds one of each thing the views report:
/// - `ref` made its state the target (generation 1, by the endpoint itself);
/// - `behind` lacks curl, has an older linux and git as a dependency; two syncs failed with
///   `PACMAN_FAILED`;
/// - `ahead` has a newer linux and an extra htop; one sync failed with `DOWNLOAD_FAILED`, then
///   the admin made its state the target (generation 2) and restored generation 1's state
///   (generation 3);
/// - `same` matches the target, reported what it can obtain, and its sync completed at once with
///   nothing to do;
/// - `quiet` never reported.
///
/// The pool's policy is `holds` with `{"ignore": ["linux"]}` from the start of the syncs.
pub struct History {
    pub host: TestHost,
    pub reference: Endpoint,
    pub ahead: Endpoint,
    /// The state of generations 1 and 3.
    pub target_state: String,
}

impl History {
    pub async fn build() -> Self {
        let host = TestHost::start().await;
        let api = host.api.clone();
        let mut behind = state(&[("git", "2.40-1"), ("linux", "6.0-1"), ("vim", "9.0-1")]);
        behind["packages"][0]["reason"] = json!("dependency");
        let fleet = Fleet::builder(&api)
            .pool("web")
            .reference("ref", state(TARGET))
            .member("behind", behind)
            .member(
                "ahead",
                state(&[
                    ("curl", "8.0-1"),
                    ("git", "2.40-1"),
                    ("htop", "3.0-1"),
                    ("linux", "6.2-1"),
                    ("vim", "9.0-1"),
                ]),
            )
            .member("same", same_with_offers())
            .unreported("quiet")
            .build()
            .await;
        let Fleet {
            pool,
            reference,
            members,
            ..
        } = fleet;
        let [behind, ahead, same, _quiet] = <[Endpoint; 4]>::try_from(members).unwrap();
        let target_state = api.get(&format!("/api/pools/{pool}/target")).await;
        let target_state = target_state.expect(200, None)["state_id"]
            .as_str()
            .unwrap()
            .to_owned();

        api.put(&format!("/api/pools/{pool}/policy"))
            .json(json!({"plugin": "holds", "config": {"ignore": ["linux"]}}))
            .await
            .expect(200, None);
        failed_sync(
            &api,
            &behind,
            "PACMAN_FAILED",
            "error: failed to commit transaction",
        )
        .await;
        failed_sync(
            &api,
            &behind,
            "PACMAN_FAILED",
            "error: curl: signature is unknown trust",
        )
        .await;
        failed_sync(
            &api,
            &ahead,
            "DOWNLOAD_FAILED",
            "error: failed retrieving file",
        )
        .await;
        let done = sync(&api, &same).await;
        assert_eq!(done["status"], "completed", "{done}");
        api.set_as_latest(&ahead.id, &api.admin)
            .await
            .expect(202, None);
        api.put(&format!("/api/pools/{pool}/target"))
            .json(json!({ "state_id": target_state }))
            .await
            .expect(200, None);
        Self {
            host,
            reference,
            ahead,
            target_state,
        }
    }

    /// Gives the role a password with the real command, on the host's database URL, and
    /// returns the connection string it printed.
    pub fn reporting_url(&self) -> String {
        let out = reporting_password(&["--database-url", &self.host.cluster.url()], None);
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout).trim().to_owned()
    }
}

/// The target's state, with what the endpoint can obtain: linux from its cache, curl from a sync
/// repository.
fn same_with_offers() -> Value {
    let mut report = state(TARGET);
    report["available"] = json!({
        "offered": [
            {"name": "curl", "version": "8.0-1", "source": "sync_repository"},
            {"name": "linux", "version": "6.1-1", "source": "cache"},
        ],
        "archive_repositories": [],
    });
    report
}

/// Requests a sync-to-latest as the endpoint itself: the operation as created.
async fn sync(api: &Api, endpoint: &Endpoint) -> Value {
    api.as_(&endpoint.token)
        .post(&format!("/api/sync/{}/sync-to-latest", endpoint.id))
        .await
        .expect(202, None)
        .clone()
}

/// A sync the endpoint's agent starts and then fails with `code`.
async fn failed_sync(api: &Api, endpoint: &Endpoint, code: &str, message: &str) {
    let op = sync(api, endpoint).await;
    let op = op["operation_id"].as_str().unwrap();
    let agent = api.as_(&endpoint.token);
    agent
        .post(&format!("/api/sync/operations/{op}/start"))
        .await
        .expect(200, None);
    agent
        .post(&format!("/api/sync/operations/{op}/fail"))
        .json(json!({ "code": code, "message": message }))
        .await
        .expect(200, None);
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `pacsync-host reporting-password ARGS`, with `stdin` as its input (none if `None`).
pub fn reporting_password(args: &[&str], stdin: Option<&str>) -> Output {
    let mut command = Command::new("timeout");
    command
        .args(["120", HOST, "reporting-password"])
        .args(args)
        .env_remove("PACSYNC_CONFIG")
        .env_remove("PACSYNC_DATABASE_URL")
        .env_remove("PACSYNC_DATA_DIR")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let Some(input) = stdin else {
        return command
            .stdin(Stdio::null())
            .output()
            .expect("run the command");
    };
    command.stdin(Stdio::piped());
    let mut child = command.spawn().expect("run the command");
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), input.as_bytes()).unwrap();
    child.wait_with_output().expect("the command ends")
}

/// `psql` on a connection string, the way an analyst runs it: the password goes in the
/// environment (`PGPASSWORD`), never on the command line. Aligned output, no psqlrc. Each of
/// `commands` runs in its own transaction, in one session, as `-c` does.
pub fn psql(url: &str, commands: &[&str]) -> Output {
    psql_with(url, &[], commands)
}

/// [`psql`] with more options, e.g. `-t -A` for bare rows.
pub fn psql_with(url: &str, options: &[&str], commands: &[&str]) -> Output {
    let mut url = reqwest::Url::parse(url).expect("a connection string is a URL");
    let password = url.password().map(str::to_owned);
    url.set_password(None).unwrap();
    let mut command = Command::new(postgres_binary("psql"));
    command
        .arg(url.as_str())
        .args(["-X", "-w", "-v", "ON_ERROR_STOP=1"])
        .args(options)
        .env_remove("PGPASSWORD")
        .env("PGPASSFILE", "/dev/null")
        .env("PGTZ", "UTC")
        .stdin(Stdio::null())
        .current_dir(Path::new("/"));
    for sql in commands {
        command.arg("-c").arg(sql);
    }
    if let Some(password) = password {
        let decoded = percent_encoding::percent_decode_str(&password).decode_utf8_lossy();
        command.env("PGPASSWORD", decoded.as_ref());
    }
    command.output().expect("run psql")
}
