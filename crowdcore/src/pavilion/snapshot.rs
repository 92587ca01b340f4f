//! The machine's whole state as plain data: for status pages, for replay checks, and for
//! restoring a machine without replaying its whole log.

use serde::{Deserialize, Serialize};

use super::config::PavilionConfig;
use super::io::Effect;
use crate::model::{AssignmentId, EffectId, HitId, Money, SessionId, Timestamp, WorkerId};

/// Where the session is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Created; the operator has not started it. Nothing is hired.
    Setup,
    /// Started: hiring; arrivals wait until the start condition holds.
    Recruiting,
    /// The task has begun: the active queue is kept full from the waiting queue.
    Running,
    /// The job has stopped: everyone was released, nobody is hired or seated.
    Stopped,
}

/// How a worker left.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Departure {
    /// Submitted their work.
    Submitted,
    /// Returned the assignment.
    Returned,
    /// The platform reported the assignment abandoned.
    Abandoned,
    /// Their page went silent past the heartbeat timeout.
    TimedOut,
    /// Released by the operator (stop, lowered targets).
    Released,
    /// Could not be seated on arrival.
    TurnedAway,
}

/// A present worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeatView {
    /// Who.
    pub worker: WorkerId,
    /// Their assignment.
    pub assignment: AssignmentId,
    /// The HIT they came through.
    pub hit: HitId,
    /// When they arrived.
    pub arrived_at: Timestamp,
    /// When they were promoted to active, if they were.
    pub promoted_at: Option<Timestamp>,
    /// Their last sign of life.
    pub last_seen: Timestamp,
    /// Queue position, shared by both queues: set on arrival and again on promotion.
    pub order: u64,
    /// Contributions the host counted so far ([`Input::Contributed`](super::Input::Contributed)),
    /// if it counted any. Absent from snapshots written before host counts existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contributed: Option<u32>,
}

/// A worker who left.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DepartedView {
    /// Who.
    pub worker: WorkerId,
    /// Their assignment.
    pub assignment: AssignmentId,
    /// The HIT they came through.
    pub hit: HitId,
    /// How they left.
    pub how: Departure,
    /// Whether they still hold their slot on the platform (timed out or turned away, not yet
    /// returned or abandoned there).
    #[serde(default)]
    pub holds_slot: bool,
}

/// A HIT posted in the session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HitView {
    /// The platform's id.
    pub hit: HitId,
    /// Slots open (posted, not taken) as far as the machine knows.
    pub open_slots: u32,
    /// Whether the machine has asked for it to be expired.
    pub expired: bool,
}

/// A hire asked for and not yet answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HireView {
    /// The hire effect's id.
    pub id: EffectId,
    /// Slots asked for.
    pub count: u32,
}

/// The whole state of a [`Pavilion`](super::Pavilion) machine.
///
/// Two machines with equal snapshots behave identically from then on;
/// [`Pavilion::restore`](super::Pavilion::restore) rebuilds one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// The session.
    pub session: SessionId,
    /// The configuration in force (with the current targets).
    pub config: PavilionConfig,
    /// The latest time the machine has seen.
    pub now: Timestamp,
    /// Where the session is.
    pub phase: Phase,
    /// Whether the operator expired the HITs (no more hiring).
    pub hiring_closed: bool,
    /// Hiring pauses after a failed hire until this time.
    pub hiring_paused_until: Option<Timestamp>,
    /// Whether the budget notice was given.
    pub budget_noticed: bool,
    /// The waiting queue, oldest first.
    pub waiting: Vec<SeatView>,
    /// The active queue, in promotion order.
    pub active: Vec<SeatView>,
    /// Every worker who left, by assignment id.
    pub departed: Vec<DepartedView>,
    /// Every HIT posted, in posting order.
    pub hits: Vec<HitView>,
    /// Hires in flight, oldest first.
    pub hires_in_flight: Vec<HireView>,
    /// Slots open over all HITs.
    pub open_slots: u32,
    /// Paid so far.
    pub spent: Money,
    /// Paid plus the base pay of every seat that may still be paid (present, open, in flight).
    pub committed: Money,
    /// The queue position the next arrival or promotion will get.
    pub next_order: u64,
    /// The sequence number the next effect will get.
    pub next_effect_seq: u64,
    /// Effects produced and not yet polled.
    pub pending_effects: Vec<Effect>,
}
