//! The scenario harness: a tiny line language for inputs and effects, and [`check`], which
//! drives a [`Pavilion`] through the inputs and compares every effect it produced.
//!
//! # Config
//!
//! `key=value` pairs separated by spaces, over [`PavilionConfig::default`] (1..3 active,
//! 1..2 waiting, start `auto`, 30 s heartbeat timeout, slots re-open, no budget, no pay). Keys
//! are the replay config keys; values are JSON, or a bare word for a string:
//! `"max_active=2 max_waiting=1 start=manual returned_slots_reopen=false budget_cents=300"`,
//! `start={"present":3}`.
//!
//! # Inputs, one a line: `<at_ms> <input>`
//!
//! ```text
//! 0 start | 0 stop | 0 expire | 0 tick
//! 0 expire_hit H1             close one HIT
//! 0 migrate 2
//! 0 targets <min_active> <max_active> <min_waiting> <max_waiting>
//! 0 posted H1 3 [#1]          hire_posted: HIT H1 opened 3 slots (for hire effect #1)
//! 0 failed [#1] [reason...]   hire_failed
//! 0 arrive W1 A1 H1
//! 0 hb A1                     heartbeat
//! 0 submit A1 [contributions]
//! 0 return A1 | 0 abandon A1
//! timeout                     handle_timeout at poll_timeout() (which must be Some)
//! next_timeout 30010|none     asserts poll_timeout(); no input
//! ```
//!
//! # Effects, one a line: `<at_ms> #<seq> <effect>`
//!
//! ```text
//! 0 #1 hire 3
//! 0 #2 promote W1 A1
//! 0 #3 release W1 A1 job_stopped|targets_lowered
//! 0 #4 turn_away W1 A1 job_full|job_ended|over_budget
//! 0 #5 timed_out W1 A1
//! 0 #6 pay W1 A1 base|waiting_bonus|active_bonus|contribution_bonus <cents>
//! 0 #7 expire_hits H1 H2
//! 0 #8 notify task_began <present>
//! 0 #9 notify budget_exhausted <committed_cents> <budget_cents>
//! 0 #10 notify hire_failed <retry_at> <reason...>
//! 0 rejected <the Rejected message>     an input was refused (no id: refusals emit nothing)
//! ```
//!
//! `#<seq>` is the effect id `s/<seq>` (the session is always `s`). Blank lines and lines
//! starting with `//` are skipped in both lists.
//!
//! Every input goes through `crowdcore::testkit::PavilionChecker`, the one checker of the
//! machine's invariants the property test and the fuzzer use too: after each input it drains
//! the effects and checks [`Pavilion::check_invariants`], the state's invariants (seats,
//! targets, budget, deadlines), a restored twin's decision, and, for a refused input, that
//! [`Pavilion::snapshot`] is exactly as before and nothing was emitted; at the end the
//! accepted inputs replay to the same effects and state.

use crate::script::{diff, lines, number, tag};
use std::fmt::Write as _;

use crowdcore::pavilion::{Effect, EffectKind, Input, Notice, Pavilion, PavilionConfig, Targets};
use crowdcore::testkit::PavilionChecker;
use crowdcore::{AssignmentId, EffectId, HitId, SessionId, Timestamp, WorkerId};

/// The session every scenario runs in; effect ids are `s/<seq>`.
pub(crate) const SESSION: &str = "s";

/// Builds a config from `key=value` pairs over [`PavilionConfig::default`].
pub(crate) fn config(spec: &str) -> PavilionConfig {
    let mut value = serde_json::to_value(PavilionConfig::default()).expect("config serializes");
    for pair in spec.split_whitespace() {
        let (key, raw) = pair
            .split_once('=')
            .unwrap_or_else(|| panic!("config item {pair:?} is not key=value"));
        let parsed =
            serde_json::from_str(raw).unwrap_or_else(|_| serde_json::Value::String(raw.to_owned()));
        value[key] = parsed;
    }
    serde_json::from_value(value).unwrap_or_else(|e| panic!("config {spec:?}: {e}"))
}

/// A new machine for the session [`SESSION`].
pub(crate) fn machine(spec: &str) -> Pavilion {
    Pavilion::new(SessionId::new(SESSION), config(spec))
        .unwrap_or_else(|e| panic!("config {spec:?} is invalid: {e}"))
}

