//! Metrics: how one answer is scored against the truth, and custom scorers.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// The clipping bound of [`Metric::log_loss`]: scikit-learn's historical default.
pub const DEFAULT_LOG_LOSS_EPS: f64 = 1e-15;

/// How the answers of a task kind are scored.
///
/// Every metric scores one answer against its task's truth; a participant's score on a kind is
/// the **mean** of their answers' scores, an `f64` that is never rounded or truncated. Answers
/// and truths travel as strings (what a worker submits on a platform); each metric says how it
/// reads them, and answers or truths it cannot read are refused when they arrive, not when
/// they are scored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Answer and truth are labels; an answer scores 1 if it equals the truth byte for byte,
    /// else 0. The mean is the accuracy. Higher is better. Empty labels are refused.
    Accuracy,
    /// Answer: class probabilities as a JSON object, `{"cat": 0.7, "dog": 0.3}`, or a bare
    /// label, meaning probability 1 for it. Truth: a label. An answer scores `−ln p`, where `p`
    /// is the probability it gives the true label (after dividing by the sum of its values, 0
    /// for a label it leaves out), clipped to `[eps, 1 − eps]` as scikit-learn's `log_loss`
    /// clips it, so a confident wrong answer costs `−ln eps` (34.5 for 1e-15), not infinity.
    /// The mean is the log loss. Lower is better. Values must be finite and non-negative, with
    /// a positive sum.
    LogLoss {
        /// The clipping bound, in `(0, 0.5)`.
        #[serde(default = "default_eps")]
        eps: f64,
    },
    /// Answer and truth are decimal numbers (`f64`); an answer scores `|answer − truth|`. The
    /// mean is the mean absolute error. Lower is better. Non-finite numbers are refused.
    MeanAbsoluteError,
    /// A [`Scorer`] registered under `scorer` in the [`Scorers`] the machine was built with.
    /// Its scores must be finite; an error or a non-finite score leaves the answer unscored
    /// (see [`Event::ScoringFailed`](super::Event::ScoringFailed)).
    Custom {
        /// The scorer's name in [`Scorers`].
        scorer: String,
        /// Whether a higher mean is better. Part of the kind (and so of the log), not of the
        /// scorer, so a replay ranks the same way whatever is registered.
        higher_is_better: bool,
    },
}

fn default_eps() -> f64 {
    DEFAULT_LOG_LOSS_EPS
}

impl Metric {
    /// Log loss clipped at [`DEFAULT_LOG_LOSS_EPS`].
    pub fn log_loss() -> Self {
        Metric::LogLoss {
            eps: DEFAULT_LOG_LOSS_EPS,
        }
    }

    /// A custom metric scored by the scorer registered as `scorer`.
    pub fn custom(scorer: impl Into<String>, higher_is_better: bool) -> Self {
        Metric::Custom {
            scorer: scorer.into(),
            higher_is_better,
        }
    }

    /// A short name: `accuracy`, `log_loss`, `mean_absolute_error`, or the custom scorer's.
    pub fn name(&self) -> &str {
        match self {
            Metric::Accuracy => "accuracy",
            Metric::LogLoss { .. } => "log_loss",
            Metric::MeanAbsoluteError => "mean_absolute_error",
            Metric::Custom { scorer, .. } => scorer,
        }
    }

    /// Whether a higher mean score is better.
    pub fn higher_is_better(&self) -> bool {
        match self {
            Metric::Accuracy => true,
            Metric::LogLoss { .. } | Metric::MeanAbsoluteError => false,
            Metric::Custom {
                higher_is_better, ..
            } => *higher_is_better,
        }
    }

    /// Whether answers name a class, so that aggregation can rate participants without truth
    /// (accuracy and log loss; for log loss the class an answer gives most probability).
    pub fn is_categorical(&self) -> bool {
        matches!(self, Metric::Accuracy | Metric::LogLoss { .. })
    }

    /// Checks the metric's own parameters and that a custom scorer is registered.
    pub(crate) fn validate(&self, scorers: &Scorers) -> Result<(), MetricError> {
        match self {
            Metric::LogLoss { eps } if !(*eps > 0.0 && *eps < 0.5) => Err(MetricError::Config(
                format!("log loss eps must be in (0, 0.5), not {eps}"),
            )),
            Metric::Custom { scorer, .. } if scorers.get(scorer).is_none() => {
                Err(MetricError::UnknownScorer(scorer.clone()))
            }
            _ => Ok(()),
        }
    }

