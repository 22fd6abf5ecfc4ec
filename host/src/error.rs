//! The host's error type and its single mapping to RFC 9457 `application/problem+json`.
//!
//! Every failure a client can see has an [`ErrorCode`]: a stable, machine-readable name that
//! also fixes the HTTP status. Stored procedures signal illegal transitions with their own
//! SQLSTATEs (class `PS`, listed in `sql/V2__procedures.sql`); `database` (the `From<sqlx::Error>`
//! impl) is the one place they become codes.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

mod database;

/// Stable problem codes. The JSON spelling is SCREAMING_SNAKE_CASE of the variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    // 400
    /// The body is not valid JSON or does not match the expected shape.
    InvalidJson,
    /// A path parameter is not a valid id.
    InvalidId,
    /// A query parameter is malformed.
    InvalidQuery,
    /// A pagination cursor was not produced by this API.
    InvalidCursor,
    /// The `Idempotency-Key` header is empty, too long or not visible ASCII.
    InvalidIdempotencyKey,
    // 401
    /// No bearer token was sent.
    MissingToken,
    /// The token is malformed, expired, for another audience or badly signed.
    InvalidToken,
    /// The endpoint token was revoked (endpoint deleted or token rotated).
    TokenRevoked,
    /// The enrollment token is unknown.
    InvalidEnrollmentToken,
    /// The enrollment token has expired.
    EnrollmentTokenExpired,
    /// The enrollment token has been used as often as allowed.
    EnrollmentTokenExhausted,
    // 403
    /// The route needs an admin token.
    AdminRequired,
    /// An endpoint token tried to act on another endpoint.
    NotYourEndpoint,
    /// The route is for the endpoint's own agent.
    EndpointRequired,
    /// The pool's `target_setters` does not allow this caller to change its target.
    TargetChangeForbidden,
    // 404
    /// No such route.
    RouteNotFound,
    /// No such pool.
    PoolNotFound,
    /// No such endpoint.
    EndpointNotFound,
    /// No such operation.
    OperationNotFound,
    /// No such state in the endpoint's history.
    StateNotFound,
    /// No such policy plugin.
    PluginNotFound,
    /// No such enrollment token in the pool.
    EnrollmentTokenNotFound,
    /// No admin token with this name.
    AdminTokenNotFound,
    // 405 / 413 / 415
    /// The route exists but not for this method.
    MethodNotAllowed,
    /// The body is larger than the host accepts.
    PayloadTooLarge,
    /// The body is not `application/json`.
    UnsupportedMediaType,
    /// A WebSocket route was called without a WebSocket upgrade.
    WebSocketRequired,
    // 409
    /// The endpoint already has a pending or in-progress operation.
    OperationConflict,
    /// `start` on an operation that is not pending.
    OperationNotPending,
    /// `progress`, `complete` or a cancel acknowledgement on an operation not in progress.
    OperationNotInProgress,
    /// `cancel` or `fail` on an operation that already ended.
    OperationAlreadyFinished,
    /// A cancel acknowledgement without a cancel request.
    CancelNotRequested,
    /// The pool target moved while the operation was being (re)planned, repeatedly.
    StalePlan,
    /// The endpoint has an active operation that blocks this change.
    EndpointBusy,
    /// The pool still has endpoints.
    PoolNotEmpty,
    /// A live pool already has this name.
    PoolNameTaken,
    /// A live endpoint of the same pool already has this name.
    EndpointNameTaken,
    /// The pool has no target state yet (run set-as-latest first).
    NoPoolTarget,
    /// A pool still uses the plugin.
    PluginInUse,
    /// The built-in plugins are part of the host and cannot be deleted.
    BuiltinPlugin,
    /// An admin token with this name already exists.
    AdminTokenNameTaken,
    /// The endpoint has not reported its packages yet.
    NoReportedState,
    /// The endpoint's history has nothing to revert to.
    NoPreviousState,
    /// A revert needs package versions the endpoint cannot obtain.
    RevertUnobtainable,
    // 422
    /// The body is well-formed JSON but a value is invalid.
    ValidationFailed,
    /// A reported package list is invalid.
    InvalidPackageState,
    /// A reported availability (offered versions, archive repositories) is invalid.
    InvalidAvailability,
    /// An `Idempotency-Key` was reused for a different request.
    IdempotencyKeyMismatch,
    /// The upload is not a component implementing `pacsync:policy/policy`.
    InvalidPlugin,
    /// The plugin rejected the pool's config.
    InvalidPolicyConfig,
    // 429
    /// The caller sent more requests than its rate limit allows; see `Retry-After`.
    RateLimited,
    /// The caller already holds as many event streams as it may.
    TooManyStreams,
    // 5xx
    /// The request took longer than the host's request timeout.
    RequestTimeout,
    /// The policy failed while classifying or planning.
    PolicyFault,
    /// Every policy instance slot stayed busy for the call's whole deadline.
    PolicyBusy,
    /// The database is unreachable.
    DatabaseUnavailable,
    /// A bug or an unexpected database error; details are in the host log.
    Internal,
}

