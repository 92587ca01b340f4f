//! The HTTP front (feature `http`): the worker landing page, the admin API and the live status
//! page, as one axum [`Router`] a host mounts over a running engine.
//!
//! ```no_run
//! # use std::sync::Arc;
//! # async fn run(
//! #     engine: crowdcore::engine::EngineHandle,
//! #     platform: Arc<dyn crowdcore::platform::Platform>,
//! # ) -> Result<(), Box<dyn std::error::Error>> {
//! use std::net::SocketAddr;
//! use crowdcore::http::{HttpConfig, HttpState, Secret};
//!
//! let config = HttpConfig::new(
//!     Secret::from_env("CROWDCORE_PAGE_SECRET")?,
//!     Secret::from_env("CROWDCORE_ADMIN_KEY")?,
//! );
//! // The engine's platform: every arrival is confirmed with it before it takes a seat (a
//! // platform that cannot confirm is refused: `FrontError::CannotConfirmArrivals`).
//! let state = HttpState::new(engine, platform, config)?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! // With the peer's address: the worker routes are rate-limited by it.
//! let app = crowdcore::http::router(state);
//! axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await?;
//! # Ok(())
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
//! | `POST /w/arrive` | `{assignment_id, hit_id, worker_id, turk_submit_to?}` → the page token (and when it expires) and the page's state, once the platform confirms the arrival |
//! | `POST /w/heartbeat` | `{assignment_id, token}` → the page's state |
//! | `GET /w/state?assignment_id=` | the page's state (the polling fallback); the token in the `X-Page-Token` header |
//! | `POST /w/ticket` | `{assignment_id, token}` → a short-lived ticket for the event stream |
//! | `GET /w/events?assignment_id=&ticket=` | Server-Sent Events: `state` whenever the page's state changes |
//! | `POST /w/submit` | `{assignment_id, token, contributions?}` → the state and the platform's submit form, if it has one; `contributions` is the page's report, paid only as the machine's config allows; a retry after the work is over (the first answer was lost, or the page was released) gets the same answer again, not `already_left` |
//! | `POST /w/return` | `{assignment_id, token}` → the state |
//!
//! Admin (JSON; `Authorization: Bearer <admin key>` on every call, compared in constant time):
//! `POST /api/start`, `/api/stop`, `/api/expire`, `/api/migrate {count}`, `/api/contributions
//! {assignment_id, count}` (the host counted `count` more contributions: what the bonus
//! pays), `PUT /api/targets {min_active, max_active, min_waiting, max_waiting}`, `GET
//! /api/snapshot`, `/api/ledger`, `/api/owed` (every amount owed and not yet paid, with what
//! the operator can do: [`Owed`]),
//! `/api/leaderboard`, `/api/status`, `/api/status/stream` (SSE). The status page itself
//! (`GET /status`) is static: it asks for the key and sends it as a header, never in a URL.
//!
//! Errors are `{"code": "...", "message": "..."}` with a stable `code` (see [`ApiError`]); bodies
//! are size-limited ([`HttpConfig::max_body_bytes`]) and unknown fields are refused.
//!
//! # Who may do what
//!
//! **Arrivals are confirmed.** `POST /w/arrive` first asks the platform
//! ([`Platform::assignment`]) whether this worker holds this assignment of this HIT, accepted
//! or just submitted ([`AssignmentRecord::confirms`]), and checks that the HIT is this
//! session's. An arrival that fails either never takes a seat, never opens or counts a slot,
//! never reaches the engine or its log and is not kept by the hub — so it blocks nobody: the
//! real worker arriving later is seated. What the platform said is cached (bounded, with
//! expiry: [`HttpConfig::confirm_cache_ms`]) so a reload does not ask again; a platform that
//! fails or takes longer than [`HttpConfig::confirm_timeout_ms`] gets the page a 503
//! `platform_unavailable` with `Retry-After`, never a seat. A platform that cannot confirm
//! ([`Capabilities::confirms_assignments`] false) makes [`HttpStateBuilder::build`] fail unless
//! the host sets [`HttpConfig::trust_unconfirmed_arrivals`] (unsafe on a public crowd).
//!
//! **Tokens are bound.** A page token is `HMAC-SHA256(secret, session, assignment, worker,
//! expiry)` with the expiry and the worker beside it, issued by `POST /w/arrive`; every later
//! worker call is checked against it in constant time and against the worker the hub holds
//! the page for, so a page can only ever ping, submit, return or read for its own assignment,
//! in its own session, until the token expires ([`HttpConfig::token_ttl_ms`], by default the
//! assignment's duration; a reload gets a new one). Tokens never travel in a URL: `GET
//! /w/state` takes it in the `X-Page-Token` header, and the event stream (EventSource cannot
//! set headers) opens with a ticket from `POST /w/ticket`: bound the same way, good only for
//! the stream, for [`HttpConfig::ticket_ttl_ms`] (30 s).
//!
//! **Pages never decide money.** A submission's `contributions` is logged as the page's
//! report; what the bonus pays is the host's count (`POST /api/contributions`, or the
//! engine input directly) or, where the host counted none, the report up to the machine's
//! `max_contributions_per_assignment` (see [`PavilionConfig::payable_contributions`]); a
//! report beyond that is logged (`tracing`) and not paid.
//!
//! **Floods stay bounded.** Every worker route is rate-limited per client address (the TCP
//! peer: serve with `into_make_service_with_connect_info::<SocketAddr>()`) and per assignment
//! ([`RateLimits`], 429 `rate_limited` with `Retry-After`); the limiters' tables, the
//! confirmation cache and the departed pages the hub keeps are all bounded and evicted
//! ([`HttpState::memory`]).
//!
//! **Every page can finish on its platform.** A page's submit address (MTurk's
//! `turkSubmitTo`, only ever an allow-listed origin: [`HttpConfig::submit_origins`]) is
//! recorded in the session's store metadata ([`HttpStateBuilder::store`]) before its arrival is
//! logged. A page whose work is over — submitted, or released by the operator (`stop`,
//! lowered targets) — gets the platform's form in its state (`form`: post it to MTurk's
//! `externalSubmit`), after a restart, on a reload and on a retried submit too, so the
//! assignment is submitted at the platform and the engine's approval goes through.
//!
//! No page is ever sent another worker's ids: worker streams carry only their own page's
//! state. The admin key and the page secret come from the host (the `server` example reads
//! them from the environment); neither is ever logged or sent to a page.
//!
//! [`Platform::assignment`]: crate::platform::Platform::assignment
//! [`AssignmentRecord::confirms`]: crate::platform::AssignmentRecord::confirms
//! [`Capabilities::confirms_assignments`]: crate::platform::Capabilities::confirms_assignments
//! [`PavilionConfig::payable_contributions`]: crate::pavilion::PavilionConfig::payable_contributions
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
mod confirm;
mod error;
mod finish;
mod hub;
mod limit;
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
use crate::platform::Platform;
use crate::store::Store;