    /// Checks that an answer is readable by this metric.
    pub(crate) fn check_answer(&self, answer: &str, scorers: &Scorers) -> Result<(), String> {
        match self {
            Metric::Accuracy => non_empty(answer),
            Metric::LogLoss { .. } => Distribution::parse(answer).map(|_| ()),
            Metric::MeanAbsoluteError => number(answer).map(|_| ()),
            Metric::Custom { scorer, .. } => scorers.require(scorer)?.check_answer(answer),
        }
    }

    /// Checks that a truth is readable by this metric.
    pub(crate) fn check_truth(&self, truth: &str, scorers: &Scorers) -> Result<(), String> {
        match self {
            Metric::Accuracy | Metric::LogLoss { .. } => non_empty(truth),
            Metric::MeanAbsoluteError => number(truth).map(|_| ()),
            Metric::Custom { scorer, .. } => scorers.require(scorer)?.check_truth(truth),
        }
    }

    /// The score of one answer. Always finite when `Ok`.
    pub(crate) fn score(
        &self,
        answer: &str,
        truth: &str,
        scorers: &Scorers,
    ) -> Result<f64, String> {
        let score = match self {
            Metric::Accuracy => {
                if answer == truth {
                    1.0
                } else {
                    0.0
                }
            }
            Metric::LogLoss { eps } => {
                let p = Distribution::parse(answer)?.probability(truth);
                -p.clamp(*eps, 1.0 - eps).ln()
            }
            Metric::MeanAbsoluteError => (number(answer)? - number(truth)?).abs(),
            Metric::Custom { scorer, .. } => scorers.require(scorer)?.score(answer, truth)?,
        };
        if score.is_finite() {
            Ok(score)
        } else {
            Err(format!("the score is not finite ({score})"))
        }
    }

    /// The class an answer names, for aggregation: the label itself (accuracy), or the class
    /// with the most probability, ties to the label that sorts first (log loss).
    pub(crate) fn label_of(&self, answer: &str) -> Option<String> {
        match self {
            Metric::Accuracy => Some(answer.to_owned()),
            Metric::LogLoss { .. } => match Distribution::parse(answer).ok()? {
                Distribution::Certain(label) => Some(label.to_owned()),
                Distribution::Weights { weights, .. } => {
                    let mut best: Option<(&String, f64)> = None;
                    // BTreeMap order: the first maximum is the label that sorts first.
                    for (label, &w) in &weights {
                        if best.is_none_or(|(_, b)| w > b) {
                            best = Some((label, w));
                        }
                    }
                    best.map(|(label, _)| label.clone())
                }
            },
            Metric::MeanAbsoluteError | Metric::Custom { .. } => None,
        }
    }
}

/// Why a metric cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum MetricError {
    Config(String),
    UnknownScorer(String),
}

fn non_empty(s: &str) -> Result<(), String> {
    if s.is_empty() {
        Err("empty label".into())
    } else {
        Ok(())
    }
}

fn number(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(x) if x.is_finite() => Ok(x),
        Ok(x) => Err(format!("{x} is not a finite number")),
        Err(_) => Err(format!("{s:?} is not a number")),
    }
}

/// A log-loss answer, read.
enum Distribution<'a> {
    /// A bare label: probability 1.
    Certain(&'a str),
    /// Weights per label and their (positive, finite) sum.
    Weights {
        weights: BTreeMap<String, f64>,
        sum: f64,
    },
}

impl<'a> Distribution<'a> {
    fn parse(answer: &'a str) -> Result<Self, String> {
        if !answer.trim_start().starts_with('{') {
            non_empty(answer)?;
            return Ok(Distribution::Certain(answer));
        }
        let weights: BTreeMap<String, f64> = serde_json::from_str(answer)
            .map_err(|e| format!("probabilities must be a JSON object of numbers: {e}"))?;
        if let Some((label, w)) = weights.iter().find(|(_, w)| !(w.is_finite() && **w >= 0.0)) {
            return Err(format!(
                "probability {w} of {label:?} is negative or not finite"
            ));
        }
        // From +0.0 (`Sum` starts at −0.0), so that no weights at all read "sum to 0".
        let sum = weights.values().fold(0.0, |sum, w| sum + w);
        if !(sum > 0.0 && sum.is_finite()) {
            return Err(format!("probabilities sum to {sum}"));
        }
        Ok(Distribution::Weights { weights, sum })
    }

    /// The probability of `label`, normalized.
    fn probability(&self, label: &str) -> f64 {
        match self {
            Distribution::Certain(l) => f64::from(u8::from(*l == label)),
            Distribution::Weights { weights, sum } => weights.get(label).map_or(0.0, |w| w / sum),
        }
    }
}

