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
use super::auth::{Purpose, TokenClaims, check, sign};
use super::error::{ApiError, Body, ErrorCode, Q};
use super::hub::{PageState, PageStatus};
use crate::engine::{EngineEvent, HandleError};
use crate::local::LocalMarketplace;
use crate::model::{AssignmentId, HitId, Timestamp, WorkerId};
use crate::pavilion::{Departure, EffectKind, Input, SeatState};

/// The id MTurk puts in a page's URL while the worker only previews the HIT.
pub const PREVIEW_ASSIGNMENT: &str = "ASSIGNMENT_ID_NOT_AVAILABLE";

/// The longest id accepted, in bytes.
const MAX_ID: usize = 256;

/// A platform's worker side in this process, told of a submission or a return after the
/// engine took it (so that the platform and the engine agree). MTurk has none: its page posts
/// the platform's submit form instead (see [`PlatformForm`]). Arrivals are not its business:
/// the front confirms them with the platform itself ([`Platform::assignment`]).
///
/// [`Platform::assignment`]: crate::platform::Platform::assignment
#[async_trait]
pub trait WorkerSide: Send + Sync {
    /// The worker submitted `assignment` with `contributions` units of work.
    async fn submitted(&self, assignment: &AssignmentId, contributions: u32) -> Result<(), String>;
    /// The worker returned `assignment`.
    async fn returned(&self, assignment: &AssignmentId) -> Result<(), String>;
}

#[async_trait]
impl WorkerSide for LocalMarketplace {
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

/// How a page finishes on its platform once its work is over: a form it sends there (MTurk's
/// `externalSubmit`, posted), or the platform's completion redirect (Prolific's
/// `https://app.prolific.com/submissions/complete?cc=CODE`, a `get` form: the page goes there).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlatformForm {
    /// Where the form goes.
    pub action: String,
    /// Its fields, in order.
    pub fields: Vec<(String, String)>,
    /// `post` (a form the platform takes) or `get` (a redirect: the page navigates there).
    pub method: FormMethod,
}

/// How a [`PlatformForm`] is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FormMethod {
    /// Posted (MTurk).
    Post,
    /// Navigated to, its fields as the query (a completion redirect).
    Get,
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
    /// When the token stops being accepted (ms since the epoch): reload to get a new one.
    token_expires_at: Timestamp,
    heartbeat_every_ms: u64,
    state: PageState,
}

#[derive(Serialize)]
struct Ticket {
    ticket: String,
    expires_at: Timestamp,
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
        .route("/w/ticket", post(ticket))
        .route("/w/events", get(events))
        .route("/w/submit", post(submit))
        .route("/w/return", post(give_back))
        .route_layer(axum::middleware::from_fn_with_state(
            state.inner.limiter.clone(),
            super::limit::by_address,
        ))
        .with_state(state)
}

/// The header that carries the page token on `GET /w/state` (never the query string).
pub const PAGE_TOKEN_HEADER: &str = "x-page-token";

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

/// The page's assignment, once its token (or ticket) is checked: issued by this front's
/// session for this assignment, to the worker whose page the hub keeps for it, and not
/// expired. Counts the call against the assignment's rate limit.
fn authorize_for(
    state: &HttpState,
    purpose: Purpose,
    assignment: &str,
    token: &str,
) -> Result<(AssignmentId, WorkerId), ApiError> {
    check_id(assignment, "assignment_id")?;
    let assignment = AssignmentId::new(assignment);
    let worker = check(
        &state.inner.config.page_secret,
        purpose,
        state.inner.engine.session(),
        &assignment,
        token,
        state.inner.clock.now(),
    )?;
    if state
        .inner
        .hub
        .worker(&assignment)
        .is_some_and(|holder| holder != worker)
    {
        return Err(ApiError::new(
            ErrorCode::BadToken,
            "the token does not belong to this assignment's worker",
        ));
    }
    state.inner.limiter.assignment(&assignment)?;
    Ok((assignment, worker))
}

fn authorize(state: &HttpState, assignment: &str, token: &str) -> Result<AssignmentId, ApiError> {
    authorize_for(state, Purpose::Page, assignment, token).map(|(a, _)| a)
}

