//! The three-stage flow end to end against the fake: what it decides, the logs, faults, the
//! run loop with its stop condition and shutdown, the lease.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crowdcore::clock::Clock;
use crowdcore::pipeline::{
    Decision, PipelineBuilder, PipelineConfig, PipelineError, PipelinePlatform, StopCondition,
    handlers::keys,
};
use crowdcore::store::{MemoryStore, Store};
use crowdcore::{SessionId, Timestamp};

use crate::support::{Crash, T0, assert_exactly_once, drive, stages};

#[tokio::test]
async fn three_stages_decide_every_submission_once() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let out = drive(7, 8, store, Crash::None, 0.0, 20).await;
    assert_exactly_once(&out);
    assert_eq!(out.restarts, 0);
    assert_eq!(out.waiting, 0, "nothing is left waiting");
    let assignments = out.fake.assignments();
    let submits: Vec<_> = assignments
        .iter()
        .filter(|a| a.pool.as_str() == "pool-submit")
        .collect();
    assert_eq!(submits.len(), 8, "every place was photographed once");
    // Every submission is reviewed exactly once, by the validate stage.
    let mut reviews: BTreeMap<&str, (&str, bool)> = BTreeMap::new();
    for (decision, by, _) in &out.decisions {
        match decision {
            Decision::Accept {
                stage, assignment, ..
            }
            | Decision::Reject {
                stage, assignment, ..
            } if stage == "submit" => {
                assert_eq!(by, "validate");
                let accepted = matches!(decision, Decision::Accept { .. });
                assert!(
                    reviews
                        .insert(assignment.as_str(), (by.as_str(), accepted))
                        .is_none()
                );
            }
            _ => {}
        }
    }
    assert_eq!(reviews.len(), 8);
    // The verdicts follow the truth mostly (workers are right 85 % of the time, three vote).
    let mut right = 0;
    for a in &submits {
        let photos = a.solutions[0].output_values["photos"].as_array().unwrap();
        let all_valid = photos
            .iter()
            .all(|p| p.as_str().unwrap().starts_with("valid-"));
        if reviews[a.id.as_str()].1 == all_valid {
            right += 1;
        }
    }
    assert!(right >= 6, "only {right} of 8 verdicts match the truth");
    // Accepted submissions went on to quality; bonuses only for them.
    let accepted: Vec<&str> = reviews
        .iter()
        .filter(|(_, (_, ok))| *ok)
        .map(|(id, _)| *id)
        .collect();
    let quality_tasks = out.fake.tasks(&crate::support::pool("quality"));
    assert_eq!(quality_tasks.len(), accepted.len());
    assert!(!out.fake.bonuses().is_empty(), "no quality bonus was paid");
    for (worker, assignment, amount, _) in out.fake.bonuses() {
        let assignment = assignment.expect("bonuses name the assignment");
        assert!(accepted.contains(&assignment.as_str()));
        let submit = submits.iter().find(|a| a.id == assignment).unwrap();
        assert_eq!(submit.worker, worker);
        assert_eq!(amount, crowdcore::Money::usd_cents(25));
    }
    // Validation tasks are grouped by their submission.
    for task in out.fake.tasks(&crate::support::pool("validate")) {
        assert_eq!(task[keys::GROUP], task[keys::ORIGIN_ASSIGNMENT]);
    }
    // Every verifier was accepted.
    let verifier_accepts = out
        .decisions
        .iter()
        .filter(|(d, _, _)| matches!(d, Decision::Accept { stage, .. } if stage != "submit"))
        .count();
    let verifiers = assignments
        .iter()
        .filter(|a| a.pool.as_str() != "pool-submit")
        .count();
    assert_eq!(verifier_accepts, verifiers);
}

