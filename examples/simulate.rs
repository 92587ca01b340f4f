//! # simulate — a real-time crowdsourcing study on a simulated crowd
//!
//! Runs the same seeded crowd against each hiring policy on the embedded defaults (the local
//! marketplace, no account, no network) and compares them:
//!
//! - `pavilion`: an active queue kept full from a paid waiting queue, which hiring keeps full;
//! - `no-waiting`: hiring only on demand, when an active seat empties (no one stands by);
//! - `retainer` (opt-in): a different study — tasks needing `--workers-per-task` workers
//!   arrive as a Poisson stream (`--tasks-per-minute`) and are served from a pool of retained
//!   workers (`--pool`, by default the smallest pool Erlang-B says misses at most `--max-miss`
//!   of the worker requests). It reports the time from a task's arrival to its workers being
//!   routed (p50/p95), the miss rate, and Erlang-B's prediction for the same load. It runs on
//!   an in-memory store (it takes seconds; it is not resumed).
//!
//! ```text
//! cargo run --release -p crowdcore-examples --example simulate -- --seed 7 --hours 8 --out out/
//! ```
//!
//! The study's log, outbox and ledger go to a SQLite file (`--db`, default `<out>/study.db`;
//! `--store memory` to keep nothing). Running the command again with the same `--db` resumes a
//! study that was stopped (killed, crashed) where it stopped, and says so on stderr; running it
//! again after it finished does no new work and writes the same `summary.json`. After a run,
//! `sqlite3 out/study.db 'select * from study_payments limit 5'` shows what was paid (the views
//! are documented in the crowdcore-sqlite crate).
//!
//! Writes to `--out`: `summary.json` (per policy: time-weighted active fill ratio, refill
//! latency p50/p95/max, hires, turned away, paid worker-minutes waiting and active, cost, cost
//! per useful worker-minute), `report.md` (the same as a table, with what it shows),
//! `queues.svg` (waiting and active over time) and `refill.svg` (refill-latency distribution).
//! Prints the table to stdout and a progress bar to stderr. The same seed writes a
//! byte-identical `summary.json`. `--help` lists the crowd model's knobs.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use crowdcore::engine::{EngineConfig, RetainerEngineConfig};
use crowdcore::model::{HitSpec, Money, SessionId};
use crowdcore::pavilion::{PavilionConfig, StartCondition};
use crowdcore::retainer::{RetainerConfig, smallest_pool};
use crowdcore::sim::{
    self, CrowdModel, OnMiss, RetainerReport, RetainerStudy, SimConfig, SimReport,
};
use crowdcore::store::{MemoryStore, Store};
use crowdcore_sqlite::{SqliteOptions, SqliteStore, Synchronous};
use indicatif::{ProgressBar, ProgressStyle};
use plotters::prelude::*;
use serde::Serialize;

