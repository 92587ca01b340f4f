//! A spawned engine makes its platform calls beside its loop: a platform that takes seconds per
//! call, or never answers, delays no input and times out no page that keeps beating; nor does
//! an observer poll (`updates`) that never answers.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use crowdcore::clock::SystemClock;
use crowdcore::engine::EngineBuilder;
use crowdcore::local::LocalMarketplace;
use crowdcore::pavilion::{Input, SeatState};
use crowdcore::platform::{
    AssignmentRecord, AssignmentUpdate, Capabilities, Cursor, IdempotencyKey, Page, Platform,
    PlatformError,
};
use crowdcore::store::{MemoryStore, Store};
use crowdcore::{AssignmentId, HitId, HitSpec, Money, WorkerId};

use crate::support::config;

/// The local marketplace behind calls that each take `delay_ms` (changeable) before they
/// reach it; `u64::MAX` never answers. Reads (updates, lookups) stay fast unless
/// `updates_hang`, when `updates` never answers.
struct Slow {
    inner: LocalMarketplace,
    delay_ms: AtomicU64,
    calls: AtomicU64,
    updates_hang: AtomicBool,
    polls: AtomicU64,
}

impl Slow {
    fn new(inner: LocalMarketplace) -> Self {
        Self {
            inner,
            delay_ms: AtomicU64::new(0),
            calls: AtomicU64::new(0),
            updates_hang: AtomicBool::new(false),
            polls: AtomicU64::new(0),
        }
    }
}

impl Slow {
    async fn wait(&self) {
        self.calls.fetch_add(1, Ordering::SeqCst);
        match self.delay_ms.load(Ordering::SeqCst) {
            0 => {}
            u64::MAX => std::future::pending::<()>().await,
            ms => tokio::time::sleep(Duration::from_millis(ms)).await,
        }
    }
}

#[async_trait]
impl Platform for Slow {
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    async fn post(
        &self,
        spec: &HitSpec,
        slots: u32,
        key: &IdempotencyKey,
    ) -> Result<HitId, PlatformError> {
        self.wait().await;
        self.inner.post(spec, slots, key).await
    }
    async fn assignment(
        &self,
        assignment: &AssignmentId,
    ) -> Result<Option<AssignmentRecord>, PlatformError> {
        self.inner.assignment(assignment).await
    }
    async fn add_slots(
        &self,
        hit: &HitId,
        n: u32,
        key: &IdempotencyKey,
    ) -> Result<(), PlatformError> {
        self.wait().await;
        self.inner.add_slots(hit, n, key).await
    }
    async fn expire(&self, hit: &HitId) -> Result<(), PlatformError> {
        self.wait().await;
        self.inner.expire(hit).await
    }
    async fn updates(
        &self,
        cursor: Option<&Cursor>,
    ) -> Result<Page<AssignmentUpdate>, PlatformError> {
        self.polls.fetch_add(1, Ordering::SeqCst);
        if self.updates_hang.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        self.inner.updates(cursor).await
    }
    async fn approve(
        &self,
        assignment: &AssignmentId,
        key: &IdempotencyKey,
    ) -> Result<(), PlatformError> {
        self.wait().await;
        self.inner.approve(assignment, key).await
    }
    async fn reject(
        &self,
        assignment: &AssignmentId,
        feedback: &str,
        key: &IdempotencyKey,
    ) -> Result<(), PlatformError> {
        self.wait().await;
        self.inner.reject(assignment, feedback, key).await
    }
    async fn bonus(
        &self,
        worker: &WorkerId,
        assignment: Option<&AssignmentId>,
        amount: Money,
        reason: &str,
        key: &IdempotencyKey,
    ) -> Result<(), PlatformError> {
        self.wait().await;
        self.inner
            .bonus(worker, assignment, amount, reason, key)
            .await
    }
    async fn notify(
        &self,
        workers: &[WorkerId],
        subject: &str,
        message: &str,
    ) -> Result<(), PlatformError> {
        self.inner.notify(workers, subject, message).await
    }
    async fn block(&self, worker: &WorkerId, reason: &str) -> Result<(), PlatformError> {
        self.inner.block(worker, reason).await
    }
    async fn grant_qualification(
        &self,
        worker: &WorkerId,
        qualification: &str,
        value: i64,
    ) -> Result<(), PlatformError> {
        self.inner
            .grant_qualification(worker, qualification, value)
            .await
    }
    async fn revoke_qualification(
        &self,
        worker: &WorkerId,
        qualification: &str,
    ) -> Result<(), PlatformError> {
        self.inner.revoke_qualification(worker, qualification).await
    }
    async fn balance(&self) -> Result<Money, PlatformError> {
        self.inner.balance().await
    }
}

