//! # pipeline — the seed's Toloka verification flow on a simulated crowd
//!
//! Three stages (pools) in a row, run by `crowdcore::pipeline` against the in-memory fake
//! platform (simulated workers, listings that lag behind writes, optional faults) with the
//! durable SQLite store:
//!
//! 1. **submit** — workers photograph a place (one task per place, overlap 1);
//! 2. **validate** — each photo becomes a task (overlap 3) in a group named after the
//!    submission; a skill-weighted majority vote decides each photo, and when the whole group
//!    is decided the submission is accepted (and forwarded) or rejected;
//! 3. **quality** — three workers judge an accepted submission's photos; if most say they are
//!    good, its author gets a bonus.
//!
//! ```text
//! cargo run --release -p crowdcore-examples --example pipeline -- --places 40 --out out/pipeline
//! ```
//!
//! Time is virtual: a tick every `--period-s` of simulated time, as fast as the machine goes.
//! Progress goes to stderr; at the end the report of decisions per stage goes to stdout, and
//! `decisions.tsv`, `answers.tsv` and the store `pipeline.db` to `--out`
//! (`sqlite3 out/pipeline/pipeline.db 'select * from pipeline_decisions limit 5'`).
//! The fake platform lives in memory, so every run starts a fresh store (an existing
//! `pipeline.db` is refused unless `--fresh`); against a real platform a second run with the
//! same store resumes where the first stopped. Ctrl-C stops after the tick in progress and
//! still writes the logs and the report.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use clap::Parser;
use crowdcore::clock::{Clock, VirtualClock};
use crowdcore::model::{SessionId, Timestamp};
use crowdcore::pipeline::{
    FakeConfig, FakePipeline, NewTask, ObserverConfig, PipelineBuilder, PipelineConfig,
    PipelinePlatform, PoolId,
};
use crowdcore::store::Store;
use crowdcore_sqlite::{SqliteOptions, SqliteStore};

#[path = "shared/photo_flow.rs"]
mod photo_flow;
use photo_flow::Pools;

/// Run a three-stage verification pipeline (submit → validate → quality) on a simulated crowd.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Places to photograph (tasks in the first pool).
    #[arg(long, default_value_t = 20)]
    places: usize,
    /// Simulated workers.
    #[arg(long, default_value_t = 30)]
    workers: usize,
    /// How often a worker's answer is right.
    #[arg(long, default_value_t = 0.85)]
    accuracy: f64,
    /// Seed of the simulated crowd.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Seconds (simulated) between polls.
    #[arg(long, default_value_t = 60)]
    period_s: u64,
    /// The observers' time lag, in seconds.
    #[arg(long, default_value_t = 60)]
    lag_s: u64,
    /// A write shows in the fake's listings up to this many seconds late.
    #[arg(long, default_value_t = 30)]
    listing_delay_s: u64,
    /// The fraction of platform calls that fail (throttled, 5xx, or timed out after running).
    #[arg(long, default_value_t = 0.0)]
    fault_rate: f64,
    /// Overlap of the validate and quality tasks.
    #[arg(long, default_value_t = 3)]
    overlap: u32,
    /// Bonus for high-quality photos, in cents.
    #[arg(long, default_value_t = 25)]
    bonus_cents: i64,
    /// Folder for pipeline.db, decisions.tsv and answers.tsv.
    #[arg(long, default_value = "out/pipeline")]
    out: PathBuf,
    /// Replace an existing pipeline.db.
    #[arg(long)]
    fresh: bool,
}

