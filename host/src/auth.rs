//! Who is asking: JWT signing keys, token issuance and verification.
//!
//! Tokens are HS256 JWTs with `sub`, `role`, `exp`, `iat`, `aud`, and:
//! - for endpoints, `gen`, the endpoint's token generation. Deleting an endpoint (or rotating
//!   its tokens) bumps the generation in the database, which revokes every token issued before;
//!   each endpoint request reads the generation.
//! - for admins, `jti`, the token's id. The host records the admin tokens it hands out
//!   ([`admin_tokens`]) and revokes them one by one; every replica keeps the revoked ids in
//!   memory ([`revocation`]), so admin requests add no query. An admin token without a `jti`
//!   (signed before tokens were recorded) could never be revoked on its own, so it is refused:
//!   issue a new one.
//!
//! Forging a token needs the signing secret, so a validly signed admin token whose id is not
//! revoked is honoured even if no row records it (tokens signed by tests and tools with
//! [`Keys::issue`]); whoever holds the secret is an admin anyway.

pub mod admin_tokens;
mod principal;
pub mod redact;
pub mod revocation;

pub use principal::Principal;
pub use revocation::Revocations;

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use uuid::Uuid;

use crate::error::{Error, ErrorCode};

/// The `aud` every pacsync token carries.
pub const AUDIENCE: &str = "pacsync";
/// The least key material a signing key file must hold: HS256 is only as strong as its secret.
pub const MIN_SECRET_BYTES: usize = 32;

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything.
    Admin,
    /// Act on one endpoint: its own.
    Endpoint,
}

/// JWT claims.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// Subject: an admin token's name, or the endpoint id.
    pub sub: String,
    /// Role.
    pub role: Role,
    /// Expiry (seconds since the epoch).
    pub exp: i64,
    /// Issued at (seconds since the epoch).
    pub iat: i64,
    /// Audience, always [`AUDIENCE`].
    pub aud: String,
    /// Endpoint token generation; absent for admins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[serde(rename = "gen")]
    pub generation: Option<i32>,
    /// Admin token id, the key of its revocation; absent for endpoints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<Uuid>,
}

/// Why the signing key could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Reading or creating the key file failed.
    #[error("signing key file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file holds too little key material.
    #[error(
        "signing key file {path} holds {len} bytes of secret; it needs at least 32. \
         Generate one with `openssl rand -hex 32 > {path}` (or `head -c 32 /dev/urandom | base64 > {path}`), \
         then `chmod 600 {path}`; give every replica the same file"
    )]
    TooShort {
        /// The file.
        path: String,
        /// How many bytes of secret it holds (surrounding whitespace of a text key excluded).
        len: usize,
    },
}

/// The host's token signing secret, and the admin tokens it no longer honours.
#[derive(Clone)]
pub struct Keys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    revoked: Revocations,
}

