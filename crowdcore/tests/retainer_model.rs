//! Property tests of the retainer machine (`proptest-state-machine`).
//!
//! Transitions are generated over a tiny id space (2 templates and one that does not exist,
//! 6 reservations, 6 workers, 16 assignments, 6 HITs) so that duplicates, unknown ids, one HIT
//! claimed by two templates, events for departed assignments and every lifecycle refusal
//! happen often. Platform events are generated against what the driver has seen (the n-th hire
//! in flight, the n-th HIT posted, the n-th present worker), so pools fill, route and refill;
//! ticks land on the next deadline; configurations vary (heartbeat timeout, HIT refresh,
//! precruitment, re-opening slots, pool targets, budgets, pay).
//!
//! The reference model is the reservation lifecycle (make, invoke — also at `start_at` on a
//! tick —, cancel, finish, unfinish, finish all): it predicts accept/refuse and every
//! reservation's state. Routing, which depends on the pools' hiring and presence, is checked by
//! its properties after every transition:
//! - `check_invariants()` (pool targets = routed present + unmet need / the pool target; the
//!   active queue is exactly the routed workers still working; no reservation with more than
//!   `needed` working or submitted; only invoked reservations have routes; each pool's own);
//! - **never over-route**: routes working or submitted ≤ `needed`, counted from the snapshot;
//! - **sticky**: an assignment is routed at most once, ever, and its route never changes
//!   reservation; `task_for` keeps answering the same task;
//! - **no routing to cancelled, finished or made reservations**: a route emitted in a step goes
//!   to a reservation that is invoked at the end of that step;
//! - **every routed worker was present**: waiting in the template's pool before the step (or
//!   arriving in it), and on the task after it;
//! - a refused input changes nothing and emits nothing; effect ids never repeat; an effect
//!   carries its input's time; after `handle_timeout(poll_timeout())` the next timeout is later;
//! - a retainer restored from `snapshot()` (through JSON) and fed the same input decides the
//!   same, emits the same and ends in the same state; at the end, **replaying the accepted
//!   inputs** on a fresh retainer gives the same effects and the same snapshot.
//!
//! `PROPTEST_CASES` sets the number of cases (default 256); failures are saved in
//! `proptest-regressions/retainer_model.txt` and re-run first.

use std::collections::{BTreeMap, BTreeSet};

use crowdcore::model::{Currency, HitSpec, Money};
use crowdcore::retainer::{
    Effect, EffectKind, Input, PingKind, PoolTarget, Rejected, ReservationState, Retainer,
    RetainerConfig, RouteStatus, Snapshot,
};
use crowdcore::{
    AssignmentId, EffectId, HitId, ReservationId, SessionId, TemplateId, Timestamp, WorkerId,
};
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, FileFailurePersistence};
use proptest_state_machine::{ReferenceStateMachine, StateMachineTest, prop_state_machine};

const TEMPLATES: u8 = 2;
const RESERVATIONS: u8 = 6;
const WORKERS: u8 = 6;
const ASSIGNMENTS: u8 = 16;
const HITS: u8 = 6;

fn session() -> SessionId {
    SessionId::new("m")
}
fn template(n: u8) -> TemplateId {
    TemplateId::new(format!("T{n}"))
}
fn reservation(n: u8) -> ReservationId {
    ReservationId::new(format!("R{n}"))
}
fn worker(n: u8) -> WorkerId {
    WorkerId::new(format!("W{n}"))
}
fn assignment(n: u8) -> AssignmentId {
    AssignmentId::new(format!("A{n}"))
}
fn hit(n: u8) -> HitId {
    HitId::new(format!("H{n}"))
}

fn spec(reward: i64) -> HitSpec {
    HitSpec {
        title: "Stand by".into(),
        description: "Wait for a task.".into(),
        keywords: Vec::new(),
        reward: Money::new(reward, Currency::USD),
        assignment_duration_ms: 3_600_000,
        lifetime_ms: 86_400_000,
        max_assignments: 100,
        auto_approval_delay_ms: 86_400_000,
        qualifications: Vec::new(),
        landing_url: "https://example.invalid/r".into(),
        frame_height: 600,
    }
}

// ----- configuration ---------------------------------------------------------------------------

