//! **Interim** retainer routes: the reservation API under `/api/` and the retainer worker page's
//! calls under `/r/` (arrive, ping, `gettask` polling, submit, return), driving a
//! [`Retainer`] machine directly behind a tokio `Mutex`.
//!
//! This adapter is deliberately small and **not durable**: inputs are not logged, effects are
//! carried out at once without an outbox (a hire's result is fed back as
//! [`Input::HirePosted`] / [`Input::HireFailed`]; pay goes out as approve / bonus; HITs are
//! expired), platform-side returns and abandonments are not observed (pages report their own),
//! and nothing is retried. It exists so that the retainer's routes, their auth and their errors
//! are settled and tested now; when the engine drives the retainer (`EngineHandle<Retainer>`),
//! [`RetainerFront`]'s insides become calls on that handle and the routes stay as they are.
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

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use super::auth::{Secret, admin_check, check_token, page_token};
use super::error::{ApiError, Body, ErrorCode, NoBody, engine_error_code};
use super::{HttpConfig, WorkerSide};
use crate::clock::Clock;
use crate::model::{AssignmentId, HitId, HitSpec, ReservationId, TemplateId, Timestamp, WorkerId};
use crate::pavilion::{EffectKind as PoolEffect, PayKind};
use crate::platform::{IdempotencyKey, Platform};
use crate::retainer::{
    Effect, EffectKind, Input, Listing, PingKind, PoolTarget, Rejected, ReservationView, Retainer,
    RoutedTask,
};

/// The retainer machine behind the interim routes (see the [module docs](self)).
pub struct RetainerFront {
    machine: Mutex<Retainer>,
    platform: Arc<dyn Platform>,
    clock: Arc<dyn Clock>,
    page_secret: Secret,
    admin_key: Secret,
    worker_side: Option<Arc<dyn WorkerSide>>,
    recent: std::sync::Mutex<VecDeque<Effect>>,
}

impl std::fmt::Debug for RetainerFront {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RetainerFront").finish_non_exhaustive()
    }
}

const RECENT: usize = 200;

