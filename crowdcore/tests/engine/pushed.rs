//! Platforms that push updates (a notification queue) instead of being polled, and the engine
//! running in its own task behind an `EngineHandle`.

use std::sync::Arc;

use async_trait::async_trait;
use crowdcore::clock::{SystemClock, VirtualClock};
use crowdcore::engine::{EngineBuilder, EngineEvent};
use crowdcore::local::LocalMarketplace;
use crowdcore::pavilion::{Departure, EffectKind, Input, SeatState};
use crowdcore::platform::{
    AssignmentRecord, AssignmentStatus, AssignmentUpdate, Capabilities, Cursor, IdempotencyKey,
    Page, Platform, PlatformError,
};
use crowdcore::store::MemoryStore;
use crowdcore::{AssignmentId, HitId, HitSpec, Money, WorkerId};

use crate::support::{T0, at, config, market};

/// The local marketplace, claiming to push its updates, and refusing to be polled.
struct Pushing(LocalMarketplace);

#[async_trait]
impl Platform for Pushing {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            push_notifications: true,
            ..self.0.capabilities()
        }
    }
    async fn post(
        &self,
        spec: &HitSpec,
        slots: u32,
        key: &IdempotencyKey,
    ) -> Result<HitId, PlatformError> {
        self.0.post(spec, slots, key).await
    }
    async fn assignment(
        &self,
        assignment: &AssignmentId,
    ) -> Result<Option<AssignmentRecord>, PlatformError> {
        self.0.assignment(assignment).await
    }
    async fn add_slots(
        &self,
        hit: &HitId,
        n: u32,
        key: &IdempotencyKey,
    ) -> Result<(), PlatformError> {
        self.0.add_slots(hit, n, key).await
    }
    async fn expire(&self, hit: &HitId) -> Result<(), PlatformError> {
        self.0.expire(hit).await
    }
    async fn updates(&self, _: Option<&Cursor>) -> Result<Page<AssignmentUpdate>, PlatformError> {
        panic!("a pushing platform is never polled")
    }
    async fn approve(&self, a: &AssignmentId, key: &IdempotencyKey) -> Result<(), PlatformError> {
        self.0.approve(a, key).await
    }
    async fn reject(
        &self,
        a: &AssignmentId,
        f: &str,
        key: &IdempotencyKey,
    ) -> Result<(), PlatformError> {
        self.0.reject(a, f, key).await
    }
    async fn bonus(
        &self,
        w: &WorkerId,
        a: Option<&AssignmentId>,
        amount: Money,
        reason: &str,
        key: &IdempotencyKey,
    ) -> Result<(), PlatformError> {
        self.0.bonus(w, a, amount, reason, key).await
    }
    async fn notify(&self, w: &[WorkerId], s: &str, m: &str) -> Result<(), PlatformError> {
        self.0.notify(w, s, m).await
    }
    async fn block(&self, w: &WorkerId, r: &str) -> Result<(), PlatformError> {
        self.0.block(w, r).await
    }
    async fn grant_qualification(
        &self,
        w: &WorkerId,
        q: &str,
        v: i64,
    ) -> Result<(), PlatformError> {
        self.0.grant_qualification(w, q, v).await
    }
    async fn revoke_qualification(&self, w: &WorkerId, q: &str) -> Result<(), PlatformError> {
        self.0.revoke_qualification(w, q).await
    }
    async fn balance(&self) -> Result<Money, PlatformError> {
        self.0.balance().await
    }
}

#[tokio::test]
async fn pushed_updates_are_recorded_and_applied_and_nothing_is_polled() {
    let clock = VirtualClock::new(T0);
    let market = market(&clock);
    let store = Arc::new(MemoryStore::new());
    let mut engine = EngineBuilder::new(Arc::new(Pushing(market.clone())), store.clone(), config())
        .clock(Arc::new(clock.clone()))
        .start()
        .await
        .unwrap();
    engine.start().await.unwrap();
    let hit = market.available(&WorkerId::new("W1"))[0].hit.clone();
    let w1 = WorkerId::new("W1");
    let a1 = market.accept(&w1, &hit).unwrap();
    engine
        .arrive(w1.clone(), a1.clone(), hit.clone())
        .await
        .unwrap();
    // No observer wakeups for a pushing platform: advancing far ahead never polls.
    clock.set(at(3));
    engine.advance().await.unwrap();
    market.return_assignment(&a1).unwrap();
    engine
        .push_updates(&[AssignmentUpdate {
            assignment: a1.clone(),
            worker: w1,
            hit,
            status: AssignmentStatus::Returned,
            at: at(3),
        }])
        .await
        .unwrap();
    assert_eq!(
        engine.machine().seat_of(&a1),
        Some(SeatState::Left(Departure::Returned))
    );
    // The pushed input is in the log: a restarted engine lands in the same state.
    let session = engine.session().clone();
    let before = engine.snapshot();
    drop(engine);
    let again = EngineBuilder::new(Arc::new(Pushing(market)), store, config())
        .clock(Arc::new(clock))
        .session(session)
        .start()
        .await
        .unwrap();
    assert_eq!(again.snapshot(), before);
}

#[tokio::test]
async fn an_engine_in_its_own_task_takes_calls_and_publishes_events() {
    let clock = Arc::new(SystemClock);
    let market = LocalMarketplace::new(clock.clone(), Money::usd_cents(1_000_000));
    let engine = EngineBuilder::new(
        Arc::new(market.clone()),
        Arc::new(MemoryStore::new()),
        config(),
    )
    .clock(clock)
    .start()
    .await
    .unwrap();
    let handle = engine.spawn();
    let mut events = handle.subscribe();
    handle.input(Input::Start).await.unwrap();
    let hired = loop {
        match events.recv().await.unwrap() {
            EngineEvent::Effect(e) => {
                if let EffectKind::Hire { count } = e.kind {
                    break count;
                }
            }
            other => panic!("unexpected event {other:?}"),
        }
    };
    assert_eq!(hired, 4, "two active and two waiting seats");
    let snapshot = handle.snapshot().await.unwrap();
    assert_eq!(snapshot.open_slots, 4);
    assert_eq!(market.hits().len(), 1);
    // A refused call comes back as an error and the engine keeps serving.
    let refused = handle
        .input(Input::Heartbeat {
            assignment: AssignmentId::new("nobody"),
        })
        .await;
    assert!(refused.is_err());
    assert!(handle.ledger().await.unwrap().is_empty());
    assert!(!handle.is_finished());
}
