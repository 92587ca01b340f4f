//! What the HTTP front refuses before anything reaches the engine, driven through the router
//! with `tower::ServiceExt::oneshot` (no socket), each request from a client address of the
//! test's choosing (`ConnectInfo`): arrivals the platform does not confirm, a platform that
//! fails or hangs, tokens of another session or past their time, floods of bogus arrivals,
//! callers over their rate limits — and pay a page cannot decide.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Request, StatusCode, header};
use crowdcore::clock::{Clock, SystemClock};
use crowdcore::engine::{EngineBuilder, EngineConfig, EngineEvent, EngineHandle};
use crowdcore::http::{
    FrontError, HttpConfig, HttpState, PAGE_TOKEN_HEADER, RateLimit, Secret, router,
};
use crowdcore::local::LocalMarketplace;
use crowdcore::model::{AssignmentId, HitId, HitSpec, Money, SessionId, WorkerId};
use crowdcore::pavilion::{EffectKind, Input, PavilionConfig, PayKind};
use crowdcore::platform::{
    AssignmentRecord, AssignmentUpdate, Capabilities, Cursor, IdempotencyKey, Page, Platform,
    PlatformError, PlatformErrorKind,
};
use crowdcore::store::{MemoryStore, Store};
use serde_json::{Value, json};
use tower::ServiceExt;

const ADMIN_KEY: &str = "guard-admin-key-0123456789";
const SECRET: &[u8] = b"guard-page-secret-0123456789abcdef";

fn spec() -> HitSpec {
    HitSpec {
        title: "Guarded task".into(),
        description: "Wait, then work.".into(),
        keywords: Vec::new(),
        reward: Money::usd_cents(50),
        assignment_duration_ms: 3_600_000,
        lifetime_ms: 3_600_000,
        max_assignments: 100,
        auto_approval_delay_ms: 86_400_000,
        qualifications: Vec::new(),
        landing_url: "http://127.0.0.1/work".into(),
        frame_height: 600,
    }
}

/// Three waiting seats that never begin the task (a manual start), 5 ¢ a contribution as the
/// pages report them, at most 10.
fn pavilion() -> PavilionConfig {
    PavilionConfig {
        min_active: 1,
        max_active: 1,
        min_waiting: 0,
        max_waiting: 2,
        start: crowdcore::pavilion::StartCondition::Manual,
        base_pay_cents: 50,
        per_contribution_cents: 5,
        max_contributions_per_assignment: Some(10),
        ..PavilionConfig::default()
    }
}

fn http_config() -> HttpConfig {
    let mut http = HttpConfig::new(
        Secret::new(SECRET.to_vec()).unwrap(),
        Secret::new(ADMIN_KEY.as_bytes()).unwrap(),
    );
    // The limits have a test of their own; elsewhere they stay out of the way.
    http.rate_limits.per_address = RateLimit {
        per_minute: 10_000_000,
        burst: 1_000_000,
    };
    http.rate_limits.per_assignment = http.rate_limits.per_address;
    http
}

struct Front {
    app: Router,
    state: HttpState,
    engine: EngineHandle,
    market: LocalMarketplace,
    store: Arc<MemoryStore>,
    session: SessionId,
}

/// A started engine on the local marketplace with its slots posted, and its front. The front
/// asks `confirm_with` (the marketplace if `None`) to confirm arrivals.
async fn front_with(
    session: &str,
    machine: PavilionConfig,
    tune: impl FnOnce(&mut HttpConfig),
    confirm_with: Option<Arc<dyn Platform>>,
) -> Front {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let market = LocalMarketplace::new(clock.clone(), Money::usd_cents(10_000_000));
    let store = Arc::new(MemoryStore::new());
    let session = SessionId::new(session);
    let mut config = EngineConfig::new(spec(), machine);
    config.observe_every_ms = 3_600_000;
    let engine = EngineBuilder::new(Arc::new(market.clone()), store.clone(), config)
        .clock(clock.clone())
        .session(session.clone())
        .start()
        .await
        .expect("the engine starts")
        .spawn();
    engine.input(Input::Start).await.unwrap();
    // Quiet: every hire posted, nothing in flight.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let s = engine.snapshot().await.unwrap();
        if s.open_slots > 0 && s.hires_in_flight.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "the hires were never posted");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut http = http_config();
    tune(&mut http);
    let platform = confirm_with.unwrap_or_else(|| Arc::new(market.clone()));
    let state = HttpState::builder(engine.clone(), platform, http)
        .clock(clock)
        .assignment_duration_ms(spec().assignment_duration_ms)
        .worker_side(Arc::new(market.clone()))
        .build()
        .expect("the front builds");
    Front {
        app: router(state.clone()),
        state,
        engine,
        market,
        store,
        session,
    }
}

