//! The Pavilion queue machine: keep an **active queue** of workers full from a **waiting
//! queue**, and keep the waiting queue full by hiring, as workers submit, return or abandon.
//!
//! This module contains no I/O and does not read a clock: every call is given the time, and
//! everything the machine wants done comes out as an [`Effect`] for a driver to carry out. The
//! same inputs in the same order always give the same state and the same effects, which is
//! what lets a driver rebuild a session by replaying its input log.
//!
//! # The rules
//!
//! One principle — *keep active full from waiting, keep waiting full by hiring, never
//! over-hire* — gives the seed system's four rules:
//!
//! | a worker leaves…    | by submitting                                    | by returning / abandoning |
//! |---------------------|--------------------------------------------------|---------------------------|
//! | the waiting queue   | hire one                                         | nothing: the slot re-opens |
//! | the active queue    | promote the oldest waiting worker, hire one      | promote the oldest waiting worker; the slot re-opens |
//!
//! A worker whose page goes silent past the heartbeat timeout is gone, but their assignment
//! is not: the platform frees the slot only when they return it or it is abandoned. So a
//! time-out hires for the seat at once, and the slot counts as open again only when the platform
//! reports it given back (and only if the seat is still empty then).
//!
//! The machine never counts "+1 per event": it hires the **deficit**,
//! `max_active + max_waiting − present − open slots − hires in flight`, so any mix of events
//! (and a platform that does not re-open returned slots, see
//! [`PavilionConfig::returned_slots_reopen`]) comes out right.
//!
//! # Driving it
//!
//! Methods sort into getters ([`snapshot`](Pavilion::snapshot), [`phase`](Pavilion::phase), …),
//! inputs ([`handle`](Pavilion::handle), [`handle_timeout`](Pavilion::handle_timeout)) and
//! outputs ([`poll_effect`](Pavilion::poll_effect), [`poll_timeout`](Pavilion::poll_timeout)).
//! After every input, drain `poll_effect` until it returns `None`, then ask `poll_timeout`
//! when to call `handle_timeout` next. See the example on [`Pavilion`].

mod config;
mod io;
mod snapshot;

use std::collections::VecDeque;

use hashbrown::HashTable;
use rustc_hash::{FxBuildHasher, FxHashMap, FxHashSet};

pub use config::{ConfigError, PavilionConfig, StartCondition, Targets};
pub use io::{Effect, EffectKind, Input, Notice, PayKind, Rejected, ReleaseReason, TurnAwayReason};
pub use snapshot::{DepartedView, Departure, HireView, HitView, Phase, SeatView, Snapshot};

use crate::model::{AssignmentId, EffectId, HitId, Money, SessionId, Timestamp, WorkerId};

/// The Pavilion queue machine. See the [module docs](self) for the rules.
///
/// # Driving contract
///
/// ```no_run
/// # use crowdcore::pavilion::{Pavilion, PavilionConfig, Input, Effect};
/// # use crowdcore::{SessionId, Timestamp};
/// # fn now() -> Timestamp { Timestamp::ZERO }
/// # fn next_input() -> Input { Input::Tick }
/// # fn carry_out(_: Effect) {}
/// # fn sleep_until(_: Timestamp) {}
/// let mut machine = Pavilion::new(SessionId::new("study-1"), PavilionConfig::default())?;
/// machine.handle(now(), Input::Start)?;
/// loop {
///     // 1. Drain every effect the last input produced (record each in an outbox first).
///     while let Some(effect) = machine.poll_effect() {
///         carry_out(effect);
///     }
///     // 2. Feed the next input; if none comes before the next deadline, let time pass.
///     match machine.poll_timeout() {
///         Some(at) if at <= now() => machine.handle_timeout(at),
///         _ => {
///             if let Err(rejected) = machine.handle(now(), next_input()) {
///                 eprintln!("rejected: {rejected}"); // the state is unchanged
///             }
///         }
///     }
///     # break;
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct Pavilion {
    session: SessionId,
    config: PavilionConfig,
    now: Timestamp,
    phase: Phase,
    hiring_closed: bool,
    hiring_paused_until: Option<Timestamp>,
    budget_noticed: bool,

    /// Every assignment ever seen, present or departed, in order of first arrival. The queues
    /// refer to records by their index here, so that the hot paths (heartbeats, timeouts,
    /// promotions) hash an assignment id at most once per input.
    records: Vec<Record>,
    /// Beside `records`, by the same index: what a heartbeat reads and writes (the last sign
    /// of life and the deadline list's links), apart from the colder record.
    hot: Vec<Hot>,
    /// The index in `records` of every assignment ever seen, hashed by the record's
    /// assignment id (kept once, in the record).
    record_index: HashTable<usize>,
    /// The records of the workers present (waiting or active), hashed by the record's worker
    /// id: one seat per worker.
    seated: HashTable<usize>,
    /// Waiting workers by `order` (record index); entries whose record moved on are skipped
    /// lazily.
    waiting: VecDeque<(u64, usize)>,
    waiting_len: u32,
    active_len: u32,
    next_order: u64,
    /// The present records by heartbeat deadline, ascending: a doubly linked list through
    /// `hot`, first `deadline_head`, last `deadline_tail` ([`NIL`] when empty). Time never
    /// goes back and the timeout is fixed, so a heartbeat moves its record to the tail; the
    /// list holds exactly the present records, with no stale entries to skip or compact.
    deadline_head: usize,
    deadline_tail: usize,

    hits: Vec<Hit>,
    hit_index: FxHashMap<HitId, u32>,
    open_slots: u32,
    /// Hires in flight: (effect seq, slots), oldest first.
    hires: VecDeque<(u64, u32)>,
    in_flight: u32,
    /// Minor units paid so far.
    spent: i64,

    effects: VecDeque<Effect>,
    next_seq: u64,

    /// A retainer's pool (see [`Pavilion::new_pool`]). Not in the snapshot: the retainer
    /// restores its pools with [`Pavilion::restore_pool`].
    pool: bool,
    /// The rules have run since the state last changed (set at the end of every accepted
    /// input; a new or restored machine has not run them yet). While it holds, an input that
    /// changes nothing the rules read (a heartbeat) may skip them: they would do nothing.
    settled: bool,
}

#[derive(Debug, Clone)]
struct Record {
    assignment: AssignmentId,
    worker: WorkerId,
    hit: u32,
    seat: Seat,
    /// Queue position: set on entering waiting and again on promotion.
    order: u64,
    arrived_at: Timestamp,
    promoted_at: Option<Timestamp>,
    /// A departed worker who still holds their slot on the platform (timed out or turned
    /// away: the page is gone, the assignment is not). A later return or abandonment from the
    /// platform frees it.
    holds_slot: bool,
    /// Contributions the host counted ([`Input::Contributed`]), if it counted any.
    contributed: Option<u32>,
}