#[tokio::test]
async fn the_logs_hold_every_decision_and_answer_once() {
    let clock = crowdcore::clock::VirtualClock::new(T0);
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let out = drive(11, 5, store.clone(), Crash::None, 0.0, 0).await;
    let fake: Arc<dyn PipelinePlatform> = Arc::new(out.fake.clone());
    let p = crate::support::start(fake, store, &clock, 0).await.unwrap();
    let (mut decisions, mut answers) = (Vec::new(), Vec::new());
    p.write_logs(&mut decisions, &mut answers).await.unwrap();
    let decisions = String::from_utf8(decisions).unwrap();
    let answers = String::from_utf8(answers).unwrap();
    let mut lines = decisions.lines();
    assert_eq!(
        lines.next(),
        Some("time\tstage\tassignment\tdecision\tcomment")
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split('\t').collect()).collect();
    assert!(rows.iter().all(|r| r.len() == 5));
    let logged = out
        .decisions
        .iter()
        .filter(|(d, _, _)| !matches!(d, Decision::Answer { .. }))
        .count();
    assert_eq!(rows.len(), logged);
    assert!(rows.iter().any(|r| r[1] == "submit" && r[3] == "accept"));
    assert!(
        rows.iter()
            .any(|r| r[1] == "validate" && r[3] == "create_tasks")
    );
    let mut lines = answers.lines();
    assert_eq!(lines.next(), Some("task\tworker\tlabel\tskill\tresult"));
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split('\t').collect()).collect();
    let verifier_assignments = out
        .fake
        .assignments()
        .iter()
        .filter(|a| a.pool.as_str() != "pool-submit")
        .count();
    assert_eq!(rows.len(), verifier_assignments, "one row per answer");
    assert!(rows.iter().all(|r| r.len() == 5 && r[3] == "1"));
}

#[tokio::test]
async fn faults_delay_but_never_duplicate() {
    for seed in [3, 4] {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let out = drive(seed, 6, store, Crash::None, 0.25, 20).await;
        assert_exactly_once(&out);
        assert!(out.counts.faults.total() > 10, "{:?}", out.counts.faults);
        assert!(
            out.counts.faults.timeouts > 0,
            "some calls ran and lost their answer"
        );
        assert_eq!(out.waiting, 0);
    }
}

/// Tokio's (paused) time as a clock, so that `run`'s sleeps move it.
#[derive(Debug)]
struct TokioClock(tokio::time::Instant);

impl Clock for TokioClock {
    fn now(&self) -> Timestamp {
        T0.plus_millis(self.0.elapsed().as_millis() as u64)
    }
}

