//! The pieces every engine test uses: a configuration, a host that drives an engine and
//! restarts it when its store fails, a deterministic crowd workload on the virtual clock (the
//! host, the study and the crowd are `crowdcore::testkit`'s, shared with the backends'
//! tests), and the checks that a run did nothing twice.

use std::collections::BTreeMap;
use std::sync::Arc;

use crowdcore::clock::VirtualClock;
use crowdcore::engine::EngineConfig;
use crowdcore::local::LocalMarketplace;
use crowdcore::platform::{AssignmentStatus, IdempotencyKey, Platform};
use crowdcore::store::{MemoryStore, Store};
use crowdcore::testkit::{
    self, Payment, Sim, done_hires, payments, run_crowd, study_config, study_crowd,
};
pub(crate) use crowdcore::testkit::{Op, spec};
use crowdcore::{EffectId, HitId, Money, SessionId, Timestamp, WorkerId};

/// When every test begins: far from zero so that no time saturates.
pub(crate) const T0: Timestamp = Timestamp::from_millis(1_000_000);

/// Seconds after [`T0`].
pub(crate) fn at(secs: u64) -> Timestamp {
    T0.plus_millis(secs * 1_000)
}

/// The shared study ([`crowdcore::testkit::study_config`]) posting [`spec`].
pub(crate) fn config() -> EngineConfig {
    study_config(spec())
}

/// A fresh market with plenty of money, on `clock`.
pub(crate) fn market(clock: &VirtualClock) -> LocalMarketplace {
    LocalMarketplace::new(Arc::new(clock.clone()), Money::usd_cents(1_000_000))
}

/// The key the engine uses for an effect.
pub(crate) fn key(id: &EffectId) -> IdempotencyKey {
    IdempotencyKey::for_effect(id)
}

// ----- a host that survives store failures --------------------------------------------------

/// The shared engine host ([`crowdcore::testkit::Host`]) on one platform.
pub(crate) type Host = testkit::Host;

/// A host on `platform` and `store` with its engine started, running [`config`].
pub(crate) async fn start_host(
    platform: Arc<dyn Platform>,
    store: Arc<dyn Store>,
    clock: VirtualClock,
    session: SessionId,
) -> Host {
    Host::new(platform, store, config(), clock, session)
        .started()
        .await
}

/// A host on a fresh memory store and market at [`T0`].
pub(crate) async fn fresh() -> (Host, LocalMarketplace, MemoryStore) {
    let clock = VirtualClock::new(T0);
    let market = market(&clock);
    let store = MemoryStore::new();
    let host = start_host(
        Arc::new(market.clone()),
        Arc::new(store.clone()),
        clock,
        SessionId::new("engine-test"),
    )
    .await;
    (host, market, store)
}

// ----- a deterministic crowd ------------------------------------------------------------------

/// When the workload expires the HITs and stops the job, in seconds after [`T0`].
pub(crate) const END_S: u64 = 600;

/// Runs the [`crowd`] against the host's engine and `market` from [`T0`] to the end of the
/// job, then lets the engine settle.
pub(crate) async fn run_workload(host: &mut Host, market: &LocalMarketplace) {
    let mut crowd = Sim::crowd(T0, study_crowd());
    run_crowd(host, market, &mut crowd, T0, at(END_S)).await;
    host.call(Op::Expire).await.expect("expire");
    host.call(Op::Stop).await.expect("stop");
    host.settle().await;
}

// ----- what a run comes to -------------------------------------------------------------------

/// What a finished run comes to, for comparing runs.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Outcome {
    /// The ledger as a sorted multiset.
    pub(crate) ledger: Vec<Payment>,
    /// Earnings per worker at the market.
    pub(crate) earnings: BTreeMap<WorkerId, i64>,
    /// The requester's spending at the market.
    pub(crate) spending: i64,
    /// Every HIT posted: (id, slots, taken, expired).
    pub(crate) hits: Vec<(HitId, u32, u32, bool)>,
}

/// Reads a finished run's outcome.
pub(crate) async fn outcome(host: &mut Host, market: &LocalMarketplace) -> Outcome {
    let ledger = host.engine().ledger().await.expect("ledger");
    let payments = payments(&ledger);
    let earnings = payments
        .iter()
        .map(|p| (p.1.clone(), market.earnings(&p.1).minor))
        .collect();
    Outcome {
        ledger: payments,
        earnings,
        spending: market.spending().minor,
        hits: market.hits(),
    }
}

/// Checks that a finished run did nothing twice and lost nothing: the log has no gaps, every
/// platform effect is done, each hire posted exactly one HIT, each bonus was paid once, each
/// base pay approved its assignment, and the market's money matches the ledger.
pub(crate) async fn check_done_once(host: &mut Host, market: &LocalMarketplace) {
    let store = host.store.clone();
    let session = host.session.clone();
    let log = store.read_log(&session, 0, usize::MAX).await.unwrap();
    for (i, record) in log.iter().enumerate() {
        assert_eq!(record.seq, i as u64 + 1, "the log has a gap");
    }

    let hires = done_hires(host).await;
    for id in &hires {
        assert!(market.key_uses(&key(id)) >= 1, "hire {id} never posted");
    }
    assert_eq!(market.hits().len(), hires.len(), "HITs posted vs hires");

    let ledger = host.engine().ledger().await.unwrap();
    let mut ids: Vec<&EffectId> = ledger.iter().map(|e| &e.effect).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), ledger.len(), "an effect was recorded twice");
    assert!(ledger.iter().all(|e| e.paid), "a payment failed");
    let bonuses = ledger.iter().filter(|e| e.kind != "base").count();
    assert_eq!(market.bonuses().len(), bonuses, "bonuses paid vs ledger");
    for e in ledger.iter().filter(|e| e.kind == "base") {
        let a = e
            .assignment
            .as_ref()
            .expect("base pay names its assignment");
        assert_eq!(market.status(a), Some(AssignmentStatus::Approved));
    }
    let mut owed: BTreeMap<&WorkerId, i64> = BTreeMap::new();
    for e in &ledger {
        *owed.entry(&e.worker).or_default() += e.amount.minor;
    }
    for (worker, amount) in &owed {
        assert_eq!(
            market.earnings(worker).minor,
            *amount,
            "earnings of {worker}"
        );
    }
    assert_eq!(market.spending().minor, owed.values().sum::<i64>());
}
