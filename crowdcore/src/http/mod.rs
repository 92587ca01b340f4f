//! The HTTP front (feature `http`): the worker landing page, the admin API and the live status
//! page, as one axum [`Router`] a host mounts over a running engine.
//!
//! ```no_run
//! # async fn run(engine: crowdcore::engine::EngineHandle) -> std::io::Result<()> {
//! use crowdcore::http::{HttpConfig, HttpState, Secret};
//!
//! let config = HttpConfig::new(
//!     Secret::from_env("CROWDCORE_PAGE_SECRET").expect("a page secret"),
//!     Secret::from_env("CROWDCORE_ADMIN_KEY").expect("an admin key"),
//! );
//! let state = HttpState::new(engine, config);
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! axum::serve(listener, crowdcore::http::router(state)).await
//! # }
//! ```
//!
//! # Routes
//!
//! Worker-facing (no key; every call but the arrival carries the page token):
//!
//! | route | what |
//! | --- | --- |
//! | `GET /work` | the landing page a HIT points at; reads `assignmentId`, `hitId`, `workerId`, `turkSubmitTo` from its URL; preview mode on `ASSIGNMENT_ID_NOT_AVAILABLE` |
//! | `POST /w/arrive` | `{assignment_id, hit_id, worker_id, turk_submit_to?}` → the page token and the page's state |
//! | `POST /w/heartbeat` | `{assignment_id, token}` → the page's state |
//! | `GET /w/state?assignment_id=&token=` | the page's state (the polling fallback) |
//! | `GET /w/events?assignment_id=&token=` | Server-Sent Events: `state` whenever the page's state changes |
//! | `POST /w/submit` | `{assignment_id, token, contributions?}` → the state and the platform's submit form, if it has one |
//! | `POST /w/return` | `{assignment_id, token}` → the state |
//!
//! Admin (JSON; `Authorization: Bearer <admin key>` on every call, compared in constant time):
//! `POST /api/start`, `/api/stop`, `/api/expire`, `/api/migrate {count}`, `PUT /api/targets
//! {min_active, max_active, min_waiting, max_waiting}`, `GET /api/snapshot`, `/api/ledger`,
//! `/api/leaderboard`, `/api/status`, `/api/status/stream` (SSE). The status page itself
//! (`GET /status`) is static: it asks for the key and sends it as a header, never in a URL.
//!
//! Errors are `{"code": "...", "message": "..."}` with a stable `code` (see [`ApiError`]); bodies
//! are size-limited ([`HttpConfig::max_body_bytes`]) and unknown fields are refused.
//!
//! # Who may do what
//!
//! A page token is `HMAC-SHA256(secret, assignment id)`, issued by `POST /w/arrive` once the
//! engine has accepted the arrival (it refuses an assignment that another worker holds) and,
//! where the platform can be asked ([`WorkerSide::holds`]), the platform has confirmed that this
//! worker holds that assignment of that HIT. Every
//! later worker call is checked against it in constant time, so a page can only ever ping,
//! submit, return or read for its own assignment. The assignment id itself is the bearer
//! capability the platform hands the worker (MTurk puts it in the page URL); no page is ever
//! sent another worker's ids: worker streams carry only their own page's state. The admin key
//! and the page secret come from the host (the `server` example reads them from the
//! environment); neither is ever logged or sent to a page.
//!
//! # Adding routes
//!
//! [`router`] merges [`worker_routes`], [`admin_routes`] and [`page_routes`]; a host adds its own
//! with [`router_with`], admin ones behind [`require_admin`]. The retainer's routes
//! (`/api/templates`, `/api/reservations…`, the worker page's `/r/…` calls with `gettask`
//! polling) are in [`retainer`], over an engine driving the retainer (`EngineHandle<Retainer>`);
//! pass [`retainer::retainer_routes`] to
//! [`router_with`] to serve them.

mod admin;
mod auth;
mod error;
mod hub;
mod pages;
pub mod retainer;
pub mod sse;
mod worker;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, header};
use tower_http::set_header::SetResponseHeaderLayer;

use crate::clock::{Clock, SystemClock};
use crate::engine::EngineHandle;

pub use admin::{QueueEntry, StatusView};
pub use auth::{MIN_SECRET_BYTES, Secret, SecretError, page_token, require_admin};
pub use error::{ApiError, ErrorCode};
pub use hub::{PageState, PageStatus};
pub use worker::{PREVIEW_ASSIGNMENT, PlatformForm, WorkerSide};

