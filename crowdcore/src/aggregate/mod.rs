//! Answer aggregation: infer each task's true label from several workers' answers, and rate
//! the workers.
//!
//! Pure, like the machines: no I/O, no clock, no randomness, no threads. The same answers in the
//! same order give the same result, bit for bit. Categorical methods with the semantics of
//! [crowd-kit](https://github.com/Toloka/crowd-kit) 1.4.2:
//!
//! | method | model | worker skill |
//! |---|---|---|
//! | [`MajorityVote`] | most answers, or largest sum of given skills ([`MajorityVote::fit_weighted`]) | agreement with the result |
//! | [`Wawa`] | majority vote weighted by agreement with the plain majority vote | that agreement |
//! | [`ZeroBasedSkill`] | weighted vote; skills stepped towards agreement, 100 times | the final skill |
//! | [`DawidSkene`] | full confusion matrix per worker, EM; gold labels, initial error matrices | expected accuracy `Σ_c prior·P(c∣c)` |
//! | [`OneCoinDawidSkene`] | one accuracy per worker, EM | that accuracy |
//! | [`Glad`] | ability α per worker × difficulty β per task, EM + conjugate gradients | α |
//!
//! Every method returns an [`Aggregation`]: per task the label and the probability of every
//! class; per worker a skill; the Dawid–Skene methods add confusion matrices and priors, GLAD
//! the task difficulties.
//!
//! ```
//! use crowdcore::aggregate::{Answers, DawidSkene, MajorityVote};
//!
//! let mut answers = Answers::new();
//! for (task, worker, label) in [("t1", "ann", "cat"), ("t1", "bob", "dog"), ("t1", "eve", "cat"),
//!                               ("t2", "ann", "dog"), ("t2", "bob", "dog")] {
//!     answers.push(task, worker, label);
//! }
//! let mv = MajorityVote::default().fit(&answers)?;
//! let t1 = answers.task_index("t1").unwrap();
//! assert_eq!((mv.label(t1), mv.probas(t1)), ("cat", &[2.0 / 3.0, 1.0 / 3.0][..]));
//!
//! // More answers arrive: refit warm-started from the previous Dawid–Skene fit.
//! let ds = DawidSkene::default();
//! let before = ds.fit(&answers)?;
//! answers.push("t3", "eve", "cat");
//! answers.push("t3", "bob", "cat");
//! let after = ds.refit(&answers, &before, None)?;
//! assert_eq!(after.n_tasks(), 3);
//! println!("t3: {} ({:.3})", after.label(2), after.confidence(2));
//! # Ok::<(), crowdcore::aggregate::AggregateError>(())
//! ```
//!
//! ## Layout and speed
//!
//! [`Answers`] interns task, worker and label strings once, to dense `u32` indices, and keeps
//! the answers as three flat arrays. Each fit lays them out by task (and, for the one-coin
//! model, by worker) as CSR arrays — offsets plus flat worker/class columns — and runs its loops
//! over those and over flat `f64` arrays (`tasks × classes` posteriors, `workers × classes ×
//! classes` confusion matrices): no hashing and no allocation inside an iteration.
//!
//! On 1 M answers (100 k tasks × 10, 1 k workers, 5 classes; `benches/benches/aggregate.rs`,
//! commands and details in `benches/README.md`; 2 shared cores): majority vote fits in 13 ms
//! and Dawid–Skene (4 EM iterations to crowd-kit's tolerance) in 99 ms; a warm-started refit
//! after 1 % more answers takes 57 ms. End to end — the `aggregate` example reading the 15 MB
//! TSV and writing the labels, under `/usr/bin/time -v` — 0.18 s / 36 MB (majority vote) and
//! 0.25 s / 37 MB (Dawid–Skene), against crowd-kit's 3.6 s / 468 MB and 9.5 s / 577 MB on the
//! same file and machine: 20× and 38× faster (wall; 25× and 34× in CPU time), 1/13 and 1/16 the
//! memory. The fits alone are 65–85× faster.
//!
//! ## Incremental use
//!
//! [`Answers`] only grows, so indices stay valid. [`DawidSkene::refit`],
//! [`OneCoinDawidSkene::refit`] and [`Glad::refit`] take the previous fit of the same answers
//! and start EM from it (previous posteriors, or α and β, for what it knew; the majority vote,
//! or 1, for new tasks and workers) instead of from scratch. EM then stops after fewer
//! iterations at an optimum as good as a cold fit's (`tests/aggregate.rs` checks labels and the
//! final bound against a cold fit; the bench measures the time).
//!
//! ## Bad input
//!
//! - No answers: [`AggregateError::Empty`], for every method (crowd-kit returns empty frames or
//!   fails inside pandas).
//! - A task with one answer: aggregated like any other (majority vote gives it probability 1;
//!   the EM methods weigh that worker's reliability).
//! - Labels of mixed types: labels are strings, compared byte-wise. `"1"` and `"1.0"` are two
//!   classes; classes sort byte-wise (`"10"` before `"9"`), which is also the tie-breaking order.
//!   Zero-pad numeric labels if their order matters.
//! - Ties, in every vote (plain, weighted, and the inner votes of Wawa and Zero-Based Skill
//!   whose labels the skills are measured against): by default the class that sorts first,
//!   whatever order the answers come in. That is crowd-kit's rule on pandas < 3:
//!   `MajorityVote` counts with `value_counts()` (or sums skills with
//!   `groupby(["task", "label"])`), both of which group with sorted keys; `unstack("label")`
//!   keeps the labels as columns in that sorted order; `get_most_probable_labels` is
//!   `idxmax(axis="columns")`, the first maximum. On pandas ≥ 3 (what an unpinned
//!   `pip install crowd-kit==1.4.2` gets) `value_counts()` groups in order of appearance, so
//!   crowd-kit's *plain* votes — `MajorityVote` without skills and Wawa's first vote — give
//!   ties to the label that appears first in the data; [`TieBreak::FirstSeen`] does the same.
//!   Weighted votes sort on every pandas, so Zero-Based Skill is the same on both.
//! - Gold for tasks without answers: ignored, as crowd-kit does, and counted in
//!   [`Aggregation::ignored_gold`]; a gold label nobody gave: [`AggregateError::UnknownGoldLabel`].
//! - Duplicate answers (same worker, task, label): kept and counted in votes; counted once in
//!   the agreement skills (both as crowd-kit).
//! - Skills for weighted votes: missing ones per [`MissingSkill`]; negative or non-finite ones:
//!   [`AggregateError::InvalidSkill`].
//! - Nothing panics on input; every refusal is an [`AggregateError`].
//!
//! ## Parity with crowd-kit 1.4.2
//!
//! `tests/aggregate_parity.rs` compares every method on seven committed datasets
//! (`tests/data/aggregate/`: a hand-made one and six seeded synthetic ones with known truth —
//! mixed worker quality, spammers and biased workers, class imbalance, sparse overlap,
//! class confusions, and overlap 3 over 6000 tasks and 600 workers, where 9 % of the first
//! votes are 1-1-1 ties — made by `generate.py`) with crowd-kit's outputs (made by
//! `reference.py`, committed under `ref/`; crowd-kit 1.4.2, scikit-learn 1.5.2, pandas 2.3.3,
//! numpy 2.4.6, scipy 1.17.1). References are written with 12 significant digits, so 5e-13 is
//! "equal". `ref/pandas3/` holds the votes (mv, wawa, zbs) of all seven sets made on pandas
//! 3.1.2, which crowdcore matches with [`TieBreak::FirstSeen`] just as closely (100 %, 5e-13);
//! with the default rule it agrees there on 86.8–100 % of the majority-vote labels and
//! 92.3–100 % of Wawa's (98.3 % on synth_overlap3).
//!
//! | method | label agreement (all sets) | max probability difference | max skill / confusion difference |
//! |---|---|---|---|
//! | MajorityVote | 100 % | 5e-13 | 5e-13 |
//! | Wawa | 100 % | 5e-13 | 5e-13 |
//! | ZeroBasedSkill | 100 % | 5e-13 | 5e-13 |
//! | DawidSkene (plain, with gold, with initial errors) | 100 % | 5e-13 | 5e-13 |
//! | OneCoinDawidSkene | 100 % | 5e-13 | 5e-13 |
//! | GLAD | 100 % | ≤ 6e-11 on 5 sets; 2.3e-4 (synth_mixed), 1.1e-2 (synth_spammy) | same |
//!
//! Differences, all intended:
//!
//! - **GLAD's drift.** Same algorithm: the M-step is SciPy's CG (Polak–Ribière, the MINPACK
//!   `dcsrch` line search and its Wolfe fallback) ported line by line. But that M-step stops at
//!   25 iterations short of convergence, so the 1e-12 differences of summation order (pandas
//!   groups and sums in its own order) grow with every EM iteration: where EM stops after 2
//!   iterations GLAD matches to 1e-9; after 8 and 20 iterations (synth_mixed, synth_spammy) it
//!   differs by up to 2e-4 and 1e-2, and on synth_spammy stops one iteration later. crowd-kit's
//!   own result moves as much with another pandas version. The parity test allows 2.5e-2 for
//!   GLAD; labels agree everywhere.
//! - **Labels are strings** (see above); crowd-kit keeps pandas' dtypes, so integer labels sort
//!   numerically there.
//! - **Empty input** is an error (above).
//! - **Weighted majority vote**: a task whose weights sum to 0 gets plain vote shares (crowd-kit:
//!   `NaN` probabilities and label); negative or non-finite skills are refused.
//! - **Worker skill for Dawid–Skene** is crowdcore's (expected accuracy); crowd-kit has none.
//!   **Confusion-matrix rows** for labels a worker never gave are 0 (crowd-kit has no such
//!   rows). With [`MissingSkill::Ignore`], a worker whose answers were all dropped has skill
//!   `NaN` (crowd-kit omits them).
//! - **One class only**: every method returns it with probability 1 (crowd-kit's GLAD divides
//!   by `log(k − 1) = −∞` and returns `NaN`).
//! - **Initial error matrices** naming a worker without answers are ignored; naming a label
//!   nobody gave is [`AggregateError::InvalidInitialError`] (crowd-kit would add a column).
//! - Kept on purpose: crowd-kit's Dawid–Skene posteriors are clipped at 1e-10 (its ELBO clips
//!   them in place), Zero-Based Skill always runs its 100 iterations, the initial error matrix
//!   only shapes the first M-step.
//!
//! ## Accuracy against the known truth
//!
//! `cargo test -p crowdcore --test aggregate_parity accuracy -- --nocapture`:
//!
//! | dataset | mv | wawa | zbs | ds | onecoin | glad |
//! |---|---|---|---|---|---|---|
//! | synth_mixed (3 classes; good, medium, spammers) | 89.2 % | 93.5 % | 94.0 % | 95.2 % | 96.2 % | 96.5 % |
//! | synth_spammy (2 classes; 50 % spammers, 20 % biased) | 72.2 % | 72.2 % | 72.2 % | 83.8 % | 51.3 % | 82.9 % |
//! | synth_imbalance (4 classes, 75/15/7/3 %) | 96.3 % | 95.0 % | 95.0 % | 86.5 % | 96.3 % | 95.0 % |
//! | synth_sparse (1–3 answers per task, 300 workers) | 81.2 % | 81.7 % | 81.9 % | 73.5 % | 80.1 % | 81.6 % |
//! | synth_confusion (5 classes, class confusions) | 90.8 % | 92.2 % | 92.2 % | 98.0 % | 92.2 % | 92.0 % |
//! | synth_overlap3 (4 classes, 3 answers per task, 600 workers) | 88.4 % | 89.6 % | 89.6 % | 85.7 % | 89.3 % | 89.6 % |
//!
//! Dawid–Skene wins where workers confuse classes in structured ways and loses where its
//! `k × k` matrices per worker are estimated from too few answers (sparse overlap, rare
//! classes); the one-coin model cannot represent a worker who always answers one class.

