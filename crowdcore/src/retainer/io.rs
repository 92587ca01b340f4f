//! What goes into the retainer machine ([`Input`]) and what comes out ([`Effect`],
//! [`Rejected`]).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::model::{
    AssignmentId, EffectId, HitId, HitSpec, ReservationId, SpecError, TemplateId, Timestamp,
    WorkerId,
};
use crate::pavilion::{self, ConfigError};

use super::config::PoolTarget;

/// An event the retainer reacts to. Serialized with a `type` tag in snake case, like the
/// Pavilion's inputs (see [`crate::replay`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Input {
    /// Register a HIT template: the spec its pool posts, its pool size and its budget. Its
    /// pool opens at once (and hires nobody until a reservation wants workers).
    RegisterTemplate {
        /// The template's id, unique in the retainer.
        template: TemplateId,
        /// What the pool posts; its reward is each worker's base pay.
        spec: HitSpec,
        /// The pool size; the configuration's [`RetainerConfig::pool`] if absent.
        ///
        /// [`RetainerConfig::pool`]: super::RetainerConfig::pool
        #[serde(default)]
        pool: Option<PoolTarget>,
        /// The most the template's pool may commit, in minor units; `None` for no cap.
        #[serde(default)]
        budget_cents: Option<i64>,
    },
    /// Announce work before it exists: the template's pool starts recruiting for it now, and
    /// it is invoked by itself at `start_at` (if not invoked or cancelled before).
    MakeReservation {
        /// The reservation's id, unique in the retainer.
        reservation: ReservationId,
        /// The template whose pool serves it.
        template: TemplateId,
        /// The task, as the host names it: what a routed worker's page is sent to.
        foreign_id: String,
        /// Anything the host wants a routed worker's page to get along with the task.
        #[serde(default)]
        payload: serde_json::Value,
        /// When to invoke it if nobody does before.
        #[serde(rename = "start_at_ms")]
        start_at: Timestamp,
        /// How many workers the task needs (at least 1).
        needed: u32,
    },
    /// Route workers to the reservation's task now (a made reservation only).
    Invoke {
        /// The reservation.
        reservation: ReservationId,
    },
    /// Call the reservation off: no more routing; the pool stops recruiting for it (workers
    /// waiting for it are released and its surplus HITs expired); workers already routed are
    /// told ([`EffectKind::NotifyWorkers`]) and keep their seats until they leave.
    Cancel {
        /// The reservation.
        reservation: ReservationId,
    },
    /// The task has what it needs: route nobody new to it; routed workers keep working.
    Finish {
        /// The reservation.
        reservation: ReservationId,
    },
    /// Take back a finish: route to the reservation again.
    Unfinish {
        /// The reservation.
        reservation: ReservationId,
    },
    /// Finish every invoked reservation (of `template`, if given).
    FinishAll {
        /// Only this template's reservations.
        #[serde(default)]
        template: Option<TemplateId>,
    },
    /// A worker accepted a slot of `hit` (a HIT of a template's pool) and landed on the
    /// retainer page. Again for a present assignment: a page reload.
    Arrive {
        /// Who arrived.
        worker: WorkerId,
        /// Their assignment.
        assignment: AssignmentId,
        /// The HIT whose slot they took; it must have been reported by [`Input::HirePosted`].
        hit: HitId,
    },
    /// The worker's page is still open: a heartbeat.
    Ping {
        /// The assignment whose page pinged.
        assignment: AssignmentId,
        /// What the page shows.
        #[serde(default)]
        kind: PingKind,
    },
    /// The worker's page asks for work. Counts as a ping; the answer is
    /// [`Retainer::task_for`](super::Retainer::task_for).
    Poll {
        /// The assignment whose page polled.
        assignment: AssignmentId,
    },
    /// The worker submitted (their part of the task done, or they stop waiting).
    Submit {
        /// The assignment submitted.
        assignment: AssignmentId,
        /// Units of work the submission reports: a page's word, paid only as the pool's
        /// [`PavilionConfig::payable_contributions`](crate::pavilion::PavilionConfig::payable_contributions) allows.
        #[serde(default)]
        contributions: u32,
    },
    /// The host counted `count` more units of work by this assignment (see the Pavilion's
    /// [`Input::Contributed`](crate::pavilion::Input::Contributed)).
    Contributed {
        /// The assignment that did the work.
        assignment: AssignmentId,
        /// Units of work done since the last count.
        count: u32,
    },
    /// The worker returned the assignment to the platform.
    Return {
        /// The assignment returned.
        assignment: AssignmentId,
    },
    /// The platform reports the assignment abandoned.
    Abandon {
        /// The assignment abandoned.
        assignment: AssignmentId,
    },
    /// A pool's hire was carried out: `slots` slots of `hit` are open on the platform.
    HirePosted {
        /// The hire effect this answers (required: its id names the template's pool).
        hire: EffectId,
        /// The HIT posted (or the HIT that got more slots).
        hit: HitId,
        /// Slots opened.
        slots: u32,
    },
    /// A pool's hire failed for good.
    HireFailed {
        /// The hire effect this answers.
        hire: EffectId,
        /// Why, as the platform said it.
        #[serde(default)]
        reason: String,
    },
    /// Time passed: heartbeat deadlines, auto-invocations, precruitment alerts, HIT refreshes
    /// and hiring pauses up to now fall due.
    Tick,
}

