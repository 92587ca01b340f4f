//! The engine: drives a pure machine — a [`Pavilion`] or a
//! [`Retainer`](crate::retainer::Retainer), anything that is a [`Machine`] — durably against a
//! [`Platform`] and a [`Store`].
//!
//! # Record, then act
//!
//! - Every input is appended to the store's log **before** the machine sees it.
//! - Every effect that touches the platform goes to the outbox **before** the platform call,
//!   and the call carries the effect's id as its idempotency key.
//! - The result is recorded after, atomically with the ledger entries it makes and the inputs
//!   it feeds back (a hire's posted HIT becomes [`Input::HirePosted`]).
//! - Observer cursors advance in the same write as the inputs they produced.
//!
//! A crash anywhere is therefore harmless: [`EngineBuilder::start`] loads the snapshot, replays
//! the log (the machine is deterministic, so it arrives at the same state and regenerates the
//! same effects with the same ids), and re-sends every pending effect with its original key;
//! the platform recognises the key and does nothing twice.
//!
//! # Driving
//!
//! The engine is a plain struct with async methods: a simulation drives it directly on a
//! [`VirtualClock`](crate::clock::VirtualClock), calling [`Engine::advance`] at
//! [`Engine::next_wakeup`]; a server wraps it in [`Engine::spawn`], which runs that loop in real
//! time and takes calls through an [`EngineHandle`].

mod calls;
mod machine;

use std::collections::VecDeque;
use std::sync::Arc;

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::clock::{Clock, SystemClock};
use crate::model::{AssignmentId, EffectId, HitId, HitSpec, SessionId, Timestamp, WorkerId};
use crate::pavilion::{
    ConfigError, Input, Pavilion, PavilionConfig, PayKind, Rejected, RestoreError, Targets,
};
use crate::platform::{
    AssignmentUpdate, Cursor, FNV_OFFSET, IdempotencyKey, Page, Platform, PlatformError, fnv1a,
};

use crate::store::{
    Completion, LedgerEntry, NewEffect, NewInput, OutboxState, Store, StoreError, StoredSnapshot,
};
use calls::limited;
pub use calls::{CallLimiter, CallPolicy};
pub use machine::{
    Action, DEFAULT_SUBMIT_WINDOW_MS, Driving, Machine, MachineConfig, RetainerEngineConfig,
};

/// The name of the engine's assignment observer cursor in the store.
pub const ASSIGNMENT_CURSOR: &str = "assignments";
const CONFIG_KEY: &str = "engine_config";
/// The error code of an approval refused because the worker has not submitted yet (the
/// platform holds the assignment as accepted): retried until the worker can no longer submit.
pub const NOT_SUBMITTED: &str = "NotSubmitted";

/// A payment the engine could not make, and why: its ledger entry (`paid: false`) and the
/// platform's reason. [`Engine::owed`] lists them, for the host's status page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Owed {
    /// The ledger entry, unpaid.
    pub entry: LedgerEntry,
    /// Why it was not paid.
    pub reason: String,
}

/// How the engine retries platform calls that failed with a retryable error: capped
/// exponential backoff with full jitter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryPolicy {
    /// The first delay, in milliseconds.
    pub base_ms: u64,
    /// The longest delay, in milliseconds.
    pub max_ms: u64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            base_ms: 500,
            max_ms: 60_000,
        }
    }
}

impl RetryPolicy {
    /// The delay before attempt `attempt + 1` (the first retry is `attempt = 1`), given a
    /// uniform draw `unit` in `[0, 1)`: at least half the capped exponential, at most all of it.
    pub fn delay_ms(&self, attempt: u32, unit: f64) -> u64 {
        let exp = self
            .base_ms
            .saturating_mul(1u64 << attempt.saturating_sub(1).min(30))
            .min(self.max_ms);
        let half = exp / 2;
        // Jitter only spreads retries in time; money and ids never depend on it.
        half + (half as f64 * unit.clamp(0.0, 1.0)) as u64
    }
}

/// Everything an engine needs besides its platform, store and clock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineConfig {
    /// The HIT posted when the machine hires.
    pub spec: HitSpec,
    /// The queue machine's configuration.
    pub pavilion: PavilionConfig,
    /// Retries of retryable platform errors.
    #[serde(default)]
    pub retry: RetryPolicy,
    /// How a spawned engine makes platform calls.
    #[serde(default)]
    pub calls: CallPolicy,
    /// How often to poll the platform for assignment updates, in milliseconds (ignored by
    /// platforms that push).
    pub observe_every_ms: u64,
    /// Save a snapshot every this many inputs (0: never).
    pub snapshot_every: u64,
}

impl EngineConfig {
    /// A configuration with default retry, call, observe and snapshot settings.
    pub fn new(spec: HitSpec, pavilion: PavilionConfig) -> Self {
        Self {
            spec,
            pavilion,
            retry: RetryPolicy::default(),
            calls: CallPolicy::default(),
            observe_every_ms: 10_000,
            snapshot_every: 1_000,
        }
    }
}

