//! The API's one error shape: `{code, message, request_id, details}` with
//! stable codes. Errors are converted to HTTP here and nowhere else; the
//! request id is filled in by the request-id middleware.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Stable error codes. Clients match on `code`; never rename one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    NotFound,
    MethodNotAllowed,
    PayloadTooLarge,
    /// The body is not valid JSON or does not have the expected shape.
    InvalidRequest,
    /// A field's value breaks a rule; `details.fields` names each.
    ValidationFailed,
    PasswordPolicy,
    Unauthenticated,
    Forbidden,
    /// The route is for a person signed in with a browser session.
    SessionRequired,
    /// A state-changing browser request without the session's CSRF token.
    CsrfFailed,
    /// MFA is required for everyone and this user has not enrolled yet.
    MfaEnrolmentRequired,
    InvalidCredentials,
    MfaRequired,
    InvalidMfaCode,
    AccountDisabled,
    TooManyAttempts,
    RateLimited,
    Conflict,
    UsernameTaken,
    LastAdmin,
    SetupComplete,
    InvalidSetupToken,
    InvalidCursor,
    IdempotencyKeyReused,
    IdempotencyInProgress,
    InvalidIdempotencyKey,
    UnsupportedMediaType,
    DatabaseUnavailable,
    Internal,
    /// `If-Match` named an older version; `details.current` is the record.
    PreconditionFailed,
    /// Another record already has this value in a unique field.
    DuplicateValue,
    /// Operations of a batch write failed and none was applied;
    /// `details.operations` says which and why.
    BatchFailed,
    /// Existing records prevent a schema change; `details.record_ids`.
    SchemaConflict,
    /// A schema change could not get its lock in time.
    CollectionBusy,
    /// The `filter` parameter is not a valid filter for this collection.
    InvalidFilter,
    /// The `sort` or `fields` parameter names something that cannot be used.
    InvalidSort,
    /// A query ran longer than the statement timeout.
    QueryTimeout,
    /// The server streams as many exports as it allows at once.
    ExportsBusy,
    /// A download link that is not the caller's, was altered, or expired.
    InvalidLink,
    /// The caller keeps as many stored exports as one person may.
    TooManyExports,
    /// The server receives as many import files as it allows at once.
    ImportsBusy,
    /// A password reset link that is unknown, expired or used.
    InvalidResetLink,
    /// The request names a host this server does not answer to.
    MisdirectedRequest,
    /// This replica cannot seal a secret: its key file lacks the key in
    /// force (a rotation elsewhere) or cannot be read.
    SecretsUnavailable,
}

impl ErrorCode {
    /// Every code, for the documentation test.
    pub const ALL: [ErrorCode; 44] = [
        ErrorCode::NotFound,
        ErrorCode::MethodNotAllowed,
        ErrorCode::PayloadTooLarge,
        ErrorCode::InvalidRequest,
        ErrorCode::ValidationFailed,
        ErrorCode::PasswordPolicy,
        ErrorCode::Unauthenticated,
        ErrorCode::Forbidden,
        ErrorCode::SessionRequired,
        ErrorCode::CsrfFailed,
        ErrorCode::MfaEnrolmentRequired,
        ErrorCode::InvalidCredentials,
        ErrorCode::MfaRequired,
        ErrorCode::InvalidMfaCode,
        ErrorCode::AccountDisabled,
        ErrorCode::TooManyAttempts,
        ErrorCode::RateLimited,
        ErrorCode::Conflict,
        ErrorCode::UsernameTaken,
        ErrorCode::LastAdmin,
        ErrorCode::SetupComplete,
        ErrorCode::InvalidSetupToken,
        ErrorCode::InvalidCursor,
        ErrorCode::IdempotencyKeyReused,
        ErrorCode::IdempotencyInProgress,
        ErrorCode::InvalidIdempotencyKey,
        ErrorCode::UnsupportedMediaType,
        ErrorCode::DatabaseUnavailable,
        ErrorCode::Internal,
        ErrorCode::PreconditionFailed,
        ErrorCode::DuplicateValue,
        ErrorCode::BatchFailed,
        ErrorCode::SchemaConflict,
        ErrorCode::CollectionBusy,
        ErrorCode::InvalidFilter,
        ErrorCode::InvalidSort,
        ErrorCode::QueryTimeout,
        ErrorCode::ExportsBusy,
        ErrorCode::InvalidLink,
        ErrorCode::TooManyExports,
        ErrorCode::ImportsBusy,
        ErrorCode::InvalidResetLink,
        ErrorCode::MisdirectedRequest,
        ErrorCode::SecretsUnavailable,
    ];

