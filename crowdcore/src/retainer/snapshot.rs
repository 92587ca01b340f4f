//! The retainer's whole state as plain data: for status pages, replay checks, and restoring a
//! retainer without replaying its log.

use serde::{Deserialize, Serialize};

use super::config::{PoolTarget, RetainerConfig};
use super::io::{Effect, ReservationState};
use crate::model::{
    AssignmentId, HitId, HitSpec, ReservationId, SessionId, TemplateId, Timestamp, WorkerId,
};
use crate::pavilion;

/// A registered template and its pool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateView {
    /// The template's id.
    pub template: TemplateId,
    /// What its pool posts.
    pub spec: HitSpec,
    /// Its pool size.
    pub pool_target: PoolTarget,
    /// Its pool's budget, in minor units.
    pub budget_cents: Option<i64>,
    /// Its pool: the waiting queue is the retainer pool, the active queue the routed workers.
    pub pool: pavilion::Snapshot,
}

/// A reservation, as [`Retainer::list`](super::Retainer::list) and the snapshot show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReservationView {
    /// Its id.
    pub reservation: ReservationId,
    /// The template whose pool serves it.
    pub template: TemplateId,
    /// The task, as the host names it.
    pub foreign_id: String,
    /// What routed workers' pages get along with the task.
    pub payload: serde_json::Value,
    /// When it is (or was to be) invoked by itself.
    #[serde(rename = "start_at_ms")]
    pub start_at: Timestamp,
    /// Workers its task needs.
    pub needed: u32,
    /// Where it is.
    pub state: ReservationState,
    /// When it was made.
    #[serde(rename = "made_at_ms")]
    pub made_at: Timestamp,
    /// When it was (first) invoked.
    #[serde(rename = "invoked_at_ms")]
    pub invoked_at: Option<Timestamp>,
    /// Its place among invoked reservations (older first get workers first): set on the first
    /// invocation, kept across finish and unfinish.
    pub invoke_order: Option<u64>,
    /// Whether its precruitment alert is done (sent, or not needed any more).
    pub precruited: bool,
    /// Routed workers still present.
    pub working: u32,
    /// Routed workers who submitted: their part is done.
    pub submitted: u32,
    /// Routed workers who left without submitting (returned, abandoned, timed out): their
    /// places are routed again.
    pub dropped: u32,
}

impl ReservationView {
    /// Workers it still needs: `needed − working − submitted`.
    pub fn unmet(&self) -> u32 {
        self.needed
            .saturating_sub(self.working)
            .saturating_sub(self.submitted)
    }
}

/// How a routed worker stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RouteStatus {
    /// Present, on the task.
    Working,
    /// Submitted.
    Submitted,
    /// Left without submitting.
    Dropped,
}

/// A worker routed to a reservation. Routes are never undone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteView {
    /// The assignment.
    pub assignment: AssignmentId,
    /// Who.
    pub worker: WorkerId,
    /// The reservation.
    pub reservation: ReservationId,
    /// When.
    #[serde(rename = "routed_at_ms")]
    pub routed_at: Timestamp,
    /// How they stand.
    pub status: RouteStatus,
}

/// A HIT a pool posted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HitView {
    /// The platform's id.
    pub hit: HitId,
    /// The template whose pool posted it.
    pub template: TemplateId,
    /// When it was first reported posted.
    #[serde(rename = "posted_at_ms")]
    pub posted_at: Timestamp,
    /// Whether it was expired.
    pub expired: bool,
}

/// A HIT refresh to look at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefreshView {
    /// The HIT.
    pub hit: HitId,
    /// When: it is reposted then if it still has open slots, else looked at again later.
    #[serde(rename = "due_ms")]
    pub due: Timestamp,
}

/// The whole state of a [`Retainer`](super::Retainer).
///
/// Two retainers with equal snapshots behave identically from then on;
/// [`Retainer::restore`](super::Retainer::restore) rebuilds one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// The session.
    pub session: SessionId,
    /// The configuration.
    pub config: RetainerConfig,
    /// The latest time the retainer has seen.
    pub now: Timestamp,
    /// Templates, in registration order.
    pub templates: Vec<TemplateView>,
    /// Reservations, in the order they were made.
    pub reservations: Vec<ReservationView>,
    /// Routes, in routing order.
    pub routes: Vec<RouteView>,
    /// HITs the pools posted, in posting order.
    pub hits: Vec<HitView>,
    /// HIT refreshes to look at, soonest first.
    pub refreshes: Vec<RefreshView>,
    /// The invoke order the next invoked reservation gets.
    pub next_invoke_order: u64,
    /// The sequence number the retainer's next own effect gets.
    pub next_effect_seq: u64,
    /// Effects produced and not yet polled.
    pub pending_effects: Vec<Effect>,
}
