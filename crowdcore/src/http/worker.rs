//! The worker-facing routes: arrival, heartbeat, state (poll and SSE), submit, return.

use std::convert::Infallible;
use std::time::Duration;

use async_trait::async_trait;
use axum::Router;
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use super::HttpState;
use super::auth::{check_token, page_token};
use super::error::{ApiError, Body, ErrorCode, Q};
use super::hub::{PageState, PageStatus};
use crate::engine::{EngineEvent, HandleError};
use crate::local::LocalMarketplace;
use crate::model::{AssignmentId, HitId, WorkerId};
use crate::pavilion::{EffectKind, Input};

/// The id MTurk puts in a page's URL while the worker only previews the HIT.
pub const PREVIEW_ASSIGNMENT: &str = "ASSIGNMENT_ID_NOT_AVAILABLE";

/// The longest id accepted, in bytes.
const MAX_ID: usize = 256;

/// A platform's worker side in this process, told of a submission or a return after the
/// engine took it (so that the platform and the engine agree). MTurk has none: its page posts
/// the platform's submit form instead (see [`PlatformForm`]).
#[async_trait]
pub trait WorkerSide: Send + Sync {
    /// Whether `worker` holds `assignment` of `hit` on the platform now. An arrival the
    /// platform does not confirm is refused before it reaches the engine, so that nobody can
    /// take a seat with a made-up assignment id. The default confirms everything (for
    /// platforms that cannot be asked).
    async fn holds(
        &self,
        _worker: &WorkerId,
        _assignment: &AssignmentId,
        _hit: &HitId,
    ) -> Result<bool, String> {
        Ok(true)
    }
    /// The worker submitted `assignment` with `contributions` units of work.
    async fn submitted(&self, assignment: &AssignmentId, contributions: u32) -> Result<(), String>;
    /// The worker returned `assignment`.
    async fn returned(&self, assignment: &AssignmentId) -> Result<(), String>;
}

#[async_trait]
impl WorkerSide for LocalMarketplace {
    async fn holds(
        &self,
        worker: &WorkerId,
        assignment: &AssignmentId,
        hit: &HitId,
    ) -> Result<bool, String> {
        Ok(self.holder(assignment).is_some_and(|(w, h, status)| {
            &w == worker && &h == hit && status == crate::platform::AssignmentStatus::Accepted
        }))
    }

    async fn submitted(&self, assignment: &AssignmentId, contributions: u32) -> Result<(), String> {
        // The engine pays the base by approving, which the local market allows before the
        // worker's own submission arrives: then there is nothing left to submit.
        if self.status(assignment) == Some(crate::platform::AssignmentStatus::Approved) {
            return Ok(());
        }
        self.submit(assignment, Some(contributions.to_string()))
            .map_err(|e| e.to_string())
    }

    async fn returned(&self, assignment: &AssignmentId) -> Result<(), String> {
        self.return_assignment(assignment)
            .map_err(|e| e.to_string())
    }
}

