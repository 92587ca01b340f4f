//! A simulated study on a durable store stops at any write (a crash, a kill) and resumes to the
//! same end as an uninterrupted run: same report, same ledger, no gap in the log; a finished
//! study run again does nothing new.

use std::sync::Arc;

use crowdcore::engine::EngineConfig;
use crowdcore::model::{HitSpec, Money, SessionId};
use crowdcore::pavilion::PavilionConfig;
use crowdcore::sim::{self, CrowdModel, DurableRun, SimConfig, SimError};
use crowdcore::store::{FailMode, FailingStore, LedgerEntry, MemoryStore, Store};

fn study() -> SimConfig {
    let pavilion = PavilionConfig {
        min_active: 2,
        max_active: 4,
        min_waiting: 1,
        max_waiting: 2,
        heartbeat_timeout_ms: 60_000,
        base_pay_cents: 25,
        waiting_cents_per_minute: 5,
        active_cents_per_minute: 10,
        ..PavilionConfig::default()
    };
    let spec = HitSpec {
        title: "Stand by, then work".into(),
        description: "A resumable study.".into(),
        keywords: Vec::new(),
        reward: Money::usd_cents(25),
        assignment_duration_ms: 7_200_000,
        lifetime_ms: 86_400_000,
        max_assignments: 60,
        auto_approval_delay_ms: 1,
        qualifications: Vec::new(),
        landing_url: "https://localhost/land".into(),
        frame_height: 600,
    };
    let mut engine = EngineConfig::new(spec, pavilion);
    engine.snapshot_every = 50;
    engine.observe_every_ms = 30_000;
    SimConfig {
        seed: 11,
        duration_ms: 3_600_000,
        crowd: CrowdModel::default(),
        engine,
        funds: Money::usd_cents(1_000_000),
        session: SessionId::new("resume-test"),
    }
}

async fn ledger(store: &dyn Store) -> Vec<LedgerEntry> {
    store.ledger(&SessionId::new("resume-test")).await.unwrap()
}

async fn log_is_contiguous(store: &dyn Store) {
    let log = store
        .read_log(&SessionId::new("resume-test"), 0, usize::MAX)
        .await
        .unwrap();
    for (i, record) in log.iter().enumerate() {
        assert_eq!(record.seq, i as u64 + 1, "log gap");
    }
}

#[tokio::test]
async fn a_study_stopped_at_any_write_resumes_to_the_same_end() {
    let clean = Arc::new(MemoryStore::new());
    let counting = Arc::new(FailingStore::new(clean.clone(), None, FailMode::Before));
    let whole = sim::run_durable(study(), counting.clone(), |_| {})
        .await
        .unwrap();
    assert_eq!(whole.resumed_at, None);
    let writes = counting.writes();
    assert!(writes > 100, "the study wrote {writes} times");
    let expected_ledger = ledger(clean.as_ref()).await;
    assert!(!expected_ledger.is_empty());

    let points = [
        1,
        2,
        3,
        10,
        writes / 7,
        writes / 3,
        writes / 2,
        writes - 3,
        writes - 1,
    ];
    for mode in [FailMode::Before, FailMode::After] {
        for &n in &points {
            let durable = Arc::new(MemoryStore::new());
            let failing = Arc::new(FailingStore::new(durable.clone(), Some(n), mode));
            let stopped = sim::run_durable(study(), failing, |_| {}).await;
            assert!(
                matches!(stopped, Err(SimError::Engine(_) | SimError::Store(_))),
                "write {n} ({mode:?}) stops the run: {stopped:?}"
            );
            let held = durable
                .read_log(&SessionId::new("resume-test"), 0, usize::MAX)
                .await
                .unwrap()
                .len() as u64;
            let resumed: DurableRun = sim::run_durable(study(), durable.clone(), |_| {})
                .await
                .unwrap_or_else(|e| panic!("resume after write {n} ({mode:?}): {e}"));
            assert_eq!(resumed.resumed_at, (held > 0).then_some(held));
            assert_eq!(
                resumed.report, whole.report,
                "report after a stop at write {n} ({mode:?})"
            );
            // The same payments: the same effects, amounts and (virtual) times.
            assert_eq!(ledger(durable.as_ref()).await, expected_ledger);
            log_is_contiguous(durable.as_ref()).await;
            let again = sim::run_durable(study(), durable.clone(), |_| {})
                .await
                .unwrap();
            assert!(again.already_finished);
            assert_eq!(again.report, whole.report);
        }
    }
}

#[tokio::test]
async fn a_store_holding_another_study_is_refused() {
    let store = Arc::new(MemoryStore::new());
    sim::run_durable(study(), store.clone(), |_| {})
        .await
        .unwrap();
    let mut other = study();
    other.seed = 12;
    let refused = sim::run_durable(other, store, |_| {}).await;
    assert!(
        matches!(refused, Err(SimError::ConfigChanged(_))),
        "{refused:?}"
    );
}
