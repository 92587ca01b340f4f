//! The three-stage world (submit → validate → quality) on the fake, and a host that drives a
//! pipeline tick by tick on a virtual clock, restarting it from its store when it crashes.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use crowdcore::clock::VirtualClock;
use crowdcore::pipeline::{
    Action, AssignmentPage, AssignmentQuery, Decision, DecisionEntry, FakeConfig, FakeCounts,
    FakePipeline, Fanout, MajorityVerify, NewTask, ObserverConfig, PipelineBuilder, PipelineConfig,
    PipelineError, PipelinePlatform, PoolId, PoolInfo, Stage, TaskId,
};
use crowdcore::platform::{IdempotencyKey, PlatformError};
use crowdcore::store::{OutboxState, Store};
use crowdcore::{AssignmentId, Money, SessionId, Timestamp, WorkerId};
use serde_json::json;
use tokio::sync::Notify;

pub(crate) const T0: Timestamp = Timestamp::from_millis(1_000_000);
pub(crate) const PERIOD_MS: u64 = 10_000;
pub(crate) const OWNER: &str = "test-host";

pub(crate) fn pool(stage: &str) -> PoolId {
    PoolId::new(format!("pool-{stage}"))
}

/// The fake with three pools and `places` submit tasks, the submit pool open.
pub(crate) async fn fake(clock: &VirtualClock, seed: u64, places: usize) -> FakePipeline {
    let mut config = FakeConfig::new(seed, 12, 0.85);
    config.take_probability = 0.3;
    let fake = FakePipeline::new(Arc::new(clock.clone()), config);
    for stage in ["submit", "validate", "quality"] {
        fake.add_pool(&pool(stage), true);
    }
    let tasks: Vec<NewTask> = (0..places)
        .map(|i| NewTask {
            input_values: json!({"place": format!("place-{i}")})
                .as_object()
                .cloned()
                .unwrap(),
            overlap: 1,
            group: None,
        })
        .collect();
    fake.add_tasks(&pool("submit"), &tasks).unwrap();
    // The requester opens the first pool by hand.
    fake.open_pool(&pool("submit")).await.unwrap();
    fake
}

pub(crate) fn observer() -> ObserverConfig {
    ObserverConfig {
        lag_ms: 30_000,
        page_size: 4,
        ..ObserverConfig::default()
    }
}

/// The seed's flow in three stages.
pub(crate) fn stages() -> Vec<Stage> {
    let yes = vec![
        Action::AcceptOrigin {
            comment: "the photos show the place".into(),
        },
        Action::Forward {
            stage: "quality".into(),
        },
    ];
    let no = vec![Action::RejectOrigin {
        comment: "a photo does not show the place".into(),
    }];
    let good = vec![Action::BonusOrigin {
        amount: Money::usd_cents(25),
        comment: "high-quality photos".into(),
    }];
    vec![
        Stage::new(
            "submit",
            pool("submit"),
            1,
            Fanout::new("validate", Some("photos")),
        )
        .observer(observer()),
        Stage::new(
            "validate",
            pool("validate"),
            3,
            MajorityVerify::new("verdict", "yes", yes, no),
        )
        .observer(observer()),
        Stage::new(
            "quality",
            pool("quality"),
            3,
            MajorityVerify::new("quality", "good", good, vec![]),
        )
        .observer(observer()),
    ]
}

pub(crate) fn config(snapshot_every: u64) -> PipelineConfig {
    PipelineConfig {
        period_ms: PERIOD_MS,
        snapshot_every,
        ..PipelineConfig::default()
    }
}

pub(crate) async fn start(
    platform: Arc<dyn PipelinePlatform>,
    store: Arc<dyn Store>,
    clock: &VirtualClock,
    snapshot_every: u64,
) -> Result<crowdcore::pipeline::Pipeline, PipelineError> {
    let mut builder = PipelineBuilder::new(platform, store, SessionId::new("photos"))
        .clock(Arc::new(clock.clone()))
        .owner(OWNER)
        .config(config(snapshot_every));
    for stage in stages() {
        builder = builder.stage(stage);
    }
    builder.start().await
}

