//! The platform a pipeline runs on: pools, tasks with input values, assignments with a status,
//! times and solutions. The shape is Toloka API v1's, so that a Toloka client maps onto
//! [`PipelinePlatform`] one call per method; the in-memory [`FakePipeline`](super::FakePipeline)
//! implements it for tests.
//!
//! | method | Toloka API v1 |
//! | --- | --- |
//! | [`list_assignments`](PipelinePlatform::list_assignments) | `GET /api/v1/assignments?pool_id=…&status=SUBMITTED&submitted_gte=…&submitted_lt=…&id_gt=…&sort=submitted,id&limit=…` → `{items, has_more}` |
//! | [`create_tasks`](PipelinePlatform::create_tasks) | `POST /api/v1/tasks` (`[{pool_id, input_values, overlap}]`; `async_mode=true` with `operation_id` = [`operation_id`]`(key)` beyond the synchronous limit) |
//! | [`accept`](PipelinePlatform::accept) / [`reject`](PipelinePlatform::reject) | `PATCH /api/v1/assignments/{id}` `{status: ACCEPTED / REJECTED, public_comment}`; a 409 for an assignment already in that state is success |
//! | [`bonus`](PipelinePlatform::bonus) | `POST /api/v1/user-bonuses` `{user_id, amount, assignment_id, public_title, public_message}` with `operation_id` = [`operation_id`]`(key)` |
//! | [`pool`](PipelinePlatform::pool) | `GET /api/v1/pools/{id}` (`status`, `last_started`, `last_stopped`) |
//! | [`open_pool`](PipelinePlatform::open_pool) / [`close_pool`](PipelinePlatform::close_pool) | `POST /api/v1/pools/{id}/open` / `/close`, the returned operation polled to completion |
//!
//! Times are [`Timestamp`]s in milliseconds (Toloka's ISO times carry milliseconds); an
//! adapter converts both ways.

use std::fmt;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::model::{AssignmentId, Money, Timestamp, WorkerId};
use crate::platform::{IdempotencyKey, PlatformError};

/// A UUID derived from an idempotency key, for platforms whose operation ids must be UUIDs
/// (Toloka `operation_id`): the same key always gives the same UUID (version 8, from two
/// FNV-1a hashes of the key).
pub fn operation_id(key: &IdempotencyKey) -> uuid::Uuid {
    let text = key.as_str();
    let high = crate::platform::fnv1a(crate::platform::FNV_OFFSET, text);
    let low = crate::platform::fnv1a(0x6c62_272e_07bb_0142, text);
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&high.to_be_bytes());
    bytes[8..].copy_from_slice(&low.to_be_bytes());
    uuid::Builder::from_custom_bytes(bytes).into_uuid()
}

macro_rules! text_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub String);

        impl $name {
            /// An id from text.
            pub fn new(id: impl Into<String>) -> Self {
                Self(id.into())
            }

            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

text_id!(
    /// A pool (Toloka `pool_id`).
    PoolId
);
text_id!(
    /// A task in a pool (Toloka task `id`).
    TaskId
);

/// JSON fields of a task's input or of a solution (Toloka `input_values`, `output_values`).
pub type Values = Map<String, Value>;

/// An assignment's status (Toloka `ACTIVE`, `SUBMITTED`, `ACCEPTED`, `REJECTED`, `SKIPPED`,
/// `EXPIRED`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AssignmentStatus {
    /// A worker is doing it.
    Active,
    /// The worker submitted; it awaits review.
    Submitted,
    /// Accepted: the worker was paid.
    Accepted,
    /// Rejected.
    Rejected,
    /// The worker skipped it.
    Skipped,
    /// Its time ran out.
    Expired,
}

/// The time field an observer follows (Toloka's `created_gte`, `submitted_gte`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeField {
    /// When the worker took the assignment.
    Created,
    /// When the worker submitted it.
    Submitted,
    /// When it was accepted.
    Accepted,
    /// When it was rejected.
    Rejected,
}

/// One task of an assignment, as the assignment lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AssignedTask {
    /// The task.
    pub id: TaskId,
    /// Its input values.
    pub input_values: Values,
}

/// A worker's answer to one task (Toloka `solutions[i].output_values`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Solution {
    /// The answer's fields.
    pub output_values: Values,
}

/// An assignment as a listing returns it (Toloka's assignment object).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PoolAssignment {
    /// Its id.
    pub id: AssignmentId,
    /// Its pool.
    pub pool: PoolId,
    /// The worker (Toloka `user_id`).
    pub worker: WorkerId,
    /// Where it stands.
    pub status: AssignmentStatus,
    /// When the worker took it.
    pub created: Timestamp,
    /// When it was submitted.
    pub submitted: Option<Timestamp>,
    /// When it was accepted.
    pub accepted: Option<Timestamp>,
    /// When it was rejected.
    pub rejected: Option<Timestamp>,
    /// Its tasks (a task suite), in order.
    pub tasks: Vec<AssignedTask>,
    /// The worker's solutions, one per task, in the same order.
    pub solutions: Vec<Solution>,
}

impl PoolAssignment {
    /// The value of a time field.
    pub fn time(&self, field: TimeField) -> Option<Timestamp> {
        match field {
            TimeField::Created => Some(self.created),
            TimeField::Submitted => self.submitted,
            TimeField::Accepted => self.accepted,
            TimeField::Rejected => self.rejected,
        }
    }
}

