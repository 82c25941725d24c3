//! The one error type every handler, store and actor returns.
//!
//! Each variant knows its HTTP status and its stable `code`; the body is always
//! `{"error": {"code", "message", "fields"}}`, each field's reasons coded
//! (`fields.rs`) so the app can say them in its reader's language. Internal causes are logged with
//! the place they were raised and never sent to the client.

use std::panic::Location;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use utoipa::ToSchema;

mod fields;

pub use fields::{Code, FieldError, FieldErrors};

/// Every `code` an error answer can carry: one per kind of error, and the
/// conflicts by name. The OpenAPI description lists them.
pub const CODES: &[&str] = &[
    "bad_request",
    "validation_failed",
    "unauthorized",
    "forbidden",
    "not_found",
    "method_not_allowed",
    "gone",
    "payload_too_large",
    "unsupported_media_type",
    "too_many_requests",
    "unavailable",
    "internal",
    // Conflicts.
    "already_exists",
    "already_accepted",
    "inactive",
    "last_admin",
    "section_archived",
    "already_enrolled",
    "section_full",
    "capacity_below_enrollment",
    "not_editable",
    "not_published",
];

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// Malformed JSON, query string or path: the message says what is wrong.
    #[error("{0}")]
    BadRequest(String),
    /// Well-formed input that breaks a rule; `fields` says which and why.
    #[error("the request has invalid fields")]
    Validation(FieldErrors),
    #[error("{0}")]
    Unauthorized(&'static str),
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0} is not allowed here")]
    MethodNotAllowed(String),
    /// It existed, and is no more (an expired download).
    #[error("{0}")]
    Gone(&'static str),
    #[error("{message}")]
    Conflict {
        code: &'static str,
        message: String,
        fields: FieldErrors,
    },
    #[error("the request body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{message}")]
    TooManyRequests {
        message: &'static str,
        retry_after_secs: u64,
    },
    /// A dependency (database, Redis, mail) could not be reached in time.
    #[error("{what} is unavailable, try again shortly")]
    Unavailable {
        what: &'static str,
        fields: FieldErrors,
    },
    /// Anything unexpected: logged with its cause, answered with a generic 500.
    #[error("internal error at {location}: {source}")]
    Internal {
        source: Box<dyn std::error::Error + Send + Sync>,
        location: &'static Location<'static>,
    },
}

impl FieldErrors {
    /// `Ok(())` when nothing was recorded, otherwise a validation error.
    pub fn into_result(self) -> Result<(), AppError> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(AppError::Validation(self))
        }
    }
}

impl AppError {
    #[track_caller]
    pub fn internal(source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        AppError::Internal {
            source: source.into(),
            location: Location::caller(),
        }
    }

    pub fn conflict(code: &'static str, message: impl Into<String>, fields: FieldErrors) -> Self {
        debug_assert!(CODES.contains(&code), "{code} is missing from error::CODES");
        AppError::Conflict {
            code,
            message: message.into(),
            fields,
        }
    }

    pub fn unavailable(what: &'static str) -> Self {
        AppError::Unavailable {
            what,
            fields: FieldErrors::new(),
        }
    }

    pub fn field(field: &str, reason: impl Into<FieldError>) -> Self {
        AppError::Validation(FieldErrors::new().with(field, reason))
    }

    /// The stable machine-readable code clients branch on.
    pub fn code(&self) -> &'static str {
        match self {
            AppError::BadRequest(_) => "bad_request",
            AppError::Validation(_) => "validation_failed",
            AppError::Unauthorized(_) => "unauthorized",
            AppError::Forbidden(_) => "forbidden",
            AppError::NotFound(_) => "not_found",
            AppError::MethodNotAllowed(_) => "method_not_allowed",
            AppError::Gone(_) => "gone",
            AppError::Conflict { code, .. } => code,
            AppError::PayloadTooLarge { .. } => "payload_too_large",
            AppError::UnsupportedMediaType(_) => "unsupported_media_type",
            AppError::TooManyRequests { .. } => "too_many_requests",
            AppError::Unavailable { .. } => "unavailable",
            AppError::Internal { .. } => "internal",
        }
    }

    fn fields(&self) -> Option<&FieldErrors> {
        match self {
            AppError::Validation(fields)
            | AppError::Conflict { fields, .. }
            | AppError::Unavailable { fields, .. } => Some(fields),
            _ => None,
        }
    }
}

