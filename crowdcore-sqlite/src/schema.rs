//! The schema and its migrations, numbered by `PRAGMA user_version`.
//!
//! [`MIGRATIONS`]`[i]` takes a database from version `i` to version `i + 1`; version 0 is an
//! empty file. A new schema version is one more entry at the end (never an edit of an old
//! one: files of every earlier version exist on researchers' disks). Opening a database
//! applies the missing entries, and sets `user_version`, in one transaction.

use rusqlite::{Connection, TransactionBehavior};

/// The migrations, oldest first: entry `i` takes version `i` to `i + 1`.
pub(crate) const MIGRATIONS: &[&str] = &[V1, V2, V3, V4];

/// The schema version this build writes and the newest it reads.
pub(crate) const LATEST: i64 = MIGRATIONS.len() as i64;

/// Version 1: the engine's tables, and views for researchers.
const V1: &str = r#"
CREATE TABLE sessions (
    session TEXT NOT NULL PRIMARY KEY
) STRICT;

CREATE TABLE log (
    session TEXT    NOT NULL REFERENCES sessions (session),
    seq     INTEGER NOT NULL CHECK (seq >= 1),
    at_ms   INTEGER NOT NULL CHECK (at_ms >= 0),
    body    TEXT    NOT NULL,
    PRIMARY KEY (session, seq)
) STRICT, WITHOUT ROWID;

CREATE TABLE snapshots (
    session TEXT    NOT NULL PRIMARY KEY REFERENCES sessions (session),
    seq     INTEGER NOT NULL CHECK (seq >= 0),
    body    TEXT    NOT NULL
) STRICT;

CREATE TABLE outbox (
    session TEXT    NOT NULL REFERENCES sessions (session),
    seq     INTEGER NOT NULL CHECK (seq >= 0),
    id      TEXT    NOT NULL,
    body    TEXT    NOT NULL,
    state   TEXT    NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'done', 'failed')),
    result  TEXT,
    error   TEXT,
    PRIMARY KEY (session, seq),
    CHECK ((state = 'done') = (result IS NOT NULL)),
    CHECK ((state = 'failed') = (error IS NOT NULL))
) STRICT;

CREATE INDEX outbox_pending ON outbox (session, seq) WHERE state = 'pending';

CREATE TABLE cursors (
    session TEXT NOT NULL REFERENCES sessions (session),
    name    TEXT NOT NULL,
    cursor  TEXT NOT NULL,
    PRIMARY KEY (session, name)
) STRICT, WITHOUT ROWID;

CREATE TABLE ledger (
    id           INTEGER PRIMARY KEY,
    session      TEXT    NOT NULL REFERENCES sessions (session),
    effect       TEXT    NOT NULL,
    worker       TEXT    NOT NULL,
    assignment   TEXT,
    kind         TEXT    NOT NULL,
    amount_minor INTEGER NOT NULL,
    currency     TEXT    NOT NULL,
    paid         INTEGER NOT NULL CHECK (paid IN (0, 1)),
    at_ms        INTEGER NOT NULL CHECK (at_ms >= 0)
) STRICT;

CREATE INDEX ledger_session ON ledger (session, id);
CREATE INDEX ledger_worker ON ledger (worker);

CREATE TABLE meta (
    session TEXT NOT NULL REFERENCES sessions (session),
    key     TEXT NOT NULL,
    value   TEXT NOT NULL,
    PRIMARY KEY (session, key)
) STRICT, WITHOUT ROWID;

-- Researchers' views. They read the engine's JSON (crowdcore::pavilion::Input in the log,
-- Effect in the outbox, EngineConfig in meta under 'engine_config'); a body that is not JSON
-- reads as NULLs rather than failing the query.

CREATE VIEW study_inputs AS
SELECT session, seq, at_ms,
       json_extract(j, '$.type')          AS type,
       json_extract(j, '$.worker')        AS worker,
       json_extract(j, '$.assignment')    AS assignment,
       json_extract(j, '$.hit')           AS hit,
       json_extract(j, '$.slots')         AS slots,
       json_extract(j, '$.contributions') AS contributions,
       body
