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
//! | `POST /r/arrive` | `{assignment_id, hit_id, worker_id}` → the page token |
//! | `POST /r/ping` | `{assignment_id, token, kind?}` (`waiting` or `working`) |
//! | `POST /r/gettask` | `{assignment_id, token}` → `{"task": null}` or `{"task": {reservation, task, payload}}` |
//! | `POST /r/submit` | `{assignment_id, token, contributions?}` |
//! | `POST /r/return` | `{assignment_id, token}` |

use std::sync::Arc;

use axum::extract::{Path, Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::auth::{Secret, admin_check, check_token, page_token};
use super::error::{ApiError, Body, ErrorCode, NoBody, rejected_code};
use super::pages::asset;
use super::worker::check_id;
use super::{HttpConfig, WorkerSide};
use crate::engine::{EngineHandle, HandleError};
use crate::model::{AssignmentId, HitId, HitSpec, ReservationId, TemplateId, Timestamp, WorkerId};
use crate::retainer::{
    Input, Listing, PingKind, PoolTarget, Rejected, ReservationView, Retainer, RoutedTask,
};

/// The retainer engine behind the routes (see the [module docs](self)).
pub struct RetainerFront {
    engine: EngineHandle<Retainer>,
    page_secret: Secret,
    admin_key: Secret,
    worker_side: Option<Arc<dyn WorkerSide>>,
}

impl std::fmt::Debug for RetainerFront {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RetainerFront")
            .field("session", self.engine.session())
            .finish_non_exhaustive()
    }
}

impl RetainerFront {
    /// The routes' state over a running retainer engine ([`Engine::spawn`]), with the keys of
    /// `config`; arrivals are confirmed with `worker_side` when given (see
    /// [`WorkerSide::holds`]). The engine runs the machine's deadlines (auto-invocations,
    /// heartbeat timeouts, refreshes) itself.
    ///
    /// [`Engine::spawn`]: crate::engine::Engine::spawn
    pub fn new(
        engine: EngineHandle<Retainer>,
        config: &HttpConfig,
        worker_side: Option<Arc<dyn WorkerSide>>,
    ) -> Arc<Self> {
        Arc::new(Self {
            engine,
            page_secret: config.page_secret.clone(),
            admin_key: config.admin_key.clone(),
            worker_side,
        })
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
        HandleError::Failed(message) => ApiError::new(ErrorCode::EngineFailed, message),
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
        .route("/r/return", post(give_back));
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
    if let Some(side) = &front.worker_side {
        let confirmed = side.holds(&worker, &assignment, &hit).await.map_err(|e| {
            tracing::warn!(%assignment, error = %e, "cannot ask the platform about an arrival");
            ApiError::new(
                ErrorCode::EngineFailed,
                "cannot confirm the assignment with the platform; try again",
            )
        })?;
        // A reload of a present page: the platform still has it accepted, so this holds too.
        if !confirmed {
            return Err(ApiError::new(
                ErrorCode::UnknownAssignment,
                "the platform does not know this worker to hold this assignment",
            ));
        }
    }
    front
        .input(Input::Arrive {
            worker,
            assignment: assignment.clone(),
            hit,
        })
        .await?;
    Ok(Json(Arrived {
        token: page_token(&front.page_secret, &assignment),
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

fn page(front: &RetainerFront, b: &PageBody) -> Result<AssignmentId, ApiError> {
    check_id(&b.assignment_id, "assignment_id")?;
    let a = AssignmentId::new(b.assignment_id.as_str());
    check_token(&front.page_secret, &a, &b.token)?;
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
    front
        .input(Input::Submit {
            assignment,
            contributions: b.contributions.unwrap_or(0),
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
