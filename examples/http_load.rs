//! # http_load — many worker pages on the HTTP front, on loopback
//!
//! Starts the HTTP front over an engine (local marketplace; memory store, or SQLite with
//! `--store sqlite`) on a loopback port, then brings `--pages` simulated worker pages through
//! the real endpoints: each takes a slot, arrives, keeps an SSE stream open and sends a
//! heartbeat every `--heartbeat-ms`. Once all are in, for `--seconds` it makes one active
//! worker submit every `--depart-every-ms` and measures:
//!
//! - heartbeat latency (request sent → answer read), over every heartbeat of the measured
//!   period;
//! - departure → promoted: from sending the departing worker's submit to the promoted worker's
//!   page reading its `active` state on its event stream.
//!
//! ```text
//! cargo run --release -p crowdcore-examples --example http_load -- --pages 1000 --seconds 30
//! # the same while every platform call takes 2 s:
//! cargo run --release -p crowdcore-examples --example http_load -- --pages 1000 --seconds 30 --platform-delay-ms 2000
//! ```
//!
//! The clients run in the same process as the server (one 2-core machine), so the numbers
//! include the clients' own work. Prints a table to stdout; not a test, no pass/fail.

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use crowdcore::clock::{Clock, SystemClock};
use crowdcore::engine::{EngineBuilder, EngineConfig};
use crowdcore::faults::{CallClass, FaultyPlatform, Latency};
use crowdcore::http::sse::SseReader;
use crowdcore::http::{HttpConfig, HttpState, RateLimit, Secret};
use crowdcore::local::LocalMarketplace;
use crowdcore::model::{HitSpec, Money, WorkerId};
use crowdcore::pavilion::{Input, PavilionConfig};
use crowdcore::store::{MemoryStore, Store};
use crowdcore_sqlite::{SqliteOptions, SqliteStore};
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::sync::{Mutex, mpsc};

/// Load the HTTP front with many worker pages on loopback.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Worker pages.
    #[arg(long, default_value_t = 1_000)]
    pages: u32,
    /// Measured period, in seconds (after every page is in).
    #[arg(long, default_value_t = 30)]
    seconds: u64,
    /// Each page's heartbeat period, in milliseconds.
    #[arg(long, default_value_t = 1_000)]
    heartbeat_ms: u64,
    /// One active worker submits this often, in milliseconds.
    #[arg(long, default_value_t = 250)]
    depart_every_ms: u64,
    /// Active seats (the rest of the pages wait).
    #[arg(long, default_value_t = 100)]
    active: u32,
    /// The front sends a page's heartbeat to the engine at most once per this many
    /// milliseconds (`HttpConfig::heartbeat_forward_gap_ms`; 0: every one).
    #[arg(long, default_value_t = 0)]
    forward_gap_ms: u64,
    /// Where the engine logs.
    #[arg(long, value_enum, default_value_t = StoreKind::Memory)]
    store: StoreKind,
    /// Every platform call that changes something (post, pay, expire, …) answers after this
    /// many milliseconds (the fault injector's latency; reads stay fast): the front must not
    /// notice.
    #[arg(long, default_value_t = 0)]
    platform_delay_ms: u64,
    /// This fraction of platform calls fails (throttled, 5xx, or done with its answer lost;
    /// the fault injector, seeded), retried by the engine.
    #[arg(long, default_value_t = 0.0)]
    fault_rate: f64,
    /// Worker threads of the runtime.
    #[arg(long, default_value_t = 2)]
    threads: usize,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum StoreKind {
    /// The memory store.
    Memory,
    /// SQLite in a temporary file, `synchronous=FULL`, group commit (the durable default).
    Sqlite,
}

fn main() {
    let args = Args::parse();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads)
        .enable_all()
        .build()
        .expect("a runtime")
        .block_on(run(args));
}

