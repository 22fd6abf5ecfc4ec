//! Request ids: one name for everything one request caused.
//!
//! Each request is given an id: the caller's own `x-request-id` when it is a plain token (1 to
//! 128 of `A-Z a-z 0-9 . _ : -`, so it can be logged and quoted safely), else a fresh UUID. The
//! id is sent back as `x-request-id`, is a field of the request's log span (so every log line
//! of the request carries it, in the human and the JSON format alike), and is the `instance`
//! of any problem+json the request is answered with. An operator given a problem by a user
//! finds the request's log lines by that one string.
//!
//! The id travels in a task-local: the handler, its extractors and every layer inside the one
//! that assigns it run within the scope; a response made outside it has no `instance`.

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;

/// The header that carries the id both ways.
pub const HEADER: &str = "x-request-id";

tokio::task_local! {
    static CURRENT: RequestId;
}

/// One request's id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub String);

/// The id of the request being handled, if any.
pub fn current() -> Option<String> {
    CURRENT.try_with(|id| id.0.clone()).ok()
}

/// Whether a caller's id may be used as it is.
fn acceptable(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".:_-".contains(&b))
}

/// Middleware: gives the request its id (in its extensions, for the log span) and runs the
/// rest of the stack within it.
pub async fn assign(mut request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get(HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|id| acceptable(id))
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned);
    request.extensions_mut().insert(RequestId(id.clone()));
    let mut response = CURRENT
        .scope(RequestId(id.clone()), next.run(request))
        .await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(HEADER, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_tokens_are_taken_from_the_caller() {
        for good in ["abc", "7f3c-22:x.y_z", &"a".repeat(128)] {
            assert!(acceptable(good), "{good}");
        }
        for bad in ["", "a b", "a\nb", "<script>", "x/y", &"a".repeat(129)] {
            assert!(!acceptable(bad), "{bad:?}");
        }
        assert_eq!(current(), None, "outside a request");
    }
}
