//! Prolific's webhooks: subscribing (`POST /api/v1/hooks/subscriptions/`, confirmed with the
//! `X-Hook-Secret` of its answer), and receiving deliveries safely.
//!
//! Every delivery is verified before it is read: `X-Prolific-Request-Signature` must be
//! `base64(HMAC-SHA256(workspace secret, X-Prolific-Request-Timestamp + body))` (compared in
//! constant time) and the timestamp within a tolerance of now (a replay of an old delivery is
//! refused). A delivery whose `X-Event-ID` was seen is dropped; one older (by its
//! `X-Timestamp`, else its signed timestamp) than the last applied for the same submission
//! is stale and ignored. A webhook only nudges the platform's poll: the poll of
//! `GET /api/v1/submissions/` stays the truth, so a lost webhook is caught by the next poll.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use reqwest::header::HeaderMap;
use serde_json::Value;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::client::ProlificClient;
use crate::error::ProlificError;
use crate::model::{SubmissionStatus, Subscription};

/// The event type crowdcore subscribes to.
pub const SUBMISSION_STATUS_CHANGE: &str = "submission.status.change";
/// The signature header.
pub const SIGNATURE_HEADER: &str = "x-prolific-request-signature";
/// The signed timestamp header (Unix seconds).
pub const TIMESTAMP_HEADER: &str = "x-prolific-request-timestamp";
/// The delivery's unique id.
pub const EVENT_ID_HEADER: &str = "x-event-id";
/// When the event happened (for ordering).
pub const EVENT_TIME_HEADER: &str = "x-timestamp";
/// The subscription handshake header.
pub const HOOK_SECRET_HEADER: &str = "x-hook-secret";

/// Why a delivery was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    /// A signature or timestamp header is missing.
    #[error("missing header {0}")]
    MissingHeader(&'static str),
    /// The signature does not match the body.
    #[error("bad signature")]
    BadSignature,
    /// The timestamp is too far from now (a replay, or a clock far off).
    #[error("timestamp {0} is outside the tolerance")]
    Expired(String),
    /// The body is not the event JSON.
    #[error("unreadable event: {0}")]
    Malformed(String),
}

/// The signature Prolific sends for `timestamp` and `body` under `secret`.
pub fn sign(secret: &str, timestamp: &str, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(timestamp.as_bytes());
    mac.update(body);
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Checks a delivery's signature (constant time) and that its timestamp is within
/// `tolerance` of `now_secs`.
pub fn verify(
    secret: &str,
    headers: &HeaderMap,
    body: &[u8],
    now_secs: u64,
    tolerance: Duration,
) -> Result<u64, WebhookError> {
    let text = |name: &'static str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .ok_or(WebhookError::MissingHeader(name))
    };
    let signature = text(SIGNATURE_HEADER)?;
    let timestamp = text(TIMESTAMP_HEADER)?;
    let expected = sign(secret, timestamp, body);
    if !bool::from(expected.as_bytes().ct_eq(signature.as_bytes())) {
        return Err(WebhookError::BadSignature);
    }
    // Checked after the signature, so that an unsigned request learns nothing.
    let at = parse_epoch_secs(timestamp).ok_or_else(|| WebhookError::Expired(timestamp.into()))?;
    if now_secs.abs_diff(at) > tolerance.as_secs() {
        return Err(WebhookError::Expired(timestamp.into()));
    }
    Ok(at)
}

/// Unix seconds from `1700000000`, `1700000000.123` or an RFC 3339 time.
fn parse_epoch_secs(text: &str) -> Option<u64> {
    if let Ok(n) = text.parse::<u64>() {
        return Some(n);
    }
    if let Ok(f) = text.parse::<f64>() {
        return (f.is_finite() && f >= 0.0).then_some(f as u64);
    }
    chrono::DateTime::parse_from_rfc3339(text)
        .ok()
        .and_then(|t| u64::try_from(t.timestamp()).ok())
}

/// A verified `submission.status.change` delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusChange {
    /// The delivery's `X-Event-ID`.
    pub event_id: String,
    /// The submission.
    pub submission: String,
    /// Its new status.
    pub status: SubmissionStatus,
    /// The study, if the event names it.
    pub study: Option<String>,
    /// The participant, if the event names it.
    pub participant: Option<String>,
    /// When it happened (Unix ms, from `X-Timestamp`, else the signed timestamp).
    pub at_ms: u64,
}

