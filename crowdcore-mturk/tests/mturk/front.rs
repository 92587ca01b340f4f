//! The HTTP front over MTurk (the fake): workers released by a stop finish at MTurk through
//! their pages' `externalSubmit` form, and are paid exactly what the ledger says; a worker
//! whose page is gone is listed as owed, with the manual path.

use std::sync::Arc;
use std::time::Duration;

use crowdcore::clock::{Clock, SystemClock};
use crowdcore::engine::{EngineBuilder, EngineConfig, RetryPolicy};
use crowdcore::http::{HttpConfig, HttpState, Secret};
use crowdcore::pavilion::PavilionConfig;
use crowdcore::store::{LedgerEntry, MemoryStore, Store};
use crowdcore::{HitSpec, Money, SessionId};
use serde_json::{Value, json};

use super::{config, platform_with};
use crate::fake::{FakeMturk, Status};

const ADMIN_KEY: &str = "test-admin-key-0123456789";
const PATIENCE: Duration = Duration::from_secs(30);

fn spec() -> HitSpec {
    HitSpec {
        title: "Wait, then work".into(),
        description: "A real-time task.".into(),
        keywords: Vec::new(),
        reward: Money::usd_cents(50),
        assignment_duration_ms: 3_600_000,
        lifetime_ms: 3_600_000,
        max_assignments: 100,
        auto_approval_delay_ms: 86_400_000,
        qualifications: Vec::new(),
        landing_url: "https://front.example/work".into(),
        frame_height: 600,
    }
}

