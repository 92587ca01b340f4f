//! The retainer's routes: the reservation API under `/api/` and the retainer worker page's
//! calls under `/r/` (arrive, ping, `gettask` polling, submit, return), over an engine driving
//! the [`Retainer`] ([`EngineHandle<Retainer>`]): every call is logged before the machine sees
//! it, pool hires, pay and expiries go through the outbox with idempotency keys, platform-side
//! departures are observed, and a restart resumes the reservations where they were.
//!
//! | route | what |
//! | --- | --- |
//! | `GET /retainer` | the retainer's worker page: arrives, polls `gettask`, shows the task, submits |
//! | `POST /api/templates` | `{template, spec, pool?, budget_cents?}`: register a HIT template |
//! | `POST /api/reservations` | `{reservation, template, foreign_id, payload?, start_at_ms, needed}`: make a reservation |
//! | `GET /api/reservations` | every reservation with its template's spec |
//! | `GET /api/reservations/{id}` | one reservation |
//! | `POST /api/reservations/{id}/invoke`, `/cancel`, `/finish`, `/unfinish` | the lifecycle |
//! | `POST /api/reservations/finish_all` | `{template?}`: finish every invoked reservation |
//! | `POST /api/retainer/contributions` | `{assignment_id, count}`: the host counted `count` more contributions |
//! | `POST /r/arrive` | `{assignment_id, hit_id, worker_id}` → the page token, once the platform confirms the arrival |
//! | `POST /r/ping` | `{assignment_id, token, kind?}` (`waiting` or `working`) |
//! | `POST /r/gettask` | `{assignment_id, token}` → `{"task": null}` or `{"task": {reservation, task, payload}}` |
//! | `POST /r/submit` | `{assignment_id, token, contributions?}` (a reported count: paid only as the pool's config allows) |
//! | `POST /r/return` | `{assignment_id, token}` |

use std::sync::Arc;

use axum::extract::{Path, Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::HttpConfig;
use super::auth::{Purpose, Secret, TokenClaims, admin_check, check, page_token};
use super::confirm::{Confirmer, FrontError};
use super::error::{ApiError, Body, ErrorCode, NoBody, rejected_code};
use super::limit::Limiter;
use super::pages::asset;
use super::worker::check_id;
use crate::clock::{Clock, SystemClock};
use crate::engine::{EngineHandle, HandleError};
use crate::model::{AssignmentId, HitId, HitSpec, ReservationId, TemplateId, Timestamp, WorkerId};
use crate::platform::Platform;
use crate::retainer::{
    Input, Listing, PingKind, PoolTarget, Rejected, ReservationView, Retainer, RoutedTask,
};

/// The retainer engine behind the routes (see the [module docs](self)).
pub struct RetainerFront {
    engine: EngineHandle<Retainer>,
    page_secret: Secret,
    admin_key: Secret,
    confirmer: Confirmer,
    limiter: Arc<Limiter>,
    clock: Arc<dyn Clock>,
    token_ttl_ms: Option<u64>,
}

impl std::fmt::Debug for RetainerFront {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RetainerFront")
            .field("session", self.engine.session())
            .finish_non_exhaustive()
    }
}

impl RetainerFront {
    /// The routes' state over a running retainer engine ([`Engine::spawn`]) on `platform`
    /// (the engine's), with the keys, confirmation, token and rate-limit settings of `config`
    /// and the system clock. Every arrival is confirmed with the platform
    /// ([`Platform::assignment`]) before it reaches the engine; a platform that cannot confirm
    /// is refused unless [`HttpConfig::trust_unconfirmed_arrivals`]. The engine runs the
    /// machine's deadlines (auto-invocations, heartbeat timeouts, refreshes) itself.
    ///
    /// [`Engine::spawn`]: crate::engine::Engine::spawn
    pub fn new(
        engine: EngineHandle<Retainer>,
        platform: Arc<dyn Platform>,
        config: &HttpConfig,
    ) -> Result<Arc<Self>, FrontError> {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let confirmer = Confirmer::new(platform, clock.clone(), config.confirm_settings())?;
        Ok(Arc::new(Self {
            engine,
            page_secret: config.page_secret.clone(),
            admin_key: config.admin_key.clone(),
            confirmer,
            limiter: Arc::new(Limiter::new(&config.rate_limits)),
            clock,
            token_ttl_ms: config.token_ttl_ms,
        }))
    }