struct PageHandle {
    body: Value,
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

async fn run(args: Args) {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let market = LocalMarketplace::new(clock.clone(), Money::usd_cents(100_000_000));
    let dir = std::env::temp_dir().join(format!("crowdcore-http-load-{}", std::process::id()));
    let store: Arc<dyn Store> = match args.store {
        StoreKind::Memory => Arc::new(MemoryStore::new()),
        StoreKind::Sqlite => {
            std::fs::create_dir_all(&dir).unwrap();
            Arc::new(SqliteStore::open(dir.join("load.db"), SqliteOptions::default()).unwrap())
        }
    };
    let pavilion = PavilionConfig {
        min_active: 1,
        max_active: args.active,
        min_waiting: 0,
        max_waiting: args.pages,
        heartbeat_timeout_ms: 30_000,
        // The HIT's reward.
        base_pay_cents: 1,
        ..PavilionConfig::default()
    };
    let mut spec = HitSpec::new("load", Money::usd_cents(1), "http://127.0.0.1/work");
    spec.max_assignments = 100_000;
    let mut config = EngineConfig::new(spec, pavilion);
    config.observe_every_ms = 5_000;
    config.snapshot_every = 0;
    let platform = FaultyPlatform::new(Arc::new(market.clone()), 0, args.fault_rate);
    if args.platform_delay_ms > 0 {
        platform.set_latency(
            CallClass::Effect,
            Latency::After(Duration::from_millis(args.platform_delay_ms)),
        );
    }
    let engine = EngineBuilder::new(Arc::new(platform), store, config)
        .clock(clock.clone())
        .start()
        .await
        .unwrap()
        .spawn();
    let mut http = HttpConfig::new(
        Secret::new(b"load-test-page-secret-0123456789".to_vec()).unwrap(),
        Secret::new(b"load-test-admin-key-0123456789".to_vec()).unwrap(),
    );
    http.heartbeat_every_ms = args.heartbeat_ms;
    http.heartbeat_forward_gap_ms = args.forward_gap_ms;
    // Every page comes from loopback: one address, far above the default per-address limit.
    http.rate_limits.per_address = RateLimit {
        per_minute: 10_000_000,
        burst: 1_000_000,
    };
    let state = HttpState::builder(engine.clone(), Arc::new(market.clone()), http)
        .clock(clock)
        .worker_side(Arc::new(market.clone()))
        .build()
        .expect("the local marketplace confirms arrivals");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        axum::serve(listener, crowdcore::http::router(state))
            .await
            .unwrap()
    });
    engine.input(Input::Start).await.unwrap();

    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(4_096)
        .build()
        .unwrap();
    let (promoted_tx, mut promoted_rx) = mpsc::unbounded_channel::<Instant>();
    let heartbeats: Arc<Mutex<Vec<Duration>>> = Arc::new(Mutex::new(Vec::new()));
    let measuring = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let heartbeat_errors = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let active: Arc<Mutex<Vec<PageHandle>>> = Arc::new(Mutex::new(Vec::new()));

    eprintln!("bringing {} pages in…", args.pages);
    let t_arrive = Instant::now();
    let mut arrivals = Vec::new();
    for n in 0..args.pages {
        let worker = WorkerId::new(format!("w{n:05}"));
        let listing = loop {
            if let Some(l) = market.first_available(&worker) {
                break l;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        let assignment = market.accept(&worker, &listing.hit).unwrap();
        let arrived: Value = client
            .post(format!("{base}/w/arrive"))
            .json(&json!({"assignment_id": assignment.as_str(), "hit_id": listing.hit.as_str(), "worker_id": worker.as_str()}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let token = arrived["token"].as_str().expect("a token").to_owned();
        let body = json!({"assignment_id": assignment.as_str(), "token": token});
        if arrived["state"]["status"] == "active" {
            active.lock().await.push(PageHandle { body: body.clone() });
        }
        // The page's event stream, opened with a ticket.
        let ticket: Value = client
            .post(format!("{base}/w/ticket"))
            .json(&body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let ticket = ticket["ticket"].as_str().expect("a ticket").to_owned();
        let events = client
            .get(format!("{base}/w/events"))
            .query(&[("assignment_id", assignment.as_str()), ("ticket", &ticket)])
            .send()
            .await
            .unwrap();
        let promoted_tx = promoted_tx.clone();
        let active2 = active.clone();
        let body2 = body.clone();
        let was_active = arrived["state"]["status"] == "active";
        tokio::spawn(async move {
            let mut stream = events.bytes_stream();
            let mut sse = SseReader::new();
            let mut seen_active = was_active;
            while let Some(Ok(chunk)) = stream.next().await {
                for e in sse.feed(&chunk) {
                    if !seen_active && e.data.contains("\"status\":\"active\"") {
                        seen_active = true;
                        let _ = promoted_tx.send(Instant::now());
                        active2.lock().await.push(PageHandle {
                            body: body2.clone(),
                        });
                    }
                }
            }
        });
        // The page's heartbeat, from a random phase.
        let client2 = client.clone();
        let base2 = base.clone();
        let heartbeats2 = heartbeats.clone();
        let measuring2 = measuring.clone();
        let errors2 = heartbeat_errors.clone();
        let every = Duration::from_millis(args.heartbeat_ms);
        let phase = Duration::from_millis((u64::from(n) * 7919) % args.heartbeat_ms.max(1));
        arrivals.push(tokio::spawn(async move {
            tokio::time::sleep(phase).await;
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let t = Instant::now();
                let r = client2
                    .post(format!("{base2}/w/heartbeat"))
                    .json(&body)
                    .send()
                    .await;
                let ok = match r {
                    Ok(r) => {
                        let code = r.status();
                        let _ = r.bytes().await;
                        code.is_success() || code.as_u16() == 409
                    }
                    Err(_) => false,
                };
                let took = t.elapsed();
                if measuring2.load(std::sync::atomic::Ordering::Relaxed) {
                    if ok {
                        heartbeats2.lock().await.push(took);
                    } else {
                        errors2.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    eprintln!(
        "{} pages in after {:.1} s; measuring for {} s…",
        args.pages,
        t_arrive.elapsed().as_secs_f64(),
        args.seconds
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    while promoted_rx.try_recv().is_ok() {}
    measuring.store(true, std::sync::atomic::Ordering::Relaxed);

    let mut promotions = Vec::new();
    let mut missed = 0u32;
    let end = Instant::now() + Duration::from_secs(args.seconds);
    let mut tick = tokio::time::interval(Duration::from_millis(args.depart_every_ms));
    while Instant::now() < end {
        tick.tick().await;
        let Some(leaving) = ({
            let mut a = active.lock().await;
            if a.is_empty() {
                None
            } else {
                Some(a.remove(0))
            }
        }) else {
            continue;
        };
        let t0 = Instant::now();
        let r = client
            .post(format!("{base}/w/submit"))
            .json(&leaving.body)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "submit: {}", r.status());
        let _ = r.bytes().await;
        match tokio::time::timeout(Duration::from_secs(5), promoted_rx.recv()).await {
            Ok(Some(at)) => promotions.push(at.duration_since(t0)),
            _ => missed += 1,
        }
    }
    measuring.store(false, std::sync::atomic::Ordering::Relaxed);
    let mut hb = heartbeats.lock().await.clone();
    hb.sort();
    promotions.sort();
    let snap = engine.snapshot().await.unwrap();
    println!(
        "pages {} · heartbeat every {} ms · forward gap {} ms · store {:?} · platform calls after {} ms · {} runtime threads · {} s measured",
        args.pages,
        args.heartbeat_ms,
        args.forward_gap_ms,
        args.store,
        args.platform_delay_ms,
        args.threads,
        args.seconds
    );
    println!("| measure | n | p50 ms | p99 ms | max ms |");
    println!("| --- | --- | --- | --- | --- |");
    println!(
        "| heartbeat round trip | {} | {} | {} | {} |",
        hb.len(),
        ms(pct(&hb, 0.5)),
        ms(pct(&hb, 0.99)),
        ms(hb.last().copied().unwrap_or_default())
    );
    println!(
        "| departure → promoted page event | {} | {} | {} | {} |",
        promotions.len(),
        ms(pct(&promotions, 0.5)),
        ms(pct(&promotions, 0.99)),
        ms(promotions.last().copied().unwrap_or_default())
    );
    println!(
        "heartbeats/s {:.0} · heartbeat errors {} · promotions missed {} · present at end: {} active, {} waiting",
        hb.len() as f64 / args.seconds as f64,
        heartbeat_errors.load(std::sync::atomic::Ordering::Relaxed),
        missed,
        snap.active.len(),
        snap.waiting.len()
    );
    // The admin stops the job with every page still in (waiting and active released, each
    // paid through a platform call that may be slow or faulty): the request waits for the
    // input to be logged, never for those calls.
    let t_stop = Instant::now();
    let stopped = client
        .post(format!("{base}/api/stop"))
        .bearer_auth("load-test-admin-key-0123456789")
        .send()
        .await
        .unwrap();
    let stop_took = t_stop.elapsed();
    assert!(stopped.status().is_success(), "stop: {}", stopped.status());
    println!(
        "POST /api/stop with {} pages present: {} ms (fault rate {})",
        snap.active.len() + snap.waiting.len(),
        ms(stop_took),
        args.fault_rate
    );
    for a in arrivals {
        a.abort();
    }
    let _ = std::fs::remove_dir_all(&dir);
}
