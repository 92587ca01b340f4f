//! Fuzzing crowdcore's Pavilion machine, as quinn-proto's `fuzz_targets` do: a derived
//! [`Arbitrary`] [`Op`] sequence over a tiny id space drives a [`Pavilion`], and [`run`] panics,
//! with a message, the moment an invariant breaks.
//!
//! Checked after every op:
//! - [`Pavilion::check_invariants`] is `Ok`;
//! - an assignment is in at most one queue and a worker holds at most one seat;
//! - active ≤ `max_active`; nobody waits while active has room once the task runs;
//! - `present + open slots + hires in flight` only grows to at most `max_active + max_waiting`;
//! - committed and spent money stay within the budget, and pay effects add up to what was spent;
//! - a contribution bonus pays at most the host's count, or (where the host counts nothing)
//!   the submission's, never beyond `max_contributions_per_assignment` — whatever a
//!   submission claims (up to `u32::MAX`);
//! - an assignment that left never comes back into a queue;
//! - a refused input leaves the state exactly as it was;
//! - effect ids number the session's effects 1, 2, 3, … and carry their input's time;
//! - `poll_timeout` is the earliest heartbeat deadline or the end of a hiring pause;
//! - a machine restored from [`Pavilion::snapshot`] (through JSON) and fed the same input
//!   decides the same, yields the same effects and ends in the same state, also when restored
//!   with effects still pending.
//!
//! At the end, replaying the log of accepted inputs on a fresh machine must give the same
//! effects and the same snapshot.
//!
//! Two drivers use [`run`]: the time-boxed `arbtest` test in `tests/` (stable Rust) and the
//! libFuzzer target in `fuzz_targets/` (feature `libfuzzer`). See the crate README.

use arbitrary::Arbitrary;
use crowdcore::pavilion::{Input, Pavilion, PavilionConfig, StartCondition, Targets};
use crowdcore::testkit::PavilionChecker;
use crowdcore::{AssignmentId, EffectId, HitId, SessionId, Timestamp, WorkerId};

/// Workers in play: few, so that one worker tries for two seats.
pub const WORKERS: u8 = 4;
/// Assignments in play: few, so that reloads and events for departed assignments are common.
pub const ASSIGNMENTS: u8 = 16;
/// HITs in play.
pub const HITS: u8 = 3;

/// The most ops one case runs (every op also restores a twin machine through JSON).
pub const MAX_OPS: usize = 200;

/// One fuzz case: a configuration and the ops to run against it.
#[derive(Debug, Clone)]
pub struct Case {
    /// The configuration.
    pub knobs: Knobs,
    /// What happens, in order.
    pub ops: Vec<Op>,
}

/// The knobs, then ops until the bytes run out (at most [`MAX_OPS`]). A derived `Vec` would
/// spend a "one more?" byte per element, which makes random inputs (arbtest) very short.
impl<'a> Arbitrary<'a> for Case {
    fn arbitrary(u: &mut arbitrary::Unstructured<'a>) -> arbitrary::Result<Self> {
        let knobs = u.arbitrary()?;
        let mut ops = Vec::new();
        while !u.is_empty() && ops.len() < MAX_OPS {
            ops.push(u.arbitrary()?);
        }
        Ok(Self { knobs, ops })
    }
}