    /// The engine.
    pub fn engine(&self) -> &EngineHandle<Retainer> {
        &self.engine
    }

    /// Logs `input`, feeds it to the machine and carries out what it produced.
    async fn input(&self, input: Input) -> Result<(), ApiError> {
        self.engine.input(input).await.map_err(handle_error)
    }

    /// Reads the machine between two inputs.
    async fn read<T: Send + 'static>(
        &self,
        read: impl FnOnce(&Retainer) -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        self.engine.read(read).await.map_err(handle_error)
    }
}

fn handle_error(e: HandleError<Rejected>) -> ApiError {
    match e {
        HandleError::Rejected(r) => rejection(r),
        HandleError::Stopped => ApiError::new(ErrorCode::EngineStopped, e.to_string()),
        HandleError::Store(e) => ApiError::new(ErrorCode::EngineFailed, e.to_string()),
    }
}

/// The retainer's stable error codes from its refusals.
fn rejection(r: Rejected) -> ApiError {
    let code = match &r {
        Rejected::UnknownTemplate(_) => ErrorCode::UnknownTemplate,
        Rejected::UnknownReservation(_) => ErrorCode::UnknownReservation,
        Rejected::UnknownAssignment(_) => ErrorCode::UnknownAssignment,
        Rejected::UnknownHit(_) => ErrorCode::UnknownHit,
        Rejected::DuplicateTemplate(_) | Rejected::DuplicateReservation(_) => ErrorCode::Duplicate,
        Rejected::BadSpec { .. } | Rejected::BadPool { .. } | Rejected::ZeroNeeded(_) => {
            ErrorCode::InvalidBody
        }
        Rejected::NotAllowed { .. } => ErrorCode::NotAllowed,
        Rejected::Pool { source, .. } => rejected_code(source),
        _ => ErrorCode::Rejected,
    };
    ApiError::new(code, r.to_string())
}

/// The retainer routes over `front` (see the [module docs](self)). Merge them into
/// [`router`](super::router)'s router; admin routes check the admin key, worker routes the page
/// token, as the Pavilion's do.
pub fn retainer_routes(front: Arc<RetainerFront>) -> Router {
    let admin = Router::new()
        .route("/api/templates", post(register))
        .route("/api/reservations", post(make).get(list))
        .route("/api/reservations/finish_all", post(finish_all))
        .route("/api/reservations/{id}", get(one))
        .route("/api/reservations/{id}/{action}", post(lifecycle))
        .route("/api/retainer/contributions", post(contributions))
        .route_layer(middleware::from_fn_with_state(front.clone(), guard));
    let worker = Router::new()
        .route("/retainer", get(page_html))
        .route(
            "/assets/retainer.js",
            get(|| asset(include_str!("assets/retainer.js"), "text/javascript")),
        )
        .route("/r/arrive", post(arrive))
        .route("/r/ping", post(ping))
        .route("/r/gettask", post(gettask))
        .route("/r/submit", post(submit))
        .route("/r/return", post(give_back))
        .route_layer(middleware::from_fn_with_state(
            front.limiter.clone(),
            super::limit::by_address,
        ));
    admin.merge(worker).with_state(front)
}

async fn page_html() -> Response {
    use axum::response::IntoResponse;
    let mut r = axum::response::Html(include_str!("assets/retainer.html")).into_response();
    r.headers_mut().insert(
        axum::http::header::CONTENT_SECURITY_POLICY,
        axum::http::HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self'; form-action 'self'",
        ),
    );
    r
}

async fn guard(
    State(front): State<Arc<RetainerFront>>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    admin_check(request.headers(), &front.admin_key)?;
    Ok(next.run(request).await)
}

#[derive(Serialize)]
struct Done {
    ok: bool,
}

const DONE: Done = Done { ok: true };

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TemplateBody {
    template: String,
    spec: HitSpec,
    #[serde(default)]
    pool: Option<PoolTarget>,
    #[serde(default)]
    budget_cents: Option<i64>,
}

