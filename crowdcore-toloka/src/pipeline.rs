//! [`TolokaPipeline`]: crowdcore's [`PipelinePlatform`] on Toloka API v1, one client call per
//! method (the mapping table is on [`PipelinePlatform`]).
//!
//! Idempotency: creating tasks and paying bonuses go in asynchronous operations whose
//! `operation_id` is [`crowdcore::pipeline::operation_id`] of the runtime's key — the one
//! derivation for pipelines, the same in every process, so a call re-sent after a crash finds
//! Toloka's first operation (`409 OPERATION_ALREADY_EXISTS`) and creates or pays nothing more.
//! Reviews have no operation id on Toloka: they are idempotent by state (reviewing an
//! assignment into the state it has succeeds; into the other one is a permanent
//! [`PlatformErrorKind::Conflict`](crowdcore::platform::PlatformErrorKind::Conflict)).

use async_trait::async_trait;
use crowdcore::model::{AssignmentId, Money, Timestamp, WorkerId};
use crowdcore::pipeline::{
    AssignedTask, AssignmentPage, AssignmentQuery, AssignmentStatus, NewTask, PipelinePlatform,
    PoolAssignment, PoolId, PoolInfo, PoolStatus, Solution, SortBy, TaskId, TimeField,
    handlers::keys, operation_id,
};
use crowdcore::platform::{IdempotencyKey, PlatformError};
use serde_json::{Value, json};

use crate::client::TolokaClient;
use crate::model::{self, AssignmentFilter, AssignmentSort, TimeBound, TolokaTime};

/// A pipeline's platform on Toloka: every stage's pool is a Toloka pool reached through one
/// [`TolokaClient`] (its retries and backoff apply to every call).
///
/// Tasks carry their group (if any) in `input_values` under
/// [`keys::GROUP`](crowdcore::pipeline::handlers::keys::GROUP), so a project whose tasks are
/// grouped needs that input field. Each stage's project must declare the input fields its
/// tasks carry — which differ by stage: see [`fanout_inputs`] and [`forward_inputs`] for the
/// shipped handlers — and may require only fields every task carries, or Toloka refuses the
/// tasks with a validation error. [`check_stages`](Self::check_stages) checks this up front.
#[derive(Debug, Clone)]
pub struct TolokaPipeline {
    client: TolokaClient,
}

impl TolokaPipeline {
    /// The pipeline platform over `client`.
    pub fn new(client: TolokaClient) -> Self {
        Self { client }
    }

    /// The client.
    pub fn client(&self) -> &TolokaClient {
        &self.client
    }

    /// Checks, before anything is created, that every stage's pool can take what the
    /// pipeline will send it: the pool exists and is not archived, no two stages share a
    /// pool, and the pool's project declares every input field the stage's tasks carry (with
    /// a type their values have), requires none they do not always carry, and declares every
    /// output field the stage's handler reads. The first misfit is the error, naming the
    /// stage and the field. Only reads are sent (`GET /pools/{id}`, `GET /projects/{id}`).
    pub async fn check_stages(&self, stages: &[StageSpec]) -> Result<(), StageSpecError> {
        for (i, a) in stages.iter().enumerate() {
            if let Some(b) = stages[..i].iter().find(|b| b.pool == a.pool) {
                return Err(StageSpecError::SharedPool {
                    first: b.stage.clone(),
                    second: a.stage.clone(),
                    pool: a.pool.as_str().to_owned(),
                });
            }
        }
        for spec in stages {
            self.check_stage(spec).await?;
        }
        Ok(())
    }