/// Why an engine call failed. `R` is the machine's rejection type ([`Machine::Rejected`]).
#[derive(Debug, thiserror::Error)]
pub enum EngineError<R = Rejected> {
    /// The machine refused the input; its state is unchanged (the input is in the log, where
    /// a replay refuses it again).
    #[error("rejected: {0}")]
    Rejected(R),
    /// The store failed. The machine may have moved past what the store holds, so the engine
    /// refuses every later call ([`EngineError::Stopped`]): start a new one with
    /// [`EngineBuilder::start`], which recovers from what the store does hold.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The configuration is invalid.
    #[error("bad configuration: {0}")]
    Config(#[source] ConfigProblem),
    /// The store holds this session with a different configuration.
    #[error("the store holds session {0} with a different configuration")]
    ConfigChanged(SessionId),
    /// The store's contents cannot be read back.
    #[error("cannot recover the session: {0}")]
    Recovery(#[source] RecoveryError),
    /// The engine task has stopped.
    #[error("the engine has stopped")]
    Stopped,
}

impl From<Rejected> for EngineError {
    fn from(e: Rejected) -> Self {
        EngineError::Rejected(e)
    }
}

impl From<crate::retainer::Rejected> for EngineError<crate::retainer::Rejected> {
    fn from(e: crate::retainer::Rejected) -> Self {
        EngineError::Rejected(e)
    }
}

/// Why an engine's configuration was refused ([`EngineError::Config`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigProblem {
    /// The HIT spec is invalid.
    #[error(transparent)]
    Spec(#[from] crate::model::SpecError),
    /// The machine's configuration is invalid (the Pavilion's, or a retainer's, whose pools
    /// are Pavilions).
    #[error(transparent)]
    Machine(#[from] ConfigError),
    /// The HIT's reward and the base pay differ: they are one payment.
    #[error(
        "the HIT's reward ({reward}) and the base pay ({base_pay}) are one payment and must be \
         equal: set base_pay_cents to {} and currency to {} (or change the reward)",
        reward.minor,
        reward.currency
    )]
    RewardIsNotBasePay {
        /// The spec's reward.
        reward: crate::model::Money,
        /// The machine's base pay.
        base_pay: crate::model::Money,
    },
}

/// Why a session could not be recovered from its store ([`EngineError::Recovery`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecoveryError {
    /// The snapshot is not the machine's snapshot.
    #[error("snapshot: {0}")]
    Snapshot(#[source] serde_json::Error),
    /// The log skips entries.
    #[error("log jumps from {after} to {next}")]
    LogGap {
        /// The last entry read.
        after: u64,
        /// The entry after it.
        next: u64,
    },
    /// A log entry is not one of the machine's inputs.
    #[error("log entry {seq}: {source}")]
    LogEntry {
        /// The entry.
        seq: u64,
        /// Why it does not parse.
        source: serde_json::Error,
    },
    /// A pending outbox entry is not one of the machine's effects.
    #[error("outbox entry {id}: {source}")]
    OutboxEntry {
        /// The effect.
        id: EffectId,
        /// Why it does not parse.
        source: serde_json::Error,
    },
    /// The Pavilion refused its snapshot.
    #[error(transparent)]
    Pavilion(#[from] RestoreError),
    /// The retainer refused its snapshot.
    #[error(transparent)]
    Retainer(#[from] crate::retainer::RestoreError),
}

impl<R> From<ConfigError> for EngineError<R> {
    fn from(e: ConfigError) -> Self {
        EngineError::Config(e.into())
    }
}

impl<R> From<ConfigProblem> for EngineError<R> {
    fn from(e: ConfigProblem) -> Self {
        EngineError::Config(e)
    }
}

impl<R> From<RecoveryError> for EngineError<R> {
    fn from(e: RecoveryError) -> Self {
        EngineError::Recovery(e)
    }
}

impl<R> From<RestoreError> for EngineError<R> {
    fn from(e: RestoreError) -> Self {
        EngineError::Recovery(e.into())
    }
}

/// Something that happened, for UIs and worker pages: every effect as the machine produced it
/// (live inputs only, not during recovery), and inputs it refused.
/// `E` and `I` are the machine's effect and input types.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum EngineEvent<E = crate::pavilion::Effect, I = Input> {
    /// The machine produced an effect.
    Effect(E),
    /// The machine refused an input.
    Rejected {
        /// The input.
        input: I,
        /// Why.
        reason: String,
    },
    /// A platform call failed for good.
    EffectFailed {
        /// The effect.
        effect: E,
        /// The platform's error.
        error: String,
    },
}

/// Builds and starts an [`Engine`].
pub struct EngineBuilder<M: Machine = Pavilion> {
    platform: Arc<dyn Platform>,
    store: Arc<dyn Store>,
    config: M::Config,
    clock: Arc<dyn Clock>,
    session: Option<SessionId>,
    limiter: Option<CallLimiter>,
}

impl<M: Machine> EngineBuilder<M> {
    /// An engine on `platform` and `store` with `config`, the system clock and a new session.
    /// The machine is the one `config` configures: an [`EngineConfig`] drives a [`Pavilion`],
    /// a [`RetainerEngineConfig`] a [`Retainer`](crate::retainer::Retainer).
    pub fn new<C>(platform: Arc<dyn Platform>, store: Arc<dyn Store>, config: C) -> Self
    where
        C: MachineConfig<Machine = M>,
    {
        Self {
            platform,
            store,
            config: config.into_config(),
            clock: Arc::new(SystemClock),
            session: None,
            limiter: None,
        }
    }

    /// Uses `clock` instead of the system clock.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Starts this engine's platform calls through `limiter` (shared with the other engines
    /// it was given to: sessions on one platform account share one rate limit) instead of the
    /// bucket [`CallPolicy::per_second`] asks for.
    pub fn limiter(mut self, limiter: CallLimiter) -> Self {
        self.limiter = Some(limiter);
        self
    }

    /// Runs (or resumes) this session instead of minting a new one.
    pub fn session(mut self, session: SessionId) -> Self {
        self.session = Some(session);
        self
    }

    /// Starts the engine, recovering the session if the store holds it: loads the snapshot,
    /// replays the log, re-queues every pending effect with its original id, and picks up the
    /// observer cursor. Pending effects are carried out by the next [`Engine::advance`].
    pub async fn start(self) -> Result<Engine<M>, EngineError<M::Rejected>> {
        let EngineBuilder {
            platform,
            store,
            mut config,
            clock,
            session,
            limiter,
        } = self;
        let capabilities = platform.capabilities();
        M::prepare(&mut config, &capabilities)?;
        // A platform that pushes assignment updates is not polled for them.
        let pushed = capabilities.push_notifications;
        let session = session.unwrap_or_else(SessionId::new_v7);
        let config_json = to_json(&config);
        match store.meta(&session, CONFIG_KEY).await? {
            Some(stored) if stored != config_json => {
                return Err(EngineError::ConfigChanged(session));
            }
            Some(_) => {}
            None => store.put_meta(&session, CONFIG_KEY, &config_json).await?,
        }

        let (mut machine, mut seq) = match store.load_snapshot(&session).await? {
            Some(s) => {
                let snap: M::Snapshot =
                    serde_json::from_str(&s.body).map_err(RecoveryError::Snapshot)?;
                (M::restore(snap)?, s.seq)
            }
            None => (M::create(session.clone(), &config)?, 0),
        };
        let mut regenerated = Vec::new();
        loop {
            let page = store.read_log(&session, seq, 4096).await?;
            if page.is_empty() {
                break;
            }
            for record in page {
                if record.seq != seq + 1 {
                    return Err(RecoveryError::LogGap {
                        after: seq,
                        next: record.seq,
                    }
                    .into());
                }
                seq = record.seq;
                let input: M::Input = serde_json::from_str(&record.body)
                    .map_err(|source| RecoveryError::LogEntry { seq, source })?;
                // A refused input was refused the first time too: same state either way.
                let _ = machine.handle(record.at, input);
                while let Some(effect) = machine.poll_effect() {
                    if machine.action(&config, &effect).journaled() {
                        regenerated.push(effect);
                    }
                }
            }
        }
        // Effects whose input was logged but which never reached the outbox (a crash between
        // the two writes). The outbox keeps any it already has as they are.
        if !regenerated.is_empty() {
            let new: Vec<NewEffect> = regenerated.iter().map(new_effect::<M>).collect();
            store.enqueue(&session, &new).await?;
        }
        let now = clock.now();
        let mut ready = VecDeque::new();
        for entry in store.pending(&session).await? {
            let effect: M::Effect =
                serde_json::from_str(&entry.body).map_err(|source| RecoveryError::OutboxEntry {
                    id: entry.id.clone(),
                    source,
                })?;
            ready.push_back(Pending {
                effect,
                attempts: 0,
                due: now,
                submit_by: None,
            });
        }
        let cursor = store.cursor(&session, ASSIGNMENT_CURSOR).await?;
        // What earlier runs could not pay, and why (the outbox keeps the platform's reason).
        let mut owed = Vec::new();
        for entry in store.ledger(&session).await? {
            if entry.paid {
                continue;
            }
            let reason = match store.effect(&entry.effect).await? {
                Some(crate::store::OutboxEntry {
                    state: OutboxState::Failed { error },
                    ..
                }) => error,
                _ => String::from("unknown"),
            };
            owed.push(Owed { entry, reason });
        }
        let rng = ChaCha8Rng::seed_from_u64(fnv1a(FNV_OFFSET, session.as_str()));
        let (events_tx, _) = broadcast::channel(1024);
        let driving = M::driving(&config);
        let limiter = limiter.or_else(|| driving.calls.limiter());
        Ok(Engine {
            limiter,
            driving,
            since_snapshot: 0,
            session,
            machine,
            platform,
            store,
            clock,
            config,
            retrying: ready,
            failed: false,
            cursor,
            next_observe: now,
            events: VecDeque::new(),
            spawned: false,
            pushed,
            events_tx,
            rng,
            seq,
            calls: tokio::task::JoinSet::new(),
            flying: Vec::new(),
            polling: None,
            next_dispatch: None,
            owed,
        })
    }
}

/// What a spawned engine's task beside the loop came back with: a platform call (the effect,
/// and what the platform answered), or an observer poll (a page of updates).
/// A platform call in flight beside a spawned engine's loop.
struct Flying<E> {
    effect: E,
    lane: Lane,
    task: tokio::task::Id,
}

enum Landing<E> {
    Call(Pending<E>, Result<Outcome, PlatformError>),
    Poll(Result<Page<AssignmentUpdate>, PlatformError>),
}

/// An effect waiting to be carried out.
#[derive(Debug)]
struct Pending<E> {
    effect: E,
    attempts: u32,
    due: Timestamp,
    /// For an approval refused as not submitted yet: the last time the worker can submit.
    submit_by: Option<Timestamp>,
}

/// A running session. See the [module docs](self).
pub struct Engine<M: Machine = Pavilion> {
    session: SessionId,
    machine: M,
    platform: Arc<dyn Platform>,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    config: M::Config,
    driving: Driving,
    /// Platform effects not yet done, by due time (FIFO among equals).
    retrying: VecDeque<Pending<M::Effect>>,
    cursor: Option<Cursor>,
    next_observe: Timestamp,
    /// Events for `poll_event`; unused once spawned (subscribers have the channel).
    events: VecDeque<Event<M>>,
    /// Running in its own task ([`Engine::spawn`]).
    spawned: bool,
    /// The platform pushes assignment updates: no observer polls.
    pushed: bool,
    events_tx: broadcast::Sender<Event<M>>,
    rng: ChaCha8Rng,
    /// The last log sequence number.
    seq: u64,
    since_snapshot: u64,
    /// A store write failed: the engine refuses every call from then on.
    failed: bool,
    /// The token bucket a spawned engine's platform calls start through, if limited.
    limiter: Option<CallLimiter>,
    /// A spawned engine's platform calls in flight ([`Engine::dispatch`]) and its observer poll.
    calls: tokio::task::JoinSet<Landing<M::Effect>>,
    /// The calls in flight: their effects (a copy, to queue again should the task panic),
    /// lanes and tasks.
    flying: Vec<Flying<M::Effect>>,
    /// The task of a spawned engine's observer poll in flight (one at a time, in `calls`).
    polling: Option<tokio::task::Id>,
    /// When a spawned engine can next start a call that waits only for its retry time.
    next_dispatch: Option<Timestamp>,
    /// Payments that failed for good, with their reasons (recovered from the store).
    owed: Vec<Owed>,
}

/// The events of an engine driving `M`.
pub type Event<M> = EngineEvent<<M as Machine>::Effect, <M as Machine>::Input>;

impl<M: Machine> std::fmt::Debug for Engine<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("session", &self.session)
            .field("seq", &self.seq)
            .field("pending_effects", &self.retrying.len())
            .finish_non_exhaustive()
    }
}

