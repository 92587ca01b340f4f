//! Ties: equal scores share a rank and the next rank skips (1, 1, 3); among them, whoever first
//! submitted earlier is listed first, then by participant id; the board does not depend on the
//! order in which inputs of the same times arrived.

use crate::support::{board_lines, check, check_board};

const TIED: &str = "
    0 kind k accuracy
    0 post t1 k truth=a
    0 post t2 k truth=a
    5 submit t1 zed a
    5 submit t1 amy a
    7 submit t1 bob a
    8 submit t1 cat b
    9 submit t2 cat a
    3 submit t2 dan b
";

#[test]
fn equal_scores_share_a_rank_and_list_by_first_submission_then_id() {
    let m = check(
        TIED,
        "
        5 scored t1 zed 1
        5 scored t1 amy 1
        7 scored t1 bob 1
        8 scored t1 cat 0
        9 scored t2 cat 1
        3 scored t2 dan 0
        ",
    );
    check_board(
        &m.leaderboard(&"k".into()).unwrap(),
        "
        1 amy 1 answers=1 pending=0
        1 zed 1 answers=1 pending=0
        1 bob 1 answers=1 pending=0
        4 cat 0.5 answers=2 pending=0
        5 dan 0 answers=1 pending=0
        ",
    );
}

#[test]
fn the_board_does_not_depend_on_input_order() {
    let forward = check(TIED, &expected_events(TIED));
    let mut reversed: Vec<&str> = TIED.lines().filter(|l| l.contains("submit")).collect();
    reversed.reverse();
    let setup: Vec<&str> = TIED.lines().filter(|l| !l.contains("submit")).collect();
    let script = format!("{}\n{}", setup.join("\n"), reversed.join("\n"));
    let backward = check(&script, &expected_events(&script));
    assert_eq!(
        board_lines(&forward.leaderboard(&"k".into()).unwrap()),
        board_lines(&backward.leaderboard(&"k".into()).unwrap())
    );
    assert_eq!(
        board_lines(&forward.overall().unwrap()),
        board_lines(&backward.overall().unwrap())
    );
}

/// The `scored` lines `TIED`-style scripts produce (every answer scores at once: truth `a`).
fn expected_events(script: &str) -> String {
    script
        .lines()
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            (w.get(1) == Some(&"submit")).then(|| {
                let score = if w[4] == "a" { 1 } else { 0 };
                format!("{} scored {} {} {score}", w[0], w[2], w[3])
            })
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_first_submission_is_the_earliest_one() {
    // amy's first answer is at 2 though it was recorded after her answer at 6.
    let m = check(
        "
        0 kind k mae
        0 post t1 k truth=0
        0 post t2 k truth=0
        4 submit t1 bob 1
        6 submit t1 amy 1
        2 submit t2 amy 1
        5 submit t2 bob 1
        ",
        "
        4 scored t1 bob 1
        6 scored t1 amy 1
        2 scored t2 amy 1
        5 scored t2 bob 1
        ",
    );
    let board = m.leaderboard(&"k".into()).unwrap();
    check_board(
        &board,
        "
        1 amy 1 answers=2 pending=0
        1 bob 1 answers=2 pending=0
        ",
    );
    assert_eq!(board.standings[0].first_submission.as_millis(), 2);
}