/// What a worker's page shows when it pings. Both kinds keep the worker present; the kind is
/// for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PingKind {
    /// The retainer's waiting page.
    #[default]
    Waiting,
    /// The task the worker was routed to.
    Working,
}

/// Something the driver must do, with a stable id to do it at most once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Effect {
    /// The time of the input that caused it.
    #[serde(rename = "at_ms")]
    pub at: Timestamp,
    /// The idempotency key. A pool's effects (and routes, which are its promotions) carry the
    /// pool's ids, `<session>/<template>/<seq>`; the retainer's own, `<session>/<seq>`.
    pub id: EffectId,
    /// What to do.
    #[serde(flatten)]
    pub kind: EffectKind,
}

impl Effect {
    /// A pool effect as the [`pavilion::Effect`] it is, to be carried out as the Pavilion's
    /// are (a `hire` posts the template's [`HitSpec`]).
    pub fn pool_effect(&self) -> Option<(&TemplateId, pavilion::Effect)> {
        match &self.kind {
            EffectKind::Pool { template, effect } => Some((
                template,
                pavilion::Effect {
                    at: self.at,
                    id: self.id.clone(),
                    kind: effect.clone(),
                },
            )),
            _ => None,
        }
    }
}

/// The things a driver carries out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EffectKind {
    /// An effect of a template's pool, to carry out as the Pavilion's: `hire` (post `count`
    /// slots of the template's spec; answer with [`Input::HirePosted`] or
    /// [`Input::HireFailed`]), `pay`, `release`, `turn_away`, `timed_out`, `expire_hits`,
    /// `notify`. Never `promote`: a promotion is a [`EffectKind::Route`].
    Pool {
        /// The template.
        template: TemplateId,
        /// The Pavilion effect.
        effect: pavilion::EffectKind,
    },
    /// The worker is routed to the reservation's task: send their page there. Sticky: the
    /// assignment stays routed to this reservation.
    Route {
        /// The template whose pool the worker came from.
        template: TemplateId,
        /// The reservation.
        reservation: ReservationId,
        /// Who.
        worker: WorkerId,
        /// Their assignment.
        assignment: AssignmentId,
        /// The task: the reservation's foreign id.
        task: String,
        /// The reservation's payload.
        payload: serde_json::Value,
    },
    /// Tell these workers' pages something about a reservation.
    NotifyWorkers {
        /// The template.
        template: TemplateId,
        /// The reservation.
        reservation: ReservationId,
        /// What to tell.
        reason: WorkerNotice,
        /// When the reservation starts (or started).
        #[serde(rename = "start_at_ms")]
        start_at: Timestamp,
        /// Whom, oldest first.
        workers: Vec<WorkerRef>,
    },
}

/// What [`EffectKind::NotifyWorkers`] tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkerNotice {
    /// Precruitment: work starts soon (at `start_at`); stay close. Sent to the pool's waiting
    /// workers.
    Precruit,
    /// The reservation was cancelled. Sent to the workers routed to it who are still present.
    Cancelled,
}

