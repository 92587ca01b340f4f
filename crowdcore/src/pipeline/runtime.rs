//! The runtime: observers, handlers and the outbox, driven period after period.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::future::Future;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::handler::{Decide, Decision, Handler, HandlerError};
use super::observer::{ObserveError, Observer, ObserverConfig, ObserverCursor};
use super::platform::{
    AssignmentQuery, AssignmentStatus, PipelinePlatform, PoolId, PoolStatus, SortBy,
};
use crate::clock::{Clock, SystemClock};
use crate::engine::to_json;
use crate::model::{AssignmentId, EffectId, SessionId, Timestamp};
use crate::platform::{Cursor, IdempotencyKey, PlatformError};
use crate::store::{
    Commit, Completion, LeaseOutcome, LedgerEntry, NewEffect, NewInput, OutboxEntry, OutboxState,
    Store, StoreError, StoredSnapshot,
};

/// The lease a pipeline holds on its store.
pub const LEASE: &str = "pipeline";
const STAGES_KEY: &str = "pipeline_stages";
const EFFECT_TYPE: &str = "pipeline";

/// One stage: a pool, its observer and its handler.
pub struct Stage {
    /// The stage's name (in logs, decisions and cursors).
    pub name: String,
    /// Its pool.
    pub pool: PoolId,
    /// The overlap of tasks created in it.
    pub overlap: u32,
    /// How its pool is observed.
    pub observer: ObserverConfig,
    /// What it does with new assignments.
    pub handler: Box<dyn Handler>,
}

impl std::fmt::Debug for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stage")
            .field("name", &self.name)
            .field("pool", &self.pool)
            .field("overlap", &self.overlap)
            .field("observer", &self.observer)
            .finish_non_exhaustive()
    }
}

impl Stage {
    /// A stage with the default observer (submitted assignments, 60 s lag).
    pub fn new(name: &str, pool: PoolId, overlap: u32, handler: impl Handler + 'static) -> Self {
        Self {
            name: name.to_owned(),
            pool,
            overlap,
            observer: ObserverConfig::default(),
            handler: Box::new(handler),
        }
    }

    /// With this observer configuration.
    pub fn observer(mut self, observer: ObserverConfig) -> Self {
        self.observer = observer;
        self
    }
}

/// When [`Pipeline::run`] stops by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopCondition {
    /// Never: only the shutdown future stops it (as the seed ran).
    Never,
    /// When every stage's pool is closed, has no active assignment, and its observer has read
    /// past the time it closed, and no decision waits to be carried out.
    AllClosedAndDrained,
}

/// How a pipeline runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PipelineConfig {
    /// Time between polls, in milliseconds.
    pub period_ms: u64,
    /// When to stop.
    pub stop: StopCondition,
    /// Save a snapshot of the handlers every this many observed assignments (0: never;
    /// recovery then replays the whole log).
    pub snapshot_every: u64,
    /// How long the store's lease lasts without renewal, in milliseconds.
    pub lease_ttl_ms: u64,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            period_ms: 60_000,
            stop: StopCondition::AllClosedAndDrained,
            snapshot_every: 200,
            lease_ttl_ms: 300_000,
        }
    }
}

/// Why a pipeline stopped or could not start.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The store failed. What it holds is consistent; start again from it.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Another run holds the store's lease.
    #[error("the store is in use by {owner} until {expires}")]
    InUse {
        /// The other run.
        owner: String,
        /// When its lease runs out unless it renews it.
        expires: Timestamp,
    },
    /// Another run took the lease over (this one did not renew it in time).
    #[error("lost the store's lease to {0}")]
    LeaseLost(String),
    /// A platform call failed for good.
    #[error("platform: {0}")]
    Platform(#[from] PlatformError),
    /// A page did not fit its query.
    #[error(transparent)]
    Observe(#[from] ObserveError),
    /// The configuration is invalid.
    #[error("bad configuration: {0}")]
    Config(String),
    /// The store holds this session with other stages.
    #[error("the store holds session {0} with other stages")]
    StagesChanged(SessionId),
    /// What the store holds cannot be read back.
    #[error("cannot recover the session: {0}")]
    Recovery(String),
    /// An earlier call failed half way; start a new pipeline from the store.
    #[error("the pipeline has stopped after an error")]
    Stopped,
}

impl From<HandlerError> for PipelineError {
    fn from(e: HandlerError) -> Self {
        PipelineError::Recovery(e.to_string())
    }
}

/// An input of the pipeline's log: an assignment an observer found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum PipelineInput {
    /// A new assignment of a stage.
    Observed {
        /// The stage.
        stage: String,
        /// The assignment, as listed.
        assignment: super::platform::PoolAssignment,
    },
}