/// What became of a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// New and in order: apply it (nudge the poll).
    Accepted(StatusChange),
    /// Its `X-Event-ID` was seen: dropped.
    Duplicate(String),
    /// Older than what was applied for its submission: ignored.
    Stale(StatusChange),
    /// Another event type (study status, …): acknowledged, nothing to do.
    Ignored(String),
}

/// Receives deliveries for one workspace secret: verifies, drops duplicates, orders.
pub struct WebhookReceiver {
    secret: String,
    tolerance: Duration,
    state: Mutex<ReceiverState>,
    /// Woken by every accepted delivery: the host's poll waits on it as well as its timer.
    pub nudge: tokio::sync::Notify,
}

#[derive(Default)]
struct ReceiverState {
    seen: HashSet<String>,
    order: VecDeque<String>,
    latest: HashMap<String, u64>,
}

/// How many event ids a receiver remembers.
const REMEMBERED_EVENTS: usize = 100_000;

impl fmt::Debug for WebhookReceiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookReceiver")
            .field("secret", &"<redacted>")
            .field("tolerance", &self.tolerance)
            .finish_non_exhaustive()
    }
}

impl WebhookReceiver {
    /// A receiver for the workspace's hook secret, refusing deliveries signed more than
    /// `tolerance` from now.
    pub fn new(secret: impl Into<String>, tolerance: Duration) -> Self {
        Self {
            secret: secret.into(),
            tolerance,
            state: Mutex::new(ReceiverState::default()),
            nudge: tokio::sync::Notify::new(),
        }
    }

