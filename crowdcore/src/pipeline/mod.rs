//! Multi-pool pipelines, platform-agnostic: the seed's Toloka verification flow (submit →
//! validate → quality), done exactly once.
//!
//! A pipeline is a row of **stages**, each a pool on a [`PipelinePlatform`] (Toloka, or the
//! in-memory [`FakePipeline`]). Every period, each stage's [`Observer`] lists the pool's new
//! assignments with a cursor on a time field; the stage's [`Handler`] turns each into
//! [`Decision`]s — accept or reject (in this or an earlier stage), pay a bonus, create tasks in
//! the next stage, or wait for more answers — usually by aggregating answers across a task's
//! overlap with [`crate::aggregate`] ([`MajorityVerify`]).
//!
//! # Exactly once
//!
//! For each page an observer reads, one [`Store::commit`](crate::store::Store::commit) writes
//! the new assignments to the log, the observer's cursor, and the handlers' decisions to the
//! outbox (with a snapshot of the handlers now and then). Only then are decisions carried out,
//! each with its effect id as the idempotency key, and marked done. A crash anywhere leaves
//! one of three states, all safe:
//!
//! - before the commit: nothing happened; the page is read again;
//! - after the commit, before a call: the decision is pending and is sent after the restart;
//! - after a call, before it is marked done: it is sent again with the same key, and the
//!   platform does nothing more (tasks, bonuses), or finds the review already made.
//!
//! A restart ([`PipelineBuilder::start`]) rebuilds the handlers from their snapshot and the
//! assignments logged since — so a group of tasks half-decided before a crash is decided
//! after it (the seed lost its groups), and a cursor never moves without its assignments (the
//! seed did not save it, and redid work).
//!
//! # Running
//!
//! ```no_run
//! # async fn run(platform: std::sync::Arc<dyn crowdcore::pipeline::PipelinePlatform>,
//! #              store: std::sync::Arc<dyn crowdcore::store::Store>) -> Result<(), Box<dyn std::error::Error>> {
//! use crowdcore::pipeline::*;
//! use crowdcore::{Money, SessionId};
//!
//! let yes = vec![
//!     Action::AcceptOrigin { comment: "thanks".into() },
//!     Action::Forward { stage: "quality".into() },
//! ];
//! let no = vec![Action::RejectOrigin { comment: "the photos do not show the place".into() }];
//! let good = vec![Action::BonusOrigin { amount: Money::usd_cents(10), comment: "great photos".into() }];
//! let pipeline = PipelineBuilder::new(platform, store, SessionId::new("photos"))
//!     .stage(Stage::new("submit", PoolId::new("1"), 1, Fanout::new("validate", Some("photos"))))
//!     .stage(Stage::new("validate", PoolId::new("2"), 3, MajorityVerify::new("verdict", "yes", yes, no)))
//!     .stage(Stage::new("quality", PoolId::new("3"), 3, MajorityVerify::new("quality", "good", good, vec![])))
//!     .start()
//!     .await?;
//! // Ctrl-C stops it after the tick in progress (with tokio's `signal` feature:
//! // `async { tokio::signal::ctrl_c().await.ok(); }`).
//! let report = pipeline.run(std::future::pending::<()>()).await?;
//! println!("{report}");
//! # Ok(()) }
//! ```
//!
//! Only one run may use a store at a time: [`PipelineBuilder::start`] takes the store's lease
//! ([`LEASE`]) and every tick renews it; a second run gets [`PipelineError::InUse`].

mod fake;
mod handler;
pub mod handlers;
mod observer;
mod platform;
mod runtime;

pub use fake::{FakeConfig, FakeCounts, FakePipeline, FakeWorker, Oracle, photo_oracle};
pub use handler::{Decide, Decision, Handler, HandlerError};
pub use handlers::{Action, Fanout, MajorityVerify, OwnReview};
pub use observer::{ObserveError, Observer, ObserverConfig, ObserverCursor};
pub use platform::{
    AssignedTask, AssignmentPage, AssignmentQuery, AssignmentStatus, NewTask, PipelinePlatform,
    PoolAssignment, PoolId, PoolInfo, PoolStatus, Solution, SortBy, TaskId, TimeField, Values,
    operation_id,
};
pub use runtime::{
    DecisionEntry, DecisionRecord, LEASE, Pipeline, PipelineBuilder, PipelineConfig, PipelineError,
    PipelineInput, Report, Stage, StopCondition, Tick, decisions,
};
