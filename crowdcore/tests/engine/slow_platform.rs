//! A spawned engine makes its platform calls beside its loop: a platform that takes seconds per
//! call, or never answers, delays no input and times out no page that keeps beating; nor does
//! an observer poll (`updates`) that never answers.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crowdcore::clock::{Clock, SystemClock, TokioClock};
use crowdcore::engine::{CallLimiter, EngineBuilder, EngineConfig, EngineHandle};
use crowdcore::faults::{CallClass, FaultKind, FaultyPlatform, Latency};
use crowdcore::local::LocalMarketplace;
use crowdcore::pavilion::{Effect, EffectKind, Input, PayKind, SeatState};
use crowdcore::store::{MemoryStore, NewEffect, Store};
use crowdcore::{AssignmentId, EffectId, Money, SessionId, Timestamp, WorkerId};

use crate::support::config;

/// The local marketplace behind the fault injector, with no faults: only latency, set per
/// test (every effect call slow or hanging; every poll hanging).
fn slow(market: &LocalMarketplace) -> Arc<FaultyPlatform> {
    Arc::new(FaultyPlatform::new(Arc::new(market.clone()), 0, 0.0))
}

/// Polls `check` every 10 ms of tokio's time (real, or paused), up to `secs` of it.
async fn settle(secs: u64, mut check: impl AsyncFnMut() -> bool) -> bool {
    for _ in 0..secs * 100 {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

/// A spawned engine on the local marketplace behind the fault injector ([`slow`]), started,
/// its first hire posted (while the platform is fast), and one worker per name seated on it.
struct Rig {
    market: LocalMarketplace,
    slow: Arc<FaultyPlatform>,
    store: Arc<MemoryStore>,
    session: SessionId,
    handle: EngineHandle,
    seated: Vec<AssignmentId>,
}

async fn seat(clock: Arc<dyn Clock>, config: EngineConfig, workers: &[&str]) -> Rig {
    let market = LocalMarketplace::new(clock.clone(), Money::usd_cents(1_000_000));
    let slow = slow(&market);
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
        settle(5, async || !market.hits().is_empty()
            && handle.read(|m| m.hires_in_flight() == 0).await.unwrap())
        .await,
        "the hire is posted, and the engine knows its HIT"
    );
    let hit = market.hits()[0].0.clone();
    let mut seated = Vec::new();
    for w in workers {
        let worker = WorkerId::new(*w);
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
    Rig {
        market,
        slow,
        store,
        session,
        handle,
        seated,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_are_served_while_every_platform_call_is_slow_or_hangs() {
    let mut config = config();
    config.pavilion.heartbeat_timeout_ms = 1_500;
    config.calls.timeout_ms = 1_000;
    // Two workers take seats while the platform is fast.
    let Rig {
        market,
        slow,
        store,
        session,
        handle,
        seated,
    } = seat(Arc::new(SystemClock), config, &["W1", "W2"]).await;
    // Now every platform call hangs (the engine times each out after 1 s and retries it with
    // its key). W1 submits, which approves and hires; W2 keeps beating for 4 s, well past its
    // 1.5 s heartbeat timeout, and every heartbeat is answered at once.
    slow.set_latency(CallClass::Effect, Latency::Never);
    let before = slow.injected().effects;
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
    // Each hung call is timed out after 1 s and sent again: in 4 s, more calls than effects.
    let hung = slow.injected().effects - before;
    assert!(
        hung >= 4,
        "the hung calls were retried: {hung} calls in 4 s"
    );
    // The platform recovers: the approval goes through once, with its key.
    slow.set_latency(CallClass::Effect, Latency::Immediate);
    assert!(
        settle(10, async || {
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
    let mut config = config();
    config.pavilion.heartbeat_timeout_ms = 1_500;
    config.calls.timeout_ms = 1_000;
    config.observe_every_ms = 100;
    // Two workers take seats while the platform is fast.
    let Rig {
        market,
        slow,
        store,
        session,
        handle,
        seated,
    } = seat(Arc::new(SystemClock), config, &["W1", "W2"]).await;
    // Every poll now hangs (timed out after 1 s, one in flight at a time); both workers keep
    // beating for 4 s, past their 1.5 s heartbeat timeout.
    slow.set_latency(CallClass::Poll, Latency::Never);
    let before = slow.injected().polls;
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
    let hung = slow.injected().polls - before;
    assert!(
        (2..=6).contains(&hung),
        "one poll in flight at a time, each timed out after 1 s: {hung} polls in 4 s"
    );
    // The platform answers again: W1's submission, seen only by the observer, is recorded
    // and applied, and W1 is paid.
    slow.set_latency(CallClass::Poll, Latency::Immediate);
    market.submit(&seated[0], None).unwrap();
    assert!(
        settle(10, async || {
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

/// `n` bonus payments due in `session`'s outbox before its engine starts (as a crash, or a
/// burst of releases, leaves them).
async fn due_bonuses(store: &MemoryStore, session: &SessionId, n: u64) {
    let due: Vec<NewEffect> = (1..=n)
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
                body: serde_json::to_string(&effect).unwrap(),
            }
        })
        .collect();
    store.enqueue(session, &due).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_sharing_a_limiter_start_calls_no_faster_than_its_rate() {
    let clock = Arc::new(SystemClock);
    let market = LocalMarketplace::new(clock.clone(), Money::usd_cents(1_000_000));
    let platform = slow(&market);
    // 20 calls a second, 2 at once, shared by two sessions of 10 due effects each.
    let limiter = CallLimiter::new(20, 2);
    let store = MemoryStore::new();
    let mut handles = Vec::new();
    let started = Instant::now();
    for name in ["limited-a", "limited-b"] {
        let session = SessionId::new(name);
        due_bonuses(&store, &session, 10).await;
        let engine = EngineBuilder::new(platform.clone(), Arc::new(store.clone()), config())
            .session(session)
            .clock(clock.clone())
            .limiter(limiter.clone())
            .start()
            .await
            .unwrap();
        handles.push(engine.spawn());
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let early = platform.injected().effects;
    let elapsed = started.elapsed().as_secs_f64();
    // Two at once, then one every 50 ms (one more for the boundary).
    let allowed = 2 + (elapsed * 20.0).ceil() as u64 + 1;
    assert!(
        (4..=allowed).contains(&early),
        "{early} calls in {elapsed:.2} s through a 20/s bucket"
    );
    assert!(
        settle(10, async || platform.injected().effects >= 20).await,
        "every due effect is tried"
    );
    // The bonuses name assignments the market never made, so each fails for good, once.
    assert_eq!(platform.injected().effects, 20);
    assert!(handles.iter().all(|h| !h.is_finished()));
}

/// Beats for `assignments` every second for `secs` seconds (of paused time), returning the
/// longest any heartbeat waited for its answer.
async fn beat(
    handle: &crowdcore::engine::EngineHandle,
    assignments: &[AssignmentId],
    secs: u64,
) -> Duration {
    let mut slowest = Duration::ZERO;
    for _ in 0..secs {
        for assignment in assignments {
            let asked = tokio::time::Instant::now();
            handle
                .input(Input::Heartbeat {
                    assignment: assignment.clone(),
                })
                .await
                .unwrap();
            slowest = slowest.max(asked.elapsed());
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    slowest
}

/// On tokio's paused clock (the engine, the market and the platform's latency all read it):
/// every effect call takes a minute, then every call is refused with 429 for a minute. Pages
/// beating every second (5 s heartbeat timeout) keep their seats through both; every
/// heartbeat is answered at once; and when the platform recovers, each submission is paid
/// once, with no key ever carried out twice.
#[tokio::test(start_paused = true)]
async fn a_minute_per_call_then_a_minute_of_429s_times_out_no_live_page() {
    let mut config = config();
    config.pavilion.min_active = 2;
    config.pavilion.max_active = 2;
    config.pavilion.min_waiting = 1;
    config.pavilion.max_waiting = 1;
    config.pavilion.heartbeat_timeout_ms = 5_000;
    config.calls.timeout_ms = 90_000;
    let Rig {
        market,
        slow,
        store,
        session,
        handle,
        seated,
    } = seat(
        Arc::new(TokioClock::new(Timestamp::from_millis(1_000_000))),
        config,
        &["W1", "W2", "W3"],
    )
    .await;
    let submit = async |assignment: &AssignmentId| {
        market.submit(assignment, None).unwrap();
        handle
            .input(Input::Submit {
                assignment: assignment.clone(),
                contributions: 0,
            })
            .await
            .unwrap();
    };

    // A minute a call: W1 submits (an approval, a hire, an expiry: minutes of calls); W2 and
    // W3 beat for three minutes.
    slow.set_latency(CallClass::Effect, Latency::After(Duration::from_secs(60)));
    submit(&seated[0]).await;
    let slowest = beat(&handle, &seated[1..], 180).await;
    assert!(slowest < Duration::from_millis(50), "waited {slowest:?}");

    // 429 to every call for a minute: W2 submits; W3 beats.
    slow.set_latency(CallClass::Effect, Latency::Immediate);
    slow.set_kinds(&[FaultKind::Throttled]);
    slow.set_rate(1.0);
    submit(&seated[1]).await;
    let slowest = beat(&handle, &seated[2..], 60).await;
    assert!(slowest < Duration::from_millis(50), "waited {slowest:?}");
    assert!(slow.injected().throttled > 0);
    let w3 = seated[2].clone();
    let seat = handle.read(move |m| m.seat_of(&w3)).await.unwrap();
    assert!(
        matches!(seat, Some(SeatState::Active | SeatState::Waiting)),
        "W3 kept beating and keeps its seat: {seat:?}"
    );

    // The platform recovers: both submissions are paid, once each, and no call was done twice.
    slow.set_rate(0.0);
    let keep_w3 = async || beat(&handle, &seated[2..], 1).await;
    assert!(
        settle(120, async || {
            keep_w3().await;
            let ledger = store.ledger(&session).await.unwrap();
            ledger.iter().filter(|e| e.kind == "base" && e.paid).count() == 2
        })
        .await,
        "W1 and W2 are paid once the platform answers"
    );
    let ledger = store.ledger(&session).await.unwrap();
    let base: Vec<_> = ledger.iter().filter(|e| e.kind == "base").collect();
    assert_eq!(base.len(), 2, "{ledger:?}");
    assert_eq!(market.duplicate_calls(), 0, "no key was carried out twice");
    let w3 = seated[2].clone();
    let seat = handle.read(move |m| m.seat_of(&w3)).await.unwrap();
    assert!(matches!(seat, Some(SeatState::Active | SeatState::Waiting)));
}

/// A platform call whose task panics (a bug in a platform's code) loses nothing: the engine
/// queues its effect again, the lane it held is free, and the pay goes out once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_platform_call_is_retried_not_lost() {
    let mut config = config();
    config.retry.max_ms = 50;
    let Rig {
        market,
        slow,
        store,
        session,
        handle,
        seated,
    } = seat(Arc::new(SystemClock), config, &["W1", "W2"]).await;
    slow.panic_next(1);
    market.submit(&seated[0], None).unwrap();
    handle
        .input(Input::Submit {
            assignment: seated[0].clone(),
            contributions: 0,
        })
        .await
        .unwrap();
    assert!(
        settle(10, async || {
            store
                .ledger(&session)
                .await
                .unwrap()
                .iter()
                .any(|e| e.kind == "base" && e.paid)
        })
        .await,
        "W1's approval, whose first call panicked, is paid"
    );
    let base: Vec<_> = store
        .ledger(&session)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == "base")
        .collect();
    assert_eq!(base.len(), 1, "{base:?}");
    assert!(!handle.is_finished(), "the engine goes on");
    assert!(
        settle(10, async || handle
            .read(|m| m.hires_in_flight() == 0)
            .await
            .unwrap())
        .await,
        "and keeps hiring"
    );
}
