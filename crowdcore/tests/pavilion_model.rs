//! Property tests: the Pavilion machine beside a small reference model
//! (`proptest-state-machine`).
//!
//! The model keeps the queues as `Vec`s of assignment numbers and the platform's slots as plain
//! counts, and follows the rules as DESIGN.md, the issue and the machine's docs state them
//! (including the slot a timed-out or turned-away worker holds until the platform frees it); it
//! shares no code with the machine. Transitions are generated from the model's state over a tiny
//! id space (4 workers, 16 assignments, 3 HITs) so that reloads, mismatches, one worker on two
//! assignments and events for departed assignments happen often; they include hire results
//! (partial and over-delivered), admin commands (also closing one HIT), bad targets, and ticks
//! that land just before, on and after the next heartbeat deadline. Times never go back (except in
//! one op that checks the refusal); configurations vary (targets, start condition, re-opening
//! slots, budget, pay rates).
//!
//! After every transition the test asserts:
//! - the model and the machine agree on accept/reject, both queues (members, order, times),
//!   departures and how, HITs and open slots, hires in flight, phase, spending, the next timeout,
//!   and the effects of the step (as a multiset; promotions in order);
//! - an assignment is in at most one queue and a worker holds at most one seat; active ≤
//!   `max_active`; nobody waits while active has room once running; `present + open + in flight`
//!   only grows to at most the targets; committed spending ≤ budget; a departed assignment never
//!   comes back; `check_invariants()` is `Ok`; a refused input changes nothing;
//! - replaying the accepted input log on a fresh machine gives the same snapshot and the same
//!   effects; a machine restored from `snapshot()` (through JSON) and fed the same input gives the
//!   same effects and snapshot, also when restored with effects still pending.
//!
//! `PROPTEST_CASES` sets the number of cases (default 256, a few seconds); failures are saved
//! in `proptest-regressions/pavilion_model.txt` and re-run first.

use std::collections::{BTreeMap, BTreeSet};

use crowdcore::pavilion::{
    Departure, Effect, EffectKind, Input, Notice, Pavilion, PavilionConfig, PayKind, Phase,
    Rejected, ReleaseReason, StartCondition, Targets, TurnAwayReason,
};
use crowdcore::testkit::PavilionChecker;
use crowdcore::{AssignmentId, EffectId, HitId, SessionId, Timestamp, WorkerId};
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, FileFailurePersistence};
use proptest_state_machine::{ReferenceStateMachine, StateMachineTest, prop_state_machine};

const WORKERS: u8 = 4;
const ASSIGNMENTS: u8 = 16;
const HITS: u8 = 3;

fn worker(n: u8) -> WorkerId {
    WorkerId::new(format!("W{n}"))
}
fn assignment(n: u8) -> AssignmentId {
    AssignmentId::new(format!("A{n}"))
}
fn hit(n: u8) -> HitId {
    HitId::new(format!("H{n}"))
}
fn number(id: &str) -> u8 {
    id[1..].parse().expect("test ids are a letter and a number")
}
fn session() -> SessionId {
    SessionId::new("model")
}

// ----- configuration --------------------------------------------------------------------------

/// The configuration knobs a case runs with.
#[derive(Debug, Clone)]
struct Knobs {
    targets: Targets,
    start: StartCondition,
    timeout_ms: u64,
    reopen: bool,
    retry_ms: u64,
    budget: Option<i64>,
    base: i64,
    waiting_rate: i64,
    active_rate: i64,
    per_contribution: i64,
    /// `max_contributions_per_assignment`.
    cap: Option<u32>,
    /// `contributions_from_host`.
    from_host: bool,
}

impl Knobs {
    fn config(&self) -> PavilionConfig {
        PavilionConfig {
            min_active: self.targets.min_active,
            max_active: self.targets.max_active,
            min_waiting: self.targets.min_waiting,
            max_waiting: self.targets.max_waiting,
            start: self.start,
            heartbeat_timeout_ms: self.timeout_ms,
            returned_slots_reopen: self.reopen,
            hire_retry_ms: self.retry_ms,
            budget_cents: self.budget,
            base_pay_cents: self.base,
            waiting_cents_per_minute: self.waiting_rate,
            active_cents_per_minute: self.active_rate,
            per_contribution_cents: self.per_contribution,
            max_contributions_per_assignment: self.cap,
            contributions_from_host: self.from_host,
            ..PavilionConfig::default()
        }
    }
}

fn threshold(start: StartCondition, t: &Targets) -> Option<u32> {
    match start {
        StartCondition::Auto => Some(t.min_active + t.min_waiting),
        StartCondition::Present(n) => Some(n),
        StartCondition::Manual => None,
    }
}

/// The model's own reading of which targets can work.
fn targets_ok(start: StartCondition, t: &Targets) -> bool {
    t.max_active >= 1
        && t.min_active <= t.max_active
        && t.min_waiting <= t.max_waiting
        && threshold(start, t).is_none_or(|n| n <= t.max_active + t.max_waiting)
}

fn targets_strategy() -> impl Strategy<Value = Targets> {
    (1u32..=3, 0u32..=3)
        .prop_flat_map(|(max_active, max_waiting)| {
            (
                0..=max_active,
                Just(max_active),
                0..=max_waiting,
                Just(max_waiting),
            )
        })
        .prop_map(
            |(min_active, max_active, min_waiting, max_waiting)| Targets {
                min_active,
                max_active,
                min_waiting,
                max_waiting,
            },
        )
}