impl Engine {
    // ----- host API: admin ---------------------------------------------------------------------

    /// Opens the session: hiring begins.
    pub async fn start(&mut self) -> Result<(), EngineError> {
        self.input(Input::Start).await
    }

    /// Ends the job: everyone is released and paid; hiring stops.
    pub async fn stop(&mut self) -> Result<(), EngineError> {
        self.input(Input::Stop).await
    }

    /// Closes every HIT of the session.
    pub async fn expire(&mut self) -> Result<(), EngineError> {
        self.input(Input::Expire).await
    }

    /// Moves up to `count` waiting workers to active.
    pub async fn migrate(&mut self, count: u32) -> Result<(), EngineError> {
        self.input(Input::Migrate { count }).await
    }

    /// Changes the queue targets.
    pub async fn set_targets(&mut self, targets: Targets) -> Result<(), EngineError> {
        self.input(Input::SetTargets(targets)).await
    }

    // ----- host API: worker-facing -------------------------------------------------------------

    /// A worker landed on the page with an accepted assignment.
    pub async fn arrive(
        &mut self,
        worker: WorkerId,
        assignment: AssignmentId,
        hit: HitId,
    ) -> Result<(), EngineError> {
        self.input(Input::Arrive {
            worker,
            assignment,
            hit,
        })
        .await
    }

    /// A worker's page is still open.
    pub async fn heartbeat(&mut self, assignment: AssignmentId) -> Result<(), EngineError> {
        self.input(Input::Heartbeat { assignment }).await
    }

    /// A worker submitted, with `contributions` units of work.
    pub async fn submit(
        &mut self,
        assignment: AssignmentId,
        contributions: u32,
    ) -> Result<(), EngineError> {
        self.input(Input::Submit {
            assignment,
            contributions,
        })
        .await
    }

    /// A worker returned their assignment.
    pub async fn return_assignment(&mut self, assignment: AssignmentId) -> Result<(), EngineError> {
        self.input(Input::Return { assignment }).await
    }
}

impl<M: Machine> Engine<M> {
    // ----- queries -----------------------------------------------------------------------------

    /// The session.
    pub fn session(&self) -> &SessionId {
        &self.session
    }

    /// The machine's whole state.
    pub fn snapshot(&self) -> M::Snapshot {
        self.machine.snapshot()
    }

    /// The machine, for getters.
    pub fn machine(&self) -> &M {
        &self.machine
    }

    /// The payments ledger.
    pub async fn ledger(&self) -> Result<Vec<LedgerEntry>, EngineError<M::Rejected>> {
        Ok(self.store.ledger(&self.session).await?)
    }

    /// Payments that failed for good (each in the ledger with `paid: false`, this run's and
    /// earlier runs'), with the platform's reason: what the study owes and why.
    pub fn owed(&self) -> &[Owed] {
        &self.owed
    }

    /// Effects waiting to be carried out (for a retry, or after recovery).
    pub fn pending_effects(&self) -> usize {
        self.flying.len() + self.pending_not_flying()
    }

    fn pending_not_flying(&self) -> usize {
        self.retrying.len()
    }

    /// The next event, oldest first. Events also go to [`subscribe`](Self::subscribe)rs.
    pub fn poll_event(&mut self) -> Option<Event<M>> {
        self.events.pop_front()
    }

    /// A stream of events for a UI. A slow subscriber misses events (it is told how many) but
    /// never slows the engine.
    pub fn subscribe(&self) -> broadcast::Receiver<Event<M>> {
        self.events_tx.subscribe()
    }