/// A decision as the outbox holds it: when, by which stage's handler, caused by which
/// assignment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecisionRecord {
    /// Always `"pipeline"` (what the SQLite views look for).
    #[serde(rename = "type")]
    pub kind: String,
    /// When it was decided (the observation time of its cause).
    pub at_ms: u64,
    /// The stage whose handler decided.
    pub by: String,
    /// The assignment being handled.
    pub cause: AssignmentId,
    /// The decision.
    #[serde(flatten)]
    pub decision: Decision,
}

/// What the outbox says about one decision.
#[derive(Debug, Clone, PartialEq)]
pub struct DecisionEntry {
    /// Its effect id (its idempotency key's source).
    pub id: EffectId,
    /// The decision.
    pub record: DecisionRecord,
    /// Pending, done or failed.
    pub state: OutboxState,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Saved {
    next_seq: u64,
    seen: BTreeMap<String, BTreeSet<AssignmentId>>,
    handlers: BTreeMap<String, Value>,
}

/// What one [`Pipeline::tick`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tick {
    /// Assignments observed, over all stages.
    pub observed: usize,
    /// Decisions carried out (done or failed for good).
    pub carried_out: usize,
    /// Decisions still pending (a retryable failure; tried again next tick).
    pub pending: usize,
    /// The stop condition holds.
    pub finished: bool,
}

/// Per stage, how many decisions of each kind were made and how they stand.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    /// `(stage, decision kind)` → `(done, pending, failed)`; the stage is the one the
    /// decision acts on.
    pub decisions: BTreeMap<(String, String), (u64, u64, u64)>,
    /// Answers-log rows.
    pub answers: u64,
    /// Per stage: things its handler still waits for.
    pub waiting: BTreeMap<String, usize>,
    /// Per stage: assignments observed.
    pub observed: BTreeMap<String, usize>,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "stage\tdecision\tdone\tpending\tfailed")?;
        for ((stage, kind), (done, pending, failed)) in &self.decisions {
            writeln!(f, "{stage}\t{kind}\t{done}\t{pending}\t{failed}")?;
        }
        writeln!(f, "answers logged: {}", self.answers)?;
        for (stage, n) in &self.observed {
            let waiting = self.waiting.get(stage).copied().unwrap_or(0);
            writeln!(f, "{stage}: {n} assignments observed, {waiting} waiting")?;
        }
        Ok(())
    }
}

/// Builds a [`Pipeline`]: recovers its state from the store and takes the store's lease.
pub struct PipelineBuilder {
    platform: Arc<dyn PipelinePlatform>,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    session: SessionId,
    owner: String,
    config: PipelineConfig,
    stages: Vec<Stage>,
}

impl PipelineBuilder {
    /// A pipeline named `session` on `platform` and `store`, with the system clock and a
    /// fresh owner name.
    pub fn new(
        platform: Arc<dyn PipelinePlatform>,
        store: Arc<dyn Store>,
        session: SessionId,
    ) -> Self {
        Self {
            platform,
            store,
            clock: Arc::new(SystemClock),
            session,
            owner: format!("pipeline-{}", uuid::Uuid::now_v7()),
            config: PipelineConfig::default(),
            stages: Vec::new(),
        }
    }

    /// Adds a stage (in order: a stage's handler may create tasks in any stage).
    pub fn stage(mut self, stage: Stage) -> Self {
        self.stages.push(stage);
        self
    }