/// Runs `events` on a fresh machine configured by `config` and asserts that the effects (and
/// refusals) are exactly `expected`. Returns the machine for further assertions.
#[track_caller]
pub(crate) fn check(config: &str, events: &str, expected: &str) -> Pavilion {
    check_from(config, "", events, expected)
}

/// Like [`check`], but first runs `given` (whose effects are drained and not compared; none
/// of its inputs may be refused), so a case can state only the behaviour it is about.
#[track_caller]
pub(crate) fn check_from(config: &str, given: &str, events: &str, expected: &str) -> Pavilion {
    let mut m = machine(config);
    let mut checker = PavilionChecker::new(&m);
    let setup = run(&mut m, &mut checker, given);
    if let Some(refused) = setup.iter().find(|l| l.contains(" rejected ")) {
        panic!(
            "a `given` input was refused: {refused}\ngiven:\n{}",
            lines(given).join("\n")
        );
    }
    let actual = run(&mut m, &mut checker, events);
    let expected = lines(expected);
    if actual != expected {
        panic!(
            "effects differ (- expected, + actual)\n{}\nactual, to paste:\n{}\n",
            diff(&expected, &actual),
            actual
                .iter()
                .map(|l| format!("        {l}"))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    checker.check_replay(&m);
    m
}

/// Feeds every line of `events` to `m` through `checker` (which checks every invariant after
/// each input) and returns what came out, rendered.
#[track_caller]
fn run(m: &mut Pavilion, checker: &mut PavilionChecker, events: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in lines(events) {
        let words: Vec<&str> = line.split(' ').collect();
        match words[0] {
            "timeout" => {
                assert_eq!(words.len(), 1, "`timeout` takes no arguments: {line}");
                let at = m
                    .poll_timeout()
                    .unwrap_or_else(|| panic!("`{line}`: poll_timeout() is None"));
                let effects = checker.handle_timeout(m, at);
                out.extend(effects.iter().map(render));
            }
            "next_timeout" => {
                let want = match words.get(1) {
                    Some(&"none") => None,
                    Some(t) => Some(Timestamp::from_millis(number(t, &line))),
                    None => panic!("`{line}`: next_timeout <ms>|none"),
                };
                assert_eq!(m.poll_timeout(), want, "poll_timeout() after `{line}`");
            }
            t => {
                let at = Timestamp::from_millis(number(t, &line));
                let input = parse_input(&words[1..], &line);
                match checker.handle(m, at, input) {
                    Ok(effects) => out.extend(effects.iter().map(render)),
                    Err(rejected) => out.push(format!("{t} rejected {rejected}")),
                }
            }
        }
    }
    out
}

fn hire_id(word: &str, line: &str) -> EffectId {
    let id = word
        .strip_prefix('#')
        .unwrap_or_else(|| panic!("`{line}`: {word:?} is not an effect id #<seq>"));
    match id.parse::<u64>() {
        Ok(seq) => EffectId::new(SessionId::new(SESSION), seq),
        Err(_) => id
            .parse()
            .unwrap_or_else(|e| panic!("`{line}`: bad effect id: {e}")),
    }
}

#[track_caller]
fn parse_input(words: &[&str], line: &str) -> Input {
    let a = |i: usize| AssignmentId::new(words[i]);
    let n = |i: usize| number(words[i], line);
    let arity = |k: usize| {
        assert_eq!(
            words.len(),
            k + 1,
            "`{line}`: {} takes {k} arguments",
            words[0]
        );
    };
    let bare = |input: Input| {
        arity(0);
        input
    };
    match words.first().copied() {
        Some("start") => bare(Input::Start),
        Some("stop") => bare(Input::Stop),
        Some("expire") => bare(Input::Expire),
        Some("tick") => bare(Input::Tick),
        Some("expire_hit") => {
            arity(1);
            Input::ExpireHit {
                hit: HitId::new(words[1]),
            }
        }
        Some("migrate") => {
            arity(1);
            Input::Migrate { count: n(1) as u32 }
        }
        Some("targets") => {
            arity(4);
            Input::SetTargets(Targets {
                min_active: n(1) as u32,
                max_active: n(2) as u32,
                min_waiting: n(3) as u32,
                max_waiting: n(4) as u32,
            })
        }
        Some("posted") => {
            assert!(
                matches!(words.len(), 3 | 4),
                "`{line}`: posted H <slots> [#id]"
            );
            Input::HirePosted {
                hire: words.get(3).map(|w| hire_id(w, line)),
                hit: HitId::new(words[1]),
                slots: n(2) as u32,
            }
        }
        Some("failed") => {
            let (hire, reason) = match words.get(1) {
                Some(w) if w.starts_with('#') => (Some(hire_id(w, line)), &words[2..]),
                _ => (None, &words[1..]),
            };
            Input::HireFailed {
                hire,
                reason: reason.join(" "),
            }
        }
        Some("arrive") => {
            arity(3);
            Input::Arrive {
                worker: WorkerId::new(words[1]),
                assignment: a(2),
                hit: HitId::new(words[3]),
            }
        }
        Some("hb") => {
            arity(1);
            Input::Heartbeat { assignment: a(1) }
        }
        Some("submit") => {
            assert!(matches!(words.len(), 2 | 3), "`{line}`: submit A [n]");
            Input::Submit {
                assignment: a(1),
                contributions: if words.len() == 3 { n(2) as u32 } else { 0 },
            }
        }
        Some("contributed") => {
            arity(2);
            Input::Contributed {
                assignment: a(1),
                count: n(2) as u32,
            }
        }
        Some("return") => {
            arity(1);
            Input::Return { assignment: a(1) }
        }
        Some("abandon") => {
            arity(1);
            Input::Abandon { assignment: a(1) }
        }
        _ => panic!("`{line}`: unknown input"),
    }
}

/// One effect as a line of the effect language.
pub(crate) fn render(effect: &Effect) -> String {
    assert_eq!(
        effect.id.session.as_str(),
        SESSION,
        "effect {} is not of the session",
        effect.id
    );
    let mut s = format!("{} #{} ", effect.at.as_millis(), effect.id.seq);
    let _ = match &effect.kind {
        EffectKind::Hire { count } => write!(s, "hire {count}"),
        EffectKind::Promote { worker, assignment } => write!(s, "promote {worker} {assignment}"),
        EffectKind::Release {
            worker,
            assignment,
            reason,
        } => write!(s, "release {worker} {assignment} {}", tag(reason)),
        EffectKind::TurnAway {
            worker,
            assignment,
            reason,
        } => write!(s, "turn_away {worker} {assignment} {}", tag(reason)),
        EffectKind::TimedOut { worker, assignment } => {
            write!(s, "timed_out {worker} {assignment}")
        }
        EffectKind::Pay {
            worker,
            assignment,
            kind,
            amount,
        } => write!(
            s,
            "pay {worker} {assignment} {} {}",
            tag(kind),
            amount.minor
        ),
        EffectKind::ExpireHits { hits } => {
            let hits: Vec<&str> = hits.iter().map(HitId::as_str).collect();
            write!(s, "expire_hits {}", hits.join(" "))
        }
        EffectKind::Notify { notice } => match notice {
            Notice::TaskBegan { present } => write!(s, "notify task_began {present}"),
            Notice::BudgetExhausted {
                committed_cents,
                budget_cents,
            } => write!(
                s,
                "notify budget_exhausted {committed_cents} {budget_cents}"
            ),
            Notice::HireFailed { reason, retry_at } => {
                write!(s, "notify hire_failed {} {reason}", retry_at.as_millis())
            }
        },
    };
    s.trim_end().to_owned()
}

/// Two active seats and one waiting seat (3 in all); the task begins at 2 present.
pub(crate) const SMALL: &str = "min_active=1 max_active=2 min_waiting=1 max_waiting=1";

/// [`SMALL`] started and full: W1 and W2 active, W3 waiting, no slot open, no hire in flight.
/// Its effects are `#1 hire 3`, `#2 notify task_began 2`, `#3 promote W1`, `#4 promote W2`
/// (see `start::a_full_house`), so a case's first effect is `#5`.
pub(crate) const FULL: &str = "
    0 start
    1 posted H1 3
    2 arrive W1 A1 H1
    3 arrive W2 A2 H1
    4 arrive W3 A3 H1
";
