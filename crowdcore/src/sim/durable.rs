//! Simulations on a durable store that can be stopped at any moment (a crash, a kill) and
//! resumed where they stopped.
//!
//! The engine's side of a study — its input log, outbox and ledger — is in the store. The
//! simulated world — the crowd and the local marketplace — lives in the process and dies with
//! it. It is rebuilt, on resume, by re-running the seeded simulation from the start against a
//! [`CatchUp`] view of the store: every input and every completed effect the run produces is
//! checked against what the store already holds instead of being written again (a mismatch is
//! an error: the run diverged). Once past the end of the stored log, writes go through, and the
//! study continues. Because the simulation is deterministic, the resumed study ends exactly as an
//! uninterrupted one would: same ledger, same report.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use crate::model::{EffectId, SessionId};
use crate::platform::Cursor;
use crate::store::{
    Completion, Deferred, LedgerEntry, LogRecord, NewEffect, NewInput, OutboxEntry, OutboxState,
    Store, StoreError, StoredSnapshot,
};

/// A view of a store for a re-run of a study it already holds part of. See the module docs.
pub(crate) struct CatchUp {
    durable: Arc<Deferred>,
    session: SessionId,
    /// The session's log as it was when the run resumed.
    stored: Vec<LogRecord>,
    /// The sequence number the engine writes next.
    next: Mutex<u64>,
}

impl CatchUp {
    /// A view of `durable` for re-running `session`, whose stored log is `stored`.
    pub(crate) fn new(durable: Arc<Deferred>, session: SessionId, stored: Vec<LogRecord>) -> Self {
        Self {
            durable,
            session,
            stored,
            next: Mutex::new(1),
        }
    }

    fn replayed(&self) -> u64 {
        self.stored.len() as u64
    }

    /// Checks `inputs` against the stored log from the next position on; returns the ones past
    /// its end, which must be written.
    fn check(&self, inputs: &[NewInput]) -> Result<Vec<NewInput>, StoreError> {
        let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
        let mut fresh = Vec::new();
        for input in inputs {
            match self
                .stored
                .get(usize::try_from(*next - 1).unwrap_or(usize::MAX))
            {
                Some(old) if old.at == input.at && old.body == input.body => {}
                Some(old) => {
                    return Err(StoreError::Corrupt(format!(
                        "the resumed run diverged at log entry {}: stored {} at {}, produced {} at {}",
                        old.seq, old.body, old.at, input.body, input.at
                    )));
                }
                None => fresh.push(input.clone()),
            }
            *next += 1;
        }
        Ok(fresh)
    }

    /// Whether the re-run has written an input the stored log does not hold. The store holds a
    /// prefix of the first run's writes (each write is atomic, or a [`Deferred`] batch hands
    /// them over in order), and every enqueue and completion from here on comes after that
    /// input in the first run's order too: none of them can be in the store, so they need no
    /// check against it.
    ///
    /// [`Deferred`]: crate::store::Deferred
    fn past_the_end(&self) -> bool {
        let past = self.position() > self.replayed();
        if past {
            // Every effect the re-run made before this point was looked up through the view.
            self.durable.assume_seen_all();
        }
        past
    }

    fn position(&self) -> u64 {
        *self.next.lock().unwrap_or_else(|e| e.into_inner()) - 1
    }
}

fn other_session(session: &SessionId) -> StoreError {
    StoreError::Other(format!("a catch-up view serves one session, not {session}"))
}

#[async_trait]
impl Store for CatchUp {
    async fn append(
        &self,
        session: &SessionId,
        inputs: &[NewInput],
        cursor: Option<(&str, &Cursor)>,
    ) -> Result<u64, StoreError> {
        if *session != self.session {
            return Err(other_session(session));
        }
        let fresh = self.check(inputs)?;
        let position = self.position();
        if position > self.replayed() {
            let end = self.durable.append(session, &fresh, cursor).await?;
            if end != position {
                return Err(StoreError::Corrupt(format!(
                    "the store's log ends at {end}, the resumed run at {position}"
                )));
            }
        }
        Ok(position)
    }