    async fn check_stage(&self, spec: &StageSpec) -> Result<(), StageSpecError> {
        let stage = spec.stage.clone();
        let pool_id = spec.pool.as_str().to_owned();
        let unreadable = |error| StageSpecError::Unreadable {
            stage: stage.clone(),
            pool: pool_id.clone(),
            error,
        };
        let pool = self.client.get_pool(&pool_id).await.map_err(unreadable)?;
        if pool.status == model::PoolStatus::Archived {
            return Err(StageSpecError::Archived {
                stage,
                pool: pool_id,
            });
        }
        if spec.inputs.is_empty() && spec.outputs.is_empty() {
            return Ok(());
        }
        let project = self
            .client
            .get_project(&pool.project_id)
            .await
            .map_err(unreadable)?;
        let project_id = project.id.clone();
        let Some(task_spec) = project.task_spec else {
            return Err(StageSpecError::NoTaskSpec {
                stage,
                pool: pool_id,
                project: project_id,
            });
        };
        for input in &spec.inputs {
            let Some(declared) = task_spec.input_spec.get(&input.name) else {
                return Err(StageSpecError::Undeclared {
                    stage,
                    pool: pool_id,
                    project: project_id,
                    field: input.name.clone(),
                });
            };
            if !declared.accepts(&input.sample) {
                return Err(StageSpecError::WrongType {
                    stage,
                    pool: pool_id,
                    project: project_id,
                    field: input.name.clone(),
                    declared: declared.kind.clone(),
                    sample: input.sample.to_string(),
                });
            }
            if declared.required && !input.always {
                return Err(StageSpecError::RequiredNotWritten {
                    stage,
                    pool: pool_id,
                    project: project_id,
                    field: input.name.clone(),
                    which: "not every task",
                    them: "the tasks without it",
                });
            }
        }
        if !spec.inputs.is_empty() {
            for (name, declared) in &task_spec.input_spec {
                if declared.required && !spec.inputs.iter().any(|i| &i.name == name) {
                    return Err(StageSpecError::RequiredNotWritten {
                        stage,
                        pool: pool_id,
                        project: project_id,
                        field: name.clone(),
                        which: "no task",
                        them: "every task",
                    });
                }
            }
        }
        for output in &spec.outputs {
            if !task_spec.output_spec.contains_key(output) {
                return Err(StageSpecError::NoOutput {
                    stage,
                    pool: pool_id,
                    project: project_id,
                    field: output.clone(),
                });
            }
        }
        Ok(())
    }
}

/// One input field the tasks a pipeline creates in a stage carry.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct InputField {
    /// Its name in `input_values`.
    pub name: String,
    /// A value of the kind written (its type is checked against the project's declaration).
    pub sample: Value,
    /// Whether every task carries it (then the project may require it); otherwise it must
    /// be optional.
    pub always: bool,
}

impl InputField {
    /// A field every task carries, with values like `sample`.
    pub fn always(name: &str, sample: Value) -> Self {
        Self {
            name: name.to_owned(),
            sample,
            always: true,
        }
    }

    /// A field some tasks carry, with values like `sample`.
    pub fn sometimes(name: &str, sample: Value) -> Self {
        Self {
            always: false,
            ..Self::always(name, sample)
        }
    }
}

/// The fields every task carries that the shipped handlers create with an origin: the group
/// and its size, the original assignment, its stage and worker.
fn origin_inputs() -> Vec<InputField> {
    vec![
        InputField::always(keys::GROUP, json!("00000000000000a1")),
        InputField::always(keys::GROUP_SIZE, json!(1)),
        InputField::always(keys::ORIGIN_ASSIGNMENT, json!("00000000000000a1")),
        InputField::always(keys::ORIGIN_STAGE, json!("submit")),
        InputField::always(keys::ORIGIN_WORKER, json!("w1")),
    ]
}

/// The input fields of the tasks [`Fanout`](crowdcore::pipeline::Fanout) creates in the next
/// stage: `item` (one item of the submission, like `item`), `group`, `group_size` (an
/// integer), `origin_assignment`, `origin_stage`, `origin_worker` — every one on every task.
/// No `items`.
pub fn fanout_inputs(item: Value) -> Vec<InputField> {
    let mut fields = vec![InputField::always(keys::ITEM, item)];
    fields.extend(origin_inputs());
    fields
}

