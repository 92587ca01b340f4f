//! The scenario harness: a line language for scoring inputs, events and leaderboards, and
//! [`check`], which runs a script on a fresh [`Scoreboard`] and compares what came out.
//!
//! # Inputs, one a line: `<at_ms> <input>`
//!
//! ```text
//! 0 kind K accuracy | log_loss [eps] | mae | custom NAME higher|lower   [skills=METHOD]
//! 0 post T K [truth=X] [deadline=MS]
//! 5 submit T WORKER ANSWER...      the answer is the rest of the line (it may hold spaces)
//! 9 reveal T TRUTH...
//! 9 tick
//! ```
//!
//! # Events, one a line: `<at_ms> <event>`
//!
//! ```text
//! 5 deferred T WORKER
//! 5 scored T WORKER SCORE          the score as Rust prints an f64: shortest round-trip form
//! 5 failed T WORKER REASON...
//! 9 closed T DEADLINE
//! 5 refused MESSAGE...             the input was refused (the Refused message)
//! ```
//!
//! # Boards, one standing a line: `RANK WORKER SCORE answers=N pending=N`
//!
//! The scorers registered: `halves` (the answer's number if the truth is `ok`, else 0; refuses
//! truths other than `ok`/`no` and answers that are not numbers) and `nan` (always NaN).
//!
//! After every input `check` verifies that a refusal left the snapshot as it was and emitted
//! nothing; at the end, that replaying the accepted inputs and restoring the JSON snapshot both
//! give the same state.

use crowdcore::score::{
    Event, Input, KindConfig, Leaderboard, Metric, NewTask, Scoreboard, Scorers, SkillMethod,
    Snapshot,
};
use crowdcore::{Timestamp, WorkerId};

/// The custom scorers every scenario has.
pub(crate) fn scorers() -> Scorers {
    struct Halves;
    impl crowdcore::score::Scorer for Halves {
        fn score(&self, answer: &str, truth: &str) -> Result<f64, String> {
            let x: f64 = answer.parse().map_err(|_| "not a number".to_owned())?;
            Ok(if truth == "ok" { x } else { 0.0 })
        }
        fn check_answer(&self, answer: &str) -> Result<(), String> {
            answer
                .parse::<f64>()
                .map(|_| ())
                .map_err(|_| format!("{answer:?} is not a number"))
        }
        fn check_truth(&self, truth: &str) -> Result<(), String> {
            match truth {
                "ok" | "no" => Ok(()),
                _ => Err(format!("{truth:?} is neither ok nor no")),
            }
        }
    }
    Scorers::new()
        .with("halves", Halves)
        .with("nan", |_: &str, _: &str| f64::NAN)
}

/// Parses one input line into its time and input.
pub(crate) fn parse(line: &str) -> (Timestamp, Input) {
    let words: Vec<&str> = line.split(' ').collect();
    let at = Timestamp::from_millis(
        words[0]
            .parse()
            .unwrap_or_else(|_| panic!("`{line}`: no time")),
    );
    let rest = |n: usize| words[n..].join(" ");
    let input = match words[1] {
        "kind" => {
            let mut skills = SkillMethod::default();
            let mut args: Vec<&str> = Vec::new();
            for w in &words[3..] {
                match w.strip_prefix("skills=") {
                    Some(m) => {
                        skills = serde_json::from_value(serde_json::Value::String(m.into()))
                            .unwrap_or_else(|_| panic!("`{line}`: unknown skill method"))
                    }
                    None => args.push(w),
                }
            }
            let metric = match args[..] {
                ["accuracy"] => Metric::Accuracy,
                ["log_loss"] => Metric::log_loss(),
                ["log_loss", eps] => Metric::LogLoss {
                    eps: eps.parse().expect("eps"),
                },
                ["mae"] => Metric::MeanAbsoluteError,
                ["custom", name, dir] => Metric::custom(name, dir == "higher"),
                _ => panic!("`{line}`: unknown metric"),
            };
            Input::DefineKind {
                kind: words[2].into(),
                config: KindConfig::new(metric).with_skills(skills),
            }
        }
        "post" => {
            let mut task = NewTask::new(words[2], words[3]);
            for w in &words[4..] {
                if let Some(t) = w.strip_prefix("truth=") {
                    task = task.truth(t);
                } else if let Some(d) = w.strip_prefix("deadline=") {
                    task = task.deadline(Timestamp::from_millis(d.parse().expect("deadline")));
                } else {
                    panic!("`{line}`: unknown post option {w}");
                }
            }
            Input::PostTask(task)
        }
        "submit" => Input::Submit {
            task: words[2].into(),
            participant: WorkerId::new(words[3]),
            answer: rest(4),
        },
        "reveal" => Input::RevealTruth {
            task: words[2].into(),
            truth: rest(3),
        },
        "tick" => Input::Tick,
        other => panic!("`{line}`: unknown input {other}"),
    };
    (at, input)
}

