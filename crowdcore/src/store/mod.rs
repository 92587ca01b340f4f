//! The `Store` trait: where a driver records what it must not forget. One implementation per
//! database: [`MemoryStore`] here, SQLite in `crowdcore-sqlite`.
//!
//! A store keeps, per session:
//! - an append-only **input log** with sequence numbers 1, 2, 3, … (no gaps);
//! - the latest **snapshot** of the machine and the log position it covers;
//! - an **outbox** of effects keyed by effect id: pending → done / failed;
//! - **observer cursors**, advanced in the same write as the inputs they produced;
//! - the payments **ledger**, written in the same write as the payment's completion;
//! - small **metadata** values (the session's configuration, say);
//! - **leases**: one row per name with an owner and an expiry, so that two runs cannot drive
//!   the same store ([`Store::acquire_lease`]).
//!
//! Writes that belong together are one call, so a store can make each call one transaction —
//! and batch many calls into one fsync (group commit) — without the driver knowing.

#[cfg(feature = "contract")]
pub mod contract;
mod deferred;
pub(crate) mod failing;
mod memory;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

pub use deferred::Deferred;
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

/// Everything one step of a driver writes at once ([`Store::commit`]): inputs appended to the
/// log, observer cursors, effects put in the outbox as pending, journal entries put in the
/// outbox as already done (records for researchers that need no platform call), and a
/// snapshot. One transaction: all of it is visible, or none of it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Commit {
    /// Inputs to append to the log, in order.
    pub inputs: Vec<NewInput>,
    /// Observer cursors to set: `(name, cursor)`.
    pub cursors: Vec<(String, Cursor)>,
    /// Effects to put in the outbox as pending (an id already there is left as it is).
    pub effects: Vec<NewEffect>,
    /// Entries to put in the outbox as done with the result `"journal"` (an id already there is
    /// left as it is).
    pub journal: Vec<NewEffect>,
    /// A snapshot to save, covering the log up to its `seq` (at most the log's end after
    /// `inputs` are appended).
    pub snapshot: Option<StoredSnapshot>,
}

/// One write of a [`Store::write_all`] batch: the arguments of one single-write method.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    /// [`Store::append`].
    Append {
        /// The inputs, in order.
        inputs: Vec<NewInput>,
        /// An observer cursor set in the same write: `(name, cursor)`.
        cursor: Option<(String, Cursor)>,
    },
    /// [`Store::enqueue`].
    Enqueue(Vec<NewEffect>),
    /// [`Store::complete`] of an effect that is pending.
    Complete(Completion),
    /// An effect that is not in the outbox and was carried out already: what
    /// [`Write::Enqueue`] of it and then [`Write::Complete`] would do, at this write's place in
    /// the batch (its completion's inputs continue the log here). A store may write it as one
    /// finished row; one that finds the effect in the outbox refuses the batch as corrupt.
    Record {
        /// The effect.
        effect: NewEffect,
        /// Its completion.
        completion: Completion,
    },
    /// [`Store::save_snapshot`].
    Snapshot(StoredSnapshot),
    /// [`Store::put_meta`].
    Meta {
        /// The key.
        key: String,
        /// The value.
        value: String,
    },
}

/// The result an outbox journal entry carries ([`Commit::journal`]).
pub const JOURNAL_RESULT: &str = "journal";

/// What [`Store::acquire_lease`] found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum LeaseOutcome {
    /// The caller holds the lease until `expires` (newly taken, renewed, or taken over from an
    /// owner whose lease had expired).
    Acquired {
        /// When it runs out unless renewed.
        expires: Timestamp,
    },
    /// Someone else holds it.
    Held {
        /// Who.
        owner: String,
        /// Until when.
        expires: Timestamp,
    },
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

    /// Writes everything in `commit` in one transaction and returns the log's last sequence
    /// number. Refused, writing nothing, if the snapshot lies past the log's end.
    ///
    /// Stores written before this method existed refuse it (the default); `MemoryStore` and
    /// `SqliteStore` implement it.
    async fn commit(&self, session: &SessionId, commit: &Commit) -> Result<u64, StoreError> {
        let _ = (session, commit);
        Err(StoreError::Other("this store cannot commit batches".into()))
    }

    /// Carries out `writes` in order, as the single-write methods would, where the caller
    /// already knows what each would answer (the log's end; that each completed effect is
    /// pending — a completion that finds its effect finished is refused as
    /// [`StoreError::Corrupt`]). This is how [`Deferred`] hands over what it held.
    ///
    /// The default calls the single-write methods one by one: each is atomic, so a crash
    /// leaves a prefix of the batch, never a later write without an earlier one. `MemoryStore`
    /// keeps it; `SqliteStore` writes the whole batch in one transaction.
    async fn write_all(&self, session: &SessionId, writes: &[Write]) -> Result<(), StoreError> {
        for write in writes {
            match write {
                Write::Append { inputs, cursor } => {
                    let cursor = cursor.as_ref().map(|(name, c)| (name.as_str(), c));
                    self.append(session, inputs, cursor).await?;
                }
                Write::Enqueue(effects) => self.enqueue(session, effects).await?,
                Write::Complete(completion) => {
                    if !self.complete(session, completion).await? {
                        return Err(StoreError::Corrupt(format!(
                            "effect {} was finished already when its completion was written",
                            completion.id
                        )));
                    }
                }
                Write::Record { effect, completion } => {
                    if self.effect(&effect.id).await?.is_some() {
                        return Err(StoreError::Corrupt(format!(
                            "effect {} was in the outbox already when it was recorded as new",
                            effect.id
                        )));
                    }
                    self.enqueue(session, std::slice::from_ref(effect)).await?;
                    if !self.complete(session, completion).await? {
                        return Err(StoreError::Corrupt(format!(
                            "effect {} was finished already when its completion was written",
                            completion.id
                        )));
                    }
                }
                Write::Snapshot(snapshot) => self.save_snapshot(session, snapshot).await?,
                Write::Meta { key, value } => self.put_meta(session, key, value).await?,
            }
        }
        Ok(())
    }

    /// Takes the lease `name` for `owner` until `now + ttl_ms` if nobody else holds it at
    /// `now` (renewing it if `owner` already does). Leases are per store, not per session:
    /// they keep two runs off one store.
    async fn acquire_lease(
        &self,
        name: &str,
        owner: &str,
        now: Timestamp,
        ttl_ms: u64,
    ) -> Result<LeaseOutcome, StoreError> {
        let _ = (name, owner, now, ttl_ms);
        Err(StoreError::Other("this store has no leases".into()))
    }

    /// Gives the lease `name` up if `owner` holds it; returns whether it did.
    async fn release_lease(&self, name: &str, owner: &str) -> Result<bool, StoreError> {
        let _ = (name, owner);
        Err(StoreError::Other("this store has no leases".into()))
    }
}
