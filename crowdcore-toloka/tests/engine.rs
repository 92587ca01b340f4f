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
use crowdcore::engine::EngineConfig;
use crowdcore::model::{AssignmentId, HitId, HitSpec, SessionId, WorkerId};
use crowdcore::platform::Platform;
use crowdcore::store::{FailMode, FailingStore, MemoryStore};
use crowdcore::testkit::{Host, Op, spec, study_config};
use crowdcore_toloka::model::AssignmentStatus;
use crowdcore_toloka::{TolokaPlatform, TolokaPlatformConfig};
use serde_json::json;

/// The shared study ([`crowdcore::testkit::study_config`]) with a snapshot every 5 inputs.
fn config() -> EngineConfig {
    let spec = HitSpec {
        keywords: vec![],
        ..spec()
    };
    let mut config = study_config(spec);
    config.snapshot_every = 5;
    config
}

/// Makes `op` through the shared host (which restarts the engine when the store fails, as a
/// restarted process would); any other error fails the test.
async fn call(host: &mut Host, op: Op) {
    if let Err(e) = host.call(op.clone()).await {
        panic!("{op:?}: {e}");
    }
}

fn present(host: &mut Host) -> Vec<AssignmentId> {
    let s = host.engine().snapshot();
    s.waiting
        .iter()
        .chain(&s.active)
        .map(|seat| seat.assignment.clone())
        .collect()
}

/// Heartbeats from every page, ten seconds at a time, for `secs`.
async fn idle(host: &mut Host, secs: u64) {
    for _ in 0..secs / 10 {
        host.clock.advance(10_000);
        host.ensure().await;
        for a in present(host) {
            call(host, Op::Heartbeat(a)).await;
        }
        call(host, Op::Advance).await;
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
    let mut host = Host::new(
        platform,
        failing.clone(),
        config(),
        (*w.clock).clone(),
        SessionId::new("toloka-e2e"),
    );
    call(&mut host, Op::Start).await;
    call(&mut host, Op::Advance).await;

    // Workers find the tasks on Toloka and land on the page.
    let mut held = Vec::new();
    for worker in ["w1", "w2", "w3", "w4", "w5"] {
        if let Some(a) = w.fake.take_next(&pool, worker).unwrap() {
            let hit = w.fake.assignment_task(&a).unwrap();
            call(
                &mut host,
                Op::Arrive(
                    WorkerId::new(worker),
                    AssignmentId::new(a.as_str()),
                    HitId::new(hit),
                ),
            )
            .await;
            held.push(a);
        }
    }
    assert_eq!(held.len(), 4, "two active and two waiting seats were hired");
    idle(&mut host, 120).await;

    // Two submit on Toloka; the observer reports it, the machine pays them and hires again.
    for a in &held[..2] {
        w.fake.submit(a, json!({ "label": "cat" })).unwrap();
    }
    call(&mut host, Op::Observe).await;
    idle(&mut host, 60).await;
    // A new worker takes a re-posted slot and one waiting worker gives theirs back.
    if let Some(a) = w.fake.take_next(&pool, "w6").unwrap() {
        let hit = w.fake.assignment_task(&a).unwrap();
        call(
            &mut host,
            Op::Arrive(
                WorkerId::new("w6"),
                AssignmentId::new(a.as_str()),
                HitId::new(hit),
            ),
        )
        .await;
        held.push(a);
    }
    w.fake.skip(&held[3]).unwrap();
    call(&mut host, Op::Observe).await;
    idle(&mut host, 60).await;

    // The job ends: it stops and releases everyone, and the HITs close. Toloka accepts only
    // submitted work, so the approvals wait (a retryable "not submitted yet") until the
    // released pages submit, which they do now.
    call(&mut host, Op::Stop).await;
    call(&mut host, Op::Expire).await;
    for a in &held[2..] {
        let _ = w.fake.submit(a, json!({ "label": "dog" }));
    }
    for _ in 0..200 {
        host.ensure().await;
        let engine = host.engine();
        let Some(next) = engine.next_wakeup() else {
            break;
        };
        if engine.pending_effects() == 0 {
            break;
        }
        host.clock.set(next.max(host.clock.now()));
        call(&mut host, Op::Advance).await;
    }
    assert_eq!(host.engine().pending_effects(), 0);

    let ledger = host.engine().ledger().await.unwrap();
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