/// What a case runs with.
#[derive(Debug, Clone)]
struct Knobs {
    config: RetainerConfig,
    /// Per template: its own pool target, budget and reward.
    templates: Vec<(Option<PoolTarget>, Option<i64>, i64)>,
}

fn pool_target() -> impl Strategy<Value = PoolTarget> {
    prop_oneof![
        2 => Just(PoolTarget::UnmetNeed),
        1 => (0u32..4).prop_map(PoolTarget::Fixed),
    ]
}

fn knobs_strategy() -> impl Strategy<Value = Knobs> {
    let template = (
        prop::option::of(pool_target()),
        prop_oneof![3 => Just(None), 1 => (0i64..400).prop_map(Some)],
        0i64..30,
    );
    (
        pool_target(),
        prop::sample::select(vec![2_000u64, 10_000, 30_000]),
        any::<bool>(),
        prop::option::of(prop::sample::select(vec![1_000u64, 5_000, 20_000])),
        prop::option::of(prop::sample::select(vec![0u64, 3_000])),
        (0i64..20, 0i64..20, 0i64..5),
        prop::collection::vec(template, TEMPLATES as usize),
    )
        .prop_map(
            |(pool, timeout, reopen, refresh, precruit, rates, templates)| Knobs {
                config: RetainerConfig {
                    pool,
                    heartbeat_timeout_ms: timeout,
                    returned_slots_reopen: reopen,
                    hire_retry_ms: 5_000,
                    refresh_after_ms: refresh,
                    precruit_ms: precruit,
                    waiting_cents_per_minute: rates.0,
                    active_cents_per_minute: rates.1,
                    per_contribution_cents: rates.2,
                    // Pages claim anything up to u32::MAX (see `Op::Submit`): the cap bounds
                    // the bonus, which the budget checks hold to.
                    max_contributions_per_assignment: Some(2),
                    contributions_from_host: false,
                },
                templates,
            },
        )
}

// ----- transitions -----------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Op {
    /// Template 2 does not exist.
    Make {
        reservation: u8,
        template: u8,
        needed: u32,
        start_in: u64,
    },
    Invoke(u8),
    Cancel(u8),
    Finish(u8),
    Unfinish(u8),
    FinishAll(Option<u8>),
    /// Register a template again (refused).
    RegisterAgain(u8),
    /// Through the `hit`-th HIT posted (any template), or `H<hit>` if none was.
    Arrive {
        assignment: u8,
        other_worker: Option<u8>,
        hit: u8,
    },
    /// The `nth` present worker (waiting or routed, any pool), or `A<nth>` if nobody is.
    Ping(u8, bool),
    Poll(u8),
    /// The `nth` present worker submits, its page claiming `claimed` contributions.
    Submit(u8, u32),
    /// The host counts contributions of the `nth` present worker.
    Contributed(u8, u32),
    Return(u8),
    Abandon(u8),
    /// Answers the `nth` hire in flight (or a hire never made) with HIT `H<hit>` and
    /// `count + extra` slots.
    HirePosted {
        nth: u8,
        hit: u8,
        extra: i8,
    },
    HireFailed(u8),
    Tick,
    TickToTimeout,
    ClockBack,
}

#[derive(Debug, Clone)]
struct Step {
    dt: u64,
    op: Op,
}

/// The reference state: the knobs, and how many steps were taken (transitions do not depend
/// on more; the lifecycle model lives beside the machine, where the times of ticks are known).
#[derive(Debug, Clone)]
struct Reference {
    knobs: Knobs,
}

struct RetainerReference;

impl ReferenceStateMachine for RetainerReference {
    type State = Reference;
    type Transition = Step;

    fn init_state() -> BoxedStrategy<Reference> {
        knobs_strategy()
            .prop_map(|knobs| Reference { knobs })
            .boxed()
    }

