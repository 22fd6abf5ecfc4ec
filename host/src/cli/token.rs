//! `pacsync-host token issue | list | revoke`: admin tokens, recorded in the host's database
//! (see [`crate::auth::admin_tokens`]).
//!
//! They work on what a host made, as the host's user (see [`super::database`]): under the
//! shipped unit, `sudo -u pacsync pacsync-host token issue --role admin --name NAME --data-dir
//! /var/lib/pacsync`.
//!
//! They never migrate the database: one older than the command (a package upgrade before the
//! host restarted) is refused, naming the migrations it lacks, until the host has migrated it.
//!
//! Exit status: 0 on success, 1 when the database, the data directory or the key refuses (a
//! name already taken, no such token, an unreachable database, a schema older than the command,
//! a host still starting, no host's data directory, another user's, a short key), 2 on a usage
//! error (a lifetime over a year, a malformed name, a role other than admin), before anything is
//! touched.

use std::process::ExitCode;

use chrono::{DateTime, Utc};
use clap::Subcommand;

use super::database::{Database, HostArgs, check_host_files};
use super::{block_on, fail};
use crate::auth::admin_tokens;
use crate::auth::{Keys, Role};
use crate::config::Config;
use crate::db::admin_tokens::AdminToken;

/// Admin token commands.
#[derive(Debug, Subcommand)]
pub(super) enum TokenCommand {
    /// Issue an admin token, record it in the host's database and print it: the only time it
    /// is shown.
    Issue {
        /// Only `admin` can be issued here; endpoint tokens come from registration.
        #[arg(long, value_enum)]
        role: Role,
        /// Who the token is for, as `token list`, `token revoke` and the audit log name it:
        /// unique among unrevoked tokens [default: admin-<start of the token id>].
        #[arg(long, visible_alias = "subject")]
        name: Option<String>,
        /// Lifetime in hours, at most 8760 (one year).
        #[arg(long, default_value_t = 24 * 30)]
        ttl_hours: u64,
        #[command(flatten)]
        host: HostArgs,
    },
    /// List the recorded admin tokens (never the tokens themselves): name, id, issue and expiry
    /// times, and whether each is active, expired or revoked.
    List {
        #[command(flatten)]
        host: HostArgs,
    },
    /// Revoke the unrevoked admin token named NAME: every host replica refuses it within a
    /// second.
    Revoke {
        /// The token's name.
        name: String,
        #[command(flatten)]
        host: HostArgs,
    },
}

/// Runs a token command.
pub(super) fn run(command: TokenCommand) -> ExitCode {
    super::init_command_tracing();
    match command {
        TokenCommand::Issue {
            role,
            name,
            ttl_hours,
            host,
        } => issue(role, name, ttl_hours, host),
        TokenCommand::List { host } => match host.resolve() {
            Ok(config) => block_on(list(&config)),
            Err(e) => fail(e),
        },
        TokenCommand::Revoke { name, host } => match host.resolve() {
            Ok(config) => block_on(revoke(&config, &name)),
            Err(e) => fail(e),
        },
    }
}

fn issue(role: Role, name: Option<String>, ttl_hours: u64, host: HostArgs) -> ExitCode {
    let usage = |message: String| {
        eprintln!("error: {message}");
        ExitCode::from(2)
    };
    if role != Role::Admin {
        return usage(
            "only admin tokens are issued here; endpoints get theirs at registration".into(),
        );
    }
    if let Err(e) = admin_tokens::validate_ttl_hours(ttl_hours) {
        return usage(e.detail);
    }
    if let Some(Err(e)) = name.as_deref().map(admin_tokens::validate_name) {
        return usage(e.detail);
    }
    let config = match host.resolve() {
        Ok(config) => config,
        Err(e) => return fail(e),
    };
    if let Err(e) = check_host_files(&config, true) {
        return fail(e);
    }
    let keys = match Keys::load(&config.jwt_key_file, false) {
        Ok(keys) => keys,
        Err(e) => return fail(e),
    };
    block_on(async {
        let database = Database::open(&config).await?;
        let issued =
            admin_tokens::issue(&database.pool, &keys, name.as_deref(), ttl_hours, &actor()).await;
        database.close().await;
        let issued = issued.map_err(|e| anyhow::anyhow!(e.detail))?;
        println!("{}", issued.token);
        eprintln!(
            "issued admin token {} (id {}), valid until {}",
            issued.record.name,
            issued.record.token_id,
            time(&issued.record.expires_at)
        );
        Ok::<(), anyhow::Error>(())
    })
}

async fn list(config: &Config) -> anyhow::Result<()> {
    check_host_files(config, false)?;
    let database = Database::open(config).await?;
    let tokens = admin_tokens::list(&database.pool).await;
    database.close().await;
    print_table(&tokens.map_err(|e| anyhow::anyhow!(e.detail))?);
    Ok(())
}

async fn revoke(config: &Config, name: &str) -> anyhow::Result<()> {
    check_host_files(config, false)?;
    let database = Database::open(config).await?;
    let revoked = admin_tokens::revoke(&database.pool, name, &actor()).await;
    database.close().await;
    let token_id = revoked.map_err(|e| anyhow::anyhow!(e.detail))?;
    println!(
        "revoked admin token {name} (id {token_id}); every host replica refuses it within a second"
    );
    Ok(())
}

fn print_table(tokens: &[AdminToken]) {
    let now = Utc::now();
    let width = tokens
        .iter()
        .map(|t| t.name.len())
        .max()
        .unwrap_or(0)
        .max("NAME".len());
    println!(
        "{:<width$}  {:<36}  {:<20}  {:<20}  STATUS",
        "NAME", "ID", "CREATED", "EXPIRES"
    );
    for t in tokens {
        let status = match &t.revoked_at {
            Some(at) => format!(
                "revoked {} by {}",
                time(at),
                t.revoked_by.as_deref().unwrap_or("?")
            ),
            None if t.expires_at <= now => "expired".to_owned(),
            None => "active".to_owned(),
        };
        println!(
            "{:<width$}  {:<36}  {:<20}  {:<20}  {status}",
            t.name,
            t.token_id.to_string(),
            time(&t.created_at),
            time(&t.expires_at)
        );
    }
}

fn time(at: &DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Who ran the command, for the audit log: the local user.
fn actor() -> String {
    let uid = nix::unistd::geteuid();
    let user = nix::unistd::User::from_uid(uid)
        .ok()
        .flatten()
        .map_or_else(|| uid.to_string(), |user| user.name);
    format!("cli:{user}")
}
