//! [`MturkPlatform`]: crowdcore's [`Platform`] over `aws-sdk-mturk`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_credential_types::provider::ProvideCredentials;
use aws_sdk_mturk::Client;
use aws_sdk_mturk::types::{
    Assignment, AssignmentStatus as TurkStatus, EventType, Hit, NotificationSpecification,
    NotificationTransport, NotifyWorkersFailureCode,
};
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
use aws_smithy_types::DateTime;

use crowdcore::clock::{Clock, SystemClock};
use crowdcore::platform::{
    AssignmentRecord, AssignmentStatus, AssignmentUpdate, Capabilities, Cursor, IdempotencyKey,
    Page, Platform, PlatformError, PlatformErrorKind,
};
use crowdcore::{AssignmentId, HitId, HitSpec, Money, Timestamp, WorkerId};

use crate::config::MturkConfig;
use crate::cursor::{Event, Position, status_code};
use crate::error::{Failure, failure};
use crate::wire;

/// How many updates one [`Platform::updates`] page holds.
pub const PAGE_SIZE: usize = 100;
/// The notification schema version `UpdateNotificationSettings` asks for.
pub const NOTIFICATION_VERSION: &str = "2014-08-15";
/// The events every HIT type notifies the queue of.
pub const NOTIFIED_EVENTS: [&str; 7] = [
    "AssignmentSubmitted",
    "AssignmentReturned",
    "AssignmentAbandoned",
    "AssignmentApproved",
    "AssignmentRejected",
    "HITReviewable",
    "HITExpired",
];
/// MTurk's limit on workers per `NotifyWorkers` call.
pub const NOTIFY_BATCH: usize = 100;
/// How often an approval or bonus for an assignment MTurk does not show as submitted yet is
/// retried (the page tells the engine before it submits to MTurk) before it fails for good.
pub const UNSUBMITTED_RETRIES: u32 = 20;

/// A HIT as the admin tools list it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HitSummary {
    /// The HIT.
    pub hit: HitId,
    /// Its title.
    pub title: String,
    /// MTurk's status (`Assignable`, `Unassignable`, `Reviewable`, …).
    pub status: String,
    /// The idempotency key of the effect that posted it, if crowdcore did.
    pub key: Option<String>,
    /// Assignments in total.
    pub max_assignments: u32,
    /// Assignments open, held, and completed.
    pub counts: (u32, u32, u32),
    /// When it stops being listed, in ms since the epoch.
    pub expires_at_ms: Option<u64>,
}

/// A HIT's (max, pending, available, completed) assignments: any submission, approval or
/// rejection changes them.
type Counts = (i32, i32, i32, i32);

fn counts_of(h: &Hit) -> Counts {
    (
        h.max_assignments().unwrap_or(0),
        h.number_of_assignments_pending().unwrap_or(0),
        h.number_of_assignments_available().unwrap_or(0),
        h.number_of_assignments_completed().unwrap_or(0),
    )
}

#[derive(Debug, Default)]
struct State {
    /// HIT type id per spec (as JSON): `CreateHITType` is asked once per spec.
    hit_types: HashMap<String, String>,
    /// Every HIT crowdcore posted on the account, by idempotency key; `None` until first
    /// listed. Keys are unique per effect, so a key is looked up here whatever the scope.
    index: Option<BTreeMap<String, HitId>>,
    /// Keys this instance posted (or resolved): watched whatever the scope (a platform with
    /// another scope, or none, still watches what it posted itself).
    posted: BTreeSet<String>,
    /// Per watched HIT, its assignment counts when last listed and when they last changed:
    /// a HIT whose counts have not moved for the settle window is not listed again.
    counts: HashMap<HitId, (Counts, Instant)>,
    /// The cursor those counts go with: the one returned after the last complete scan. A
    /// caller polling from another cursor (it lost a page, or restarted) gets a full scan.
    counts_for: Option<Cursor>,
    /// When this instance first sent each token (post, extra assignments, bonus), on the
    /// platform's clock; refreshed when a token MTurk has forgotten is sent again.
    first_sent: HashMap<String, Timestamp>,
    /// The `MaxAssignments` each extra-assignments key brings its HIT to: how a re-send after
    /// MTurk forgot the token tells whether the first one went through.
    add_targets: HashMap<String, u32>,
    /// When each known HIT was created.
    created: HashMap<HitId, Timestamp>,
    /// When MTurk says each assignment listed so far was submitted: a bonus token for it
    /// cannot be older (MTurk pays submitted work only).
    submitted_at: HashMap<AssignmentId, Timestamp>,
    /// Known assignment totals per HIT.
    max_assignments: HashMap<HitId, u32>,
    /// A cursor just returned with everything there was: asked for again at once, it is
    /// answered without listing (the engine asks until a page brings nothing new).
    drained: Option<Cursor>,
    /// Approvals and bonuses retried because MTurk did not show the assignment submitted.
    unsubmitted: HashMap<AssignmentId, u32>,
    /// When the HIT index was last listed.
    listed_at: Option<Instant>,
}

/// Amazon Mechanical Turk as a crowdcore [`Platform`]. See the [crate docs](crate).
pub struct MturkPlatform {
    client: Client,
    config: MturkConfig,
    state: Mutex<State>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for MturkPlatform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MturkPlatform")
            .field("endpoint", &self.config.endpoint)
            .field("scope", &self.config.scope)
            .finish_non_exhaustive()
    }
}

fn err(kind: PlatformErrorKind, code: &str, message: impl Into<String>) -> PlatformError {
    PlatformError::new(kind, code, message)
}

/// Whole seconds, rounded up, within MTurk's bounds for the field.
fn seconds(name: &str, ms: u64, min: i64, max: i64) -> Result<i64, PlatformError> {
    let s = i64::try_from(ms.div_ceil(1_000)).unwrap_or(i64::MAX);
    if s < min || s > max {
        return Err(PlatformError::bad_request(
            "InvalidDuration",
            format!("{name} is {s} s; MTurk allows {min} to {max} s"),
        ));
    }
    Ok(s)
}

fn millis(t: &DateTime) -> u64 {
    u64::try_from(t.to_millis().unwrap_or(0)).unwrap_or(0)
}

