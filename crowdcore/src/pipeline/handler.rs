//! The [`Handler`] trait: what a stage does with its new assignments, as [`Decision`]s.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::platform::{NewTask, PoolAssignment, TaskId};
use crate::model::{AssignmentId, Money, Timestamp, WorkerId};

/// What a handler decided. The runtime writes decisions to the outbox in the same
/// transaction as the assignment that caused them and the observer's cursor, then carries
/// them out with idempotency keys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum Decision {
    /// Accept an assignment (of this stage or an earlier one).
    Accept {
        /// The assignment's stage.
        stage: String,
        /// The assignment.
        assignment: AssignmentId,
        /// The public comment.
        comment: String,
    },
    /// Reject an assignment (of this stage or an earlier one).
    Reject {
        /// The assignment's stage.
        stage: String,
        /// The assignment.
        assignment: AssignmentId,
        /// The public comment (why).
        comment: String,
    },
    /// Pay a worker a bonus.
    Bonus {
        /// The stage of the assignment it is for.
        stage: String,
        /// The worker.
        worker: WorkerId,
        /// The assignment it is for.
        assignment: Option<AssignmentId>,
        /// How much.
        amount: Money,
        /// The comment the worker sees.
        comment: String,
    },
    /// Create tasks in a stage's pool (and open the pool if it is closed).
    CreateTasks {
        /// The stage whose pool gets them.
        stage: String,
        /// The assignment whose work they continue (the decisions log's assignment).
        about: AssignmentId,
        /// The tasks.
        tasks: Vec<NewTask>,
    },
    /// Close a stage's pool.
    ClosePool {
        /// The stage.
        stage: String,
    },
    /// Open a stage's pool.
    OpenPool {
        /// The stage.
        stage: String,
    },
    /// The handler refused an assignment (no platform call): it is skipped, and the reason
    /// goes to the decisions log.
    Unhandled {
        /// The assignment.
        assignment: AssignmentId,
        /// Why.
        reason: String,
    },
    /// A row of the answers log (no platform call): one worker's answer to an aggregated task.
    Answer {
        /// The task.
        task: TaskId,
        /// The worker.
        worker: WorkerId,
        /// Their answer.
        label: String,
        /// Their skill (vote weight).
        skill: f64,
        /// The task's aggregated answer.
        result: String,
    },
}

/// A handler could not make sense of an assignment or of its saved state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandlerError {
    /// A field the handler needs is missing or has the wrong type.
    #[error("assignment {assignment}: {reason}")]
    BadInput {
        /// The assignment.
        assignment: AssignmentId,
        /// What is wrong.
        reason: String,
    },
    /// A decision names a stage the pipeline does not have.
    #[error("unknown stage {0:?}")]
    UnknownStage(String),
    /// The saved state cannot be read back.
    #[error("cannot restore the handler's state: {0}")]
    BadState(String),
    /// Aggregation failed.
    #[error("aggregation failed: {0}")]
    Aggregate(String),
}

/// What a handler sees of the pipeline while it decides, and where its decisions go.
#[derive(Debug)]
pub struct Decide<'a> {
    now: Timestamp,
    stage: &'a str,
    overlaps: &'a [(String, u32)],
    decisions: Vec<Decision>,
}

impl<'a> Decide<'a> {
    /// A context at `now` for `stage`, in a pipeline whose stages have these task overlaps.
    pub fn new(now: Timestamp, stage: &'a str, overlaps: &'a [(String, u32)]) -> Self {
        Self {
            now,
            stage,
            overlaps,
            decisions: Vec::new(),
        }
    }

    /// The time the assignment was observed (the same on a replay).
    pub fn now(&self) -> Timestamp {
        self.now
    }

    /// The stage being handled.
    pub fn stage(&self) -> &str {
        self.stage
    }

    /// The task overlap configured for `stage`.
    pub fn overlap(&self, stage: &str) -> Result<u32, HandlerError> {
        self.overlaps
            .iter()
            .find(|(name, _)| name == stage)
            .map(|(_, o)| *o)
            .ok_or_else(|| HandlerError::UnknownStage(stage.to_owned()))
    }

    /// Decides something.
    pub fn decide(&mut self, decision: Decision) -> Result<(), HandlerError> {
        let stage = match &decision {
            Decision::Accept { stage, .. }
            | Decision::Reject { stage, .. }
            | Decision::Bonus { stage, .. }
            | Decision::CreateTasks { stage, .. }
            | Decision::ClosePool { stage }
            | Decision::OpenPool { stage } => Some(stage),
            Decision::Answer { .. } | Decision::Unhandled { .. } => None,
        };
        if let Some(stage) = stage {
            self.overlap(stage)?;
        }
        self.decisions.push(decision);
        Ok(())
    }

    /// Accepts `assignment` of `stage`.
    pub fn accept(
        &mut self,
        stage: &str,
        assignment: &AssignmentId,
        comment: &str,
    ) -> Result<(), HandlerError> {
        self.decide(Decision::Accept {
            stage: stage.to_owned(),
            assignment: assignment.clone(),
            comment: comment.to_owned(),
        })
    }

    /// Rejects `assignment` of `stage`.
    pub fn reject(
        &mut self,
        stage: &str,
        assignment: &AssignmentId,
        comment: &str,
    ) -> Result<(), HandlerError> {
        self.decide(Decision::Reject {
            stage: stage.to_owned(),
            assignment: assignment.clone(),
            comment: comment.to_owned(),
        })
    }

    /// The decisions so far, taken out.
    pub fn into_decisions(self) -> Vec<Decision> {
        self.decisions
    }

    /// The decisions so far.
    pub fn decisions(&self) -> &[Decision] {
        &self.decisions
    }
}

/// What a stage does with its new assignments. Each submitted assignment reaches its stage's
/// handler exactly once, in the order observed, with the time it was observed.
///
/// A handler must be **deterministic**: its decisions and its new state may depend only on its
/// state, the assignment and [`Decide::now`] — no clock, no unseeded randomness, no I/O. After
/// a restart the runtime rebuilds a handler from its last saved state and replays the
/// assignments observed since, and the replayed decisions must be the ones already in the
/// outbox.
pub trait Handler: Send {
    /// Handles a new assignment of this stage. On an error the handler's state must be as it
    /// was (validate before mutating): the runtime drops the decisions of this call, records
    /// the assignment as unhandled in the decisions log, and goes on.
    fn handle(
        &mut self,
        cx: &mut Decide<'_>,
        assignment: &PoolAssignment,
    ) -> Result<(), HandlerError>;

    /// The handler's state, for a snapshot.
    fn save(&self) -> Value;

    /// Restores a state [`save`](Self::save) returned.
    fn load(&mut self, state: Value) -> Result<(), HandlerError>;

    /// How many things wait for more answers (tasks, groups), for reports.
    fn waiting(&self) -> usize {
        0
    }
}