FROM (SELECT session, seq, at_ms, body,
             CASE WHEN json_valid(body) THEN body END AS j
      FROM log);

CREATE VIEW study_payments AS
SELECT id, session, effect, worker, assignment, kind, amount_minor, currency,
       CASE WHEN amount_minor < 0 THEN '-' ELSE '' END
           || (abs(amount_minor) / 100) || '.' || printf('%02d', abs(amount_minor) % 100)
           || ' ' || currency AS amount,
       paid, at_ms
FROM ledger;

CREATE VIEW study_hits AS
WITH posts AS (
    SELECT session, hit, min(at_ms) AS posted_at_ms, count(*) AS posts, sum(slots) AS slots
    FROM study_inputs
    WHERE type = 'hire_posted' AND hit IS NOT NULL
    GROUP BY session, hit
), arrivals AS (
    SELECT session, hit, count(DISTINCT assignment) AS assignments,
           count(DISTINCT worker) AS workers, min(at_ms) AS first_arrival_at_ms
    FROM study_inputs
    WHERE type = 'arrive'
    GROUP BY session, hit
), expiries AS (
    SELECT o.session, h.value AS hit, min(json_extract(o.body, '$.at_ms')) AS expired_at_ms
    FROM outbox AS o,
         json_each(CASE WHEN json_valid(o.body) THEN o.body END, '$.hits') AS h
    WHERE o.state = 'done' AND json_extract(o.body, '$.type') = 'expire_hits'
    GROUP BY o.session, h.value
)
SELECT p.session, p.hit, p.posted_at_ms, p.posts, p.slots,
       coalesce(a.assignments, 0) AS assignments, coalesce(a.workers, 0) AS workers,
       a.first_arrival_at_ms, e.expired_at_ms
FROM posts AS p
LEFT JOIN arrivals AS a ON a.session = p.session AND a.hit = p.hit
LEFT JOIN expiries AS e ON e.session = p.session AND e.hit = p.hit;

CREATE VIEW study_assignments AS
WITH arrivals AS (
    -- min() picks the first arrival's row for the bare columns (an SQLite feature).
    SELECT session, assignment, worker, hit, min(seq) AS arrived_seq, at_ms AS arrived_at_ms
    FROM study_inputs
    WHERE type = 'arrive' AND assignment IS NOT NULL
    GROUP BY session, assignment
), departures AS (
    SELECT session, assignment, min(seq) AS left_seq, at_ms AS left_at_ms, type AS how
    FROM study_inputs
    WHERE type IN ('submit', 'return', 'abandon') AND assignment IS NOT NULL
    GROUP BY session, assignment
), stops AS (
    SELECT session, min(seq) AS stop_seq, at_ms AS stop_at_ms
    FROM study_inputs
    WHERE type = 'stop'
    GROUP BY session
), pay AS (
    SELECT session, assignment,
           sum(CASE WHEN kind = 'base' THEN amount_minor ELSE 0 END)               AS base_minor,
           sum(CASE WHEN kind = 'waiting_bonus' THEN amount_minor ELSE 0 END)      AS waiting_bonus_minor,
           sum(CASE WHEN kind = 'active_bonus' THEN amount_minor ELSE 0 END)       AS active_bonus_minor,
           sum(CASE WHEN kind = 'contribution_bonus' THEN amount_minor ELSE 0 END) AS contribution_bonus_minor,
           sum(amount_minor) AS paid_minor,
           min(currency) AS currency
    FROM ledger
    WHERE paid = 1 AND assignment IS NOT NULL
    GROUP BY session, assignment
), rates AS (
    SELECT session,
           json_extract(j, '$.pavilion.waiting_cents_per_minute') AS waiting_rate,
           json_extract(j, '$.pavilion.active_cents_per_minute')  AS active_rate
    FROM (SELECT session, CASE WHEN json_valid(value) THEN value END AS j
          FROM meta WHERE key = 'engine_config')
), departed AS (
    SELECT a.*,
           CASE WHEN d.left_seq > a.arrived_seq
                     AND (s.stop_seq IS NULL OR d.left_seq < s.stop_seq) THEN d.left_at_ms
                WHEN s.stop_seq > a.arrived_seq THEN s.stop_at_ms
           END AS left_at_ms,
           CASE WHEN d.left_seq > a.arrived_seq
                     AND (s.stop_seq IS NULL OR d.left_seq < s.stop_seq)
                     THEN CASE d.how WHEN 'submit' THEN 'submitted'
                                     WHEN 'return' THEN 'returned'
                                     ELSE 'abandoned' END
                WHEN s.stop_seq > a.arrived_seq THEN 'released'
           END AS left_how
    FROM arrivals AS a
    LEFT JOIN departures AS d ON d.session = a.session AND d.assignment = a.assignment
    LEFT JOIN stops AS s ON s.session = a.session
)
SELECT x.session, x.assignment, x.worker, x.hit, x.arrived_at_ms, x.left_at_ms, x.left_how,
       x.left_at_ms - x.arrived_at_ms AS present_ms,
       CASE WHEN p.paid_minor IS NOT NULL AND r.waiting_rate > 0
            THEN p.waiting_bonus_minor * 60000 / r.waiting_rate END AS waiting_ms_est,
       CASE WHEN p.paid_minor IS NOT NULL AND r.active_rate > 0
            THEN p.active_bonus_minor * 60000 / r.active_rate END AS active_ms_est,
       p.base_minor, p.waiting_bonus_minor, p.active_bonus_minor, p.contribution_bonus_minor,
       coalesce(p.paid_minor, 0) AS paid_minor, p.currency