/// Formats class probabilities as a [`Metric::LogLoss`] answer: `{"cat":0.7,"dog":0.3}`.
pub fn probabilities<L: AsRef<str>>(probs: impl IntoIterator<Item = (L, f64)>) -> String {
    let map: BTreeMap<String, f64> = probs
        .into_iter()
        .map(|(l, p)| (l.as_ref().to_owned(), p))
        .collect();
    // A map of strings to numbers always serializes (non-finite numbers become `null`, which
    // the metric then refuses as it should).
    serde_json::to_string(&map).unwrap_or_default()
}

/// A custom way to score an answer against the truth ([`Metric::Custom`]).
///
/// A scorer must be a pure function of its arguments: a durable driver rebuilds its state by
/// scoring the logged answers again, and must get the same numbers. Any closure
/// `Fn(&str, &str) -> f64` (answer, truth) is a scorer.
pub trait Scorer: Send + Sync {
    /// The score of `answer` given `truth`. An error, or a non-finite score, leaves the answer
    /// unscored.
    fn score(&self, answer: &str, truth: &str) -> Result<f64, String>;

    /// Checks an answer when it is submitted; refused answers never wait for the truth. By
    /// default every answer is accepted.
    fn check_answer(&self, _answer: &str) -> Result<(), String> {
        Ok(())
    }

    /// Checks a truth when it is posted or revealed. By default every truth is accepted.
    fn check_truth(&self, _truth: &str) -> Result<(), String> {
        Ok(())
    }
}

impl<F> Scorer for F
where
    F: Fn(&str, &str) -> f64 + Send + Sync,
{
    fn score(&self, answer: &str, truth: &str) -> Result<f64, String> {
        Ok(self(answer, truth))
    }
}

/// Custom scorers by name. Not part of a machine's state: a machine restored from a snapshot
/// or a log must be given the same scorers again.
#[derive(Clone, Default)]
pub struct Scorers {
    by_name: BTreeMap<String, Arc<dyn Scorer>>,
}

impl Scorers {
    /// No scorers.
    pub fn new() -> Self {
        Self::default()
    }

    /// These scorers and `scorer` as `name` (replacing one of that name).
    pub fn with(mut self, name: impl Into<String>, scorer: impl Scorer + 'static) -> Self {
        self.insert(name, Arc::new(scorer));
        self
    }

    /// Registers `scorer` as `name`, replacing one of that name.
    pub fn insert(&mut self, name: impl Into<String>, scorer: Arc<dyn Scorer>) {
        self.by_name.insert(name.into(), scorer);
    }

    /// The scorer registered as `name`.
    pub fn get(&self, name: &str) -> Option<&dyn Scorer> {
        self.by_name.get(name).map(|s| &**s)
    }

    /// The registered names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.by_name.keys().map(String::as_str)
    }

    fn require(&self, name: &str) -> Result<&dyn Scorer, String> {
        self.get(name)
            .ok_or_else(|| format!("no scorer is registered as {name:?}"))
    }
}

impl fmt::Debug for Scorers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.by_name.keys()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_loss_normalizes_and_clips() {
        let s = Scorers::new();
        let m = Metric::log_loss();
        let ll = |a: &str, t: &str| m.score(a, t, &s).unwrap();
        assert!((ll(r#"{"a":0.25,"b":0.75}"#, "b") - -(0.75f64.ln())).abs() < 1e-15);
        assert_eq!(
            ll(r#"{"a":1,"b":3}"#, "b"),
            ll(r#"{"a":0.25,"b":0.75}"#, "b")
        );
        assert_eq!(ll("a", "b"), -(1e-15f64.ln()));
        assert_eq!(ll(r#"{"a":1}"#, "b"), -(1e-15f64.ln()));
        assert_eq!(ll("b", "b"), -((1.0 - 1e-15f64).ln()));
        for bad in [r#"{"a":-1}"#, r#"{"a":0}"#, "{}", r#"{"a":"x"}"#, "{", ""] {
            assert!(m.check_answer(bad, &s).is_err(), "{bad}");
        }
    }

    #[test]
    fn label_of_takes_the_first_maximum() {
        let m = Metric::log_loss();
        assert_eq!(m.label_of(r#"{"b":0.5,"a":0.5}"#).as_deref(), Some("a"));
        assert_eq!(m.label_of(r#"{"b":0.6,"a":0.4}"#).as_deref(), Some("b"));
        assert_eq!(m.label_of("c").as_deref(), Some("c"));
        assert_eq!(Metric::MeanAbsoluteError.label_of("1"), None);
    }

    #[test]
    fn probabilities_round_trip() {
        let a = probabilities([("dog", 0.3), ("cat", 0.7)]);
        assert_eq!(a, r#"{"cat":0.7,"dog":0.3}"#);
        assert_eq!(Metric::log_loss().label_of(&a).as_deref(), Some("cat"));
    }
}
