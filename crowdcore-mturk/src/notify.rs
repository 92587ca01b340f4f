//! Push notifications: MTurk's assignment events read from an SQS queue and handed to the
//! engine as [`AssignmentUpdate`]s.
//!
//! MTurk writes a JSON document per message (`EventDocVersion`, `EventDocId`, `Events`); one
//! message can carry several events, and every one of them is handled. A message is deleted
//! only after its updates were handed over: a message whose hand-over failed (or whose delete
//! failed) is delivered again after its visibility timeout, which is harmless because the
//! engine refuses a departure it has already seen.
//!
//! Trust: a message whose body is an SNS envelope (the queue subscribed to a topic MTurk
//! notifies) is accepted only with a valid signature of the configured topic
//! ([`NotificationSettings::sns_topic_arn`], [`SnsVerifier`]); a forged, unsigned or
//! foreign-topic message is refused, logged (`warn`, without its body or signature) and left on
//! the queue for its redrive policy. With [`NotificationReader::with_session`], an event enters
//! a delivery's updates only if it names a HIT of the session
//! ([`MturkPlatform::in_session`]); the others are dropped (`debug`) and counted.
//!
//! Limits of MTurk's format, not hidden here: an event names no worker (the updates' `worker`
//! is empty; the engine keys departures by assignment), SQS standard queues do not keep order,
//! and MTurk may give a returned or abandoned assignment's id to the next worker, so a late
//! `AssignmentReturned` could name a slot someone holds again. The landing page's own reports
//! and heartbeats remain the first source for the engine; pushed events confirm them.
//!
//! The driving loop, as [`NotificationReader::run`] does it:
//!
//! ```no_run
//! # use crowdcore_mturk::NotificationReader;
//! # async fn drive(reader: NotificationReader, mut engine: crowdcore::engine::Engine) {
//! loop {
//!     let Ok(deliveries) = reader.receive().await else { continue }; // retry after a backoff
//!     for delivery in deliveries {
//!         if engine.push_updates(&delivery.updates).await.is_ok() {
//!             let _ = reader.delete(&delivery).await; // else: delivered again later
//!         }
//!     }
//! }
//! # }
//! ```

use std::future::Future;
use std::time::Duration;

use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sdk_sqs::Client;
use aws_smithy_types::DateTime;
use aws_smithy_types::date_time::Format;
use serde::Deserialize;

use crowdcore::platform::{AssignmentStatus, AssignmentUpdate, PlatformError, PlatformErrorKind};
use crowdcore::{AssignmentId, HitId, Timestamp, WorkerId};

use std::sync::Arc;

use crate::config::{MturkConfig, NotificationSettings};
use crate::error::failure;
use crate::platform::MturkPlatform;
use crate::sns::{SnsError, SnsMessage, SnsVerifier};

/// Why a queue message is not an MTurk notification.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotificationError {
    /// The body is not a JSON notification document.
    #[error("not an mturk notification: {0}")]
    Malformed(String),
    /// An event's `EventTimestamp` is not an ISO 8601 date-time.
    #[error("bad event timestamp {0:?}")]
    BadTimestamp(String),
    /// An assignment event names no assignment or no HIT.
    #[error("{0} event without an assignment or hit")]
    MissingId(String),
    /// An SNS envelope that was refused: forged, of another topic, unsigned where signatures
    /// are required, or not verified at all.
    #[error("sns message refused: {0}")]
    Refused(SnsError),
}

/// One event of a notification message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotificationEvent {
    /// MTurk's event type (`AssignmentSubmitted`, `HITExpired`, `Ping`, …).
    pub event_type: String,
    /// When it happened.
    pub at: Timestamp,
    /// Its HIT, if it names one.
    pub hit: Option<HitId>,
    /// Its assignment, if it names one.
    pub assignment: Option<AssignmentId>,
    /// Its HIT type, if it names one.
    pub hit_type: Option<String>,
}