mod cg;
mod data;
mod ds;
mod glad;
mod vote;

pub use data::Answers;
pub use ds::{DawidSkene, Gold, InitialError, InitialErrorStrategy, OneCoinDawidSkene};
pub use glad::Glad;
pub use vote::{MajorityVote, MissingSkill, TieBreak, Wawa, ZeroBasedSkill};

use data::Index;

/// Why an aggregation could not be made. Nothing is half-done: an error means no result.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AggregateError {
    /// There are no answers at all.
    #[error("no answers to aggregate")]
    Empty,
    /// More answers than the `u32` offsets of the flat index can hold.
    #[error("too many answers: {0}")]
    TooManyAnswers(usize),
    /// A gold label is not among the labels that workers gave.
    #[error("gold label {label:?} for task {task:?} is not among the answered labels")]
    UnknownGoldLabel {
        /// The gold task.
        task: String,
        /// Its gold label.
        label: String,
    },
    /// Weighted majority vote: a worker has no skill and [`MissingSkill::Error`] was asked for.
    #[error("worker {worker:?} has no skill")]
    MissingSkill {
        /// The worker.
        worker: String,
    },
    /// Weighted majority vote with [`MissingSkill::Ignore`]: no answer of this task is by a
    /// worker with a known skill.
    #[error("task {task:?} has no answer by a worker with a known skill")]
    NoSkilledAnswer {
        /// The task.
        task: String,
    },
    /// A skill (vote weight) is negative or not finite.
    #[error("skill {skill} of worker {worker:?} is negative or not finite")]
    InvalidSkill {
        /// The worker.
        worker: String,
        /// The offending value.
        skill: f64,
    },
    /// [`InitialErrorStrategy::Assign`]: a worker's answers use a label that has no row in the
    /// initial error matrix.
    #[error("initial error has no row for worker {worker:?} and label {label:?}")]
    MissingInitialError {
        /// The worker.
        worker: String,
        /// The observed label without a row.
        label: String,
    },
    /// [`InitialErrorStrategy::Assign`] with probabilities (every value ≤ 1) whose columns do
    /// not sum to 1 for some worker.
    #[error("initial error of worker {worker:?} looks like probabilities but does not sum to 1")]
    InitialErrorNotNormalized {
        /// The worker.
        worker: String,
    },
    /// An initial error value is negative or not finite, or names a label nobody answered.
    #[error("invalid initial error entry for worker {worker:?}: {reason}")]
    InvalidInitialError {
        /// The worker.
        worker: String,
        /// What is wrong.
        reason: String,
    },
    /// A previous fit given for a warm start does not belong to these answers (other method,
    /// other classes, or more tasks or workers than the answers have).
    #[error("previous fit cannot warm-start this one: {0}")]
    WarmStartMismatch(&'static str),
    /// A configuration value is out of range.
    #[error("invalid configuration: {0}")]
    InvalidConfig(&'static str),
}

/// The aggregation methods.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    /// [`MajorityVote`], plain or weighted.
    MajorityVote,
    /// [`Wawa`].
    Wawa,
    /// [`ZeroBasedSkill`].
    ZeroBasedSkill,
    /// [`DawidSkene`].
    DawidSkene,
    /// [`OneCoinDawidSkene`].
    OneCoinDawidSkene,
    /// [`Glad`].
    Glad,
}

