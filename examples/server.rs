//! # server — the HTTP front over a running engine: landing page, admin API, status page
//!
//! Serves the worker landing page (what a HIT's ExternalQuestion points at), the admin API and
//! the operator's live status page over one Pavilion engine, with the SQLite store and the
//! local marketplace by default:
//!
//! ```text
//! cargo run --release -p crowdcore-examples --example server -- --listen 127.0.0.1:8080 --demo
//! ```
//!
//! then open the status page URL it prints. With `--demo`, simulated workers take the
//! session's HITs on the local marketplace and then behave like browsers **through the real
//! HTTP endpoints**: they arrive, open the event stream, send heartbeats, wait, are promoted,
//! work, submit; some give up waiting, some return, some close the tab and time out.
//!
//! Secrets come from the environment and are never logged:
//!
//! - `CROWDCORE_ADMIN_KEY` — the admin API key (at least 16 bytes). If it is not set, a
//!   random one is made for this run and printed **once** to stderr, inside the status page
//!   link (`/status#key=…`; the part after `#` never leaves the browser). Set it for anything
//!   but a local trial.
//! - `CROWDCORE_PAGE_SECRET` — the key page tokens are derived from. If it is not set, a
//!   random one is made and not shown; pages then stop working across a restart (their tokens
//!   no longer verify), so set it for a real study.
//!
//! `--public-url` is the base URL workers reach the server at; HITs point at
//! `<public-url>/work`. The store keeps the session in `--db` (default `server.db`); each run
//! starts a new session unless `--session` names one to resume (which needs a platform that
//! outlives the process — the in-process local marketplace does not).
//! `--platform` picks the crowd: `local` (the in-process marketplace, the default), `mturk`
//! (Amazon Mechanical Turk: `--sandbox`, or `--endpoint-url` for a fake or a proxy, else
//! production; credentials from the standard AWS chain; `--sqs-queue URL` has MTurk push
//! submissions, returns and abandonments to that queue instead of being polled) or `toloka`
//! (one pool, `--toloka-pool`, at `--toloka-url`, default production; the token from
//! `TOLOKA_API_KEY` or `TOLOKA_OAUTH_TOKEN`) or `prolific` (one study per session in
//! `--workspace`'s `--project`, at `--prolific-url`, default production; the token from
//! `PROLIFIC_API_TOKEN`; participants finish on Prolific's completion redirect, and
//! `--currency` must be the workspace's, such as `GBP`). On a real platform, `--public-url` must be the
//! HTTPS address workers' browsers reach, and `--session` resumes a session after a restart.
//! `--retainer` also serves the retainer's routes (reservations, `gettask` polling) over a
//! second engine driving the retainer (its own session, `<session>-retainer`, on the same store
//! and marketplace); the status page then lists the reservations.
//!
//! A pilot on a real Prolific account (Prolific has no sandbox: this spends money): create a
//! project in the workspace, top the workspace up, set `PROLIFIC_API_TOKEN`,
//! `CROWDCORE_ADMIN_KEY` and `CROWDCORE_PAGE_SECRET`, and run, with a public HTTPS address:
//!
//! ```text
//! cargo run -p crowdcore-examples --example server -- --platform prolific \
//!     --workspace <workspace id> --project <project id> --currency GBP \
//!     --public-url https://study.example.org --max-active 2 --min-active 1 \
//!     --max-waiting 1 --min-waiting 1 --budget-cents 500 --session pilot-1
//! ```
//!
//! then start the session from the status page: the first hire creates and publishes a
//! study named by the session (`internal_name` `crowdcore:pilot-1:…`) whose link is the
//! landing page. Stop it from the status page (everyone is sent to the completion redirect
//! and paid), then `cargo run -p crowdcore-examples --example prolific -- stop --session
//! pilot-1 --project <project id>` to stop the study for good. Point `--prolific-url` at any
//! Prolific-speaking URL (a local fake) to try it without an account.
//!
//! Every arrival is confirmed with the platform (`Platform::assignment`) before it takes a
//! seat. A platform that cannot confirm arrivals (its capabilities say so: of today's backends
//! only MTurk's, whose `GetAssignment` shows only submitted work) is refused unless `--unsafe-trust-arrivals` is given, which seats any
//! page that knows a HIT id — for a closed pilot only, never on a public crowd.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use crowdcore::clock::{Clock, SystemClock};
use crowdcore::engine::{EngineBuilder, EngineConfig, EngineHandle, RetainerEngineConfig};
use crowdcore::http::retainer::{RetainerFront, retainer_routes};
use crowdcore::http::sse::SseReader;
use crowdcore::http::{HttpConfig, HttpState, Secret, WorkerSide};
use crowdcore::local::LocalMarketplace;
use crowdcore::model::{Currency, HitSpec, Money, SessionId, WorkerId};
use crowdcore::pavilion::{Input, PavilionConfig};
use crowdcore::platform::{AssignmentUpdate, Platform};
use crowdcore::retainer::RetainerConfig;
use crowdcore::store::{MemoryStore, Store};
use crowdcore_mturk::{
    Endpoint, MturkConfig, MturkPlatform, NotificationReader, NotificationSettings, push_to_handle,
};
use crowdcore_prolific::{ProlificPlatform, ProlificPlatformConfig};
use crowdcore_sqlite::{SqliteOptions, SqliteStore};
use crowdcore_toloka::{
    ClientConfig, Credentials, TolokaClient, TolokaPlatform, TolokaPlatformConfig,
};
use futures_util::StreamExt;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde_json::{Value, json};
use tokio::sync::watch;