impl ErrorCode {
    /// The HTTP status that goes with the code.
    pub fn status(self) -> StatusCode {
        use ErrorCode::*;
        match self {
            InvalidJson | InvalidId | InvalidQuery | InvalidCursor | InvalidIdempotencyKey => {
                StatusCode::BAD_REQUEST
            }
            MissingToken
            | InvalidToken
            | TokenRevoked
            | InvalidEnrollmentToken
            | EnrollmentTokenExpired
            | EnrollmentTokenExhausted => StatusCode::UNAUTHORIZED,
            AdminRequired | NotYourEndpoint | EndpointRequired | TargetChangeForbidden => {
                StatusCode::FORBIDDEN
            }
            RouteNotFound
            | PoolNotFound
            | EndpointNotFound
            | OperationNotFound
            | StateNotFound
            | PluginNotFound
            | EnrollmentTokenNotFound
            | AdminTokenNotFound => StatusCode::NOT_FOUND,
            MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            WebSocketRequired => StatusCode::UPGRADE_REQUIRED,
            OperationConflict
            | OperationNotPending
            | OperationNotInProgress
            | OperationAlreadyFinished
            | CancelNotRequested
            | StalePlan
            | EndpointBusy
            | PoolNotEmpty
            | PoolNameTaken
            | EndpointNameTaken
            | PluginInUse
            | BuiltinPlugin
            | AdminTokenNameTaken
            | NoPoolTarget
            | NoReportedState
            | NoPreviousState
            | RevertUnobtainable => StatusCode::CONFLICT,
            ValidationFailed
            | InvalidPackageState
            | InvalidAvailability
            | IdempotencyKeyMismatch
            | InvalidPlugin
            | InvalidPolicyConfig => StatusCode::UNPROCESSABLE_ENTITY,
            RateLimited | TooManyStreams => StatusCode::TOO_MANY_REQUESTS,
            PolicyFault => StatusCode::BAD_GATEWAY,
            DatabaseUnavailable | PolicyBusy | RequestTimeout => StatusCode::SERVICE_UNAVAILABLE,
            Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable machine-readable spelling.
    pub fn as_str(self) -> &'static str {
        use ErrorCode::*;
        match self {
            InvalidJson => "INVALID_JSON",
            InvalidId => "INVALID_ID",
            InvalidQuery => "INVALID_QUERY",
            InvalidCursor => "INVALID_CURSOR",
            InvalidIdempotencyKey => "INVALID_IDEMPOTENCY_KEY",
            MissingToken => "MISSING_TOKEN",
            InvalidToken => "INVALID_TOKEN",
            TokenRevoked => "TOKEN_REVOKED",
            InvalidEnrollmentToken => "INVALID_ENROLLMENT_TOKEN",
            EnrollmentTokenExpired => "ENROLLMENT_TOKEN_EXPIRED",
            EnrollmentTokenExhausted => "ENROLLMENT_TOKEN_EXHAUSTED",
            AdminRequired => "ADMIN_REQUIRED",
            NotYourEndpoint => "NOT_YOUR_ENDPOINT",
            EndpointRequired => "ENDPOINT_REQUIRED",
            TargetChangeForbidden => "TARGET_CHANGE_FORBIDDEN",
            EnrollmentTokenNotFound => "ENROLLMENT_TOKEN_NOT_FOUND",
            AdminTokenNotFound => "ADMIN_TOKEN_NOT_FOUND",
            AdminTokenNameTaken => "ADMIN_TOKEN_NAME_TAKEN",
            RateLimited => "RATE_LIMITED",
            TooManyStreams => "TOO_MANY_STREAMS",
            RequestTimeout => "REQUEST_TIMEOUT",
            RouteNotFound => "ROUTE_NOT_FOUND",
            PoolNotFound => "POOL_NOT_FOUND",
            EndpointNotFound => "ENDPOINT_NOT_FOUND",
            OperationNotFound => "OPERATION_NOT_FOUND",
            StateNotFound => "STATE_NOT_FOUND",
            PluginNotFound => "PLUGIN_NOT_FOUND",
            PluginInUse => "PLUGIN_IN_USE",
            BuiltinPlugin => "BUILTIN_PLUGIN",
            InvalidPlugin => "INVALID_PLUGIN",
            InvalidPolicyConfig => "INVALID_POLICY_CONFIG",
            MethodNotAllowed => "METHOD_NOT_ALLOWED",
            PayloadTooLarge => "PAYLOAD_TOO_LARGE",
            UnsupportedMediaType => "UNSUPPORTED_MEDIA_TYPE",
            WebSocketRequired => "WEBSOCKET_REQUIRED",
            OperationConflict => "OPERATION_CONFLICT",
            OperationNotPending => "OPERATION_NOT_PENDING",
            OperationNotInProgress => "OPERATION_NOT_IN_PROGRESS",
            OperationAlreadyFinished => "OPERATION_ALREADY_FINISHED",
            CancelNotRequested => "CANCEL_NOT_REQUESTED",
            StalePlan => "STALE_PLAN",
            EndpointBusy => "ENDPOINT_BUSY",
            PoolNotEmpty => "POOL_NOT_EMPTY",
            PoolNameTaken => "POOL_NAME_TAKEN",
            EndpointNameTaken => "ENDPOINT_NAME_TAKEN",
            NoPoolTarget => "NO_POOL_TARGET",
            NoReportedState => "NO_REPORTED_STATE",
            NoPreviousState => "NO_PREVIOUS_STATE",
            RevertUnobtainable => "REVERT_UNOBTAINABLE",
            ValidationFailed => "VALIDATION_FAILED",
            InvalidPackageState => "INVALID_PACKAGE_STATE",
            InvalidAvailability => "INVALID_AVAILABILITY",
            IdempotencyKeyMismatch => "IDEMPOTENCY_KEY_MISMATCH",
            PolicyFault => "POLICY_FAULT",
            PolicyBusy => "POLICY_BUSY",
            DatabaseUnavailable => "DATABASE_UNAVAILABLE",
            Internal => "INTERNAL",
        }
    }
}

/// An error with its problem code and a human-readable detail.
#[derive(Debug, thiserror::Error)]
#[error("{}: {detail}", code.as_str())]
pub struct Error {
    /// What went wrong, stably.
    pub code: ErrorCode,
    /// What went wrong, for people. Never contains secrets.
    pub detail: String,
    /// Seconds after which a retry may succeed, sent as `Retry-After`.
    pub retry_after: Option<u64>,
}

impl Error {
    /// Builds an error from a code and a detail.
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> Self {
        Self {
            code,
            detail: detail.into(),
            retry_after: None,
        }
    }