async fn register(
    State(front): State<Arc<RetainerFront>>,
    Body(b): Body<TemplateBody>,
) -> Result<Json<Done>, ApiError> {
    check_id(&b.template, "template")?;
    front
        .input(Input::RegisterTemplate {
            template: TemplateId::new(b.template),
            spec: b.spec,
            pool: b.pool,
            budget_cents: b.budget_cents,
        })
        .await?;
    Ok(Json(DONE))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReservationBody {
    reservation: String,
    template: String,
    foreign_id: String,
    #[serde(default)]
    payload: serde_json::Value,
    start_at_ms: u64,
    needed: u32,
}

async fn make(
    State(front): State<Arc<RetainerFront>>,
    Body(b): Body<ReservationBody>,
) -> Result<Json<Done>, ApiError> {
    check_id(&b.reservation, "reservation")?;
    check_id(&b.template, "template")?;
    front
        .input(Input::MakeReservation {
            reservation: ReservationId::new(b.reservation),
            template: TemplateId::new(b.template),
            foreign_id: b.foreign_id,
            payload: b.payload,
            start_at: Timestamp::from_millis(b.start_at_ms),
            needed: b.needed,
        })
        .await?;
    Ok(Json(DONE))
}

async fn list(State(front): State<Arc<RetainerFront>>) -> Result<Json<Vec<Listing>>, ApiError> {
    Ok(Json(front.read(|m| m.list()).await?))
}

async fn one(
    State(front): State<Arc<RetainerFront>>,
    Path(id): Path<String>,
) -> Result<Json<ReservationView>, ApiError> {
    let reservation = ReservationId::new(id);
    front
        .read(move |m| m.reservation(&reservation))
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::new(ErrorCode::UnknownReservation, "no such reservation"))
}