    // ----- time --------------------------------------------------------------------------------

    /// When [`advance`](Self::advance) has work next: a machine deadline, a retry, or an
    /// observer poll (only while the session is live).
    pub fn next_wakeup(&self) -> Option<Timestamp> {
        // A spawned engine waits for what it cannot start yet (a lane busy, the limit reached)
        // to be woken by a landing call, not by the clock.
        let retry = if self.spawned {
            self.next_dispatch
        } else {
            self.retrying.iter().map(|p| p.due).min()
        };
        let observe = self.observing().then_some(self.next_observe);
        [self.machine.poll_timeout(), retry, observe]
            .into_iter()
            .flatten()
            .min()
    }

    /// Does whatever is due at the clock's current time: machine deadlines (logged as a tick),
    /// retries, and an observer poll.
    pub async fn advance(&mut self) -> Result<(), EngineError<M::Rejected>> {
        self.live()?;
        let result = self.advance_inner().await;
        self.settle(result)
    }

    async fn advance_inner(&mut self) -> Result<(), EngineError<M::Rejected>> {
        let now = self.clock.now();
        if self.machine.poll_timeout().is_some_and(|t| t <= now) {
            self.input_at(now, M::tick())
                .await
                .or_else(ignore_rejection)?;
        }
        if self.observing() && self.next_observe <= now {
            if self.spawned {
                // Beside the loop: a hanging poll delays no heartbeat.
                self.start_poll();
            } else {
                self.observe().await?;
            }
            self.next_observe = now.plus_millis(self.driving.observe_every_ms.max(1));
        }
        self.drive().await
    }

    /// Polls the platform for assignment updates now and feeds them to the machine: returns,
    /// abandonments and submissions (those the page already reported are refused as departed,
    /// harmlessly).
    pub async fn observe(&mut self) -> Result<(), EngineError<M::Rejected>> {
        self.live()?;
        let result = self.observe_inner().await;
        self.settle(result)
    }

    async fn observe_inner(&mut self) -> Result<(), EngineError<M::Rejected>> {
        loop {
            let page = match self.platform.updates(self.cursor.as_ref()).await {
                Ok(page) => page,
                Err(e) if e.is_retryable() => {
                    tracing::debug!(error = %e, "assignment poll failed; will poll again");
                    return Ok(());
                }
                Err(e) => {
                    tracing::warn!(error = %e, "assignment poll failed");
                    return Ok(());
                }
            };
            if !self.take_page(page).await? {
                return Ok(());
            }
        }
    }

    /// Records a page of assignment updates with the cursor after it, then applies them;
    /// returns whether the platform may have more right now (the cursor moved past updates).
    async fn take_page(
        &mut self,
        page: Page<AssignmentUpdate>,
    ) -> Result<bool, EngineError<M::Rejected>> {
        let advanced = page.next.filter(|n| Some(n) != self.cursor.as_ref());
        let cursor = advanced.as_ref().map(|c| (ASSIGNMENT_CURSOR, c));
        self.record_updates(&page.items, cursor).await?;
        let Some(next) = advanced else {
            return Ok(false);
        };
        self.cursor = Some(next);
        Ok(!page.items.is_empty())
    }

    /// A spawned engine's observer poll: one `updates` call beside the loop, under
    /// [`CallPolicy::timeout_ms`], unless one is in flight already. Its page comes back through
    /// [`Self::polled`].
    fn start_poll(&mut self) {
        if self.polling.is_some() {
            return;
        }
        let timeout = self.driving.calls.timeout();
        let limiter = self.limiter.clone();
        let platform = self.platform.clone();
        let cursor = self.cursor.clone();
        let task = self.calls.spawn(async move {
            Landing::Poll(limited(limiter, timeout, platform.updates(cursor.as_ref())).await)
        });
        self.polling = Some(task.id());
    }

    /// A spawned engine's poll came back: the updates are recorded with the cursor after them,
    /// then applied (as [`Self::observe`] does inline); a full page asks for the next at once.
    async fn polled(
        &mut self,
        result: Result<Page<AssignmentUpdate>, PlatformError>,
    ) -> Result<(), EngineError<M::Rejected>> {
        self.polling = None;
        let page = match result {
            Ok(page) => page,
            Err(e) => {
                tracing::debug!(error = %e, "assignment poll failed; will poll again");
                return Ok(());
            }
        };
        if self.take_page(page).await? {
            self.start_poll();
        }
        self.dispatch().await
    }

    /// Feeds assignment updates a platform pushed (a notification queue, a webhook) instead of
    /// being polled: returns, abandonments and submissions, recorded before they are applied.
    pub async fn push_updates(
        &mut self,
        updates: &[AssignmentUpdate],
    ) -> Result<(), EngineError<M::Rejected>> {
        self.live()?;
        let result = self.record_updates(updates, None).await;
        self.settle(result)
    }

    /// Refuses calls once a store write has failed (see [`EngineError::Store`]).
    fn live(&self) -> Result<(), EngineError<M::Rejected>> {
        if self.failed {
            Err(EngineError::Stopped)
        } else {
            Ok(())
        }
    }

    /// Notes a store failure, after which the engine refuses calls.
    fn settle<T>(
        &mut self,
        result: Result<T, EngineError<M::Rejected>>,
    ) -> Result<T, EngineError<M::Rejected>> {
        if let Err(EngineError::Store(e)) = &result {
            tracing::error!(error = %e, session = %self.session, "store write failed; the engine stops");
            self.failed = true;
        }
        result
    }

    /// Logs the inputs `updates` mean (with the observer cursor that follows them, in the same
    /// write), then applies them; refusals (a departure the page already reported) are harmless.
    async fn record_updates(
        &mut self,
        updates: &[AssignmentUpdate],
        cursor: Option<(&str, &Cursor)>,
    ) -> Result<(), EngineError<M::Rejected>> {
        // Logged at the time the machine will see them: a clock that stepped back must not
        // make a replay refuse what the live machine took.
        let now = self.clock.now().max(self.machine.now());
        let inputs: Vec<M::Input> = updates.iter().filter_map(M::update_input).collect();
        let records: Vec<NewInput> = inputs.iter().map(|i| new_input(now, i)).collect();
        if !records.is_empty() || cursor.is_some() {
            self.seq = self.store.append(&self.session, &records, cursor).await?;
        }
        for input in inputs {
            self.apply(now, input, true)
                .await
                .or_else(ignore_rejection)?;
        }
        self.drive().await
    }

    // ----- the record-then-act core ------------------------------------------------------------

    /// Records `input`, feeds it to the machine, and carries out what it produced.
    pub async fn input(&mut self, input: M::Input) -> Result<(), EngineError<M::Rejected>> {
        self.live()?;
        let now = self.clock.now();
        let result = match self.input_at(now, input).await {
            Ok(()) => self.drive().await,
            Err(e) => Err(e),
        };
        self.settle(result)
    }

