//! crowdcore's engine driving the Pavilion machine on Toloka (the fake): hires become tasks,
//! Toloka's assignment listing feeds departures back, approvals and bonuses go out with keys.
//! Then the same study with the store failing at each of its writes in turn, before or after
//! the write (the engine restarts and re-sends its pending effects): the fake ends in the same
//! state, and nothing is created, accepted or paid twice.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use crowdcore::clock::Clock;
use crowdcore::engine::{Engine, EngineBuilder, EngineConfig, EngineError, RetryPolicy};
use crowdcore::model::{AssignmentId, HitId, HitSpec, Money, SessionId, WorkerId};
use crowdcore::pavilion::PavilionConfig;
use crowdcore::platform::Platform;
use crowdcore::store::{FailMode, FailingStore, MemoryStore, Store};
use crowdcore_toloka::model::AssignmentStatus;
use crowdcore_toloka::{TolokaPlatform, TolokaPlatformConfig};
use serde_json::json;

fn config() -> EngineConfig {
    let spec = HitSpec {
        title: "Label photos in real time".into(),
        description: "Wait for a task, then label photos as they arrive.".into(),
        keywords: vec![],
        reward: Money::usd_cents(50),
        assignment_duration_ms: 3_600_000,
        lifetime_ms: 86_400_000,
        max_assignments: 10,
        auto_approval_delay_ms: 86_400_000,
        qualifications: vec![],
        landing_url: "https://example.org/task".into(),
        frame_height: 600,
    };
    let pavilion = PavilionConfig {
        min_active: 1,
        max_active: 2,
        min_waiting: 1,
        max_waiting: 2,
        heartbeat_timeout_ms: 30_000,
        base_pay_cents: 50,
        waiting_cents_per_minute: 6,
        active_cents_per_minute: 12,
        per_contribution_cents: 5,
        ..PavilionConfig::default()
    };
    let mut config = EngineConfig::new(spec, pavilion);
    config.retry = RetryPolicy {
        base_ms: 100,
        max_ms: 2_000,
    };
    config.observe_every_ms = 10_000;
    config.snapshot_every = 5;
    config
}

#[derive(Debug, Clone)]
enum Op {
    Start,
    Stop,
    Expire,
    Advance,
    Observe,
    Arrive(WorkerId, AssignmentId, HitId),
    Heartbeat(AssignmentId),
}

/// Drives one session; when the store fails it starts a new engine on the same store (as a
/// restarted process would) and makes the call again.
struct Host {
    platform: Arc<dyn Platform>,
    store: Arc<dyn Store>,
    clock: Arc<crowdcore::clock::VirtualClock>,
    engine: Option<Engine>,
    restarts: u32,
}

impl Host {
    async fn ensure(&mut self) {
        for _ in 0..10 {
            if self.engine.is_some() {
                return;
            }
            self.restarts += 1;
            let started = EngineBuilder::new(self.platform.clone(), self.store.clone(), config())
                .session(SessionId::new("toloka-e2e"))
                .clock(self.clock.clone())
                .start()
                .await;
            let mut engine = match started {
                Ok(e) => e,
                Err(EngineError::Store(_)) => continue,
                Err(e) => panic!("recovery failed: {e}"),
            };
            match engine.advance().await {
                Ok(()) => self.engine = Some(engine),
                Err(EngineError::Store(_)) => {}
                Err(e) => panic!("catching up failed: {e}"),
            }
        }
        assert!(self.engine.is_some(), "the engine never came back");
    }

    async fn call(&mut self, op: Op) {
        let mut repeated = false;
        for _ in 0..10 {
            self.ensure().await;
            let engine = self.engine.as_mut().expect("ensured");
            let result = match op.clone() {
                Op::Start => engine.start().await,
                Op::Stop => engine.stop().await,
                Op::Expire => engine.expire().await,
                Op::Advance => engine.advance().await,
                Op::Observe => engine.observe().await,
                Op::Arrive(w, a, h) => engine.arrive(w, a, h).await,
                Op::Heartbeat(a) => engine.heartbeat(a).await,
            };
            match result {
                Ok(()) => return,
                Err(EngineError::Store(_)) => {
                    self.engine = None;
                    repeated = true;
                }
                Err(EngineError::Rejected(_)) if repeated => return,
                Err(e) => panic!("{op:?}: {e}"),
            }
        }
        panic!("{op:?} failed ten times");
    }

    fn present(&mut self) -> Vec<AssignmentId> {
        let s = self.engine.as_mut().expect("running").snapshot();
        s.waiting
            .iter()
            .chain(&s.active)
            .map(|seat| seat.assignment.clone())
            .collect()
    }

    /// Heartbeats from every page, ten seconds at a time, for `secs`.
    async fn idle(&mut self, secs: u64) {
        for _ in 0..secs / 10 {
            self.clock.advance(10_000);
            self.ensure().await;
            for a in self.present() {
                self.call(Op::Heartbeat(a)).await;
            }
            self.call(Op::Advance).await;
        }
    }
}

/// What the fake holds at the end: tasks and their overlaps, reviewed assignments, bonuses,
/// money charged.
#[derive(Debug, PartialEq)]
struct End {
    overlaps: Vec<u32>,
    accepted: usize,
    bonuses: Vec<(String, String)>,
    charged: i64,
}

