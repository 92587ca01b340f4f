//! The retainer on a simulated crowd: tasks arrive as a Poisson stream, each needing `k`
//! workers at once, and a pool of retained workers on the [local marketplace](crate::local)
//! serves them through a real [`Engine`] driving the [`Retainer`], on a virtual clock.
//!
//! What it measures is what [`erlang_b`] predicts. A routed worker leaves the pool at once and
//! the pool hires a replacement, so a pool seat is "busy" from the routing until the
//! replacement lands: the recruiting time, exponential with mean `recruit_ms` (a slot opens;
//! a worker takes it after that long). With tasks at rate λ needing `k` workers, the offered
//! load is `E = k·λ·recruit_ms`, and a task that finds fewer than `k` workers waiting is a
//! **miss**. [`OnMiss::Drop`] turns the task away (Erlang's loss system exactly, for `k = 1`);
//! [`OnMiss::Wait`] invokes it anyway and it takes recruits as they land (what a real study
//! does, and what the arrival-to-`k`-workers latencies measure).
//!
//! The pool is kept by a standing reservation made at the start (`study`, starting after the
//! study ends), as an operator announces a session of work: a [`PoolTarget::Fixed`] pool
//! recruits while its template has a live reservation. Every task is a reservation of its
//! own, made and invoked when it arrives, and finished when its workers have submitted.

use std::collections::HashMap;
use std::sync::Arc;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Exp};
use serde::{Deserialize, Serialize};

use crate::clock::{Clock, VirtualClock};
use crate::engine::{Engine, EngineBuilder, EngineError, EngineEvent, RetainerEngineConfig};
use crate::local::LocalMarketplace;
use crate::model::{
    AssignmentId, HitId, HitSpec, Money, ReservationId, SessionId, TemplateId, Timestamp, WorkerId,
};
use crate::pavilion::EffectKind as PoolEffect;
use crate::retainer::{EffectKind, Input, PingKind, PoolTarget, Rejected, Retainer, erlang_b};
use crate::store::{MemoryStore, Store};

use super::events::{EventQueue, next_step};

use super::{Percentiles, round6};

/// What happens to a task that finds fewer than `k` workers in the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnMiss {
    /// It is turned away: Erlang's loss system.
    #[default]
    Drop,
    /// It is invoked anyway and takes recruits as they land.
    Wait,
}

/// A retainer study's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetainerStudy {
    /// The seed: same seed, same run.
    pub seed: u64,
    /// How long the study runs, in milliseconds of virtual time.
    pub duration_ms: u64,
    /// Tasks arriving per minute (Poisson).
    pub tasks_per_minute: f64,
    /// Workers each task needs at once (`k`).
    pub workers_per_task: u32,
    /// Workers kept on retainer (`c`).
    pub pool: u32,
    /// Mean milliseconds from a slot opening to a worker landing on it (exponential).
    pub recruit_ms: f64,
    /// Mean milliseconds a routed worker works before submitting (exponential).
    pub task_ms: f64,
    /// How often a worker's page pings.
    pub heartbeat_every_ms: u64,
    /// What a missed task does.
    pub on_miss: OnMiss,
    /// The HIT the pool posts (its reward is the base pay).
    pub spec: HitSpec,
    /// The engine's settings; its pool target is set to `Fixed(pool)`.
    pub engine: RetainerEngineConfig,
    /// The requester's funds on the marketplace.
    pub funds: Money,
    /// The session id (fixed, so that reruns are byte-identical).
    pub session: SessionId,
}

/// Settings a retainer study cannot run with.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StudyError {
    /// A rate or mean that must be positive and finite is not.
    #[error("{0} must be positive and finite")]
    NotPositive(&'static str),
    /// A task needing no workers, or a pool that can never serve one.
    #[error("workers_per_task must be at least 1 and at most the pool ({0})")]
    BadTaskSize(u32),
}