/// Compare hiring policies for a real-time crowd task on a simulated crowd.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Seed of the simulated crowd: the same seed gives the same run.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Length of the study, in hours of simulated time.
    #[arg(long, default_value_t = 8.0)]
    hours: f64,
    /// Folder for summary.json, report.md, queues.svg and refill.svg.
    #[arg(long, default_value = "out")]
    out: PathBuf,
    /// Policies to compare, comma-separated: pavilion, no-waiting, retainer.
    #[arg(long, value_delimiter = ',', default_value = "pavilion,no-waiting")]
    policy: Vec<Policy>,
    /// Where the study's log, outbox and ledger are kept.
    #[arg(long, value_enum, default_value = "sqlite")]
    store: StoreKind,
    /// The SQLite file (default: study.db in --out). The same file resumes a stopped study.
    #[arg(long)]
    db: Option<PathBuf>,
    /// SQLite durability: `normal` survives a killed or crashed process (the simulated crowd
    /// is re-run on resume anyway); `full` also survives a power cut, one fsync per write.
    #[arg(long, value_enum, default_value = "normal")]
    sync: SyncKind,

    /// Workers reaching the marketplace per minute (Poisson).
    #[arg(long, default_value_t = 3.0)]
    arrivals_per_minute: f64,
    /// Mean seconds from seeing a HIT to landing on its page.
    #[arg(long, default_value_t = 20.0)]
    accept_delay_s: f64,
    /// Mean minutes a worker will wait before giving up.
    #[arg(long, default_value_t = 15.0)]
    patience_min: f64,
    /// Mean minutes on the task once active.
    #[arg(long, default_value_t = 5.0)]
    task_min: f64,
    /// Probability that a worker who gives up returns the HIT (otherwise they submit and take
    /// the waiting pay).
    #[arg(long, default_value_t = 0.5)]
    return_probability: f64,
    /// Probability that a worker silently closes the page at some point.
    #[arg(long, default_value_t = 0.05)]
    abandon_probability: f64,
    /// Seconds between heartbeats of a worker's page.
    #[arg(long, default_value_t = 20)]
    heartbeat_s: u64,
    /// Seconds of heartbeat silence after which a worker has abandoned.
    #[arg(long, default_value_t = 60)]
    heartbeat_timeout_s: u64,

    /// Workers the task needs to begin (with --min-waiting).
    #[arg(long, default_value_t = 5)]
    min_active: u32,
    /// Seats on the task.
    #[arg(long, default_value_t = 10)]
    max_active: u32,
    /// Workers standing by before the task begins (pavilion policy).
    #[arg(long, default_value_t = 2)]
    min_waiting: u32,
    /// Waiting seats (pavilion policy; no-waiting has none).
    #[arg(long, default_value_t = 5)]
    max_waiting: u32,

    /// Base pay per assignment, in cents (the HIT reward).
    #[arg(long, default_value_t = 25)]
    base_cents: i64,
    /// Waiting bonus, cents per minute waited.
    #[arg(long, default_value_t = 5)]
    waiting_cents_per_minute: i64,
    /// Active bonus, cents per minute on the task.
    #[arg(long, default_value_t = 10)]
    active_cents_per_minute: i64,
    /// Budget cap in cents (none if absent).
    #[arg(long)]
    budget_cents: Option<i64>,

    /// Retainer policy: tasks arriving per minute (Poisson).
    #[arg(long, default_value_t = 1.0)]
    tasks_per_minute: f64,
    /// Retainer policy: workers each task needs at once.
    #[arg(long, default_value_t = 2)]
    workers_per_task: u32,
    /// Retainer policy: mean seconds from a slot opening to a worker landing on it.
    #[arg(long, default_value_t = 60.0)]
    recruit_s: f64,
    /// Retainer policy: workers kept on retainer (default: the smallest pool that misses at
    /// most --max-miss of the worker requests, by Erlang-B).
    #[arg(long)]
    pool: Option<u32>,
    /// Retainer policy: the miss probability the default pool is sized for.
    #[arg(long, default_value_t = 0.05)]
    max_miss: f64,
    /// Retainer policy: a task that finds too few workers waits for recruits (`wait`) or is
    /// turned away (`drop`, Erlang's loss system).
    #[arg(long, value_enum, default_value = "wait")]
    on_miss: MissKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum MissKind {
    /// Invoke it anyway; it takes recruits as they land.
    Wait,
    /// Turn it away.
    Drop,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum SyncKind {
    /// `synchronous=NORMAL`.
    Normal,
    /// `synchronous=FULL`.
    Full,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum StoreKind {
    /// A SQLite file: durable, resumable, queryable afterwards.
    Sqlite,
    /// Memory only: nothing is kept.
    Memory,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
enum Policy {
    /// Active queue kept full from a paid waiting queue.
    Pavilion,
    /// Hire only when an active seat empties.
    NoWaiting,
    /// Tasks served from a pool of retained workers.
    Retainer,
}

impl Policy {
    fn name(self) -> &'static str {
        match self {
            Policy::Pavilion => "pavilion",
            Policy::NoWaiting => "no-waiting",
            Policy::Retainer => "retainer",
        }
    }
}

/// One policy's line of `summary.json`.
#[derive(Debug, Serialize)]
struct PolicySummary {
    active_fill_ratio: f64,
    refill_seconds_p50: f64,
    refill_seconds_p95: f64,
    refill_seconds_max: f64,
    refills: u64,
    unfilled_vacancies: u64,
    hires: u64,
    turned_away: u64,
    workers_arrived: u64,
    workers_landed: u64,
    paid_waiting_worker_minutes: f64,
    paid_active_worker_minutes: f64,
    cost_cents: i64,
    cost_per_useful_worker_minute_cents: f64,
    platform_duplicate_calls: u64,
}

/// The retainer study's line of `summary.json`.
#[derive(Debug, Serialize)]
struct RetainerSummary {
    tasks_per_minute: f64,
    workers_per_task: u32,
    pool: u32,
    recruit_seconds: f64,
    on_miss: OnMiss,
    tasks: u64,
    missed: u64,
    miss_rate: f64,
    erlang_b: f64,
    offered_load_erlangs: f64,
    seconds_to_workers_p50: f64,
    seconds_to_workers_p95: f64,
    seconds_to_workers_max: f64,
    unserved: u64,
    mean_waiting_workers: f64,
    hires: u64,
    cost_cents: i64,
    platform_duplicate_calls: u64,
}

#[derive(Debug, Serialize)]
struct Summary<'a> {
    seed: u64,
    hours: f64,
    crowd: &'a CrowdModel,
    policies: BTreeMap<&'static str, PolicySummary>,
    #[serde(skip_serializing_if = "Option::is_none")]
    retainer: Option<RetainerSummary>,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("simulate: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    if !(args.hours.is_finite() && args.hours > 0.0) {
        return Err("--hours must be a positive number".into());
    }
    if args.policy.is_empty() {
        return Err("--policy needs at least one policy".into());
    }
    let crowd = CrowdModel {
        arrivals_per_minute: args.arrivals_per_minute,
        accept_delay_ms: args.accept_delay_s * 1_000.0,
        patience_ms: args.patience_min * 60_000.0,
        task_ms: args.task_min * 60_000.0,
        return_probability: args.return_probability,
        abandon_probability: args.abandon_probability,
        heartbeat_every_ms: args.heartbeat_s.saturating_mul(1_000),
        ..CrowdModel::default()
    };
    crowd.validate()?;
    let duration_ms = (args.hours * 3_600_000.0).round() as u64;
    std::fs::create_dir_all(&args.out)
        .map_err(|e| format!("cannot create {}: {e}", args.out.display()))?;

    let mut policies: Vec<Policy> = args.policy.clone();
    policies.sort();
    policies.dedup();
    let retainer = policies.contains(&Policy::Retainer);
    policies.retain(|p| *p != Policy::Retainer);
    let bar = ProgressBar::new(duration_ms / 60_000 * policies.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{msg:>12} [{bar:40}] {pos}/{len} simulated minutes")?
            .progress_chars("=> "),
    );
    let store: Arc<dyn Store> = match args.store {
        StoreKind::Memory => Arc::new(MemoryStore::new()),
        StoreKind::Sqlite => {
            let path = args.db.clone().unwrap_or_else(|| args.out.join("study.db"));
            let options = SqliteOptions {
                synchronous: match args.sync {
                    SyncKind::Normal => Synchronous::Normal,
                    SyncKind::Full => Synchronous::Full,
                },
                ..SqliteOptions::default()
            };
            let store = SqliteStore::open(&path, options)
                .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
            Arc::new(store)
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()?;
    let retainer = if retainer {
        bar.set_message("retainer");
        let study = retainer_study(args, duration_ms)?;
        let report = runtime
            .block_on(sim::run_retainer(study.clone()))
            .map_err(|e| format!("retainer study: {e}"))?;
        Some(summarize_retainer(&study, &report))
    } else {
        None
    };
    let mut reports = Vec::new();
    for (index, &policy) in policies.iter().enumerate() {
        bar.set_message(policy.name());
        let config = sim_config(args, policy, crowd.clone(), duration_ms)?;
        let session = config.session.clone();
        let offset = index as u64 * (duration_ms / 60_000);
        let bar_ = bar.clone();
        let run = runtime
            .block_on(sim::run_durable(config, store.clone(), move |at| {
                bar_.set_position(offset + at.as_millis() / 60_000);
            }))
            .map_err(|e| format!("{} study ({session}): {e}", policy.name()))?;
        if run.already_finished {
            bar.suspend(|| {
                eprintln!(
                    "{}: this study already finished; nothing to run",
                    policy.name()
                )
            });
        } else if let Some(at) = run.resumed_at {
            bar.suspend(|| {
                eprintln!(
                    "{}: resumed the stopped study (its log held {at} inputs)",
                    policy.name()
                )
            });
        }
        reports.push((policy, run.report));
    }
    bar.finish_and_clear();

    let summary = Summary {
        seed: args.seed,
        hours: args.hours,
        crowd: &crowd,
        policies: reports
            .iter()
            .map(|(p, r)| (p.name(), summarize(r)))
            .collect(),
        retainer,
    };
    let json = serde_json::to_string_pretty(&summary)? + "\n";
    write(&args.out.join("summary.json"), &json)?;
    let table = table(&summary);
    write(
        &args.out.join("report.md"),
        &report_md(args, &summary, &table),
    )?;
    if reports.is_empty() {
        print!("{table}");
        eprintln!("wrote summary.json and report.md to {}", args.out.display());
        return Ok(());
    }
    queues_chart(
        &args.out.join("queues.svg"),
        &reports,
        args.max_active + args.max_waiting,
    )?;
    refill_chart(&args.out.join("refill.svg"), &reports)?;
    print!("{table}");
    eprintln!(
        "wrote summary.json, report.md, queues.svg and refill.svg to {}",
        args.out.display()
    );
    Ok(())
}

fn retainer_study(
    args: &Args,
    duration_ms: u64,
) -> Result<RetainerStudy, Box<dyn std::error::Error>> {
    let k = args.workers_per_task;
    let recruit_ms = args.recruit_s * 1_000.0;
    let pool = match args.pool {
        Some(pool) => pool,
        // Worker requests arrive at k·λ; each holds a pool seat for the recruiting time.
        None => {
            smallest_pool(
                f64::from(k) * args.tasks_per_minute,
                args.recruit_s / 60.0,
                args.max_miss,
            )?
            .c
        }
        .max(k),
    };
    let spec = HitSpec {
        title: "Stand by for real-time tasks".into(),
        description: "Wait on the page; when a task arrives you are sent to it.".into(),
        keywords: vec!["real-time".into(), "retainer".into()],
        reward: Money::usd_cents(args.base_cents),
        assignment_duration_ms: 2 * 3_600_000,
        lifetime_ms: duration_ms + 3_600_000,
        max_assignments: pool.max(1) * 10,
        auto_approval_delay_ms: 3 * 86_400_000,
        qualifications: Vec::new(),
        landing_url: "https://localhost/land".into(),
        frame_height: 800,
    };
    spec.validate()?;
    let mut engine = RetainerEngineConfig::new(RetainerConfig {
        heartbeat_timeout_ms: args.heartbeat_timeout_s.saturating_mul(1_000),
        waiting_cents_per_minute: args.waiting_cents_per_minute,
        active_cents_per_minute: args.active_cents_per_minute,
        ..RetainerConfig::default()
    });
    engine.observe_every_ms = 60_000;
    engine.snapshot_every = 0;
    let study = RetainerStudy {
        seed: args.seed,
        duration_ms,
        tasks_per_minute: args.tasks_per_minute,
        workers_per_task: k,
        pool,
        recruit_ms,
        task_ms: args.task_min * 60_000.0,
        heartbeat_every_ms: args.heartbeat_s.saturating_mul(1_000),
        on_miss: match args.on_miss {
            MissKind::Wait => OnMiss::Wait,
            MissKind::Drop => OnMiss::Drop,
        },
        spec,
        engine,
        funds: Money::usd_cents(i64::MAX / 4),
        session: SessionId::new(format!("simulate-retainer-{}", args.seed)),
    };
    study.validate()?;
    Ok(study)
}

fn summarize_retainer(study: &RetainerStudy, r: &RetainerReport) -> RetainerSummary {
    let s = |ms: u64| ms as f64 / 1_000.0;
    RetainerSummary {
        tasks_per_minute: study.tasks_per_minute,
        workers_per_task: study.workers_per_task,
        pool: study.pool,
        recruit_seconds: study.recruit_ms / 1_000.0,
        on_miss: study.on_miss,
        tasks: r.tasks,
        missed: r.missed,
        miss_rate: r.miss_rate,
        erlang_b: r.erlang_b,
        offered_load_erlangs: r.offered_load,
        seconds_to_workers_p50: s(r.time_to_workers_ms.p50),
        seconds_to_workers_p95: s(r.time_to_workers_ms.p95),
        seconds_to_workers_max: s(r.time_to_workers_ms.max),
        unserved: r.unserved,
        mean_waiting_workers: r.mean_waiting,
        hires: r.hires,
        cost_cents: r.cost_cents,
        platform_duplicate_calls: r.platform_duplicate_calls,
    }
}

fn sim_config(
    args: &Args,
    policy: Policy,
    crowd: CrowdModel,
    duration_ms: u64,
) -> Result<SimConfig, Box<dyn std::error::Error>> {
    let (min_waiting, max_waiting) = match policy {
        Policy::Pavilion => (args.min_waiting, args.max_waiting),
        Policy::NoWaiting => (0, 0),
        Policy::Retainer => unreachable!("the retainer study is not a queue policy"),
    };
    let pavilion = PavilionConfig {
        min_active: args.min_active,
        max_active: args.max_active,
        min_waiting,
        max_waiting,
        start: StartCondition::Auto,
        heartbeat_timeout_ms: args.heartbeat_timeout_s.saturating_mul(1_000),
        budget_cents: args.budget_cents,
        base_pay_cents: args.base_cents,
        waiting_cents_per_minute: args.waiting_cents_per_minute,
        active_cents_per_minute: args.active_cents_per_minute,
        ..PavilionConfig::default()
    };
    pavilion.validate()?;
    let spec = HitSpec {
        title: "Real-time task: stand by, then work".into(),
        description: "Wait on the page until a seat opens, then do the task.".into(),
        keywords: vec!["real-time".into()],
        reward: Money::usd_cents(args.base_cents),
        assignment_duration_ms: 2 * 3_600_000,
        lifetime_ms: duration_ms + 3_600_000,
        max_assignments: (args.max_active + max_waiting).max(1) * 10,
        auto_approval_delay_ms: 3 * 86_400_000,
        qualifications: Vec::new(),
        landing_url: "https://localhost/land".into(),
        frame_height: 800,
    };
    spec.validate()?;
    let mut engine = EngineConfig::new(spec, pavilion);
    engine.observe_every_ms = 60_000;
    engine.snapshot_every = 0;
    Ok(SimConfig {
        seed: args.seed,
        duration_ms,
        crowd,
        engine,
        funds: Money::usd_cents(i64::MAX / 4),
        session: SessionId::new(format!("simulate-{}-{}", policy.name(), args.seed)),
    })
}

fn summarize(r: &SimReport) -> PolicySummary {
    let s = |ms: u64| ms as f64 / 1_000.0;
    PolicySummary {
        active_fill_ratio: r.active_fill_ratio,
        refill_seconds_p50: s(r.refill_ms.p50),
        refill_seconds_p95: s(r.refill_ms.p95),
        refill_seconds_max: s(r.refill_ms.max),
        refills: r.refill_ms.count,
        unfilled_vacancies: r.unfilled_vacancies,
        hires: r.hires,
        turned_away: r.turned_away,
        workers_arrived: r.workers_arrived,
        workers_landed: r.workers_landed,
        paid_waiting_worker_minutes: r.paid_waiting_minutes,
        paid_active_worker_minutes: r.paid_active_minutes,
        cost_cents: r.cost_cents,
        cost_per_useful_worker_minute_cents: r.cost_per_active_minute_cents,
        platform_duplicate_calls: r.platform_duplicate_calls,
    }
}

fn table(summary: &Summary<'_>) -> String {
    let mut t = queue_table(summary);
    if let Some(r) = &summary.retainer {
        if !t.is_empty() {
            t.push('\n');
        }
        let _ = write!(
            t,
            "| retainer | tasks | k | pool | load E | missed | miss rate | Erlang-B | to k workers p50 s | p95 s | unserved | mean waiting | cost $ |\n\
             |---|---|---|---|---|---|---|---|---|---|---|---|---|\n\
             | {} | {} | {} | {} | {:.2} | {} | {:.2} % | {:.2} % | {:.0} | {:.0} | {} | {:.1} | {:.2} |\n",
            match r.on_miss {
                OnMiss::Wait => "wait",
                OnMiss::Drop => "drop",
            },
            r.tasks,
            r.workers_per_task,
            r.pool,
            r.offered_load_erlangs,
            r.missed,
            r.miss_rate * 100.0,
            r.erlang_b * 100.0,
            r.seconds_to_workers_p50,
            r.seconds_to_workers_p95,
            r.unserved,
            r.mean_waiting_workers,
            r.cost_cents as f64 / 100.0,
        );
    }
    t
}

fn queue_table(summary: &Summary<'_>) -> String {
    if summary.policies.is_empty() {
        return String::new();
    }
    let mut t = String::from(
        "| policy | active fill | refill p50 s | refill p95 s | refill max s | hires | turned away | paid waiting min | paid active min | cost $ | ¢ per useful min |\n\
         |---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for (name, p) in &summary.policies {
        let _ = writeln!(
            t,
            "| {name} | {:.1} % | {:.0} | {:.0} | {:.0} | {} | {} | {:.0} | {:.0} | {:.2} | {:.2} |",
            p.active_fill_ratio * 100.0,
            p.refill_seconds_p50,
            p.refill_seconds_p95,
            p.refill_seconds_max,
            p.hires,
            p.turned_away,
            p.paid_waiting_worker_minutes,
            p.paid_active_worker_minutes,
            p.cost_cents as f64 / 100.0,
            p.cost_per_useful_worker_minute_cents,
        );
    }
    t
}

fn report_md(args: &Args, summary: &Summary<'_>, table: &str) -> String {
    let mut md = format!(
        "# Simulated study: seed {}, {} hours\n\n\
         {} active seats; the pavilion policy keeps up to {} workers waiting. Workers reach the \
         marketplace at {} per minute, wait up to {} minutes on average, and work {} minutes on \
         average once active.\n\n{table}\n",
        args.seed,
        args.hours,
        args.max_active,
        args.max_waiting,
        args.arrivals_per_minute,
        args.patience_min,
        args.task_min,
    );
    if let Some(r) = &summary.retainer {
        let _ = writeln!(
            md,
            "Retainer: {} tasks per minute, each needing {} workers at once, served from a pool \
             of {} retained workers; a worker routed away is replaced in {:.0} s on average, so \
             the offered load is {:.2} erlangs. {:.2} % of the tasks found too few workers \
             waiting (Erlang-B predicts {:.2} % of the worker requests for this load and pool; \
             exact for one worker per task when missed tasks are dropped). Tasks had their \
             workers {:.0} s after arriving at the median (p95 {:.0} s); {:.1} workers waited \
             on average.\n",
            r.tasks_per_minute,
            r.workers_per_task,
            r.pool,
            r.recruit_seconds,
            r.offered_load_erlangs,
            r.miss_rate * 100.0,
            r.erlang_b * 100.0,
            r.seconds_to_workers_p50,
            r.seconds_to_workers_p95,
            r.mean_waiting_workers,
        );
    }
    let (Some(p), Some(n)) = (
        summary.policies.get("pavilion"),
        summary.policies.get("no-waiting"),
    ) else {
        return md;
    };
    let _ = writeln!(
        md,
        "With a waiting queue, an emptied seat is refilled in {:.0} s at the median \
         (p95 {:.0} s) instead of {:.0} s (p95 {:.0} s) when hiring on demand, and the task \
         keeps {:.1} % of its seats filled instead of {:.1} %. The price is {:.0} paid \
         worker-minutes of standing by: {:.2} ¢ per useful worker-minute instead of {:.2} ¢.",
        p.refill_seconds_p50,
        p.refill_seconds_p95,
        n.refill_seconds_p50,
        n.refill_seconds_p95,
        p.active_fill_ratio * 100.0,
        n.active_fill_ratio * 100.0,
        p.paid_waiting_worker_minutes,
        p.cost_per_useful_worker_minute_cents,
        n.cost_per_useful_worker_minute_cents,
    );
    md
}

fn write(path: &Path, text: &str) -> Result<(), Box<dyn std::error::Error>> {
    std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()).into())
}

const COLORS: [RGBColor; 4] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
];