FROM departed AS x
LEFT JOIN pay AS p ON p.session = x.session AND p.assignment = x.assignment
LEFT JOIN rates AS r ON r.session = x.session;

CREATE VIEW study_workers AS
SELECT session, worker,
       count(*)           AS assignments,
       min(arrived_at_ms) AS first_arrived_at_ms,
       max(left_at_ms)    AS last_left_at_ms,
       sum(present_ms)    AS present_ms,
       sum(waiting_ms_est) AS waiting_ms_est,
       sum(active_ms_est) AS active_ms_est,
       sum(paid_minor)    AS paid_minor,
       min(currency)      AS currency
FROM study_assignments
GROUP BY session, worker;

CREATE VIEW study_sessions AS
WITH inputs AS (
    SELECT session, count(*) AS inputs, min(at_ms) AS first_at_ms, max(at_ms) AS last_at_ms,
           min(CASE WHEN type = 'start' THEN at_ms END) AS started_at_ms,
           min(CASE WHEN type = 'stop' THEN at_ms END)  AS stopped_at_ms,
           count(DISTINCT CASE WHEN type = 'hire_posted' THEN hit END)    AS hits,
           count(DISTINCT CASE WHEN type = 'arrive' THEN assignment END)  AS assignments,
           count(DISTINCT CASE WHEN type = 'arrive' THEN worker END)      AS workers
    FROM study_inputs
    GROUP BY session
), effects AS (
    SELECT session, count(*) AS effects,
           sum(state = 'pending') AS pending_effects, sum(state = 'failed') AS failed_effects
    FROM outbox
    GROUP BY session
), money AS (
    SELECT session,
           sum(CASE WHEN paid = 1 THEN amount_minor ELSE 0 END) AS paid_minor,
           sum(CASE WHEN paid = 0 THEN amount_minor ELSE 0 END) AS unpaid_minor,
           min(currency) AS currency
    FROM ledger
    GROUP BY session
)
SELECT s.session,
       coalesce(i.inputs, 0) AS inputs, i.first_at_ms, i.last_at_ms,
       i.started_at_ms, i.stopped_at_ms,
       coalesce(i.hits, 0) AS hits, coalesce(i.assignments, 0) AS assignments,
       coalesce(i.workers, 0) AS workers,
       coalesce(e.effects, 0) AS effects, coalesce(e.pending_effects, 0) AS pending_effects,
       coalesce(e.failed_effects, 0) AS failed_effects,
       coalesce(m.paid_minor, 0) AS paid_minor, coalesce(m.unpaid_minor, 0) AS unpaid_minor,
       m.currency,
       (SELECT seq FROM snapshots AS n WHERE n.session = s.session) AS snapshot_seq,
       (SELECT value FROM meta AS c WHERE c.session = s.session AND c.key = 'engine_config')
           AS config
