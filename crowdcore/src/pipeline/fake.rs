//! An in-memory [`PipelinePlatform`] with simulated workers, for tests and examples: pools and
//! tasks as Toloka keeps them, workers that take open tasks and answer with a configurable
//! accuracy, listings that show a write only some time after it happened (eventual
//! consistency), idempotency keys honoured, and seeded faults (throttling, 5xx, and timeouts
//! whose call was carried out). It counts what a duplicate-free driver must never cause:
//! tasks created twice, assignments reviewed twice, bonuses paid twice.
//!
//! The simulation is lazy and deterministic: every call first advances the workers, step by
//! step, to the clock's now; the same seed and the same calls at the same times give the same
//! answers.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::platform::{
    AssignedTask, AssignmentPage, AssignmentQuery, AssignmentStatus, NewTask, PipelinePlatform,
    PoolAssignment, PoolId, PoolInfo, PoolStatus, Solution, SortBy, TaskId, Values,
};
use crate::clock::Clock;
use crate::faults::{FaultCounts, FaultKind};
use crate::model::{AssignmentId, Money, Timestamp, WorkerId};
use crate::platform::{IdempotencyKey, PlatformError, PlatformErrorKind};

/// A simulated worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FakeWorker {
    /// Their id.
    pub id: WorkerId,
    /// The probability that an answer is right.
    pub accuracy: f64,
}

/// Produces a worker's answer to a task: `(pool, task input, worker, uniform draws in [0, 1))`.
pub type Oracle =
    Arc<dyn Fn(&PoolId, &Values, &FakeWorker, &mut dyn FnMut() -> f64) -> Values + Send + Sync>;

/// How the fake behaves.
#[derive(Clone)]
pub struct FakeConfig {
    /// Seeds the workers.
    pub seed: u64,
    /// The workers.
    pub workers: Vec<FakeWorker>,
    /// Workers act every this many milliseconds; everything done in one step shares its
    /// timestamp.
    pub step_ms: u64,
    /// The probability that an open slot of a task is taken (and answered at once) in a step.
    pub take_probability: f64,
    /// A write shows in listings up to this many milliseconds after it happened (uniform).
    pub listing_delay_ms: u64,
    /// The fraction of calls that fail (throttled, unavailable, or timed out after being
    /// carried out, in equal parts).
    pub fault_rate: f64,
    /// Seeds the faults (apart from the workers, so faults do not change answers).
    pub fault_seed: u64,
    /// Answers tasks.
    pub oracle: Oracle,
}

impl std::fmt::Debug for FakeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeConfig")
            .field("seed", &self.seed)
            .field("workers", &self.workers.len())
            .field("step_ms", &self.step_ms)
            .field("take_probability", &self.take_probability)
            .field("listing_delay_ms", &self.listing_delay_ms)
            .field("fault_rate", &self.fault_rate)
            .finish_non_exhaustive()
    }
}

impl FakeConfig {
    /// `n` workers of accuracy `accuracy`, answering with [`photo_oracle`]; 1 s steps, a
    /// half chance per slot per step, listings up to 20 s late, no faults.
    pub fn new(seed: u64, n: usize, accuracy: f64) -> Self {
        Self {
            seed,
            workers: (0..n)
                .map(|i| FakeWorker {
                    id: WorkerId::new(format!("w{i:03}")),
                    accuracy,
                })
                .collect(),
            step_ms: 1_000,
            take_probability: 0.5,
            listing_delay_ms: 20_000,
            fault_rate: 0.0,
            fault_seed: seed ^ 0x5eed,
            oracle: Arc::new(photo_oracle),
        }
    }
}

