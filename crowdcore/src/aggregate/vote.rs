//! Majority vote, weighted majority vote, Wawa and Zero-Based Skill.

use super::data::{Answers, Index};
use super::{AggregateError, Aggregation, Method, argmax, argmax_in, argmax_rows};

/// How an *unweighted* vote ([`MajorityVote::fit`], the first vote of [`Wawa`]) breaks a tie
/// between classes with as many answers. crowd-kit 1.4.2's rule depends on the pandas it runs
/// on, and this reproduces either. Weighted votes ([`MajorityVote::fit_weighted`], Wawa's second
/// vote, [`ZeroBasedSkill`]) always take the class that sorts first, as crowd-kit does on every
/// pandas (`groupby` sorts its keys).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum TieBreak {
    /// The class that sorts first (byte-wise), whatever order the answers come in: crowd-kit on
    /// pandas < 3, where `value_counts()` groups with sorted keys, `unstack("label")` keeps them
    /// as sorted columns and `idxmax` takes the first maximum. The committed parity references
    /// are made this way.
    #[default]
    Sorted,
    /// The class whose first answer was pushed first into [`Answers`] (over all tasks, not per
    /// task): crowd-kit on pandas ≥ 3, whose `value_counts()` groups in order of appearance, so
    /// the label columns, and `idxmax`'s ties, follow the order labels first appear in the data.
    /// The result then depends on the order of the answers.
    FirstSeen,
}

impl TieBreak {
    /// Each task's label under this rule (row-major `n_tasks × k` probabilities).
    fn labels(self, idx: &Index, probas: &[f64]) -> Vec<u32> {
        match self {
            TieBreak::Sorted => argmax_rows(probas, idx.k),
            TieBreak::FirstSeen => probas
                .chunks_exact(idx.k)
                .map(|row| argmax_in(row, &idx.first_seen))
                .collect(),
        }
    }
}

/// How [`MajorityVote::fit_weighted`] treats a worker without a given skill (crowd-kit's
/// `on_missing_skill`).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum MissingSkill {
    /// Refuse with [`AggregateError::MissingSkill`].
    #[default]
    Error,
    /// Drop that worker's answers; a task left without answers is
    /// [`AggregateError::NoSkilledAnswer`].
    Ignore,
    /// Use this skill.
    Value(f64),
}

/// **Majority vote**: each task gets the label with the most answers, or, weighted, the largest
/// sum of its workers' skills. Probabilities are the vote shares.
///
/// Ties go to the class that sorts first byte-wise (crowd-kit: the first column of its sorted
/// label columns), so the result is deterministic; [`TieBreak::FirstSeen`] reproduces crowd-kit
/// on pandas 3 instead. Worker skill = the fraction of the worker's (distinct) answers that
/// equal the result.
#[derive(Debug, Clone, Copy, Default)]
pub struct MajorityVote {
    /// What to do with workers missing from the skills given to [`fit_weighted`](Self::fit_weighted).
    pub missing_skill: MissingSkill,
    /// How [`fit`](Self::fit) breaks ties ([`fit_weighted`](Self::fit_weighted): always sorted).
    pub ties: TieBreak,
}

impl MajorityVote {
    /// Plain majority vote.
    pub fn fit(&self, answers: &Answers) -> Result<Aggregation, AggregateError> {
        let idx = Index::build(answers)?;
        let probas = vote(&idx, None);
        let labels = self.ties.labels(&idx, &probas);
        let skills = accuracy(&idx, &labels, None);
        Ok(Aggregation::with_labels(
            Method::MajorityVote,
            &idx,
            probas,
            skills,
            labels,
        ))
    }

