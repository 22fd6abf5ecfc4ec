//! The `pacsync` command line.
//!
//! Exit codes: 0 success, 1 operation failed (or refused), 2 usage/config error, 3 auth error,
//! 4 server unreachable, 5 timed out (or still rate limited after retrying), 130 interrupted;
//! [`CliError::exit_code`] decides them.

mod error;
mod output;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use pacsync_core::{Operation, OperationStatus, OperationType, RevertRequest};

use crate::agent::Agent;
use crate::api::{Api, ApiError};
use crate::config::{AgentConfig, DEFAULT_PATH, PacmanConfig, RollbackConfig};
use crate::stream::{Event, EventStream};

pub use error::CliError;

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
    Register(Box<Registration>),
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
    /// Print a completion script for a shell (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), e.g. `pacsync man > pacsync.1`.
    Man,
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

#[derive(Debug, clap::Args)]
struct Registration {
    /// Host URL, e.g. https://pacsync.lan:8080.
    #[arg(long)]
    server: String,
    /// A CA certificate (PEM) to trust for the host besides the system's roots; stored in
    /// the config for later commands.
    #[arg(long)]
    ca_cert: Option<PathBuf>,
    /// Enrollment token from the pool's admin. Visible to every user in the process list:
    /// prefer --enrollment-token-file or the environment. Exactly one of the three is needed.
    #[arg(
        long,
        value_name = "TOKEN",
        env = "PACSYNC_ENROLLMENT_TOKEN",
        hide_env_values = true,
        required_unless_present = "enrollment_token_file",
        conflicts_with = "enrollment_token_file"
    )]
    enrollment_token: Option<String>,
    /// A file holding the enrollment token (a trailing newline is ignored).
    #[arg(long, value_name = "FILE")]
    enrollment_token_file: Option<PathBuf>,
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
    /// The rollback store: where the agent keeps package versions it removes or replaces that
    /// no repository, cache or archive could give back.
    #[arg(long, default_value = crate::rollback::DEFAULT_DIR)]
    rollback_dir: PathBuf,
    /// How many of this machine's last reported states the rollback store keeps versions for.
    #[arg(long, default_value_t = crate::rollback::DEFAULT_KEEP_STATES)]
    rollback_keep_states: usize,
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let result = runtime.block_on(async {
        tokio::select! {
            result = run(cli) => result,
            _ = tokio::signal::ctrl_c() => Err(CliError::Interrupted),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if e.needs_telling() {
                eprintln!("pacsync: {e}");
            }
            ExitCode::from(e.exit_code())
        }
    }
}

async fn run(cli: Cli) -> Result<(), CliError> {
    match &cli.command {
        Command::Register(registration) => return register(&cli.config, registration).await,
        // Made from the command definitions alone: no config needed.
        Command::Completions { shell } => {
            output::completions(*shell, &mut std::io::stdout());
            return Ok(());
        }
        Command::Man => {
            return output::man_page(&mut std::io::stdout())
                .map_err(|e| CliError::Usage(format!("cannot write the man page: {e}")));
        }
        _ => {}
    }
    let config = AgentConfig::load(&cli.config)?;
    let tls = crate::tls::client_config(config.ca_cert.as_deref())?;
    let api = Api::new(&config.server, Some(config.token.clone()), &tls);
    let endpoint = config.endpoint_id;
    match cli.command {
        Command::Register(_) | Command::Completions { .. } | Command::Man => {
            unreachable!("handled above")
        }
        Command::Report => {
            let recorded = Agent::new(&config, &tls).report().await?;
            println!(
                "reported state {} ({})",
                recorded.state_id, recorded.sync_status
            );
        }
        Command::Status { json } => {
            let diff = api.diff(endpoint).await?;
            let store = crate::rollback::RollbackStore::new(
                config.rollback.dir.clone(),
                config.rollback.keep_states,
            );
            if json {
                println!("{}", output::diff_json(&diff, &store));
            } else {
                output::print_diff(&diff, &store);
            }
        }
        Command::Sync(follow) => {
            request(&config, &api, &tls, OperationType::Sync, None, follow).await?;
        }
        Command::SetLatest(follow) => {
            request(&config, &api, &tls, OperationType::SetLatest, None, follow).await?;
        }
        Command::Revert { to, follow } => {
            let revert = to.map(|state_id| RevertRequest {
                state_id: Some(state_id),
            });
            let revert = revert.as_ref();
            request(&config, &api, &tls, OperationType::Revert, revert, follow).await?;
        }
        Command::Ops { limit, json } => {
            for op in api.operations(endpoint, limit.clamp(1, 200)).await? {
                output::print_operation_line(&op, json);
            }
        }
        Command::Agent { once, poll_ms } => {
            Agent::new(&config, &tls)
                .run(once, Duration::from_millis(poll_ms))
                .await?;
        }
        Command::Waybar => println!("{}", output::waybar(&api, endpoint).await),
    }
    Ok(())
}

