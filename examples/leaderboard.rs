//! # leaderboard — bots compete on classification tasks; answers are scored and ranked
//!
//! The crowdsource quick example, re-done on crowdcore's embedded defaults (the local
//! marketplace and an in-memory store: no account, no network). A requester posts
//! classification tasks — which animal is in photo N? — in two kinds: `label` (answer a class,
//! scored by accuracy) and `proba` (answer class probabilities, scored by log loss). Three bot
//! participants of different quality subscribe to both kinds and answer whatever they are
//! offered, through the marketplace's worker API, as people would:
//!
//! | bot | right | confidence in its answer | speed |
//! |---|---|---|---|
//! | `careful` | 90 % | 0.8 | 5 tasks a minute (too slow for the deadline) |
//! | `hasty` | 70 % | 0.95 (overconfident) | 10 tasks a minute |
//! | `guesser` | 40 % | 0.5 | 20 tasks a minute |
//!
//! Even-numbered photos are posted with their truth, so their answers are scored on arrival;
//! the truth of odd-numbered ones arrives after the deadline (deferred scoring). Answers made
//! after the 20-minute deadline are refused. At the end the leaderboards — per kind and overall
//! — are printed, with what aggregation alone (Dawid–Skene skills, no truth used) would have
//! said: with three bots, one of which missed the deadline, agreement can mislead (the default
//! seed shows it), which is what the truth is for.
//!
//! ```text
//! cargo run -p crowdcore-examples --example leaderboard -- --seed 7 --tasks 60 --out out/
//! ```
//!
//! Writes `leaderboard.svg` (the three boards as bar charts) and `leaderboard.json` (the boards
//! and the event counts) to `--out`; prints the boards to stdout. The same seed gives the same
//! output, byte for byte.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use crowdcore::clock::VirtualClock;
use crowdcore::compete::{Arena, TaskView, participant};
use crowdcore::local::LocalMarketplace;
use crowdcore::model::WorkerId;
use crowdcore::model::{EffectId, HitSpec, Money, SessionId, Timestamp};
use crowdcore::platform::IdempotencyKey;
use crowdcore::score::{
    Competition, Event, KindConfig, Leaderboard, Metric, NewTask, Refused, SkillMethod, TaskId,
    probabilities,
};
use crowdcore::store::MemoryStore;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use serde::Serialize;

/// Three bots compete on classification tasks; scores, leaderboards and a chart.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Seed of the photos' classes and the bots' answers: the same seed gives the same run.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Photos to classify (each is posted once per kind).
    #[arg(long, default_value_t = 60)]
    tasks: u32,
    /// Folder for leaderboard.svg and leaderboard.json.
    #[arg(long, default_value = "out")]
    out: PathBuf,
}

const CLASSES: [&str; 3] = ["bird", "cat", "dog"];
const MINUTE: u64 = 60_000;
/// Answers are due this long after posting.
const DEADLINE_MINUTES: u64 = 20;
/// The study runs this long; the late truths arrive at its end.
const RUN_MINUTES: u64 = 30;

/// A bot's quality.
struct Bot {
    name: &'static str,
    /// Probability of naming the right class.
    right: f64,
    /// Probability its `proba` answers give the class it names.
    confidence: f64,
    /// Tasks it answers per minute.
    per_minute: usize,
}

const BOTS: [Bot; 3] = [
    Bot {
        name: "careful",
        right: 0.9,
        confidence: 0.8,
        per_minute: 5,
    },
    Bot {
        name: "hasty",
        right: 0.7,
        confidence: 0.95,
        per_minute: 10,
    },
    Bot {
        name: "guesser",
        right: 0.4,
        confidence: 0.5,
        per_minute: 20,
    },
];

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("leaderboard: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(&args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("leaderboard: {e}");
            ExitCode::FAILURE
        }
    }
}

/// What happened to the answers.
#[derive(Debug, Default, Serialize)]
struct Counts {
    /// Scored on arrival (the truth was known).
    scored_at_once: u32,
    /// Accepted before their truth was known, and scored when it arrived.
    deferred_then_scored: u32,
    /// Refused: made after the deadline.
    refused_late: u32,
    /// Answers accepted and waiting for their truth.
    #[serde(skip)]
    waiting: BTreeSet<(TaskId, WorkerId)>,
}

#[derive(Serialize)]
struct Output<'a> {
    seed: u64,
    tasks: u32,
    counts: &'a Counts,
    label: &'a Leaderboard,
    proba: &'a Leaderboard,
    overall: &'a Leaderboard,
    label_by_skill: &'a Leaderboard,
}