/// The part of a record a heartbeat touches, kept in its own array so that a heartbeat reads
/// and writes one small slot per record it moves (its own and its list neighbours').
#[derive(Debug, Clone, Copy)]
struct Hot {
    /// The last sign of life (arrival, heartbeat, page reload); the deadline is this plus the
    /// heartbeat timeout ([`Pavilion::deadline`]).
    last_seen: Timestamp,
    /// The record's neighbours in the deadline list (see `deadline_head`); [`NIL`] both ways
    /// for a record not in it.
    prev: usize,
    next: usize,
}

/// The hash the machine's tables use for an id: its cached hash through `FxHasher`, as an
/// `FxHashMap` keyed by the id would.
#[inline]
fn id_hash(id: &impl std::hash::Hash) -> u64 {
    use std::hash::BuildHasher;
    FxBuildHasher.hash_one(id)
}

/// No record: the end of the deadline list.
const NIL: usize = usize::MAX;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seat {
    Waiting,
    Active,
    Left(Departure),
}

#[derive(Debug, Clone)]
struct Hit {
    id: HitId,
    open: u32,
    expired: bool,
}

/// A snapshot that cannot be restored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RestoreError {
    /// Its configuration is invalid.
    #[error("bad configuration: {0}")]
    Config(#[from] ConfigError),
    /// Its parts contradict each other.
    #[error("inconsistent snapshot: {0}")]
    Inconsistent(String),
}

impl Pavilion {
    /// A new machine for `session`, in [`Phase::Setup`].
    pub fn new(session: SessionId, config: PavilionConfig) -> Result<Self, ConfigError> {
        Self::with_mode(session, config, false)
    }

    /// A retainer's pool (see [`crate::retainer`]): a machine whose active queue its caller
    /// sizes. Three rules differ from [`new`](Self::new)'s:
    /// - `max_active` may be 0 (nothing to route: everyone waits);
    /// - an active worker who leaves (submits, returns, abandons, times out) takes their seat
    ///   along: `max_active` drops by one, so the seat is refilled only if the caller raises it;
    /// - new targets promote waiting workers into the active room they open before any waiting
    ///   worker above `max_waiting` is released.
    pub(crate) fn new_pool(
        session: SessionId,
        config: PavilionConfig,
    ) -> Result<Self, ConfigError> {
        Self::with_mode(session, config, true)
    }

    fn with_mode(
        session: SessionId,
        config: PavilionConfig,
        pool: bool,
    ) -> Result<Self, ConfigError> {
        config.check(pool)?;
        Ok(Self {
            session,
            config,
            now: Timestamp::ZERO,
            phase: Phase::Setup,
            hiring_closed: false,
            hiring_paused_until: None,
            budget_noticed: false,
            records: Vec::new(),
            hot: Vec::new(),
            record_index: HashTable::new(),
            seated: HashTable::new(),
            waiting: VecDeque::new(),
            waiting_len: 0,
            active_len: 0,
            next_order: 0,
            deadline_head: NIL,
            deadline_tail: NIL,
            hits: Vec::new(),
            hit_index: FxHashMap::default(),
            open_slots: 0,
            hires: VecDeque::new(),
            in_flight: 0,
            spent: 0,
            effects: VecDeque::new(),
            next_seq: 1,
            pool,
            settled: false,
        })
    }

    // ----- getters ---------------------------------------------------------------------------

    /// The session this machine runs.
    pub fn session(&self) -> &SessionId {
        &self.session
    }

    /// The configuration in force, with the current targets.
    pub fn config(&self) -> &PavilionConfig {
        &self.config
    }

    /// Where the session is.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// The latest time the machine has seen.
    pub fn now(&self) -> Timestamp {
        self.now
    }

    /// Workers in the waiting queue.
    pub fn waiting_len(&self) -> u32 {
        self.waiting_len
    }

    /// Workers in the active queue.
    pub fn active_len(&self) -> u32 {
        self.active_len
    }

    /// Workers present (waiting + active).
    pub fn present(&self) -> u32 {
        self.waiting_len + self.active_len
    }

    /// Slots open on the platform, as far as the machine knows.
    pub fn open_slots(&self) -> u32 {
        self.open_slots
    }

    /// Slots asked for and not yet answered.
    pub fn hires_in_flight(&self) -> u32 {
        self.in_flight
    }

    /// Paid so far.
    pub fn spent(&self) -> Money {
        Money::new(self.spent, self.config.currency)
    }

    /// Paid so far plus the base pay every open seat may still cost.
    pub fn committed(&self) -> Money {
        Money::new(self.committed_minor(), self.config.currency)
    }

    /// Where an assignment is: `None` if never seen.
    pub fn seat_of(&self, assignment: &AssignmentId) -> Option<SeatState> {
        self.record(assignment).map(|r| match r.seat {
            Seat::Waiting => SeatState::Waiting,
            Seat::Active => SeatState::Active,
            Seat::Left(how) => SeatState::Left(how),
        })
    }

    /// Whether the session posted `hit` (an arrival through any other is refused).
    pub fn has_hit(&self, hit: &HitId) -> bool {
        self.hit_index.contains_key(hit)
    }

    /// How many contributions `assignment` would be paid for if it submitted now reporting
    /// `reported` (see [`PavilionConfig::payable_contributions`]); `None` if it is not present.
    pub fn payable_contributions(&self, assignment: &AssignmentId, reported: u32) -> Option<u32> {
        let i = self.present_index(assignment).ok()?;
        Some(
            self.config
                .payable_contributions(self.records[i].contributed, reported),
        )
    }

    /// The whole state as plain data.
    pub fn snapshot(&self) -> Snapshot {
        let view = |i: usize, r: &Record| SeatView {
            worker: r.worker.clone(),
            assignment: r.assignment.clone(),
            hit: self.hits[r.hit as usize].id.clone(),
            arrived_at: r.arrived_at,
            promoted_at: r.promoted_at,
            last_seen: self.hot[i].last_seen,
            order: r.order,
            contributed: r.contributed,
        };
        let mut present: Vec<(u64, Seat, SeatView)> = Vec::new();
        let mut departed = Vec::new();
        for (i, r) in self.records.iter().enumerate() {
            match r.seat {
                Seat::Left(how) => departed.push(DepartedView {
                    worker: r.worker.clone(),
                    assignment: r.assignment.clone(),
                    hit: self.hits[r.hit as usize].id.clone(),
                    how,
                    holds_slot: r.holds_slot,
                }),
                seat => present.push((r.order, seat, view(i, r))),
            }
        }
        present.sort_by_key(|(order, _, _)| *order);
        departed.sort_by(|a, b| a.assignment.cmp(&b.assignment));
        let (mut waiting, mut active) = (Vec::new(), Vec::new());
        for (_, seat, v) in present {
            if seat == Seat::Waiting {
                waiting.push(v);
            } else {
                active.push(v);
            }
        }
        Snapshot {
            session: self.session.clone(),
            config: self.config.clone(),
            now: self.now,
            phase: self.phase,
            hiring_closed: self.hiring_closed,
            hiring_paused_until: self.hiring_paused_until,
            budget_noticed: self.budget_noticed,
            waiting,
            active,
            departed,
            hits: self
                .hits
                .iter()
                .map(|h| HitView {
                    hit: h.id.clone(),
                    open_slots: h.open,
                    expired: h.expired,
                })
                .collect(),
            hires_in_flight: self
                .hires
                .iter()
                .map(|&(seq, count)| HireView {
                    id: self.effect_id(seq),
                    count,
                })
                .collect(),
            open_slots: self.open_slots,
            spent: self.spent(),
            committed: self.committed(),
            next_order: self.next_order,
            next_effect_seq: self.next_seq,
            pending_effects: self.effects.iter().cloned().collect(),
        }
    }