impl Keys {
    /// Loads the secret from `path`, generating a random one there first if `generate` and the
    /// file does not exist yet (see [`crate::secret_file`]: never through a symlink). A text file
    /// counts without surrounding whitespace (a trailing newline); a binary one counts whole. A
    /// file other users may read or write is used, with a warning.
    pub fn load(path: &Path, generate: bool) -> Result<Self, KeyError> {
        let io = |source| KeyError::Io {
            path: path.display().to_string(),
            source,
        };
        let file = if generate {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(io)?;
            }
            crate::secret_file::read_or_create(path)
        } else {
            crate::secret_file::read(path)
        }
        .map_err(io)?;
        warn_if_shared(path, &file.metadata);
        let raw = file.bytes;
        let secret = match String::from_utf8(raw) {
            Ok(text) => text.trim().as_bytes().to_vec(),
            Err(binary) => binary.into_bytes(),
        };
        if secret.len() < MIN_SECRET_BYTES {
            return Err(KeyError::TooShort {
                path: path.display().to_string(),
                len: secret.len(),
            });
        }
        Ok(Self {
            encoding: EncodingKey::from_secret(&secret),
            decoding: DecodingKey::from_secret(&secret),
            revoked: Revocations::default(),
        })
    }

    /// The same keys, refusing the admin tokens `revoked` holds (which the caller keeps
    /// current, see [`Revocations::follow`]).
    pub fn with_revocations(mut self, revoked: Revocations) -> Self {
        self.revoked = revoked;
        self
    }

    /// The revoked admin token ids these keys refuse.
    pub fn revocations(&self) -> &Revocations {
        &self.revoked
    }

    /// Signs a token for `sub` with `role`, valid for `ttl`. An admin token gets a fresh id
    /// that no row records, so it cannot be revoked by name: the host hands out admin tokens
    /// through [`admin_tokens::issue`], which records them.
    pub fn issue(&self, sub: &str, role: Role, generation: Option<i32>, ttl: Duration) -> String {
        let now = chrono::Utc::now().timestamp();
        self.sign(&Claims {
            sub: sub.to_owned(),
            role,
            iat: now,
            exp: now + i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX / 2),
            aud: AUDIENCE.to_owned(),
            generation,
            jti: (role == Role::Admin).then(Uuid::new_v4),
        })
    }

    /// Signs `claims` as they are.
    pub fn sign(&self, claims: &Claims) -> String {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.encoding)
            .expect("HS256 signing with an in-memory secret cannot fail")
    }

    /// Verifies signature, expiry and audience.
    pub fn verify(&self, token: &str) -> Result<Claims, Error> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iat", "aud", "sub"]);
        validation.leeway = 5;
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation)
            .map(|data| data.claims)
            .map_err(|e| Error::new(ErrorCode::InvalidToken, format!("token rejected: {e}")))
    }
}

/// Warns when others than the host may read (and so sign any token) or write the key file. Its
/// group may read it when that is the host's own group (`root:pacsync 0640`, as the unit's
/// other files).
fn warn_if_shared(path: &Path, metadata: &std::fs::Metadata) {
    let mode = metadata.mode();
    let own_group = metadata.gid() == nix::unistd::getegid().as_raw();
    if mode & 0o006 != 0 || (mode & 0o060 != 0 && !own_group) {
        tracing::warn!(
            path = %path.display(),
            mode = format!("{:o}", mode & 0o777),
            "other users can read or write the signing key file, and whoever reads it can sign \
             admin tokens: chmod 600 it"
        );
    }
}

/// Verifies a bearer token and that it has not been revoked.
pub async fn authenticate(keys: &Keys, db: &PgPool, token: &str) -> Result<Principal, Error> {
    authenticate_until(keys, db, token)
        .await
        .map(|(who, _)| who)
}

/// Like [`authenticate`], also returning when the token expires (seconds since the epoch), for
/// connections that outlive the request that opened them.
pub async fn authenticate_until(
    keys: &Keys,
    db: &PgPool,
    token: &str,
) -> Result<(Principal, i64), Error> {
    authorize(keys, db, keys.verify(token)?).await
}

/// Whether `claims` (verified) are those of an admin token these keys refuse as revoked: its id
/// is in the revoked set, or it has none. No query: the set is in memory.
pub fn revoked(keys: &Keys, claims: &Claims) -> bool {
    claims.role == Role::Admin && claims.jti.is_none_or(|id| keys.revoked.contains(id))
}