FROM sessions AS s
LEFT JOIN inputs AS i ON i.session = s.session
LEFT JOIN effects AS e ON e.session = s.session
LEFT JOIN money AS m ON m.session = s.session;
"#;

/// Version 2: `study_assignments` and `study_workers` gain exact `waiting_ms` and `active_ms`
/// (and `promoted_at_ms`) from the promotions engines journal in the outbox.
const V2: &str = r#"
-- Exact waiting and active times: engines now journal promotions in the outbox.
DROP VIEW study_workers;
DROP VIEW study_assignments;

CREATE VIEW study_assignments AS
WITH arrivals AS (
    -- min() picks the first arrival's row for the bare columns (an SQLite feature).
    SELECT session, assignment, worker, hit, min(seq) AS arrived_seq, at_ms AS arrived_at_ms
    FROM study_inputs
    WHERE type = 'arrive' AND assignment IS NOT NULL
    GROUP BY session, assignment
), departures AS (
    SELECT session, assignment, min(seq) AS left_seq, at_ms AS left_at_ms, type AS how
    FROM study_inputs
    WHERE type IN ('submit', 'return', 'abandon') AND assignment IS NOT NULL
    GROUP BY session, assignment
), stops AS (
    SELECT session, min(seq) AS stop_seq, at_ms AS stop_at_ms
    FROM study_inputs
    WHERE type = 'stop'
    GROUP BY session
), pay AS (
    SELECT session, assignment,
           sum(CASE WHEN kind = 'base' THEN amount_minor ELSE 0 END)               AS base_minor,
           sum(CASE WHEN kind = 'waiting_bonus' THEN amount_minor ELSE 0 END)      AS waiting_bonus_minor,
           sum(CASE WHEN kind = 'active_bonus' THEN amount_minor ELSE 0 END)       AS active_bonus_minor,
           sum(CASE WHEN kind = 'contribution_bonus' THEN amount_minor ELSE 0 END) AS contribution_bonus_minor,
           sum(amount_minor) AS paid_minor,
           min(currency) AS currency
    FROM ledger
    WHERE paid = 1 AND assignment IS NOT NULL
    GROUP BY session, assignment
), promotions AS (
    -- Engines journal every message to a worker's page in the outbox, promotions included.
    SELECT session, json_extract(body, '$.assignment') AS assignment,
           min(json_extract(body, '$.at_ms')) AS promoted_at_ms
    FROM outbox
    WHERE json_valid(body) AND json_extract(body, '$.type') = 'promote'
    GROUP BY session, assignment
), journaled AS (
    -- Sessions whose engine journaled page messages (written by crowdcore 0.1 with schema v2).
    SELECT DISTINCT session
    FROM outbox
    WHERE json_valid(body)
      AND json_extract(body, '$.type') IN ('promote', 'release', 'turn_away', 'timed_out')
), rates AS (
    SELECT session,
           json_extract(j, '$.pavilion.waiting_cents_per_minute') AS waiting_rate,
           json_extract(j, '$.pavilion.active_cents_per_minute')  AS active_rate
    FROM (SELECT session, CASE WHEN json_valid(value) THEN value END AS j
          FROM meta WHERE key = 'engine_config')
), departed AS (
    SELECT a.*,
           CASE WHEN d.left_seq > a.arrived_seq
                     AND (s.stop_seq IS NULL OR d.left_seq < s.stop_seq) THEN d.left_at_ms
                WHEN s.stop_seq > a.arrived_seq THEN s.stop_at_ms
           END AS left_at_ms,
           CASE WHEN d.left_seq > a.arrived_seq
                     AND (s.stop_seq IS NULL OR d.left_seq < s.stop_seq)
                     THEN CASE d.how WHEN 'submit' THEN 'submitted'
                                     WHEN 'return' THEN 'returned'
                                     ELSE 'abandoned' END
                WHEN s.stop_seq > a.arrived_seq THEN 'released'
           END AS left_how
    FROM arrivals AS a
    LEFT JOIN departures AS d ON d.session = a.session AND d.assignment = a.assignment
    LEFT JOIN stops AS s ON s.session = a.session
)
SELECT x.session, x.assignment, x.worker, x.hit, x.arrived_at_ms, x.left_at_ms, x.left_how,
       x.left_at_ms - x.arrived_at_ms AS present_ms,
       pr.promoted_at_ms,
       CASE WHEN j.session IS NOT NULL AND x.left_at_ms IS NOT NULL
            THEN coalesce(min(pr.promoted_at_ms, x.left_at_ms), x.left_at_ms) - x.arrived_at_ms
       END AS waiting_ms,
       CASE WHEN j.session IS NOT NULL AND x.left_at_ms IS NOT NULL
            THEN CASE WHEN pr.promoted_at_ms IS NULL THEN 0
                      ELSE max(x.left_at_ms - pr.promoted_at_ms, 0) END
       END AS active_ms,
       CASE WHEN p.paid_minor IS NOT NULL AND r.waiting_rate > 0
            THEN p.waiting_bonus_minor * 60000 / r.waiting_rate END AS waiting_ms_est,
       CASE WHEN p.paid_minor IS NOT NULL AND r.active_rate > 0
            THEN p.active_bonus_minor * 60000 / r.active_rate END AS active_ms_est,
       p.base_minor, p.waiting_bonus_minor, p.active_bonus_minor, p.contribution_bonus_minor,
       coalesce(p.paid_minor, 0) AS paid_minor, p.currency
