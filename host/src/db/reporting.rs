//! The analysts' role, `pacsync_reporting`: made by the migration that made the `reporting`
//! schema when the migrating user may create roles, or here, and given a password here.

use sqlx::PgConnection;

use crate::error::Result;

/// The role's name.
pub const ROLE: &str = "pacsync_reporting";

/// Makes the role if the cluster lacks it (a database user without CREATEROLE could not when it
/// migrated), and grants it what the migration grants: reading the `reporting` schema, and
/// nothing else. Idempotent.
pub async fn ensure_role(db: &mut PgConnection) -> Result<()> {
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT FROM pg_roles WHERE rolname = $1)")
            .bind(ROLE)
            .fetch_one(&mut *db)
            .await?;
    if !exists {
        sqlx::query(&format!("CREATE ROLE {ROLE} NOLOGIN"))
            .execute(&mut *db)
            .await?;
        sqlx::query(&format!(
            "ALTER ROLE {ROLE} SET default_transaction_read_only = on"
        ))
        .execute(&mut *db)
        .await?;
    }
    for grant in [
        "GRANT USAGE ON SCHEMA reporting TO {ROLE}",
        "GRANT SELECT ON ALL TABLES IN SCHEMA reporting TO {ROLE}",
        "GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA reporting TO {ROLE}",
        "ALTER DEFAULT PRIVILEGES IN SCHEMA reporting GRANT SELECT ON TABLES TO {ROLE}",
    ] {
        sqlx::query(&grant.replace("{ROLE}", ROLE))
            .execute(&mut *db)
            .await?;
    }
    Ok(())
}

/// Lets the role log in with the password whose SCRAM verifier is `verifier`: only the verifier
/// reaches PostgreSQL (and its statement log), never the password.
pub async fn set_password(db: &mut PgConnection, verifier: &str) -> Result<()> {
    // A statement cannot take a role's password as a parameter. A verifier is base64 and
    // `$:-` separators (see embedded_postgres::password); anything else is refused, not quoted.
    assert!(
        verifier.starts_with("SCRAM-SHA-256$")
            && verifier
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"$:+/=-".contains(&b)),
        "not a SCRAM verifier"
    );
    sqlx::query(&format!(
        "ALTER ROLE {ROLE} WITH LOGIN PASSWORD '{verifier}'"
    ))
    .execute(&mut *db)
    .await?;
    Ok(())
}