    /// Uses this configuration.
    pub fn config(mut self, config: PipelineConfig) -> Self {
        self.config = config;
        self
    }

    /// Uses `clock` instead of the system clock.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Names this run in the store's lease (default: a fresh UUID). A run restarted under the
    /// same name resumes at once; under another it waits for the old lease to expire.
    pub fn owner(mut self, owner: impl Into<String>) -> Self {
        self.owner = owner.into();
        self
    }

    /// Takes the lease, loads the snapshot, replays the log since, and loads the cursors and
    /// pending decisions. Nothing is sent to the platform yet.
    pub async fn start(self) -> Result<Pipeline, PipelineError> {
        let PipelineBuilder {
            platform,
            store,
            clock,
            session,
            owner,
            config,
            stages,
        } = self;
        if stages.is_empty() {
            return Err(PipelineError::Config("a pipeline needs a stage".into()));
        }
        let mut names = BTreeSet::new();
        for s in &stages {
            if !names.insert(s.name.clone()) {
                return Err(PipelineError::Config(format!(
                    "two stages named {:?}",
                    s.name
                )));
            }
        }
        if config.period_ms == 0 {
            return Err(PipelineError::Config("period_ms must be positive".into()));
        }
        if config.lease_ttl_ms <= config.period_ms {
            return Err(PipelineError::Config(
                "lease_ttl_ms must be longer than period_ms, or the lease lapses between ticks"
                    .into(),
            ));
        }
        for s in &stages {
            if s.overlap == 0 {
                return Err(PipelineError::Config(format!(
                    "stage {:?} has overlap 0",
                    s.name
                )));
            }
        }
        match store
            .acquire_lease(LEASE, &owner, clock.now(), config.lease_ttl_ms)
            .await?
        {
            LeaseOutcome::Acquired { .. } => {}
            LeaseOutcome::Held { owner, expires } => {
                return Err(PipelineError::InUse { owner, expires });
            }
        }
        let (lease_store, lease_owner) = (store.clone(), owner.clone());
        let result = Self::recover(platform, store, clock, session, owner, config, stages).await;
        if result.is_err() {
            // Nothing runs: let the next attempt start at once.
            let _ = lease_store.release_lease(LEASE, &lease_owner).await;
        }
        result
    }