/// The input fields of the task [`Action::Forward`](crowdcore::pipeline::Action::Forward)
/// creates for a decided group: `items` (the group's items, a list like `items`), `group`,
/// `group_size` (1), `origin_assignment`, `origin_stage`, `origin_worker` — every one on every
/// task. No `item`.
pub fn forward_inputs(items: Value) -> Vec<InputField> {
    let mut fields = vec![InputField::always(keys::ITEMS, items)];
    fields.extend(origin_inputs());
    fields
}

/// What a stage needs of its Toloka pool and project, checked by
/// [`TolokaPipeline::check_stages`] before a pipeline runs.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct StageSpec {
    /// The stage's name (for messages).
    pub stage: String,
    /// Its pool.
    pub pool: PoolId,
    /// The input fields of the tasks the pipeline creates in it (empty: it creates none, as
    /// in a first stage whose tasks the requester uploads).
    pub inputs: Vec<InputField>,
    /// The output fields its handler reads from answers.
    pub outputs: Vec<String>,
}

impl StageSpec {
    /// A stage on `pool` whose tasks carry `inputs` and whose answers are read for
    /// `outputs`.
    pub fn new(stage: &str, pool: PoolId, inputs: Vec<InputField>, outputs: &[&str]) -> Self {
        Self {
            stage: stage.to_owned(),
            pool,
            inputs,
            outputs: outputs.iter().map(|s| (*s).to_owned()).collect(),
        }
    }
}

/// Why a stage's pool or project does not fit what the pipeline will do with it.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum StageSpecError {
    /// The pool or its project could not be read.
    #[error("stage {stage} (pool {pool}): {error}")]
    Unreadable {
        /// The stage.
        stage: String,
        /// Its pool.
        pool: String,
        /// What Toloka answered.
        error: crate::TolokaError,
    },
    /// The pool is archived: nothing can be created or opened in it.
    #[error("stage {stage} (pool {pool}): the pool is archived")]
    Archived {
        /// The stage.
        stage: String,
        /// Its pool.
        pool: String,
    },
    /// Two stages share a pool.
    #[error("stages {first} and {second} share pool {pool}; each stage needs its own")]
    SharedPool {
        /// One stage.
        first: String,
        /// The other.
        second: String,
        /// The pool.
        pool: String,
    },
    /// The project has no task specification to check against.
    #[error("stage {stage} (pool {pool}, project {project}): the project has no task_spec")]
    NoTaskSpec {
        /// The stage.
        stage: String,
        /// Its pool.
        pool: String,
        /// Its project.
        project: String,
    },
    /// The stage's tasks carry an input field the project does not declare.
    #[error(
        "stage {stage} (pool {pool}, project {project}): the project's input_spec does not declare \
         {field:?}, which every task the pipeline creates in this stage carries: Toloka would \
         refuse them all; declare it"
    )]
    Undeclared {
        /// The stage.
        stage: String,
        /// Its pool.
        pool: String,
        /// Its project.
        project: String,
        /// The field.
        field: String,
    },
    /// The project declares an input field with a type the stage's values do not have.
    #[error(
        "stage {stage} (pool {pool}, project {project}): input field {field:?} is declared \
         {declared}, but the pipeline writes values like {sample}"
    )]
    WrongType {
        /// The stage.
        stage: String,
        /// Its pool.
        pool: String,
        /// Its project.
        project: String,
        /// The field.
        field: String,
        /// Its declared type.
        declared: String,
        /// A value of the kind written.
        sample: String,
    },
    /// The project requires an input field the stage's tasks do not (always) carry.
    #[error(
        "stage {stage} (pool {pool}, project {project}): input field {field:?} is required by \
         the project, but {which} the pipeline creates in this stage carries it: Toloka would \
         refuse {them}; make it optional (\"required\": false) or remove it"
    )]
    RequiredNotWritten {
        /// The stage.
        stage: String,
        /// Its pool.
        pool: String,
        /// Its project.
        project: String,
        /// The field.
        field: String,
        /// "no task" or "not every task".
        which: &'static str,
        /// "every task" or "the tasks without it".
        them: &'static str,
    },
    /// The stage's handler reads an output field the project does not declare.
    #[error(
        "stage {stage} (pool {pool}, project {project}): the project's output_spec does not \
         declare {field:?}, which the stage's handler reads from every answer"
    )]
    NoOutput {
        /// The stage.
        stage: String,
        /// Its pool.
        pool: String,
        /// Its project.
        project: String,
        /// The field.
        field: String,
    },
}