/// The seed's flow as the fake's workers answer it:
/// - a task with a `place` (submit): 1–3 photos, each `valid` with the worker's accuracy and
///   of high quality half the time: `{"photos": ["valid-hq-…", "invalid-lq-…"]}`;
/// - a task with an `item` (validate): `{"verdict": "yes"}` if the photo is valid, right with
///   the worker's accuracy;
/// - a task with `items` (quality): `{"quality": "good"}` if every photo is high quality,
///   right with the worker's accuracy.
pub fn photo_oracle(
    _pool: &PoolId,
    input: &Values,
    worker: &FakeWorker,
    draw: &mut dyn FnMut() -> f64,
) -> Values {
    let mut out = Values::new();
    let right = draw() < worker.accuracy;
    if let Some(place) = input.get("place").and_then(Value::as_str) {
        let n = 1 + (draw() * 3.0) as usize;
        let photos: Vec<Value> = (0..n.min(3))
            .map(|i| {
                let valid = if draw() < worker.accuracy {
                    "valid"
                } else {
                    "invalid"
                };
                let quality = if draw() < 0.5 { "hq" } else { "lq" };
                json!(format!("{valid}-{quality}-{place}-{}-{i}", worker.id))
            })
            .collect();
        out.insert("photos".into(), Value::Array(photos));
    } else if let Some(item) = input.get("item").and_then(Value::as_str) {
        let truth = item.starts_with("valid");
        out.insert(
            "verdict".into(),
            json!(if truth == right { "yes" } else { "no" }),
        );
    } else if let Some(items) = input.get("items").and_then(Value::as_array) {
        let truth = items
            .iter()
            .all(|i| i.as_str().is_some_and(|s| s.contains("-hq-")));
        out.insert(
            "quality".into(),
            json!(if truth == right { "good" } else { "bad" }),
        );
    }
    out
}

/// What the fake saw. The `duplicate_*` counts must stay 0 for a correct driver.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FakeCounts {
    /// Listing calls.
    pub lists: u64,
    /// Tasks created (each once).
    pub tasks_created: u64,
    /// Accepts that changed an assignment.
    pub accepts: u64,
    /// Rejects that changed an assignment.
    pub rejects: u64,
    /// Bonuses paid.
    pub bonuses: u64,
    /// Calls repeated with a key already used (answered from the first call).
    pub replayed_keys: u64,
    /// Tasks created under a new key with the same input as an existing task of the pool.
    pub duplicate_tasks: u64,
    /// Reviews of an already reviewed assignment under a new key.
    pub duplicate_reviews: u64,
    /// Bonuses to the same worker for the same assignment and comment under a new key.
    pub duplicate_bonuses: u64,
    /// Injected faults.
    pub faults: FaultCounts,
}

#[derive(Debug)]
struct FakePool {
    status: PoolStatus,
    last_started: Option<Timestamp>,
    last_stopped: Option<Timestamp>,
    auto_close: bool,
    tasks: Vec<TaskId>,
    inputs: BTreeSet<String>,
}

#[derive(Debug)]
struct FakeTask {
    input_values: Values,
    overlap: u32,
    done_by: Vec<WorkerId>,
}

#[derive(Debug)]
struct Listed {
    assignment: PoolAssignment,
    visible_at: Timestamp,
    reviewed_with: Option<IdempotencyKey>,
}

struct State {
    config: FakeConfig,
    rng: ChaCha8Rng,
    fault_rng: ChaCha8Rng,
    simulated_to: Timestamp,
    pools: BTreeMap<PoolId, FakePool>,
    tasks: BTreeMap<TaskId, FakeTask>,
    assignments: BTreeMap<AssignmentId, Listed>,
    keys: HashMap<IdempotencyKey, Vec<TaskId>>,
    bonuses: Vec<(WorkerId, Option<AssignmentId>, Money, String)>,
    counts: FakeCounts,
}

/// The in-memory pipeline platform. See the module docs. Clones share the same state.
#[derive(Clone)]
pub struct FakePipeline {
    state: Arc<Mutex<State>>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for FakePipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakePipeline").finish_non_exhaustive()
    }
}