/// Configuration knobs, folded by [`Knobs::config`] into small ranges that make a valid
/// configuration (bad targets are tried through [`Admin::SetTargets`]).
#[derive(Debug, Clone, Copy, Arbitrary)]
pub struct Knobs {
    /// Folded to `0..=max_active`.
    pub min_active: u8,
    /// Folded to `1..=3`.
    pub max_active: u8,
    /// Folded to `0..=max_waiting`.
    pub min_waiting: u8,
    /// Folded to `0..=3`.
    pub max_waiting: u8,
    /// When the task begins.
    pub start: Start,
    /// Heartbeat timeout: 1 s, 5 s or 30 s.
    pub timeout: u8,
    /// Whether returned slots re-open.
    pub reopen: bool,
    /// Whether [`run`] starts the session before the ops (else an [`Admin::Start`] must).
    pub started: bool,
    /// Hire retry pause: 1 s or 60 s.
    pub retry: bool,
    /// Budget in cents, folded to `0..1000`; `None` for no cap.
    pub budget: Option<u16>,
    /// Base pay, folded to `0..20`.
    pub base: u8,
    /// Waiting bonus per minute, folded to `0..30`.
    pub waiting_rate: u8,
    /// Active bonus per minute, folded to `0..30`.
    pub active_rate: u8,
    /// Bonus per contribution, folded to `0..10`.
    pub per_contribution: u8,
    /// Who counts contributions, and the cap.
    pub contributions: Counting,
}

/// Who counts contributions ([`PavilionConfig::contributions_from_host`]) and the cap
/// ([`PavilionConfig::max_contributions_per_assignment`]).
#[derive(Debug, Clone, Copy, Arbitrary)]
pub enum Counting {
    /// Submissions report them (and the host may count some): capped, folded to `0..20`.
    Reported(u8),
    /// Only the host counts; capped (folded to `0..20`) or not.
    Host(Option<u8>),
}

/// The start condition.
#[derive(Debug, Clone, Copy, Arbitrary)]
pub enum Start {
    /// `min_active + min_waiting` present.
    Auto,
    /// This many present, folded to `0..=max_active + max_waiting`.
    Present(u8),
    /// Only by migrating.
    Manual,
}

impl Knobs {
    /// The machine configuration these knobs stand for.
    pub fn config(&self) -> PavilionConfig {
        let max_active = 1 + self.max_active % 3;
        let max_waiting = self.max_waiting % 4;
        PavilionConfig {
            min_active: u32::from(self.min_active % (max_active + 1)),
            max_active: u32::from(max_active),
            min_waiting: u32::from(self.min_waiting % (max_waiting + 1)),
            max_waiting: u32::from(max_waiting),
            start: match self.start {
                Start::Auto => StartCondition::Auto,
                Start::Present(n) => {
                    StartCondition::Present(u32::from(n % (max_active + max_waiting + 1)))
                }
                Start::Manual => StartCondition::Manual,
            },
            heartbeat_timeout_ms: [1_000, 5_000, 30_000][usize::from(self.timeout % 3)],
            returned_slots_reopen: self.reopen,
            hire_retry_ms: if self.retry { 1_000 } else { 60_000 },
            budget_cents: self.budget.map(|b| i64::from(b % 1_000)),
            base_pay_cents: i64::from(self.base % 20),
            waiting_cents_per_minute: i64::from(self.waiting_rate % 30),
            active_cents_per_minute: i64::from(self.active_rate % 30),
            per_contribution_cents: i64::from(self.per_contribution % 10),
            max_contributions_per_assignment: match self.contributions {
                Counting::Reported(cap) => Some(u32::from(cap % 20)),
                Counting::Host(cap) => cap.map(|c| u32::from(c % 20)),
            },
            contributions_from_host: matches!(self.contributions, Counting::Host(_)),
            ..PavilionConfig::default()
        }
    }
}

/// Which hire a hire result answers.
#[derive(Debug, Clone, Copy, Arbitrary)]
pub enum HireRef {
    /// No id: the oldest in flight.
    Oldest,
    /// The n-th hire in flight as the driver saw them; an id never issued if out of range.
    Nth(u8),
    /// An id from another session.
    Foreign,
}

/// An operator command. The ones that end the session (stop, expire) act only when their
/// `go` byte is below 32, so that most cases run a while before the end.
#[derive(Debug, Clone, Copy, Arbitrary)]
pub enum Admin {
    /// The operator starts.
    Start,
    /// The operator stops the job (if `go < 32`).
    Stop {
        /// Acts only below 32.
        go: u8,
    },
    /// The operator expires the HITs (if `go < 32`).
    Expire {
        /// Acts only below 32.
        go: u8,
    },
    /// The operator migrates, count folded to `0..8`.
    Migrate(u8),
    /// The operator sets targets (each folded to `0..=3`; may be invalid).
    SetTargets([u8; 4]),
    /// The operator closes one HIT: a posted one (`hit` picks which) if there is one.
    ExpireHit(u8),
}