    /// The same error, telling the client when a retry may succeed.
    pub fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds.max(1));
        self
    }

    /// An internal error; the cause is logged, the client sees a generic detail.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(ErrorCode::Internal, "internal error; see the host log")
    }
}

/// Result type of the host's domain functions.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The RFC 9457 problem document.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// A URI naming the problem type (`urn:pacsync:problem:<code>`).
    #[serde(rename = "type")]
    pub type_: String,
    /// Short summary of the problem type.
    pub title: String,
    /// HTTP status.
    pub status: u16,
    /// What happened in this instance.
    pub detail: String,
    /// Stable machine-readable code, e.g. `OPERATION_CONFLICT`.
    pub code: String,
    /// The request's id (also its `x-request-id` header and a field of its log lines).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = self.code.status();
        let code = self.code.as_str();
        // A policy slot frees within one plugin deadline (a second by default); a database
        // connection, as soon as a request ahead finishes.
        let retry_after = self.retry_after.or(matches!(
            self.code,
            ErrorCode::PolicyBusy | ErrorCode::DatabaseUnavailable
        )
        .then_some(1));
        let problem = Problem {
            type_: format!(
                "urn:pacsync:problem:{}",
                code.to_ascii_lowercase().replace('_', "-")
            ),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail: self.detail,
            code: code.to_owned(),
            instance: crate::request_id::current(),
        };
        let mut response = (status, axum::Json(problem)).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(seconds) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}
