//! Errors of the Toloka client, and how they map onto crowdcore's [`PlatformError`].

use std::fmt;
use std::time::Duration;

use crowdcore::platform::{PlatformError, PlatformErrorKind};
use serde_json::Value;

use crate::model::AssignmentStatus;

/// A failed Toloka call.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TolokaError {
    /// Toloka answered with an error document (`{"code": …, "message": …}`).
    #[error("{0}")]
    Api(Box<ApiError>),
    /// No answer within the request timeout.
    #[error("request timed out")]
    Timeout,
    /// The connection failed before an answer came (refused, reset, DNS).
    #[error("transport error: {0}")]
    Transport(String),
    /// An answer came but could not be read as the expected JSON.
    #[error("unreadable response: {0}")]
    Decode(String),
    /// An asynchronous operation finished with status `FAIL`.
    #[error("operation {id} failed: {details}")]
    OperationFailed {
        /// The operation.
        id: String,
        /// What Toloka said in the operation's `details`, as JSON text.
        details: String,
    },
    /// An operation was still running when the wait limit ran out.
    #[error("operation {0} still running after the wait limit")]
    OperationTimeout(String),
    /// The assignment was already reviewed the other way (accepting a rejected one, …).
    #[error("assignment {assignment} is already {status:?}")]
    AlreadyReviewed {
        /// The assignment.
        assignment: String,
        /// Its status on Toloka.
        status: AssignmentStatus,
    },
    /// The assignment is still with its worker (`ACTIVE`): Toloka reviews only submitted
    /// work. Retryable: the worker's page may be submitting it; once it expires instead, a
    /// retry gets a permanent error.
    #[error("assignment {0} is not submitted yet")]
    NotSubmitted(String),
    /// Every item of a batch failed validation (or one item did, without `skip_invalid_items`).
    #[error("validation failed: {0}")]
    Validation(String),
    /// The client is misconfigured (no token, a bad base URL).
    #[error("configuration: {0}")]
    Config(String),
    /// The request was refused before it was sent (an empty or oversized batch, …).
    #[error("invalid request: {0}")]
    Invalid(String),
}

/// Toloka's error document with the HTTP status it came with.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// HTTP status.
    pub status: u16,
    /// Toloka's error code (`VALIDATION_ERROR`, `DOES_NOT_EXIST`, `OPERATION_ALREADY_EXISTS`, …).
    pub code: String,
    /// Toloka's message.
    pub message: String,
    /// The request id to quote to support.
    pub request_id: Option<String>,
    /// Extra data: invalid fields for validation errors, the quota `interval` for 429.
    pub payload: Option<Value>,
    /// The `Retry-After` header, if the answer had one.
    pub retry_after: Option<Duration>,
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "toloka {} {}: {}", self.status, self.code, self.message)?;
        if let Some(p) = &self.payload {
            write!(f, " {p}")?;
        }
        Ok(())
    }
}

/// The classes toloka-kit sorts Toloka's error codes into (`ValidationApiError`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// `VALIDATION_ERROR`: the request's fields are wrong.
    Validation,
    /// `AUTHENTICATION_ERROR`: the token is missing or wrong.
    Authentication,
    /// `ACCESS_DENIED`: the token may not touch this object.
    AccessDenied,
    /// `DOES_NOT_EXIST`.
    NotFound,
    /// `CONFLICT_STATE`: the object is in a state that forbids the change.
    Conflict,
    /// `TOO_MANY_REQUESTS` (HTTP 429): a quota ran out.
    TooManyRequests,
    /// `INTERNAL_ERROR`, `REMOTE_SERVICE_UNAVAILABLE` or any 5xx.
    Unavailable,
    /// HTTP 408.
    RequestTimeout,
    /// One of Toloka's specific action codes (`OPERATION_ALREADY_EXISTS`, `INAPPROPRIATE_STATUS`,
    /// `NOT_ENOUGH_BALANCE`, …): toloka-kit's `IncorrectActionsApiError`.
    IncorrectAction,
}

/// The window of a Toloka quota that ran out (the `interval` of a 429's payload).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QuotaWindow {
    /// A per-minute quota.
    Minute,
    /// A per-hour quota.
    Hour,
    /// A per-day quota.
    Day,
}

