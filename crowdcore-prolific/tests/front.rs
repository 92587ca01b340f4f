//! The HTTP front on Prolific (the fake), end to end: participants land with `PROLIFIC_PID`,
//! `STUDY_ID` and `SESSION_ID`, are confirmed with Prolific before they take a seat, submit
//! and are sent to Prolific's completion redirect; a stop sends everyone still there (waiting
//! and active) to it too; each is approved and paid on Prolific exactly what the ledger says.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use crowdcore::clock::{Clock, SystemClock};
use crowdcore::engine::{EngineBuilder, EngineConfig, RetryPolicy};
use crowdcore::http::{HttpConfig, HttpState, Secret};
use crowdcore::pavilion::PavilionConfig;
use crowdcore::store::{LedgerEntry, MemoryStore, Store};
use crowdcore::{HitSpec, Money, SessionId};
use crowdcore_prolific::ProlificPlatform;
use serde_json::{Value, json};

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

    async fn admin(&self, path: &str) -> u16 {
        self.client
            .post(format!("{}{path}", self.base))
            .bearer_auth(ADMIN_KEY)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    async fn state(&self, assignment: &str, token: &str) -> Value {
        self.client
            .get(format!("{}/w/state", self.base))
            .query(&[("assignment_id", assignment)])
            .header(crowdcore::http::PAGE_TOKEN_HEADER, token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

async fn until<T>(what: &str, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Where the redirect form sends the browser: the completion code it carries.
fn completion_code(form: &Value) -> String {
    assert_eq!(form["method"], "get", "{form}");
    assert_eq!(
        form["action"],
        "https://app.prolific.com/submissions/complete"
    );
    assert_eq!(form["fields"][0][0], "cc");
    form["fields"][0][1].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_through_the_front_is_paid_on_prolific_what_the_ledger_says() {
    let w = world().await;
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let mut pc = w.config("front");
    pc.clock = clock.clone();
    let platform = Arc::new(ProlificPlatform::with_store(
        w.client.clone(),
        pc,
        store.clone(),
        SessionId::new("front"),
    ));
    let redirect = platform.completion_url();
    let pavilion = PavilionConfig {
        min_active: 2,
        max_active: 2,
        min_waiting: 1,
        max_waiting: 1,
        base_pay_cents: 50,
        waiting_cents_per_minute: 10,
        budget_cents: Some(100_000),
        ..PavilionConfig::default()
    };
    let mut config = EngineConfig::new(spec(), pavilion);
    config.observe_every_ms = 100;
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
    http.submit_origins = Vec::new();
    http.finish_redirect = Some(redirect.clone());
    http.rate_limits.per_address = crowdcore::http::RateLimit {
        per_minute: 1_000_000,
        burst: 100_000,
    };
    http.rate_limits.per_assignment = http.rate_limits.per_address;
    let state = HttpState::builder(engine.clone(), platform.clone(), http)
        .clock(clock)
        .store(store)
        .build()
        .expect("front: Prolific confirms arrivals");
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
    let front = Front {
        base: format!("http://{addr}"),
        client: reqwest::Client::new(),
        engine,
        server,
    };
    assert_eq!(front.admin("/api/start").await, 200);
    let study = until("the study is published", async || {
        let id = w.fake.study_ids().into_iter().next()?;
        (w.fake.study(&id)?["status"] == "ACTIVE").then_some(id)
    })
    .await;

    // Three participants take places and land; a made-up submission and someone else's are
    // refused before they reach a seat.
    let mut pages = Vec::new();
    for p in ["p1", "p2", "p3"] {
        let sub = w.fake.start_submission(&study, p).expect("a place");
        let (status, body) = front
            .post(
                "/w/arrive",
                json!({"assignment_id": sub, "hit_id": study, "worker_id": p}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        pages.push((p, sub, body["token"].as_str().unwrap().to_owned()));
    }
    let (status, body) = front
        .post(
            "/w/arrive",
            json!({"assignment_id": "5madeup", "hit_id": study, "worker_id": "p9"}),
        )
        .await;
    assert_ne!(status, 200, "{body}");
    let (status, body) = front
        .post(
            "/w/arrive",
            json!({"assignment_id": pages[0].1, "hit_id": study, "worker_id": "p9"}),
        )
        .await;
    assert_ne!(status, 200, "{body}");

    // p1 is active; it submits and is sent to Prolific's completion redirect, which it follows
    // (Prolific then shows the submission awaiting review).
    let (_, sub, token) = &pages[0];
    until("p1 is active", async || {
        (front.state(sub, token).await["status"] == "active").then_some(())
    })
    .await;
    let (status, left) = front
        .post(
            "/w/submit",
            json!({"assignment_id": sub, "token": token, "contributions": 0}),
        )
        .await;
    assert_eq!(status, 200, "{left}");
    let code = completion_code(&left["form"]);
    assert_eq!(
        format!("https://app.prolific.com/submissions/complete?cc={code}"),
        redirect
    );
    w.fake.complete(sub, &code).unwrap();

    // The job stops: the others (one active, one waiting) are released and sent there too.
    assert_eq!(front.admin("/api/stop").await, 200);
    for (p, sub, token) in &pages[1..] {
        let s = until("released", async || {
            let s = front.state(sub, token).await;
            (s["status"] == "released" && !s["form"].is_null()).then_some(s)
        })
        .await;
        let code = completion_code(&s["form"]);
        w.fake
            .complete(sub, &code)
            .unwrap_or_else(|e| panic!("{p}: {e}"));
    }

    // Each is approved and paid on Prolific exactly what the ledger says.
    let ledger: Vec<LedgerEntry> = until("everyone paid", async || {
        let l = front.engine.ledger().await.ok()?;
        let bases = l.iter().filter(|e| e.kind == "base" && e.paid).count();
        (bases == 3 && l.iter().all(|e| e.paid)).then_some(l)
    })
    .await;
    for (p, sub, _) in &pages {
        assert_eq!(
            w.fake.submission_status(sub).as_deref(),
            Some("APPROVED"),
            "{p}"
        );
        let owed: i64 = ledger
            .iter()
            .filter(|e| e.worker.as_str() == *p)
            .map(|e| e.amount.minor)
            .sum();
        let paid = 50 + w.fake.bonuses_paid(sub).iter().sum::<i64>();
        assert_eq!(paid, owed, "{p}");
    }
    assert_eq!(w.fake.repeated_pays(), 0);
    assert_eq!(w.fake.studies_created("crowdcore:front"), 1);
}