impl NotificationEvent {
    /// The assignment status an event type means; `None` for HIT events and pings.
    pub fn status(&self) -> Option<AssignmentStatus> {
        Some(match self.event_type.as_str() {
            "AssignmentAccepted" => AssignmentStatus::Accepted,
            "AssignmentSubmitted" => AssignmentStatus::Submitted,
            "AssignmentReturned" => AssignmentStatus::Returned,
            "AssignmentAbandoned" => AssignmentStatus::Abandoned,
            "AssignmentApproved" => AssignmentStatus::Approved,
            "AssignmentRejected" => AssignmentStatus::Rejected,
            _ => return None,
        })
    }

    /// The update an assignment event stands for. MTurk's events name no worker, so the
    /// update's worker is empty (the engine keys departures by assignment).
    pub fn update(&self) -> Option<AssignmentUpdate> {
        let status = self.status()?;
        Some(AssignmentUpdate {
            assignment: self.assignment.clone()?,
            worker: WorkerId::new(""),
            hit: self.hit.clone()?,
            status,
            at: self.at,
        })
    }
}

/// A parsed notification message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// MTurk's id of the document (the same event may come in two messages with one id).
    pub doc_id: Option<String>,
    /// The schema version (`2014-08-15`).
    pub version: Option<String>,
    /// Every event, in the message's order.
    pub events: Vec<NotificationEvent>,
}

impl Notification {
    /// The updates of the assignment events, in the message's order (HIT events and pings
    /// have none).
    pub fn updates(&self) -> Vec<AssignmentUpdate> {
        self.events.iter().filter_map(|e| e.update()).collect()
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawDoc {
    #[serde(default)]
    event_doc_id: Option<String>,
    #[serde(default)]
    event_doc_version: Option<String>,
    events: Vec<RawEvent>,
}

#[derive(Deserialize)]
struct RawEvent {
    #[serde(rename = "EventType")]
    event_type: String,
    #[serde(rename = "EventTimestamp")]
    event_timestamp: String,
    #[serde(rename = "HITId", default)]
    hit_id: Option<String>,
    #[serde(rename = "AssignmentId", default)]
    assignment_id: Option<String>,
    #[serde(rename = "HITTypeId", default)]
    hit_type_id: Option<String>,
}

/// Parses one message body: MTurk's notification document. Every event is kept; an
/// assignment event without its ids, or an unreadable timestamp, fails the whole message (it is
/// left on the queue, see the module docs). An SNS envelope is refused here: its signature must
/// be checked first ([`SnsVerifier::verify`], as [`NotificationReader`] does), then its
/// `Message` parsed.
pub fn parse_message(body: &str) -> Result<Notification, NotificationError> {
    let value: serde_json::Value =
        serde_json::from_str(body).map_err(|e| NotificationError::Malformed(e.to_string()))?;
    if SnsMessage::from_value(&value).is_some() {
        return Err(NotificationError::Refused(SnsError::Unsigned));
    }
    let raw: RawDoc =
        serde_json::from_value(value).map_err(|e| NotificationError::Malformed(e.to_string()))?;
    let mut events = Vec::with_capacity(raw.events.len());
    for e in raw.events {
        let at = DateTime::from_str(&e.event_timestamp, Format::DateTime)
            .ok()
            .and_then(|t| t.to_millis().ok())
            .and_then(|ms| u64::try_from(ms).ok())
            .ok_or_else(|| NotificationError::BadTimestamp(e.event_timestamp.clone()))?;
        let event = NotificationEvent {
            event_type: e.event_type,
            at: Timestamp::from_millis(at),
            hit: e.hit_id.filter(|s| !s.is_empty()).map(HitId::new),
            assignment: e
                .assignment_id
                .filter(|s| !s.is_empty())
                .map(AssignmentId::new),
            hit_type: e.hit_type_id.filter(|s| !s.is_empty()),
        };
        if event.status().is_some() && (event.assignment.is_none() || event.hit.is_none()) {
            return Err(NotificationError::MissingId(event.event_type));
        }
        events.push(event);
    }
    Ok(Notification {
        doc_id: raw.event_doc_id,
        version: raw.event_doc_version,
        events,
    })
}

/// A received message: its events and the updates they mean, and what deleting it takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// SQS's message id.
    pub message_id: String,
    /// The parsed message.
    pub notification: Notification,
    /// The updates of its assignment events, in order.
    pub updates: Vec<AssignmentUpdate>,
    receipt_handle: String,
}

/// What one [`NotificationReader::pump`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PumpStats {
    /// Messages received (malformed ones included).
    pub received: usize,
    /// Events in the messages handed over.
    pub events: usize,
    /// Updates handed over.
    pub updates: usize,
    /// Messages deleted.
    pub deleted: usize,
    /// Messages left on the queue: the hand-over or the delete failed (delivered again later).
    pub kept: usize,
    /// Messages that are not MTurk notifications (left on the queue for its redrive policy).
    pub malformed: usize,
    /// Messages refused as not verified: forged, unsigned or of another SNS topic (left on
    /// the queue for its redrive policy).
    pub refused: usize,
    /// Events dropped because they name a HIT outside the session.
    pub dropped: usize,
}

