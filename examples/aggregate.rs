//! # aggregate — infer true labels from crowd answers
//!
//! Reads answers in crowd-kit's format — a CSV or TSV file with a header naming the columns
//! `task`, `worker` and `label` (other columns are ignored) — aggregates them with one of
//! crowdcore's methods and writes one line per task: `task`, `label`, `confidence` (the
//! probability of that label), tab-separated, in the order tasks first appear.
//!
//! ```text
//! cargo run --release -p crowdcore-examples --example aggregate -- \
//!     --method ds crowdcore/tests/data/aggregate/synth_confusion.tsv \
//!     --gold crowdcore/tests/data/aggregate/synth_confusion.gold.tsv \
//!     --out labels.tsv --skills skills.tsv
//! ```
//!
//! Methods: `mv` (majority vote), `wawa`, `zbs` (zero-based skill), `ds` (Dawid–Skene),
//! `onecoin` (one-coin Dawid–Skene), `glad`. `--gold FILE` (columns `task` and `label` or
//! `true_label`) pins known labels during Dawid–Skene. `--skills FILE` writes `worker skill`.
//! The delimiter follows the extension (`.tsv`/`.tab` → tab, otherwise comma) unless
//! `--delimiter` says otherwise. `--ties first-seen` breaks the plain votes' ties (mv, and
//! wawa's first vote) in the order labels first appear in the file, as crowd-kit does on
//! pandas 3, instead of in sorted order (crowd-kit on pandas 2). Big files stream with a
//! progress bar on stderr; labels are strings (see `crowdcore::aggregate`).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, ValueEnum};
use crowdcore::aggregate::{
    Aggregation, Answers, DawidSkene, Glad, Gold, MajorityVote, OneCoinDawidSkene, TieBreak, Wawa,
    ZeroBasedSkill,
};
use indicatif::{ProgressBar, ProgressStyle};

/// Aggregate crowd answers (task, worker, label) into one label per task.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Answers: CSV or TSV with a header containing task, worker and label.
    input: PathBuf,
    /// Aggregation method.
    #[arg(long, value_enum, default_value_t = MethodArg::Ds)]
    method: MethodArg,
    /// Field delimiter; default from the extension (.tsv/.tab: tab, else comma).
    #[arg(long, value_enum)]
    delimiter: Option<Delimiter>,
    /// Gold labels (task, label or true_label) for --method ds.
    #[arg(long)]
    gold: Option<PathBuf>,
    /// Write `task label confidence` here instead of stdout.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Write `worker skill` here.
    #[arg(long)]
    skills: Option<PathBuf>,
    /// Maximum EM iterations (ds, onecoin, glad).
    #[arg(long, default_value_t = 100)]
    n_iter: usize,
    /// EM tolerance (ds, onecoin, glad).
    #[arg(long, default_value_t = 1e-5)]
    tol: f64,
    /// How mv and wawa's first vote break ties: `sorted` (crowd-kit on pandas 2) or
    /// `first-seen` (crowd-kit on pandas 3).
    #[arg(long, value_enum, default_value_t = TiesArg::Sorted)]
    ties: TiesArg,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum TiesArg {
    Sorted,
    FirstSeen,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum MethodArg {
    Mv,
    Wawa,
    Zbs,
    Ds,
    Onecoin,
    Glad,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Delimiter {
    Tab,
    Comma,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::FAILURE
        }
    }
}

type BoxError = Box<dyn std::error::Error>;