/// The id MTurk puts in a previewed HIT's URL instead of an assignment's.
const PREVIEW_ASSIGNMENT_ID: &str = "ASSIGNMENT_ID_NOT_AVAILABLE";
/// The longest id MTurk gives an assignment.
const MAX_ID_LEN: usize = 255;

/// Whether MTurk itself refused a request as wrong (a `RequestError`: its codes are
/// `AWS.MechanicalTurk.…` or `AWS.…`), rather than the credentials, the signature or the
/// SDK: for a lookup, the answer "no such assignment of yours" — an unknown or malformed id,
/// another requester's, one of a deleted HIT, or one MTurk does not show yet.
fn refused_by_mturk(e: &PlatformError) -> bool {
    matches!(
        e.kind,
        PlatformErrorKind::NotFound | PlatformErrorKind::BadRequest | PlatformErrorKind::Conflict
    ) && (e.code == "RequestError" || e.code.starts_with("AWS."))
}

/// An assignment as `GetAssignment` answers it.
fn record_of(a: &Assignment) -> Result<AssignmentRecord, PlatformError> {
    let malformed = |what: &str| {
        err(
            PlatformErrorKind::Unavailable,
            "MalformedAnswer",
            format!("GetAssignment: {what}"),
        )
    };
    let status = match a.assignment_status() {
        Some(TurkStatus::Submitted) => AssignmentStatus::Submitted,
        Some(TurkStatus::Approved) => AssignmentStatus::Approved,
        Some(TurkStatus::Rejected) => AssignmentStatus::Rejected,
        other => return Err(malformed(&format!("status {other:?}"))),
    };
    let (Some(id), Some(worker), Some(hit)) = (a.assignment_id(), a.worker_id(), a.hit_id()) else {
        return Err(malformed("no AssignmentId, WorkerId or HITId"));
    };
    Ok(AssignmentRecord {
        assignment: AssignmentId::new(id),
        worker: WorkerId::new(worker),
        hit: HitId::new(hit),
        status,
    })
}

/// The SDK configuration both clients (MTurk and SQS) share: rustls with ring (no aws-lc
/// build, certificates from the system store), the retry and timeout settings, the standard
/// credential chain unless `credentials` are given.
pub(crate) async fn sdk_config(
    config: &MturkConfig,
    credentials: Option<aws_credential_types::provider::SharedCredentialsProvider>,
    endpoint_url: &str,
    region: String,
) -> aws_config::SdkConfig {
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https();
    let retry = RetryConfig::standard()
        .with_max_attempts(config.retry.max_attempts.max(1))
        .with_initial_backoff(Duration::from_millis(config.retry.initial_backoff_ms))
        .with_max_backoff(Duration::from_millis(config.retry.max_backoff_ms));
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(config.timeouts.connect())
        .operation_attempt_timeout(config.timeouts.attempt())
        .operation_timeout(config.timeouts.operation())
        .build();
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .region(aws_config::Region::new(region))
        .http_client(http)
        .retry_config(retry)
        .timeout_config(timeouts)
        .endpoint_url(endpoint_url);
    if let Some(credentials) = credentials {
        loader = loader.credentials_provider(credentials);
    }
    loader.load().await
}

impl MturkPlatform {
    /// Connects with credentials from the standard AWS chain (`AWS_ACCESS_KEY_ID` /
    /// `AWS_SECRET_ACCESS_KEY`, `AWS_PROFILE` and `~/.aws`, web identity, ECS, IMDS,
    /// `credential_process`).
    pub async fn connect(config: MturkConfig) -> Self {
        Self::load(config, None).await
    }

    /// Connects with the given credentials (tests, or keys held elsewhere).
    pub async fn connect_with_credentials(
        config: MturkConfig,
        credentials: impl ProvideCredentials + 'static,
    ) -> Self {
        Self::load(
            config,
            Some(aws_credential_types::provider::SharedCredentialsProvider::new(credentials)),
        )
        .await
    }

    async fn load(
        config: MturkConfig,
        credentials: Option<aws_credential_types::provider::SharedCredentialsProvider>,
    ) -> Self {
        let sdk = sdk_config(
            &config,
            credentials,
            config.endpoint.url(),
            config.region.clone(),
        )
        .await;
        Self::from_client(Client::new(&sdk), config)
    }

    /// Wraps a client configured elsewhere.
    pub fn from_client(client: Client, config: MturkConfig) -> Self {
        Self {
            client,
            config,
            state: Mutex::new(State::default()),
            clock: Arc::new(SystemClock),
        }
    }

    /// Reads time from `clock` instead of the system's: when tokens were first sent, against
    /// [`MturkConfig::token_lifetime_ms`] (tests run a day on a virtual clock).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The SDK client, for calls this crate does not wrap.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The configuration.
    pub fn config(&self) -> &MturkConfig {
        &self.config
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // No method leaves the state half-changed, so a poisoned lock's data is intact.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether a key belongs to the configured session: `<session>/<seq>`, or its digest when
    /// that is too long for a key ([`wire::key_in_session`]).
    fn in_scope(&self, key: &str) -> bool {
        self.config
            .scope
            .as_deref()
            .is_none_or(|s| wire::key_in_session(key, s))
    }

    // ----- the HIT index: which HITs are ours, by the key that posted them --------------------

    /// Every HIT of the account, paged with `NextToken`.
    pub async fn list_hits(&self) -> Result<Vec<HitSummary>, PlatformError> {
        Ok(self.all_hits().await?.iter().map(summary).collect())
    }

    async fn all_hits(&self) -> Result<Vec<Hit>, PlatformError> {
        let mut hits = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let out = self
                .client
                .list_hits()
                .max_results(100)
                .set_next_token(token.clone())
                .send()
                .await
                .map_err(|e| failure("ListHITs", &e).error)?;
            let page = out.hits();
            hits.extend_from_slice(page);
            match out.next_token() {
                Some(next) if !page.is_empty() && Some(next) != token.as_deref() => {
                    token = Some(next.to_owned());
                }
                _ => return Ok(hits),
            }
        }
    }

    /// Lists the account's HITs again and indexes crowdcore's by key.
    async fn load_index(&self) -> Result<(), PlatformError> {
        let hits = self.all_hits().await?;
        self.absorb(&hits);
        self.lock().listed_at = Some(Instant::now());
        Ok(())
    }