/// What a finished run leaves: every decision with its state, and the fake's counts.
#[derive(Debug)]
pub(crate) struct Outcome {
    pub(crate) decisions: Vec<(Decision, String, bool)>,
    pub(crate) counts: FakeCounts,
    pub(crate) restarts: u32,
    pub(crate) fake: FakePipeline,
    pub(crate) waiting: usize,
    pub(crate) calls: u64,
}

pub(crate) fn summarize(entries: Vec<DecisionEntry>) -> Vec<(Decision, String, bool)> {
    entries
        .into_iter()
        .map(|e| {
            let done = matches!(e.state, OutboxState::Done { .. });
            (e.record.decision, e.record.by, done)
        })
        .collect()
}

/// How a host run crashes.
#[derive(Clone)]
pub(crate) enum Crash {
    /// Never.
    None,
    /// At the N-th platform call (1-based): dropped before it runs (`false`) or after
    /// (`true`).
    PlatformCall(u64, bool),
}

/// Drives the three-stage flow to its end: a tick every period on the virtual clock; when a
/// tick fails (a store write failed) or the platform "crashes" the process, the pipeline is
/// dropped mid-way and started again from `store` at the same virtual time.
pub(crate) async fn drive(
    seed: u64,
    places: usize,
    store: Arc<dyn Store>,
    crash: Crash,
    fault_rate: f64,
    snapshot_every: u64,
) -> Outcome {
    let clock = VirtualClock::new(T0);
    let fake = fake(&clock, seed, places).await;
    fake.set_fault_rate(fault_rate);
    let crashing = Arc::new(Crashing::new(Arc::new(fake.clone()), crash));
    let platform: Arc<dyn PipelinePlatform> = crashing.clone();
    let mut pipeline = None;
    let mut restarts = 0;
    let mut ticks = 0;
    loop {
        assert!(ticks < 2_000, "the pipeline did not finish");
        if pipeline.is_none() {
            match start(platform.clone(), store.clone(), &clock, snapshot_every).await {
                Ok(p) => pipeline = Some(p),
                Err(PipelineError::Store(_)) => {
                    restarts += 1;
                    continue;
                }
                Err(e) => panic!("restart failed: {e}"),
            }
        }
        let p = pipeline.as_mut().unwrap();
        let result = tokio::select! {
            r = p.tick() => Some(r),
            () = crashing.crashed.notified() => None,
        };
        ticks += 1;
        match result {
            Some(Ok(tick)) if tick.finished => break,
            Some(Ok(_)) => clock.advance(PERIOD_MS),
            Some(Err(PipelineError::Store(_))) | None => {
                // The process died: drop everything in memory and start again.
                pipeline = None;
                restarts += 1;
            }
            Some(Err(e)) => panic!("tick failed: {e}"),
        }
    }
    let p = pipeline.unwrap();
    let waiting = p.report().await.unwrap().waiting.values().sum();
    Outcome {
        decisions: summarize(p.decisions().await.unwrap()),
        counts: fake.counts(),
        restarts,
        fake,
        waiting,
        calls: crashing.calls.load(Ordering::SeqCst),
    }
}

