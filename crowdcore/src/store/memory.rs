//! An in-memory [`Store`]: the test double that ships in core, and the store of choice for
//! runs that need no durability (simulations, tests).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;

use super::{
    Commit, Completion, JOURNAL_RESULT, LeaseOutcome, LedgerEntry, LogRecord, NewEffect, NewInput,
    OutboxEntry, OutboxState, Store, StoreError, StoredSnapshot,
};
use crate::model::{EffectId, SessionId, Timestamp};
use crate::platform::Cursor;

/// A [`Store`] in memory. Clones share the same data, so a test can drop an engine and start
/// another on the same store, as if the process had restarted with its database intact.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    inner: Arc<Mutex<HashMap<SessionId, Session>>>,
    leases: Arc<Mutex<HashMap<String, (String, Timestamp)>>>,
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

    fn insert_effects(&mut self, effects: &[NewEffect], state: &OutboxState) {
        for e in effects {
            self.outbox.entry(e.id.seq).or_insert_with(|| OutboxEntry {
                id: e.id.clone(),
                body: e.body.clone(),
                state: state.clone(),
            });
        }
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
            s.insert_effects(effects, &OutboxState::Pending)
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

    async fn commit(&self, session: &SessionId, commit: &Commit) -> Result<u64, StoreError> {
        self.with(session, |s| {
            let end = s.log.len() as u64 + commit.inputs.len() as u64;
            if let Some(snapshot) = &commit.snapshot
                && snapshot.seq > end
            {
                return Err(StoreError::Other(format!(
                    "snapshot at {} is past the log's end {end}",
                    snapshot.seq
                )));
            }
            let seq = s.push_inputs(&commit.inputs);
            for (name, c) in &commit.cursors {
                s.cursors.insert(name.clone(), c.clone());
            }
            s.insert_effects(&commit.effects, &OutboxState::Pending);
            s.insert_effects(
                &commit.journal,
                &OutboxState::Done {
                    result: JOURNAL_RESULT.into(),
                },
            );
            if let Some(snapshot) = &commit.snapshot {
                s.snapshot = Some(snapshot.clone());
            }
            Ok(seq)
        })
    }

    async fn acquire_lease(
        &self,
        name: &str,
        owner: &str,
        now: Timestamp,
        ttl_ms: u64,
    ) -> Result<LeaseOutcome, StoreError> {
        // Poisoning: every write below is a single insert, so the map is always whole.
        let mut leases = self.leases.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((holder, expires)) = leases.get(name)
            && holder != owner
            && *expires > now
        {
            return Ok(LeaseOutcome::Held {
                owner: holder.clone(),
                expires: *expires,
            });
        }
        let expires = now.plus_millis(ttl_ms);
        leases.insert(name.to_owned(), (owner.to_owned(), expires));
        Ok(LeaseOutcome::Acquired { expires })
    }

    async fn release_lease(&self, name: &str, owner: &str) -> Result<bool, StoreError> {
        let mut leases = self.leases.lock().unwrap_or_else(|e| e.into_inner());
        if leases.get(name).is_some_and(|(holder, _)| holder == owner) {
            leases.remove(name);
            return Ok(true);
        }
        Ok(false)
    }
}
