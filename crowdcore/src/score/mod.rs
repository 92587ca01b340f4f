//! Scored work: task kinds with a metric, answers scored against truth (now or later),
//! deadlines, and leaderboards — the crowdsource competition model, as a pure machine.
//!
//! [`Scoreboard`] contains no I/O and reads no clock: every input comes with its time, and what
//! it did comes out as [`Event`]s. The same inputs in the same order give the same state, the
//! same events and the same `f64` scores, bit for bit, so a driver can log the inputs and
//! rebuild everything by replaying them. [`Competition`] is that driver: it appends every
//! input to a [`Store`](crate::store::Store)'s log before the machine sees it, which is how
//! answers waiting for their truth survive a restart.
//!
//! # The model
//!
//! - A **kind** ([`Input::DefineKind`]) has a [`Metric`]: [`Accuracy`](Metric::Accuracy),
//!   [`LogLoss`](Metric::LogLoss) (clipped), [`MeanAbsoluteError`](Metric::MeanAbsoluteError),
//!   or a [`Custom`](Metric::Custom) [`Scorer`] (any `Fn(&str, &str) -> f64`).
//! - A **task** ([`Input::PostTask`]) belongs to a kind, with its truth known at posting or not,
//!   and an optional deadline.
//! - A **participant** — a worker id: a person, a bot, a model — submits one answer per task
//!   ([`Input::Submit`]). If the task's truth is known the answer is scored at once
//!   ([`Event::Scored`]); otherwise it waits ([`Event::Deferred`]) until
//!   [`Input::RevealTruth`] scores every waiting answer of the task, in submission order.
//! - An answer made at or after its task's deadline is refused with
//!   [`Refused::PastDeadline`]. The check uses the time given with the submission (when it was
//!   made), not when a driver got round to recording it, so times need not increase from one
//!   input to the next. [`Input::Tick`] closes due tasks ([`Event::Closed`]);
//!   [`Scoreboard::poll_timeout`] says when the next one is due.
//! - A participant's **score** on a kind is the mean of their answers' scores, as an `f64`
//!   (never truncated).
//!
//! # Leaderboards
//!
//! [`Scoreboard::leaderboard`] ranks a kind's participants by mean score once any answer of the
//! kind has been scored; before that (no truth anywhere yet) it ranks them by the skill an
//! aggregation method ([`SkillMethod`], from [`crate::aggregate`]) gives them from their answers
//! alone, for kinds whose answers name classes. [`Scoreboard::overall`] ranks everyone by the
//! number of participants they beat (strictly better score) summed over the kinds' boards: an
//! integer, so exact, whatever mix of metrics the kinds use.
//!
//! Ties, everywhere ([`rank`]): equal scores share a rank (1, 2, 2, 4); among them the
//! participant who first submitted earlier is listed first, then by participant id.
//!
//! # Driving it
//!
//! Getters and queries; inputs ([`handle`](Scoreboard::handle),
//! [`handle_timeout`](Scoreboard::handle_timeout)); outputs
//! ([`poll_event`](Scoreboard::poll_event), [`poll_timeout`](Scoreboard::poll_timeout)). After
//! every input drain `poll_event`. [`check`](Scoreboard::check) says whether an input would be
//! refused without applying it, so a driver can log only what the machine accepts.
//!
//! ```
//! use crowdcore::score::{Event, Input, KindConfig, Metric, NewTask, Scoreboard, Scorers};
//! use crowdcore::{Timestamp, WorkerId};
//!
//! let t = Timestamp::from_millis;
//! let mut board = Scoreboard::new(Scorers::new());
//! board.handle(t(0), Input::DefineKind { kind: "animals".into(), config: KindConfig::new(Metric::Accuracy) })?;
//! // The truth is not known yet; answers are due within a minute.
//! board.handle(t(0), Input::PostTask(NewTask::new("img-1", "animals").deadline(t(60_000))))?;
//! for (who, label) in [("ann", "cat"), ("bot", "dog")] {
//!     board.handle(t(10), Input::Submit { task: "img-1".into(), participant: WorkerId::new(who), answer: label.into() })?;
//! }
//! let late = Input::Submit { task: "img-1".into(), participant: WorkerId::new("eve"), answer: "cat".into() };
//! assert!(board.handle(t(60_000), late).is_err()); // past the deadline
//! board.handle(t(90_000), Input::RevealTruth { task: "img-1".into(), truth: "cat".into() })?;
//! while let Some(event) = board.poll_event() {
//!     if let Event::Scored { participant, score, .. } = event {
//!         println!("{participant}: {score}");
//!     }
//! }
//! let top = board.leaderboard(&"animals".into())?;
//! assert_eq!(top.standings[0].participant, WorkerId::new("ann"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod board;
mod durable;
mod io;
mod metric;