pub use admin::{QueueEntry, StatusView};
pub use auth::{MIN_SECRET_BYTES, Secret, SecretError, TokenClaims, page_token, require_admin};
pub use confirm::FrontError;
pub use error::{ApiError, ErrorCode};
pub use finish::Owed;
pub use hub::{PageState, PageStatus};
pub use limit::{RateLimit, RateLimits};
pub use worker::{FormMethod, PAGE_TOKEN_HEADER, PREVIEW_ASSIGNMENT, PlatformForm, WorkerSide};

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
    /// Where every page finishes instead of posting a per-page form: a fixed completion
    /// redirect, such as Prolific's `https://app.prolific.com/submissions/complete?cc=CODE`.
    /// Set by the operator, never by a page; a page whose work is over (submitted, or released
    /// when the job stops, waiting or active) is sent there, and told so again on a reload or
    /// after a restart. `None`: the per-page form of [`submit_origins`](Self::submit_origins).
    pub finish_redirect: Option<String>,
    /// Recent engine events kept for the status page.
    pub recent_events: usize,
    /// How often the status page's queue-size chart takes a point, in milliseconds; it keeps
    /// the last hour.
    pub sample_every_ms: u64,
    /// **Unsafe on a public crowd.** Seat arrivals the platform cannot confirm. Without it, a
    /// front over a platform whose [`Capabilities::confirms_assignments`] is false refuses to
    /// build ([`FrontError::CannotConfirmArrivals`]); with it, that platform's arrivals are
    /// taken at their page's word, so anyone who knows a HIT id can take seats, open slots and
    /// turn real workers away as `already_seated`. Only for a closed lab crowd, or a platform
    /// whose confirmation is still being written. A platform that can confirm is always asked,
    /// whatever this says.
    ///
    /// [`Capabilities::confirms_assignments`]: crate::platform::Capabilities::confirms_assignments
    pub trust_unconfirmed_arrivals: bool,
    /// How long the platform may take to confirm an arrival, in milliseconds; past it the page
    /// gets 503 `platform_unavailable` with `Retry-After`, and no seat.
    pub confirm_timeout_ms: u64,
    /// How long a confirmation read from the platform is reused (a reload does not ask again),
    /// in milliseconds.
    pub confirm_cache_ms: u64,
    /// The most confirmations kept.
    pub confirm_cache_entries: usize,
    /// How long a page token lasts, in milliseconds; `None`: the assignment's duration (see
    /// [`HttpStateBuilder::assignment_duration_ms`]; one hour if not given). A page reloading
    /// gets a new one.
    pub token_ttl_ms: Option<u64>,
    /// How long an event-stream ticket (`POST /w/ticket`) lasts, in milliseconds.
    pub ticket_ttl_ms: u64,
    /// Departed pages kept for a reload to learn how they ended, at most.
    pub keep_departed_pages: usize,
    /// How long a departed page is kept, in milliseconds.
    pub keep_departed_pages_ms: u64,
    /// Rate limits of the worker routes.
    pub rate_limits: RateLimits,
}