/// A present worker and their assignment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerRef {
    /// Who.
    pub worker: WorkerId,
    /// Their assignment.
    pub assignment: AssignmentId,
}

/// Where a reservation is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReservationState {
    /// Announced: its pool recruits for it; nobody is routed yet.
    Made,
    /// Workers are routed to its task as they are available.
    Invoked,
    /// Nobody new is routed; routed workers keep working. Can be unfinished.
    Finished,
    /// Called off for good.
    Cancelled,
}

impl fmt::Display for ReservationState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ReservationState::Made => "made",
            ReservationState::Invoked => "invoked",
            ReservationState::Finished => "finished",
            ReservationState::Cancelled => "cancelled",
        })
    }
}

/// An operation on a reservation, as [`Rejected::NotAllowed`] names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// [`Input::Invoke`].
    Invoke,
    /// [`Input::Cancel`].
    Cancel,
    /// [`Input::Finish`].
    Finish,
    /// [`Input::Unfinish`].
    Unfinish,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Action::Invoke => "invoke",
            Action::Cancel => "cancel",
            Action::Finish => "finish",
            Action::Unfinish => "unfinish",
        })
    }
}

/// Why an input was refused. The retainer's state is exactly as before the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejected {
    /// `now` is earlier than a time the retainer has already seen.
    #[error("time went back from {last} to {now}")]
    ClockWentBack {
        /// The time given.
        now: Timestamp,
        /// The latest time seen before.
        last: Timestamp,
    },
    /// No template was registered under this id.
    #[error("unknown template {0}")]
    UnknownTemplate(TemplateId),
    /// A template is already registered under this id.
    #[error("template {0} is already registered")]
    DuplicateTemplate(TemplateId),
    /// The template's spec is one no platform would accept.
    #[error("template {template}: bad spec: {source}")]
    BadSpec {
        /// The template.
        template: TemplateId,
        /// What is wrong with the spec.
        source: SpecError,
    },
    /// The template's pool cannot be configured (a negative budget).
    #[error("template {template}: bad pool: {source}")]
    BadPool {
        /// The template.
        template: TemplateId,
        /// What is wrong.
        source: ConfigError,
    },
    /// No reservation was made under this id.
    #[error("unknown reservation {0}")]
    UnknownReservation(ReservationId),
    /// A reservation was already made under this id.
    #[error("reservation {0} already exists")]
    DuplicateReservation(ReservationId),
    /// A reservation that needs no workers.
    #[error("reservation {0} needs no workers")]
    ZeroNeeded(ReservationId),
    /// The operation does not apply to the reservation in its state (invoking a cancelled
    /// one, finishing one not invoked, …).
    #[error("cannot {action} reservation {reservation}: it is {state}")]
    NotAllowed {
        /// The reservation.
        reservation: ReservationId,
        /// What was asked.
        action: Action,
        /// Where it is.
        state: ReservationState,
    },
    /// No worker ever arrived with this assignment.
    #[error("unknown assignment {0}")]
    UnknownAssignment(AssignmentId),
    /// An arrival through a HIT no pool posted.
    #[error("unknown HIT {0}")]
    UnknownHit(HitId),
    /// A hire result whose hire id is not of one of the retainer's pools.
    #[error("hire {0} is not of a pool of this retainer")]
    UnknownHire(EffectId),
    /// A hire result names a HIT already posted by another template's pool.
    #[error("HIT {hit} belongs to template {template}")]
    HitOfAnotherTemplate {
        /// The HIT.
        hit: HitId,
        /// The template it belongs to.
        template: TemplateId,
    },
    /// The template's pool refused the input (an assignment that left, a hire not in flight,
    /// another worker's assignment, …).
    #[error("template {template}: {source}")]
    Pool {
        /// The template.
        template: TemplateId,
        /// Why the pool refused.
        source: pavilion::Rejected,
    },
}

/// What a polling worker's page gets: the task they were routed to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoutedTask {
    /// The reservation.
    pub reservation: ReservationId,
    /// The task: the reservation's foreign id.
    pub task: String,
    /// The reservation's payload.
    pub payload: serde_json::Value,
}