fn field(f: TimeField) -> model::TimeField {
    match f {
        TimeField::Created => model::TimeField::Created,
        TimeField::Submitted => model::TimeField::Submitted,
        TimeField::Accepted => model::TimeField::Accepted,
        TimeField::Rejected => model::TimeField::Rejected,
    }
}

fn status_to(s: AssignmentStatus) -> model::AssignmentStatus {
    match s {
        AssignmentStatus::Active => model::AssignmentStatus::Active,
        AssignmentStatus::Submitted => model::AssignmentStatus::Submitted,
        AssignmentStatus::Accepted => model::AssignmentStatus::Accepted,
        AssignmentStatus::Rejected => model::AssignmentStatus::Rejected,
        AssignmentStatus::Skipped => model::AssignmentStatus::Skipped,
        AssignmentStatus::Expired => model::AssignmentStatus::Expired,
    }
}

fn status_from(s: model::AssignmentStatus) -> AssignmentStatus {
    match s {
        model::AssignmentStatus::Active => AssignmentStatus::Active,
        model::AssignmentStatus::Submitted => AssignmentStatus::Submitted,
        model::AssignmentStatus::Accepted => AssignmentStatus::Accepted,
        model::AssignmentStatus::Rejected => AssignmentStatus::Rejected,
        model::AssignmentStatus::Skipped => AssignmentStatus::Skipped,
        model::AssignmentStatus::Expired => AssignmentStatus::Expired,
    }
}

fn toloka_time(ts: Timestamp) -> Result<TolokaTime, PlatformError> {
    TolokaTime::from_timestamp(ts).ok_or_else(|| {
        PlatformError::bad_request("INVALID_REQUEST", format!("time {ts} is out of range"))
    })
}

/// The Toloka filter of a pipeline query.
fn filter(query: &AssignmentQuery) -> Result<AssignmentFilter, PlatformError> {
    let f = field(query.field);
    let mut time = Vec::new();
    if let Some(gte) = query.gte {
        time.push((f, TimeBound::Gte(toloka_time(gte)?)));
    }
    if let Some(lt) = query.lt {
        time.push((f, TimeBound::Lt(toloka_time(lt)?)));
    }
    Ok(AssignmentFilter {
        pool_id: Some(query.pool.as_str().to_owned()),
        status: query.status.iter().copied().map(status_to).collect(),
        id_gt: query.id_gt.as_ref().map(|id| id.as_str().to_owned()),
        time,
        sort: match query.sort {
            SortBy::TimeThenId => AssignmentSort::Time(f),
            SortBy::Id => AssignmentSort::Id,
        },
        limit: Some(query.limit),
        ..AssignmentFilter::default()
    })
}

/// A Toloka assignment as a pipeline sees it.
fn assignment(a: model::Assignment) -> Result<PoolAssignment, PlatformError> {
    let ts = |t: Option<TolokaTime>| t.map(TolokaTime::to_timestamp);
    let created = ts(a.created).ok_or_else(|| {
        PlatformError::bad_request(
            "DECODE",
            format!("assignment {} has no creation time", a.id),
        )
    })?;
    Ok(PoolAssignment {
        id: AssignmentId::new(a.id),
        pool: PoolId::new(a.pool_id),
        worker: WorkerId::new(a.user_id),
        status: status_from(a.status),
        created,
        submitted: ts(a.submitted),
        accepted: ts(a.accepted),
        rejected: ts(a.rejected),
        tasks: a
            .tasks
            .into_iter()
            .map(|t| AssignedTask {
                id: TaskId::new(t.id),
                input_values: t.input_values,
            })
            .collect(),
        solutions: a
            .solutions
            .into_iter()
            .map(|s| Solution {
                output_values: s.output_values,
            })
            .collect(),
    })
}

