//! The `pacsync` command line.
//!
//! Exit codes: 0 success, 1 operation failed (or refused), 2 usage/config error, 3 auth error,
//! 4 server unreachable, 5 timed out, 130 interrupted.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use serde_json::{Value, json};

use crate::agent::{Agent, AgentError};
use crate::api::{Api, ApiError, Operation};
use crate::config::{AgentConfig, DEFAULT_PATH, PacmanConfig};
use crate::stream::{Event, EventStream};

/// pacsync endpoint agent and CLI.
#[derive(Debug, Parser)]
#[command(name = "pacsync", version, about)]
struct Cli {
    /// Agent config file.
    #[arg(long, global = true, env = "PACSYNC_AGENT_CONFIG", default_value = DEFAULT_PATH)]
    config: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Register this machine with an enrollment token and store its credentials.
    Register {
        /// Host URL, e.g. https://pacsync.lan:8080.
        #[arg(long)]
        server: String,
        /// A CA certificate (PEM) to trust for the host besides the system's roots; stored in
        /// the config for later commands.
        #[arg(long)]
        ca_cert: Option<PathBuf>,
        /// Enrollment token from the pool's admin.
        #[arg(long)]
        enrollment_token: String,
        /// Endpoint name [default: the hostname].
        #[arg(long)]
        name: Option<String>,
        /// Extra pacman argument (repeatable), e.g. --pacman-arg=--root=/mnt.
        #[arg(long = "pacman-arg", allow_hyphen_values = true)]
        pacman_args: Vec<String>,
        /// Package cache directory searched for exact versions (repeatable).
        #[arg(long = "cache-dir")]
        cache_dirs: Vec<PathBuf>,
        /// Archive URL template ({name}, {version}, {arch}, {first}); empty for none.
        #[arg(long)]
        archive_url: Option<String>,
        /// A sync repository the archive keeps every version of (repeatable) [default: the
        /// official Arch repositories].
        #[arg(long = "archive-repo")]
        archive_repositories: Vec<String>,
    },
    /// Send this machine's packages to the host.
    Report,
    /// Show the sync status and the difference from the pool target.
    Status {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Make this machine match the pool target.
    Sync(Follow),
    /// Make this machine's packages the pool target.
    SetLatest(Follow),
    /// Go back to the previous state (or --to STATE_ID).
    Revert {
        /// A state id from this machine's history.
        #[arg(long)]
        to: Option<String>,
        #[command(flatten)]
        follow: Follow,
    },
    /// List recent operations.
    Ops {
        /// How many.
        #[arg(long, default_value_t = 10)]
        limit: u32,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Run the agent: carry out this machine's operations.
    Agent {
        /// Handle what is pending now, then exit.
        #[arg(long)]
        once: bool,
        /// Poll interval in milliseconds while the event stream is down (with the stream up,
        /// new operations wake the agent at once).
        #[arg(long, default_value_t = 5000)]
        poll_ms: u64,
    },
    /// Print waybar custom-module JSON.
    Waybar,
}

#[derive(Debug, clap::Args)]
struct Follow {
    /// Machine-readable output.
    #[arg(long)]
    json: bool,
    /// Give up waiting after this many seconds.
    #[arg(long, default_value_t = 3600)]
    timeout: u64,
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        tokio::select! {
            code = run(cli) => code,
            _ = tokio::signal::ctrl_c() => ExitCode::from(130),
        }
    })
}

fn api_exit(e: &ApiError) -> ExitCode {
    eprintln!("pacsync: {e}");
    ExitCode::from(match e {
        ApiError::Unreachable(_) => 4,
        ApiError::Timeout(_) => 5,
        ApiError::Auth { .. } => 3,
        ApiError::Problem { .. } => 1,
    })
}