    async fn recover(
        platform: Arc<dyn PipelinePlatform>,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        session: SessionId,
        owner: String,
        config: PipelineConfig,
        mut stages: Vec<Stage>,
    ) -> Result<Pipeline, PipelineError> {
        let shape: Vec<(&str, &str)> = stages
            .iter()
            .map(|s| (s.name.as_str(), s.pool.as_str()))
            .collect();
        let shape = to_json(&shape);
        match store.meta(&session, STAGES_KEY).await? {
            Some(stored) if stored != shape => return Err(PipelineError::StagesChanged(session)),
            Some(_) => {}
            None => store.put_meta(&session, STAGES_KEY, &shape).await?,
        }
        let overlaps: Vec<(String, u32)> =
            stages.iter().map(|s| (s.name.clone(), s.overlap)).collect();
        // The snapshot, then the log after it.
        let mut saved = Saved::default();
        let mut log_end = 0;
        if let Some(snapshot) = store.load_snapshot(&session).await? {
            saved = serde_json::from_str(&snapshot.body)
                .map_err(|e| PipelineError::Recovery(format!("snapshot: {e}")))?;
            for stage in &mut stages {
                if let Some(state) = saved.handlers.remove(&stage.name) {
                    stage.handler.load(state)?;
                }
            }
            log_end = snapshot.seq;
        }
        let mut pipeline = Pipeline {
            platform,
            store,
            clock,
            session,
            owner,
            config,
            overlaps,
            observers: Vec::new(),
            stages,
            next_seq: saved.next_seq.max(1),
            seen: saved.seen,
            log_end,
            since_snapshot: 0,
            pending: VecDeque::new(),
            broken: false,
            released: false,
        };
        loop {
            let records = pipeline
                .store
                .read_log(&pipeline.session, pipeline.log_end, 1_000)
                .await?;
            if records.is_empty() {
                break;
            }
            for record in records {
                let input: PipelineInput = serde_json::from_str(&record.body)
                    .map_err(|e| PipelineError::Recovery(format!("log {}: {e}", record.seq)))?;
                let PipelineInput::Observed { stage, assignment } = input;
                let index = pipeline.stage_index(&stage).ok_or_else(|| {
                    PipelineError::Recovery(format!("log {}: unknown stage {stage}", record.seq))
                })?;
                // Replayed decisions are in the outbox already (written with this input):
                // only the state matters, but check that the handler decided the same.
                let mut commit = Commit::default();
                pipeline.handle(index, record.at, &assignment, &mut commit);
                for effect in commit.effects.iter().chain(&commit.journal) {
                    let stored = pipeline.store.effect(&effect.id).await?;
                    if stored.as_ref().map(|e| &e.body) != Some(&effect.body) {
                        return Err(PipelineError::Recovery(format!(
                            "replaying log {}: stage {stage} decided otherwise than before \
                             (effect {}); its handler is not deterministic, or its \
                             configuration changed",
                            record.seq, effect.id
                        )));
                    }
                }
                pipeline.log_end = record.seq;
                pipeline.since_snapshot += 1;
            }
        }
        for stage in &pipeline.stages {
            let cursor = match pipeline
                .store
                .cursor(&pipeline.session, &cursor_name(&stage.name))
                .await?
            {
                Some(Cursor(text)) => serde_json::from_str::<ObserverCursor>(&text)
                    .map_err(|e| PipelineError::Recovery(format!("cursor: {e}")))?,
                None => ObserverCursor::default(),
            };
            pipeline.observers.push(Observer::resume(
                stage.pool.clone(),
                stage.observer.clone(),
                cursor,
            ));
        }
        pipeline.pending = pipeline.store.pending(&pipeline.session).await?.into();
        Ok(pipeline)
    }
}

/// What of a cursor says which assignments were seen (not where a listing stands).
fn position_of(cursor: &ObserverCursor) -> ObserverCursor {
    ObserverCursor {
        bound: None,
        caught_up: None,
        ..cursor.clone()
    }
}

fn cursor_name(stage: &str) -> String {
    format!("pipeline/{stage}")
}

/// A multi-pool pipeline. See the [module docs](super).
pub struct Pipeline {
    platform: Arc<dyn PipelinePlatform>,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    session: SessionId,
    owner: String,
    config: PipelineConfig,
    overlaps: Vec<(String, u32)>,
    stages: Vec<Stage>,
    observers: Vec<Observer>,
    next_seq: u64,
    seen: BTreeMap<String, BTreeSet<AssignmentId>>,
    log_end: u64,
    since_snapshot: u64,
    pending: VecDeque<OutboxEntry>,
    broken: bool,
    released: bool,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("session", &self.session)
            .field("owner", &self.owner)
            .field("stages", &self.stages)
            .field("pending", &self.pending.len())
            .finish_non_exhaustive()
    }
}

impl Pipeline {
    /// The session.
    pub fn session(&self) -> &SessionId {
        &self.session
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// A stage's observer cursor.
    pub fn cursor(&self, stage: &str) -> Option<&ObserverCursor> {
        self.stage_index(stage).map(|i| self.observers[i].cursor())
    }

    /// Decisions waiting to be carried out.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    fn stage_index(&self, name: &str) -> Option<usize> {
        self.stages.iter().position(|s| s.name == name)
    }

