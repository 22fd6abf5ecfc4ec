//! Admin tokens: issued to a name, recorded by id, revoked one by one.
//!
//! Only `pacsync-host token issue` hands admin tokens out (an admin with the signing secret at
//! hand); the API lists and revokes them. A name belongs to at most one unrevoked token, expired
//! ones included (revoke an expired token to reuse its name); revoked rows stay as history. A
//! token lives at most one year: a leaked one expires on its own even if nobody revokes it.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use super::{AUDIENCE, Claims, Keys, Role};
use crate::db;
use crate::db::admin_tokens::AdminToken;
use crate::error::{Error, ErrorCode, Result};

/// The longest an admin token may live: one year.
pub const MAX_TTL_HOURS: u64 = 8760;
/// The longest a name may be.
const MAX_NAME: usize = 64;

/// A token just issued: the secret to hand over once, and what was recorded.
pub struct Issued {
    /// The bearer token.
    pub token: String,
    /// Its record.
    pub record: AdminToken,
}

/// Checks a name: 1 to 64 letters, digits, `.`, `_`, `@` or `-`, starting with a letter or
/// digit, so that it reads unambiguously in URLs, the audit log and `token list`.
pub fn validate_name(name: &str) -> Result<()> {
    let mut chars = name.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '@' | '-'))
        && name.len() <= MAX_NAME;
    if valid {
        Ok(())
    } else {
        Err(Error::new(
            ErrorCode::ValidationFailed,
            format!(
                "an admin token name has 1 to {MAX_NAME} letters, digits, '.', '_', '@' or '-', \
                 and starts with a letter or digit"
            ),
        ))
    }
}

/// Checks a lifetime: at least an hour, at most [`MAX_TTL_HOURS`].
pub fn validate_ttl_hours(hours: u64) -> Result<Duration> {
    if hours == 0 || hours > MAX_TTL_HOURS {
        return Err(Error::new(
            ErrorCode::ValidationFailed,
            format!(
                "an admin token lives 1 to {MAX_TTL_HOURS} hours (one year at most), not {hours}: \
                 issue one that expires sooner, and a new one before it does"
            ),
        ));
    }
    Ok(Duration::from_secs(hours * 3600))
}

/// Records an admin token for `name` (default: `admin-` and the start of its id) and signs it.
/// The record is committed before the token exists, so no admin token escapes revocation.
pub async fn issue(
    db: &PgPool,
    keys: &Keys,
    name: Option<&str>,
    ttl_hours: u64,
    actor: &str,
) -> Result<Issued> {
    let ttl = validate_ttl_hours(ttl_hours)?;
    let token_id = Uuid::new_v4();
    let name = match name {
        Some(name) => name.to_owned(),
        None => format!("admin-{}", &token_id.simple().to_string()[..8]),
    };
    validate_name(&name)?;
    // Whole seconds, as the token carries them, so the record and the claims agree.
    let iat = Utc::now().timestamp();
    let exp = iat + i64::try_from(ttl.as_secs()).expect("at most a year of seconds");
    let at = |secs: i64| DateTime::<Utc>::from_timestamp(secs, 0).expect("a time within a year");
    let record = db::admin_tokens::insert(db, token_id, &name, at(iat), at(exp), actor).await?;
    let token = keys.sign(&Claims {
        sub: name,
        role: Role::Admin,
        exp,
        iat,
        aud: AUDIENCE.to_owned(),
        generation: None,
        jti: Some(token_id),
    });
    Ok(Issued { token, record })
}

/// Every recorded admin token, revoked ones included.
pub async fn list(db: &PgPool) -> Result<Vec<AdminToken>> {
    db::admin_tokens::list(db).await
}

/// Revokes the unrevoked admin token named `name`; returns its id. Every replica refuses it
/// within a second (see [`super::revocation`]); the caller's own replica should also
/// [`super::Revocations::insert`] it to refuse it at once.
pub async fn revoke(db: &PgPool, name: &str, actor: &str) -> Result<Uuid> {
    db::admin_tokens::revoke(db, name, actor)
        .await?
        .ok_or_else(|| {
            Error::new(
                ErrorCode::AdminTokenNotFound,
                format!("no unrevoked admin token is named {name}"),
            )
        })
}
