//! A real crowdcore HTTP front on a loopback socket, over an engine on the local marketplace
//! and a memory store, with a reqwest client: what the HTTP test suites share.

#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;
use std::time::Duration;

use crowdcore::clock::{Clock, SystemClock};
use crowdcore::engine::{EngineBuilder, EngineConfig, EngineHandle};
use crowdcore::http::sse::SseReader;
use crowdcore::http::{HttpConfig, HttpState, Secret};
use crowdcore::local::LocalMarketplace;
use crowdcore::model::{AssignmentId, HitId, HitSpec, Money, WorkerId};
use crowdcore::pavilion::{PavilionConfig, Snapshot};
use crowdcore::store::{MemoryStore, Store};
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::sync::mpsc;

pub const ADMIN_KEY: &str = "test-admin-key-0123456789";
pub const PAGE_SECRET: &[u8] = b"test-page-secret-0123456789abcdef";
/// How long a test waits for something that should happen at once before it fails (a bound
/// so that a bug cannot hang the suite, not a performance assertion).
pub const PATIENCE: Duration = Duration::from_secs(20);

pub struct TestServer {
    pub base: String,
    pub state: HttpState,
    pub engine: EngineHandle,
    pub market: LocalMarketplace,
    pub client: reqwest::Client,
    pub secret: Secret,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.server.abort();
    }
}