/// Serve the landing page, admin API and status page over a crowdcore engine.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Base URL workers reach this server at (HITs point at `<public-url>/work`); defaults to
    /// `http://<listen>`.
    #[arg(long)]
    public_url: Option<String>,
    /// The crowd platform.
    #[arg(long, value_enum, default_value_t = PlatformKind::Local)]
    platform: PlatformKind,
    /// MTurk: the requester sandbox instead of production.
    #[arg(long)]
    sandbox: bool,
    /// MTurk: any endpoint speaking the MTurk API (a local fake, a proxy).
    #[arg(long, conflicts_with = "sandbox")]
    endpoint_url: Option<String>,
    /// MTurk: an SQS queue URL MTurk pushes assignment events to (instead of polling).
    #[arg(long)]
    sqs_queue: Option<String>,
    /// Toloka: the API root.
    #[arg(long, default_value = crowdcore_toloka::PRODUCTION_URL)]
    toloka_url: String,
    /// Toloka: the pool HITs become tasks of.
    #[arg(long)]
    toloka_pool: Option<String>,
    /// Prolific: the API origin.
    #[arg(long, default_value = crowdcore_prolific::PRODUCTION_URL)]
    prolific_url: String,
    /// Prolific: the workspace (balance, participant groups).
    #[arg(long)]
    workspace: Option<String>,
    /// Prolific: the project the session's study is created in.
    #[arg(long)]
    project: Option<String>,
    /// Prolific: also take webhooks at `<public-url>/prolific/hooks` (verified with the
    /// workspace's hook secret from `PROLIFIC_HOOK_SECRET`), subscribing to
    /// `submission.status.change` at start. The poll stays on: a lost webhook is caught by it.
    #[arg(long)]
    prolific_webhooks: bool,
    /// The currency of the reward and every rate (Prolific: the workspace's, such as GBP).
    #[arg(long, default_value = "USD")]
    currency: String,
    /// Where the session's log, outbox and ledger are kept.
    #[arg(long, value_enum, default_value_t = StoreKind::Sqlite)]
    store: StoreKind,
    /// The SQLite file.
    #[arg(long, default_value = "server.db")]
    db: PathBuf,
    /// The session to run or resume (default: a new one). Resuming needs a platform that
    /// outlives the process: the local marketplace does not, so a resumed session on it finds
    /// its HITs and assignments gone.
    #[arg(long)]
    session: Option<String>,
    /// Simulated workers arrive through the HTTP endpoints; the session starts at once.
    #[arg(long)]
    demo: bool,
    /// Also serve the retainer's routes (`/api/templates`, `/api/reservations…`, `/r/…`),
    /// over an engine driving the retainer on the same store and marketplace.
    #[arg(long)]
    retainer: bool,
    /// UNSAFE on a public crowd: serve a platform that cannot confirm arrivals, seating every
    /// page at its word (anyone who knows a HIT id can take seats and turn real workers away).
    #[arg(long)]
    unsafe_trust_arrivals: bool,
    /// Demo: mean time between simulated arrivals, in milliseconds.
    #[arg(long, default_value_t = 1_500)]
    demo_every_ms: u64,
    /// Demo: seed of the simulated workers.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Most workers on the task at once.
    #[arg(long, default_value_t = 4)]
    max_active: u32,
    /// Workers the task needs to begin.
    #[arg(long, default_value_t = 2)]
    min_active: u32,
    /// Most workers standing by.
    #[arg(long, default_value_t = 3)]
    max_waiting: u32,
    /// Workers that must stand by before the task begins.
    #[arg(long, default_value_t = 1)]
    min_waiting: u32,
    /// A page silent this long has left, in milliseconds.
    #[arg(long, default_value_t = 15_000)]
    heartbeat_timeout_ms: u64,
    /// Base pay per assignment, in cents.
    #[arg(long, default_value_t = 50)]
    base_cents: i64,
    /// Waiting bonus, in cents per minute.
    #[arg(long, default_value_t = 10)]
    waiting_cents_per_minute: i64,
    /// Active bonus, in cents per minute.
    #[arg(long, default_value_t = 20)]
    active_cents_per_minute: i64,
    /// Budget cap, in cents.
    #[arg(long, default_value_t = 10_000)]
    budget_cents: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum PlatformKind {
    /// The in-process marketplace.
    Local,
    /// Amazon Mechanical Turk (crowdcore-mturk).
    Mturk,
    /// Toloka, one pool (crowdcore-toloka).
    Toloka,
    /// Prolific, one study per session (crowdcore-prolific).
    Prolific,
}

