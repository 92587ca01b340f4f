//! The engine driving the retainer: templates and reservations through the log, pool hires
//! posted on the platform, routes delivered, pay in the ledger, recovery from the store, and
//! a spawned engine answering a polling page.

use std::sync::Arc;

use crowdcore::clock::VirtualClock;
use crowdcore::engine::{Engine, EngineBuilder, EngineError, EngineEvent, RetainerEngineConfig};
use crowdcore::local::LocalMarketplace;
use crowdcore::platform::{AssignmentStatus, Platform};
use crowdcore::retainer::{
    self, EffectKind, Input, PoolTarget, Rejected, Retainer, RetainerConfig, RoutedTask,
};
use crowdcore::store::{MemoryStore, Store};
use crowdcore::{AssignmentId, ReservationId, SessionId, TemplateId, WorkerId};

use crate::support::{T0, at, market, spec};

fn config() -> RetainerEngineConfig {
    let mut config = RetainerEngineConfig::new(RetainerConfig {
        pool: PoolTarget::Fixed(2),
        heartbeat_timeout_ms: 30_000,
        waiting_cents_per_minute: 6,
        ..RetainerConfig::default()
    });
    config.snapshot_every = 5;
    config
}

fn template() -> TemplateId {
    TemplateId::new("label")
}

fn register() -> Input {
    Input::RegisterTemplate {
        template: template(),
        spec: spec(),
        pool: None,
        budget_cents: Some(10_000),
    }
}

fn make(id: &str, needed: u32, start_secs: u64) -> Input {
    Input::MakeReservation {
        reservation: ReservationId::new(id),
        template: template(),
        foreign_id: format!("task-{id}"),
        payload: serde_json::json!({ "url": format!("https://example.org/{id}") }),
        start_at: at(start_secs),
        needed,
    }
}

async fn engine(
    market: &LocalMarketplace,
    store: &Arc<MemoryStore>,
    clock: &VirtualClock,
    session: &SessionId,
) -> Engine<Retainer> {
    EngineBuilder::new(
        Arc::new(market.clone()) as Arc<dyn Platform>,
        store.clone() as Arc<dyn Store>,
        config(),
    )
    .clock(Arc::new(clock.clone()))
    .session(session.clone())
    .start()
    .await
    .unwrap()
}

/// Workers take every open slot of the pool and land on the retainer page.
async fn fill_pool(
    engine: &mut Engine<Retainer>,
    market: &LocalMarketplace,
    names: &[&str],
) -> Vec<AssignmentId> {
    let mut assignments = Vec::new();
    for name in names {
        let worker = WorkerId::new(*name);
        let listing = market.first_available(&worker).expect("an open slot");
        let assignment = market.accept(&worker, &listing.hit).unwrap();
        engine
            .input(Input::Arrive {
                worker,
                assignment: assignment.clone(),
                hit: listing.hit,
            })
            .await
            .unwrap();
        assignments.push(assignment);
    }
    assignments
}