FROM departed AS x
LEFT JOIN pay AS p ON p.session = x.session AND p.assignment = x.assignment
LEFT JOIN rates AS r ON r.session = x.session
LEFT JOIN promotions AS pr ON pr.session = x.session AND pr.assignment = x.assignment
LEFT JOIN journaled AS j ON j.session = x.session;

CREATE VIEW study_workers AS
SELECT session, worker,
       count(*)           AS assignments,
       min(arrived_at_ms) AS first_arrived_at_ms,
       max(left_at_ms)    AS last_left_at_ms,
       sum(present_ms)    AS present_ms,
       sum(waiting_ms)    AS waiting_ms,
       sum(active_ms)     AS active_ms,
       sum(waiting_ms_est) AS waiting_ms_est,
       sum(active_ms_est) AS active_ms_est,
       sum(paid_minor)    AS paid_minor,
       min(currency)      AS currency
FROM study_assignments
GROUP BY session, worker;
"#;

/// Version 3: leases (one run per store), and views of multi-pool pipelines' decisions and
/// answers (`crowdcore::pipeline` journals both in the outbox).
const V3: &str = r#"
CREATE TABLE leases (
    name          TEXT    NOT NULL PRIMARY KEY,
    owner         TEXT    NOT NULL,
    expires_at_ms INTEGER NOT NULL CHECK (expires_at_ms >= 0)
) STRICT;

-- A pipeline's decisions: the outbox rows of type 'pipeline' other than answers. `stage` is
-- the stage the decision acts on, `by` the stage whose handler decided, `cause` the
-- assignment being handled; `state` is the outbox state (pending, done, failed).
CREATE VIEW pipeline_decisions AS
SELECT session, seq, id,
       json_extract(body, '$.at_ms')    AS at_ms,
       coalesce(json_extract(body, '$.stage'), json_extract(body, '$.by')) AS stage,
       coalesce(json_extract(body, '$.assignment'), json_extract(body, '$.about')) AS assignment,
       json_extract(body, '$.decision') AS decision,
       coalesce(json_extract(body, '$.comment'), json_extract(body, '$.reason')) AS comment,
       json_extract(body, '$.worker')   AS worker,
       json_extract(body, '$.amount.minor') AS amount_minor,
       json_extract(body, '$.amount.currency') AS currency,
       json_array_length(body, '$.tasks') AS tasks,
       json_extract(body, '$.by')       AS by,
       json_extract(body, '$.cause')    AS cause,
       state, result, error
FROM outbox
WHERE json_valid(body)
  AND json_extract(body, '$.type') = 'pipeline'
  AND json_extract(body, '$.decision') <> 'answer';

