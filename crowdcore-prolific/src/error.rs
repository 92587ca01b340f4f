//! Errors of the Prolific client, and how they map onto crowdcore's [`PlatformError`].

use std::fmt;
use std::time::Duration;

use crowdcore::platform::{PlatformError, PlatformErrorKind};
use serde_json::Value;

/// A failed Prolific call.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ProlificError {
    /// Prolific answered with an error document (`{"error": {"status", "title", "detail", …}}`).
    #[error("{0}")]
    Api(Box<ApiError>),
    /// No answer within the request timeout: the request may or may not have been carried out.
    #[error("request timed out")]
    Timeout,
    /// The connection failed (refused, reset, DNS, a dropped answer): the request may or may
    /// not have reached Prolific.
    #[error("transport error: {0}")]
    Transport(String),
    /// An answer came but could not be read as the expected JSON.
    #[error("unreadable response: {0}")]
    Decode(String),
    /// The client is misconfigured (no token, a bad base URL).
    #[error("configuration: {0}")]
    Config(String),
    /// The request was refused before it was sent (a rejection message under 100 characters,
    /// a bonus of nothing, …).
    #[error("invalid request: {0}")]
    Invalid(String),
    /// A bonus payment was sent but neither its answer nor its effect could be seen yet: it is
    /// not sent again until it shows up or the settling window passes.
    #[error("bonus payment {0} is not confirmed yet")]
    PayUnconfirmed(String),
    /// The submission is still with its participant (ACTIVE): Prolific reviews only what
    /// awaits review. Retryable: the participant may be finishing it.
    #[error("submission {0} is not submitted yet")]
    NotSubmitted(String),
    /// A durable record of this platform (the store) failed: nothing was sent.
    #[error("store: {0}")]
    Store(String),
}

/// Prolific's error document with the HTTP status it came with.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// HTTP status.
    pub status: u16,
    /// Prolific's numeric `error_code`, if given.
    pub error_code: Option<i64>,
    /// Prolific's `title` (or the HTTP reason).
    pub title: String,
    /// Prolific's `detail`, as text: a message, or the invalid fields and their messages.
    pub detail: String,
    /// The `Retry-After` header, if the answer had one.
    pub retry_after: Option<Duration>,
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "prolific {} {}: {}",
            self.status, self.title, self.detail
        )
    }
}

impl ApiError {
    /// Reads Prolific's error document (`{"error": {…}}`, or a bare `{"detail": …}` as some
    /// endpoints send) from a non-success answer.
    pub fn from_body(status: u16, body: &[u8], retry_after: Option<Duration>) -> Self {
        let doc: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let inner = doc.get("error").unwrap_or(&doc);
        let title = inner
            .get("title")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or_else(|| format!("HTTP {status}"));
        let detail = match inner.get("detail") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Null) | None => match inner.get("additional_information") {
                Some(Value::String(s)) => s.clone(),
                _ if doc.is_null() => String::from_utf8_lossy(body).chars().take(300).collect(),
                _ => String::new(),
            },
            Some(other) => render_detail(other),
        };
        Self {
            status,
            error_code: inner.get("error_code").and_then(Value::as_i64),
            title,
            detail,
            retry_after,
        }
    }

    /// Whether the same request may succeed later (408, 429, 5xx).
    pub fn is_retryable(&self) -> bool {
        matches!(self.status, 408 | 429 | 500..=599)
    }

    /// Whether Prolific refused the request without doing anything (429: throttled).
    pub fn refused_untouched(&self) -> bool {
        self.status == 429
    }
}

/// A field map (`{"reward": ["must be positive"]}`) or list as one line of text.
fn render_detail(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(items) => items
            .iter()
            .map(render_detail)
            .collect::<Vec<_>>()
            .join("; "),
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| format!("{k}: {}", render_detail(v)))
            .collect::<Vec<_>>()
            .join("; "),
        other => other.to_string(),
    }
}

impl ProlificError {
    /// The API error inside, if Prolific answered with one.
    pub fn api(&self) -> Option<&ApiError> {
        match self {
            ProlificError::Api(e) => Some(e),
            _ => None,
        }
    }

    /// The HTTP status of Prolific's answer, if it answered.
    pub fn status(&self) -> Option<u16> {
        self.api().map(|a| a.status)
    }