pub fn spec() -> HitSpec {
    HitSpec {
        title: "Test task".into(),
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

/// The seed's shape: one active seat, one waiting seat; the task begins with both filled.
pub fn small() -> PavilionConfig {
    PavilionConfig {
        min_active: 1,
        max_active: 1,
        min_waiting: 1,
        max_waiting: 1,
        base_pay_cents: 50,
        waiting_cents_per_minute: 10,
        budget_cents: Some(100_000),
        ..PavilionConfig::default()
    }
}

pub struct Page {
    pub worker: String,
    pub assignment: String,
    pub hit: String,
    pub token: String,
    pub state: Value,
}

impl TestServer {
    pub async fn start(pavilion: PavilionConfig) -> Self {
        Self::start_with(pavilion, |_| {}).await
    }

    pub async fn start_with(pavilion: PavilionConfig, tune: impl FnOnce(&mut HttpConfig)) -> Self {
        Self::start_full(pavilion, tune, false).await
    }

    /// With the interim retainer routes too (a `Retainer` with the default configuration on
    /// the same marketplace).
    pub async fn start_retainer() -> Self {
        Self::start_full(small(), |_| {}, true).await
    }

    pub async fn start_full(
        pavilion: PavilionConfig,
        tune: impl FnOnce(&mut HttpConfig),
        retainer: bool,
    ) -> Self {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let market = LocalMarketplace::new(clock.clone(), Money::usd_cents(10_000_000));
        Self::launch(
            pavilion,
            tune,
            retainer,
            Arc::new(MemoryStore::new()),
            market,
        )
        .await
    }

    /// A new marketplace, for [`start_on`](Self::start_on).
    pub fn market() -> LocalMarketplace {
        LocalMarketplace::new(Arc::new(SystemClock), Money::usd_cents(10_000_000))
    }

    /// A front over an engine recovered from `store` on `market`: what a restarted server
    /// is (the same page secret, the same session).
    pub async fn start_on(
        pavilion: PavilionConfig,
        store: Arc<dyn Store>,
        market: LocalMarketplace,
    ) -> Self {
        Self::launch(pavilion, |_| {}, false, store, market).await
    }

    async fn launch(
        pavilion: PavilionConfig,
        tune: impl FnOnce(&mut HttpConfig),
        retainer: bool,
        store: Arc<dyn Store>,
        market: LocalMarketplace,
    ) -> Self {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let mut config = EngineConfig::new(spec(), pavilion);
        config.observe_every_ms = 60_000;
        // One session per store, so that a server restarted on it resumes it.
        let engine = EngineBuilder::new(Arc::new(market.clone()), store.clone(), config)
            .session(crowdcore::model::SessionId::new("http-test"))
            .clock(clock.clone())
            .start()
            .await
            .expect("engine starts")
            .spawn();
        let secret = Secret::new(PAGE_SECRET.to_vec()).unwrap();
        let mut http = HttpConfig::new(secret.clone(), Secret::new(ADMIN_KEY.as_bytes()).unwrap());
        http.heartbeat_every_ms = 1_000;
        // Every test page comes from loopback: far above the default per-address limit (the
        // limits have their own tests, in `http_guard.rs`).
        http.rate_limits.per_address = crowdcore::http::RateLimit {
            per_minute: 1_000_000,
            burst: 100_000,
        };
        http.rate_limits.per_assignment = http.rate_limits.per_address;
        tune(&mut http);
        let clock2 = clock.clone();
        let state = HttpState::builder(engine.clone(), Arc::new(market.clone()), http)
            .clock(clock)
            .assignment_duration_ms(spec().assignment_duration_ms)
            .worker_side(Arc::new(market.clone()))
            .store(store)
            .build()
            .expect("the local marketplace confirms arrivals");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let extra = if retainer {
            let config = crowdcore::engine::RetainerEngineConfig::new(
                crowdcore::retainer::RetainerConfig::default(),
            );
            let engine = EngineBuilder::new(
                Arc::new(market.clone()),
                Arc::new(MemoryStore::new()),
                config,
            )
            .clock(clock2)
            .session(crowdcore::model::SessionId::new("retainer"))
            .start()
            .await
            .expect("the retainer engine starts")
            .spawn();
            let front = crowdcore::http::retainer::RetainerFront::new(
                engine,
                Arc::new(market.clone()),
                state.config(),
            )
            .expect("the local marketplace confirms arrivals");
            crowdcore::http::retainer::retainer_routes(front)
        } else {
            axum::Router::new()
        };
        let app = crowdcore::http::router_with(state.clone(), extra);
        let server = tokio::spawn(async move {
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
            )
            .await
            .unwrap();
        });
        Self {
            base: format!("http://{addr}"),
            state,
            engine,
            market,
            client: reqwest::Client::new(),
            secret,
            server,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn read(r: reqwest::Response) -> (u16, Value) {
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, value)
    }

    /// An admin call with the key.
    pub async fn admin(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut r = self
            .client
            .request(m, self.url(path))
            .bearer_auth(ADMIN_KEY);
        if let Some(b) = body {
            r = r.json(&b);
        }
        Self::read(r.send().await.unwrap()).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        Self::read(
            self.client
                .post(self.url(path))
                .json(&body)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        Self::read(self.client.get(self.url(path)).send().await.unwrap()).await
    }

    pub async fn snapshot(&self) -> Snapshot {
        self.engine.snapshot().await.unwrap()
    }

    /// `worker` takes a slot of an open HIT on the marketplace (as on the platform's site).
    pub async fn take(&self, worker: &str) -> (AssignmentId, HitId) {
        let w = WorkerId::new(worker);
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            if let Some(listing) = self.market.first_available(&w) {
                let a = self.market.accept(&w, &listing.hit).expect("accept");
                return (a, listing.hit);
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no HIT open for {worker}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// `worker` takes a slot and lands on the page.
    pub async fn arrive(&self, worker: &str) -> Page {
        let (a, h) = self.take(worker).await;
        let (status, body) = self
            .post(
                "/w/arrive",
                json!({"assignment_id": a.as_str(), "hit_id": h.as_str(), "worker_id": worker}),
            )
            .await;
        assert_eq!(status, 200, "arrive: {body}");
        Page {
            worker: worker.to_owned(),
            assignment: a.to_string(),
            hit: h.to_string(),
            token: body["token"].as_str().unwrap().to_owned(),
            state: body["state"].clone(),
        }
    }

    pub fn page_body(p: &Page) -> Value {
        json!({"assignment_id": p.assignment, "token": p.token})
    }

    /// A ticket for the page's event stream (`POST /w/ticket`).
    pub async fn ticket(&self, p: &Page) -> String {
        let (status, body) = self.post("/w/ticket", Self::page_body(p)).await;
        assert_eq!(status, 200, "ticket: {body}");
        body["ticket"].as_str().unwrap().to_owned()
    }

    /// Opens the page's event stream, with a ticket as the page's script does.
    pub async fn stream(&self, p: &Page) -> Stream {
        let ticket = self.ticket(p).await;
        let r = self
            .client
            .get(self.url("/w/events"))
            .query(&[("assignment_id", &p.assignment), ("ticket", &ticket)])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        Stream::of(r)
    }

    /// Polls the page's state, with its token in the header.
    pub async fn poll(&self, p: &Page) -> (u16, Value) {
        Self::read(
            self.client
                .get(self.url("/w/state"))
                .query(&[("assignment_id", &p.assignment)])
                .header(crowdcore::http::PAGE_TOKEN_HEADER, &p.token)
                .send()
                .await
                .unwrap(),
        )
        .await
    }
}

/// A page's event stream: its states in order, and every byte it received.
pub struct Stream {
    rx: mpsc::UnboundedReceiver<Value>,
    pub raw: Arc<std::sync::Mutex<String>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Stream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Stream {
    pub fn of(r: reqwest::Response) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let raw = Arc::new(std::sync::Mutex::new(String::new()));
        let raw2 = raw.clone();
        let task = tokio::spawn(async move {
            let mut body = r.bytes_stream();
            let mut sse = SseReader::new();
            while let Some(Ok(chunk)) = body.next().await {
                raw2.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&chunk));
                for e in sse.feed(&chunk) {
                    if let Ok(v) = serde_json::from_str::<Value>(&e.data) {
                        let _ = tx.send(v);
                    }
                }
            }
        });
        Self { rx, raw, task }
    }

    /// Waits for a state with this status (skipping others).
    pub async fn until(&mut self, status: &str) -> Value {
        tokio::time::timeout(PATIENCE, async {
            loop {
                let v = self.rx.recv().await.expect("the stream ended");
                if v["status"] == status {
                    return v;
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("no {status} state arrived"))
    }
}