/// Checks what no run may ever do, whatever crashed.
pub(crate) fn assert_exactly_once(outcome: &Outcome) {
    let c = &outcome.counts;
    assert_eq!(c.duplicate_tasks, 0, "a task was created twice: {c:?}");
    assert_eq!(
        c.duplicate_reviews, 0,
        "an assignment was reviewed twice: {c:?}"
    );
    assert_eq!(c.duplicate_bonuses, 0, "a bonus was paid twice: {c:?}");
    let reviews = outcome
        .decisions
        .iter()
        .filter(|(d, _, _)| matches!(d, Decision::Accept { .. } | Decision::Reject { .. }))
        .count() as u64;
    assert_eq!(
        c.accepts + c.rejects,
        reviews,
        "one review per review decision"
    );
    let bonuses = outcome
        .decisions
        .iter()
        .filter(|(d, _, _)| matches!(d, Decision::Bonus { .. }))
        .count() as u64;
    assert_eq!(c.bonuses, bonuses, "one bonus per bonus decision");
    assert!(
        outcome.decisions.iter().all(|(_, _, done)| *done),
        "every decision is carried out"
    );
    let mut reviewed: Vec<&AssignmentId> = outcome
        .decisions
        .iter()
        .filter_map(|(d, _, _)| match d {
            Decision::Accept { assignment, .. } | Decision::Reject { assignment, .. } => {
                Some(assignment)
            }
            _ => None,
        })
        .collect();
    let n = reviewed.len();
    reviewed.sort();
    reviewed.dedup();
    assert_eq!(reviewed.len(), n, "no assignment has two review decisions");
}

/// A platform that "kills the process" at its N-th call: the call hangs (after running, or
/// not) and `crashed` fires, so the host drops the tick in the middle.
pub(crate) struct Crashing {
    inner: Arc<dyn PipelinePlatform>,
    calls: AtomicU64,
    crash: Crash,
    pub(crate) crashed: Notify,
}

impl Crashing {
    fn new(inner: Arc<dyn PipelinePlatform>, crash: Crash) -> Self {
        Self {
            inner,
            calls: AtomicU64::new(0),
            crash,
            crashed: Notify::new(),
        }
    }

    /// Whether this call is the one that crashes, and whether it runs first.
    fn check(&self) -> Option<bool> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        match self.crash {
            Crash::PlatformCall(at, after) if at == n => Some(after),
            _ => None,
        }
    }

    async fn call<T>(
        &self,
        call: impl Future<Output = Result<T, PlatformError>>,
    ) -> Result<T, PlatformError> {
        match self.check() {
            None => call.await,
            Some(after) => {
                if after {
                    let _ = call.await;
                }
                self.crashed.notify_one();
                std::future::pending().await
            }
        }
    }
}

#[async_trait]
impl PipelinePlatform for Crashing {
    async fn list_assignments(
        &self,
        query: &AssignmentQuery,
    ) -> Result<AssignmentPage, PlatformError> {
        self.call(self.inner.list_assignments(query)).await
    }
    async fn create_tasks(
        &self,
        pool: &PoolId,
        tasks: &[NewTask],
        key: &IdempotencyKey,
    ) -> Result<Vec<TaskId>, PlatformError> {
        self.call(self.inner.create_tasks(pool, tasks, key)).await
    }
    async fn accept(
        &self,
        assignment: &AssignmentId,
        comment: &str,
        key: &IdempotencyKey,
    ) -> Result<(), PlatformError> {
        self.call(self.inner.accept(assignment, comment, key)).await
    }
    async fn reject(
        &self,
        assignment: &AssignmentId,
        comment: &str,
        key: &IdempotencyKey,
    ) -> Result<(), PlatformError> {
        self.call(self.inner.reject(assignment, comment, key)).await
    }
    async fn bonus(
        &self,
        worker: &WorkerId,
        assignment: Option<&AssignmentId>,
        amount: Money,
        comment: &str,
        key: &IdempotencyKey,
    ) -> Result<(), PlatformError> {
        self.call(self.inner.bonus(worker, assignment, amount, comment, key))
            .await
    }
    async fn pool(&self, pool: &PoolId) -> Result<PoolInfo, PlatformError> {
        self.call(self.inner.pool(pool)).await
    }
    async fn open_pool(&self, pool: &PoolId) -> Result<(), PlatformError> {
        self.call(self.inner.open_pool(pool)).await
    }
    async fn close_pool(&self, pool: &PoolId) -> Result<(), PlatformError> {
        self.call(self.inner.close_pool(pool)).await
    }
}