    /// Rebuilds a machine from a [`snapshot`](Self::snapshot). The result behaves exactly as
    /// the machine the snapshot was taken from.
    pub fn restore(snapshot: Snapshot) -> Result<Self, RestoreError> {
        Self::restore_with_mode(snapshot, false)
    }

    /// Rebuilds a retainer's pool (see [`new_pool`](Self::new_pool)) from its snapshot.
    pub(crate) fn restore_pool(snapshot: Snapshot) -> Result<Self, RestoreError> {
        Self::restore_with_mode(snapshot, true)
    }

    fn restore_with_mode(snapshot: Snapshot, pool: bool) -> Result<Self, RestoreError> {
        let Snapshot {
            session,
            config,
            now,
            phase,
            hiring_closed,
            hiring_paused_until,
            budget_noticed,
            waiting,
            active,
            departed,
            hits,
            hires_in_flight,
            open_slots,
            spent,
            committed: _,
            next_order,
            next_effect_seq,
            pending_effects,
        } = snapshot;
        let bad = |msg: String| Err(RestoreError::Inconsistent(msg));
        let mut m = Pavilion::with_mode(session, config, pool)?;
        if spent.currency != m.config.currency {
            return bad(format!("spent is in {}", spent.currency));
        }
        m.now = now;
        m.phase = phase;
        m.hiring_closed = hiring_closed;
        m.hiring_paused_until = hiring_paused_until;
        m.budget_noticed = budget_noticed;
        m.spent = spent.minor;
        m.next_seq = next_effect_seq;
        for h in hits {
            if m.hit_index.contains_key(&h.hit) {
                return bad(format!("HIT {} listed twice", h.hit));
            }
            m.hit_index.insert(h.hit.clone(), m.hits.len() as u32);
            m.open_slots += h.open_slots;
            m.hits.push(Hit {
                id: h.hit,
                open: h.open_slots,
                expired: h.expired,
            });
        }
        if m.open_slots != open_slots {
            return bad(format!(
                "open_slots is {open_slots} but the HITs hold {}",
                m.open_slots
            ));
        }
        for hire in hires_in_flight {
            if hire.id.session != m.session || hire.id.seq >= next_effect_seq {
                return bad(format!("hire {} is not an effect of this session", hire.id));
            }
            m.hires.push_back((hire.id.seq, hire.count));
            m.in_flight += hire.count;
        }
        let seats = waiting
            .into_iter()
            .map(|v| (Seat::Waiting, v))
            .chain(active.into_iter().map(|v| (Seat::Active, v)));
        for (seat, v) in seats {
            let hit = m
                .hit_of(&v.hit)
                .map_err(|e| RestoreError::Inconsistent(e.to_string()))?;
            let order = v.order;
            if order >= next_order {
                return bad(format!("assignment {} is after next_order", v.assignment));
            }
            if m.seat_of_worker(&v.worker).is_some() {
                return bad(format!("worker {} holds two seats", v.worker));
            }
            let record = Record {
                assignment: v.assignment.clone(),
                worker: v.worker,
                hit,
                seat,
                order,
                arrived_at: v.arrived_at,
                promoted_at: v.promoted_at,
                holds_slot: false,
                contributed: v.contributed,
            };
            let Some(i) = m.add_record(record, v.last_seen) else {
                return bad(format!("assignment {} listed twice", v.assignment));
            };
            m.seat(i);
            if seat == Seat::Waiting {
                m.waiting.push_back((order, i));
                m.waiting_len += 1;
            } else {
                m.active_len += 1;
            }
        }
        m.next_order = next_order;
        let mut present: Vec<(Timestamp, u64, usize)> = m
            .records
            .iter()
            .zip(&m.hot)
            .enumerate()
            .map(|(i, (r, h))| (h.last_seen, r.order, i))
            .collect();
        present.sort();
        for (_, _, i) in present {
            m.link_back(i);
        }
        for d in departed {
            let hit = m
                .hit_of(&d.hit)
                .map_err(|e| RestoreError::Inconsistent(e.to_string()))?;
            let record = Record {
                assignment: d.assignment.clone(),
                worker: d.worker,
                hit,
                seat: Seat::Left(d.how),
                order: 0,
                arrived_at: Timestamp::ZERO,
                promoted_at: None,
                holds_slot: d.holds_slot,
                contributed: None,
            };
            if m.add_record(record, Timestamp::ZERO).is_none() {
                return bad(format!("assignment {} listed twice", d.assignment));
            }
        }
        m.effects = pending_effects.into();
        Ok(m)
    }

    // ----- inputs ----------------------------------------------------------------------------

    /// Feeds one input at time `now`. On `Err` the machine is exactly as before.
    #[inline]
    pub fn handle(&mut self, now: Timestamp, input: Input) -> Result<(), Rejected> {
        // Most inputs of a busy session are heartbeats: their path is small enough to inline
        // into the driver's loop, apart from the rest of the machine.
        match input {
            Input::Heartbeat { assignment } => self.handle_heartbeat(now, assignment),
            input => self.handle_input(now, input),
        }
    }

    fn handle_heartbeat(
        &mut self,
        now: Timestamp,
        assignment: AssignmentId,
    ) -> Result<(), Rejected> {
        if now < self.now {
            return Err(self.clock_went_back(now));
        }
        let i = self.present_index(&assignment)?;
        // Let go of the id before writing anything: dropping it is an atomic decrement, which
        // waits for every earlier store to complete.
        drop(assignment);
        self.now = now;
        self.touch(now, i);
        // A heartbeat moves only the time and a deadline. The rules read the time only to end
        // a hiring pause; with none due, they would change nothing (they ran after the last
        // input and nothing they read has moved), and neither would the waiting queue's
        // compaction.
        if !self.settled || self.hiring_paused_until.is_some_and(|until| until <= now) {
            self.settle();
        }
        Ok(())
    }

    #[cold]
    fn clock_went_back(&self, now: Timestamp) -> Rejected {
        Rejected::ClockWentBack {
            now,
            last: self.now,
        }
    }

