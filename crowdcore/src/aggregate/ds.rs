//! Dawid–Skene and one-coin Dawid–Skene, fitted by EM.

use rustc_hash::FxHashMap;

use super::data::{Answers, Index};
use super::vote::{vote, vote_into};
use super::{AggregateError, Aggregation, Method, argmax_rows};

/// crowd-kit's `_EPS`: probabilities are clipped from below at 1e-10.
const EPS: f64 = 1e-10;

/// **Dawid–Skene**: each worker has a full confusion matrix; EM alternates the task posteriors
/// (E-step) and the confusion matrices and class priors (M-step), starting from the majority
/// vote, until the evidence lower bound per answer improves by less than `tol` or after `n_iter`
/// iterations.
///
/// Worker skill (crowdcore's, crowd-kit has none for this model) = the expected accuracy
/// `Σ_c prior[c] · P(answer c | true c)`.
///
/// ```
/// use crowdcore::aggregate::{Answers, DawidSkene};
/// let answers: Answers = [("t1", "ann", "cat"), ("t1", "bob", "dog"), ("t1", "eve", "cat")]
///     .into_iter()
///     .collect();
/// let fit = DawidSkene::default().fit(&answers)?;
/// assert_eq!(fit.label(answers.task_index("t1").unwrap()), "cat");
/// # Ok::<(), crowdcore::aggregate::AggregateError>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct DawidSkene {
    /// The maximum number of EM iterations (crowd-kit: 100).
    pub n_iter: usize,
    /// Stop when the loss (ELBO per answer) improves by less than this (1e-5).
    pub tol: f64,
}

impl Default for DawidSkene {
    fn default() -> Self {
        Self {
            n_iter: 100,
            tol: 1e-5,
        }
    }
}

/// **One-coin Dawid–Skene**: Dawid–Skene where a worker's confusion matrix has one parameter,
/// their accuracy `s`: `P(answer c | true c) = s`, any other answer `(1 - s) / (k - 1)`.
/// Worker skill = `s`.
#[derive(Debug, Clone, Copy)]
pub struct OneCoinDawidSkene {
    /// The maximum number of EM iterations (crowd-kit: 100).
    pub n_iter: usize,
    /// Stop when the loss (ELBO per answer) improves by less than this (1e-5).
    pub tol: f64,
}

impl Default for OneCoinDawidSkene {
    fn default() -> Self {
        Self {
            n_iter: 100,
            tol: 1e-5,
        }
    }
}

/// Known true labels of some tasks. During EM their posteriors are pinned to the gold label.
///
/// Gold for a task without answers is ignored (as crowd-kit does) and counted in
/// [`Aggregation::ignored_gold`]; a gold label nobody answered is
/// [`AggregateError::UnknownGoldLabel`]. A later entry for the same task wins.
#[derive(Debug, Clone, Default)]
pub struct Gold {
    labels: Vec<(String, String)>,
}

impl Gold {
    /// No gold.
    pub fn new() -> Self {
        Self::default()
    }

    /// Task `task`'s true label is `label`.
    pub fn insert(&mut self, task: impl Into<String>, label: impl Into<String>) {
        self.labels.push((task.into(), label.into()));
    }

    /// The number of entries.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Resolves to `(task index, class)`, sorted by task, last entry per task winning.
    fn resolve(
        &self,
        answers: &Answers,
        idx: &Index,
    ) -> Result<(Vec<(u32, u32)>, usize), AggregateError> {
        let classes: FxHashMap<&str, u32> = idx
            .classes
            .iter()
            .enumerate()
            .map(|(c, name)| (&**name, c as u32))
            .collect();
        let mut by_task = FxHashMap::default();
        let mut ignored = 0;
        for (task, label) in &self.labels {
            let Some(&class) = classes.get(label.as_str()) else {
                return Err(AggregateError::UnknownGoldLabel {
                    task: task.clone(),
                    label: label.clone(),
                });
            };
            match answers.task_index(task) {
                Some(t) => {
                    by_task.insert(t as u32, class);
                }
                None => ignored += 1,
            }
        }
        let mut gold: Vec<(u32, u32)> = by_task.into_iter().collect();
        gold.sort_unstable();
        Ok((gold, ignored))
    }
}

impl<T: Into<String>, L: Into<String>> FromIterator<(T, L)> for Gold {
    fn from_iter<I: IntoIterator<Item = (T, L)>>(iter: I) -> Self {
        let mut gold = Gold::new();
        for (t, l) in iter {
            gold.insert(t, l);
        }
        gold
    }
}