/// What one receive found besides the deliveries.
#[derive(Debug, Default)]
struct Received {
    deliveries: Vec<Delivery>,
    received: usize,
    malformed: usize,
    refused: usize,
    dropped: usize,
    /// Messages left on the queue because their HITs could not be checked now.
    kept: usize,
}

impl PumpStats {
    fn add(&mut self, r: &Received) {
        self.received += r.received;
        self.malformed += r.malformed;
        self.refused += r.refused;
        self.dropped += r.dropped;
        self.kept += r.kept;
    }
}

/// Reads MTurk's notifications from the SQS queue of a [`MturkConfig`] (`aws-sdk-sqs`, with the
/// MTurk client's TLS, retry, timeout and credential settings).
pub struct NotificationReader {
    client: Client,
    settings: NotificationSettings,
    sns: Option<SnsVerifier>,
    session: Option<Arc<MturkPlatform>>,
}

impl std::fmt::Debug for NotificationReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NotificationReader")
            .field("queue_url", &self.settings.queue_url)
            .field("sns", &self.sns)
            .field(
                "session",
                &self.session.as_ref().map(|p| p.config().scope.clone()),
            )
            .finish_non_exhaustive()
    }
}

/// The region in a queue URL (`https://sqs.<region>.amazonaws.com/…`).
fn queue_region(url: &str) -> Option<String> {
    let host = url.split("://").nth(1)?.split('/').next()?;
    let region = host.strip_prefix("sqs.")?.split('.').next()?;
    (!region.is_empty() && host.contains(".amazonaws.com")).then(|| region.to_owned())
}

fn no_queue() -> PlatformError {
    PlatformError::new(
        PlatformErrorKind::BadRequest,
        "NoNotificationQueue",
        "the configuration names no notification queue",
    )
}

impl NotificationReader {
    /// Connects to the configured queue with credentials from the standard AWS chain; an error
    /// if `config.notifications` is `None`.
    pub async fn connect(config: &MturkConfig) -> Result<Self, PlatformError> {
        Self::load(config, None).await
    }

    /// Connects with the given credentials.
    pub async fn connect_with_credentials(
        config: &MturkConfig,
        credentials: impl ProvideCredentials + 'static,
    ) -> Result<Self, PlatformError> {
        Self::load(config, Some(SharedCredentialsProvider::new(credentials))).await
    }

    async fn load(
        config: &MturkConfig,
        credentials: Option<SharedCredentialsProvider>,
    ) -> Result<Self, PlatformError> {
        let settings = config.notifications.clone().ok_or_else(no_queue)?;
        let region = settings
            .region
            .clone()
            .or_else(|| queue_region(&settings.queue_url))
            .unwrap_or_else(|| config.region.clone());
        let endpoint = match &settings.endpoint_url {
            Some(url) => url.clone(),
            None => format!("https://sqs.{region}.amazonaws.com"),
        };
        // A long poll outlasts the MTurk attempt timeout: give it its wait on top.
        let mut config = config.clone();
        let wait_ms = u64::try_from(settings.wait_time_s.max(0)).unwrap_or(0) * 1_000;
        config.timeouts.attempt_ms += wait_ms;
        config.timeouts.operation_ms = config.timeouts.operation_ms.max(config.timeouts.attempt_ms);
        let sdk = crate::platform::sdk_config(&config, credentials, &endpoint, region).await;
        Ok(Self::from_client(Client::new(&sdk), settings))
    }