/// The result of an aggregation, indexed like the [`Answers`] it was fitted on.
///
/// Per task (`0..n_tasks()`, see [`Answers::task_name`]): the label and the probability of every
/// class. Per worker (`0..n_workers()`): a skill, and for the Dawid–Skene methods a confusion
/// matrix. Like slice indexing, the per-task and per-worker getters panic on an index out of
/// range.
#[derive(Debug, Clone)]
pub struct Aggregation {
    method: Method,
    classes: Vec<Box<str>>,
    n_tasks: usize,
    n_workers: usize,
    labels: Vec<u32>,
    probas: Vec<f64>,
    skills: Vec<f64>,
    errors: Option<Vec<f64>>,
    priors: Option<Vec<f64>>,
    difficulties: Option<Vec<f64>>,
    iterations: usize,
    loss_history: Vec<f64>,
    ignored_gold: usize,
}

impl Aggregation {
    fn new(method: Method, idx: &Index, probas: Vec<f64>, skills: Vec<f64>) -> Self {
        let labels = argmax_rows(&probas, idx.k);
        Self::with_labels(method, idx, probas, skills, labels)
    }

    /// [`new`](Self::new) with the labels already chosen (a vote's ties broken otherwise).
    fn with_labels(
        method: Method,
        idx: &Index,
        probas: Vec<f64>,
        skills: Vec<f64>,
        labels: Vec<u32>,
    ) -> Self {
        Self {
            method,
            classes: idx.classes.clone(),
            n_tasks: idx.n_tasks,
            n_workers: idx.n_workers,
            labels,
            probas,
            skills,
            errors: None,
            priors: None,
            difficulties: None,
            iterations: 0,
            loss_history: Vec::new(),
            ignored_gold: 0,
        }
    }