    /// Runs one assignment through its stage's handler and adds its decisions to `commit`;
    /// `false` if the stage had seen it already (then nothing happens).
    fn handle(
        &mut self,
        index: usize,
        now: Timestamp,
        assignment: &super::platform::PoolAssignment,
        commit: &mut Commit,
    ) -> bool {
        let name = self.stages[index].name.clone();
        if !self
            .seen
            .entry(name.clone())
            .or_default()
            .insert(assignment.id.clone())
        {
            return false;
        }
        let mut cx = Decide::new(now, &name, &self.overlaps);
        let decisions = match self.stages[index].handler.handle(&mut cx, assignment) {
            Ok(()) => cx.into_decisions(),
            Err(e) => {
                tracing::warn!(stage = %name, assignment = %assignment.id, error = %e, "unhandled");
                vec![Decision::Unhandled {
                    assignment: assignment.id.clone(),
                    reason: e.to_string(),
                }]
            }
        };
        for decision in decisions {
            let journal = matches!(
                decision,
                Decision::Answer { .. } | Decision::Unhandled { .. }
            );
            let record = DecisionRecord {
                kind: EFFECT_TYPE.into(),
                at_ms: now.as_millis(),
                by: name.clone(),
                cause: assignment.id.clone(),
                decision,
            };
            let effect = NewEffect {
                id: EffectId::new(self.session.clone(), self.next_seq),
                body: to_json(&record),
            };
            self.next_seq += 1;
            if journal {
                commit.journal.push(effect);
            } else {
                commit.effects.push(effect);
            }
        }
        true
    }

    fn live(&self) -> Result<(), PipelineError> {
        if self.broken {
            Err(PipelineError::Stopped)
        } else {
            Ok(())
        }
    }

    /// One period's work at the clock's now: renew the lease, poll every stage's pool to the
    /// end, handle and record what is new, carry out pending decisions, check the stop
    /// condition.
    pub async fn tick(&mut self) -> Result<Tick, PipelineError> {
        self.live()?;
        let result = self.tick_inner().await;
        if matches!(
            result,
            Err(PipelineError::Store(_) | PipelineError::LeaseLost(_))
        ) {
            self.broken = true;
        }
        result
    }

    async fn tick_inner(&mut self) -> Result<Tick, PipelineError> {
        let now = self.clock.now();
        match self
            .store
            .acquire_lease(LEASE, &self.owner, now, self.config.lease_ttl_ms)
            .await?
        {
            LeaseOutcome::Acquired { .. } => {}
            LeaseOutcome::Held { owner, .. } => return Err(PipelineError::LeaseLost(owner)),
        }
        let mut tick = Tick::default();
        for index in 0..self.stages.len() {
            tick.observed += self.observe(index, now).await?;
        }
        tick.carried_out = self.carry_out().await?;
        tick.pending = self.pending.len();
        tick.finished = self.pending.is_empty()
            && self.config.stop == StopCondition::AllClosedAndDrained
            && self.drained().await?;
        Ok(tick)
    }

    /// Polls one stage to the end of its listing; each page is one store commit.
    async fn observe(&mut self, index: usize, now: Timestamp) -> Result<usize, PipelineError> {
        let mut observed = 0;
        while let Some(query) = self.observers[index].next_query(now) {
            let position = position_of(self.observers[index].cursor());
            let page = match self.platform.list_assignments(&query).await {
                Ok(page) => page,
                Err(e) if e.is_retryable() => {
                    tracing::debug!(stage = %self.stages[index].name, error = %e, "listing failed; next tick");
                    break;
                }
                Err(e) => return Err(e.into()),
            };
            let fresh = self.observers[index].ingest(&query, &page)?;
            let mut commit = Commit::default();
            for assignment in &fresh {
                if self.handle(index, now, assignment, &mut commit) {
                    commit.inputs.push(NewInput {
                        at: now,
                        body: to_json(&PipelineInput::Observed {
                            stage: self.stages[index].name.clone(),
                            assignment: assignment.clone(),
                        }),
                    });
                    observed += 1;
                }
            }
            if commit.inputs.is_empty()
                && commit.effects.is_empty()
                && commit.journal.is_empty()
                && position == position_of(self.observers[index].cursor())
            {
                // Nothing new: no write. (The stored cursor may lag in its listing bounds,
                // which costs at most a listing again after a restart.)
                continue;
            }
            let cursor = to_json(self.observers[index].cursor());
            commit
                .cursors
                .push((cursor_name(&self.stages[index].name), Cursor(cursor)));
            let end = self.log_end + commit.inputs.len() as u64;
            self.since_snapshot += commit.inputs.len() as u64;
            if self.config.snapshot_every > 0 && self.since_snapshot >= self.config.snapshot_every {
                commit.snapshot = Some(StoredSnapshot {
                    seq: end,
                    body: self.snapshot_body(),
                });
            }
            self.store.commit(&self.session, &commit).await?;
            self.log_end = end;
            if commit.snapshot.is_some() {
                self.since_snapshot = 0;
            }
            self.pending
                .extend(commit.effects.into_iter().map(|e| OutboxEntry {
                    id: e.id,
                    body: e.body,
                    state: OutboxState::Pending,
                }));
        }
        Ok(observed)
    }