-- A pipeline's answers log: one row per worker answer to an aggregated task.
CREATE VIEW pipeline_answers AS
SELECT session, seq,
       json_extract(body, '$.at_ms')  AS at_ms,
       json_extract(body, '$.by')     AS stage,
       json_extract(body, '$.task')   AS task,
       json_extract(body, '$.worker') AS worker,
       json_extract(body, '$.label')  AS label,
       json_extract(body, '$.skill')  AS skill,
       json_extract(body, '$.result') AS result
FROM outbox
WHERE json_valid(body)
  AND json_extract(body, '$.type') = 'pipeline'
  AND json_extract(body, '$.decision') = 'answer';
"#;

/// Version 4: the log packed. `log_runs` holds a run of consecutive inputs of one write in one
/// row (see `packed.rs`); `log` becomes a view with one row per input, as the table was (it
/// takes single-row `INSERT`s too), so every view and query over `log` reads the same. The old
/// rows move over as runs of one. The outbox is rebuilt `WITHOUT ROWID` (one B-tree a row, not a
/// table and its key's index) with its state check as comparisons (an `IN` list made SQLite
/// build a temporary table for every statement that set a state); same columns, same rows.
const V4: &str = r#"
CREATE TABLE log_runs (
    session TEXT    NOT NULL REFERENCES sessions (session),
    seq     INTEGER NOT NULL CHECK (seq >= 1),
    n       INTEGER NOT NULL CHECK (n >= 1),
    at_ms   INTEGER NOT NULL CHECK (at_ms >= 0),
    body    TEXT    NOT NULL,
    PRIMARY KEY (session, seq)
) STRICT, WITHOUT ROWID;

INSERT INTO log_runs (session, seq, n, at_ms, body)
SELECT session, seq, 1, at_ms, body FROM log;

DROP TABLE log;

-- One row per input: a run of one as it is, a longer run's [at_ms, input] pairs unpacked.
CREATE VIEW log AS
SELECT r.session AS session,
       r.seq + coalesce(e.key, 0) AS seq,
       CASE WHEN r.n = 1 THEN r.at_ms ELSE e.value ->> 0 END AS at_ms,
       CASE WHEN r.n = 1 THEN r.body ELSE e.value -> 1 END AS body
FROM log_runs AS r
LEFT JOIN json_each(CASE WHEN r.n > 1 THEN r.body END) AS e;

-- The outbox, rebuilt. Renaming in the legacy way leaves the views that read `outbox` as they
-- are: they name the new table once it has the old name.
PRAGMA legacy_alter_table = ON;
CREATE TABLE outbox_v4 (
    session TEXT    NOT NULL REFERENCES sessions (session),
    seq     INTEGER NOT NULL CHECK (seq >= 0),
    id      TEXT    NOT NULL,
    body    TEXT    NOT NULL,
    state   TEXT    NOT NULL DEFAULT 'pending'
                    CHECK (state = 'pending' OR state = 'done' OR state = 'failed'),
    result  TEXT,
    error   TEXT,
    PRIMARY KEY (session, seq),
    CHECK ((state = 'done') = (result IS NOT NULL)),
    CHECK ((state = 'failed') = (error IS NOT NULL))
) STRICT, WITHOUT ROWID;
INSERT INTO outbox_v4 (session, seq, id, body, state, result, error)
SELECT session, seq, id, body, state, result, error FROM outbox;
DROP TABLE outbox;
ALTER TABLE outbox_v4 RENAME TO outbox;
PRAGMA legacy_alter_table = OFF;
CREATE INDEX outbox_pending ON outbox (session, seq) WHERE state = 'pending';

-- An input written into the view by hand is a run of one; a sequence number that a run
-- holds already is refused, as the table's primary key refused it.
CREATE TRIGGER log_insert INSTEAD OF INSERT ON log
BEGIN
    SELECT RAISE(ABORT, 'UNIQUE constraint failed: log.session, log.seq')
    WHERE (SELECT r.seq + r.n FROM log_runs AS r
           WHERE r.session = NEW.session AND r.seq <= NEW.seq
           ORDER BY r.seq DESC LIMIT 1) > NEW.seq;
    INSERT INTO log_runs (session, seq, n, at_ms, body)
    VALUES (NEW.session, NEW.seq, 1, NEW.at_ms, NEW.body);
