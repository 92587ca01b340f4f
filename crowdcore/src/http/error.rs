//! JSON errors with stable codes, and extractors that turn axum's rejections into them.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::engine::HandleError;
use crate::pavilion::Rejected;

/// The stable error codes of the HTTP front. Clients match on these, not on messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// No admin key, or a wrong one (401).
    Unauthorized,
    /// The page token does not belong to the assignment (403).
    BadToken,
    /// The body is not JSON (400).
    InvalidJson,
    /// The JSON has a wrong type, a missing field or an unknown field (422).
    InvalidBody,
    /// The body is not declared `application/json` (415).
    UnsupportedMediaType,
    /// The body is larger than the limit (413).
    BodyTooLarge,
    /// The query string cannot be read (400).
    InvalidQuery,
    /// An id is empty, too long or has control characters (400).
    InvalidId,
    /// The platform's submit address is not an allowed origin (400).
    BadSubmitTarget,
    /// No such route (404).
    NotFound,
    /// The route does not take this method (405).
    MethodNotAllowed,
    /// No worker arrived with this assignment (404).
    UnknownAssignment,
    /// The HIT was never posted by this session (404).
    UnknownHit,
    /// The worker already left; an assignment never comes back (409).
    AlreadyLeft,
    /// Another worker holds the assignment (409).
    WorkerMismatch,
    /// The session has not started (409).
    NotStarted,
    /// The session has already started (409).
    AlreadyStarted,
    /// The job has stopped (409).
    JobStopped,
    /// The targets cannot work (422).
    BadTargets,
    /// The engine refused the input for another reason (409).
    Rejected,
    /// No HIT template has this id (404; retainer routes).
    UnknownTemplate,
    /// No reservation has this id (404; retainer routes).
    UnknownReservation,
    /// A template or reservation with this id exists already (409; retainer routes).
    Duplicate,
    /// The reservation's state does not allow this (409; retainer routes).
    NotAllowed,
    /// The engine has stopped (a store failure); nothing more can be done (503).
    EngineStopped,
    /// The engine failed the call (503).
    EngineFailed,
    /// The platform does not confirm that this worker holds this assignment of this HIT (a
    /// made-up assignment id, another worker's, another session's HIT): nothing was recorded
    /// (403).
    NotConfirmed,
    /// The platform could not be asked in time; nothing was recorded. Try again after
    /// `Retry-After` seconds (503).
    PlatformUnavailable,
    /// The page token (or the event-stream ticket) has expired (401).
    TokenExpired,
    /// Too many requests from this address or for this assignment; `Retry-After` says when
    /// to try again (429).
    RateLimited,
}

impl ErrorCode {
    /// The HTTP status that goes with the code.
    pub fn status(self) -> StatusCode {
        use ErrorCode::*;
        match self {
            Unauthorized | TokenExpired => StatusCode::UNAUTHORIZED,
            BadToken | NotConfirmed => StatusCode::FORBIDDEN,
            RateLimited => StatusCode::TOO_MANY_REQUESTS,
            InvalidJson | InvalidQuery | InvalidId | BadSubmitTarget => StatusCode::BAD_REQUEST,
            InvalidBody | BadTargets => StatusCode::UNPROCESSABLE_ENTITY,
            UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            NotFound | UnknownAssignment | UnknownHit | UnknownTemplate | UnknownReservation => {
                StatusCode::NOT_FOUND
            }
            MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            AlreadyLeft | WorkerMismatch | NotStarted | AlreadyStarted | JobStopped | Rejected
            | Duplicate | NotAllowed => StatusCode::CONFLICT,
            EngineStopped | EngineFailed | PlatformUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

/// An error response: `{"code": ..., "message": ...}` with the code's status.
#[derive(Debug, Clone, Serialize)]
pub struct ApiError {
    /// The stable code.
    pub code: ErrorCode,
    /// What went wrong, for people.
    pub message: String,
    /// The worker page's state, where the error concerns one (a heartbeat after leaving).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<super::hub::PageState>,
    /// Seconds to wait before trying again, sent as `Retry-After`.
    #[serde(skip)]
    retry_after_s: Option<u64>,
}

impl ApiError {
    /// An error with `code` and `message`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            state: None,
            retry_after_s: None,
        }
    }

    /// The same error, asking the client to wait `seconds` before trying again
    /// (`Retry-After`).
    pub fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after_s = Some(seconds);
        self
    }

    /// The `Retry-After` seconds, if the error has them.
    pub fn retry_after_s(&self) -> Option<u64> {
        self.retry_after_s
    }

    pub(crate) fn with_state(mut self, state: Option<super::hub::PageState>) -> Self {
        self.state = state;
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let retry = self.retry_after_s;
        let mut response = (self.code.status(), axum::Json(self)).into_response();
        if let Some(s) = retry {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(s),
            );
        }
        response
    }
}

impl From<HandleError> for ApiError {
    fn from(e: HandleError) -> Self {
        let code = match &e {
            HandleError::Stopped => ErrorCode::EngineStopped,
            HandleError::Store(_) => ErrorCode::EngineFailed,
            HandleError::Rejected(r) => rejected_code(r),
        };
        ApiError::new(code, e.to_string())
    }
}

