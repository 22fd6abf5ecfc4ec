//! Who is asking: JWT signing keys, token issuance and the `Principal` extractor.
//!
//! Tokens are HS256 JWTs with `sub`, `role`, `exp`, `iat`, `aud` and, for endpoints, `gen`, the
//! endpoint's token generation. Deleting an endpoint (or rotating its tokens) bumps the
//! generation in the database, which revokes every token issued before.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use uuid::Uuid;

use crate::error::{Error, ErrorCode};

/// The `aud` every pacsync token carries.
pub const AUDIENCE: &str = "pacsync";

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
    /// Subject: an admin's name, or the endpoint id.
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
    #[error("signing key file {0} must hold at least 32 characters of secret")]
    TooShort(String),
}

/// The host's token signing secret.
#[derive(Clone)]
pub struct Keys {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl Keys {
    /// Loads the secret from `path`, generating a random one there first if `generate` and the
    /// file does not exist yet.
    pub fn load(path: &Path, generate: bool) -> Result<Self, KeyError> {
        let io = |source| KeyError::Io {
            path: path.display().to_string(),
            source,
        };
        if generate && !path.exists() {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(io)?;
            }
            let mut secret = [0u8; 32];
            rand::rng().fill_bytes(&mut secret);
            let hex: String = secret.iter().map(|b| format!("{b:02x}")).collect();
            // create_new: two processes racing to generate never overwrite each other's key.
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
            {
                Ok(mut file) => file.write_all(hex.as_bytes()).map_err(io)?,
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(io(e)),
            }
        }
        let secret = std::fs::read_to_string(path).map_err(io)?;
        let secret = secret.trim();
        if secret.len() < 32 {
            return Err(KeyError::TooShort(path.display().to_string()));
        }
        Ok(Self {
            encoding: EncodingKey::from_secret(secret.as_bytes()),
            decoding: DecodingKey::from_secret(secret.as_bytes()),
        })
    }

    /// Signs a token for `sub` with `role`, valid for `ttl`.
    pub fn issue(&self, sub: &str, role: Role, generation: Option<i32>, ttl: Duration) -> String {
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            sub: sub.to_owned(),
            role,
            iat: now,
            exp: now + i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX / 2),
            aud: AUDIENCE.to_owned(),
            generation,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
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

/// The authenticated caller of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// An administrator.
    Admin {
        /// The token's subject.
        subject: String,
    },
    /// An endpoint's agent or CLI.
    Endpoint {
        /// Which endpoint.
        endpoint_id: Uuid,
    },
}

impl Principal {
    /// The actor name recorded in the audit log and on operations.
    pub fn actor(&self) -> String {
        match self {
            Principal::Admin { subject } => format!("admin:{subject}"),
            Principal::Endpoint { endpoint_id } => format!("endpoint:{endpoint_id}"),
        }
    }

    /// Admin-only routes.
    pub fn require_admin(&self) -> Result<(), Error> {
        match self {
            Principal::Admin { .. } => Ok(()),
            Principal::Endpoint { .. } => Err(Error::new(
                ErrorCode::AdminRequired,
                "this route needs an admin token",
            )),
        }
    }

    /// Routes open to admins and to the endpoint itself.
    pub fn require_admin_or_endpoint(&self, endpoint_id: Uuid) -> Result<(), Error> {
        match self {
            Principal::Admin { .. } => Ok(()),
            Principal::Endpoint { endpoint_id: own } if *own == endpoint_id => Ok(()),
            Principal::Endpoint { .. } => Err(not_yours()),
        }
    }

    /// Routes only the endpoint's own agent may call.
    pub fn require_endpoint(&self, endpoint_id: Uuid) -> Result<(), Error> {
        match self {
            Principal::Endpoint { endpoint_id: own } if *own == endpoint_id => Ok(()),
            Principal::Endpoint { .. } => Err(not_yours()),
            Principal::Admin { .. } => Err(Error::new(
                ErrorCode::EndpointRequired,
                "this route is for the endpoint's own agent; admins cannot call it",
            )),
        }
    }
}

fn not_yours() -> Error {
    Error::new(
        ErrorCode::NotYourEndpoint,
        "an endpoint token may act only on its own endpoint",
    )
}

/// Verifies a bearer token and, for endpoints, that it has not been revoked.
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
    let claims = keys.verify(token)?;
    let expires = claims.exp;
    let who = match claims.role {
        Role::Admin => Ok(Principal::Admin {
            subject: claims.sub,
        }),
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
        assert_eq!(b.verify(&token).unwrap_err().code, ErrorCode::InvalidToken);
        assert_eq!(
            a.verify("not-a-jwt").unwrap_err().code,
            ErrorCode::InvalidToken
        );
    }

    #[test]
    fn expired_tokens_are_rejected() {
        let k = keys();
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            sub: "x".into(),
            role: Role::Admin,
            exp: now - 60,
            iat: now - 120,
            aud: AUDIENCE.into(),
            generation: None,
        };
        let token =
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &k.encoding).unwrap();
        assert_eq!(k.verify(&token).unwrap_err().code, ErrorCode::InvalidToken);
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
}
