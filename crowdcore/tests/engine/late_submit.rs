//! An approval the platform refuses because the worker has not submitted yet (MTurk's
//! `InvalidAssignmentState` for an accepted assignment) is not given up while the worker can
//! still submit: the engine retries it with capped backoff, pays once when the submission
//! lands, and only once the assignment can no longer be submitted fails it, leaving it unpaid
//! in the ledger and listed, with its reason, in `Engine::owed`.

use std::sync::Arc;

use crowdcore::clock::{Clock, VirtualClock};
use crowdcore::engine::{Engine, EngineBuilder};
use crowdcore::local::LocalMarketplace;
use crowdcore::platform::AssignmentStatus;
use crowdcore::store::{MemoryStore, OutboxState, Store};
use crowdcore::{AssignmentId, SessionId, Timestamp, WorkerId};

use crate::support::{T0, at, config, market};

/// The local marketplace refusing, as MTurk does, to approve an assignment its worker still
/// holds (accepted, not submitted).
fn strict(market: &LocalMarketplace) -> Arc<LocalMarketplace> {
    market.require_submission_to_approve(true);
    Arc::new(market.clone())
}

struct Rig {
    clock: VirtualClock,
    market: LocalMarketplace,
    store: MemoryStore,
    engine: Engine,
    assignment: AssignmentId,
}

/// One worker arrives at 5 s; the job stops at 10 s, releasing them: their base pay is due
/// while their page has not submitted yet.
async fn released_before_submit() -> Rig {
    let clock = VirtualClock::new(T0);
    let market = market(&clock);
    let store = MemoryStore::new();
    let mut engine = EngineBuilder::new(strict(&market), Arc::new(store.clone()), config())
        .session(SessionId::new("late-submit"))
        .clock(Arc::new(clock.clone()))
        .start()
        .await
        .unwrap();
    engine.start().await.unwrap();
    clock.set(at(5));
    let w = WorkerId::new("w1");
    let hit = market.available(&w)[0].hit.clone();
    let assignment = market.accept(&w, &hit).unwrap();
    engine.arrive(w, assignment.clone(), hit).await.unwrap();
    clock.set(at(10));
    engine.stop().await.unwrap();
    assert_eq!(market.status(&assignment), Some(AssignmentStatus::Accepted));
    assert!(engine.pending_effects() > 0, "the approval waits");
    Rig {
        clock,
        market,
        store,
        engine,
        assignment,
    }
}

impl Rig {
    /// Steps the engine to each wakeup until `until` (bounded), returning how many steps.
    async fn run_until(&mut self, until: Timestamp) -> usize {
        for step in 0..10_000 {
            let Some(next) = self.engine.next_wakeup() else {
                return step;
            };
            if next > until {
                return step;
            }
            self.clock.set(next.max(self.clock.now()));
            self.engine.advance().await.unwrap();
        }
        panic!("the engine never settled");
    }

    async fn base_entries(&self) -> Vec<crowdcore::store::LedgerEntry> {
        self.engine
            .ledger()
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e.kind == "base")
            .collect()
    }
}

#[tokio::test]
async fn a_worker_who_submits_late_is_paid_once() {
    let mut rig = released_before_submit().await;
    // Twenty minutes of refusals: the approval is still waiting, not failed.
    let steps = rig.run_until(at(10 + 20 * 60)).await;
    assert!(steps > 10, "retried with backoff ({steps} steps)");
    assert!(rig.base_entries().await.is_empty(), "nothing recorded yet");
    assert!(rig.engine.owed().is_empty());
    assert!(rig.engine.pending_effects() > 0);

    rig.market.submit(&rig.assignment, None).unwrap();
    rig.run_until(at(2 * 3_600)).await;
    assert_eq!(
        rig.market.status(&rig.assignment),
        Some(AssignmentStatus::Approved)
    );
    let base = rig.base_entries().await;
    assert_eq!(base.len(), 1, "{base:?}");
    assert!(base[0].paid);
    assert!(rig.engine.owed().is_empty());
    let reward = config().spec.reward;
    let earned = rig.market.earnings(&WorkerId::new("w1"));
    assert!(earned.minor >= reward.minor, "{earned:?}");
    assert_eq!(rig.market.duplicate_calls(), 0);
}

#[tokio::test]
async fn a_worker_who_never_submits_is_owed_with_a_reason() {
    let mut rig = released_before_submit().await;
    // Past the assignment's duration (one hour) nothing can be submitted any more.
    rig.run_until(at(3 * 3_600)).await;
    let base = rig.base_entries().await;
    assert_eq!(base.len(), 1, "{base:?}");
    assert!(!base[0].paid);
    let owed = rig.engine.owed();
    assert_eq!(owed.len(), 1, "{owed:?}");
    assert_eq!(owed[0].entry, base[0]);
    assert_eq!(owed[0].entry.assignment.as_ref(), Some(&rig.assignment));
    // Why: the approval's window closed (the engine's words), or the platform has since
    // taken the assignment back as abandoned (the local market does at its duration).
    let reason = &owed[0].reason;
    assert!(
        reason.contains("never submitted within its duration") || reason.contains("Abandoned"),
        "{reason}"
    );
    let entry = rig.store.effect(&base[0].effect).await.unwrap().unwrap();
    assert!(
        matches!(entry.state, OutboxState::Failed { .. }),
        "{entry:?}"
    );
    // Only the bonuses (waiting time) were paid, never the base pay.
    let paid: i64 = rig
        .engine
        .ledger()
        .await
        .unwrap()
        .iter()
        .filter(|e| e.paid)
        .map(|e| e.amount.minor)
        .sum();
    assert_eq!(rig.market.earnings(&WorkerId::new("w1")).minor, paid);
    // Not given up early: the last refusal came after the assignment's duration.
    assert!(rig.clock.now() >= at(5 + 3_600), "{:?}", rig.clock.now());
    // A restarted engine still knows what is owed, and why.
    let owed = owed.to_vec();
    drop(rig.engine);
    let restarted = EngineBuilder::new(strict(&rig.market), Arc::new(rig.store.clone()), config())
        .session(SessionId::new("late-submit"))
        .clock(Arc::new(rig.clock.clone()))
        .start()
        .await
        .unwrap();
    assert_eq!(restarted.owed(), owed.as_slice());
}
