//! # crowdcore-toloka
//!
//! crowdcore on [Toloka](https://toloka.ai)'s REST API v1.
//!
//! - [`TolokaClient`] — a typed client: projects, pools (get, open, close, with operations
//!   polled to completion, waiting out another operation that locks the pool), tasks (synchronous batches up to the API's limit, idempotent asynchronous
//!   operations keyed by `operation_id` beyond, resuming an operation that already exists),
//!   assignments (filters, `id_gt` paging, accept / reject with a public comment, "already
//!   reviewed" treated as success when the state matches), user bonuses keyed by
//!   `operation_id`, user restrictions, skills, the requester's balance. 408, 429 (with its
//!   quota window and `Retry-After`) and 5xx are retried with capped exponential backoff and
//!   jitter; everything else maps to a clear permanent [`TolokaError`].
//! - [`TolokaPlatform`] — crowdcore's [`Platform`](crowdcore::platform::Platform) over one
//!   Toloka pool: a HIT is a task, its slots are the task's overlap; an arrival is confirmed
//!   by reading its assignment back, under a short retry budget.
//! - [`TolokaPipeline`] — crowdcore's
//!   [`PipelinePlatform`](crowdcore::pipeline::PipelinePlatform) (multi-pool pipelines): each
//!   stage a Toloka pool; tasks and bonuses keyed by
//!   [`operation_id`](crowdcore::pipeline::operation_id) of the runtime's key; stages' pools
//!   and projects checked up front ([`TolokaPipeline::check_stages`]).
//! - `fake` (feature `fake`) — a local fake Toloka (an axum app speaking the same JSON) with
//!   simulated workers, a listing that lags behind writes, and injected faults, for tests.
//!
//! The token comes from the environment (`TOLOKA_API_KEY`, or `TOLOKA_OAUTH_TOKEN`) and is
//! never printed: [`Credentials`] redacts itself in `Debug`, and the header is marked
//! sensitive.
//!
//! ```no_run
//! # async fn demo() -> Result<(), crowdcore_toloka::TolokaError> {
//! use crowdcore_toloka::{ClientConfig, TolokaClient};
//! let client = TolokaClient::new(ClientConfig::sandbox_from_env()?)?;
//! let pool = client.open_pool("12345").await?;
//! println!("pool {} is {:?}", pool.id, pool.status);
//! # Ok(()) }
//! ```
//!
//! As a crowdcore platform (the README's example):
//!
//! ```no_run
//! use crowdcore_toloka::{ClientConfig, TolokaClient, TolokaPlatform, TolokaPlatformConfig};
//!
//! async fn connect() -> Result<TolokaPlatform, crowdcore_toloka::TolokaError> {
//!     let client = TolokaClient::new(ClientConfig::sandbox_from_env()?)?;
//!     // HITs become tasks in this pool; slots are the task's overlap.
//!     let mut config = TolokaPlatformConfig::new("36502086");
//!     config.input = std::sync::Arc::new(|spec: &crowdcore::HitSpec| {
//!         let mut inputs = serde_json::Map::new();
//!         inputs.insert("url".into(), spec.landing_url.clone().into()); // the project's input field
//!         inputs
//!     });
//!     Ok(TolokaPlatform::new(client, config)) // an `Arc<dyn Platform>` for the engine
//! }
//! ```

mod client;
mod error;
pub mod model;
mod pipeline;
mod platform;

#[cfg(feature = "fake")]
pub mod fake;

pub use client::{
    ASYNC_TASKS_BATCH, ClientConfig, Credentials, PRODUCTION_URL, RetryPolicy, SANDBOX_URL,
    SYNC_TASKS_LIMIT, TolokaClient, derived_operation_id,
};
pub use error::{ApiError, ErrorClass, QuotaWindow, TolokaError};
pub use pipeline::{
    InputField, StageSpec, StageSpecError, TolokaPipeline, fanout_inputs, forward_inputs,
};
pub use platform::{
    BlockPolicy, FieldCursor, InputMapper, TolokaPlatform, TolokaPlatformConfig, UpdatesCursor,
};