#[tokio::test(start_paused = true)]
async fn run_stops_when_every_pool_is_closed_and_drained() {
    let clock: Arc<dyn Clock> = Arc::new(TokioClock(tokio::time::Instant::now()));
    let vclock = crowdcore::clock::VirtualClock::new(T0);
    let fake = crate::support::fake(&vclock, 5, 4).await;
    // The fake must follow the same clock as the pipeline: rebuild it on tokio's.
    let fake2 = crowdcore::pipeline::FakePipeline::new(
        clock.clone(),
        crowdcore::pipeline::FakeConfig::new(5, 12, 0.85),
    );
    for stage in ["submit", "validate", "quality"] {
        fake2.add_pool(&crate::support::pool(stage), true);
    }
    let tasks = fake.tasks(&crate::support::pool("submit"));
    let tasks: Vec<_> = tasks
        .into_iter()
        .map(|input_values| crowdcore::pipeline::NewTask {
            input_values,
            overlap: 1,
            group: None,
        })
        .collect();
    fake2
        .add_tasks(&crate::support::pool("submit"), &tasks)
        .unwrap();
    fake2
        .open_pool(&crate::support::pool("submit"))
        .await
        .unwrap();
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let mut builder = PipelineBuilder::new(
        Arc::new(fake2.clone()),
        store.clone(),
        SessionId::new("photos"),
    )
    .clock(clock.clone())
    .config(crate::support::config(20));
    for stage in stages() {
        builder = builder.stage(stage);
    }
    let pipeline = builder.start().await.unwrap();
    let report = pipeline.run(std::future::pending::<()>()).await.unwrap();
    let reviewed = report
        .decisions
        .iter()
        .filter(|((stage, kind), _)| stage == "submit" && (kind == "accept" || kind == "reject"))
        .map(|(_, (done, pending, failed))| {
            assert_eq!((*pending, *failed), (0, 0));
            done
        })
        .sum::<u64>();
    assert_eq!(reviewed, 4, "{report}");
    assert_eq!(report.waiting.values().sum::<usize>(), 0);
    // It stopped because every pool is closed, not for another reason.
    for stage in ["submit", "validate", "quality"] {
        let info = fake2.pool(&crate::support::pool(stage)).await.unwrap();
        assert_ne!(
            info.status,
            crowdcore::pipeline::PoolStatus::Open,
            "{stage}"
        );
    }
    // It gave the lease up: another run may start at once.
    let mut again =
        PipelineBuilder::new(Arc::new(fake2), store, SessionId::new("photos")).clock(clock);
    for stage in stages() {
        again = again.stage(stage);
    }
    again.start().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn shutdown_stops_a_run_that_would_never_stop() {
    let vclock = crowdcore::clock::VirtualClock::new(T0);
    let fake = crate::support::fake(&vclock, 1, 2).await;
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let mut builder = PipelineBuilder::new(Arc::new(fake), store.clone(), SessionId::new("s"))
        .clock(Arc::new(vclock.clone()))
        .config(PipelineConfig {
            stop: StopCondition::Never,
            ..crate::support::config(0)
        });
    for stage in stages() {
        builder = builder.stage(stage);
    }
    let pipeline = builder.start().await.unwrap();
    let shutdown = tokio::time::sleep(Duration::from_secs(3_600));
    let started = tokio::time::Instant::now();
    pipeline.run(shutdown).await.unwrap();
    assert_eq!(started.elapsed(), Duration::from_secs(3_600));
    // The lease is free again.
    let outcome = store
        .acquire_lease(
            crowdcore::pipeline::LEASE,
            "someone-else",
            vclock.now(),
            1_000,
        )
        .await
        .unwrap();
    assert!(matches!(
        outcome,
        crowdcore::store::LeaseOutcome::Acquired { .. }
    ));
}

#[tokio::test]
async fn a_second_run_cannot_share_the_store() {
    let clock = crowdcore::clock::VirtualClock::new(T0);
    let fake: Arc<dyn PipelinePlatform> = Arc::new(crate::support::fake(&clock, 1, 2).await);
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let first = crate::support::start(fake.clone(), store.clone(), &clock, 0)
        .await
        .unwrap();
    let mut second = PipelineBuilder::new(fake.clone(), store.clone(), SessionId::new("photos"))
        .clock(Arc::new(clock.clone()))
        .owner("another-host");
    for stage in stages() {
        second = second.stage(stage);
    }
    match second.start().await {
        Err(e @ PipelineError::InUse { .. }) => {
            let message = e.to_string();
            assert!(message.contains(crate::support::OWNER), "{message}");
        }
        other => panic!("a second run started: {other:?}"),
    }
    // Not even on another session: the lease is the store's.
    let mut third = PipelineBuilder::new(fake.clone(), store.clone(), SessionId::new("other"))
        .clock(Arc::new(clock.clone()))
        .owner("another-host");
    for stage in stages() {
        third = third.stage(stage);
    }
    assert!(matches!(
        third.start().await,
        Err(PipelineError::InUse { .. })
    ));
    // A crashed run's lease expires; then another host takes over, and the first one, if it
    // comes back, stops at its next tick.
    let mut first = first;
    clock.advance(PipelineConfig::default().lease_ttl_ms + 1);
    let mut takeover = PipelineBuilder::new(fake, store, SessionId::new("photos"))
        .clock(Arc::new(clock.clone()))
        .owner("another-host");
    for stage in stages() {
        takeover = takeover.stage(stage);
    }
    takeover.start().await.unwrap();
    assert!(matches!(
        first.tick().await,
        Err(PipelineError::LeaseLost(owner)) if owner == "another-host"
    ));
    assert!(matches!(first.tick().await, Err(PipelineError::Stopped)));
}

#[tokio::test]
async fn a_store_with_other_stages_is_refused() {
    let clock = crowdcore::clock::VirtualClock::new(T0);
    let fake: Arc<dyn PipelinePlatform> = Arc::new(crate::support::fake(&clock, 1, 2).await);
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let mut p = crate::support::start(fake.clone(), store.clone(), &clock, 0)
        .await
        .unwrap();
    p.release().await.unwrap();
    let mut builder = PipelineBuilder::new(fake, store, SessionId::new("photos"))
        .clock(Arc::new(clock.clone()))
        .owner(crate::support::OWNER);
    for stage in stages().into_iter().take(2) {
        builder = builder.stage(stage);
    }
    assert!(matches!(
        builder.start().await,
        Err(PipelineError::StagesChanged(_))
    ));
}
