//! Crashes at many points — every kind of store write failing (before or after it lands), and
//! the process dying in the middle of a platform call (before or after it ran) — and a restart
//! from the same store: the same final decisions as an uninterrupted run, and nothing done
//! twice at the platform. `PIPELINE_CRASH_POINTS` (default 200) bounds the points per kind.

use std::sync::Arc;

use crowdcore::store::{FailMode, FailingStore, MemoryStore, Store};
use rand::{RngExt, SeedableRng};

use crate::support::{Crash, assert_exactly_once, drive};

fn points(total: u64, seed: u64) -> Vec<u64> {
    let n: u64 = std::env::var("PIPELINE_CRASH_POINTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    if total <= n {
        return (1..=total).collect();
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut picked: Vec<u64> = (0..n).map(|_| rng.random_range(1..=total)).collect();
    picked.sort_unstable();
    picked.dedup();
    picked
}

#[tokio::test]
async fn a_failed_store_write_anywhere_changes_nothing() {
    let counting = Arc::new(FailingStore::new(
        Arc::new(MemoryStore::new()),
        None,
        FailMode::Before,
    ));
    let baseline = drive(5, 5, counting.clone(), Crash::None, 0.0, 4).await;
    assert_exactly_once(&baseline);
    let total = counting.writes();
    assert!(total > 20, "only {total} writes");
    assert!(
        baseline.decisions.len() > 50,
        "{}",
        baseline.decisions.len()
    );
    let mut resent = 0;
    for mode in [FailMode::Before, FailMode::After] {
        for n in points(total, 1) {
            let store: Arc<dyn Store> = Arc::new(FailingStore::new(
                Arc::new(MemoryStore::new()),
                Some(n),
                mode,
            ));
            let out = drive(5, 5, store, Crash::None, 0.0, 4).await;
            assert_exactly_once(&out);
            assert_eq!(out.restarts, 1, "write {n} {mode:?}");
            assert_eq!(out.decisions, baseline.decisions, "write {n} {mode:?}");
            resent += out.counts.replayed_keys;
        }
    }
    eprintln!("{total} writes; calls re-sent with their key after a crash: {resent}");
    assert!(resent > 0, "some crash fell between a call and its record");
}

#[tokio::test]
async fn dying_in_a_platform_call_anywhere_changes_nothing() {
    let baseline = drive(8, 5, Arc::new(MemoryStore::new()), Crash::None, 0.0, 4).await;
    assert_exactly_once(&baseline);
    let mut resent = 0;
    for after in [false, true] {
        for n in points(baseline.calls, 2) {
            let out = drive(
                8,
                5,
                Arc::new(MemoryStore::new()),
                Crash::PlatformCall(n, after),
                0.0,
                4,
            )
            .await;
            assert_exactly_once(&out);
            assert_eq!(out.restarts, 1, "call {n}, ran: {after}");
            assert_eq!(out.decisions, baseline.decisions, "call {n}, ran: {after}");
            resent += out.counts.replayed_keys;
        }
    }
    eprintln!("{} calls; re-sent with their key: {resent}", baseline.calls);
    assert!(resent > 0, "some crash fell after a call ran");
}

#[tokio::test]
async fn crashes_and_faults_together() {
    for (seed, n) in [(12, 17), (13, 60), (14, 140)] {
        let store: Arc<dyn Store> = Arc::new(FailingStore::new(
            Arc::new(MemoryStore::new()),
            Some(n),
            FailMode::After,
        ));
        let out = drive(seed, 5, store, Crash::PlatformCall(n * 2, true), 0.2, 3).await;
        assert_exactly_once(&out);
        assert_eq!(out.waiting, 0);
    }
}
