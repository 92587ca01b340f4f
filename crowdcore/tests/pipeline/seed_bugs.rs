//! The seed's bugs, as regressions: it did not save its cursors (a restart redid work), and it
//! kept its groups in memory (a restart forgot half-decided groups).

use std::sync::Arc;

use crowdcore::clock::{Clock, VirtualClock};
use crowdcore::pipeline::{
    Action, AssignedTask, AssignmentStatus, Decide, Decision, Handler, MajorityVerify,
    PipelinePlatform, PoolAssignment, PoolId, Solution, TaskId, handlers::keys,
};
use crowdcore::store::{MemoryStore, Store};
use crowdcore::{AssignmentId, Timestamp, WorkerId};
use serde_json::json;

use crate::support::{Crash, PERIOD_MS, T0, assert_exactly_once, drive, start, summarize};

#[tokio::test]
async fn the_cursor_is_saved_with_what_it_found() {
    let clock = VirtualClock::new(T0);
    let fake = crate::support::fake(&clock, 9, 6).await;
    let platform: Arc<dyn PipelinePlatform> = Arc::new(fake.clone());
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let mut p = start(platform.clone(), store.clone(), &clock, 0)
        .await
        .unwrap();
    for _ in 0..12 {
        p.tick().await.unwrap();
        clock.advance(PERIOD_MS);
    }
    let cursor = p.cursor("submit").unwrap().clone();
    assert!(cursor.time.is_some(), "the submit stage saw assignments");
    drop(p);
    // Restarted, it resumes from the stored cursor, not from the beginning.
    let mut p = start(platform, store.clone(), &clock, 0).await.unwrap();
    let restored = p.cursor("submit").unwrap();
    assert_eq!(restored.time, cursor.time);
    assert_eq!(restored.seen, cursor.seen);
    let lists = fake.counts().lists;
    let before = summarize(p.decisions().await.unwrap()).len();
    p.tick().await.unwrap();
    // The tick after the restart handles nothing it handled before: no new decision about
    // an old submission.
    let after = summarize(p.decisions().await.unwrap());
    for (decision, _, _) in &after[before..] {
        if let Decision::CreateTasks { stage, .. } = decision {
            assert_ne!(stage, "validate", "a submission was fanned out again");
        }
    }
    assert!(fake.counts().lists > lists);
    assert_eq!(fake.counts().duplicate_tasks, 0);
}

#[tokio::test]
async fn restarting_after_every_tick_changes_nothing() {
    // Dropping the pipeline after every tick (with snapshots every assignment, and with none,
    // replaying the log) ends where an uninterrupted run ends: half-decided groups survive.
    let baseline = drive(21, 6, Arc::new(MemoryStore::new()), Crash::None, 0.0, 0).await;
    for snapshot_every in [0, 1, 3] {
        let clock = VirtualClock::new(T0);
        let fake = crate::support::fake(&clock, 21, 6).await;
        let platform: Arc<dyn PipelinePlatform> = Arc::new(fake.clone());
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let mut ticks = 0;
        let decisions = loop {
            ticks += 1;
            assert!(ticks < 2_000);
            let mut p = start(platform.clone(), store.clone(), &clock, snapshot_every)
                .await
                .unwrap();
            let tick = p.tick().await.unwrap();
            if tick.finished {
                break summarize(p.decisions().await.unwrap());
            }
            clock.advance(PERIOD_MS);
        };
        assert_eq!(
            decisions, baseline.decisions,
            "snapshot every {snapshot_every}"
        );
        assert_eq!(fake.counts().duplicate_reviews, 0);
        assert_eq!(fake.counts().duplicate_tasks, 0);
        assert_eq!(fake.counts().duplicate_bonuses, 0);
    }
    assert_exactly_once(&baseline);
}

fn verifier(id: &str, task: &str, verdict: &str, group_size: u64) -> PoolAssignment {
    PoolAssignment {
        id: AssignmentId::new(id),
        pool: PoolId::new("pool-validate"),
        worker: WorkerId::new(format!("w-{id}")),
        status: AssignmentStatus::Submitted,
        created: T0,
        submitted: Some(T0),
        accepted: None,
        rejected: None,
        tasks: vec![AssignedTask {
            id: TaskId::new(task),
            input_values: json!({
                keys::ITEM: format!("photo-{task}"),
                keys::ORIGIN_ASSIGNMENT: "sub-1",
                keys::ORIGIN_STAGE: "submit",
                keys::ORIGIN_WORKER: "author",
                keys::GROUP: "sub-1",
                keys::GROUP_SIZE: group_size,
            })
            .as_object()
            .cloned()
            .unwrap(),
        }],
        solutions: vec![Solution {
            output_values: json!({"verdict": verdict}).as_object().cloned().unwrap(),
        }],
    }
}

