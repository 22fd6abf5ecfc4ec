//! The host's HTTP API as the endpoint uses it.

use std::error::Error as _;
use std::sync::Arc;
use std::time::Duration;

use pacsync_core::{AvailabilityReport, Package};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

/// What went wrong talking to the host, classified the way the CLI's exit codes are.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The host could not be reached.
    #[error("cannot reach the host: {0}")]
    Unreachable(String),
    /// The host did not answer in time.
    #[error("the host did not answer in time: {0}")]
    Timeout(String),
    /// 401/403: the token is missing, invalid, revoked or not allowed.
    #[error("not authorized ({code}): {detail}")]
    Auth {
        /// Problem code.
        code: String,
        /// Detail.
        detail: String,
    },
    /// Any other problem document.
    #[error("{code}: {detail}")]
    Problem {
        /// HTTP status.
        status: u16,
        /// Problem code.
        code: String,
        /// Detail.
        detail: String,
    },
}

/// The state report body.
#[derive(Debug, Clone, Serialize)]
pub struct StateReport {
    /// Machine architecture.
    pub architecture: String,
    /// pacman's version.
    pub pacman_version: String,
    /// Installed packages.
    pub packages: Vec<Package>,
    /// What the machine can obtain (sync repositories, cache, archive coverage).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub available: Option<AvailabilityReport>,
}

/// An operation as the host returns it (only what the agent and CLI use; the rest is kept raw).
#[derive(Debug, Clone, Deserialize)]
pub struct Operation {
    /// Id.
    pub operation_id: Uuid,
    /// `sync`, `set_latest`, `revert`.
    pub operation_type: String,
    /// Lifecycle status.
    pub status: String,
    /// The plan, if any.
    #[serde(default)]
    pub plan: Option<pacsync_core::Plan>,
    /// Whether a cancel was requested.
    #[serde(default)]
    pub cancel_requested: bool,
    /// Failure code.
    #[serde(default)]
    pub error_code: Option<String>,
    /// Failure message.
    #[serde(default)]
    pub error_message: Option<String>,
    /// Progress.
    #[serde(default)]
    pub progress: Value,
    /// Creation time.
    pub created_at: String,
    /// When the agent claimed it.
    #[serde(default)]
    pub started_at: Option<chrono::DateTime<chrono::Utc>>,
    /// When the agent's lease runs out unless renewed.
    #[serde(default)]
    pub lease_expires_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// A client for one endpoint.
#[derive(Clone)]
pub struct Api {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

impl Api {
    /// A client for `base` with an optional bearer token.
    pub fn new(base: &str, token: Option<String>, tls: &Arc<rustls::ClientConfig>) -> Self {
        let http = crate::tls::http_client(
            tls,
            reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .connect_timeout(Duration::from_secs(5)),
        );
        Self {
            base: base.trim_end_matches('/').to_owned(),
            token,
            http,
        }
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, ApiError> {
        let mut request = self.http.request(method, format!("{}{}", self.base, path));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.map_err(|e| {
            if e.is_timeout() {
                ApiError::Timeout(causes(&e))
            } else {
                ApiError::Unreachable(causes(&e))
            }
        })?;
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if status < 400 {
            return Ok(body);
        }
        let code = body["code"].as_str().unwrap_or("UNKNOWN").to_owned();
        let detail = body["detail"].as_str().unwrap_or("").to_owned();
        if status == 401 || status == 403 {
            Err(ApiError::Auth { code, detail })
        } else {
            Err(ApiError::Problem {
                status,
                code,
                detail,
            })
        }
    }

    fn operation(value: Value) -> Result<Operation, ApiError> {
        serde_json::from_value(value).map_err(|e| ApiError::Problem {
            status: 200,
            code: "UNEXPECTED_RESPONSE".into(),
            detail: e.to_string(),
        })
    }

    /// Registers with an enrollment token: `(endpoint_id, access_token)`.
    pub async fn register(
        &self,
        name: &str,
        hostname: &str,
        enrollment_token: &str,
    ) -> Result<(Uuid, String), ApiError> {
        let body =
            json!({ "name": name, "hostname": hostname, "enrollment_token": enrollment_token });
        let reply = self
            .send(reqwest::Method::POST, "/api/endpoints/register", Some(body))
            .await?;
        let id = reply["endpoint"]["endpoint_id"]
            .as_str()
            .and_then(|s| s.parse().ok());
        let token = reply["access_token"].as_str().map(str::to_owned);
        match (id, token) {
            (Some(id), Some(token)) => Ok((id, token)),
            _ => Err(ApiError::Problem {
                status: 201,
                code: "UNEXPECTED_RESPONSE".into(),
                // Never echo the reply: it may hold the new token.
                detail: "the registration reply lacks the endpoint id or the access token".into(),
            }),
        }
    }

    /// Reports the full package state; returns the host's answer (`state_id`, `sync_status`).
    pub async fn report(&self, endpoint: Uuid, report: &StateReport) -> Result<Value, ApiError> {
        let body = serde_json::to_value(report).expect("report serializes");
        self.send(
            reqwest::Method::PUT,
            &format!("/api/endpoints/{endpoint}/state"),
            Some(body),
        )
        .await
    }

    /// The endpoint as the host sees it.
    pub async fn endpoint(&self, endpoint: Uuid) -> Result<Value, ApiError> {
        self.send(
            reqwest::Method::GET,
            &format!("/api/endpoints/{endpoint}"),
            None,
        )
        .await
    }

    /// The sync status and the difference from the pool target.
    pub async fn diff(&self, endpoint: Uuid) -> Result<Value, ApiError> {
        self.send(
            reqwest::Method::GET,
            &format!("/api/endpoints/{endpoint}/diff"),
            None,
        )
        .await
    }

    /// Requests an operation (`sync-to-latest`, `set-as-latest`, `revert`).
    pub async fn request(
        &self,
        endpoint: Uuid,
        verb: &str,
        body: Option<Value>,
    ) -> Result<Operation, ApiError> {
        Self::operation(
            self.send(
                reqwest::Method::POST,
                &format!("/api/sync/{endpoint}/{verb}"),
                body,
            )
            .await?,
        )
    }

    /// One operation.
    pub async fn get(&self, operation: Uuid) -> Result<Operation, ApiError> {
        Self::operation(
            self.send(
                reqwest::Method::GET,
                &format!("/api/sync/operations/{operation}"),
                None,
            )
            .await?,
        )
    }

    /// Recent operations of the endpoint, newest first.
    pub async fn operations(&self, endpoint: Uuid, limit: u32) -> Result<Vec<Operation>, ApiError> {
        let page = self
            .send(
                reqwest::Method::GET,
                &format!("/api/sync/{endpoint}/operations?limit={limit}"),
                None,
            )
            .await?;
        serde_json::from_value(page["items"].clone()).map_err(|e| ApiError::Problem {
            status: 200,
            code: "UNEXPECTED_RESPONSE".into(),
            detail: e.to_string(),
        })
    }

    /// Agent transitions: `start`, `progress`, `complete`, `fail`, `cancel-ack`, `cancel`.
    pub async fn transition(
        &self,
        operation: Uuid,
        action: &str,
        body: Option<Value>,
    ) -> Result<Operation, ApiError> {
        Self::operation(
            self.send(
                reqwest::Method::POST,
                &format!("/api/sync/operations/{operation}/{action}"),
                body,
            )
            .await?,
        )
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