END;
"#;

/// Reads the schema version.
pub(crate) fn version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.pragma_query_value(None, "user_version", |row| row.get(0))
}

/// What [`migrate`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Migrated {
    /// The database was at this version and is now at [`LATEST`].
    From(i64),
    /// The database is newer than this build: nothing was done.
    Newer(i64),
}

/// Brings the database to version `to` (at most [`LATEST`]) in one `BEGIN IMMEDIATE`
/// transaction. A database already there is not written at all.
pub(crate) fn migrate_to(conn: &mut Connection, to: i64) -> rusqlite::Result<Migrated> {
    debug_assert!((0..=LATEST).contains(&to));
    let found = version(conn)?;
    if found >= to {
        return Ok(if found > LATEST {
            Migrated::Newer(found)
        } else {
            Migrated::From(found)
        });
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    // Another process may have migrated between the read above and the lock.
    let found = version(&tx)?;
    if found > LATEST {
        return Ok(Migrated::Newer(found));
    }
    for (from, sql) in MIGRATIONS.iter().enumerate().skip(found.max(0) as usize) {
        if from as i64 >= to {
            break;
        }
        tx.execute_batch(sql)?;
    }
    tx.pragma_update(None, "user_version", to)?;
    tx.commit()?;
    Ok(Migrated::From(found))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The schema as SQLite describes it, to compare databases.
    fn schema(conn: &Connection) -> Vec<(String, String, String)> {
        let mut stmt = conn
            .prepare("SELECT type, name, coalesce(sql, '') FROM sqlite_schema ORDER BY type, name")
            .unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    #[test]
    fn every_earlier_version_migrates_to_the_latest_schema() {
        let mut fresh = Connection::open_in_memory().unwrap();
        assert_eq!(migrate_to(&mut fresh, LATEST).unwrap(), Migrated::From(0));
        assert_eq!(version(&fresh).unwrap(), LATEST);
        let want = schema(&fresh);
        assert!(want.iter().any(|(_, name, _)| name == "study_workers"));
        for from in 0..LATEST {
            let mut conn = Connection::open_in_memory().unwrap();
            migrate_to(&mut conn, from).unwrap();
            assert_eq!(version(&conn).unwrap(), from);
            assert_eq!(
                migrate_to(&mut conn, LATEST).unwrap(),
                Migrated::From(from),
                "from version {from}"
            );
            assert_eq!(version(&conn).unwrap(), LATEST, "from version {from}");
            assert_eq!(schema(&conn), want, "from version {from}");
        }
    }

    #[test]
    fn a_database_at_the_latest_version_is_not_written() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate_to(&mut conn, LATEST).unwrap();
        let changes = conn.total_changes();
        assert_eq!(
            migrate_to(&mut conn, LATEST).unwrap(),
            Migrated::From(LATEST)
        );
        assert_eq!(conn.total_changes(), changes);
    }

    #[test]
    fn a_newer_database_is_reported_and_untouched() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.pragma_update(None, "user_version", LATEST + 1)
            .unwrap();
        assert_eq!(
            migrate_to(&mut conn, LATEST).unwrap(),
            Migrated::Newer(LATEST + 1)
        );
        assert!(schema(&conn).is_empty());
    }

    #[test]
    fn a_failed_migration_leaves_the_database_as_it_was() {
        let mut conn = Connection::open_in_memory().unwrap();
        // A table in the way of version 1 makes its migration fail half way.
        conn.execute_batch("CREATE TABLE ledger (x INTEGER)")
            .unwrap();
        assert!(migrate_to(&mut conn, LATEST).is_err());
        assert_eq!(version(&conn).unwrap(), 0);
        let names: Vec<String> = schema(&conn).into_iter().map(|(_, n, _)| n).collect();
        assert_eq!(names, ["ledger"], "the partial migration was rolled back");
    }
}