    /// Records `inputs` in one log write, feeds them to the machine in order, and carries out
    /// what they produced. Each input's own refusal is in the returned list (a refused input
    /// changes nothing; the others go on); a store failure fails them all.
    pub async fn input_batch(
        &mut self,
        inputs: Vec<M::Input>,
    ) -> Result<Vec<Result<(), M::Rejected>>, EngineError<M::Rejected>> {
        self.live()?;
        let result = self.input_batch_inner(inputs).await;
        self.settle(result)
    }

    async fn input_batch_inner(
        &mut self,
        inputs: Vec<M::Input>,
    ) -> Result<Vec<Result<(), M::Rejected>>, EngineError<M::Rejected>> {
        if inputs.is_empty() {
            return Ok(Vec::new());
        }
        let now = self.clock.now().max(self.machine.now());
        let records: Vec<NewInput> = inputs.iter().map(|i| new_input(now, i)).collect();
        self.seq = self.store.append(&self.session, &records, None).await?;
        let mut results = Vec::with_capacity(inputs.len());
        for input in inputs {
            match self.apply(now, input, false).await {
                Ok(()) => results.push(Ok(())),
                Err(EngineError::Rejected(r)) => results.push(Err(r)),
                Err(e) => return Err(e),
            }
        }
        self.drive().await?;
        Ok(results)
    }

    async fn input_at(
        &mut self,
        now: Timestamp,
        input: M::Input,
    ) -> Result<(), EngineError<M::Rejected>> {
        let now = now.max(self.machine.now());
        self.seq = self
            .store
            .append(&self.session, &[new_input(now, &input)], None)
            .await?;
        self.apply(now, input, false).await
    }

    /// Feeds an input that is already in the log to the machine and queues its effects.
    async fn apply(
        &mut self,
        now: Timestamp,
        input: M::Input,
        quiet: bool,
    ) -> Result<(), EngineError<M::Rejected>> {
        let now = now.max(self.machine.now());
        let shown = input.clone();
        if let Err(rejected) = self.machine.handle(now, input) {
            if !quiet {
                self.publish(EngineEvent::Rejected {
                    input: shown,
                    reason: rejected.to_string(),
                });
            }
            return Err(EngineError::Rejected(rejected));
        }
        let mut queued = Vec::new();
        while let Some(effect) = self.machine.poll_effect() {
            self.publish(EngineEvent::Effect(effect.clone()));
            if self.machine.action(&self.config, &effect).journaled() {
                queued.push(effect);
            }
        }
        if !queued.is_empty() {
            let new: Vec<NewEffect> = queued.iter().map(new_effect::<M>).collect();
            self.store.enqueue(&self.session, &new).await?;
            self.retrying
                .extend(queued.into_iter().map(|effect| Pending {
                    effect,
                    attempts: 0,
                    due: now,
                    submit_by: None,
                }));
        }
        self.since_snapshot += 1;
        Ok(())
    }

    /// Saves the machine's state at the current log position.
    pub async fn save_snapshot(&mut self) -> Result<(), EngineError<M::Rejected>> {
        self.live()?;
        let body = to_json(&self.machine.snapshot());
        self.store
            .save_snapshot(
                &self.session,
                &StoredSnapshot {
                    seq: self.seq,
                    body,
                },
            )
            .await?;
        self.since_snapshot = 0;
        Ok(())
    }

    /// Carries out every due effect, feeding results back, until nothing is due.
    async fn drive(&mut self) -> Result<(), EngineError<M::Rejected>> {
        if self.spawned {
            return self.dispatch().await;
        }
        loop {
            let now = self.clock.now();
            let Some(index) = self.retrying.iter().position(|p| p.due <= now) else {
                // Quiescent: every logged input is applied, so a snapshot here is exact.
                return self.snapshot_if_due().await;
            };
            let pending = self.retrying.remove(index).expect("index from position");
            let key = IdempotencyKey::for_effect(M::effect_id(&pending.effect));
            let result = self.call(&pending.effect).run(&*self.platform, &key).await;
            self.settle_call(pending, result).await?;
        }
    }

    /// Records what a platform call came to: done, retried later with the same key, or
    /// failed for good.
    async fn settle_call(
        &mut self,
        mut pending: Pending<M::Effect>,
        result: Result<Outcome, PlatformError>,
    ) -> Result<(), EngineError<M::Rejected>> {
        match result {
            Ok(outcome) => self.finish(pending.effect, outcome).await,
            Err(e) if e.code == NOT_SUBMITTED => {
                // The worker may still submit: retry (capped backoff) until they cannot.
                let now = self.clock.now();
                let window = self.machine.submit_window_ms(&self.config, &pending.effect);
                let submit_by = *pending.submit_by.get_or_insert(now.plus_millis(window));
                if now >= submit_by {
                    let e = PlatformError::new(
                        e.kind,
                        NOT_SUBMITTED,
                        format!(
                            "never submitted within its duration ({window} ms): {}",
                            e.message
                        ),
                    );
                    return self.fail(pending.effect, e).await;
                }
                tracing::debug!(effect = %M::effect_id(&pending.effect), "not submitted yet");
                // One last try at the end of the window, not long after it.
                self.retry_later(pending, Some(submit_by));
                Ok(())
            }
            Err(e) if e.is_retryable() => {
                tracing::debug!(effect = %M::effect_id(&pending.effect), error = %e, "retrying");
                self.retry_later(pending, None);
                Ok(())
            }
            Err(e) => self.fail(pending.effect, e).await,
        }
    }

    /// Queues `pending` again after the retry policy's next backoff (no later than `by`).
    fn retry_later(&mut self, mut pending: Pending<M::Effect>, by: Option<Timestamp>) {
        pending.attempts += 1;
        let delay = self
            .driving
            .retry
            .delay_ms(pending.attempts, self.rng.random::<f64>());
        let due = self.clock.now().plus_millis(delay.max(1));
        pending.due = by.map_or(due, |by| due.min(by));
        self.retrying.push_back(pending);
    }

    /// A spawned engine's version of [`Self::drive`]: every due effect that may go now starts
    /// as a task beside the loop (at most [`CallPolicy::max_in_flight`]), in outbox order
    /// except that an effect never overtakes an earlier one it must follow ([`Lane`]). The
    /// results come back through [`Self::land`].
    async fn dispatch(&mut self) -> Result<(), EngineError<M::Rejected>> {
        let now = self.clock.now();
        let limit = self.driving.calls.max_in_flight.max(1) as usize;
        let timeout = self.driving.calls.timeout();
        let mut held_back: Vec<Lane> = Vec::new();
        let mut index = 0;
        self.next_dispatch = None;
        while index < self.retrying.len() && self.flying.len() < limit {
            let pending = &self.retrying[index];
            let call = self.call(&pending.effect);
            let lane = call.lane();
            let blocked = self
                .flying
                .iter()
                .map(|f| &f.lane)
                .chain(&held_back)
                .any(|earlier| lane.follows(earlier));
            if pending.due > now || blocked {
                if !blocked {
                    self.next_dispatch = Some(
                        self.next_dispatch
                            .map_or(pending.due, |t| t.min(pending.due)),
                    );
                }
                held_back.push(lane);
                index += 1;
                continue;
            }
            let pending = self.retrying.remove(index).expect("index in range");
            let id = M::effect_id(&pending.effect).clone();
            let key = IdempotencyKey::for_effect(&id);
            let platform = self.platform.clone();
            // A page message calls no platform: it takes no token.
            let limiter = self.limiter.clone().filter(|_| call.calls_platform());
            let effect = pending.effect.clone();
            let task = self.calls.spawn(async move {
                let result = limited(limiter, timeout, call.run(&*platform, &key)).await;
                Landing::Call(pending, result)
            });
            self.flying.push(Flying {
                effect,
                lane,
                task: task.id(),
            });
        }
        if self.flying.is_empty() {
            self.snapshot_if_due().await?;
        }
        Ok(())
    }

