//! What goes into the scoring machine and what comes out: ids, [`Input`], [`Event`],
//! [`Refused`].

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::board::SkillMethod;
use super::metric::Metric;
use crate::model::{Timestamp, WorkerId};

macro_rules! name_id {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Arc<str>);

        impl $name {
            /// Wraps a name.
            pub fn new(id: impl Into<Arc<str>>) -> Self {
                Self(id.into())
            }

            /// The name as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&*self.0, f)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self(s.into())
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                Self(s.into())
            }
        }
    };
}

name_id!(
    /// A task kind: tasks of one kind share a metric and a leaderboard.
    KindId
);
name_id!(
    /// A task, as the requester names it (not a platform's HIT id: one task may be posted on
    /// any platform, or on none).
    TaskId
);

/// How a kind's answers are scored and, without truth, rated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KindConfig {
    /// The metric answers are scored with.
    pub metric: Metric,
    /// How participants are rated from their answers alone while no answer of the kind has been
    /// scored (categorical metrics only).
    #[serde(default)]
    pub skills: SkillMethod,
}

impl KindConfig {
    /// A kind scored by `metric`, rated by majority vote until truth arrives.
    pub fn new(metric: Metric) -> Self {
        Self {
            metric,
            skills: SkillMethod::default(),
        }
    }

    /// The same kind, rated by `method` until truth arrives.
    pub fn with_skills(self, method: SkillMethod) -> Self {
        Self {
            skills: method,
            ..self
        }
    }
}

/// A task to post.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewTask {
    /// Its name.
    pub task: TaskId,
    /// Its kind (defined before).
    pub kind: KindId,
    /// The truth, if known when posting; otherwise answers wait for
    /// [`Input::RevealTruth`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truth: Option<String>,
    /// Submissions made at or after this time are refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<Timestamp>,
}

impl NewTask {
    /// A task of `kind`, without truth or deadline.
    pub fn new(task: impl Into<TaskId>, kind: impl Into<KindId>) -> Self {
        Self {
            task: task.into(),
            kind: kind.into(),
            truth: None,
            deadline: None,
        }
    }

    /// With its truth known now.
    pub fn truth(self, truth: impl Into<String>) -> Self {
        Self {
            truth: Some(truth.into()),
            ..self
        }
    }

    /// With a deadline.
    pub fn deadline(self, at: Timestamp) -> Self {
        Self {
            deadline: Some(at),
            ..self
        }
    }
}

/// An input to the [`Scoreboard`](super::Scoreboard), given with the time it happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "input", rename_all = "snake_case")]
pub enum Input {
    /// Defines a task kind. Defining a kind again with the same config changes nothing (so a
    /// host may repeat its setup after a restart); with another config it is refused.
    DefineKind {
        /// The kind.
        kind: KindId,
        /// Its metric and skill method.
        config: KindConfig,
    },
    /// Posts a task.
    PostTask(NewTask),
    /// A participant answers a task. The time given with it is when the answer was made (a
    /// platform's submission time), which is what the deadline is checked against.
    Submit {
        /// The task.
        task: TaskId,
        /// Who answers (a worker on the platform: a person, a bot or a model).
        participant: WorkerId,
        /// The answer, in the form the kind's metric reads.
        answer: String,
    },
    /// The truth of a task posted without one arrives: its waiting answers are scored.
    RevealTruth {
        /// The task.
        task: TaskId,
        /// Its truth.
        truth: String,
    },
    /// Time passes: tasks whose deadline is due are closed.
    Tick,
}

/// Something the machine did, drained with [`Scoreboard::poll_event`](super::Scoreboard::poll_event).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// An answer was accepted; its task has no truth yet, so it waits (deferred scoring).
    Deferred {
        /// The task.
        task: TaskId,
        /// Its kind.
        kind: KindId,
        /// Who answered.
        participant: WorkerId,
        /// When.
        at: Timestamp,
    },
    /// An answer was scored: on submission if the truth was known, else when it arrived.
    Scored {
        /// The task.
        task: TaskId,
        /// Its kind.
        kind: KindId,
        /// Who answered.
        participant: WorkerId,
        /// The answer's score under the kind's metric.
        score: f64,
        /// When it was scored.
        at: Timestamp,
    },
    /// A custom scorer failed on an answer (an error or a non-finite score); the answer counts
    /// in no mean.
    ScoringFailed {
        /// The task.
        task: TaskId,
        /// Its kind.
        kind: KindId,
        /// Who answered.
        participant: WorkerId,
        /// The scorer's reason.
        reason: String,
        /// When.
        at: Timestamp,
    },
    /// A task's deadline passed: it takes no more answers.
    Closed {
        /// The task.
        task: TaskId,
        /// Its kind.
        kind: KindId,
        /// Its deadline.
        deadline: Timestamp,
    },
    /// An input a driver observed (a submission read from a platform) was refused. The machine
    /// itself returns refusals from [`handle`](super::Scoreboard::handle) and never emits this;
    /// drivers do, for inputs no caller is waiting on.
    Refused {
        /// The input.
        input: Input,
        /// Why.
        reason: Refused,
    },
}

/// Why the machine refused an input. A refused input changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Refused {
    /// No kind of that name was defined.
    #[error("unknown kind {0}")]
    UnknownKind(KindId),
    /// The kind is already defined with another config.
    #[error("kind {0} is already defined with another config")]
    KindExists(KindId),
    /// The kind's metric is unusable (a parameter out of range).
    #[error("invalid kind config: {0}")]
    InvalidConfig(String),
    /// A custom metric names a scorer that is not registered.
    #[error("no scorer is registered as {0:?}")]
    UnknownScorer(String),
    /// No task of that name was posted.
    #[error("unknown task {0}")]
    UnknownTask(TaskId),
    /// A task of that name was already posted.
    #[error("task {0} was already posted")]
    TaskExists(TaskId),
    /// The submission was made at or after the task's deadline.
    #[error("task {task} closed at {deadline}; the answer came at {at}")]
    PastDeadline {
        /// The task.
        task: TaskId,
        /// Its deadline.
        deadline: Timestamp,
        /// When the answer was made.
        at: Timestamp,
    },
    /// The participant already answered the task (one answer per participant and task).
    #[error("{participant} already answered task {task}")]
    AlreadyAnswered {
        /// The task.
        task: TaskId,
        /// The participant.
        participant: WorkerId,
    },
    /// The answer is not in the form the kind's metric reads.
    #[error("malformed answer to task {task}: {reason}")]
    MalformedAnswer {
        /// The task.
        task: TaskId,
        /// What is wrong.
        reason: String,
    },
    /// The truth is not in the form the kind's metric reads.
    #[error("malformed truth for task {task}: {reason}")]
    MalformedTruth {
        /// The task.
        task: TaskId,
        /// What is wrong.
        reason: String,
    },
    /// The task's truth is already known; truth is given once.
    #[error("the truth of task {0} is already known")]
    TruthKnown(TaskId),
}
