//! # crowdcore-sqlite
//!
//! crowdcore's durable [`Store`](crowdcore::store::Store) on SQLite: the embedded default for
//! real studies. A study's input log, outbox, cursors and payments ledger live in one file;
//! a crash at any moment loses nothing the engine was told is recorded, and after the study
//! the same file answers a researcher's questions from the `sqlite3` shell.
//!
//! ```no_run
//! use std::sync::Arc;
//!
//! use crowdcore::store::Store;
//! use crowdcore_sqlite::{SqliteOptions, SqliteStore};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let store: Arc<dyn Store> = Arc::new(SqliteStore::open("study.db", SqliteOptions::default())?);
//! // EngineBuilder::new(platform, store, config) …
//! # Ok(()) }
//! ```
//!
//! # Design
//!
//! - **One writer thread** owns the write connection and takes writes over a channel (as
//!   sqlx-sqlite does). In the default [`CommitMode::Group`] it drains every write waiting
//!   for it into one `BEGIN IMMEDIATE` transaction (**group commit**), so with
//!   `synchronous=FULL` (the default) many concurrent writers share one fsync. Each write is
//!   acknowledged only after its transaction committed, and each is atomic on its own: a
//!   refused write (completing an unknown effect, a snapshot past the log's end) writes
//!   nothing and does not disturb the rest of its batch; a write that fails in SQLite (a full
//!   disk) rolls the batch back, and the others are then retried one by one.
//!   After a batch that answered several writers, the writer keeps gathering while writes keep
//!   arriving (at most [`SqliteOptions::group_wait`]), so that writers who write again at once
//!   share the next fsync too; a lone writer never waits. The writer remembers each session's
//!   last sequence number between transactions, and forgets it when `PRAGMA data_version`
//!   shows that another connection (another process) wrote.
//!   [`CommitMode::PerWrite`] commits every write alone. [`Synchronous::Normal`] trades the
//!   last commits before a power cut for speed; see its docs.
//! - **WAL mode**, `foreign_keys=ON`, a `busy_timeout` ([`SqliteOptions::busy_timeout`]);
//!   SQLite is bundled (built from source), so every platform runs the same version.
//! - **Readers** use their own connections (kept in a small pool, run on tokio's blocking
//!   pool, so a read needs a tokio runtime), so reads never wait for a commit. An in-memory database
//!   ([`SqliteStore::open_in_memory`], for tests) has one connection, and reads go through
//!   the writer thread.
//! - **Migrations** by `PRAGMA user_version`, applied in one transaction when a file is
//!   opened; a file from a newer version is refused before anything is written.
//! - **Bad input** is a typed error that writes nothing: a file that is not an SQLite
//!   database ([`OpenError::NotADatabase`]), a newer schema ([`OpenError::NewerSchema`]), a
//!   database another process holds locked past the busy timeout
//!   ([`StoreError::Locked`](crowdcore::store::StoreError::Locked)), a full disk or a full
//!   size cap ([`StoreError::Full`](crowdcore::store::StoreError::Full)).
//!
//! # Schema (version 1)
//!
//! Times (`at_ms`) are the engine's [`Timestamp`](crowdcore::Timestamp)s: milliseconds since
//! the Unix epoch with a real clock, since the study's start in a simulation. Money is
//! integer minor units (cents) with an ISO currency code. Bodies are the engine's JSON.
//!
//! ## The engine's tables
//!
//! | table | one row per | columns |
//! | --- | --- | --- |
//! | `sessions` | session (run of a machine) | `session` |
//! | `log` | input, in order | `session`, `seq` (1, 2, 3, … per session, no gaps), `at_ms`, `body` (a `crowdcore::pavilion::Input`); a view over `log_runs` since version 4 (below), one row per input as before |
//! | `snapshots` | session: its latest snapshot | `session`, `seq` (the last input it includes), `body` |
//! | `outbox` | effect the engine must carry out | `session`, `seq`, `id` (`<session>/<seq>`: the idempotency key), `body` (a `crowdcore::pavilion::Effect`), `state` (`pending`, `done`, `failed`), `result` (when done), `error` (when failed) |
//! | `cursors` | observer cursor | `session`, `name`, `cursor` |
//! | `ledger` | payment, made or failed, in the order written | `id`, `session`, `effect`, `worker`, `assignment`, `kind` (`base`, `waiting_bonus`, `active_bonus`, `contribution_bonus`), `amount_minor`, `currency`, `paid` (1 if the money went out), `at_ms` |
//! | `meta` | metadata value | `session`, `key`, `value` (the engine keeps its configuration under `engine_config`) |
//!
//! ## The packed log (version 4)
//!
//! Since version 4 the log's rows live in `log_runs`: a row holds a run of consecutive inputs
//! of one write, `session`, `seq` (its first input's), `n` (how many), `at_ms` (the first
//! one's) and `body`: the input itself when `n = 1`, else a JSON array of `[at_ms, input]`
//! pairs, `[[60000,{"type":"heartbeat",…}],[60000,{"type":"tick"}]]`. Only JSON bodies are
//! packed; anything else is a row of its own. A row holds at most 256 inputs or 4 KiB of
//! them; a simulated study's 4 096-write batches fill them (the 10 000-worker study: 178 405
//! inputs in 2 012 rows), and SQLite's cost is per row far more than per byte. Reading the
//! views unpacks every row, so a query over `study_inputs` costs more than it did on one row
//! per input (`study_assignments` of that study: about 1.7 s instead of 0.6 s in an `sqlite3`
//! 3.40 shell). `log` is a view that unpacks them (`json_each`), so queries and the
//! views below read one row per input whatever the packing; an `INSERT` into `log` (one input)
//! still works. Files of older versions are migrated when opened: their log rows become runs
//! of one, and the outbox is rebuilt `WITHOUT ROWID` with the same rows.
//!
//! ```sql
//! -- Inputs per row of log_runs: how well the log is packed.
//! SELECT n, count(*) FROM log_runs GROUP BY n ORDER BY n;
//! ```
//!
//! ## Views for researchers
//!
//! Read-only views over the tables above (they parse the JSON bodies with SQLite's JSON
//! functions, so they need an `sqlite3` shell of version 3.38 or newer; the tables are
//! `STRICT`, which needs 3.37).
//!
//! | view | one row per | columns |
//! | --- | --- | --- |
//! | `study_sessions` | session | `inputs`, `first_at_ms`, `last_at_ms`, `started_at_ms`, `stopped_at_ms`, `hits`, `assignments`, `workers`, `effects`, `pending_effects`, `failed_effects`, `paid_minor`, `unpaid_minor`, `currency`, `snapshot_seq`, `config` (JSON) |
//! | `study_inputs` | input | `session`, `seq`, `at_ms`, `type` (`arrive`, `heartbeat`, `submit`, `return`, `abandon`, `tick`, `hire_posted`, `hire_failed`, `start`, `stop`, `expire`, `migrate`, `set_targets`), `worker`, `assignment`, `hit`, `slots`, `contributions`, `body` |
//! | `study_hits` | HIT posted | `session`, `hit`, `posted_at_ms`, `posts` (times slots were added), `slots`, `assignments`, `workers`, `first_arrival_at_ms`, `expired_at_ms` (when the engine expired it, if it did) |
//! | `study_assignments` | assignment that arrived | `session`, `assignment`, `worker`, `hit`, `arrived_at_ms`, `left_at_ms`, `left_how` (`submitted`, `returned`, `abandoned`, `released` by a stop; NULL while present, or if the page timed out), `present_ms`, `waiting_ms_est`, `active_ms_est`, `base_minor`, `waiting_bonus_minor`, `active_bonus_minor`, `contribution_bonus_minor`, `paid_minor`, `currency` |
//! | `study_workers` | worker in a session | `session`, `worker`, `assignments`, `first_arrived_at_ms`, `last_left_at_ms`, `present_ms`, `waiting_ms_est`, `active_ms_est`, `paid_minor`, `currency` |
//! | `study_payments` | ledger row | the `ledger` columns and `amount`, formatted as `1.25 USD` |
//!
//! ## Pipelines (version 3)
//!
//! `crowdcore::pipeline` keeps its decisions and its answers log in the outbox (bodies of
//! type `pipeline`), and its single-run lock in `leases`:
//!
//! | table / view | one row per | columns |
//! | --- | --- | --- |
//! | `leases` | lease (`pipeline`: one run per store) | `name`, `owner`, `expires_at_ms` |
//! | `pipeline_decisions` | decision | `session`, `seq`, `id` (the idempotency key's source), `at_ms`, `stage` (that it acts on), `assignment`, `decision` (`accept`, `reject`, `bonus`, `create_tasks`, `open_pool`, `close_pool`, `unhandled`), `comment`, `worker`, `amount_minor`, `currency` (bonuses), `tasks` (how many created), `by` (the deciding stage), `cause` (the assignment handled), `state` (`pending`, `done`, `failed`), `result`, `error` |
//! | `pipeline_answers` | worker answer to an aggregated task | `session`, `seq`, `at_ms`, `stage`, `task`, `worker`, `label`, `skill`, `result` (the aggregate) |
//!
//! ```sql
//! -- Decisions per stage, as the pipeline example reports them.
//! SELECT stage, decision, state, count(*) FROM pipeline_decisions GROUP BY 1, 2, 3;
//! -- Workers who disagree with the aggregate most.
//! SELECT worker, avg(label <> result) AS disagreement, count(*) FROM pipeline_answers
//! GROUP BY worker ORDER BY disagreement DESC;
//! ```
//!
//! How the views know what they know: arrivals and departures are inputs in the log, so
//! `arrived_at_ms`, `left_at_ms` and `present_ms` are exact (as the engine saw them; a
//! departure the machine refused still shows). Promotions from waiting to active are not
//! logged — the machine decides them again on replay — so the split of a worker's time is
//! **estimated** from the waiting and active bonuses they were paid and the per-minute
//! rates in `engine_config`: `waiting_ms_est = waiting_bonus_minor × 60000 / rate`, exact to
//! within the rounding of the bonus to a cent (±30000 / rate ms), lower if the budget capped
//! the bonus, and NULL where the rate is zero or the assignment was not paid.
//!
//! ## Example queries
//!
//! ```sql
//! -- The study at a glance.
//! SELECT session, inputs, workers, assignments, paid_minor / 100.0 AS paid, currency
//! FROM study_sessions;
//!
//! -- Each worker's time and pay, longest present first.
//! SELECT worker, assignments, present_ms / 60000.0 AS present_min,
//!        waiting_ms_est / 60000.0 AS waiting_min, active_ms_est / 60000.0 AS active_min,
//!        paid_minor
//! FROM study_workers ORDER BY present_ms DESC;
//!
//! -- How assignments ended.
//! SELECT left_how, count(*), avg(present_ms) / 1000 AS avg_present_s
//! FROM study_assignments GROUP BY left_how;
//!
//! -- Time from posting a HIT to its first arrival.
//! SELECT hit, slots, assignments, (first_arrival_at_ms - posted_at_ms) / 1000 AS first_arrival_s
//! FROM study_hits ORDER BY posted_at_ms;
//!
//! -- Spending by kind of pay, and what failed to go out.
//! SELECT kind, paid, count(*), sum(amount_minor) FROM ledger GROUP BY kind, paid;
//!
//! -- Effects still to be carried out (after a crash, the engine re-sends them).
//! SELECT id, json_extract(body, '$.type') FROM outbox WHERE state = 'pending';
//!
//! -- The raw log of one worker's assignment.
//! SELECT seq, at_ms, type FROM study_inputs WHERE assignment = 'A1' ORDER BY seq;
//! ```
//!
//! The file is in WAL mode: the shell can read it while a study runs. Keep the `-wal` and
//! `-shm` files beside it when copying a database that is open.

mod error;
mod options;
mod packed;
mod schema;
mod store;
mod writer;

pub use error::OpenError;
pub use options::{CommitMode, SqliteOptions, Synchronous};
pub use store::SqliteStore;