    /// Wraps an SQS client configured elsewhere. With [`NotificationSettings::sns_topic_arn`],
    /// SNS signatures are checked with certificates fetched over HTTPS.
    pub fn from_client(client: Client, settings: NotificationSettings) -> Self {
        let sns = settings.sns_topic_arn.clone().map(SnsVerifier::new);
        Self {
            client,
            settings,
            sns,
            session: None,
        }
    }

    /// Checks SNS envelopes with `verifier` (its topic, its certificate fetcher) instead: every
    /// message must then be a signed envelope of its topic.
    pub fn with_sns_verifier(mut self, verifier: SnsVerifier) -> Self {
        self.sns = Some(verifier);
        self
    }

    /// Lets only events of `platform`'s HITs (its scope's, and those it posted) become
    /// updates: an event naming another HIT — another session's, or none of crowdcore's — is
    /// dropped. Give it the platform the engine runs on.
    pub fn with_session(mut self, platform: Arc<MturkPlatform>) -> Self {
        self.session = Some(platform);
        self
    }

    /// The MTurk document a message body carries, once it is trusted: the body itself for a
    /// bare document (unless signed SNS envelopes are required), the `Message` of a verified
    /// SNS notification.
    async fn open(&self, body: &str) -> Result<String, SnsError> {
        let Some(envelope) = SnsMessage::from_body(body) else {
            return match self.sns {
                Some(_) => Err(SnsError::Unsigned),
                None => Ok(body.to_owned()),
            };
        };
        let Some(verifier) = &self.sns else {
            // No topic to hold it to: a genuine message of any topic could be copied here.
            return Err(SnsError::WrongTopic(
                envelope.topic_arn.clone().unwrap_or_default(),
            ));
        };
        verifier.verify(&envelope).await?;
        if envelope.kind != "Notification" {
            return Err(SnsError::UnsupportedType(envelope.kind));
        }
        envelope.message.ok_or(SnsError::Missing("Message"))
    }

    /// Drops the events of HITs outside the session. `Err` when the session's HITs could not
    /// be listed (the message stays on the queue and comes again).
    async fn scoped(
        &self,
        message: &str,
        mut notification: Notification,
    ) -> Result<(Notification, usize), PlatformError> {
        let Some(platform) = &self.session else {
            return Ok((notification, 0));
        };
        let mut kept = Vec::with_capacity(notification.events.len());
        let mut dropped = 0;
        for event in notification.events {
            let ours = match &event.hit {
                Some(hit) => platform.in_session(hit).await?,
                None => true, // a ping names no HIT
            };
            if ours {
                kept.push(event);
            } else {
                tracing::debug!(
                    message, hit = ?event.hit, event = %event.event_type,
                    "event of a HIT outside the session dropped"
                );
                dropped += 1;
            }
        }
        notification.events = kept;
        Ok((notification, dropped))
    }

    /// The queue settings.
    pub fn settings(&self) -> &NotificationSettings {
        &self.settings
    }

    /// One long-poll `ReceiveMessage`: the messages received, parsed. A message that is not an
    /// MTurk notification is logged and left on the queue (its redrive policy moves it to a
    /// dead-letter queue); it is not in the result.
    pub async fn receive(&self) -> Result<Vec<Delivery>, PlatformError> {
        Ok(self.receive_counted().await?.deliveries)
    }

