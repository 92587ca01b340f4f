//! # toloka_pipeline — the seed's verification flow on Toloka, exactly once
//!
//! The three stages of the `pipeline` example (submit → validate → quality, see
//! `shared/photo_flow.rs`) run by `crowdcore::pipeline` on three Toloka pools through
//! `crowdcore_toloka::TolokaPipeline`, with the durable SQLite store:
//!
//! ```text
//! export TOLOKA_API_KEY=…            # or TOLOKA_OAUTH_TOKEN; never printed
//! cargo run --release -p crowdcore-examples --example toloka_pipeline -- \
//!     --base-url https://sandbox.toloka.dev/api/v1 \
//!     --submit-pool 111 --validate-pool 222 --quality-pool 333 --db out/toloka/pipeline.db
//! ```
//!
//! The submit pool holds the places to photograph (uploaded and opened by the requester); its
//! project's answers carry `photos` (a list; each photo becomes a validate task). The
//! validate and quality pools start empty, and their projects declare the input fields the
//! handlers write into their tasks — which differ by stage:
//!
//! | stage | input fields of its tasks (every task carries each) | output field read |
//! | --- | --- | --- |
//! | submit | yours (uploaded by you) | `photos` |
//! | validate | `item` (one photo), `group`, `group_size` (integer), `origin_assignment`, `origin_stage`, `origin_worker` | `verdict` (`yes` = the photo shows the place) |
//! | quality | `items` (the submission's photos, a list), `group`, `group_size` (integer), `origin_assignment`, `origin_stage`, `origin_worker` | `quality` (`good` = a bonus) |
//!
//! Any other input field the project declares must be optional (`"required": false`): a
//! required `items` on the validate project, or `item` on the quality project, makes every
//! task fail validation. This is checked before anything is created (the pools exist, are
//! not archived, and their projects fit); a misfit is an error naming the stage and the
//! field.
//!
//! Every `--period-s` the pools are read with a cursor `--lag-s` behind now; decisions are committed to the store before they reach Toloka, and
//! sent with operation ids derived from their keys. Kill it at any point and run the same
//! command again: it resumes from `--db` and does nothing twice (a killed run's lease expires
//! after `--lease-s`, then the next run takes over). It stops when every pool is closed and
//! drained (`--forever`: only on Ctrl-C, which stops after the tick in progress). Progress goes
//! to stderr; the decisions per stage to stdout; `decisions.tsv` and `answers.tsv` next to the
//! store.
//!
//! Exit status: 0 when every decision was carried out (the pools closed and drained, or a
//! Ctrl-C stop with nothing left pending); 1 when a decision failed for good (a review, bonus
//! or task creation Toloka refused: each is listed on stderr, and a rerun does not retry it)
//! or on an error; 2 when decisions are still pending (stopped by Ctrl-C, listed on stderr:
//! run again to resume).
//!
//! `--base-url` defaults to production, so a run without a token is refused; tests point it at
//! the local fake Toloka (`crowdcore_toloka::fake`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use clap::Parser;
use crowdcore::clock::{Clock, SystemClock};
use crowdcore::model::SessionId;
use crowdcore::pipeline::{
    Decision, DecisionEntry, ObserverConfig, PipelineBuilder, PipelineConfig, PipelineError,
    PipelinePlatform, PoolId, StopCondition,
};
use crowdcore::store::{OutboxState, Store};
use crowdcore_sqlite::{SqliteOptions, SqliteStore};
use crowdcore_toloka::{
    ClientConfig, Credentials, PRODUCTION_URL, StageSpec, TolokaClient, TolokaPipeline,
    fanout_inputs, forward_inputs,
};
use indicatif::{ProgressBar, ProgressStyle};

#[path = "shared/photo_flow.rs"]
mod photo_flow;
use photo_flow::Pools;