    /// Whether `hit` is one this platform watches (its scope's, or posted here): what a pushed
    /// event must name to become an input. A HIT not in the index is looked for once more by
    /// listing the HITs again (at most once a minute: another instance of the session may
    /// have posted it since).
    pub async fn in_session(&self, hit: &HitId) -> Result<bool, PlatformError> {
        self.ensure_index().await?;
        if self.watched().contains(hit) {
            return Ok(true);
        }
        let due = self
            .lock()
            .listed_at
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(60));
        if !due {
            return Ok(false);
        }
        self.load_index().await?;
        Ok(self.watched().contains(hit))
    }

    /// Indexes the crowdcore HITs of a listing (keeping what the listing may lag behind).
    fn absorb(&self, hits: &[Hit]) {
        let mut s = self.lock();
        let s = &mut *s;
        let index = s.index.get_or_insert_with(BTreeMap::new);
        for h in hits {
            let (Some(id), Some(key)) = (
                h.hit_id(),
                h.requester_annotation().and_then(wire::key_of_annotation),
            ) else {
                continue;
            };
            let id = HitId::new(id);
            if let Some(t) = h.creation_time() {
                s.created
                    .insert(id.clone(), Timestamp::from_millis(millis(t)));
            }
            if let Some(n) = h.max_assignments().and_then(|n| u32::try_from(n).ok()) {
                // A listing may lag an increase this instance made: what it knows wins.
                s.max_assignments.entry(id.clone()).or_insert(n);
            }
            index.insert(key.to_owned(), id);
        }
    }

    async fn ensure_index(&self) -> Result<(), PlatformError> {
        if self.lock().index.is_none() {
            self.load_index().await?;
        }
        Ok(())
    }

    /// The HIT `key` posted, if listed; it is watched from now on.
    fn indexed(&self, key: &IdempotencyKey) -> Option<HitId> {
        let mut s = self.lock();
        let hit = s.index.as_ref()?.get(key.as_str()).cloned()?;
        s.posted.insert(key.as_str().to_owned());
        Some(hit)
    }

    /// The HITs this platform watches: those of its scope, and those it posted.
    pub async fn watched_hits(&self) -> Result<Vec<HitId>, PlatformError> {
        self.ensure_index().await?;
        Ok(self.watched())
    }

    fn watched(&self) -> Vec<HitId> {
        let s = self.lock();
        self.watched_in(&s)
    }

    fn watched_in(&self, s: &State) -> Vec<HitId> {
        s.index
            .iter()
            .flatten()
            .filter(|(key, _)| self.in_scope(key) || s.posted.contains(*key))
            .map(|(_, hit)| hit.clone())
            .collect()
    }

    /// Expires every HIT the session `session` posted (whose key is `<session>/<seq>`, or its
    /// digest); returns them.
    pub async fn expire_session(&self, session: &str) -> Result<Vec<HitId>, PlatformError> {
        let mut expired = Vec::new();
        for h in self.all_hits().await? {
            let ours = h
                .requester_annotation()
                .and_then(wire::key_of_annotation)
                .is_some_and(|k| wire::key_in_session(k, session));
            if let (true, Some(id)) = (ours, h.hit_id()) {
                let id = HitId::new(id);
                self.expire(&id).await?;
                expired.push(id);
            }
        }
        Ok(expired)
    }

    /// A worker's score on a qualification (`None`: they do not hold it).
    pub async fn qualification_score(
        &self,
        worker: &WorkerId,
        qualification: &str,
    ) -> Result<Option<i64>, PlatformError> {
        let sent = self
            .client
            .get_qualification_score()
            .qualification_type_id(qualification)
            .worker_id(worker.as_str())
            .send()
            .await;
        match sent {
            Ok(out) => Ok(out
                .qualification()
                .and_then(|q| q.integer_value())
                .map(i64::from)),
            Err(e) => {
                let f = failure("GetQualificationScore", &e);
                match f.error.kind {
                    PlatformErrorKind::NotFound => Ok(None),
                    _ => Err(f.error),
                }
            }
        }
    }

    /// Creates a qualification type workers can be granted; returns its id.
    pub async fn create_qualification_type(
        &self,
        name: &str,
        description: &str,
    ) -> Result<String, PlatformError> {
        let out = self
            .client
            .create_qualification_type()
            .name(name)
            .description(description)
            .qualification_type_status(aws_sdk_mturk::types::QualificationTypeStatus::Active)
            .send()
            .await
            .map_err(|e| failure("CreateQualificationType", &e).error)?;
        out.qualification_type()
            .and_then(|q| q.qualification_type_id())
            .map(str::to_owned)
            .ok_or_else(|| {
                err(
                    PlatformErrorKind::Unavailable,
                    "MalformedAnswer",
                    "no qualification type id",
                )
            })
    }

    // ----- posting -------------------------------------------------------------------------------

    async fn hit_type(&self, spec: &HitSpec) -> Result<String, PlatformError> {
        // Specs are plain data; the JSON is their identity.
        let id = serde_json::to_string(spec).expect("plain data serializes");
        if let Some(t) = self.lock().hit_types.get(&id) {
            return Ok(t.clone());
        }
        let out = self
            .client
            .create_hit_type()
            .title(&spec.title)
            .description(&spec.description)
            .keywords(spec.keywords.join(","))
            .reward(wire::dollars(spec.reward)?)
            .assignment_duration_in_seconds(seconds(
                "assignment_duration_ms",
                spec.assignment_duration_ms,
                30,
                31_536_000,
            )?)
            .auto_approval_delay_in_seconds(seconds(
                "auto_approval_delay_ms",
                spec.auto_approval_delay_ms,
                0,
                2_592_000,
            )?)
            .set_qualification_requirements(Some(wire::requirements(spec)?))
            .send()
            .await
            .map_err(|e| failure("CreateHITType", &e).error)?;
        let t = out
            .hit_type_id()
            .ok_or_else(|| {
                err(
                    PlatformErrorKind::Unavailable,
                    "MalformedAnswer",
                    "no HITTypeId",
                )
            })?
            .to_owned();
        // Notifications are set before the type's first HIT exists, so no event is missed;
        // the call is idempotent, and asked again after a restart (the cache is empty then).
        if let Some(n) = &self.config.notifications {
            // Through the SNS topic the queue is subscribed to, when one is configured (the
            // reader then accepts signed envelopes of it only); else to the queue directly.
            let (destination, transport) = match &n.sns_topic_arn {
                Some(topic) => (topic, NotificationTransport::Sns),
                None => (&n.queue_url, NotificationTransport::Sqs),
            };
            self.client
                .update_notification_settings()
                .hit_type_id(&t)
                .notification(
                    NotificationSpecification::builder()
                        .destination(destination)
                        .transport(transport)
                        .version(NOTIFICATION_VERSION)
                        .set_event_types(Some(
                            NOTIFIED_EVENTS
                                .iter()
                                .map(|e| EventType::from(*e))
                                .collect(),
                        ))
                        .build()
                        .map_err(|e| {
                            PlatformError::bad_request("InvalidNotification", e.to_string())
                        })?,
                )
                .active(true)
                .send()
                .await
                .map_err(|e| failure("UpdateNotificationSettings", &e).error)?;
        }
        self.lock().hit_types.insert(id, t.clone());
        Ok(t)
    }

    /// How long ago this instance first sent `key` (since MTurk last forgot it), if it did.
    fn sent_ago(&self, key: &IdempotencyKey) -> Option<u64> {
        let now = self.clock.now();
        self.lock()
            .first_sent
            .get(key.as_str())
            .map(|t| now.millis_since(*t))
    }

    /// Whether this instance first sent `key` longer ago than MTurk remembers tokens.
    fn token_stale(&self, key: &IdempotencyKey) -> bool {
        self.sent_ago(key)
            .is_some_and(|ms| ms >= self.config.token_lifetime_ms)
    }

    /// Whether MTurk surely still knows `key`: this instance sent it within the token's
    /// lifetime. Otherwise (never sent here — perhaps by a predecessor —, or long ago) a
    /// re-send is reconciled first.
    fn token_fresh(&self, key: &IdempotencyKey) -> bool {
        self.sent_ago(key)
            .is_some_and(|ms| ms < self.config.token_lifetime_ms)
    }

    /// Records that `key` goes out now, unless MTurk still remembers an earlier send.
    fn sending(&self, key: &IdempotencyKey) {
        let fresh = self.token_fresh(key);
        if !fresh {
            let now = self.clock.now();
            self.lock().first_sent.insert(key.as_str().to_owned(), now);
        }
    }

    /// Whether MTurk surely still remembers every bonus token ever used for `assignment`: it
    /// was submitted (as listed here) less than the token lifetime ago, less an hour for the
    /// clocks' skew, and MTurk pays nothing before the submission.
    fn submitted_recently(&self, assignment: &AssignmentId) -> bool {
        const SKEW_MS: u64 = 3_600_000;
        let now = self.clock.now();
        self.lock().submitted_at.get(assignment).is_some_and(|t| {
            now.millis_since(*t).saturating_add(SKEW_MS) < self.config.token_lifetime_ms
        })
    }

    /// Whether MTurk lists a bonus for `assignment` paid to `worker`, of `amount`, with `key`'s
    /// marker in its reason (`ListBonusPayments`, paged). A listing MTurk refuses is an error,
    /// never "nothing paid".
    async fn bonus_paid(
        &self,
        worker: &WorkerId,
        assignment: &AssignmentId,
        amount: Money,
        key: &IdempotencyKey,
    ) -> Result<bool, PlatformError> {
        let marker = wire::bonus_marker(key);
        let mut token: Option<String> = None;
        loop {
            let sent = self
                .client
                .list_bonus_payments()
                .assignment_id(assignment.as_str())
                .max_results(100)
                .set_next_token(token.clone())
                .send()
                .await;
            let out = match sent {
                Ok(out) => out,
                Err(e) => {
                    // A check that cannot be made never reads as "not paid": sending again
                    // with a token MTurk no longer remembers could pay twice. A permanent
                    // failure leaves the bonus owed, with this reason, for a person to pay.
                    return Err(failure("ListBonusPayments", &e).error);
                }
            };
            let page = out.bonus_payments();
            let paid = page.iter().any(|b| {
                b.worker_id() == Some(worker.as_str())
                    && b.bonus_amount().and_then(wire::parse_dollars) == Some(amount)
                    && b.reason().is_some_and(|r| r.contains(&marker))
            });
            if paid {
                return Ok(true);
            }
            match out.next_token() {
                Some(next) if !page.is_empty() && Some(next) != token.as_deref() => {
                    token = Some(next.to_owned());
                }
                _ => return Ok(false),
            }
        }
    }

    /// Before extra assignments are asked again under a key MTurk may have forgotten: whether
    /// the first request went through. With this instance's record of what the key brings the
    /// HIT to, `GetHIT`'s `MaxAssignments` tells. Without one (the key was first sent before a
    /// restart), the HIT's age bounds the key's: a HIT younger than the token lifetime has
    /// no key older than that, and MTurk deduplicates it. An older HIT cannot be told apart.
    async fn slots_added(&self, hit: &HitId, key: &IdempotencyKey) -> Result<bool, PlatformError> {
        let target = self.lock().add_targets.get(key.as_str()).copied();
        match target {
            Some(target) => {
                let h = self.get_hit(hit).await?;
                let max = h
                    .max_assignments()
                    .and_then(|n| u32::try_from(n).ok())
                    .unwrap_or(0);
                Ok(max >= target)
            }
            None => {
                let known = self.lock().created.get(hit).copied();
                let created = match known {
                    Some(t) => t,
                    None => {
                        self.get_hit(hit).await?;
                        self.lock()
                            .created
                            .get(hit)
                            .copied()
                            .unwrap_or(Timestamp::from_millis(0))
                    }
                };
                if self.clock.now().millis_since(created) >= self.config.token_lifetime_ms {
                    tracing::warn!(
                        %hit, %key,
                        "extra assignments asked again for a HIT older than MTurk's token \
                         window, with no record of the first request: if it went through \
                         before a restart, they are added twice"
                    );
                }
                Ok(false)
            }
        }
    }

    /// `GetHIT`, remembering what it says of the HIT's size and age.
    async fn get_hit(&self, hit: &HitId) -> Result<Hit, PlatformError> {
        let out = self
            .client
            .get_hit()
            .hit_id(hit.as_str())
            .send()
            .await
            .map_err(|e| failure("GetHIT", &e).error)?;
        let h = out.hit().cloned().ok_or_else(|| {
            err(
                PlatformErrorKind::Unavailable,
                "MalformedAnswer",
                "GetHIT: no HIT",
            )
        })?;
        let mut s = self.lock();
        if let Some(n) = h.max_assignments().and_then(|n| u32::try_from(n).ok()) {
            s.max_assignments.insert(hit.clone(), n);
        }
        if let Some(t) = h.creation_time() {
            s.created
                .insert(hit.clone(), Timestamp::from_millis(millis(t)));
        }
        Ok(h)
    }

    /// After MTurk called a create token a duplicate: the HIT it made, found by annotation.
    async fn resolve_duplicate(&self, key: &IdempotencyKey) -> Result<HitId, PlatformError> {
        self.load_index().await?;
        self.indexed(key).ok_or_else(|| {
            err(
                PlatformErrorKind::Unavailable,
                "DuplicateNotListed",
                format!("MTurk knows token {key} but lists no HIT annotated with it yet"),
            )
        })
    }

    async fn known_max_assignments(&self, hit: &HitId) -> Result<u32, PlatformError> {
        if let Some(n) = self.lock().max_assignments.get(hit) {
            return Ok(*n);
        }
        self.get_hit(hit)
            .await?
            .max_assignments()
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| {
                err(
                    PlatformErrorKind::Unavailable,
                    "MalformedAnswer",
                    "no MaxAssignments",
                )
            })
    }

    // ----- review --------------------------------------------------------------------------------

    /// After MTurk refused to approve, reject or pay for an assignment: where it really is.
    /// `Ok(Some(status))` when MTurk lists it; `Ok(None)` when MTurk does not show it
    /// submitted; retryable errors pass through.
    async fn assignment_status(
        &self,
        assignment: &AssignmentId,
    ) -> Result<Option<TurkStatus>, PlatformError> {
        match self
            .client
            .get_assignment()
            .assignment_id(assignment.as_str())
            .send()
            .await
        {
            Ok(out) => Ok(out
                .assignment()
                .and_then(|a| a.assignment_status())
                .cloned()),
            Err(e) => {
                let f = failure("GetAssignment", &e);
                if f.error.is_retryable() {
                    Err(f.error)
                } else {
                    Ok(None)
                }
            }
        }
    }

    /// An assignment MTurk does not show submitted: the page told the engine first; retry a
    /// while, then give up.
    fn not_submitted_yet(
        &self,
        assignment: &AssignmentId,
        original: PlatformError,
    ) -> PlatformError {
        let mut s = self.lock();
        let tries = s.unsubmitted.entry(assignment.clone()).or_default();
        *tries += 1;
        if *tries > UNSUBMITTED_RETRIES {
            return original;
        }
        err(
            PlatformErrorKind::Unavailable,
            "NotSubmittedYet",
            format!(
                "MTurk does not show assignment {assignment} submitted yet: {}",
                original.message
            ),
        )
    }

    /// Settles an approve or reject call: done when it went through, or when it failed for
    /// good but MTurk already shows the assignment `wanted` (reviewing twice, an answer lost on
    /// the way back); otherwise the failure, or a retryable one while the submission is still
    /// on its way to MTurk or the review raced it.
    async fn reviewed(
        &self,
        assignment: &AssignmentId,
        sent: Result<(), Failure>,
        wanted: TurkStatus,
        raced: &str,
        verb: &str,
    ) -> Result<(), PlatformError> {
        let Err(f) = sent else {
            self.settled(assignment);
            return Ok(());
        };
        if f.error.is_retryable() {
            return Err(f.error);
        }
        // Reviewing twice, or before MTurk has the submission: ask where it is.
        match self.assignment_status(assignment).await? {
            Some(status) if status == wanted => {
                self.settled(assignment);
                Ok(())
            }
            Some(TurkStatus::Approved | TurkStatus::Rejected) => Err(f.error),
            Some(_) => Err(err(
                PlatformErrorKind::Unavailable,
                raced,
                format!("assignment {assignment} is submitted; {verb} again"),
            )),
            None => Err(self.not_submitted_yet(assignment, f.error)),
        }
    }

    fn settled(&self, assignment: &AssignmentId) {
        self.lock().unsubmitted.remove(assignment);
    }

    // ----- observing -----------------------------------------------------------------------------

    async fn assignments_of(&self, hit: &HitId) -> Result<Vec<Assignment>, PlatformError> {
        let mut all = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let out = self
                .client
                .list_assignments_for_hit()
                .hit_id(hit.as_str())
                .max_results(100)
                .set_next_token(token.clone())
                .send()
                .await
                .map_err(|e| failure("ListAssignmentsForHIT", &e).error)?;
            let page = out.assignments();
            all.extend_from_slice(page);
            match out.next_token() {
                Some(next) if !page.is_empty() && Some(next) != token.as_deref() => {
                    token = Some(next.to_owned());
                }
                _ => return Ok(all),
            }
        }
    }
}