impl HttpConfig {
    /// Defaults: heartbeat every 5 s (each one an engine input), 16 KiB bodies, MTurk's and its
    /// sandbox's submit origins, 200 recent events, a chart point every 5 s; arrivals confirmed
    /// with the platform (5 s timeout, confirmations reused for 10 min, 100 000 kept); page
    /// tokens for the assignment's duration, event tickets for 30 s; departed pages kept 15 min,
    /// at most 10 000; [`RateLimits::default`].
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
            finish_redirect: None,
            recent_events: 200,
            sample_every_ms: 5_000,
            trust_unconfirmed_arrivals: false,
            confirm_timeout_ms: 5_000,
            confirm_cache_ms: 10 * 60_000,
            confirm_cache_entries: 100_000,
            token_ttl_ms: None,
            ticket_ttl_ms: 30_000,
            keep_departed_pages: 10_000,
            keep_departed_pages_ms: 15 * 60_000,
            rate_limits: RateLimits::default(),
        }
    }

    pub(crate) fn confirm_settings(&self) -> confirm::Settings {
        confirm::Settings {
            trust: self.trust_unconfirmed_arrivals,
            timeout: std::time::Duration::from_millis(self.confirm_timeout_ms.max(1)),
            ttl_ms: self.confirm_cache_ms,
            capacity: self.confirm_cache_entries,
        }
    }
}

/// One hour: a page token's life when neither the config nor the host says otherwise.
const DEFAULT_TOKEN_TTL_MS: u64 = 3_600_000;

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
    records: Arc<finish::PageRecords>,
    worker_side: Option<Arc<dyn WorkerSide>>,
    confirmer: confirm::Confirmer,
    limiter: Arc<limit::Limiter>,
    token_ttl_ms: u64,
}

impl std::fmt::Debug for HttpState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpState")
            .field("session", self.inner.engine.session())
            .finish_non_exhaustive()
    }
}

/// Builds an [`HttpState`] ([`HttpState::builder`]).
pub struct HttpStateBuilder {
    engine: EngineHandle,
    platform: Arc<dyn Platform>,
    config: HttpConfig,
    clock: Arc<dyn Clock>,
    worker_side: Option<Arc<dyn WorkerSide>>,
    assignment_duration_ms: Option<u64>,
    store: Option<Arc<dyn Store>>,
}

impl std::fmt::Debug for HttpStateBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpStateBuilder").finish_non_exhaustive()
    }
}

impl HttpStateBuilder {
    /// Uses `clock` (the engine's) instead of the system clock.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The platform's worker side in this process, told of submissions and returns after the
    /// engine (for in-process platforms such as
    /// [`LocalMarketplace`](crate::local::LocalMarketplace); MTurk's is its submit form).
    pub fn worker_side(mut self, side: Arc<dyn WorkerSide>) -> Self {
        self.worker_side = Some(side);
        self
    }