/// Run the three-stage verification pipeline (submit → validate → quality) on Toloka pools.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// The API root: production, `https://sandbox.toloka.dev/api/v1`, or a local fake.
    #[arg(long, default_value = PRODUCTION_URL)]
    base_url: String,
    /// The pool whose workers submit photos of places.
    #[arg(long)]
    submit_pool: String,
    /// The pool where each photo is validated.
    #[arg(long)]
    validate_pool: String,
    /// The pool where accepted submissions are judged for quality.
    #[arg(long)]
    quality_pool: String,
    /// The SQLite store; running again with the same file resumes.
    #[arg(long, default_value = "out/toloka_pipeline/pipeline.db")]
    db: PathBuf,
    /// The pipeline's name in the store.
    #[arg(long, default_value = "toloka_pipeline")]
    session: String,
    /// Overlap of the validate and quality tasks.
    #[arg(long, default_value_t = 3)]
    overlap: u32,
    /// Bonus for high-quality photos, in US cents.
    #[arg(long, default_value_t = 25)]
    bonus_cents: i64,
    /// Seconds between polls.
    #[arg(long, default_value_t = 60.0)]
    period_s: f64,
    /// The observers' time lag behind now, in seconds (Toloka's listings are eventually
    /// consistent).
    #[arg(long, default_value_t = 60.0)]
    lag_s: f64,
    /// How long the store's lease outlives a run that stopped renewing it (killed), in
    /// seconds; default five periods.
    #[arg(long)]
    lease_s: Option<f64>,
    /// How often to poll a running Toloka operation, in milliseconds.
    #[arg(long, default_value_t = 1_000)]
    operation_poll_ms: u64,
    /// Never stop by itself (as the seed ran); Ctrl-C stops it.
    #[arg(long)]
    forever: bool,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    match run(Args::parse()).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The exit status of a run that left decisions pending (run again to resume).
const PENDING: u8 = 2;

/// What `shared/photo_flow.rs`'s stages need of each pool's project: the input fields of the
/// tasks they create (`Fanout` into validate, `Action::Forward` into quality; the photos are
/// text such as URLs) and the output field each handler reads.
fn stage_specs(pools: &Pools) -> Vec<StageSpec> {
    let photo = serde_json::json!("https://example.com/photo.jpg");
    vec![
        StageSpec::new("submit", pools.submit.clone(), vec![], &["photos"]),
        StageSpec::new(
            "validate",
            pools.validate.clone(),
            fanout_inputs(photo.clone()),
            &["verdict"],
        ),
        StageSpec::new(
            "quality",
            pools.quality.clone(),
            forward_inputs(serde_json::json!([photo])),
            &["quality"],
        ),
    ]
}

/// One line about a decision: the stage it acts on, its kind, what it is about, its id.
fn describe(entry: &DecisionEntry) -> String {
    let (stage, kind, about) = match &entry.record.decision {
        Decision::Accept {
            stage, assignment, ..
        } => (stage.as_str(), "accept", assignment.as_str()),
        Decision::Reject {
            stage, assignment, ..
        } => (stage.as_str(), "reject", assignment.as_str()),
        Decision::Bonus {
            stage,
            worker,
            assignment,
            ..
        } => (
            stage.as_str(),
            "bonus",
            assignment.as_ref().map_or(worker.as_str(), |a| a.as_str()),
        ),
        Decision::CreateTasks { stage, about, .. } => {
            (stage.as_str(), "create_tasks", about.as_str())
        }
        Decision::OpenPool { stage } => (stage.as_str(), "open_pool", ""),
        Decision::ClosePool { stage } => (stage.as_str(), "close_pool", ""),
        _ => (
            entry.record.by.as_str(),
            "other",
            entry.record.cause.as_str(),
        ),
    };
    format!("{stage}\t{kind}\t{about}\t(decision {})", entry.id)
}

fn millis(seconds: f64, flag: &str) -> Result<u64, String> {
    if seconds.is_finite() && seconds > 0.0 {
        Ok((seconds * 1_000.0).round() as u64)
    } else {
        Err(format!("{flag} must be a positive number of seconds"))
    }
}