/// How a worker leaves, in [`Op::Leave`].
#[derive(Debug, Clone, Copy, Arbitrary)]
pub enum How {
    /// Submits.
    Submit,
    /// Returns the assignment.
    Return,
    /// The platform reports the assignment abandoned.
    Abandon,
}

/// One thing that happens. Ids are folded into the small id space ([`WORKERS`],
/// [`ASSIGNMENTS`], [`HITS`]).
#[derive(Debug, Clone, Copy, Arbitrary)]
pub enum Op {
    /// Time passes by this many milliseconds, folded to `0..4000` (no input).
    Wait(u16),
    /// Time passes by this many seconds (no input).
    WaitSeconds(u8),
    /// Every present worker's page sends a heartbeat.
    Pulse,
    /// A present worker (the `nth`, oldest first over waiting then active) leaves.
    Leave {
        /// Which present worker.
        nth: u8,
        /// How.
        how: How,
        /// Contributions if they submit, folded to `0..8`.
        contributions: u8,
    },
    /// A worker arrives (or reloads).
    Arrive {
        /// The worker.
        worker: u8,
        /// Their assignment.
        assignment: u8,
        /// The HIT.
        hit: u8,
    },
    /// The assignment's own worker arrives (or reloads): `A<n>` by `W<n mod 4>`, through
    /// a HIT the session posted (`hit` picks which) if there is one.
    ArriveOwn {
        /// The assignment.
        assignment: u8,
        /// The HIT.
        hit: u8,
    },
    /// A heartbeat.
    Heartbeat(u8),
    /// A submission with some contributions.
    Submit {
        /// The assignment.
        assignment: u8,
        /// Contributions, folded to `0..8`.
        contributions: u8,
    },
    /// A submission claiming this many contributions (unfolded: a page can claim anything).
    SubmitClaiming {
        /// The assignment.
        assignment: u8,
        /// What the page claims.
        claimed: u32,
    },
    /// The host counts contributions.
    Contributed {
        /// The assignment.
        assignment: u8,
        /// Units, unfolded.
        count: u32,
    },
    /// A return.
    Return(u8),
    /// An abandonment reported by the platform.
    Abandon(u8),
    /// A tick at the current time.
    Tick,
    /// `handle_timeout(poll_timeout())`, if there is a timeout.
    TickToTimeout,
    /// A hire was posted: `slots` = the hire's count plus `extra` (folded to `-3..=3`).
    HirePosted {
        /// Which hire.
        hire: HireRef,
        /// The HIT.
        hit: u8,
        /// Slots more (or fewer) than asked.
        extra: i8,
    },
    /// A hire failed.
    HireFailed(HireRef),
    /// An operator command.
    Admin(Admin),
    /// A tick one millisecond before the machine's time.
    ClockBack,
    /// Replace the machine by one restored from its snapshot.
    Restore,
}

fn session() -> SessionId {
    SessionId::new("fuzz")
}
fn worker(n: u8) -> WorkerId {
    WorkerId::new(format!("W{}", n % WORKERS))
}
fn assignment(n: u8) -> AssignmentId {
    AssignmentId::new(format!("A{}", n % ASSIGNMENTS))
}
fn hit(n: u8) -> HitId {
    HitId::new(format!("H{}", n % HITS))
}

/// The driver's side: the machine and what it remembers.
struct Driver {
    machine: Pavilion,
    /// The time the next input happens at.
    clock: Timestamp,
    /// The invariants across steps (`crowdcore::testkit`'s one checker).
    checker: PavilionChecker,
    /// Print every input and its effects (`CROWDCORE_FUZZ_TRACE=1`), to read a failing case.
    trace: bool,
}

