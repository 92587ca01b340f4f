//! One checker of the Pavilion's invariants, within a state and across steps, for every test
//! that drives the machine: the scenario tables (`tests/pavilion`), the model-based property
//! test (`tests/pavilion_model.rs`, which compares with its reference model besides) and the
//! fuzzer (`crowdcore-fuzz`).
//!
//! Feed every input through [`PavilionChecker::handle`] (or a deadline through
//! [`PavilionChecker::handle_timeout`]); it drains the machine's effects, checks them and the
//! new state, and returns them. [`PavilionChecker::check_replay`] at the end replays what was
//! accepted on a fresh machine.

use std::collections::{BTreeMap, BTreeSet};

use crate::model::{AssignmentId, EffectId, Timestamp};
use crate::pavilion::{Effect, EffectKind, Input, Pavilion, PayKind, Phase, Rejected, Snapshot};

/// What the checker remembers across steps. See the [module docs](self).
#[derive(Debug)]
pub struct PavilionChecker {
    /// The state the run started from (replayed from by [`Self::check_replay`]).
    start: Snapshot,
    log: Vec<(Timestamp, Input)>,
    effects: Vec<Effect>,
    /// Hires asked for and not yet answered, in order.
    hires: Vec<(EffectId, u32)>,
    /// Every assignment that ever left.
    departed: BTreeSet<AssignmentId>,
    /// What the host counted of each assignment's contributions.
    counted: BTreeMap<AssignmentId, u32>,
}

/// `present + open slots + hires in flight`.
fn counted(s: &Snapshot) -> u32 {
    (s.waiting.len() + s.active.len()) as u32
        + s.open_slots
        + s.hires_in_flight.iter().map(|h| h.count).sum::<u32>()
}

fn drain(m: &mut Pavilion) -> Vec<Effect> {
    std::iter::from_fn(|| m.poll_effect()).collect()
}

/// Restores a machine from a snapshot taken through JSON, as a store would keep it.
fn restored(snapshot: &Snapshot) -> Pavilion {
    let json = serde_json::to_string(snapshot).expect("a snapshot serializes");
    let back: Snapshot = serde_json::from_str(&json).expect("a snapshot deserializes");
    assert_eq!(&back, snapshot, "snapshot JSON round trip changed it");
    Pavilion::restore(back).expect("a snapshot restores")
}

impl PavilionChecker {
    /// Starts checking `machine`, whose effects must all have been drained; checks its state.
    pub fn new(machine: &Pavilion) -> Self {
        let start = machine.snapshot();
        assert!(
            start.pending_effects.is_empty(),
            "the checker starts on a drained machine"
        );
        let mut checker = Self {
            hires: start
                .hires_in_flight
                .iter()
                .map(|h| (h.id.clone(), h.count))
                .collect(),
            departed: start
                .departed
                .iter()
                .map(|d| d.assignment.clone())
                .collect(),
            start,
            log: Vec::new(),
            effects: Vec::new(),
            counted: BTreeMap::new(),
        };
        checker.check_state(machine);
        checker
    }

    /// The inputs accepted so far, with their times (a deadline as [`Input::Tick`]).
    pub fn log(&self) -> &[(Timestamp, Input)] {
        &self.log
    }

    /// The hires asked for and not yet answered, oldest first: each hire effect's id and
    /// count.
    pub fn hires_in_flight(&self) -> &[(EffectId, u32)] {
        &self.hires
    }

    /// Every effect handed out so far, in order.
    pub fn effects(&self) -> &[Effect] {
        &self.effects
    }

    /// Feeds `input` at `at` to `machine` and checks the result: a refusal changes nothing and
    /// hands out nothing; an accepted input's effects (returned) and the new state keep every
    /// invariant, and a twin restored from the state before decides the same.
    pub fn handle(
        &mut self,
        machine: &mut Pavilion,
        at: Timestamp,
        input: Input,
    ) -> Result<Vec<Effect>, Rejected> {
        self.step(machine, at, Some(input))
    }

