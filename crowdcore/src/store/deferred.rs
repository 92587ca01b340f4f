//! A write-behind view of a store for drivers whose platform dies with the process.
//!
//! Record-then-act makes every write wait for its commit before the platform hears of it. That
//! is what a real crowd needs, and what a simulated study does not: its marketplace lives in the
//! process and dies with it, and a resumed study re-runs the seeded world from the start,
//! checking it against what the store holds (`sim::run_durable`). What such a driver needs of
//! its store is only that a crash leaves a *prefix* of its history. [`Deferred`] gives exactly
//! that, at the cost of one transaction per [`Deferred::flush`] instead of one per write: it
//! holds writes in order, answers them from what it knows (the log's end, which effects are
//! pending), and hands them to the inner store in one [`Store::write_all`] — on `flush`, when it
//! holds its limit of writes ([`Deferred::with_limit`], 4 096 by default), and before any read that could see them.
//!
//! Never put it in front of a platform that outlives the process (MTurk, Toloka, Prolific, the
//! HTTP front's pages): there a crash would lose the record of calls the platform has carried
//! out.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use async_trait::async_trait;

use crate::model::{EffectId, SessionId, Timestamp};
use crate::platform::Cursor;

use super::{
    Commit, Completion, LeaseOutcome, LedgerEntry, LogRecord, NewEffect, NewInput, OutboxEntry,
    OutboxState, Store, StoreError, StoredSnapshot, Write,
};

/// Writes a [`Deferred`] holds before it flushes by itself.
const DEFAULT_LIMIT: usize = 4_096;

/// What a [`Deferred`] knows of an effect: whether it is still pending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Known {
    Pending,
    Finished,
}

#[derive(Debug, Default)]
struct Held {
    /// The writes not yet handed over, in order.
    writes: Vec<Write>,
    /// The log's end, counting held inputs, once learnt from the inner store.
    log_end: Option<u64>,
    /// What the inner store plus the held writes say of each effect this view has seen.
    effects: HashMap<EffectId, Known>,
    /// Whether `effects` covers the session's whole outbox: then an effect it does not name
    /// is not in the outbox.
    complete: bool,
    /// Effects new to the store whose enqueue is among `writes`, with that write's index: a
    /// completion of one becomes a [`Write::Record`] (one finished row instead of a pending row
    /// and its update).
    new_held: HashMap<EffectId, usize>,
}

impl Held {
    /// Forgets what the inner store holds, after a write this view did not follow.
    fn forget(&mut self) {
        self.log_end = None;
        self.effects.clear();
        self.complete = false;
        self.new_held.clear();
    }

    /// Takes the held writes, to hand them over.
    fn take(&mut self) -> Vec<Write> {
        self.new_held.clear();
        std::mem::take(&mut self.writes)
    }
}

/// A batch handed to the inner store and not yet answered.
type InFlight = Pin<Box<dyn Future<Output = Result<(), StoreError>> + Send>>;

/// A write-behind view of one session of a store, for drivers whose platform dies with the
/// process (the simulator): writes are held in order, answered from what the view knows, and
/// handed over many to a [`Store::write_all`], so that a crash leaves a prefix of them. Never in
/// front of a platform that outlives the process.
pub struct Deferred {
    inner: Arc<dyn Store>,
    session: SessionId,
    limit: usize,
    held: Mutex<Held>,
    /// The batch the view handed over when it filled up: the inner store writes it while the
    /// driver goes on, and the next hand-over or read waits for it first, so batches land in
    /// order and a failed one stops every later one.
    in_flight: Mutex<Option<InFlight>>,
}

impl Deferred {
    /// A view of `session` in `inner`. `fresh` says that `inner` holds nothing of the session
    /// yet (no log, no outbox), which spares a read for each new effect; with `false` the view
    /// asks `inner` about every effect it has not seen before holding its writes.
    pub fn new(inner: Arc<dyn Store>, session: SessionId, fresh: bool) -> Self {
        Self {
            inner,
            session,
            limit: DEFAULT_LIMIT,
            held: Mutex::new(Held {
                complete: fresh,
                ..Held::default()
            }),
            in_flight: Mutex::new(None),
        }
    }