    /// Every input but a heartbeat.
    #[inline(never)]
    fn handle_input(&mut self, now: Timestamp, input: Input) -> Result<(), Rejected> {
        if now < self.now {
            return Err(self.clock_went_back(now));
        }
        match input {
            Input::Arrive {
                worker,
                assignment,
                hit,
            } => self.arrive(now, worker, assignment, hit)?,
            Input::Heartbeat { assignment } => return self.handle_heartbeat(now, assignment),
            Input::Submit {
                assignment,
                contributions,
            } => self.leave(now, &assignment, Departure::Submitted, contributions)?,
            Input::Contributed { assignment, count } => {
                self.contributed(now, &assignment, count)?
            }
            Input::Return { assignment } => self.leave(now, &assignment, Departure::Returned, 0)?,
            Input::Abandon { assignment } => {
                self.leave(now, &assignment, Departure::Abandoned, 0)?
            }
            Input::Tick => {
                self.now = now;
                self.expire_deadlines(now);
            }
            Input::HirePosted { hire, hit, slots } => self.hire_posted(now, hire, hit, slots)?,
            Input::HireFailed { hire, reason } => self.hire_failed(now, hire, reason)?,
            Input::Start => self.start(now)?,
            Input::Stop => self.stop(now)?,
            Input::Expire => self.expire(now)?,
            Input::ExpireHit { hit } => {
                let hit = self.hit_of(&hit)?;
                self.now = now;
                self.expire_hit(hit);
            }
            Input::Migrate { count } => self.migrate(now, count)?,
            Input::SetTargets(targets) => self.set_targets(now, targets)?,
        }
        self.settle();
        Ok(())
    }

    /// Runs the rules after an accepted input.
    #[inline(never)]
    fn settle(&mut self) {
        self.rebalance();
        self.tidy();
        self.settled = true;
    }

