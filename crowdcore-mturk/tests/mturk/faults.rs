//! About 20 % of calls throttled, failed with a 5xx, or carried out with the answer lost, at
//! seeded points: retrying with the same keys ends in the same state as a faultless run, with
//! no HIT and no bonus twice.

use std::future::Future;

use crowdcore::platform::{Platform, PlatformError};
use crowdcore::{AssignmentId, Money, WorkerId};

use crate::fake::FakeMturk;
use std::sync::Arc;

use crowdcore::clock::VirtualClock;

use crate::{FAULT_LATE_MS, T0, fault_config, key, platform_with, spec};

/// Calls until the platform answers for good (as the engine does, with the same key).
async fn retry<T, F: Future<Output = Result<T, PlatformError>>>(
    mut call: impl FnMut() -> F,
) -> Result<T, PlatformError> {
    for _ in 0..60 {
        match call().await {
            Err(e) if e.is_retryable() => continue,
            other => return other,
        }
    }
    panic!("still failing after 60 tries");
}

/// What the fake ends with.
#[derive(Debug, PartialEq, Eq)]
struct End {
    hits: Vec<(String, u32, Option<String>)>,
    bonuses: Vec<(String, String, i64)>,
    statuses: Vec<(String, String)>,
    balance: i64,
    earnings: Vec<i64>,
    updates: Vec<(String, String)>,
}

async fn run(seed: Option<u64>) -> (End, FakeMturk) {
    let clock = VirtualClock::new(T0);
    let fake = FakeMturk::start(Arc::new(clock.clone()), 100_000).await;
    let p = platform_with(fault_config(&fake)).await;
    if let Some(seed) = seed {
        fake.set_faults(seed, 0.2, FAULT_LATE_MS);
    }
    let mut hits = Vec::new();
    for i in 1..=4 {
        let (s, k) = (spec(), key("f", i));
        hits.push(retry(|| p.post(&s, 3, &k)).await.unwrap());
    }
    let k = key("f", 5);
    retry(|| p.add_slots(&hits[0], 2, &k)).await.unwrap();
    let mut assignments = Vec::new();
    for (h, hit) in hits.iter().enumerate() {
        for w in 0..2 {
            clock.advance(1_000);
            let worker = format!("W{h}{w}");
            let a = fake.accept(&worker, hit.as_str()).unwrap();
            fake.submit(&a, "x").unwrap();
            assignments.push((WorkerId::new(worker), AssignmentId::new(a)));
        }
    }
    let mut seq = 10;
    for (i, (worker, a)) in assignments.iter().enumerate() {
        seq += 1;
        if i % 4 == 3 {
            let k = key("f", seq);
            retry(|| p.reject(a, "wrong", &k)).await.unwrap();
            continue;
        }
        let k = key("f", seq);
        retry(|| p.approve(a, &k)).await.unwrap();
        seq += 1;
        let amount = Money::usd_cents(5 + i as i64);
        let k = key("f", seq);
        retry(|| p.bonus(worker, Some(a), amount, "waiting_bonus", &k))
            .await
            .unwrap();
    }
    let mut cursor = None;
    let mut updates = Vec::new();
    for _ in 0..50 {
        let page = retry(|| p.updates(cursor.as_ref())).await.unwrap();
        let moved = page.next != cursor;
        updates.extend(
            page.items
                .iter()
                .map(|u| (u.assignment.to_string(), format!("{:?}", u.status))),
        );
        cursor = page.next;
        if !moved {
            break;
        }
    }
    for hit in &hits {
        retry(|| p.expire(hit)).await.unwrap();
    }
    let balance = retry(|| p.balance()).await.unwrap().minor;
    let w = fake.world();
    let end = End {
        hits: w
            .hits
            .values()
            .map(|h| (h.id.clone(), h.max_assignments, h.annotation.clone()))
            .collect(),
        bonuses: {
            let mut b: Vec<_> = w
                .bonuses
                .iter()
                .map(|b| (b.worker.clone(), b.assignment.clone(), b.cents))
                .collect();
            b.sort();
            b
        },
        statuses: w
            .assignments
            .values()
            .map(|a| (a.id.clone(), format!("{:?}", a.status)))
            .collect(),
        balance,
        earnings: {
            let mut e: Vec<_> = w.earnings.iter().map(|(k, v)| (k.clone(), *v)).collect();
            e.sort();
            e.into_iter().map(|(_, v)| v).collect()
        },
        updates,
    };
    drop(w);
    (end, fake)
}

#[tokio::test]
async fn seeded_faults_end_in_the_same_state_with_nothing_done_twice() {
    let (baseline, clean) = run(None).await;
    assert_eq!(baseline.hits.len(), 4);
    assert_eq!(baseline.bonuses.len(), 6);
    assert_eq!(
        baseline.updates.len(),
        16,
        "8 submissions, 6 approvals, 2 rejections"
    );
    let mut injected = 0;
    let mut late = 0;
    for seed in 1..=8 {
        let (end, fake) = run(Some(seed)).await;
        let counts = fake.fault_counts();
        assert!(counts.total() > 0, "seed {seed}: no fault");
        assert_eq!(end, baseline, "seed {seed}: {counts:?}");
        // Every create token made one HIT, every bonus token one bonus.
        let tokens: Vec<_> = fake.bonuses().into_iter().filter_map(|b| b.token).collect();
        let mut unique = tokens.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(
            unique.len(),
            tokens.len(),
            "seed {seed}: a bonus token paid twice"
        );
        injected += counts.total();
        late += counts.late;
    }
    assert!(
        late > 0,
        "no answer was lost: the test proves nothing about tokens"
    );
    assert!(injected > 20, "only {injected} faults injected");
    assert_eq!(clean.fault_counts().total(), 0);
}
