//! The `pacsync-host` command line: `serve`, `token issue | list | revoke`,
//! `reporting-password`, `plugin check`, `vercmp`, `openapi`, `completions`, `man`.

mod database;
mod reporting;
mod token;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

use crate::config::{Config, Settings};
use crate::server::Host;

/// pacsync central server.
#[derive(Debug, Parser)]
#[command(name = "pacsync-host", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server (embedded PostgreSQL unless a database URL is configured).
    Serve {
        /// TOML config file; command-line flags and PACSYNC_* variables override it.
        #[arg(long, env = "PACSYNC_CONFIG")]
        config: Option<PathBuf>,
        // Boxed: the settings dwarf every other command's arguments.
        #[command(flatten)]
        settings: Box<Settings>,
    },
    /// Issue, list and revoke admin tokens (in the host's database).
    Token {
        #[command(subcommand)]
        command: token::TokenCommand,
    },
    /// Give the analysts' role `pacsync_reporting` (it reads the `reporting` schema only) a
    /// password, generated unless --password-stdin, and print the connection string for it.
    ReportingPassword {
        /// Read the password from the first line of stdin (16+ printable ASCII characters).
        #[arg(long)]
        password_stdin: bool,
        #[command(flatten)]
        host: database::HostArgs,
    },
    /// Work with policy components offline.
    Plugin {
        #[command(subcommand)]
        command: PluginCommand,
    },
    /// Compare two package versions like pacman's vercmp: prints -1, 0 or 1.
    Vercmp {
        /// First version.
        a: String,
        /// Second version.
        b: String,
    },
    /// Print the OpenAPI document.
    Openapi,
    /// Print a completion script for a shell (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), e.g. `pacsync-host man > pacsync-host.1`.
    Man,
}

#[derive(Debug, Subcommand)]
enum PluginCommand {
    /// Load a component as the server would, print its description, validate a config, and
    /// classify and plan two states with it. Exit 0 when all of it passed, 1 when the component,
    /// the config or a call was refused, 2 on unreadable input.
    Check {
        /// The component (`.wasm`, built for wasm32-wasip2 against `wit/policy.wit`).
        component: PathBuf,
        /// The pool config to try, a JSON object [default: {}].
        #[arg(long)]
        policy_config: Option<String>,
        /// A state file (`{"packages": [...]}`, the body of `PUT /api/endpoints/{id}/state`);
        /// with --target, classify and plan from it.
        #[arg(long, requires = "target")]
        current: Option<PathBuf>,
        /// The target state file.
        #[arg(long, requires = "current")]
        target: Option<PathBuf>,
    },
}

/// The part of a state report `plugin check` reads.
#[derive(serde::Deserialize)]
struct StateFile {
    packages: Vec<pacsync_core::Package>,
}

/// Runs `plugin check`.
fn plugin_check(
    component: &std::path::Path,
    config: Option<&str>,
    states: Option<(&std::path::Path, &std::path::Path)>,
) -> ExitCode {
    let usage = |e: String| {
        eprintln!("error: {e}");
        ExitCode::from(2)
    };
    let bytes = match std::fs::read(component) {
        Ok(b) => b,
        Err(e) => return usage(format!("{}: {e}", component.display())),
    };
    let config = match config.map(serde_json::from_str).transpose() {
        Ok(c) => c.unwrap_or_else(|| serde_json::json!({})),
        Err(e) => return usage(format!("--policy-config is not JSON: {e}")),
    };
    let read_state =
        |path: &std::path::Path| -> Result<std::sync::Arc<pacsync_core::PackageState>, String> {
            let text =
                std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
            let file: StateFile =
                serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
            pacsync_core::PackageState::new(file.packages)
                .map(std::sync::Arc::new)
                .map_err(|e| format!("{}: {e}", path.display()))
        };
    let states = match states {
        Some((current, target)) => match (read_state(current), read_state(target)) {
            (Ok(c), Ok(t)) => Some((c, t)),
            (Err(e), _) | (_, Err(e)) => return usage(e),
        },
        None => None,
    };
    let limits = match Config::resolve(Settings::default(), None) {
        Ok(c) => c.plugin_limits,
        Err(e) => return fail(e),
    };
    let runtime = crate::policy::wasm::WasmRuntime::new(limits, None);
    let trial = crate::policy::check::Trial { config, states };
    match crate::policy::check::check(&runtime, &bytes, trial) {
        Ok(report) => {
            println!(
                "{}",
                serde_json::to_string_pretty(&report).expect("a report serializes")
            );
            match &report.config_error {
                Some(message) => {
                    eprintln!("error: the plugin refuses this config: {message}");
                    ExitCode::FAILURE
                }
                None => ExitCode::SUCCESS,
            }
        }
        Err(e) => fail(e),
    }
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Vercmp { a, b } => {
            println!("{}", pacsync_core::vercmp(&a, &b) as i8);
            ExitCode::SUCCESS
        }
        Command::Plugin {
            command:
                PluginCommand::Check {
                    component,
                    policy_config,
                    current,
                    target,
                },
        } => plugin_check(
            &component,
            policy_config.as_deref(),
            current.as_deref().zip(target.as_deref()),
        ),
        Command::Openapi => {
            println!("{}", crate::api::openapi_json());
            ExitCode::SUCCESS
        }
        Command::Completions { shell } => {
            completions(shell, &mut std::io::stdout());
            ExitCode::SUCCESS
        }
        Command::Man => match man_page(&mut std::io::stdout()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(e),
        },
        Command::Token { command } => token::run(command),
        Command::ReportingPassword {
            password_stdin,
            host,
        } => reporting::run(password_stdin, host),
        Command::Serve { config, settings } => {
            let config = match Config::resolve(*settings, config.as_deref()) {
                Ok(c) => c,
                Err(e) => return fail(e),
            };
            init_tracing(config.log_format);
            let runtime = match tokio::runtime::Runtime::new() {
                Ok(rt) => rt,
                Err(e) => return fail(e),
            };
            match runtime.block_on(serve(config)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(e),
            }
        }
    }
}