impl Driver {
    fn hire_id(&self, hire: HireRef) -> Option<EffectId> {
        match hire {
            HireRef::Oldest => None,
            HireRef::Nth(i) => Some(
                self.checker
                    .hires_in_flight()
                    .get(usize::from(i % 4))
                    .map(|h| h.0.clone())
                    .unwrap_or_else(|| EffectId::new(session(), u64::MAX - u64::from(i))),
            ),
            HireRef::Foreign => Some(EffectId::new(SessionId::new("elsewhere"), 1)),
        }
    }

    /// The input an op means, at what time; `None` for ops that are not inputs.
    fn input(&mut self, op: Op) -> Option<(Timestamp, Input)> {
        let input = match op {
            Op::Wait(ms) => {
                self.clock = self.clock.plus_millis(u64::from(ms % 4_000));
                return None;
            }
            Op::WaitSeconds(s) => {
                self.clock = self.clock.plus_millis(1_000 * u64::from(s));
                return None;
            }
            Op::Pulse => return None,
            Op::Leave {
                nth,
                how,
                contributions,
            } => {
                let s = self.machine.snapshot();
                let present: Vec<_> = s.waiting.iter().chain(&s.active).collect();
                if present.is_empty() {
                    return None;
                }
                let assignment = present[usize::from(nth) % present.len()].assignment.clone();
                match how {
                    How::Submit => Input::Submit {
                        assignment,
                        contributions: u32::from(contributions % 8),
                    },
                    How::Return => Input::Return { assignment },
                    How::Abandon => Input::Abandon { assignment },
                }
            }
            Op::Restore => {
                let snapshot = self.machine.snapshot();
                let json = serde_json::to_string(&snapshot).expect("a snapshot serializes");
                let back = serde_json::from_str(&json).expect("a snapshot deserializes");
                self.machine = Pavilion::restore(back).expect("a snapshot restores");
                assert_eq!(
                    self.machine.snapshot(),
                    snapshot,
                    "restore changed the state"
                );
                return None;
            }
            Op::Arrive {
                worker: w,
                assignment: a,
                hit: h,
            } => Input::Arrive {
                worker: worker(w),
                assignment: assignment(a),
                hit: hit(h),
            },
            Op::ArriveOwn {
                assignment: a,
                hit: h,
            } => {
                // Through a HIT the session posted, if there is one.
                let posted = self.machine.snapshot().hits;
                let hit = match posted.len() {
                    0 => hit(h),
                    n => posted[usize::from(h) % n].hit.clone(),
                };
                Input::Arrive {
                    worker: worker((a % ASSIGNMENTS) % WORKERS),
                    assignment: assignment(a),
                    hit,
                }
            }
            Op::Heartbeat(a) => Input::Heartbeat {
                assignment: assignment(a),
            },
            Op::Submit {
                assignment: a,
                contributions,
            } => Input::Submit {
                assignment: assignment(a),
                contributions: u32::from(contributions % 8),
            },
            Op::SubmitClaiming {
                assignment: a,
                claimed,
            } => Input::Submit {
                assignment: assignment(a),
                contributions: claimed,
            },
            Op::Contributed {
                assignment: a,
                count,
            } => Input::Contributed {
                assignment: assignment(a),
                count,
            },
            Op::Return(a) => Input::Return {
                assignment: assignment(a),
            },
            Op::Abandon(a) => Input::Abandon {
                assignment: assignment(a),
            },
            Op::Tick => Input::Tick,
            Op::TickToTimeout => {
                let at = self.machine.poll_timeout()?.max(self.machine.now());
                self.clock = self.clock.max(at);
                return Some((at, Input::Tick));
            }
            Op::HirePosted {
                hire,
                hit: h,
                extra,
            } => {
                let id = self.hire_id(hire);
                let asked = match &id {
                    None => self.checker.hires_in_flight().first().map_or(0, |h| h.1),
                    Some(id) => self
                        .checker
                        .hires_in_flight()
                        .iter()
                        .find(|h| &h.0 == id)
                        .map_or(0, |h| h.1),
                };
                Input::HirePosted {
                    hire: id,
                    hit: hit(h),
                    slots: asked.saturating_add_signed(i32::from(extra % 4)),
                }
            }
            Op::HireFailed(hire) => Input::HireFailed {
                hire: self.hire_id(hire),
                reason: "fuzzed".into(),
            },
            Op::Admin(Admin::Start) => Input::Start,
            Op::Admin(Admin::Stop { go }) if go < 32 => Input::Stop,
            Op::Admin(Admin::Expire { go }) if go < 32 => Input::Expire,
            Op::Admin(Admin::Stop { .. } | Admin::Expire { .. }) => return None,
            Op::Admin(Admin::Migrate(n)) => Input::Migrate {
                count: u32::from(n % 8),
            },
            Op::Admin(Admin::ExpireHit(h)) => {
                let posted = self.machine.snapshot().hits;
                let hit = match posted.len() {
                    0 => hit(h),
                    n => posted[usize::from(h) % n].hit.clone(),
                };
                Input::ExpireHit { hit }
            }
            Op::Admin(Admin::SetTargets([a, b, c, d])) => Input::SetTargets(Targets {
                min_active: u32::from(a % 4),
                max_active: u32::from(b % 4),
                min_waiting: u32::from(c % 4),
                max_waiting: u32::from(d % 4),
            }),
            Op::ClockBack => {
                let now = self.machine.now().as_millis();
                return Some((Timestamp::from_millis(now.saturating_sub(1)), Input::Tick));
            }
        };
        Some((self.clock, input))
    }