/// The platform the engines run on, and what else it brings.
struct Crowd {
    platform: Arc<dyn Platform>,
    /// The in-process marketplace: its worker side confirms arrivals and feeds the demo.
    market: Option<LocalMarketplace>,
    /// MTurk's notification queue, read into the engine.
    notifications: Option<NotificationReader>,
    /// Where every page finishes (Prolific's completion redirect), if not on a form.
    finish_redirect: Option<String>,
    /// The Prolific platform itself, for its webhooks.
    prolific: Option<Arc<ProlificPlatform>>,
}

/// Connects to the platform `args` names.
async fn crowd(
    args: &Args,
    clock: &Arc<dyn Clock>,
    session: &SessionId,
    store: &Arc<dyn Store>,
) -> Result<Crowd, String> {
    match args.platform {
        PlatformKind::Local => {
            let market = LocalMarketplace::new(clock.clone(), Money::usd_cents(1_000_000));
            Ok(Crowd {
                platform: Arc::new(market.clone()),
                market: Some(market),
                notifications: None,
                finish_redirect: None,
                prolific: None,
            })
        }
        PlatformKind::Mturk => {
            let endpoint = match (&args.endpoint_url, args.sandbox) {
                (Some(url), _) => Endpoint::Url(url.clone()),
                (None, true) => Endpoint::Sandbox,
                (None, false) => Endpoint::Production,
            };
            let mut config = MturkConfig::new(endpoint);
            // Our HITs are found again after a restart by the session they carry.
            config.scope = Some(session.to_string());
            config.notifications = args.sqs_queue.clone().map(NotificationSettings::new);
            let platform = Arc::new(MturkPlatform::connect(config.clone()).await);
            let notifications = match &config.notifications {
                // Only events of this session's HITs become inputs.
                Some(_) => Some(
                    NotificationReader::connect(&config)
                        .await
                        .map_err(|e| format!("cannot reach the SQS queue: {e}"))?
                        .with_session(platform.clone()),
                ),
                None => None,
            };
            Ok(Crowd {
                platform,
                market: None,
                notifications,
                finish_redirect: None,
                prolific: None,
            })
        }
        PlatformKind::Toloka => {
            let pool = args
                .toloka_pool
                .clone()
                .ok_or("--platform toloka needs --toloka-pool")?;
            let credentials = Credentials::from_env().map_err(|e| e.to_string())?;
            let client = TolokaClient::new(ClientConfig::new(args.toloka_url.clone(), credentials))
                .map_err(|e| e.to_string())?;
            Ok(Crowd {
                platform: Arc::new(TolokaPlatform::new(client, TolokaPlatformConfig::new(pool))),
                market: None,
                notifications: None,
                finish_redirect: None,
                prolific: None,
            })
        }
        PlatformKind::Prolific => {
            let (Some(workspace), Some(project)) = (&args.workspace, &args.project) else {
                return Err("--platform prolific needs --workspace and --project".into());
            };
            let credentials =
                crowdcore_prolific::Credentials::from_env().map_err(|e| e.to_string())?;
            let client = crowdcore_prolific::ProlificClient::new(
                crowdcore_prolific::ClientConfig::new(args.prolific_url.clone(), credentials),
            )
            .map_err(|e| e.to_string())?;
            let currency = Currency::new(&args.currency).map_err(|e| e.to_string())?;
            let mut config = ProlificPlatformConfig::new(workspace, project, session.to_string());
            config.budget = Some(Money::new(args.budget_cents, currency));
            config.clock = clock.clone();
            // The session's study, each hire's place target and each bonus's state are kept
            // with the session, so a restart neither creates the study again nor pays twice.
            let platform =
                ProlificPlatform::with_store(client, config, store.clone(), session.clone());
            let redirect = platform.completion_url();
            let platform = Arc::new(platform);
            Ok(Crowd {
                platform: platform.clone(),
                market: None,
                notifications: None,
                finish_redirect: Some(redirect),
                prolific: Some(platform),
            })
        }
    }
}