fn summary(h: &Hit) -> HitSummary {
    let n = |v: Option<i32>| v.and_then(|v| u32::try_from(v).ok()).unwrap_or(0);
    HitSummary {
        hit: HitId::new(h.hit_id().unwrap_or_default()),
        title: h.title().unwrap_or_default().to_owned(),
        status: h
            .hit_status()
            .map(|s| s.as_str().to_owned())
            .unwrap_or_default(),
        key: h
            .requester_annotation()
            .and_then(wire::key_of_annotation)
            .map(str::to_owned),
        max_assignments: n(h.max_assignments()),
        counts: (
            n(h.number_of_assignments_available()),
            n(h.number_of_assignments_pending()),
            n(h.number_of_assignments_completed()),
        ),
        expires_at_ms: h.expiration().map(millis),
    }
}

/// The events one listed assignment stands for.
fn events_of(a: &Assignment) -> Vec<Event> {
    let (Some(id), Some(worker), Some(hit)) = (a.assignment_id(), a.worker_id(), a.hit_id()) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut push = |at: Option<&DateTime>, status| {
        if let Some(at) = at {
            let at_ms = millis(at);
            out.push(Event {
                at_ms,
                assignment: id.to_owned(),
                status: status_code(status),
                update: AssignmentUpdate {
                    assignment: AssignmentId::new(id),
                    worker: WorkerId::new(worker),
                    hit: HitId::new(hit),
                    status,
                    at: Timestamp::from_millis(at_ms),
                },
            });
        }
    };
    push(a.submit_time(), AssignmentStatus::Submitted);
    push(a.approval_time(), AssignmentStatus::Approved);
    push(a.rejection_time(), AssignmentStatus::Rejected);
    out
}