/// Registers with the host and stores the endpoint's credentials in `path`.
async fn register(path: &Path, registration: &Registration) -> Result<(), CliError> {
    let Registration {
        server,
        ca_cert,
        enrollment_token,
        enrollment_token_file,
        name,
        pacman_args,
        cache_dirs,
        archive_url,
        archive_repositories,
        rollback_dir,
        rollback_keep_states,
    } = registration;
    let hostname = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "localhost".into());
    let name = name.clone().unwrap_or_else(|| hostname.clone());
    // clap already insists on exactly one source; this keeps the rule where the token is used.
    let enrollment_token = match (enrollment_token, enrollment_token_file) {
        (Some(token), None) => token.clone(),
        (None, Some(file)) => read_token_file(file)?,
        _ => return Err(CliError::Usage(ONE_TOKEN_SOURCE.into())),
    };
    let tls = crate::tls::client_config(ca_cert.as_deref())?;
    let api = Api::new(server, None, &tls);
    let (endpoint_id, token) = api.register(&name, &hostname, &enrollment_token).await?;
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
        rollback: RollbackConfig {
            dir: std::path::absolute(rollback_dir).unwrap_or_else(|_| rollback_dir.clone()),
            keep_states: *rollback_keep_states,
        },
    };
    config.save(path)?;
    println!(
        "registered as {name} ({endpoint_id}); credentials in {}",
        path.display()
    );
    Ok(())
}

/// Why `register` refuses to pick a token source.
const ONE_TOKEN_SOURCE: &str = "give the enrollment token exactly once: --enrollment-token-file FILE, \
     PACSYNC_ENROLLMENT_TOKEN or --enrollment-token";

/// The enrollment token in `file`: its only line, without the newline an editor or `echo` adds.
fn read_token_file(file: &Path) -> Result<String, CliError> {
    let text = std::fs::read_to_string(file).map_err(|e| {
        CliError::Usage(format!(
            "cannot read the enrollment token from {}: {e}",
            file.display()
        ))
    })?;
    let token = text.trim();
    if token.is_empty() {
        return Err(CliError::Usage(format!(
            "{} holds no enrollment token",
            file.display()
        )));
    }
    Ok(token.to_owned())
}

/// Creates an operation and follows it to its end with a progress bar, live over the endpoint's
/// event stream (polling over HTTP if the stream cannot be opened).
async fn request(
    config: &AgentConfig,
    api: &Api,
    tls: &Arc<rustls::ClientConfig>,
    kind: OperationType,
    revert: Option<&RevertRequest>,
    follow: Follow,
) -> Result<(), CliError> {
    let endpoint = config.endpoint_id;
    let deadline = Instant::now() + Duration::from_secs(follow.timeout);
    // Waits the host asks for count against --timeout like any other.
    let api = &api.until(deadline);
    // Subscribe first, so no event of the new operation can be missed.
    let mut stream = EventStream::connect(&config.server, &config.token, endpoint, tls)
        .await
        .ok();
    let mut current = api.request(endpoint, kind, revert).await?;
    let bar = output::progress_bar(follow.json);
    loop {
        output::show_progress(&bar, &current);
        if current.status.is_final() {
            break;
        }
        if Instant::now() > deadline {
            bar.abandon_with_message("timed out waiting for the operation");
            return Err(CliError::FollowTimedOut);
        }
        current = next_update(&mut stream, api, &current).await?;
    }
    if let Some(stream) = stream {
        stream.close().await;
    }
    bar.finish_and_clear();
    output::print_outcome(&current, follow.json);
    match current.status {
        OperationStatus::Completed => Ok(()),
        status => Err(CliError::NotCompleted(status)),
    }
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
                return if operation.status.is_final() {
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

#[cfg(test)]
mod tests;