fn run(args: Args) -> Result<(), BoxError> {
    let answers = read_answers(&args.input, args.delimiter)?;
    tracing::info!(
        answers = answers.len(),
        tasks = answers.n_tasks(),
        workers = answers.n_workers(),
        labels = answers.n_labels(),
        "read"
    );
    let gold = match &args.gold {
        Some(path) if matches!(args.method, MethodArg::Ds) => {
            Some(read_gold(path, args.delimiter)?)
        }
        Some(_) => return Err("--gold is only used by --method ds".into()),
        None => None,
    };
    let started = std::time::Instant::now();
    let fit = fit(&args, &answers, gold.as_ref())?;
    tracing::info!(
        method = ?fit.method(),
        iterations = fit.iterations(),
        seconds = started.elapsed().as_secs_f64(),
        "fitted"
    );
    if fit.ignored_gold() > 0 {
        tracing::warn!(
            "{} gold tasks have no answers and were ignored",
            fit.ignored_gold()
        );
    }

    let mut out: Box<dyn Write> = match &args.out {
        Some(path) => Box::new(BufWriter::new(File::create(path)?)),
        None => Box::new(BufWriter::new(std::io::stdout().lock())),
    };
    writeln!(out, "task\tlabel\tconfidence")?;
    for t in 0..answers.n_tasks() {
        writeln!(
            out,
            "{}\t{}\t{}",
            answers.task_name(t),
            fit.label(t),
            fit.confidence(t)
        )?;
    }
    out.flush()?;
    if let Some(path) = &args.skills {
        let mut out = BufWriter::new(File::create(path)?);
        writeln!(out, "worker\tskill")?;
        for w in 0..answers.n_workers() {
            writeln!(out, "{}\t{}", answers.worker_name(w), fit.skill(w))?;
        }
        out.flush()?;
    }
    Ok(())
}

fn fit(args: &Args, answers: &Answers, gold: Option<&Gold>) -> Result<Aggregation, BoxError> {
    let (n_iter, tol) = (args.n_iter, args.tol);
    let ties = match args.ties {
        TiesArg::Sorted => TieBreak::Sorted,
        TiesArg::FirstSeen => TieBreak::FirstSeen,
    };
    Ok(match args.method {
        MethodArg::Mv => MajorityVote {
            ties,
            ..MajorityVote::default()
        }
        .fit(answers)?,
        MethodArg::Wawa => Wawa { ties }.fit(answers)?,
        MethodArg::Zbs => ZeroBasedSkill::default().fit(answers)?,
        MethodArg::Ds => DawidSkene { n_iter, tol }.fit_with(answers, gold, None)?,
        MethodArg::Onecoin => OneCoinDawidSkene { n_iter, tol }.fit(answers)?,
        MethodArg::Glad => Glad {
            n_iter,
            tol,
            ..Glad::default()
        }
        .fit(answers)?,
    })
}

/// A CSV reader over `path` with the delimiter from the flag or the extension, and a progress
/// bar over the bytes read.
fn reader(
    path: &Path,
    delimiter: Option<Delimiter>,
) -> Result<(csv::Reader<impl std::io::Read>, ProgressBar), BoxError> {
    let file = File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let tab = match delimiter {
        Some(d) => matches!(d, Delimiter::Tab),
        None => matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("tsv" | "tab")
        ),
    };
    let bar = ProgressBar::new(file.metadata()?.len());
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:40}] {bytes}/{total_bytes} ({eta})")?
            .progress_chars("=> "),
    );
    bar.set_message(path.display().to_string());
    let reader = csv::ReaderBuilder::new()
        .delimiter(if tab { b'\t' } else { b',' })
        .buffer_capacity(1 << 20)
        .from_reader(bar.wrap_read(file));
    Ok((reader, bar))
}

fn column(headers: &csv::ByteRecord, names: &[&str], path: &Path) -> Result<usize, BoxError> {
    headers
        .iter()
        .position(|h| names.iter().any(|n| h == n.as_bytes()))
        .ok_or_else(|| format!("{}: no column named {}", path.display(), names.join(" or ")).into())
}

fn read_answers(path: &Path, delimiter: Option<Delimiter>) -> Result<Answers, BoxError> {
    let (mut reader, bar) = reader(path, delimiter)?;
    let headers = reader.byte_headers()?.clone();
    let (t, w, l) = (
        column(&headers, &["task"], path)?,
        column(&headers, &["worker"], path)?,
        column(&headers, &["label"], path)?,
    );
    let mut answers = Answers::new();
    let mut record = csv::StringRecord::new();
    while reader.read_record(&mut record)? {
        answers.push(&record[t], &record[w], &record[l]);
    }
    bar.finish_and_clear();
    Ok(answers)
}

fn read_gold(path: &Path, delimiter: Option<Delimiter>) -> Result<Gold, BoxError> {
    let (mut reader, bar) = reader(path, delimiter)?;
    let headers = reader.byte_headers()?.clone();
    let t = column(&headers, &["task"], path)?;
    let l = column(&headers, &["label", "true_label"], path)?;
    let mut gold = Gold::new();
    for record in reader.records() {
        let record = record?;
        gold.insert(&record[t], &record[l]);
    }
    bar.finish_and_clear();
    Ok(gold)
}