impl RetainerStudy {
    /// Checks the settings.
    pub fn validate(&self) -> Result<(), StudyError> {
        for (name, v) in [
            ("tasks_per_minute", self.tasks_per_minute),
            ("recruit_ms", self.recruit_ms),
            ("task_ms", self.task_ms),
            ("heartbeat_every_ms", self.heartbeat_every_ms as f64),
            ("duration_ms", self.duration_ms as f64),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return Err(StudyError::NotPositive(name));
            }
        }
        if self.workers_per_task == 0 || self.workers_per_task > self.pool {
            return Err(StudyError::BadTaskSize(self.pool));
        }
        Ok(())
    }

    /// The offered load in erlangs: worker requests per millisecond × mean recruiting time.
    pub fn offered_load(&self) -> f64 {
        f64::from(self.workers_per_task) * self.tasks_per_minute / 60_000.0 * self.recruit_ms
    }
}

/// What a retainer study measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetainerReport {
    /// Tasks that arrived.
    pub tasks: u64,
    /// Tasks that found fewer than `k` workers waiting.
    pub missed: u64,
    /// `missed / tasks`.
    pub miss_rate: f64,
    /// Erlang's B for the study's offered load and pool: the loss system's miss probability
    /// per worker request (exact for `k = 1` under [`OnMiss::Drop`]).
    pub erlang_b: f64,
    /// The offered load, in erlangs.
    pub offered_load: f64,
    /// Milliseconds from a task's arrival to its `k`-th worker routed, over the tasks that
    /// got them (a dropped task is not counted).
    pub time_to_workers_ms: Percentiles,
    /// Tasks still short of workers when the study ended ([`OnMiss::Wait`]).
    pub unserved: u64,
    /// Workers waiting in the pool, averaged over time.
    pub mean_waiting: f64,
    /// Slots hired.
    pub hires: u64,
    /// Workers who landed on a pool HIT.
    pub workers_landed: u64,
    /// Money paid out, in minor units.
    pub cost_cents: i64,
    /// Inputs the engine handled.
    pub engine_inputs: u64,
    /// Platform calls that repeated an idempotency key.
    pub platform_duplicate_calls: u64,
}