/// Settings of the HTTP front.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// The key page tokens are derived from.
    pub page_secret: Secret,
    /// The admin API key.
    pub admin_key: Secret,
    /// How often a worker page sends a heartbeat, in milliseconds. Keep it well under the
    /// machine's heartbeat timeout (a third of it, say).
    pub heartbeat_every_ms: u64,
    /// Sends a page's heartbeat to the engine at most once in this many milliseconds; the
    /// others are answered from the page's state without an input (0: every heartbeat is an
    /// input). The engine logs every input, so on a durable store this caps the heartbeat
    /// load: with `g` here and a heartbeat timeout `T`, a live page beating every `b` ms is seen
    /// at least every `g + b` ms (keep that under `T`), and a page that stops is declared gone
    /// between `T − g` and `T` after its last heartbeat.
    pub heartbeat_forward_gap_ms: u64,
    /// The title on the landing page.
    pub title: String,
    /// What the landing page says about the work (also in preview mode).
    pub description: String,
    /// The largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Origins a page may post the platform's submit form to (`turkSubmitTo`). Anything else
    /// is refused at arrival, so a crafted link cannot make a page post to another site.
    pub submit_origins: Vec<String>,
    /// Recent engine events kept for the status page.
    pub recent_events: usize,
    /// How often the status page's queue-size chart takes a point, in milliseconds; it keeps
    /// the last hour.
    pub sample_every_ms: u64,
}

impl HttpConfig {
    /// Defaults: heartbeat every 5 s (each one an engine input), 16 KiB bodies, MTurk's and its sandbox's submit origins,
    /// 200 recent events, a chart point every 5 s.
    pub fn new(page_secret: Secret, admin_key: Secret) -> Self {
        Self {
            page_secret,
            admin_key,
            heartbeat_every_ms: 5_000,
            heartbeat_forward_gap_ms: 0,
            title: "Real-time task".to_owned(),
            description: "Keep this page open: you will be told the moment it is your turn."
                .to_owned(),
            max_body_bytes: 16 * 1024,
            submit_origins: vec![
                "https://www.mturk.com".to_owned(),
                "https://workersandbox.mturk.com".to_owned(),
            ],
            recent_events: 200,
            sample_every_ms: 5_000,
        }
    }
}

/// What the routes share: the engine, the settings, the pages' states.
#[derive(Clone)]
pub struct HttpState {
    inner: Arc<Inner>,
}

struct Inner {
    engine: EngineHandle,
    config: HttpConfig,
    clock: Arc<dyn Clock>,
    hub: Arc<hub::Hub>,
    worker_side: Option<Arc<dyn WorkerSide>>,
}

impl std::fmt::Debug for HttpState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpState")
            .field("session", self.inner.engine.session())
            .finish_non_exhaustive()
    }
}

impl HttpState {
    /// The front of `engine` with `config`, on the system clock. Starts the task that follows
    /// the engine's events (it ends with the engine), so call it inside a tokio runtime.
    pub fn new(engine: EngineHandle, config: HttpConfig) -> Self {
        Self::build(engine, config, Arc::new(SystemClock), None)
    }

    /// Like [`new`](Self::new), with a clock (the engine's) and the platform's worker side, told
    /// of submissions and returns after the engine (for in-process platforms such as
    /// [`LocalMarketplace`](crate::local::LocalMarketplace); MTurk's is its submit form).
    pub fn with_parts(
        engine: EngineHandle,
        config: HttpConfig,
        clock: Arc<dyn Clock>,
        worker_side: Option<Arc<dyn WorkerSide>>,
    ) -> Self {
        Self::build(engine, config, clock, worker_side)
    }

    fn build(
        engine: EngineHandle,
        config: HttpConfig,
        clock: Arc<dyn Clock>,
        worker_side: Option<Arc<dyn WorkerSide>>,
    ) -> Self {
        let hub = hub::Hub::spawn(engine.clone(), clock.clone(), &config);
        Self {
            inner: Arc::new(Inner {
                engine,
                config,
                clock,
                hub,
                worker_side,
            }),
        }
    }

    /// The engine behind the front.
    pub fn engine(&self) -> &EngineHandle {
        &self.inner.engine
    }

    /// The settings.
    pub fn config(&self) -> &HttpConfig {
        &self.inner.config
    }
}

/// The whole front: worker routes, admin routes and pages, with a JSON 404/405 fallback and
/// `X-Content-Type-Options: nosniff` on every response.
pub fn router(state: HttpState) -> Router {
    router_with(state, Router::new())
}

/// [`router`] with more routes (the [`retainer`]'s, a host's own), which get the same body
/// limit, fallbacks and headers.
pub fn router_with(state: HttpState, extra: Router) -> Router {
    let limit = state.inner.config.max_body_bytes;
    Router::new()
        .merge(extra)
        .merge(worker_routes(state.clone()))
        .merge(admin_routes(state.clone()))
        .merge(page_routes(state.clone()))
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(DefaultBodyLimit::max(limit))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
}

/// The worker-facing JSON and SSE routes under `/w/`.
pub fn worker_routes(state: HttpState) -> Router {
    worker::routes(state)
}

/// The admin API under `/api/`, every route behind the admin key.
pub fn admin_routes(state: HttpState) -> Router {
    admin::routes(state)
}

/// The static pages and their scripts: `/work` (landing), `/status` (cockpit), `/assets/…`.
pub fn page_routes(state: HttpState) -> Router {
    pages::routes(state)
}
