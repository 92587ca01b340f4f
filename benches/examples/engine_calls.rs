//! A spawned engine against a platform whose every call is slow.
//!
//! `drain`: 500 bonus payments (each for its own assignment, so no two share a lane) wait in
//! the outbox when the engine starts; every platform call takes 200 ms; `calls.max_in_flight`
//! is 16. Prints the time from spawn until the outbox is empty, against the goal
//! 1.5 × 500 × 200 ms / 16.
//!
//! `heartbeats`: 1 000 pages seated through an `EngineHandle`; 900 are tasks sending
//! `Input::Heartbeat` every second for 10 s, the other 100 submit, one every 90 ms (so that
//! releases, pays and hires are in flight throughout), while every platform call takes 2 s.
//! Prints the heartbeats' latency (p50, p99, max) and the platform calls made meanwhile.
//!
//! ```text
//! cargo run --release -p crowdcore-benches --example engine_calls -- drain [EFFECTS DELAY_MS IN_FLIGHT]
//! cargo run --release -p crowdcore-benches --example engine_calls -- heartbeats [PAGES SECS DELAY_MS]
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use crowdcore::clock::SystemClock;
use crowdcore::engine::{EngineBuilder, EngineConfig, EngineEvent};
use crowdcore::local::LocalMarketplace;
use crowdcore::pavilion::{Effect, EffectKind, Input, PavilionConfig, PayKind, StartCondition};
use crowdcore::platform::{
    AssignmentUpdate, Capabilities, Cursor, IdempotencyKey, Page, Platform, PlatformError,
};
use crowdcore::store::{MemoryStore, NewEffect, Store};
use crowdcore::{AssignmentId, EffectId, HitId, HitSpec, Money, SessionId, Timestamp, WorkerId};

/// A platform whose every call succeeds after `delay`.
struct Sleepy {
    delay: Duration,
    capabilities: Capabilities,
    calls: AtomicU64,
}

impl Sleepy {
    async fn wait(&self) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(self.delay).await;
    }
}

#[async_trait]
impl Platform for Sleepy {
    fn capabilities(&self) -> Capabilities {
        self.capabilities
    }
    async fn post(
        &self,
        _spec: &HitSpec,
        _slots: u32,
        key: &IdempotencyKey,
    ) -> Result<HitId, PlatformError> {
        self.wait().await;
        Ok(HitId::new(format!("hit-{}", key.as_str())))
    }
    async fn add_slots(
        &self,
        _hit: &HitId,
        _n: u32,
        _key: &IdempotencyKey,
    ) -> Result<(), PlatformError> {
        self.wait().await;
        Ok(())
    }
    async fn expire(&self, _hit: &HitId) -> Result<(), PlatformError> {
        self.wait().await;
        Ok(())
    }
    async fn updates(
        &self,
        _cursor: Option<&Cursor>,
    ) -> Result<Page<AssignmentUpdate>, PlatformError> {
        self.wait().await;
        Ok(Page {
            items: Vec::new(),
            next: None,
        })
    }
    async fn approve(
        &self,
        _assignment: &AssignmentId,
        _key: &IdempotencyKey,
    ) -> Result<(), PlatformError> {
        self.wait().await;
        Ok(())
    }
    async fn reject(
        &self,
        _assignment: &AssignmentId,
        _feedback: &str,
        _key: &IdempotencyKey,
    ) -> Result<(), PlatformError> {
        self.wait().await;
        Ok(())
    }
    async fn bonus(
        &self,
        _worker: &WorkerId,
        _assignment: Option<&AssignmentId>,
        _amount: Money,
        _reason: &str,
        _key: &IdempotencyKey,
    ) -> Result<(), PlatformError> {
        self.wait().await;
        Ok(())
    }
    async fn notify(
        &self,
        _workers: &[WorkerId],
        _subject: &str,
        _message: &str,
    ) -> Result<(), PlatformError> {
        self.wait().await;
        Ok(())
    }
    async fn block(&self, _worker: &WorkerId, _reason: &str) -> Result<(), PlatformError> {
        self.wait().await;
        Ok(())
    }
    async fn grant_qualification(
        &self,
        _worker: &WorkerId,
        _qualification: &str,
        _value: i64,
    ) -> Result<(), PlatformError> {
        self.wait().await;
        Ok(())
    }
    async fn revoke_qualification(
        &self,
        _worker: &WorkerId,
        _qualification: &str,
    ) -> Result<(), PlatformError> {
        self.wait().await;
        Ok(())
    }
    async fn balance(&self) -> Result<Money, PlatformError> {
        self.wait().await;
        Ok(Money::usd_cents(1_000_000))
    }
}