    /// A call started by [`Self::dispatch`] came back: record it, then start what may go now.
    async fn land(
        &mut self,
        pending: Pending<M::Effect>,
        result: Result<Outcome, PlatformError>,
    ) -> Result<(), EngineError<M::Rejected>> {
        let id = M::effect_id(&pending.effect);
        self.flying.retain(|f| M::effect_id(&f.effect) != id);
        self.settle_call(pending, result).await?;
        self.dispatch().await
    }

    /// A task beside the loop panicked (the platform's code did; crowdcore's cannot): a call's
    /// effect is queued again, to be retried with its key after a backoff; a poll is free to
    /// start again. Nothing is lost and its lane does not stay blocked.
    async fn lost_task(
        &mut self,
        error: tokio::task::JoinError,
    ) -> Result<(), EngineError<M::Rejected>> {
        tracing::error!(error = %error, "a platform call task failed");
        let task = error.id();
        if self.polling == Some(task) {
            self.polling = None;
            return Ok(());
        }
        if let Some(i) = self.flying.iter().position(|f| f.task == task) {
            let lost = self.flying.remove(i);
            let pending = Pending {
                effect: lost.effect,
                attempts: 0,
                due: self.clock.now(),
                submit_by: None,
            };
            self.retry_later(pending, None);
            self.dispatch().await?;
        }
        Ok(())
    }

    async fn snapshot_if_due(&mut self) -> Result<(), EngineError<M::Rejected>> {
        if self.driving.snapshot_every > 0 && self.since_snapshot >= self.driving.snapshot_every {
            self.save_snapshot().await?;
        }
        Ok(())
    }

    /// The platform call `effect` means, owned, so that it can run beside the loop.
    fn call(&self, effect: &M::Effect) -> Call {
        Call::of(self.machine.action(&self.config, effect))
    }

    async fn finish(
        &mut self,
        effect: M::Effect,
        outcome: Outcome,
    ) -> Result<(), EngineError<M::Rejected>> {
        let now = self.clock.now().max(self.machine.now());
        let mut inputs = Vec::new();
        if let Outcome::Posted { hit, slots } = &outcome {
            inputs.push(M::posted(&effect, hit.clone(), *slots));
        }
        let completion = Completion {
            id: M::effect_id(&effect).clone(),
            state: OutboxState::Done {
                result: to_json(&outcome),
            },
            ledger: self.ledger_entry(&effect, true, now).into_iter().collect(),
            inputs: inputs.iter().map(|i| new_input(now, i)).collect(),
        };
        self.record(completion, inputs, now).await
    }

    async fn fail(
        &mut self,
        effect: M::Effect,
        error: PlatformError,
    ) -> Result<(), EngineError<M::Rejected>> {
        let now = self.clock.now().max(self.machine.now());
        tracing::warn!(effect = %M::effect_id(&effect), %error, "effect failed for good");
        let mut inputs = Vec::new();
        if let Action::Post { .. } = self.machine.action(&self.config, &effect) {
            inputs.push(M::hire_failed(&effect, error.to_string()));
        }
        let completion = Completion {
            id: M::effect_id(&effect).clone(),
            state: OutboxState::Failed {
                error: error.to_string(),
            },
            ledger: self.ledger_entry(&effect, false, now).into_iter().collect(),
            inputs: inputs.iter().map(|i| new_input(now, i)).collect(),
        };
        if let Some(entry) = self.ledger_entry(&effect, false, now) {
            self.owed.push(Owed {
                entry,
                reason: error.to_string(),
            });
        }
        self.publish(EngineEvent::EffectFailed {
            effect,
            error: error.to_string(),
        });
        self.record(completion, inputs, now).await
    }

    async fn record(
        &mut self,
        completion: Completion,
        inputs: Vec<M::Input>,
        now: Timestamp,
    ) -> Result<(), EngineError<M::Rejected>> {
        let fresh = self.store.complete(&self.session, &completion).await?;
        if !fresh {
            return Ok(()); // recorded before a crash; its inputs are in the log already
        }
        self.seq += inputs.len() as u64;
        for input in inputs {
            self.apply(now, input, false)
                .await
                .or_else(ignore_rejection)?;
        }
        Ok(())
    }

    fn observing(&self) -> bool {
        !self.pushed && self.machine.observing()
    }

    fn ledger_entry(&self, effect: &M::Effect, paid: bool, at: Timestamp) -> Option<LedgerEntry> {
        match self.machine.action(&self.config, effect) {
            Action::Pay {
                worker,
                assignment,
                kind,
                amount,
            } => Some(LedgerEntry {
                effect: M::effect_id(effect).clone(),
                worker: worker.clone(),
                assignment: Some(assignment.clone()),
                kind: pay_kind_name(kind).to_owned(),
                amount,
                paid,
                at,
            }),
            _ => None,
        }
    }

    fn publish(&mut self, event: Event<M>) {
        // Nobody listening is fine.
        if self.spawned {
            // Subscribers get events through the channel; nobody polls a spawned engine.
            let _ = self.events_tx.send(event);
            return;
        }
        let _ = self.events_tx.send(event.clone());
        self.events.push_back(event);
        if self.events.len() > 65_536 {
            self.events.pop_front();
        }
    }