async fn study(fail_at: Option<u64>, mode: FailMode) -> (End, u32, u64) {
    let w = world().await;
    let pool = w.fake.create_pool("prj", cents(50));
    let mut pc = TolokaPlatformConfig::new(&pool);
    pc.clock = w.clock.clone();
    pc.time_lag = Duration::ZERO;
    let platform: Arc<dyn Platform> = Arc::new(TolokaPlatform::new(w.client.clone(), pc));
    let failing = Arc::new(FailingStore::new(
        Arc::new(MemoryStore::new()),
        fail_at,
        mode,
    ));
    let mut host = Host {
        platform,
        store: failing.clone(),
        clock: w.clock.clone(),
        engine: None,
        restarts: 0,
    };
    host.call(Op::Start).await;
    host.call(Op::Advance).await;

    // Workers find the tasks on Toloka and land on the page.
    let mut held = Vec::new();
    for worker in ["w1", "w2", "w3", "w4", "w5"] {
        if let Some(a) = w.fake.take_next(&pool, worker).unwrap() {
            let hit = w.fake.assignment_task(&a).unwrap();
            host.call(Op::Arrive(
                WorkerId::new(worker),
                AssignmentId::new(a.as_str()),
                HitId::new(hit),
            ))
            .await;
            held.push(a);
        }
    }
    assert_eq!(held.len(), 4, "two active and two waiting seats were hired");
    host.idle(120).await;

    // Two submit on Toloka; the observer reports it, the machine pays them and hires again.
    for a in &held[..2] {
        w.fake.submit(a, json!({ "label": "cat" })).unwrap();
    }
    host.call(Op::Observe).await;
    host.idle(60).await;
    // A new worker takes a re-posted slot and one waiting worker gives theirs back.
    if let Some(a) = w.fake.take_next(&pool, "w6").unwrap() {
        let hit = w.fake.assignment_task(&a).unwrap();
        host.call(Op::Arrive(
            WorkerId::new("w6"),
            AssignmentId::new(a.as_str()),
            HitId::new(hit),
        ))
        .await;
        held.push(a);
    }
    w.fake.skip(&held[3]).unwrap();
    host.call(Op::Observe).await;
    host.idle(60).await;

    // The job ends: it stops and releases everyone, and the HITs close. Toloka accepts only
    // submitted work, so the approvals wait (a retryable "not submitted yet") until the
    // released pages submit, which they do now.
    host.call(Op::Stop).await;
    host.call(Op::Expire).await;
    for a in &held[2..] {
        let _ = w.fake.submit(a, json!({ "label": "dog" }));
    }
    for _ in 0..200 {
        host.ensure().await;
        let engine = host.engine.as_mut().unwrap();
        let Some(next) = engine.next_wakeup() else {
            break;
        };
        if engine.pending_effects() == 0 {
            break;
        }
        host.clock.set(next.max(host.clock.now()));
        host.call(Op::Advance).await;
    }
    assert_eq!(host.engine.as_mut().unwrap().pending_effects(), 0);

    let ledger = host.engine.as_mut().unwrap().ledger().await.unwrap();
    let paid: i64 = ledger
        .iter()
        .filter(|e| e.paid)
        .map(|e| e.amount.minor)
        .sum();
    assert!(
        ledger.iter().all(|e| e.paid),
        "every payment went out: {ledger:?}"
    );
    assert_eq!(
        w.fake.charged().to_money().minor,
        paid,
        "Toloka charged what the ledger says"
    );

    let mut overlaps: Vec<u32> = w
        .fake
        .task_ids(&pool)
        .iter()
        .map(|t| w.fake.task_overlap(t).unwrap())
        .collect();
    overlaps.sort();
    let accepted = held
        .iter()
        .filter(|a| w.fake.assignment_status(a) == Some(AssignmentStatus::Accepted))
        .count();
    let mut bonuses: Vec<(String, String)> = w
        .fake
        .bonuses()
        .iter()
        .map(|b| {
            (
                b["user_id"].as_str().unwrap().to_owned(),
                b["amount"].to_string(),
            )
        })
        .collect();
    bonuses.sort();
    if fail_at.is_none() {
        let patches = calls(&w.fake, "PATCH", "/assignments/").len();
        assert!(
            patches > accepted,
            "approvals before submission were retried: {patches}"
        );
    }
    let end = End {
        overlaps,
        accepted,
        bonuses,
        charged: w.fake.charged().micros,
    };
    (end, host.restarts, failing.writes())
}

#[tokio::test]
async fn the_engine_runs_a_pavilion_study_on_toloka_and_a_crash_at_any_write_changes_nothing() {
    let (calm, restarts, writes) = study(None, FailMode::Before).await;
    assert_eq!(restarts, 1);
    assert!(calm.accepted >= 4, "{calm:?}");
    assert!(!calm.bonuses.is_empty(), "{calm:?}");
    assert!(!calm.overlaps.is_empty());
    eprintln!("calm run: {calm:?}, {writes} store writes");

    // A crash before each write in turn (every write when CROWDCORE_TOLOKA_ALL_WRITES=1,
    // else every third, to bound the time on a shared machine).
    let stride = if std::env::var("CROWDCORE_TOLOKA_ALL_WRITES").as_deref() == Ok("1") {
        1
    } else {
        3
    };
    let mut crashed = 0;
    for n in (1..=writes).step_by(stride) {
        let (end, restarts, _) = study(Some(n), FailMode::Before).await;
        assert_eq!(end, calm, "crash before write {n}");
        if restarts > 1 {
            crashed += 1;
        }
    }
    assert!(
        crashed > writes as usize / (2 * stride),
        "the crashes happened: {crashed}"
    );
    // A crash right after a write (the write holds; the process never heard): from the
    // second write on, at every other stride.
    for n in (2..=writes).step_by(2 * stride) {
        let (end, _, _) = study(Some(n), FailMode::After).await;
        assert_eq!(end, calm, "crash after write {n}");
    }
}
