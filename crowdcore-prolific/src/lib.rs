//! # crowdcore-prolific
//!
//! crowdcore on [Prolific](https://www.prolific.com)'s REST API v1
//! (`https://api.prolific.com/api/v1/`).
//!
//! - [`ProlificClient`] — a typed client: studies (create as a draft, read, list a project's,
//!   raise places, transitions, delete), submissions (paged listing, read, approve / reject
//!   transitions, bulk approve), bulk bonuses (set up, pay), messages (one, bulk),
//!   participant groups, hook secrets and subscriptions, the workspace balance.
//!   `Authorization: Token …` from `PROLIFIC_API_TOKEN` ([`Credentials`] redacts itself,
//!   the header is marked sensitive, nothing logs it). 408, 429 (honouring `Retry-After`),
//!   5xx, timeouts and broken connections are retried with capped exponential backoff and
//!   jitter, each request under its own timeout — except calls that are not idempotent
//!   (creating a study, paying a bonus), which are repeated only after a 429. Validation
//!   errors are permanent, with Prolific's `detail` kept.
//! - [`ProlificPlatform`] — crowdcore's [`Platform`](crowdcore::platform::Platform).
//! - [`webhook`] — subscribing with the `X-Hook-Secret` handshake, and a receiver that
//!   verifies every delivery, drops duplicates and orders events; a verified delivery leads
//!   to [`ProlificPlatform::read_update`], Prolific's own read of the submission (the
//!   `server` example's `--prolific-webhooks` pushes it into the engine). The poll stays the
//!   truth: a lost webhook is caught by it.
//! - `fake` (feature `fake`) — a local fake Prolific speaking the same paths, bodies,
//!   pagination and error shapes, with participants and injected faults, for tests.
//!
//! ## The mapping
//!
//! | crowdcore | Prolific |
//! | --- | --- |
//! | a session's HITs | **one study**, whose `internal_name` is `crowdcore:{tag}:{key}` (the session, and the post that created it) |
//! | the HIT id | the study id (every post returns it) |
//! | its slots | the study's places (`total_available_places`) |
//! | the first post | a draft (`POST /studies/`), then `transition` `PUBLISH` |
//! | a later post (a hire) | `PATCH` `total_available_places` upwards; a paused study is started again |
//! | expire | `transition` `PAUSE` (participants at work may finish) |
//! | an assignment | a submission (`SESSION_ID`); the worker is the participant (`PROLIFIC_PID`) |
//! | assignment (confirm an arrival) | `GET /submissions/{id}/`: exists, that participant, that study, ACTIVE |
//! | updates | `GET /submissions/?study=` (every page), each status change reported once |
//! | approve / reject | submission `transition` `APPROVE` / `REJECT` (a message ≥ 100 characters and a `rejection_category`, refused before sending otherwise); one still ACTIVE is the engine's `NotSubmitted` (retried while the participant may finish) |
//! | bonus | `POST /submissions/bonus-payments/` then `POST /bulk-bonus-payments/{id}/pay/` |
//! | notify | `POST /messages/` (one), `/messages/bulk/` (many) |
//! | block | the participant is added to a participant group the study's filters exclude |
//! | balance | `GET /workspaces/{id}/balance/` (`available_balance`), checked before publishing |
//!
//! The landing URL is the HIT spec's, with `PROLIFIC_PID={{%PROLIFIC_PID%}}`,
//! `STUDY_ID={{%STUDY_ID%}}` and `SESSION_ID={{%SESSION_ID%}}` appended; the reward is the
//! spec's, in minor units; `maximum_allowed_time` is the assignment duration;
//! `naivety_distribution_rate` is 0 (everyone eligible hears at once); the completion code
//! waits for manual review, so that crowdcore approves what its ledger pays. Filters come
//! from the spec's qualifications: approval rate, approved count, and countries (through
//! [`ProlificPlatformConfig::country_choices`]); a requirement Prolific cannot express fails
//! the post rather than widen the audience.
//!
//! **Many HITs, one study.** The Pavilion posts one HIT per hire and counts open slots per
//! HIT. Prolific's places only grow, and a returned or timed-out submission frees its place
//! for the next participant (so `returned_slots_reopen` is true). Every post therefore
//! returns the same HIT, the study, and raises its places by the slots asked for; the
//! Pavilion adds them to that HIT's open count. An expiry pauses the study; a later hire
//! re-opens it (the Pavilion takes a post onto an expired HIT, when hiring is not closed, as
//! re-opening it), raising the places to `places_taken + slots` where that is more. Places
//! free when a study was paused cannot be taken back: a participant arriving through one
//! when no seat is left is turned away by the Pavilion, as any over-delivery is.
//!
//! The study is made from the first post's spec; later posts only raise its places (a
//! changed spec does not change a published study). The retainer's pools, which keep their
//! own table of HITs, are not mapped onto Prolific yet.
//!
//! **Not idempotent on Prolific, made exactly once here.** Study creation: before creating,
//! the project's studies are listed for one carrying the session's `internal_name` (which
//! also names the creating post, so that post's retry after a lost answer knows the places
//! are its own), and each post's place target is recorded (in the session's store metadata, see
//! [`ProlificPlatform::with_store`]) before the call, so that a repeated post sets the same
//! absolute target instead of adding again. Bonus pay: the bulk bonus is set up and its id
//! recorded; `Paying` is recorded before the pay call; a pay whose answer was lost (timeout,
//! broken connection, 5xx) is reconciled by reading the submission's `bonus_payments` back
//! before anything is sent again ([`BonusRecord`]). A crash at any point therefore pays
//! each bonus once: before `Paying` nothing was sent, after it the read-back decides.
//! Prolific pays asynchronously; a pay not visible yet is retried as `PayUnconfirmed`
//! until [`ProlificPlatformConfig::pay_settle`] has passed.
//!
//! ```no_run
//! use crowdcore_prolific::{ClientConfig, ProlificClient, ProlificPlatform, ProlificPlatformConfig};
//!
//! fn connect(session: &str) -> Result<ProlificPlatform, crowdcore_prolific::ProlificError> {
//!     let client = ProlificClient::new(ClientConfig::production_from_env()?)?;
//!     let config = ProlificPlatformConfig::new("my-workspace-id", "my-project-id", session);
//!     Ok(ProlificPlatform::new(client, config)) // an `Arc<dyn Platform>` for the engine
//! }
//! ```

mod client;
mod error;
pub mod model;
mod platform;
pub mod webhook;

#[cfg(feature = "fake")]
pub mod fake;

pub use client::{
    ClientConfig, Credentials, MIN_REJECTION_MESSAGE, PRODUCTION_URL, ProlificClient, RetryPolicy,
    check_rejection,
};
pub use error::{ApiError, ProlificError};
pub use platform::{
    BLOCKLIST_FILTER, BonusRecord, ProlificPlatform, ProlificPlatformConfig, UpdatesCursor,
    completion_url, core_status, major_units,
};