    /// Weighted majority vote with given worker skills (workers named in `skills` but absent
    /// from `answers` are ignored). Skills must be finite and ≥ 0. A task whose answers all
    /// weigh 0 falls back to plain vote shares (crowd-kit would produce `NaN`).
    pub fn fit_weighted<S: AsRef<str>>(
        &self,
        answers: &Answers,
        skills: impl IntoIterator<Item = (S, f64)>,
    ) -> Result<Aggregation, AggregateError> {
        let idx = Index::build(answers)?;
        let mut weights = vec![f64::NAN; idx.n_workers];
        for (name, skill) in skills {
            if let Some(w) = answers.worker_index(name.as_ref()) {
                weights[w] = skill;
            }
        }
        for (w, weight) in weights.iter_mut().enumerate() {
            if weight.is_nan() {
                match self.missing_skill {
                    MissingSkill::Error => {
                        return Err(AggregateError::MissingSkill {
                            worker: answers.worker_name(w).to_owned(),
                        });
                    }
                    MissingSkill::Ignore => continue,
                    MissingSkill::Value(v) => *weight = v,
                }
            }
            if !weight.is_finite() || *weight < 0.0 {
                return Err(AggregateError::InvalidSkill {
                    worker: answers.worker_name(w).to_owned(),
                    skill: *weight,
                });
            }
        }
        let ignoring = weights.iter().any(|w| w.is_nan());
        if ignoring {
            for t in 0..idx.n_tasks {
                if idx
                    .task_range(t)
                    .all(|p| weights[idx.t_worker[p] as usize].is_nan())
                {
                    return Err(AggregateError::NoSkilledAnswer {
                        task: answers.task_name(t).to_owned(),
                    });
                }
            }
        }
        let probas = vote(&idx, Some(&weights));
        let ignored = ignoring.then_some(weights.as_slice());
        Ok(with_accuracy(Method::MajorityVote, &idx, probas, ignored))
    }
}

/// **Wawa** (worker agreement with aggregate): a majority vote, then each worker's skill = their
/// agreement with it, then a majority vote weighted by those skills.
///
/// A tied first vote still has a label that the skills count: on a 1-1-1 task the worker who
/// gave the label the tie went to scores a hit, the other two a miss. The first vote breaks its
/// ties per [`ties`](Self::ties) (by default the class that sorts first, in any answer order),
/// the weighted vote always in sorted order: crowd-kit 1.4.2's rules (see "Ties" in the module
/// docs). `synth_overlap3` in the parity data has a tie in 9 % of its first votes.
#[derive(Debug, Clone, Copy, Default)]
pub struct Wawa {
    /// How the first (unweighted) vote breaks ties.
    pub ties: TieBreak,
}

impl Wawa {
    /// Fits Wawa. Skills are the agreement with the plain majority vote.
    pub fn fit(&self, answers: &Answers) -> Result<Aggregation, AggregateError> {
        let idx = Index::build(answers)?;
        let mv = vote(&idx, None);
        let skills = accuracy(&idx, &self.ties.labels(&idx, &mv), None);
        let probas = vote(&idx, Some(&skills));
        Ok(Aggregation::new(Method::Wawa, &idx, probas, skills))
    }
}

/// **Zero-Based Skill**: weighted majority vote, re-estimating skills by a gradient step towards
/// each worker's agreement with the current result, `n_iter` times with a stepwise decaying
/// learning rate. Skills start at `1 / classes + eps`.
///
/// As in crowd-kit 1.4.2, the loop always runs all `n_iter` iterations (`eps` only offsets the
/// initial skill). Its votes are all weighted, so their ties go to the class that sorts first,
/// and the skills count that class as the tied vote's label (crowd-kit: the same on every
/// pandas).
#[derive(Debug, Clone, Copy)]
pub struct ZeroBasedSkill {
    /// Iterations (crowd-kit: 100).
    pub n_iter: usize,
    /// Initial learning rate (1.0).
    pub lr_init: f64,
    /// The learning rate is multiplied by `lr_reduce_factor` every this many iterations (20).
    pub lr_steps_to_reduce: usize,
    /// See `lr_steps_to_reduce` (0.5).
    pub lr_reduce_factor: f64,
    /// Added to the initial skill `1 / classes` (1e-5).
    pub eps: f64,
}

impl Default for ZeroBasedSkill {
    fn default() -> Self {
        Self {
            n_iter: 100,
            lr_init: 1.0,
            lr_steps_to_reduce: 20,
            lr_reduce_factor: 0.5,
            eps: 1e-5,
        }
    }
}