    fn snapshot_body(&self) -> String {
        let saved = Saved {
            next_seq: self.next_seq,
            seen: self.seen.clone(),
            handlers: self
                .stages
                .iter()
                .map(|s| (s.name.clone(), s.handler.save()))
                .collect(),
        };
        to_json(&saved)
    }

    fn pool_of(&self, stage: &str) -> Result<PoolId, PipelineError> {
        self.stage_index(stage)
            .map(|i| self.stages[i].pool.clone())
            .ok_or_else(|| PipelineError::Recovery(format!("unknown stage {stage}")))
    }

    /// Carries out pending decisions in order, until one fails with a retryable error.
    async fn carry_out(&mut self) -> Result<usize, PipelineError> {
        let mut done = 0;
        while let Some(entry) = self.pending.front().cloned() {
            let record: DecisionRecord = serde_json::from_str(&entry.body)
                .map_err(|e| PipelineError::Recovery(format!("outbox {}: {e}", entry.id)))?;
            let key = IdempotencyKey::for_effect(&entry.id);
            let mut ledger = Vec::new();
            let p = &self.platform;
            let outcome: Result<String, PlatformError> = match &record.decision {
                Decision::Accept {
                    assignment,
                    comment,
                    ..
                } => p
                    .accept(assignment, comment, &key)
                    .await
                    .map(|()| "accepted".into()),
                Decision::Reject {
                    assignment,
                    comment,
                    ..
                } => p
                    .reject(assignment, comment, &key)
                    .await
                    .map(|()| "rejected".into()),
                Decision::Bonus {
                    worker,
                    assignment,
                    amount,
                    comment,
                    ..
                } => {
                    let r = p
                        .bonus(worker, assignment.as_ref(), *amount, comment, &key)
                        .await;
                    if r.is_ok() {
                        ledger.push(LedgerEntry {
                            effect: entry.id.clone(),
                            worker: worker.clone(),
                            assignment: assignment.clone(),
                            kind: "bonus".into(),
                            amount: *amount,
                            paid: true,
                            at: self.clock.now(),
                        });
                    }
                    r.map(|()| "paid".into())
                }
                Decision::CreateTasks { stage, tasks, .. } => {
                    let pool = self.pool_of(stage)?;
                    match p.create_tasks(&pool, tasks, &key).await {
                        Ok(ids) => p.open_pool(&pool).await.map(|()| to_json(&ids)),
                        Err(e) => Err(e),
                    }
                }
                Decision::OpenPool { stage } => {
                    let pool = self.pool_of(stage)?;
                    p.open_pool(&pool).await.map(|()| "opened".into())
                }
                Decision::ClosePool { stage } => {
                    let pool = self.pool_of(stage)?;
                    p.close_pool(&pool).await.map(|()| "closed".into())
                }
                Decision::Answer { .. } | Decision::Unhandled { .. } => {
                    Ok(crate::store::JOURNAL_RESULT.into())
                }
            };
            let state = match outcome {
                Ok(result) => OutboxState::Done { result },
                Err(e) if e.is_retryable() => {
                    tracing::debug!(effect = %entry.id, error = %e, "retry next tick");
                    break;
                }
                Err(e) => {
                    tracing::warn!(effect = %entry.id, error = %e, "decision failed");
                    OutboxState::Failed {
                        error: e.to_string(),
                    }
                }
            };
            let completion = Completion {
                id: entry.id.clone(),
                state,
                ledger,
                inputs: Vec::new(),
            };
            self.store.complete(&self.session, &completion).await?;
            self.pending.pop_front();
            done += 1;
        }
        Ok(done)
    }