    /// Lets time pass to `at` on `machine` (its deadlines fall due) and checks the result as
    /// [`Self::handle`] does.
    pub fn handle_timeout(&mut self, machine: &mut Pavilion, at: Timestamp) -> Vec<Effect> {
        self.step(machine, at, None)
            .expect("a deadline is never refused")
    }

    fn step(
        &mut self,
        machine: &mut Pavilion,
        at: Timestamp,
        input: Option<Input>,
    ) -> Result<Vec<Effect>, Rejected> {
        let before = machine.snapshot();
        let mut twin = restored(&before);
        let (result, twin_result) = match &input {
            None => {
                machine.handle_timeout(at);
                twin.handle_timeout(at);
                (Ok(()), Ok(()))
            }
            Some(input) => (
                machine.handle(at, input.clone()),
                twin.handle(at, input.clone()),
            ),
        };
        // A deadline is logged as the tick it is, at the time the machine took it.
        let at = if input.is_none() {
            at.max(before.now)
        } else {
            at
        };
        let input = input.unwrap_or(Input::Tick);
        assert_eq!(
            result, twin_result,
            "a restored twin decided {input:?} differently"
        );
        if let Err(rejected) = result {
            assert_eq!(
                machine.snapshot(),
                before,
                "refused {input:?} ({rejected}) but changed the state"
            );
            assert!(
                machine.poll_effect().is_none(),
                "refused {input:?} but produced an effect"
            );
            return Err(rejected);
        }
        self.log.push((at, input.clone()));

        let mut pending = Pavilion::restore(machine.snapshot()).expect("a snapshot restores");
        let effects = drain(machine);
        assert_eq!(
            drain(&mut twin),
            effects,
            "a restored twin's effects differ"
        );
        assert_eq!(
            drain(&mut pending),
            effects,
            "a machine restored with effects pending hands out others"
        );
        let after = machine.snapshot();
        assert_eq!(twin.snapshot(), after, "a restored twin's state differs");
        assert_eq!(
            pending.snapshot(),
            after,
            "restored-with-pending state differs"
        );

        for (i, e) in effects.iter().enumerate() {
            let want = EffectId::new(before.session.clone(), before.next_effect_seq + i as u64);
            assert_eq!(e.id, want, "effect ids skip or repeat");
            assert_eq!(e.at, at, "effect {} does not carry its input's time", e.id);
        }
        let paid: i64 = effects
            .iter()
            .filter_map(|e| match &e.kind {
                EffectKind::Pay { amount, .. } => Some(amount.minor),
                _ => None,
            })
            .sum();
        assert_eq!(
            after.spent.minor - before.spent.minor,
            paid,
            "pay effects do not add up to the change in spending"
        );
        self.check_contribution_pay(&before, &input, &effects);
        let (was, is) = (counted(&before), counted(&after));
        let capacity = after.config.max_active + after.config.max_waiting;
        assert!(
            is <= was || is <= capacity,
            "{input:?} raised present + open + in flight from {was} to {is}, above {capacity}"
        );

        if let Input::HirePosted { hire, .. } | Input::HireFailed { hire, .. } = &input {
            let i = match hire {
                None => 0,
                Some(id) => self
                    .hires
                    .iter()
                    .position(|h| &h.0 == id)
                    .expect("an accepted hire result names a hire in flight"),
            };
            self.hires.remove(i);
        }
        for e in &effects {
            if let EffectKind::Hire { count } = e.kind {
                self.hires.push((e.id.clone(), count));
            }
        }
        self.effects.extend(effects.iter().cloned());
        let flying: Vec<(EffectId, u32)> = after
            .hires_in_flight
            .iter()
            .map(|h| (h.id.clone(), h.count))
            .collect();
        assert_eq!(
            flying, self.hires,
            "hires in flight differ from the hire effects"
        );
        self.check_state(machine);
        Ok(effects)
    }