impl ZeroBasedSkill {
    /// Fits Zero-Based Skill.
    pub fn fit(&self, answers: &Answers) -> Result<Aggregation, AggregateError> {
        if self.lr_steps_to_reduce == 0 {
            return Err(AggregateError::InvalidConfig(
                "lr_steps_to_reduce must be > 0",
            ));
        }
        let idx = Index::build(answers)?;
        let mut skills = vec![1.0 / idx.k as f64 + self.eps; idx.n_workers];
        let mut lr = self.lr_init;
        let mut labels = Vec::new();
        for iteration in 1..=self.n_iter {
            if iteration % self.lr_steps_to_reduce == 0 {
                lr *= self.lr_reduce_factor;
            }
            let probas = vote(&idx, Some(&skills));
            labels.clear();
            labels.extend(probas.chunks_exact(idx.k).map(argmax));
            let acc = accuracy(&idx, &labels, None);
            for (s, a) in skills.iter_mut().zip(&acc) {
                *s += lr * (a - *s);
            }
        }
        let probas = vote(&idx, Some(&skills));
        let mut agg = Aggregation::new(Method::ZeroBasedSkill, &idx, probas, skills);
        agg.iterations = self.n_iter;
        Ok(agg)
    }
}

fn with_accuracy(
    method: Method,
    idx: &Index,
    probas: Vec<f64>,
    ignored: Option<&[f64]>,
) -> Aggregation {
    let labels = argmax_rows(&probas, idx.k);
    let skills = accuracy(idx, &labels, ignored);
    Aggregation::new(method, idx, probas, skills)
}

/// Vote shares per task (row-major `n_tasks × k`). With `weights`, each answer counts its
/// worker's weight (a `NaN` weight drops the answer), summed per class with Kahan compensation
/// in input order as pandas' `groupby().sum()` does; a task whose weights sum to 0 falls back to
/// plain counts.
pub(crate) fn vote(idx: &Index, weights: Option<&[f64]>) -> Vec<f64> {
    let mut probas = vec![0.0; idx.n_tasks * idx.k];
    vote_into(idx, weights, 0, &mut probas);
    probas
}

/// [`vote`] for tasks `first..`, written into their rows of `probas`.
pub(crate) fn vote_into(idx: &Index, weights: Option<&[f64]>, first: usize, probas: &mut [f64]) {
    let k = idx.k;
    let mut comp = vec![0.0; k];
    for (t, row) in probas.chunks_exact_mut(k).enumerate().skip(first) {
        let range = idx.task_range(t);
        let mut weighted = false;
        if let Some(weights) = weights {
            comp.iter_mut().for_each(|c| *c = 0.0);
            for p in range.clone() {
                let w = weights[idx.t_worker[p] as usize];
                if w.is_nan() {
                    continue;
                }
                let c = idx.t_class[p] as usize;
                let y = w - comp[c];
                let s = row[c] + y;
                comp[c] = (s - row[c]) - y;
                row[c] = s;
            }
            weighted = row.iter().sum::<f64>() > 0.0;
            if !weighted {
                row.iter_mut().for_each(|v| *v = 0.0);
            }
        }
        if !weighted {
            for p in range {
                row[idx.t_class[p] as usize] += 1.0;
            }
        }
        let total: f64 = row.iter().sum();
        row.iter_mut().for_each(|v| *v /= total);
    }
}

/// Each worker's share of (distinct, not ignored) answers equal to `labels`; `NaN` if none.
pub(crate) fn accuracy(idx: &Index, labels: &[u32], ignored: Option<&[f64]>) -> Vec<f64> {
    let mut hits = vec![0.0; idx.n_workers];
    let mut count = vec![0.0; idx.n_workers];
    for (t, &label) in labels.iter().enumerate() {
        for p in idx.task_range(t) {
            if !idx.t_dup.is_empty() && idx.t_dup[p] {
                continue;
            }
            let w = idx.t_worker[p] as usize;
            if ignored.is_some_and(|weights| weights[w].is_nan()) {
                continue;
            }
            count[w] += 1.0;
            if idx.t_class[p] == label {
                hits[w] += 1.0;
            }
        }
    }
    hits.iter()
        .zip(&count)
        .map(|(h, c)| if *c > 0.0 { h / c } else { f64::NAN })
        .collect()
}