    /// Runs the engine in real time on the current tokio runtime: it wakes for deadlines,
    /// retries and observer polls, and takes calls through the returned handle.
    pub fn spawn(mut self) -> EngineHandle<M> {
        let (tx, mut rx) = mpsc::channel::<Command<M>>(256);
        self.spawned = true;
        // What recovery left pending starts at once.
        self.next_dispatch = self.retrying.iter().map(|p| p.due).min();
        self.events.clear();
        let events = self.events_tx.clone();
        let session = self.session.clone();
        let task = tokio::spawn(async move {
            // A call taken from the channel while gathering a batch of inputs, served next.
            let mut held: Option<Command<M>> = None;
            // Whether the last wake served a landed call: inputs and landings then take turns
            // whenever both are ready, so neither a stream of inputs starves the results (the
            // select below prefers inputs) nor a burst of results the inputs.
            let mut served_landing = false;
            loop {
                let now = self.clock.now();
                // Whatever is due runs first, so a steady stream of calls cannot starve
                // deadlines, retries and observer polls.
                if self.next_wakeup().is_some_and(|t| t <= now) {
                    self.advance().await?;
                }
                let sleep_ms = self
                    .next_wakeup()
                    .map_or(1_000, |t| t.millis_since(now))
                    .clamp(1, 1_000);
                let ready = match held {
                    None if !served_landing => self.calls.try_join_next(),
                    _ => None,
                };
                let command = match (held.take(), ready) {
                    (Some(command), _) => Some(Wake::Command(command)),
                    (None, Some(landed)) => Some(Wake::Landed(landed)),
                    (None, None) => tokio::select! {
                        // Inputs first: a page's heartbeat never waits behind a result.
                        biased;
                        command = rx.recv() => match command {
                            None => return Ok(()),
                            some => some.map(Wake::Command),
                        },
                        Some(landed) = self.calls.join_next(), if !self.calls.is_empty() => {
                            Some(Wake::Landed(landed))
                        }
                        () = tokio::time::sleep(std::time::Duration::from_millis(sleep_ms)) => None,
                    },
                };
                served_landing = matches!(command, Some(Wake::Landed(_)));
                let command = match command {
                    Some(Wake::Landed(landed)) => {
                        match landed {
                            Ok(Landing::Call(pending, result)) => {
                                self.live()?;
                                let landed = self.land(pending, result).await;
                                self.settle(landed)?;
                            }
                            Ok(Landing::Poll(result)) => {
                                self.live()?;
                                let polled = self.polled(result).await;
                                self.settle(polled)?;
                            }
                            Err(e) => {
                                self.live()?;
                                let lost = self.lost_task(e).await;
                                self.settle(lost)?;
                            }
                        }
                        continue;
                    }
                    Some(Wake::Command(command)) => Some(command),
                    None => None,
                };
                match command {
                    None => self.advance().await?,
                    Some(Command::Input(input, reply)) => {
                        // Every input already waiting joins one batch: one log write (one
                        // fsync on a durable store) for all of them, however many pages call.
                        let mut batch = vec![(input, reply)];
                        while batch.len() < MAX_BATCH {
                            match rx.try_recv() {
                                Ok(Command::Input(input, reply)) => batch.push((input, reply)),
                                Ok(other) => {
                                    held = Some(other);
                                    break;
                                }
                                Err(_) => break,
                            }
                        }
                        let (inputs, replies): (Vec<_>, Vec<_>) = batch.into_iter().unzip();
                        match self.input_batch(inputs).await {
                            Ok(results) => {
                                for (reply, result) in replies.into_iter().zip(results) {
                                    let _ = reply.send(result.map_err(HandleError::Rejected));
                                }
                            }
                            Err(e) => {
                                let fatal = matches!(e, EngineError::Store(_));
                                for reply in replies {
                                    // Only a store write fails a batch (its inputs are answered
                                    // one by one); anything else means the engine is done.
                                    let failure = match &e {
                                        EngineError::Store(e) => HandleError::Store(e.clone()),
                                        _ => HandleError::Stopped,
                                    };
                                    let _ = reply.send(Err(failure));
                                }
                                if fatal {
                                    // Logged by the engine; the handle reports the task finished.
                                    return Err(EngineError::Stopped);
                                }
                            }
                        }
                    }
                    Some(Command::Snapshot(reply)) => {
                        let _ = reply.send(self.snapshot());
                    }
                    Some(Command::Ledger(reply)) => {
                        let _ = reply.send(self.ledger().await.map_err(|e| match e {
                            EngineError::Store(e) => Some(e),
                            _ => None,
                        }));
                    }
                    Some(Command::Owed(reply)) => {
                        let _ = reply.send(self.owed.clone());
                    }
                    Some(Command::Read(read)) => read(&self.machine),
                }
            }
        });
        EngineHandle {
            tx,
            events,
            session,
            task: Arc::new(task),
        }
    }
}

type Reader<M> = Box<dyn FnOnce(&M) + Send>;

/// What woke a spawned engine's loop.
enum Wake<M: Machine> {
    Command(Command<M>),
    Landed(Result<Landing<M::Effect>, tokio::task::JoinError>),
}

/// The most inputs a spawned engine logs in one write.
const MAX_BATCH: usize = 512;

type Reply<R> = oneshot::Sender<Result<(), HandleError<R>>>;

enum Command<M: Machine> {
    Input(M::Input, Reply<M::Rejected>),
    Snapshot(oneshot::Sender<M::Snapshot>),
    Ledger(oneshot::Sender<Result<Vec<LedgerEntry>, Option<StoreError>>>),
    Owed(oneshot::Sender<Vec<Owed>>),
    Read(Reader<M>),
}

/// A cloneable handle to an engine running in its own task (see [`Engine::spawn`]).
pub struct EngineHandle<M: Machine = Pavilion> {
    tx: mpsc::Sender<Command<M>>,
    events: broadcast::Sender<Event<M>>,
    session: SessionId,
    task: Arc<tokio::task::JoinHandle<Result<(), EngineError<M::Rejected>>>>,
}

impl<M: Machine> Clone for EngineHandle<M> {
    fn clone(&self) -> Self {
        Self {
            tx: self.tx.clone(),
            events: self.events.clone(),
            session: self.session.clone(),
            task: Arc::clone(&self.task),
        }
    }
}

impl<M: Machine> std::fmt::Debug for EngineHandle<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineHandle")
            .field("session", &self.session)
            .finish_non_exhaustive()
    }
}

/// Why a call through an [`EngineHandle`] failed. `R` is the machine's rejection type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandleError<R = Rejected> {
    /// The machine refused the input; its state is unchanged.
    #[error("rejected: {0}")]
    Rejected(R),
    /// The store failed the call (after which the engine stops): every call of the batch the
    /// failure hit gets it.
    #[error(transparent)]
    Store(StoreError),
    /// The engine task has stopped.
    #[error("the engine has stopped")]
    Stopped,
}

impl<M: Machine> EngineHandle<M> {
    /// The session the engine runs.
    pub fn session(&self) -> &SessionId {
        &self.session
    }

    /// Sends an input (admin or worker-facing) and waits until it is recorded and its effects
    /// are carried out (or queued for retry).
    pub async fn input(&self, input: M::Input) -> Result<(), HandleError<M::Rejected>> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::Input(input, reply))
            .await
            .map_err(|_| HandleError::Stopped)?;
        rx.await.map_err(|_| HandleError::Stopped)?
    }

    /// The machine's state.
    pub async fn snapshot(&self) -> Result<M::Snapshot, HandleError<M::Rejected>> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::Snapshot(reply))
            .await
            .map_err(|_| HandleError::Stopped)?;
        rx.await.map_err(|_| HandleError::Stopped)
    }

    /// The payments ledger.
    pub async fn ledger(&self) -> Result<Vec<LedgerEntry>, HandleError<M::Rejected>> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::Ledger(reply))
            .await
            .map_err(|_| HandleError::Stopped)?;
        rx.await
            .map_err(|_| HandleError::Stopped)?
            .map_err(|e| e.map_or(HandleError::Stopped, HandleError::Store))
    }

    /// Payments that failed for good, with their reasons ([`Engine::owed`]).
    pub async fn owed(&self) -> Result<Vec<Owed>, HandleError<M::Rejected>> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::Owed(reply))
            .await
            .map_err(|_| HandleError::Stopped)?;
        rx.await.map_err(|_| HandleError::Stopped)
    }

    /// Reads the machine through `read` (a getter such as the retainer's `task_for`), in the
    /// engine's task, between two inputs.
    pub async fn read<T, F>(&self, read: F) -> Result<T, HandleError<M::Rejected>>
    where
        T: Send + 'static,
        F: FnOnce(&M) -> T + Send + 'static,
    {
        let (reply, rx) = oneshot::channel();
        let reader: Reader<M> = Box::new(move |machine| {
            let _ = reply.send(read(machine));
        });
        self.tx
            .send(Command::Read(reader))
            .await
            .map_err(|_| HandleError::Stopped)?;
        rx.await.map_err(|_| HandleError::Stopped)
    }

    /// Events as they happen.
    pub fn subscribe(&self) -> broadcast::Receiver<Event<M>> {
        self.events.subscribe()
    }

    /// Whether the engine task has ended (its handle dropped, or a store failure).
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }
}

