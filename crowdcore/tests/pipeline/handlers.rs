//! The shipped handlers as data: an assignment in, decisions out.

use crowdcore::pipeline::{
    Action, AssignedTask, AssignmentStatus, Decide, Decision, Fanout, Handler, MajorityVerify,
    OwnReview, PoolAssignment, PoolId, Solution, TaskId, Values, handlers::keys,
};
use crowdcore::{AssignmentId, Money, Timestamp, WorkerId};
use serde_json::{Value, json};

fn values(v: Value) -> Values {
    v.as_object().cloned().unwrap()
}

fn assignment(id: &str, worker: &str, task: &str, input: Value, output: Value) -> PoolAssignment {
    PoolAssignment {
        id: AssignmentId::new(id),
        pool: PoolId::new("p"),
        worker: WorkerId::new(worker),
        status: AssignmentStatus::Submitted,
        created: Timestamp::ZERO,
        submitted: Some(Timestamp::ZERO),
        accepted: None,
        rejected: None,
        tasks: vec![AssignedTask {
            id: TaskId::new(task),
            input_values: values(input),
        }],
        solutions: vec![Solution {
            output_values: values(output),
        }],
    }
}

fn overlaps() -> Vec<(String, u32)> {
    vec![
        ("submit".into(), 1),
        ("validate".into(), 3),
        ("quality".into(), 2),
    ]
}

fn run(handler: &mut dyn Handler, stage: &str, a: &PoolAssignment) -> Vec<Decision> {
    let overlaps = overlaps();
    let mut cx = Decide::new(Timestamp::from_millis(5), stage, &overlaps);
    handler.handle(&mut cx, a).unwrap();
    cx.into_decisions()
}

fn validation(id: &str, worker: &str, task: &str, verdict: &str) -> PoolAssignment {
    assignment(
        id,
        worker,
        task,
        json!({
            keys::ITEM: format!("photo-{task}"),
            keys::ORIGIN_ASSIGNMENT: "s1",
            keys::ORIGIN_STAGE: "submit",
            keys::ORIGIN_WORKER: "author",
            keys::GROUP: "s1",
            keys::GROUP_SIZE: 1,
        }),
        json!({"verdict": verdict}),
    )
}

#[test]
fn fanout_makes_one_task_per_item_in_one_group() {
    let mut fanout = Fanout::new("validate", Some("photos"));
    let a = assignment(
        "s1",
        "author",
        "t0",
        json!({"place": "p"}),
        json!({"photos": ["x", "y"]}),
    );
    let decisions = run(&mut fanout, "submit", &a);
    let [
        Decision::CreateTasks {
            stage,
            about,
            tasks,
        },
    ] = decisions.as_slice()
    else {
        panic!("{decisions:?}");
    };
    assert_eq!((stage.as_str(), about.as_str()), ("validate", "s1"));
    assert_eq!(tasks.len(), 2);
    for (task, item) in tasks.iter().zip(["x", "y"]) {
        assert_eq!(task.overlap, 3, "the next stage's overlap");
        assert_eq!(task.group.as_deref(), Some("s1"));
        assert_eq!(task.input_values[keys::ITEM], json!(item));
        assert_eq!(task.input_values[keys::GROUP_SIZE], json!(2));
        assert_eq!(task.input_values[keys::ORIGIN_WORKER], json!("author"));
    }
}

#[test]
fn fanout_rejects_an_empty_submission_and_refuses_a_malformed_one() {
    let mut fanout = Fanout::new("validate", Some("photos"));
    let empty = assignment("s1", "a", "t0", json!({}), json!({"photos": []}));
    assert!(matches!(
        run(&mut fanout, "submit", &empty).as_slice(),
        [Decision::Reject { stage, .. }] if stage == "submit"
    ));
    let malformed = assignment("s2", "a", "t0", json!({}), json!({"photos": "x"}));
    let overlaps = overlaps();
    let mut cx = Decide::new(Timestamp::ZERO, "submit", &overlaps);
    assert!(fanout.handle(&mut cx, &malformed).is_err());
    let mut to_nowhere = Fanout::new("nowhere", None);
    let full = assignment("s3", "a", "t0", json!({}), json!({"photo": "x"}));
    let mut cx = Decide::new(Timestamp::ZERO, "submit", &overlaps);
    assert!(
        to_nowhere.handle(&mut cx, &full).is_err(),
        "an unknown stage"
    );
}

#[test]
fn majority_waits_for_the_overlap_then_decides_and_logs_answers() {
    let mut verify = MajorityVerify::new(
        "verdict",
        "yes",
        vec![Action::AcceptOrigin {
            comment: "ok".into(),
        }],
        vec![Action::RejectOrigin {
            comment: "no".into(),
        }],
    );
    verify.own = OwnReview::AcceptAgreeing {
        comment: "you disagreed".into(),
    };
    assert!(run(&mut verify, "validate", &validation("v1", "w1", "t1", "no")).is_empty());
    assert!(run(&mut verify, "validate", &validation("v2", "w2", "t1", "no")).is_empty());
    let decisions = run(
        &mut verify,
        "validate",
        &validation("v3", "w3", "t1", "yes"),
    );
    let answers: Vec<(&str, &str, &str)> = decisions
        .iter()
        .filter_map(|d| match d {
            Decision::Answer {
                worker,
                label,
                result,
                ..
            } => Some((worker.as_str(), label.as_str(), result.as_str())),
            _ => None,
        })
        .collect();
    assert_eq!(
        answers,
        [("w1", "no", "no"), ("w2", "no", "no"), ("w3", "yes", "no")]
    );
    let reviews: Vec<(&str, &str, bool)> = decisions
        .iter()
        .filter_map(|d| match d {
            Decision::Accept {
                stage, assignment, ..
            } => Some((stage.as_str(), assignment.as_str(), true)),
            Decision::Reject {
                stage, assignment, ..
            } => Some((stage.as_str(), assignment.as_str(), false)),
            _ => None,
        })
        .collect();
    assert_eq!(
        reviews,
        [
            ("validate", "v1", true),
            ("validate", "v2", true),
            ("validate", "v3", false),
            ("submit", "s1", false),
        ]
    );
    assert_eq!(verify.waiting(), 0);
}