fn arg(n: usize, default: u64) -> u64 {
    std::env::args()
        .nth(n)
        .map_or(default, |a| a.parse().expect("a number"))
}

fn spec(max_assignments: u32) -> HitSpec {
    HitSpec {
        title: "Benchmark task".into(),
        description: "Stand by, then work.".into(),
        keywords: Vec::new(),
        reward: Money::usd_cents(25),
        assignment_duration_ms: 86_400_000,
        lifetime_ms: 86_400_000,
        max_assignments,
        auto_approval_delay_ms: 86_400_000,
        qualifications: Vec::new(),
        landing_url: "https://localhost/land".into(),
        frame_height: 600,
    }
}

fn sleepy(delay_ms: u64) -> Arc<Sleepy> {
    let capabilities =
        LocalMarketplace::new(Arc::new(SystemClock), Money::usd_cents(0)).capabilities();
    Arc::new(Sleepy {
        delay: Duration::from_millis(delay_ms),
        capabilities,
        calls: AtomicU64::new(0),
    })
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    match std::env::args().nth(1).as_deref() {
        None | Some("drain") => drain(arg(2, 500), arg(3, 200), arg(4, 16) as u32).await,
        Some("heartbeats") => heartbeats(arg(2, 1_000), arg(3, 10), arg(4, 2_000)).await,
        Some(other) => panic!("unknown mode {other}: drain or heartbeats"),
    }
}

async fn heartbeats(pages: u64, secs: u64, delay_ms: u64) {
    let platform = sleepy(delay_ms);
    let store = MemoryStore::new();
    let half = (pages / 2) as u32;
    let pavilion = PavilionConfig {
        min_active: 1,
        max_active: half,
        min_waiting: 0,
        max_waiting: pages as u32 - half,
        start: StartCondition::Present(1),
        heartbeat_timeout_ms: 60_000,
        base_pay_cents: 25,
        ..PavilionConfig::default()
    };
    let mut config = EngineConfig::new(spec(pages as u32), pavilion);
    config.calls.timeout_ms = 30_000;
    let engine = EngineBuilder::new(platform.clone(), Arc::new(store), config)
        .session(SessionId::new("bench-heartbeats"))
        .clock(Arc::new(SystemClock))
        .start()
        .await
        .expect("start");
    let handle = engine.spawn();
    let mut events = handle.subscribe();
    handle.input(Input::Start).await.expect("start");
    // The hires' HITs, named as `Sleepy::post` names them, once posted (a call takes DELAY_MS).
    let mut hits = Vec::new();
    while let Ok(Ok(event)) = tokio::time::timeout(Duration::from_millis(200), events.recv()).await
    {
        if let EngineEvent::Effect(effect) = event
            && let EffectKind::Hire { count } = effect.kind
        {
            let key = IdempotencyKey::for_effect(&effect.id);
            hits.push((HitId::new(format!("hit-{}", key.as_str())), count));
        }
    }
    tokio::time::sleep(Duration::from_millis(delay_ms + 500)).await;
    let mut seated = Vec::new();
    'seat: for (hit, count) in &hits {
        for _ in 0..*count {
            if seated.len() as u64 == pages {
                break 'seat;
            }
            let n = seated.len();
            let assignment = AssignmentId::new(format!("a{n}"));
            let arrived = handle
                .input(Input::Arrive {
                    worker: WorkerId::new(format!("w{n}")),
                    assignment: assignment.clone(),
                    hit: hit.clone(),
                })
                .await;
            if arrived.is_ok() {
                seated.push(assignment);
            }
        }
    }
    let calls_before = platform.calls.load(Ordering::Relaxed);
    let mut tasks = tokio::task::JoinSet::new();
    // The last tenth of the pages submit, one every 90 ms, so that releases, pays and hires
    // (each a 2 s call) are in flight all along; the others beat.
    let churn_from = seated.len() - seated.len() / 10;
    for (i, assignment) in seated.iter().cloned().enumerate() {
        let handle = handle.clone();
        if i >= churn_from {
            tasks.spawn(async move {
                let wait = Duration::from_millis(90 * (i - churn_from) as u64);
                tokio::time::sleep(wait).await;
                let _ = handle
                    .input(Input::Submit {
                        assignment,
                        contributions: 1,
                    })
                    .await;
                Vec::new()
            });
            continue;
        }
        tasks.spawn(async move {
            // Spread the pages over the second.
            tokio::time::sleep(Duration::from_micros(i as u64 * 997 % 1_000_000)).await;
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            let mut took = Vec::with_capacity(secs as usize);
            for _ in 0..secs {
                tick.tick().await;
                let at = Instant::now();
                handle
                    .input(Input::Heartbeat {
                        assignment: assignment.clone(),
                    })
                    .await
                    .expect("heartbeat");
                took.push(at.elapsed());
            }
            took
        });
    }
    let mut all: Vec<Duration> = Vec::new();
    while let Some(took) = tasks.join_next().await {
        all.extend(took.expect("page task"));
    }
    all.sort();
    assert!(!all.is_empty(), "no page was seated");
    let pick = |q: f64| all[((all.len() as f64 * q) as usize).min(all.len() - 1)];
    println!(
        "{} pages seated ({} HITs), {} heartbeats over {secs} s, every platform call {delay_ms} ms \
         ({} calls meanwhile): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        seated.len(),
        hits.len(),
        all.len(),
        platform.calls.load(Ordering::Relaxed) - calls_before,
        pick(0.5).as_secs_f64() * 1e3,
        pick(0.99).as_secs_f64() * 1e3,
        all.last().expect("heartbeats").as_secs_f64() * 1e3,
    );
}