fn knobs_strategy() -> impl Strategy<Value = Knobs> {
    let start = prop_oneof![
        3 => Just(StartCondition::Auto),
        1 => (0u32..=3).prop_map(StartCondition::Present),
        1 => Just(StartCondition::Manual),
    ];
    let budget = prop_oneof![1 => Just(None), 1 => (0i64..600).prop_map(Some)];
    (
        targets_strategy(),
        start,
        prop::sample::select(vec![2_000u64, 10_000, 30_000]),
        any::<bool>(),
        prop::sample::select(vec![1_000u64, 60_000]),
        budget,
        (0i64..20, 0i64..30, 0i64..30, 0i64..10),
        (prop::option::of(0u32..6), any::<bool>()),
    )
        .prop_map(
            |(targets, start, timeout_ms, reopen, retry_ms, budget, rates, (cap, from_host))| {
                Knobs {
                    targets,
                    start,
                    timeout_ms,
                    reopen,
                    retry_ms,
                    budget,
                    base: rates.0,
                    waiting_rate: rates.1,
                    active_rate: rates.2,
                    per_contribution: rates.3,
                    // Paying for what pages report needs a cap (the config refuses it otherwise).
                    cap: if from_host { cap } else { cap.or(Some(3)) },
                    from_host,
                }
            },
        )
        .prop_filter("start condition reachable", |k| {
            targets_ok(k.start, &k.targets)
        })
}

// ----- transitions ----------------------------------------------------------------------------

/// Which hire a hire result names.
#[derive(Debug, Clone, Copy)]
enum HireRef {
    /// No id: the oldest in flight.
    Oldest,
    /// The `i`-th hire in flight, oldest first (an id the machine never issued if out of range).
    Nth(u8),
    /// An id of another session.
    Foreign,
}

#[derive(Debug, Clone)]
enum Op {
    Arrive {
        worker: u8,
        assignment: u8,
        hit: u8,
    },
    Heartbeat(u8),
    /// A submission reporting `contributions` (a page's number: anything up to `u32::MAX`).
    Submit {
        assignment: u8,
        contributions: u32,
    },
    /// The host counts `count` more contributions.
    Contributed {
        assignment: u8,
        count: u32,
    },
    Return(u8),
    Abandon(u8),
    Tick,
    /// `handle_timeout(poll_timeout())`, if there is a timeout.
    TickToTimeout,
    /// `slots` = the hire's count plus `extra` (negative: fewer posted; positive: the
    /// platform over-delivered, which counts as what was asked).
    HirePosted {
        hire: HireRef,
        hit: u8,
        extra: i8,
    },
    HireFailed(HireRef),
    Start,
    Stop,
    Expire,
    Migrate(u32),
    SetTargets(Targets),
    /// A tick one millisecond before the machine's time.
    ClockBack,
    /// The operator closes one HIT (possibly one never posted).
    ExpireHit(u8),
}

/// One transition: time passes by `dt`, then `op` happens.
#[derive(Debug, Clone)]
struct Step {
    dt: u64,
    op: Op,
}

// ----- the reference model ---------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Verdict {
    Ok,
    ClockWentBack,
    UnknownAssignment,
    AlreadyLeft,
    WorkerMismatch,
    UnknownHit,
    NoHireInFlight,
    UnknownHire,
    NotStarted,
    AlreadyStarted,
    Stopped,
    BadTargets,
}

fn verdict_of(r: &Result<(), Rejected>) -> Verdict {
    match r {
        Ok(()) => Verdict::Ok,
        Err(Rejected::ClockWentBack { .. }) => Verdict::ClockWentBack,
        Err(Rejected::UnknownAssignment(_)) => Verdict::UnknownAssignment,
        Err(Rejected::AlreadyLeft(_)) => Verdict::AlreadyLeft,
        Err(Rejected::WorkerMismatch { .. }) => Verdict::WorkerMismatch,
        Err(Rejected::UnknownHit(_)) => Verdict::UnknownHit,
        Err(Rejected::NoHireInFlight) => Verdict::NoHireInFlight,
        Err(Rejected::UnknownHire(_)) => Verdict::UnknownHire,
        Err(Rejected::NotStarted) => Verdict::NotStarted,
        Err(Rejected::AlreadyStarted) => Verdict::AlreadyStarted,
        Err(Rejected::Stopped) => Verdict::Stopped,
        Err(Rejected::BadTargets(_)) => Verdict::BadTargets,
    }
}

