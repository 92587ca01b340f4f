//! An in-memory [`Store`]: the test double that ships in core, and the store of choice for
//! runs that need no durability (simulations, tests).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;

use super::{
    Completion, LedgerEntry, LogRecord, NewEffect, NewInput, OutboxEntry, OutboxState, Store,
    StoreError, StoredSnapshot,
};
use crate::model::{EffectId, SessionId};
use crate::platform::Cursor;

/// A [`Store`] in memory. Clones share the same data, so a test can drop an engine and start
/// another on the same store, as if the process had restarted with its database intact.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    inner: Arc<Mutex<HashMap<SessionId, Session>>>,
}

#[derive(Debug, Default)]
struct Session {
    log: Vec<LogRecord>,
    snapshot: Option<StoredSnapshot>,
    outbox: BTreeMap<u64, OutboxEntry>,
    cursors: HashMap<String, Cursor>,
    ledger: Vec<LedgerEntry>,
    meta: HashMap<String, String>,
}

impl Session {
    fn push_inputs(&mut self, inputs: &[NewInput]) -> u64 {
        for input in inputs {
            let seq = self.log.len() as u64 + 1;
            self.log.push(LogRecord {
                seq,
                at: input.at,
                body: input.body.clone(),
            });
        }
        self.log.len() as u64
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<SessionId, Session>> {
        // A panic while holding the lock leaves the data as consistent as the last completed
        // call (every call mutates only after validating), so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn with<T>(&self, session: &SessionId, f: impl FnOnce(&mut Session) -> T) -> T {
        f(self.lock().entry(session.clone()).or_default())
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn append(
        &self,
        session: &SessionId,
        inputs: &[NewInput],
        cursor: Option<(&str, &Cursor)>,
    ) -> Result<u64, StoreError> {
        Ok(self.with(session, |s| {
            if let Some((name, c)) = cursor {
                s.cursors.insert(name.to_owned(), c.clone());
            }
            s.push_inputs(inputs)
        }))
    }

    async fn read_log(
        &self,
        session: &SessionId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<LogRecord>, StoreError> {
        Ok(self.with(session, |s| {
            s.log
                .iter()
                .skip(usize::try_from(after).unwrap_or(usize::MAX))
                .take(limit)
                .cloned()
                .collect()
        }))
    }

    async fn save_snapshot(
        &self,
        session: &SessionId,
        snapshot: &StoredSnapshot,
    ) -> Result<(), StoreError> {
        self.with(session, |s| {
            if snapshot.seq > s.log.len() as u64 {
                return Err(StoreError::Other(format!(
                    "snapshot at {} is past the log's end {}",
                    snapshot.seq,
                    s.log.len()
                )));
            }
            s.snapshot = Some(snapshot.clone());
            Ok(())
        })
    }

    async fn load_snapshot(
        &self,
        session: &SessionId,
    ) -> Result<Option<StoredSnapshot>, StoreError> {
        Ok(self.with(session, |s| s.snapshot.clone()))
    }

    async fn enqueue(&self, session: &SessionId, effects: &[NewEffect]) -> Result<(), StoreError> {
        self.with(session, |s| {
            for e in effects {
                s.outbox.entry(e.id.seq).or_insert_with(|| OutboxEntry {
                    id: e.id.clone(),
                    body: e.body.clone(),
                    state: OutboxState::Pending,
                });
            }
        });
        Ok(())
    }

    async fn complete(
        &self,
        session: &SessionId,
        completion: &Completion,
    ) -> Result<bool, StoreError> {
        self.with(session, |s| {
            let entry = s
                .outbox
                .get_mut(&completion.id.seq)
                .filter(|e| e.id == completion.id)
                .ok_or_else(|| StoreError::UnknownEffect(completion.id.clone()))?;
            if entry.state != OutboxState::Pending {
                return Ok(false);
            }
            entry.state = completion.state.clone();
            s.ledger.extend(completion.ledger.iter().cloned());
            s.push_inputs(&completion.inputs);
            Ok(true)
        })
    }

    async fn pending(&self, session: &SessionId) -> Result<Vec<OutboxEntry>, StoreError> {
        Ok(self.with(session, |s| {
            s.outbox
                .values()
                .filter(|e| e.state == OutboxState::Pending)
                .cloned()
                .collect()
        }))
    }

    async fn effect(&self, id: &EffectId) -> Result<Option<OutboxEntry>, StoreError> {
        Ok(self.with(&id.session, |s| {
            s.outbox.get(&id.seq).filter(|e| e.id == *id).cloned()
        }))
    }

    async fn cursor(&self, session: &SessionId, name: &str) -> Result<Option<Cursor>, StoreError> {
        Ok(self.with(session, |s| s.cursors.get(name).cloned()))
    }

    async fn ledger(&self, session: &SessionId) -> Result<Vec<LedgerEntry>, StoreError> {
        Ok(self.with(session, |s| s.ledger.clone()))
    }

    async fn put_meta(
        &self,
        session: &SessionId,
        key: &str,
        value: &str,
    ) -> Result<(), StoreError> {
        self.with(session, |s| s.meta.insert(key.to_owned(), value.to_owned()));
        Ok(())
    }

    async fn meta(&self, session: &SessionId, key: &str) -> Result<Option<String>, StoreError> {
        Ok(self.with(session, |s| s.meta.get(key).cloned()))
    }
}