    fn transitions(_: &Reference) -> BoxedStrategy<Step> {
        let r = || 0..RESERVATIONS;
        let pick = || any::<u8>();
        let op = prop_oneof![
            6 => (r(), prop_oneof![6 => 0..TEMPLATES, 1 => Just(TEMPLATES)],
                prop_oneof![1 => Just(0u32), 8 => 1u32..4], 0u64..40_000)
                .prop_map(|(reservation, template, needed, start_in)| Op::Make {
                    reservation, template, needed, start_in,
                }),
            4 => r().prop_map(Op::Invoke),
            2 => r().prop_map(Op::Cancel),
            2 => r().prop_map(Op::Finish),
            1 => r().prop_map(Op::Unfinish),
            1 => prop::option::of(0..=TEMPLATES).prop_map(Op::FinishAll),
            1 => (0..TEMPLATES).prop_map(Op::RegisterAgain),
            14 => (0..ASSIGNMENTS, prop_oneof![6 => Just(None), 1 => (0..WORKERS).prop_map(Some)],
                pick())
                .prop_map(|(assignment, other_worker, hit)| Op::Arrive {
                    assignment, other_worker, hit,
                }),
            6 => (pick(), any::<bool>()).prop_map(|(n, w)| Op::Ping(n, w)),
            2 => pick().prop_map(Op::Poll),
            4 => (pick(), prop_oneof![6 => 0u32..3, 1 => any::<u32>()])
                .prop_map(|(n, c)| Op::Submit(n, c)),
            1 => (pick(), prop_oneof![3 => 0u32..3, 1 => any::<u32>()])
                .prop_map(|(n, c)| Op::Contributed(n, c)),
            2 => pick().prop_map(Op::Return),
            1 => pick().prop_map(Op::Abandon),
            12 => (prop_oneof![8 => 0u8..3, 1 => Just(99u8)], 0..HITS,
                prop_oneof![8 => Just(0i8), 2 => -2i8..0, 1 => 1i8..3])
                .prop_map(|(nth, hit, extra)| Op::HirePosted { nth, hit, extra }),
            2 => prop_oneof![4 => 0u8..3, 1 => Just(99u8)].prop_map(Op::HireFailed),
            3 => Just(Op::Tick),
            5 => Just(Op::TickToTimeout),
            1 => Just(Op::ClockBack),
        ];
        let dt = prop_oneof![3 => Just(0u64), 6 => 1u64..2_000, 1 => 1u64..40_000];
        (dt, op).prop_map(|(dt, op)| Step { dt, op }).boxed()
    }

    fn apply(state: Reference, _: &Step) -> Reference {
        state
    }
}

// ----- the lifecycle model ----------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Ok,
    ClockWentBack,
    UnknownTemplate,
    DuplicateTemplate,
    UnknownReservation,
    DuplicateReservation,
    ZeroNeeded,
    NotAllowed(ReservationState),
    /// Platform events: not predicted.
    Any,
}

fn verdict_of(r: &Result<(), Rejected>) -> Verdict {
    match r {
        Ok(()) => Verdict::Ok,
        Err(Rejected::ClockWentBack { .. }) => Verdict::ClockWentBack,
        Err(Rejected::UnknownTemplate(_)) => Verdict::UnknownTemplate,
        Err(Rejected::DuplicateTemplate(_)) => Verdict::DuplicateTemplate,
        Err(Rejected::UnknownReservation(_)) => Verdict::UnknownReservation,
        Err(Rejected::DuplicateReservation(_)) => Verdict::DuplicateReservation,
        Err(Rejected::ZeroNeeded(_)) => Verdict::ZeroNeeded,
        Err(Rejected::NotAllowed { state, .. }) => Verdict::NotAllowed(*state),
        Err(_) => Verdict::Any,
    }
}

/// The reservation lifecycle as the issue states it.
#[derive(Debug, Clone, Default)]
struct Lifecycle {
    /// Reservation → (template, state, start_at).
    reservations: BTreeMap<u8, (u8, ReservationState, u64)>,
}

