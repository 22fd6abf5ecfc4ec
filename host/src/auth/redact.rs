//! What of a request reaches the log: never a credential, at any level.
//!
//! Browsers cannot set headers on a WebSocket, so the stream routes also take the bearer token
//! as `?access_token=`. The request span (tower-http's, at DEBUG) therefore logs the URI with
//! that parameter's value replaced by `REDACTED`, however its name is percent-encoded; headers
//! (so `Authorization`) are never logged.

use std::fmt;

use axum::http::{Request, Uri};
use tower_http::trace::MakeSpan;
use tracing::Span;

/// The query parameter that may carry a bearer token, as the query parser decodes its name.
const TOKEN_PARAMETER: &[u8] = b"access_token";

/// A URI that displays as its path and query, without the value of any `access_token`.
pub struct RedactedUri<'a>(pub &'a Uri);

impl fmt::Display for RedactedUri<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.path())?;
        let Some(query) = self.0.query() else {
            return Ok(());
        };
        f.write_str("?")?;
        for (i, pair) in query.split('&').enumerate() {
            if i > 0 {
                f.write_str("&")?;
            }
            let key = pair.split_once('=').map_or(pair, |(key, _)| key);
            if decodes_to(key, TOKEN_PARAMETER) {
                write!(f, "{key}=REDACTED")?;
            } else {
                f.write_str(pair)?;
            }
        }
        Ok(())
    }
}

/// Whether `encoded`, decoded as `application/x-www-form-urlencoded` (`+` is a space, `%XX` a
/// byte), is `expected`.
fn decodes_to(encoded: &str, expected: &[u8]) -> bool {
    let bytes = encoded.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let byte = match bytes[i] {
            b'+' => b' ',
            b'%' if i + 2 < bytes.len()
                && bytes[i + 1].is_ascii_hexdigit()
                && bytes[i + 2].is_ascii_hexdigit() =>
            {
                i += 2;
                (hex(bytes[i - 1]) << 4) | hex(bytes[i])
            }
            other => other,
        };
        decoded.push(byte);
        i += 1;
    }
    decoded == expected
}

fn hex(digit: u8) -> u8 {
    match digit {
        b'0'..=b'9' => digit - b'0',
        b'a'..=b'f' => digit - b'a' + 10,
        _ => digit - b'A' + 10,
    }
}

/// The request span: tower-http's default (method, URI, version) at INFO, with the URI
/// redacted and the request's id.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestSpan;

impl<B> MakeSpan<B> for RequestSpan {
    fn make_span(&mut self, request: &Request<B>) -> Span {
        let id = request
            .extensions()
            .get::<crate::request_id::RequestId>()
            .map_or("", |id| id.0.as_str());
        // INFO, so that every line a request logs at the default level names the request.
        tracing::info_span!(
            "request",
            method = %request.method(),
            uri = %RedactedUri(request.uri()),
            version = ?request.version(),
            request_id = %id,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(uri: &str) -> String {
        RedactedUri(&uri.parse().unwrap()).to_string()
    }

    #[test]
    fn access_tokens_are_replaced_and_everything_else_kept() {
        assert_eq!(
            shown("/api/sync/x/status?after=3&access_token=SECRET"),
            "/api/sync/x/status?after=3&access_token=REDACTED"
        );
        assert_eq!(
            shown("http://h/p?access%5ftoken=SECRET&access_token&x=1"),
            "/p?access%5ftoken=REDACTED&access_token=REDACTED&x=1"
        );
        assert_eq!(shown("/api/pools"), "/api/pools");
        assert_eq!(shown("/p?access_tokens=kept%"), "/p?access_tokens=kept%");
    }
}
