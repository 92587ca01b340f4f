//! Deferred scoring: answers to a task without truth wait, and are scored, in submission order,
//! when the truth arrives; truth given at posting scores at once; truth is given once.

use crowdcore::score::Basis;

use crate::support::{check, check_board};

#[test]
fn answers_wait_for_the_truth_and_are_scored_when_it_arrives() {
    let m = check(
        "
        0 kind k accuracy
        0 post t1 k
        1 submit t1 bob dog
        2 submit t1 ann cat
        9 reveal t1 cat
        10 submit t1 eve cat
        ",
        "
        1 deferred t1 bob
        2 deferred t1 ann
        9 scored t1 bob 0
        9 scored t1 ann 1
        10 scored t1 eve 1
        ",
    );
    assert_eq!(m.pending(), 0);
    check_board(
        &m.leaderboard(&"k".into()).unwrap(),
        "
        1 ann 1 answers=1 pending=0
        1 eve 1 answers=1 pending=0
        3 bob 0 answers=1 pending=0
        ",
    );
}

#[test]
fn a_board_by_scores_shows_what_still_waits() {
    let m = check(
        "
        0 kind k mae
        0 post known k truth=10
        0 post later k
        1 submit known ann 12
        1 submit later ann 3
        2 submit later bob 4
        ",
        "
        1 scored known ann 2
        1 deferred later ann
        2 deferred later bob
        ",
    );
    assert_eq!(m.pending(), 2);
    // bob has nothing scored yet: not ranked.
    let board = m.leaderboard(&"k".into()).unwrap();
    assert!(matches!(board.basis, Basis::Scores { .. }));
    check_board(&board, "1 ann 2 answers=1 pending=1");
}

#[test]
fn truth_is_given_once_and_must_be_readable() {
    check(
        "
        0 kind k mae
        0 post t1 k truth=1
        0 post t2 k
        1 reveal t1 2
        1 reveal t2 two
        1 reveal t3 2
        2 reveal t2 2
        3 reveal t2 2
        ",
        r#"
        1 refused the truth of task t1 is already known
        1 refused malformed truth for task t2: "two" is not a number
        1 refused unknown task t3
        3 refused the truth of task t2 is already known
        "#,
    );
}

#[test]
fn posting_and_answering_need_a_known_kind_and_task_once_per_participant() {
    check(
        "
        0 kind k accuracy
        0 kind k accuracy
        0 kind k mae
        0 post t1 nope
        0 post t1 k
        0 post t1 k truth=x
        1 submit t2 ann x
        1 submit t1 ann x
        2 submit t1 ann y
        ",
        "
        0 refused kind k is already defined with another config
        0 refused unknown kind nope
        0 refused task t1 was already posted
        1 refused unknown task t2
        1 deferred t1 ann
        2 refused ann already answered task t1
        ",
    );
}