impl ApiError {
    /// The error's class, from its code (and its HTTP status when the code is unknown).
    pub fn class(&self) -> ErrorClass {
        match self.code.as_str() {
            "VALIDATION_ERROR" => ErrorClass::Validation,
            "AUTHENTICATION_ERROR" | "OAUTH_AUTHENTICATION_ERROR" => ErrorClass::Authentication,
            "ACCESS_DENIED" => ErrorClass::AccessDenied,
            "DOES_NOT_EXIST" => ErrorClass::NotFound,
            "CONFLICT_STATE" => ErrorClass::Conflict,
            "TOO_MANY_REQUESTS" => ErrorClass::TooManyRequests,
            "INTERNAL_ERROR" | "REMOTE_SERVICE_UNAVAILABLE" => ErrorClass::Unavailable,
            _ => match self.status {
                408 => ErrorClass::RequestTimeout,
                429 => ErrorClass::TooManyRequests,
                500..=599 => ErrorClass::Unavailable,
                400 => ErrorClass::Validation,
                401 => ErrorClass::Authentication,
                403 => ErrorClass::AccessDenied,
                404 => ErrorClass::NotFound,
                _ => ErrorClass::IncorrectAction,
            },
        }
    }

    /// The quota window of a 429, from the payload's `interval` (`MIN`, `HOUR`, `DAY`).
    pub fn quota_window(&self) -> Option<QuotaWindow> {
        let interval = self.payload.as_ref()?.get("interval")?.as_str()?;
        match interval {
            "MIN" | "MINUTE" => Some(QuotaWindow::Minute),
            "HOUR" => Some(QuotaWindow::Hour),
            "DAY" => Some(QuotaWindow::Day),
            _ => None,
        }
    }

    /// Whether the same request may succeed later (408, 429, 5xx).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self.class(),
            ErrorClass::TooManyRequests | ErrorClass::Unavailable | ErrorClass::RequestTimeout
        )
    }
}

/// Toloka's code for a pool another operation is still changing.
pub(crate) const POOL_LOCKED: &str = "POOL_LOCKED_BY_ANOTHER_OPERATION";

impl TolokaError {
    /// The API error inside, if Toloka answered with one.
    pub fn api(&self) -> Option<&ApiError> {
        match self {
            TolokaError::Api(e) => Some(e),
            _ => None,
        }
    }

    /// Whether Toloka answered with this error code.
    pub fn has_code(&self, code: &str) -> bool {
        self.api().is_some_and(|e| e.code == code)
    }

    /// `409 POOL_LOCKED_BY_ANOTHER_OPERATION`: another operation (an open, a close, an
    /// archive) is still running on the pool. Toloka takes one pool operation at a time; this
    /// one may be sent again once that one is done, so it is retryable (the client's
    /// [`open_pool`](crate::TolokaClient::open_pool) and
    /// [`close_pool`](crate::TolokaClient::close_pool) wait for it themselves).
    pub fn is_pool_locked(&self) -> bool {
        self.has_code(POOL_LOCKED)
    }

    /// Whether the same call may succeed if tried again (with the same operation id).
    pub fn is_retryable(&self) -> bool {
        match self {
            TolokaError::Api(e) => e.is_retryable() || e.code == POOL_LOCKED,
            TolokaError::Timeout
            | TolokaError::Transport(_)
            | TolokaError::OperationTimeout(_)
            | TolokaError::NotSubmitted(_) => true,
            _ => false,
        }
    }

    /// The crowdcore class of this error: what a driver should do about it.
    pub fn platform_kind(&self) -> PlatformErrorKind {
        use PlatformErrorKind as K;
        match self {
            TolokaError::Api(e) => {
                if e.code == "NOT_ENOUGH_BALANCE" {
                    return K::InsufficientFunds;
                }
                if e.code == POOL_LOCKED {
                    // Busy, not wrong: the same call succeeds once the pool's operation ends.
                    return K::Unavailable;
                }
                match e.class() {
                    ErrorClass::TooManyRequests => K::Throttled,
                    ErrorClass::RequestTimeout => K::Timeout,
                    ErrorClass::Unavailable => K::Unavailable,
                    ErrorClass::NotFound => K::NotFound,
                    ErrorClass::Conflict | ErrorClass::IncorrectAction => K::Conflict,
                    ErrorClass::Validation
                    | ErrorClass::Authentication
                    | ErrorClass::AccessDenied => K::BadRequest,
                }
            }
            TolokaError::Timeout | TolokaError::OperationTimeout(_) => K::Timeout,
            TolokaError::Transport(_) | TolokaError::NotSubmitted(_) => K::Unavailable,
            TolokaError::OperationFailed { .. } | TolokaError::AlreadyReviewed { .. } => {
                K::Conflict
            }
            TolokaError::Decode(_)
            | TolokaError::Validation(_)
            | TolokaError::Config(_)
            | TolokaError::Invalid(_) => K::BadRequest,
        }
    }