    /// Flushes by itself once it holds `limit` writes (at least 1).
    pub fn with_limit(mut self, limit: usize) -> Self {
        self.limit = limit.max(1);
        self
    }

    /// Vouches that every effect of the session in the inner store has been seen through this
    /// view (written, or read with [`Store::effect`]): from now on an effect it has not seen is
    /// taken to be new, which spares a read for each. `sim::run_durable`'s catch-up calls it once
    /// the re-run is past the stored log's end.
    pub fn assume_seen_all(&self) {
        self.lock().complete = true;
    }

    /// How many writes are held.
    pub fn held(&self) -> usize {
        self.lock().writes.len()
    }

    fn lock(&self) -> MutexGuard<'_, Held> {
        // Every mutation below is completed before the guard drops or leaves `Held` as it was.
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn check(&self, session: &SessionId) -> Result<(), StoreError> {
        if *session == self.session {
            Ok(())
        } else {
            Err(StoreError::Other(format!(
                "a deferred view serves session {}, not {session}",
                self.session
            )))
        }
    }

    /// Hands every held write to the inner store, in order, in one [`Store::write_all`], and
    /// waits until it (and any batch before it) is written. On failure the writes are dropped
    /// and what the view knew is forgotten: the caller must stop (the store holds a prefix of
    /// what was written; a resumed run re-creates the rest).
    pub async fn flush(&self) -> Result<(), StoreError> {
        self.hand_over().await?;
        self.settle().await
    }

    /// Waits for the batch in flight, if any.
    async fn settle(&self) -> Result<(), StoreError> {
        let in_flight = self
            .in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        let Some(batch) = in_flight else {
            return Ok(());
        };
        let result = batch.await;
        if result.is_err() {
            self.lock().forget();
        }
        result
    }

    /// Hands the held writes over without waiting for them to be written: they go to the
    /// inner store at once (a store with a writer thread writes them while the caller goes on)
    /// and [`Self::settle`] collects the answer.
    async fn hand_over(&self) -> Result<(), StoreError> {
        self.settle().await?;
        let writes = self.lock().take();
        if writes.is_empty() {
            return Ok(());
        }
        let (inner, session) = (self.inner.clone(), self.session.clone());
        let mut batch: InFlight = Box::pin(async move { inner.write_all(&session, &writes).await });
        // One poll sends the batch; a store that answers at once is done here.
        match batch.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(result) => {
                if result.is_err() {
                    self.lock().forget();
                }
                result
            }
            Poll::Pending => {
                *self.in_flight.lock().unwrap_or_else(|e| e.into_inner()) = Some(batch);
                Ok(())
            }
        }
    }

    /// Holds `write`, handing the held writes over if the view is full.
    async fn hold(&self, write: Write) -> Result<(), StoreError> {
        let full = {
            let mut held = self.lock();
            held.writes.push(write);
            held.writes.len() >= self.limit
        };
        if full { self.hand_over().await } else { Ok(()) }
    }

    /// What the inner store plus the held writes say of `id`, asking the inner store if this
    /// view has not seen it.
    async fn known(&self, id: &EffectId) -> Result<Option<Known>, StoreError> {
        {
            let held = self.lock();
            if let Some(known) = held.effects.get(id) {
                return Ok(Some(*known));
            }
            if held.complete {
                return Ok(None);
            }
        }
        // Nothing held names it, so the inner store's answer is current.
        let known = self.inner.effect(id).await?.map(|e| match e.state {
            OutboxState::Pending => Known::Pending,
            _ => Known::Finished,
        });
        if let Some(known) = known {
            self.lock().effects.insert(id.clone(), known);
        }
        Ok(known)
    }
}

