//! Request extractors whose rejections are problem documents with stable codes, and the
//! caller's bearer token: found by [`bearer`], verified once per request ([`Verified`], by the
//! rate limiter), authorized by the [`Principal`] extractor.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::{HeaderMap, Uri};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::AppState;
use crate::auth::{Claims, Keys, Principal};
use crate::error::{Error, ErrorCode};

/// A JSON request body: a JSON object (serde would read a struct from an array too, which no
/// route documents).
#[derive(Debug)]
pub struct Json<T>(pub T);

impl<S, T> FromRequest<S> for Json<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(req.headers()) {
            return Err(Error::new(
                ErrorCode::UnsupportedMediaType,
                "Expected request with `Content-Type: application/json`",
            ));
        }
        let bytes = Bytes::from_request(req, state).await?;
        parse_object(&bytes).map(Json)
    }
}

/// Path parameters (ids).
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(Error))]
pub struct Path<T>(pub T);

/// Query parameters.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(Error))]
pub struct Query<T>(pub T);

impl From<JsonRejection> for Error {
    fn from(rejection: JsonRejection) -> Self {
        let code = match &rejection {
            JsonRejection::JsonSyntaxError(_) => ErrorCode::InvalidJson,
            JsonRejection::JsonDataError(_) => ErrorCode::ValidationFailed,
            JsonRejection::MissingJsonContentType(_) => ErrorCode::UnsupportedMediaType,
            JsonRejection::BytesRejection(b)
                if b.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE =>
            {
                ErrorCode::PayloadTooLarge
            }
            _ => ErrorCode::InvalidJson,
        };
        Error::new(code, rejection.body_text())
    }
}

impl From<PathRejection> for Error {
    fn from(rejection: PathRejection) -> Self {
        Error::new(ErrorCode::InvalidId, rejection.body_text())
    }
}

impl From<QueryRejection> for Error {
    fn from(rejection: QueryRejection) -> Self {
        Error::new(ErrorCode::InvalidQuery, rejection.body_text())
    }
}

impl From<BytesRejection> for Error {
    fn from(rejection: BytesRejection) -> Self {
        let code = if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            ErrorCode::PayloadTooLarge
        } else {
            ErrorCode::InvalidJson
        };
        Error::new(code, rejection.body_text())
    }
}

/// A JSON body that may be omitted entirely; an empty body, or `null`, means `T::default()`.
#[derive(Debug)]
pub struct OptionalJson<T>(pub T);

impl<S, T> FromRequest<S> for OptionalJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Default,
{
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let json_type = is_json(req.headers());
        let bytes = Bytes::from_request(req, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJson(T::default()));
        }
        if !json_type {
            return Err(Error::new(
                ErrorCode::UnsupportedMediaType,
                "send the body as application/json",
            ));
        }
        if bytes.trim_ascii() == b"null" {
            return Ok(OptionalJson(T::default()));
        }
        parse_object(&bytes).map(OptionalJson)
    }
}

/// Parses a body that must be one JSON object.
fn parse_object<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    let start = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if start.is_some_and(|b| *b != b'{') {
        // Well-formed JSON of another kind is a body of the wrong shape; anything else, not JSON.
        return Err(
            match serde_json::from_slice::<serde::de::IgnoredAny>(bytes) {
                Ok(_) => Error::new(
                    ErrorCode::ValidationFailed,
                    "invalid request body: expected a JSON object",
                ),
                Err(e) => Error::new(ErrorCode::InvalidJson, format!("invalid request body: {e}")),
            },
        );
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = T::deserialize(&mut de).map_err(|e| {
        let code = if e.is_data() {
            ErrorCode::ValidationFailed
        } else {
            ErrorCode::InvalidJson
        };
        Error::new(code, format!("invalid request body: {e}"))
    })?;
    de.end()
        .map_err(|e| Error::new(ErrorCode::InvalidJson, format!("invalid request body: {e}")))?;
    Ok(value)
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|mime| {
            let mime = mime.trim();
            mime == "application/json"
                || (mime.starts_with("application/") && mime.ends_with("+json"))
        })
        .unwrap_or(false)
}

/// Where a request carries its bearer token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Carried {
    /// `Authorization: Bearer <token>`.
    Header,
    /// The `access_token` query parameter, which only the stream routes accept (a browser cannot
    /// set headers on a WebSocket).
    Query,
}

/// The stream routes' query parameter carrying a token.
#[derive(Deserialize)]
struct TokenParam {
    access_token: Option<String>,
}

/// The bearer token of a request: `Authorization: Bearer`, else `?access_token=`. A header of
/// another scheme (a proxy's Basic credentials) does not hide the query parameter.
pub fn bearer(headers: &HeaderMap, uri: &Uri) -> Option<(String, Carried)> {
    let header = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty());
    if let Some(token) = header {
        return Some((token.to_owned(), Carried::Header));
    }
    axum::extract::Query::<TokenParam>::try_from_uri(uri)
        .ok()
        .and_then(|query| query.0.access_token)
        .filter(|t| !t.is_empty())
        .map(|token| (token, Carried::Query))
}

/// A request's bearer token, verified (signature, expiry, audience) once per request: the rate
/// limiter verifies it and leaves this in the request's extensions for the extractors.
#[derive(Debug, Clone)]
pub struct Verified {
    carried: Carried,
    /// The claims, or why the token was rejected (an `INVALID_TOKEN` detail).
    claims: std::result::Result<Claims, String>,
}

impl Verified {
    /// Verifies the request's bearer token; `None` when it carries none.
    pub fn of(keys: &Keys, headers: &HeaderMap, uri: &Uri) -> Option<Self> {
        let (token, carried) = bearer(headers, uri)?;
        Some(Self {
            carried,
            claims: keys.verify(&token).map_err(|e| e.detail),
        })
    }

    /// The claims of a validly signed token, not yet checked for revocation.
    pub fn claims(&self) -> Option<&Claims> {
        self.claims.as_ref().ok()
    }
}

/// The verified claims of a request's token, as the rate limiter left them (verified here if it
/// did not run). `query`: whether the route accepts `?access_token=`.
pub fn claims(parts: &Parts, keys: &Keys, query: bool) -> Result<Claims, Error> {
    let verified = match parts.extensions.get::<Verified>() {
        Some(verified) => Some(verified.clone()),
        None => Verified::of(keys, &parts.headers, &parts.uri),
    };
    match verified {
        Some(Verified { carried, claims }) if query || carried == Carried::Header => {
            claims.map_err(|detail| Error::new(ErrorCode::InvalidToken, detail))
        }
        _ if parts.headers.contains_key(AUTHORIZATION) => Err(Error::new(
            ErrorCode::InvalidToken,
            "the Authorization header is not `Bearer <token>`",
        )),
        _ if query => Err(Error::new(
            ErrorCode::MissingToken,
            "send `Authorization: Bearer <token>` or ?access_token=",
        )),
        _ => Err(Error::new(
            ErrorCode::MissingToken,
            "send `Authorization: Bearer <token>`",
        )),
    }
}

/// The caller, from `Authorization: Bearer`: every route but the public ones takes it.
impl FromRequestParts<AppState> for Principal {
    type Rejection = Error;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let claims = claims(parts, &state.keys, false)?;
        let (who, _) = crate::auth::authorize(&state.keys, &state.db, claims).await?;
        Ok(who)
    }
}