/// What the Prolific webhook route needs.
struct Hooks {
    receiver: crowdcore_prolific::webhook::WebhookReceiver,
    platform: Arc<ProlificPlatform>,
    engine: EngineHandle,
}

/// `POST /prolific/hooks`: Prolific's handshake, or a delivery. A verified, new, in-order
/// delivery makes the engine take Prolific's own read of the submission (never the event's
/// word); anything else changes nothing.
async fn hook(
    axum::extract::State(hooks): axum::extract::State<Arc<Hooks>>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let now = SystemClock.now().as_millis() / 1000;
    let answer = hooks.receiver.answer(&headers, &body, now);
    if let Some(crowdcore_prolific::webhook::Delivery::Accepted(change)) = &answer.delivery {
        // Prolific is answered at once; its own read of the submission (a platform call) and
        // the engine input run beside the request, so a slow Prolific never makes its
        // delivery time out and come again.
        let hooks = hooks.clone();
        let submission = change.submission.clone();
        tokio::spawn(async move {
            match hooks.platform.read_update(&submission).await {
                Ok(Some(update)) => {
                    if let Some(input) =
                        <crowdcore::pavilion::Pavilion as crowdcore::engine::Machine>::update_input(
                            &update,
                        )
                        && let Err(e) = hooks.engine.input(input).await
                    {
                        // A departure the poll or the page reported first: harmless.
                        tracing::debug!(error = %e, "webhook update refused");
                    }
                }
                Ok(None) => {}
                // The poll catches it later.
                Err(e) => tracing::warn!(error = %e, "cannot read a webhook's submission back"),
            }
        });
    }
    let status = axum::http::StatusCode::from_u16(answer.status)
        .unwrap_or(axum::http::StatusCode::BAD_REQUEST);
    let mut response = status.into_response();
    if let Some(secret) = answer.echo_secret
        && let Ok(v) = axum::http::HeaderValue::from_str(&secret)
    {
        response.headers_mut().insert("x-hook-secret", v);
    }
    response
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum StoreKind {
    /// A SQLite file (`--db`).
    Sqlite,
    /// Memory: nothing survives the process.
    Memory,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("server: {e}");
            ExitCode::FAILURE
        }
    }
}