impl Lifecycle {
    /// Predicts the verdict of `op` at `now` and applies it if accepted (platform events are
    /// not predicted: `Any`, applied by the caller's `sync` if accepted).
    fn step(&mut self, op: &Op, now: u64) -> Verdict {
        use ReservationState::*;
        let state = |r: u8| self.reservations.get(&r).map(|x| x.1);
        let verdict = match *op {
            Op::Make {
                reservation: r,
                template: t,
                needed,
                ..
            } => {
                if t >= TEMPLATES {
                    Verdict::UnknownTemplate
                } else if self.reservations.contains_key(&r) {
                    Verdict::DuplicateReservation
                } else if needed == 0 {
                    Verdict::ZeroNeeded
                } else {
                    Verdict::Ok
                }
            }
            Op::Invoke(r) | Op::Cancel(r) | Op::Finish(r) | Op::Unfinish(r) => match state(r) {
                None => Verdict::UnknownReservation,
                Some(s) => {
                    let allowed = match op {
                        Op::Invoke(_) => s == Made,
                        Op::Cancel(_) => s != Cancelled,
                        Op::Finish(_) => s == Invoked,
                        _ => s == Finished,
                    };
                    if allowed {
                        Verdict::Ok
                    } else {
                        Verdict::NotAllowed(s)
                    }
                }
            },
            Op::FinishAll(Some(t)) if t >= TEMPLATES => Verdict::UnknownTemplate,
            Op::FinishAll(_) => Verdict::Ok,
            Op::RegisterAgain(_) => Verdict::DuplicateTemplate,
            Op::Tick | Op::TickToTimeout => Verdict::Ok,
            Op::ClockBack => Verdict::ClockWentBack,
            _ => Verdict::Any,
        };
        if verdict != Verdict::Ok {
            return verdict;
        }
        match *op {
            Op::Make {
                reservation: r,
                template: t,
                start_in,
                ..
            } => {
                self.reservations.insert(r, (t, Made, now + start_in));
            }
            Op::Invoke(r) => self.set(r, Invoked),
            Op::Cancel(r) => self.set(r, Cancelled),
            Op::Finish(r) => self.set(r, Finished),
            Op::Unfinish(r) => self.set(r, Invoked),
            Op::FinishAll(only) => {
                for (t, s, _) in self.reservations.values_mut() {
                    if *s == Invoked && only.is_none_or(|o| o == *t) {
                        *s = Finished;
                    }
                }
            }
            Op::Tick | Op::TickToTimeout => {
                for (_, s, start) in self.reservations.values_mut() {
                    if *s == Made && *start <= now {
                        *s = Invoked;
                    }
                }
            }
            _ => {}
        }
        Verdict::Ok
    }

    fn set(&mut self, r: u8, s: ReservationState) {
        self.reservations.get_mut(&r).expect("known").1 = s;
    }
}

// ----- the machine under test ------------------------------------------------------------------

struct Sut {
    machine: Retainer,
    config: RetainerConfig,
    lifecycle: Lifecycle,
    /// Accepted inputs, in order.
    log: Vec<(Timestamp, Input)>,
    /// Every effect, in order.
    effects: Vec<Effect>,
    ids: BTreeSet<EffectId>,
    /// Every assignment ever routed, and to which reservation.
    routed: BTreeMap<AssignmentId, ReservationId>,
    /// HITs posted, in posting order, as the driver saw them.
    posted: Vec<HitId>,
}

fn drain(m: &mut Retainer) -> Vec<Effect> {
    std::iter::from_fn(|| m.poll_effect()).collect()
}

/// Through JSON and back, as a store would keep it.
fn restored(snapshot: &Snapshot) -> Retainer {
    let json = serde_json::to_string(snapshot).expect("a snapshot serializes");
    let back: Snapshot = serde_json::from_str(&json).expect("a snapshot deserializes");
    assert_eq!(&back, snapshot, "snapshot JSON round trip");
    Retainer::restore(back).expect("a snapshot restores")
}

/// Present assignments of every pool (waiting, then active), by template order.
fn present(s: &Snapshot) -> Vec<AssignmentId> {
    s.templates
        .iter()
        .flat_map(|t| t.pool.waiting.iter().chain(&t.pool.active))
        .map(|v| v.assignment.clone())
        .collect()
}

impl Sut {
    fn nth_present(&self, n: u8) -> AssignmentId {
        let p = present(&self.machine.snapshot());
        if p.is_empty() || n % 5 == 4 {
            assignment(n % ASSIGNMENTS)
        } else {
            p[usize::from(n) % p.len()].clone()
        }
    }

