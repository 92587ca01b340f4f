//! A simulated crowd: a seeded population of workers acting on the [local
//! marketplace](crate::local) under a [virtual clock](crate::clock::VirtualClock), driving a real
//! [`Engine`]. A day of a study runs in a fraction of a second, and the same seed gives the same
//! run, bit for bit, so policies can be compared on the same crowd.
//!
//! Each simulated worker: arrives at the marketplace (a Poisson process, optionally varying by
//! hour of day), looks for work, takes a while to accept a HIT and land on its page, sends
//! heartbeats, waits with limited patience (then returns the HIT, or submits to collect the
//! waiting pay), works for a while once promoted and submits, and may instead return the HIT or
//! vanish (close the page: the engine times them out, the marketplace abandons the assignment).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Exp};
use serde::{Deserialize, Serialize};

use crate::clock::{Clock, VirtualClock};
use crate::engine::{Engine, EngineBuilder, EngineConfig, EngineError, EngineEvent};
use crate::local::LocalMarketplace;
use crate::model::{AssignmentId, HitId, Money, SessionId, Timestamp, WorkerId};
use crate::pavilion::{Departure, EffectKind, SeatState};
use crate::store::{Deferred, MemoryStore, Store, StoreError};

mod durable;
mod events;
mod retainer;

use events::{EventQueue, next_step};

pub use retainer::{
    OnMiss, RetainerReport, RetainerSimError, RetainerStudy, StudyError, run_retainer,
    run_retainer_on,
};

const SIM_CONFIG_KEY: &str = "sim_config";
const SIM_REPORT_KEY: &str = "sim_report";

/// How the simulated crowd behaves. Times are means of exponential distributions, in
/// milliseconds; probabilities are per worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CrowdModel {
    /// Workers arriving at the marketplace per minute.
    pub arrivals_per_minute: f64,
    /// Multipliers of the arrival rate for each hour of the day (24 values; empty = flat).
    pub hourly_profile: Vec<f64>,
    /// Mean delay from seeing a HIT to landing on its page.
    pub accept_delay_ms: f64,
    /// Mean time a worker is willing to wait before giving up.
    pub patience_ms: f64,
    /// Mean time on the task once active.
    pub task_ms: f64,
    /// Probability that a worker who gives up waiting returns the HIT (otherwise they submit
    /// and collect their waiting pay).
    pub return_probability: f64,
    /// Probability that a worker vanishes (closes the page without a word) at some point.
    pub abandon_probability: f64,
    /// How often a page sends a heartbeat.
    pub heartbeat_every_ms: u64,
    /// Probability that an answer is right (for studies that score answers).
    pub accuracy: f64,
}

impl Default for CrowdModel {
    fn default() -> Self {
        Self {
            arrivals_per_minute: 2.0,
            hourly_profile: Vec::new(),
            accept_delay_ms: 20_000.0,
            patience_ms: 15.0 * 60_000.0,
            task_ms: 5.0 * 60_000.0,
            return_probability: 0.5,
            abandon_probability: 0.05,
            heartbeat_every_ms: 20_000,
            accuracy: 0.8,
        }
    }
}

/// A model that cannot be simulated.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ModelError {
    /// A rate or mean that must be positive and finite is not.
    #[error("{0} must be positive and finite")]
    NotPositive(&'static str),
    /// A probability outside [0, 1].
    #[error("{0} must be between 0 and 1")]
    NotProbability(&'static str),
    /// The hourly profile is neither empty nor 24 non-negative values with a positive one.
    #[error("hourly_profile must be empty or 24 non-negative values, not all zero")]
    BadProfile,
}

impl CrowdModel {
    /// Checks the model.
    pub fn validate(&self) -> Result<(), ModelError> {
        for (name, v) in [
            ("arrivals_per_minute", self.arrivals_per_minute),
            ("accept_delay_ms", self.accept_delay_ms),
            ("patience_ms", self.patience_ms),
            ("task_ms", self.task_ms),
            ("heartbeat_every_ms", self.heartbeat_every_ms as f64),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return Err(ModelError::NotPositive(name));
            }
        }
        for (name, p) in [
            ("return_probability", self.return_probability),
            ("abandon_probability", self.abandon_probability),
            ("accuracy", self.accuracy),
        ] {
            if !(0.0..=1.0).contains(&p) {
                return Err(ModelError::NotProbability(name));
            }
        }
        let p = &self.hourly_profile;
        if !p.is_empty()
            && (p.len() != 24
                || p.iter().any(|v| !(v.is_finite() && *v >= 0.0))
                || p.iter().all(|v| *v == 0.0))
        {
            return Err(ModelError::BadProfile);
        }
        Ok(())
    }
}