fn queues_chart(
    path: &Path,
    reports: &[(Policy, SimReport)],
    seats: u32,
) -> Result<(), Box<dyn std::error::Error>> {
    let minutes = reports
        .iter()
        .map(|(_, r)| r.queues.len() as u64)
        .max()
        .unwrap_or(1)
        .max(1);
    let root = SVGBackend::new(path, (960, 540)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption("Queue sizes over time", ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(48)
        .build_cartesian_2d(0u64..minutes, 0u32..seats + 1)?;
    chart
        .configure_mesh()
        .x_desc("minutes since start")
        .y_desc("workers")
        .draw()?;
    let mut color = 0;
    for (policy, report) in reports {
        for (queue, pick) in [("active", 2usize), ("waiting", 1usize)] {
            let style = COLORS[color % COLORS.len()];
            color += 1;
            let points = report
                .queues
                .iter()
                .map(|&(m, w, a)| (m, if pick == 1 { w } else { a }));
            chart
                .draw_series(LineSeries::new(points, style.stroke_width(2)))?
                .label(format!("{} {queue}", policy.name()))
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], style));
        }
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

fn refill_chart(
    path: &Path,
    reports: &[(Policy, SimReport)],
) -> Result<(), Box<dyn std::error::Error>> {
    let max_s = reports
        .iter()
        .flat_map(|(_, r)| r.refills.iter())
        .max()
        .map_or(1.0, |&ms| ms as f64 / 1_000.0)
        .max(1.0);
    let root = SVGBackend::new(path, (960, 540)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Refill latency: time from a seat emptying to its refill",
            ("sans-serif", 22),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(48)
        .build_cartesian_2d(0f64..max_s, 0f64..1.0)?;
    chart
        .configure_mesh()
        .x_desc("seconds")
        .y_desc("fraction of refills at most this long")
        .draw()?;
    for (i, (policy, report)) in reports.iter().enumerate() {
        let mut sorted = report.refills.clone();
        sorted.sort_unstable();
        let n = sorted.len().max(1) as f64;
        let points: Vec<(f64, f64)> = sorted
            .iter()
            .enumerate()
            .map(|(k, &ms)| (ms as f64 / 1_000.0, (k + 1) as f64 / n))
            .collect();
        let style = COLORS[i % COLORS.len()];
        chart
            .draw_series(LineSeries::new(points, style.stroke_width(2)))?
            .label(format!("{} ({} refills)", policy.name(), sorted.len()))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], style));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}
