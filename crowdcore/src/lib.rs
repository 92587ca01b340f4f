//! # crowdcore
//!
//! A real-time crowdsourcing engine. Crowd platforms only offer "post a task and wait";
//! crowdcore keeps workers *on hand*: an **active queue** of workers on the task, kept full
//! from a **waiting queue** of workers paid to stand by, refilled by hiring as people submit,
//! return or abandon.
//!
//! The crate is layered:
//!
//! 1. [`model`] — plain serde data shared by everything: ids, [`Money`](model::Money),
//!    [`Timestamp`](model::Timestamp), [`HitSpec`](model::HitSpec).
//! 2. Pure machines — [`pavilion`], the queue machine. A machine contains no I/O, reads no
//!    clock and draws no randomness: it is driven by `handle(now, input)` and drained with
//!    `poll_effect()`, which makes it deterministic, replayable from a log and fuzzable.
//! 3. [`replay`] — the public JSON-lines format for driving a machine from a script.
//!
//! Drivers (the async engine, platforms and stores) build on these layers, and so does the
//! optional HTTP front (module `http`, feature `http`). Tests of the engine and of the backends
//! share one engine host (module `testkit`, feature `testkit`).

pub mod aggregate;
pub mod clock;
pub mod compete;
pub mod engine;
pub mod faults;
#[cfg(feature = "http")]
pub mod http;
pub mod local;
pub mod model;
pub mod pavilion;
pub mod pipeline;
pub mod platform;
pub mod replay;
pub mod retainer;
pub mod score;
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
