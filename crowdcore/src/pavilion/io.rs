//! What goes into the Pavilion machine ([`Input`]) and what comes out ([`Effect`], [`Rejected`]).

use serde::{Deserialize, Serialize};

use super::config::{ConfigError, Targets};
use crate::model::{AssignmentId, EffectId, HitId, Money, Timestamp, WorkerId};

/// An event the machine reacts to. Serialized with a `type` tag in snake case: the replay
/// format's input lines (see [`crate::replay`]), and how drivers log inputs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Input {
    /// A worker accepted a slot of `hit` and landed on the page. A second arrival of a present
    /// assignment is a page reload: it refreshes the heartbeat and changes nothing else.
    Arrive {
        /// Who arrived.
        worker: WorkerId,
        /// Their assignment.
        assignment: AssignmentId,
        /// The HIT whose slot they took; it must have been reported by [`Input::HirePosted`].
        hit: HitId,
    },
    /// The worker's page is still open.
    Heartbeat {
        /// The assignment whose page pinged.
        assignment: AssignmentId,
    },
    /// The worker submitted (finished, or gave up waiting and took the waiting pay).
    Submit {
        /// The assignment submitted.
        assignment: AssignmentId,
        /// Units of work the submission reports. A page's word: paid only where the host has
        /// no count of its own and only up to the cap (see
        /// [`PavilionConfig::payable_contributions`](super::PavilionConfig::payable_contributions)).
        #[serde(default)]
        contributions: u32,
    },
    /// The host (its task server, or an operator) counted `count` more units of work by this
    /// assignment. Counts add up; once the host has counted an assignment, its count — not
    /// the submission's — is what the per-contribution bonus pays, up to the cap. Only a
    /// present worker's count can change: pay is settled when they leave.
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
    /// The platform reports the assignment abandoned (its duration ran out).
    Abandon {
        /// The assignment abandoned.
        assignment: AssignmentId,
    },
    /// Time passed: heartbeat deadlines and hiring pauses up to now fall due.
    Tick,
    /// A hire was carried out: `slots` slots of `hit` are open on the platform.
    HirePosted {
        /// The hire effect this answers; the oldest hire in flight if absent.
        #[serde(default)]
        hire: Option<EffectId>,
        /// The HIT posted (or the HIT that got more slots).
        hit: HitId,
        /// Slots opened; fewer than asked means the rest was not posted. More than asked
        /// counts as asked: the extra slots were never hired nor budgeted.
        slots: u32,
    },
    /// A hire failed for good (the driver retries transient errors itself).
    HireFailed {
        /// The hire effect this answers; the oldest hire in flight if absent.
        #[serde(default)]
        hire: Option<EffectId>,
        /// Why, as the platform said it.
        #[serde(default)]
        reason: String,
    },
    /// The operator opens the session: hiring begins.
    Start,
    /// The operator ends the job: every present worker is released (auto-submitted and paid)
    /// and hiring stops. Later arrivals are turned away.
    Stop,
    /// The operator closes every HIT of the session, also those nobody accepted; hiring stops.
    /// Present workers keep their seats.
    Expire,
    /// Close one HIT of the session (to repost it so it stays visible, or because its slots are
    /// not wanted any more): its open slots no longer count, so the deficit they leave is hired
    /// anew (unless hiring is closed). Workers who came through it keep their seats. A HIT
    /// already closed stays closed and nothing happens.
    ExpireHit {
        /// The HIT to close; it must have been reported by [`Input::HirePosted`].
        hit: HitId,
    },
    /// The operator moves up to `count` waiting workers to the active queue, capped by
    /// `max_active`, beginning the task if it has not begun.
    Migrate {
        /// How many to move at most.
        count: u32,
    },
    /// The operator changes the queue targets. Workers above the new maximums are released,
    /// newest first.
    SetTargets(Targets),
}

