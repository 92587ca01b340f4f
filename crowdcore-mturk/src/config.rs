//! Where the platform talks to and how patiently.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The production requester endpoint.
pub const PRODUCTION_URL: &str = "https://mturk-requester.us-east-1.amazonaws.com";
/// The sandbox requester endpoint: the same API, play money, workers' sandbox.
pub const SANDBOX_URL: &str = "https://mturk-requester-sandbox.us-east-1.amazonaws.com";

/// Which MTurk to talk to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Endpoint {
    /// Real workers, real money.
    Production,
    /// The requester sandbox.
    Sandbox,
    /// Any URL speaking the MTurk API (a local fake, a proxy).
    Url(String),
}

impl Endpoint {
    /// The endpoint's URL.
    pub fn url(&self) -> &str {
        match self {
            Endpoint::Production => PRODUCTION_URL,
            Endpoint::Sandbox => SANDBOX_URL,
            Endpoint::Url(url) => url,
        }
    }
}

/// How the SDK retries a failed call by itself before the error reaches the caller (who may
/// retry again, with the same idempotency key). Throttling, 5xx and timeouts are retried;
/// request errors are not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetrySettings {
    /// Attempts per call, the first included (1: the SDK does not retry).
    pub max_attempts: u32,
    /// The first backoff, in milliseconds.
    pub initial_backoff_ms: u64,
    /// The longest backoff, in milliseconds.
    pub max_backoff_ms: u64,
}

impl Default for RetrySettings {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            initial_backoff_ms: 1_000,
            max_backoff_ms: 20_000,
        }
    }
}

/// How long a call may take.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TimeoutSettings {
    /// Opening a connection, in milliseconds.
    pub connect_ms: u64,
    /// One attempt (request sent to response read), in milliseconds.
    pub attempt_ms: u64,
    /// The whole call with its retries, in milliseconds.
    pub operation_ms: u64,
}

impl Default for TimeoutSettings {
    fn default() -> Self {
        Self {
            connect_ms: 3_100,
            attempt_ms: 10_000,
            operation_ms: 60_000,
        }
    }
}

impl TimeoutSettings {
    pub(crate) fn connect(&self) -> Duration {
        Duration::from_millis(self.connect_ms)
    }
    pub(crate) fn attempt(&self) -> Duration {
        Duration::from_millis(self.attempt_ms)
    }
    pub(crate) fn operation(&self) -> Duration {
        Duration::from_millis(self.operation_ms)
    }
}

/// How patiently [`Platform::assignment`](crowdcore::platform::Platform::assignment) asks MTurk
/// (`GetAssignment`). That read is on a worker page's path (an arrival or a reload waits for
/// it), so it gets its own, short bounds instead of [`RetrySettings`] and [`TimeoutSettings`]:
/// by default at most 2 attempts of 2 s each, 4 s in all, after which the caller gets a
/// retryable error and the page can ask again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LookupSettings {
    /// Attempts, the first included (throttling, 5xx and timeouts are retried).
    pub max_attempts: u32,
    /// One attempt, in milliseconds (also the longest wait for a connection).
    pub attempt_ms: u64,
    /// The whole lookup with its retries, in milliseconds.
    pub operation_ms: u64,
}

impl Default for LookupSettings {
    fn default() -> Self {
        Self {
            max_attempts: 2,
            attempt_ms: 2_000,
            operation_ms: 4_000,
        }
    }
}

impl LookupSettings {
    pub(crate) fn attempt(&self) -> Duration {
        Duration::from_millis(self.attempt_ms)
    }
    pub(crate) fn operation(&self) -> Duration {
        Duration::from_millis(self.operation_ms)
    }
}

/// Everything [`MturkPlatform`](crate::MturkPlatform) needs besides credentials, which come
/// from the standard AWS chain (environment, profile, web identity, container, instance) or are
/// passed in explicitly.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MturkConfig {
    /// Production, sandbox or another URL.
    pub endpoint: Endpoint,
    /// The AWS region to sign for (MTurk lives in `us-east-1`).
    #[serde(default = "default_region")]
    pub region: String,
    /// The page workers land on (the HTTP front), used as every HIT's ExternalQuestion URL
    /// instead of the spec's `landing_url` when set.
    #[serde(default)]
    pub landing_url: Option<String>,
    /// The session whose HITs (keys `<session>/<seq>`) this platform watches in
    /// [`Platform::updates`](crowdcore::platform::Platform::updates), besides those it posts
    /// itself. `None`: every HIT crowdcore posted on the account. Keys are looked up (a crash,
    /// a duplicate token) among all of crowdcore's HITs whatever the scope.
    #[serde(default)]
    pub scope: Option<String>,
    /// Ask `GetAccountBalance` before every post and refuse (insufficient funds) a HIT whose
    /// rewards and MTurk fee the balance cannot cover.
    #[serde(default)]
    pub check_balance: bool,
    /// SDK-level retries.
    #[serde(default)]
    pub retry: RetrySettings,
    /// Timeouts.
    #[serde(default)]
    pub timeouts: TimeoutSettings,
    /// Retries and timeouts of the assignment lookup a worker page waits for.
    #[serde(default)]
    pub lookup: LookupSettings,
    /// How long after an assignment event MTurk may still be slow to list it, in milliseconds:
    /// the update cursor remembers what it reported within this window so that a late listing
    /// is neither lost nor reported twice.
    #[serde(default = "default_settle_ms")]
    pub settle_window_ms: u64,
    /// How long MTurk remembers a `UniqueRequestToken`, in milliseconds (24 h). A create
    /// this instance first sent longer ago is looked up by annotation before it is sent again.
    #[serde(default = "default_token_lifetime_ms")]
    pub token_lifetime_ms: u64,
    /// Push notifications through an SQS queue: every HIT type the platform creates is set
    /// to notify the queue, and the platform reports push capability (the engine stops polling;
    /// a [`NotificationReader`](crate::NotificationReader) feeds it instead). `None`: polled.
    #[serde(default)]
    pub notifications: Option<NotificationSettings>,
}

