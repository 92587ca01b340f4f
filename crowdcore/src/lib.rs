//! # crowdcore
//!
//! A real-time crowdsourcing engine. Crowd platforms only offer "post a task and wait";
//! crowdcore keeps workers *on hand*: an **active queue** of workers on the task, kept full
//! from a **waiting queue** of workers paid to stand by, refilled by hiring as people submit,
//! return or abandon.
//!
//! The crate is layered; each layer uses only the ones above it.
//!
//! 1. **Data** — [`model`]: plain serde data shared by everything: ids, [`Money`],
//!    [`Timestamp`], [`HitSpec`].
//! 2. **Pure machines** — no I/O, no clock, no randomness: driven by `handle(now, input)` and
//!    drained with `poll_effect()`, so they are deterministic, replayable from a log and
//!    fuzzable. [`pavilion`] (the active and waiting queues), [`retainer`] (templates,
//!    reservations and routing over one Pavilion pool per template), [`score`] (tasks of a
//!    kind answered, scored and ranked on leaderboards), [`compete`] (bots competing on scored
//!    tasks), [`aggregate`] (majority vote, Wawa, ZBS, Dawid–Skene, one-coin, GLAD: answers
//!    in, labels and worker skills out).
//! 3. **Formats** — [`replay`]: the public JSON-lines format for driving a machine from a
//!    script and checking what it did.
//! 4. **Contracts of the outside world** — [`platform`] (the crowd platform trait, its
//!    errors and capabilities), [`store`] (the durable log, outbox, ledger and snapshots a
//!    driver records into, with [`store::MemoryStore`] and the write-behind
//!    [`store::Deferred`]), [`clock`] (system, virtual and tokio time).
//! 5. **Drivers** — [`engine`] (record, then act: a machine over a platform and a store,
//!    recovered after a crash, its platform calls beside its loop), [`pipeline`] (pools in a
//!    row, observers and handlers, resumable), [`sim`] (the simulated crowd the main job runs
//!    on), and the in-process crowds: [`local`] (the local marketplace) and [`faults`] (a
//!    fault- and latency-injecting wrapper around any platform).
//! 6. **Fronts** — `http` (feature `http`): the worker landing page, the retainer page, the
//!    admin API and the live status page, on axum.
//!
//! Features: `aggregate`, `pipeline`, `score`, `compete` and `sim` (all on by default) gate
//! their modules; `http` the front; `testkit` and `contract` the test doubles and the store
//! contract suite. `default-features = false` leaves the machines, the engine and its
//! contracts.
//!
//! `testkit` (feature `testkit`) is the engine test host the crate's own tests and the
//! backends' tests share. The backends live in their own crates (`crowdcore-sqlite`,
//! `crowdcore-toloka`, `crowdcore-prolific`, `crowdcore-mturk`).
//!
//! **Panics.** A panic is a bug in crowdcore, never a reaction to bad input: input that a
//! machine cannot take is refused with a typed `Rejected`, a platform's misbehaviour is a
//! `PlatformError`, a store's a `StoreError`. Time never goes back for a machine: `handle`
//! refuses an input older than the machine's time (`Rejected::TimeWentBack`), and
//! `handle_timeout(now)` fires every deadline due by `now` (an earlier `now` is taken as the
//! machine's time).

#[cfg(feature = "aggregate")]
pub mod aggregate;
pub mod clock;
#[cfg(feature = "compete")]
pub mod compete;
pub mod engine;
pub mod faults;
#[cfg(feature = "http")]
pub mod http;
pub mod local;
pub mod model;
pub mod pavilion;
#[cfg(feature = "pipeline")]
pub mod pipeline;
pub mod platform;
pub mod replay;
pub mod retainer;
#[cfg(feature = "score")]
pub mod score;
#[cfg(feature = "sim")]
pub mod sim;
pub mod store;
#[cfg(feature = "testkit")]
pub mod testkit;

pub use model::{
    AssignmentId, EffectId, HitId, HitSpec, Money, ProjectId, ReservationId, SessionId, TemplateId,
    Timestamp, WorkerId,
};

/// The README's Rust examples compile as doctests, so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;
