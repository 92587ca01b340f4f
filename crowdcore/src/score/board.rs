//! Leaderboards: ranking participants by score, with ties.

use std::cmp::Ordering;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::io::KindId;
use super::metric::Metric;
use crate::aggregate::{
    AggregateError, Aggregation, Answers, DawidSkene, Glad, MajorityVote, OneCoinDawidSkene, Wawa,
    ZeroBasedSkill,
};
use crate::model::{Timestamp, WorkerId};

/// The aggregation method that rates participants of a kind without truth
/// ([`crate::aggregate`]; its skill is the participant's score).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SkillMethod {
    /// [`MajorityVote`]: agreement with the majority.
    #[default]
    MajorityVote,
    /// [`Wawa`]: agreement with the agreement-weighted majority.
    Wawa,
    /// [`ZeroBasedSkill`].
    ZeroBasedSkill,
    /// [`DawidSkene`]: expected accuracy under the fitted confusion matrix.
    DawidSkene,
    /// [`OneCoinDawidSkene`]: the one-coin accuracy.
    OneCoinDawidSkene,
    /// [`Glad`]: the ability α.
    Glad,
}

impl SkillMethod {
    pub(crate) fn fit(self, answers: &Answers) -> Result<Aggregation, AggregateError> {
        match self {
            SkillMethod::MajorityVote => MajorityVote::default().fit(answers),
            SkillMethod::Wawa => Wawa::default().fit(answers),
            SkillMethod::ZeroBasedSkill => ZeroBasedSkill::default().fit(answers),
            SkillMethod::DawidSkene => DawidSkene::default().fit(answers),
            SkillMethod::OneCoinDawidSkene => OneCoinDawidSkene::default().fit(answers),
            SkillMethod::Glad => Glad::default().fit(answers),
        }
    }
}

/// What a leaderboard's scores are.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "basis", rename_all = "snake_case")]
pub enum Basis {
    /// Each participant's mean score under the kind's metric, over their scored answers.
    Scores {
        /// The metric.
        metric: Metric,
    },
    /// Each participant's skill from aggregating the kind's answers (no answer was scored).
    Skills {
        /// The aggregation method.
        method: SkillMethod,
    },
    /// The overall board: participants beaten, summed over every kind's board.
    Overall,
}

/// One participant's place on a leaderboard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Standing {
    /// 1 for the best; participants with equal scores share a rank, and the next rank skips
    /// (1, 2, 2, 4).
    pub rank: u32,
    /// The participant.
    pub participant: WorkerId,
    /// The score: a mean score, a skill, or participants beaten (see [`Basis`]).
    pub score: f64,
    /// The answers the score is made of (scored answers; for skills, all answers given).
    pub answers: u32,
    /// Answers still waiting for their task's truth.
    pub pending: u32,
    /// When the participant first answered (in this kind; overall, in any kind). Breaks ties
    /// for display: earlier first.
    pub first_submission: Timestamp,
}

/// Participants ranked. See [`rank`] for the order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Leaderboard {
    /// The kind, or `None` for the overall board.
    pub kind: Option<KindId>,
    /// What the scores are.
    pub basis: Basis,
    /// Whether a higher score ranks higher.
    pub higher_is_better: bool,
    /// Best first.
    pub standings: Vec<Standing>,
}

impl Leaderboard {
    /// A participant's standing.
    pub fn get(&self, participant: &WorkerId) -> Option<&Standing> {
        self.standings
            .iter()
            .find(|s| &s.participant == participant)
    }

    /// A participant's rank.
    pub fn rank_of(&self, participant: &WorkerId) -> Option<u32> {
        self.get(participant).map(|s| s.rank)
    }

    /// Whether nobody is ranked.
    pub fn is_empty(&self) -> bool {
        self.standings.is_empty()
    }