/// A token for `purpose`, bound to this session, `assignment` and `worker`, lasting `ttl_ms`.
fn issue(
    state: &HttpState,
    purpose: Purpose,
    assignment: &AssignmentId,
    worker: WorkerId,
    ttl_ms: u64,
) -> (String, Timestamp) {
    let expires_at = state.inner.clock.now().plus_millis(ttl_ms);
    let claims = TokenClaims {
        session: state.inner.engine.session().clone(),
        assignment: assignment.clone(),
        worker,
        expires_at,
    };
    (
        sign(&state.inner.config.page_secret, purpose, &claims),
        expires_at,
    )
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
    state.inner.limiter.assignment(&assignment)?;
    // Nothing of an arrival is kept, logged or seated before the platform confirms it. A page
    // the hub keeps for this worker was confirmed when it first arrived (or is seated in the
    // engine); any other is asked about (from the cache, on a reload).
    let known = hub.worker(&assignment).is_some_and(|w| w == worker);
    if !known {
        // Held by this worker, says the platform (asked first: a flood of made-up ids then
        // never reaches the engine's loop)...
        state
            .inner
            .confirmer
            .confirm(&worker, &assignment, &hit)
            .await?;
        // ...through a HIT of this session (another session's would be refused by the
        // machine, but only after the log took it).
        let h = hit.clone();
        if !state.inner.engine.read(move |m| m.has_hit(&h)).await? {
            return Err(ApiError::new(
                ErrorCode::UnknownHit,
                "this session posted no such HIT",
            ));
        }
    }
    // Record, then act: the page's platform address is durable before its arrival is logged,
    // so whatever happens next the page can be told how to finish on the platform.
    if let Some(origin) = &submit_to
        && let Err(e) = state.inner.records.record(&assignment, origin).await
    {
        tracing::warn!(%assignment, error = %e, "could not record a page's submit address");
        return Err(ApiError::new(
            ErrorCode::EngineFailed,
            "the page's platform address could not be recorded; try again",
        )
        .retry_after(1));
    }
    let given = submit_to.is_some();
    if hub.register(&assignment, &worker, submit_to).is_err() {
        return Err(ApiError::new(
            ErrorCode::WorkerMismatch,
            "another worker holds this assignment",
        ));
    }
    if !given {
        restore_address(&state, &assignment).await;
    }
    // Subscribed before the input, so this answer already knows what the arrival caused.
    let mut mine = state.inner.engine.subscribe();
    let input = Input::Arrive {
        worker: worker.clone(),
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
            let known = error.code == ErrorCode::AlreadyLeft && departed(&state, &assignment).await;
            if !known {
                hub.unregister(&assignment);
                return Err(error);
            }
        }
    }
    let (token, token_expires_at) = issue(
        &state,
        Purpose::Page,
        &assignment,
        worker,
        state.inner.token_ttl_ms,
    );
    let arrived = Arrived {
        token,
        token_expires_at,
        heartbeat_every_ms: state.inner.config.heartbeat_every_ms,
        state: current(&state, &assignment)?,
    };
    Ok(axum::Json(arrived).into_response())
}

/// Whether the page of `assignment` (registered, its arrival refused as already left) now
/// shows how it ended: from the hub if it still keeps the page's end, else from the engine.
async fn departed(state: &HttpState, assignment: &AssignmentId) -> bool {
    let hub = &state.inner.hub;
    if hub.state(assignment).is_some_and(|s| s.status.is_final()) {
        return true;
    }
    let a = assignment.clone();
    let Ok((Some(SeatState::Left(how)), phase)) = state
        .inner
        .engine
        .read(move |m| (m.seat_of(&a), m.phase()))
        .await
    else {
        return false;
    };
    let status = super::hub::departed_status(how, phase);
    hub.set(assignment, status, state.inner.clock.now());
    true
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

/// `GET /w/state`'s query: the assignment only; the token rides in [`PAGE_TOKEN_HEADER`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PageQuery {
    assignment_id: String,
}

/// `GET /w/events`' query: a short-lived ticket for the stream alone (EventSource cannot set
/// headers), never the page token.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EventsQuery {
    assignment_id: String,
    ticket: String,
}

async fn page_state(
    State(state): State<HttpState>,
    headers: axum::http::HeaderMap,
    Q(q): Q<PageQuery>,
) -> Result<axum::Json<PageState>, ApiError> {
    let token = headers
        .get(PAGE_TOKEN_HEADER)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::BadToken,
                "the page token goes in the X-Page-Token header",
            )
        })?;
    let assignment = authorize(&state, &q.assignment_id, token)?;
    Ok(axum::Json(current(&state, &assignment)?))
}