/// A form the page posts to the platform after the engine took a submission (MTurk's
/// `externalSubmit`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlatformForm {
    /// Where the form goes.
    pub action: String,
    /// Its fields, in order.
    pub fields: Vec<(String, String)>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ArriveBody {
    assignment_id: String,
    hit_id: String,
    worker_id: String,
    #[serde(default)]
    turk_submit_to: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PageBody {
    assignment_id: String,
    token: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SubmitBody {
    assignment_id: String,
    token: String,
    #[serde(default)]
    contributions: u32,
}

#[derive(Serialize)]
struct Arrived {
    token: String,
    heartbeat_every_ms: u64,
    state: PageState,
}

#[derive(Serialize)]
struct Left {
    state: PageState,
    #[serde(skip_serializing_if = "Option::is_none")]
    form: Option<PlatformForm>,
}

pub(super) fn routes(state: HttpState) -> Router {
    Router::new()
        .route("/w/arrive", post(arrive))
        .route("/w/heartbeat", post(heartbeat))
        .route("/w/state", get(page_state))
        .route("/w/events", get(events))
        .route("/w/submit", post(submit))
        .route("/w/return", post(give_back))
        .with_state(state)
}

pub(super) fn check_id(value: &str, what: &str) -> Result<(), ApiError> {
    if value.is_empty() || value.len() > MAX_ID || value.chars().any(char::is_control) {
        return Err(ApiError::new(
            ErrorCode::InvalidId,
            format!("{what} must be 1 to {MAX_ID} bytes without control characters"),
        ));
    }
    Ok(())
}

fn submit_origin(state: &HttpState, given: Option<String>) -> Result<Option<String>, ApiError> {
    let Some(given) = given.filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    let origin = given.trim_end_matches('/');
    if state
        .inner
        .config
        .submit_origins
        .iter()
        .any(|o| o.trim_end_matches('/') == origin)
    {
        Ok(Some(origin.to_owned()))
    } else {
        Err(ApiError::new(
            ErrorCode::BadSubmitTarget,
            "turk_submit_to is not an allowed platform address",
        ))
    }
}

/// The page's assignment, once its token is checked.
fn authorize(state: &HttpState, assignment: &str, token: &str) -> Result<AssignmentId, ApiError> {
    check_id(assignment, "assignment_id")?;
    let assignment = AssignmentId::new(assignment);
    check_token(&state.inner.config.page_secret, &assignment, token)?;
    Ok(assignment)
}

fn current(state: &HttpState, assignment: &AssignmentId) -> Result<PageState, ApiError> {
    let mut s = state.inner.hub.state(assignment).ok_or_else(|| {
        ApiError::new(
            ErrorCode::UnknownAssignment,
            "no worker arrived with this assignment",
        )
    })?;
    s.now = state.inner.clock.now();
    Ok(s)
}

/// An engine error, with the page's state attached when the page has one.
fn refused(state: &HttpState, assignment: &AssignmentId, e: HandleError) -> ApiError {
    ApiError::from(e).with_state(current(state, assignment).ok())
}

async fn arrive(
    State(state): State<HttpState>,
    Body(body): Body<ArriveBody>,
) -> Result<Response, ApiError> {
    check_id(&body.assignment_id, "assignment_id")?;
    check_id(&body.hit_id, "hit_id")?;
    check_id(&body.worker_id, "worker_id")?;
    if body.assignment_id == PREVIEW_ASSIGNMENT {
        return Err(ApiError::new(
            ErrorCode::InvalidId,
            "a preview has no assignment: accept the HIT first",
        ));
    }
    let submit_to = submit_origin(&state, body.turk_submit_to)?;
    let assignment = AssignmentId::new(body.assignment_id);
    let worker = WorkerId::new(body.worker_id);
    let hit = HitId::new(body.hit_id);
    let hub = &state.inner.hub;
    // A page that arrived before (a reload) is known; a new one must be the platform's.
    let known = hub
        .state(&assignment)
        .is_some_and(|s| s.status != PageStatus::Arriving);
    if !known && let Some(side) = &state.inner.worker_side {
        match side.holds(&worker, &assignment, &hit).await {
            Ok(true) => {}
            Ok(false) => {
                return Err(ApiError::new(
                    ErrorCode::UnknownAssignment,
                    "the platform does not know this worker to hold this assignment",
                ));
            }
            Err(e) => {
                tracing::warn!(%assignment, error = %e, "cannot ask the platform about an arrival");
                return Err(ApiError::new(
                    ErrorCode::EngineFailed,
                    "cannot confirm the assignment with the platform; try again",
                ));
            }
        }
    }
    if hub.register(&assignment, &worker, submit_to).is_err() {
        return Err(ApiError::new(
            ErrorCode::WorkerMismatch,
            "another worker holds this assignment",
        ));
    }
    // Subscribed before the input, so this answer already knows what the arrival caused.
    let mut mine = state.inner.engine.subscribe();
    let input = Input::Arrive {
        worker,
        assignment: assignment.clone(),
        hit,
    };
    match state.inner.engine.input(input).await {
        Ok(()) => {
            drain(&state, &mut mine, &assignment);
            hub.set(&assignment, PageStatus::Waiting, state.inner.clock.now());
        }
        Err(e) => {
            let error = ApiError::from(e);
            // A reload after leaving: the page learns how it ended.
            let known = hub.state(&assignment).is_some_and(|s| s.status.is_final());
            if !(error.code == ErrorCode::AlreadyLeft && known) {
                hub.unregister(&assignment);
                return Err(error);
            }
        }
    }
    let arrived = Arrived {
        token: page_token(&state.inner.config.page_secret, &assignment),
        heartbeat_every_ms: state.inner.config.heartbeat_every_ms,
        state: current(&state, &assignment)?,
    };
    Ok(axum::Json(arrived).into_response())
}

/// Applies the events the page's own input produced for it.
fn drain(state: &HttpState, rx: &mut broadcast::Receiver<EngineEvent>, assignment: &AssignmentId) {
    loop {
        match rx.try_recv() {
            Ok(EngineEvent::Effect(effect)) => {
                let mine = match &effect.kind {
                    EffectKind::Promote { assignment: a, .. }
                    | EffectKind::Release { assignment: a, .. }
                    | EffectKind::TurnAway { assignment: a, .. }
                    | EffectKind::TimedOut { assignment: a, .. } => a == assignment,
                    _ => false,
                };
                if mine {
                    state.inner.hub.apply(&effect.kind, effect.at);
                }
            }
            Ok(_) | Err(broadcast::error::TryRecvError::Lagged(_)) => {}
            Err(_) => return,
        }
    }
}

async fn heartbeat(
    State(state): State<HttpState>,
    Body(body): Body<PageBody>,
) -> Result<axum::Json<PageState>, ApiError> {
    let assignment = authorize(&state, &body.assignment_id, &body.token)?;
    let now = state.inner.clock.now();
    let gap = state.inner.config.heartbeat_forward_gap_ms;
    if state.inner.hub.forward_heartbeat(&assignment, now, gap) {
        state
            .inner
            .engine
            .input(Input::Heartbeat {
                assignment: assignment.clone(),
            })
            .await
            .map_err(|e| {
                state.inner.hub.heartbeat_not_forwarded(&assignment);
                refused(&state, &assignment, e)
            })?;
    }
    Ok(axum::Json(current(&state, &assignment)?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PageQuery {
    assignment_id: String,
    token: String,
}

async fn page_state(
    State(state): State<HttpState>,
    Q(q): Q<PageQuery>,
) -> Result<axum::Json<PageState>, ApiError> {
    let assignment = authorize(&state, &q.assignment_id, &q.token)?;
    Ok(axum::Json(current(&state, &assignment)?))
}

async fn events(
    State(state): State<HttpState>,
    Q(q): Q<PageQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let assignment = authorize(&state, &q.assignment_id, &q.token)?;
    let rx = state.inner.hub.watch(&assignment).ok_or_else(|| {
        ApiError::new(
            ErrorCode::UnknownAssignment,
            "no worker arrived with this assignment",
        )
    })?;
    let clock = state.inner.clock.clone();
    let stream = futures_util::stream::unfold((rx, true), move |(mut rx, first)| {
        let clock = clock.clone();
        async move {
            if !first && rx.changed().await.is_err() {
                return None;
            }
            let mut s = rx.borrow_and_update().clone();
            s.now = clock.now();
            let event = Event::default()
                .event("state")
                .json_data(&s)
                .unwrap_or_else(|_| Event::default().comment("unserializable"));
            Some((Ok::<_, Infallible>(event), (rx, false)))
        }
    });
    Ok((
        [("x-accel-buffering", "no"), ("cache-control", "no-store")],
        Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))),
    ))
}

async fn submit(
    State(state): State<HttpState>,
    Body(body): Body<SubmitBody>,
) -> Result<axum::Json<Left>, ApiError> {
    let assignment = authorize(&state, &body.assignment_id, &body.token)?;
    state
        .inner
        .engine
        .input(Input::Submit {
            assignment: assignment.clone(),
            contributions: body.contributions,
        })
        .await
        .map_err(|e| refused(&state, &assignment, e))?;
    let hub = &state.inner.hub;
    hub.set(&assignment, PageStatus::Submitted, state.inner.clock.now());
    if let Some(side) = &state.inner.worker_side
        && let Err(e) = side.submitted(&assignment, body.contributions).await
    {
        tracing::warn!(%assignment, error = %e, "the platform did not take the submission");
    }
    let form = hub.submit_to(&assignment).map(|origin| PlatformForm {
        action: format!("{origin}/mturk/externalSubmit"),
        fields: vec![
            ("assignmentId".to_owned(), assignment.to_string()),
            ("contributions".to_owned(), body.contributions.to_string()),
        ],
    });
    Ok(axum::Json(Left {
        state: current(&state, &assignment)?,
        form,
    }))
}

async fn give_back(
    State(state): State<HttpState>,
    Body(body): Body<PageBody>,
) -> Result<axum::Json<Left>, ApiError> {
    let assignment = authorize(&state, &body.assignment_id, &body.token)?;
    state
        .inner
        .engine
        .input(Input::Return {
            assignment: assignment.clone(),
        })
        .await
        .map_err(|e| refused(&state, &assignment, e))?;
    state
        .inner
        .hub
        .set(&assignment, PageStatus::Returned, state.inner.clock.now());
    if let Some(side) = &state.inner.worker_side
        && let Err(e) = side.returned(&assignment).await
    {
        tracing::warn!(%assignment, error = %e, "the platform did not take the return");
    }
    Ok(axum::Json(Left {
        state: current(&state, &assignment)?,
        form: None,
    }))
}
