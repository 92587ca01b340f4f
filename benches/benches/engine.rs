//! Engine and simulation throughput.
//!
//! - `engine/inputs`: inputs per second through the whole record-then-act path — append to a
//!   `MemoryStore`, the machine, the outbox, the local marketplace, the ledger — on a realistic
//!   mix (mostly heartbeats; arrivals and submissions that promote, pay and hire).
//! - `simulation/8h_10k_workers`: wall time of an 8-hour simulated study through which about
//!   10 000 workers pass (150 seats, 21 workers a minute), and simulated engine inputs per second;
//!   `simulation/8h_10k_workers_sqlite`: the same study on the main job's default store (a fresh
//!   SQLite file, `synchronous=NORMAL`, through `sim::run_durable`).
//!
//! Run: `cargo bench -p crowdcore-benches --bench engine`. Numbers: benches/README.md.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use crowdcore::clock::VirtualClock;
use crowdcore::engine::{Engine, EngineBuilder, EngineConfig};
use crowdcore::local::LocalMarketplace;
use crowdcore::model::{AssignmentId, HitSpec, Money, SessionId, Timestamp, WorkerId};
use crowdcore::pavilion::{PavilionConfig, StartCondition};
use crowdcore::sim::{self, CrowdModel, SimConfig};
use crowdcore::store::MemoryStore;
use crowdcore_sqlite::{SqliteOptions, SqliteStore, Synchronous};
use tokio::runtime::Runtime;

const SEATS_ACTIVE: u32 = 100;
const SEATS_WAITING: u32 = 50;
/// Inputs per measured batch.
const INPUTS: u64 = 10_000;

fn spec(max_assignments: u32) -> HitSpec {
    HitSpec {
        title: "Benchmark task".into(),
        description: "Stand by, then work.".into(),
        keywords: Vec::new(),
        reward: Money::usd_cents(25),
        assignment_duration_ms: 86_400_000,
        lifetime_ms: 86_400_000,
        max_assignments,
        auto_approval_delay_ms: 86_400_000,
        qualifications: Vec::new(),
        landing_url: "https://localhost/land".into(),
        frame_height: 600,
    }
}

fn pavilion() -> PavilionConfig {
    PavilionConfig {
        min_active: 10,
        max_active: SEATS_ACTIVE,
        min_waiting: 0,
        max_waiting: SEATS_WAITING,
        start: StartCondition::Present(1),
        heartbeat_timeout_ms: 600_000,
        base_pay_cents: 25,
        waiting_cents_per_minute: 5,
        active_cents_per_minute: 10,
        ..PavilionConfig::default()
    }
}

/// A running engine with every seat filled, and the workers present.
struct Bench {
    engine: Engine,
    market: LocalMarketplace,
    clock: VirtualClock,
    present: Vec<AssignmentId>,
    next_worker: u64,
}

impl Bench {
    async fn new() -> Self {
        let clock = VirtualClock::new(Timestamp::ZERO);
        let market = LocalMarketplace::new(Arc::new(clock.clone()), Money::usd_cents(i64::MAX / 4));
        let mut config = EngineConfig::new(spec(1_000), pavilion());
        config.snapshot_every = 0;
        config.observe_every_ms = 3_600_000;
        let mut engine = EngineBuilder::new(
            Arc::new(market.clone()),
            Arc::new(MemoryStore::new()),
            config,
        )
        .clock(Arc::new(clock.clone()))
        .session(SessionId::new("bench"))
        .start()
        .await
        .expect("engine starts");
        engine.start().await.expect("session starts");
        let mut bench = Bench {
            engine,
            market,
            clock,
            present: Vec::new(),
            next_worker: 0,
        };
        for _ in 0..SEATS_ACTIVE + SEATS_WAITING {
            bench.arrive().await;
        }
        bench
    }

    async fn arrive(&mut self) {
        let worker = WorkerId::new(format!("W{}", self.next_worker));
        self.next_worker += 1;
        let Some(listing) = self.market.first_available(&worker) else {
            return;
        };
        let assignment = self
            .market
            .accept(&worker, &listing.hit)
            .expect("open slot");
        self.engine
            .arrive(worker, assignment.clone(), listing.hit)
            .await
            .expect("arrival seated");
        self.present.push(assignment);
    }