pub use board::{Basis, Leaderboard, QueryError, SkillMethod, Standing, rank};
pub use durable::{
    Competition, CompetitionBuilder, CompetitionError, FORMAT, FORMAT_KEY, Observed,
    ObservedOutcome,
};
pub use io::{Event, Input, KindConfig, KindId, NewTask, Refused, TaskId};
pub use metric::{DEFAULT_LOG_LOSS_EPS, Metric, Scorer, Scorers, probabilities};

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde::{Deserialize, Serialize};

use crate::aggregate::{AggregateError, Answers};
use crate::model::{Timestamp, WorkerId};
use metric::MetricError;

/// The scoring machine. See the [module docs](self).
#[derive(Debug, Clone)]
pub struct Scoreboard {
    scorers: Scorers,
    kinds: BTreeMap<KindId, KindRecord>,
    tasks: BTreeMap<TaskId, TaskRecord>,
    /// Deadlines of tasks not closed yet.
    deadlines: BTreeSet<(Timestamp, TaskId)>,
    events: VecDeque<Event>,
}

/// A kind and its participants' running totals.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KindRecord {
    /// Its config.
    pub config: KindConfig,
    /// Per participant who answered a task of the kind.
    pub totals: BTreeMap<WorkerId, Totals>,
}

/// One participant's answers in one kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Totals {
    /// The sum of their answers' scores, added in the order they were scored.
    pub sum: f64,
    /// Answers scored.
    pub scored: u32,
    /// Answers a custom scorer failed on.
    pub failed: u32,
    /// Answers waiting for their task's truth.
    pub pending: u32,
    /// The earliest submission time of their answers.
    pub first_submission: Timestamp,
}

impl Totals {
    /// The mean score, if any answer was scored.
    pub fn mean(&self) -> Option<f64> {
        (self.scored > 0).then(|| self.sum / f64::from(self.scored))
    }
}

/// A task and its answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskRecord {
    /// Its kind.
    pub kind: KindId,
    /// When it was posted.
    pub posted_at: Timestamp,
    /// Its truth, once known.
    pub truth: Option<String>,
    /// Its deadline.
    pub deadline: Option<Timestamp>,
    /// Whether a tick found its deadline past.
    pub closed: bool,
    /// Its answers, in the order they were accepted.
    pub answers: Vec<AnswerRecord>,
}

/// One accepted answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnswerRecord {
    /// Who answered.
    pub participant: WorkerId,
    /// The answer.
    pub answer: String,
    /// When it was made.
    pub at: Timestamp,
    /// Its score, once there is one.
    pub outcome: Outcome,
}

/// Where an answer stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Outcome {
    /// Waiting for the task's truth.
    Pending,
    /// Scored.
    Scored {
        /// Its score.
        score: f64,
    },
    /// The custom scorer failed on it.
    Failed {
        /// Why.
        reason: String,
    },
}

/// The whole state of a [`Scoreboard`] as data (custom scorers aside).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// The kinds.
    pub kinds: BTreeMap<KindId, KindRecord>,
    /// The tasks.
    pub tasks: BTreeMap<TaskId, TaskRecord>,
}