#[async_trait]
impl Platform for MturkPlatform {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            // A returned or abandoned assignment is offered to the next worker.
            returned_slots_reopen: true,
            // With a notification queue, a NotificationReader feeds the engine.
            push_notifications: self.config.notifications.is_some(),
            bonus_without_assignment: false,
            max_slots_per_hit: None,
            // `assignment` reads an assignment back, but MTurk shows one only once it is
            // submitted: it cannot confirm an arrival (an accepted assignment), which is what
            // this capability promises. Saying yes would make a front that checks arrivals
            // refuse every real worker. See `assignment`.
            confirms_assignments: false,
            posts_reopen_expired_hits: false,
        }
    }

    async fn post(
        &self,
        spec: &HitSpec,
        slots: u32,
        key: &IdempotencyKey,
    ) -> Result<HitId, PlatformError> {
        spec.validate()
            .map_err(|e| PlatformError::bad_request("InvalidSpec", e.to_string()))?;
        if slots == 0 || slots > spec.max_assignments {
            return Err(PlatformError::bad_request(
                "InvalidSlots",
                format!(
                    "{slots} slots; the spec allows 1 to {}",
                    spec.max_assignments
                ),
            ));
        }
        let url = wire::landing_url(spec, self.config.landing_url.as_deref())?;
        let lifetime = seconds("lifetime_ms", spec.lifetime_ms, 30, 31_536_000)?;
        // A HIT this key posted before (a crash between create and record, another
        // instance) is found by its annotation and not posted again.
        self.ensure_index().await?;
        if let Some(hit) = self.indexed(key) {
            return Ok(hit);
        }
        if self.token_stale(key) {
            // MTurk has forgotten the token: only the annotation can tell.
            self.load_index().await?;
            if let Some(hit) = self.indexed(key) {
                return Ok(hit);
            }
        }
        if self.config.check_balance {
            let cost = wire::posting_cost(spec.reward, slots);
            let balance = self.balance().await?;
            if balance.minor < cost.minor {
                return Err(err(
                    PlatformErrorKind::InsufficientFunds,
                    "InsufficientFunds",
                    format!("posting costs {cost} with MTurk's fee; the balance is {balance}"),
                ));
            }
        }
        let hit_type = self.hit_type(spec).await?;
        self.sending(key);
        let sent = self
            .client
            .create_hit_with_hit_type()
            .hit_type_id(hit_type)
            .max_assignments(i32::try_from(slots).unwrap_or(i32::MAX))
            .lifetime_in_seconds(lifetime)
            .question(wire::external_question(url, spec.frame_height))
            .requester_annotation(wire::annotation(key))
            .unique_request_token(key.as_str())
            .send()
            .await;
        match sent {
            Ok(out) => {
                let hit = out
                    .hit()
                    .and_then(|h| h.hit_id())
                    .map(HitId::new)
                    .ok_or_else(|| {
                        err(
                            PlatformErrorKind::Unavailable,
                            "MalformedAnswer",
                            "no HITId",
                        )
                    })?;
                let created = out
                    .hit()
                    .and_then(|h| h.creation_time())
                    .map_or_else(|| self.clock.now(), |t| Timestamp::from_millis(millis(t)));
                let mut s = self.lock();
                s.max_assignments.insert(hit.clone(), slots);
                s.created.insert(hit.clone(), created);
                s.posted.insert(key.as_str().to_owned());
                if let Some(index) = s.index.as_mut() {
                    index.insert(key.as_str().to_owned(), hit.clone());
                }
                Ok(hit)
            }
            Err(e) => {
                let f = failure("CreateHITWithHITType", &e);
                if f.duplicate {
                    tracing::debug!(%key, "duplicate token: finding the HIT it made");
                    self.resolve_duplicate(key).await
                } else {
                    Err(f.error)
                }
            }
        }
    }

    async fn add_slots(
        &self,
        hit: &HitId,
        n: u32,
        key: &IdempotencyKey,
    ) -> Result<(), PlatformError> {
        if n == 0 {
            return Ok(());
        }
        // MTurk remembers the token for 24 hours: a request sent again later is first
        // reconciled with the HIT, so that it never adds twice.
        if !self.token_fresh(key) && self.slots_added(hit, key).await? {
            tracing::debug!(%hit, %key, "extra assignments already there: not asked again");
            return Ok(());
        }
        let current = self.known_max_assignments(hit).await?;
        // MTurk: a HIT made with fewer than 10 assignments never reaches 10 or more.
        if current < 10 && current.saturating_add(n) >= 10 {
            return Err(PlatformError::bad_request(
                "InvalidMaximumAssignmentsIncrease",
                format!("HIT {hit} has {current} assignments; MTurk cannot take it to 10 or more"),
            ));
        }
        if !self.token_fresh(key) {
            self.lock()
                .add_targets
                .insert(key.as_str().to_owned(), current + n);
        }
        self.sending(key);
        let sent = self
            .client
            .create_additional_assignments_for_hit()
            .hit_id(hit.as_str())
            .number_of_additional_assignments(i32::try_from(n).unwrap_or(i32::MAX))
            .unique_request_token(key.as_str())
            .send()
            .await;
        let mut s = self.lock();
        match sent {
            Ok(_) => {
                s.max_assignments.insert(hit.clone(), current + n);
                Ok(())
            }
            Err(e) => {
                // Whether the increase happened is unknown until MTurk is asked again.
                s.max_assignments.remove(hit);
                let f = failure("CreateAdditionalAssignmentsForHIT", &e);
                if f.duplicate { Ok(()) } else { Err(f.error) }
            }
        }
    }

    /// `GetAssignment`, bounded by [`MturkConfig::lookup`] (a worker page waits for it). MTurk
    /// answers only for assignments that are Submitted, Approved or Rejected (its docs; its
    /// `AssignmentStatus` has no other value): an assignment a worker has accepted and is still
    /// working on reads as `Ok(None)`, like a made-up id, another requester's assignment or one
    /// of a deleted HIT. So on MTurk this confirms a page reloading after its submit, not an
    /// arrival: see [`Capabilities::confirms_assignments`] in [`capabilities`](Self::capabilities).
    /// The record says who holds it and on which HIT; the caller checks both
    /// ([`AssignmentRecord::confirms`]). Throttling, 5xx and timeouts are retryable errors.
    async fn assignment(
        &self,
        assignment: &AssignmentId,
    ) -> Result<Option<AssignmentRecord>, PlatformError> {
        let id = assignment.as_str();
        if id.is_empty() || id.len() > MAX_ID_LEN || id == PREVIEW_ASSIGNMENT_ID {
            return Ok(None); // not an id MTurk gives out: no need to ask
        }
        let look = &self.config.lookup;
        let bounded = aws_sdk_mturk::config::Builder::default()
            .retry_config(
                RetryConfig::standard()
                    .with_max_attempts(look.max_attempts.max(1))
                    .with_initial_backoff(Duration::from_millis(50))
                    .with_max_backoff(Duration::from_millis(500)),
            )
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(self.config.timeouts.connect().min(look.attempt()))
                    .operation_attempt_timeout(look.attempt())
                    .operation_timeout(look.operation())
                    .build(),
            );
        let sent = self
            .client
            .get_assignment()
            .assignment_id(id)
            .customize()
            .config_override(bounded)
            .send()
            .await;
        match sent {
            Ok(out) => match out.assignment() {
                Some(a) => record_of(a).map(Some),
                None => Ok(None),
            },
            Err(e) => {
                let f = failure("GetAssignment", &e);
                if refused_by_mturk(&f.error) {
                    tracing::debug!(assignment = %id, error = %f.error, "MTurk shows no such assignment");
                    Ok(None)
                } else {
                    Err(f.error)
                }
            }
        }
    }

    async fn expire(&self, hit: &HitId) -> Result<(), PlatformError> {
        // A time in the past expires the HIT at once. MTurk makes a token of the HIT and the
        // time, so the same call again is refused as processed: that is success too.
        let sent = self
            .client
            .update_expiration_for_hit()
            .hit_id(hit.as_str())
            .expire_at(DateTime::from_secs(0))
            .send()
            .await;
        match sent {
            Ok(_) => Ok(()),
            Err(e) => {
                let f = failure("UpdateExpirationForHIT", &e);
                if f.duplicate { Ok(()) } else { Err(f.error) }
            }
        }
    }

    async fn updates(
        &self,
        cursor: Option<&Cursor>,
    ) -> Result<Page<AssignmentUpdate>, PlatformError> {
        let position = Position::parse(cursor).ok_or_else(|| {
            PlatformError::bad_request(
                "InvalidCursor",
                format!("{:?} is not an MTurk cursor", cursor.map(|c| &c.0)),
            )
        })?;
        if let Some(c) = cursor {
            let mut s = self.lock();
            if s.drained.as_ref() == Some(c) {
                s.drained = None;
                return Ok(Page {
                    items: Vec::new(),
                    next: Some(c.clone()),
                });
            }
        }
        // One paged ListHITs gives every HIT's counts; only HITs whose counts moved within
        // the settle window (or never listed) have their assignments listed.
        let hits = self.all_hits().await?;
        self.absorb(&hits);
        let settle = Duration::from_millis(self.config.settle_window_ms);
        let listed: HashMap<&str, Counts> = hits
            .iter()
            .filter_map(|h| Some((h.hit_id()?, counts_of(h))))
            .collect();
        // (HIT, its new counts to remember once its assignments are listed)
        let mut to_list: Vec<(HitId, Option<Counts>)> = Vec::new();
        {
            let s = self.lock();
            let trusted = s.counts_for.as_ref() == cursor;
            for hit in self.watched_in(&s) {
                match listed.get(hit.as_str()).copied() {
                    // Missing from ListHITs (it may lag a new HIT): look anyway.
                    None => to_list.push((hit, None)),
                    Some(now) => match s.counts.get(&hit) {
                        Some((before, since)) if *before == now && trusted => {
                            if since.elapsed() < settle {
                                to_list.push((hit, None));
                            }
                        }
                        Some((before, _)) if *before == now => to_list.push((hit, None)),
                        _ => to_list.push((hit, Some(now))),
                    },
                }
            }
        }
        let mut events = Vec::new();
        for (hit, _) in &to_list {
            for a in self.assignments_of(hit).await? {
                events.extend(events_of(&a));
            }
        }
        {
            let mut s = self.lock();
            for e in &events {
                if e.update.status == AssignmentStatus::Submitted {
                    s.submitted_at
                        .insert(e.update.assignment.clone(), e.update.at);
                }
            }
        }
        let (items, next, more) = position.advance(events, self.config.settle_window_ms, PAGE_SIZE);
        let next = next.to_cursor();
        let mut s = self.lock();
        s.drained = (!more && !items.is_empty()).then(|| next.clone());
        if more {
            // The caller has not seen everything yet: its next poll lists everything again.
            s.counts_for = None;
        } else {
            for (hit, counts) in to_list {
                if let Some(counts) = counts {
                    s.counts.insert(hit, (counts, Instant::now()));
                }
            }
            s.counts_for = Some(next.clone());
        }
        drop(s);
        Ok(Page {
            items,
            next: Some(next),
        })
    }

    async fn approve(
        &self,
        assignment: &AssignmentId,
        _key: &IdempotencyKey,
    ) -> Result<(), PlatformError> {
        let sent = self
            .client
            .approve_assignment()
            .assignment_id(assignment.as_str())
            .send()
            .await
            .map(drop)
            .map_err(|e| failure("ApproveAssignment", &e));
        self.reviewed(
            assignment,
            sent,
            TurkStatus::Approved,
            "ApproveRaced",
            "approve",
        )
        .await
    }

    async fn reject(
        &self,
        assignment: &AssignmentId,
        feedback: &str,
        _key: &IdempotencyKey,
    ) -> Result<(), PlatformError> {
        let feedback: String = feedback.chars().take(1024).collect();
        let feedback = if feedback.trim().is_empty() {
            "rejected".to_owned()
        } else {
            feedback
        };
        let sent = self
            .client
            .reject_assignment()
            .assignment_id(assignment.as_str())
            .requester_feedback(feedback)
            .send()
            .await
            .map(drop)
            .map_err(|e| failure("RejectAssignment", &e));
        self.reviewed(
            assignment,
            sent,
            TurkStatus::Rejected,
            "RejectRaced",
            "reject",
        )
        .await
    }

    async fn bonus(
        &self,
        worker: &WorkerId,
        assignment: Option<&AssignmentId>,
        amount: Money,
        reason: &str,
        key: &IdempotencyKey,
    ) -> Result<(), PlatformError> {
        let Some(assignment) = assignment else {
            return Err(PlatformError::bad_request(
                "AssignmentRequired",
                "MTurk pays bonuses for an assignment",
            ));
        };
        if amount.minor <= 0 {
            return Err(PlatformError::bad_request(
                "InvalidAmount",
                format!("a bonus of {amount}"),
            ));
        }
        let dollars = wire::dollars(amount)?;
        let reason = wire::bonus_reason(reason, key);
        // MTurk remembers the token for 24 hours, and this instance may not be the one that
        // first sent it: unless it sent it within that window, or the assignment was submitted
        // more recently than that, the bonus is looked for among those paid for the assignment
        // (by its marker and amount) before it is sent again.
        if !self.token_fresh(key)
            && !self.submitted_recently(assignment)
            && self.bonus_paid(worker, assignment, amount, key).await?
        {
            tracing::debug!(%assignment, %key, "bonus found paid: not sent again");
            return Ok(());
        }
        self.sending(key);
        let sent = self
            .client
            .send_bonus()
            .worker_id(worker.as_str())
            .assignment_id(assignment.as_str())
            .bonus_amount(dollars)
            .reason(reason)
            .unique_request_token(key.as_str())
            .send()
            .await;
        let Err(e) = sent else {
            return Ok(());
        };
        let f = failure("SendBonus", &e);
        if f.duplicate {
            return Ok(()); // paid by an earlier call with this token
        }
        if !matches!(
            f.error.kind,
            PlatformErrorKind::Conflict | PlatformErrorKind::NotFound
        ) {
            return Err(f.error);
        }
        // MTurk pays bonuses on submitted work only: the submission may still be on its way.
        match self.assignment_status(assignment).await? {
            Some(_) => Err(err(
                PlatformErrorKind::Unavailable,
                "BonusRaced",
                format!("assignment {assignment} is submitted now; pay again"),
            )),
            None => Err(self.not_submitted_yet(assignment, f.error)),
        }
    }

    async fn notify(
        &self,
        workers: &[WorkerId],
        subject: &str,
        message: &str,
    ) -> Result<(), PlatformError> {
        for batch in workers.chunks(NOTIFY_BATCH) {
            let mut pending: Vec<String> = batch.iter().map(|w| w.to_string()).collect();
            // Soft failures (MTurk could not deliver now) are retried for those workers only.
            for round in 0..3 {
                let out = self
                    .client
                    .notify_workers()
                    .subject(subject)
                    .message_text(message)
                    .set_worker_ids(Some(pending.clone()))
                    .send()
                    .await
                    .map_err(|e| failure("NotifyWorkers", &e).error)?;
                let mut soft = Vec::new();
                for f in out.notify_workers_failure_statuses() {
                    let worker = f.worker_id().unwrap_or_default().to_owned();
                    match f.notify_workers_failure_code() {
                        Some(NotifyWorkersFailureCode::SoftFailure) => soft.push(worker),
                        _ => tracing::warn!(
                            %worker,
                            reason = f.notify_workers_failure_message().unwrap_or_default(),
                            "MTurk cannot notify worker"
                        ),
                    }
                }
                pending = soft;
                if pending.is_empty() {
                    break;
                }
                if round == 2 {
                    return Err(err(
                        PlatformErrorKind::Unavailable,
                        "SoftFailure",
                        format!("MTurk could not notify {} yet", pending.join(", ")),
                    ));
                }
            }
        }
        Ok(())
    }

    async fn block(&self, worker: &WorkerId, reason: &str) -> Result<(), PlatformError> {
        let reason = if reason.trim().is_empty() {
            "blocked"
        } else {
            reason
        };
        self.client
            .create_worker_block()
            .worker_id(worker.as_str())
            .reason(reason)
            .send()
            .await
            .map_err(|e| failure("CreateWorkerBlock", &e).error)?;
        Ok(())
    }

    async fn grant_qualification(
        &self,
        worker: &WorkerId,
        qualification: &str,
        value: i64,
    ) -> Result<(), PlatformError> {
        let value = i32::try_from(value).map_err(|_| {
            PlatformError::bad_request(
                "InvalidQualificationValue",
                format!("{value} does not fit 32 bits"),
            )
        })?;
        self.client
            .associate_qualification_with_worker()
            .qualification_type_id(qualification)
            .worker_id(worker.as_str())
            .integer_value(value)
            .send_notification(false)
            .send()
            .await
            .map_err(|e| failure("AssociateQualificationWithWorker", &e).error)?;
        Ok(())
    }

    async fn revoke_qualification(
        &self,
        worker: &WorkerId,
        qualification: &str,
    ) -> Result<(), PlatformError> {
        self.client
            .disassociate_qualification_from_worker()
            .qualification_type_id(qualification)
            .worker_id(worker.as_str())
            .reason("revoked")
            .send()
            .await
            .map_err(|e| failure("DisassociateQualificationFromWorker", &e).error)?;
        Ok(())
    }

    async fn balance(&self) -> Result<Money, PlatformError> {
        let out = self
            .client
            .get_account_balance()
            .send()
            .await
            .map_err(|e| failure("GetAccountBalance", &e).error)?;
        let text = out.available_balance().unwrap_or_default();
        wire::parse_dollars(text).ok_or_else(|| {
            err(
                PlatformErrorKind::Unavailable,
                "MalformedAnswer",
                format!("balance {text:?}"),
            )
        })
    }
}
