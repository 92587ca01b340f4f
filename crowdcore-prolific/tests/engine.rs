//! crowdcore's engine driving the Pavilion machine on Prolific (the fake): the first hire
//! creates and publishes the session's study, later hires raise its places, participants
//! arrive with their submissions, submit, return; the engine approves and pays bonuses. At
//! the end Prolific paid exactly what the ledger says, one study was created, no bulk bonus
//! was paid twice — also with 20 % of requests failing (throttled, unavailable, or carried
//! out with their answer lost) and the engine restarting from its store.

mod common;

use std::sync::Arc;

use common::*;
use crowdcore::clock::Clock;
use crowdcore::engine::EngineConfig;
use crowdcore::model::{AssignmentId, HitId, SessionId, WorkerId};
use crowdcore::platform::Platform;
use crowdcore::store::{MemoryStore, Store};
use crowdcore::testkit::{Host, Op, spec, study_config};
use crowdcore_prolific::fake::Fault;

fn config() -> EngineConfig {
    let mut config = study_config(spec());
    config.snapshot_every = 5;
    config
}

/// Makes `op`; under faults an operation may fail and is made again (as a host would).
async fn call(host: &mut Host, op: Op, faulty: bool) {
    for _ in 0..50 {
        match host.call(op.clone()).await {
            Ok(()) => return,
            Err(e) if faulty => {
                let _ = e;
                host.ensure().await;
            }
            Err(e) => panic!("{op:?}: {e}"),
        }
    }
    panic!("{op:?} never went through");
}

fn present(host: &mut Host) -> Vec<AssignmentId> {
    let s = host.engine().snapshot();
    s.waiting
        .iter()
        .chain(&s.active)
        .map(|seat| seat.assignment.clone())
        .collect()
}

async fn idle(host: &mut Host, secs: u64, faulty: bool) {
    for _ in 0..secs / 10 {
        host.clock.advance(10_000);
        host.ensure().await;
        for a in present(host) {
            call(host, Op::Heartbeat(a), faulty).await;
        }
        call(host, Op::Advance, faulty).await;
    }
}

/// Drives the engine until every effect is done (bounded).
async fn drain(host: &mut Host, faulty: bool) {
    for _ in 0..2_000 {
        host.ensure().await;
        if host.engine().pending_effects() == 0 {
            return;
        }
        let next = host.engine().next_wakeup();
        let now = host.clock.now();
        host.clock
            .set(next.unwrap_or(now).max(now.plus_millis(100)));
        call(host, Op::Advance, faulty).await;
        call(host, Op::Observe, faulty).await;
    }
}

async fn session(fault_per_mille: u32) {
    let faulty = fault_per_mille > 0;
    let w = world_with(|c| {
        c.seed = 11;
        c.fault_kinds = vec![Fault::Throttle, Fault::Unavailable, Fault::LostAnswer];
    })
    .await;
    let tag = "prolific-e2e";
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let platform: Arc<dyn Platform> = Arc::new(w.platform_on(tag, store.clone()));
    let mut host = Host::new(
        platform,
        store,
        config(),
        (*w.clock).clone(),
        SessionId::new(tag),
    );
    w.fake.set_fault_rate(fault_per_mille);
    call(&mut host, Op::Start, faulty).await;
    for _ in 0..20 {
        call(&mut host, Op::Advance, faulty).await;
        if !w.fake.study_ids().is_empty()
            && w.fake.study(&w.fake.study_ids()[0]).unwrap()["status"] == "ACTIVE"
        {
            break;
        }
        host.clock.advance(1_000);
    }
    let study = w.fake.study_ids()[0].clone();
    let hit = HitId::new(&study);

    // Participants find the study and land on the page with their submission.
    let mut held = Vec::new();
    for i in 1..=5 {
        let worker = format!("p{i}");
        if let Ok(sub) = w.fake.start_submission(&study, &worker) {
            call(
                &mut host,
                Op::Arrive(WorkerId::new(&worker), AssignmentId::new(&sub), hit.clone()),
                faulty,
            )
            .await;
            held.push(sub);
        }
    }
    assert_eq!(
        held.len(),
        4,
        "two active and two waiting places were hired"
    );
    idle(&mut host, 120, faulty).await;

    // Two finish on Prolific (the completion redirect); the poll reports it; the engine pays
    // them and hires again: the study's places grow.
    let code = "X";
    for s in &held[..2] {
        w.fake.complete(s, code).unwrap();
    }
    call(&mut host, Op::Observe, faulty).await;
    idle(&mut host, 60, faulty).await;
    drain(&mut host, faulty).await;
    let places = w.fake.study(&study).unwrap()["total_available_places"]
        .as_u64()
        .unwrap();
    assert!(places >= 5, "a later hire raised the places: {places}");
    if let Ok(sub) = w.fake.start_submission(&study, "p6") {
        call(
            &mut host,
            Op::Arrive(WorkerId::new("p6"), AssignmentId::new(&sub), hit.clone()),
            faulty,
        )
        .await;
        held.push(sub);
    }
    // One waiting participant gives theirs back.
    w.fake.return_submission(&held[3]).unwrap();
    call(&mut host, Op::Observe, faulty).await;
    idle(&mut host, 60, faulty).await;

    // The job ends: everyone is released and sent to the completion redirect; their
    // approvals wait until Prolific shows them submitted, which it does once they finish.
    call(&mut host, Op::Stop, faulty).await;
    call(&mut host, Op::Expire, faulty).await;
    for s in &held[2..] {
        let _ = w.fake.complete(s, code);
    }
    drain(&mut host, faulty).await;
    w.fake.set_fault_rate(0);
    drain(&mut host, false).await;
    assert_eq!(host.engine().pending_effects(), 0);

    let ledger = host.engine().ledger().await.unwrap();
    assert!(
        ledger.iter().all(|e| e.paid),
        "every payment went out: {ledger:?}"
    );
    let ledger_total: i64 = ledger.iter().map(|e| e.amount.minor).sum();
    let mut prolific_total = 0;
    for s in &held {
        match w.fake.submission_status(s).as_deref() {
            Some("APPROVED") => prolific_total += 50,
            Some("RETURNED") => {}
            other => panic!("submission {s} ended {other:?}"),
        }
        prolific_total += w.fake.bonuses_paid(s).iter().sum::<i64>();
    }
    // Five submitted or were released (base pay each), and they waited or worked (bonuses).
    assert!(ledger.len() > 5 && ledger_total > 5 * 50, "{ledger:?}");
    assert_eq!(
        prolific_total, ledger_total,
        "Prolific paid what the ledger says"
    );
    assert_eq!(w.fake.studies_created("crowdcore:prolific-e2e"), 1);
    assert_eq!(w.fake.repeated_pays(), 0, "no bulk bonus paid twice");
    assert_eq!(
        w.fake.study(&study).unwrap()["status"],
        "PAUSED",
        "the expiry paused the study"
    );
    if faulty {
        assert!(w.fake.faults_injected() > 0);
    } else {
        assert_eq!(w.fake.review_repeats(), 0);
    }
}

#[tokio::test]
async fn a_pavilion_session_on_prolific() {
    session(0).await;
}

#[tokio::test]
async fn a_pavilion_session_on_prolific_under_twenty_percent_faults() {
    session(200).await;
}