    /// No contribution bonus beyond what the host counted or, where it counted nothing and
    /// does not have to, what the submission claimed; never beyond the cap. Then notes the
    /// host's counts of an accepted `Contributed` input.
    fn check_contribution_pay(&mut self, before: &Snapshot, input: &Input, effects: &[Effect]) {
        let c = &before.config;
        for e in effects {
            let EffectKind::Pay {
                assignment,
                kind: PayKind::ContributionBonus,
                amount,
                ..
            } = &e.kind
            else {
                continue;
            };
            let reported = match input {
                Input::Submit {
                    assignment: a,
                    contributions,
                } if a == assignment => *contributions,
                _ => 0,
            };
            // The config's rule, applied to what this checker counted from the inputs itself.
            let units = c.payable_contributions(self.counted.get(assignment).copied(), reported);
            let most = c.per_contribution_cents.saturating_mul(i64::from(units));
            assert!(
                amount.minor <= most,
                "{assignment} was paid {} for contributions, more than {units} × {} ({input:?})",
                amount.minor,
                c.per_contribution_cents
            );
        }
        if let Input::Contributed { assignment, count } = input {
            let n = self.counted.entry(assignment.clone()).or_insert(0);
            *n = n.saturating_add(*count);
        }
    }

    /// The invariants of one state: the machine's own checks, then what a snapshot shows.
    fn check_state(&mut self, machine: &Pavilion) {
        if let Err(e) = machine.check_invariants() {
            panic!("check_invariants: {e}");
        }
        let s = machine.snapshot();
        let mut assignments = BTreeSet::new();
        let mut workers = BTreeSet::new();
        for v in s.waiting.iter().chain(&s.active) {
            assert!(
                assignments.insert(v.assignment.clone()),
                "assignment {} is seated twice",
                v.assignment
            );
            assert!(
                workers.insert(v.worker.clone()),
                "worker {} holds two seats",
                v.worker
            );
            assert!(
                !self.departed.contains(&v.assignment),
                "assignment {} left and came back",
                v.assignment
            );
        }
        for d in &s.departed {
            self.departed.insert(d.assignment.clone());
        }
        let max_active = s.config.max_active;
        assert!(
            s.active.len() as u32 <= max_active,
            "{} active, above max_active {max_active}",
            s.active.len()
        );
        if s.phase == Phase::Running {
            assert!(
                s.waiting.is_empty() || s.active.len() as u32 >= max_active,
                "{} waiting while active has room ({}/{max_active})",
                s.waiting.len(),
                s.active.len()
            );
        }
        if s.phase == Phase::Stopped {
            assert!(
                s.waiting.is_empty() && s.active.is_empty(),
                "workers present after stop"
            );
        }
        if let Some(budget) = s.config.budget_cents {
            assert!(
                s.committed.minor <= budget,
                "committed {} above the budget {budget}",
                s.committed.minor
            );
            assert!(
                s.spent.minor <= budget,
                "spent {} above the budget {budget}",
                s.spent.minor
            );
        }
        assert_eq!(
            s.committed.minor,
            s.spent.minor + s.config.base_pay_cents * i64::from(counted(&s)),
            "committed is not spent plus the base pay of every counted seat"
        );
        if let Some(at) = machine.poll_timeout() {
            let earliest = s
                .waiting
                .iter()
                .chain(&s.active)
                .map(|v| v.last_seen.plus_millis(s.config.heartbeat_timeout_ms))
                .min();
            let want = match (earliest, s.hiring_paused_until) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            assert_eq!(Some(at), want, "poll_timeout is not the next deadline");
        } else {
            assert!(
                s.waiting.is_empty() && s.active.is_empty() && s.hiring_paused_until.is_none(),
                "no timeout while a deadline is pending"
            );
        }
    }

    /// Replays the accepted inputs on a machine restored from the starting state: the same
    /// effects and the same state as `machine`'s.
    pub fn check_replay(&self, machine: &Pavilion) {
        let mut fresh = restored(&self.start);
        let mut replayed = Vec::new();
        for (at, input) in &self.log {
            if let Err(e) = fresh.handle(*at, input.clone()) {
                panic!("replay refused {input:?} at {at}: {e}");
            }
            replayed.extend(drain(&mut fresh));
        }
        assert_eq!(
            replayed, self.effects,
            "replaying the log gives other effects"
        );
        assert_eq!(
            fresh.snapshot(),
            machine.snapshot(),
            "replaying the log gives another state"
        );
    }
}