async fn lifecycle(
    State(front): State<Arc<RetainerFront>>,
    Path((id, action)): Path<(String, String)>,
    _: NoBody,
) -> Result<Json<Done>, ApiError> {
    let reservation = ReservationId::new(id);
    let input = match action.as_str() {
        "invoke" => Input::Invoke { reservation },
        "cancel" => Input::Cancel { reservation },
        "finish" => Input::Finish { reservation },
        "unfinish" => Input::Unfinish { reservation },
        _ => return Err(ApiError::new(ErrorCode::NotFound, "no such route")),
    };
    front.input(input).await?;
    Ok(Json(DONE))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FinishAllBody {
    #[serde(default)]
    template: Option<String>,
}

async fn finish_all(
    State(front): State<Arc<RetainerFront>>,
    Body(b): Body<FinishAllBody>,
) -> Result<Json<Done>, ApiError> {
    front
        .input(Input::FinishAll {
            template: b.template.map(TemplateId::new),
        })
        .await?;
    Ok(Json(DONE))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ArriveBody {
    assignment_id: String,
    hit_id: String,
    worker_id: String,
}

#[derive(Serialize)]
struct Arrived {
    token: String,
    /// When the token stops being accepted (ms since the epoch).
    token_expires_at: Timestamp,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ContributionsBody {
    assignment_id: String,
    count: u32,
}

async fn contributions(
    State(front): State<Arc<RetainerFront>>,
    Body(b): Body<ContributionsBody>,
) -> Result<Json<Done>, ApiError> {
    check_id(&b.assignment_id, "assignment_id")?;
    front
        .input(Input::Contributed {
            assignment: AssignmentId::new(b.assignment_id),
            count: b.count,
        })
        .await?;
    Ok(Json(DONE))
}

async fn arrive(
    State(front): State<Arc<RetainerFront>>,
    Body(b): Body<ArriveBody>,
) -> Result<Json<Arrived>, ApiError> {
    check_id(&b.assignment_id, "assignment_id")?;
    check_id(&b.hit_id, "hit_id")?;
    check_id(&b.worker_id, "worker_id")?;
    if b.assignment_id == super::PREVIEW_ASSIGNMENT {
        return Err(ApiError::new(
            ErrorCode::InvalidId,
            "a preview has no assignment: accept the HIT first",
        ));
    }
    let assignment = AssignmentId::new(b.assignment_id);
    let (worker, hit) = (WorkerId::new(b.worker_id), HitId::new(b.hit_id));
    front.limiter.assignment(&assignment)?;
    // Nothing reaches the engine (or its log) before the platform confirms the arrival; a
    // reload is confirmed from the cache.
    // Held by this worker, says the platform; through a HIT a pool of this session posted
    // (the machine would refuse another, but only after the log took it).
    front.confirmer.confirm(&worker, &assignment, &hit).await?;
    let h = hit.clone();
    let Some(duration_ms) = front
        .read(move |m| m.spec_of_hit(&h).map(|s| s.assignment_duration_ms))
        .await?
    else {
        return Err(ApiError::new(
            ErrorCode::UnknownHit,
            "this session posted no such HIT",
        ));
    };
    let ttl = front.token_ttl_ms.unwrap_or(duration_ms);
    front
        .input(Input::Arrive {
            worker: worker.clone(),
            assignment: assignment.clone(),
            hit,
        })
        .await?;
    let expires_at = front.clock.now().plus_millis(ttl.max(1));
    let claims = TokenClaims {
        session: front.engine.session().clone(),
        assignment,
        worker,
        expires_at,
    };
    Ok(Json(Arrived {
        token: page_token(&front.page_secret, &claims),
        token_expires_at: expires_at,
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PageBody {
    assignment_id: String,
    token: String,
    #[serde(default)]
    kind: Option<PingKind>,
    #[serde(default)]
    contributions: Option<u32>,
}

/// The page's assignment, once its token is checked (this session, this assignment, the worker
/// it was issued to, not expired); counts the call against the assignment's rate limit.
fn page(front: &RetainerFront, b: &PageBody) -> Result<AssignmentId, ApiError> {
    check_id(&b.assignment_id, "assignment_id")?;
    let a = AssignmentId::new(b.assignment_id.as_str());
    check(
        &front.page_secret,
        Purpose::Page,
        front.engine.session(),
        &a,
        &b.token,
        front.clock.now(),
    )?;
    front.limiter.assignment(&a)?;
    Ok(a)
}

fn only(b: &PageBody, kind: bool, contributions: bool) -> Result<(), ApiError> {
    if (b.kind.is_some() && !kind) || (b.contributions.is_some() && !contributions) {
        return Err(ApiError::new(
            ErrorCode::InvalidBody,
            "this call does not take that field",
        ));
    }
    Ok(())
}

async fn ping(
    State(front): State<Arc<RetainerFront>>,
    Body(b): Body<PageBody>,
) -> Result<Json<Done>, ApiError> {
    only(&b, true, false)?;
    let assignment = page(&front, &b)?;
    front
        .input(Input::Ping {
            assignment,
            kind: b.kind.unwrap_or_default(),
        })
        .await?;
    Ok(Json(DONE))
}

#[derive(Serialize)]
struct Task {
    task: Option<RoutedTask>,
}

async fn gettask(
    State(front): State<Arc<RetainerFront>>,
    Body(b): Body<PageBody>,
) -> Result<Json<Task>, ApiError> {
    only(&b, false, false)?;
    let assignment = page(&front, &b)?;
    front
        .input(Input::Poll {
            assignment: assignment.clone(),
        })
        .await?;
    // Routes are sticky: what the machine answers now stays true after later inputs.
    let task = front
        .read(move |m| m.task_for(&assignment))
        .await?
        .map_err(rejection)?;
    Ok(Json(Task { task }))
}

async fn submit(
    State(front): State<Arc<RetainerFront>>,
    Body(b): Body<PageBody>,
) -> Result<Json<Done>, ApiError> {
    only(&b, false, true)?;
    let assignment = page(&front, &b)?;
    let reported = b.contributions.unwrap_or(0);
    let a = assignment.clone();
    if let Ok(Some(paid)) = front
        .read(move |m| m.payable_contributions(&a, reported))
        .await
        && paid < reported
    {
        tracing::warn!(%assignment, reported, paid,
            "a page reported more contributions than the host confirmed or the cap allows; \
             paying only those");
    }
    front
        .input(Input::Submit {
            assignment,
            contributions: reported,
        })
        .await?;
    Ok(Json(DONE))
}

async fn give_back(
    State(front): State<Arc<RetainerFront>>,
    Body(b): Body<PageBody>,
) -> Result<Json<Done>, ApiError> {
    only(&b, false, false)?;
    let assignment = page(&front, &b)?;
    front.input(Input::Return { assignment }).await?;
    Ok(Json(DONE))
}