async fn drain(effects: u64, delay_ms: u64, max_in_flight: u32) {
    let session = SessionId::new("bench-calls");
    let store = MemoryStore::new();
    // The effects a crash (or a burst of releases) left due: bonuses for distinct assignments.
    let due: Vec<NewEffect> = (1..=effects)
        .map(|seq| {
            let effect = Effect {
                at: Timestamp::from_millis(0),
                id: EffectId::new(session.clone(), seq),
                kind: EffectKind::Pay {
                    worker: WorkerId::new(format!("w{seq}")),
                    assignment: AssignmentId::new(format!("a{seq}")),
                    kind: PayKind::ContributionBonus,
                    amount: Money::usd_cents(10),
                },
            };
            NewEffect {
                id: effect.id.clone(),
                body: serde_json::to_string(&effect).expect("plain data"),
            }
        })
        .collect();
    store.enqueue(&session, &due).await.expect("enqueue");

    let clock = Arc::new(SystemClock);
    let platform = sleepy(delay_ms);
    let mut config = EngineConfig::new(
        spec(10),
        PavilionConfig {
            base_pay_cents: 25,
            ..PavilionConfig::default()
        },
    );
    config.calls.max_in_flight = max_in_flight;
    config.calls.timeout_ms = 30_000;
    let engine = EngineBuilder::new(platform.clone(), Arc::new(store.clone()), config)
        .session(session.clone())
        .clock(clock)
        .start()
        .await
        .expect("start");
    assert_eq!(engine.pending_effects() as u64, effects);

    let started = Instant::now();
    let handle = engine.spawn();
    // Bounded: ten times the goal.
    let goal = Duration::from_millis(delay_ms * effects * 3 / 2 / u64::from(max_in_flight));
    loop {
        let pending = store.pending(&session).await.expect("pending").len();
        if pending == 0 {
            break;
        }
        assert!(started.elapsed() < goal * 10, "{pending} effects still due");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let took = started.elapsed();
    let ideal = Duration::from_millis(delay_ms * effects / u64::from(max_in_flight));
    let paid = store.ledger(&session).await.expect("ledger");
    assert_eq!(paid.len() as u64, effects);
    assert!(paid.iter().all(|e| e.paid));
    println!(
        "drained {effects} effects at {delay_ms} ms per call, {max_in_flight} in flight: {:.2} s \
         (ideal {:.2} s, goal {:.2} s, ratio to ideal {:.3}, to goal {:.3}); {} platform calls",
        took.as_secs_f64(),
        ideal.as_secs_f64(),
        goal.as_secs_f64(),
        took.as_secs_f64() / ideal.as_secs_f64(),
        took.as_secs_f64() / goal.as_secs_f64(),
        platform.calls.load(Ordering::Relaxed),
    );
    drop(handle);
}