/// How [`InitialError`] enters the first M-step (crowd-kit's `initial_error_strategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitialErrorStrategy {
    /// The given matrices replace the ones estimated from the majority vote. Every
    /// `(worker, label)` that occurs in the answers must have a row. Counts or probabilities;
    /// if every value is ≤ 1 they are taken as probabilities and each worker's columns must sum
    /// to 1.
    Assign,
    /// The given counts are added to the counts estimated from the majority vote; partial
    /// matrices are fine.
    Addition,
}

/// Historical confusion matrices for [`DawidSkene::fit_with`]: entries
/// `(worker, observed label, true label, value)`; cells not given are 0. Workers without
/// answers are ignored. As in crowd-kit, the matrices only shape the first M-step.
#[derive(Debug, Clone)]
pub struct InitialError {
    /// How the matrices are used.
    pub strategy: InitialErrorStrategy,
    entries: Vec<(String, String, String, f64)>,
}

impl InitialError {
    /// No entries yet.
    pub fn new(strategy: InitialErrorStrategy) -> Self {
        Self {
            strategy,
            entries: Vec::new(),
        }
    }

    /// Worker `worker` answered `observed` `value` times (or with that probability) when the
    /// truth was `truth`. Repeated cells add up.
    pub fn insert(
        &mut self,
        worker: impl Into<String>,
        observed: impl Into<String>,
        truth: impl Into<String>,
        value: f64,
    ) {
        self.entries
            .push((worker.into(), observed.into(), truth.into(), value));
    }

    /// Dense matrices `[w][observed][true]` and the rows present `[w][observed]`.
    fn resolve(
        &self,
        answers: &Answers,
        idx: &Index,
    ) -> Result<(Vec<f64>, Vec<bool>), AggregateError> {
        let k = idx.k;
        let class_of = |label: &str| idx.classes.binary_search_by(|c| (**c).cmp(label)).ok();
        let mut m = vec![0.0; idx.n_workers * k * k];
        let mut rows = vec![false; idx.n_workers * k];
        for (worker, observed, truth, value) in &self.entries {
            let invalid = |reason: String| AggregateError::InvalidInitialError {
                worker: worker.clone(),
                reason,
            };
            if !value.is_finite() || *value < 0.0 {
                return Err(invalid(format!("value {value} is negative or not finite")));
            }
            let (Some(o), Some(c)) = (class_of(observed), class_of(truth)) else {
                return Err(invalid(format!(
                    "label {observed:?} or {truth:?} is not among the answered labels"
                )));
            };
            let Some(w) = answers.worker_index(worker) else {
                continue;
            };
            m[(w * k + o) * k + c] += value;
            rows[w * k + o] = true;
        }
        if self.strategy == InitialErrorStrategy::Assign {
            let all_probabilities = self.entries.iter().all(|e| e.3 <= 1.0);
            for p in 0..idx.n_answers() {
                let (w, o) = (idx.t_worker[p] as usize, idx.t_class[p] as usize);
                if !rows[w * k + o] {
                    return Err(AggregateError::MissingInitialError {
                        worker: answers.worker_name(w).to_owned(),
                        label: idx.classes[o].to_string(),
                    });
                }
            }
            for w in 0..idx.n_workers {
                if all_probabilities {
                    for c in 0..k {
                        let sum: f64 = (0..k).map(|o| m[(w * k + o) * k + c]).sum();
                        // numpy.allclose(sum, 1.0): |sum - 1| <= 1e-8 + 1e-5
                        if (sum - 1.0).abs() > 1e-8 + 1e-5 {
                            return Err(AggregateError::InitialErrorNotNormalized {
                                worker: answers.worker_name(w).to_owned(),
                            });
                        }
                    }
                }
            }
        }
        Ok((m, rows))
    }
}

impl DawidSkene {
    /// Fits Dawid–Skene, starting from the majority vote.
    pub fn fit(&self, answers: &Answers) -> Result<Aggregation, AggregateError> {
        self.fit_with(answers, None, None)
    }

    /// Fits Dawid–Skene with gold labels and/or initial confusion matrices.
    pub fn fit_with(
        &self,
        answers: &Answers,
        gold: Option<&Gold>,
        initial_error: Option<&InitialError>,
    ) -> Result<Aggregation, AggregateError> {
        check(self.tol)?;
        let idx = Index::build(answers)?;
        let (gold, ignored) = match gold {
            Some(g) => g.resolve(answers, &idx)?,
            None => (Vec::new(), 0),
        };
        let initial = match initial_error {
            Some(e) => Some((e.strategy, e.resolve(answers, &idx)?)),
            None => None,
        };
        let probas = vote(&idx, None);
        let em = Em {
            idx: &idx,
            gold: &gold,
            one_coin: false,
            n_iter: self.n_iter,
            tol: self.tol,
        };
        let mut agg = em.run(probas, initial);
        agg.ignored_gold = ignored;
        Ok(agg)
    }