    fn nth_hire(&self, n: u8) -> EffectId {
        let s = self.machine.snapshot();
        let flying: Vec<EffectId> = s
            .templates
            .iter()
            .flat_map(|t| t.pool.hires_in_flight.iter().map(|h| h.id.clone()))
            .collect();
        match flying.get(usize::from(n)) {
            Some(id) => id.clone(),
            // A hire never made: of a real pool, or of no pool.
            None if n.is_multiple_of(2) => {
                EffectId::new(SessionId::new("m/T0"), 10_000 + u64::from(n))
            }
            None => EffectId::new(SessionId::new("elsewhere"), 1),
        }
    }

    /// The input a step means, at what time.
    fn input(&self, step: &Step) -> Option<(Timestamp, Input)> {
        let now = self.machine.now();
        let at = now.plus_millis(step.dt);
        let input = match step.op {
            Op::Make {
                reservation: r,
                template: t,
                needed,
                start_in,
            } => Input::MakeReservation {
                reservation: reservation(r),
                template: template(t),
                foreign_id: format!("F{r}"),
                payload: serde_json::json!({ "r": r }),
                start_at: at.plus_millis(start_in),
                needed,
            },
            Op::Invoke(r) => Input::Invoke {
                reservation: reservation(r),
            },
            Op::Cancel(r) => Input::Cancel {
                reservation: reservation(r),
            },
            Op::Finish(r) => Input::Finish {
                reservation: reservation(r),
            },
            Op::Unfinish(r) => Input::Unfinish {
                reservation: reservation(r),
            },
            Op::FinishAll(t) => Input::FinishAll {
                template: t.map(template),
            },
            Op::RegisterAgain(t) => Input::RegisterTemplate {
                template: template(t),
                spec: spec(1),
                pool: None,
                budget_cents: None,
            },
            Op::Arrive {
                assignment: a,
                other_worker,
                hit: h,
            } => Input::Arrive {
                worker: worker(other_worker.unwrap_or(a % WORKERS)),
                assignment: assignment(a),
                hit: match self.posted.len() {
                    0 => hit(h % HITS),
                    n => self.posted[usize::from(h) % n].clone(),
                },
            },
            Op::Ping(n, working) => Input::Ping {
                assignment: self.nth_present(n),
                kind: if working {
                    PingKind::Working
                } else {
                    PingKind::Waiting
                },
            },
            Op::Poll(n) => Input::Poll {
                assignment: self.nth_present(n),
            },
            Op::Submit(n, claimed) => Input::Submit {
                assignment: self.nth_present(n),
                contributions: claimed,
            },
            Op::Contributed(n, count) => Input::Contributed {
                assignment: self.nth_present(n),
                count,
            },
            Op::Return(n) => Input::Return {
                assignment: self.nth_present(n),
            },
            Op::Abandon(n) => Input::Abandon {
                assignment: self.nth_present(n),
            },
            Op::HirePosted { nth, hit: h, extra } => {
                let hire = self.nth_hire(nth);
                let s = self.machine.snapshot();
                let asked = s
                    .templates
                    .iter()
                    .flat_map(|t| &t.pool.hires_in_flight)
                    .find(|x| x.id == hire)
                    .map_or(1, |x| x.count);
                Input::HirePosted {
                    hire,
                    hit: hit(h),
                    slots: asked.saturating_add_signed(i32::from(extra)),
                }
            }
            Op::HireFailed(nth) => Input::HireFailed {
                hire: self.nth_hire(nth),
                reason: "no funds".into(),
            },
            Op::Tick => Input::Tick,
            Op::TickToTimeout => {
                let at = self.machine.poll_timeout()?;
                return Some((at.max(now), Input::Tick));
            }
            Op::ClockBack => {
                let back = Timestamp::from_millis(now.as_millis().checked_sub(1)?);
                return Some((back, Input::Tick));
            }
        };
        Some((at, input))
    }
}

struct RetainerTest;

impl StateMachineTest for RetainerTest {
    type SystemUnderTest = Sut;
    type Reference = RetainerReference;