/// Like [`authenticate_until`], for claims already verified with [`Keys::verify`] (once per
/// request, by the rate limiter): the revocation checks only.
pub async fn authorize(
    keys: &Keys,
    db: &PgPool,
    claims: Claims,
) -> Result<(Principal, i64), Error> {
    let expires = claims.exp;
    let who = match claims.role {
        Role::Admin => match claims.jti {
            Some(id) if !keys.revoked.contains(id) => Ok(Principal::Admin {
                subject: claims.sub,
            }),
            Some(_) => Err(Error::new(
                ErrorCode::TokenRevoked,
                "this admin token has been revoked",
            )),
            None => Err(Error::new(
                ErrorCode::TokenRevoked,
                "this admin token has no id, so it could not be revoked on its own, and is no \
                 longer accepted; issue a new one with `pacsync-host token issue --role admin --name NAME`",
            )),
        },
        Role::Endpoint => {
            let endpoint_id: Uuid = claims.sub.parse().map_err(|_| {
                Error::new(
                    ErrorCode::InvalidToken,
                    "endpoint token subject is not an endpoint id",
                )
            })?;
            let current = crate::db::endpoints::token_generation(db, endpoint_id).await?;
            match (current, claims.generation) {
                (Some(current), Some(issued)) if current == issued => {
                    Ok(Principal::Endpoint { endpoint_id })
                }
                _ => Err(Error::new(
                    ErrorCode::TokenRevoked,
                    "this endpoint token has been revoked",
                )),
            }
        }
    }?;
    Ok((who, expires))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> Keys {
        let dir = tempfile_dir();
        Keys::load(&dir.join("k"), true).unwrap()
    }

    fn tempfile_dir() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "pacsync-auth-{}-{}",
            std::process::id(),
            Uuid::new_v4()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn claims(role: Role, jti: Option<Uuid>, exp_in: i64) -> Claims {
        let now = chrono::Utc::now().timestamp();
        Claims {
            sub: "x".into(),
            role,
            exp: now + exp_in,
            iat: now - 120,
            aud: AUDIENCE.into(),
            generation: None,
            jti,
        }
    }

    #[test]
    fn issued_tokens_verify_and_foreign_ones_do_not() {
        let a = keys();
        let b = keys();
        let token = a.issue("ops", Role::Admin, None, Duration::from_secs(60));
        let claims = a.verify(&token).unwrap();
        assert_eq!(
            (claims.sub.as_str(), claims.role, claims.aud.as_str()),
            ("ops", Role::Admin, AUDIENCE)
        );
        assert!(claims.jti.is_some(), "admin tokens carry an id");
        assert_eq!(b.verify(&token).unwrap_err().code, ErrorCode::InvalidToken);
        assert_eq!(
            a.verify("not-a-jwt").unwrap_err().code,
            ErrorCode::InvalidToken
        );
    }

    #[test]
    fn expired_tokens_are_rejected() {
        let k = keys();
        let token = k.sign(&claims(Role::Admin, Some(Uuid::new_v4()), -60));
        assert_eq!(k.verify(&token).unwrap_err().code, ErrorCode::InvalidToken);
    }

    #[tokio::test]
    async fn revoked_and_id_less_admin_tokens_are_refused() {
        // Admin tokens never reach the database: a pool that cannot connect proves it.
        let db = sqlx::postgres::PgPoolOptions::new()
            .connect_lazy("postgres://nobody@127.0.0.1:1/none")
            .unwrap();
        let revoked = Revocations::default();
        let k = keys().with_revocations(revoked.clone());
        let (kept, dropped) = (Uuid::new_v4(), Uuid::new_v4());
        revoked.insert(dropped);
        let code = |jti: Option<Uuid>| {
            let token = k.sign(&claims(Role::Admin, jti, 60));
            let (k, db) = (k.clone(), db.clone());
            async move { authenticate(&k, &db, &token).await.map_err(|e| e.code) }
        };
        assert!(code(Some(kept)).await.is_ok());
        assert_eq!(code(Some(dropped)).await, Err(ErrorCode::TokenRevoked));
        assert_eq!(code(None).await, Err(ErrorCode::TokenRevoked));
    }

    #[test]
    fn key_file_is_private_and_reused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile_dir();
        let path = dir.join("jwt-secret");
        let first = Keys::load(&path, true).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let token = first.issue("a", Role::Admin, None, Duration::from_secs(60));
        assert!(Keys::load(&path, true).unwrap().verify(&token).is_ok());
        assert!(matches!(
            Keys::load(&dir.join("missing"), false),
            Err(KeyError::Io { .. })
        ));
    }

    #[test]
    fn a_short_key_file_is_refused_with_how_to_make_one() {
        let path = tempfile_dir().join("short");
        std::fs::write(&path, "0123456789\n").unwrap();
        let error = Keys::load(&path, false).err().expect("refused");
        assert!(matches!(error, KeyError::TooShort { len: 10, .. }));
        assert!(
            error.to_string().contains("openssl rand -hex 32"),
            "{error}"
        );
        std::fs::write(&path, [0xffu8; 32]).unwrap();
        assert!(
            Keys::load(&path, false).is_ok(),
            "32 binary bytes are enough"
        );
    }
}
