//! The metrics: accuracy, log loss (normalized, clipped), mean absolute error as an `f64`, and
//! custom scorers; malformed answers and truths are refused when they arrive.

use crate::support::{check, check_board};

#[test]
fn accuracy_is_an_exact_label_match_and_the_mean_is_not_rounded() {
    let m = check(
        "
        0 kind k accuracy
        0 post t1 k truth=cat
        0 post t2 k truth=dog
        0 post t3 k truth=dog
        1 submit t1 ann cat
        1 submit t2 ann Dog
        1 submit t3 ann dog
        2 submit t1 bob cat
        ",
        "
        1 scored t1 ann 1
        1 scored t2 ann 0
        1 scored t3 ann 1
        2 scored t1 bob 1
        ",
    );
    check_board(
        &m.leaderboard(&"k".into()).unwrap(),
        "
        1 bob 1 answers=1 pending=0
        2 ann 0.6666666666666666 answers=3 pending=0
        ",
    );
}

#[test]
fn log_loss_normalizes_and_clips_confident_answers() {
    let m = check(
        r#"
        0 kind k log_loss
        0 post t1 k truth=dog
        0 post t2 k truth=dog
        1 submit t1 ann {"cat": 1, "dog": 3}
        1 submit t2 ann {"cat": 1}
        2 submit t1 bob dog
        2 submit t2 bob cat
        3 submit t1 eve {"cat": 0.3, "dog": 0.7}
        "#,
        "
        // −ln(3/4)
        1 scored t1 ann 0.2876820724517809
        // dog is left out: p = 0, clipped to 1e-15: −ln(1e-15), not infinity
        1 scored t2 ann 34.538776394910684
        // a bare label is certainty, clipped to 1 − 1e-15
        2 scored t1 bob 0.0000000000000009992007221626415
        2 scored t2 bob 34.538776394910684
        3 scored t1 eve 0.35667494393873245
        ",
    );
    // Lower is better.
    check_board(
        &m.leaderboard(&"k".into()).unwrap(),
        "
        1 eve 0.35667494393873245 answers=1 pending=0
        2 bob 17.269388197455342 answers=2 pending=0
        3 ann 17.413229233681232 answers=2 pending=0
        ",
    );
}

#[test]
fn log_loss_takes_its_clipping_bound_from_the_kind() {
    check(
        "
        0 kind k log_loss 0.01
        0 kind bad log_loss 0.5
        0 kind worse log_loss 0
        0 post t1 k truth=a
        1 submit t1 ann b
        ",
        "
        0 refused invalid kind config: log loss eps must be in (0, 0.5), not 0.5
        0 refused invalid kind config: log loss eps must be in (0, 0.5), not 0
        1 scored t1 ann 4.605170185988091
        ",
    );
}

#[test]
fn malformed_probabilities_are_refused_on_arrival() {
    check(
        r#"
        0 kind k log_loss
        0 post t1 k truth=a
        1 submit t1 ann {"a": -0.5, "b": 1.5}
        1 submit t1 ann {"a": 0, "b": 0}
        1 submit t1 ann {"a": "high"}
        1 submit t1 ann {}
        1 submit t1 ann
        2 submit t1 ann {"a": 0.5, "b": 0.5}
        "#,
        r#"
        1 refused malformed answer to task t1: probability -0.5 of "a" is negative or not finite
        1 refused malformed answer to task t1: probabilities sum to 0
        1 refused malformed answer to task t1: probabilities must be a JSON object of numbers: invalid type: string "high", expected f64 at line 1 column 12
        1 refused malformed answer to task t1: probabilities sum to 0
        1 refused malformed answer to task t1: empty label
        2 scored t1 ann 0.6931471805599453
        "#,
    );
}

#[test]
fn mean_absolute_error_is_an_f64_never_truncated() {
    let m = check(
        "
        0 kind age mae
        0 post p1 age truth=2
        0 post p2 age truth=0.3
        1 submit p1 ann 2.5
        1 submit p2 ann 0.1
        2 submit p1 bob 1.25
        2 submit p2 bob  0.3
        ",
        "
        1 scored p1 ann 0.5
        1 scored p2 ann 0.19999999999999998
        2 scored p1 bob 0.75
        2 scored p2 bob 0
        ",
    );
    check_board(
        &m.leaderboard(&"age".into()).unwrap(),
        "
        1 ann 0.35 answers=2 pending=0
        2 bob 0.375 answers=2 pending=0
        ",
    );
}

#[test]
fn numbers_that_are_not_finite_are_refused() {
    check(
        "
        0 kind age mae
        0 post p1 age truth=forty
        0 post p1 age truth=inf
        0 post p1 age
        1 submit p1 ann NaN
        1 submit p1 ann -inf
        1 submit p1 ann 4O
        2 reveal p1 NaN
        ",
        r#"
        0 refused malformed truth for task p1: "forty" is not a number
        0 refused malformed truth for task p1: inf is not a finite number
        1 refused malformed answer to task p1: NaN is not a finite number
        1 refused malformed answer to task p1: -inf is not a finite number
        1 refused malformed answer to task p1: "4O" is not a number
        2 refused malformed truth for task p1: NaN is not a finite number
        "#,
    );
}

#[test]
fn custom_scorers_score_check_and_fail_without_breaking_the_board() {
    let m = check(
        "
        0 kind h custom halves higher
        0 kind n custom nan lower
        0 kind x custom nobody higher
        0 post t1 h truth=ok
        0 post t2 h truth=maybe
        0 post t3 n truth=anything
        1 submit t1 ann 0.5
        1 submit t1 bob lots
        2 submit t1 bob 0.75
        3 submit t3 ann 1
        ",
        r#"
        0 refused no scorer is registered as "nobody"
        0 refused malformed truth for task t2: "maybe" is neither ok nor no
        1 scored t1 ann 0.5
        1 refused malformed answer to task t1: "lots" is not a number
        2 scored t1 bob 0.75
        3 failed t3 ann the score is not finite (NaN)
        "#,
    );
    check_board(
        &m.leaderboard(&"h".into()).unwrap(),
        "
        1 bob 0.75 answers=1 pending=0
        2 ann 0.5 answers=1 pending=0
        ",
    );
    // A failed answer counts in no mean: nobody is on the board.
    check_board(&m.leaderboard(&"n".into()).unwrap(), "");
    assert_eq!(m.kind(&"n".into()).unwrap().totals[&"ann".into()].failed, 1);
}

#[test]
fn a_closure_is_a_scorer() {
    use crowdcore::score::{Input, KindConfig, Metric, NewTask, Scoreboard, Scorers};
    use crowdcore::{Timestamp, WorkerId};

    let squared = |a: &str, t: &str| {
        let d = a.parse::<f64>().unwrap_or(f64::NAN) - t.parse::<f64>().unwrap_or(f64::NAN);
        d * d
    };
    let mut m = Scoreboard::new(Scorers::new().with("squared", squared));
    let t = Timestamp::ZERO;
    let kind = KindConfig::new(Metric::custom("squared", false));
    m.handle(
        t,
        Input::DefineKind {
            kind: "k".into(),
            config: kind,
        },
    )
    .unwrap();
    m.handle(t, Input::PostTask(NewTask::new("t", "k").truth("3")))
        .unwrap();
    let submit = Input::Submit {
        task: "t".into(),
        participant: WorkerId::new("w"),
        answer: "1.5".into(),
    };
    m.handle(t, submit).unwrap();
    assert_eq!(m.leaderboard(&"k".into()).unwrap().standings[0].score, 2.25);
}