    fn step(&mut self, op: Op) {
        if let Op::Pulse = op {
            let s = self.machine.snapshot();
            for v in s.waiting.iter().chain(&s.active) {
                let input = Input::Heartbeat {
                    assignment: v.assignment.clone(),
                };
                self.apply(self.clock, input, op);
            }
            return;
        }
        if let Some((at, input)) = self.input(op) {
            self.apply(at, input, op);
        }
    }

    /// Feeds one input through the checker, which checks everything about the result.
    fn apply(&mut self, at: Timestamp, input: Input, op: Op) {
        let before = self.machine.now();
        let result = if matches!(op, Op::TickToTimeout) {
            Ok(self.checker.handle_timeout(&mut self.machine, at))
        } else {
            self.checker.handle(&mut self.machine, at, input.clone())
        };
        if self.trace {
            eprintln!("{at} {input:?} -> {:?}", result.as_ref().map(Vec::len));
            for e in result.iter().flatten() {
                eprintln!("    {} {:?}", e.id, e.kind);
            }
        }
        if result.is_ok() && matches!(op, Op::ClockBack) {
            assert_eq!(at, before, "a tick in the past was accepted");
        }
    }
}

/// Runs one case, panicking with a message on the first broken invariant.
pub fn run(case: &Case) {
    run_ops(&case.knobs, &case.ops);
}

/// Runs `ops` against a machine configured by `knobs`, panicking on the first broken
/// invariant.
pub fn run_ops(knobs: &Knobs, ops: &[Op]) {
    let config = knobs.config();
    let machine = match Pavilion::new(session(), config) {
        Ok(m) => m,
        Err(e) => panic!("the knobs {knobs:?} gave a config the machine refuses: {e}"),
    };
    let checker = PavilionChecker::new(&machine);
    let mut d = Driver {
        machine,
        clock: Timestamp::ZERO,
        checker,
        trace: std::env::var_os("CROWDCORE_FUZZ_TRACE").is_some_and(|v| v != "0"),
    };
    if knobs.started {
        d.step(Op::Admin(Admin::Start));
    }
    for &op in ops {
        d.step(op);
    }
    // Replaying the accepted inputs gives the same effects and the same state.
    d.checker.check_replay(&d.machine);
}
