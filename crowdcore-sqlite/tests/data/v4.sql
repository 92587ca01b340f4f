-- A version-4 database as crowdcore-sqlite 0.1 wrote it (sqlite3 .dump, plus its user_version):
-- the version-3 fixture's data with the log packed (inputs 2 to 5 are one row of log_runs)
-- and the outbox WITHOUT ROWID. Frozen: opening it must keep working whatever later versions change.
PRAGMA user_version = 4;
PRAGMA foreign_keys=OFF;
BEGIN TRANSACTION;
CREATE TABLE sessions (
    session TEXT NOT NULL PRIMARY KEY
) STRICT;
INSERT INTO sessions VALUES('pilot-2024');
CREATE TABLE snapshots (
    session TEXT    NOT NULL PRIMARY KEY REFERENCES sessions (session),
    seq     INTEGER NOT NULL CHECK (seq >= 0),
    body    TEXT    NOT NULL
) STRICT;
INSERT INTO snapshots VALUES('pilot-2024',5,'{"snapshot":"opaque to the store"}');
CREATE TABLE cursors (
    session TEXT NOT NULL REFERENCES sessions (session),
    name    TEXT NOT NULL,
    cursor  TEXT NOT NULL,
    PRIMARY KEY (session, name)
) STRICT, WITHOUT ROWID;
INSERT INTO cursors VALUES('pilot-2024','assignments','page-5');
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
INSERT INTO ledger VALUES(1,'pilot-2024','pilot-2024/2','W1','A1','base',50,'USD',1,250000);
INSERT INTO ledger VALUES(2,'pilot-2024','pilot-2024/3','W1','A1','waiting_bonus',6,'USD',0,250000);
CREATE TABLE meta (
    session TEXT NOT NULL REFERENCES sessions (session),
    key     TEXT NOT NULL,
    value   TEXT NOT NULL,
    PRIMARY KEY (session, key)
) STRICT, WITHOUT ROWID;
INSERT INTO meta VALUES('pilot-2024','engine_config','{"pavilion":{"waiting_cents_per_minute":6,"active_cents_per_minute":12}}');
CREATE TABLE leases (
    name          TEXT    NOT NULL PRIMARY KEY,
    owner         TEXT    NOT NULL,
    expires_at_ms INTEGER NOT NULL CHECK (expires_at_ms >= 0)
) STRICT;
INSERT INTO leases VALUES('pipeline','host-a/4242',1700000300000);
CREATE TABLE log_runs (
    session TEXT    NOT NULL REFERENCES sessions (session),
    seq     INTEGER NOT NULL CHECK (seq >= 1),
    n       INTEGER NOT NULL CHECK (n >= 1),
    at_ms   INTEGER NOT NULL CHECK (at_ms >= 0),
    body    TEXT    NOT NULL,
    PRIMARY KEY (session, seq)
) STRICT, WITHOUT ROWID;
INSERT INTO log_runs VALUES('pilot-2024',1,1,0,'{"type":"start"}');
INSERT INTO log_runs VALUES('pilot-2024',2,4,60000,'[[60000,{"type":"hire_posted","hire":"pilot-2024/1","hit":"HIT1","slots":2}],[120000,{"type":"arrive","worker":"W1","assignment":"A1","hit":"HIT1"}],[180000,{"type":"arrive","worker":"W2","assignment":"A2","hit":"HIT1"}],[240000,{"type":"submit","assignment":"A1","contributions":3}]]');
INSERT INTO log_runs VALUES('pilot-2024',6,1,300000,'{"type":"stop"}');
CREATE TABLE IF NOT EXISTS "outbox" (
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
INSERT INTO outbox VALUES('pilot-2024',1,'pilot-2024/1','{"at_ms":0,"id":"pilot-2024/1","type":"hire","count":2}','done','{"outcome":"posted","hit":"HIT1","slots":2}',NULL);
INSERT INTO outbox VALUES('pilot-2024',2,'pilot-2024/2','{"at_ms":240000,"id":"pilot-2024/2","type":"pay","worker":"W1","assignment":"A1","kind":"base","amount_cents":50,"currency":"USD"}','done','{"outcome":"paid"}',NULL);
INSERT INTO outbox VALUES('pilot-2024',3,'pilot-2024/3','{"at_ms":240000,"id":"pilot-2024/3","type":"pay","worker":"W1","assignment":"A1","kind":"waiting_bonus","amount_cents":6,"currency":"USD"}','failed',NULL,'insufficient funds');
INSERT INTO outbox VALUES('pilot-2024',4,'pilot-2024/4','{"at_ms":300000,"id":"pilot-2024/4","type":"expire_hits","hits":["HIT1"]}','pending',NULL,NULL);
INSERT INTO outbox VALUES('pilot-2024',10,'pilot-2024/10','{"type":"pipeline","at_ms":240000,"by":"validate","cause":"V7","decision":"accept","stage":"submit","assignment":"A1","comment":"the photos show the place"}','done','accepted',NULL);
INSERT INTO outbox VALUES('pilot-2024',11,'pilot-2024/11','{"type":"pipeline","at_ms":240000,"by":"validate","cause":"V7","decision":"answer","task":"T3","worker":"W2","label":"yes","skill":1.0,"result":"yes"}','done','journal',NULL);
CREATE INDEX ledger_session ON ledger (session, id);
CREATE INDEX ledger_worker ON ledger (worker);
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
LEFT JOIN journaled AS j ON j.session = x.session
;
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
CREATE VIEW log AS
SELECT r.session AS session,
       r.seq + coalesce(e.key, 0) AS seq,
       CASE WHEN r.n = 1 THEN r.at_ms ELSE e.value ->> 0 END AS at_ms,
       CASE WHEN r.n = 1 THEN r.body ELSE e.value -> 1 END AS body
FROM log_runs AS r
LEFT JOIN json_each(CASE WHEN r.n > 1 THEN r.body END) AS e;
CREATE INDEX outbox_pending ON outbox (session, seq) WHERE state = 'pending';
CREATE TRIGGER log_insert INSTEAD OF INSERT ON log
BEGIN
    SELECT RAISE(ABORT, 'UNIQUE constraint failed: log.session, log.seq')
    WHERE (SELECT r.seq + r.n FROM log_runs AS r
           WHERE r.session = NEW.session AND r.seq <= NEW.seq
           ORDER BY r.seq DESC LIMIT 1) > NEW.seq;
    INSERT INTO log_runs (session, seq, n, at_ms, body)
    VALUES (NEW.session, NEW.seq, 1, NEW.at_ms, NEW.body);
END;
COMMIT;