fn pool(stage: &str) -> PoolId {
    PoolId::new(format!("pool-{stage}"))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    match run(Args::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    if !(0.0..=1.0).contains(&args.accuracy) || !(0.0..=1.0).contains(&args.fault_rate) {
        return Err("--accuracy and --fault-rate must be between 0 and 1".into());
    }
    if args.places == 0 || args.overlap == 0 || args.period_s == 0 {
        return Err("--places, --overlap and --period-s must be positive".into());
    }
    if args.workers < args.overlap as usize {
        return Err("--workers must be at least --overlap".into());
    }
    std::fs::create_dir_all(&args.out)?;
    let db = args.out.join("pipeline.db");
    if db.exists() {
        if !args.fresh {
            return Err(format!(
                "{} exists: the simulated platform starts empty, so pass --fresh to replace it",
                db.display()
            )
            .into());
        }
        for suffix in ["", "-wal", "-shm"] {
            let file = PathBuf::from(format!("{}{suffix}", db.display()));
            if file.exists() {
                std::fs::remove_file(file)?;
            }
        }
    }
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&db, SqliteOptions::default())?);

    // The simulated platform: three pools, the first with one task per place, open.
    let clock = VirtualClock::new(Timestamp::from_millis(1_700_000_000_000));
    let mut config = FakeConfig::new(args.seed, args.workers, args.accuracy);
    config.listing_delay_ms = args.listing_delay_s * 1_000;
    config.fault_rate = args.fault_rate;
    config.take_probability = 0.05;
    let fake = FakePipeline::new(Arc::new(clock.clone()), config);
    for stage in ["submit", "validate", "quality"] {
        fake.add_pool(&pool(stage), true);
    }
    let tasks: Vec<NewTask> = (0..args.places)
        .map(|i| NewTask {
            input_values: serde_json::json!({ "place": format!("place-{i:03}") })
                .as_object()
                .cloned()
                .unwrap_or_default(),
            overlap: 1,
            group: None,
        })
        .collect();
    fake.add_tasks(&pool("submit"), &tasks)?;
    fake.set_fault_rate(0.0);
    fake.open_pool(&pool("submit")).await?;
    fake.set_fault_rate(args.fault_rate);
    let platform: Arc<dyn PipelinePlatform> = Arc::new(fake.clone());

    let observer = ObserverConfig {
        lag_ms: args.lag_s * 1_000,
        ..ObserverConfig::default()
    };
    let period_ms = args.period_s * 1_000;
    let pools = Pools {
        submit: pool("submit"),
        validate: pool("validate"),
        quality: pool("quality"),
    };
    let mut builder = PipelineBuilder::new(platform, store, SessionId::new("pipeline"))
        .clock(Arc::new(clock.clone()))
        .config(PipelineConfig {
            period_ms,
            lease_ttl_ms: period_ms * 5,
            ..PipelineConfig::default()
        });
    for stage in photo_flow::stages(pools, args.overlap, args.bonus_cents, &observer) {
        builder = builder.stage(stage);
    }
    let mut pipeline = builder.start().await?;

    let stop = photo_flow::ctrl_c_flag();
    let started = clock.now();
    let mut ticks = 0u64;
    let finished = loop {
        let tick = pipeline.tick().await?;
        ticks += 1;
        if tick.observed > 0 || tick.finished || ticks.is_multiple_of(60) {
            let counts = fake.counts();
            eprintln!(
                "[{:>6.1} min] observed {:>3}  carried out {:>3}  pending {:>2}  tasks {:>4}  accepted {:>4}  rejected {:>3}  bonuses {:>3}  faults {}",
                clock.now().millis_since(started) as f64 / 60_000.0,
                tick.observed,
                tick.carried_out,
                tick.pending,
                counts.tasks_created,
                counts.accepts,
                counts.rejects,
                counts.bonuses,
                counts.faults.total(),
            );
        }
        if tick.finished {
            break true;
        }
        if stop.load(Ordering::SeqCst) {
            break false;
        }
        // Let the Ctrl-C task run between ticks.
        tokio::task::yield_now().await;
        clock.advance(period_ms);
    };

    let report = pipeline.report().await?;
    let (decisions, answers) = photo_flow::write_logs(&pipeline, &args.out).await?;
    pipeline.release().await?;
    let counts = fake.counts();
    println!(
        "{} after {ticks} ticks ({:.1} simulated hours)",
        if finished {
            "all pools closed and drained"
        } else {
            "stopped by Ctrl-C"
        },
        clock.now().millis_since(started) as f64 / 3_600_000.0
    );
    print!("{report}");
    println!(
        "platform: {} tasks created, {} accepted, {} rejected, {} bonuses, {} calls re-sent with their key, {} faults; duplicates: {} tasks, {} reviews, {} bonuses",
        counts.tasks_created,
        counts.accepts,
        counts.rejects,
        counts.bonuses,
        counts.replayed_keys,
        counts.faults.total(),
        counts.duplicate_tasks,
        counts.duplicate_reviews,
        counts.duplicate_bonuses,
    );
    println!(
        "logs: {} and {}; store: {}",
        decisions.display(),
        answers.display(),
        db.display()
    );
    Ok(())
}
