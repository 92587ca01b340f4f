//! A permanent platform error is never a silent drop: a failed hire comes back to the machine
//! as an input, a failed payment is a ledger entry marked unpaid, the outbox says failed, and
//! a restart does not send either again.

use std::sync::Arc;

use crowdcore::clock::VirtualClock;
use crowdcore::engine::{Engine, EngineBuilder, EngineError, EngineEvent};
use crowdcore::local::LocalMarketplace;
use crowdcore::pavilion::{EffectKind, Notice};
use crowdcore::store::{MemoryStore, OutboxState, Store};
use crowdcore::{Money, SessionId, WorkerId};

use crate::support::{T0, at, config};

struct Rig {
    clock: VirtualClock,
    market: LocalMarketplace,
    store: MemoryStore,
}

impl Rig {
    fn new(funds: i64) -> Self {
        let clock = VirtualClock::new(T0);
        let market = LocalMarketplace::new(Arc::new(clock.clone()), Money::usd_cents(funds));
        Self {
            clock,
            market,
            store: MemoryStore::new(),
        }
    }

    async fn engine(&self) -> Result<Engine, EngineError> {
        EngineBuilder::new(
            Arc::new(self.market.clone()),
            Arc::new(self.store.clone()),
            config(),
        )
        .session(SessionId::new("permanent"))
        .clock(Arc::new(self.clock.clone()))
        .start()
        .await
    }

    /// Restarts from the store and checks that nothing is sent again.
    async fn restart_changes_nothing(&self, engine: Engine) {
        let live = engine.snapshot();
        let spent = self.market.spending();
        let hits = self.market.hits();
        drop(engine);
        let mut engine = self.engine().await.unwrap();
        assert_eq!(engine.pending_effects(), 0);
        engine.advance().await.unwrap();
        assert_eq!(engine.snapshot(), live);
        assert_eq!(self.market.spending(), spent);
        assert_eq!(self.market.hits(), hits);
        assert_eq!(self.market.duplicate_calls(), 0);
    }
}

#[tokio::test]
async fn a_hire_the_platform_refuses_comes_back_as_an_input() {
    // Not enough money for a HIT of four 50 ¢ slots.
    let rig = Rig::new(150);
    let mut engine = rig.engine().await.unwrap();
    engine.start().await.unwrap();
    assert!(rig.market.hits().is_empty());

    let mut failed = Vec::new();
    let mut paused_until = None;
    while let Some(event) = engine.poll_event() {
        match event {
            EngineEvent::EffectFailed { effect, error } => {
                assert!(error.contains("InsufficientFunds"), "{error}");
                failed.push(effect.id);
            }
            EngineEvent::Effect(e) => {
                if let EffectKind::Notify {
                    notice: Notice::HireFailed { retry_at, .. },
                } = e.kind
                {
                    paused_until = Some(retry_at);
                }
            }
            EngineEvent::Rejected { .. } => panic!("nothing was rejected"),
        }
    }
    assert_eq!(failed.len(), 1);
    let entry = rig.store.effect(&failed[0]).await.unwrap().unwrap();
    assert!(matches!(entry.state, OutboxState::Failed { .. }));
    assert_eq!(engine.machine().hires_in_flight(), 0);
    assert_eq!(engine.pending_effects(), 0);
    // The engine wakes up when the pause is over.
    let resume = paused_until.expect("the machine paused hiring");
    assert_eq!(resume, at(60));
    assert_eq!(engine.machine().poll_timeout(), Some(resume));
    rig.restart_changes_nothing(engine).await;
}

#[tokio::test]
async fn a_payment_the_platform_refuses_is_an_unpaid_ledger_entry() {
    // Enough for the HIT (posting charges nothing up front) and the base pay, not for a 2 $
    // contribution bonus.
    let rig = Rig::new(230);
    let mut engine = rig.engine().await.unwrap();
    engine.start().await.unwrap();
    rig.clock.set(at(5));
    let mut assignments = Vec::new();
    for w in ["w1", "w2"] {
        let w = WorkerId::new(w);
        let hit = rig.market.available(&w)[0].hit.clone();
        let a = rig.market.accept(&w, &hit).unwrap();
        engine.arrive(w, a.clone(), hit).await.unwrap();
        assignments.push(a);
    }
    rig.clock.set(at(25));
    engine.submit(assignments[0].clone(), 40).await.unwrap();

    let ledger = engine.ledger().await.unwrap();
    let unpaid: Vec<_> = ledger.iter().filter(|e| !e.paid).collect();
    assert_eq!(unpaid.len(), 1, "{ledger:?}");
    assert_eq!(unpaid[0].kind, "contribution_bonus");
    assert_eq!(unpaid[0].amount.minor, 200);
    let entry = rig.store.effect(&unpaid[0].effect).await.unwrap().unwrap();
    assert!(matches!(entry.state, OutboxState::Failed { .. }));
    let paid: i64 = ledger
        .iter()
        .filter(|e| e.paid)
        .map(|e| e.amount.minor)
        .sum();
    assert_eq!(rig.market.earnings(&WorkerId::new("w1")).minor, paid);
    assert_eq!(rig.market.spending().minor, paid);
    let failures = std::iter::from_fn(|| engine.poll_event())
        .filter(|e| matches!(e, EngineEvent::EffectFailed { .. }))
        .count();
    assert_eq!(failures, 1);
    rig.restart_changes_nothing(engine).await;
}