    /// The method that made this result.
    pub fn method(&self) -> Method {
        self.method
    }

    /// The classes, sorted byte-wise; `probas` rows follow this order.
    pub fn classes(&self) -> &[Box<str>] {
        &self.classes
    }

    /// The number of tasks.
    pub fn n_tasks(&self) -> usize {
        self.n_tasks
    }

    /// The number of workers.
    pub fn n_workers(&self) -> usize {
        self.n_workers
    }

    /// The inferred label of task `t`.
    pub fn label(&self, t: usize) -> &str {
        &self.classes[self.labels[t] as usize]
    }

    /// The class index (into [`classes`](Self::classes)) of task `t`'s label.
    pub fn label_index(&self, t: usize) -> usize {
        self.labels[t] as usize
    }

    /// The probability of each class for task `t`, in class order.
    pub fn probas(&self, t: usize) -> &[f64] {
        let k = self.classes.len();
        &self.probas[t * k..(t + 1) * k]
    }

    /// The probability of task `t`'s label.
    pub fn confidence(&self, t: usize) -> f64 {
        self.probas(t)[self.labels[t] as usize]
    }

    /// Worker `w`'s skill. Its meaning depends on the method (see the module docs): accuracy
    /// against the result for the voting methods, the one-coin accuracy for
    /// [`OneCoinDawidSkene`], the expected accuracy for [`DawidSkene`], α for [`Glad`]. `NaN`
    /// for a worker whose every answer was ignored.
    pub fn skill(&self, w: usize) -> f64 {
        self.skills[w]
    }