    /// Lets time pass to `now`: heartbeat deadlines and hiring pauses up to `now` fall due.
    /// The same as handling [`Input::Tick`]; a `now` earlier than the machine's time is taken
    /// as the machine's time.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        let now = now.max(self.now);
        // Tick is refused only for a clock that went back, which `max` rules out.
        let _ = self.handle(now, Input::Tick);
    }

    // ----- outputs ---------------------------------------------------------------------------

    /// The next effect to carry out, oldest first.
    #[inline]
    pub fn poll_effect(&mut self) -> Option<Effect> {
        self.effects.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) must be called next, if ever.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        let heartbeat = (self.deadline_head != NIL).then(|| self.deadline(self.deadline_head));
        let pause = self.hiring_paused_until;
        match (heartbeat, pause) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    // ----- handlers: validate everything, then mutate ------------------------------------------

    fn arrive(
        &mut self,
        now: Timestamp,
        worker: WorkerId,
        assignment: AssignmentId,
        hit: HitId,
    ) -> Result<(), Rejected> {
        if let Some(i) = self.index_of(&assignment) {
            let r = &self.records[i];
            return match r.seat {
                Seat::Left(_) => Err(Rejected::AlreadyLeft(assignment)),
                _ if r.worker != worker => Err(Rejected::WorkerMismatch {
                    assignment,
                    holder: r.worker.clone(),
                    claimed: worker,
                }),
                // A page reload: the worker is still here.
                _ => {
                    self.now = now;
                    self.touch(now, i);
                    Ok(())
                }
            };
        }
        let hit = self.hit_of(&hit)?;
        self.now = now;
        let took_open_slot = {
            let h = &mut self.hits[hit as usize];
            if h.open > 0 {
                h.open -= 1;
                self.open_slots -= 1;
                true
            } else {
                false
            }
        };
        let capacity = self.config.targets().capacity();
        let turn_away = if self.phase == Phase::Stopped {
            Some(TurnAwayReason::JobEnded)
        } else if self.seat_of_worker(&worker).is_some() {
            Some(TurnAwayReason::AlreadySeated)
        } else if took_open_slot {
            // The seat was counted when the slot was opened.
            (self.present() >= capacity).then_some(TurnAwayReason::JobFull)
        } else if self.present() + self.open_slots + self.in_flight >= capacity {
            // Nobody was hired for this one (the platform over-delivered, or targets fell).
            Some(TurnAwayReason::JobFull)
        } else if !self.affordable(1) {
            Some(TurnAwayReason::OverBudget)
        } else {
            None
        };
        let mut record = Record {
            assignment,
            worker,
            hit,
            seat: Seat::Waiting,
            order: 0,
            arrived_at: now,
            promoted_at: None,
            holds_slot: false,
            contributed: None,
        };
        if let Some(reason) = turn_away {
            record.seat = Seat::Left(Departure::TurnedAway);
            record.holds_slot = true; // until they return it
            let kind = EffectKind::TurnAway {
                worker: record.worker.clone(),
                assignment: record.assignment.clone(),
                reason,
            };
            // The lookup above found no record for this assignment.
            self.insert_record(record, now);
            self.emit(kind);
            if !took_open_slot && reason != TurnAwayReason::AlreadySeated {
                // The platform re-opened a slot the machine did not count (a freed slot it
                // has not reported yet, an over-delivery): the next worker to take it would be
                // turned away too. Close the HIT; any slot it still had is hired anew.
                self.expire_hit(hit);
            }
            return Ok(());
        }
        record.order = self.take_order();
        let order = record.order;
        // The lookup above found no record for this assignment.
        let i = self.insert_record(record, now);
        self.seat(i);
        self.waiting.push_back((order, i));
        self.waiting_len += 1;
        self.link_back(i);
        Ok(())
    }

    fn contributed(
        &mut self,
        now: Timestamp,
        assignment: &AssignmentId,
        count: u32,
    ) -> Result<(), Rejected> {
        let i = self.present_index(assignment)?;
        self.now = now;
        let r = &mut self.records[i];
        r.contributed = Some(r.contributed.unwrap_or(0).saturating_add(count));
        Ok(())
    }

    fn leave(
        &mut self,
        now: Timestamp,
        assignment: &AssignmentId,
        how: Departure,
        contributions: u32,
    ) -> Result<(), Rejected> {
        // One lookup for both questions below.
        let Some(i) = self.index_of(assignment) else {
            return Err(Rejected::UnknownAssignment(assignment.clone()));
        };
        let r = &self.records[i];
        if how != Departure::Submitted && r.holds_slot {
            // The platform reports the slot of a worker who already left (timed out, turned
            // away) as given back.
            self.now = now;
            self.free_held_slot(i);
            return Ok(());
        }
        if matches!(r.seat, Seat::Left(_)) {
            return Err(Rejected::AlreadyLeft(assignment.clone()));
        }
        self.now = now;
        self.depart(i, how, contributions);
        Ok(())
    }

    /// The platform gave back the slot a departed worker held. It re-opens (if the platform
    /// re-opens slots) when the seat is still empty and the budget covers it. If the seat was
    /// hired again meanwhile (or the budget is spent) the slot is surplus: a worker taking it
    /// would only be turned away (and give it back, again and again), so its HIT is expired
    /// instead, and any other slot it had is hired anew.
    fn free_held_slot(&mut self, i: usize) {
        // Invariant: the caller checked the record holds its slot.
        let r = &mut self.records[i];
        r.holds_slot = false;
        let hit = r.hit as usize;
        if !self.config.returned_slots_reopen || self.hits[hit].expired {
            return;
        }
        let seats = self.present() + self.open_slots + self.in_flight;
        // Counting it open reserves its base pay: only if the budget covers that.
        let room = seats < self.config.targets().capacity() && self.affordable(1);
        if room {
            self.hits[hit].open += 1;
            self.open_slots += 1;
        } else {
            self.expire_hit(hit as u32);
        }
    }

    /// Closes one HIT (no-op if already closed): its open slots no longer count.
    fn expire_hit(&mut self, hit: u32) {
        let h = &mut self.hits[hit as usize];
        if h.expired {
            return;
        }
        h.expired = true;
        self.open_slots -= h.open;
        h.open = 0;
        let hits = vec![h.id.clone()];
        self.emit(EffectKind::ExpireHits { hits });
    }

    fn hire_posted(
        &mut self,
        now: Timestamp,
        hire: Option<EffectId>,
        hit: HitId,
        slots: u32,
    ) -> Result<(), Rejected> {
        let index = self.find_hire(hire.as_ref())?;
        self.now = now;
        let (_, count) = self
            .hires
            .remove(index)
            .expect("find_hire returned a valid index");
        self.in_flight -= count;
        // Only the slots asked for were hired (and budgeted): extra ones count as not open,
        // so arrivals through them are seated only if a seat and the budget allow.
        let slots = slots.min(count);
        let h = match self.hit_index.get(&hit) {
            Some(&h) => h,
            None => {
                self.hit_index.insert(hit.clone(), self.hits.len() as u32);
                self.hits.push(Hit {
                    id: hit,
                    open: 0,
                    expired: false,
                });
                (self.hits.len() - 1) as u32
            }
        };
        let closed = self.hiring_closed || self.phase == Phase::Stopped;
        let h = &mut self.hits[h as usize];
        if closed || (h.expired && !self.config.posts_reopen_hits) {
            // Posted after the operator closed hiring (or onto a HIT this platform cannot
            // re-open): close it at once.
            if !h.expired {
                h.expired = true;
                let hits = vec![h.id.clone()];
                self.emit(EffectKind::ExpireHits { hits });
            }
        } else {
            // A platform that keeps one HIT for every hire (Prolific: one study whose places
            // only grow, `posts_reopen_hits`) answers a later post with a HIT expired before
            // (a surplus slot, `expire_hit`): posting onto it re-opened it, with the slots.
            h.expired = false;
            h.open += slots;
            self.open_slots += slots;
        }
        Ok(())
    }

    fn hire_failed(
        &mut self,
        now: Timestamp,
        hire: Option<EffectId>,
        reason: String,
    ) -> Result<(), Rejected> {
        let index = self.find_hire(hire.as_ref())?;
        self.now = now;
        let (_, count) = self
            .hires
            .remove(index)
            .expect("find_hire returned a valid index");
        self.in_flight -= count;
        let retry_at = now.plus_millis(self.config.hire_retry_ms);
        self.hiring_paused_until = Some(retry_at);
        self.emit(EffectKind::Notify {
            notice: Notice::HireFailed { reason, retry_at },
        });
        Ok(())
    }

    fn start(&mut self, now: Timestamp) -> Result<(), Rejected> {
        match self.phase {
            Phase::Setup => {}
            Phase::Stopped => return Err(Rejected::Stopped),
            Phase::Recruiting | Phase::Running => return Err(Rejected::AlreadyStarted),
        }
        self.now = now;
        self.phase = Phase::Recruiting;
        Ok(())
    }

    fn stop(&mut self, now: Timestamp) -> Result<(), Rejected> {
        if self.phase == Phase::Stopped {
            return Err(Rejected::Stopped);
        }
        self.now = now;
        self.phase = Phase::Stopped;
        self.hiring_paused_until = None;
        let mut present: Vec<(u64, usize)> = self
            .records
            .iter()
            .enumerate()
            .filter(|(_, r)| !matches!(r.seat, Seat::Left(_)))
            .map(|(i, r)| (r.order, i))
            .collect();
        present.sort();
        for (_, i) in present {
            self.release(i, ReleaseReason::JobStopped);
        }
        Ok(())
    }

    fn expire(&mut self, now: Timestamp) -> Result<(), Rejected> {
        if self.phase == Phase::Setup {
            return Err(Rejected::NotStarted);
        }
        self.now = now;
        self.hiring_closed = true;
        self.hiring_paused_until = None;
        let mut hits = Vec::new();
        for h in self.hits.iter_mut().filter(|h| !h.expired) {
            h.expired = true;
            self.open_slots -= h.open;
            h.open = 0;
            hits.push(h.id.clone());
        }
        if !hits.is_empty() {
            self.emit(EffectKind::ExpireHits { hits });
        }
        Ok(())
    }

    fn migrate(&mut self, now: Timestamp, count: u32) -> Result<(), Rejected> {
        match self.phase {
            Phase::Setup => return Err(Rejected::NotStarted),
            Phase::Stopped => return Err(Rejected::Stopped),
            Phase::Recruiting | Phase::Running => {}
        }
        self.now = now;
        if self.phase == Phase::Recruiting {
            self.begin();
        }
        let room = self.config.max_active.saturating_sub(self.active_len);
        for _ in 0..count.min(room) {
            if !self.promote_oldest() {
                break;
            }
        }
        Ok(())
    }

    fn set_targets(&mut self, now: Timestamp, targets: Targets) -> Result<(), Rejected> {
        let mut config = self.config.clone();
        config.set_targets(targets);
        config.check(self.pool)?;
        if self.phase == Phase::Stopped {
            return Err(Rejected::Stopped);
        }
        self.now = now;
        self.config = config;
        // Release the newest workers above the new maximums: active first, then waiting
        // (before the task begins everyone waits, so waiting may hold every seat).
        let waiting_cap = if self.phase == Phase::Running {
            targets.max_waiting
        } else {
            targets.capacity()
        };
        let excess_active = self.active_len.saturating_sub(targets.max_active);
        // A pool promotes into the active room it is given before releasing anyone waiting.
        let promotable = if self.pool && self.phase == Phase::Running {
            let room = targets.max_active.saturating_sub(self.active_len);
            room.min(self.waiting_len)
        } else {
            0
        };
        let excess_waiting = (self.waiting_len - promotable).saturating_sub(waiting_cap);
        if excess_active + excess_waiting > 0 {
            let mut newest: Vec<(u64, Seat, usize)> = self
                .records
                .iter()
                .enumerate()
                .filter(|(_, r)| !matches!(r.seat, Seat::Left(_)))
                .map(|(i, r)| (r.order, r.seat, i))
                .collect();
            newest.sort_by_key(|(order, _, _)| std::cmp::Reverse(*order));
            let active = newest.iter().filter(|(_, s, _)| *s == Seat::Active);
            let waiting = newest.iter().filter(|(_, s, _)| *s == Seat::Waiting);
            let chosen: Vec<usize> = active
                .take(excess_active as usize)
                .chain(waiting.take(excess_waiting as usize))
                .map(|&(_, _, i)| i)
                .collect();
            for i in chosen {
                self.release(i, ReleaseReason::TargetsLowered);
            }
        }
        Ok(())
    }

    // ----- the rules ---------------------------------------------------------------------------

    /// Restores the invariants after any input: begin the task when its condition holds, keep
    /// active full from waiting, hire the deficit.
    fn rebalance(&mut self) {
        if self.phase == Phase::Recruiting
            && self
                .config
                .start_threshold()
                .is_some_and(|need| self.present() >= need)
        {
            self.begin();
        }
        if self.phase == Phase::Running {
            while self.active_len < self.config.max_active && self.promote_oldest() {}
        }
        self.hire_deficit();
    }

    fn begin(&mut self) {
        self.phase = Phase::Running;
        let present = self.present();
        self.emit(EffectKind::Notify {
            notice: Notice::TaskBegan { present },
        });
    }

    fn hire_deficit(&mut self) {
        if !matches!(self.phase, Phase::Recruiting | Phase::Running) || self.hiring_closed {
            return;
        }
        if let Some(until) = self.hiring_paused_until {
            if self.now < until {
                return;
            }
            self.hiring_paused_until = None;
        }
        let seats = self.present() + self.open_slots + self.in_flight;
        let deficit = self.config.targets().capacity().saturating_sub(seats);
        if deficit == 0 {
            return;
        }
        let mut count = deficit;
        while count > 0 && !self.affordable(count) {
            count -= 1;
        }
        if count < deficit {
            self.notice_budget();
        }
        if count > 0 {
            let seq = self.emit(EffectKind::Hire { count });
            self.hires.push_back((seq, count));
            self.in_flight += count;
        }
    }

    /// Moves the oldest waiting worker to active. Returns false if nobody waits.
    fn promote_oldest(&mut self) -> bool {
        while let Some((order, i)) = self.waiting.pop_front() {
            let r = &mut self.records[i];
            if r.seat != Seat::Waiting || r.order != order {
                continue; // a stale entry: the worker left or was moved
            }
            r.seat = Seat::Active;
            r.promoted_at = Some(self.now);
            r.order = self.next_order;
            self.next_order += 1;
            let (worker, assignment) = (r.worker.clone(), r.assignment.clone());
            self.waiting_len -= 1;
            self.active_len += 1;
            self.emit(EffectKind::Promote { worker, assignment });
            return true;
        }
        false
    }

    /// Removes a present worker, settling their slot and pay.
    fn depart(&mut self, i: usize, how: Departure, contributions: u32) {
        let now = self.now;
        let reopen = self.config.returned_slots_reopen;
        self.unlink(i);
        let r = &mut self.records[i];
        let was = r.seat;
        r.seat = Seat::Left(how);
        let hit = r.hit;
        let (arrived_at, promoted_at) = (r.arrived_at, r.promoted_at);
        match was {
            Seat::Waiting => self.waiting_len -= 1,
            Seat::Active => self.active_len -= 1,
            Seat::Left(_) => unreachable!("callers pass only present assignments"),
        }
        if self.pool && was == Seat::Active && how != Departure::Released {
            // A pool's active seat leaves with its worker; its caller decides on a refill.
            // (A release lowers the targets itself, or ends the job.)
            self.config.max_active = self.config.max_active.saturating_sub(1);
        }
        self.unseat(i);
        match how {
            Departure::TimedOut => {
                // The page went silent, but the worker still holds the assignment until they
                // return it or the platform abandons it: the slot is not open yet, so the seat
                // is hired again now.
                let r = &mut self.records[i];
                r.holds_slot = true;
                let (worker, assignment) = (r.worker.clone(), r.assignment.clone());
                self.emit(EffectKind::TimedOut { worker, assignment });
            }
            Departure::Returned | Departure::Abandoned => {
                let h = &mut self.hits[hit as usize];
                if reopen && !h.expired {
                    h.open += 1;
                    self.open_slots += 1;
                }
            }
            Departure::Submitted | Departure::Released => {
                let waited = promoted_at.unwrap_or(now).millis_since(arrived_at);
                let worked = promoted_at.map_or(0, |p| now.millis_since(p));
                let counted = self.records[i].contributed;
                let units = self.config.payable_contributions(counted, contributions);
                self.pay(i, waited, worked, units);
            }
            Departure::TurnedAway => {}
        }
    }

    fn release(&mut self, i: usize, reason: ReleaseReason) {
        let r = &self.records[i];
        let (worker, assignment) = (r.worker.clone(), r.assignment.clone());
        self.emit(EffectKind::Release {
            worker,
            assignment,
            reason,
        });
        self.depart(i, Departure::Released, 0);
    }

    /// Pays record `i`'s worker.
    fn pay(&mut self, i: usize, waited_ms: u64, worked_ms: u64, contributions: u32) {
        let c = &self.config;
        let parts = [
            (PayKind::Base, c.base_pay_cents),
            (
                PayKind::WaitingBonus,
                per_minute(waited_ms, c.waiting_cents_per_minute),
            ),
            (
                PayKind::ActiveBonus,
                per_minute(worked_ms, c.active_cents_per_minute),
            ),
            (
                PayKind::ContributionBonus,
                c.per_contribution_cents
                    .saturating_mul(i64::from(contributions)),
            ),
        ];
        for (kind, mut amount) in parts {
            if kind == PayKind::Base {
                // Reserved since the seat was opened: it moves from committed to spent.
                self.spent = self.spent.saturating_add(amount);
            } else if let Some(budget) = self.config.budget_cents {
                let room = (budget - self.committed_minor()).max(0);
                if amount > room {
                    amount = room;
                    self.notice_budget();
                }
                self.spent += amount;
            } else {
                self.spent = self.spent.saturating_add(amount);
            }
            if amount > 0 {
                let r = &self.records[i];
                self.emit(EffectKind::Pay {
                    worker: r.worker.clone(),
                    assignment: r.assignment.clone(),
                    kind,
                    amount: Money::new(amount, self.config.currency),
                });
            }
        }
    }

    fn expire_deadlines(&mut self, now: Timestamp) {
        if self.hiring_paused_until.is_some_and(|t| t <= now) {
            self.hiring_paused_until = None;
        }
        // Deadlines falling due together are settled in (deadline, queue position) order, so
        // the effects do not depend on the order heartbeats were pushed in.
        let mut due = Vec::new();
        let mut i = self.deadline_head;
        while i != NIL {
            let (at, next) = (self.deadline(i), self.hot[i].next);
            if at > now {
                break;
            }
            due.push((at, self.records[i].order, i));
            i = next;
        }
        due.sort_unstable();
        for (_, _, i) in due {
            if !matches!(self.records[i].seat, Seat::Left(_)) {
                self.depart(i, Departure::TimedOut, 0);
            }
        }
    }

    // ----- helpers -----------------------------------------------------------------------------

    fn emit(&mut self, kind: EffectKind) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.effects.push_back(Effect {
            id: self.effect_id(seq),
            at: self.now,
            kind,
        });
        seq
    }

    fn effect_id(&self, seq: u64) -> EffectId {
        EffectId::new(self.session.clone(), seq)
    }

    fn take_order(&mut self) -> u64 {
        let o = self.next_order;
        self.next_order += 1;
        o
    }

    fn notice_budget(&mut self) {
        if self.budget_noticed {
            return;
        }
        self.budget_noticed = true;
        let notice = Notice::BudgetExhausted {
            committed_cents: self.committed_minor(),
            budget_cents: self.config.budget_cents.unwrap_or(i64::MAX),
        };
        self.emit(EffectKind::Notify { notice });
    }

    fn committed_minor(&self) -> i64 {
        let seats = i64::from(self.present() + self.open_slots + self.in_flight);
        self.spent
            .saturating_add(self.config.base_pay_cents.saturating_mul(seats))
    }

    /// Whether `n` more seats' base pay fits in the budget.
    fn affordable(&self, n: u32) -> bool {
        let Some(budget) = self.config.budget_cents else {
            return true;
        };
        let extra = self.config.base_pay_cents.saturating_mul(i64::from(n));
        self.committed_minor().saturating_add(extra) <= budget
    }

    fn hit_of(&self, hit: &HitId) -> Result<u32, Rejected> {
        self.hit_index
            .get(hit)
            .copied()
            .ok_or_else(|| Rejected::UnknownHit(hit.clone()))
    }

    /// The record of an assignment, if it was ever seen.
    fn record(&self, assignment: &AssignmentId) -> Option<&Record> {
        self.index_of(assignment).map(|i| &self.records[i])
    }

    /// Adds the record of an assignment never seen before and returns its index; `None` (and
    /// nothing added) if the assignment is known.
    fn add_record(&mut self, record: Record, last_seen: Timestamp) -> Option<usize> {
        match self.index_of(&record.assignment) {
            Some(_) => None,
            None => Some(self.insert_record(record, last_seen)),
        }
    }

    /// Adds the record of an assignment the caller found unknown and returns its index.
    fn insert_record(&mut self, record: Record, last_seen: Timestamp) -> usize {
        let i = self.records.len();
        let records = &self.records;
        self.record_index
            .insert_unique(id_hash(&record.assignment), i, |&j| {
                id_hash(&records[j].assignment)
            });
        self.hot.push(Hot {
            last_seen,
            prev: NIL,
            next: NIL,
        });
        self.records.push(record);
        i
    }

    /// The index of an assignment's record, if it was ever seen.
    #[inline]
    fn index_of(&self, assignment: &AssignmentId) -> Option<usize> {
        let records = &self.records;
        self.record_index
            .find(id_hash(assignment), |&i| {
                records[i].assignment == *assignment
            })
            .copied()
    }

    /// The record of the seat `worker` holds, if any.
    fn seat_of_worker(&self, worker: &WorkerId) -> Option<usize> {
        let records = &self.records;
        self.seated
            .find(id_hash(worker), |&i| records[i].worker == *worker)
            .copied()
    }

    /// Counts record `i`'s worker as seated (they hold no other seat).
    fn seat(&mut self, i: usize) {
        let records = &self.records;
        self.seated
            .insert_unique(id_hash(&records[i].worker), i, |&j| {
                id_hash(&records[j].worker)
            });
    }

    /// Record `i`'s worker no longer holds a seat.
    fn unseat(&mut self, i: usize) {
        if let Ok(entry) = self
            .seated
            .find_entry(id_hash(&self.records[i].worker), |&j| j == i)
        {
            entry.remove();
        }
    }

    /// The index of a present assignment's record.
    fn present_index(&self, assignment: &AssignmentId) -> Result<usize, Rejected> {
        match self.index_of(assignment) {
            None => Err(Rejected::UnknownAssignment(assignment.clone())),
            Some(i) if matches!(self.records[i].seat, Seat::Left(_)) => {
                Err(Rejected::AlreadyLeft(assignment.clone()))
            }
            Some(i) => Ok(i),
        }
    }

    fn find_hire(&self, hire: Option<&EffectId>) -> Result<usize, Rejected> {
        match hire {
            None if self.hires.is_empty() => Err(Rejected::NoHireInFlight),
            None => Ok(0),
            Some(id) => self
                .hires
                .iter()
                .position(|&(seq, _)| id.session == self.session && seq == id.seq)
                .ok_or_else(|| Rejected::UnknownHire(id.clone())),
        }
    }

    /// Present record `i`'s heartbeat deadline.
    fn deadline(&self, i: usize) -> Timestamp {
        self.hot[i]
            .last_seen
            .plus_millis(self.config.heartbeat_timeout_ms)
    }

    /// Records a sign of life from a present worker.
    #[inline]
    fn touch(&mut self, now: Timestamp, i: usize) {
        let h = &mut self.hot[i];
        if h.last_seen == now {
            return;
        }
        h.last_seen = now;
        let (prev, next) = (h.prev, h.next);
        let tail = self.deadline_tail;
        if tail == i {
            return;
        }
        // `i` is listed and not last, so `next` and `tail` are records other than `i`.
        if prev == NIL {
            self.deadline_head = next;
        } else {
            self.hot[prev].next = next;
        }
        self.hot[next].prev = prev;
        self.hot[tail].next = i;
        let h = &mut self.hot[i];
        (h.prev, h.next) = (tail, NIL);
        self.deadline_tail = i;
    }

    /// Appends present record `i` (not in the deadline list) to the list's tail.
    fn link_back(&mut self, i: usize) {
        let tail = self.deadline_tail;
        let h = &mut self.hot[i];
        h.prev = tail;
        h.next = NIL;
        if tail == NIL {
            self.deadline_head = i;
        } else {
            self.hot[tail].next = i;
        }
        self.deadline_tail = i;
    }

    /// Takes record `i` (in the deadline list) out of the list.
    fn unlink(&mut self, i: usize) {
        let h = &mut self.hot[i];
        let (prev, next) = (h.prev, h.next);
        (h.prev, h.next) = (NIL, NIL);
        if prev == NIL {
            self.deadline_head = next;
        } else {
            self.hot[prev].next = next;
        }
        if next == NIL {
            self.deadline_tail = prev;
        } else {
            self.hot[next].prev = prev;
        }
    }

    /// Drops stale waiting-queue entries so the queue stays near the size of what it tracks.
    fn tidy(&mut self) {
        if self.waiting.len() > 2 * self.waiting_len as usize + 64 {
            let records = &self.records;
            self.waiting.retain(|&(order, i)| {
                let r = &records[i];
                r.seat == Seat::Waiting && r.order == order
            });
        }
    }

    /// Checks the machine's invariants; for tests and fuzzers. Returns the first violation.
    ///
    /// Holds after every input: a worker is in at most one queue and the queue counts match;
    /// active ≤ `max_active`; nobody waits while active has room once the task runs; hiring
    /// never pushes `present + open + in flight` above the targets (checked by callers across
    /// transitions, since lowering targets may leave more seats than the new targets); committed
    /// spending ≤ budget; the deadline list holds exactly the present records, by deadline.
    pub fn check_invariants(&self) -> Result<(), String> {
        let (mut waiting, mut active) = (0u32, 0u32);
        if self.record_index.len() != self.records.len()
            || self
                .records
                .iter()
                .enumerate()
                .any(|(i, r)| self.index_of(&r.assignment) != Some(i))
        {
            return Err("the record index disagrees with the records".to_owned());
        }
        if self.hot.len() != self.records.len() {
            return Err("the hot slots disagree with the records".to_owned());
        }
        for r in &self.records {
            match r.seat {
                Seat::Waiting => waiting += 1,
                Seat::Active => active += 1,
                Seat::Left(_) => {}
            }
        }
        if (waiting, active) != (self.waiting_len, self.active_len) {
            return Err(format!(
                "queue counts {}/{} disagree with records {waiting}/{active}",
                self.waiting_len, self.active_len
            ));
        }
        let mut workers = FxHashSet::default();
        for (i, r) in self.records.iter().enumerate() {
            if matches!(r.seat, Seat::Left(_)) {
                continue;
            }
            if !workers.insert(&r.worker) {
                return Err(format!("worker {} holds two seats", r.worker));
            }
            if self.seat_of_worker(&r.worker) != Some(i) {
                return Err(format!("worker {} is not seated at their record", r.worker));
            }
        }
        if workers.len() != self.seated.len() {
            return Err("the seated workers disagree with the records".to_owned());
        }
        let live_waiting = self
            .waiting
            .iter()
            .filter(|&&(o, i)| {
                self.records
                    .get(i)
                    .is_some_and(|r| r.seat == Seat::Waiting && r.order == o)
            })
            .count();
        if live_waiting != waiting as usize {
            return Err(format!(
                "{waiting} waiting but {live_waiting} live waiting entries"
            ));
        }
        if self.active_len > self.config.max_active {
            return Err(format!(
                "active {} above max_active {}",
                self.active_len, self.config.max_active
            ));
        }
        if self.phase == Phase::Running
            && self.waiting_len > 0
            && self.active_len < self.config.max_active
        {
            return Err(format!(
                "{} waiting while active has room ({}/{})",
                self.waiting_len, self.active_len, self.config.max_active
            ));
        }
        if self.phase == Phase::Stopped && self.present() > 0 {
            return Err(format!("{} present after stop", self.present()));
        }
        let open: u32 = self.hits.iter().map(|h| h.open).sum();
        if open != self.open_slots {
            return Err(format!(
                "open_slots {} but HITs hold {open}",
                self.open_slots
            ));
        }
        let flying: u32 = self.hires.iter().map(|h| h.1).sum();
        if flying != self.in_flight {
            return Err(format!(
                "in_flight {} but hires hold {flying}",
                self.in_flight
            ));
        }
        if let Some(budget) = self.config.budget_cents
            && self.spent > budget
        {
            return Err(format!("spent {} above budget {budget}", self.spent));
        }
        // The deadline list: exactly the present records, by deadline, linked both ways.
        let (mut i, mut prev, mut listed) = (self.deadline_head, NIL, 0u64);
        while i != NIL {
            let Some(r) = self.records.get(i) else {
                return Err(format!("the deadline list names no record at {i}"));
            };
            if matches!(r.seat, Seat::Left(_)) {
                return Err(format!("departed {} is in the deadline list", r.assignment));
            }
            if self.hot[i].prev != prev {
                return Err(format!(
                    "the deadline list's links of {} disagree",
                    r.assignment
                ));
            }
            if prev != NIL && self.hot[prev].last_seen > self.hot[i].last_seen {
                return Err(format!("the deadline of {} is out of order", r.assignment));
            }
            listed += 1;
            if listed > self.records.len() as u64 {
                return Err("the deadline list has a cycle".to_owned());
            }
            (prev, i) = (i, self.hot[i].next);
        }
        if prev != self.deadline_tail {
            return Err("the deadline list's tail is not its last record".to_owned());
        }
        if listed != u64::from(waiting + active) {
            return Err(format!(
                "the deadline list holds {listed} records, {} are present",
                waiting + active
            ));
        }
        Ok(())
    }
}