/// A simulation run's settings.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// The seed: same seed, same run.
    pub seed: u64,
    /// How long the study runs, in milliseconds of virtual time.
    pub duration_ms: u64,
    /// The crowd.
    pub crowd: CrowdModel,
    /// The engine's configuration (HIT spec, queue targets, pay).
    pub engine: EngineConfig,
    /// The requester's funds on the marketplace.
    pub funds: Money,
    /// The session id (fixed, so that reruns are byte-identical).
    pub session: SessionId,
}

/// What a run measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimReport {
    /// Active workers over time, divided by `max_active`, averaged over the whole study.
    pub active_fill_ratio: f64,
    /// Milliseconds from an active worker leaving to their seat being filled again.
    pub refill_ms: Percentiles,
    /// Seats vacated and never refilled before the study ended.
    pub unfilled_vacancies: u64,
    /// Slots hired (posted on the marketplace).
    pub hires: u64,
    /// Workers turned away because the job was full.
    pub turned_away: u64,
    /// Workers who arrived at the marketplace.
    pub workers_arrived: u64,
    /// Workers who landed on a HIT's page.
    pub workers_landed: u64,
    /// Minutes that paid workers spent waiting.
    pub paid_waiting_minutes: f64,
    /// Minutes that paid workers spent active.
    pub paid_active_minutes: f64,
    /// Money paid out (base pay and bonuses), in minor units.
    pub cost_cents: i64,
    /// `cost_cents / paid_active_minutes`.
    pub cost_per_active_minute_cents: f64,
    /// Inputs the engine handled.
    pub engine_inputs: u64,
    /// Platform calls that repeated an idempotency key (answered from the key, not done
    /// again). Zero unless a platform call's answer was lost.
    pub platform_duplicate_calls: u64,
    /// Queue sizes over time: (minute, waiting, active), one sample per minute.
    pub queues: Vec<(u64, u32, u32)>,
    /// Every refill latency, in milliseconds, in the order they happened.
    pub refills: Vec<u64>,
}

/// p50, p95 and max of a set of durations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Percentiles {
    /// Median (nearest rank).
    pub p50: u64,
    /// 95th percentile (nearest rank).
    pub p95: u64,
    /// Largest.
    pub max: u64,
    /// How many.
    pub count: u64,
}