/// The order of a listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SortBy {
    /// By the query's time field, then by id (Toloka `sort=submitted,id`).
    TimeThenId,
    /// By id (Toloka `sort=id`).
    Id,
}

/// A listing of a pool's assignments (Toloka `GET /assignments` with its filters).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssignmentQuery {
    /// The pool (`pool_id`).
    pub pool: PoolId,
    /// Only these statuses (`status`; empty: any).
    pub status: Vec<AssignmentStatus>,
    /// The time field the bounds apply to.
    pub field: TimeField,
    /// `<field>_gte`: at or after this time.
    pub gte: Option<Timestamp>,
    /// `<field>_lt`: before this time.
    pub lt: Option<Timestamp>,
    /// `id_gt`: ids after this one.
    pub id_gt: Option<AssignmentId>,
    /// `sort`.
    pub sort: SortBy,
    /// `limit`: the most items in the page.
    pub limit: u32,
}

impl AssignmentQuery {
    /// Whether `a` passes the query's filters (for platforms that filter in memory).
    pub fn matches(&self, a: &PoolAssignment) -> bool {
        if a.pool != self.pool || (!self.status.is_empty() && !self.status.contains(&a.status)) {
            return false;
        }
        let Some(t) = a.time(self.field) else {
            return self.gte.is_none() && self.lt.is_none();
        };
        self.gte.is_none_or(|g| t >= g)
            && self.lt.is_none_or(|l| t < l)
            && self.id_gt.as_ref().is_none_or(|id| a.id > *id)
    }
}

/// A page of assignments (Toloka `{"items": […], "has_more": …}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AssignmentPage {
    /// The items, in the query's order.
    pub items: Vec<PoolAssignment>,
    /// More items match beyond `limit`.
    pub has_more: bool,
}

/// Whether a pool takes workers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PoolStatus {
    /// Workers can take its tasks.
    Open,
    /// Closed (by hand, or when every task got its overlap).
    Closed,
    /// Archived: closed for good.
    Archived,
}

/// A pool's state (Toloka `GET /pools/{id}`: `status`, `last_started`, `last_stopped`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolInfo {
    /// The pool.
    pub id: PoolId,
    /// Open or closed.
    pub status: PoolStatus,
    /// When it was last opened.
    pub last_started: Option<Timestamp>,
    /// When it was last closed.
    pub last_stopped: Option<Timestamp>,
}

/// A task to create (Toloka `POST /tasks`: `pool_id`, `input_values`, `overlap`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewTask {
    /// Its input values.
    pub input_values: Values,
    /// How many workers answer it.
    pub overlap: u32,
    /// The group whose decision waits for it, if any. Toloka has no such field: an adapter
    /// keeps it in `input_values` (the shipped handlers already put it there under
    /// [`GROUP`](super::handlers::keys::GROUP)).
    pub group: Option<String>,
}

/// A crowd platform with pools, as a pipeline uses it. Object safe: hold it as
/// `Arc<dyn PipelinePlatform>`. Errors say whether a retry may help
/// ([`PlatformError::is_retryable`]).
///
/// Every call that creates or pays takes an [`IdempotencyKey`] (Toloka `operation_id`); the
/// runtime re-sends a call after a crash with the key it used the first time, and the platform
/// must then do nothing more. Reviews take a key too; a platform without keys for reviews
/// (Toloka) makes them idempotent by state instead: reviewing an assignment into the state it
/// already has succeeds.
#[async_trait]
pub trait PipelinePlatform: Send + Sync {
    /// A page of a pool's assignments (Toloka `GET /assignments`).
    async fn list_assignments(
        &self,
        query: &AssignmentQuery,
    ) -> Result<AssignmentPage, PlatformError>;

    /// Creates tasks in a pool; returns their ids in order (Toloka `POST /tasks` with
    /// `operation_id`). Repeating `key` creates nothing more and returns the first ids.
    async fn create_tasks(
        &self,
        pool: &PoolId,
        tasks: &[NewTask],
        key: &IdempotencyKey,
    ) -> Result<Vec<TaskId>, PlatformError>;

    /// Accepts a submitted assignment with a public comment (Toloka `PATCH /assignments/{id}`
    /// with `ACCEPTED`).
    async fn accept(
        &self,
        assignment: &AssignmentId,
        comment: &str,
        key: &IdempotencyKey,
    ) -> Result<(), PlatformError>;

    /// Rejects a submitted assignment with a public comment (Toloka `PATCH … REJECTED`).
    async fn reject(
        &self,
        assignment: &AssignmentId,
        comment: &str,
        key: &IdempotencyKey,
    ) -> Result<(), PlatformError>;

    /// Pays a worker a bonus (Toloka `POST /user-bonuses` with `operation_id`). Repeating
    /// `key` pays nothing more.
    async fn bonus(
        &self,
        worker: &WorkerId,
        assignment: Option<&AssignmentId>,
        amount: Money,
        comment: &str,
        key: &IdempotencyKey,
    ) -> Result<(), PlatformError>;

    /// A pool's state (Toloka `GET /pools/{id}`).
    async fn pool(&self, pool: &PoolId) -> Result<PoolInfo, PlatformError>;

    /// Opens a pool (Toloka `POST /pools/{id}/open`, polled to completion). Opening an open
    /// pool succeeds.
    async fn open_pool(&self, pool: &PoolId) -> Result<(), PlatformError>;

    /// Closes a pool (Toloka `POST /pools/{id}/close`). Closing a closed pool succeeds.
    async fn close_pool(&self, pool: &PoolId) -> Result<(), PlatformError>;
}