    fn platform_code(&self) -> String {
        match self {
            TolokaError::Api(e) => e.code.clone(),
            TolokaError::Timeout => "TIMEOUT".into(),
            TolokaError::Transport(_) => "TRANSPORT".into(),
            TolokaError::Decode(_) => "DECODE".into(),
            TolokaError::OperationFailed { .. } => "OPERATION_FAILED".into(),
            TolokaError::OperationTimeout(_) => "OPERATION_TIMEOUT".into(),
            TolokaError::AlreadyReviewed { .. } => "ALREADY_REVIEWED".into(),
            TolokaError::NotSubmitted(_) => "NOT_SUBMITTED".into(),
            TolokaError::Validation(_) => "VALIDATION_ERROR".into(),
            TolokaError::Config(_) => "CONFIG".into(),
            TolokaError::Invalid(_) => "INVALID_REQUEST".into(),
        }
    }
}

impl From<TolokaError> for PlatformError {
    fn from(e: TolokaError) -> Self {
        PlatformError::new(e.platform_kind(), e.platform_code(), e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(status: u16, code: &str, payload: Option<Value>) -> TolokaError {
        TolokaError::Api(Box::new(ApiError {
            status,
            code: code.into(),
            message: "m".into(),
            request_id: None,
            payload,
            retry_after: None,
        }))
    }

    #[test]
    fn codes_map_to_platform_kinds() {
        use PlatformErrorKind as K;
        for (status, code, kind, retry) in [
            (429, "TOO_MANY_REQUESTS", K::Throttled, true),
            (408, "", K::Timeout, true),
            (503, "REMOTE_SERVICE_UNAVAILABLE", K::Unavailable, true),
            (500, "INTERNAL_ERROR", K::Unavailable, true),
            (502, "", K::Unavailable, true),
            (400, "VALIDATION_ERROR", K::BadRequest, false),
            (401, "AUTHENTICATION_ERROR", K::BadRequest, false),
            (404, "DOES_NOT_EXIST", K::NotFound, false),
            (409, "CONFLICT_STATE", K::Conflict, false),
            (409, "OPERATION_ALREADY_EXISTS", K::Conflict, false),
            (409, "INAPPROPRIATE_STATUS", K::Conflict, false),
            (409, "NOT_ENOUGH_BALANCE", K::InsufficientFunds, false),
            (
                409,
                "POOL_LOCKED_BY_ANOTHER_OPERATION",
                K::Unavailable,
                true,
            ),
        ] {
            let e = api(status, code, None);
            assert_eq!(e.platform_kind(), kind, "{status} {code}");
            assert_eq!(e.is_retryable(), retry, "{status} {code}");
            assert_eq!(PlatformError::from(e).is_retryable(), retry);
        }
        assert!(TolokaError::Timeout.is_retryable());
        assert!(TolokaError::Transport("reset".into()).is_retryable());
        assert!(!TolokaError::Validation("x".into()).is_retryable());
    }

    #[test]
    fn the_quota_window_is_read_from_the_payload() {
        let e = api(
            429,
            "TOO_MANY_REQUESTS",
            Some(serde_json::json!({"interval": "HOUR"})),
        );
        assert_eq!(e.api().unwrap().quota_window(), Some(QuotaWindow::Hour));
        let e = api(429, "TOO_MANY_REQUESTS", None);
        assert_eq!(e.api().unwrap().quota_window(), None);
        let e = api(
            429,
            "TOO_MANY_REQUESTS",
            Some(serde_json::json!({"interval": "MIN"})),
        );
        assert_eq!(e.api().unwrap().quota_window(), Some(QuotaWindow::Minute));
    }
}