/// A snapshot that cannot be restored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RestoreError {
    /// A kind's custom scorer is not among the scorers given.
    #[error("kind {kind} needs the scorer {scorer:?}, which is not registered")]
    MissingScorer {
        /// The kind.
        kind: KindId,
        /// The scorer's name.
        scorer: String,
    },
    /// A task of a kind the snapshot does not define.
    #[error("task {task} is of unknown kind {kind}")]
    UnknownKind {
        /// The task.
        task: TaskId,
        /// Its kind.
        kind: KindId,
    },
}

impl Scoreboard {
    /// An empty machine that scores custom metrics with `scorers`.
    pub fn new(scorers: Scorers) -> Self {
        Self {
            scorers,
            kinds: BTreeMap::new(),
            tasks: BTreeMap::new(),
            deadlines: BTreeSet::new(),
            events: VecDeque::new(),
        }
    }

    /// Rebuilds a machine from its snapshot, with the custom scorers it used.
    pub fn restore(snapshot: Snapshot, scorers: Scorers) -> Result<Self, RestoreError> {
        for (kind, record) in &snapshot.kinds {
            if let Metric::Custom { scorer, .. } = &record.config.metric
                && scorers.get(scorer).is_none()
            {
                return Err(RestoreError::MissingScorer {
                    kind: kind.clone(),
                    scorer: scorer.clone(),
                });
            }
        }
        let mut deadlines = BTreeSet::new();
        for (task, record) in &snapshot.tasks {
            if !snapshot.kinds.contains_key(&record.kind) {
                return Err(RestoreError::UnknownKind {
                    task: task.clone(),
                    kind: record.kind.clone(),
                });
            }
            if let (Some(at), false) = (record.deadline, record.closed) {
                deadlines.insert((at, task.clone()));
            }
        }
        Ok(Self {
            scorers,
            kinds: snapshot.kinds,
            tasks: snapshot.tasks,
            deadlines,
            events: VecDeque::new(),
        })
    }

    // ----- getters -----------------------------------------------------------------------------