impl FakePipeline {
    /// A platform with no pools, on `clock`.
    pub fn new(clock: Arc<dyn Clock>, config: FakeConfig) -> Self {
        let start = clock.now();
        Self {
            state: Arc::new(Mutex::new(State {
                rng: ChaCha8Rng::seed_from_u64(config.seed),
                fault_rng: ChaCha8Rng::seed_from_u64(config.fault_seed),
                config,
                simulated_to: start,
                pools: BTreeMap::new(),
                tasks: BTreeMap::new(),
                assignments: BTreeMap::new(),
                keys: HashMap::new(),
                bonuses: Vec::new(),
                counts: FakeCounts::default(),
            })),
            clock,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every mutation below completes before the lock is released; a panic in a test
        // leaves nothing half-done that later reads depend on.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a closed pool; `auto_close`: it closes when every task has its overlap.
    pub fn add_pool(&self, pool: &PoolId, auto_close: bool) {
        self.lock().pools.entry(pool.clone()).or_insert(FakePool {
            status: PoolStatus::Closed,
            last_started: None,
            last_stopped: None,
            auto_close,
            tasks: Vec::new(),
            inputs: BTreeSet::new(),
        });
    }

    /// Creates tasks as the requester would by hand (no key, no faults); returns their ids.
    pub fn add_tasks(
        &self,
        pool: &PoolId,
        tasks: &[NewTask],
    ) -> Result<Vec<TaskId>, PlatformError> {
        let now = self.clock.now();
        let mut s = self.lock();
        s.simulate(now);
        s.create(pool, tasks)
    }

    /// Changes the fault rate from now on.
    pub fn set_fault_rate(&self, rate: f64) {
        self.lock().config.fault_rate = rate;
    }

    /// What the fake saw so far.
    pub fn counts(&self) -> FakeCounts {
        self.lock().counts.clone()
    }

    /// Every assignment, by id, as it is now.
    pub fn assignments(&self) -> Vec<PoolAssignment> {
        self.lock()
            .assignments
            .values()
            .map(|l| l.assignment.clone())
            .collect()
    }

    /// Every task's input values, by pool.
    pub fn tasks(&self, pool: &PoolId) -> Vec<Values> {
        let s = self.lock();
        s.pools.get(pool).map_or_else(Vec::new, |p| {
            p.tasks
                .iter()
                .filter_map(|t| s.tasks.get(t).map(|t| t.input_values.clone()))
                .collect()
        })
    }

    /// Bonuses paid: worker, assignment, amount, comment.
    pub fn bonuses(&self) -> Vec<(WorkerId, Option<AssignmentId>, Money, String)> {
        self.lock().bonuses.clone()
    }

    /// Runs the workers up to `now` (every call does this by itself).
    pub fn simulate_until(&self, now: Timestamp) {
        self.lock().simulate(now);
    }

    /// Draws a fault for a call; counts the call.
    fn fault(&self) -> Option<FaultKind> {
        let mut s = self.lock();
        s.counts.faults.calls += 1;
        let rate = s.config.fault_rate;
        if rate.is_nan() || rate <= 0.0 || s.fault_rng.random::<f64>() >= rate {
            return None;
        }
        let kind = match s.fault_rng.random_range(0..3u8) {
            0 => FaultKind::Throttled,
            1 => FaultKind::Unavailable,
            _ => FaultKind::Timeout,
        };
        match kind {
            FaultKind::Throttled => s.counts.faults.throttled += 1,
            FaultKind::Unavailable => s.counts.faults.unavailable += 1,
            FaultKind::Timeout => s.counts.faults.timeouts += 1,
        }
        Some(kind)
    }

    /// Runs `call` under the fault model: refused before it runs, or run and its answer lost.
    fn faulty<T>(
        &self,
        call: impl FnOnce(&mut State, Timestamp) -> Result<T, PlatformError>,
    ) -> Result<T, PlatformError> {
        let fault = self.fault();
        if let Some(kind @ (FaultKind::Throttled | FaultKind::Unavailable)) = fault {
            return Err(kind.error());
        }
        let now = self.clock.now();
        let mut s = self.lock();
        s.simulate(now);
        let result = call(&mut s, now);
        match fault {
            Some(kind) => Err(kind.error()),
            None => result,
        }
    }
}

fn not_found(what: &str, id: &str) -> PlatformError {
    PlatformError::new(
        PlatformErrorKind::NotFound,
        "DoesNotExistApiError",
        format!("{what} {id} not found"),
    )
}

impl State {
    fn simulate(&mut self, now: Timestamp) {
        let step = self.config.step_ms.max(1);
        while self.simulated_to.plus_millis(step) <= now {
            self.simulated_to = self.simulated_to.plus_millis(step);
            let t = self.simulated_to;
            self.step(t);
        }
    }

    fn step(&mut self, t: Timestamp) {
        let open: Vec<PoolId> = self
            .pools
            .iter()
            .filter(|(_, p)| p.status == PoolStatus::Open)
            .map(|(id, _)| id.clone())
            .collect();
        for pool in open {
            let task_ids = self.pools[&pool].tasks.clone();
            for task_id in &task_ids {
                loop {
                    let task = &self.tasks[task_id];
                    if task.done_by.len() >= task.overlap as usize {
                        break;
                    }
                    if self.rng.random::<f64>() >= self.config.take_probability {
                        break;
                    }
                    let free: Vec<usize> = (0..self.config.workers.len())
                        .filter(|&w| !task.done_by.contains(&self.config.workers[w].id))
                        .collect();
                    if free.is_empty() {
                        break;
                    }
                    let worker =
                        self.config.workers[free[self.rng.random_range(0..free.len())]].clone();
                    let input = task.input_values.clone();
                    let rng = &mut self.rng;
                    let mut draw = || rng.random::<f64>();
                    let output = (self.config.oracle)(&pool, &input, &worker, &mut draw);
                    let delay = if self.config.listing_delay_ms > 0 {
                        self.rng.random_range(0..=self.config.listing_delay_ms)
                    } else {
                        0
                    };
                    let id = AssignmentId::new(format!("a{:08}", self.assignments.len() + 1));
                    let assignment = PoolAssignment {
                        id: id.clone(),
                        pool: pool.clone(),
                        worker: worker.id.clone(),
                        status: AssignmentStatus::Submitted,
                        created: t,
                        submitted: Some(t),
                        accepted: None,
                        rejected: None,
                        tasks: vec![AssignedTask {
                            id: task_id.clone(),
                            input_values: input,
                        }],
                        solutions: vec![Solution {
                            output_values: output,
                        }],
                    };
                    self.assignments.insert(
                        id,
                        Listed {
                            assignment,
                            visible_at: t.plus_millis(delay),
                            reviewed_with: None,
                        },
                    );
                    if let Some(task) = self.tasks.get_mut(task_id) {
                        task.done_by.push(worker.id);
                    }
                }
            }
            let p = &self.pools[&pool];
            let complete = p
                .tasks
                .iter()
                .all(|t| self.tasks[t].done_by.len() >= self.tasks[t].overlap as usize);
            if p.auto_close && complete {
                let p = self.pools.get_mut(&pool).expect("the pool was just read");
                p.status = PoolStatus::Closed;
                p.last_stopped = Some(t);
            }
        }
    }

    fn create(&mut self, pool: &PoolId, tasks: &[NewTask]) -> Result<Vec<TaskId>, PlatformError> {
        if !self.pools.contains_key(pool) {
            return Err(not_found("pool", pool.as_str()));
        }
        let mut ids = Vec::with_capacity(tasks.len());
        for task in tasks {
            if task.overlap == 0 {
                return Err(PlatformError::new(
                    PlatformErrorKind::BadRequest,
                    "ValidationError",
                    "overlap must be positive",
                ));
            }
        }
        for task in tasks {
            let id = TaskId::new(format!("t{:08}", self.tasks.len() + 1));
            let text = serde_json::to_string(&task.input_values).unwrap_or_default();
            let p = self.pools.get_mut(pool).expect("checked above");
            if !p.inputs.insert(text) {
                self.counts.duplicate_tasks += 1;
            }
            p.tasks.push(id.clone());
            self.tasks.insert(
                id.clone(),
                FakeTask {
                    input_values: task.input_values.clone(),
                    overlap: task.overlap,
                    done_by: Vec::new(),
                },
            );
            self.counts.tasks_created += 1;
            ids.push(id);
        }
        Ok(ids)
    }

    fn review(
        &mut self,
        now: Timestamp,
        assignment: &AssignmentId,
        accept: bool,
        key: &IdempotencyKey,
    ) -> Result<(), PlatformError> {
        let listed = self
            .assignments
            .get_mut(assignment)
            .ok_or_else(|| not_found("assignment", assignment.as_str()))?;
        let target = if accept {
            AssignmentStatus::Accepted
        } else {
            AssignmentStatus::Rejected
        };
        match listed.assignment.status {
            AssignmentStatus::Submitted => {
                listed.assignment.status = target;
                if accept {
                    listed.assignment.accepted = Some(now);
                    self.counts.accepts += 1;
                } else {
                    listed.assignment.rejected = Some(now);
                    self.counts.rejects += 1;
                }
                listed.reviewed_with = Some(key.clone());
                listed.visible_at = listed.visible_at.max(now);
                Ok(())
            }
            status if listed.reviewed_with.as_ref() == Some(key) && status == target => {
                self.counts.replayed_keys += 1;
                Ok(())
            }
            status => {
                self.counts.duplicate_reviews += 1;
                if status == target {
                    // Toloka refuses, and a client maps "already in this state" to success.
                    Ok(())
                } else {
                    Err(PlatformError::new(
                        PlatformErrorKind::Conflict,
                        "IncorrectActionsApiError",
                        format!("assignment {assignment} is {status:?}"),
                    ))
                }
            }
        }
    }
}

#[async_trait]
impl PipelinePlatform for FakePipeline {
    async fn list_assignments(
        &self,
        query: &AssignmentQuery,
    ) -> Result<AssignmentPage, PlatformError> {
        self.faulty(|s, now| {
            s.counts.lists += 1;
            if !s.pools.contains_key(&query.pool) {
                return Err(not_found("pool", query.pool.as_str()));
            }
            let mut items: Vec<&PoolAssignment> = s
                .assignments
                .values()
                .filter(|l| l.visible_at <= now && query.matches(&l.assignment))
                .map(|l| &l.assignment)
                .collect();
            if query.sort == SortBy::TimeThenId {
                items.sort_by(|a, b| {
                    (a.time(query.field), &a.id).cmp(&(b.time(query.field), &b.id))
                });
            }
            let limit = query.limit.max(1) as usize;
            let has_more = items.len() > limit;
            Ok(AssignmentPage {
                items: items.into_iter().take(limit).cloned().collect(),
                has_more,
            })
        })
    }

    async fn create_tasks(
        &self,
        pool: &PoolId,
        tasks: &[NewTask],
        key: &IdempotencyKey,
    ) -> Result<Vec<TaskId>, PlatformError> {
        self.faulty(|s, _| {
            if let Some(ids) = s.keys.get(key) {
                s.counts.replayed_keys += 1;
                return Ok(ids.clone());
            }
            let ids = s.create(pool, tasks)?;
            s.keys.insert(key.clone(), ids.clone());
            Ok(ids)
        })
    }

    async fn accept(
        &self,
        assignment: &AssignmentId,
        _comment: &str,
        key: &IdempotencyKey,
    ) -> Result<(), PlatformError> {
        self.faulty(|s, now| s.review(now, assignment, true, key))
    }

    async fn reject(
        &self,
        assignment: &AssignmentId,
        _comment: &str,
        key: &IdempotencyKey,
    ) -> Result<(), PlatformError> {
        self.faulty(|s, now| s.review(now, assignment, false, key))
    }

    async fn bonus(
        &self,
        worker: &WorkerId,
        assignment: Option<&AssignmentId>,
        amount: Money,
        comment: &str,
        key: &IdempotencyKey,
    ) -> Result<(), PlatformError> {
        self.faulty(|s, _| {
            if s.keys.contains_key(key) {
                s.counts.replayed_keys += 1;
                return Ok(());
            }
            let paid = (
                worker.clone(),
                assignment.cloned(),
                amount,
                comment.to_owned(),
            );
            if s.bonuses.contains(&paid) {
                s.counts.duplicate_bonuses += 1;
            }
            s.keys.insert(key.clone(), Vec::new());
            s.bonuses.push(paid);
            s.counts.bonuses += 1;
            Ok(())
        })
    }

    async fn pool(&self, pool: &PoolId) -> Result<PoolInfo, PlatformError> {
        self.faulty(|s, _| {
            let p = s
                .pools
                .get(pool)
                .ok_or_else(|| not_found("pool", pool.as_str()))?;
            Ok(PoolInfo {
                id: pool.clone(),
                status: p.status,
                last_started: p.last_started,
                last_stopped: p.last_stopped,
            })
        })
    }

    async fn open_pool(&self, pool: &PoolId) -> Result<(), PlatformError> {
        self.faulty(|s, now| {
            let p = s
                .pools
                .get_mut(pool)
                .ok_or_else(|| not_found("pool", pool.as_str()))?;
            if p.status != PoolStatus::Open {
                p.status = PoolStatus::Open;
                p.last_started = Some(now);
            }
            Ok(())
        })
    }

    async fn close_pool(&self, pool: &PoolId) -> Result<(), PlatformError> {
        self.faulty(|s, now| {
            let p = s
                .pools
                .get_mut(pool)
                .ok_or_else(|| not_found("pool", pool.as_str()))?;
            if p.status == PoolStatus::Open {
                p.status = PoolStatus::Closed;
                p.last_stopped = Some(now);
            }
            Ok(())
        })
    }
}
