//! # crowdcore-mturk
//!
//! crowdcore's [`Platform`](crowdcore::platform::Platform) on Amazon Mechanical Turk, over
//! `aws-sdk-mturk`. Only this crate knows AWS exists.
//!
//! - **Posting**: a HIT type per [`HitSpec`](crowdcore::HitSpec) (`CreateHITType`, cached),
//!   then `CreateHITWithHITType` with an ExternalQuestion framing the landing page, the spec's
//!   qualification requirements, and a `RequesterAnnotation` naming the effect
//!   (`crowdcore:<key>`).
//! - **Idempotency**: every create and `SendBonus` carries the effect's key as its
//!   `UniqueRequestToken`. MTurk's duplicate-token error is resolved to the first result: for
//!   a HIT, by listing HITs and matching the annotation. Before a HIT is posted, the HITs
//!   already annotated with its key are looked up (once per instance, then kept), so a crash
//!   between a create and its record, or a token MTurk forgot after 24 hours, never posts
//!   twice. A bonus or extra assignments asked again under a token MTurk may have forgotten
//!   (not sent by this instance within 24 hours) are reconciled first: `ListBonusPayments`,
//!   matched by amount and the key's marker in the reason ([`wire::bonus_reason`]), and
//!   `GetHIT`'s `MaxAssignments` against what the key brings the HIT to.
//! - **Looking up**: [`Platform::assignment`](crowdcore::platform::Platform::assignment) is
//!   `GetAssignment`, bounded by [`MturkConfig::lookup`] (a worker page waits for it). MTurk
//!   shows assignments once submitted only, so arrivals cannot be confirmed (the capability
//!   says so).
//! - **Observing**: [`updates`](crowdcore::platform::Platform::updates) lists the assignments of
//!   the HITs in scope (`ListAssignmentsForHIT`, paged with `NextToken`) and reports
//!   submissions, approvals and rejections once each, behind a text cursor that survives a
//!   restart (see `cursor.rs`). MTurk does not list returned or abandoned assignments: those
//!   come from the landing page.
//! - **Push notifications**: with a queue in [`MturkConfig::notifications`], every HIT type is
//!   set (`UpdateNotificationSettings`, SQS, version `2014-08-15`) to send its assignment and
//!   HIT events to the queue, the platform reports push capability so the engine stops
//!   polling, and a [`NotificationReader`] (`aws-sdk-sqs`) long-polls the queue and hands every
//!   event of every message to `Engine::push_updates`, deleting a message only after that.
//!   Messages that came through an SNS topic are accepted only with a valid SNS signature of
//!   the configured topic ([`SnsVerifier`]), and with
//!   [`NotificationReader::with_session`] only events of the session's HITs become inputs.
//! - **Errors**: throttling (`ThrottlingException`, "Rate exceeded"), `ServiceFault`, HTTP 5xx
//!   and timeouts are retryable [`PlatformError`](crowdcore::platform::PlatformError)s (after
//!   the SDK's own retries, see [`RetrySettings`]); a `RequestError` is permanent and mapped by
//!   its `TurkErrorCode` (insufficient funds, not found, conflict, bad request).
//!
//! ```no_run
//! use std::sync::Arc;
//! use crowdcore_mturk::{MturkConfig, MturkPlatform};
//!
//! # async fn run() {
//! let mut config = MturkConfig::sandbox();
//! config.landing_url = Some("https://study.example/land".into());
//! config.scope = Some("0190c3a4-7a5e-7cc2-9a51-1f0b3c5d6e7f".into()); // the session id
//! config.check_balance = true;
//! let platform = Arc::new(MturkPlatform::connect(config).await);
//! // Hand it to `crowdcore::engine::EngineBuilder::new(platform, store, engine_config)`.
//! # }
//! ```

mod config;
mod cursor;
mod error;
mod notify;
mod platform;
pub mod sns;
pub mod wire;

pub use config::{
    Endpoint, LookupSettings, MturkConfig, NotificationSettings, PRODUCTION_URL, RetrySettings,
    SANDBOX_URL, TimeoutSettings,
};
pub use notify::{
    Delivery, Notification, NotificationError, NotificationEvent, NotificationReader, PumpStats,
    parse_message, push_to_handle,
};
pub use platform::{
    HitSummary, MturkPlatform, NOTIFICATION_VERSION, NOTIFIED_EVENTS, NOTIFY_BATCH, PAGE_SIZE,
    UNSUBMITTED_RETRIES,
};
pub use sns::{CertFetcher, HttpsCertFetcher, SnsError, SnsMessage, SnsVerifier};
