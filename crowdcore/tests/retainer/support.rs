//! The scenario harness: a tiny line language for the retainer's inputs and effects, and
//! [`check`], which drives a [`Retainer`] through the inputs and compares every effect.
//!
//! # Config
//!
//! `key=value` pairs separated by spaces, over [`RetainerConfig::default`] (pool = unmet need,
//! 30 s heartbeat timeout, slots re-open, no refresh, no precruitment, no bonuses). Values are
//! JSON, or a bare word for a string: `"precruit_ms=5000 refresh_after_ms=200000"`,
//! `pool={"fixed":3}`.
//!
//! # Inputs, one a line: `<at_ms> <input>`
//!
//! ```text
//! 0 template T [reward=<cents>] [pool=unmet|<n>] [budget=<cents>]   register_template
//! 0 make R1 T <needed> <start_at_ms> <task> [<payload json>]         make_reservation
//! 0 invoke R1 | cancel R1 | finish R1 | unfinish R1 | finish_all [T]
//! 0 posted T#3 H1 2           hire_posted: HIT H1 opened 2 slots for T's hire effect #3
//! 0 failed T#3 [reason...]    hire_failed
//! 0 arrive W1 A1 H1
//! 0 ping A1 [waiting|working] | poll A1
//! 0 submit A1 [contributions] | return A1 | abandon A1
//! 0 tick
//! timeout                     handle_timeout at poll_timeout() (which must be Some)
//! next_timeout 30010|none     asserts poll_timeout()
//! task A1 F1|none             asserts task_for(A1) (the foreign id, or not routed)
//! targets T 2 1               asserts T's pool targets: max_active max_waiting
//! state R1 invoked [2 1 0]    asserts R1's state [and its working submitted dropped]
//! ```
//!
//! # Effects, one a line: `<at_ms> <id> <effect>`
//!
//! ```text
//! 0 T#2 hire 2                         a pool effect (the Pavilion vocabulary: hire, pay,
//! 0 T#5 pay W1 A1 base 50              release, turn_away, timed_out, expire_hits, notify)
//! 0 T#6 route W1 A1 R1 F1 [payload]    a route (the pool's promotion id)
//! 0 #1 notify_workers R1 precruit W1/A1 W2/A2   a retainer effect
//! 0 rejected <the Rejected message>    an input was refused
//! ```
//!
//! `T#<seq>` is the pool effect id `s/T/<seq>`, `#<seq>` the retainer's `s/<seq>`.
//! Blank lines and lines starting with `//` are skipped.
//!
//! After every accepted input `check` drains the effects, checks
//! [`Retainer::check_invariants`], and checks that a twin restored from the snapshot before
//! the input (through JSON) decides the same and yields the same effects and state. After a
//! refused input the snapshot must be exactly as before and nothing emitted. At the end, the
//! accepted inputs replayed on a fresh retainer give the same effects and snapshot.

use crate::script::{diff, lines, number, tag};
use std::fmt::Write as _;

use crowdcore::model::{Currency, HitSpec, Money};
use crowdcore::pavilion::{EffectKind as PoolKind, Notice};
use crowdcore::retainer::{
    Effect, EffectKind, Input, PingKind, PoolTarget, Retainer, RetainerConfig, Snapshot,
};
use crowdcore::{
    AssignmentId, EffectId, HitId, ReservationId, SessionId, TemplateId, Timestamp, WorkerId,
};

/// The session every scenario runs in.
pub(crate) const SESSION: &str = "s";

