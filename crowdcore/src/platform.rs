//! The `Platform` trait: one implementation per crowd (the in-process [`local`](crate::local)
//! marketplace, MTurk, Toloka).
//!
//! Every call that creates something or moves money takes an [`IdempotencyKey`]: the id of the
//! effect that asked for it. A platform that sees a key again returns the first result instead
//! of doing the work twice, which is what lets a driver re-send an effect after a crash.

use std::fmt;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::model::{AssignmentId, EffectId, HitId, HitSpec, Money, Timestamp, WorkerId};

/// The key that makes a creating or paying call safe to repeat (MTurk `UniqueRequestToken`,
/// Toloka `operation_id`). At most 64 characters, as MTurk allows.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// The longest key every platform accepts.
    pub const MAX_LEN: usize = 64;

    /// The key of an effect: its id, or a digest of it if the id is longer than
    /// [`MAX_LEN`](Self::MAX_LEN).
    pub fn for_effect(id: &EffectId) -> Self {
        let text = id.to_string();
        if text.len() <= Self::MAX_LEN {
            return Self(text);
        }
        // FNV-1a over the id, twice with different offsets: stable across builds and
        // platforms (unlike `DefaultHasher`), and plenty to tell one session's effects apart.
        let seq = id.seq.to_string();
        Self(format!(
            "{:016x}{:016x}-{seq}",
            fnv1a(FNV_OFFSET, &text),
            fnv1a(0x6c62_272e_07bb_0142, &text)
        ))
    }

    /// The key as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// FNV-1a's standard offset basis.
pub(crate) const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// FNV-1a over `text`, starting from `offset`: a hash that is the same on every build and
/// platform (unlike `DefaultHasher`), for keys and seeds that must be reproducible.
pub(crate) fn fnv1a(offset: u64, text: &str) -> u64 {
    text.bytes().fold(offset, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// What a platform can and cannot do; drivers and machines adapt to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capabilities {
    /// A returned or abandoned assignment's slot opens again for another worker.
    pub returned_slots_reopen: bool,
    /// The platform pushes assignment updates; otherwise the driver polls
    /// [`Platform::updates`].
    pub push_notifications: bool,
    /// A bonus can be paid without naming an assignment.
    pub bonus_without_assignment: bool,
    /// The most slots one HIT may have, if limited.
    pub max_slots_per_hit: Option<u32>,
    /// Every [`Platform::post`] may answer with the same HIT (Prolific: a session is one study
    /// whose places only grow), so a post onto a HIT expired earlier re-opens it: its slots
    /// count as open again. Where false (MTurk, Toloka, local: a post makes a new HIT), slots
    /// a post reports on an expired HIT never open.
    #[serde(default)]
    pub posts_reopen_expired_hits: bool,
    /// [`Platform::assignment`] reads an assignment back from the platform, so that an arrival
    /// a worker's page claims can be confirmed before it takes a seat. A platform without it
    /// cannot tell a real arrival from a made-up one: the HTTP front refuses to serve it unless
    /// the host opts in (unsafe on a public crowd).
    pub confirms_assignments: bool,
}

/// One assignment as its platform reports it, read back by [`Platform::assignment`]: who
/// holds it, on which HIT, in what state. This is the platform's word, not a page's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssignmentRecord {
    /// The assignment.
    pub assignment: AssignmentId,
    /// The worker holding it.
    pub worker: WorkerId,
    /// The HIT it belongs to, as [`Platform::post`] and [`Platform::updates`] name it (an MTurk
    /// HIT, a Toloka task).
    pub hit: HitId,
    /// Where it is now.
    pub status: AssignmentStatus,
}

impl AssignmentRecord {
    /// Whether this record confirms that `worker` holds the assignment on `hit` and may still
    /// work on it or has just submitted it (a page reloading after its submit).
    pub fn confirms(&self, worker: &WorkerId, hit: &HitId) -> bool {
        &self.worker == worker
            && &self.hit == hit
            && matches!(
                self.status,
                AssignmentStatus::Accepted | AssignmentStatus::Submitted
            )
    }
}

/// A page of results and where the next page starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Page<T> {
    /// The items, oldest first.
    pub items: Vec<T>,
    /// Pass this to get the next page; `None` when there is no more right now. A cursor stays
    /// valid forever: polling with the last cursor later returns what happened since.
    pub next: Option<Cursor>,
}

/// An opaque position in a platform's stream of updates.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Cursor(pub String);

/// Where an assignment is on the platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AssignmentStatus {
    /// A worker accepted the slot and holds it.
    Accepted,
    /// The worker submitted.
    Submitted,
    /// The worker gave the slot back.
    Returned,
    /// The assignment's duration ran out before submission.
    Abandoned,
    /// The requester approved it (the base pay went out).
    Approved,
    /// The requester rejected it.
    Rejected,
}

/// A change to one assignment, as an observer reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssignmentUpdate {
    /// The assignment.
    pub assignment: AssignmentId,
    /// Its worker.
    pub worker: WorkerId,
    /// Its HIT.
    pub hit: HitId,
    /// Its new status.
    pub status: AssignmentStatus,
    /// When the platform says it changed.
    pub at: Timestamp,
}

/// A failed platform call: retryable or not, with the platform's own code and message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind:?} ({code}): {message}")]
pub struct PlatformError {
    /// What kind of failure, which decides whether to retry.
    pub kind: PlatformErrorKind,
    /// The platform's error code (`ThrottlingException`, `AWS.MechanicalTurk.…`, HTTP status).
    pub code: String,
    /// The platform's message.
    pub message: String,
}