    fn init_test(r: &Reference) -> Sut {
        let config = r.knobs.config.clone();
        let mut machine =
            Retainer::new(session(), config.clone()).expect("generated configs are valid");
        let mut log = Vec::new();
        for (t, &(pool, budget, reward)) in r.knobs.templates.iter().enumerate() {
            let input = Input::RegisterTemplate {
                template: template(t as u8),
                spec: spec(reward),
                pool,
                budget_cents: budget,
            };
            machine
                .handle(Timestamp::ZERO, input.clone())
                .expect("a template registers");
            log.push((Timestamp::ZERO, input));
        }
        let effects = drain(&mut machine);
        let ids = effects.iter().map(|e| e.id.clone()).collect();
        Sut {
            machine,
            config,
            lifecycle: Lifecycle::default(),
            log,
            effects,
            ids,
            routed: BTreeMap::new(),
            posted: Vec::new(),
        }
    }

    fn apply(mut sut: Sut, _: &Reference, step: Step) -> Sut {
        let before = sut.machine.snapshot();
        let Some((at, input)) = sut.input(&step) else {
            return sut; // no timeout to tick to, or no earlier time
        };
        let predicted = sut.lifecycle.clone().step(&step.op, at.as_millis());
        let mut twin = restored(&before);
        let timeout = matches!(step.op, Op::TickToTimeout);
        let (result, twin_result) = if timeout {
            sut.machine.handle_timeout(at);
            twin.handle_timeout(at);
            (Ok(()), Ok(()))
        } else {
            (
                sut.machine.handle(at, input.clone()),
                twin.handle(at, input.clone()),
            )
        };
        assert_eq!(
            result, twin_result,
            "a restored twin decided {input:?} otherwise"
        );
        let verdict = verdict_of(&result);
        if predicted != Verdict::Any {
            assert_eq!(
                verdict, predicted,
                "accept/refuse of {input:?} at {at}: {result:?}"
            );
        }
        if let Err(e) = &result {
            assert_eq!(
                sut.machine.snapshot(),
                before,
                "refused {input:?} ({e}) changed the state"
            );
            assert!(
                sut.machine.poll_effect().is_none(),
                "refused {input:?} but emitted"
            );
            return sut;
        }
        sut.lifecycle.step(&step.op, at.as_millis());
        sut.log.push((at, input.clone()));

        let effects = drain(&mut sut.machine);
        assert_eq!(
            drain(&mut twin),
            effects,
            "a restored twin's effects differ"
        );
        let after = sut.machine.snapshot();
        assert_eq!(twin.snapshot(), after, "a restored twin's state differs");
        if timeout && let Some(next) = sut.machine.poll_timeout() {
            assert!(
                next > at,
                "after handle_timeout({at}) the next timeout is {next}"
            );
        }

        let state_of = |s: &Snapshot, r: &ReservationId| {
            s.reservations
                .iter()
                .find(|v| &v.reservation == r)
                .map(|v| (v.template.clone(), v.state))
        };
        let was_waiting: BTreeSet<(TemplateId, AssignmentId)> = before
            .templates
            .iter()
            .flat_map(|t| {
                t.pool
                    .waiting
                    .iter()
                    .map(|v| (t.template.clone(), v.assignment.clone()))
            })
            .collect();
        let arriving = match &input {
            Input::Arrive { assignment, .. } => Some(assignment.clone()),
            _ => None,
        };
        for e in &effects {
            assert_eq!(e.at, at, "effect {} does not carry its input's time", e.id);
            assert!(sut.ids.insert(e.id.clone()), "effect id {} repeats", e.id);
            match &e.kind {
                EffectKind::Route {
                    template,
                    reservation,
                    assignment,
                    task,
                    ..
                } => {
                    // Sticky: never routed before.
                    assert!(
                        sut.routed
                            .insert(assignment.clone(), reservation.clone())
                            .is_none(),
                        "{assignment} routed twice"
                    );
                    // Only to a reservation invoked (at the end of the step), of its template.
                    assert_eq!(
                        state_of(&after, reservation),
                        Some((template.clone(), ReservationState::Invoked)),
                        "{assignment} routed to {reservation}"
                    );
                    // Present: waiting in that pool before, or arriving now; on the task after.
                    assert!(
                        was_waiting.contains(&(template.clone(), assignment.clone()))
                            || arriving.as_ref() == Some(assignment),
                        "{assignment} was routed without waiting in {template}'s pool"
                    );
                    let pool = &after
                        .templates
                        .iter()
                        .find(|t| &t.template == template)
                        .expect("a known template")
                        .pool;
                    assert!(
                        pool.active.iter().any(|v| &v.assignment == assignment),
                        "routed {assignment} is not on the task"
                    );
                    assert_eq!(task, &format!("F{}", &reservation.as_str()[1..]));
                }
                EffectKind::Pool {
                    effect:
                        crowdcore::pavilion::EffectKind::Pay {
                            kind: crowdcore::pavilion::PayKind::ContributionBonus,
                            amount,
                            ..
                        },
                    ..
                } => {
                    // Whatever a page claims (up to u32::MAX) or the host counts, the cap
                    // bounds the bonus.
                    let c = &sut.config;
                    let cap = i64::from(c.max_contributions_per_assignment.unwrap_or(u32::MAX));
                    assert!(
                        amount.minor <= c.per_contribution_cents * cap,
                        "a contribution bonus of {} above the cap",
                        amount.minor
                    );
                }
                EffectKind::Pool { .. } | EffectKind::NotifyWorkers { .. } => {}
            }
        }
        if let Input::HirePosted { hit, .. } = &input
            && !sut.posted.contains(hit)
        {
            sut.posted.push(hit.clone());
        }
        sut.effects.extend(effects);

        // Routes never change reservation; the poll answer stays.
        for route in &after.routes {
            assert_eq!(sut.routed.get(&route.assignment), Some(&route.reservation));
            let answer = sut.machine.task_for(&route.assignment).expect("known");
            assert_eq!(
                answer.map(|t| t.reservation).as_ref(),
                Some(&route.reservation)
            );
        }
        assert_eq!(after.routes.len(), sut.routed.len(), "a route went missing");
        // The lifecycle model agrees.
        let states: BTreeMap<u8, ReservationState> = after
            .reservations
            .iter()
            .map(|v| (v.reservation.as_str()[1..].parse().unwrap(), v.state))
            .collect();
        let want: BTreeMap<u8, ReservationState> = sut
            .lifecycle
            .reservations
            .iter()
            .map(|(&r, &(_, s, _))| (r, s))
            .collect();
        assert_eq!(states, want, "reservation states after {input:?} at {at}");
        sut
    }

