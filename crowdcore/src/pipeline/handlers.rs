//! Reusable handlers: the seed pipeline's steps as building blocks.
//!
//! - [`Fanout`]: a submitted piece of work (say, photos of a place) becomes one verification
//!   task per item in the next stage, all in one **group** named after the original
//!   assignment, so that the work is judged as a whole.
//! - [`MajorityVerify`]: answers to each task are aggregated with (skill-weighted)
//!   [`MajorityVote`] once the task's overlap is in; when every task of a group has its
//!   result, the group's [`Action`]s run — accept or reject the original assignment of an
//!   earlier stage, pay its worker a bonus, forward it to the next stage.
//!
//! Tasks carry what the next steps need in their input values, under the names in [`keys`];
//! handler state lives in the pipeline's snapshots and log, so a group half-decided before a
//! restart is decided after it.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::handler::{Decide, Decision, Handler, HandlerError};
use super::platform::{NewTask, PoolAssignment, TaskId, Values};
use crate::aggregate::{Answers, MajorityVote, MissingSkill};
use crate::model::{AssignmentId, Money, WorkerId};

/// Input-value names the shipped handlers write into the tasks they create and read back.
pub mod keys {
    /// The original assignment whose work the task judges.
    pub const ORIGIN_ASSIGNMENT: &str = "origin_assignment";
    /// The original assignment's stage.
    pub const ORIGIN_STAGE: &str = "origin_stage";
    /// The original assignment's worker.
    pub const ORIGIN_WORKER: &str = "origin_worker";
    /// The group the task belongs to.
    pub const GROUP: &str = "group";
    /// How many tasks the group has.
    pub const GROUP_SIZE: &str = "group_size";
    /// The item the task is about ([`Fanout`](super::Fanout)).
    pub const ITEM: &str = "item";
    /// The items of a whole group ([`Action::Forward`](super::Action::Forward)).
    pub const ITEMS: &str = "items";
}

fn bad(a: &PoolAssignment, reason: impl Into<String>) -> HandlerError {
    HandlerError::BadInput {
        assignment: a.id.clone(),
        reason: reason.into(),
    }
}

/// The first stage's handler: each item of a submission becomes a task in `next`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fanout {
    /// The stage that gets the tasks.
    pub next: String,
    /// The output field holding a list of items (each one task); `None`: the whole output is
    /// one item.
    pub items_field: Option<String>,
    /// The comment when a submission has no item (it is rejected).
    pub empty_comment: String,
}

impl Fanout {
    /// Items from `items_field` of every solution, each to its own task in `next`.
    pub fn new(next: impl Into<String>, items_field: Option<&str>) -> Self {
        Self {
            next: next.into(),
            items_field: items_field.map(str::to_owned),
            empty_comment: "nothing was submitted".into(),
        }
    }
}

impl Handler for Fanout {
    fn handle(&mut self, cx: &mut Decide<'_>, a: &PoolAssignment) -> Result<(), HandlerError> {
        let mut items = Vec::new();
        for solution in &a.solutions {
            match &self.items_field {
                None => items.push(Value::Object(solution.output_values.clone())),
                Some(field) => match solution.output_values.get(field) {
                    Some(Value::Array(list)) => items.extend(list.iter().cloned()),
                    Some(Value::Null) | None => {}
                    Some(_) => return Err(bad(a, format!("output {field:?} is not a list"))),
                },
            }
        }
        if items.is_empty() {
            let stage = cx.stage().to_owned();
            return cx.reject(&stage, &a.id, &self.empty_comment);
        }
        let overlap = cx.overlap(&self.next)?;
        let size = items.len();
        let tasks = items
            .into_iter()
            .map(|item| {
                let mut input = Values::new();
                input.insert(keys::ITEM.into(), item);
                input.insert(keys::ORIGIN_ASSIGNMENT.into(), json!(a.id.as_str()));
                input.insert(keys::ORIGIN_STAGE.into(), json!(cx.stage()));
                input.insert(keys::ORIGIN_WORKER.into(), json!(a.worker.as_str()));
                input.insert(keys::GROUP.into(), json!(a.id.as_str()));
                input.insert(keys::GROUP_SIZE.into(), json!(size));
                NewTask {
                    input_values: input,
                    overlap,
                    group: Some(a.id.as_str().to_owned()),
                }
            })
            .collect();
        cx.decide(Decision::CreateTasks {
            stage: self.next.clone(),
            about: a.id.clone(),
            tasks,
        })
    }

