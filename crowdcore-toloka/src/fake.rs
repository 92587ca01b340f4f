//! A local fake Toloka for tests (feature `fake`): an axum app on `127.0.0.1` that speaks the
//! REST JSON of Toloka API v1 for the parts this crate uses — pools, tasks, assignments,
//! operations and their logs, user bonuses, user restrictions, skills and user skills, the
//! requester, message threads.
//!
//! What makes it useful for testing a client rather than a happy path:
//!
//! - **Simulated workers**: [`FakeToloka::take`], [`submit`](FakeToloka::submit),
//!   [`skip`](FakeToloka::skip), [`expire`](FakeToloka::expire), and
//!   [`work`](FakeToloka::work) which lets a crowd answer every open task of a pool. Skipped
//!   and expired assignments give their slot back, as on Toloka.
//! - **Eventual consistency**: `GET /assignments` shows each assignment as it was
//!   [`FakeConfig::listing_lag_ms`] ago (by the fake's clock); reads by id are current.
//! - **Asynchronous operations** that stay `RUNNING` for [`FakeConfig::operation_polls`]
//!   reads, and `operation_id` idempotency (`409 OPERATION_ALREADY_EXISTS`); pool opens and
//!   closes that take time ([`FakeConfig::pool_operation_ms`]) and lock the pool meanwhile
//!   (`409 POOL_LOCKED_BY_ANOTHER_OPERATION`), and `GET /operations` to find them.
//! - **Faults**: seeded ([`FaultPlan`]) or scripted ([`FakeToloka::inject`]) 429s with a quota
//!   window, 503s before the work, 500s and slow answers *after* the work was done (the answer is
//!   lost, the effect is not), which is what idempotency has to survive.
//! - **Accounting**: every request is recorded ([`FakeToloka::requests`]), and tasks, bonuses,
//!   reviews and charges can be counted to prove nothing happened twice.
//!
//! Times come from a crowdcore [`Clock`]: share a [`VirtualClock`](crowdcore::clock::VirtualClock)
//! with the code under test to control lag and timestamps exactly.
//!
//! In another crate's tests: `crowdcore-toloka = { workspace = true, features = ["fake"] }`
//! under `[dev-dependencies]`, then:
//!
//! ```
//! use std::sync::Arc;
//! use crowdcore::clock::VirtualClock;
//! use crowdcore::model::Timestamp;
//! use crowdcore_toloka::fake::{FakeConfig, FakeToloka};
//! use crowdcore_toloka::model::{CreateTasksOptions, NewTask, Usd};
//! use crowdcore_toloka::{ClientConfig, Credentials, TolokaClient};
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let clock = Arc::new(VirtualClock::new(Timestamp::from_millis(1_714_521_600_000)));
//! let fake = FakeToloka::start(FakeConfig::new(clock.clone())).await.unwrap();
//! let pool = fake.create_pool("project-1", Usd::from_cents(5));
//! let client = TolokaClient::new(ClientConfig::new(
//!     fake.base_url(),
//!     Credentials::ApiKey("any".into()),
//! ))
//! .unwrap();
//! let mut input = serde_json::Map::new();
//! input.insert("image".into(), "https://example.com/1.png".into());
//! let options = CreateTasksOptions { open_pool: true, ..Default::default() };
//! client.create_tasks(&[NewTask::new(&pool, input, 2)], options, None).await.unwrap();
//! // Two simulated workers answer every task they can take.
//! let done = fake.work(&pool, &["w1", "w2"], |_, worker| serde_json::json!({ "label": worker }));
//! assert_eq!(done.len(), 2);
//! # });
//! ```

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use crowdcore::clock::Clock;
use crowdcore::model::Timestamp;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Map, Value, json};

use crate::model::{AssignmentStatus, TimeField, TolokaTime, Usd};

/// How the fake behaves.
#[derive(Debug, Clone)]
pub struct FakeConfig {
    /// The fake's clock: creation, submission and review times, the listing lag, expiry.
    pub clock: Arc<dyn Clock>,
    /// `GET /assignments` shows assignments as they were this many milliseconds ago.
    pub listing_lag_ms: u64,
    /// How many reads of a new operation answer `RUNNING` before it completes.
    pub operation_polls: u32,
    /// How long opening or closing a pool takes, by the fake's clock. `0` (the default): the
    /// pool changes at once (its operation completes after [`operation_polls`] reads, as
    /// others do). Above `0` it runs as on Toloka: the pool keeps its status and is **locked**
    /// until the operation completes, this long after it was started (however often it is
    /// read); meanwhile an open or close of the pool is refused with `409
    /// POOL_LOCKED_BY_ANOTHER_OPERATION` (Toloka's documented rule: wait for a pool's operation
    /// to finish before starting another). Running operations can be found with `GET
    /// /operations?type=POOL.OPEN&status=RUNNING`.
    ///
    /// [`operation_polls`]: FakeConfig::operation_polls
    pub pool_operation_ms: u64,
    /// The requester's starting balance.
    pub balance: Usd,
    /// If set, requests must carry `ApiKey <token>` or `OAuth <token>`.
    pub token: Option<String>,
    /// Seeded faults.
    pub faults: FaultPlan,
}

impl FakeConfig {
    /// No lag, operations done on the first read, $1000, any token, no faults.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self {
            clock,
            listing_lag_ms: 0,
            operation_polls: 0,
            pool_operation_ms: 0,
            balance: Usd::from_cents(100_000),
            token: None,
            faults: FaultPlan::none(),
        }
    }
}

/// A fault the fake can inject into one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fault {
    /// `429 TOO_MANY_REQUESTS` with a per-minute quota window and `Retry-After: 0`; nothing done.
    Throttle,
    /// `429 TOO_MANY_REQUESTS` with a per-day quota window and no `Retry-After`; nothing done.
    QuotaExhausted,
    /// `429 TOO_MANY_REQUESTS` with a per-minute quota window and `Retry-After: 120` (two
    /// minutes, the longest a client honours by default); nothing done.
    LongThrottle,
    /// `503 REMOTE_SERVICE_UNAVAILABLE`; nothing done.
    Unavailable,
    /// The request is carried out, then `500 INTERNAL_ERROR` is answered: the answer is lost.
    LostAnswer,
    /// The request is carried out, then the answer is held for [`FaultPlan::slow_ms`] (longer
    /// than the client's timeout, so it sees a timeout).
    SlowAnswer,
}

/// Faults drawn at seeded points: each request draws from a ChaCha8 stream seeded with
/// `seed`, and with probability `per_mille / 1000` gets one of `kinds` (drawn too).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultPlan {
    /// The seed.
    pub seed: u64,
    /// Faults per thousand requests.
    pub per_mille: u32,
    /// The faults to draw from.
    pub kinds: Vec<Fault>,
    /// How long a [`Fault::SlowAnswer`] holds the answer, in milliseconds.
    pub slow_ms: u64,
}

impl FaultPlan {
    /// No faults.
    pub fn none() -> Self {
        Self {
            seed: 0,
            per_mille: 0,
            kinds: Vec::new(),
            slow_ms: 0,
        }
    }

    /// `per_mille` faults per thousand requests, of every kind but slow answers.
    pub fn seeded(seed: u64, per_mille: u32) -> Self {
        Self {
            seed,
            per_mille,
            kinds: vec![Fault::Throttle, Fault::Unavailable, Fault::LostAnswer],
            slow_ms: 0,
        }
    }
}

/// A request as the fake received it.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedRequest {
    /// The HTTP method.
    pub method: String,
    /// The path below `/api/v1` (`/tasks`).
    pub path: String,
    /// The query string pairs, in order.
    pub query: Vec<(String, String)>,
    /// The JSON body (`Null` if none).
    pub body: Value,
    /// The `Authorization` header.
    pub authorization: Option<String>,
}