#[test]
fn skills_weigh_the_vote() {
    let mut verify = MajorityVerify::new(
        "verdict",
        "yes",
        vec![Action::BonusOrigin {
            amount: Money::usd_cents(5),
            comment: "good".into(),
        }],
        vec![],
    );
    verify.skills.insert("expert".into(), 3.0);
    run(&mut verify, "validate", &validation("v1", "w1", "t1", "no"));
    run(&mut verify, "validate", &validation("v2", "w2", "t1", "no"));
    let decisions = run(
        &mut verify,
        "validate",
        &validation("v3", "expert", "t1", "yes"),
    );
    assert!(
        decisions.iter().any(|d| matches!(
            d,
            Decision::Bonus { worker, amount, .. } if worker.as_str() == "author" && *amount == Money::usd_cents(5)
        )),
        "{decisions:?}"
    );
    assert!(decisions.iter().any(|d| matches!(
        d,
        Decision::Answer { worker, skill, result, .. } if worker.as_str() == "expert" && *skill == 3.0 && result == "yes"
    )));
}

#[test]
fn forward_sends_the_whole_group_on() {
    let mut verify = MajorityVerify::new(
        "verdict",
        "yes",
        vec![Action::Forward {
            stage: "quality".into(),
        }],
        vec![],
    );
    verify.own = OwnReview::None;
    let mut all = Vec::new();
    for (id, w) in [("v1", "w1"), ("v2", "w2"), ("v3", "w3")] {
        all.extend(run(
            &mut verify,
            "validate",
            &validation(id, w, "t1", "yes"),
        ));
    }
    let creates: Vec<_> = all
        .iter()
        .filter(|d| matches!(d, Decision::CreateTasks { .. }))
        .collect();
    let [
        Decision::CreateTasks {
            stage,
            about,
            tasks,
        },
    ] = creates.as_slice()
    else {
        panic!("one creation: {all:?}");
    };
    assert_eq!((stage.as_str(), about.as_str()), ("quality", "s1"));
    assert_eq!(tasks[0].overlap, 2);
    assert_eq!(tasks[0].input_values[keys::ITEMS], json!(["photo-t1"]));
    assert_eq!(tasks[0].input_values[keys::ORIGIN_ASSIGNMENT], json!("s1"));
    assert_eq!(
        all.iter()
            .filter(|d| matches!(d, Decision::Answer { .. }))
            .count(),
        3,
        "the answers are logged"
    );
    assert!(
        all.iter().all(|d| !matches!(d, Decision::Accept { .. })),
        "no own review"
    );
}

#[test]
fn operation_ids_are_stable_uuids_per_key() {
    use crowdcore::pipeline::operation_id;
    use crowdcore::platform::IdempotencyKey;
    use crowdcore::{EffectId, SessionId};
    let key = |seq| IdempotencyKey::for_effect(&EffectId::new(SessionId::new("photos"), seq));
    assert_eq!(operation_id(&key(1)), operation_id(&key(1)));
    assert_ne!(operation_id(&key(1)), operation_id(&key(2)));
    assert_eq!(operation_id(&key(1)).get_version_num(), 8);
    // Pinned: a build that derived other ids would re-create, after an upgrade, the operations
    // a crashed run had started.
    assert_eq!(
        operation_id(&key(1)).to_string(),
        "38ae94c9-4db2-8e14-95d6-6eb1efe61237"
    );
}

#[test]
fn an_answer_the_vote_cannot_weigh_is_refused_and_changes_nothing() {
    let mut verify = MajorityVerify::new(
        "verdict",
        "yes",
        vec![Action::BonusOrigin {
            amount: Money::usd_cents(5),
            comment: "good".into(),
        }],
        vec![],
    );
    verify.skills.insert("broken".into(), -1.0);
    run(
        &mut verify,
        "validate",
        &validation("v1", "w1", "t1", "yes"),
    );
    run(
        &mut verify,
        "validate",
        &validation("v2", "w2", "t1", "yes"),
    );
    let before = verify.save();
    // The third answer would complete the overlap, but its weight is negative.
    let overlaps = overlaps();
    let mut cx = Decide::new(Timestamp::from_millis(5), "validate", &overlaps);
    let refused = verify.handle(&mut cx, &validation("v3", "broken", "t1", "yes"));
    assert!(refused.is_err(), "{refused:?}");
    assert_eq!(verify.save(), before, "the refused answer moved the state");
    // The task is still open: the next answer decides it.
    let decisions = run(
        &mut verify,
        "validate",
        &validation("v4", "w3", "t1", "yes"),
    );
    assert!(
        decisions
            .iter()
            .any(|d| matches!(d, Decision::Bonus { worker, .. } if worker.as_str() == "author")),
        "{decisions:?}"
    );
}