    pub fn status(self) -> StatusCode {
        use ErrorCode::*;
        match self {
            NotFound => StatusCode::NOT_FOUND,
            MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            InvalidRequest
            | InvalidCursor
            | InvalidIdempotencyKey
            | InvalidFilter
            | InvalidSort => StatusCode::BAD_REQUEST,
            PreconditionFailed => StatusCode::PRECONDITION_FAILED,
            MisdirectedRequest => StatusCode::MISDIRECTED_REQUEST,
            DuplicateValue | SchemaConflict => StatusCode::CONFLICT,
            CollectionBusy | QueryTimeout | ExportsBusy | ImportsBusy | SecretsUnavailable => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ValidationFailed | PasswordPolicy | BatchFailed => StatusCode::UNPROCESSABLE_ENTITY,
            Unauthenticated | InvalidCredentials | MfaRequired | InvalidMfaCode => {
                StatusCode::UNAUTHORIZED
            }
            Forbidden | SessionRequired | CsrfFailed | MfaEnrolmentRequired | AccountDisabled
            | InvalidSetupToken | InvalidLink | InvalidResetLink => StatusCode::FORBIDDEN,
            TooManyAttempts | RateLimited => StatusCode::TOO_MANY_REQUESTS,
            Conflict
            | UsernameTaken
            | LastAdmin
            | SetupComplete
            | IdempotencyKeyReused
            | IdempotencyInProgress
            | TooManyExports => StatusCode::CONFLICT,
            UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            DatabaseUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The code as it appears in JSON.
    pub fn as_str(self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default()
    }
}

/// An error response body before the request id is known.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorBody {
    pub code: ErrorCode,
    pub message: String,
    #[serde(default)]
    pub request_id: String,
    #[serde(default)]
    pub details: Value,
    /// Sent as `Retry-After` (seconds) when set.
    #[serde(skip)]
    pub retry_after: Option<u64>,
}

impl ErrorBody {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ErrorBody {
            code,
            message: message.into(),
            request_id: String::new(),
            details: Value::Null,
            retry_after: None,
        }
    }

    pub fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    pub fn with_details(mut self, details: Value) -> Self {
        self.details = details;
        self
    }

    /// Renders the JSON response.
    pub fn render(&self) -> Response {
        let body = serde_json::to_vec(self).unwrap_or_else(|_| b"{}".to_vec());
        let mut response = (self.code.status(), body).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

impl IntoResponse for ErrorBody {
    fn into_response(self) -> Response {
        let mut response = self.render();
        // The request-id middleware re-renders with the id.
        response.extensions_mut().insert(self);
        response
    }
}

pub async fn not_found() -> ErrorBody {
    ErrorBody::new(
        ErrorCode::NotFound,
        "no such endpoint; check the path and the API version in the URL",
    )
}

pub async fn method_not_allowed() -> ErrorBody {
    ErrorBody::new(
        ErrorCode::MethodNotAllowed,
        "this endpoint does not accept that HTTP method",
    )
}

/// `Retry-After` of a `database_unavailable` answer: a restart or a
/// failover takes seconds.
const RETRY_DATABASE_SECS: u64 = 2;

/// A database failure inside a request: logged with its detail, answered
/// without it (the message is for operators, not callers).
impl From<crate::secrets::VaultError> for ErrorBody {
    fn from(e: crate::secrets::VaultError) -> ErrorBody {
        match e {
            crate::secrets::VaultError::Db(e) => ErrorBody::from(e),
            other => {
                tracing::error!(error = %other, "cannot seal a secret");
                ErrorBody::new(
                    ErrorCode::SecretsUnavailable,
                    "this server cannot seal secrets: its key file (secrets.key_file) lacks the \
                     key in force or cannot be read; nothing was changed. Try again through \
                     another replica; an administrator copies the key file from the replica \
                     that rotated the keys",
                )
                .retry_after(RETRY_DATABASE_SECS)
            }
        }
    }
}

impl From<tokio_postgres::Error> for ErrorBody {
    fn from(e: tokio_postgres::Error) -> ErrorBody {
        crate::metrics::Metrics::shared().db_error(crate::db::error_kind(&e));
        if crate::db::is_unavailable(&e) {
            tracing::error!(error = %crate::db::describe_pg_error(&e), "database unavailable during a request");
            return ErrorBody::new(
                ErrorCode::DatabaseUnavailable,
                "the database is unavailable (restarting, failing over, or out of connections); \
                 try again shortly",
            )
            .retry_after(RETRY_DATABASE_SECS);
        }
        if e.code() == Some(&tokio_postgres::error::SqlState::QUERY_CANCELED) {
            // Every pooled connection runs under `api.query_timeout_ms`.
            tracing::warn!(error = %crate::db::describe_pg_error(&e), "a request's statement hit the statement timeout");
            return ErrorBody::new(
                ErrorCode::QueryTimeout,
                "the database took longer than the server allows for one statement \
                 (api.query_timeout_ms), for example while a schema change held the table; \
                 try again shortly",
            )
            .retry_after(1);
        }
        tracing::error!(error = %crate::db::describe_pg_error(&e), "database error during a request");
        ErrorBody::new(
            ErrorCode::Internal,
            "the request failed inside the server; try again, and if it persists give an \
             administrator the request id",
        )
    }
}

impl From<deadpool_postgres::PoolError> for ErrorBody {
    fn from(e: deadpool_postgres::PoolError) -> ErrorBody {
        crate::metrics::Metrics::shared().db_error(crate::db::pool_error_kind(&e));
        tracing::error!(error = %crate::db::describe_pool_error(&e), "no database connection for a request");
        ErrorBody::new(
            ErrorCode::DatabaseUnavailable,
            "the database is unavailable or busy; try again shortly",
        )
        .retry_after(RETRY_DATABASE_SECS)
    }
}

impl From<crate::audit::AuditError> for ErrorBody {
    fn from(e: crate::audit::AuditError) -> ErrorBody {
        match e {
            crate::audit::AuditError::Db(e) => e.into(),
        }
    }
}