    /// Refits after answers were added, warm-started from `previous`, a Dawid–Skene fit of an
    /// earlier state of the same `answers`: EM starts from the previous posteriors for the
    /// tasks it knew and from the majority vote for new tasks, so it usually needs far fewer
    /// iterations than [`fit`](Self::fit). The result is a local optimum of the same
    /// likelihood, normally the same as a cold fit's (see the tests).
    pub fn refit(
        &self,
        answers: &Answers,
        previous: &Aggregation,
        gold: Option<&Gold>,
    ) -> Result<Aggregation, AggregateError> {
        check(self.tol)?;
        let idx = Index::build(answers)?;
        check_previous(previous, Method::DawidSkene, &idx)?;
        let (gold, ignored) = match gold {
            Some(g) => g.resolve(answers, &idx)?,
            None => (Vec::new(), 0),
        };
        let probas = warm_probas(&idx, previous);
        let em = Em {
            idx: &idx,
            gold: &gold,
            one_coin: false,
            n_iter: self.n_iter,
            tol: self.tol,
        };
        let mut agg = em.run(probas, None);
        agg.ignored_gold = ignored;
        Ok(agg)
    }
}

impl OneCoinDawidSkene {
    /// Fits one-coin Dawid–Skene, starting from the majority vote.
    pub fn fit(&self, answers: &Answers) -> Result<Aggregation, AggregateError> {
        check(self.tol)?;
        let idx = Index::with_workers(answers)?;
        let probas = vote(&idx, None);
        Ok(self.em(&idx).run(probas, None))
    }

    /// Refits after answers were added, warm-started from `previous` (a one-coin fit of an
    /// earlier state of the same `answers`); see [`DawidSkene::refit`].
    pub fn refit(
        &self,
        answers: &Answers,
        previous: &Aggregation,
    ) -> Result<Aggregation, AggregateError> {
        check(self.tol)?;
        let idx = Index::with_workers(answers)?;
        check_previous(previous, Method::OneCoinDawidSkene, &idx)?;
        let probas = warm_probas(&idx, previous);
        Ok(self.em(&idx).run(probas, None))
    }

    fn em<'a>(&self, idx: &'a Index) -> Em<'a> {
        Em {
            idx,
            gold: &[],
            one_coin: true,
            n_iter: self.n_iter,
            tol: self.tol,
        }
    }
}

fn check(tol: f64) -> Result<(), AggregateError> {
    if tol.is_nan() {
        return Err(AggregateError::InvalidConfig("tol is NaN"));
    }
    Ok(())
}

pub(crate) fn check_previous(
    previous: &Aggregation,
    method: Method,
    idx: &Index,
) -> Result<(), AggregateError> {
    if previous.method != method {
        return Err(AggregateError::WarmStartMismatch("made by another method"));
    }
    if previous.classes != idx.classes {
        return Err(AggregateError::WarmStartMismatch("the classes differ"));
    }
    if previous.n_tasks > idx.n_tasks || previous.n_workers > idx.n_workers {
        return Err(AggregateError::WarmStartMismatch(
            "it has more tasks or workers than these answers",
        ));
    }
    Ok(())
}

/// Previous posteriors for known tasks, majority vote for the rest.
fn warm_probas(idx: &Index, previous: &Aggregation) -> Vec<f64> {
    let mut probas = vec![0.0; idx.n_tasks * idx.k];
    let known = previous.n_tasks * idx.k;
    probas[..known].copy_from_slice(&previous.probas[..known]);
    vote_into(idx, None, previous.n_tasks, &mut probas);
    probas
}

/// An [`InitialError`] as dense matrices `[w][observed][true]` and the rows present.
type ResolvedInitial = (InitialErrorStrategy, (Vec<f64>, Vec<bool>));

/// One EM run (crowd-kit's `fit` loop) over the flat index.
struct Em<'a> {
    idx: &'a Index,
    /// `(task, class)`, pinned after every E-step.
    gold: &'a [(u32, u32)],
    one_coin: bool,
    n_iter: usize,
    tol: f64,
}