async fn front() -> Front {
    front_with("guard", pavilion(), |_| {}, None).await
}

fn peer(n: u32) -> SocketAddr {
    SocketAddr::from(([10, (n >> 16) as u8, (n >> 8) as u8, n as u8], 40_000))
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

impl Front {
    async fn send(&self, request: Request<Body>, from: SocketAddr) -> Answer {
        let mut request = request;
        request.extensions_mut().insert(ConnectInfo(from));
        let response = self.app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let is_stream = headers
            .get(header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
        let body = if is_stream {
            Value::Null
        } else {
            let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
                .await
                .unwrap();
            serde_json::from_slice(&bytes).unwrap_or(Value::Null)
        };
        Answer {
            status,
            headers,
            body,
        }
    }

    async fn post_from(&self, path: &str, body: Value, from: SocketAddr) -> Answer {
        let request = Request::post(path)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .unwrap();
        self.send(request, from).await
    }

    async fn post(&self, path: &str, body: Value) -> Answer {
        self.post_from(path, body, peer(1)).await
    }

    async fn admin(&self, path: &str, body: Value) -> Answer {
        let request = Request::post(path)
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::AUTHORIZATION, format!("Bearer {ADMIN_KEY}"))
            .body(Body::from(body.to_string()))
            .unwrap();
        self.send(request, peer(1)).await
    }

    async fn get(&self, uri: &str, token: Option<&str>) -> Answer {
        let mut request = Request::get(uri);
        if let Some(t) = token {
            request = request.header(PAGE_TOKEN_HEADER, t);
        }
        self.send(request.body(Body::empty()).unwrap(), peer(1))
            .await
    }

    async fn log_len(&self) -> usize {
        self.store
            .read_log(&self.session, 0, usize::MAX)
            .await
            .unwrap()
            .len()
    }

    /// `worker` takes an open slot on the marketplace.
    fn take(&self, worker: &str) -> (AssignmentId, HitId) {
        let w = WorkerId::new(worker);
        let listing = self.market.first_available(&w).expect("a slot is open");
        let a = self.market.accept(&w, &listing.hit).expect("accept");
        (a, listing.hit)
    }

    async fn arrive(&self, a: &str, h: &str, w: &str) -> Answer {
        self.post(
            "/w/arrive",
            json!({"assignment_id": a, "hit_id": h, "worker_id": w}),
        )
        .await
    }
}

fn code(a: &Answer) -> (u16, &str) {
    (a.status.as_u16(), a.body["code"].as_str().unwrap_or(""))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arrivals_the_platform_does_not_confirm_write_nothing_and_block_nobody() {
    let f = front().await;
    let (alice_a, hit) = f.take("alice");
    let (bob_a, _) = f.take("bob");
    // Another requester's HIT on the same marketplace, and carol's slot of it.
    let other = f
        .market
        .post(
            &spec(),
            1,
            &IdempotencyKey::for_effect(&crowdcore::EffectId::new(SessionId::new("other"), 1)),
        )
        .await
        .unwrap();
    let carol_a = f
        .market
        .accept(&WorkerId::new("carol"), &other)
        .expect("carol takes the other HIT");
    let log = f.log_len().await;
    let before = f.engine.snapshot().await.unwrap();

    for (a, h, w, want) in [
        // A made-up assignment under alice's id, before alice arrives.
        ("made-up-1", hit.as_str(), "alice", (403, "not_confirmed")),
        // Bob's real assignment under another worker's id.
        (
            bob_a.as_str(),
            hit.as_str(),
            "mallory",
            (403, "not_confirmed"),
        ),
        // Bob's real assignment under his id, claiming a HIT it is not of.
        (bob_a.as_str(), "H-not-ours", "bob", (403, "not_confirmed")),
        // Carol's real assignment of another session's HIT, as it is: the platform confirms
        // it, but this session posted no such HIT.
        (
            carol_a.as_str(),
            other.as_str(),
            "carol",
            (404, "unknown_hit"),
        ),
        // Carol's real assignment, claimed through this session's HIT.
        (
            carol_a.as_str(),
            hit.as_str(),
            "carol",
            (403, "not_confirmed"),
        ),
    ] {
        let r = f.arrive(a, h, w).await;
        assert_eq!(code(&r), want, "{a} {h} {w}: {}", r.body);
        assert!(r.body.get("token").is_none());
    }
    assert_eq!(f.log_len().await, log, "a refused arrival was logged");
    assert_eq!(
        f.engine.snapshot().await.unwrap(),
        before,
        "the machine moved"
    );
    assert_eq!(f.state.memory().pages, 0, "the hub kept a refused page");

    // The real workers are seated afterwards: alice is not `already_seated`.
    for (a, w) in [(&alice_a, "alice"), (&bob_a, "bob")] {
        let r = f.arrive(a.as_str(), hit.as_str(), w).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body["state"]["status"], "waiting", "{w}");
    }
    // What the platform said is kept (bob's and carol's records read for the refusals,
    // alice's): a reload does not ask again.
    assert_eq!(f.state.memory().confirmations, 3);
    let r = f.arrive(alice_a.as_str(), hit.as_str(), "alice").await;
    assert_eq!(r.body["state"]["status"], "waiting");
}

/// A platform whose `assignment` fails or never answers.
struct Broken {
    hang: bool,
    confirms: bool,
}

#[async_trait]
impl Platform for Broken {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            returned_slots_reopen: true,
            push_notifications: false,
            bonus_without_assignment: false,
            max_slots_per_hit: None,
            confirms_assignments: self.confirms,
            posts_reopen_expired_hits: false,
        }
    }
    async fn assignment(
        &self,
        _: &AssignmentId,
    ) -> Result<Option<AssignmentRecord>, PlatformError> {
        if self.hang {
            std::future::pending::<()>().await;
        }
        Err(PlatformError::new(
            PlatformErrorKind::Unavailable,
            "503",
            "down",
        ))
    }
    async fn post(&self, _: &HitSpec, _: u32, _: &IdempotencyKey) -> Result<HitId, PlatformError> {
        Err(unused())
    }
    async fn add_slots(&self, _: &HitId, _: u32, _: &IdempotencyKey) -> Result<(), PlatformError> {
        Err(unused())
    }
    async fn expire(&self, _: &HitId) -> Result<(), PlatformError> {
        Err(unused())
    }
    async fn updates(&self, _: Option<&Cursor>) -> Result<Page<AssignmentUpdate>, PlatformError> {
        Err(unused())
    }
    async fn approve(&self, _: &AssignmentId, _: &IdempotencyKey) -> Result<(), PlatformError> {
        Err(unused())
    }
    async fn reject(
        &self,
        _: &AssignmentId,
        _: &str,
        _: &IdempotencyKey,
    ) -> Result<(), PlatformError> {
        Err(unused())
    }
    async fn bonus(
        &self,
        _: &WorkerId,
        _: Option<&AssignmentId>,
        _: Money,
        _: &str,
        _: &IdempotencyKey,
    ) -> Result<(), PlatformError> {
        Err(unused())
    }
    async fn notify(&self, _: &[WorkerId], _: &str, _: &str) -> Result<(), PlatformError> {
        Err(unused())
    }
    async fn block(&self, _: &WorkerId, _: &str) -> Result<(), PlatformError> {
        Err(unused())
    }
    async fn grant_qualification(
        &self,
        _: &WorkerId,
        _: &str,
        _: i64,
    ) -> Result<(), PlatformError> {
        Err(unused())
    }
    async fn revoke_qualification(&self, _: &WorkerId, _: &str) -> Result<(), PlatformError> {
        Err(unused())
    }
    async fn balance(&self) -> Result<Money, PlatformError> {
        Err(unused())
    }
}