async fn run(cli: Cli) -> ExitCode {
    if let Command::Register {
        server,
        ca_cert,
        enrollment_token,
        name,
        pacman_args,
        cache_dirs,
        archive_url,
        archive_repositories,
    } = &cli.command
    {
        let hostname = std::fs::read_to_string("/etc/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_else(|_| "localhost".into());
        let name = name.clone().unwrap_or_else(|| hostname.clone());
        let tls = match client_tls(ca_cert.as_deref()) {
            Ok(tls) => tls,
            Err(code) => return code,
        };
        let api = Api::new(server, None, &tls);
        return match api.register(&name, &hostname, enrollment_token).await {
            Ok((endpoint_id, token)) => {
                let mut pacman = PacmanConfig {
                    args: pacman_args.clone(),
                    ..PacmanConfig::default()
                };
                if !cache_dirs.is_empty() {
                    pacman.cache_dirs = cache_dirs.clone();
                }
                if let Some(url) = archive_url {
                    pacman.archive_url = url.clone();
                }
                if !archive_repositories.is_empty() {
                    pacman.archive_repositories = archive_repositories.clone();
                }
                let config = AgentConfig {
                    server: server.clone(),
                    // Absolute: the agent runs from `/` under systemd, not from here.
                    ca_cert: ca_cert
                        .as_deref()
                        .map(|p| std::path::absolute(p).unwrap_or_else(|_| p.to_owned())),
                    endpoint_id,
                    token,
                    pacman,
                };
                match config.save(&cli.config) {
                    Ok(()) => {
                        println!(
                            "registered as {name} ({endpoint_id}); credentials in {}",
                            cli.config.display()
                        );
                        ExitCode::SUCCESS
                    }
                    Err(e) => {
                        eprintln!("pacsync: {e}");
                        ExitCode::from(2)
                    }
                }
            }
            Err(e) => api_exit(&e),
        };
    }
    let config = match AgentConfig::load(&cli.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("pacsync: {e}");
            return ExitCode::from(2);
        }
    };
    let tls = match client_tls(config.ca_cert.as_deref()) {
        Ok(tls) => tls,
        Err(code) => return code,
    };
    let api = Api::new(&config.server, Some(config.token.clone()), &tls);
    let endpoint = config.endpoint_id;
    match cli.command {
        Command::Register { .. } => unreachable!("handled above"),
        Command::Report => match Agent::new(&config, &tls).report().await {
            Ok(reply) => {
                println!(
                    "reported state {} ({})",
                    reply["state_id"].as_str().unwrap_or("?"),
                    reply["sync_status"].as_str().unwrap_or("?")
                );
                ExitCode::SUCCESS
            }
            Err(e) => agent_exit(&e),
        },
        Command::Status { json } => match api.diff(endpoint).await {
            Ok(diff) => {
                if json {
                    println!("{diff}");
                } else {
                    print_diff(&diff);
                }
                ExitCode::SUCCESS
            }
            Err(e) => api_exit(&e),
        },
        Command::Sync(follow) => request(&config, &api, &tls, "sync-to-latest", None, follow).await,
        Command::SetLatest(follow) => {
            request(&config, &api, &tls, "set-as-latest", None, follow).await
        }
        Command::Revert { to, follow } => {
            let body = to.map(|state_id| json!({ "state_id": state_id }));
            request(&config, &api, &tls, "revert", body, follow).await
        }
        Command::Ops { limit, json } => match api.operations(endpoint, limit.clamp(1, 200)).await {
            Ok(ops) => {
                for op in ops {
                    if json {
                        println!(
                            "{}",
                            json!({"operation_id": op.operation_id, "type": op.operation_type, "status": op.status, "created_at": op.created_at})
                        );
                    } else {
                        println!(
                            "{}  {:<10} {:<11} {}",
                            op.created_at, op.operation_type, op.status, op.operation_id
                        );
                    }
                }
                ExitCode::SUCCESS
            }
            Err(e) => api_exit(&e),
        },
        Command::Agent { once, poll_ms } => match Agent::new(&config, &tls)
            .run(once, Duration::from_millis(poll_ms))
            .await
        {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => agent_exit(&e),
        },
        Command::Waybar => {
            println!("{}", waybar(&api, endpoint).await);
            ExitCode::SUCCESS
        }
    }
}