    async fn read_log(
        &self,
        _: &SessionId,
        _: u64,
        _: usize,
    ) -> Result<Vec<LogRecord>, StoreError> {
        Ok(Vec::new()) // the re-run starts from nothing
    }

    async fn save_snapshot(
        &self,
        session: &SessionId,
        snapshot: &StoredSnapshot,
    ) -> Result<(), StoreError> {
        if snapshot.seq > self.replayed() {
            self.durable.save_snapshot(session, snapshot).await?;
        }
        Ok(())
    }

    async fn load_snapshot(&self, _: &SessionId) -> Result<Option<StoredSnapshot>, StoreError> {
        Ok(None)
    }

    async fn enqueue(&self, session: &SessionId, effects: &[NewEffect]) -> Result<(), StoreError> {
        if self.past_the_end() {
            return self.durable.enqueue(session, effects).await;
        }
        // An effect the store already has must be the very same effect: a re-run that decides
        // differently (other pay, another count) is a divergence, not a resume.
        let mut fresh = Vec::new();
        for effect in effects {
            match self.durable.effect(&effect.id).await? {
                Some(stored) if stored.body != effect.body => {
                    return Err(StoreError::Corrupt(format!(
                        "the resumed run diverged at effect {}: stored {}, produced {}",
                        effect.id, stored.body, effect.body
                    )));
                }
                // The store has it, in whatever state: enqueueing again would leave it as it is.
                Some(_) => {}
                None => fresh.push(effect.clone()),
            }
        }
        self.durable.enqueue(session, &fresh).await
    }

    async fn complete(
        &self,
        session: &SessionId,
        completion: &Completion,
    ) -> Result<bool, StoreError> {
        if self.past_the_end() {
            let done = self.durable.complete(session, completion).await?;
            let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
            *next += completion.inputs.len() as u64;
            return Ok(done);
        }
        match self.durable.effect(&completion.id).await? {
            Some(OutboxEntry { state, .. }) if state != OutboxState::Pending => {
                if state != completion.state {
                    return Err(StoreError::Corrupt(format!(
                        "the resumed run diverged at effect {}: stored {state:?}, produced {:?}",
                        completion.id, completion.state
                    )));
                }
                // Done before the stop: its inputs are in the stored log. Check them, and tell
                // the re-run engine to apply them, as the first run's engine did.
                let fresh = self.check(&completion.inputs)?;
                if !fresh.is_empty() {
                    return Err(StoreError::Corrupt(format!(
                        "effect {} is done but its inputs are not all in the log",
                        completion.id
                    )));
                }
                Ok(true)
            }
            _ => {
                if self.position() < self.replayed() {
                    return Err(StoreError::Corrupt(format!(
                        "the resumed run completed effect {} at log position {}, before the \
                         stored log's end {}",
                        completion.id,
                        self.position(),
                        self.replayed()
                    )));
                }
                let done = self.durable.complete(session, completion).await?;
                let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
                *next += completion.inputs.len() as u64;
                Ok(done)
            }
        }
    }

    async fn pending(&self, _: &SessionId) -> Result<Vec<OutboxEntry>, StoreError> {
        Ok(Vec::new())
    }

    async fn effect(&self, id: &EffectId) -> Result<Option<OutboxEntry>, StoreError> {
        self.durable.effect(id).await
    }

    async fn cursor(&self, _: &SessionId, _: &str) -> Result<Option<Cursor>, StoreError> {
        Ok(None)
    }

    async fn ledger(&self, session: &SessionId) -> Result<Vec<LedgerEntry>, StoreError> {
        self.durable.ledger(session).await
    }

    async fn put_meta(
        &self,
        session: &SessionId,
        key: &str,
        value: &str,
    ) -> Result<(), StoreError> {
        self.durable.put_meta(session, key, value).await
    }

    async fn meta(&self, session: &SessionId, key: &str) -> Result<Option<String>, StoreError> {
        self.durable.meta(session, key).await
    }
}