    /// One input of the mix: 18 heartbeats, then a submission and the arrival it hires for.
    async fn step(&mut self, i: u64) {
        self.clock.advance(10);
        match i % 20 {
            18 => {
                let a = self.present.remove((i as usize / 20) % self.present.len());
                let _ = self.market.submit(&a, None);
                self.engine.submit(a, 1).await.expect("submit");
            }
            19 => self.arrive().await,
            k => {
                let a = self.present[(i as usize + k as usize * 7) % self.present.len()].clone();
                self.engine.heartbeat(a).await.expect("heartbeat");
            }
        }
    }
}

fn engine_inputs(c: &mut Criterion) {
    let runtime = Runtime::new().expect("tokio runtime");
    let mut group = c.benchmark_group("engine");
    group.throughput(Throughput::Elements(INPUTS));
    group.sample_size(20);
    group.bench_function("inputs", |b| {
        b.iter_batched(
            || runtime.block_on(Bench::new()),
            |mut bench| {
                runtime.block_on(async {
                    for i in 0..INPUTS {
                        bench.step(i).await;
                    }
                });
                black_box(bench)
            },
            BatchSize::PerIteration,
        );
    });
    group.finish();
}

/// The 8-hour, ~10 000-worker study of the simulation-speed goal.
fn big_study(seed: u64) -> SimConfig {
    let pavilion = PavilionConfig {
        min_active: 50,
        max_active: SEATS_ACTIVE,
        min_waiting: 10,
        max_waiting: SEATS_WAITING,
        heartbeat_timeout_ms: 60_000,
        base_pay_cents: 25,
        waiting_cents_per_minute: 5,
        active_cents_per_minute: 10,
        ..PavilionConfig::default()
    };
    let duration_ms = 8 * 3_600_000;
    let mut engine = EngineConfig::new(spec(1_500), pavilion);
    engine.spec.assignment_duration_ms = 2 * 3_600_000;
    engine.observe_every_ms = 60_000;
    engine.snapshot_every = 0;
    SimConfig {
        seed,
        duration_ms,
        crowd: CrowdModel {
            arrivals_per_minute: 21.0,
            ..CrowdModel::default()
        },
        engine,
        funds: Money::usd_cents(i64::MAX / 4),
        session: SessionId::new("bench-sim"),
    }
}

fn simulation(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("tokio runtime");
    let report = runtime
        .block_on(sim::run(big_study(7)))
        .expect("the study runs");
    eprintln!(
        "simulation/8h_10k_workers: {} workers arrived, {} landed, {} engine inputs",
        report.workers_arrived, report.workers_landed, report.engine_inputs
    );
    let mut group = c.benchmark_group("simulation");
    group.sample_size(10);
    group.throughput(Throughput::Elements(report.engine_inputs));
    group.bench_function("8h_10k_workers", |b| {
        b.iter(|| {
            runtime
                .block_on(sim::run(big_study(7)))
                .expect("the study runs")
        });
    });
    // The same study on the main job's default store: a fresh SQLite file (WAL,
    // synchronous=NORMAL, as `simulate` opens it) for each run, opening it included.
    let dir = tempfile::tempdir().expect("temp dir");
    let mut run = 0_u64;
    group.bench_function("8h_10k_workers_sqlite", |b| {
        b.iter(|| {
            run += 1;
            let options = SqliteOptions {
                synchronous: Synchronous::Normal,
                ..SqliteOptions::default()
            };
            let path = dir.path().join(format!("study-{run}.db"));
            let store = Arc::new(SqliteStore::open(&path, options).expect("sqlite store"));
            let done = runtime
                .block_on(sim::run_durable(big_study(7), store, |_| {}))
                .expect("the study runs");
            assert!(!done.already_finished && done.resumed_at.is_none());
            done
        });
    });
    group.finish();
}

criterion_group!(benches, engine_inputs, simulation);
criterion_main!(benches);