async fn run(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    std::fs::create_dir_all(&args.out)
        .map_err(|e| format!("cannot create {}: {e}", args.out.display()))?;
    let clock = Arc::new(VirtualClock::new(Timestamp::ZERO));
    let market = LocalMarketplace::new(clock.clone(), Money::usd_cents(1_000_000));
    let arena = Arena::new(market);
    let session = SessionId::new("leaderboard");
    let mut contest = Competition::builder(Arc::new(MemoryStore::new()), session.clone())
        .clock(clock.clone())
        .open()
        .await?;
    contest
        .define_kind("label", KindConfig::new(Metric::Accuracy))
        .await?;
    contest
        .define_kind("proba", KindConfig::new(Metric::log_loss()))
        .await?;

    // The requester posts every photo in both kinds: a HIT on the marketplace (one slot per
    // bot), and a task in the competition, with its truth for even photos only.
    let mut rng = SplitMix64(args.seed);
    let mut truth = BTreeMap::new();
    let deadline = Timestamp::from_millis(DEADLINE_MINUTES * MINUTE);
    let mut posted = 0;
    for n in 0..args.tasks {
        let photo = format!("photo-{n:03}");
        let class = CLASSES[rng.below(CLASSES.len())];
        truth.insert(photo.clone(), class);
        for kind in ["label", "proba"] {
            let task = format!("{kind}-{n:03}");
            let mut new = NewTask::new(task.as_str(), kind).deadline(deadline);
            if n % 2 == 0 {
                new = new.truth(class);
            }
            contest.post_task(new).await?;
            posted += 1;
            let key = IdempotencyKey::for_effect(&EffectId::new(session.clone(), posted));
            let spec = hit_spec(kind, BOTS.len() as u32);
            arena
                .post(
                    task.into(),
                    kind.into(),
                    photo.clone(),
                    &spec,
                    BOTS.len() as u32,
                    &key,
                )
                .await?;
        }
    }

    // The bots subscribe to both kinds. Each sees the photo (here: looks up its class) and is
    // right with its own probability.
    let truth = Arc::new(truth);
    let mut bots: Vec<_> = BOTS
        .iter()
        .enumerate()
        .map(|(i, bot)| {
            let truth = truth.clone();
            let mut rng = SplitMix64(args.seed ^ (0x9e37_79b9 * (i as u64 + 1)));
            let (right, confidence) = (bot.right, bot.confidence);
            participant(bot.name, ["label", "proba"], move |task: &TaskView| {
                let actual = *truth.get(&task.payload)?;
                let named = if rng.unit() < right {
                    actual
                } else {
                    let others: Vec<&str> = CLASSES.into_iter().filter(|c| *c != actual).collect();
                    others[rng.below(others.len())]
                };
                Some(match task.kind.as_str() {
                    "label" => named.to_owned(),
                    _ => {
                        let rest = (1.0 - confidence) / (CLASSES.len() - 1) as f64;
                        probabilities(
                            CLASSES.map(|c| (c, if c == named { confidence } else { rest })),
                        )
                    }
                })
            })
        })
        .collect();

    // Minute by minute: each bot answers what it manages; the requester reads the marketplace
    // and the competition scores (or defers, or refuses) what it finds.
    let mut counts = Counts::default();
    for _ in 0..RUN_MINUTES {
        for (bot, quality) in bots.iter_mut().zip(&BOTS) {
            arena.play(bot, quality.per_minute)?;
            clock.advance(MINUTE / BOTS.len() as u64);
        }
        arena.observe(&mut contest).await?;
        contest.advance().await?;
        drain(&mut contest, &mut counts);
    }
    // Before the late truths arrive: what aggregation alone makes of the `label` answers.
    let label_by_skill =
        contest.skill_leaderboard(&"label".into(), Some(SkillMethod::DawidSkene))?;
    clock.advance(MINUTE);
    for n in (1..args.tasks).step_by(2) {
        let class = truth[&format!("photo-{n:03}")];
        for kind in ["label", "proba"] {
            contest.reveal(format!("{kind}-{n:03}"), class).await?;
        }
    }
    drain(&mut contest, &mut counts);

    let label = contest.leaderboard(&"label".into())?;
    let proba = contest.leaderboard(&"proba".into())?;
    let overall = contest.overall()?;
    println!(
        "{} photos, 2 kinds, 3 bots: {} answers scored on arrival, {} scored when their truth \
         arrived, {} refused after the deadline\n",
        args.tasks, counts.scored_at_once, counts.deferred_then_scored, counts.refused_late
    );
    for (title, board) in [
        ("label — accuracy (higher is better)", &label),
        ("proba — log loss (lower is better)", &proba),
        ("overall — participants beaten, summed over kinds", &overall),
        (
            "label by aggregation alone (no truth used) — Dawid–Skene skill",
            &label_by_skill,
        ),
    ] {
        println!("{title}\n{}", board.to_table());
    }
    let output = Output {
        seed: args.seed,
        tasks: args.tasks,
        counts: &counts,
        label: &label,
        proba: &proba,
        overall: &overall,
        label_by_skill: &label_by_skill,
    };
    let json = serde_json::to_string_pretty(&output)? + "\n";
    write(&args.out.join("leaderboard.json"), &json)?;
    chart(
        &args.out.join("leaderboard.svg"),
        &[
            ("label: accuracy ↑", &label),
            ("proba: log loss ↓", &proba),
            ("overall: participants beaten ↑", &overall),
        ],
    )?;
    eprintln!(
        "wrote leaderboard.svg and leaderboard.json to {}",
        args.out.display()
    );
    Ok(())
}