    /// The answer to Prolific's subscription handshake: the `X-Hook-Secret` to echo back
    /// (with a 200), if the request carries one.
    pub fn handshake(headers: &HeaderMap) -> Option<String> {
        headers
            .get(HOOK_SECRET_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    }

    /// Verifies and sorts one delivery at `now_secs` (Unix seconds).
    pub fn receive(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        now_secs: u64,
    ) -> Result<Delivery, WebhookError> {
        let signed_at = verify(&self.secret, headers, body, now_secs, self.tolerance)?;
        let event_id = headers
            .get(EVENT_ID_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .ok_or(WebhookError::MissingHeader(EVENT_ID_HEADER))?;
        let doc: Value =
            serde_json::from_slice(body).map_err(|e| WebhookError::Malformed(e.to_string()))?;
        let field = |names: &[&str]| {
            names
                .iter()
                .find_map(|n| doc.get(*n).and_then(Value::as_str))
                .map(str::to_owned)
        };
        let event_type = field(&["event_type"]).unwrap_or_default();
        let mut state = self.state.lock().expect("receiver lock");
        if state.seen.contains(&event_id) {
            return Ok(Delivery::Duplicate(event_id));
        }
        state.seen.insert(event_id.clone());
        state.order.push_back(event_id.clone());
        if state.order.len() > REMEMBERED_EVENTS
            && let Some(old) = state.order.pop_front()
        {
            state.seen.remove(&old);
        }
        if event_type != SUBMISSION_STATUS_CHANGE {
            return Ok(Delivery::Ignored(event_type));
        }
        let submission = field(&["resource_id", "submission_id"])
            .ok_or_else(|| WebhookError::Malformed("no resource_id".into()))?;
        let status_text = field(&["status", "new_status"])
            .ok_or_else(|| WebhookError::Malformed("no status".into()))?;
        let status: SubmissionStatus = serde_json::from_value(Value::String(status_text))
            .map_err(|e| WebhookError::Malformed(e.to_string()))?;
        let at_ms = headers
            .get(EVENT_TIME_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_epoch_ms)
            .unwrap_or(signed_at * 1000);
        let change = StatusChange {
            event_id,
            submission: submission.clone(),
            status,
            study: field(&["study_id", "study"]),
            participant: field(&["participant_id", "participant"]),
            at_ms,
        };
        let latest = state.latest.entry(submission).or_insert(0);
        if at_ms < *latest {
            return Ok(Delivery::Stale(change));
        }
        *latest = at_ms;
        drop(state);
        self.nudge.notify_one();
        Ok(Delivery::Accepted(change))
    }
}

/// What to answer a request to the webhook endpoint, and what it carried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The HTTP status: 200 for a handshake or a delivery taken (new, duplicate, stale or
    /// ignored: Prolific need not send it again), 401 for one that failed verification, 400
    /// for one that is not an event.
    pub status: u16,
    /// The `X-Hook-Secret` to echo back (the subscription handshake).
    pub echo_secret: Option<String>,
    /// The verified delivery, if it was one.
    pub delivery: Option<Delivery>,
}

impl WebhookReceiver {
    /// Answers one request to the webhook endpoint at `now_secs`: the handshake (echo its
    /// `X-Hook-Secret`), or a delivery, verified before anything of it is read.
    pub fn answer(&self, headers: &HeaderMap, body: &[u8], now_secs: u64) -> Answer {
        if headers.get(SIGNATURE_HEADER).is_none()
            && let Some(secret) = Self::handshake(headers)
        {
            return Answer {
                status: 200,
                echo_secret: Some(secret),
                delivery: None,
            };
        }
        match self.receive(headers, body, now_secs) {
            Ok(d) => Answer {
                status: 200,
                echo_secret: None,
                delivery: Some(d),
            },
            Err(WebhookError::Malformed(e)) => {
                tracing::warn!(error = %e, "a signed webhook that is not an event");
                Answer {
                    status: 400,
                    echo_secret: None,
                    delivery: None,
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "webhook refused");
                Answer {
                    status: 401,
                    echo_secret: None,
                    delivery: None,
                }
            }
        }
    }
}

/// Unix ms from seconds (integer or fractional), or an RFC 3339 time.
fn parse_epoch_ms(text: &str) -> Option<u64> {
    let text = text.trim();
    if let Ok(f) = text.parse::<f64>() {
        if !(f.is_finite() && f >= 0.0) {
            return None;
        }
        // Milliseconds if it is that large already.
        return Some(if f > 1e11 {
            f as u64
        } else {
            (f * 1000.0) as u64
        });
    }
    chrono::DateTime::parse_from_rfc3339(text)
        .ok()
        .and_then(|t| u64::try_from(t.timestamp_millis()).ok())
}

/// Subscribes `target_url` to `submission.status.change` in a workspace and confirms it with
/// the `X-Hook-Secret` of the answer. The workspace's signing secret comes from
/// [`ProlificClient::create_hook_secret`] (one per workspace; creating replaces it).
pub async fn subscribe(
    client: &ProlificClient,
    workspace: &str,
    target_url: &str,
) -> Result<Subscription, ProlificError> {
    if !target_url.starts_with("https://") {
        return Err(ProlificError::Invalid(format!(
            "Prolific delivers only to public https:// URLs, not {target_url}"
        )));
    }
    let (sub, secret) = client
        .create_subscription(workspace, SUBMISSION_STATUS_CHANGE, target_url)
        .await?;
    match secret {
        Some(s) => client.confirm_subscription(&sub.id, &s).await,
        None if sub.is_enabled => Ok(sub),
        None => Err(ProlificError::Decode(
            "the subscription's answer had no X-Hook-Secret to confirm it with".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn delivery(secret: &str, ts: u64, event: &str, at: u64, body: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        let ts = ts.to_string();
        h.insert(
            SIGNATURE_HEADER,
            HeaderValue::from_str(&sign(secret, &ts, body.as_bytes())).unwrap(),
        );
        h.insert(TIMESTAMP_HEADER, HeaderValue::from_str(&ts).unwrap());
        h.insert(EVENT_ID_HEADER, HeaderValue::from_str(event).unwrap());
        h.insert(
            EVENT_TIME_HEADER,
            HeaderValue::from_str(&at.to_string()).unwrap(),
        );
        h
    }

    const NOW: u64 = 1_800_000_000;

    fn body(status: &str) -> String {
        format!(
            r#"{{"event_type":"submission.status.change","resource_id":"sub1","status":"{status}","participant_id":"p1","study_id":"st1"}}"#
        )
    }

    #[test]
    fn signatures_match_the_documented_scheme() {
        // base64(HMAC-SHA256("secret", "1700000000" + "{}")), computed outside this code
        // (Python's hmac, as Prolific's docs show it); the body before the timestamp would
        // give j7EnzIxb….
        let s = sign("secret", "1700000000", b"{}");
        assert_eq!(s, "RM6OD3UEVWrrFT2bdZ2X/EyvymK1UHHNZgnc1eHXdHk=");
        assert_ne!(s, sign("secret", "1700000001", b"{}"));
        assert_ne!(s, sign("other", "1700000000", b"{}"));
    }

    #[test]
    fn forged_and_replayed_deliveries_are_refused() {
        let r = WebhookReceiver::new("s3cret", Duration::from_secs(300));
        let b = body("AWAITING REVIEW");
        let forged = delivery("not-the-secret", NOW, "e1", NOW, &b);
        assert_eq!(
            r.receive(&forged, b.as_bytes(), NOW),
            Err(WebhookError::BadSignature)
        );
        let good = delivery("s3cret", NOW, "e1", NOW, &b);
        let tampered = b.replace("sub1", "sub2");
        assert_eq!(
            r.receive(&good, tampered.as_bytes(), NOW),
            Err(WebhookError::BadSignature)
        );
        // An old delivery, correctly signed, replayed later.
        let old = delivery("s3cret", NOW - 3600, "e9", NOW - 3600, &b);
        assert!(matches!(
            r.receive(&old, b.as_bytes(), NOW),
            Err(WebhookError::Expired(_))
        ));
        let mut unsigned = good.clone();
        unsigned.remove(SIGNATURE_HEADER);
        assert_eq!(
            r.receive(&unsigned, b.as_bytes(), NOW),
            Err(WebhookError::MissingHeader(SIGNATURE_HEADER))
        );
    }

    #[test]
    fn answers_handshakes_deliveries_and_forgeries() {
        let r = WebhookReceiver::new("s3cret", Duration::from_secs(300));
        let mut h = HeaderMap::new();
        h.insert(HOOK_SECRET_HEADER, HeaderValue::from_static("hs-1"));
        let a = r.answer(&h, b"", NOW);
        assert_eq!((a.status, a.echo_secret.as_deref()), (200, Some("hs-1")));
        let b = body("APPROVED");
        let a = r.answer(&delivery("s3cret", NOW, "e7", NOW, &b), b.as_bytes(), NOW);
        assert_eq!(a.status, 200);
        assert!(matches!(a.delivery, Some(Delivery::Accepted(_))));
        let a = r.answer(&delivery("forged", NOW, "e8", NOW, &b), b.as_bytes(), NOW);
        assert_eq!((a.status, a.delivery), (401, None));
    }

    #[test]
    fn duplicates_are_dropped_and_old_events_ignored() {
        let r = WebhookReceiver::new("s3cret", Duration::from_secs(300));
        let submitted = body("AWAITING REVIEW");
        let active = body("ACTIVE");
        let h = delivery("s3cret", NOW, "e2", NOW, &submitted);
        let Delivery::Accepted(c) = r.receive(&h, submitted.as_bytes(), NOW).unwrap() else {
            panic!("first delivery accepted")
        };
        assert_eq!(c.status, SubmissionStatus::AwaitingReview);
        assert_eq!(c.submission, "sub1");
        assert_eq!(
            r.receive(&h, submitted.as_bytes(), NOW).unwrap(),
            Delivery::Duplicate("e2".into())
        );
        // ACTIVE happened before AWAITING REVIEW but arrives after it.
        let late = delivery("s3cret", NOW, "e1", NOW - 60, &active);
        assert!(matches!(
            r.receive(&late, active.as_bytes(), NOW).unwrap(),
            Delivery::Stale(_)
        ));
        let study = r#"{"event_type":"study.status.change","resource_id":"st1","status":"PAUSED"}"#;
        let h = delivery("s3cret", NOW, "e3", NOW, study);
        assert_eq!(
            r.receive(&h, study.as_bytes(), NOW).unwrap(),
            Delivery::Ignored("study.status.change".into())
        );
    }
}