    fn check_invariants(sut: &Sut, _: &Reference) {
        let m = &sut.machine;
        if let Err(e) = m.check_invariants() {
            panic!("check_invariants: {e}");
        }
        let s = m.snapshot();
        // Never over-route, counted from the routes themselves.
        for r in &s.reservations {
            let on_it = s
                .routes
                .iter()
                .filter(|x| x.reservation == r.reservation && x.status != RouteStatus::Dropped)
                .count() as u32;
            assert!(
                on_it <= r.needed,
                "{} has {on_it} workers working or submitted, needs {}",
                r.reservation,
                r.needed
            );
            if r.state == ReservationState::Made {
                assert!(r.invoked_at.is_none() && r.working + r.submitted + r.dropped == 0);
            }
        }
        // Present workers are in one pool at most once.
        let p = present(&s);
        let unique: BTreeSet<&AssignmentId> = p.iter().collect();
        assert_eq!(unique.len(), p.len(), "an assignment is seated twice");
    }

    fn teardown(mut sut: Sut, _: Reference) {
        assert!(
            drain(&mut sut.machine).is_empty(),
            "every effect was drained"
        );
        let mut fresh = Retainer::new(session(), sut.config.clone()).expect("valid config");
        let mut effects = Vec::new();
        for (at, input) in &sut.log {
            fresh
                .handle(*at, input.clone())
                .unwrap_or_else(|e| panic!("replay refused {input:?} at {at}: {e}"));
            effects.extend(drain(&mut fresh));
        }
        assert_eq!(
            effects, sut.effects,
            "replaying the accepted inputs gives other effects"
        );
        assert_eq!(
            fresh.snapshot(),
            sut.machine.snapshot(),
            "replay gives another state"
        );
    }
}

prop_state_machine! {
    #![proptest_config(ProptestConfig {
        // Cases come from PROPTEST_CASES (default 256); keep shrinking bounded.
        max_shrink_iters: 4096,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "proptest-regressions/retainer_model.txt",
        ))),
        ..ProptestConfig::default()
    })]

    #[test]
    fn retainer_routing_properties_hold(sequential 1..120 => RetainerTest);
}