impl RetainerFront {
    /// Drives `machine` against `platform` on `clock`, with the keys of `config`; arrivals
    /// are confirmed with `worker_side` when given (see [`WorkerSide::holds`]). Starts a task
    /// that runs the machine's deadlines (auto-invocations, heartbeat timeouts, refreshes); it
    /// ends when the front is dropped. Call inside a tokio runtime.
    pub fn new(
        machine: Retainer,
        platform: Arc<dyn Platform>,
        clock: Arc<dyn Clock>,
        config: &HttpConfig,
        worker_side: Option<Arc<dyn WorkerSide>>,
    ) -> Arc<Self> {
        let front = Arc::new(Self {
            machine: Mutex::new(machine),
            platform,
            clock,
            page_secret: config.page_secret.clone(),
            admin_key: config.admin_key.clone(),
            worker_side,
            recent: std::sync::Mutex::new(VecDeque::new()),
        });
        let weak = Arc::downgrade(&front);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(250)).await;
                let Some(front) = weak.upgrade() else { return };
                front.timeouts().await;
            }
        });
        front
    }

    /// Runs whatever deadline is due.
    async fn timeouts(&self) {
        let mut m = self.machine.lock().await;
        let now = self.clock.now().max(m.now());
        if m.poll_timeout().is_some_and(|t| t <= now) {
            m.handle_timeout(now);
            self.carry_out(&mut m).await;
        }
    }

    /// Feeds `input` to the machine and carries out what it produced.
    async fn input(&self, input: Input) -> Result<(), ApiError> {
        let mut m = self.machine.lock().await;
        let now = self.clock.now().max(m.now());
        m.handle(now, input).map_err(rejection)?;
        self.carry_out(&mut m).await;
        Ok(())
    }

    /// Drains the machine's effects, feeding hire results back, until none is left.
    async fn carry_out(&self, m: &mut Retainer) {
        while let Some(effect) = m.poll_effect() {
            let key = IdempotencyKey::for_effect(&effect.id);
            let p = &self.platform;
            if let EffectKind::Pool {
                template,
                effect: kind,
            } = &effect.kind
            {
                match kind {
                    PoolEffect::Hire { count } => {
                        let answer = match m.template(template).cloned() {
                            Some(spec) => match p.post(&spec, *count, &key).await {
                                Ok(hit) => Input::HirePosted {
                                    hire: effect.id.clone(),
                                    hit,
                                    slots: *count,
                                },
                                Err(e) => Input::HireFailed {
                                    hire: effect.id.clone(),
                                    reason: e.to_string(),
                                },
                            },
                            None => Input::HireFailed {
                                hire: effect.id.clone(),
                                reason: "unknown template".into(),
                            },
                        };
                        let now = self.clock.now().max(m.now());
                        if let Err(e) = m.handle(now, answer) {
                            tracing::warn!(error = %e, "the retainer refused a hire result");
                        }
                    }
                    PoolEffect::Pay {
                        worker,
                        assignment,
                        kind,
                        amount,
                    } => {
                        let result = if *kind == PayKind::Base {
                            p.approve(assignment, &key).await
                        } else {
                            let reason = crate::engine::pay_kind_name(*kind);
                            p.bonus(worker, Some(assignment), *amount, reason, &key)
                                .await
                        };
                        if let Err(e) = result {
                            tracing::warn!(%assignment, error = %e, "payment failed");
                        }
                    }
                    PoolEffect::ExpireHits { hits } => {
                        for hit in hits {
                            if let Err(e) = p.expire(hit).await {
                                tracing::warn!(%hit, error = %e, "cannot expire HIT");
                            }
                        }
                    }
                    _ => {}
                }
            }
            let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
            recent.push_back(effect);
            while recent.len() > RECENT {
                recent.pop_front();
            }
        }
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
        Rejected::Pool { source, .. } => engine_error_code(&format!("rejected: {source}")),
        _ => ErrorCode::Rejected,
    };
    ApiError::new(code, r.to_string())
}

/// The interim retainer routes over `front` (see the [module docs](self)). Merge them into
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
        .route("/assets/retainer.js", get(page_js))
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

async fn page_js() -> Response {
    use axum::response::IntoResponse;
    (
        [(axum::http::header::CONTENT_TYPE, "text/javascript")],
        include_str!("assets/retainer.js"),
    )
        .into_response()
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

fn id_ok(value: &str, what: &str) -> Result<(), ApiError> {
    if value.is_empty() || value.len() > 256 || value.chars().any(char::is_control) {
        return Err(ApiError::new(
            ErrorCode::InvalidId,
            format!("{what} must be 1 to 256 bytes without control characters"),
        ));
    }
    Ok(())
}

async fn register(
    State(front): State<Arc<RetainerFront>>,
    Body(b): Body<TemplateBody>,
) -> Result<Json<Done>, ApiError> {
    id_ok(&b.template, "template")?;
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
    id_ok(&b.reservation, "reservation")?;
    id_ok(&b.template, "template")?;
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

async fn list(State(front): State<Arc<RetainerFront>>) -> Json<Vec<Listing>> {
    Json(front.machine.lock().await.list())
}

async fn one(
    State(front): State<Arc<RetainerFront>>,
    Path(id): Path<String>,
) -> Result<Json<ReservationView>, ApiError> {
    front
        .machine
        .lock()
        .await
        .reservation(&ReservationId::new(id))
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
    id_ok(&b.assignment_id, "assignment_id")?;
    id_ok(&b.hit_id, "hit_id")?;
    id_ok(&b.worker_id, "worker_id")?;
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
    id_ok(&b.assignment_id, "assignment_id")?;
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
    let mut m = front.machine.lock().await;
    let now = front.clock.now().max(m.now());
    m.handle(
        now,
        Input::Poll {
            assignment: assignment.clone(),
        },
    )
    .map_err(rejection)?;
    front.carry_out(&mut m).await;
    let task = m.task_for(&assignment).map_err(rejection)?;
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