    /// The engine's store: each page's platform submit address (MTurk's `turkSubmitTo`, an
    /// allow-listed origin) is recorded in the session's metadata before its arrival is
    /// logged, so a page still learns how to finish on the platform after a restart. Without
    /// it a restarted front has no form for pages that arrived before the restart.
    pub fn store(mut self, store: Arc<dyn Store>) -> Self {
        self.store = Some(store);
        self
    }

    /// How long the HIT's assignments last ([`HitSpec::assignment_duration_ms`]): page tokens
    /// expire after it unless [`HttpConfig::token_ttl_ms`] says otherwise.
    ///
    /// [`HitSpec::assignment_duration_ms`]: crate::model::HitSpec::assignment_duration_ms
    pub fn assignment_duration_ms(mut self, ms: u64) -> Self {
        self.assignment_duration_ms = Some(ms);
        self
    }

    /// The front. Starts the task that follows the engine's events (it ends with the engine),
    /// so call it inside a tokio runtime. Refuses a platform that cannot confirm arrivals
    /// unless [`HttpConfig::trust_unconfirmed_arrivals`] is set.
    pub fn build(self) -> Result<HttpState, FrontError> {
        let confirmer = confirm::Confirmer::new(
            self.platform,
            self.clock.clone(),
            self.config.confirm_settings(),
        )?;
        let records = Arc::new(finish::PageRecords::new(
            self.store,
            self.engine.session().clone(),
            &self.config.submit_origins,
        ));
        let hub = hub::Hub::spawn(
            self.engine.clone(),
            self.clock.clone(),
            &self.config,
            records.clone(),
        );
        let limiter = Arc::new(limit::Limiter::new(&self.config.rate_limits));
        let token_ttl_ms = self
            .config
            .token_ttl_ms
            .or(self.assignment_duration_ms)
            .unwrap_or(DEFAULT_TOKEN_TTL_MS)
            .max(1);
        Ok(HttpState {
            inner: Arc::new(Inner {
                engine: self.engine,
                config: self.config,
                clock: self.clock,
                hub,
                records,
                worker_side: self.worker_side,
                confirmer,
                limiter,
                token_ttl_ms,
            }),
        })
    }
}

impl HttpState {
    /// The front of `engine` on `platform` (the engine's: arrivals are confirmed with it) with
    /// `config`, on the system clock; see [`builder`](Self::builder) for the rest.
    pub fn new(
        engine: EngineHandle,
        platform: Arc<dyn Platform>,
        config: HttpConfig,
    ) -> Result<Self, FrontError> {
        Self::builder(engine, platform, config).build()
    }

    /// A builder of the front of `engine` on `platform` with `config`.
    pub fn builder(
        engine: EngineHandle,
        platform: Arc<dyn Platform>,
        config: HttpConfig,
    ) -> HttpStateBuilder {
        HttpStateBuilder {
            engine,
            platform,
            config,
            clock: Arc::new(SystemClock),
            worker_side: None,
            assignment_duration_ms: None,
            store: None,
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

    /// What the front keeps in memory, for monitoring (and the tests that bound it).
    pub fn memory(&self) -> FrontMemory {
        let (addresses, assignments) = self.inner.limiter.keys();
        FrontMemory {
            pages: self.inner.hub.len(),
            confirmations: self.inner.confirmer.len(),
            rate_limited_addresses: addresses,
            rate_limited_assignments: assignments,
        }
    }
}

/// Counts of what the front keeps in memory ([`HttpState::memory`]). Each is bounded: pages by
/// the seats plus [`HttpConfig::keep_departed_pages`], confirmations by
/// [`HttpConfig::confirm_cache_entries`], rate-limit keys by [`RateLimits::max_keys`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrontMemory {
    /// Worker pages the hub follows (present and recently departed).
    pub pages: usize,
    /// Confirmations read from the platform and kept.
    pub confirmations: usize,
    /// Client addresses with a rate-limit bucket.
    pub rate_limited_addresses: usize,
    /// Assignments with a rate-limit bucket.
    pub rate_limited_assignments: usize,
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
