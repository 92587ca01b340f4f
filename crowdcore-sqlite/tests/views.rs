//! A simulated study on an SQLite file: the engine runs on it exactly as on memory, and the
//! researchers' views (`study_*`) answer from the file what the simulation measured.

use std::sync::Arc;

use crowdcore::engine::EngineConfig;
use crowdcore::pavilion::PavilionConfig;
use crowdcore::sim::{self, CrowdModel, SimConfig};
use crowdcore::store::{MemoryStore, Store};
use crowdcore::{HitSpec, Money, SessionId};
use crowdcore_sqlite::{SqliteOptions, SqliteStore, Synchronous};
use rusqlite::Connection;

const WAITING_RATE: i64 = 6;
const ACTIVE_RATE: i64 = 12;

fn study() -> SimConfig {
    let pavilion = PavilionConfig {
        min_active: 2,
        max_active: 3,
        min_waiting: 1,
        max_waiting: 2,
        heartbeat_timeout_ms: 60_000,
        base_pay_cents: 25,
        waiting_cents_per_minute: WAITING_RATE,
        active_cents_per_minute: ACTIVE_RATE,
        per_contribution_cents: 0,
        ..PavilionConfig::default()
    };
    let spec = HitSpec {
        title: "Label photos in real time".into(),
        description: "Wait for a task, then label photos as they arrive.".into(),
        keywords: Vec::new(),
        reward: Money::usd_cents(25),
        assignment_duration_ms: 7_200_000,
        lifetime_ms: 86_400_000,
        max_assignments: 50,
        auto_approval_delay_ms: 1,
        qualifications: Vec::new(),
        landing_url: "https://localhost/".into(),
        frame_height: 600,
    };
    SimConfig {
        seed: 11,
        duration_ms: 3_600_000,
        crowd: CrowdModel::default(),
        engine: EngineConfig::new(spec, pavilion),
        funds: Money::usd_cents(10_000_000),
        session: SessionId::new("views-study"),
    }
}