    fn save(&self) -> Value {
        Value::Null
    }

    fn load(&mut self, _: Value) -> Result<(), HandlerError> {
        Ok(())
    }
}

/// What [`MajorityVerify`] does with a group's original work once the group is decided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum Action {
    /// Accept the original assignment.
    AcceptOrigin {
        /// The public comment.
        comment: String,
    },
    /// Reject the original assignment.
    RejectOrigin {
        /// The public comment.
        comment: String,
    },
    /// Pay the original worker a bonus.
    BonusOrigin {
        /// How much.
        amount: Money,
        /// The comment.
        comment: String,
    },
    /// Create one task in `stage` for the whole group (its items under
    /// [`keys::ITEMS`]), keeping the origin.
    Forward {
        /// The next stage.
        stage: String,
    },
}

/// How [`MajorityVerify`] reviews its own stage's assignments (the verifiers' work).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "review", rename_all = "snake_case", deny_unknown_fields)]
pub enum OwnReview {
    /// Accept every assignment as it arrives.
    AcceptAll,
    /// Once its task is aggregated: accept answers that agree with the result, reject the
    /// others with `comment`.
    AcceptAgreeing {
        /// The rejection comment.
        comment: String,
    },
    /// Leave them to someone else.
    None,
}

/// Aggregates each task's answers by (weighted) majority vote and decides each group. See the
/// [module docs](self).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MajorityVerify {
    /// The output field holding the answer.
    pub label_field: String,
    /// The answer that means "yes, the work is good".
    pub yes: String,
    /// Vote weights by worker (Toloka skills); others weigh `default_skill`.
    pub skills: BTreeMap<String, f64>,
    /// The weight of a worker without a skill.
    pub default_skill: f64,
    /// Actions when every task of the group is "yes".
    pub on_yes: Vec<Action>,
    /// Actions otherwise.
    pub on_no: Vec<Action>,
    /// How this stage's own assignments are reviewed.
    pub own: OwnReview,
    /// The state: tasks waiting for answers and groups waiting for tasks.
    #[serde(skip)]
    state: VerifyState,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct VerifyState {
    tasks: BTreeMap<TaskId, TaskAnswers>,
    /// Tasks already decided: later answers (from re-opened slots) change nothing.
    decided: BTreeSet<TaskId>,
    groups: BTreeMap<String, Group>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct TaskAnswers {
    answers: Vec<(AssignmentId, WorkerId, String)>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Group {
    size: usize,
    origin: Origin,
    /// Per task: its item and whether its result was "yes".
    results: BTreeMap<TaskId, (Value, bool)>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Origin {
    assignment: AssignmentId,
    stage: String,
    worker: WorkerId,
}

impl MajorityVerify {
    /// Answers in `label_field`, "yes" meaning `yes`; unit weights; own assignments accepted
    /// as they arrive.
    pub fn new(label_field: &str, yes: &str, on_yes: Vec<Action>, on_no: Vec<Action>) -> Self {
        Self {
            label_field: label_field.into(),
            yes: yes.into(),
            skills: BTreeMap::new(),
            default_skill: 1.0,
            on_yes,
            on_no,
            own: OwnReview::AcceptAll,
            state: VerifyState::default(),
        }
    }

    fn label(&self, a: &PoolAssignment, i: usize) -> Result<String, HandlerError> {
        let solution = a
            .solutions
            .get(i)
            .ok_or_else(|| bad(a, format!("no solution for task {i}")))?;
        match solution.output_values.get(&self.label_field) {
            Some(Value::String(s)) => Ok(s.clone()),
            Some(Value::Bool(b)) => Ok(b.to_string()),
            Some(Value::Number(n)) => Ok(n.to_string()),
            _ => Err(bad(a, format!("no answer in {:?}", self.label_field))),
        }
    }

    fn skill(&self, worker: &WorkerId) -> f64 {
        self.skills
            .get(worker.as_str())
            .copied()
            .unwrap_or(self.default_skill)
    }

    /// Aggregates a task whose overlap is in; returns its result.
    fn aggregate(
        &self,
        cx: &mut Decide<'_>,
        task: &TaskId,
        answers: &TaskAnswers,
    ) -> Result<String, HandlerError> {
        let mut data = Answers::with_capacity(answers.answers.len());
        for (_, worker, label) in &answers.answers {
            data.push(task.as_str(), worker.as_str(), label);
        }
        let vote = MajorityVote {
            missing_skill: MissingSkill::Value(self.default_skill),
            ..MajorityVote::default()
        };
        let skills = answers
            .answers
            .iter()
            .map(|(_, w, _)| (w.as_str(), self.skill(w)));
        let fit = vote
            .fit_weighted(&data, skills)
            .map_err(|e| HandlerError::Aggregate(e.to_string()))?;
        let result = fit.label(0).to_owned();
        for (_, worker, label) in &answers.answers {
            cx.decide(Decision::Answer {
                task: task.clone(),
                worker: worker.clone(),
                label: label.clone(),
                skill: self.skill(worker),
                result: result.clone(),
            })?;
        }
        if let OwnReview::AcceptAgreeing { comment } = &self.own {
            let stage = cx.stage().to_owned();
            for (assignment, _, label) in &answers.answers {
                if *label == result {
                    cx.accept(&stage, assignment, "")?;
                } else {
                    cx.reject(&stage, assignment, comment)?;
                }
            }
        }
        Ok(result)
    }

    fn run(
        &self,
        cx: &mut Decide<'_>,
        actions: &[Action],
        group: &str,
        g: &Group,
    ) -> Result<(), HandlerError> {
        let o = &g.origin;
        for action in actions {
            match action {
                Action::AcceptOrigin { comment } => cx.accept(&o.stage, &o.assignment, comment)?,
                Action::RejectOrigin { comment } => cx.reject(&o.stage, &o.assignment, comment)?,
                Action::BonusOrigin { amount, comment } => cx.decide(Decision::Bonus {
                    stage: o.stage.clone(),
                    worker: o.worker.clone(),
                    assignment: Some(o.assignment.clone()),
                    amount: *amount,
                    comment: comment.clone(),
                })?,
                Action::Forward { stage } => {
                    let mut input = Values::new();
                    let items: Vec<Value> = g.results.values().map(|(v, _)| v.clone()).collect();
                    input.insert(keys::ITEMS.into(), Value::Array(items));
                    input.insert(keys::ORIGIN_ASSIGNMENT.into(), json!(o.assignment.as_str()));
                    input.insert(keys::ORIGIN_STAGE.into(), json!(o.stage));
                    input.insert(keys::ORIGIN_WORKER.into(), json!(o.worker.as_str()));
                    input.insert(keys::GROUP.into(), json!(group));
                    input.insert(keys::GROUP_SIZE.into(), json!(1));
                    cx.decide(Decision::CreateTasks {
                        stage: stage.clone(),
                        about: o.assignment.clone(),
                        tasks: vec![NewTask {
                            input_values: input,
                            overlap: cx.overlap(stage)?,
                            group: Some(group.to_owned()),
                        }],
                    })?;
                }
            }
        }
        Ok(())
    }
}

fn text<'v>(a: &PoolAssignment, input: &'v Values, key: &str) -> Result<&'v str, HandlerError> {
    input
        .get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| bad(a, format!("task input has no {key:?}")))
}

