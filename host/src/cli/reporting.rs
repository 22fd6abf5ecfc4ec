//! `pacsync-host reporting-password`: lets analysts in. It gives the `pacsync_reporting` role
//! (which reads the `reporting` schema and nothing else, see `sql/V12__reporting_schema.sql`) a
//! password and prints the connection string to give them.
//!
//! One exchange, on the unit's embedded database:
//!
//! ```text
//! $ sudo -u pacsync pacsync-host reporting-password --data-dir /var/lib/pacsync
//! postgresql://pacsync_reporting:3f0c…@%2Fvar%2Flib%2Fpacsync%2Fpostgres:5432/pacsync
//! $ PGPASSWORD=3f0c… psql 'postgresql://pacsync_reporting@%2Fvar%2Flib%2Fpacsync%2Fpostgres:5432/pacsync' \
//!     -c 'TABLE reporting.failure_reasons'
//! ```
//!
//! The password is generated (24 random bytes, hex) unless `--password-stdin` reads one; only
//! its SCRAM verifier reaches PostgreSQL. It never appears in argv: it is printed, once, on
//! stdout. Running the command again replaces the password.
//!
//! On an external database the string is the host's URL with the role's name and password in
//! it. The embedded cluster listens only on its Unix socket, in the data directory, which only
//! the host's user can reach: analysts use the string as that user, or through a tunnel to the
//! socket.
//!
//! It works like the token commands (see [`super::database`]): on what a host made, as the
//! host's user, never migrating. Exit status: 0 on success, 1 when the database refuses (its user
//! may not create or alter roles, a schema older than the command), 2 on an unusable password.

use std::io::Read;
use std::process::ExitCode;

use rand::RngCore;

use super::database::{Database, HostArgs, check_host_files};
use super::{block_on, fail};
use crate::config::Config;
use crate::db::reporting::{self, ROLE};
use crate::embedded_postgres::{self, scram_verifier};

/// Passwords shorter than this are refused.
const MIN_PASSWORD: usize = 16;

/// Runs `reporting-password`.
pub(super) fn run(password_stdin: bool, host: HostArgs) -> ExitCode {
    super::init_command_tracing();
    let password = if password_stdin {
        match read_password(std::io::stdin()) {
            Ok(password) => password,
            Err(message) => {
                eprintln!("error: {message}");
                return ExitCode::from(2);
            }
        }
    } else {
        let mut bytes = [0u8; 24];
        rand::rng().fill_bytes(&mut bytes);
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    };
    let config = match host.resolve() {
        Ok(config) => config,
        Err(e) => return fail(e),
    };
    if let Err(e) = check_host_files(&config, false) {
        return fail(e);
    }
    block_on(set_password(config, password))
}

/// One line of `input`, without its line ending: at least [`MIN_PASSWORD`] printable ASCII
/// characters (PostgreSQL and its clients normalise other passwords differently).
fn read_password(input: impl Read) -> Result<String, String> {
    let mut text = String::new();
    input
        .take(4096)
        .read_to_string(&mut text)
        .map_err(|e| format!("cannot read the password from stdin: {e}"))?;
    let password = text.lines().next().unwrap_or_default();
    if password.len() < MIN_PASSWORD || !password.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!(
            "the password must be at least {MIN_PASSWORD} printable ASCII characters, without spaces"
        ));
    }
    Ok(password.to_owned())
}

async fn set_password(config: Config, password: String) -> anyhow::Result<()> {
    let database = Database::open(&config).await?;
    // Two steps: the grants are the host's user's to give (it owns the schema) even where
    // only an administrator may create the role or set its password.
    let granted = async {
        let mut tx = database.pool.begin().await?;
        reporting::ensure_role(&mut tx).await?;
        tx.commit().await?;
        Ok::<_, crate::error::Error>(())
    }
    .await;
    let set = match &granted {
        Ok(()) => {
            async {
                let mut tx = database.pool.begin().await?;
                reporting::set_password(&mut tx, &scram_verifier(&password)).await?;
                tx.commit().await?;
                Ok::<_, crate::error::Error>(())
            }
            .await
        }
        Err(_) => Ok(()),
    };
    let string = connection_string(&config, database.socket_dir(), &password);
    database.close().await;
    if let Err(e) = granted {
        anyhow::bail!(
            "cannot create {ROLE}: {e}. The database user needs CREATEROLE; or have an \
             administrator run `CREATE ROLE {ROLE} NOLOGIN` and run this command again"
        );
    }
    if let Err(e) = set {
        anyhow::bail!(
            "{ROLE} may read the reporting views, but its password cannot be set: {e}. The \
             database user needs CREATEROLE; or have an administrator run `ALTER ROLE {ROLE} \
             LOGIN PASSWORD '...'`"
        );
    }
    println!("{}", string?);
    Ok(())
}

/// The URL analysts connect with: the host's own, or the embedded cluster's socket, with the
/// role's name and password.
fn connection_string(
    config: &Config,
    socket_dir: Option<&std::path::Path>,
    password: &str,
) -> anyhow::Result<String> {
    // libpq decodes %XX (and only that) in every part of a URL.
    let encode = |s: &str| {
        percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
    };
    match (&config.database_url, socket_dir) {
        (Some(url), _) => {
            let mut url = url::Url::parse(url)?;
            let named = url.set_username(ROLE).is_ok() && url.set_password(Some(password)).is_ok();
            anyhow::ensure!(named, "the database URL has no host to put a user name on");
            Ok(url.to_string())
        }
        // The socket directory, percent-encoded, stands where a host name would.
        (None, Some(dir)) => Ok(format!(
            "postgresql://{ROLE}:{}@{}:5432/{}",
            encode(password),
            encode(&dir.display().to_string()),
            embedded_postgres::DATABASE,
        )),
        (None, None) => anyhow::bail!("no database URL and no embedded cluster"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_is_one_line_of_printable_ascii() {
        assert_eq!(
            read_password("correct-horse-battery\n".as_bytes()).unwrap(),
            "correct-horse-battery"
        );
        for refused in [
            "short\n",
            "with a space in it ok\n",
            "ünïcödé-pässwörd-xx\n",
            "",
        ] {
            assert!(read_password(refused.as_bytes()).is_err(), "{refused:?}");
        }
    }
}