    /// Whether the same call may succeed if tried again.
    pub fn is_retryable(&self) -> bool {
        match self {
            ProlificError::Api(e) => e.is_retryable(),
            ProlificError::Timeout
            | ProlificError::Transport(_)
            | ProlificError::PayUnconfirmed(_)
            | ProlificError::NotSubmitted(_)
            | ProlificError::Store(_) => true,
            ProlificError::Decode(_) | ProlificError::Config(_) | ProlificError::Invalid(_) => {
                false
            }
        }
    }

    /// Whether the request may have been carried out although no success came back (a
    /// timeout, a broken connection, a 5xx): what a call that is not idempotent must
    /// reconcile before it is sent again. A 429 and 4xx answers say nothing was done.
    pub fn may_have_happened(&self) -> bool {
        match self {
            ProlificError::Timeout | ProlificError::Transport(_) | ProlificError::Decode(_) => true,
            ProlificError::Api(e) => e.status >= 500,
            _ => false,
        }
    }
}

impl From<ProlificError> for PlatformError {
    fn from(e: ProlificError) -> Self {
        let message = e.to_string();
        match &e {
            ProlificError::Api(api) => {
                let kind = match api.status {
                    429 => PlatformErrorKind::Throttled,
                    408 => PlatformErrorKind::Timeout,
                    500..=599 => PlatformErrorKind::Unavailable,
                    402 => PlatformErrorKind::InsufficientFunds,
                    404 => PlatformErrorKind::NotFound,
                    409 => PlatformErrorKind::Conflict,
                    _ if mentions_funds(&api.detail) || mentions_funds(&api.title) => {
                        PlatformErrorKind::InsufficientFunds
                    }
                    _ => PlatformErrorKind::BadRequest,
                };
                PlatformError::new(kind, api.status.to_string(), message)
            }
            ProlificError::Timeout => {
                PlatformError::new(PlatformErrorKind::Timeout, "Timeout", message)
            }
            ProlificError::Transport(_) => {
                PlatformError::new(PlatformErrorKind::Unavailable, "Transport", message)
            }
            ProlificError::PayUnconfirmed(_) => {
                PlatformError::new(PlatformErrorKind::Unavailable, "PayUnconfirmed", message)
            }
            ProlificError::Store(_) => {
                PlatformError::new(PlatformErrorKind::Unavailable, "Store", message)
            }
            // The engine's code for "the worker may still submit": it retries until the
            // assignment's duration is over.
            ProlificError::NotSubmitted(_) => PlatformError::new(
                PlatformErrorKind::Conflict,
                crowdcore::engine::NOT_SUBMITTED,
                message,
            ),
            ProlificError::Decode(_) => {
                PlatformError::new(PlatformErrorKind::BadRequest, "Decode", message)
            }
            ProlificError::Config(_) => {
                PlatformError::new(PlatformErrorKind::BadRequest, "Config", message)
            }
            ProlificError::Invalid(_) => {
                PlatformError::new(PlatformErrorKind::BadRequest, "Invalid", message)
            }
        }
    }
}

fn mentions_funds(text: &str) -> bool {
    let t = text.to_ascii_lowercase();
    t.contains("insufficient") || t.contains("balance") || t.contains("funds")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_prolific_error_documents() {
        let body = br#"{"error":{"status":400,"error_code":140001,"title":"Bad request","detail":{"reward":["Ensure this value is greater than or equal to 1."]},"additional_information":"/api/v1/errors/140001"}}"#;
        let e = ApiError::from_body(400, body, None);
        assert_eq!(e.error_code, Some(140001));
        assert_eq!(e.title, "Bad request");
        assert_eq!(
            e.detail,
            "reward: Ensure this value is greater than or equal to 1."
        );
        let p: PlatformError = ProlificError::Api(Box::new(e)).into();
        assert_eq!(p.kind, PlatformErrorKind::BadRequest);
        assert!(p.message.contains("greater than or equal"), "{p}");

        let e = ApiError::from_body(429, b"", Some(Duration::from_secs(3)));
        assert!(e.is_retryable() && e.refused_untouched());
        let p: PlatformError = ProlificError::Api(Box::new(e)).into();
        assert_eq!(p.kind, PlatformErrorKind::Throttled);
    }

    #[test]
    fn only_unanswered_calls_may_have_happened() {
        assert!(ProlificError::Timeout.may_have_happened());
        assert!(
            ProlificError::Api(Box::new(ApiError::from_body(502, b"bad gateway", None)))
                .may_have_happened()
        );
        assert!(
            !ProlificError::Api(Box::new(ApiError::from_body(429, b"", None))).may_have_happened()
        );
        assert!(
            !ProlificError::Api(Box::new(ApiError::from_body(400, b"{}", None)))
                .may_have_happened()
        );
    }
}