/// Renders an event as a line.
pub(crate) fn render(at: Timestamp, event: &Event) -> String {
    let at = at.as_millis();
    match event {
        Event::Deferred {
            task, participant, ..
        } => format!("{at} deferred {task} {participant}"),
        Event::Scored {
            task,
            participant,
            score,
            ..
        } => format!("{at} scored {task} {participant} {score}"),
        Event::ScoringFailed {
            task,
            participant,
            reason,
            ..
        } => format!("{at} failed {task} {participant} {reason}"),
        Event::Closed { task, deadline, .. } => {
            format!("{at} closed {task} {}", deadline.as_millis())
        }
        Event::Refused { reason, .. } => format!("{at} refused {reason}"),
    }
}

pub(crate) use crate::script::lines;

/// Runs `script` on a fresh machine and asserts that its events and refusals are exactly
/// `expected`. Returns the machine.
#[track_caller]
pub(crate) fn check(script: &str, expected: &str) -> Scoreboard {
    let mut m = Scoreboard::new(scorers());
    let mut accepted = Vec::new();
    let mut actual = Vec::new();
    for line in lines(script) {
        let (at, input) = parse(&line);
        let before = m.snapshot();
        match m.handle(at, input.clone()) {
            Ok(()) => {
                while let Some(e) = m.poll_event() {
                    actual.push(render(at, &e));
                }
                accepted.push((at, input));
            }
            Err(e) => {
                assert_eq!(
                    m.snapshot(),
                    before,
                    "`{line}` was refused but changed state"
                );
                assert_eq!(m.poll_event(), None, "`{line}` was refused but emitted");
                actual.push(format!("{} refused {e}", at.as_millis()));
            }
        }
    }
    assert_same(&lines(expected), &actual, "events");
    assert_replays(&m, &accepted);
    m
}

/// Replaying `accepted` and restoring the snapshot from JSON both give `m`'s state.
#[track_caller]
pub(crate) fn assert_replays(m: &Scoreboard, accepted: &[(Timestamp, Input)]) {
    let mut replayed = Scoreboard::new(scorers());
    for (at, input) in accepted {
        replayed
            .handle(*at, input.clone())
            .expect("an accepted input is accepted again");
    }
    assert_eq!(replayed.snapshot(), m.snapshot(), "replay differs");
    let json = serde_json::to_string(&m.snapshot()).unwrap();
    let back: Snapshot = serde_json::from_str(&json).unwrap();
    let restored = Scoreboard::restore(back, scorers()).unwrap();
    assert_eq!(restored.snapshot(), m.snapshot(), "restore differs");
    assert_eq!(restored.poll_timeout(), m.poll_timeout());
}

/// Renders a board, one standing a line.
pub(crate) fn board_lines(board: &Leaderboard) -> Vec<String> {
    board
        .standings
        .iter()
        .map(|s| {
            format!(
                "{} {} {} answers={} pending={}",
                s.rank, s.participant, s.score, s.answers, s.pending
            )
        })
        .collect()
}

/// Asserts that `board` is exactly `expected`.
#[track_caller]
pub(crate) fn check_board(board: &Leaderboard, expected: &str) {
    assert_same(&lines(expected), &board_lines(board), "board");
}

#[track_caller]
fn assert_same(expected: &[String], actual: &[String], what: &str) {
    if expected != actual {
        panic!(
            "{what} differ\nexpected:\n{}\nactual, to paste:\n{}\n",
            expected
                .iter()
                .map(|l| format!("        {l}"))
                .collect::<Vec<_>>()
                .join("\n"),
            actual
                .iter()
                .map(|l| format!("        {l}"))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}