fn one<T: rusqlite::types::FromSql>(conn: &Connection, sql: &str) -> T {
    conn.query_row(sql, [], |r| r.get(0))
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

#[tokio::test]
async fn a_study_on_sqlite_matches_memory_and_the_views_tell_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("study.db");
    let on_memory = sim::run_on(study(), Arc::new(MemoryStore::new()), |_| {})
        .await
        .unwrap();
    let report = {
        let options = SqliteOptions {
            synchronous: Synchronous::Normal,
            ..SqliteOptions::default()
        };
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&path, options).unwrap());
        sim::run_on(study(), store, |_| {}).await.unwrap()
    };
    assert_eq!(
        report, on_memory,
        "the same seed gives the same study on either store"
    );
    assert!(
        report.workers_landed > 5,
        "the crowd did something: {report:?}"
    );

    let conn = Connection::open(&path).unwrap();
    let session = "views-study";
    let sessions: Vec<(String, i64, i64, i64)> = conn
        .prepare("SELECT session, inputs, assignments, paid_minor FROM study_sessions")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(sessions.len(), 1);
    let (name, inputs, assignments, paid) = &sessions[0];
    assert_eq!(name, session);
    assert_eq!(*inputs, one::<i64>(&conn, "SELECT count(*) FROM log"));
    assert_eq!(
        *assignments as u64, report.workers_landed,
        "one assignment per landing"
    );
    assert_eq!(
        *paid, report.cost_cents,
        "paid money is the simulation's cost"
    );

    // Payments, by assignment and by worker, add up to the ledger.
    let by_assignment: i64 = one(&conn, "SELECT sum(paid_minor) FROM study_assignments");
    let by_worker: i64 = one(&conn, "SELECT sum(paid_minor) FROM study_workers");
    let by_payment: i64 = one(
        &conn,
        "SELECT sum(amount_minor) FROM study_payments WHERE paid",
    );
    assert_eq!(
        (by_assignment, by_worker, by_payment),
        (*paid, *paid, *paid)
    );
    let formatted: String = one(
        &conn,
        "SELECT amount FROM study_payments WHERE kind = 'base' LIMIT 1",
    );
    assert_eq!(formatted, "0.25 USD");

    // Every assignment that left has a time present; HITs have their slots.
    let nonsense: i64 = one(
        &conn,
        "SELECT count(*) FROM study_assignments
         WHERE left_at_ms < arrived_at_ms OR (left_how IS NULL) <> (left_at_ms IS NULL)",
    );
    assert_eq!(nonsense, 0);
    let left: i64 = one(
        &conn,
        "SELECT count(*) FROM study_assignments WHERE left_how IS NOT NULL",
    );
    assert!(left > 0);
    let hits: i64 = one(&conn, "SELECT count(*) FROM study_hits WHERE slots > 0");
    assert!(hits > 0);
    let arrivals_on_hits: i64 = one(&conn, "SELECT sum(assignments) FROM study_hits");
    assert_eq!(arrivals_on_hits as u64, report.workers_landed);

    // The estimated waiting and active times agree with what the simulation paid for, to
    // within the rounding of each bonus to a cent.
    let paid_assignments: i64 = one(
        &conn,
        "SELECT count(*) FROM study_assignments WHERE paid_minor > 0",
    );
    let waiting_ms: i64 = one(&conn, "SELECT sum(waiting_ms_est) FROM study_workers");
    let active_ms: i64 = one(&conn, "SELECT sum(active_ms_est) FROM study_workers");
    let slack = |rate: i64| (paid_assignments * 60_000 / rate) as f64;
    let sim_waiting_ms = report.paid_waiting_minutes * 60_000.0;
    let sim_active_ms = report.paid_active_minutes * 60_000.0;
    assert!(
        (waiting_ms as f64 - sim_waiting_ms).abs() <= slack(WAITING_RATE),
        "waiting: views {waiting_ms} ms, simulation {sim_waiting_ms} ms"
    );
    assert!(
        (active_ms as f64 - sim_active_ms).abs() <= slack(ACTIVE_RATE),
        "active: views {active_ms} ms, simulation {sim_active_ms} ms"
    );

    // And exactly, from the promotions the engine journals (schema v2): for every assignment
    // the machine paid, the view's waiting and active times give back the bonuses the machine
    // computed from its own clock (each rounded to the nearest cent, halves up).
    let mut stmt = conn
        .prepare(
            "SELECT assignment, waiting_ms, coalesce(waiting_bonus_minor, 0),
                    active_ms, coalesce(active_bonus_minor, 0)
             FROM study_assignments WHERE base_minor > 0",
        )
        .unwrap();
    let rows: Vec<(String, i64, i64, i64, i64)> = stmt
        .query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(rows.len() > 10, "paid assignments: {}", rows.len());
    let cents = |ms: i64, rate: i64| (ms * rate + 30_000) / 60_000;
    for (assignment, waiting, waiting_bonus, active, active_bonus) in rows {
        assert_eq!(
            cents(waiting, WAITING_RATE),
            waiting_bonus,
            "{assignment}: waiting {waiting} ms"
        );
        assert_eq!(
            cents(active, ACTIVE_RATE),
            active_bonus,
            "{assignment}: active {active} ms"
        );
    }
}

#[test]
fn views_read_bodies_that_are_not_json_as_nulls() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("odd.db");
    drop(SqliteStore::open(&path, SqliteOptions::default()).unwrap());
    let conn = Connection::open(&path).unwrap();
    conn.execute_batch(
        "INSERT INTO sessions VALUES ('s');
         INSERT INTO log VALUES ('s', 1, 5, 'not json'), ('s', 2, 6, '{\"type\":\"start\"}');
         INSERT INTO outbox (session, seq, id, body, state, result) VALUES ('s', 1, 's/1', 'nope', 'done', 'r');
         INSERT INTO meta VALUES ('s', 'engine_config', 'not json either');",
    )
    .unwrap();
    for view in [
        "study_inputs",
        "study_sessions",
        "study_hits",
        "study_assignments",
        "study_workers",
        "study_payments",
    ] {
        conn.prepare(&format!("SELECT * FROM {view}"))
            .unwrap()
            .query_map([], |_| Ok(()))
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap_or_else(|e| panic!("{view}: {e}"));
    }
    let started: i64 = one(&conn, "SELECT started_at_ms FROM study_sessions");
    assert_eq!(started, 6);
}