/// Builds a config from `key=value` pairs over [`RetainerConfig::default`].
pub(crate) fn config(spec: &str) -> RetainerConfig {
    let mut value = serde_json::to_value(RetainerConfig::default()).expect("config serializes");
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

/// The HIT spec every scenario template posts, with a reward in cents.
pub(crate) fn spec(reward_cents: i64) -> HitSpec {
    HitSpec {
        title: "Stand by for a real-time task".into(),
        description: "Wait on this page; when work arrives you are sent to it.".into(),
        keywords: vec!["real-time".into()],
        reward: Money::new(reward_cents, Currency::USD),
        assignment_duration_ms: 3_600_000,
        lifetime_ms: 86_400_000,
        max_assignments: 100,
        auto_approval_delay_ms: 86_400_000,
        qualifications: Vec::new(),
        landing_url: "https://example.invalid/retainer".into(),
        frame_height: 600,
    }
}

/// A new retainer for the session [`SESSION`].
pub(crate) fn machine(spec: &str) -> Retainer {
    Retainer::new(SessionId::new(SESSION), config(spec))
        .unwrap_or_else(|e| panic!("config {spec:?} is invalid: {e}"))
}

/// Runs `events` on a fresh retainer configured by `config` and asserts that the effects (and
/// refusals) are exactly `expected`. Returns the retainer for further assertions.
#[track_caller]
pub(crate) fn check(config: &str, events: &str, expected: &str) -> Retainer {
    check_from(config, "", events, expected)
}

/// Like [`check`], but first runs `given` (whose effects are drained and not compared; none
/// of its inputs may be refused), so a case can state only the behaviour it is about.
#[track_caller]
pub(crate) fn check_from(config: &str, given: &str, events: &str, expected: &str) -> Retainer {
    let mut h = Harness {
        m: machine(config),
        config: config.to_owned(),
        log: Vec::new(),
        effects: Vec::new(),
    };
    let setup = h.run(given);
    if let Some(refused) = setup.iter().find(|l| l.contains(" rejected ")) {
        panic!(
            "a `given` input was refused: {refused}\ngiven:\n{}",
            lines(given).join("\n")
        );
    }
    let actual = h.run(events);
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
    h.replay_check();
    h.m
}

struct Harness {
    m: Retainer,
    config: String,
    /// Accepted inputs (a timeout as a tick at its time).
    log: Vec<(Timestamp, Input)>,
    /// Every effect, in order.
    effects: Vec<Effect>,
}

/// Through JSON and back, as a store would keep it.
fn restored(snapshot: &Snapshot) -> Retainer {
    let json = serde_json::to_string(snapshot).expect("a snapshot serializes");
    let back: Snapshot = serde_json::from_str(&json).expect("a snapshot deserializes");
    assert_eq!(&back, snapshot, "snapshot JSON round trip");
    Retainer::restore(back).expect("a snapshot restores")
}

fn drain(m: &mut Retainer) -> Vec<Effect> {
    std::iter::from_fn(|| m.poll_effect()).collect()
}

impl Harness {
    /// Feeds every line of `events` and returns what came out, rendered.
    #[track_caller]
    fn run(&mut self, events: &str) -> Vec<String> {
        let mut out = Vec::new();
        for line in lines(events) {
            let words: Vec<&str> = line.split(' ').collect();
            match words[0] {
                "timeout" => {
                    assert_eq!(words.len(), 1, "`timeout` takes no arguments: {line}");
                    let at = self
                        .m
                        .poll_timeout()
                        .unwrap_or_else(|| panic!("`{line}`: poll_timeout() is None"));
                    let at = at.max(self.m.now());
                    self.apply(at, Input::Tick, &line, &mut out);
                }
                "next_timeout" => {
                    let want = match words.get(1) {
                        Some(&"none") => None,
                        Some(t) => Some(Timestamp::from_millis(number(t, &line))),
                        None => panic!("`{line}`: next_timeout <ms>|none"),
                    };
                    assert_eq!(self.m.poll_timeout(), want, "poll_timeout() after `{line}`");
                }
                "task" => {
                    assert_eq!(words.len(), 3, "`{line}`: task A F|none");
                    let got = self
                        .m
                        .task_for(&AssignmentId::new(words[1]))
                        .unwrap_or_else(|e| panic!("`{line}`: {e}"))
                        .map(|t| t.task);
                    let want = (words[2] != "none").then(|| words[2].to_owned());
                    assert_eq!(got, want, "`{line}`");
                }
                "targets" => {
                    assert_eq!(
                        words.len(),
                        4,
                        "`{line}`: targets T <max_active> <max_waiting>"
                    );
                    let pool = self
                        .m
                        .pool(&TemplateId::new(words[1]))
                        .unwrap_or_else(|| panic!("`{line}`: no template"));
                    let t = pool.config().targets();
                    let want = (
                        number(words[2], &line) as u32,
                        number(words[3], &line) as u32,
                    );
                    assert_eq!((t.max_active, t.max_waiting), want, "`{line}`");
                }
                "state" => {
                    assert!(
                        matches!(words.len(), 3 | 6),
                        "`{line}`: state R <state> [w s d]"
                    );
                    let r = self
                        .m
                        .reservation(&ReservationId::new(words[1]))
                        .unwrap_or_else(|| panic!("`{line}`: no reservation"));
                    assert_eq!(tag(&r.state), words[2], "`{line}`");
                    if words.len() == 6 {
                        let want: Vec<u32> =
                            words[3..].iter().map(|w| number(w, &line) as u32).collect();
                        assert_eq!(vec![r.working, r.submitted, r.dropped], want, "`{line}`");
                    }
                }
                t => {
                    let at = Timestamp::from_millis(number(t, &line));
                    let input = parse_input(&words[1..], &line);
                    self.apply(at, input, &line, &mut out);
                }
            }
        }
        out
    }

    #[track_caller]
    fn apply(&mut self, at: Timestamp, input: Input, line: &str, out: &mut Vec<String>) {
        let before = self.m.snapshot();
        let mut twin = restored(&before);
        let result = self.m.handle(at, input.clone());
        let twin_result = twin.handle(at, input.clone());
        assert_eq!(
            result, twin_result,
            "`{line}`: a restored twin decided otherwise"
        );
        match result {
            Ok(()) => {
                self.log.push((at, input));
                let effects = drain(&mut self.m);
                assert_eq!(
                    drain(&mut twin),
                    effects,
                    "`{line}`: a restored twin's effects"
                );
                assert_eq!(
                    twin.snapshot(),
                    self.m.snapshot(),
                    "`{line}`: a restored twin"
                );
                if let Err(broken) = self.m.check_invariants() {
                    panic!("after `{line}`: invariant broken: {broken}");
                }
                for e in &effects {
                    assert_eq!(e.at, at, "`{line}`: an effect carries its input's time");
                    out.push(render(e));
                }
                self.effects.extend(effects);
            }
            Err(rejected) => {
                assert_eq!(
                    self.m.snapshot(),
                    before,
                    "`{line}` was refused ({rejected}) but changed the state"
                );
                assert_eq!(
                    self.m.poll_effect(),
                    None,
                    "`{line}` was refused yet emitted"
                );
                out.push(format!("{} rejected {rejected}", at.as_millis()));
            }
        }
    }

    /// Replaying the accepted inputs on a fresh retainer gives the same effects and state.
    fn replay_check(&self) {
        let mut fresh = machine(&self.config);
        let mut effects = Vec::new();
        for (at, input) in &self.log {
            fresh
                .handle(*at, input.clone())
                .unwrap_or_else(|e| panic!("replay refused {input:?}: {e}"));
            effects.extend(drain(&mut fresh));
        }
        assert_eq!(
            effects, self.effects,
            "replaying the log gives other effects"
        );
        assert_eq!(
            fresh.snapshot(),
            self.m.snapshot(),
            "replay gives another state"
        );
    }
}

/// `T#3` → `s/T/3`.
fn hire_id(word: &str, line: &str) -> EffectId {
    let (template, seq) = word
        .split_once('#')
        .unwrap_or_else(|| panic!("`{line}`: {word:?} is not a hire id T#<seq>"));
    EffectId::new(
        SessionId::new(format!("{SESSION}/{template}")),
        number(seq, line),
    )
}

#[track_caller]
fn parse_input(words: &[&str], line: &str) -> Input {
    let a = |i: usize| AssignmentId::new(words[i]);
    let r = |i: usize| ReservationId::new(words[i]);
    let arity = |k: usize| {
        assert_eq!(
            words.len(),
            k + 1,
            "`{line}`: {} takes {k} arguments",
            words[0]
        );
    };
    match words.first().copied() {
        Some("tick") => {
            arity(0);
            Input::Tick
        }
        Some("template") => {
            let (mut reward, mut pool, mut budget) = (50, None, None);
            for w in &words[2..] {
                let (k, v) = w
                    .split_once('=')
                    .unwrap_or_else(|| panic!("`{line}`: {w:?} is not key=value"));
                match k {
                    "reward" => reward = number(v, line) as i64,
                    "budget" => budget = Some(number(v, line) as i64),
                    "pool" if v == "unmet" => pool = Some(PoolTarget::UnmetNeed),
                    "pool" => pool = Some(PoolTarget::Fixed(number(v, line) as u32)),
                    _ => panic!("`{line}`: unknown template option {k}"),
                }
            }
            Input::RegisterTemplate {
                template: TemplateId::new(words[1]),
                spec: spec(reward),
                pool,
                budget_cents: budget,
            }
        }
        Some("make") => {
            assert!(
                words.len() >= 6,
                "`{line}`: make R T <needed> <start_at> <task> [json]"
            );
            let payload = if words.len() > 6 {
                serde_json::from_str(&words[6..].join(" "))
                    .unwrap_or_else(|e| panic!("`{line}`: bad payload: {e}"))
            } else {
                serde_json::Value::Null
            };
            Input::MakeReservation {
                reservation: r(1),
                template: TemplateId::new(words[2]),
                needed: number(words[3], line) as u32,
                start_at: Timestamp::from_millis(number(words[4], line)),
                foreign_id: words[5].to_owned(),
                payload,
            }
        }
        Some("invoke") => {
            arity(1);
            Input::Invoke { reservation: r(1) }
        }
        Some("cancel") => {
            arity(1);
            Input::Cancel { reservation: r(1) }
        }
        Some("finish") => {
            arity(1);
            Input::Finish { reservation: r(1) }
        }
        Some("unfinish") => {
            arity(1);
            Input::Unfinish { reservation: r(1) }
        }
        Some("finish_all") => {
            assert!(words.len() <= 2, "`{line}`: finish_all [T]");
            Input::FinishAll {
                template: words.get(1).map(|t| TemplateId::new(*t)),
            }
        }
        Some("posted") => {
            arity(3);
            Input::HirePosted {
                hire: hire_id(words[1], line),
                hit: HitId::new(words[2]),
                slots: number(words[3], line) as u32,
            }
        }
        Some("failed") => {
            assert!(words.len() >= 2, "`{line}`: failed T#<seq> [reason]");
            Input::HireFailed {
                hire: hire_id(words[1], line),
                reason: words[2..].join(" "),
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
        Some("ping") => {
            assert!(
                matches!(words.len(), 2 | 3),
                "`{line}`: ping A [waiting|working]"
            );
            let kind = match words.get(2).copied() {
                None | Some("waiting") => PingKind::Waiting,
                Some("working") => PingKind::Working,
                Some(other) => panic!("`{line}`: ping kind {other}"),
            };
            Input::Ping {
                assignment: a(1),
                kind,
            }
        }
        Some("poll") => {
            arity(1);
            Input::Poll { assignment: a(1) }
        }
        Some("submit") => {
            assert!(matches!(words.len(), 2 | 3), "`{line}`: submit A [n]");
            Input::Submit {
                assignment: a(1),
                contributions: words.get(2).map_or(0, |w| number(w, line) as u32),
            }
        }
        Some("contributed") => {
            arity(2);
            Input::Contributed {
                assignment: a(1),
                count: number(words[2], line) as u32,
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

/// `s/T/3` → `T#3`, `s/3` → `#3`.
fn render_id(id: &EffectId) -> String {
    let session = id.session.as_str();
    if session == SESSION {
        format!("#{}", id.seq)
    } else {
        let template = session
            .strip_prefix(&format!("{SESSION}/"))
            .unwrap_or_else(|| panic!("effect {id} is not of the session"));
        format!("{template}#{}", id.seq)
    }
}

/// One effect as a line of the effect language.
pub(crate) fn render(effect: &Effect) -> String {
    let mut s = format!("{} {} ", effect.at.as_millis(), render_id(&effect.id));
    let _ = match &effect.kind {
        EffectKind::Pool { effect, .. } => write!(s, "{}", render_pool(effect)),
        EffectKind::Route {
            reservation,
            worker,
            assignment,
            task,
            payload,
            ..
        } => {
            let _ = write!(s, "route {worker} {assignment} {reservation} {task}");
            if payload.is_null() {
                Ok(())
            } else {
                write!(s, " {payload}")
            }
        }
        EffectKind::NotifyWorkers {
            reservation,
            reason,
            workers,
            ..
        } => {
            let workers: Vec<String> = workers
                .iter()
                .map(|w| format!("{}/{}", w.worker, w.assignment))
                .collect();
            write!(
                s,
                "notify_workers {reservation} {} {}",
                tag(reason),
                workers.join(" ")
            )
        }
    };
    s.trim_end().to_owned()
}

fn render_pool(kind: &PoolKind) -> String {
    match kind {
        PoolKind::Hire { count } => format!("hire {count}"),
        PoolKind::Promote { worker, assignment } => format!("promote {worker} {assignment}"),
        PoolKind::Release {
            worker,
            assignment,
            reason,
        } => format!("release {worker} {assignment} {}", tag(reason)),
        PoolKind::TurnAway {
            worker,
            assignment,
            reason,
        } => format!("turn_away {worker} {assignment} {}", tag(reason)),
        PoolKind::TimedOut { worker, assignment } => format!("timed_out {worker} {assignment}"),
        PoolKind::Pay {
            worker,
            assignment,
            kind,
            amount,
        } => format!("pay {worker} {assignment} {} {}", tag(kind), amount.minor),
        PoolKind::ExpireHits { hits } => {
            let hits: Vec<&str> = hits.iter().map(HitId::as_str).collect();
            format!("expire_hits {}", hits.join(" "))
        }
        PoolKind::Notify { notice } => match notice {
            Notice::TaskBegan { present } => format!("notify task_began {present}"),
            Notice::BudgetExhausted {
                committed_cents,
                budget_cents,
            } => format!("notify budget_exhausted {committed_cents} {budget_cents}"),
            Notice::HireFailed { reason, retry_at } => {
                format!("notify hire_failed {} {reason}", retry_at.as_millis())
            }
        },
    }
}

/// One template T (reward 50) and reservation R1 (needs 2, starts at 20 s, task F1), its two
/// workers W1 and W2 waiting in the pool through H1. The effects were `T#1 notify task_began
/// 0`, `T#2 hire 2`; the next pool effect is `T#3`.
pub(crate) const POOL_OF_TWO: &str = "
    0 template T
    0 make R1 T 2 20000 F1
    1 posted T#2 H1 2
    2 arrive W1 A1 H1
    3 arrive W2 A2 H1
";