/// `POST /w/ticket {assignment_id, token}`: a ticket that opens the page's event stream for
/// [`HttpConfig::ticket_ttl_ms`](super::HttpConfig::ticket_ttl_ms), bound like the token.
async fn ticket(
    State(state): State<HttpState>,
    Body(body): Body<PageBody>,
) -> Result<axum::Json<Ticket>, ApiError> {
    let assignment = authorize(&state, &body.assignment_id, &body.token)?;
    let worker = state.inner.hub.worker(&assignment).ok_or_else(|| {
        ApiError::new(
            ErrorCode::UnknownAssignment,
            "no worker arrived with this assignment",
        )
    })?;
    let ttl = state.inner.config.ticket_ttl_ms.max(1);
    let (ticket, expires_at) = issue(&state, Purpose::Events, &assignment, worker, ttl);
    Ok(axum::Json(Ticket { ticket, expires_at }))
}

async fn events(
    State(state): State<HttpState>,
    Q(q): Q<EventsQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let (assignment, _) = authorize_for(&state, Purpose::Events, &q.assignment_id, &q.ticket)?;
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
    let (assignment, worker) =
        authorize_for(&state, Purpose::Page, &body.assignment_id, &body.token)?;
    // The page's number is logged with the input, but pay is the machine's decision: the
    // host's count, or the page's up to the cap. Say so when the page claimed more.
    let reported = body.contributions;
    let a = assignment.clone();
    if let Ok(Some(paid)) = state
        .inner
        .engine
        .read(move |m| m.payable_contributions(&a, reported))
        .await
        && paid < reported
    {
        tracing::warn!(%assignment, reported, paid,
            "a page reported more contributions than the host confirmed or the cap allows; \
             paying only those");
    }
    let hub = &state.inner.hub;
    let status = match state
        .inner
        .engine
        .input(Input::Submit {
            assignment: assignment.clone(),
            contributions: body.contributions,
        })
        .await
    {
        Ok(()) => PageStatus::Submitted,
        // A retry whose first answer was lost (or a released page submitting): the work is
        // over and the page is told again how to finish on the platform, idempotently.
        Err(e) => match finished(&state, &assignment).await {
            Some(status) => status,
            None => return Err(refused(&state, &assignment, e)),
        },
    };
    // After a restart the hub may no longer keep a departed page: the token names its worker.
    if hub.register(&assignment, &worker, None).is_err() {
        return Err(ApiError::new(
            ErrorCode::WorkerMismatch,
            "another worker holds this assignment",
        ));
    }
    restore_address(&state, &assignment).await;
    hub.set_contributions(&assignment, body.contributions);
    hub.set(&assignment, status, state.inner.clock.now());
    if status == PageStatus::Submitted
        && let Some(side) = &state.inner.worker_side
        && let Err(e) = side.submitted(&assignment, body.contributions).await
    {
        tracing::warn!(%assignment, error = %e, "the platform did not take the submission");
    }
    let state = current(&state, &assignment)?;
    Ok(axum::Json(Left {
        form: state.form.as_deref().cloned(),
        state,
    }))
}

/// How `assignment`'s work ended, if it ended so that the page finishes on the platform
/// (submitted, or released by the operator).
async fn finished(state: &HttpState, assignment: &AssignmentId) -> Option<PageStatus> {
    let a = assignment.clone();
    match state.inner.engine.read(move |m| m.seat_of(&a)).await {
        Ok(Some(SeatState::Left(Departure::Submitted))) => Some(PageStatus::Submitted),
        Ok(Some(SeatState::Left(Departure::Released))) => Some(PageStatus::Released),
        _ => None,
    }
}

/// Gives the hub's page of `assignment` the platform address recorded for it, if it has none
/// (a page rebuilt after a restart).
async fn restore_address(state: &HttpState, assignment: &AssignmentId) {
    let hub = &state.inner.hub;
    if hub.submit_to(assignment).is_some() || !state.inner.records.durable() {
        return;
    }
    if let Some(origin) = state.inner.records.submit_to(assignment).await {
        hub.set_submit_to(assignment, origin);
    }
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