/// Where an assignment is, as [`Pavilion::seat_of`] reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeatState {
    /// In the waiting queue.
    Waiting,
    /// On the task.
    Active,
    /// Gone, and how.
    Left(Departure),
}

/// `ms` at `cents_per_minute`, rounded to the nearest cent (halves up).
fn per_minute(ms: u64, cents_per_minute: i64) -> i64 {
    // In 64 bits when it fits (a 128-bit division is a slow library call); the same result.
    if let Ok(cents) = u64::try_from(cents_per_minute)
        && let Some(exact) = ms.checked_mul(cents).and_then(|e| e.checked_add(30_000))
    {
        return i64::try_from(exact / 60_000).unwrap_or(i64::MAX);
    }
    let exact = i128::from(ms) * i128::from(cents_per_minute);
    i64::try_from((exact + 30_000) / 60_000).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_minute_rounds_half_up() {
        assert_eq!(per_minute(60_000, 10), 10);
        assert_eq!(per_minute(3_000, 10), 1); // 0.5 cent rounds up
        assert_eq!(per_minute(2_999, 10), 0);
        assert_eq!(per_minute(u64::MAX, i64::MAX), i64::MAX);
        // The 64-bit fast path agrees with the exact 128-bit formula, also near its limits.
        for (ms, cents) in [
            (0, 0),
            (59_999, 1),
            (90_000, 1),
            (u64::MAX / 7, 7),
            (u64::MAX / 7, 8),
            (u64::MAX - 29_999, 1),
            (u64::MAX - 30_000, 1),
            (123_456_789, -17),
            (u64::MAX, -1),
        ] {
            let exact = i128::from(ms) * i128::from(cents);
            let expected = i64::try_from((exact + 30_000) / 60_000).unwrap_or(i64::MAX);
            assert_eq!(per_minute(ms, cents), expected, "{ms} ms at {cents}");
        }
    }
}
