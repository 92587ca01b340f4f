//! GLAD: worker abilities and task difficulties, fitted by EM with a conjugate-gradient M-step.

use super::cg::{Objective, minimize_cg};
use super::data::{Answers, Index};
use super::ds::check_previous;
use super::{AggregateError, Aggregation, Method};

/// **GLAD** (generative model of labels, abilities and difficulties): worker `i` answers task
/// `j` correctly with probability `σ(α_i · exp(β_j))`, otherwise uniformly among the other
/// classes. EM alternates the task posteriors (E-step) and α, β (M-step: SciPy's conjugate
/// gradient, ported, at most `m_step_max_iter` iterations, gradient tolerance `m_step_tol`),
/// with standard normal priors around α = 1 and β = 1 and uniform class priors.
///
/// Worker skill = α. [`Aggregation::difficulties`] holds β.
#[derive(Debug, Clone, Copy)]
pub struct Glad {
    /// The maximum number of EM iterations (crowd-kit: 100).
    pub n_iter: usize,
    /// Stop when the objective per (answer, class) improves by less than this (1e-5).
    pub tol: f64,
    /// Conjugate-gradient iterations per M-step (25).
    pub m_step_max_iter: usize,
    /// Conjugate-gradient gradient tolerance (1e-2).
    pub m_step_tol: f64,
}

impl Default for Glad {
    fn default() -> Self {
        Self {
            n_iter: 100,
            tol: 1e-5,
            m_step_max_iter: 25,
            m_step_tol: 1e-2,
        }
    }
}

impl Glad {
    /// Fits GLAD from α = β = 1.
    pub fn fit(&self, answers: &Answers) -> Result<Aggregation, AggregateError> {
        let idx = Index::build(answers)?;
        let alphas = vec![1.0; idx.n_workers];
        let betas = vec![1.0; idx.n_tasks];
        Ok(self.run(&idx, alphas, betas))
    }

    /// Refits after answers were added, warm-started from `previous` (a GLAD fit of an earlier
    /// state of the same `answers`): known workers and tasks start from their previous α and β,
    /// new ones from 1.
    pub fn refit(
        &self,
        answers: &Answers,
        previous: &Aggregation,
    ) -> Result<Aggregation, AggregateError> {
        let idx = Index::build(answers)?;
        check_previous(previous, Method::Glad, &idx)?;
        let mut alphas = vec![1.0; idx.n_workers];
        alphas[..previous.n_workers].copy_from_slice(&previous.skills);
        let mut betas = vec![1.0; idx.n_tasks];
        if let Some(prev) = &previous.difficulties {
            betas[..previous.n_tasks].copy_from_slice(prev);
        }
        Ok(self.run(&idx, alphas, betas))
    }

    fn run(&self, idx: &Index, alphas: Vec<f64>, betas: Vec<f64>) -> Aggregation {
        let k = idx.k;
        let mut model = Model {
            idx,
            ln_k1: ((k as f64) - 1.0).ln(),
            ln_prior: (1.0 / k as f64).ln(),
            posterior: vec![0.0; idx.n_tasks * k],
        };
        let n_w = idx.n_workers;
        let mut x: Vec<f64> = alphas.into_iter().chain(betas).collect();
        let mut history = Vec::new();
        let mut iterations = 0;
        if k > 1 {
            model.e_step(&x);
            let mut q = model.q(&x);
            let rows = (idx.n_answers() * k) as f64;
            for _ in 0..self.n_iter {
                iterations += 1;
                let last_q = q;
                model.e_step(&x);
                x = minimize_cg(&mut model, &x, self.m_step_tol, self.m_step_max_iter);
                q = model.q(&x) / rows;
                history.push(q);
                if q - last_q < self.tol {
                    break;
                }
            }
        } else {
            // One class: the answer is certain (crowd-kit divides by log(k - 1) = -inf here).
            model.posterior.iter_mut().for_each(|p| *p = 1.0);
        }
        let betas = x.split_off(n_w);
        let mut agg = Aggregation::new(Method::Glad, idx, model.posterior, x);
        agg.difficulties = Some(betas);
        agg.iterations = iterations;
        agg.loss_history = history;
        agg
    }
}