impl RecordedRequest {
    /// The value of query parameter `key`.
    pub fn param(&self, key: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Why a simulated worker could not act.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WorkerError {
    /// No such task, pool or assignment.
    #[error("unknown {0}")]
    Unknown(String),
    /// The pool is not open.
    #[error("pool {0} is not open")]
    PoolClosed(String),
    /// The task has no slot left for this worker.
    #[error("task {0} has no slot for this worker")]
    NoSlot(String),
    /// The worker is restricted from this pool.
    #[error("worker {0} is blocked")]
    Blocked(String),
    /// The assignment is not active.
    #[error("assignment {0} is not active")]
    NotActive(String),
}

#[derive(Debug, Clone)]
struct FakePool {
    project_id: String,
    status: &'static str,
    reward: Usd,
    default_overlap: u32,
    created: u64,
    last_close_reason: Option<&'static str>,
    last_started: Option<u64>,
    last_stopped: Option<u64>,
    /// The running operation that locks the pool, if any.
    locked_by: Option<String>,
}

#[derive(Debug, Clone)]
struct FakeTask {
    pool_id: String,
    input_values: Map<String, Value>,
    overlap: u32,
    created: u64,
    origin: Value,
}

#[derive(Debug, Clone)]
struct FakeAssignment {
    task_id: String,
    pool_id: String,
    user_id: String,
    status: AssignmentStatus,
    reward: Usd,
    times: BTreeMap<TimeField, u64>,
    solutions: Vec<Value>,
    public_comment: Option<String>,
    bonus_ids: Vec<String>,
}

#[derive(Debug, Clone)]
struct FakeOperation {
    body: Map<String, Value>,
    polls_left: u32,
    fail: bool,
    log: Vec<Value>,
    /// A timed pool operation: the pool, the status it gets, and when it completes.
    pool_change: Option<PoolChange>,
}

#[derive(Debug, Clone)]
struct PoolChange {
    pool_id: String,
    target: &'static str,
    done_at: u64,
}

#[derive(Debug)]
struct World {
    config: FakeConfig,
    rng: ChaCha8Rng,
    next_id: u64,
    pools: BTreeMap<String, FakePool>,
    /// Projects created with [`FakeToloka::create_project`], as Toloka shows them.
    projects: BTreeMap<String, Value>,
    tasks: BTreeMap<String, FakeTask>,
    assignments: BTreeMap<String, FakeAssignment>,
    /// Every version of every assignment with the time it became visible to listings.
    versions: BTreeMap<String, Vec<(u64, Value)>>,
    operations: BTreeMap<String, FakeOperation>,
    bonuses: BTreeMap<String, Value>,
    restrictions: BTreeMap<String, Value>,
    skills: BTreeMap<String, Value>,
    user_skills: BTreeMap<String, Value>,
    messages: Vec<Value>,
    balance_micros: i64,
    charged_micros: i64,
    requests: Vec<RecordedRequest>,
    scripted: Vec<(Option<Method>, String, Fault, u32)>,
    fault_count: u64,
    operation_repeats: u64,
    review_repeats: u64,
    lock_refusals: u64,
    auto_close: bool,
}

/// A running fake Toloka. Dropping it stops the server.
#[derive(Debug)]
pub struct FakeToloka {
    addr: SocketAddr,
    world: Arc<Mutex<World>>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FakeToloka {
    fn drop(&mut self) {
        self.server.abort();
    }
}

type Shared = Arc<Mutex<World>>;

fn lock(world: &Shared) -> MutexGuard<'_, World> {
    // Every handler validates before it mutates; data behind a poisoned lock is intact.
    let mut w = world.lock().unwrap_or_else(|e| e.into_inner());
    w.settle();
    w
}

fn time_text(ms: u64) -> Value {
    TolokaTime::from_timestamp(Timestamp::from_millis(ms))
        .map(|t| Value::String(t.to_string()))
        .unwrap_or(Value::Null)
}

fn error(status: StatusCode, code: &str, message: impl Into<String>, payload: Value) -> Response {
    let mut doc = json!({ "code": code, "message": message.into(), "request_id": "fake" });
    if !payload.is_null() {
        doc["payload"] = payload;
    }
    (status, axum::Json(doc)).into_response()
}

fn ok(status: StatusCode, body: Value) -> Response {
    (status, axum::Json(body)).into_response()
}

fn not_found(what: &str) -> Response {
    error(
        StatusCode::NOT_FOUND,
        "DOES_NOT_EXIST",
        format!("{what} does not exist"),
        Value::Null,
    )
}

impl FakeToloka {
    /// Starts the fake on a free port of 127.0.0.1. Needs a multi-threaded or current-thread
    /// tokio runtime with I/O enabled.
    pub async fn start(config: FakeConfig) -> std::io::Result<Self> {
        let world = World {
            rng: ChaCha8Rng::seed_from_u64(config.faults.seed),
            balance_micros: config.balance.micros,
            config,
            next_id: 0,
            pools: BTreeMap::new(),
            projects: BTreeMap::new(),
            tasks: BTreeMap::new(),
            assignments: BTreeMap::new(),
            versions: BTreeMap::new(),
            operations: BTreeMap::new(),
            bonuses: BTreeMap::new(),
            restrictions: BTreeMap::new(),
            skills: BTreeMap::new(),
            user_skills: BTreeMap::new(),
            messages: Vec::new(),
            charged_micros: 0,
            requests: Vec::new(),
            scripted: Vec::new(),
            fault_count: 0,
            operation_repeats: 0,
            review_repeats: 0,
            lock_refusals: 0,
            auto_close: false,
        };
        let world = Arc::new(Mutex::new(world));
        let app = Router::new().fallback(handle).with_state(world.clone());
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let server = tokio::spawn(async move {
            // The server ends only when the handle is dropped (the task is aborted).
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self {
            addr,
            world,
            server,
        })
    }

    /// The API root to give a client: `http://127.0.0.1:port/api/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}/api/v1", self.addr)
    }

    fn world(&self) -> MutexGuard<'_, World> {
        lock(&self.world)
    }

    // ----- setting up ------------------------------------------------------------------------

    /// Creates a closed pool in `project_id` paying `reward` per assignment, with a default
    /// overlap of 1; returns its id.
    pub fn create_pool(&self, project_id: &str, reward: Usd) -> String {
        let mut w = self.world();
        let id = w.new_id("");
        let now = w.now();
        w.pools.insert(
            id.clone(),
            FakePool {
                project_id: project_id.to_owned(),
                status: "CLOSED",
                reward,
                default_overlap: 1,
                created: now,
                last_close_reason: Some("MANUAL"),
                last_started: None,
                last_stopped: None,
                locked_by: None,
            },
        );
        id
    }

    /// Creates a project with this task specification (`input_spec` and `output_spec` in
    /// Toloka's JSON: `{"field": {"type": "string", "required": false}}`; `required` defaults
    /// to `true`, as on Toloka); returns its id. Tasks created in its pools are validated
    /// against `input_spec` as Toloka does: a required field missing (`VALUE_REQUIRED`), a
    /// field it does not declare (`VALUE_NOT_ALLOWED`) or a value of the wrong type refuses
    /// the task. (Pools of a project id never created here take any input.)
    pub fn create_project(&self, input_spec: Value, output_spec: Value) -> String {
        let mut w = self.world();
        let id = w.new_id("");
        let created = time_text(w.now());
        w.projects.insert(
            id.clone(),
            json!({
                "id": id,
                "public_name": { "EN": format!("project {id}") },
                "public_description": { "EN": "a fake project" },
                "status": "ACTIVE",
                "created": created,
                "task_spec": {
                    "input_spec": input_spec,
                    "output_spec": output_spec,
                    "view_spec": { "type": "tb", "config": {} },
                },
            }),
        );
        id
    }

    /// Creates a skill; returns its id.
    pub fn create_skill(&self, name: &str) -> String {
        let mut w = self.world();
        let id = w.new_id("");
        let created = time_text(w.now());
        w.skills.insert(
            id.clone(),
            json!({ "id": id, "name": name, "hidden": true, "created": created }),
        );
        id
    }

    /// Makes the next `times` requests whose method is `method` (any if `None`) and whose
    /// path (below `/api/v1`) starts with `path_prefix` fail with `fault`. Scripted faults come
    /// before seeded ones.
    pub fn inject(&self, method: Option<Method>, path_prefix: &str, fault: Fault, times: u32) {
        self.world()
            .scripted
            .push((method, path_prefix.to_owned(), fault, times));
    }

    /// Drops the scripted faults not yet used up.
    pub fn clear_faults(&self) {
        self.world().scripted.clear();
    }

    /// Changes the seeded fault plan from now on.
    pub fn set_faults(&self, plan: FaultPlan) {
        let mut w = self.world();
        w.rng = ChaCha8Rng::seed_from_u64(plan.seed);
        w.config.faults = plan;
    }

    /// Closes a pool by itself (`last_close_reason` `COMPLETED`) when a worker submits the last
    /// answer its tasks need, or when it is opened with every task complete, as Toloka does;
    /// off by default.
    pub fn set_auto_close(&self, on: bool) {
        self.world().auto_close = on;
    }

    /// Changes the listing lag.
    pub fn set_listing_lag(&self, ms: u64) {
        self.world().config.listing_lag_ms = ms;
    }

    // ----- simulated workers -----------------------------------------------------------------

    /// Worker `user_id` takes a slot of `task_id`: a new `ACTIVE` assignment.
    pub fn take(&self, task_id: &str, user_id: &str) -> Result<String, WorkerError> {
        self.world().take(task_id, user_id)
    }

    /// Worker `user_id` takes the oldest task of `pool_id` with a slot they may take, if any.
    pub fn take_next(&self, pool_id: &str, user_id: &str) -> Result<Option<String>, WorkerError> {
        let mut w = self.world();
        let tasks: Vec<String> = w
            .tasks
            .iter()
            .filter(|(_, t)| t.pool_id == pool_id)
            .map(|(id, _)| id.clone())
            .collect();
        for t in tasks {
            match w.take(&t, user_id) {
                Ok(a) => return Ok(Some(a)),
                Err(WorkerError::NoSlot(_)) => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    }

    /// The worker submits `output_values` for an active assignment.
    pub fn submit(&self, assignment_id: &str, output_values: Value) -> Result<(), WorkerError> {
        self.world().finish(
            assignment_id,
            AssignmentStatus::Submitted,
            Some(output_values),
        )
    }

    /// The worker skips (returns) an active assignment: its slot opens again.
    pub fn skip(&self, assignment_id: &str) -> Result<(), WorkerError> {
        self.world()
            .finish(assignment_id, AssignmentStatus::Skipped, None)
    }

    /// An active assignment runs out of time: its slot opens again.
    pub fn expire(&self, assignment_id: &str) -> Result<(), WorkerError> {
        self.world()
            .finish(assignment_id, AssignmentStatus::Expired, None)
    }

    /// Lets `workers` work `pool_id` until no one can take anything: each, in turn, takes the
    /// next task they may take and submits `answer(task input, worker)`. Returns the
    /// assignments submitted, in order.
    pub fn work(
        &self,
        pool_id: &str,
        workers: &[&str],
        answer: impl Fn(&Map<String, Value>, &str) -> Value,
    ) -> Vec<String> {
        let mut done = Vec::new();
        loop {
            let mut any = false;
            for worker in workers {
                let Ok(Some(a)) = self.take_next(pool_id, worker) else {
                    continue;
                };
                let input = {
                    let w = self.world();
                    let task = &w.assignments[&a].task_id;
                    w.tasks[task].input_values.clone()
                };
                let out = answer(&input, worker);
                if self.submit(&a, out).is_ok() {
                    done.push(a);
                    any = true;
                }
            }
            if !any {
                return done;
            }
        }
    }

    // ----- reading the state -----------------------------------------------------------------

    /// Every request received, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.world().requests.clone()
    }

    /// How many requests were received (cheaper than [`requests`](Self::requests)).
    pub fn request_count(&self) -> usize {
        self.world().requests.len()
    }

    /// How many creations came again with an `operation_id` already used (answered `409
    /// OPERATION_ALREADY_EXISTS`, nothing done): re-sent effects that did no harm.
    pub fn operation_repeats(&self) -> u64 {
        self.world().operation_repeats
    }

    /// How many reviews asked for the status the assignment already had (answered 409,
    /// nothing done).
    pub fn review_repeats(&self) -> u64 {
        self.world().review_repeats
    }

    /// How many pool opens or closes were refused because another operation held the pool
    /// (`409 POOL_LOCKED_BY_ANOTHER_OPERATION`).
    pub fn lock_refusals(&self) -> u64 {
        self.world().lock_refusals
    }

    /// How many faults were injected.
    pub fn faults_injected(&self) -> u64 {
        self.world().fault_count
    }

    /// Task ids of a pool, oldest first.
    pub fn task_ids(&self, pool_id: &str) -> Vec<String> {
        self.world()
            .tasks
            .iter()
            .filter(|(_, t)| t.pool_id == pool_id)
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// How many tasks exist in all pools.
    pub fn task_count(&self) -> usize {
        self.world().tasks.len()
    }

    /// A task's overlap.
    pub fn task_overlap(&self, task_id: &str) -> Option<u32> {
        self.world().tasks.get(task_id).map(|t| t.overlap)
    }

    /// A task's input values.
    pub fn task_input(&self, task_id: &str) -> Option<Map<String, Value>> {
        self.world()
            .tasks
            .get(task_id)
            .map(|t| t.input_values.clone())
    }

    /// The running operation that locks a pool (see [`FakeConfig::pool_operation_ms`]).
    pub fn pool_lock(&self, pool_id: &str) -> Option<String> {
        self.world()
            .pools
            .get(pool_id)
            .and_then(|p| p.locked_by.clone())
    }

    /// Changes how long pool operations take from now on (see
    /// [`FakeConfig::pool_operation_ms`]).
    pub fn set_pool_operation_ms(&self, ms: u64) {
        self.world().config.pool_operation_ms = ms;
    }

    /// A pool's status (`OPEN`, `CLOSED`).
    pub fn pool_status(&self, pool_id: &str) -> Option<String> {
        self.world().pools.get(pool_id).map(|p| p.status.to_owned())
    }

    /// An assignment's current status.
    pub fn assignment_status(&self, id: &str) -> Option<AssignmentStatus> {
        self.world().assignments.get(id).map(|a| a.status)
    }

    /// The task an assignment is for.
    pub fn assignment_task(&self, id: &str) -> Option<String> {
        self.world().assignments.get(id).map(|a| a.task_id.clone())
    }

    /// An assignment's public comment.
    pub fn assignment_comment(&self, id: &str) -> Option<String> {
        self.world()
            .assignments
            .get(id)
            .and_then(|a| a.public_comment.clone())
    }

    /// Every bonus paid, as Toloka would show it.
    pub fn bonuses(&self) -> Vec<Value> {
        self.world().bonuses.values().cloned().collect()
    }

    /// Every restriction in force or expired.
    pub fn restrictions(&self) -> Vec<Value> {
        self.world().restrictions.values().cloned().collect()
    }

    /// Every user skill value.
    pub fn user_skills(&self) -> Vec<Value> {
        self.world().user_skills.values().cloned().collect()
    }

    /// Every message sent.
    pub fn messages(&self) -> Vec<Value> {
        self.world().messages.clone()
    }

    /// How many operations were started.
    pub fn operation_count(&self) -> usize {
        self.world().operations.len()
    }

    /// The requester's balance now.
    pub fn balance(&self) -> Usd {
        Usd {
            micros: self.world().balance_micros,
        }
    }

    /// Everything charged so far (accepted rewards and bonuses).
    pub fn charged(&self) -> Usd {
        Usd {
            micros: self.world().charged_micros,
        }
    }
}

impl World {
    fn now(&self) -> u64 {
        self.config.clock.now().as_millis()
    }

    /// A fresh id: 16 hex digits, so ids sort in creation order as text.
    fn new_id(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        format!("{prefix}{:016x}", self.next_id)
    }

    fn restricted(&self, user_id: &str, pool_id: &str) -> bool {
        let now = self.now();
        let project = self.pools.get(pool_id).map(|p| p.project_id.as_str());
        self.restrictions.values().any(|r| {
            r["user_id"] == user_id
                && r.get("will_expire")
                    .and_then(Value::as_str)
                    .and_then(TolokaTime::parse)
                    .is_none_or(|t| t.to_timestamp().as_millis() > now)
                && match r["scope"].as_str() {
                    Some("ALL_PROJECTS") | Some("SYSTEM") => true,
                    Some("POOL") => r["pool_id"] == pool_id,
                    Some("PROJECT") => r["project_id"].as_str() == project,
                    _ => false,
                }
        })
    }

    /// Slots of a task held or used (skipped and expired ones are given back).
    fn taken(&self, task_id: &str) -> u32 {
        self.assignments
            .values()
            .filter(|a| {
                a.task_id == task_id
                    && !matches!(
                        a.status,
                        AssignmentStatus::Skipped | AssignmentStatus::Expired
                    )
            })
            .count() as u32
    }

    fn take(&mut self, task_id: &str, user_id: &str) -> Result<String, WorkerError> {
        let task = self
            .tasks
            .get(task_id)
            .ok_or_else(|| WorkerError::Unknown(task_id.to_owned()))?;
        let pool_id = task.pool_id.clone();
        let pool = &self.pools[&pool_id];
        if pool.status != "OPEN" {
            return Err(WorkerError::PoolClosed(pool_id));
        }
        if self.restricted(user_id, &pool_id) {
            return Err(WorkerError::Blocked(user_id.to_owned()));
        }
        let done_before = self.assignments.values().any(|a| {
            a.task_id == task_id
                && a.user_id == user_id
                && !matches!(
                    a.status,
                    AssignmentStatus::Skipped | AssignmentStatus::Expired
                )
        });
        if done_before || self.taken(task_id) >= task.overlap {
            return Err(WorkerError::NoSlot(task_id.to_owned()));
        }
        let reward = pool.reward;
        let id = self.new_id("");
        let now = self.now();
        self.assignments.insert(
            id.clone(),
            FakeAssignment {
                task_id: task_id.to_owned(),
                pool_id,
                user_id: user_id.to_owned(),
                status: AssignmentStatus::Active,
                reward,
                times: BTreeMap::from([(TimeField::Created, now)]),
                solutions: Vec::new(),
                public_comment: None,
                bonus_ids: Vec::new(),
            },
        );
        self.snapshot(&id);
        Ok(id)
    }

    fn finish(
        &mut self,
        id: &str,
        to: AssignmentStatus,
        output: Option<Value>,
    ) -> Result<(), WorkerError> {
        let now = self.now();
        let a = self
            .assignments
            .get_mut(id)
            .ok_or_else(|| WorkerError::Unknown(id.to_owned()))?;
        if a.status != AssignmentStatus::Active {
            return Err(WorkerError::NotActive(id.to_owned()));
        }
        a.status = to;
        let field = match to {
            AssignmentStatus::Submitted => TimeField::Submitted,
            AssignmentStatus::Skipped => TimeField::Skipped,
            _ => TimeField::Expired,
        };
        a.times.insert(field, now);
        if let Some(out) = output {
            a.solutions = vec![json!({ "output_values": out })];
        }
        let pool_id = a.pool_id.clone();
        self.snapshot(id);
        if self.auto_close && to == AssignmentStatus::Submitted {
            self.close_if_complete(&pool_id, now);
        }
        Ok(())
    }

    /// Closes an open pool whose every task has all its answers (none active, none to give).
    fn close_if_complete(&mut self, pool_id: &str, now: u64) {
        let complete = self
            .tasks
            .iter()
            .filter(|(_, t)| t.pool_id == pool_id)
            .all(|(id, t)| {
                let answered = self
                    .assignments
                    .values()
                    .filter(|a| {
                        a.task_id == *id
                            && matches!(
                                a.status,
                                AssignmentStatus::Submitted
                                    | AssignmentStatus::Accepted
                                    | AssignmentStatus::Rejected
                            )
                    })
                    .count() as u32;
                answered >= t.overlap
            });
        if let Some(pool) = self.pools.get_mut(pool_id)
            && complete
            && pool.status == "OPEN"
        {
            pool.status = "CLOSED";
            pool.last_close_reason = Some("COMPLETED");
            pool.last_stopped = Some(now);
        }
    }

    /// Records the assignment's current JSON as a version that listings see after the lag.
    fn snapshot(&mut self, id: &str) {
        let doc = self.assignment_json(id);
        let visible = self.now() + self.config.listing_lag_ms;
        self.versions
            .entry(id.to_owned())
            .or_default()
            .push((visible, doc));
    }

    fn task_json(&self, id: &str) -> Value {
        let t = &self.tasks[id];
        let remaining = t.overlap.saturating_sub(self.taken(id));
        let mut doc = json!({
            "id": id,
            "pool_id": t.pool_id,
            "input_values": t.input_values,
            "overlap": t.overlap,
            "remaining_overlap": remaining,
            "infinite_overlap": false,
            "created": time_text(t.created),
        });
        if let (Value::Object(d), Value::Object(o)) = (&mut doc, &t.origin) {
            for (k, v) in o {
                d.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
        doc
    }

    fn assignment_json(&self, id: &str) -> Value {
        let a = &self.assignments[id];
        let task = &self.tasks[&a.task_id];
        let mut doc = json!({
            "id": id,
            "task_suite_id": format!("ts-{id}"),
            "pool_id": a.pool_id,
            "user_id": a.user_id,
            "status": a.status.as_str(),
            "reward": a.reward,
            "bonus_ids": a.bonus_ids,
            "tasks": [{ "id": a.task_id, "pool_id": task.pool_id, "input_values": task.input_values, "overlap": task.overlap }],
            "solutions": a.solutions,
            "automerged": false,
            "mixed": false,
        });
        for (field, ms) in &a.times {
            doc[field.as_str()] = time_text(*ms);
        }
        if let Some(c) = &a.public_comment {
            doc["public_comment"] = Value::String(c.clone());
        }
        doc
    }

    fn pool_json(&self, id: &str) -> Value {
        let p = &self.pools[id];
        json!({
            "id": id,
            "project_id": p.project_id,
            "private_name": format!("pool {id}"),
            "status": p.status,
            "reward_per_assignment": p.reward,
            "assignment_max_duration_seconds": 600,
            "defaults": { "default_overlap_for_new_tasks": p.default_overlap },
            "last_close_reason": p.last_close_reason,
            "created": time_text(p.created),
            "last_started": p.last_started.map_or(Value::Null, time_text),
            "last_stopped": p.last_stopped.map_or(Value::Null, time_text),
            "mixer_config": { "real_tasks_count": 1, "golden_tasks_count": 0, "training_tasks_count": 0 },
        })
    }

    fn draw_fault(&mut self, method: &Method, path: &str) -> Option<Fault> {
        if let Some(i) = self.scripted.iter().position(|(m, p, _, n)| {
            *n > 0 && m.as_ref().is_none_or(|m| m == method) && path.starts_with(p.as_str())
        }) {
            let rule = &mut self.scripted[i];
            rule.3 -= 1;
            let fault = rule.2;
            if rule.3 == 0 {
                self.scripted.remove(i);
            }
            return Some(fault);
        }
        let plan = &self.config.faults;
        if plan.per_mille == 0 || plan.kinds.is_empty() {
            return None;
        }
        let roll = self.rng.random_range(0..1000u32);
        if roll >= plan.per_mille {
            return None;
        }
        let k = self.rng.random_range(0..plan.kinds.len());
        Some(plan.kinds[k])
    }

    fn charge(&mut self, amount: Usd) -> bool {
        if self.balance_micros < amount.micros {
            return false;
        }
        self.balance_micros -= amount.micros;
        self.charged_micros += amount.micros;
        true
    }

    fn new_operation(
        &mut self,
        id: String,
        kind: &str,
        parameters: Value,
        fail: bool,
        log: Vec<Value>,
    ) -> Value {
        let now = time_text(self.now());
        let body = json!({
            "id": id,
            "type": kind,
            "status": "RUNNING",
            "submitted": now,
            "started": now,
            "progress": 0,
            "parameters": parameters,
            "details": { "items_count": log.len() },
        });
        let Value::Object(map) = body.clone() else {
            unreachable!("built as an object above")
        };
        self.operations.insert(
            id,
            FakeOperation {
                body: map,
                polls_left: self.config.operation_polls,
                fail,
                log,
                pool_change: None,
            },
        );
        // The first answer shows it running even when reads will find it done at once.
        body
    }

    /// Completes the timed pool operations whose time has come: their pool changes status
    /// and is unlocked. Called before every request and every test-side look at the world.
    fn settle(&mut self) {
        let now = self.now();
        let due: Vec<String> = self
            .operations
            .iter()
            .filter(|(_, op)| {
                op.body["status"] == "RUNNING"
                    && op.pool_change.as_ref().is_some_and(|c| c.done_at <= now)
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in due {
            let op = self.operations.get_mut(&id).expect("listed above");
            let change = op.pool_change.clone().expect("a pool operation");
            op.body.insert("status".into(), json!("SUCCESS"));
            op.body.insert("progress".into(), json!(100));
            op.body.insert("finished".into(), time_text(change.done_at));
            if let Some(pool) = self.pools.get_mut(&change.pool_id) {
                pool.locked_by = None;
                pool.status = change.target;
                if change.target == "OPEN" {
                    pool.last_started = Some(change.done_at);
                    pool.last_close_reason = None;
                } else {
                    pool.last_stopped = Some(change.done_at);
                    pool.last_close_reason = Some("MANUAL");
                }
            }
            if self.auto_close && change.target == "OPEN" {
                // Toloka closes a pool opened with nothing left to do again by itself.
                self.close_if_complete(&change.pool_id, change.done_at);
            }
        }
    }

    fn read_operation(&mut self, id: &str) -> Option<Value> {
        let now = time_text(self.now());
        let op = self.operations.get_mut(id)?;
        if op.pool_change.is_some() {
            // Timed: done when its time comes (see `settle`), however often it is read.
        } else if op.polls_left > 0 {
            op.polls_left -= 1;
        } else if op.body["status"] == "RUNNING" {
            op.body.insert(
                "status".into(),
                json!(if op.fail { "FAIL" } else { "SUCCESS" }),
            );
            op.body.insert("progress".into(), json!(100));
            op.body.insert("finished".into(), now);
            if op.fail {
                op.body.insert(
                    "details".into(),
                    json!({ "reason": "validation failed; nothing was created" }),
                );
            }
        }
        Some(Value::Object(op.body.clone()))
    }
}

/// The one handler: auth, recording, faults, then the route.
async fn handle(
    State(world): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(path) = uri.path().strip_prefix("/api/v1") else {
        return not_found("route");
    };
    let path = path.to_owned();
    let query: Vec<(String, String)> = uri
        .query()
        .map(|q| {
            q.split('&')
                .filter(|kv| !kv.is_empty())
                .map(|kv| {
                    let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                    (unescape(k), unescape(v))
                })
                .collect()
        })
        .unwrap_or_default();
    let body: Value = if body.is_empty() {
        Value::Null
    } else {
        match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(e) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "VALIDATION_ERROR",
                    format!("bad JSON: {e}"),
                    Value::Null,
                );
            }
        }
    };
    let authorization = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let (fault, slow_ms) = {
        let mut w = lock(&world);
        w.requests.push(RecordedRequest {
            method: method.to_string(),
            path: path.clone(),
            query: query.clone(),
            body: body.clone(),
            authorization: authorization.clone(),
        });
        if let Some(token) = &w.config.token {
            let good = authorization
                .as_deref()
                .is_some_and(|a| a == format!("ApiKey {token}") || a == format!("OAuth {token}"));
            if !good {
                return error(
                    StatusCode::UNAUTHORIZED,
                    "AUTHENTICATION_ERROR",
                    "bad or missing token",
                    Value::Null,
                );
            }
        }
        let fault = w.draw_fault(&method, &path);
        if fault.is_some() {
            w.fault_count += 1;
        }
        (fault, w.config.faults.slow_ms)
    };
    match fault {
        Some(Fault::Throttle) => {
            let mut r = error(
                StatusCode::TOO_MANY_REQUESTS,
                "TOO_MANY_REQUESTS",
                "too many requests",
                json!({ "interval": "MIN", "limit": 100 }),
            );
            r.headers_mut()
                .insert("retry-after", axum::http::HeaderValue::from_static("0"));
            return r;
        }
        Some(Fault::LongThrottle) => {
            let mut r = error(
                StatusCode::TOO_MANY_REQUESTS,
                "TOO_MANY_REQUESTS",
                "too many requests",
                json!({ "interval": "MIN", "limit": 100 }),
            );
            r.headers_mut()
                .insert("retry-after", axum::http::HeaderValue::from_static("120"));
            return r;
        }
        Some(Fault::QuotaExhausted) => {
            return error(
                StatusCode::TOO_MANY_REQUESTS,
                "TOO_MANY_REQUESTS",
                "daily quota exhausted",
                json!({ "interval": "DAY", "limit": 2_000_000 }),
            );
        }
        Some(Fault::Unavailable) => {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "REMOTE_SERVICE_UNAVAILABLE",
                "try again",
                Value::Null,
            );
        }
        _ => {}
    }
    let response = {
        let mut w = lock(&world);
        route(&mut w, &method, &path, &query, body)
    };
    match fault {
        Some(Fault::LostAnswer) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL_ERROR",
            "the answer was lost",
            Value::Null,
        ),
        Some(Fault::SlowAnswer) => {
            tokio::time::sleep(Duration::from_millis(slow_ms)).await;
            response
        }
        _ => response,
    }
}

fn unescape(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn param<'a>(query: &'a [(String, String)], key: &str) -> Option<&'a str> {
    query
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

fn flag(query: &[(String, String)], key: &str) -> bool {
    param(query, key) == Some("true")
}

fn route(
    w: &mut World,
    method: &Method,
    path: &str,
    query: &[(String, String)],
    body: Value,
) -> Response {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (method.as_str(), parts.as_slice()) {
        ("GET", ["projects", id]) => match w.projects.get(*id) {
            Some(p) => ok(StatusCode::OK, p.clone()),
            None => not_found("project"),
        },
        ("GET", ["pools", id]) => match w.pools.contains_key(*id) {
            true => ok(StatusCode::OK, w.pool_json(id)),
            false => not_found("pool"),
        },
        ("POST", ["pools", id, action @ ("open" | "close")]) => pool_action(w, id, action),
        ("GET", ["operations"]) => {
            let mut items: Vec<Value> = w
                .operations
                .values()
                .map(|op| Value::Object(op.body.clone()))
                .filter(|op| param(query, "type").is_none_or(|t| op["type"] == t))
                .filter(|op| param(query, "status").is_none_or(|s| op["status"] == s))
                .filter(|op| {
                    param(query, "id_gt").is_none_or(|g| op["id"].as_str().is_some_and(|i| i > g))
                })
                .collect();
            items.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
            page(items, query)
        }
        ("GET", ["operations", id]) => match w.read_operation(id) {
            Some(op) => ok(StatusCode::OK, op),
            None => not_found("operation"),
        },
        ("GET", ["operations", id, "log"]) => match w.operations.get(*id) {
            Some(op) if op.body["status"] != "RUNNING" => {
                ok(StatusCode::OK, Value::Array(op.log.clone()))
            }
            Some(_) => error(
                StatusCode::CONFLICT,
                "CONFLICT_STATE",
                "operation is still running",
                Value::Null,
            ),
            None => not_found("operation"),
        },
        ("POST", ["tasks"]) => create_tasks(w, query, body),
        ("GET", ["tasks"]) => {
            let items: Vec<Value> = w
                .tasks
                .iter()
                .filter(|(_, t)| param(query, "pool_id").is_none_or(|p| t.pool_id == p))
                .filter(|(id, _)| param(query, "id_gt").is_none_or(|g| id.as_str() > g))
                .take(limit(query) + 1)
                .map(|(id, _)| w.task_json(id))
                .collect();
            page(items, query)
        }
        ("GET", ["user-bonuses"]) => {
            let items: Vec<Value> = w
                .bonuses
                .iter()
                .filter(|(_, b)| param(query, "user_id").is_none_or(|u| b["user_id"] == u))
                .filter(|(_, b)| {
                    param(query, "assignment_id").is_none_or(|a| b["assignment_id"] == a)
                })
                .filter(|(id, _)| param(query, "id_gt").is_none_or(|g| id.as_str() > g))
                .map(|(_, b)| b.clone())
                .collect();
            page(items, query)
        }
        ("GET", ["tasks", id]) => match w.tasks.contains_key(*id) {
            true => ok(StatusCode::OK, w.task_json(id)),
            false => not_found("task"),
        },
        ("PATCH", ["tasks", id]) => patch_task(w, id, &body, false),
        ("PATCH", ["tasks", id, "set-overlap-or-min"]) => patch_task(w, id, &body, true),
        ("GET", ["assignments"]) => list_assignments(w, query),
        ("GET", ["assignments", id]) => match w.assignments.contains_key(*id) {
            true => ok(StatusCode::OK, w.assignment_json(id)),
            false => not_found("assignment"),
        },
        ("PATCH", ["assignments", id]) => review(w, id, &body),
        ("POST", ["user-bonuses"]) => create_bonuses(w, query, body),
        ("GET", ["user-bonuses", id]) => match w.bonuses.get(*id) {
            Some(b) => ok(StatusCode::OK, b.clone()),
            None => not_found("user bonus"),
        },
        ("PUT", ["user-restrictions"]) => put_restriction(w, body),
        ("DELETE", ["user-restrictions", id]) => match w.restrictions.remove(*id) {
            Some(_) => StatusCode::NO_CONTENT.into_response(),
            None => not_found("user restriction"),
        },
        ("GET", ["skills", id]) => match w.skills.get(*id) {
            Some(s) => ok(StatusCode::OK, s.clone()),
            None => not_found("skill"),
        },
        ("GET", ["user-skills"]) => {
            let user = param(query, "user_id");
            let skill = param(query, "skill_id");
            let items: Vec<Value> = w
                .user_skills
                .values()
                .filter(|s| user.is_none_or(|u| s["user_id"] == u))
                .filter(|s| skill.is_none_or(|k| s["skill_id"] == k))
                .cloned()
                .collect();
            ok(StatusCode::OK, json!({ "items": items, "has_more": false }))
        }
        ("PUT", ["user-skills"]) => put_user_skill(w, body),
        ("DELETE", ["user-skills", id]) => match w.user_skills.remove(*id) {
            Some(_) => StatusCode::NO_CONTENT.into_response(),
            None => not_found("user skill"),
        },
        ("GET", ["requester"]) => ok(
            StatusCode::OK,
            json!({
                "id": "requester-1",
                "balance": Usd { micros: w.balance_micros },
                "public_name": { "EN": "crowdcore test requester" },
            }),
        ),
        ("POST", ["message-threads", "compose"]) => {
            let ids = body.get("recipients_ids").and_then(Value::as_array);
            if ids.is_none_or(|v| v.is_empty()) {
                return error(
                    StatusCode::BAD_REQUEST,
                    "VALIDATION_ERROR",
                    "recipients_ids is required",
                    json!({ "recipients_ids": { "code": "VALUE_REQUIRED" } }),
                );
            }
            w.messages.push(body);
            ok(StatusCode::CREATED, json!({}))
        }
        _ => not_found("route"),
    }
}

/// The page size asked for: Toloka's default 50, at most 100 000.
fn limit(query: &[(String, String)]) -> usize {
    param(query, "limit")
        .and_then(|l| l.parse::<usize>().ok())
        .unwrap_or(50)
        .clamp(1, 100_000)
}

/// The first `limit` items (default 50) and whether more follow.
fn page(mut items: Vec<Value>, query: &[(String, String)]) -> Response {
    let limit = limit(query);
    let has_more = items.len() > limit;
    items.truncate(limit);
    ok(
        StatusCode::OK,
        json!({ "items": items, "has_more": has_more }),
    )
}

fn pool_action(w: &mut World, id: &str, action: &str) -> Response {
    let has_tasks = w.tasks.values().any(|t| t.pool_id == id);
    let timed = w.config.pool_operation_ms;
    if w.pools.get(id).is_some_and(|p| p.locked_by.is_some()) {
        w.lock_refusals += 1;
    }
    let Some(pool) = w.pools.get_mut(id) else {
        return not_found("pool");
    };
    let (target, kind) = match action {
        "open" => ("OPEN", "POOL.OPEN"),
        _ => ("CLOSED", "POOL.CLOSE"),
    };
    if let Some(op) = &pool.locked_by {
        return error(
            StatusCode::CONFLICT,
            "POOL_LOCKED_BY_ANOTHER_OPERATION",
            format!("Pool is locked by another operation: {op}"),
            Value::Null,
        );
    }
    if pool.status == target {
        return StatusCode::NO_CONTENT.into_response();
    }
    if target == "OPEN" && !has_tasks {
        return error(
            StatusCode::CONFLICT,
            "EMPTY_POOL",
            "Pool contains no tasks. Operation is not allowed",
            Value::Null,
        );
    }
    let now = w.config.clock.now().as_millis();
    if timed > 0 {
        // Runs for a while: the pool keeps its status and is locked until it completes.
        let op_id = uuid::Uuid::new_v4().to_string();
        pool.locked_by = Some(op_id.clone());
        let op = w.new_operation(
            op_id.clone(),
            kind,
            json!({ "pool_id": id }),
            false,
            Vec::new(),
        );
        if let Some(o) = w.operations.get_mut(&op_id) {
            o.pool_change = Some(PoolChange {
                pool_id: id.to_owned(),
                target,
                done_at: now + timed,
            });
        }
        return ok(StatusCode::ACCEPTED, op);
    }
    pool.status = target;
    pool.last_close_reason = (target == "CLOSED").then_some("MANUAL");
    if target == "OPEN" {
        pool.last_started = Some(now);
    } else {
        pool.last_stopped = Some(now);
    }
    let op_id = uuid::Uuid::new_v4().to_string();
    let op = w.new_operation(op_id, kind, json!({ "pool_id": id }), false, Vec::new());
    if w.auto_close && target == "OPEN" {
        // Toloka closes a pool opened with nothing left to do again by itself.
        w.close_if_complete(id, now);
    }
    ok(StatusCode::ACCEPTED, op)
}

/// Validates one task; `Err` holds field errors.
fn check_task(w: &World, item: &Value, allow_defaults: bool) -> Result<(), Map<String, Value>> {
    let mut errors = Map::new();
    match item.get("pool_id").and_then(Value::as_str) {
        Some(p) if w.pools.contains_key(p) => {}
        Some(_) => {
            errors.insert(
                "pool_id".into(),
                json!({ "code": "DOES_NOT_EXIST", "message": "pool does not exist" }),
            );
        }
        None => {
            errors.insert(
                "pool_id".into(),
                json!({ "code": "VALUE_REQUIRED", "message": "Value must be present and not equal to null" }),
            );
        }
    }
    match item.get("input_values").and_then(Value::as_object) {
        None => {
            errors.insert(
                "input_values".into(),
                json!({ "code": "VALUE_REQUIRED", "message": "Value must be present and not equal to null" }),
            );
        }
        Some(input) => check_input(w, item, input, &mut errors),
    }
    if !allow_defaults {
        match item.get("overlap").and_then(Value::as_u64) {
            Some(n) if n >= 1 => {}
            _ => {
                errors.insert(
                    "overlap".into(),
                    json!({ "code": "VALUE_LESS_THAN_MIN", "message": "overlap must be at least 1" }),
                );
            }
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// Checks a task's input values against its project's `input_spec`, if the fake knows the
/// project: errors go under `input_values.<field>`.
fn check_input(
    w: &World,
    item: &Value,
    input: &Map<String, Value>,
    errors: &mut Map<String, Value>,
) {
    let Some(spec) = item
        .get("pool_id")
        .and_then(Value::as_str)
        .and_then(|p| w.pools.get(p))
        .and_then(|p| w.projects.get(&p.project_id))
        .and_then(|p| p["task_spec"]["input_spec"].as_object())
    else {
        return;
    };
    for (name, field) in spec {
        let Ok(field) = serde_json::from_value::<crate::model::FieldSpec>(field.clone()) else {
            continue;
        };
        match input.get(name) {
            None | Some(Value::Null) if field.required => {
                errors.insert(
                    format!("input_values.{name}"),
                    json!({ "code": "VALUE_REQUIRED", "message": "Value must be present and not equal to null" }),
                );
            }
            Some(v) if !v.is_null() && !field.accepts(v) => {
                let code = match field.kind.as_str() {
                    k if k.starts_with("array_") => "ARRAY_EXPECTED",
                    "integer" => "INTEGER_EXPECTED",
                    "float" => "FLOAT_EXPECTED",
                    "boolean" => "BOOLEAN_EXPECTED",
                    _ => "STRING_EXPECTED",
                };
                errors.insert(
                    format!("input_values.{name}"),
                    json!({ "code": code, "message": format!("Value must be of type {}", field.kind) }),
                );
            }
            _ => {}
        }
    }
    for name in input.keys().filter(|k| !spec.contains_key(*k)) {
        errors.insert(
            format!("input_values.{name}"),
            json!({ "code": "VALUE_NOT_ALLOWED", "message": "The field is not in the project's input specification" }),
        );
    }
}

fn insert_task(w: &mut World, item: &Value, allow_defaults: bool) -> String {
    let pool_id = item["pool_id"].as_str().unwrap_or_default().to_owned();
    let overlap = if allow_defaults {
        w.pools[&pool_id].default_overlap
    } else {
        item["overlap"].as_u64().unwrap_or(1) as u32
    };
    let id = w.new_id("");
    let mut origin = item.clone();
    if let Value::Object(m) = &mut origin {
        for k in ["pool_id", "input_values", "overlap", "__item_idx"] {
            m.remove(k);
        }
    }
    let now = w.now();
    w.tasks.insert(
        id.clone(),
        FakeTask {
            pool_id,
            input_values: item["input_values"]
                .as_object()
                .cloned()
                .unwrap_or_default(),
            overlap,
            created: now,
            origin,
        },
    );
    id
}

fn items_of(body: Value) -> (Vec<Value>, bool) {
    match body {
        Value::Array(v) => (v, false),
        other => (vec![other], true),
    }
}

fn create_tasks(w: &mut World, query: &[(String, String)], body: Value) -> Response {
    let allow_defaults = flag(query, "allow_defaults");
    let skip_invalid = flag(query, "skip_invalid_items");
    let open_pool = flag(query, "open_pool");
    let (items, _single) = items_of(body);
    let checks: Vec<Result<(), Map<String, Value>>> = items
        .iter()
        .map(|i| check_task(w, i, allow_defaults))
        .collect();
    let any_bad = checks.iter().any(Result::is_err);
    let apply = !any_bad || skip_invalid;
    if flag(query, "async_mode") {
        let Some(op_id) = param(query, "operation_id")
            .and_then(|s| uuid::Uuid::parse_str(s).ok())
            .map(|u| u.to_string())
        else {
            return error(
                StatusCode::BAD_REQUEST,
                "VALIDATION_ERROR",
                "operation_id must be a UUID",
                json!({ "operation_id": { "code": "VALUE_NOT_ALLOWED" } }),
            );
        };
        if w.operations.contains_key(&op_id) {
            w.operation_repeats += 1;
            return error(
                StatusCode::CONFLICT,
                "OPERATION_ALREADY_EXISTS",
                "Operation with this id already exists",
                Value::Null,
            );
        }
        let mut log = Vec::new();
        let mut pools = Vec::new();
        for (item, check) in items.iter().zip(&checks) {
            match check {
                Ok(()) if apply => {
                    let id = insert_task(w, item, allow_defaults);
                    pools.push(item["pool_id"].clone());
                    log.push(json!({ "type": "TASK_CREATE", "success": true, "input": item, "output": { "task_id": id } }));
                }
                Ok(()) => {}
                Err(e) => log.push(json!({ "type": "TASK_VALIDATE", "success": false, "input": item, "output": e })),
            }
        }
        if apply && open_pool {
            open_pools(w, &pools);
        }
        let params = json!({ "skip_invalid_items": skip_invalid, "allow_defaults": allow_defaults, "open_pool": open_pool });
        let op = w.new_operation(op_id, "TASK.BATCH_CREATE", params, !apply, log);
        return ok(StatusCode::ACCEPTED, op);
    }
    if !apply {
        let payload: Map<String, Value> = checks
            .iter()
            .enumerate()
            .filter_map(|(i, c)| {
                c.as_ref()
                    .err()
                    .map(|e| (i.to_string(), Value::Object(e.clone())))
            })
            .collect();
        return error(
            StatusCode::BAD_REQUEST,
            "VALIDATION_ERROR",
            "Validation failed",
            Value::Object(payload),
        );
    }
    let mut created = Map::new();
    let mut errors = Map::new();
    let mut pools = Vec::new();
    for (i, (item, check)) in items.iter().zip(&checks).enumerate() {
        match check {
            Ok(()) => {
                let id = insert_task(w, item, allow_defaults);
                pools.push(item["pool_id"].clone());
                created.insert(i.to_string(), w.task_json(&id));
            }
            Err(e) => {
                errors.insert(i.to_string(), Value::Object(e.clone()));
            }
        }
    }
    if open_pool {
        open_pools(w, &pools);
    }
    ok(
        StatusCode::CREATED,
        json!({ "items": created, "validation_errors": errors }),
    )
}

fn open_pools(w: &mut World, pools: &[Value]) {
    let now = w.config.clock.now().as_millis();
    for p in pools.iter().filter_map(Value::as_str) {
        if let Some(pool) = w.pools.get_mut(p) {
            if pool.status != "OPEN" {
                pool.last_started = Some(now);
            }
            pool.status = "OPEN";
            pool.last_close_reason = None;
        }
        if w.auto_close {
            w.close_if_complete(p, now);
        }
    }
}

fn patch_task(w: &mut World, id: &str, body: &Value, or_min: bool) -> Response {
    if !w.tasks.contains_key(id) {
        return not_found("task");
    }
    let Some(overlap) = body.get("overlap").and_then(Value::as_u64) else {
        return error(
            StatusCode::BAD_REQUEST,
            "VALIDATION_ERROR",
            "overlap is required",
            json!({ "overlap": { "code": "VALUE_REQUIRED" } }),
        );
    };
    let taken = w.taken(id);
    let overlap = overlap as u32;
    let new = if or_min {
        overlap.max(taken)
    } else if overlap < taken {
        return error(
            StatusCode::CONFLICT,
            "CONFLICT_STATE",
            format!("overlap {overlap} is below the {taken} assignments issued"),
            Value::Null,
        );
    } else {
        overlap
    };
    if let Some(t) = w.tasks.get_mut(id) {
        t.overlap = new;
    }
    ok(StatusCode::OK, w.task_json(id))
}

fn list_assignments(w: &World, query: &[(String, String)]) -> Response {
    let now = w.now();
    let limit = param(query, "limit")
        .and_then(|l| l.parse::<usize>().ok())
        .unwrap_or(50)
        .clamp(1, 100_000);
    let statuses: Option<Vec<&str>> = param(query, "status").map(|s| s.split(',').collect());
    let mut items: Vec<Value> = w
        .versions
        .values()
        .filter_map(|versions| {
            versions
                .iter()
                .rev()
                .find(|(visible, _)| *visible <= now)
                .map(|(_, doc)| doc.clone())
        })
        .collect();
    let text = |doc: &Value, k: &str| doc.get(k).and_then(Value::as_str).map(str::to_owned);
    for (key, value) in query {
        let keep: Box<dyn Fn(&Value) -> bool> = match key.as_str() {
            "pool_id" | "user_id" | "task_suite_id" => {
                let key = key.clone();
                Box::new(move |d| text(d, &key).as_deref() == Some(value.as_str()))
            }
            "task_id" => Box::new(move |d| d["tasks"][0]["id"] == value.as_str()),
            "status" => {
                let s = statuses.clone().unwrap_or_default();
                Box::new(move |d| d["status"].as_str().is_some_and(|st| s.contains(&st)))
            }
            k => {
                let Some((field, op)) = k.rsplit_once('_') else {
                    continue;
                };
                if !matches!(op, "gt" | "gte" | "lt" | "lte") {
                    continue;
                }
                let field = field.to_owned();
                let op = op.to_owned();
                if field == "id" {
                    Box::new(move |d| {
                        let id = text(d, "id").unwrap_or_default();
                        compare(&op, id.as_str().cmp(value.as_str()))
                    })
                } else {
                    let Some(bound) = TolokaTime::parse(value) else {
                        return error(
                            StatusCode::BAD_REQUEST,
                            "VALIDATION_ERROR",
                            format!("bad time {value}"),
                            Value::Null,
                        );
                    };
                    Box::new(move |d| {
                        text(d, &field)
                            .and_then(|t| TolokaTime::parse(&t))
                            .is_some_and(|t| compare(&op, t.cmp(&bound)))
                    })
                }
            }
        };
        items.retain(|d| keep(d));
    }
    let sort = param(query, "sort").unwrap_or("id");
    let first = sort.split(',').next().unwrap_or("id").to_owned();
    let (field, desc) = match first.strip_prefix('-') {
        Some(f) => (f.to_owned(), true),
        None => (first, false),
    };
    items.sort_by(|a, b| {
        let key = |d: &Value| {
            let t = if field == "id" {
                None
            } else {
                text(d, &field).and_then(|t| TolokaTime::parse(&t))
            };
            (t, text(d, "id").unwrap_or_default())
        };
        let o = key(a).cmp(&key(b));
        if desc { o.reverse() } else { o }
    });
    let has_more = items.len() > limit;
    items.truncate(limit);
    ok(
        StatusCode::OK,
        json!({ "items": items, "has_more": has_more }),
    )
}

fn compare(op: &str, o: std::cmp::Ordering) -> bool {
    use std::cmp::Ordering::*;
    match op {
        "gt" => o == Greater,
        "gte" => o != Less,
        "lt" => o == Less,
        _ => o != Greater,
    }
}

fn review(w: &mut World, id: &str, body: &Value) -> Response {
    let now = w.now();
    let Some(a) = w.assignments.get(id) else {
        return not_found("assignment");
    };
    let to = match body.get("status").and_then(Value::as_str) {
        Some("ACCEPTED") => AssignmentStatus::Accepted,
        Some("REJECTED") => AssignmentStatus::Rejected,
        _ => {
            return error(
                StatusCode::BAD_REQUEST,
                "VALIDATION_ERROR",
                "status must be ACCEPTED or REJECTED",
                json!({ "status": { "code": "VALUE_NOT_ALLOWED" } }),
            );
        }
    };
    let comment = body
        .get("public_comment")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if to == AssignmentStatus::Rejected && comment.is_empty() {
        return error(
            StatusCode::BAD_REQUEST,
            "VALIDATION_ERROR",
            "a rejection needs a public comment",
            json!({ "public_comment": { "code": "VALUE_REQUIRED" } }),
        );
    }
    let (status, reward) = (a.status, a.reward);
    if status != AssignmentStatus::Submitted {
        if status == to {
            w.review_repeats += 1;
        }
        return error(
            StatusCode::CONFLICT,
            "INAPPROPRIATE_STATUS",
            format!("assignment is {}", status.as_str()),
            Value::Null,
        );
    }
    if to == AssignmentStatus::Accepted && !w.charge(reward) {
        return error(
            StatusCode::CONFLICT,
            "NOT_ENOUGH_BALANCE",
            "not enough money",
            Value::Null,
        );
    }
    let a = w.assignments.get_mut(id).expect("checked above");
    a.status = to;
    a.public_comment = Some(comment.to_owned());
    let field = if to == AssignmentStatus::Accepted {
        TimeField::Accepted
    } else {
        TimeField::Rejected
    };
    a.times.insert(field, now);
    w.snapshot(id);
    ok(StatusCode::OK, w.assignment_json(id))
}

/// Validates and pays one bonus; `Err` holds field errors.
fn pay_bonus(w: &mut World, item: &Value) -> Result<String, Map<String, Value>> {
    let mut errors = Map::new();
    let user = item
        .get("user_id")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if user.is_empty() {
        errors.insert("user_id".into(), json!({ "code": "VALUE_REQUIRED" }));
    }
    let amount = item
        .get("amount")
        .and_then(|a| serde_json::from_value::<Usd>(a.clone()).ok());
    match amount {
        Some(a) if a.micros >= 10_000 && a.micros <= 100_000_000 => {}
        _ => {
            errors.insert(
                "amount".into(),
                json!({ "code": "VALUE_LESS_THAN_MIN", "message": "Value must be greater or equal to 0.01" }),
            );
        }
    }
    let assignment = item.get("assignment_id").and_then(Value::as_str);
    if let Some(a) = assignment {
        match w.assignments.get(a) {
            Some(found) if found.user_id == user => {}
            Some(_) => {
                errors.insert(
                    "assignment_id".into(),
                    json!({ "code": "VALUE_NOT_ALLOWED", "message": "another worker's assignment" }),
                );
            }
            None => {
                errors.insert("assignment_id".into(), json!({ "code": "DOES_NOT_EXIST" }));
            }
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let amount = amount.expect("checked above");
    if !w.charge(amount) {
        errors.insert(
            "amount".into(),
            json!({ "code": "NOT_ENOUGH_BALANCE", "message": "not enough money" }),
        );
        return Err(errors);
    }
    let id = w.new_id("");
    let mut doc = item.clone();
    if let Value::Object(m) = &mut doc {
        m.remove("__item_idx");
        m.insert("id".into(), json!(id));
        m.insert("created".into(), time_text(w.now()));
    }
    w.bonuses.insert(id.clone(), doc);
    if let Some(a) = assignment.and_then(|a| w.assignments.get_mut(a)) {
        a.bonus_ids.push(id.clone());
    }
    Ok(id)
}

fn create_bonuses(w: &mut World, query: &[(String, String)], body: Value) -> Response {
    let (items, single) = items_of(body);
    let skip_invalid = flag(query, "skip_invalid_items");
    if flag(query, "async_mode") {
        let Some(op_id) = param(query, "operation_id")
            .and_then(|s| uuid::Uuid::parse_str(s).ok())
            .map(|u| u.to_string())
        else {
            return error(
                StatusCode::BAD_REQUEST,
                "VALIDATION_ERROR",
                "operation_id must be a UUID",
                Value::Null,
            );
        };
        if w.operations.contains_key(&op_id) {
            w.operation_repeats += 1;
            return error(
                StatusCode::CONFLICT,
                "OPERATION_ALREADY_EXISTS",
                "Operation with this id already exists",
                Value::Null,
            );
        }
        let mut log = Vec::new();
        let mut any_ok = false;
        for item in &items {
            match pay_bonus(w, item) {
                Ok(id) => {
                    any_ok = true;
                    log.push(json!({ "type": "USER_BONUS_PERSIST", "success": true, "input": item, "output": { "user_bonus_id": id } }));
                }
                Err(e) => log.push(json!({ "type": "USER_BONUS_VALIDATE", "success": false, "input": item, "output": e })),
            }
        }
        let op = w.new_operation(
            op_id,
            "USER_BONUS.BATCH_CREATE",
            json!({ "skip_invalid_items": skip_invalid }),
            !any_ok,
            log,
        );
        return ok(StatusCode::ACCEPTED, op);
    }
    let mut created = Map::new();
    let mut errors = Map::new();
    for (i, item) in items.iter().enumerate() {
        match pay_bonus(w, item) {
            Ok(id) => {
                created.insert(i.to_string(), w.bonuses[&id].clone());
            }
            Err(e) => {
                errors.insert(i.to_string(), Value::Object(e));
            }
        }
    }
    if single {
        return match (created.remove("0"), errors.remove("0")) {
            (Some(b), _) => ok(StatusCode::CREATED, b),
            (None, e) => error(
                StatusCode::BAD_REQUEST,
                "VALIDATION_ERROR",
                "Validation failed",
                e.unwrap_or(Value::Null),
            ),
        };
    }
    ok(
        StatusCode::CREATED,
        json!({ "items": created, "validation_errors": errors }),
    )
}

fn put_restriction(w: &mut World, body: Value) -> Response {
    let user = body
        .get("user_id")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let scope = body
        .get("scope")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let target = match scope.as_str() {
        "ALL_PROJECTS" => Some(Value::Null),
        "POOL" => body.get("pool_id").cloned(),
        "PROJECT" => body.get("project_id").cloned(),
        _ => None,
    };
    if user.is_empty() || target.is_none() {
        return error(
            StatusCode::BAD_REQUEST,
            "VALIDATION_ERROR",
            "user_id and a scope with its target are required",
            json!({ "scope": { "code": "VALUE_NOT_ALLOWED" } }),
        );
    }
    if let Some(t) = body.get("will_expire")
        && t.as_str().is_none_or(|t| TolokaTime::parse(t).is_none())
    {
        return error(
            StatusCode::BAD_REQUEST,
            "VALIDATION_ERROR",
            "bad will_expire",
            json!({ "will_expire": { "code": "VALUE_NOT_ALLOWED" } }),
        );
    }
    // A PUT for the same worker and scope replaces the earlier restriction.
    let target = target.unwrap_or(Value::Null);
    let same = w
        .restrictions
        .iter()
        .find(|(_, r)| {
            r["user_id"] == user.as_str()
                && r["scope"] == scope.as_str()
                && (r
                    .get("pool_id")
                    .or(r.get("project_id"))
                    .unwrap_or(&Value::Null)
                    == &target)
        })
        .map(|(id, _)| id.clone());
    let id = same.unwrap_or_else(|| w.new_id(""));
    let mut doc = body;
    doc["id"] = json!(id);
    doc["created"] = time_text(w.now());
    w.restrictions.insert(id, doc.clone());
    ok(StatusCode::CREATED, doc)
}

fn put_user_skill(w: &mut World, body: Value) -> Response {
    let skill = body
        .get("skill_id")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let user = body
        .get("user_id")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let value = body.get("value").and_then(Value::as_f64);
    if !w.skills.contains_key(&skill) {
        return not_found("skill");
    }
    let Some(value) = value.filter(|v| (0.0..=100.0).contains(v)) else {
        return error(
            StatusCode::BAD_REQUEST,
            "VALIDATION_ERROR",
            "value must be 0 to 100",
            json!({ "value": { "code": "VALUE_NOT_ALLOWED" } }),
        );
    };
    let now = time_text(w.now());
    let existing = w
        .user_skills
        .iter()
        .find(|(_, s)| s["skill_id"] == skill.as_str() && s["user_id"] == user.as_str())
        .map(|(id, s)| (id.clone(), s["created"].clone()));
    let (id, created) = existing.unwrap_or_else(|| (w.new_id(""), now.clone()));
    let doc = json!({
        "id": id,
        "skill_id": skill,
        "user_id": user,
        "value": value.round() as i64,
        "exact_value": value,
        "created": created,
        "modified": now,
    });
    w.user_skills.insert(id, doc.clone());
    ok(StatusCode::CREATED, doc)
}