/// Failure classes. The first three are worth retrying.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlatformErrorKind {
    /// Too many requests: slow down and retry.
    Throttled,
    /// No answer in time: retry (with the same idempotency key).
    Timeout,
    /// The service failed (HTTP 5xx): retry.
    Unavailable,
    /// The request is wrong and will stay wrong.
    BadRequest,
    /// The account cannot pay for it.
    InsufficientFunds,
    /// The thing named does not exist.
    NotFound,
    /// The thing is in a state that does not allow this (already approved, HIT expired, …).
    Conflict,
}

impl PlatformError {
    /// A new error.
    pub fn new(
        kind: PlatformErrorKind,
        code: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            kind,
            code: code.into(),
            message: message.into(),
        }
    }

    /// A request that is wrong and will stay wrong ([`PlatformErrorKind::BadRequest`]), refused
    /// before anything was sent or by the platform.
    pub fn bad_request(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(PlatformErrorKind::BadRequest, code, message)
    }

    /// Whether the same call may succeed if tried again.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self.kind,
            PlatformErrorKind::Throttled
                | PlatformErrorKind::Timeout
                | PlatformErrorKind::Unavailable
        )
    }
}

/// One crowd platform. Object safe: hold it as `Arc<dyn Platform>`.
#[async_trait]
pub trait Platform: Send + Sync {
    /// What this platform can do.
    fn capabilities(&self) -> Capabilities;

    /// Posts a HIT with `slots` slots. Repeating `key` returns the first HIT.
    async fn post(
        &self,
        spec: &HitSpec,
        slots: u32,
        key: &IdempotencyKey,
    ) -> Result<HitId, PlatformError>;

    /// Opens `n` more slots on a HIT. Repeating `key` does nothing more.
    async fn add_slots(
        &self,
        hit: &HitId,
        n: u32,
        key: &IdempotencyKey,
    ) -> Result<(), PlatformError>;

    /// Reads one assignment back from the platform: `Ok(None)` when the platform knows no such
    /// assignment of this requester. Read-only, so safe to retry. A platform that cannot look
    /// assignments up keeps this default, which refuses, and says so in
    /// [`Capabilities::confirms_assignments`].
    async fn assignment(
        &self,
        assignment: &AssignmentId,
    ) -> Result<Option<AssignmentRecord>, PlatformError> {
        let _ = assignment;
        Err(PlatformError::bad_request(
            "Unsupported",
            "this platform cannot look up an assignment",
        ))
    }

    /// Closes a HIT to new workers; workers holding slots keep them. Idempotent.
    async fn expire(&self, hit: &HitId) -> Result<(), PlatformError>;

    /// Assignment updates of this requester since `cursor` (from the start if `None`).
    async fn updates(
        &self,
        cursor: Option<&Cursor>,
    ) -> Result<Page<AssignmentUpdate>, PlatformError>;

    /// Approves an assignment: its base pay goes out. Approving an approved assignment again
    /// succeeds.
    async fn approve(
        &self,
        assignment: &AssignmentId,
        key: &IdempotencyKey,
    ) -> Result<(), PlatformError>;

    /// Rejects an assignment with feedback for the worker.
    async fn reject(
        &self,
        assignment: &AssignmentId,
        feedback: &str,
        key: &IdempotencyKey,
    ) -> Result<(), PlatformError>;

    /// Pays a bonus. `assignment` may be `None` only where
    /// [`Capabilities::bonus_without_assignment`] holds. Repeating `key` pays nothing more.
    async fn bonus(
        &self,
        worker: &WorkerId,
        assignment: Option<&AssignmentId>,
        amount: Money,
        reason: &str,
        key: &IdempotencyKey,
    ) -> Result<(), PlatformError>;

    /// Sends a message to workers.
    async fn notify(
        &self,
        workers: &[WorkerId],
        subject: &str,
        message: &str,
    ) -> Result<(), PlatformError>;

    /// Stops a worker from taking this requester's work.
    async fn block(&self, worker: &WorkerId, reason: &str) -> Result<(), PlatformError>;

    /// Gives a worker a qualification with a value (replacing any earlier value).
    async fn grant_qualification(
        &self,
        worker: &WorkerId,
        qualification: &str,
        value: i64,
    ) -> Result<(), PlatformError>;

    /// Takes a qualification away.
    async fn revoke_qualification(
        &self,
        worker: &WorkerId,
        qualification: &str,
    ) -> Result<(), PlatformError>;

    /// Money available to spend.
    async fn balance(&self) -> Result<Money, PlatformError>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::SessionId;

    #[test]
    fn keys_fit_every_platform() {
        let short = EffectId::new(SessionId::new("0190c3a4-7a5e-7cc2-9a51-1f0b3c5d6e7f"), 12);
        let key = IdempotencyKey::for_effect(&short);
        assert_eq!(key.as_str(), "0190c3a4-7a5e-7cc2-9a51-1f0b3c5d6e7f/12");
        let long = EffectId::new(SessionId::new("x".repeat(80)), 7);
        let key = IdempotencyKey::for_effect(&long);
        assert!(key.as_str().len() <= IdempotencyKey::MAX_LEN);
        assert_eq!(key, IdempotencyKey::for_effect(&long));
        assert_ne!(
            key,
            IdempotencyKey::for_effect(&EffectId::new(long.session.clone(), 8))
        );
    }

    #[test]
    fn retryable_errors_are_the_transient_ones() {
        use PlatformErrorKind::*;
        for (kind, retry) in [
            (Throttled, true),
            (Timeout, true),
            (Unavailable, true),
            (BadRequest, false),
            (InsufficientFunds, false),
            (NotFound, false),
            (Conflict, false),
        ] {
            assert_eq!(PlatformError::new(kind, "c", "m").is_retryable(), retry);
        }
    }
}