/// Counts the competition's events.
fn drain(contest: &mut Competition, counts: &mut Counts) {
    while let Some(event) = contest.poll_event() {
        match event {
            Event::Deferred {
                task, participant, ..
            } => {
                counts.waiting.insert((task, participant));
            }
            Event::Scored {
                task, participant, ..
            } => {
                if counts.waiting.remove(&(task, participant)) {
                    counts.deferred_then_scored += 1;
                } else {
                    counts.scored_at_once += 1;
                }
            }
            Event::Refused {
                reason: Refused::PastDeadline { .. },
                ..
            } => counts.refused_late += 1,
            _ => {}
        }
    }
}

fn hit_spec(kind: &str, slots: u32) -> HitSpec {
    HitSpec {
        title: format!("Which animal is in the photo? ({kind})"),
        description: "Look at the photo and name the animal: bird, cat or dog.".into(),
        keywords: vec!["classification".into(), kind.into()],
        reward: Money::usd_cents(5),
        assignment_duration_ms: 5 * MINUTE,
        lifetime_ms: 2 * RUN_MINUTES * MINUTE,
        max_assignments: slots,
        auto_approval_delay_ms: 60 * MINUTE,
        qualifications: Vec::new(),
        landing_url: "https://example.org/photo".into(),
        frame_height: 600,
    }
}

fn write(path: &Path, text: &str) -> Result<(), Box<dyn std::error::Error>> {
    std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()).into())
}

/// A small seeded generator (SplitMix64), so the example needs no RNG crate.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `0..n`.
    fn below(&mut self, n: usize) -> usize {
        (self.unit() * n as f64) as usize
    }
}

const COLORS: [RGBColor; 3] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
];

/// The boards side by side, one bar per participant in rank order, a bot's colour the same in
/// every panel.
fn chart(path: &Path, boards: &[(&str, &Leaderboard)]) -> Result<(), Box<dyn std::error::Error>> {
    let root = SVGBackend::new(path, (1200, 480)).into_drawing_area();
    root.fill(&WHITE)?;
    let color_of = |name: &str| {
        let i = BOTS.iter().position(|b| b.name == name).unwrap_or(0);
        COLORS[i % COLORS.len()]
    };
    for (area, (title, board)) in root.split_evenly((1, boards.len())).iter().zip(boards) {
        // `into_segmented` makes one segment per value of the range, both ends included.
        let last = board.standings.len().saturating_sub(1);
        let top = board
            .standings
            .iter()
            .map(|s| s.score)
            .fold(0.0f64, f64::max)
            .max(1e-9)
            * 1.2;
        let names: Vec<String> = board
            .standings
            .iter()
            .map(|s| format!("#{} {}", s.rank, s.participant))
            .collect();
        let mut chart = ChartBuilder::on(area)
            .caption(*title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(32)
            .y_label_area_size(48)
            .build_cartesian_2d((0..last).into_segmented(), 0f64..top)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_label_formatter(&|x| match x {
                SegmentValue::CenterOf(i) => names.get(*i).cloned().unwrap_or_default(),
                _ => String::new(),
            })
            .draw()?;
        chart.draw_series(board.standings.iter().enumerate().map(|(i, s)| {
            let mut bar = Rectangle::new(
                [
                    (SegmentValue::Exact(i), 0.0),
                    (SegmentValue::Exact(i + 1), s.score),
                ],
                color_of(s.participant.as_str()).filled(),
            );
            bar.set_margin(0, 0, 12, 12);
            bar
        }))?;
        chart.draw_series(board.standings.iter().enumerate().map(|(i, s)| {
            Text::new(
                format!("{:.3}", s.score),
                (SegmentValue::CenterOf(i), s.score + top * 0.02),
                ("sans-serif", 14)
                    .into_font()
                    .into_text_style(area)
                    .pos(Pos::new(HPos::Center, VPos::Bottom)),
            )
        }))?;
    }
    root.present()?;
    Ok(())
}