/// A Toloka pool's state. A status this crate does not know, or `LOCKED` (an operation is
/// changing it), counts as open: a pipeline never takes a pool it cannot read for drained.
fn pool_info(p: model::Pool) -> PoolInfo {
    let status = match p.status {
        model::PoolStatus::Closed => PoolStatus::Closed,
        model::PoolStatus::Archived => PoolStatus::Archived,
        model::PoolStatus::Open | model::PoolStatus::Locked | model::PoolStatus::Other(_) => {
            PoolStatus::Open
        }
    };
    let last_stopped = p
        .extra
        .get("last_stopped")
        .and_then(Value::as_str)
        .and_then(TolokaTime::parse)
        .map(TolokaTime::to_timestamp);
    PoolInfo {
        id: PoolId::new(p.id),
        status,
        last_started: p.last_started.map(TolokaTime::to_timestamp),
        last_stopped,
    }
}

#[async_trait]
impl PipelinePlatform for TolokaPipeline {
    async fn list_assignments(
        &self,
        query: &AssignmentQuery,
    ) -> Result<AssignmentPage, PlatformError> {
        let page = self.client.find_assignments(&filter(query)?).await?;
        Ok(AssignmentPage {
            items: page
                .items
                .into_iter()
                .map(assignment)
                .collect::<Result<_, _>>()?,
            has_more: page.has_more,
        })
    }

    async fn create_tasks(
        &self,
        pool: &PoolId,
        tasks: &[NewTask],
        key: &IdempotencyKey,
    ) -> Result<Vec<TaskId>, PlatformError> {
        if tasks.is_empty() {
            return Err(PlatformError::bad_request("INVALID_REQUEST", "no tasks"));
        }
        let new: Vec<model::NewTask> = tasks
            .iter()
            .map(|t| {
                let mut input = t.input_values.clone();
                if let Some(group) = &t.group {
                    input
                        .entry(keys::GROUP)
                        .or_insert_with(|| Value::String(group.clone()));
                }
                model::NewTask::new(pool.as_str(), input, t.overlap)
            })
            .collect();
        // Asynchronous with the key's operation id, never synchronous: a synchronous creation
        // cannot be recognised when it is sent again.
        let created = self
            .client
            .create_tasks(&new, Default::default(), Some(operation_id(key)))
            .await?;
        (0..tasks.len())
            .map(|i| {
                created
                    .item(i)
                    .map(|id| TaskId::new(id.clone()))
                    .ok_or_else(|| {
                        let why = created.validation_errors.get(&i.to_string()).map_or_else(
                            || "not in the operation log".into(),
                            |e| Value::Object(e.clone()).to_string(),
                        );
                        PlatformError::bad_request(
                            "VALIDATION_ERROR",
                            format!("task {i} of {}: {why}", tasks.len()),
                        )
                    })
            })
            .collect()
    }

    async fn accept(
        &self,
        assignment: &AssignmentId,
        comment: &str,
        _key: &IdempotencyKey,
    ) -> Result<(), PlatformError> {
        self.client
            .accept_assignment(assignment.as_str(), comment)
            .await?;
        Ok(())
    }

    async fn reject(
        &self,
        assignment: &AssignmentId,
        comment: &str,
        _key: &IdempotencyKey,
    ) -> Result<(), PlatformError> {
        self.client
            .reject_assignment(assignment.as_str(), comment)
            .await?;
        Ok(())
    }