impl Em<'_> {
    fn run(&self, mut probas: Vec<f64>, initial: Option<ResolvedInitial>) -> Aggregation {
        let idx = self.idx;
        let k = idx.k;
        let n_answers = idx.n_answers() as f64;
        // Rows (worker, observed label) present in the data: the rows crowd-kit's M-step has.
        let mut observed = vec![false; idx.n_workers * k];
        for (w, c) in idx.t_worker.iter().zip(&idx.t_class) {
            observed[*w as usize * k + *c as usize] = true;
        }
        let mut errors = vec![0.0; idx.n_workers * k * k];
        let mut skills = vec![0.0; idx.n_workers];
        let mut log2_errors = vec![0.0; errors.len()];
        let mut ln_errors = vec![0.0; errors.len()];

        self.pin_gold(&mut probas);
        let mut priors = self.priors(&probas);
        match initial {
            Some((strategy, (init, init_rows))) => {
                let mut rows = init_rows;
                match strategy {
                    InitialErrorStrategy::Assign => errors.copy_from_slice(&init),
                    InitialErrorStrategy::Addition => {
                        self.counts(&probas, &mut errors);
                        errors.iter_mut().zip(&init).for_each(|(e, i)| *e += i);
                        rows.iter_mut().zip(&observed).for_each(|(r, o)| *r |= o);
                    }
                }
                normalize(&mut errors, &rows, k);
            }
            None => self.m_step(&probas, &observed, &mut errors, &mut skills),
        }

        let mut loss = f64::NEG_INFINITY;
        let mut history = Vec::new();
        let mut iterations = 0;
        for _ in 0..self.n_iter {
            iterations += 1;
            tables(&errors, &observed, &mut log2_errors, &mut ln_errors);
            self.e_step(&priors, &log2_errors, &mut probas);
            self.pin_gold(&mut probas);
            priors = self.priors(&probas);
            self.m_step(&probas, &observed, &mut errors, &mut skills);
            tables(&errors, &observed, &mut log2_errors, &mut ln_errors);
            let new_loss = self.elbo(&probas, &priors, &ln_errors) / n_answers;
            history.push(new_loss);
            if new_loss - loss < self.tol {
                break;
            }
            loss = new_loss;
        }
        // crowd-kit's ELBO clips the posteriors in place, so its results are clipped too.
        probas.iter_mut().for_each(|p| *p = p.max(EPS));
        if !self.one_coin {
            for (w, skill) in skills.iter_mut().enumerate() {
                *skill = (0..k)
                    .map(|c| priors[c] * errors[(w * k + c) * k + c])
                    .sum();
            }
        }
        let method = if self.one_coin {
            Method::OneCoinDawidSkene
        } else {
            Method::DawidSkene
        };
        let labels = argmax_rows(&probas, k);
        let mut agg = Aggregation::new(method, idx, probas, skills);
        agg.labels = labels;
        agg.errors = Some(errors);
        agg.priors = Some(priors);
        agg.iterations = iterations;
        agg.loss_history = history;
        agg
    }

    fn pin_gold(&self, probas: &mut [f64]) {
        let k = self.idx.k;
        for &(t, c) in self.gold {
            let row = &mut probas[t as usize * k..(t as usize + 1) * k];
            row.iter_mut().for_each(|p| *p = 0.0);
            row[c as usize] = 1.0;
        }
    }

    /// Class priors: the mean posterior, clipped at `EPS` (crowd-kit clips in place).
    fn priors(&self, probas: &[f64]) -> Vec<f64> {
        let k = self.idx.k;
        let mut priors = vec![0.0; k];
        for row in probas.chunks_exact(k) {
            priors.iter_mut().zip(row).for_each(|(s, p)| *s += p);
        }
        let n = self.idx.n_tasks as f64;
        priors.iter_mut().for_each(|s| *s = (*s / n).max(EPS));
        priors
    }

    /// `errors[w][observed][true]` = Σ posteriors of the tasks where `w` answered `observed`.
    fn counts(&self, probas: &[f64], errors: &mut [f64]) {
        let idx = self.idx;
        let k = idx.k;
        errors.iter_mut().for_each(|e| *e = 0.0);
        for t in 0..idx.n_tasks {
            let row = &probas[t * k..(t + 1) * k];
            for p in idx.task_range(t) {
                let base = (idx.t_worker[p] as usize * k + idx.t_class[p] as usize) * k;
                errors[base..base + k]
                    .iter_mut()
                    .zip(row)
                    .for_each(|(e, q)| *e += q);
            }
        }
    }

    fn m_step(&self, probas: &[f64], observed: &[bool], errors: &mut [f64], skills: &mut [f64]) {
        if !self.one_coin {
            self.counts(probas, errors);
            normalize(errors, observed, self.idx.k);
            return;
        }
        // One coin: skill = mean posterior of the answered label; rows built from it. (The
        // one-coin fits build the by-worker index.)
        let idx = self.idx;
        let k = idx.k;
        for (w, skill) in skills.iter_mut().enumerate() {
            let range = idx.worker_range(w);
            let n = range.len() as f64;
            let sum: f64 = range
                .map(|p| probas[idx.w_task[p] as usize * k + idx.w_class[p] as usize])
                .sum();
            *skill = sum / n;
        }
        let off_diagonal = |s: f64| {
            if k > 1 {
                (1.0 - s) / (k - 1) as f64
            } else {
                0.0
            }
        };
        for w in 0..idx.n_workers {
            let s = skills[w];
            let other = off_diagonal(s).clamp(EPS, 1.0 - EPS);
            let own = s.clamp(EPS, 1.0 - EPS);
            for o in 0..k {
                let row = &mut errors[(w * k + o) * k..(w * k + o + 1) * k];
                if observed[w * k + o] {
                    row.iter_mut().for_each(|e| *e = other);
                    row[o] = own;
                } else {
                    row.iter_mut().for_each(|e| *e = 0.0);
                }
            }
        }
    }

    fn e_step(&self, priors: &[f64], log2_errors: &[f64], probas: &mut [f64]) {
        let idx = self.idx;
        let k = idx.k;
        let log2_priors: Vec<f64> = priors.iter().map(|p| p.log2()).collect();
        for (t, row) in probas.chunks_exact_mut(k).enumerate() {
            row.iter_mut().for_each(|v| *v = 0.0);
            for p in idx.task_range(t) {
                let base = (idx.t_worker[p] as usize * k + idx.t_class[p] as usize) * k;
                row.iter_mut()
                    .zip(&log2_errors[base..base + k])
                    .for_each(|(v, e)| *v += e);
            }
            let mut max = f64::NEG_INFINITY;
            for (v, lp) in row.iter_mut().zip(&log2_priors) {
                *v += lp;
                max = max.max(*v);
            }
            let mut sum = 0.0;
            for v in row.iter_mut() {
                *v = (*v - max).exp2();
                sum += *v;
            }
            row.iter_mut().for_each(|v| *v /= sum);
        }
    }

    /// The evidence lower bound, as crowd-kit's `_evidence_lower_bound`.
    fn elbo(&self, probas: &[f64], priors: &[f64], ln_errors: &[f64]) -> f64 {
        let idx = self.idx;
        let k = idx.k;
        let ln_priors: Vec<f64> = priors.iter().map(|p| p.ln()).collect();
        let mut acc = vec![0.0; k];
        let mut joint = 0.0;
        let mut entropy = 0.0;
        for (t, row) in probas.chunks_exact(k).enumerate() {
            let range = idx.task_range(t);
            let m = range.len() as f64;
            acc.iter_mut()
                .zip(&ln_priors)
                .for_each(|(a, lp)| *a = m * lp);
            for p in range {
                let base = (idx.t_worker[p] as usize * k + idx.t_class[p] as usize) * k;
                acc.iter_mut()
                    .zip(&ln_errors[base..base + k])
                    .for_each(|(a, e)| *a += e);
            }
            for (q, a) in row.iter().zip(&acc) {
                joint += q * a;
                let q = q.max(EPS);
                entropy -= q.ln() * q;
            }
        }
        joint + entropy
    }
}