/// The stable code of each of the Pavilion's refusals (a new variant must pick one here).
pub(crate) fn rejected_code(r: &Rejected) -> ErrorCode {
    match r {
        Rejected::NotStarted => ErrorCode::NotStarted,
        Rejected::AlreadyStarted => ErrorCode::AlreadyStarted,
        Rejected::Stopped => ErrorCode::JobStopped,
        Rejected::UnknownAssignment(_) => ErrorCode::UnknownAssignment,
        Rejected::UnknownHit(_) => ErrorCode::UnknownHit,
        Rejected::BadTargets(_) => ErrorCode::BadTargets,
        Rejected::AlreadyLeft(_) => ErrorCode::AlreadyLeft,
        Rejected::WorkerMismatch { .. } => ErrorCode::WorkerMismatch,
        Rejected::ClockWentBack { .. } | Rejected::NoHireInFlight | Rejected::UnknownHire(_) => {
            ErrorCode::Rejected
        }
    }
}

/// A JSON body with deny-unknown-fields types; rejections become [`ApiError`]s.
pub(crate) struct Body<T>(pub(crate) T);

impl<S, T> FromRequest<S> for Body<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Body(v)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

fn json_rejection(rejection: JsonRejection) -> ApiError {
    let code = match &rejection {
        JsonRejection::JsonDataError(_) => ErrorCode::InvalidBody,
        JsonRejection::JsonSyntaxError(_) => ErrorCode::InvalidJson,
        JsonRejection::MissingJsonContentType(_) => ErrorCode::UnsupportedMediaType,
        _ if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => ErrorCode::BodyTooLarge,
        _ => ErrorCode::InvalidJson,
    };
    ApiError::new(code, rejection.body_text())
}

/// A command that takes no arguments: an empty body, or `{}`.
pub(crate) struct NoBody;

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Nothing {}

impl<S: Send + Sync> FromRequest<S> for NoBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|r| {
                let code = if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ErrorCode::BodyTooLarge
                } else {
                    ErrorCode::InvalidJson
                };
                ApiError::new(code, r.body_text())
            })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(NoBody);
        }
        serde_json::from_slice::<Nothing>(&bytes)
            .map(|_| NoBody)
            .map_err(|e| {
                let code = if e.is_data() {
                    ErrorCode::InvalidBody
                } else {
                    ErrorCode::InvalidJson
                };
                ApiError::new(code, format!("this command takes no arguments: {e}"))
            })
    }
}

/// A query string; rejections become [`ApiError`]s.
pub(crate) struct Q<T>(pub(crate) T);

impl<S, T> FromRequestParts<S> for Q<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(Q(v)),
            Err(r) => Err(query_rejection(r)),
        }
    }
}

fn query_rejection(r: QueryRejection) -> ApiError {
    ApiError::new(ErrorCode::InvalidQuery, r.body_text())
}

pub(crate) async fn not_found() -> ApiError {
    ApiError::new(ErrorCode::NotFound, "no such route")
}

pub(crate) async fn method_not_allowed() -> ApiError {
    ApiError::new(
        ErrorCode::MethodNotAllowed,
        "this route does not take that method",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{AssignmentId, EffectId, HitId, SessionId, Timestamp, WorkerId};
    use crate::pavilion::ConfigError;

    fn code(r: Rejected) -> ErrorCode {
        let e = HandleError::Rejected(r);
        ApiError::from(e).code
    }

    #[test]
    fn every_refusal_has_its_code() {
        let a = AssignmentId::new("A 1 belongs to nobody already left");
        assert_eq!(
            code(Rejected::UnknownAssignment(a.clone())),
            ErrorCode::UnknownAssignment
        );
        assert_eq!(
            code(Rejected::AlreadyLeft(a.clone())),
            ErrorCode::AlreadyLeft
        );
        assert_eq!(
            code(Rejected::WorkerMismatch {
                assignment: AssignmentId::new("A1"),
                holder: WorkerId::new("W1"),
                claimed: WorkerId::new("W2"),
            }),
            ErrorCode::WorkerMismatch
        );
        assert_eq!(
            code(Rejected::UnknownHit(HitId::new("H"))),
            ErrorCode::UnknownHit
        );
        assert_eq!(code(Rejected::NotStarted), ErrorCode::NotStarted);
        assert_eq!(code(Rejected::AlreadyStarted), ErrorCode::AlreadyStarted);
        assert_eq!(code(Rejected::Stopped), ErrorCode::JobStopped);
        assert_eq!(
            code(Rejected::BadTargets(ConfigError::ZeroMaxActive)),
            ErrorCode::BadTargets
        );
        assert_eq!(code(Rejected::NoHireInFlight), ErrorCode::Rejected);
        assert_eq!(
            code(Rejected::UnknownHire(EffectId::new(SessionId::new("s"), 1))),
            ErrorCode::Rejected
        );
        assert_eq!(
            code(Rejected::ClockWentBack {
                now: Timestamp::ZERO,
                last: Timestamp::from_millis(1)
            }),
            ErrorCode::Rejected
        );
        assert_eq!(
            ApiError::from(HandleError::Stopped).code,
            ErrorCode::EngineStopped
        );
        assert_eq!(
            ApiError::from(HandleError::Store(crate::store::StoreError::Full(
                "disk full".to_owned()
            )))
            .code,
            ErrorCode::EngineFailed
        );
    }
}
