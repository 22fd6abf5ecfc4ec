//! The host's HTTP API as the endpoint uses it.

use std::error::Error as _;
use std::sync::Arc;
use std::time::Duration;

use pacsync_core::{
    CancelAck, CompleteReport, FailReport, Operation, OperationType, ProgressReport, RevertRequest,
    StateRecorded, StateReport, TargetDiff,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use uuid::Uuid;

/// What went wrong talking to the host, in the classes the CLI's exit codes distinguish.
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

    /// Sends `body` and reads the answer as a `T`.
    async fn call<T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> Result<T, ApiError> {
        let body = body.map(|b| serde_json::to_value(b).expect("request bodies serialize"));
        let reply = self.send(method, path, body).await?;
        serde_json::from_value(reply).map_err(|e| unexpected(e.to_string()))
    }

    /// Posts an agent transition of `operation` and reads the operation after it.
    async fn transition(
        &self,
        operation: Uuid,
        action: &str,
        body: Option<&impl Serialize>,
    ) -> Result<Operation, ApiError> {
        self.call(
            reqwest::Method::POST,
            &format!("/api/sync/operations/{operation}/{action}"),
            body,
        )
        .await
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

    /// Reports the full package state; returns its content address and classification.
    pub async fn report(
        &self,
        endpoint: Uuid,
        report: &StateReport,
    ) -> Result<StateRecorded, ApiError> {
        self.call(
            reqwest::Method::PUT,
            &format!("/api/endpoints/{endpoint}/state"),
            Some(report),
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
    pub async fn diff(&self, endpoint: Uuid) -> Result<TargetDiff, ApiError> {
        self.call(
            reqwest::Method::GET,
            &format!("/api/endpoints/{endpoint}/diff"),
            None::<&()>,
        )
        .await
    }

    /// Requests an operation of `kind`; `revert` picks the state a revert goes back to.
    pub async fn request(
        &self,
        endpoint: Uuid,
        kind: OperationType,
        revert: Option<&RevertRequest>,
    ) -> Result<Operation, ApiError> {
        self.call(
            reqwest::Method::POST,
            &format!("/api/sync/{endpoint}/{}", request_path(kind)),
            revert,
        )
        .await
    }

    /// One operation.
    pub async fn get(&self, operation: Uuid) -> Result<Operation, ApiError> {
        self.call(
            reqwest::Method::GET,
            &format!("/api/sync/operations/{operation}"),
            None::<&()>,
        )
        .await
    }

    /// Recent operations of the endpoint, newest first. A plan this client cannot read is shown
    /// as absent rather than hiding every other operation: the agent refuses it at `start`.
    pub async fn operations(&self, endpoint: Uuid, limit: u32) -> Result<Vec<Operation>, ApiError> {
        let mut page = self
            .send(
                reqwest::Method::GET,
                &format!("/api/sync/{endpoint}/operations?limit={limit}"),
                None,
            )
            .await?;
        let Some(Value::Array(items)) = page.get_mut("items").map(Value::take) else {
            return Err(unexpected("the operation page has no items".into()));
        };
        items
            .into_iter()
            .map(|item| -> Result<Operation, ApiError> {
                let (mut operation, plan) = split_plan(item)?;
                operation.plan = serde_json::from_value(plan).ok();
                Ok(operation)
            })
            .collect()
    }

    /// Claims a pending operation under a lease: the operation, and its plan exactly as the host
    /// sent it (the operation's own `plan` is left empty), for `plan_check` to judge.
    pub async fn start(&self, operation: Uuid) -> Result<(Operation, Value), ApiError> {
        let reply = self
            .send(
                reqwest::Method::POST,
                &format!("/api/sync/operations/{operation}/start"),
                None,
            )
            .await?;
        split_plan(reply)
    }

    /// Reports progress, which also renews the lease.
    pub async fn progress(
        &self,
        operation: Uuid,
        report: &ProgressReport,
    ) -> Result<Operation, ApiError> {
        self.transition(operation, "progress", Some(report)).await
    }

    /// Completes an operation with the state the machine ended in.
    pub async fn complete(
        &self,
        operation: Uuid,
        report: &CompleteReport,
    ) -> Result<Operation, ApiError> {
        self.transition(operation, "complete", Some(report)).await
    }

    /// Fails an operation.
    pub async fn fail(&self, operation: Uuid, report: &FailReport) -> Result<Operation, ApiError> {
        self.transition(operation, "fail", Some(report)).await
    }

    /// Acknowledges a requested cancel, with the state the machine stopped in.
    pub async fn cancel_ack(
        &self,
        operation: Uuid,
        ack: &CancelAck,
    ) -> Result<Operation, ApiError> {
        self.transition(operation, "cancel-ack", Some(ack)).await
    }
}

/// An operation and, apart, its plan as the host sent it: the agent trusts no plan before
/// checking it, and a plan it cannot read must not make the rest of the operation unreadable.
fn split_plan(mut reply: Value) -> Result<(Operation, Value), ApiError> {
    let plan = reply
        .get_mut("plan")
        .map(Value::take)
        .unwrap_or(Value::Null);
    let operation = serde_json::from_value(reply).map_err(|e| unexpected(e.to_string()))?;
    Ok((operation, plan))
}

/// A 2xx reply that is not what the API promises.
fn unexpected(detail: String) -> ApiError {
    ApiError::Problem {
        status: 200,
        code: "UNEXPECTED_RESPONSE".into(),
        detail,
    }
}

/// The path segment that requests an operation of `kind`.
fn request_path(kind: OperationType) -> &'static str {
    match kind {
        OperationType::Sync => "sync-to-latest",
        OperationType::SetLatest => "set-as-latest",
        OperationType::Revert => "revert",
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