impl Percentiles {
    /// Nearest-rank percentiles of `values` (zeros if empty).
    pub fn of(values: &[u64]) -> Self {
        if values.is_empty() {
            return Self::default();
        }
        let mut v = values.to_vec();
        v.sort_unstable();
        let rank = |p: f64| v[((p * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
        Self {
            p50: rank(0.50),
            p95: rank(0.95),
            max: v[v.len() - 1],
            count: v.len() as u64,
        }
    }
}

/// Why a simulation failed.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The crowd model is invalid.
    #[error("bad crowd model: {0}")]
    Model(#[from] ModelError),
    /// The engine failed.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The store holds this study with another seed, length, crowd or funds.
    #[error("the store holds study {0} with different settings; use another store or session")]
    ConfigChanged(SessionId),
}

/// How a [`run_durable`] call went.
#[derive(Debug, Clone, PartialEq)]
pub struct DurableRun {
    /// What the study measured.
    pub report: SimReport,
    /// If the store already held part of the study: how many log entries it held.
    pub resumed_at: Option<u64>,
    /// The store held the whole study: nothing was run.
    pub already_finished: bool,
}

/// The settings of a study that are not in the engine's configuration.
#[derive(Serialize)]
struct StudyKey<'a> {
    seed: u64,
    duration_ms: u64,
    crowd: &'a CrowdModel,
    funds: Money,
}

/// Runs a study whose log, outbox and ledger live in `store`, resuming it if the store holds
/// part of it and doing nothing if it holds all of it. A resumed study re-runs the seeded crowd
/// from the start, checking every input and finished effect against the store instead of writing
/// them again, and continues past the stored log's end. The same seed gives the same report however often it stopped.
pub async fn run_durable(
    config: SimConfig,
    store: Arc<dyn Store>,
    progress: impl FnMut(Timestamp),
) -> Result<DurableRun, SimError> {
    let session = config.session.clone();
    let key = serde_json::to_string(&StudyKey {
        seed: config.seed,
        duration_ms: config.duration_ms,
        crowd: &config.crowd,
        funds: config.funds,
    })
    .map_err(|e| StoreError::Other(e.to_string()))?;
    match store.meta(&session, SIM_CONFIG_KEY).await? {
        Some(stored) if stored != key => return Err(SimError::ConfigChanged(session)),
        Some(_) => {}
        None => store.put_meta(&session, SIM_CONFIG_KEY, &key).await?,
    }
    if let Some(done) = store.meta(&session, SIM_REPORT_KEY).await? {
        let report = serde_json::from_str(&done)
            .map_err(|e| StoreError::Corrupt(format!("stored report: {e}")))?;
        return Ok(DurableRun {
            report,
            resumed_at: None,
            already_finished: true,
        });
    }
    let mut stored = Vec::new();
    loop {
        let page = store
            .read_log(&session, stored.len() as u64, 65_536)
            .await?;
        if page.is_empty() {
            break;
        }
        stored.extend(page);
    }
    let resumed_at = (!stored.is_empty()).then_some(stored.len() as u64);
    // The marketplace lives in this process and a resumed run re-creates it exactly, so the
    // study's writes need not each wait for a commit: they are held and written in order, many
    // to a transaction (a crash loses a suffix, which the re-run writes again).
    let deferred = Arc::new(Deferred::new(
        store.clone(),
        session.clone(),
        stored.is_empty(),
    ));
    let view: Arc<dyn Store> = if stored.is_empty() {
        deferred.clone()
    } else {
        Arc::new(durable::CatchUp::new(
            deferred.clone(),
            session.clone(),
            stored,
        ))
    };
    let report = run_on(config, view, progress).await?;
    deferred.flush().await?;
    let json = serde_json::to_string(&report).map_err(|e| StoreError::Other(e.to_string()))?;
    store.put_meta(&session, SIM_REPORT_KEY, &json).await?;
    Ok(DurableRun {
        report,
        resumed_at,
        already_finished: false,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    /// The next worker reaches the marketplace.
    NextArrival,
    /// Worker `n` looks for work.
    Browse(u64),
    /// Worker `n` has decided on a HIT and lands on its page.
    Land(u64),
    /// Worker `n`'s page sends a heartbeat.
    Heartbeat(u64),
    /// Worker `n` runs out of patience.
    GiveUp(u64),
    /// Worker `n` finishes the task.
    Finish(u64),
    /// Worker `n` closes the page.
    Vanish(u64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Browsing,
    Waiting,
    Active,
    Gone,
}

#[derive(Debug)]
struct SimWorker {
    id: WorkerId,
    hit: Option<HitId>,
    assignment: Option<AssignmentId>,
    stage: Stage,
    vanishes: bool,
    arrived_at: Timestamp,
    promoted_at: Option<Timestamp>,
}

/// A simulation in progress. [`run`] is the one-call way to use it.
struct Sim {
    config: SimConfig,
    rng: ChaCha8Rng,
    clock: VirtualClock,
    market: LocalMarketplace,
    engine: Engine,
    events: EventQueue<Event>,
    workers: Vec<SimWorker>,
    by_assignment: HashMap<AssignmentId, u64>,
    vacancies: std::collections::VecDeque<Timestamp>,
    refills: Vec<u64>,
    hires: u64,
    turned_away: u64,
    landed: u64,
    paid_waiting_ms: u64,
    paid_active_ms: u64,
    inputs: u64,
    /// ∫ active dt, in worker-milliseconds.
    active_area: u128,
    last_change: Timestamp,
    last_active: u32,
    queues: BTreeMap<u64, (u32, u32)>,
}

/// Runs a whole study on a fresh marketplace and [`MemoryStore`] and reports what it measured.
pub async fn run(config: SimConfig) -> Result<SimReport, SimError> {
    run_on(config, Arc::new(MemoryStore::new()), |_| {}).await
}

/// [`run`], calling `progress` with the virtual time each time a simulated minute passes.
pub async fn run_with_progress(
    config: SimConfig,
    progress: impl FnMut(Timestamp),
) -> Result<SimReport, SimError> {
    run_on(config, Arc::new(MemoryStore::new()), progress).await
}

/// Runs a whole study with `store` holding the engine's log, outbox and ledger, calling
/// `progress` with the virtual time each time a simulated minute passes.
pub async fn run_on(
    config: SimConfig,
    store: Arc<dyn Store>,
    mut progress: impl FnMut(Timestamp),
) -> Result<SimReport, SimError> {
    config.crowd.validate()?;
    let clock = VirtualClock::new(Timestamp::ZERO);
    let market = LocalMarketplace::new(Arc::new(clock.clone()), config.funds);
    let engine = EngineBuilder::new(Arc::new(market.clone()), store, config.engine.clone())
        .clock(Arc::new(clock.clone()))
        .session(config.session.clone())
        .start()
        .await?;
    let mut sim = Sim {
        rng: ChaCha8Rng::seed_from_u64(config.seed),
        config,
        clock,
        market,
        engine,
        events: EventQueue::new(),
        workers: Vec::new(),
        by_assignment: HashMap::new(),
        vacancies: Default::default(),
        refills: Vec::new(),
        hires: 0,
        turned_away: 0,
        landed: 0,
        paid_waiting_ms: 0,
        paid_active_ms: 0,
        inputs: 0,
        active_area: 0,
        last_change: Timestamp::ZERO,
        last_active: 0,
        queues: BTreeMap::new(),
    };
    sim.run(&mut progress).await?;
    sim.report().await
}

impl Sim {
    async fn run(&mut self, progress: &mut dyn FnMut(Timestamp)) -> Result<(), SimError> {
        let end = Timestamp::from_millis(self.config.duration_ms);
        self.engine.start().await?;
        self.inputs += 1;
        self.after_engine_call();
        self.schedule(Timestamp::ZERO, Event::NextArrival);
        loop {
            let next_engine = self.engine.next_wakeup();
            let next = next_step(self.events.next_at(), next_engine, end);
            if next >= end {
                break;
            }
            if next.as_millis() / 60_000 != self.now().as_millis() / 60_000 {
                progress(next);
            }
            self.clock.set(next);
            if next_engine.is_some_and(|t| t <= next) {
                self.engine.advance().await?;
                self.after_engine_call();
            }
            while let Some(event) = self.events.pop_due(next) {
                self.on(event).await?;
            }
        }
        self.clock.set(end);
        self.sample_queues();
        // The study is over: release everyone (they are paid), close every HIT, and let the
        // engine settle its outstanding effects.
        self.engine.stop().await?;
        self.after_engine_call();
        self.engine.expire().await?;
        self.after_engine_call();
        for _ in 0..1_000 {
            match self.engine.next_wakeup() {
                Some(t) if self.engine.pending_effects() > 0 => {
                    self.clock.set(t);
                    self.engine.advance().await?;
                    self.after_engine_call();
                }
                _ => break,
            }
        }
        Ok(())
    }

    fn schedule(&mut self, at: Timestamp, event: Event) {
        self.events.schedule(at, event);
    }

    fn exp_ms(&mut self, mean_ms: f64) -> u64 {
        // The model is validated: every mean is positive and finite.
        let exp = Exp::new(1.0 / mean_ms).expect("positive rate");
        exp.sample(&mut self.rng).round() as u64
    }

    fn now(&self) -> Timestamp {
        self.clock.now()
    }

    async fn on(&mut self, event: Event) -> Result<(), SimError> {
        let now = self.now();
        match event {
            Event::NextArrival => {
                let n = self.workers.len() as u64;
                self.workers.push(SimWorker {
                    id: WorkerId::new(format!("W{n}")),
                    hit: None,
                    assignment: None,
                    stage: Stage::Browsing,
                    vanishes: false,
                    arrived_at: now,
                    promoted_at: None,
                });
                self.schedule(now, Event::Browse(n));
                let gap = self.next_arrival_gap(now);
                self.schedule(now.plus_millis(gap), Event::NextArrival);
            }
            Event::Browse(n) => {
                let id = self.workers[n as usize].id.clone();
                // A worker takes the oldest HIT on offer, or leaves if there is none.
                let Some(listing) = self.market.first_available(&id) else {
                    self.workers[n as usize].stage = Stage::Gone;
                    return Ok(());
                };
                self.workers[n as usize].hit = Some(listing.hit);
                let delay = self.exp_ms(self.config.crowd.accept_delay_ms);
                self.schedule(now.plus_millis(delay), Event::Land(n));
            }
            Event::Land(n) => self.land(n).await?,
            Event::Heartbeat(n) => {
                let w = &self.workers[n as usize];
                if matches!(w.stage, Stage::Waiting | Stage::Active) && !w.vanished(now) {
                    let a = w
                        .assignment
                        .clone()
                        .expect("landed workers hold an assignment");
                    self.call(Some(n), |e| Box::pin(e.heartbeat(a))).await?;
                    let every = self.config.crowd.heartbeat_every_ms;
                    self.schedule(now.plus_millis(every), Event::Heartbeat(n));
                }
            }
            Event::GiveUp(n) => {
                if self.workers[n as usize].stage == Stage::Waiting {
                    let a = self.workers[n as usize]
                        .assignment
                        .clone()
                        .expect("waiting");
                    if self.rng.random_bool(self.config.crowd.return_probability) {
                        let _ = self.market.return_assignment(&a);
                        self.call(Some(n), |e| Box::pin(e.return_assignment(a)))
                            .await?;
                    } else {
                        let _ = self.market.submit(&a, None);
                        self.call(Some(n), |e| Box::pin(e.submit(a, 0))).await?;
                    }
                }
            }
            Event::Finish(n) => {
                if self.workers[n as usize].stage == Stage::Active {
                    let a = self.workers[n as usize].assignment.clone().expect("active");
                    let right = self.rng.random_bool(self.config.crowd.accuracy);
                    let _ = self
                        .market
                        .submit(&a, Some(if right { "right" } else { "wrong" }.into()));
                    self.call(Some(n), |e| Box::pin(e.submit(a, 1))).await?;
                }
            }
            Event::Vanish(n) => {
                // Nothing to send: the page just stops. The heartbeat stops with it (see
                // `SimWorker::vanished`); the engine times the worker out.
                self.workers[n as usize].vanishes = true;
            }
        }
        Ok(())
    }

    async fn land(&mut self, n: u64) -> Result<(), SimError> {
        let now = self.now();
        let (id, hit) = {
            let w = &self.workers[n as usize];
            (w.id.clone(), w.hit.clone().expect("chose a HIT"))
        };
        let Ok(assignment) = self.market.accept(&id, &hit) else {
            // Someone else took the last slot while this worker dithered: look again.
            self.schedule(now, Event::Browse(n));
            return Ok(());
        };
        self.landed += 1;
        self.by_assignment.insert(assignment.clone(), n);
        {
            let w = &mut self.workers[n as usize];
            w.assignment = Some(assignment.clone());
            w.stage = Stage::Waiting;
            w.arrived_at = now;
        }
        let a = assignment.clone();
        self.call(None, |e| Box::pin(e.arrive(id, a, hit))).await?;
        if self.workers[n as usize].stage == Stage::Gone {
            return Ok(()); // turned away
        }
        let every = self.config.crowd.heartbeat_every_ms;
        self.schedule(now.plus_millis(every), Event::Heartbeat(n));
        if self.rng.random_bool(self.config.crowd.abandon_probability) {
            let after = self.exp_ms(self.config.crowd.patience_ms);
            self.schedule(now.plus_millis(after), Event::Vanish(n));
        }
        let patience = self.exp_ms(self.config.crowd.patience_ms);
        self.schedule(now.plus_millis(patience), Event::GiveUp(n));
        Ok(())
    }

    /// Calls the engine; a refusal is part of life (a worker acting after the engine let them
    /// go), anything else ends the run.
    async fn call<F>(&mut self, actor: Option<u64>, f: F) -> Result<(), SimError>
    where
        F: for<'a> FnOnce(
            &'a mut Engine,
        ) -> std::pin::Pin<
            Box<dyn std::future::Future<Output = Result<(), EngineError>> + 'a>,
        >,
    {
        self.inputs += 1;
        let result = f(&mut self.engine).await;
        if let Some(n) = actor {
            // The actor's own departure comes first: its seat is what a promotion refills.
            let now = self.now();
            self.depart(n, now);
        }
        self.after_engine_call();
        match result {
            Ok(()) | Err(EngineError::Rejected(_)) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Reacts to what the engine did: promotions, releases, turn-aways, time-outs, hires. Effects
    /// come in the machine's order, so a departure is counted before the promotion that fills
    /// its seat.
    fn after_engine_call(&mut self) {
        let now = self.now();
        while let Some(event) = self.engine.poll_event() {
            let EngineEvent::Effect(effect) = event else {
                continue;
            };
            match effect.kind {
                EffectKind::Hire { count } => self.hires += u64::from(count),
                EffectKind::Promote { assignment, .. } => {
                    if let Some(&n) = self.by_assignment.get(&assignment) {
                        let w = &mut self.workers[n as usize];
                        w.stage = Stage::Active;
                        w.promoted_at = Some(now);
                        if let Some(vacated) = self.vacancies.pop_front() {
                            self.refills.push(now.millis_since(vacated));
                        }
                        let work = self.exp_ms(self.config.crowd.task_ms);
                        self.schedule(now.plus_millis(work), Event::Finish(n));
                    }
                }
                EffectKind::TurnAway {
                    assignment, reason, ..
                } => {
                    tracing::debug!(%assignment, ?reason, at = %now, "turned away");
                    self.turned_away += 1;
                    if let Some(&n) = self.by_assignment.get(&assignment) {
                        self.workers[n as usize].stage = Stage::Gone;
                        // The page asks them to return the HIT, and they do.
                        let _ = self.market.return_assignment(&assignment);
                    }
                }
                EffectKind::Release { assignment, .. } => {
                    // The page auto-submits.
                    let _ = self.market.submit(&assignment, None);
                    self.depart_assignment(&assignment, now);
                }
                EffectKind::TimedOut { assignment, .. } => {
                    self.depart_assignment(&assignment, now);
                }
                _ => {}
            }
        }
        self.track_active(now);
    }

    fn depart_assignment(&mut self, assignment: &AssignmentId, now: Timestamp) {
        if let Some(&n) = self.by_assignment.get(assignment) {
            self.depart(n, now);
        }
    }

    /// Settles worker `n` if the machine says they left.
    fn depart(&mut self, n: u64, now: Timestamp) {
        let w = &mut self.workers[n as usize];
        if !matches!(w.stage, Stage::Waiting | Stage::Active) {
            return;
        }
        let a = w.assignment.clone().expect("landed");
        let how = match self.engine.machine().seat_of(&a) {
            Some(SeatState::Left(how)) => how,
            _ => return,
        };
        if w.stage == Stage::Active {
            self.vacancies.push_back(now);
        }
        if matches!(how, Departure::Submitted | Departure::Released) {
            let waited_until = w.promoted_at.unwrap_or(now);
            self.paid_waiting_ms += waited_until.millis_since(w.arrived_at);
            self.paid_active_ms += w.promoted_at.map_or(0, |p| now.millis_since(p));
        }
        w.stage = Stage::Gone;
    }

    fn track_active(&mut self, now: Timestamp) {
        let active = self.engine.machine().active_len();
        let span = now.millis_since(self.last_change);
        self.active_area += u128::from(span) * u128::from(self.last_active);
        self.last_change = now;
        self.last_active = active;
        self.sample_queues();
    }

    fn sample_queues(&mut self) {
        let m = self.engine.machine();
        let minute = self.now().as_millis() / 60_000;
        self.queues
            .entry(minute)
            .or_insert((m.waiting_len(), m.active_len()));
    }

    fn next_arrival_gap(&mut self, now: Timestamp) -> u64 {
        let crowd = &self.config.crowd;
        let hour = ((now.as_millis() / 3_600_000) % 24) as usize;
        let factor = crowd.hourly_profile.get(hour).copied().unwrap_or(1.0);
        if factor <= 0.0 {
            // Nobody comes this hour: try again at the next hour.
            return 3_600_000 - now.as_millis() % 3_600_000;
        }
        let mean = 60_000.0 / (crowd.arrivals_per_minute * factor);
        self.exp_ms(mean).max(1)
    }

    async fn report(mut self) -> Result<SimReport, SimError> {
        let end = Timestamp::from_millis(self.config.duration_ms);
        let span = end.millis_since(self.last_change);
        self.active_area += u128::from(span) * u128::from(self.last_active);
        let max_active = u128::from(self.config.engine.pavilion.max_active.max(1));
        let denominator = (max_active * u128::from(self.config.duration_ms.max(1))) as f64;
        let cost: i64 = self
            .engine
            .ledger()
            .await?
            .iter()
            .filter(|e| e.paid)
            .map(|e| e.amount.minor)
            .sum();
        let paid_active_minutes = self.paid_active_ms as f64 / 60_000.0;
        let mut queues: Vec<(u64, u32, u32)> = Vec::new();
        let last_minute = self.config.duration_ms / 60_000;
        let mut current = (0, 0);
        for minute in 0..=last_minute {
            if let Some(&q) = self.queues.get(&minute) {
                current = q;
            }
            queues.push((minute, current.0, current.1));
        }
        Ok(SimReport {
            active_fill_ratio: round6(self.active_area as f64 / denominator),
            refill_ms: Percentiles::of(&self.refills),
            unfilled_vacancies: self.vacancies.len() as u64,
            hires: self.hires,
            turned_away: self.turned_away,
            workers_arrived: self.workers.len() as u64,
            workers_landed: self.landed,
            paid_waiting_minutes: round6(self.paid_waiting_ms as f64 / 60_000.0),
            paid_active_minutes: round6(paid_active_minutes),
            cost_cents: cost,
            cost_per_active_minute_cents: if paid_active_minutes > 0.0 {
                round6(cost as f64 / paid_active_minutes)
            } else {
                0.0
            },
            engine_inputs: self.inputs,
            platform_duplicate_calls: self.market.duplicate_calls(),
            queues,
            refills: self.refills,
        })
    }
}

impl SimWorker {
    fn vanished(&self, _now: Timestamp) -> bool {
        self.vanishes
    }
}

/// Rounds to six decimals so reports print the same on every platform.
fn round6(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let p = Percentiles::of(&[5, 1, 4, 2, 3]);
        assert_eq!((p.p50, p.p95, p.max, p.count), (3, 5, 5, 5));
        assert_eq!(Percentiles::of(&[]), Percentiles::default());
        let hundred: Vec<u64> = (1..=100).collect();
        let p = Percentiles::of(&hundred);
        assert_eq!((p.p50, p.p95, p.max), (50, 95, 100));
    }

    fn study(seed: u64, max_waiting: u32) -> SimConfig {
        use crate::model::HitSpec;
        use crate::pavilion::PavilionConfig;
        let pavilion = PavilionConfig {
            min_active: 2,
            max_active: 4,
            min_waiting: 0,
            max_waiting,
            heartbeat_timeout_ms: 60_000,
            base_pay_cents: 25,
            waiting_cents_per_minute: 5,
            ..PavilionConfig::default()
        };
        let spec = HitSpec {
            title: "t".into(),
            description: "d".into(),
            keywords: Vec::new(),
            reward: Money::usd_cents(25),
            assignment_duration_ms: 7_200_000,
            lifetime_ms: 86_400_000,
            max_assignments: 50,
            auto_approval_delay_ms: 1,
            qualifications: Vec::new(),
            landing_url: "https://localhost/".into(),
            frame_height: 600,
        };
        SimConfig {
            seed,
            duration_ms: 2 * 3_600_000,
            crowd: CrowdModel::default(),
            engine: EngineConfig::new(spec, pavilion),
            funds: Money::usd_cents(10_000_000),
            session: SessionId::new("sim-test"),
        }
    }

    #[tokio::test]
    async fn the_same_seed_gives_the_same_run_bit_for_bit() {
        let a = run(study(3, 2)).await.unwrap();
        let b = run(study(3, 2)).await.unwrap();
        // Bit for bit: compare the serialized reports (`==` on floats calls 0.0 and -0.0 equal).
        assert_eq!(
            serde_json::to_string(&a).unwrap(),
            serde_json::to_string(&b).unwrap()
        );
        assert!(a.workers_landed > 10, "the crowd did something: {a:?}");
        assert!(a.cost_cents > 0);
        let c = run(study(4, 2)).await.unwrap();
        assert_ne!(a.refills, c.refills, "another seed, another crowd");
    }

    #[tokio::test]
    async fn a_waiting_queue_refills_seats_faster() {
        let with = run(study(5, 3)).await.unwrap();
        let without = run(study(5, 0)).await.unwrap();
        assert!(with.refill_ms.count > 0 && without.refill_ms.count > 0);
        assert!(
            with.active_fill_ratio > without.active_fill_ratio,
            "{with:?} vs {without:?}"
        );
        assert!(
            with.refill_ms.p50 < without.refill_ms.p50,
            "{with:?} vs {without:?}"
        );
        assert!(with.paid_waiting_minutes > without.paid_waiting_minutes);
    }

    #[test]
    fn bad_models_are_refused() {
        let bad = [
            CrowdModel {
                arrivals_per_minute: 0.0,
                ..CrowdModel::default()
            },
            CrowdModel {
                return_probability: 1.5,
                ..CrowdModel::default()
            },
            CrowdModel {
                hourly_profile: vec![1.0; 23],
                ..CrowdModel::default()
            },
            CrowdModel {
                task_ms: f64::NAN,
                ..CrowdModel::default()
            },
        ];
        for model in bad {
            assert!(model.validate().is_err(), "{model:?}");
        }
        CrowdModel::default().validate().unwrap();
    }
}