fn routes(engine: &mut Engine<Retainer>) -> Vec<(ReservationId, AssignmentId)> {
    std::iter::from_fn(|| engine.poll_event())
        .filter_map(|event| match event {
            EngineEvent::Effect(retainer::Effect {
                kind:
                    EffectKind::Route {
                        reservation,
                        assignment,
                        ..
                    },
                ..
            }) => Some((reservation, assignment)),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn reservations_recruit_route_and_pay_through_the_platform() {
    let clock = VirtualClock::new(T0);
    let market = market(&clock);
    let store = Arc::new(MemoryStore::new());
    let session = SessionId::new("retainer-1");
    let mut engine = engine(&market, &store, &clock, &session).await;

    engine.input(register()).await.unwrap();
    engine.input(make("r1", 2, 600)).await.unwrap();
    // The pool hired its two workers: one HIT on the market with two open slots.
    let hits = market.hits();
    assert_eq!(hits.len(), 1, "{hits:?}");
    assert_eq!(hits[0].1, 2, "slots posted");

    clock.set(at(10));
    let assignments = fill_pool(&mut engine, &market, &["w1", "w2"]).await;
    assert!(
        routes(&mut engine).is_empty(),
        "nothing routed before invoke"
    );
    assert_eq!(engine.machine().task_for(&assignments[0]), Ok(None));

    clock.set(at(20));
    engine
        .input(Input::Invoke {
            reservation: ReservationId::new("r1"),
        })
        .await
        .unwrap();
    let routed = routes(&mut engine);
    assert_eq!(routed.len(), 2, "{routed:?}");
    for a in &assignments {
        let task = engine.machine().task_for(a).unwrap();
        assert_eq!(
            task.map(|t| t.task),
            Some("task-r1".to_owned()),
            "{a} is routed"
        );
    }

    // They work, submit on the platform and the page: the engine approves and pays.
    clock.set(at(80));
    for a in &assignments {
        market.submit(a, Some("done".into())).unwrap();
        engine
            .input(Input::Submit {
                assignment: a.clone(),
                contributions: 0,
            })
            .await
            .unwrap();
    }
    for a in &assignments {
        assert_eq!(market.status(a), Some(AssignmentStatus::Approved), "{a}");
    }
    let ledger = engine.ledger().await.unwrap();
    let base: Vec<_> = ledger.iter().filter(|e| e.kind == "base").collect();
    assert_eq!(base.len(), 2, "{ledger:?}");
    assert!(base.iter().all(|e| e.paid && e.amount == spec().reward));
    assert!(
        ledger.iter().any(|e| e.kind == "waiting_bonus"),
        "a minute of waiting is paid: {ledger:?}"
    );
    assert_eq!(market.duplicate_calls(), 0);

    // A fresh engine on the same store arrives at the same state.
    let before = serde_json::to_value(engine.snapshot()).unwrap();
    drop(engine);
    let again = self::engine(&market, &store, &clock, &session).await;
    assert_eq!(serde_json::to_value(again.snapshot()).unwrap(), before);
    assert_eq!(again.pending_effects(), 0);
}

#[tokio::test]
async fn a_reservation_is_invoked_by_itself_at_start_at() {
    let clock = VirtualClock::new(T0);
    let market = market(&clock);
    let store = Arc::new(MemoryStore::new());
    let session = SessionId::new("retainer-2");
    let mut engine = engine(&market, &store, &clock, &session).await;
    engine.input(register()).await.unwrap();
    engine.input(make("r1", 1, 60)).await.unwrap();
    clock.set(at(5));
    let assignments = fill_pool(&mut engine, &market, &["w1"]).await;
    // The page keeps pinging (a silent page would be gone after 30 s).
    for secs in [25, 50] {
        clock.set(at(secs));
        let ping = Input::Ping {
            assignment: assignments[0].clone(),
            kind: retainer::PingKind::Waiting,
        };
        engine.input(ping).await.unwrap();
    }

    // Not before its time.
    clock.set(at(59));
    engine.advance().await.unwrap();
    assert!(routes(&mut engine).is_empty(), "invoked before start_at");

    clock.set(at(60));
    engine.advance().await.unwrap();
    assert_eq!(
        routes(&mut engine),
        vec![(ReservationId::new("r1"), assignments[0].clone())]
    );
}

#[tokio::test]
async fn bad_input_is_a_typed_rejection_that_changes_nothing() {
    let clock = VirtualClock::new(T0);
    let market = market(&clock);
    let store = Arc::new(MemoryStore::new());
    let session = SessionId::new("retainer-3");
    let mut engine = engine(&market, &store, &clock, &session).await;
    engine.input(register()).await.unwrap();
    engine.input(make("r1", 1, 600)).await.unwrap();
    engine
        .input(Input::Cancel {
            reservation: ReservationId::new("r1"),
        })
        .await
        .unwrap();
    let before = serde_json::to_value(engine.snapshot()).unwrap();
    let cases = [
        (
            Input::Invoke {
                reservation: ReservationId::new("r1"),
            },
            "cannot invoke reservation r1: it is cancelled",
        ),
        (
            Input::Finish {
                reservation: ReservationId::new("nope"),
            },
            "unknown reservation nope",
        ),
        (make("r2", 0, 600), "reservation r2 needs no workers"),
        (
            Input::MakeReservation {
                reservation: ReservationId::new("r3"),
                template: TemplateId::new("ghost"),
                foreign_id: "task-r3".into(),
                payload: serde_json::Value::Null,
                start_at: at(600),
                needed: 1,
            },
            "unknown template ghost",
        ),
    ];
    for (input, message) in cases {
        match engine.input(input).await {
            Err(EngineError::Rejected(why)) => assert_eq!(why.to_string(), message),
            other => panic!("expected {message:?}, got {other:?}"),
        }
        assert_eq!(serde_json::to_value(engine.snapshot()).unwrap(), before);
    }
    assert!(matches!(
        engine
            .input(Input::Unfinish {
                reservation: ReservationId::new("r1"),
            })
            .await,
        Err(EngineError::Rejected(Rejected::NotAllowed { .. }))
    ));
}

#[tokio::test]
async fn a_spawned_engine_answers_a_polling_page() {
    let clock = VirtualClock::new(T0);
    let market = market(&clock);
    let store = Arc::new(MemoryStore::new());
    let session = SessionId::new("retainer-4");
    let mut engine = engine(&market, &store, &clock, &session).await;
    engine.input(register()).await.unwrap();
    engine.input(make("r1", 1, 600)).await.unwrap();
    let assignments = fill_pool(&mut engine, &market, &["w1"]).await;
    let handle = engine.spawn();
    let a = assignments[0].clone();
    let poll = |a: AssignmentId| {
        let handle = handle.clone();
        async move {
            handle
                .read(move |machine: &Retainer| machine.task_for(&a))
                .await
                .unwrap()
        }
    };
    assert_eq!(poll(a.clone()).await, Ok(None));
    handle
        .input(Input::Invoke {
            reservation: ReservationId::new("r1"),
        })
        .await
        .unwrap();
    assert_eq!(
        poll(a.clone()).await,
        Ok(Some(RoutedTask {
            reservation: ReservationId::new("r1"),
            task: "task-r1".into(),
            payload: serde_json::json!({ "url": "https://example.org/r1" }),
        }))
    );
    assert_eq!(
        poll(AssignmentId::new("ghost")).await,
        Err(Rejected::UnknownAssignment(AssignmentId::new("ghost")))
    );
}