/// An effect as the model predicts it (ids and the order within a step aside).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum E {
    Hire(u32),
    Promote(u8, u8),
    Release(u8, u8, &'static str),
    TurnAway(u8, u8, &'static str),
    TimedOut(u8, u8),
    Pay(u8, u8, &'static str, i64),
    ExpireHits(Vec<u8>),
    TaskBegan(u32),
    HireFailed(u64),
    BudgetExhausted,
}

fn e_of(effect: &Effect) -> E {
    let w = |w: &WorkerId| number(w.as_str());
    let a = |a: &AssignmentId| number(a.as_str());
    match &effect.kind {
        EffectKind::Hire { count } => E::Hire(*count),
        EffectKind::Promote { worker, assignment } => E::Promote(w(worker), a(assignment)),
        EffectKind::Release {
            worker,
            assignment,
            reason,
        } => E::Release(
            w(worker),
            a(assignment),
            match reason {
                ReleaseReason::JobStopped => "stopped",
                ReleaseReason::TargetsLowered => "lowered",
            },
        ),
        EffectKind::TurnAway {
            worker,
            assignment,
            reason,
        } => E::TurnAway(
            w(worker),
            a(assignment),
            match reason {
                TurnAwayReason::JobFull => "full",
                TurnAwayReason::JobEnded => "ended",
                TurnAwayReason::OverBudget => "budget",
                TurnAwayReason::AlreadySeated => "seated",
            },
        ),
        EffectKind::TimedOut { worker, assignment } => E::TimedOut(w(worker), a(assignment)),
        EffectKind::Pay {
            worker,
            assignment,
            kind,
            amount,
        } => E::Pay(
            w(worker),
            a(assignment),
            match kind {
                PayKind::Base => "base",
                PayKind::WaitingBonus => "waiting",
                PayKind::ActiveBonus => "active",
                PayKind::ContributionBonus => "contribution",
            },
            amount.minor,
        ),
        EffectKind::ExpireHits { hits } => {
            E::ExpireHits(hits.iter().map(|h| number(h.as_str())).collect())
        }
        EffectKind::Notify { notice } => match notice {
            Notice::TaskBegan { present } => E::TaskBegan(*present),
            Notice::HireFailed { retry_at, .. } => E::HireFailed(retry_at.as_millis()),
            Notice::BudgetExhausted { .. } => E::BudgetExhausted,
        },
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct MSeat {
    worker: u8,
    hit: u8,
    arrived: u64,
    promoted: Option<u64>,
    last_seen: u64,
    /// Queue position, shared by both queues: taken on arrival and again on promotion.
    pos: u64,
    /// What the host counted, if it counted.
    counted: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct MHit {
    id: u8,
    open: u32,
    expired: bool,
}

/// The reference model.
#[derive(Debug, Clone)]
struct Model {
    knobs: Knobs,
    targets: Targets,
    now: u64,
    phase: Phase,
    closed: bool,
    paused_until: Option<u64>,
    budget_noticed: bool,
    waiting: Vec<u8>,
    active: Vec<u8>,
    seats: BTreeMap<u8, MSeat>,
    /// Departed assignments: worker, HIT, how.
    left: BTreeMap<u8, (u8, u8, Departure)>,
    /// Departed assignments whose worker still holds the slot on the platform (timed out,
    /// turned away) until the platform reports it returned or abandoned.
    holding: BTreeSet<u8>,
    hits: Vec<MHit>,
    /// Hires in flight: slots asked for, oldest first.
    hires: Vec<u32>,
    spent: i64,
    /// The next queue position.
    next_pos: u64,
    /// What the last transition did.
    verdict: Verdict,
    effects: Vec<E>,
    promoted: Vec<u8>,
}

fn per_minute(ms: u64, rate: i64) -> i64 {
    (ms as i64 * rate + 30_000) / 60_000
}

impl Model {
    fn new(knobs: Knobs) -> Self {
        Self {
            targets: knobs.targets,
            knobs,
            now: 0,
            phase: Phase::Setup,
            closed: false,
            paused_until: None,
            budget_noticed: false,
            waiting: Vec::new(),
            active: Vec::new(),
            seats: BTreeMap::new(),
            left: BTreeMap::new(),
            holding: BTreeSet::new(),
            hits: Vec::new(),
            hires: Vec::new(),
            spent: 0,
            next_pos: 0,
            verdict: Verdict::Ok,
            effects: Vec::new(),
            promoted: Vec::new(),
        }
    }

    fn capacity(&self) -> u32 {
        self.targets.max_active + self.targets.max_waiting
    }

    fn open(&self) -> u32 {
        self.hits.iter().map(|h| h.open).sum()
    }

    fn present(&self) -> u32 {
        (self.waiting.len() + self.active.len()) as u32
    }

    fn in_flight(&self) -> u32 {
        self.hires.iter().sum()
    }

    /// Seats counted against the targets: present + open + in flight.
    fn seats_counted(&self) -> u32 {
        self.present() + self.open() + self.in_flight()
    }

    fn committed(&self) -> i64 {
        self.spent + self.knobs.base * i64::from(self.seats_counted())
    }

    fn affordable(&self, n: u32) -> bool {
        self.knobs
            .budget
            .is_none_or(|b| self.committed() + self.knobs.base * i64::from(n) <= b)
    }

    fn next_timeout(&self) -> Option<u64> {
        let deadline = self
            .seats
            .values()
            .map(|s| s.last_seen + self.knobs.timeout_ms)
            .min();
        match (deadline, self.paused_until) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn hire_index(&self, hire: HireRef) -> Result<usize, Verdict> {
        match hire {
            HireRef::Oldest if self.hires.is_empty() => Err(Verdict::NoHireInFlight),
            HireRef::Oldest => Ok(0),
            HireRef::Nth(i) if usize::from(i) < self.hires.len() => Ok(usize::from(i)),
            HireRef::Nth(_) | HireRef::Foreign => Err(Verdict::UnknownHire),
        }
    }

    fn notice_budget(&mut self) {
        if !self.budget_noticed {
            self.budget_noticed = true;
            self.effects.push(E::BudgetExhausted);
        }
    }

    /// A present worker leaves.
    fn depart(&mut self, a: u8, how: Departure, reported: u32) {
        let seat = self.seats.remove(&a).expect("present");
        self.waiting.retain(|&x| x != a);
        self.active.retain(|&x| x != a);
        self.left.insert(a, (seat.worker, seat.hit, how));
        match how {
            Departure::Returned | Departure::Abandoned => {
                let h = self.hits.iter_mut().find(|h| h.id == seat.hit).unwrap();
                if self.knobs.reopen && !h.expired {
                    h.open += 1;
                }
            }
            Departure::TimedOut => {
                // The page is gone but the worker still holds the assignment on the platform.
                self.holding.insert(a);
                self.effects.push(E::TimedOut(seat.worker, a));
            }
            Departure::Submitted | Departure::Released => {
                let waited = seat.promoted.unwrap_or(self.now) - seat.arrived;
                let worked = seat.promoted.map_or(0, |p| self.now - p);
                // The host's count if it gave one; else the page's, unless only the host
                // counts; never above the cap.
                let units = match seat.counted {
                    Some(n) => n,
                    None if self.knobs.from_host => 0,
                    None => reported,
                };
                let units = self.knobs.cap.map_or(units, |c| units.min(c));
                self.spent += self.knobs.base;
                let mut parts = vec![("base", self.knobs.base)];
                for (kind, amount) in [
                    ("waiting", per_minute(waited, self.knobs.waiting_rate)),
                    ("active", per_minute(worked, self.knobs.active_rate)),
                    (
                        "contribution",
                        self.knobs.per_contribution * i64::from(units),
                    ),
                ] {
                    let mut amount = amount;
                    if let Some(budget) = self.knobs.budget {
                        let room = (budget - self.committed()).max(0);
                        if amount > room {
                            amount = room;
                            self.notice_budget();
                        }
                    }
                    self.spent += amount;
                    parts.push((kind, amount));
                }
                for (kind, amount) in parts {
                    if amount > 0 {
                        self.effects.push(E::Pay(seat.worker, a, kind, amount));
                    }
                }
            }
            Departure::TurnedAway => unreachable!(),
        }
    }

    /// The platform reports a slot held by a departed worker given back. It opens again if
    /// the platform re-opens slots, its HIT is live, and the seat is still empty and paid for;
    /// a surplus slot instead expires its HIT (so nobody takes it only to be turned away).
    fn free_slot(&mut self, a: u8) {
        self.holding.remove(&a);
        let hit = self.left[&a].1;
        let room = self.seats_counted() < self.capacity() && self.affordable(1);
        let h = self.hits.iter_mut().find(|h| h.id == hit).unwrap();
        if !self.knobs.reopen || h.expired {
            return;
        }
        if room {
            h.open += 1;
        } else {
            self.expire_hit(hit);
        }
    }

    /// Closes one HIT, if still open.
    fn expire_hit(&mut self, hit: u8) {
        let h = self.hits.iter_mut().find(|h| h.id == hit).unwrap();
        if !h.expired {
            h.expired = true;
            h.open = 0;
            self.effects.push(E::ExpireHits(vec![hit]));
        }
    }

    fn release(&mut self, a: u8, reason: &'static str) {
        let w = self.seats[&a].worker;
        self.effects.push(E::Release(w, a, reason));
        self.depart(a, Departure::Released, 0);
    }

    fn promote_front(&mut self) {
        let a = self.waiting.remove(0);
        self.active.push(a);
        let s = self.seats.get_mut(&a).unwrap();
        s.promoted = Some(self.now);
        s.pos = self.next_pos;
        self.next_pos += 1;
        self.effects.push(E::Promote(s.worker, a));
        self.promoted.push(a);
    }

    fn begin(&mut self) {
        self.phase = Phase::Running;
        self.effects.push(E::TaskBegan(self.present()));
    }

    /// After every accepted input: begin when the start condition holds, fill active from
    /// waiting, hire what is missing.
    fn rebalance(&mut self) {
        if self.phase == Phase::Recruiting
            && threshold(self.knobs.start, &self.targets).is_some_and(|n| self.present() >= n)
        {
            self.begin();
        }
        if self.phase == Phase::Running {
            while (self.active.len() as u32) < self.targets.max_active && !self.waiting.is_empty() {
                self.promote_front();
            }
        }
        if matches!(self.phase, Phase::Recruiting | Phase::Running) && !self.closed {
            if let Some(until) = self.paused_until {
                if self.now < until {
                    return;
                }
                self.paused_until = None;
            }
            let deficit = self.capacity().saturating_sub(self.seats_counted());
            let mut n = deficit;
            while n > 0 && !self.affordable(n) {
                n -= 1;
            }
            if n < deficit {
                self.notice_budget();
            }
            if n > 0 {
                self.hires.push(n);
                self.effects.push(E::Hire(n));
            }
        }
    }

    /// The time a step happens at, or `None` if it does nothing at all.
    fn time_of(&self, step: &Step) -> Option<u64> {
        match step.op {
            Op::TickToTimeout => self.next_timeout().map(|t| t.max(self.now)),
            Op::ClockBack => Some(self.now.saturating_sub(1)),
            _ => Some(self.now + step.dt),
        }
    }

    fn step(&mut self, step: &Step) {
        self.effects.clear();
        self.promoted.clear();
        let Some(now) = self.time_of(step) else {
            self.verdict = Verdict::Ok;
            return;
        };
        if now < self.now {
            self.verdict = Verdict::ClockWentBack;
            return;
        }
        let before = self.clone();
        self.now = now;
        let verdict = self.input(&step.op);
        if verdict == Verdict::Ok {
            self.rebalance();
        } else {
            *self = before;
        }
        self.verdict = verdict;
    }

    fn present_or(&self, a: u8) -> Result<(), Verdict> {
        if self.seats.contains_key(&a) {
            Ok(())
        } else if self.left.contains_key(&a) {
            Err(Verdict::AlreadyLeft)
        } else {
            Err(Verdict::UnknownAssignment)
        }
    }

    fn input(&mut self, op: &Op) -> Verdict {
        let now = self.now;
        let result = match *op {
            Op::Arrive {
                worker: w,
                assignment: a,
                hit: h,
            } => self.arrive(w, a, h),
            Op::Heartbeat(a) => self.present_or(a).map(|()| {
                self.seats.get_mut(&a).unwrap().last_seen = now;
            }),
            Op::Submit {
                assignment: a,
                contributions,
            } => self
                .present_or(a)
                .map(|()| self.depart(a, Departure::Submitted, contributions)),
            Op::Contributed {
                assignment: a,
                count,
            } => self.present_or(a).map(|()| {
                let seat = self.seats.get_mut(&a).unwrap();
                seat.counted = Some(seat.counted.unwrap_or(0).saturating_add(count));
            }),
            Op::Return(a) | Op::Abandon(a) if self.holding.contains(&a) => {
                self.free_slot(a);
                Ok(())
            }
            Op::Return(a) => self
                .present_or(a)
                .map(|()| self.depart(a, Departure::Returned, 0)),
            Op::Abandon(a) => self
                .present_or(a)
                .map(|()| self.depart(a, Departure::Abandoned, 0)),
            Op::Tick | Op::TickToTimeout | Op::ClockBack => {
                if self.paused_until.is_some_and(|u| u <= now) {
                    self.paused_until = None;
                }
                let timeout = self.knobs.timeout_ms;
                let due: Vec<u8> = self
                    .seats
                    .iter()
                    .filter(|(_, s)| s.last_seen + timeout <= now)
                    .map(|(&a, _)| a)
                    .collect();
                for a in due {
                    self.depart(a, Departure::TimedOut, 0);
                }
                Ok(())
            }
            Op::HirePosted { hire, hit, extra } => self.hire_index(hire).map(|i| {
                let count = self.hires.remove(i);
                let slots = count.saturating_add_signed(extra.min(0).into());
                let index = match self.hits.iter().position(|x| x.id == hit) {
                    Some(i) => i,
                    None => {
                        self.hits.push(MHit {
                            id: hit,
                            open: 0,
                            expired: false,
                        });
                        self.hits.len() - 1
                    }
                };
                let closed = self.closed || self.phase == Phase::Stopped;
                let h = &mut self.hits[index];
                if closed || h.expired {
                    if !h.expired {
                        h.expired = true;
                        self.effects.push(E::ExpireHits(vec![hit]));
                    }
                } else {
                    h.open += slots;
                }
            }),
            Op::HireFailed(hire) => self.hire_index(hire).map(|i| {
                self.hires.remove(i);
                let retry = now + self.knobs.retry_ms;
                self.paused_until = Some(retry);
                self.effects.push(E::HireFailed(retry));
            }),
            Op::Start => match self.phase {
                Phase::Setup => {
                    self.phase = Phase::Recruiting;
                    Ok(())
                }
                Phase::Stopped => Err(Verdict::Stopped),
                _ => Err(Verdict::AlreadyStarted),
            },
            Op::Stop => {
                if self.phase == Phase::Stopped {
                    Err(Verdict::Stopped)
                } else {
                    self.phase = Phase::Stopped;
                    self.paused_until = None;
                    // Everyone, by queue position (who is paid first matters when the
                    // budget runs out).
                    let mut everyone: Vec<(u64, u8)> =
                        self.seats.iter().map(|(&a, s)| (s.pos, a)).collect();
                    everyone.sort();
                    for (_, a) in everyone {
                        self.release(a, "stopped");
                    }
                    Ok(())
                }
            }
            Op::Expire => {
                if self.phase == Phase::Setup {
                    Err(Verdict::NotStarted)
                } else {
                    self.closed = true;
                    self.paused_until = None;
                    let mut expired = Vec::new();
                    for h in self.hits.iter_mut().filter(|h| !h.expired) {
                        h.expired = true;
                        h.open = 0;
                        expired.push(h.id);
                    }
                    if !expired.is_empty() {
                        self.effects.push(E::ExpireHits(expired));
                    }
                    Ok(())
                }
            }
            Op::ExpireHit(h) => {
                if self.hits.iter().any(|x| x.id == h) {
                    // Its open slots stop counting; the deficit is hired in `rebalance`.
                    self.expire_hit(h);
                    Ok(())
                } else {
                    Err(Verdict::UnknownHit)
                }
            }
            Op::Migrate(count) => match self.phase {
                Phase::Setup => Err(Verdict::NotStarted),
                Phase::Stopped => Err(Verdict::Stopped),
                _ => {
                    if self.phase == Phase::Recruiting {
                        self.begin();
                    }
                    let room = self.targets.max_active - self.active.len() as u32;
                    for _ in 0..count.min(room) {
                        if self.waiting.is_empty() {
                            break;
                        }
                        self.promote_front();
                    }
                    Ok(())
                }
            },
            Op::SetTargets(t) => {
                if !targets_ok(self.knobs.start, &t) {
                    Err(Verdict::BadTargets)
                } else if self.phase == Phase::Stopped {
                    Err(Verdict::Stopped)
                } else {
                    self.targets = t;
                    let waiting_cap = if self.phase == Phase::Running {
                        t.max_waiting
                    } else {
                        t.max_active + t.max_waiting
                    };
                    let extra_active = (self.active.len() as u32).saturating_sub(t.max_active);
                    let extra_waiting = (self.waiting.len() as u32).saturating_sub(waiting_cap);
                    for _ in 0..extra_active {
                        let a = *self.active.last().unwrap();
                        self.release(a, "lowered");
                    }
                    for _ in 0..extra_waiting {
                        let a = *self.waiting.last().unwrap();
                        self.release(a, "lowered");
                    }
                    Ok(())
                }
            }
        };
        match result {
            Ok(()) => Verdict::Ok,
            Err(v) => v,
        }
    }

    fn arrive(&mut self, w: u8, a: u8, h: u8) -> Result<(), Verdict> {
        if self.left.contains_key(&a) {
            return Err(Verdict::AlreadyLeft);
        }
        if let Some(seat) = self.seats.get_mut(&a) {
            if seat.worker != w {
                return Err(Verdict::WorkerMismatch);
            }
            seat.last_seen = self.now; // a page reload
            return Ok(());
        }
        let Some(index) = self.hits.iter().position(|x| x.id == h) else {
            return Err(Verdict::UnknownHit);
        };
        let took_slot = self.hits[index].open > 0;
        if took_slot {
            self.hits[index].open -= 1;
        }
        let reason = if self.phase == Phase::Stopped {
            Some("ended")
        } else if self.seats.values().any(|s| s.worker == w) {
            Some("seated")
        } else if took_slot {
            (self.present() >= self.capacity()).then_some("full")
        } else if self.seats_counted() >= self.capacity() {
            Some("full")
        } else if !self.affordable(1) {
            Some("budget")
        } else {
            None
        };
        if let Some(reason) = reason {
            self.left.insert(a, (w, h, Departure::TurnedAway));
            self.holding.insert(a);
            self.effects.push(E::TurnAway(w, a, reason));
            if !took_slot && reason != "seated" {
                // The platform had a slot the job did not count: close that HIT, or the next
                // worker would take it only to be turned away too.
                self.expire_hit(h);
            }
        } else {
            self.seats.insert(
                a,
                MSeat {
                    worker: w,
                    hit: h,
                    arrived: self.now,
                    promoted: None,
                    last_seen: self.now,
                    pos: self.next_pos,
                    counted: None,
                },
            );
            self.next_pos += 1;
            self.waiting.push(a);
        }
        Ok(())
    }
}

struct ModelMachine;

impl ReferenceStateMachine for ModelMachine {
    type State = Model;
    type Transition = Step;

    fn init_state() -> BoxedStrategy<Model> {
        knobs_strategy().prop_map(Model::new).boxed()
    }

    fn transitions(m: &Model) -> BoxedStrategy<Step> {
        // Weighted choices that depend on the state, so that sessions start, fill up and run
        // rather than mostly refusing; every op stays possible (refusals are tested too).
        let started = m.phase != Phase::Setup;
        let present: Vec<u8> = m.seats.keys().copied().collect();
        let fresh: Vec<u8> = (0..ASSIGNMENTS)
            .filter(|a| !m.seats.contains_key(a) && !m.left.contains_key(a))
            .collect();
        let posted: Vec<u8> = m.hits.iter().map(|h| h.id).collect();
        let pick = |preferred: Vec<u8>| -> BoxedStrategy<u8> {
            if preferred.is_empty() {
                (0..ASSIGNMENTS).boxed()
            } else {
                prop_oneof![4 => prop::sample::select(preferred), 1 => 0..ASSIGNMENTS].boxed()
            }
        };
        let hit_pick: BoxedStrategy<u8> = if posted.is_empty() {
            (0..HITS).boxed()
        } else {
            prop_oneof![6 => prop::sample::select(posted), 1 => 0..HITS].boxed()
        };
        // Mostly the assignment's own worker (so a second arrival is a reload), sometimes
        // anyone (a mismatch, or one worker on two assignments).
        let arrive = (
            pick(fresh),
            0..WORKERS,
            prop::bool::weighted(0.85),
            hit_pick.clone(),
        )
            .prop_map(|(a, w, own, h)| Op::Arrive {
                worker: if own { a % WORKERS } else { w },
                assignment: a,
                hit: h,
            });
        let hire_ref = || {
            prop_oneof![
                6 => Just(HireRef::Oldest),
                3 => (0u8..3).prop_map(HireRef::Nth),
                1 => Just(HireRef::Foreign),
            ]
        };
        let raw_targets = (0u32..4, 0u32..4, 0u32..4, 0u32..4).prop_map(|(a, b, c, d)| Targets {
            min_active: a,
            max_active: b,
            min_waiting: c,
            max_waiting: d,
        });
        let seated = || pick(present.clone());
        // Returns and abandonments also come for departed workers who still hold their slot.
        let gone_or_seated = || pick(present.iter().chain(&m.holding).copied().collect());
        // A second arrival of a present assignment: a reload, or another worker's claim.
        let again =
            (seated(), 0..WORKERS, any::<bool>(), hit_pick.clone()).prop_map(|(a, w, own, h)| {
                Op::Arrive {
                    worker: if own { a % WORKERS } else { w },
                    assignment: a,
                    hit: h,
                }
            });
        let hiring = !m.hires.is_empty();
        let ops: Vec<(u32, BoxedStrategy<Op>)> = vec![
            (if started { 12 } else { 1 }, arrive.boxed()),
            (2, again.boxed()),
            (6, seated().prop_map(Op::Heartbeat).boxed()),
            (
                4,
                (
                    seated(),
                    prop_oneof![6 => 0u32..4, 1 => Just(4_000_000_000u32), 1 => any::<u32>()],
                )
                    .prop_map(|(assignment, contributions)| Op::Submit {
                        assignment,
                        contributions,
                    })
                    .boxed(),
            ),
            (
                2,
                (seated(), prop_oneof![6 => 0u32..4, 1 => any::<u32>()])
                    .prop_map(|(assignment, count)| Op::Contributed { assignment, count })
                    .boxed(),
            ),
            (3, gone_or_seated().prop_map(Op::Return).boxed()),
            (1, gone_or_seated().prop_map(Op::Abandon).boxed()),
            (1, Just(Op::TickToTimeout).boxed()),
            (
                if hiring { 10 } else { 1 },
                (
                    hire_ref(),
                    prop_oneof![4 => 0..HITS, 1 => Just(m.hits.len() as u8 % HITS)],
                    prop_oneof![8 => Just(0i8), 2 => -2i8..0, 1 => 1i8..3],
                )
                    .prop_map(|(hire, hit, extra)| Op::HirePosted { hire, hit, extra })
                    .boxed(),
            ),
            (
                if hiring { 2 } else { 1 },
                hire_ref().prop_map(Op::HireFailed).boxed(),
            ),
            (if started { 1 } else { 12 }, Just(Op::Start).boxed()),
            (1, Just(Op::Stop).boxed()),
            (1, Just(Op::Expire).boxed()),
            (1, (0u32..4).prop_map(Op::Migrate).boxed()),
            (
                2,
                prop_oneof![3 => targets_strategy(), 1 => raw_targets]
                    .prop_map(Op::SetTargets)
                    .boxed(),
            ),
            (1, Just(Op::ClockBack).boxed()),
            (1, hit_pick.clone().prop_map(Op::ExpireHit).boxed()),
        ];
        // Stopping and expiring end the interesting part: make them rarer than the rest.
        let ops: Vec<(u32, BoxedStrategy<Op>)> = ops
            .into_iter()
            .enumerate()
            .map(|(i, (w, s))| (if i == 10 || i == 11 { w } else { 4 * w }, s))
            .collect();
        let op = prop::strategy::Union::new_weighted(ops);
        let dt = || {
            prop_oneof![
                3 => Just(0u64),
                6 => 1u64..800,
                1 => 1u64..60_000,
            ]
        };
        // Ticks that land just before, on and just after the next deadline.
        let to_deadline = m.next_timeout().map_or(1, |t| t.saturating_sub(m.now));
        let tick_dt = prop_oneof![
            1 => dt(),
            2 => prop::sample::select(vec![
                to_deadline.saturating_sub(1),
                to_deadline,
                to_deadline + 1,
            ]),
        ];
        prop_oneof![
            14 => (dt(), op).prop_map(|(dt, op)| Step { dt, op }),
            1 => tick_dt.prop_map(|dt| Step { dt, op: Op::Tick }),
        ]
        .boxed()
    }

    fn apply(mut m: Model, step: &Step) -> Model {
        m.step(step);
        m
    }
}

// ----- the machine under test ------------------------------------------------------------------

/// The machine, and what a driver would remember about it.
struct Sut {
    machine: Pavilion,
    /// The invariants across steps, the hires in flight as the driver saw them, the log
    /// (`crowdcore::testkit`'s one checker, shared with the scenario tests and the fuzzer).
    checker: PavilionChecker,
}

impl Sut {
    fn hire_id(&self, hire: HireRef) -> Option<EffectId> {
        match hire {
            HireRef::Oldest => None,
            HireRef::Nth(i) => Some(
                self.checker
                    .hires_in_flight()
                    .get(usize::from(i))
                    .map(|h| h.0.clone())
                    .unwrap_or_else(|| EffectId::new(session(), 1_000_000 + u64::from(i))),
            ),
            HireRef::Foreign => Some(EffectId::new(SessionId::new("elsewhere"), 1)),
        }
    }

    /// The input a step means for the machine, or `None` for a timeout that is not there.
    fn input(&self, step: &Step) -> Option<(Timestamp, Input)> {
        let now = self.machine.now();
        let at = now.plus_millis(step.dt);
        let input = match step.op {
            Op::Arrive {
                worker: w,
                assignment: a,
                hit: h,
            } => Input::Arrive {
                worker: worker(w),
                assignment: assignment(a),
                hit: hit(h),
            },
            Op::Heartbeat(a) => Input::Heartbeat {
                assignment: assignment(a),
            },
            Op::Submit {
                assignment: a,
                contributions,
            } => Input::Submit {
                assignment: assignment(a),
                contributions,
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
                let at = self.machine.poll_timeout()?;
                return Some((at.max(now), Input::Tick));
            }
            Op::ClockBack => {
                let back = Timestamp::from_millis(now.as_millis().saturating_sub(1));
                return Some((back, Input::Tick));
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
                    slots: asked.saturating_add_signed(extra.into()),
                }
            }
            Op::HireFailed(hire) => Input::HireFailed {
                hire: self.hire_id(hire),
                reason: "no funds".into(),
            },
            Op::Start => Input::Start,
            Op::Stop => Input::Stop,
            Op::Expire => Input::Expire,
            Op::Migrate(count) => Input::Migrate { count },
            Op::SetTargets(t) => Input::SetTargets(t),
            Op::ExpireHit(h) => Input::ExpireHit { hit: hit(h) },
        };
        Some((at, input))
    }
}

struct PavilionTest;

impl StateMachineTest for PavilionTest {
    type SystemUnderTest = Sut;
    type Reference = ModelMachine;

    fn init_test(m: &Model) -> Sut {
        let config = m.knobs.config();
        let machine = Pavilion::new(session(), config).expect("generated configs are valid");
        let checker = PavilionChecker::new(&machine);
        Sut { machine, checker }
    }

    fn apply(mut sut: Sut, m: &Model, step: Step) -> Sut {
        let before = sut.machine.snapshot();
        let Some((at, input)) = sut.input(&step) else {
            assert_eq!(m.verdict, Verdict::Ok);
            assert!(m.effects.is_empty());
            assert_eq!(sut.machine.snapshot(), before);
            return sut;
        };
        // The checker feeds the input and checks what it can on the machine alone: a
        // restored twin decides the same, a refusal changes nothing, effect ids, pay against
        // spending, hiring within the targets, the hires in flight, every state invariant.
        let result = if matches!(step.op, Op::TickToTimeout) {
            Ok(sut.checker.handle_timeout(&mut sut.machine, at))
        } else {
            sut.checker.handle(&mut sut.machine, at, input.clone())
        };
        assert_eq!(
            verdict_of(&result.as_ref().map(|_| ()).map_err(Clone::clone)),
            m.verdict,
            "accept/reject of {input:?} at {at}: machine says {result:?}"
        );
        let Ok(effects) = result else {
            return sut;
        };
        for e in &effects {
            assert_eq!(e.id.session, session());
        }

        // The effects are the model's (as a multiset; promotions in FIFO order).
        let mut got: Vec<E> = effects.iter().map(e_of).collect();
        let promoted: Vec<u8> = got
            .iter()
            .filter_map(|e| match e {
                E::Promote(_, a) => Some(*a),
                _ => None,
            })
            .collect();
        assert_eq!(promoted, m.promoted, "promotion order");
        let mut want = m.effects.clone();
        got.sort();
        want.sort();
        assert_eq!(got, want, "effects of {input:?} at {at}");

        // Replaying the accepted log on a fresh machine gives the same effects and state.
        sut.checker.check_replay(&sut.machine);
        sut
    }

    fn check_invariants(sut: &Sut, m: &Model) {
        let machine = &sut.machine;
        let s = machine.snapshot();
        if let Err(e) = machine.check_invariants() {
            panic!("check_invariants: {e}");
        }

        // --- the model agrees ---
        let seat = |v: &crowdcore::pavilion::SeatView| {
            (
                number(v.assignment.as_str()),
                MSeat {
                    worker: number(v.worker.as_str()),
                    hit: number(v.hit.as_str()),
                    arrived: v.arrived_at.as_millis(),
                    promoted: v.promoted_at.map(Timestamp::as_millis),
                    last_seen: v.last_seen.as_millis(),
                    pos: v.order,
                    counted: v.contributed,
                },
            )
        };
        let want = |q: &[u8]| q.iter().map(|a| (*a, m.seats[a])).collect::<Vec<_>>();
        assert_eq!(
            s.waiting.iter().map(seat).collect::<Vec<_>>(),
            want(&m.waiting),
            "waiting queue"
        );
        assert_eq!(
            s.active.iter().map(seat).collect::<Vec<_>>(),
            want(&m.active),
            "active queue"
        );
        let departed: BTreeMap<u8, (u8, u8, Departure)> = s
            .departed
            .iter()
            .map(|d| {
                (
                    number(d.assignment.as_str()),
                    (number(d.worker.as_str()), number(d.hit.as_str()), d.how),
                )
            })
            .collect();
        assert_eq!(departed, m.left, "departures");
        let holding: BTreeSet<u8> = s
            .departed
            .iter()
            .filter(|d| d.holds_slot)
            .map(|d| number(d.assignment.as_str()))
            .collect();
        assert_eq!(
            holding, m.holding,
            "departed workers still holding their slot"
        );
        let hits: Vec<MHit> = s
            .hits
            .iter()
            .map(|h| MHit {
                id: number(h.hit.as_str()),
                open: h.open_slots,
                expired: h.expired,
            })
            .collect();
        assert_eq!(hits, m.hits, "HITs");
        assert_eq!(s.open_slots, m.open());
        assert_eq!(
            s.hires_in_flight
                .iter()
                .map(|h| h.count)
                .collect::<Vec<_>>(),
            m.hires,
            "hires in flight"
        );
        assert_eq!(
            s.hires_in_flight
                .iter()
                .map(|h| (h.id.clone(), h.count))
                .collect::<Vec<_>>(),
            sut.checker.hires_in_flight(),
            "hires in flight, as the driver saw them"
        );
        assert_eq!(machine.hires_in_flight(), m.in_flight());
        assert_eq!(s.phase, m.phase, "phase");
        assert_eq!(s.hiring_closed, m.closed);
        assert_eq!(s.budget_noticed, m.budget_noticed);
        assert_eq!(s.now.as_millis(), m.now);
        assert_eq!(s.spent.minor, m.spent, "spent");
        assert_eq!(s.next_order, m.next_pos, "queue positions");
        assert_eq!(s.committed.minor, m.committed(), "committed");
        assert_eq!((s.config.targets()), m.targets, "targets");
        assert_eq!(
            machine.poll_timeout().map(Timestamp::as_millis),
            m.next_timeout(),
            "next timeout"
        );
    }

    fn teardown(mut sut: Sut, _: Model) {
        assert!(
            sut.machine.poll_effect().is_none(),
            "every effect was drained after its step"
        );
    }
}

prop_state_machine! {
    #![proptest_config(ProptestConfig {
        // Cases come from PROPTEST_CASES (default 256); keep shrinking bounded.
        max_shrink_iters: 4096,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "proptest-regressions/pavilion_model.txt",
        ))),
        ..ProptestConfig::default()
    })]

    #[test]
    fn pavilion_agrees_with_its_model(sequential 1..100 => PavilionTest);
}