fn random_secret() -> String {
    let mut bytes = [0u8; 24];
    rand::fill(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The secret in `var`, or a fresh random one (and whether it was made here).
fn secret(var: &str) -> Result<(Secret, Option<String>), String> {
    match std::env::var(var) {
        Ok(_) => Secret::from_env(var)
            .map(|s| (s, None))
            .map_err(|e| format!("{var}: {e}")),
        Err(_) => {
            let made = random_secret();
            let s = Secret::new(made.clone().into_bytes()).map_err(|e| e.to_string())?;
            Ok((s, Some(made)))
        }
    }
}

async fn run(args: Args) -> Result<(), String> {
    let public = args
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{}", args.listen))
        .trim_end_matches('/')
        .to_owned();
    let (admin_key, made_key) = secret("CROWDCORE_ADMIN_KEY")?;
    let (page_secret, _) = secret("CROWDCORE_PAGE_SECRET")?;

    if args.demo && args.platform != PlatformKind::Local {
        return Err("--demo runs simulated workers on the local marketplace only".into());
    }
    if args.retainer && args.platform != PlatformKind::Local {
        // Its engine would need its own platform scope and its share of pushed events.
        return Err("--retainer runs on the local marketplace only, for now".into());
    }
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let store: Arc<dyn Store> = match args.store {
        StoreKind::Sqlite => Arc::new(
            SqliteStore::open(&args.db, SqliteOptions::default())
                .map_err(|e| format!("cannot open {}: {e}", args.db.display()))?,
        ),
        StoreKind::Memory => Arc::new(MemoryStore::new()),
    };
    let pavilion = PavilionConfig {
        min_active: args.min_active,
        max_active: args.max_active,
        min_waiting: args.min_waiting,
        max_waiting: args.max_waiting,
        heartbeat_timeout_ms: args.heartbeat_timeout_ms,
        hire_retry_ms: 10_000,
        budget_cents: Some(args.budget_cents),
        base_pay_cents: args.base_cents,
        waiting_cents_per_minute: args.waiting_cents_per_minute,
        active_cents_per_minute: args.active_cents_per_minute,
        currency: Currency::new(&args.currency).map_err(|e| e.to_string())?,
        ..PavilionConfig::default()
    };
    let spec = HitSpec {
        title: "Real-time task: stand by, then work".into(),
        description: "Wait on the page until a seat opens, then do the task. Paid for waiting."
            .into(),
        keywords: vec!["real-time".into()],
        reward: Money::new(
            args.base_cents,
            Currency::new(&args.currency).map_err(|e| e.to_string())?,
        ),
        assignment_duration_ms: 2 * 3_600_000,
        lifetime_ms: 24 * 3_600_000,
        max_assignments: 100,
        auto_approval_delay_ms: 3 * 86_400_000,
        qualifications: Vec::new(),
        landing_url: format!("{public}/work"),
        frame_height: 800,
    };
    let session = args
        .session
        .as_deref()
        .map_or_else(SessionId::new_v7, SessionId::new);
    eprintln!("session:      {session}");
    let crowd = crowd(&args, &clock, &session, &store).await?;
    let mut config = EngineConfig::new(spec.clone(), pavilion);
    config.observe_every_ms = 2_000;
    let retainer_store = store.clone();
    let front_store = store.clone();
    let engine = EngineBuilder::new(crowd.platform.clone(), store, config)
        .clock(clock.clone())
        .session(session.clone())
        .start()
        .await
        .map_err(|e| e.to_string())?
        .spawn();

    let mut http = HttpConfig::new(page_secret, admin_key);
    http.title = spec.title.clone();
    http.description = spec.description.clone();
    http.heartbeat_every_ms = (args.heartbeat_timeout_ms / 3).max(500);
    http.trust_unconfirmed_arrivals = args.unsafe_trust_arrivals;
    http.finish_redirect = crowd.finish_redirect.clone();
    let extra = if args.retainer {
        // The retainer runs as its own session on the same store and marketplace.
        let mut config = RetainerEngineConfig::new(RetainerConfig::default());
        config.observe_every_ms = 2_000;
        let retainer = EngineBuilder::new(crowd.platform.clone(), retainer_store, config)
            .clock(clock.clone())
            .session(SessionId::new(format!("{session}-retainer")))
            .start()
            .await
            .map_err(|e| e.to_string())?
            .spawn();
        let front = RetainerFront::new(retainer, crowd.platform.clone(), &http)
            .map_err(|e| e.to_string())?;
        retainer_routes(front)
    } else {
        axum::Router::new()
    };
    let mut state = HttpState::builder(engine.clone(), crowd.platform.clone(), http)
        .clock(clock)
        .assignment_duration_ms(spec.assignment_duration_ms)
        // Each page's platform submit address is kept with the session: a page that arrived
        // before a restart still finishes on the platform (and is paid) after it.
        .store(front_store);
    if let Some(market) = crowd.market.clone() {
        state = state.worker_side(Arc::new(market) as Arc<dyn WorkerSide>);
    }
    let state = state.build().map_err(|e| {
        format!("{e}\n(pass --unsafe-trust-arrivals to serve it anyway, for a closed pilot only)")
    })?;
    if let Some(reader) = crowd.notifications {
        // MTurk pushes submissions, returns and abandonments; a message leaves the queue
        // only once the engine has them.
        // On its own thread and runtime: the reader's sink is an async closure over borrowed
        // updates, which tokio::spawn cannot prove Send for every lifetime.
        let handle = engine.clone();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a tokio runtime");
            runtime.block_on(async move {
                let stop = async {
                    let _ = tokio::signal::ctrl_c().await;
                };
                let sink =
                    async |updates: &[AssignmentUpdate]| push_to_handle(&handle, updates).await;
                let stats = reader.run(sink, stop, Duration::from_secs(30)).await;
                tracing::info!(?stats, "notification reader stopped");
            });
        });
    }
    let extra = match (&crowd.prolific, args.prolific_webhooks) {
        (Some(platform), true) => {
            let secret = std::env::var("PROLIFIC_HOOK_SECRET")
                .ok()
                .filter(|s| !s.trim().is_empty())
                .ok_or(
                    "--prolific-webhooks needs PROLIFIC_HOOK_SECRET (the workspace's hook secret)",
                )?;
            let workspace = args.workspace.clone().unwrap_or_default();
            let target = format!("{public}/prolific/hooks");
            let hooks = Arc::new(Hooks {
                receiver: crowdcore_prolific::webhook::WebhookReceiver::new(
                    secret,
                    Duration::from_secs(300),
                ),
                platform: platform.clone(),
                engine: engine.clone(),
            });
            let route = axum::Router::new()
                .route("/prolific/hooks", axum::routing::post(hook))
                .with_state(hooks);
            // Subscribed once the route can answer Prolific's handshake.
            let client = platform.client().clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_secs(1)).await;
                match crowdcore_prolific::webhook::subscribe(&client, &workspace, &target).await {
                    Ok(sub) => {
                        tracing::info!(id = %sub.id, "subscribed to submission.status.change")
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot subscribe to Prolific's webhooks; polling only")
                    }
                }
            });
            extra.merge(route)
        }
        (None, true) => return Err("--prolific-webhooks needs --platform prolific".into()),
        _ => extra,
    };
    let app = crowdcore::http::router_with(state, extra);
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    eprintln!("landing page: {public}/work (what HITs point at)");
    match made_key {
        // Printed once, only because it was made here: the operator needs it to get in.
        Some(key) => eprintln!(
            "status page:  {public}/status#key={key}\n              \
             (CROWDCORE_ADMIN_KEY was not set: this key was made for this run only)"
        ),
        None => eprintln!("status page:  {public}/status (sign in with CROWDCORE_ADMIN_KEY)"),
    }

    if let (true, Some(market)) = (args.demo, crowd.market) {
        match engine.input(Input::Start).await {
            Ok(()) => tracing::info!("demo: session started"),
            Err(e) => tracing::info!(error = %e, "demo: session not started again"),
        }
        let base = format!(
            "http://{}",
            listener.local_addr().map_err(|e| e.to_string())?
        );
        tokio::spawn(demo_crowd(
            engine.clone(),
            market,
            base,
            args.demo_every_ms,
            args.seed,
        ));
    }

    // With the peer's address, which the worker routes' rate limits are keyed by.
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async {
        let _ = tokio::signal::ctrl_c().await;
        eprintln!("server: shutting down");
    })
    .await
    .map_err(|e| e.to_string())
}