/// Clip present rows at `EPS`, then make each worker's columns sum to 1 over present rows;
/// absent rows are 0.
fn normalize(errors: &mut [f64], rows: &[bool], k: usize) {
    let mut sums = vec![0.0; k];
    for (w, m) in errors.chunks_exact_mut(k * k).enumerate() {
        sums.iter_mut().for_each(|s| *s = 0.0);
        for (o, row) in m.chunks_exact_mut(k).enumerate() {
            if rows[w * k + o] {
                for (e, s) in row.iter_mut().zip(sums.iter_mut()) {
                    *e = e.max(EPS);
                    *s += *e;
                }
            } else {
                row.iter_mut().for_each(|e| *e = 0.0);
            }
        }
        for (o, row) in m.chunks_exact_mut(k).enumerate() {
            if rows[w * k + o] {
                row.iter_mut().zip(&sums).for_each(|(e, s)| *e /= s);
            }
        }
    }
}

/// `log2` and `ln` of the present rows (absent rows are never looked up).
fn tables(errors: &[f64], rows: &[bool], log2: &mut [f64], ln: &mut [f64]) {
    let k = errors.len() / rows.len();
    for (r, &present) in rows.iter().enumerate() {
        if !present {
            continue;
        }
        for i in r * k..(r + 1) * k {
            ln[i] = errors[i].ln();
            log2[i] = errors[i].log2();
        }
    }
}