#[async_trait]
impl Store for Deferred {
    async fn append(
        &self,
        session: &SessionId,
        inputs: &[NewInput],
        cursor: Option<(&str, &Cursor)>,
    ) -> Result<u64, StoreError> {
        self.check(session)?;
        let end = {
            let mut held = self.lock();
            held.log_end.map(|end| {
                let end = end + inputs.len() as u64;
                held.log_end = Some(end);
                end
            })
        };
        match end {
            Some(end) => {
                {
                    // Appends in a row are one append: the store inserts their inputs together.
                    let mut held = self.lock();
                    if let Some(Write::Append {
                        inputs: last,
                        cursor: None,
                    }) = held.writes.last_mut()
                        && cursor.is_none()
                    {
                        last.extend_from_slice(inputs);
                        return Ok(end);
                    }
                }
                self.hold(Write::Append {
                    inputs: inputs.to_vec(),
                    cursor: cursor.map(|(name, c)| (name.to_owned(), c.clone())),
                })
                .await?;
                Ok(end)
            }
            None => {
                // The first append learns where the log ends.
                self.flush().await?;
                let end = self.inner.append(session, inputs, cursor).await?;
                self.lock().log_end = Some(end);
                Ok(end)
            }
        }
    }

    async fn read_log(
        &self,
        session: &SessionId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<LogRecord>, StoreError> {
        self.flush().await?;
        self.inner.read_log(session, after, limit).await
    }

    async fn save_snapshot(
        &self,
        session: &SessionId,
        snapshot: &StoredSnapshot,
    ) -> Result<(), StoreError> {
        self.check(session)?;
        let end = self.lock().log_end;
        match end {
            Some(end) if snapshot.seq > end => Err(StoreError::Other(format!(
                "snapshot at {} is past the log's end {end}",
                snapshot.seq
            ))),
            Some(_) => self.hold(Write::Snapshot(snapshot.clone())).await,
            None => {
                self.flush().await?;
                self.inner.save_snapshot(session, snapshot).await
            }
        }
    }

    async fn load_snapshot(
        &self,
        session: &SessionId,
    ) -> Result<Option<StoredSnapshot>, StoreError> {
        self.flush().await?;
        self.inner.load_snapshot(session).await
    }

    async fn enqueue(&self, session: &SessionId, effects: &[NewEffect]) -> Result<(), StoreError> {
        self.check(session)?;
        let mut new = Vec::new();
        let mut fresh = Vec::with_capacity(effects.len());
        for effect in effects {
            if self.lock().new_held.contains_key(&effect.id) {
                continue; // enqueued in this batch already
            }
            if self.known(&effect.id).await?.is_none() {
                new.push(effect.id.clone());
            }
            fresh.push(effect.clone());
        }
        // Enqueueing leaves an effect that is there as it is, so holding all of them is exact.
        let full = {
            let mut held = self.lock();
            let index = held.writes.len();
            for id in new {
                held.effects.insert(id.clone(), Known::Pending);
                held.new_held.insert(id, index);
            }
            held.writes.push(Write::Enqueue(fresh));
            held.writes.len() >= self.limit
        };
        if full { self.hand_over().await } else { Ok(()) }
    }

    async fn complete(
        &self,
        session: &SessionId,
        completion: &Completion,
    ) -> Result<bool, StoreError> {
        self.check(session)?;
        match self.known(&completion.id).await? {
            None => Err(StoreError::UnknownEffect(completion.id.clone())),
            Some(Known::Finished) => Ok(false),
            Some(Known::Pending) => {
                let (end, recorded) = {
                    let mut held = self.lock();
                    held.effects.insert(completion.id.clone(), Known::Finished);
                    held.log_end = held.log_end.map(|end| end + completion.inputs.len() as u64);
                    // Enqueued new in this batch: one finished row, written here.
                    let recorded = match (held.log_end, held.new_held.remove(&completion.id)) {
                        (Some(_), Some(index)) => match held.writes.get_mut(index) {
                            Some(Write::Enqueue(effects)) => effects
                                .iter()
                                .position(|e| e.id == completion.id)
                                .map(|at| effects.remove(at)),
                            _ => None,
                        },
                        _ => None,
                    };
                    let is_recorded = recorded.is_some();
                    if let Some(effect) = recorded {
                        held.writes.push(Write::Record {
                            effect,
                            completion: completion.clone(),
                        });
                    }
                    (held.log_end, is_recorded)
                };
                if recorded {
                    if self.held() >= self.limit {
                        self.hand_over().await?;
                    }
                    return Ok(true);
                }
                if end.is_none() && !completion.inputs.is_empty() {
                    // The log's end is not known: write through, so that the next append
                    // learns it.
                    self.flush().await?;
                    return self.inner.complete(session, completion).await;
                }
                self.hold(Write::Complete(completion.clone())).await?;
                Ok(true)
            }
        }
    }

    async fn pending(&self, session: &SessionId) -> Result<Vec<OutboxEntry>, StoreError> {
        self.flush().await?;
        self.inner.pending(session).await
    }

    async fn effect(&self, id: &EffectId) -> Result<Option<OutboxEntry>, StoreError> {
        // Only a held write about `id` could change the answer, and the view knows every effect
        // it holds a write about.
        let held = {
            let held = self.lock();
            held.effects.contains_key(id) && !held.writes.is_empty()
        };
        if held {
            self.flush().await?;
        }
        let entry = self.inner.effect(id).await?;
        if let Some(entry) = &entry {
            let known = match entry.state {
                OutboxState::Pending => Known::Pending,
                _ => Known::Finished,
            };
            self.lock().effects.insert(id.clone(), known);
        }
        Ok(entry)
    }

    async fn cursor(&self, session: &SessionId, name: &str) -> Result<Option<Cursor>, StoreError> {
        self.flush().await?;
        self.inner.cursor(session, name).await
    }

    async fn ledger(&self, session: &SessionId) -> Result<Vec<LedgerEntry>, StoreError> {
        self.flush().await?;
        self.inner.ledger(session).await
    }

    async fn put_meta(
        &self,
        session: &SessionId,
        key: &str,
        value: &str,
    ) -> Result<(), StoreError> {
        self.check(session)?;
        self.hold(Write::Meta {
            key: key.to_owned(),
            value: value.to_owned(),
        })
        .await
    }

    async fn meta(&self, session: &SessionId, key: &str) -> Result<Option<String>, StoreError> {
        self.flush().await?;
        self.inner.meta(session, key).await
    }

    async fn commit(&self, session: &SessionId, commit: &Commit) -> Result<u64, StoreError> {
        self.flush().await?;
        let end = self.inner.commit(session, commit).await?;
        let mut held = self.lock();
        held.log_end = Some(end);
        let added = commit.effects.iter().map(|e| (e, Known::Pending));
        for (e, known) in added.chain(commit.journal.iter().map(|e| (e, Known::Finished))) {
            if held.complete {
                // An effect already there keeps its state.
                held.effects.entry(e.id.clone()).or_insert(known);
            } else {
                // Whether it was there before is not known: ask when it matters.
                held.effects.remove(&e.id);
            }
        }
        Ok(end)
    }

    async fn write_all(&self, session: &SessionId, writes: &[Write]) -> Result<(), StoreError> {
        self.flush().await?;
        self.inner.write_all(session, writes).await?;
        // What those writes did is not tracked here: learn it again.
        self.lock().forget();
        Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{FailMode, FailingStore, MemoryStore};

    fn input(at: u64, body: &str) -> NewInput {
        NewInput {
            at: Timestamp::from_millis(at),
            body: body.to_owned(),
        }
    }

    fn effect(session: &SessionId, seq: u64) -> NewEffect {
        NewEffect {
            id: EffectId::new(session.clone(), seq),
            body: format!("effect {seq}"),
        }
    }

    fn done(id: &EffectId, inputs: Vec<NewInput>) -> Completion {
        Completion {
            id: id.clone(),
            state: OutboxState::Done {
                result: "ok".into(),
            },
            ledger: Vec::new(),
            inputs,
        }
    }

    fn bodies(log: &[LogRecord]) -> Vec<&str> {
        log.iter().map(|r| r.body.as_str()).collect()
    }

    /// The engine's write pattern: an input, its effect, the effect's completion feeding an
    /// input back.
    async fn step(view: &Deferred, s: &SessionId, n: u64) -> u64 {
        let at = view.append(s, &[input(n, &format!("in {n}"))], None).await;
        let e = effect(s, n);
        view.enqueue(s, std::slice::from_ref(&e)).await.unwrap();
        let fed = vec![input(n, &format!("fed {n}"))];
        assert!(view.complete(s, &done(&e.id, fed)).await.unwrap());
        at.unwrap()
    }

    #[tokio::test]
    async fn writes_are_held_answered_as_the_store_would_and_land_in_order() {
        let inner = Arc::new(MemoryStore::new());
        let s = SessionId::new("s");
        let view = Deferred::new(inner.clone(), s.clone(), true);
        assert_eq!(
            step(&view, &s, 1).await,
            1,
            "the first append writes through"
        );
        assert_eq!(
            step(&view, &s, 2).await,
            3,
            "held appends count the fed input"
        );
        assert_eq!(step(&view, &s, 3).await, 5);
        assert!(view.held() > 0);
        assert_eq!(
            inner.read_log(&s, 0, 100).await.unwrap().len(),
            1,
            "held writes are not in the store yet"
        );
        let e3 = effect(&s, 3).id;
        assert!(
            !view.complete(&s, &done(&e3, Vec::new())).await.unwrap(),
            "completing again is not fresh, as the store would answer"
        );
        // A read sees everything written before it.
        let log = view.read_log(&s, 0, 100).await.unwrap();
        assert_eq!(
            bodies(&log),
            ["in 1", "fed 1", "in 2", "fed 2", "in 3", "fed 3"]
        );
        assert_eq!(view.held(), 0);
        assert!(inner.pending(&s).await.unwrap().is_empty());
        assert!(matches!(
            view.complete(&s, &done(&effect(&s, 9).id, Vec::new()))
                .await,
            Err(StoreError::UnknownEffect(_))
        ));
    }

    #[tokio::test]
    async fn a_full_view_hands_its_writes_over_by_itself() {
        let inner = Arc::new(MemoryStore::new());
        let s = SessionId::new("s");
        let view = Deferred::new(inner.clone(), s.clone(), true).with_limit(4);
        for n in 1..=10 {
            step(&view, &s, n).await;
            assert!(view.held() < 4);
        }
        let stored = inner.read_log(&s, 0, 100).await.unwrap().len();
        assert!(stored >= 14, "most of the log is in the store: {stored}");
    }

    #[tokio::test]
    async fn a_failed_hand_over_leaves_a_prefix_of_the_writes() {
        let memory = Arc::new(MemoryStore::new());
        let s = SessionId::new("s");
        // The write_all default runs writes one by one: the 5th of them fails.
        let inner = Arc::new(FailingStore::new(memory.clone(), Some(5), FailMode::Before));
        let view = Deferred::new(inner, s.clone(), true);
        step(&view, &s, 1).await; // writes 1-3, through and held
        for n in 2..=4 {
            step(&view, &s, n).await;
        }
        assert!(view.flush().await.is_err());
        let log = memory.read_log(&s, 0, 100).await.unwrap();
        let seqs: Vec<u64> = log.iter().map(|r| r.seq).collect();
        assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>(), "no gap");
        assert!(
            seqs.len() < 8,
            "the failed write and those after it are not there"
        );
    }

    #[tokio::test]
    async fn a_view_of_a_store_with_history_asks_about_effects_it_has_not_seen() {
        let inner = Arc::new(MemoryStore::new());
        let s = SessionId::new("s");
        let e = effect(&s, 1);
        inner.append(&s, &[input(1, "in")], None).await.unwrap();
        inner.enqueue(&s, std::slice::from_ref(&e)).await.unwrap();
        inner.complete(&s, &done(&e.id, Vec::new())).await.unwrap();
        let view = Deferred::new(inner.clone(), s.clone(), false);
        view.enqueue(&s, std::slice::from_ref(&e)).await.unwrap();
        assert!(
            !view.complete(&s, &done(&e.id, Vec::new())).await.unwrap(),
            "the store finished it before this view existed"
        );
        view.flush().await.unwrap();
        assert_eq!(inner.read_log(&s, 0, 10).await.unwrap().len(), 1);
    }
}
