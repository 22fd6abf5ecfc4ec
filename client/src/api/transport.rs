//! Sending one request to the host: the attempts, the waits between them, and reading the
//! answer or the problem document.
//!
//! An attempt that fails says why ([`ApiError`]) and how long the host asked to wait
//! (`Retry-After`); [`retry::wait`] decides whether to send it again. A 2xx answer is the
//! reply's JSON body; any other status is read as a problem document (`code`, `detail`).

use std::error::Error as _;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use uuid::Uuid;

use super::retry::{self, Resend};
use super::{Api, ApiError};

/// Why one attempt failed, and the wait the host asked for (`Retry-After`).
type Refused = (ApiError, Option<Duration>);

impl Api {
    /// Sends a request and reads the answer's body; a request the host turns away for now is
    /// sent again after the wait it asks for, as far as `resend` and [`retry::wait`] allow.
    pub(super) async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        resend: Resend,
    ) -> Result<Value, ApiError> {
        // One key for every attempt: the host answers a repeat with what the first one did.
        let key = (resend == Resend::Keyed).then(|| Uuid::new_v4().to_string());
        let mut retries = 0;
        loop {
            let attempt = self.attempt(&method, path, body.as_ref(), key.as_deref());
            let (error, retry_after) = match attempt.await {
                Ok(reply) => return Ok(reply),
                Err(refused) => refused,
            };
            let left = self
                .deadline
                .map(|deadline| deadline.saturating_duration_since(Instant::now()));
            let Some(wait) = retry::wait(&error, retry_after, resend, retries, left) else {
                return Err(error);
            };
            tokio::time::sleep(wait).await;
            retries += 1;
        }
    }

    /// Sends a request once.
    async fn attempt(
        &self,
        method: &reqwest::Method,
        path: &str,
        body: Option<&Value>,
        idempotency_key: Option<&str>,
    ) -> Result<Value, Refused> {
        let url = format!("{}{}", self.base, path);
        let mut request = self.http.request(method.clone(), url);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(key) = idempotency_key {
            request = request.header("idempotency-key", key);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|e| {
            let error = if e.is_timeout() {
                ApiError::Timeout(causes(&e))
            } else {
                ApiError::Unreachable(causes(&e))
            };
            (error, None)
        })?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| retry::parse_retry_after(v, chrono::Utc::now()));
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if status < 400 {
            return Ok(body);
        }
        let code = body["code"].as_str().unwrap_or("UNKNOWN").to_owned();
        let detail = body["detail"].as_str().unwrap_or("").to_owned();
        let error = match status {
            401 | 403 => ApiError::Auth { code, detail },
            429 if code == "RATE_LIMITED" => ApiError::RateLimited {
                retry_after: retry::whole_seconds(retry_after.unwrap_or(retry::DEFAULT_WAIT)),
                detail,
            },
            _ => ApiError::Problem {
                status,
                code,
                detail,
            },
        };
        Err((error, retry_after))
    }

    /// Sends `body` and reads the answer as a `T`.
    pub(super) async fn call<T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&impl Serialize>,
        resend: Resend,
    ) -> Result<T, ApiError> {
        let body = body.map(|b| serde_json::to_value(b).expect("request bodies serialize"));
        let reply = self.send(method, path, body, resend).await?;
        serde_json::from_value(reply).map_err(|e| unexpected(e.to_string()))
    }
}

/// A 2xx reply that is not what the API promises.
pub(super) fn unexpected(detail: String) -> ApiError {
    ApiError::Problem {
        status: 200,
        code: "UNEXPECTED_RESPONSE".into(),
        detail,
    }
}

/// The error with its causes: reqwest's own message ("error sending request") hides the reason
/// a user can act on (connection refused, an unknown certificate issuer).
fn causes(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