    /// Whether every pool is closed, has no active assignment, and was read past its close.
    async fn drained(&mut self) -> Result<bool, PipelineError> {
        for (stage, observer) in self.stages.iter().zip(&self.observers) {
            let info = match self.platform.pool(&stage.pool).await {
                Ok(info) => info,
                Err(e) if e.is_retryable() => return Ok(false),
                Err(e) => return Err(e.into()),
            };
            if info.status == PoolStatus::Open {
                return Ok(false);
            }
            let cursor = observer.cursor();
            if let Some(stopped) = info.last_stopped
                && (cursor.bound.is_some() || cursor.caught_up.is_none_or(|c| c <= stopped))
            {
                return Ok(false);
            }
            let active = AssignmentQuery {
                pool: stage.pool.clone(),
                status: vec![AssignmentStatus::Active],
                field: stage.observer.field,
                gte: None,
                lt: None,
                id_gt: None,
                sort: SortBy::Id,
                limit: 1,
            };
            match self.platform.list_assignments(&active).await {
                Ok(page) if page.items.is_empty() => {}
                Ok(_) => return Ok(false),
                Err(e) if e.is_retryable() => return Ok(false),
                Err(e) => return Err(e.into()),
            }
        }
        Ok(true)
    }

    /// Ticks every period until the stop condition holds or `shutdown` completes (the host's
    /// Ctrl-C, say); a tick in progress finishes first. Then gives the lease up and reports.
    pub async fn run(
        mut self,
        shutdown: impl Future<Output = ()>,
    ) -> Result<Report, PipelineError> {
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            match self.tick().await {
                Ok(tick) if tick.finished => break,
                Ok(_) => {}
                Err(e) => {
                    // What the store holds is consistent: let a restart resume at once.
                    if !matches!(e, PipelineError::LeaseLost(_)) {
                        let _ = self.store.release_lease(LEASE, &self.owner).await;
                    }
                    return Err(e);
                }
            }
            tokio::select! {
                () = &mut shutdown => break,
                () = tokio::time::sleep(std::time::Duration::from_millis(self.config.period_ms)) => {}
            }
        }
        // The lease goes back even when the report cannot be read.
        let report = self.report().await;
        self.release().await?;
        report
    }

    /// Gives the store's lease up, so another run may start at once.
    pub async fn release(&mut self) -> Result<(), PipelineError> {
        if !self.released {
            self.store.release_lease(LEASE, &self.owner).await?;
            self.released = true;
            self.broken = true;
        }
        Ok(())
    }

    /// Every decision in the outbox, in order (answers-log rows and unhandled assignments
    /// included).
    pub async fn decisions(&self) -> Result<Vec<DecisionEntry>, PipelineError> {
        decisions(&*self.store, &self.session, self.next_seq).await
    }

    /// Decisions per stage and kind, answers, observed and waiting counts.
    pub async fn report(&self) -> Result<Report, PipelineError> {
        let mut report = Report::default();
        for entry in self.decisions().await? {
            let Some((stage, kind)) = row(&entry.record).map(|r| (r.stage, r.kind)) else {
                report.answers += 1;
                continue;
            };
            let counts = report.decisions.entry((stage, kind)).or_default();
            match entry.state {
                OutboxState::Done { .. } => counts.0 += 1,
                OutboxState::Pending => counts.1 += 1,
                OutboxState::Failed { .. } => counts.2 += 1,
            }
        }
        for stage in &self.stages {
            report
                .waiting
                .insert(stage.name.clone(), stage.handler.waiting());
            report.observed.insert(
                stage.name.clone(),
                self.seen.get(&stage.name).map_or(0, BTreeSet::len),
            );
        }
        Ok(report)
    }

    /// Writes the decisions log and the answers log as TSV (the seed's columns: `time`,
    /// `stage`, `assignment`, `decision`, `comment`; and `task`, `worker`, `label`, `skill`,
    /// `result`). Both are read from the store, so they hold exactly what was decided, once.
    pub async fn write_logs(
        &self,
        decisions_tsv: &mut dyn std::io::Write,
        answers_tsv: &mut dyn std::io::Write,
    ) -> Result<(), PipelineError> {
        let io = |e: std::io::Error| PipelineError::Recovery(format!("writing a log: {e}"));
        writeln!(decisions_tsv, "time\tstage\tassignment\tdecision\tcomment").map_err(io)?;
        writeln!(answers_tsv, "task\tworker\tlabel\tskill\tresult").map_err(io)?;
        for entry in self.decisions().await? {
            if let Decision::Answer {
                task,
                worker,
                label,
                skill,
                result,
            } = &entry.record.decision
            {
                writeln!(
                    answers_tsv,
                    "{}\t{}\t{}\t{}\t{}",
                    tsv(task.as_str()),
                    tsv(worker.as_str()),
                    tsv(label),
                    skill,
                    tsv(result)
                )
                .map_err(io)?;
            } else if let Some(r) = row(&entry.record) {
                writeln!(
                    decisions_tsv,
                    "{}\t{}\t{}\t{}\t{}",
                    entry.record.at_ms,
                    tsv(&r.stage),
                    tsv(&r.assignment),
                    tsv(&r.kind),
                    tsv(&r.comment)
                )
                .map_err(io)?;
            }
        }
        Ok(())
    }
}