impl Handler for MajorityVerify {
    fn handle(&mut self, cx: &mut Decide<'_>, a: &PoolAssignment) -> Result<(), HandlerError> {
        if a.solutions.len() != a.tasks.len() {
            return Err(bad(a, "solutions and tasks differ in number"));
        }
        let needed = cx.overlap(cx.stage())?.max(1) as usize;
        // Read and check everything before changing anything: a bad assignment changes nothing.
        // The actions' stages are checked here too, since they run after the state has moved.
        for action in self.on_yes.iter().chain(&self.on_no) {
            if let Action::Forward { stage } = action {
                cx.overlap(stage)?;
            }
        }
        // The vote weighs answers by skill, and refuses a weight that is negative or not
        // finite: refuse such a worker's answer here, before any task counts it.
        let skill = self.skill(&a.worker);
        if !skill.is_finite() || skill < 0.0 {
            return Err(bad(a, format!("worker {} has skill {skill}", a.worker)));
        }
        let mut parsed = Vec::with_capacity(a.tasks.len());
        for (i, task) in a.tasks.iter().enumerate() {
            let label = self.label(a, i)?;
            let input = &task.input_values;
            let group = text(a, input, keys::GROUP)?.to_owned();
            let size = input
                .get(keys::GROUP_SIZE)
                .and_then(Value::as_u64)
                .ok_or_else(|| bad(a, "task input has no group_size"))?;
            let origin = Origin {
                assignment: AssignmentId::new(text(a, input, keys::ORIGIN_ASSIGNMENT)?),
                stage: text(a, input, keys::ORIGIN_STAGE)?.to_owned(),
                worker: WorkerId::new(text(a, input, keys::ORIGIN_WORKER)?),
            };
            cx.overlap(&origin.stage)?;
            let item = input
                .get(keys::ITEM)
                .or_else(|| input.get(keys::ITEMS))
                .cloned()
                .unwrap_or(Value::Null);
            parsed.push((task.id.clone(), label, group, size as usize, origin, item));
        }
        if self.own == OwnReview::AcceptAll {
            let stage = cx.stage().to_owned();
            cx.accept(&stage, &a.id, "")?;
        }
        for (task, label, group, size, origin, item) in parsed {
            if self.state.decided.contains(&task) {
                if let OwnReview::AcceptAgreeing { .. } = self.own {
                    // Too late to count: accept it, as the task is already decided.
                    let stage = cx.stage().to_owned();
                    cx.accept(&stage, &a.id, "")?;
                }
                continue;
            }
            let answer = (a.id.clone(), a.worker.clone(), label);
            let counted = self.state.tasks.get(&task).map_or(0, |e| e.answers.len());
            if counted + 1 < needed {
                self.state
                    .tasks
                    .entry(task.clone())
                    .or_default()
                    .answers
                    .push(answer);
                continue;
            }
            // The overlap is in: decide the task, once — aggregating before the task's answers
            // move, so that a refusal leaves them where they were.
            let mut answers = self.state.tasks.get(&task).cloned().unwrap_or_default();
            answers.answers.push(answer);
            let result = self.aggregate(cx, &task, &answers)?;
            self.state.tasks.remove(&task);
            self.state.decided.insert(task.clone());
            let g = self.state.groups.entry(group.clone()).or_insert(Group {
                size,
                origin,
                results: BTreeMap::new(),
            });
            g.results.insert(task, (item, result == self.yes));
            if g.results.len() < g.size {
                continue;
            }
            let g = self
                .state
                .groups
                .remove(&group)
                .expect("the group was just looked up");
            let actions = if g.results.values().all(|(_, yes)| *yes) {
                &self.on_yes
            } else {
                &self.on_no
            };
            self.run(cx, actions, &group, &g)?;
        }
        Ok(())
    }

    fn save(&self) -> Value {
        serde_json::to_value(&self.state).unwrap_or(Value::Null)
    }

    fn load(&mut self, state: Value) -> Result<(), HandlerError> {
        self.state =
            serde_json::from_value(state).map_err(|e| HandlerError::BadState(e.to_string()))?;
        Ok(())
    }

    fn waiting(&self) -> usize {
        self.state.tasks.len() + self.state.groups.len()
    }
}