struct Front {
    base: String,
    client: reqwest::Client,
    engine: crowdcore::engine::EngineHandle,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Front {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl Front {
    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .client
            .post(format!("{}{path}", self.base))
            .json(&body)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }

    async fn admin(&self, method: reqwest::Method, path: &str) -> (u16, Value) {
        let r = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(ADMIN_KEY)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }

    async fn ledger_until(&self, done: impl Fn(&[LedgerEntry]) -> bool) -> Vec<LedgerEntry> {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let ledger = self.engine.ledger().await.unwrap();
            if done(&ledger) {
                return ledger;
            }
            assert!(tokio::time::Instant::now() < deadline, "ledger: {ledger:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Five seats (three active, two waiting) over the fake, the front on loopback.
async fn start(fake: &FakeMturk) -> Front {
    start_on(fake, Arc::new(MemoryStore::new())).await
}

/// The same on `store`: a front restarted on it resumes the session.
async fn start_on(fake: &FakeMturk, store: Arc<dyn Store>) -> Front {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let platform = Arc::new(platform_with(config(fake)).await);
    let pavilion = PavilionConfig {
        min_active: 3,
        max_active: 3,
        min_waiting: 2,
        max_waiting: 2,
        base_pay_cents: 50,
        waiting_cents_per_minute: 10,
        budget_cents: Some(100_000),
        ..PavilionConfig::default()
    };
    let mut config = EngineConfig::new(spec(), pavilion);
    config.observe_every_ms = 60_000;
    config.retry = RetryPolicy {
        base_ms: 20,
        max_ms: 200,
    };
    let engine = EngineBuilder::new(platform.clone(), store.clone(), config)
        .session(SessionId::new("front"))
        .clock(clock.clone())
        .start()
        .await
        .expect("engine")
        .spawn();
    let mut http = HttpConfig::new(
        Secret::new(b"test-page-secret-0123456789abcdef".to_vec()).unwrap(),
        Secret::new(ADMIN_KEY.as_bytes()).unwrap(),
    );
    http.submit_origins = vec![fake.url()];
    // MTurk cannot confirm an accepted assignment (it shows one only once submitted).
    http.trust_unconfirmed_arrivals = true;
    http.rate_limits.per_address = crowdcore::http::RateLimit {
        per_minute: 1_000_000,
        burst: 100_000,
    };
    http.rate_limits.per_assignment = http.rate_limits.per_address;
    let state = HttpState::builder(engine.clone(), platform, http)
        .clock(clock)
        .store(store)
        .build()
        .expect("front");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = crowdcore::http::router(state);
    let server = tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .await
        .unwrap();
    });
    Front {
        base: format!("http://{addr}"),
        client: reqwest::Client::new(),
        engine,
        server,
    }
}

/// What the worker's browser does with the form the front sent: posts it to MTurk.
async fn post_form(client: &reqwest::Client, form: &Value) -> u16 {
    let fields: Vec<(String, String)> = form["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f[0].as_str().unwrap().into(), f[1].as_str().unwrap().into()))
        .collect();
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(fields)
        .finish();
    client
        .post(form["action"].as_str().unwrap())
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_released_by_a_stop_finish_at_mturk_and_are_paid_what_the_ledger_says() {
    let fake = FakeMturk::start(Arc::new(SystemClock), 1_000_000).await;
    let front = start(&fake).await;
    assert_eq!(
        front.admin(reqwest::Method::POST, "/api/start").await.0,
        200
    );
    let names = ["W1", "W2", "W3", "W4", "W5"];
    let mut pages = Vec::new();
    for w in names {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        let hit = loop {
            if let Some(h) = fake.available(w).into_iter().next() {
                break h;
            }
            assert!(tokio::time::Instant::now() < deadline, "no HIT for {w}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let a = fake.accept(w, &hit).expect("accept");
        // MTurk lists a HIT a moment before the engine has recorded posting it: a page that
        // lands in between is told to try again.
        let (status, body) = loop {
            let (status, body) = front
                .post(
                    "/w/arrive",
                    json!({"assignment_id": a, "hit_id": hit, "worker_id": w,
                           "turk_submit_to": fake.url()}),
                )
                .await;
            if body["code"] != "unknown_hit" || tokio::time::Instant::now() > deadline {
                break (status, body);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert_eq!(status, 200, "{body}");
        pages.push((w, a, body["token"].as_str().unwrap().to_owned()));
    }
    assert_eq!(front.admin(reqwest::Method::POST, "/api/stop").await.0, 200);

    // Four pages are open: each is told to finish at MTurk and posts its form. W5's page was
    // closed: nothing submits its assignment.
    for (w, a, token) in &pages[..4] {
        let r = front
            .client
            .get(format!("{}/w/state", front.base))
            .query(&[("assignment_id", a)])
            .header(crowdcore::http::PAGE_TOKEN_HEADER, token)
            .send()
            .await
            .unwrap();
        let state: Value = r.json().await.unwrap();
        assert_eq!(state["status"], "released", "{w}");
        let form = &state["form"];
        assert_eq!(
            form["action"],
            format!("{}/mturk/externalSubmit", fake.url())
        );
        assert_eq!(post_form(&front.client, form).await, 200, "{w}");
        // Posted twice (a reload): harmless.
        assert_eq!(post_form(&front.client, form).await, 200, "{w}");
    }

    // The four are paid at MTurk exactly what the ledger says.
    let paid = |l: &[LedgerEntry], w: &str| {
        l.iter()
            .any(|e| e.worker.as_str() == w && e.kind == "base" && e.paid)
    };
    let ledger = front
        .ledger_until(|l| names[..4].iter().all(|w| paid(l, w)))
        .await;
    for (w, a, _) in &pages[..4] {
        assert_eq!(fake.assignment(a).unwrap().status, Status::Approved, "{w}");
        let cents: i64 = ledger
            .iter()
            .filter(|e| e.worker.as_str() == *w && e.paid)
            .map(|e| e.amount.minor)
            .sum();
        assert_eq!(fake.earnings(w), cents, "{w}");
    }
    // W5 is owed, and the status page says so and how to pay.
    let (w5, a5, _) = &pages[4];
    assert_eq!(fake.assignment(a5).unwrap().status, Status::Accepted);
    let (status, owed) = front.admin(reqwest::Method::GET, "/api/owed").await;
    assert_eq!(status, 200);
    let mine: Vec<&Value> = owed
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["worker"] == *w5)
        .collect();
    assert!(
        mine.iter()
            .any(|o| o["kind"] == "base" && o["amount_cents"] == 50),
        "{owed}"
    );
    assert!(
        mine.iter()
            .all(|o| o["manual"].as_str().unwrap().contains("bonus")
                || o["manual"].as_str().unwrap().contains("approve"))
    );
    assert!(
        owed.as_array().unwrap().iter().all(|o| o["worker"] == *w5),
        "only W5 is owed: {owed}"
    );
    assert_eq!(fake.earnings(w5), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_that_arrived_before_a_restart_finishes_at_mturk_after_it_and_is_paid() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let fake = FakeMturk::start(Arc::new(SystemClock), 1_000_000).await;
    let memory = Arc::new(MemoryStore::new());
    let crashed = Arc::new(AtomicBool::new(false));
    let dead = crashed.clone();
    let crashable: Arc<dyn Store> = Arc::new(crowdcore::testkit::fail_when(
        memory.clone(),
        move |_, _| {
            dead.load(Ordering::SeqCst)
                .then_some(crowdcore::store::FailMode::Before)
        },
    ));
    let front = start_on(&fake, crashable).await;
    assert_eq!(
        front.admin(reqwest::Method::POST, "/api/start").await.0,
        200
    );
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let hit = loop {
        if let Some(h) = fake.available("W1").into_iter().next() {
            break h;
        }
        assert!(tokio::time::Instant::now() < deadline, "no HIT");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let a = fake.accept("W1", &hit).expect("accept");
    let (status, body) = loop {
        let (status, body) = front
            .post(
                "/w/arrive",
                json!({"assignment_id": a, "hit_id": hit, "worker_id": "W1",
                       "turk_submit_to": fake.url()}),
            )
            .await;
        if body["code"] != "unknown_hit" || tokio::time::Instant::now() > deadline {
            break (status, body);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(status, 200, "{body}");
    let token = body["token"].as_str().unwrap().to_owned();

    // The server dies; a new one resumes the session from the store.
    crashed.store(true, Ordering::SeqCst);
    drop(front);
    let front = start_on(&fake, memory).await;

    let (status, body) = front
        .post(
            "/w/submit",
            json!({"assignment_id": a, "token": token, "contributions": 1}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["form"]["action"],
        format!("{}/mturk/externalSubmit", fake.url())
    );
    // Before the form is posted MTurk shows the assignment accepted: nothing is approved.
    assert_eq!(fake.assignment(&a).unwrap().status, Status::Accepted);
    assert_eq!(post_form(&front.client, &body["form"]).await, 200);
    // Once MTurk has the submission, the engine's approval goes through.
    let ledger = front
        .ledger_until(|l| {
            l.iter()
                .any(|e| e.worker.as_str() == "W1" && e.kind == "base" && e.paid)
        })
        .await;
    assert_eq!(fake.assignment(&a).unwrap().status, Status::Approved);
    let cents: i64 = ledger
        .iter()
        .filter(|e| e.worker.as_str() == "W1" && e.paid)
        .map(|e| e.amount.minor)
        .sum();
    assert_eq!(fake.earnings("W1"), cents);
}
