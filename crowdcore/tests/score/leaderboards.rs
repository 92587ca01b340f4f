//! Leaderboards per kind — by mean score, or by aggregation skill while no truth exists — and
//! overall, by participants beaten summed over the kinds.

use crowdcore::score::{Basis, QueryError, SkillMethod};

use crate::support::{check, check_board};

/// Three tasks, no truth: ann and bob always agree, eve twice disagrees.
const NO_TRUTH: &str = r#"
    0 kind k accuracy
    0 kind p log_loss skills=dawid_skene
    0 post t1 k
    0 post t2 k
    0 post t3 k
    0 post q1 p
    1 submit t1 eve dog
    2 submit t1 ann cat
    3 submit t1 bob cat
    4 submit t2 ann dog
    4 submit t2 bob dog
    4 submit t2 eve cat
    5 submit t3 bob cat
    5 submit t3 ann cat
    5 submit t3 eve cat
    6 submit q1 ann {"x": 0.9, "y": 0.1}
    6 submit q1 bob {"x": 0.4, "y": 0.6}
"#;

fn no_truth() -> crowdcore::score::Scoreboard {
    let deferred: Vec<String> = NO_TRUTH
        .lines()
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            (w.get(1) == Some(&"submit")).then(|| format!("{} deferred {} {}", w[0], w[2], w[3]))
        })
        .collect();
    check(NO_TRUTH, &deferred.join("\n"))
}

#[test]
fn without_truth_a_kind_is_ranked_by_aggregation_skill() {
    let m = no_truth();
    let board = m.leaderboard(&"k".into()).unwrap();
    assert_eq!(
        board.basis,
        Basis::Skills {
            method: SkillMethod::MajorityVote
        }
    );
    // Majority vote skill: agreement with the majority (cat, dog, cat).
    check_board(
        &board,
        "
        1 ann 1 answers=3 pending=3
        1 bob 1 answers=3 pending=3
        3 eve 0.3333333333333333 answers=3 pending=3
        ",
    );
}

#[test]
fn the_skill_method_is_the_kinds_or_the_callers() {
    let m = no_truth();
    // Dawid–Skene, the method of kind p, reads each log-loss answer as its likeliest class.
    let p = m.leaderboard(&"p".into()).unwrap();
    assert_eq!(
        p.basis,
        Basis::Skills {
            method: SkillMethod::DawidSkene
        }
    );
    assert_eq!(p.standings.len(), 2);
    let glad = m
        .skill_leaderboard(&"k".into(), Some(SkillMethod::Glad))
        .unwrap();
    let order: Vec<_> = glad
        .standings
        .iter()
        .map(|s| s.participant.as_str())
        .collect();
    assert_eq!(order.last(), Some(&"eve"));
    for method in [
        SkillMethod::Wawa,
        SkillMethod::ZeroBasedSkill,
        SkillMethod::DawidSkene,
        SkillMethod::OneCoinDawidSkene,
    ] {
        let b = m.skill_leaderboard(&"k".into(), Some(method)).unwrap();
        assert_eq!(b.standings.len(), 3, "{method:?}");
        assert_eq!(b.standings[2].participant.as_str(), "eve", "{method:?}");
    }
}

#[test]
fn once_an_answer_is_scored_the_board_is_by_scores() {
    let m = check(
        &format!("{NO_TRUTH}\n 9 reveal t1 dog"),
        &format!(
            "{}\n9 scored t1 eve 1\n9 scored t1 ann 0\n9 scored t1 bob 0",
            crate::support::lines(NO_TRUTH)
                .iter()
                .filter_map(|l| {
                    let w: Vec<&str> = l.split(' ').collect();
                    (w[1] == "submit").then(|| format!("{} deferred {} {}", w[0], w[2], w[3]))
                })
                .collect::<Vec<_>>()
                .join("\n")
        ),
    );
    let board = m.leaderboard(&"k".into()).unwrap();
    assert!(matches!(board.basis, Basis::Scores { .. }));
    check_board(
        &board,
        "
        1 eve 1 answers=1 pending=2
        2 ann 0 answers=1 pending=2
        2 bob 0 answers=1 pending=2
        ",
    );
    // Skills stay available on request, from every answer.
    let skills = m.skill_leaderboard(&"k".into(), None).unwrap();
    assert_eq!(skills.standings[2].participant.as_str(), "eve");
}

#[test]
fn kinds_that_cannot_be_aggregated_wait_for_truth() {
    let m = check(
        "
        0 kind age mae
        0 kind empty accuracy
        0 post p1 age
        1 submit p1 ann 30
        ",
        "1 deferred p1 ann",
    );
    let board = m.leaderboard(&"age".into()).unwrap();
    assert!(matches!(board.basis, Basis::Scores { .. }));
    assert!(board.is_empty());
    assert_eq!(
        m.skill_leaderboard(&"age".into(), None),
        Err(QueryError::NotCategorical("age".into()))
    );
    assert!(m.leaderboard(&"empty".into()).unwrap().is_empty());
    assert_eq!(
        m.leaderboard(&"nope".into()),
        Err(QueryError::UnknownKind("nope".into()))
    );
}

#[test]
fn overall_sums_the_participants_beaten_on_each_board() {
    let m = check(
        "
        0 kind a accuracy
        0 kind b mae
        0 post a1 a truth=x
        0 post b1 b truth=10
        1 submit a1 ann x
        1 submit a1 bob x
        1 submit a1 eve y
        2 submit b1 eve 10
        2 submit b1 bob 12
        2 submit b1 ann 15
        3 submit b1 dan 15
        ",
        "
        1 scored a1 ann 1
        1 scored a1 bob 1
        1 scored a1 eve 0
        2 scored b1 eve 0
        2 scored b1 bob 2
        2 scored b1 ann 5
        3 scored b1 dan 5
        ",
    );
    // a: ann, bob beat eve (1 each). b: eve beats 3, bob beats 2, ann and dan tie last.
    check_board(
        &m.overall().unwrap(),
        "
        1 bob 3 answers=2 pending=0
        1 eve 3 answers=2 pending=0
        3 ann 1 answers=2 pending=0
        4 dan 0 answers=1 pending=0
        ",
    );
    let overall = m.overall().unwrap();
    assert_eq!(overall.basis, Basis::Overall);
    assert_eq!(overall.kind, None);
}