/// Polls `check` every 10 ms for up to `secs` seconds.
async fn eventually(secs: u64, mut check: impl AsyncFnMut() -> bool) -> bool {
    let until = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < until {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_are_served_while_every_platform_call_is_slow_or_hangs() {
    let clock = Arc::new(SystemClock);
    let market = LocalMarketplace::new(clock.clone(), Money::usd_cents(1_000_000));
    let slow = Arc::new(Slow::new(market.clone()));
    let mut config = config();
    config.pavilion.heartbeat_timeout_ms = 1_500;
    config.calls.timeout_ms = 1_000;
    let store = Arc::new(MemoryStore::new());
    let engine = EngineBuilder::new(slow.clone(), store.clone(), config)
        .clock(clock)
        .start()
        .await
        .unwrap();
    let session = engine.session().clone();
    let handle = engine.spawn();
    handle.input(Input::Start).await.unwrap();
    assert!(
        eventually(5, async || !market.hits().is_empty()
            && handle.read(|m| m.hires_in_flight() == 0).await.unwrap())
        .await,
        "the hire is posted, and the engine knows its HIT"
    );
    // Two workers take seats while the platform is fast.
    let hit = market.hits()[0].0.clone();
    let mut seated = Vec::new();
    for w in ["W1", "W2"] {
        let worker = WorkerId::new(w);
        let assignment = market.accept(&worker, &hit).unwrap();
        handle
            .input(Input::Arrive {
                worker,
                assignment: assignment.clone(),
                hit: hit.clone(),
            })
            .await
            .unwrap();
        seated.push(assignment);
    }
    // Now every platform call hangs (the engine times each out after 1 s and retries it with
    // its key). W1 submits, which approves and hires; W2 keeps beating for 4 s, well past its
    // 1.5 s heartbeat timeout, and every heartbeat is answered at once.
    slow.delay_ms.store(u64::MAX, Ordering::SeqCst);
    market.submit(&seated[0], None).unwrap();
    handle
        .input(Input::Submit {
            assignment: seated[0].clone(),
            contributions: 0,
        })
        .await
        .unwrap();
    let started = Instant::now();
    let mut slowest = Duration::ZERO;
    while started.elapsed() < Duration::from_secs(4) {
        let call = Instant::now();
        handle
            .input(Input::Heartbeat {
                assignment: seated[1].clone(),
            })
            .await
            .unwrap();
        slowest = slowest.max(call.elapsed());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        slowest < Duration::from_millis(500),
        "a heartbeat waited {slowest:?} behind a platform call"
    );
    let w2 = seated[1].clone();
    let seat = handle.read(move |m| m.seat_of(&w2)).await.unwrap();
    assert!(
        matches!(seat, Some(SeatState::Active | SeatState::Waiting)),
        "W2 kept beating and keeps its seat: {seat:?}"
    );
    assert!(
        slow.calls.load(Ordering::SeqCst) >= 3,
        "the hung calls were retried"
    );
    // The platform recovers: the approval goes through once, with its key.
    slow.delay_ms.store(0, Ordering::SeqCst);
    assert!(
        eventually(10, async || {
            store.ledger(&session).await.unwrap().iter().any(|e| e.paid)
        })
        .await,
        "W1's base pay is paid once the platform answers"
    );
    let ledger = store.ledger(&session).await.unwrap();
    let paid: Vec<_> = ledger.iter().filter(|e| e.paid).collect();
    assert_eq!(paid.len(), 1, "paid once: {ledger:?}");
    assert_eq!(paid[0].assignment.as_ref(), Some(&seated[0]));
    assert!(!handle.is_finished());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_are_served_while_the_observer_poll_hangs() {
    let clock = Arc::new(SystemClock);
    let market = LocalMarketplace::new(clock.clone(), Money::usd_cents(1_000_000));
    let slow = Arc::new(Slow::new(market.clone()));
    let mut config = config();
    config.pavilion.heartbeat_timeout_ms = 1_500;
    config.calls.timeout_ms = 1_000;
    config.observe_every_ms = 100;
    let store = Arc::new(MemoryStore::new());
    let engine = EngineBuilder::new(slow.clone(), store.clone(), config)
        .clock(clock)
        .start()
        .await
        .unwrap();
    let session = engine.session().clone();
    let handle = engine.spawn();
    handle.input(Input::Start).await.unwrap();
    assert!(
        eventually(5, async || !market.hits().is_empty()
            && handle.read(|m| m.hires_in_flight() == 0).await.unwrap())
        .await,
        "the hire is posted, and the engine knows its HIT"
    );
    let hit = market.hits()[0].0.clone();
    let mut seated = Vec::new();
    for w in ["W1", "W2"] {
        let worker = WorkerId::new(w);
        let assignment = market.accept(&worker, &hit).unwrap();
        handle
            .input(Input::Arrive {
                worker,
                assignment: assignment.clone(),
                hit: hit.clone(),
            })
            .await
            .unwrap();
        seated.push(assignment);
    }
    // Every poll now hangs (timed out after 1 s, one in flight at a time); both workers keep
    // beating for 4 s, past their 1.5 s heartbeat timeout.
    slow.updates_hang.store(true, Ordering::SeqCst);
    let before = slow.polls.load(Ordering::SeqCst);
    let started = Instant::now();
    let mut slowest = Duration::ZERO;
    while started.elapsed() < Duration::from_secs(4) {
        for assignment in &seated {
            let call = Instant::now();
            handle
                .input(Input::Heartbeat {
                    assignment: assignment.clone(),
                })
                .await
                .unwrap();
            slowest = slowest.max(call.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        slowest < Duration::from_millis(500),
        "a heartbeat waited {slowest:?} behind the observer's poll"
    );
    let w2 = seated[1].clone();
    let seat = handle.read(move |m| m.seat_of(&w2)).await.unwrap();
    assert!(
        matches!(seat, Some(SeatState::Active | SeatState::Waiting)),
        "W2 kept beating and keeps its seat: {seat:?}"
    );
    let hung = slow.polls.load(Ordering::SeqCst) - before;
    assert!(
        (2..=6).contains(&hung),
        "one poll in flight at a time, each timed out after 1 s: {hung} polls in 4 s"
    );
    // The platform answers again: W1's submission, seen only by the observer, is recorded
    // and applied, and W1 is paid.
    slow.updates_hang.store(false, Ordering::SeqCst);
    market.submit(&seated[0], None).unwrap();
    assert!(
        eventually(10, async || {
            store.ledger(&session).await.unwrap().iter().any(|e| e.paid)
        })
        .await,
        "the observer saw W1 submit"
    );
    let ledger = store.ledger(&session).await.unwrap();
    let base: Vec<_> = ledger.iter().filter(|e| e.kind == "base").collect();
    assert_eq!(base.len(), 1, "{ledger:?}");
    assert_eq!(base[0].assignment.as_ref(), Some(&seated[0]));
    assert!(
        store
            .cursor(&session, crowdcore::engine::ASSIGNMENT_CURSOR)
            .await
            .unwrap()
            .is_some()
    );
    assert!(!handle.is_finished());
}