/// The TLS roots for this run; a CA file that cannot be used is a config error (exit 2).
fn client_tls(ca_cert: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, ExitCode> {
    crate::tls::client_config(ca_cert).map_err(|e| {
        eprintln!("pacsync: {e}");
        ExitCode::from(2)
    })
}

fn agent_exit(e: &AgentError) -> ExitCode {
    match e {
        AgentError::Api(api) => api_exit(api),
        AgentError::Pacman(p) => {
            eprintln!("pacsync: {p}");
            ExitCode::from(1)
        }
    }
}

fn print_diff(diff: &Value) {
    println!(
        "sync status: {}",
        diff["sync_status"].as_str().unwrap_or("unknown")
    );
    for (key, label) in [
        ("install", "to install"),
        ("upgrade", "to upgrade"),
        ("downgrade", "to downgrade"),
        ("remove", "to remove"),
    ] {
        let items = diff[key].as_array().cloned().unwrap_or_default();
        if items.is_empty() {
            continue;
        }
        println!("{label} ({}):", items.len());
        for item in items {
            println!("  {}", item.as_str().unwrap_or_default());
        }
    }
}

/// Creates an operation and follows it to its end with a progress bar, live over the endpoint's
/// event stream (polling over HTTP if the stream cannot be opened).
async fn request(
    config: &AgentConfig,
    api: &Api,
    tls: &Arc<rustls::ClientConfig>,
    verb: &str,
    body: Option<Value>,
    follow: Follow,
) -> ExitCode {
    let endpoint = config.endpoint_id;
    // Subscribe first, so no event of the new operation can be missed.
    let mut stream = EventStream::connect(&config.server, &config.token, endpoint, tls)
        .await
        .ok();
    let op = match api.request(endpoint, verb, body).await {
        Ok(op) => op,
        Err(e) => return api_exit(&e),
    };
    let bar = if follow.json {
        indicatif::ProgressBar::hidden()
    } else {
        let bar = indicatif::ProgressBar::new(100);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{spinner} [{bar:30}] {pos:>3}% {msg}")
                .expect("template")
                .progress_chars("=> "),
        );
        bar
    };
    let deadline = Instant::now() + Duration::from_secs(follow.timeout);
    let mut current = op;
    loop {
        show_progress(&bar, &current);
        if is_final(&current.status) {
            break;
        }
        if Instant::now() > deadline {
            bar.abandon_with_message("timed out waiting for the operation");
            return ExitCode::from(5);
        }
        match next_update(&mut stream, api, &current).await {
            Ok(op) => current = op,
            Err(e) => return api_exit(&e),
        }
    }
    if let Some(stream) = stream {
        stream.close().await;
    }
    bar.finish_and_clear();
    if follow.json {
        println!(
            "{}",
            json!({
                "operation_id": current.operation_id,
                "operation_type": current.operation_type,
                "status": current.status,
                "error_code": current.error_code,
                "error_message": current.error_message,
                "plan": current.plan,
            })
        );
    } else {
        let summary = current
            .plan
            .as_ref()
            .map(|p| p.summary.clone())
            .unwrap_or_default();
        println!(
            "{} {}: {} {}",
            current.operation_type, current.operation_id, current.status, summary
        );
        for skipped in current.plan.iter().flat_map(|p| &p.skipped) {
            println!("  skipped {}: {}", skipped.name, skipped.reason);
        }
        if let Some(message) = &current.error_message {
            println!("{message}");
        }
    }
    if current.status == "completed" {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn is_final(status: &str) -> bool {
    matches!(status, "completed" | "failed" | "cancelled")
}

fn show_progress(bar: &indicatif::ProgressBar, op: &Operation) {
    let pct = op.progress["percentage"].as_u64().unwrap_or(0);
    let stage = op.progress["stage"].as_str().unwrap_or(&op.status);
    let action = op.progress["current_action"].as_str().unwrap_or("");
    bar.set_message(format!("{stage} {action}"));
    // After the message, so the bar never shows a new percentage with an old stage.
    bar.set_position(pct);
}

/// The operation's next state: from the stream when it has news, else re-read over HTTP (every
/// 5 s on a quiet stream as a safety net, every 300 ms without one).
async fn next_update(
    stream: &mut Option<EventStream>,
    api: &Api,
    current: &Operation,
) -> Result<Operation, ApiError> {
    let Some(live) = stream.as_mut() else {
        tokio::time::sleep(Duration::from_millis(300)).await;
        return api.get(current.operation_id).await;
    };
    loop {
        match tokio::time::timeout(Duration::from_secs(5), live.next()).await {
            Ok(Some(Event::Operation { operation, .. }))
                if operation.operation_id == current.operation_id =>
            {
                // The event's copy is final for `status`; re-read the whole operation once at
                // the end so the plan and error are exactly the stored ones.
                return if is_final(&operation.status) {
                    api.get(current.operation_id).await
                } else {
                    Ok(*operation)
                };
            }
            Ok(Some(Event::ResyncRequired)) | Err(_) => return api.get(current.operation_id).await,
            Ok(Some(_)) => continue,
            Ok(None) => {
                // Dropped: resume once where it stopped, else fall back to polling.
                if live.reconnect().await.is_err() {
                    *stream = None;
                }
                return api.get(current.operation_id).await;
            }
        }
    }
}

/// waybar's custom-module JSON; never blocks the bar: 2 s, then the last known status, stale.
async fn waybar(api: &Api, endpoint: uuid::Uuid) -> Value {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir)
        .join("pacsync")
        .join("waybar.json");
    match tokio::time::timeout(Duration::from_secs(2), api.diff(endpoint)).await {
        Ok(Ok(diff)) => {
            let status = diff["sync_status"].as_str().unwrap_or("unknown").to_owned();
            let count = |k: &str| diff[k].as_array().map_or(0, Vec::len);
            let pending =
                count("install") + count("upgrade") + count("downgrade") + count("remove");
            let out = json!({
                "text": if pending == 0 { status.clone() } else { format!("{status} ({pending})") },
                "alt": status,
                "class": status,
                "tooltip": format!(
                    "pool {}: {} to install, {} to upgrade, {} to downgrade, {} to remove",
                    diff["pool_name"].as_str().unwrap_or("?"), count("install"), count("upgrade"), count("downgrade"), count("remove")
                ),
            });
            if let Some(dir) = cache.parent() {
                let _ = std::fs::create_dir_all(dir);
            }
            let _ = std::fs::write(&cache, out.to_string());
            out
        }
        _ => match std::fs::read_to_string(&cache)
            .ok()
            .and_then(|t| serde_json::from_str::<Value>(&t).ok())
        {
            Some(mut last) => {
                last["class"] = json!("stale");
                last["tooltip"] = json!(format!(
                    "{} (stale: host unreachable)",
                    last["tooltip"].as_str().unwrap_or("")
                ));
                last
            }
            None => {
                json!({"text": "?", "alt": "unknown", "class": "stale", "tooltip": "pacsync host unreachable"})
            }
        },
    }
}
