//! Deadlines: an answer made at or after its task's deadline is refused, judged by when it was
//! made; ticks close due tasks; `poll_timeout` says when the next one is due.

use crowdcore::Timestamp;
use crowdcore::score::{Input, KindConfig, Metric, NewTask, Refused, Scoreboard, Scorers};

use crate::support::check;

#[test]
fn answers_at_or_after_the_deadline_are_refused() {
    check(
        "
        0 kind k accuracy
        0 post t1 k truth=a deadline=1000
        999 submit t1 ann a
        1000 submit t1 bob a
        5000 submit t1 eve a
        ",
        "
        999 scored t1 ann 1
        1000 refused task t1 closed at 1000ms; the answer came at 1000ms
        5000 refused task t1 closed at 1000ms; the answer came at 5000ms
        ",
    );
}

#[test]
fn a_tick_closes_every_due_task_in_deadline_order() {
    let m = check(
        "
        0 kind k accuracy
        0 post late k deadline=3000
        0 post early k deadline=1000
        0 post never k
        0 post also k deadline=1000
        500 tick
        2000 tick
        2000 tick
        ",
        "
        2000 closed also 1000
        2000 closed early 1000
        ",
    );
    assert_eq!(m.poll_timeout(), Some(Timestamp::from_millis(3000)));
    assert!(m.task(&"early".into()).unwrap().closed);
    assert!(!m.task(&"late".into()).unwrap().closed);
}

#[test]
fn an_answer_made_in_time_counts_even_if_recorded_after_a_tick() {
    // A driver that reads a platform late passes each submission's own time.
    check(
        "
        0 kind k accuracy
        0 post t1 k deadline=1000
        1500 tick
        900 submit t1 ann a
        1800 reveal t1 a
        ",
        "
        1500 closed t1 1000
        900 deferred t1 ann
        1800 scored t1 ann 1
        ",
    );
}

#[test]
fn the_deadline_refusal_is_typed() {
    let mut m = Scoreboard::new(Scorers::new());
    let t = Timestamp::from_millis;
    let kind = KindConfig::new(Metric::Accuracy);
    m.handle(
        t(0),
        Input::DefineKind {
            kind: "k".into(),
            config: kind,
        },
    )
    .unwrap();
    m.handle(
        t(0),
        Input::PostTask(NewTask::new("t", "k").deadline(t(60_000))),
    )
    .unwrap();
    assert_eq!(m.poll_timeout(), Some(t(60_000)));
    let late = Input::Submit {
        task: "t".into(),
        participant: "w".into(),
        answer: "a".into(),
    };
    assert_eq!(
        m.handle(t(60_000), late),
        Err(Refused::PastDeadline {
            task: "t".into(),
            deadline: t(60_000),
            at: t(60_000)
        })
    );
    m.handle_timeout(t(60_000));
    assert_eq!(m.poll_timeout(), None);
}