/// The JSON envelope of every error answer.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code, e.g. `validation_failed` (every one is
    /// listed in `CODES`).
    pub code: String,
    pub message: String,
    /// Reasons per input field; empty when the error is not about fields.
    pub fields: FieldErrors,
}

impl ResponseError for AppError {
    fn status_code(&self) -> StatusCode {
        match self {
            AppError::BadRequest(_) | AppError::Validation(_) => StatusCode::BAD_REQUEST,
            AppError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            AppError::Forbidden(_) => StatusCode::FORBIDDEN,
            AppError::NotFound(_) => StatusCode::NOT_FOUND,
            AppError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            AppError::Gone(_) => StatusCode::GONE,
            AppError::Conflict { .. } => StatusCode::CONFLICT,
            AppError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            AppError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            AppError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            AppError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Internal { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let message = match self {
            AppError::Internal { .. } => {
                tracing::error!(error = %self, "internal error");
                "internal server error".to_owned()
            }
            AppError::Unavailable { .. } => {
                tracing::warn!(error = %self, "dependency unavailable");
                self.to_string()
            }
            _ => self.to_string(),
        };
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code().to_owned(),
                message,
                fields: self.fields().cloned().unwrap_or_default(),
            },
        };
        let mut response = HttpResponse::build(self.status_code());
        match self {
            AppError::TooManyRequests {
                retry_after_secs, ..
            } => {
                response.insert_header((header::RETRY_AFTER, retry_after_secs.max(&1).to_string()));
            }
            AppError::Unauthorized(_) => {
                response
                    .insert_header((header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")));
            }
            // What was unavailable (a pool, the hashers) is usually back within a second.
            AppError::Unavailable { .. } => {
                response.insert_header((header::RETRY_AFTER, "1"));
            }
            _ => {}
        }
        response.json(body)
    }
}

impl From<diesel::result::Error> for AppError {
    #[track_caller]
    fn from(error: diesel::result::Error) -> Self {
        use diesel::result::{DatabaseErrorKind, Error};
        match error {
            Error::NotFound => AppError::NotFound("record"),
            // The server went away under a query (shut down, restarted, the
            // connection cut): a 503 the client can retry, not a bug.
            Error::DatabaseError(
                DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand,
                _,
            ) => {
                tracing::warn!(%error, "postgres connection lost");
                AppError::unavailable("postgres")
            }
            Error::DatabaseError(_, ref info) if server_going_away(info.message()) => {
                tracing::warn!(%error, "postgres is shutting down or starting up");
                AppError::unavailable("postgres")
            }
            other => AppError::internal(other),
        }
    }
}

/// PostgreSQL's words when it ends a connection itself (SQLSTATE class 57:
/// a shutdown, a restart, an administrator's command) or is not ready yet.
fn server_going_away(message: &str) -> bool {
    [
        "terminating connection due to",
        "the database system is shutting down",
        "the database system is starting up",
        "the database system is in recovery mode",
        "server closed the connection unexpectedly",
    ]
    .iter()
    .any(|words| message.contains(words))
}

impl From<bb8_redis::redis::RedisError> for AppError {
    #[track_caller]
    fn from(error: bb8_redis::redis::RedisError) -> Self {
        if error.is_connection_dropped() || error.is_io_error() || error.is_timeout() {
            tracing::warn!(%error, "redis command failed");
            AppError::unavailable("redis")
        } else {
            AppError::internal(error)
        }
    }
}

impl From<actix_web::error::BlockingError> for AppError {
    #[track_caller]
    fn from(error: actix_web::error::BlockingError) -> Self {
        AppError::internal(error.to_string())
    }
}

#[cfg(test)]
mod tests {
    use diesel::result::{DatabaseErrorKind, Error};

    use super::AppError;

    fn database(kind: DatabaseErrorKind, message: &str) -> AppError {
        Error::DatabaseError(kind, Box::new(message.to_owned())).into()
    }

    #[test]
    fn a_database_going_away_is_unavailable_not_internal() {
        for (kind, message) in [
            (
                DatabaseErrorKind::Unknown,
                "terminating connection due to administrator command",
            ),
            (
                DatabaseErrorKind::Unknown,
                "FATAL: the database system is shutting down",
            ),
            (DatabaseErrorKind::ClosedConnection, "connection closed"),
        ] {
            assert!(
                matches!(database(kind, message), AppError::Unavailable { .. }),
                "{message}"
            );
        }
        assert!(matches!(
            database(DatabaseErrorKind::Unknown, "syntax error at or near"),
            AppError::Internal { .. }
        ));
    }
}
