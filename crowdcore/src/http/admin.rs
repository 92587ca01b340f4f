//! The admin API and the status page's data, every route behind the admin key.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::IntoResponse;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::routing::{get, post, put};
use axum::{Json, Router, middleware};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use super::HttpState;
use super::auth::require_admin;
use super::error::{ApiError, Body, NoBody};
use super::finish::Owed;
use super::hub::{Broadcast, Point, Stamped};
use crate::model::{AssignmentId, HitId, Money, SessionId, Timestamp, WorkerId};
use crate::pavilion::{Departure, Input, Phase, SeatView, Snapshot, Targets};
use crate::store::LedgerEntry;

pub(super) fn routes(state: HttpState) -> Router {
    Router::new()
        .route("/api/start", post(start))
        .route("/api/stop", post(stop))
        .route("/api/expire", post(expire))
        .route("/api/migrate", post(migrate))
        .route("/api/targets", put(targets))
        .route("/api/contributions", post(contributions))
        .route("/api/snapshot", get(snapshot))
        .route("/api/ledger", get(ledger))
        .route("/api/owed", get(owed))
        .route("/api/leaderboard", get(leaderboard))
        .route("/api/status", get(status))
        .route("/api/status/stream", get(status_stream))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_admin))
        .with_state(state)
}

#[derive(Serialize)]
struct Done {
    ok: bool,
}

async fn command(state: &HttpState, input: Input) -> Result<Json<Done>, ApiError> {
    state.inner.engine.input(input).await?;
    Ok(Json(Done { ok: true }))
}

async fn start(State(state): State<HttpState>, _: NoBody) -> Result<Json<Done>, ApiError> {
    command(&state, Input::Start).await
}

async fn stop(State(state): State<HttpState>, _: NoBody) -> Result<Json<Done>, ApiError> {
    command(&state, Input::Stop).await
}