/// crowd-kit's `_softplus`: `log(1 + exp(x))`, exact beyond ±30.
#[inline]
fn softplus(x: f64) -> f64 {
    if x > 30.0 {
        x
    } else if x < -30.0 {
        0.0
    } else {
        x.exp().ln_1p()
    }
}

/// `log(norm.pdf(x))` as SciPy computes it (so it is `-inf` where the pdf underflows).
#[inline]
fn ln_norm_pdf(x: f64) -> f64 {
    ((-x * x / 2.0).exp() / (2.0 * std::f64::consts::PI).sqrt()).ln()
}

struct Model<'a> {
    idx: &'a Index,
    ln_k1: f64,
    ln_prior: f64,
    /// Task posteriors from the last E-step, fixed during the M-step.
    posterior: Vec<f64>,
}

impl Model<'_> {
    fn e_step(&mut self, x: &[f64]) {
        let idx = self.idx;
        let k = idx.k;
        let (alphas, betas) = x.split_at(idx.n_workers);
        for (t, row) in self.posterior.chunks_exact_mut(k).enumerate() {
            let eb = betas[t].exp();
            row.iter_mut().for_each(|v| *v = 0.0);
            for p in idx.task_range(t) {
                let ab = alphas[idx.t_worker[p] as usize] * eb;
                let log_sigma = -softplus(-ab);
                let other = -softplus(ab) - self.ln_k1;
                let l = idx.t_class[p] as usize;
                for (c, v) in row.iter_mut().enumerate() {
                    *v += if c == l { log_sigma } else { other };
                }
            }
            let mut max = f64::NEG_INFINITY;
            for v in row.iter_mut() {
                *v += self.ln_prior;
                max = max.max(*v);
            }
            let sum: f64 = row.iter().map(|v| (v - max).exp()).sum();
            let lse = sum.ln() + max;
            row.iter_mut().for_each(|v| *v = (*v - lse).exp());
        }
    }

    /// crowd-kit's `_compute_Q` (not divided).
    fn q(&self, x: &[f64]) -> f64 {
        let idx = self.idx;
        let k = idx.k;
        let (alphas, betas) = x.split_at(idx.n_workers);
        let mut q = 0.0;
        for (t, row) in self.posterior.chunks_exact(k).enumerate() {
            let eb = betas[t].exp();
            let total: f64 = row.iter().sum();
            for p in idx.task_range(t) {
                let ab = alphas[idx.t_worker[p] as usize] * eb;
                let pl = row[idx.t_class[p] as usize];
                q += pl * -softplus(-ab) + (total - pl) * (-softplus(ab) - self.ln_k1);
            }
        }
        q += alphas.iter().map(|a| ln_norm_pdf(a - 1.0)).sum::<f64>();
        q += betas.iter().map(|b| ln_norm_pdf(b - 1.0)).sum::<f64>();
        if q.is_nan() { f64::NEG_INFINITY } else { q }
    }
}

impl Objective for Model<'_> {
    /// `-Q` and `-∇Q` in `(α…, β…)`.
    fn eval(&mut self, x: &[f64], grad: &mut [f64]) -> f64 {
        let idx = self.idx;
        let k = idx.k;
        let n_w = idx.n_workers;
        let (alphas, betas) = x.split_at(n_w);
        let (ga, gb) = grad.split_at_mut(n_w);
        ga.iter_mut().for_each(|g| *g = 0.0);
        for (t, row) in self.posterior.chunks_exact(k).enumerate() {
            let eb = betas[t].exp();
            let total: f64 = row.iter().sum();
            let mut d_beta = 0.0;
            for p in idx.task_range(t) {
                let w = idx.t_worker[p] as usize;
                let ab = alphas[w] * eb;
                let pl = row[idx.t_class[p] as usize];
                let sigma = 1.0 / (1.0 + (-ab).exp());
                let common = pl - total * sigma;
                d_beta += common * alphas[w] * eb;
                ga[w] += common * eb;
            }
            gb[t] = -(d_beta - (betas[t] - 1.0));
        }
        for (g, a) in ga.iter_mut().zip(alphas) {
            *g = -(*g - (a - 1.0));
        }
        -self.q(x)
    }
}