/// A decisions-log row.
struct Row {
    stage: String,
    assignment: String,
    kind: String,
    comment: String,
}

fn row(record: &DecisionRecord) -> Option<Row> {
    let r = |stage: &str, assignment: &str, kind: String, comment: &str| Row {
        stage: stage.to_owned(),
        assignment: assignment.to_owned(),
        kind,
        comment: comment.to_owned(),
    };
    Some(match &record.decision {
        Decision::Accept {
            stage,
            assignment,
            comment,
        } => r(stage, assignment.as_str(), "accept".into(), comment),
        Decision::Reject {
            stage,
            assignment,
            comment,
        } => r(stage, assignment.as_str(), "reject".into(), comment),
        Decision::Bonus {
            stage,
            worker,
            assignment,
            amount,
            comment,
        } => r(
            stage,
            assignment.as_ref().map_or(worker.as_str(), |a| a.as_str()),
            "bonus".into(),
            &format!("{amount} {comment}"),
        ),
        Decision::CreateTasks {
            stage,
            about,
            tasks,
        } => r(
            stage,
            about.as_str(),
            "create_tasks".into(),
            &format!("{} task(s)", tasks.len()),
        ),
        Decision::OpenPool { stage } => r(stage, "", "open_pool".into(), ""),
        Decision::ClosePool { stage } => r(stage, "", "close_pool".into(), ""),
        Decision::Unhandled { assignment, reason } => {
            r(&record.by, assignment.as_str(), "unhandled".into(), reason)
        }
        Decision::Answer { .. } => return None,
    })
}

/// A TSV field: tabs and line breaks become spaces.
fn tsv(text: &str) -> String {
    text.replace(['\t', '\n', '\r'], " ")
}

/// Every decision of `session` in the outbox with an id below `end`.
pub async fn decisions(
    store: &dyn Store,
    session: &SessionId,
    end: u64,
) -> Result<Vec<DecisionEntry>, PipelineError> {
    let mut out = Vec::new();
    for seq in 1..end {
        let id = EffectId::new(session.clone(), seq);
        let Some(entry) = store.effect(&id).await? else {
            continue;
        };
        let record: DecisionRecord = serde_json::from_str(&entry.body)
            .map_err(|e| PipelineError::Recovery(format!("outbox {id}: {e}")))?;
        out.push(DecisionEntry {
            id,
            record,
            state: entry.state,
        });
    }
    Ok(out)
}