    /// The whole state as data.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            kinds: self.kinds.clone(),
            tasks: self.tasks.clone(),
        }
    }

    /// The custom scorers.
    pub fn scorers(&self) -> &Scorers {
        &self.scorers
    }

    /// A kind.
    pub fn kind(&self, kind: &KindId) -> Option<&KindRecord> {
        self.kinds.get(kind)
    }

    /// The kinds, by name.
    pub fn kinds(&self) -> impl Iterator<Item = (&KindId, &KindRecord)> {
        self.kinds.iter()
    }

    /// A task.
    pub fn task(&self, task: &TaskId) -> Option<&TaskRecord> {
        self.tasks.get(task)
    }

    /// The tasks, by name.
    pub fn tasks(&self) -> impl Iterator<Item = (&TaskId, &TaskRecord)> {
        self.tasks.iter()
    }

    /// Answers waiting for truth, over every kind.
    pub fn pending(&self) -> u32 {
        self.kinds
            .values()
            .flat_map(|k| k.totals.values())
            .map(|t| t.pending)
            .sum()
    }

    // ----- inputs ------------------------------------------------------------------------------

    /// Whether `input` at `now` would be accepted, without applying it. [`handle`](Self::handle)
    /// refuses exactly what this refuses.
    pub fn check(&self, now: Timestamp, input: &Input) -> Result<(), Refused> {
        match input {
            Input::DefineKind { kind, config } => {
                if let Some(existing) = self.kinds.get(kind) {
                    return if existing.config == *config {
                        Ok(())
                    } else {
                        Err(Refused::KindExists(kind.clone()))
                    };
                }
                config.metric.validate(&self.scorers).map_err(|e| match e {
                    MetricError::Config(reason) => Refused::InvalidConfig(reason),
                    MetricError::UnknownScorer(name) => Refused::UnknownScorer(name),
                })
            }
            Input::PostTask(new) => {
                let kind = self
                    .kinds
                    .get(&new.kind)
                    .ok_or_else(|| Refused::UnknownKind(new.kind.clone()))?;
                if self.tasks.contains_key(&new.task) {
                    return Err(Refused::TaskExists(new.task.clone()));
                }
                if let Some(truth) = &new.truth {
                    self.check_truth(kind, &new.task, truth)?;
                }
                Ok(())
            }
            Input::Submit {
                task,
                participant,
                answer,
            } => {
                let record = self.known(task)?;
                if let Some(deadline) = record.deadline.filter(|d| now >= *d) {
                    return Err(Refused::PastDeadline {
                        task: task.clone(),
                        deadline,
                        at: now,
                    });
                }
                if record.answers.iter().any(|a| &a.participant == participant) {
                    return Err(Refused::AlreadyAnswered {
                        task: task.clone(),
                        participant: participant.clone(),
                    });
                }
                self.kinds[&record.kind]
                    .config
                    .metric
                    .check_answer(answer, &self.scorers)
                    .map_err(|reason| Refused::MalformedAnswer {
                        task: task.clone(),
                        reason,
                    })
            }
            Input::RevealTruth { task, truth } => {
                let record = self.known(task)?;
                if record.truth.is_some() {
                    return Err(Refused::TruthKnown(task.clone()));
                }
                self.check_truth(&self.kinds[&record.kind], task, truth)
            }
            Input::Tick => Ok(()),
        }
    }

    /// Applies `input`, which happened at `now`. A refused input changes nothing and emits
    /// nothing.
    pub fn handle(&mut self, now: Timestamp, input: Input) -> Result<(), Refused> {
        self.check(now, &input)?;
        self.apply(now, input);
        Ok(())
    }

    /// Time passes to `now`: closes the tasks whose deadline is due (the same as
    /// [`Input::Tick`]).
    pub fn handle_timeout(&mut self, now: Timestamp) {
        self.apply(now, Input::Tick);
    }

    // ----- outputs -----------------------------------------------------------------------------

    /// The next event, oldest first.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When the next open task's deadline passes.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        self.deadlines.first().map(|(at, _)| *at)
    }

    // ----- queries -----------------------------------------------------------------------------

    /// The leaderboard of `kind`: by mean score once any answer of the kind was scored; before
    /// that, by aggregation skill if the metric names classes (empty if it does not, or if
    /// nobody answered). Participants without a scored answer are not on a board by scores.
    pub fn leaderboard(&self, kind: &KindId) -> Result<Leaderboard, QueryError> {
        let record = self
            .kinds
            .get(kind)
            .ok_or_else(|| QueryError::UnknownKind(kind.clone()))?;
        let metric = &record.config.metric;
        let any_scored = record.totals.values().any(|t| t.scored > 0);
        if !any_scored && metric.is_categorical() {
            return self.skill_leaderboard(kind, None);
        }
        let standings = record
            .totals
            .iter()
            .filter_map(|(p, t)| {
                Some(Standing {
                    rank: 0,
                    participant: p.clone(),
                    score: t.mean()?,
                    answers: t.scored,
                    pending: t.pending,
                    first_submission: t.first_submission,
                })
            })
            .collect();
        Ok(Leaderboard {
            kind: Some(kind.clone()),
            basis: Basis::Scores {
                metric: metric.clone(),
            },
            higher_is_better: metric.higher_is_better(),
            standings: rank(standings, metric.higher_is_better()),
        })
    }

    /// The leaderboard of `kind` by the skill `method` (the kind's own [`SkillMethod`] if
    /// `None`) gives each participant from all the kind's answers, truth or not. Higher skill
    /// ranks higher. Empty if nobody answered.
    pub fn skill_leaderboard(
        &self,
        kind: &KindId,
        method: Option<SkillMethod>,
    ) -> Result<Leaderboard, QueryError> {
        let record = self
            .kinds
            .get(kind)
            .ok_or_else(|| QueryError::UnknownKind(kind.clone()))?;
        let metric = &record.config.metric;
        if !metric.is_categorical() {
            return Err(QueryError::NotCategorical(kind.clone()));
        }
        let method = method.unwrap_or(record.config.skills);
        let mut answers = Answers::new();
        for (task, t) in self.tasks.iter().filter(|(_, t)| &t.kind == kind) {
            for a in &t.answers {
                // Accepted answers of categorical kinds always name a class.
                if let Some(label) = metric.label_of(&a.answer) {
                    answers.push(task.as_str(), a.participant.as_str(), &label);
                }
            }
        }
        let board = |standings| Leaderboard {
            kind: Some(kind.clone()),
            basis: Basis::Skills { method },
            higher_is_better: true,
            standings,
        };
        let fit = match method.fit(&answers) {
            Ok(fit) => fit,
            Err(AggregateError::Empty) => return Ok(board(Vec::new())),
            Err(error) => {
                return Err(QueryError::Aggregate {
                    kind: kind.clone(),
                    error,
                });
            }
        };
        let mut given = vec![0u32; answers.n_workers()];
        for i in 0..answers.len() {
            if let Some((_, w, _)) = answers.get(i) {
                given[w] += 1;
            }
        }
        let standings = (0..answers.n_workers())
            .map(|w| {
                let participant = WorkerId::new(answers.worker_name(w));
                let totals = &record.totals[&participant];
                Standing {
                    rank: 0,
                    score: fit.skill(w),
                    answers: given[w],
                    pending: totals.pending,
                    first_submission: totals.first_submission,
                    participant,
                }
            })
            .collect();
        Ok(board(rank(standings, true)))
    }

    /// The overall leaderboard: each participant scores the number of participants they beat
    /// (whose score is strictly worse) on each kind's [`leaderboard`](Self::leaderboard),
    /// summed over the kinds. An integer, so ties are exact; ties broken as on every board.
    pub fn overall(&self) -> Result<Leaderboard, QueryError> {
        let mut rows: BTreeMap<WorkerId, Standing> = BTreeMap::new();
        for kind in self.kinds.keys() {
            let board = self.leaderboard(kind)?;
            let n = board.standings.len();
            for (i, s) in board.standings.iter().enumerate() {
                // Everyone listed after the last participant sharing this rank is beaten.
                let tied_after = board.standings[i + 1..]
                    .iter()
                    .take_while(|o| o.rank == s.rank)
                    .count();
                let beaten = (n - i - 1 - tied_after) as f64;
                let row = rows
                    .entry(s.participant.clone())
                    .or_insert_with(|| Standing {
                        rank: 0,
                        participant: s.participant.clone(),
                        score: 0.0,
                        answers: 0,
                        pending: 0,
                        first_submission: s.first_submission,
                    });
                row.score += beaten;
                row.answers += s.answers;
                row.pending += s.pending;
                row.first_submission = row.first_submission.min(s.first_submission);
            }
        }
        Ok(Leaderboard {
            kind: None,
            basis: Basis::Overall,
            higher_is_better: true,
            standings: rank(rows.into_values().collect(), true),
        })
    }

    // ----- the rules ---------------------------------------------------------------------------

    fn known(&self, task: &TaskId) -> Result<&TaskRecord, Refused> {
        self.tasks
            .get(task)
            .ok_or_else(|| Refused::UnknownTask(task.clone()))
    }

    fn check_truth(&self, kind: &KindRecord, task: &TaskId, truth: &str) -> Result<(), Refused> {
        kind.config
            .metric
            .check_truth(truth, &self.scorers)
            .map_err(|reason| Refused::MalformedTruth {
                task: task.clone(),
                reason,
            })
    }

    /// Applies an input [`check`](Self::check) accepted at `now`.
    fn apply(&mut self, now: Timestamp, input: Input) {
        match input {
            Input::DefineKind { kind, config } => {
                self.kinds.entry(kind).or_insert_with(|| KindRecord {
                    config,
                    totals: BTreeMap::new(),
                });
            }
            Input::PostTask(new) => {
                if let Some(at) = new.deadline {
                    self.deadlines.insert((at, new.task.clone()));
                }
                self.tasks.insert(
                    new.task,
                    TaskRecord {
                        kind: new.kind,
                        posted_at: now,
                        truth: new.truth,
                        deadline: new.deadline,
                        closed: false,
                        answers: Vec::new(),
                    },
                );
            }
            Input::Submit {
                task,
                participant,
                answer,
            } => self.submit(now, task, participant, answer),
            Input::RevealTruth { task, truth } => self.reveal(now, task, truth),
            Input::Tick => self.close_due(now),
        }
    }

    fn submit(&mut self, now: Timestamp, task: TaskId, participant: WorkerId, answer: String) {
        let record = self.tasks.get_mut(&task).expect("checked: the task exists");
        let kind = record.kind.clone();
        let kind_record = self.kinds.get_mut(&kind).expect("tasks are of known kinds");
        let totals = kind_record
            .totals
            .entry(participant.clone())
            .or_insert(Totals {
                sum: 0.0,
                scored: 0,
                failed: 0,
                pending: 0,
                first_submission: now,
            });
        totals.first_submission = totals.first_submission.min(now);
        let outcome = match &record.truth {
            None => {
                totals.pending += 1;
                self.events.push_back(Event::Deferred {
                    task: task.clone(),
                    kind,
                    participant: participant.clone(),
                    at: now,
                });
                Outcome::Pending
            }
            Some(truth) => {
                let metric = &kind_record.config.metric;
                let scored = metric.score(&answer, truth, &self.scorers);
                record_score(
                    totals,
                    &mut self.events,
                    scored,
                    &task,
                    kind,
                    &participant,
                    now,
                )
            }
        };
        record.answers.push(AnswerRecord {
            participant,
            answer,
            at: now,
            outcome,
        });
    }

    fn reveal(&mut self, now: Timestamp, task: TaskId, truth: String) {
        let record = self.tasks.get_mut(&task).expect("checked: the task exists");
        let kind_record = self
            .kinds
            .get_mut(&record.kind)
            .expect("tasks are of known kinds");
        for a in record
            .answers
            .iter_mut()
            .filter(|a| a.outcome == Outcome::Pending)
        {
            let totals = kind_record
                .totals
                .get_mut(&a.participant)
                .expect("an answer's participant has totals");
            totals.pending -= 1;
            let scored = kind_record
                .config
                .metric
                .score(&a.answer, &truth, &self.scorers);
            a.outcome = record_score(
                totals,
                &mut self.events,
                scored,
                &task,
                record.kind.clone(),
                &a.participant,
                now,
            );
        }
        record.truth = Some(truth);
    }

    fn close_due(&mut self, now: Timestamp) {
        while let Some((deadline, _)) = self.deadlines.first() {
            if *deadline > now {
                break;
            }
            let (deadline, task) = self.deadlines.pop_first().expect("first exists");
            let record = self
                .tasks
                .get_mut(&task)
                .expect("deadlines are of known tasks");
            record.closed = true;
            self.events.push_back(Event::Closed {
                task,
                kind: record.kind.clone(),
                deadline,
            });
        }
    }
}

/// Adds a score (or a scorer's failure) to a participant's totals and says so.
fn record_score(
    totals: &mut Totals,
    events: &mut VecDeque<Event>,
    scored: Result<f64, String>,
    task: &TaskId,
    kind: KindId,
    participant: &WorkerId,
    at: Timestamp,
) -> Outcome {
    let (task, participant) = (task.clone(), participant.clone());
    match scored {
        Ok(score) => {
            totals.sum += score;
            totals.scored += 1;
            events.push_back(Event::Scored {
                task,
                kind,
                participant,
                score,
                at,
            });
            Outcome::Scored { score }
        }
        Err(reason) => {
            totals.failed += 1;
            events.push_back(Event::ScoringFailed {
                task,
                kind,
                participant,
                reason: reason.clone(),
                at,
            });
            Outcome::Failed { reason }
        }
    }
}
