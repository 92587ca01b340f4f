//! The `Store` trait: where a driver records what it must not forget. One implementation per
//! database: [`MemoryStore`] here, SQLite in `crowdcore-sqlite`.
//!
//! A store keeps, per session:
//! - an append-only **input log** with sequence numbers 1, 2, 3, … (no gaps);
//! - the latest **snapshot** of the machine and the log position it covers;
//! - an **outbox** of effects keyed by effect id: pending → done / failed;
//! - **observer cursors**, advanced in the same write as the inputs they produced;
//! - the payments **ledger**, written in the same write as the payment's completion;
//! - small **metadata** values (the session's configuration, say).
//!
//! Writes that belong together are one call, so a store can make each call one transaction —
//! and batch many calls into one fsync (group commit) — without the driver knowing.

#[cfg(feature = "contract")]
pub mod contract;
mod failing;
mod memory;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

pub use failing::{FailMode, FailingStore};
pub use memory::MemoryStore;

use crate::model::{AssignmentId, EffectId, Money, SessionId, Timestamp, WorkerId};
use crate::platform::Cursor;

/// An input to append: its time and its serialized form (JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewInput {
    /// When it happened.
    pub at: Timestamp,
    /// The input, serialized by the driver.
    pub body: String,
}

/// An input read back from the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogRecord {
    /// Its position: 1 for the first input of the session, no gaps.
    pub seq: u64,
    /// When it happened.
    pub at: Timestamp,
    /// The input, as appended.
    pub body: String,
}

/// A snapshot of a machine and the last log position it includes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredSnapshot {
    /// Inputs up to and including this sequence number are in the snapshot.
    pub seq: u64,
    /// The machine's state, serialized by the driver.
    pub body: String,
}

/// An effect to put in the outbox before it is carried out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewEffect {
    /// Its id: also the idempotency key of the platform call.
    pub id: EffectId,
    /// The effect, serialized by the driver.
    pub body: String,
}

/// Where an effect stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum OutboxState {
    /// Not carried out yet (or carried out, but the result is not recorded: re-send it with the
    /// same key).
    Pending,
    /// Carried out; `result` says what came of it.
    Done {
        /// The platform's answer, serialized by the driver.
        result: String,
    },
    /// Failed for good.
    Failed {
        /// Why.
        error: String,
    },
}

/// An effect in the outbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxEntry {
    /// Its id.
    pub id: EffectId,
    /// The effect, as enqueued.
    pub body: String,
    /// Where it stands.
    pub state: OutboxState,
}

/// Everything recorded when an effect is finished, in one atomic write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    /// The effect.
    pub id: EffectId,
    /// Done or failed.
    pub state: OutboxState,
    /// Payments it made (or failed to make).
    pub ledger: Vec<LedgerEntry>,
    /// Inputs its result feeds back to the machine (a hire's posted HIT, say).
    pub inputs: Vec<NewInput>,
}

/// One payment, made or failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerEntry {
    /// The effect that paid.
    pub effect: EffectId,
    /// Who was paid.
    pub worker: WorkerId,
    /// For which assignment.
    pub assignment: Option<AssignmentId>,
    /// What for: `base`, `waiting_bonus`, `active_bonus`, `contribution_bonus`, …
    pub kind: String,
    /// How much.
    pub amount: Money,
    /// Whether the money went out.
    pub paid: bool,
    /// When it was recorded.
    pub at: Timestamp,
}

/// A store could not do what was asked. Nothing was written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The database is busy or locked by another process.
    #[error("the store is locked: {0}")]
    Locked(String),
    /// The disk is full.
    #[error("the disk is full: {0}")]
    Full(String),
    /// The data is not what this version can read.
    #[error("the store is corrupt or from another version: {0}")]
    Corrupt(String),
    /// An effect that is not in the outbox.
    #[error("effect {0} is not in the outbox")]
    UnknownEffect(EffectId),
    /// The store has shut down.
    #[error("the store is closed")]
    Closed,
    /// Any other failure of the underlying database.
    #[error("store failure: {0}")]
    Other(String),
}

/// A durable home for a driver's log, outbox, cursors and ledger. Object safe: hold it as
/// `Arc<dyn Store>`. Every method is one atomic write or a consistent read.
#[async_trait]
pub trait Store: Send + Sync {
    /// Appends `inputs` to the session's log, in order, and in the same write sets the observer
    /// cursor `cursor.0` to `cursor.1` if given. Returns the sequence number of the last input
    /// (or of the log's end if `inputs` is empty).
    async fn append(
        &self,
        session: &SessionId,
        inputs: &[NewInput],
        cursor: Option<(&str, &Cursor)>,
    ) -> Result<u64, StoreError>;

    /// Up to `limit` log records after sequence number `after`, in order.
    async fn read_log(
        &self,
        session: &SessionId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<LogRecord>, StoreError>;

    /// Replaces the session's snapshot.
    async fn save_snapshot(
        &self,
        session: &SessionId,
        snapshot: &StoredSnapshot,
    ) -> Result<(), StoreError>;

    /// The session's snapshot, if one was saved.
    async fn load_snapshot(
        &self,
        session: &SessionId,
    ) -> Result<Option<StoredSnapshot>, StoreError>;

    /// Puts effects in the outbox as pending. An effect already there (any state) is left as
    /// it is, so enqueueing again after a crash is safe.
    async fn enqueue(&self, session: &SessionId, effects: &[NewEffect]) -> Result<(), StoreError>;

    /// Records an effect's outcome, its ledger entries and the inputs it feeds back, in one
    /// write. Completing an effect that is already done or failed changes nothing and returns
    /// `Ok(false)`; otherwise `Ok(true)`.
    async fn complete(
        &self,
        session: &SessionId,
        completion: &Completion,
    ) -> Result<bool, StoreError>;

    /// The session's pending effects, in id order.
    async fn pending(&self, session: &SessionId) -> Result<Vec<OutboxEntry>, StoreError>;

    /// One effect's entry.
    async fn effect(&self, id: &EffectId) -> Result<Option<OutboxEntry>, StoreError>;

    /// An observer's cursor.
    async fn cursor(&self, session: &SessionId, name: &str) -> Result<Option<Cursor>, StoreError>;

    /// The session's ledger, in the order written.
    async fn ledger(&self, session: &SessionId) -> Result<Vec<LedgerEntry>, StoreError>;

    /// Sets a metadata value.
    async fn put_meta(&self, session: &SessionId, key: &str, value: &str)
    -> Result<(), StoreError>;

    /// A metadata value.
    async fn meta(&self, session: &SessionId, key: &str) -> Result<Option<String>, StoreError>;
}