// ----- the demo crowd --------------------------------------------------------------------------

/// Simulated workers arrive one by one and take the session's HITs on the local marketplace;
/// each then drives the real worker endpoints over HTTP as its browser would.
async fn demo_crowd(
    engine: EngineHandle,
    market: LocalMarketplace,
    base: String,
    every_ms: u64,
    seed: u64,
) {
    let client = reqwest::Client::new();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut n = 0u64;
    while !engine.is_finished() {
        let gap = (every_ms as f64 * -rng.random::<f64>().max(1e-9).ln()) as u64;
        tokio::time::sleep(Duration::from_millis(gap.clamp(50, 30_000))).await;
        n += 1;
        let worker = WorkerId::new(format!("demo-{n:04}"));
        let Some(listing) = market.first_available(&worker) else {
            continue; // nothing posted right now: this worker goes elsewhere
        };
        let Ok(assignment) = market.accept(&worker, &listing.hit) else {
            continue;
        };
        let persona = Persona {
            patience_s: rng.random_range(20..240),
            work_s: rng.random_range(10..60),
            vanish: rng.random_bool(0.08),
            returns: rng.random_bool(0.05),
        };
        let url = format!(
            "{base}/work?assignmentId={assignment}&hitId={}&workerId={worker}",
            listing.hit
        );
        let client = client.clone();
        let base = base.clone();
        let seed = rng.random::<u64>();
        tokio::spawn(async move {
            if let Err(e) = browse(&client, &base, &url, persona, seed).await {
                tracing::debug!(%worker, error = %e, "demo worker stopped");
            }
        });
    }
}