/// Where MTurk pushes assignment events and how the queue is read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotificationSettings {
    /// The SQS queue's URL (`https://sqs.us-east-1.amazonaws.com/<account>/<name>`): the
    /// `Destination` of `UpdateNotificationSettings` and the `QueueUrl` read from. The queue's
    /// policy must let `mturk-requester.amazonaws.com` send to it.
    pub queue_url: String,
    /// The region the queue lives in; `None`: the one in `queue_url`
    /// (`sqs.<region>.amazonaws.com`), else the MTurk region.
    #[serde(default)]
    pub region: Option<String>,
    /// Another SQS endpoint (a local fake); `None`: the region's.
    #[serde(default)]
    pub endpoint_url: Option<String>,
    /// Long-poll wait of one `ReceiveMessage`, in seconds (0 to 20).
    #[serde(default = "default_wait_s")]
    pub wait_time_s: i32,
    /// Messages per `ReceiveMessage` (1 to 10).
    #[serde(default = "default_max_messages")]
    pub max_messages: i32,
    /// How long a received message stays hidden before SQS delivers it again if it is not
    /// deleted, in seconds; `None`: the queue's own setting.
    #[serde(default)]
    pub visibility_timeout_s: Option<i32>,
    /// The SNS topic the queue is subscribed to, when MTurk's notifications come through SNS
    /// (MTurk → SNS → SQS, without raw message delivery): HIT types are then set to notify the
    /// topic (transport SNS; its policy must let `mturk-requester.amazonaws.com` publish), and
    /// every message must be an SNS
    /// envelope of this topic with a valid signature (see [`SnsVerifier`](crate::SnsVerifier));
    /// bare documents are refused as unsigned. `None`: MTurk writes to the queue directly (as
    /// this platform sets it up), the queue's policy is the trust, and an SNS envelope is
    /// refused (its topic cannot be checked).
    #[serde(default)]
    pub sns_topic_arn: Option<String>,
}

fn default_wait_s() -> i32 {
    20
}

fn default_max_messages() -> i32 {
    10
}

impl NotificationSettings {
    /// A queue with the defaults: 20 s long polls of up to 10 messages, the queue's
    /// visibility timeout, the MTurk region.
    pub fn new(queue_url: impl Into<String>) -> Self {
        Self {
            queue_url: queue_url.into(),
            region: None,
            endpoint_url: None,
            wait_time_s: default_wait_s(),
            max_messages: default_max_messages(),
            visibility_timeout_s: None,
            sns_topic_arn: None,
        }
    }
}

fn default_token_lifetime_ms() -> u64 {
    24 * 3_600_000
}

fn default_region() -> String {
    "us-east-1".into()
}

fn default_settle_ms() -> u64 {
    10 * 60_000
}

impl MturkConfig {
    /// A configuration for `endpoint` with the defaults: `us-east-1`, the spec's landing URL,
    /// every crowdcore HIT, no balance check, 3 SDK attempts, 10 s per attempt (assignment
    /// lookups: 2 attempts, 4 s in all), polled (no notification queue).
    pub fn new(endpoint: Endpoint) -> Self {
        Self {
            endpoint,
            region: default_region(),
            landing_url: None,
            scope: None,
            check_balance: false,
            retry: RetrySettings::default(),
            timeouts: TimeoutSettings::default(),
            lookup: LookupSettings::default(),
            settle_window_ms: default_settle_ms(),
            token_lifetime_ms: default_token_lifetime_ms(),
            notifications: None,
        }
    }

    /// The sandbox with the defaults.
    pub fn sandbox() -> Self {
        Self::new(Endpoint::Sandbox)
    }

    /// Production with the defaults.
    pub fn production() -> Self {
        Self::new(Endpoint::Production)
    }
}
