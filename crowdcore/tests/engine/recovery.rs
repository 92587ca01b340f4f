//! A crash at any store write — before it or right after it — and a restart from the store
//! give the same final ledger as an uninterrupted run, and nothing is done twice.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crowdcore::clock::{Clock, VirtualClock};
use crowdcore::engine::EngineBuilder;
use crowdcore::pavilion::{Departure, SeatState};
use crowdcore::store::MemoryStore;
use crowdcore::{SessionId, Timestamp, WorkerId};

use crowdcore::store::{FailMode, FailingStore};

use crate::support::{
    Outcome, T0, at, check_done_once, config, market, outcome, run_workload, start_host,
};

struct Run {
    outcome: Outcome,
    writes: u64,
    restarts: u32,
    duplicates: u64,
}

async fn run(fail_at: Option<u64>, mode: FailMode) -> Run {
    let clock = VirtualClock::new(T0);
    let market = market(&clock);
    let store = Arc::new(FailingStore::new(
        Arc::new(MemoryStore::new()),
        fail_at,
        mode,
    ));
    let mut host = start_host(
        Arc::new(market.clone()),
        store.clone(),
        clock,
        SessionId::new("recovery"),
    )
    .await;
    run_workload(&mut host, &market).await;
    check_done_once(&mut host, &market).await;
    Run {
        outcome: outcome(&mut host, &market).await,
        writes: store.writes(),
        restarts: host.restarts,
        duplicates: market.duplicate_calls(),
    }
}

/// Crashes at every write in `writes` and checks each run against the uninterrupted one.
async fn crash_everywhere(mode: FailMode) {
    let baseline = run(None, mode).await;
    assert_eq!(baseline.restarts, 0);
    assert_eq!(
        baseline.duplicates, 0,
        "an uninterrupted run repeats no key"
    );
    let kinds = [
        "base",
        "waiting_bonus",
        "active_bonus",
        "contribution_bonus",
    ];
    for kind in kinds {
        assert!(
            baseline.outcome.ledger.iter().any(|p| p.2 == kind),
            "the workload never pays {kind}"
        );
    }
    assert!(baseline.writes > 100, "only {} writes", baseline.writes);
    let mut repeated_keys = 0;
    for n in 1..=baseline.writes {
        let crashed = run(Some(n), mode).await;
        assert_eq!(
            crashed.restarts, 1,
            "write {n} ({mode:?}) did not crash once"
        );
        assert_eq!(
            crashed.outcome, baseline.outcome,
            "a crash at write {n} ({mode:?}) changed the outcome"
        );
        repeated_keys += crashed.duplicates;
    }
    if mode == FailMode::Before {
        // Some crashes fell between a platform call and its record: the effect was sent
        // again with its key, and the market answered the repeat without doing it again.
        assert!(repeated_keys > 0);
    } else {
        // A write that landed before the crash is not redone: no key is sent twice.
        assert_eq!(repeated_keys, 0);
    }
}

#[tokio::test]
async fn a_crash_before_any_write_changes_nothing() {
    crash_everywhere(FailMode::Before).await;
}

#[tokio::test]
async fn a_crash_right_after_any_write_changes_nothing() {
    crash_everywhere(FailMode::After).await;
}

/// A clock that can be set back, as a system clock is by NTP.
#[derive(Debug, Clone, Default)]
struct SteppedClock(Arc<AtomicU64>);

impl Clock for SteppedClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_millis(self.0.load(Ordering::SeqCst))
    }
}

#[tokio::test]
async fn a_replay_lands_where_the_live_engine_was_even_if_the_clock_stepped_back() {
    let clock = SteppedClock::default();
    let set = |t: Timestamp| clock.0.store(t.as_millis(), Ordering::SeqCst);
    let market = market(&VirtualClock::new(T0));
    let store = Arc::new(MemoryStore::new());
    let start = || {
        EngineBuilder::new(Arc::new(market.clone()), store.clone(), config())
            .session(SessionId::new("stepped"))
            .clock(Arc::new(clock.clone()))
            .start()
    };
    set(at(100));
    let mut engine = start().await.unwrap();
    engine.start().await.unwrap();
    let w1 = WorkerId::new("w1");
    let hit = market.available(&w1)[0].hit.clone();
    let a1 = market.accept(&w1, &hit).unwrap();
    engine.arrive(w1, a1.clone(), hit).await.unwrap();
    set(at(120));
    engine.heartbeat(a1.clone()).await.unwrap();

    // The worker returns the HIT on the platform; the engine hears it from the observer
    // after the clock stepped back.
    market.return_assignment(&a1).unwrap();
    set(at(110));
    engine.observe().await.unwrap();
    assert_eq!(
        engine.machine().seat_of(&a1),
        Some(SeatState::Left(Departure::Returned))
    );
    engine.heartbeat(a1.clone()).await.unwrap_err();

    let live = engine.snapshot();
    drop(engine);
    let recovered = start().await.unwrap();
    assert_eq!(recovered.snapshot(), live);
}