    async fn bonus(
        &self,
        worker: &WorkerId,
        assignment: Option<&AssignmentId>,
        amount: Money,
        comment: &str,
        key: &IdempotencyKey,
    ) -> Result<(), PlatformError> {
        let usd = crate::platform::bonus_usd(amount)?;
        let text = |t: &str| model::LocalizedText::from([("EN".to_owned(), t.to_owned())]);
        let bonus = model::NewUserBonus {
            user_id: worker.as_str().to_owned(),
            amount: usd,
            assignment_id: assignment.map(|a| a.as_str().to_owned()),
            private_comment: Some(format!("crowdcore {}", key.as_str())),
            public_title: text("Bonus"),
            public_message: text(comment),
            without_message: None,
        };
        self.client
            .create_user_bonuses(std::slice::from_ref(&bonus), operation_id(key))
            .await?;
        Ok(())
    }

    async fn pool(&self, pool: &PoolId) -> Result<PoolInfo, PlatformError> {
        Ok(pool_info(self.client.get_pool(pool.as_str()).await?))
    }

    async fn open_pool(&self, pool: &PoolId) -> Result<(), PlatformError> {
        self.client.open_pool(pool.as_str()).await?;
        Ok(())
    }

    async fn close_pool(&self, pool: &PoolId) -> Result<(), PlatformError> {
        self.client.close_pool(pool.as_str()).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crowdcore::platform::PlatformErrorKind;

    #[test]
    fn bonuses_toloka_cannot_pay_are_refused_with_their_reason() {
        use crate::model::Usd;
        use crate::platform::bonus_usd;
        use crowdcore::model::{Currency, Money};
        assert_eq!(bonus_usd(Money::usd_cents(5)), Ok(Usd::from_cents(5)));
        let euros = Money::new(5, Currency::new("EUR").unwrap());
        for (amount, code) in [
            (Money::usd_cents(0), "InvalidAmount"),
            (Money::usd_cents(-5), "InvalidAmount"),
            (Money::usd_cents(i64::MAX), "InvalidAmount"),
            (euros, "InvalidCurrency"),
        ] {
            let e = bonus_usd(amount).unwrap_err();
            assert_eq!(
                (e.kind, e.code.as_str()),
                (PlatformErrorKind::BadRequest, code),
                "{amount}: {e}"
            );
        }
    }

    fn pool(status: model::PoolStatus, extra: serde_json::Value) -> model::Pool {
        model::Pool {
            id: "7".into(),
            project_id: "1".into(),
            private_name: String::new(),
            status,
            reward_per_assignment: None,
            assignment_max_duration_seconds: None,
            will_expire: None,
            defaults: None,
            last_close_reason: None,
            created: None,
            last_started: TolokaTime::parse("2024-05-01T00:00:00.250"),
            extra: extra.as_object().cloned().unwrap_or_default(),
        }
    }

    #[test]
    fn a_pool_counts_as_open_unless_toloka_says_closed_or_archived() {
        use model::PoolStatus as S;
        for (status, expected) in [
            (S::Open, PoolStatus::Open),
            (S::Closed, PoolStatus::Closed),
            (S::Archived, PoolStatus::Archived),
            (S::Locked, PoolStatus::Open),
            (S::Other("NEW_STATUS".into()), PoolStatus::Open),
        ] {
            assert_eq!(pool_info(pool(status, Value::Null)).status, expected);
        }
        let info = pool_info(pool(
            S::Closed,
            serde_json::json!({ "last_stopped": "2024-05-01T00:01:00.000" }),
        ));
        assert_eq!(
            info.last_started,
            Some(Timestamp::from_millis(1_714_521_600_250))
        );
        assert_eq!(
            info.last_stopped,
            Some(Timestamp::from_millis(1_714_521_660_000))
        );
        let info = pool_info(pool(
            S::Closed,
            serde_json::json!({ "last_stopped": "garbage" }),
        ));
        assert_eq!(info.last_stopped, None);
    }

    #[test]
    fn an_assignment_without_a_creation_time_is_refused() {
        let a: model::Assignment = serde_json::from_value(serde_json::json!({
            "id": "a1", "pool_id": "7", "user_id": "w", "status": "SUBMITTED",
            "submitted": "2024-05-01T00:00:00"
        }))
        .unwrap();
        let err = assignment(a).unwrap_err();
        assert_eq!(err.kind, PlatformErrorKind::BadRequest);
    }
}
