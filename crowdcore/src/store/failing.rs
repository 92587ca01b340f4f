//! A store that fails on purpose, for crash-recovery tests (as [`FaultyPlatform`] is for
//! platforms).
//!
//! [`FaultyPlatform`]: crate::faults::FaultyPlatform

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;

use super::{
    Commit, Completion, LeaseOutcome, LedgerEntry, LogRecord, NewEffect, NewInput, OutboxEntry,
    Store, StoreError, StoredSnapshot,
};
use crate::model::{EffectId, SessionId, Timestamp};
use crate::platform::Cursor;

/// Where the failing write leaves the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailMode {
    /// Nothing written: the process died before the write.
    Before,
    /// Written, but the caller hears an error: the process died right after the write.
    After,
}

/// A store whose N-th write (append, enqueue, complete, save_snapshot, commit) fails once: a crash
/// between two writes, for recovery tests. Reads and metadata pass through.
pub struct FailingStore {
    inner: Arc<dyn Store>,
    writes: AtomicU64,
    /// Whether write number `n` fails, and how.
    decide: Decide,
}

/// Whether a write fails, and how, from its number and what it writes.
type Decide = Box<dyn Fn(u64, &Write<'_>) -> Option<FailMode> + Send + Sync>;

/// A write a [`FailingStore`] is asked for, as its decision sees it
/// (`crowdcore::testkit::fail_when`).
#[derive(Debug, Clone, Copy)]
#[cfg_attr(not(feature = "testkit"), allow(dead_code, unreachable_pub))]
pub enum Write<'a> {
    /// [`Store::append`].
    Append {
        /// The session.
        session: &'a SessionId,
        /// The inputs appended.
        inputs: &'a [NewInput],
        /// The cursor set with them.
        cursor: Option<(&'a str, &'a Cursor)>,
    },
    /// [`Store::save_snapshot`].
    SaveSnapshot {
        /// The session.
        session: &'a SessionId,
        /// The snapshot.
        snapshot: &'a StoredSnapshot,
    },
    /// [`Store::enqueue`].
    Enqueue {
        /// The session.
        session: &'a SessionId,
        /// The effects enqueued.
        effects: &'a [NewEffect],
    },
    /// [`Store::complete`].
    Complete {
        /// The session.
        session: &'a SessionId,
        /// The completion.
        completion: &'a Completion,
    },
    /// [`Store::commit`].
    Commit {
        /// The session.
        session: &'a SessionId,
        /// The batch.
        commit: &'a Commit,
    },
}

impl FailingStore {
    /// Wraps `inner`; write number `fail_at` (1-based) fails, in `mode`.
    pub fn new(inner: Arc<dyn Store>, fail_at: Option<u64>, mode: FailMode) -> Self {
        Self::deciding(
            inner,
            Box::new(move |n, _| (fail_at == Some(n)).then_some(mode)),
        )
    }

    /// Wraps `inner`; a write fails when `decide` says how.
    pub(crate) fn deciding(inner: Arc<dyn Store>, decide: Decide) -> Self {
        Self {
            inner,
            writes: AtomicU64::new(0),
            decide,
        }
    }

    /// Writes so far, the failed one included.
    pub fn writes(&self) -> u64 {
        self.writes.load(Ordering::SeqCst)
    }

    async fn write<T>(
        &self,
        what: Write<'_>,
        call: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let n = self.writes.fetch_add(1, Ordering::SeqCst) + 1;
        let Some(mode) = (self.decide)(n, &what) else {
            return call.await;
        };
        if mode == FailMode::After {
            call.await?;
        }
        Err(StoreError::Other(format!("injected failure of write {n}")))
    }
}

#[async_trait]
impl Store for FailingStore {
    async fn append(
        &self,
        session: &SessionId,
        inputs: &[NewInput],
        cursor: Option<(&str, &Cursor)>,
    ) -> Result<u64, StoreError> {
        self.write(
            Write::Append {
                session,
                inputs,
                cursor,
            },
            self.inner.append(session, inputs, cursor),
        )
        .await
    }

    async fn read_log(
        &self,
        session: &SessionId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<LogRecord>, StoreError> {
        self.inner.read_log(session, after, limit).await
    }

    async fn save_snapshot(
        &self,
        session: &SessionId,
        snapshot: &StoredSnapshot,
    ) -> Result<(), StoreError> {
        self.write(
            Write::SaveSnapshot { session, snapshot },
            self.inner.save_snapshot(session, snapshot),
        )
        .await
    }

    async fn load_snapshot(
        &self,
        session: &SessionId,
    ) -> Result<Option<StoredSnapshot>, StoreError> {
        self.inner.load_snapshot(session).await
    }

    async fn enqueue(&self, session: &SessionId, effects: &[NewEffect]) -> Result<(), StoreError> {
        self.write(
            Write::Enqueue { session, effects },
            self.inner.enqueue(session, effects),
        )
        .await
    }

    async fn complete(
        &self,
        session: &SessionId,
        completion: &Completion,
    ) -> Result<bool, StoreError> {
        self.write(
            Write::Complete {
                session,
                completion,
            },
            self.inner.complete(session, completion),
        )
        .await
    }

    async fn pending(&self, session: &SessionId) -> Result<Vec<OutboxEntry>, StoreError> {
        self.inner.pending(session).await
    }

    async fn effect(&self, id: &EffectId) -> Result<Option<OutboxEntry>, StoreError> {
        self.inner.effect(id).await
    }

    async fn cursor(&self, session: &SessionId, name: &str) -> Result<Option<Cursor>, StoreError> {
        self.inner.cursor(session, name).await
    }

    async fn ledger(&self, session: &SessionId) -> Result<Vec<LedgerEntry>, StoreError> {
        self.inner.ledger(session).await
    }

    async fn put_meta(
        &self,
        session: &SessionId,
        key: &str,
        value: &str,
    ) -> Result<(), StoreError> {
        self.inner.put_meta(session, key, value).await
    }

    async fn meta(&self, session: &SessionId, key: &str) -> Result<Option<String>, StoreError> {
        self.inner.meta(session, key).await
    }

    async fn commit(&self, session: &SessionId, commit: &Commit) -> Result<u64, StoreError> {
        self.write(
            Write::Commit { session, commit },
            self.inner.commit(session, commit),
        )
        .await
    }

    async fn acquire_lease(
        &self,
        name: &str,
        owner: &str,
        now: Timestamp,
        ttl_ms: u64,
    ) -> Result<LeaseOutcome, StoreError> {
        self.inner.acquire_lease(name, owner, now, ttl_ms).await
    }

    async fn release_lease(&self, name: &str, owner: &str) -> Result<bool, StoreError> {
        self.inner.release_lease(name, owner).await
    }
}
