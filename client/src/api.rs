//! The host's HTTP API as the endpoint uses it.
//!
//! Every request goes through one helper (the `transport` module), which sends a request the
//! host turns away for now (429 `RATE_LIMITED`, 503 with `Retry-After`) again after the wait the
//! host asks for: at most three times, at most 30 s each, never past the command's deadline,
//! and after a 503 only if repeating it is harmless (the rules are in the `retry` module). An
//! operation is created under an `Idempotency-Key`, so that repeating its creation is harmless
//! too. This module holds what each call sends and what it reads from the answer.

mod retry;
mod transport;

use std::sync::Arc;
use std::time::{Duration, Instant};

use pacsync_core::{
    CancelAck, CompleteReport, FailReport, Operation, OperationType, ProgressReport, RevertRequest,
    StateRecorded, StateReport, TargetDiff,
};
use serde::Serialize;
use serde_json::{Value, json};
use uuid::Uuid;

use retry::Resend;
use transport::unexpected;

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
    /// 429 `RATE_LIMITED`, still after waiting and retrying as long as this command may.
    #[error("rate limited; retry after {retry_after} s ({detail})")]
    RateLimited {
        /// Seconds the host asked to wait before the next request.
        retry_after: u64,
        /// The host's detail (the limit).
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
    /// No wait before a retry ends later than this.
    deadline: Option<Instant>,
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
            deadline: None,
        }
    }

    /// The same client, never waiting to retry past `deadline` (a command's `--timeout`).
    pub fn until(&self, deadline: Instant) -> Self {
        Self {
            deadline: Some(deadline),
            ..self.clone()
        }
    }

    /// Posts an agent transition of `operation` and reads the operation after it.
    async fn transition(
        &self,
        operation: Uuid,
        action: &str,
        body: Option<&impl Serialize>,
        resend: Resend,
    ) -> Result<Operation, ApiError> {
        self.call(
            reqwest::Method::POST,
            &format!("/api/sync/operations/{operation}/{action}"),
            body,
            resend,
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
            .send(
                reqwest::Method::POST,
                "/api/endpoints/register",
                Some(body),
                Resend::Once,
            )
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
            // The same state twice is recorded once.
            Resend::Idempotent,
        )
        .await
    }

    /// The endpoint as the host sees it.
    pub async fn endpoint(&self, endpoint: Uuid) -> Result<Value, ApiError> {
        self.send(
            reqwest::Method::GET,
            &format!("/api/endpoints/{endpoint}"),
            None,
            Resend::Idempotent,
        )
        .await
    }

    /// The sync status and the difference from the pool target.
    pub async fn diff(&self, endpoint: Uuid) -> Result<TargetDiff, ApiError> {
        self.call(
            reqwest::Method::GET,
            &format!("/api/endpoints/{endpoint}/diff"),
            None::<&()>,
            Resend::Idempotent,
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
            Resend::Keyed,
        )
        .await
    }

    /// One operation.
    pub async fn get(&self, operation: Uuid) -> Result<Operation, ApiError> {
        self.call(
            reqwest::Method::GET,
            &format!("/api/sync/operations/{operation}"),
            None::<&()>,
            Resend::Idempotent,
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
                Resend::Idempotent,
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
                Resend::Once,
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
        // Progress twice is the same progress, and renews the lease all the same.
        let resend = Resend::Idempotent;
        self.transition(operation, "progress", Some(report), resend)
            .await
    }

    /// Completes an operation with the state the machine ended in.
    pub async fn complete(
        &self,
        operation: Uuid,
        report: &CompleteReport,
    ) -> Result<Operation, ApiError> {
        self.transition(operation, "complete", Some(report), Resend::Once)
            .await
    }

    /// Fails an operation.
    pub async fn fail(&self, operation: Uuid, report: &FailReport) -> Result<Operation, ApiError> {
        self.transition(operation, "fail", Some(report), Resend::Once)
            .await
    }

    /// Acknowledges a requested cancel, with the state the machine stopped in.
    pub async fn cancel_ack(
        &self,
        operation: Uuid,
        ack: &CancelAck,
    ) -> Result<Operation, ApiError> {
        self.transition(operation, "cancel-ack", Some(ack), Resend::Once)
            .await
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

/// The path segment that requests an operation of `kind`.
fn request_path(kind: OperationType) -> &'static str {
    match kind {
        OperationType::Sync => "sync-to-latest",
        OperationType::SetLatest => "set-as-latest",
        OperationType::Revert => "revert",
    }
}