    /// The board as a plain-text table: rank, participant, score (full precision), answers,
    /// pending.
    pub fn to_table(&self) -> String {
        let what = match &self.basis {
            Basis::Scores { metric } => metric.name().to_owned(),
            Basis::Skills { method } => format!("skill ({method:?})"),
            Basis::Overall => "participants beaten".to_owned(),
        };
        let width = self
            .standings
            .iter()
            .map(|s| s.participant.as_str().len())
            .max()
            .unwrap_or(0)
            .max("participant".len());
        let mut out = format!(
            "rank  {:width$}  {what:>20}  answers  pending\n",
            "participant"
        );
        for s in &self.standings {
            let _ = writeln!(
                out,
                "{:>4}  {:width$}  {:>20}  {:>7}  {:>7}",
                s.rank,
                s.participant.as_str(),
                s.score,
                s.answers,
                s.pending
            );
        }
        out
    }
}

/// Sorts standings and assigns ranks.
///
/// - Better scores first: higher if `higher_is_better`, else lower. Non-finite scores (a
///   skill that could not be estimated) come last.
/// - Equal scores share a rank (standard competition ranking: 1, 2, 2, 4). Equal means equal
///   as `f64` (so `0.0 == -0.0`); all non-finite scores are equal to each other.
/// - Among equal scores, for display: the earlier first submission first, then the participant
///   id in byte order. The order is therefore total and stable: the same scores give the same
///   board whatever order the participants were found in.
pub fn rank(mut standings: Vec<Standing>, higher_is_better: bool) -> Vec<Standing> {
    for s in &mut standings {
        s.score += 0.0; // −0.0 becomes 0.0, so it sorts as it compares.
    }
    standings.sort_by(|a, b| {
        compare_scores(a.score, b.score, higher_is_better)
            .then(a.first_submission.cmp(&b.first_submission))
            .then_with(|| a.participant.cmp(&b.participant))
    });
    let mut rank = 0;
    for i in 0..standings.len() {
        if i == 0 || !same_score(standings[i - 1].score, standings[i].score) {
            rank = i as u32 + 1;
        }
        standings[i].rank = rank;
    }
    standings
}

/// `Less` when `a` is the better score.
fn compare_scores(a: f64, b: f64, higher_is_better: bool) -> Ordering {
    match (a.is_finite(), b.is_finite()) {
        (true, true) => {
            let worse_first = a.partial_cmp(&b).unwrap_or(Ordering::Equal);
            if higher_is_better {
                worse_first.reverse()
            } else {
                worse_first
            }
        }
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
        (false, false) => Ordering::Equal,
    }
}

fn same_score(a: f64, b: f64) -> bool {
    a == b || (!a.is_finite() && !b.is_finite())
}

/// Why a leaderboard could not be made.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum QueryError {
    /// No kind of that name was defined.
    #[error("unknown kind {0}")]
    UnknownKind(KindId),
    /// The kind's metric does not name classes, so its answers cannot be aggregated.
    #[error("kind {0} has a metric whose answers cannot be aggregated")]
    NotCategorical(KindId),
    /// Aggregating the kind's answers failed.
    #[error("aggregating kind {kind}: {error}")]
    Aggregate {
        /// The kind.
        kind: KindId,
        /// What went wrong.
        error: AggregateError,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(p: &str, score: f64, first: u64) -> Standing {
        Standing {
            rank: 0,
            participant: WorkerId::new(p),
            score,
            answers: 1,
            pending: 0,
            first_submission: Timestamp::from_millis(first),
        }
    }

    fn order(board: &[Standing]) -> Vec<(u32, &str)> {
        board
            .iter()
            .map(|s| (s.rank, s.participant.as_str()))
            .collect()
    }

    #[test]
    fn ties_share_a_rank_and_display_by_first_submission_then_id() {
        let board = rank(
            vec![
                s("d", 0.5, 1),
                s("c", 0.9, 5),
                s("b", 0.9, 5),
                s("a", 0.9, 7),
                s("e", f64::NAN, 0),
                s("f", 0.1, 0),
            ],
            true,
        );
        assert_eq!(
            order(&board),
            [(1, "b"), (1, "c"), (1, "a"), (4, "d"), (5, "f"), (6, "e")]
        );
        let lower = rank(vec![s("x", 0.0, 2), s("y", -0.0, 1), s("z", 2.0, 0)], false);
        assert_eq!(order(&lower), [(1, "y"), (1, "x"), (3, "z")]);
    }
}