async fn expire(State(state): State<HttpState>, _: NoBody) -> Result<Json<Done>, ApiError> {
    command(&state, Input::Expire).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MigrateBody {
    count: u32,
}

async fn migrate(
    State(state): State<HttpState>,
    Body(body): Body<MigrateBody>,
) -> Result<Json<Done>, ApiError> {
    command(&state, Input::Migrate { count: body.count }).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ContributionsBody {
    assignment_id: String,
    count: u32,
}

/// The host counted `count` more contributions by an assignment ([`Input::Contributed`]):
/// what its per-contribution bonus pays, whatever its page reports.
async fn contributions(
    State(state): State<HttpState>,
    Body(body): Body<ContributionsBody>,
) -> Result<Json<Done>, ApiError> {
    super::worker::check_id(&body.assignment_id, "assignment_id")?;
    command(
        &state,
        Input::Contributed {
            assignment: AssignmentId::new(body.assignment_id),
            count: body.count,
        },
    )
    .await
}

async fn targets(
    State(state): State<HttpState>,
    Body(body): Body<Targets>,
) -> Result<Json<Done>, ApiError> {
    command(&state, Input::SetTargets(body)).await
}

async fn snapshot(State(state): State<HttpState>) -> Result<Json<Snapshot>, ApiError> {
    Ok(Json(state.inner.engine.snapshot().await?))
}

async fn ledger(State(state): State<HttpState>) -> Result<Json<Vec<LedgerEntry>>, ApiError> {
    Ok(Json(state.inner.engine.ledger().await?))
}

/// Every amount owed and not yet paid: pays the engine is still making (an MTurk assignment
/// not yet submitted) and pays that failed, each with what the operator can do.
async fn owed(State(state): State<HttpState>) -> Result<Json<Vec<Owed>>, ApiError> {
    Ok(Json(owed_now(&state).await?))
}

async fn owed_now(state: &HttpState) -> Result<Vec<Owed>, ApiError> {
    let ledger = state.inner.engine.ledger().await?;
    let pending =
        state.inner.records.pending().await.map_err(|e| {
            ApiError::new(super::ErrorCode::EngineFailed, e.to_string()).retry_after(1)
        })?;
    Ok(super::finish::owed(&ledger, &pending))
}

/// A worker's line of the earnings leaderboard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
struct Earner {
    rank: usize,
    worker: WorkerId,
    paid_cents: i64,
    assignments: usize,
}

/// Workers by money paid in this session (failed payments excluded), most first; ties share a
/// rank and are listed by worker id.
fn earners(ledger: &[LedgerEntry]) -> Vec<Earner> {
    let mut by: BTreeMap<&WorkerId, (i64, std::collections::BTreeSet<&AssignmentId>)> =
        BTreeMap::new();
    for e in ledger.iter().filter(|e| e.paid) {
        let entry = by.entry(&e.worker).or_default();
        entry.0 = entry.0.saturating_add(e.amount.minor);
        if let Some(a) = &e.assignment {
            entry.1.insert(a);
        }
    }
    let mut rows: Vec<_> = by.into_iter().collect();
    rows.sort_by(|a, b| b.1.0.cmp(&a.1.0).then(a.0.cmp(b.0)));
    let mut out: Vec<Earner> = Vec::with_capacity(rows.len());
    for (i, (worker, (paid, assignments))) in rows.into_iter().enumerate() {
        let rank = match out.last() {
            Some(prev) if prev.paid_cents == paid => prev.rank,
            _ => i + 1,
        };
        out.push(Earner {
            rank,
            worker: worker.clone(),
            paid_cents: paid,
            assignments: assignments.len(),
        });
    }
    out
}

async fn leaderboard(State(state): State<HttpState>) -> Result<impl IntoResponse, ApiError> {
    let ledger = state.inner.engine.ledger().await?;
    Ok(Json(earners(&ledger)))
}

/// A worker in a queue, as the status page shows them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QueueEntry {
    /// Who.
    pub worker: WorkerId,
    /// Their assignment.
    pub assignment: AssignmentId,
    /// The HIT they came through.
    pub hit: HitId,
    /// When they arrived.
    pub arrived_at: Timestamp,
    /// When they were promoted, if they were.
    pub promoted_at: Option<Timestamp>,
    /// Time spent waiting (until promotion, or until now).
    pub waited_ms: u64,
    /// Time spent active so far.
    pub active_ms: u64,
    /// Time since their page's last heartbeat.
    pub silent_ms: u64,
}

/// The session as the status page shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatusView {
    /// The session.
    pub session: SessionId,
    /// Its phase.
    pub phase: Phase,
    /// The server's time.
    pub now: Timestamp,
    /// The targets in force.
    pub targets: Targets,
    /// The waiting queue, oldest first.
    pub waiting: Vec<QueueEntry>,
    /// The active queue, in promotion order.
    pub active: Vec<QueueEntry>,
    /// Slots open on the platform.
    pub open_slots: u32,
    /// Slots asked for and not yet posted.
    pub hiring: u32,
    /// Whether hiring has been closed (expire, stop).
    pub hiring_closed: bool,
    /// How many workers left, by how.
    pub departed: BTreeMap<String, u32>,
    /// Paid so far.
    pub spent: Money,
    /// Paid plus what present, open and in-flight seats may still cost.
    pub committed: Money,
    /// The budget, if capped.
    pub budget: Option<Money>,
}

impl StatusView {
    /// The view of `snap` at `now`.
    pub fn of(snap: &Snapshot, now: Timestamp) -> Self {
        let entry = |s: &SeatView| {
            let waited_until = s.promoted_at.unwrap_or(now);
            QueueEntry {
                worker: s.worker.clone(),
                assignment: s.assignment.clone(),
                hit: s.hit.clone(),
                arrived_at: s.arrived_at,
                promoted_at: s.promoted_at,
                waited_ms: waited_until.millis_since(s.arrived_at),
                active_ms: s.promoted_at.map_or(0, |p| now.millis_since(p)),
                silent_ms: now.millis_since(s.last_seen),
            }
        };
        let mut departed = BTreeMap::new();
        for d in &snap.departed {
            let name = match d.how {
                Departure::Submitted => "submitted",
                Departure::Returned => "returned",
                Departure::Abandoned => "abandoned",
                Departure::TimedOut => "timed_out",
                Departure::Released => "released",
                Departure::TurnedAway => "turned_away",
            };
            *departed.entry(name.to_owned()).or_insert(0) += 1;
        }
        Self {
            session: snap.session.clone(),
            phase: snap.phase,
            now,
            targets: snap.config.targets(),
            waiting: snap.waiting.iter().map(entry).collect(),
            active: snap.active.iter().map(entry).collect(),
            open_slots: snap.open_slots,
            hiring: snap.hires_in_flight.iter().map(|h| h.count).sum(),
            hiring_closed: snap.hiring_closed,
            departed,
            spent: snap.spent,
            committed: snap.committed,
            budget: snap.config.budget(),
        }
    }
}

