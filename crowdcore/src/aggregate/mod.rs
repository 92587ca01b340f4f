//! Answer aggregation: infer each task's true label from several workers' answers, and rate
//! the workers.
//!
//! DOCS_PLACEHOLDER

mod cg;
mod data;
mod ds;
mod glad;
mod vote;

pub use data::Answers;
pub use ds::{DawidSkene, Gold, InitialError, InitialErrorStrategy, OneCoinDawidSkene};
pub use glad::Glad;
pub use vote::{MajorityVote, MissingSkill, Wawa, ZeroBasedSkill};

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
/// matrix.
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