async fn run(args: Args) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let period_ms = millis(args.period_s, "--period-s")?;
    let lag_ms = millis(args.lag_s, "--lag-s")?;
    let lease_ttl_ms = match args.lease_s {
        Some(s) => millis(s, "--lease-s")?,
        None => period_ms * 5,
    };
    if lease_ttl_ms <= period_ms {
        return Err("--lease-s must be longer than --period-s".into());
    }
    if args.overlap == 0 || args.bonus_cents <= 0 {
        return Err("--overlap and --bonus-cents must be positive".into());
    }
    // No token, no run: the default is production.
    let credentials = Credentials::from_env()?;
    let mut config = ClientConfig::new(&args.base_url, credentials);
    config.operation_poll = Duration::from_millis(args.operation_poll_ms.max(1));
    let client = TolokaClient::new(config)?;
    let toloka = TolokaPipeline::new(client);
    let pools = Pools {
        submit: PoolId::new(&args.submit_pool),
        validate: PoolId::new(&args.validate_pool),
        quality: PoolId::new(&args.quality_pool),
    };
    // Before anything is created (the store included): every pool's project must fit the
    // tasks its stage will get.
    toloka.check_stages(&stage_specs(&pools)).await?;
    let platform: Arc<dyn PipelinePlatform> = Arc::new(toloka);

    let out = match args.db.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&out)?;
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&args.db, SqliteOptions::default())?);

    let observer = ObserverConfig {
        lag_ms,
        ..ObserverConfig::default()
    };
    let stages = || photo_flow::stages(pools.clone(), args.overlap, args.bonus_cents, &observer);
    let pipeline_config = PipelineConfig {
        period_ms,
        lease_ttl_ms,
        stop: if args.forever {
            StopCondition::Never
        } else {
            StopCondition::AllClosedAndDrained
        },
        ..PipelineConfig::default()
    };
    let clock = SystemClock;
    // A killed run still holds the lease until it expires: wait for it, then resume.
    let mut pipeline = loop {
        let mut builder = PipelineBuilder::new(
            platform.clone(),
            store.clone(),
            SessionId::new(args.session.as_str()),
        )
        .config(pipeline_config.clone());
        for stage in stages() {
            builder = builder.stage(stage);
        }
        match builder.start().await {
            Ok(p) => break p,
            Err(PipelineError::InUse { owner, expires }) => {
                let wait = expires.millis_since(clock.now()).max(50);
                eprintln!(
                    "the store is in use by {owner}; waiting {:.1} s for its lease to expire",
                    wait as f64 / 1_000.0
                );
                tokio::time::sleep(Duration::from_millis(wait)).await;
            }
            Err(e) => return Err(e.into()),
        }
    };

    let stop = photo_flow::ctrl_c_flag();
    let bar = ProgressBar::new_spinner();
    bar.set_style(ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {msg}",
    )?);
    let (mut observed, mut carried_out, mut ticks) = (0usize, 0usize, 0u64);
    let finished = loop {
        let tick = match pipeline.tick().await {
            Ok(t) => t,
            Err(e) => {
                bar.abandon();
                // Give the store's lease back (as `Pipeline::run` does), so the next run need
                // not wait it out.
                if !matches!(e, PipelineError::LeaseLost(_)) {
                    let _ = pipeline.release().await;
                }
                return Err(e.into());
            }
        };
        ticks += 1;
        observed += tick.observed;
        carried_out += tick.carried_out;
        bar.set_message(format!(
            "tick {ticks}: observed {observed}, carried out {carried_out}, pending {}",
            tick.pending
        ));
        bar.tick();
        if tick.observed > 0 || tick.carried_out > 0 {
            tracing::info!(
                ticks,
                observed = tick.observed,
                carried_out = tick.carried_out,
                pending = tick.pending,
                "tick"
            );
        }
        if tick.finished {
            break true;
        }
        if stop.load(Ordering::SeqCst) {
            break false;
        }
        // Sleep the period in short steps, so that Ctrl-C is not kept waiting.
        let wake = tokio::time::Instant::now() + Duration::from_millis(period_ms);
        while tokio::time::Instant::now() < wake && !stop.load(Ordering::SeqCst) {
            tokio::time::sleep_until(
                wake.min(tokio::time::Instant::now() + Duration::from_millis(100)),
            )
            .await;
        }
        if stop.load(Ordering::SeqCst) {
            break false;
        }
    };
    bar.finish_and_clear();

    let report = pipeline.report().await?;
    let entries = pipeline.decisions().await?;
    let (decisions, answers) = photo_flow::write_logs(&pipeline, &out).await?;
    pipeline.release().await?;
    let failed: Vec<(&DecisionEntry, &str)> = entries
        .iter()
        .filter_map(|e| match &e.state {
            OutboxState::Failed { error } => Some((e, error.as_str())),
            _ => None,
        })
        .collect();
    let pending: Vec<&DecisionEntry> = entries
        .iter()
        .filter(|e| e.state == OutboxState::Pending)
        .collect();
    let ending = match (finished, failed.is_empty() && pending.is_empty()) {
        (true, true) => "all pools closed and drained",
        (true, false) => "the pools closed and drained, but not every decision was carried out",
        (false, _) => "stopped by Ctrl-C (run again to resume)",
    };
    println!("{ending} after {ticks} ticks");
    print!("{report}");
    println!(
        "logs: {} and {}; store: {}",
        decisions.display(),
        answers.display(),
        args.db.display()
    );
    for (entry, error) in &failed {
        eprintln!("failed: {}: {error}", describe(entry));
    }
    for entry in &pending {
        eprintln!("pending: {}", describe(entry));
    }
    Ok(if !failed.is_empty() {
        eprintln!(
            "error: {} decision(s) failed for good and will not be retried (listed above); {} pending",
            failed.len(),
            pending.len()
        );
        ExitCode::FAILURE
    } else if !pending.is_empty() {
        eprintln!(
            "error: {} decision(s) still pending (listed above): run again to carry them out",
            pending.len()
        );
        ExitCode::from(PENDING)
    } else {
        ExitCode::SUCCESS
    })
}