#[derive(Debug, Clone, Copy)]
struct Persona {
    /// Seconds they wait before giving up (submitting for the waiting pay).
    patience_s: u64,
    /// Seconds of work once promoted.
    work_s: u64,
    /// Closes the tab at some point (their heartbeat stops; they time out).
    vanish: bool,
    /// Returns the HIT instead of submitting.
    returns: bool,
}

/// One simulated browser on the landing page.
async fn browse(
    client: &reqwest::Client,
    base: &str,
    url: &str,
    persona: Persona,
    seed: u64,
) -> Result<(), String> {
    let mut rng = StdRng::seed_from_u64(seed);
    let page = client.get(url).send().await.map_err(|e| e.to_string())?;
    if !page.status().is_success() {
        return Err(format!("landing page: {}", page.status()));
    }
    let params: Vec<(String, String)> = reqwest::Url::parse(url)
        .map_err(|e| e.to_string())?
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let get = |k: &str| {
        params
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let assignment = get("assignmentId");
    let arrived: Value = client
        .post(format!("{base}/w/arrive"))
        .json(&json!({"assignment_id": assignment, "hit_id": get("hitId"), "worker_id": get("workerId")}))
        .send()
        .await
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())?;
    let token = arrived["token"].as_str().ok_or("no token")?.to_owned();
    let every = arrived["heartbeat_every_ms"].as_u64().unwrap_or(5_000);
    let (tx, mut status) = watch::channel(
        arrived["state"]["status"]
            .as_str()
            .unwrap_or("waiting")
            .to_owned(),
    );
    // The event stream, as the page's EventSource: opened with a short-lived ticket, never
    // the page token.
    let ticket: Value = client
        .post(format!("{base}/w/ticket"))
        .json(&json!({"assignment_id": assignment, "token": token}))
        .send()
        .await
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())?;
    let ticket = ticket["ticket"].as_str().ok_or("no ticket")?.to_owned();
    let events = client
        .get(format!("{base}/w/events"))
        .query(&[("assignment_id", &assignment), ("ticket", &ticket)])
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let reader = tokio::spawn(async move {
        let mut body = events.bytes_stream();
        let mut sse = SseReader::new();
        while let Some(Ok(chunk)) = body.next().await {
            for e in sse.feed(&chunk) {
                if let Ok(v) = serde_json::from_str::<Value>(&e.data)
                    && let Some(s) = v["status"].as_str()
                {
                    let _ = tx.send(s.to_owned());
                }
            }
        }
    });
    let page = json!({"assignment_id": assignment, "token": token});
    let vanish_after = persona.vanish.then(|| rng.random_range(5..90u64));
    let started = tokio::time::Instant::now();
    let mut promoted_at = None;
    let result = loop {
        let now_s = started.elapsed().as_secs();
        if vanish_after.is_some_and(|v| now_s >= v) {
            break Ok(()); // the tab closed: no more heartbeats
        }
        let current = status.borrow_and_update().clone();
        match current.as_str() {
            "waiting" | "arriving" => {
                if now_s >= persona.patience_s {
                    break leave(client, base, &page, persona.returns, 0).await;
                }
            }
            "active" => {
                let since = *promoted_at.get_or_insert(now_s);
                if now_s - since >= persona.work_s {
                    let units = persona.work_s / 5;
                    break leave(client, base, &page, persona.returns, units).await;
                }
            }
            _ => break Ok(()), // released, timed out, turned away
        }
        let _ = tokio::time::timeout(Duration::from_millis(every), status.changed()).await;
        let _ = client
            .post(format!("{base}/w/heartbeat"))
            .json(&page)
            .send()
            .await;
    };
    reader.abort();
    result
}

async fn leave(
    client: &reqwest::Client,
    base: &str,
    page: &Value,
    returns: bool,
    units: u64,
) -> Result<(), String> {
    let (path, mut body) = if returns {
        ("return", page.clone())
    } else {
        ("submit", page.clone())
    };
    if !returns {
        body["contributions"] = json!(units);
    }
    client
        .post(format!("{base}/w/{path}"))
        .json(&body)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    Ok(())
}
