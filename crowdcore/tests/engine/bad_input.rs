//! Bad input through the host API: a typed error, and nothing lost — the machine's state, the
//! ledger and the market are as before, the engine keeps working, and a restart from the
//! store arrives at the same state.

use crowdcore::engine::{EngineError, EngineEvent};
use crowdcore::pavilion::{Rejected, SeatState, Targets};
use crowdcore::{AssignmentId, HitId, WorkerId};

use crate::support::{Op, at, fresh};

#[tokio::test]
async fn bad_input_is_refused_with_a_typed_error_and_loses_nothing() {
    let (mut host, market, _store) = fresh().await;
    let rejected = |r: Result<(), EngineError>| match r {
        Err(EngineError::Rejected(why)) => why,
        other => panic!("expected a rejection, got {other:?}"),
    };

    // Admin commands out of order.
    let engine = host.engine();
    assert_eq!(rejected(engine.migrate(1).await), Rejected::NotStarted);
    assert_eq!(rejected(engine.expire().await), Rejected::NotStarted);
    engine.start().await.unwrap();
    assert_eq!(rejected(engine.start().await), Rejected::AlreadyStarted);

    host.run_until(at(5)).await;
    let w1 = WorkerId::new("w1");
    let hit = market.available(&w1)[0].hit.clone();
    let a1 = market.accept(&w1, &hit).unwrap();
    host.call(Op::Arrive(w1.clone(), a1.clone(), hit.clone()))
        .await
        .unwrap();
    while host.engine().poll_event().is_some() {}

    let before = host.engine().snapshot();
    let ledger = host.engine().ledger().await.unwrap();
    let hits = market.hits();
    let ghost = AssignmentId::new("A-ghost");
    let engine = host.engine();
    let cases = [
        (
            engine
                .arrive(
                    WorkerId::new("w2"),
                    AssignmentId::new("A-x"),
                    HitId::new("H-none"),
                )
                .await,
            Rejected::UnknownHit(HitId::new("H-none")),
        ),
        (
            engine
                .arrive(WorkerId::new("mallory"), a1.clone(), hit.clone())
                .await,
            Rejected::WorkerMismatch {
                assignment: a1.clone(),
                holder: w1.clone(),
                claimed: WorkerId::new("mallory"),
            },
        ),
        (
            engine.heartbeat(ghost.clone()).await,
            Rejected::UnknownAssignment(ghost.clone()),
        ),
        (
            engine.submit(ghost.clone(), 3).await,
            Rejected::UnknownAssignment(ghost.clone()),
        ),
        (
            engine.return_assignment(ghost.clone()).await,
            Rejected::UnknownAssignment(ghost.clone()),
        ),
    ];
    for (result, expected) in cases {
        assert_eq!(rejected(result), expected);
    }
    let bad_targets = Targets {
        min_active: 3,
        max_active: 2,
        min_waiting: 0,
        max_waiting: 2,
    };
    assert!(matches!(
        rejected(engine.set_targets(bad_targets).await),
        Rejected::BadTargets(_)
    ));
    let zero = Targets {
        max_active: 0,
        min_active: 0,
        ..bad_targets
    };
    assert!(matches!(
        rejected(engine.set_targets(zero).await),
        Rejected::BadTargets(_)
    ));

    // Nothing changed, and every refusal was told to subscribers.
    assert_eq!(engine.snapshot(), before);
    assert_eq!(engine.pending_effects(), 0);
    let mut refusals = 0;
    while let Some(event) = engine.poll_event() {
        assert!(matches!(event, EngineEvent::Rejected { .. }), "{event:?}");
        refusals += 1;
    }
    assert_eq!(refusals, 7);
    assert_eq!(engine.ledger().await.unwrap(), ledger);
    assert_eq!(market.hits(), hits);

    // The engine keeps working: a page reload is harmless, a real submission pays, and a
    // second submission is refused without paying again.
    host.run_until(at(15)).await;
    host.call(Op::Arrive(w1.clone(), a1.clone(), hit.clone()))
        .await
        .unwrap();
    assert_eq!(host.seat(&a1), Some(SeatState::Waiting));
    host.call(Op::Submit(a1.clone(), 0)).await.unwrap();
    let paid = market.earnings(&w1);
    assert_eq!(paid.minor, 50 + 1);
    assert_eq!(
        rejected(host.call(Op::Submit(a1.clone(), 5)).await),
        Rejected::AlreadyLeft(a1.clone())
    );
    assert_eq!(
        rejected(
            host.call(Op::Arrive(w1.clone(), a1.clone(), hit.clone()))
                .await
        ),
        Rejected::AlreadyLeft(a1.clone())
    );
    assert_eq!(market.earnings(&w1), paid);

    // The refused inputs are in the log; a replay refuses them again and lands on the same
    // state.
    let live = host.engine().snapshot();
    let restarted = crowdcore::engine::EngineBuilder::new(
        host.rig.clone(),
        host.store.clone(),
        host.config.clone(),
    )
    .session(host.session.clone())
    .clock(std::sync::Arc::new(host.clock.clone()))
    .start()
    .await
    .unwrap();
    assert_eq!(restarted.snapshot(), live);
    assert_eq!(restarted.pending_effects(), 0);

    // A stopped job refuses admin commands.
    host.call(Op::Stop).await.unwrap();
    let engine = host.engine();
    assert_eq!(rejected(engine.stop().await), Rejected::Stopped);
    assert_eq!(rejected(engine.start().await), Rejected::Stopped);
    assert_eq!(rejected(engine.migrate(1).await), Rejected::Stopped);
}