fn unused() -> PlatformError {
    PlatformError::bad_request("Unused", "not part of this test")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_or_hanging_platform_answers_503_with_retry_after_quickly() {
    for hang in [false, true] {
        let broken: Arc<dyn Platform> = Arc::new(Broken {
            hang,
            confirms: true,
        });
        let f = front_with(
            "guard",
            pavilion(),
            |h| h.confirm_timeout_ms = 300,
            Some(broken),
        )
        .await;
        let (a, hit) = f.take("alice");
        let log = f.log_len().await;
        let started = Instant::now();
        let r = f.arrive(a.as_str(), hit.as_str(), "alice").await;
        let took = started.elapsed();
        assert_eq!(code(&r), (503, "platform_unavailable"), "hang {hang}");
        let retry: u64 = r.headers[header::RETRY_AFTER]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(retry >= 1);
        assert!(took < Duration::from_secs(3), "hang {hang}: took {took:?}");
        assert_eq!(f.log_len().await, log, "nothing was logged");
        assert_eq!(f.state.memory().pages, 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_platform_that_cannot_confirm_is_refused_unless_the_host_opts_in() {
    let f = front().await;
    let blind = || -> Arc<dyn Platform> {
        Arc::new(Broken {
            hang: false,
            confirms: false,
        })
    };
    let refused = HttpState::new(f.engine.clone(), blind(), http_config());
    assert_eq!(refused.unwrap_err(), FrontError::CannotConfirmArrivals);
    let mut trusting = http_config();
    trusting.trust_unconfirmed_arrivals = true;
    let state = HttpState::new(f.engine.clone(), blind(), trusting).expect("opted in");
    // Opted in, a made-up arrival is taken at its word: that is what the option means.
    let app = router(state);
    let mut request = Request::post("/w/arrive")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(
            json!({"assignment_id": "made-up", "hit_id": f.engine.snapshot().await.unwrap().hits[0].hit.as_str(), "worker_id": "w"})
                .to_string(),
        ))
        .unwrap();
    request.extensions_mut().insert(ConnectInfo(peer(1)));
    assert_eq!(app.oneshot(request).await.unwrap().status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_thousand_bogus_arrivals_leave_memory_and_the_log_flat() {
    let f = front_with(
        "guard",
        pavilion(),
        |h| h.rate_limits.max_keys = 1_000,
        None,
    )
    .await;
    let (a, hit) = f.take("alice");
    let log = f.log_len().await;
    let n: u32 = std::env::var("CROWDCORE_BOGUS_ARRIVALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    for i in 0..n {
        let body = json!({
            "assignment_id": format!("bogus-{i}"),
            "hit_id": hit.as_str(),
            "worker_id": format!("w{}", i % 97),
        });
        let r = f.post_from("/w/arrive", body, peer(i % 5_000)).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{i}: {}", r.body);
    }
    let memory = f.state.memory();
    assert_eq!(memory.pages, 0, "{memory:?}");
    assert_eq!(memory.confirmations, 0, "{memory:?}");
    assert!(memory.rate_limited_addresses <= 1_000, "{memory:?}");
    assert!(memory.rate_limited_assignments <= 1_000, "{memory:?}");
    assert_eq!(f.log_len().await, log, "a bogus arrival was logged");
    // The real worker is seated.
    let r = f.arrive(a.as_str(), hit.as_str(), "alice").await;
    assert_eq!(r.body["state"]["status"], "waiting", "{}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_past_their_rate_limit_get_429_with_retry_after() {
    let f = front_with(
        "guard",
        pavilion(),
        |h| {
            h.rate_limits.per_address = RateLimit {
                per_minute: 6,
                burst: 4,
            };
            h.rate_limits.per_assignment = RateLimit {
                per_minute: 6,
                burst: 3,
            };
        },
        None,
    )
    .await;
    // Per address: the fifth call from one address is refused; another address is not.
    let bogus = json!({"assignment_id": "nope", "token": "00"});
    for _ in 0..4 {
        let r = f.post_from("/w/heartbeat", bogus.clone(), peer(7)).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    }
    let r = f.post_from("/w/heartbeat", bogus.clone(), peer(7)).await;
    assert_eq!(code(&r), (429, "rate_limited"));
    assert!(
        r.headers[header::RETRY_AFTER]
            .to_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= 1
    );
    let r = f.post_from("/w/heartbeat", bogus, peer(8)).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    // Per assignment: a page's fourth call is refused, from whichever address.
    let (a, hit) = f.take("alice");
    let arrived = f
        .post_from(
            "/w/arrive",
            json!({"assignment_id": a.as_str(), "hit_id": hit.as_str(), "worker_id": "alice"}),
            peer(20),
        )
        .await;
    assert_eq!(arrived.status, 200, "{}", arrived.body);
    let page = json!({"assignment_id": a.as_str(), "token": arrived.body["token"]});
    for i in 0..2 {
        let r = f
            .post_from("/w/heartbeat", page.clone(), peer(30 + i))
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let r = f.post_from("/w/heartbeat", page, peer(40)).await;
    assert_eq!(code(&r), (429, "rate_limited"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_and_tickets_are_bound_to_their_session_and_expire() {
    let f = front_with(
        "guard",
        pavilion(),
        |h| {
            h.token_ttl_ms = Some(400);
            h.ticket_ttl_ms = 400;
        },
        None,
    )
    .await;
    let (a, hit) = f.take("alice");
    let r = f.arrive(a.as_str(), hit.as_str(), "alice").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let token = r.body["token"].as_str().unwrap().to_owned();
    assert!(r.body["token_expires_at"].as_u64().is_some());
    let page = json!({"assignment_id": a.as_str(), "token": token});
    assert_eq!(f.post("/w/heartbeat", page.clone()).await.status, 200);
    // The state poll takes the token from its header, never from the query.
    let uri = format!("/w/state?assignment_id={a}");
    assert_eq!(f.get(&uri, Some(&token)).await.status, 200);
    assert_eq!(code(&f.get(&uri, None).await), (403, "bad_token"));
    let in_query = f.get(&format!("{uri}&token={token}"), None).await;
    assert_eq!(code(&in_query), (400, "invalid_query"));
    let ticket = f.post("/w/ticket", page.clone()).await;
    assert_eq!(ticket.status, 200, "{}", ticket.body);
    let ticket = ticket.body["ticket"].as_str().unwrap().to_owned();
    let events = format!("/w/events?assignment_id={a}&ticket={ticket}");
    assert_eq!(f.get(&events, None).await.status, 200);

    // Another session's front, with the same page secret and an assignment of the same id,
    // takes neither.
    let g = front_with("guard-2", pavilion(), |_| {}, None).await;
    assert_eq!(
        code(&g.post("/w/heartbeat", page.clone()).await),
        (403, "bad_token")
    );
    assert_eq!(code(&g.get(&events, None).await), (403, "bad_token"));

    // Past their time: 401, and the page arrives again for a new token.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        code(&f.post("/w/heartbeat", page).await),
        (401, "token_expired")
    );
    assert_eq!(code(&f.get(&events, None).await), (401, "token_expired"));
    let again = f.arrive(a.as_str(), hit.as_str(), "alice").await;
    let fresh = json!({"assignment_id": a.as_str(), "token": again.body["token"]});
    assert_eq!(f.post("/w/heartbeat", fresh).await.status, 200);
}

/// The contribution bonuses the engine paid, by assignment.
fn contribution_pay(rx: &mut tokio::sync::broadcast::Receiver<EngineEvent>) -> Vec<(String, i64)> {
    let mut out = Vec::new();
    while let Ok(e) = rx.try_recv() {
        if let EngineEvent::Effect(e) = e
            && let EffectKind::Pay {
                assignment,
                kind: PayKind::ContributionBonus,
                amount,
                ..
            } = &e.kind
        {
            out.push((assignment.to_string(), amount.minor));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_never_decides_its_pay() {
    // Pages report, capped at 10 contributions: a claim of four billion pays 10 × 5 ¢.
    let f = front().await;
    let mut events = f.engine.subscribe();
    let (a, hit) = f.take("alice");
    let r = f.arrive(a.as_str(), hit.as_str(), "alice").await;
    let page = json!({"assignment_id": a.as_str(), "token": r.body["token"], "contributions": 4_000_000_000u32});
    let r = f.post("/w/submit", page).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(contribution_pay(&mut events), vec![(a.to_string(), 50)]);

    // The host counts: its count is paid, whatever the page claims.
    let host = PavilionConfig {
        max_contributions_per_assignment: None,
        contributions_from_host: true,
        ..pavilion()
    };
    let f = front_with("guard-host", host, |_| {}, None).await;
    let mut events = f.engine.subscribe();
    let (a, hit) = f.take("alice");
    let (b, _) = f.take("bob");
    let ra = f.arrive(a.as_str(), hit.as_str(), "alice").await;
    let rb = f.arrive(b.as_str(), hit.as_str(), "bob").await;
    for count in [2, 1] {
        let r = f
            .admin(
                "/api/contributions",
                json!({"assignment_id": a.as_str(), "count": count}),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let r = f
        .admin(
            "/api/contributions",
            json!({"assignment_id": "nobody", "count": 1}),
        )
        .await;
    assert_eq!(code(&r), (404, "unknown_assignment"));
    for (x, r) in [(&a, &ra), (&b, &rb)] {
        let page = json!({"assignment_id": x.as_str(), "token": r.body["token"], "contributions": 4_000_000_000u32});
        assert_eq!(f.post("/w/submit", page).await.status, 200);
    }
    // Alice: the host's 3 × 5 ¢; bob, whom the host never counted: nothing.
    assert_eq!(contribution_pay(&mut events), vec![(a.to_string(), 15)]);
}