    /// All skills, by worker index.
    pub fn skills(&self) -> &[f64] {
        &self.skills
    }

    /// Dawid–Skene methods: worker `w`'s confusion matrix, row-major `[observed][true]`:
    /// `m[o * k + c]` = P(worker answers class `o` | true class `c`). Rows of labels the worker
    /// never gave are 0 (crowd-kit leaves them out).
    pub fn confusion(&self, w: usize) -> Option<&[f64]> {
        let k = self.classes.len();
        self.errors.as_ref().map(|e| &e[w * k * k..(w + 1) * k * k])
    }

    /// Dawid–Skene methods: the class priors.
    pub fn priors(&self) -> Option<&[f64]> {
        self.priors.as_deref()
    }

    /// GLAD: each task's β (log inverse difficulty; the model uses `exp(β)`).
    pub fn difficulties(&self) -> Option<&[f64]> {
        self.difficulties.as_deref()
    }

    /// The number of iterations run (EM iterations; 0 for the one-shot votes).
    pub fn iterations(&self) -> usize {
        self.iterations
    }

    /// The loss after each iteration, as crowd-kit's `loss_history_` (EM methods only).
    pub fn loss_history(&self) -> &[f64] {
        &self.loss_history
    }

    /// Gold labels whose task has no answers (ignored, as crowd-kit does).
    pub fn ignored_gold(&self) -> usize {
        self.ignored_gold
    }
}

/// The index of the first maximum of each row of `k` values.
fn argmax_rows(probas: &[f64], k: usize) -> Vec<u32> {
    probas.chunks_exact(k).map(argmax).collect()
}

/// The first maximum of `row` visiting its classes in `order`: ties go to the class that comes
/// first in `order`. NaNs never win.
#[inline]
fn argmax_in(row: &[f64], order: &[u32]) -> u32 {
    let mut best = 0;
    let mut best_v = f64::NEG_INFINITY;
    for &c in order {
        let v = row[c as usize];
        if v > best_v {
            best = c;
            best_v = v;
        }
    }
    best
}

/// The first maximum: ties go to the class that sorts first. NaNs never win.
#[inline]
fn argmax(row: &[f64]) -> u32 {
    let mut best = 0;
    let mut best_v = f64::NEG_INFINITY;
    for (i, &v) in row.iter().enumerate() {
        if v > best_v {
            best = i;
            best_v = v;
        }
    }
    best as u32
}
