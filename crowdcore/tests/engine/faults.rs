//! A platform that throttles, fails and loses answers at seeded rates up to 20 % gives the
//! same final outcome as a faultless one, once retries settle.

use std::sync::Arc;

use crowdcore::SessionId;
use crowdcore::clock::VirtualClock;
use crowdcore::faults::{FaultCounts, FaultyPlatform};
use crowdcore::store::MemoryStore;

use crate::support::{Outcome, T0, check_done_once, market, outcome, run_workload, start_host};

async fn run(seed: u64, rate: f64) -> (Outcome, FaultCounts, u64) {
    let clock = VirtualClock::new(T0);
    let market = market(&clock);
    let faulty = Arc::new(FaultyPlatform::new(Arc::new(market.clone()), seed, rate));
    let mut host = start_host(
        faulty.clone(),
        Arc::new(MemoryStore::new()),
        clock,
        SessionId::new("faults"),
    )
    .await;
    run_workload(&mut host, &market).await;
    check_done_once(&mut host, &market).await;
    let outcome = outcome(&mut host, &market).await;
    (outcome, faulty.injected(), market.duplicate_calls())
}

#[tokio::test]
async fn seeded_faults_change_nothing_once_retries_settle() {
    let (baseline, none, _) = run(0, 0.0).await;
    assert_eq!(none.total(), 0);
    assert!(none.calls > 50, "only {} platform calls", none.calls);
    let mut timeouts = 0;
    let mut repeats = 0;
    let rates = [0.05, 0.1, 0.15, 0.2, 0.2, 0.2];
    for seed in 1..=60u64 {
        let rate = rates[seed as usize % rates.len()];
        let (faulted, counts, duplicates) = run(seed, rate).await;
        assert!(counts.total() > 0, "seed {seed}: no fault injected");
        assert_eq!(faulted, baseline, "seed {seed} at {rate}: {counts:?}");
        timeouts += counts.timeouts;
        repeats += duplicates;
    }
    // Timed-out calls were carried out; their retries reused the key and did nothing more.
    assert!(timeouts > 0 && repeats > 0);
}