/// Why an input was refused. The machine's state is exactly as before the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejected {
    /// `now` is earlier than a time the machine has already seen.
    #[error("time went back from {last} to {now}")]
    ClockWentBack {
        /// The time given.
        now: Timestamp,
        /// The latest time seen before.
        last: Timestamp,
    },
    /// No worker ever arrived with this assignment.
    #[error("unknown assignment {0}")]
    UnknownAssignment(AssignmentId),
    /// The assignment's worker already left (submitted, returned, abandoned, was released or
    /// turned away); an assignment never comes back.
    #[error("assignment {0} already left")]
    AlreadyLeft(AssignmentId),
    /// An arrival names a different worker than the one holding the assignment.
    #[error("assignment {assignment} belongs to {holder}, not {claimed}")]
    WorkerMismatch {
        /// The assignment.
        assignment: AssignmentId,
        /// Who holds it.
        holder: WorkerId,
        /// Who the arrival named.
        claimed: WorkerId,
    },
    /// An arrival through a HIT the session never posted.
    #[error("unknown HIT {0}")]
    UnknownHit(HitId),
    /// A hire result when no hire is in flight.
    #[error("no hire is in flight")]
    NoHireInFlight,
    /// A hire result for a hire that is not in flight.
    #[error("hire {0} is not in flight")]
    UnknownHire(EffectId),
    /// An admin command that needs the session started.
    #[error("the session has not started")]
    NotStarted,
    /// `Start` on a session already started.
    #[error("the session has already started")]
    AlreadyStarted,
    /// A command the stopped job can no longer take.
    #[error("the job has stopped")]
    Stopped,
    /// Targets that cannot work.
    #[error("bad targets: {0}")]
    BadTargets(#[from] ConfigError),
}

/// Something the driver must do, with a stable id to do it at most once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Effect {
    /// The time of the input that caused it.
    #[serde(rename = "at_ms")]
    pub at: Timestamp,
    /// `<session>/<seq>`: use it as the idempotency key of the platform call.
    pub id: EffectId,
    /// What to do.
    #[serde(flatten)]
    pub kind: EffectKind,
}

/// The things a driver carries out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EffectKind {
    /// Open `count` more slots on the platform (post a HIT or add assignments). Answer with
    /// [`Input::HirePosted`] or [`Input::HireFailed`] naming this effect's id.
    Hire {
        /// Slots to open.
        count: u32,
    },
    /// The worker is now on the task: tell their page.
    Promote {
        /// Who.
        worker: WorkerId,
        /// Their assignment.
        assignment: AssignmentId,
    },
    /// The worker's work is over: auto-submit their assignment.
    Release {
        /// Who.
        worker: WorkerId,
        /// Their assignment.
        assignment: AssignmentId,
        /// Why.
        reason: ReleaseReason,
    },
    /// The worker cannot be seated: tell their page and ask them to return the HIT.
    TurnAway {
        /// Who.
        worker: WorkerId,
        /// Their assignment.
        assignment: AssignmentId,
        /// Why.
        reason: TurnAwayReason,
    },
    /// The worker's page went silent past the heartbeat timeout: they are gone.
    TimedOut {
        /// Who.
        worker: WorkerId,
        /// Their assignment.
        assignment: AssignmentId,
    },
    /// Pay the worker (approve for base pay, bonus otherwise).
    Pay {
        /// Who.
        worker: WorkerId,
        /// The assignment paid for.
        assignment: AssignmentId,
        /// Which part of the pay.
        kind: PayKind,
        /// How much.
        #[serde(flatten, with = "crate::model::money_as_cents")]
        amount: Money,
    },
    /// Close these HITs on the platform.
    ExpireHits {
        /// The HITs, in the order they were posted.
        hits: Vec<HitId>,
    },
    /// Tell the operator something. Serialized flat: `{"type": "notify", "notice":
    /// "task_began", "present": 3}`.
    Notify {
        /// What happened.
        #[serde(flatten)]
        notice: Notice,
    },
}

/// Why a worker was released.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReleaseReason {
    /// The operator stopped the job.
    JobStopped,
    /// The operator lowered the targets below the workers present.
    TargetsLowered,
}

/// Why a worker was turned away on arrival.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TurnAwayReason {
    /// Every seat is taken.
    JobFull,
    /// The job has stopped.
    JobEnded,
    /// Seating them would exceed the budget.
    OverBudget,
    /// The worker already holds a seat under another assignment: one seat per worker.
    AlreadySeated,
}

/// The parts of a worker's pay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PayKind {
    /// The HIT's reward: approve the assignment.
    Base,
    /// Time spent waiting, at `waiting_cents_per_minute`.
    WaitingBonus,
    /// Time spent active, at `active_cents_per_minute`.
    ActiveBonus,
    /// Contributions, at `per_contribution_cents`.
    ContributionBonus,
}

/// What the machine tells the operator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "notice", rename_all = "snake_case")]
pub enum Notice {
    /// The task began: workers now move from waiting to active.
    TaskBegan {
        /// Workers present at the moment.
        present: u32,
    },
    /// The budget cannot cover what the machine wanted to hire or pay; hiring is capped at
    /// what the budget allows from now on.
    BudgetExhausted {
        /// Committed spending, in minor units.
        committed_cents: i64,
        /// The cap, in minor units.
        budget_cents: i64,
    },
    /// A hire failed; hiring resumes at `retry_at`.
    HireFailed {
        /// The platform's reason.
        reason: String,
        /// When hiring resumes.
        retry_at: Timestamp,
    },
}