    async fn receive_counted(&self) -> Result<Received, PlatformError> {
        let out = self
            .client
            .receive_message()
            .queue_url(&self.settings.queue_url)
            .max_number_of_messages(self.settings.max_messages.clamp(1, 10))
            .wait_time_seconds(self.settings.wait_time_s.clamp(0, 20))
            .set_visibility_timeout(self.settings.visibility_timeout_s)
            .send()
            .await
            .map_err(|e| failure("ReceiveMessage", &e).error)?;
        let messages = out.messages();
        let mut r = Received {
            deliveries: Vec::with_capacity(messages.len()),
            received: messages.len(),
            ..Received::default()
        };
        for m in messages {
            let id = m.message_id().unwrap_or_default().to_owned();
            let (Some(body), Some(handle)) = (m.body(), m.receipt_handle()) else {
                tracing::warn!(message = %id, "notification without a body or receipt handle");
                r.malformed += 1;
                continue;
            };
            let document = match self.open(body).await {
                Ok(document) => document,
                Err(e) => {
                    // The reason names the topic or the certificate URL at most: no body, no
                    // signature.
                    tracing::warn!(message = %id, reason = %e, "SNS message refused; left on the queue");
                    r.refused += 1;
                    continue;
                }
            };
            let notification = match parse_message(&document) {
                Ok(notification) => notification,
                Err(e) => {
                    tracing::warn!(message = %id, error = %e, "not an MTurk notification; left on the queue");
                    r.malformed += 1;
                    continue;
                }
            };
            let (notification, dropped) = match self.scoped(&id, notification).await {
                Ok(scoped) => scoped,
                Err(e) => {
                    tracing::debug!(message = %id, error = %e, "cannot check the session's HITs now; the message comes again");
                    r.kept += 1;
                    continue;
                }
            };
            r.dropped += dropped;
            r.deliveries.push(Delivery {
                message_id: id,
                updates: notification.updates(),
                notification,
                receipt_handle: handle.to_owned(),
            });
        }
        Ok(r)
    }

    /// Deletes a delivered message: call it only once its updates are handed over.
    pub async fn delete(&self, delivery: &Delivery) -> Result<(), PlatformError> {
        self.client
            .delete_message()
            .queue_url(&self.settings.queue_url)
            .receipt_handle(&delivery.receipt_handle)
            .send()
            .await
            .map_err(|e| failure("DeleteMessage", &e).error)?;
        Ok(())
    }

    /// Makes a message visible again at once (a hand-over failed and should be retried sooner
    /// than the visibility timeout).
    pub async fn release(&self, delivery: &Delivery) -> Result<(), PlatformError> {
        self.client
            .change_message_visibility()
            .queue_url(&self.settings.queue_url)
            .receipt_handle(&delivery.receipt_handle)
            .visibility_timeout(0)
            .send()
            .await
            .map_err(|e| failure("ChangeMessageVisibility", &e).error)?;
        Ok(())
    }

    /// One receive, then for each message: its updates to `sink`, and the message deleted if
    /// `sink` took them. A failed hand-over or delete leaves the message to be delivered
    /// again; only a failed receive is an error.
    pub async fn pump<E, S>(&self, sink: &mut S) -> Result<PumpStats, PlatformError>
    where
        E: std::fmt::Display,
        S: AsyncFnMut(&[AssignmentUpdate]) -> Result<(), E>,
    {
        let mut r = self.receive_counted().await?;
        let mut stats = PumpStats::default();
        stats.add(&r);
        self.hand_over(std::mem::take(&mut r.deliveries), sink, &mut stats)
            .await;
        Ok(stats)
    }

    /// Each delivery's updates to `sink`, then the delivery deleted if `sink` took them.
    async fn hand_over<E, S>(&self, deliveries: Vec<Delivery>, sink: &mut S, stats: &mut PumpStats)
    where
        E: std::fmt::Display,
        S: AsyncFnMut(&[AssignmentUpdate]) -> Result<(), E>,
    {
        for d in deliveries {
            if let Err(e) = sink(&d.updates).await {
                tracing::warn!(message = %d.message_id, error = %e, "pushing updates failed; the message stays");
                stats.kept += 1;
                continue;
            }
            stats.events += d.notification.events.len();
            stats.updates += d.updates.len();
            match self.delete(&d).await {
                Ok(()) => stats.deleted += 1,
                Err(e) => {
                    tracing::warn!(message = %d.message_id, error = %e, "delete failed; the message comes again");
                    stats.kept += 1;
                }
            }
        }
    }