#[derive(Serialize)]
struct StatusPage {
    status: StatusView,
    /// What is owed and not yet paid.
    owed: Vec<Owed>,
    history: Vec<Point>,
    events: Vec<std::sync::Arc<Stamped>>,
}

async fn status_view(state: &HttpState) -> Result<StatusView, ApiError> {
    let snap = state.inner.engine.snapshot().await?;
    Ok(StatusView::of(&snap, state.inner.clock.now()))
}

async fn status(State(state): State<HttpState>) -> Result<Json<StatusPage>, ApiError> {
    Ok(Json(StatusPage {
        status: status_view(&state).await?,
        owed: owed_now(&state).await?,
        history: state.inner.hub.history(),
        events: state.inner.hub.recent(),
    }))
}

/// `status` first (with `history` and `events`), then `status` each second it changed,
/// `point` for each chart point and `engine` for each engine event.
async fn status_stream(State(state): State<HttpState>) -> Result<impl IntoResponse, ApiError> {
    let first = StatusPage {
        status: status_view(&state).await?,
        owed: owed_now(&state).await?,
        history: state.inner.hub.history(),
        events: state.inner.hub.recent(),
    };
    let first = Event::default()
        .event("page")
        .json_data(&first)
        .map_err(|e| ApiError::new(super::ErrorCode::EngineFailed, e.to_string()))?;
    let listen = state.inner.hub.listen();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let stream = futures_util::stream::unfold(
        (Some(first), listen, tick, state, String::new()),
        |(first, mut listen, mut tick, state, mut last)| async move {
            if let Some(first) = first {
                return Some((
                    Ok::<_, Infallible>(first),
                    (None, listen, tick, state, last),
                ));
            }
            loop {
                tokio::select! {
                    got = listen.recv() => match got {
                        Ok(Broadcast::Event(e)) => {
                            let ev = Event::default().event("engine").json_data(&*e).ok()?;
                            return Some((Ok(ev), (None, listen, tick, state, last)));
                        }
                        Ok(Broadcast::Point(p)) => {
                            let ev = Event::default().event("point").json_data(p).ok()?;
                            return Some((Ok(ev), (None, listen, tick, state, last)));
                        }
                        Err(broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(broadcast::error::RecvError::Closed) => return None,
                    },
                    _ = tick.tick() => {
                        let view = status_view(&state).await.ok()?;
                        let body = serde_json::to_string(&view).ok()?;
                        // Only the clock moved: the page advances its timers itself.
                        let key = strip_now(&body);
                        if key != last {
                            last = key;
                            let ev = Event::default().event("status").data(body);
                            return Some((Ok(ev), (None, listen, tick, state, last)));
                        }
                    }
                }
            }
        },
    );
    Ok((
        [("x-accel-buffering", "no"), ("cache-control", "no-store")],
        Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))),
    ))
}

/// The status without the fields that change with the clock alone.
fn strip_now(body: &str) -> String {
    match serde_json::from_str::<serde_json::Value>(body) {
        Ok(mut v) => {
            if let Some(o) = v.as_object_mut() {
                o.remove("now");
                for q in ["waiting", "active"] {
                    if let Some(list) = o.get_mut(q).and_then(|l| l.as_array_mut()) {
                        for e in list.iter_mut().filter_map(|e| e.as_object_mut()) {
                            for k in ["waited_ms", "active_ms", "silent_ms"] {
                                e.remove(k);
                            }
                        }
                    }
                }
            }
            v.to_string()
        }
        Err(_) => body.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{EffectId, SessionId};

    fn paid(worker: &str, assignment: &str, cents: i64, ok: bool) -> LedgerEntry {
        LedgerEntry {
            effect: EffectId::new(SessionId::new("s"), 1),
            worker: WorkerId::new(worker),
            assignment: Some(AssignmentId::new(assignment)),
            kind: "base".into(),
            amount: Money::new(cents, crate::model::Currency::USD),
            paid: ok,
            at: Timestamp::ZERO,
        }
    }

    #[test]
    fn the_leaderboard_sums_paid_money_and_shares_ranks() {
        let board = earners(&[
            paid("b", "A1", 10, true),
            paid("a", "A2", 5, true),
            paid("a", "A3", 5, true),
            paid("c", "A4", 30, false),
            paid("d", "A5", 3, true),
        ]);
        let rows: Vec<_> = board
            .iter()
            .map(|e| (e.rank, e.worker.as_str(), e.paid_cents, e.assignments))
            .collect();
        assert_eq!(rows, vec![(1, "a", 10, 2), (1, "b", 10, 1), (3, "d", 3, 1)]);
    }
}