/// What came of a platform effect, as recorded in the outbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
enum Outcome {
    Posted { hit: HitId, slots: u32 },
    Paid,
    Expired,
    Delivered,
}

/// A platform call an effect means ([`Action`]), owned so that it can run beside the loop.
#[derive(Debug, Clone)]
enum Call {
    Post {
        spec: HitSpec,
        slots: u32,
    },
    Approve {
        assignment: AssignmentId,
    },
    Bonus {
        worker: WorkerId,
        assignment: AssignmentId,
        amount: crate::model::Money,
        reason: &'static str,
    },
    Expire {
        hits: Vec<HitId>,
    },
    /// No call: a message to pages, published when the machine produced it.
    None,
}

impl Call {
    fn of(action: Action<'_>) -> Self {
        match action {
            Action::Post { spec, slots } => Call::Post {
                spec: spec.clone(),
                slots,
            },
            Action::Pay {
                assignment,
                kind: PayKind::Base,
                ..
            } => Call::Approve {
                assignment: assignment.clone(),
            },
            Action::Pay {
                worker,
                assignment,
                kind,
                amount,
            } => Call::Bonus {
                worker: worker.clone(),
                assignment: assignment.clone(),
                amount,
                reason: pay_kind_name(kind),
            },
            Action::Expire { hits } => Call::Expire {
                hits: hits.to_vec(),
            },
            Action::Deliver | Action::Publish => Call::None,
        }
    }

    /// Whether carrying it out calls the platform (a page message does not).
    fn calls_platform(&self) -> bool {
        !matches!(self, Call::None)
    }

    async fn run(self, p: &dyn Platform, key: &IdempotencyKey) -> Result<Outcome, PlatformError> {
        match self {
            Call::Post { spec, slots } => {
                let hit = p.post(&spec, slots, key).await?;
                Ok(Outcome::Posted { hit, slots })
            }
            Call::Approve { assignment } => match p.approve(&assignment, key).await {
                Ok(()) => Ok(Outcome::Paid),
                Err(e) if e.kind == crate::platform::PlatformErrorKind::Conflict => {
                    // Refused for its state: if the worker still holds it, they have not
                    // submitted yet (MTurk's InvalidAssignmentState), and may; if it reads as
                    // submitted now, the submission landed between the two calls. Either way
                    // the approval is tried again, within the submit window.
                    match p.assignment(&assignment).await {
                        Ok(Some(record))
                            if matches!(
                                record.status,
                                crate::platform::AssignmentStatus::Accepted
                                    | crate::platform::AssignmentStatus::Submitted
                            ) =>
                        {
                            Err(PlatformError::new(e.kind, NOT_SUBMITTED, e.message))
                        }
                        _ => Err(e),
                    }
                }
                Err(e) => Err(e),
            },
            Call::Bonus {
                worker,
                assignment,
                amount,
                reason,
            } => {
                p.bonus(&worker, Some(&assignment), amount, reason, key)
                    .await?;
                Ok(Outcome::Paid)
            }
            Call::Expire { hits } => {
                // Expiring is idempotent: retry them all on a transient error; a HIT the
                // platform refuses for good (gone already, say) does not keep the others open.
                for hit in &hits {
                    match p.expire(hit).await {
                        Ok(()) => {}
                        Err(e) if e.is_retryable() => return Err(e),
                        Err(e) => tracing::warn!(%hit, error = %e, "cannot expire HIT"),
                    }
                }
                Ok(Outcome::Expired)
            }
            Call::None => Ok(Outcome::Delivered),
        }
    }

    fn lane(&self) -> Lane {
        match self {
            Call::Post { .. } => Lane::Post,
            Call::Approve { assignment } | Call::Bonus { assignment, .. } => {
                Lane::Assignment(assignment.clone())
            }
            Call::Expire { .. } => Lane::Expire,
            Call::None => Lane::Free,
        }
    }
}

/// Which earlier calls a call must not overtake when calls run side by side: pay for an
/// assignment after the approval (or bonus) queued before it; an expiry after every post and
/// expiry queued before it (so that no HIT it was meant to close is posted after it). Posts,
/// and pays for different assignments, run in parallel.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Lane {
    Post,
    Assignment(AssignmentId),
    Expire,
    Free,
}

impl Lane {
    /// Whether a call in this lane must wait for an earlier call in `earlier`.
    fn follows(&self, earlier: &Lane) -> bool {
        match (self, earlier) {
            (Lane::Assignment(a), Lane::Assignment(b)) => a == b,
            (Lane::Expire, Lane::Post | Lane::Expire) => true,
            _ => false,
        }
    }
}

fn ignore_rejection<R>(e: EngineError<R>) -> Result<(), EngineError<R>> {
    match e {
        EngineError::Rejected(_) => Ok(()),
        other => Err(other),
    }
}

/// The ledger's name for a kind of pay.
pub fn pay_kind_name(kind: PayKind) -> &'static str {
    match kind {
        PayKind::Base => "base",
        PayKind::WaitingBonus => "waiting_bonus",
        PayKind::ActiveBonus => "active_bonus",
        PayKind::ContributionBonus => "contribution_bonus",
    }
}

fn new_input<I: Serialize>(at: Timestamp, input: &I) -> NewInput {
    NewInput {
        at,
        body: to_json(input),
    }
}

fn new_effect<M: Machine>(effect: &M::Effect) -> NewEffect {
    NewEffect {
        id: M::effect_id(effect).clone(),
        body: to_json(effect),
    }
}

/// Serializes crowdcore's own plain data. Inputs, effects, snapshots, configs and output lines
/// are strings, integers, lists and string-keyed structs, which serde_json always serializes.
pub(crate) fn to_json<T: Serialize + ?Sized>(value: &T) -> String {
    serde_json::to_string(value).expect("plain data serializes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let p = RetryPolicy {
            base_ms: 100,
            max_ms: 1_000,
        };
        assert_eq!(p.delay_ms(1, 0.0), 50);
        assert_eq!(p.delay_ms(1, 1.0), 100);
        assert_eq!(p.delay_ms(3, 1.0), 400);
        assert_eq!(p.delay_ms(10, 1.0), 1_000);
        assert_eq!(p.delay_ms(60, 0.5), 750);
    }
}