/// Writes `shell`'s completion script for `pacsync-host` to `out`.
fn completions(shell: clap_complete::Shell, out: &mut impl std::io::Write) {
    clap_complete::generate(shell, &mut Cli::command(), "pacsync-host", out);
}

/// Writes the man page to `out`.
fn man_page(out: &mut impl std::io::Write) -> std::io::Result<()> {
    clap_mangen::Man::new(Cli::command()).render(out)
}

fn block_on(work: impl Future<Output = anyhow::Result<()>>) -> ExitCode {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => return fail(e),
    };
    match runtime.block_on(work) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(e),
    }
}

/// Warnings and errors (a database failure's cause among them) on stderr; `PACSYNC_LOG`
/// overrides the level as for `serve`.
fn init_command_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("PACSYNC_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn fail(error: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {error}");
    ExitCode::FAILURE
}

fn init_tracing(format: crate::config::LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("PACSYNC_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let log = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        crate::config::LogFormat::Human => log.init(),
        // The request span's fields (its id above all) on every line, flattened into `span`.
        crate::config::LogFormat::Json => log.json().with_current_span(true).init(),
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    tracing::debug!(?config, "configuration");
    // Before anything slow: SIGHUP's default action would kill the host, TLS or not, also
    // while it is still starting (initdb, migrations).
    let hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    // Likewise SIGTERM and SIGINT: a stop sent the moment the "listening" line appears must
    // shut down cleanly, not kill the process with the signal's default action.
    let stop = stop_signals()?;
    let host = Host::start(config).await?;
    // Scripts and tests read this line to find the bound port.
    let scheme = if host.state.config.tls.is_some() {
        "https"
    } else {
        "http"
    };
    println!("listening on {scheme}://{}", host.addr);
    let shutdown = host.shutdown_token();
    tokio::spawn(async move {
        stop.await;
        tracing::info!("shutting down");
        shutdown.cancel();
    });
    tokio::spawn(reload_on_hangup(hangup, host.certificates()));
    host.wait().await?;
    Ok(())
}

/// SIGHUP re-reads the TLS certificate and key, e.g. after a renewal; without TLS it has
/// nothing to reload and says so.
async fn reload_on_hangup(
    mut hangup: tokio::signal::unix::Signal,
    certificates: Option<std::sync::Arc<crate::tls::Certificates>>,
) {
    while hangup.recv().await.is_some() {
        match certificates.as_ref().map(|c| c.reload()) {
            Some(Ok(())) => tracing::info!("TLS certificate reloaded"),
            Some(Err(e)) => tracing::error!(
                error = %e,
                "TLS certificate not reloaded; still serving the previous one"
            ),
            None => tracing::info!("SIGHUP: no TLS certificate to reload (plain HTTP)"),
        }
    }
}

/// Installs the SIGTERM and SIGINT handlers now; the future ends when either arrives.
fn stop_signals() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completions_parse_in_bash_and_the_man_page_names_every_command() {
        let mut script = Vec::new();
        completions(clap_complete::Shell::Bash, &mut script);
        let mut bash = std::process::Command::new("bash")
            .arg("-n")
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(&mut bash.stdin.take().unwrap(), &script).unwrap();
        assert!(bash.wait().unwrap().success(), "bash -n refused the script");
        let script = String::from_utf8(script).unwrap();
        let mut page = Vec::new();
        man_page(&mut page).unwrap();
        let page = String::from_utf8(page).unwrap();
        assert!(page.contains(".TH pacsync-host 1"), "{page}");
        for command in Cli::command().get_subcommands() {
            let name = command.get_name();
            // roff spells a hyphen `\-`.
            assert!(
                page.contains(&name.replace('-', "\\-")),
                "the man page lacks {name}"
            );
            assert!(script.contains(name), "the completions lack {name}");
        }
    }
}