#[test]
fn a_group_half_decided_before_a_restart_is_decided_after_it() {
    let overlaps = vec![("submit".to_owned(), 1), ("validate".to_owned(), 3)];
    let make = || {
        MajorityVerify::new(
            "verdict",
            "yes",
            vec![Action::AcceptOrigin {
                comment: "ok".into(),
            }],
            vec![Action::RejectOrigin {
                comment: "no".into(),
            }],
        )
    };
    let mut handler = make();
    let now = Timestamp::from_millis(1);
    for (id, task, verdict) in [("v1", "t1", "yes"), ("v2", "t1", "no"), ("v3", "t1", "yes")] {
        let mut cx = Decide::new(now, "validate", &overlaps);
        handler
            .handle(&mut cx, &verifier(id, task, verdict, 2))
            .unwrap();
        assert!(
            !cx.decisions()
                .iter()
                .any(|d| matches!(d, Decision::Accept { stage, .. } | Decision::Reject { stage, .. } if stage == "submit")),
            "one task of two is not the group"
        );
    }
    assert_eq!(handler.waiting(), 1, "one group waits");
    // The process restarts: a new handler from the saved state.
    let saved = handler.save();
    let mut handler = make();
    handler
        .load(serde_json::from_str(&saved.to_string()).unwrap())
        .unwrap();
    let mut decided = Vec::new();
    for (id, verdict) in [("v4", "yes"), ("v5", "yes"), ("v6", "no")] {
        let mut cx = Decide::new(now, "validate", &overlaps);
        handler
            .handle(&mut cx, &verifier(id, "t2", verdict, 2))
            .unwrap();
        decided.extend(cx.into_decisions());
    }
    let origin: Vec<&Decision> = decided
        .iter()
        .filter(|d| matches!(d, Decision::Accept { stage, .. } | Decision::Reject { stage, .. } if stage == "submit"))
        .collect();
    assert_eq!(
        origin,
        [&Decision::Accept {
            stage: "submit".into(),
            assignment: AssignmentId::new("sub-1"),
            comment: "ok".into()
        }]
    );
    assert_eq!(handler.waiting(), 0);
    // A late fourth answer to a decided task changes nothing.
    let mut cx = Decide::new(now, "validate", &overlaps);
    handler
        .handle(&mut cx, &verifier("v7", "t2", "no", 2))
        .unwrap();
    assert!(
        cx.decisions()
            .iter()
            .all(|d| matches!(d, Decision::Accept { stage, .. } if stage == "validate"))
    );
}

#[test]
fn a_bad_assignment_is_refused_and_changes_nothing() {
    let overlaps = vec![("submit".to_owned(), 1), ("validate".to_owned(), 3)];
    let mut handler = MajorityVerify::new("verdict", "yes", vec![], vec![]);
    let mut broken = verifier("v1", "t1", "yes", 2);
    broken.tasks[0].input_values.remove(keys::GROUP);
    let before = handler.save();
    let mut cx = Decide::new(T0, "validate", &overlaps);
    assert!(handler.handle(&mut cx, &broken).is_err());
    assert_eq!(handler.save(), before);
    assert!(cx.decisions().is_empty());
}

#[test]
fn an_origin_in_an_unknown_stage_is_refused_before_anything_changes() {
    // Overlap 1 and a group of 1: this answer decides its task and its group at once, so a
    // check made only when the group's actions run would come after the state had moved.
    let overlaps = vec![("submit".to_owned(), 1), ("validate".to_owned(), 1)];
    let accept = vec![Action::AcceptOrigin {
        comment: "ok".into(),
    }];
    let mut handler = MajorityVerify::new("verdict", "yes", accept, vec![]);
    let mut stray = verifier("v1", "t1", "yes", 1);
    stray.tasks[0]
        .input_values
        .insert(keys::ORIGIN_STAGE.into(), json!("ghost"));
    let before = handler.save();
    let mut cx = Decide::new(T0, "validate", &overlaps);
    assert!(handler.handle(&mut cx, &stray).is_err());
    assert_eq!(handler.save(), before, "the task is still undecided");
    assert!(cx.decisions().is_empty());
}

#[tokio::test]
async fn a_handler_that_decides_otherwise_on_replay_is_caught() {
    let clock = VirtualClock::new(T0);
    let fake = crate::support::fake(&clock, 9, 6).await;
    let platform: Arc<dyn PipelinePlatform> = Arc::new(fake);
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let mut p = start(platform.clone(), store.clone(), &clock, 0)
        .await
        .unwrap();
    for _ in 0..15 {
        p.tick().await.unwrap();
        clock.advance(PERIOD_MS);
    }
    assert!(p.decisions().await.unwrap().len() > 10);
    drop(p);
    // The same stages, but the first stage fans out to other fields: its replayed decisions
    // differ from the ones in the outbox.
    let mut stages = crate::support::stages();
    stages[0] = crowdcore::pipeline::Stage::new(
        "submit",
        crate::support::pool("submit"),
        1,
        crowdcore::pipeline::Fanout::new("validate", None),
    );
    let mut builder = crowdcore::pipeline::PipelineBuilder::new(
        platform,
        store.clone(),
        crowdcore::SessionId::new("photos"),
    )
    .clock(Arc::new(clock.clone()))
    .owner(crate::support::OWNER)
    .config(crate::support::config(0));
    for stage in stages {
        builder = builder.stage(stage);
    }
    match builder.start().await {
        Err(crowdcore::pipeline::PipelineError::Recovery(message)) => {
            assert!(message.contains("not deterministic"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    // The failed start gave the lease up.
    let outcome = store
        .acquire_lease(crowdcore::pipeline::LEASE, "another", clock.now(), 1_000)
        .await
        .unwrap();
    assert!(matches!(
        outcome,
        crowdcore::store::LeaseOutcome::Acquired { .. }
    ));
}