/// Why a retainer study failed.
#[derive(Debug, thiserror::Error)]
pub enum RetainerSimError {
    /// The settings are invalid.
    #[error("bad study: {0}")]
    Study(#[from] StudyError),
    /// The engine failed.
    #[error(transparent)]
    Engine(#[from] EngineError<Rejected>),
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    TaskArrives,
    Land(HitId),
    Ping(AssignmentId),
    Finish(AssignmentId),
}

struct Task {
    arrived_at: Timestamp,
    routed: u32,
    submitted: u32,
    done: bool,
}

struct Sim {
    study: RetainerStudy,
    rng: ChaCha8Rng,
    clock: VirtualClock,
    market: LocalMarketplace,
    engine: Engine<Retainer>,
    template: TemplateId,
    events: EventQueue<Event>,
    /// HITs seen on the market so far (new ones get recruits).
    hits_seen: usize,
    /// Present workers by assignment: routed to which task, if any.
    present: HashMap<AssignmentId, Option<u64>>,
    tasks: Vec<Task>,
    missed: u64,
    latencies: Vec<u64>,
    hires: u64,
    landed: u64,
    inputs: u64,
    waiting_area: u128,
    last_change: Timestamp,
    last_waiting: u32,
}

/// Runs a retainer study on an in-memory store.
pub async fn run_retainer(study: RetainerStudy) -> Result<RetainerReport, RetainerSimError> {
    run_retainer_on(study, Arc::new(MemoryStore::new())).await
}

/// Runs a retainer study whose log, outbox and ledger go to `store` (a fresh session).
pub async fn run_retainer_on(
    study: RetainerStudy,
    store: Arc<dyn Store>,
) -> Result<RetainerReport, RetainerSimError> {
    study.validate()?;
    let clock = VirtualClock::new(Timestamp::ZERO);
    let market = LocalMarketplace::new(Arc::new(clock.clone()), study.funds);
    let mut config = study.engine.clone();
    config.retainer.pool = PoolTarget::Fixed(study.pool);
    let engine = EngineBuilder::new(Arc::new(market.clone()), store, config)
        .clock(Arc::new(clock.clone()))
        .session(study.session.clone())
        .start()
        .await?;
    let mut sim = Sim {
        rng: ChaCha8Rng::seed_from_u64(study.seed),
        study,
        clock,
        market,
        engine,
        template: TemplateId::new("pool"),
        events: EventQueue::new(),
        hits_seen: 0,
        present: HashMap::new(),
        tasks: Vec::new(),
        missed: 0,
        latencies: Vec::new(),
        hires: 0,
        landed: 0,
        inputs: 0,
        waiting_area: 0,
        last_change: Timestamp::ZERO,
        last_waiting: 0,
    };
    sim.run().await?;
    sim.report().await
}

impl Sim {
    async fn run(&mut self) -> Result<(), RetainerSimError> {
        let end = Timestamp::from_millis(self.study.duration_ms);
        self.call(Input::RegisterTemplate {
            template: self.template.clone(),
            spec: self.study.spec.clone(),
            pool: None,
            budget_cents: None,
        })
        .await?;
        self.call(Input::MakeReservation {
            reservation: ReservationId::new("study"),
            template: self.template.clone(),
            foreign_id: "study".into(),
            payload: serde_json::Value::Null,
            start_at: end.plus_millis(86_400_000),
            needed: 1,
        })
        .await?;
        let gap = self.task_gap();
        self.schedule(Timestamp::ZERO.plus_millis(gap), Event::TaskArrives);
        loop {
            let next = next_step(self.events.next_at(), self.engine.next_wakeup(), end);
            if next >= end {
                break;
            }
            self.clock.set(next);
            if self.engine.next_wakeup().is_some_and(|t| t <= next) {
                self.inputs += 1;
                self.engine.advance().await?;
                self.after_engine_call();
            }
            while let Some(event) = self.events.pop_due(next) {
                self.on(event).await?;
            }
        }
        self.clock.set(end);
        self.track_waiting();
        Ok(())
    }

    fn schedule(&mut self, at: Timestamp, event: Event) {
        self.events.schedule(at, event);
    }

    fn exp_ms(&mut self, mean_ms: f64) -> u64 {
        // Validated: every mean is positive and finite.
        let exp = Exp::new(1.0 / mean_ms).expect("positive rate");
        exp.sample(&mut self.rng).round() as u64
    }

    fn task_gap(&mut self) -> u64 {
        let mean = 60_000.0 / self.study.tasks_per_minute;
        self.exp_ms(mean).max(1)
    }

    fn now(&self) -> Timestamp {
        self.clock.now()
    }

    fn waiting(&self) -> u32 {
        self.engine
            .machine()
            .pool(&self.template)
            .map_or(0, |p| p.waiting_len())
    }

    /// Feeds an input; a refusal (a worker acting after the engine let them go) is part of
    /// life, anything else ends the run.
    async fn call(&mut self, input: Input) -> Result<(), RetainerSimError> {
        self.inputs += 1;
        let result = self.engine.input(input).await;
        self.after_engine_call();
        match result {
            Ok(()) | Err(EngineError::Rejected(_)) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    async fn on(&mut self, event: Event) -> Result<(), RetainerSimError> {
        let now = self.now();
        match event {
            Event::TaskArrives => {
                let gap = self.task_gap();
                self.schedule(now.plus_millis(gap), Event::TaskArrives);
                let k = self.study.workers_per_task;
                let n = self.tasks.len() as u64;
                let missed = self.waiting() < k;
                self.tasks.push(Task {
                    arrived_at: now,
                    routed: 0,
                    submitted: 0,
                    done: false,
                });
                if missed {
                    self.missed += 1;
                    if self.study.on_miss == OnMiss::Drop {
                        self.tasks[n as usize].done = true;
                        return Ok(());
                    }
                }
                let reservation = ReservationId::new(format!("task-{n}"));
                self.call(Input::MakeReservation {
                    reservation: reservation.clone(),
                    template: self.template.clone(),
                    foreign_id: format!("task-{n}"),
                    payload: serde_json::Value::Null,
                    start_at: now,
                    needed: k,
                })
                .await?;
                self.call(Input::Invoke { reservation }).await?;
            }
            Event::Land(hit) => {
                let worker = WorkerId::new(format!("W{}", self.landed));
                let Ok(assignment) = self.market.accept(&worker, &hit) else {
                    return Ok(()); // the HIT was closed (refreshed, cancelled) meanwhile
                };
                self.landed += 1;
                self.present.insert(assignment.clone(), None);
                let every = self.study.heartbeat_every_ms;
                self.schedule(now.plus_millis(every), Event::Ping(assignment.clone()));
                self.call(Input::Arrive {
                    worker,
                    assignment,
                    hit,
                })
                .await?;
            }
            Event::Ping(assignment) => {
                let Some(task) = self.present.get(&assignment) else {
                    return Ok(()); // gone
                };
                let kind = if task.is_some() {
                    PingKind::Working
                } else {
                    PingKind::Waiting
                };
                let every = self.study.heartbeat_every_ms;
                self.schedule(now.plus_millis(every), Event::Ping(assignment.clone()));
                self.call(Input::Ping { assignment, kind }).await?;
            }
            Event::Finish(assignment) => {
                let Some(Some(task)) = self.present.remove(&assignment) else {
                    return Ok(());
                };
                let _ = self.market.submit(&assignment, Some("done".into()));
                self.call(Input::Submit {
                    assignment,
                    contributions: 1,
                })
                .await?;
                let t = &mut self.tasks[task as usize];
                t.submitted += 1;
                if t.submitted == self.study.workers_per_task {
                    self.call(Input::Finish {
                        reservation: ReservationId::new(format!("task-{task}")),
                    })
                    .await?;
                }
            }
        }
        Ok(())
    }

    /// Reacts to what the engine did: routes, releases, turn-aways, time-outs; new HITs get
    /// their recruits.
    fn after_engine_call(&mut self) {
        let now = self.now();
        let mut hired = false;
        while let Some(event) = self.engine.poll_event() {
            let EngineEvent::Effect(effect) = event else {
                continue;
            };
            match effect.kind {
                EffectKind::Route {
                    reservation,
                    assignment,
                    ..
                } => {
                    let Some(n) = reservation
                        .as_str()
                        .strip_prefix("task-")
                        .and_then(|n| n.parse::<u64>().ok())
                    else {
                        continue;
                    };
                    if let Some(slot) = self.present.get_mut(&assignment) {
                        *slot = Some(n);
                    }
                    let k = self.study.workers_per_task;
                    let task = &mut self.tasks[n as usize];
                    task.routed += 1;
                    if task.routed == k && !task.done {
                        task.done = true;
                        let latency = now.millis_since(task.arrived_at);
                        self.latencies.push(latency);
                    }
                    let work = self.exp_ms(self.study.task_ms);
                    self.schedule(now.plus_millis(work), Event::Finish(assignment));
                }
                EffectKind::Pool { effect, .. } => match effect {
                    PoolEffect::Hire { count } => {
                        self.hires += u64::from(count);
                        hired = true;
                    }
                    PoolEffect::Release { assignment, .. } => {
                        // The page auto-submits.
                        let _ = self.market.submit(&assignment, None);
                        self.present.remove(&assignment);
                    }
                    PoolEffect::TurnAway { assignment, .. } => {
                        // The page asks them to return the HIT; its slot opens again.
                        let _ = self.market.return_assignment(&assignment);
                        self.present.remove(&assignment);
                    }
                    PoolEffect::TimedOut { assignment, .. } => {
                        self.present.remove(&assignment);
                    }
                    _ => {}
                },
                EffectKind::NotifyWorkers { .. } => {}
            }
        }
        if hired {
            // Each new slot is taken by a recruit after an exponential delay.
            let hits = self.market.hits_after(self.hits_seen);
            self.hits_seen += hits.len();
            for (hit, slots, _, expired) in hits {
                if expired {
                    continue;
                }
                for _ in 0..slots {
                    let delay = self.exp_ms(self.study.recruit_ms);
                    self.schedule(now.plus_millis(delay), Event::Land(hit.clone()));
                }
            }
        }
        self.track_waiting();
    }

    fn track_waiting(&mut self) {
        let now = self.now();
        let span = now.millis_since(self.last_change);
        self.waiting_area += u128::from(span) * u128::from(self.last_waiting);
        self.last_change = now;
        self.last_waiting = self.waiting();
    }

    async fn report(self) -> Result<RetainerReport, RetainerSimError> {
        let tasks = self.tasks.len() as u64;
        let cost: i64 = self
            .engine
            .ledger()
            .await?
            .iter()
            .filter(|e| e.paid)
            .map(|e| e.amount.minor)
            .sum();
        let offered_load = self.study.offered_load();
        Ok(RetainerReport {
            tasks,
            missed: self.missed,
            miss_rate: if tasks == 0 {
                0.0
            } else {
                round6(self.missed as f64 / tasks as f64)
            },
            erlang_b: round6(erlang_b(offered_load, self.study.pool)),
            offered_load: round6(offered_load),
            time_to_workers_ms: Percentiles::of(&self.latencies),
            unserved: self.tasks.iter().filter(|t| !t.done).count() as u64,
            mean_waiting: round6(self.waiting_area as f64 / self.study.duration_ms as f64),
            hires: self.hires,
            workers_landed: self.landed,
            cost_cents: cost,
            engine_inputs: self.inputs,
            platform_duplicate_calls: self.market.duplicate_calls(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::retainer::RetainerConfig;

    fn study(seed: u64, pool: u32, on_miss: OnMiss) -> RetainerStudy {
        RetainerStudy {
            seed,
            duration_ms: 4 * 3_600_000,
            tasks_per_minute: 2.0,
            workers_per_task: 1,
            pool,
            recruit_ms: 120_000.0,
            task_ms: 60_000.0,
            heartbeat_every_ms: 20_000,
            on_miss,
            spec: HitSpec {
                title: "t".into(),
                description: "d".into(),
                keywords: Vec::new(),
                reward: Money::usd_cents(10),
                assignment_duration_ms: 7_200_000,
                lifetime_ms: 86_400_000,
                max_assignments: 100,
                auto_approval_delay_ms: 1,
                qualifications: Vec::new(),
                landing_url: "https://localhost/".into(),
                frame_height: 600,
            },
            engine: RetainerEngineConfig::new(RetainerConfig {
                heartbeat_timeout_ms: 60_000,
                waiting_cents_per_minute: 1,
                ..RetainerConfig::default()
            }),
            funds: Money::usd_cents(100_000_000),
            session: SessionId::new("retainer-sim"),
        }
    }

    #[tokio::test]
    async fn the_same_seed_gives_the_same_run() {
        let a = run_retainer(study(1, 5, OnMiss::Wait)).await.unwrap();
        let b = run_retainer(study(1, 5, OnMiss::Wait)).await.unwrap();
        assert_eq!(
            serde_json::to_string(&a).unwrap(),
            serde_json::to_string(&b).unwrap()
        );
        assert!(a.tasks > 300, "{a:?}");
        assert_eq!(a.platform_duplicate_calls, 0);
        assert!(a.cost_cents > 0);
    }

    #[tokio::test]
    async fn a_bigger_pool_misses_less_and_waits_less() {
        let small = run_retainer(study(2, 3, OnMiss::Wait)).await.unwrap();
        let big = run_retainer(study(2, 9, OnMiss::Wait)).await.unwrap();
        assert!(big.miss_rate < small.miss_rate, "{small:?} vs {big:?}");
        assert!(
            big.time_to_workers_ms.p95 <= small.time_to_workers_ms.p95,
            "{small:?} vs {big:?}"
        );
        assert!(big.mean_waiting > small.mean_waiting);
    }

    #[test]
    fn bad_studies_are_refused() {
        let mut s = study(1, 3, OnMiss::Drop);
        s.workers_per_task = 4;
        assert_eq!(s.validate(), Err(StudyError::BadTaskSize(3)));
        let mut s = study(1, 3, OnMiss::Drop);
        s.recruit_ms = 0.0;
        assert_eq!(s.validate(), Err(StudyError::NotPositive("recruit_ms")));
    }
}