    /// Pumps until `stop` completes: receive → `sink` → delete, backing off (up to
    /// `max_backoff`) after a failed receive. Stopping interrupts a waiting receive (a message
    /// it would have taken stays on the queue) but never a hand-over or a delete. Returns the
    /// totals.
    pub async fn run<E, S>(
        &self,
        mut sink: S,
        stop: impl Future<Output = ()>,
        max_backoff: Duration,
    ) -> PumpStats
    where
        E: std::fmt::Display,
        S: AsyncFnMut(&[AssignmentUpdate]) -> Result<(), E>,
    {
        let mut total = PumpStats::default();
        let mut backoff = Duration::from_millis(100).min(max_backoff);
        let mut stop = std::pin::pin!(stop);
        loop {
            let received = tokio::select! {
                biased;
                () = &mut stop => return total,
                r = self.receive_counted() => r,
            };
            let mut r = match received {
                Ok(r) => r,
                Err(e) => {
                    tracing::debug!(error = %e, "receiving notifications failed; backing off");
                    tokio::select! {
                        biased;
                        () = &mut stop => return total,
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(max_backoff);
                    continue;
                }
            };
            backoff = Duration::from_millis(100).min(max_backoff);
            total.add(&r);
            self.hand_over(std::mem::take(&mut r.deliveries), &mut sink, &mut total)
                .await;
        }
    }
}

/// Hands pushed updates to an engine running in its own task (an
/// [`EngineHandle`](crowdcore::engine::EngineHandle), where [`Engine::push_updates`] is out of
/// reach): each update the machine takes becomes an input. A refused input (a departure the
/// engine has already seen) is fine; an error only when the engine has stopped (a store
/// failure ends its task), so the message stays on the queue. Use it as the sink:
/// `reader.pump(&mut async |u: &[AssignmentUpdate]| push_to_handle(&handle, u).await)`.
///
/// [`Engine::push_updates`]: crowdcore::engine::Engine::push_updates
pub async fn push_to_handle<M: crowdcore::engine::Machine>(
    handle: &crowdcore::engine::EngineHandle<M>,
    updates: &[AssignmentUpdate],
) -> Result<(), crowdcore::engine::HandleError<M::Rejected>> {
    for update in updates {
        let Some(input) = M::update_input(update) else {
            continue;
        };
        match handle.input(input).await {
            Ok(()) => {}
            Err(crowdcore::engine::HandleError::Rejected(why)) => {
                tracing::debug!(assignment = %update.assignment, %why, "pushed update refused");
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUBMITTED: &str = r#"{"Events":[{"EventType":"AssignmentSubmitted","EventTimestamp":"2026-01-01T00:00:10Z","HITId":"H1","AssignmentId":"A1","HITTypeId":"T1"}],"EventDocId":"d1","SourceAccount":"123456789012","CustomerId":"C1","EventDocVersion":"2014-08-15"}"#;

    fn at(s: u64) -> Timestamp {
        Timestamp::from_millis(1_767_225_600_000 + s * 1_000)
    }

    fn update(a: &str, h: &str, status: AssignmentStatus, s: u64) -> AssignmentUpdate {
        AssignmentUpdate {
            assignment: AssignmentId::new(a),
            worker: WorkerId::new(""),
            hit: HitId::new(h),
            status,
            at: at(s),
        }
    }

    #[test]
    fn a_single_event() {
        let n = parse_message(SUBMITTED).unwrap();
        assert_eq!(n.doc_id.as_deref(), Some("d1"));
        assert_eq!(n.version.as_deref(), Some("2014-08-15"));
        assert_eq!(n.events.len(), 1);
        assert_eq!(n.events[0].hit_type.as_deref(), Some("T1"));
        assert_eq!(
            n.updates(),
            vec![update("A1", "H1", AssignmentStatus::Submitted, 10)]
        );
    }

    #[test]
    fn every_event_of_a_batch() {
        let body = r#"{"EventDocVersion":"2014-08-15","EventDocId":"d2","Events":[
            {"EventType":"AssignmentSubmitted","EventTimestamp":"2026-01-01T00:00:01Z","HITId":"H1","AssignmentId":"A1","HITTypeId":"T1"},
            {"EventType":"AssignmentReturned","EventTimestamp":"2026-01-01T00:00:02Z","HITId":"H1","AssignmentId":"A2","HITTypeId":"T1"},
            {"EventType":"AssignmentAbandoned","EventTimestamp":"2026-01-01T00:00:03Z","HITId":"H2","AssignmentId":"A3","HITTypeId":"T1"},
            {"EventType":"AssignmentApproved","EventTimestamp":"2026-01-01T00:00:04Z","HITId":"H1","AssignmentId":"A1","HITTypeId":"T1"},
            {"EventType":"AssignmentRejected","EventTimestamp":"2026-01-01T00:00:05.250Z","HITId":"H2","AssignmentId":"A4","HITTypeId":"T1"},
            {"EventType":"HITExpired","EventTimestamp":"2026-01-01T00:00:06Z","HITId":"H2","HITTypeId":"T1"},
            {"EventType":"Ping","EventTimestamp":"2026-01-01T00:00:07Z"}
        ]}"#;
        let n = parse_message(body).unwrap();
        assert_eq!(n.events.len(), 7);
        let mut rejected = update("A4", "H2", AssignmentStatus::Rejected, 5);
        rejected.at = rejected.at.plus_millis(250);
        assert_eq!(
            n.updates(),
            vec![
                update("A1", "H1", AssignmentStatus::Submitted, 1),
                update("A2", "H1", AssignmentStatus::Returned, 2),
                update("A3", "H2", AssignmentStatus::Abandoned, 3),
                update("A1", "H1", AssignmentStatus::Approved, 4),
                rejected,
            ]
        );
        assert_eq!(n.events[5].event_type, "HITExpired");
        assert_eq!(n.events[5].hit, Some(HitId::new("H2")));
        assert_eq!(n.events[5].update(), None);
    }

    #[test]
    fn an_sns_envelope_is_not_parsed_unverified() {
        let wrapped = serde_json::json!({
            "Type": "Notification",
            "MessageId": "m",
            "TopicArn": "arn:aws:sns:us-east-1:123456789012:mturk",
            "Message": SUBMITTED,
        })
        .to_string();
        assert_eq!(
            parse_message(&wrapped),
            Err(NotificationError::Refused(SnsError::Unsigned))
        );
        let envelope = SnsMessage::from_body(&wrapped).unwrap();
        assert_eq!(
            parse_message(envelope.message.as_deref().unwrap()),
            parse_message(SUBMITTED)
        );
    }

    #[test]
    fn malformed_messages_are_errors() {
        assert!(matches!(
            parse_message("hello"),
            Err(NotificationError::Malformed(_))
        ));
        assert!(matches!(
            parse_message(r#"{"EventDocId":"x"}"#),
            Err(NotificationError::Malformed(_))
        ));
        let bad_time = SUBMITTED.replace("2026-01-01T00:00:10Z", "yesterday");
        assert_eq!(
            parse_message(&bad_time),
            Err(NotificationError::BadTimestamp("yesterday".into()))
        );
        let no_assignment = SUBMITTED.replace(r#""AssignmentId":"A1","#, "");
        assert_eq!(
            parse_message(&no_assignment),
            Err(NotificationError::MissingId("AssignmentSubmitted".into()))
        );
    }

    #[test]
    fn the_region_of_a_queue_url() {
        assert_eq!(
            queue_region("https://sqs.eu-west-1.amazonaws.com/123456789012/q").as_deref(),
            Some("eu-west-1")
        );
        assert_eq!(queue_region("http://127.0.0.1:4566/123456789012/q"), None);
        assert_eq!(queue_region("not a url"), None);
    }

    #[test]
    fn unknown_event_types_are_kept_without_updates() {
        let body = SUBMITTED.replace("AssignmentSubmitted", "HITExtended");
        let n = parse_message(&body).unwrap();
        assert_eq!(n.events.len(), 1);
        assert!(n.updates().is_empty());
    }
}
