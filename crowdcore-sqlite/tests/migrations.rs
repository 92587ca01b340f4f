//! Databases of every schema version open: an empty file, and a database of each version as
//! crowdcore-sqlite wrote it (`data/v1.sql` to `data/v4.sql`, frozen; `v4.sql` has a packed
//! log row). When version 5 comes, add `data/v5.sql` and a line to `EARLIER`.

use std::path::Path;

use crowdcore::platform::Cursor;
use crowdcore::store::{NewInput, OutboxState, Store};
use crowdcore::{EffectId, SessionId, Timestamp};
use crowdcore_sqlite::{SqliteOptions, SqliteStore};
use rusqlite::Connection;

/// Every earlier version's fixture: (version, its dump).
const EARLIER: &[(i64, &str)] = &[
    (1, include_str!("data/v1.sql")),
    (2, include_str!("data/v2.sql")),
    (3, include_str!("data/v3.sql")),
    (4, include_str!("data/v4.sql")),
];

/// The schema as SQLite describes it.
fn schema(path: &Path) -> Vec<(String, String)> {
    let conn = Connection::open(path).unwrap();
    let mut stmt = conn
        .prepare("SELECT name, coalesce(sql, '') FROM sqlite_schema ORDER BY name")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn user_version(path: &Path) -> i64 {
    Connection::open(path)
        .unwrap()
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap()
}

#[test]
fn an_empty_file_gets_the_latest_schema() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("empty.db");
    std::fs::write(&path, b"").unwrap();
    drop(SqliteStore::open(&path, SqliteOptions::default()).unwrap());
    assert_eq!(user_version(&path), SqliteStore::SCHEMA_VERSION);
    let names: Vec<String> = schema(&path).into_iter().map(|(n, _)| n).collect();
    for table in [
        "sessions",
        "log",
        "snapshots",
        "outbox",
        "cursors",
        "ledger",
        "meta",
    ] {
        assert!(names.iter().any(|n| n == table), "{table} in {names:?}");
    }
}

#[tokio::test]
async fn every_earlier_version_opens_with_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let fresh = dir.path().join("fresh.db");
    drop(SqliteStore::open(&fresh, SqliteOptions::default()).unwrap());
    assert_eq!(
        EARLIER.len() as i64,
        SqliteStore::SCHEMA_VERSION,
        "a fixture for every version"
    );
    for (version, dump) in EARLIER {
        let path = dir.path().join(format!("v{version}.db"));
        Connection::open(&path)
            .unwrap()
            .execute_batch(dump)
            .unwrap();
        assert_eq!(user_version(&path), *version);

        let store = SqliteStore::open(&path, SqliteOptions::default()).unwrap();
        let s = SessionId::new("pilot-2024");
        let log = store.read_log(&s, 0, usize::MAX).await.unwrap();
        assert_eq!(log.len(), 6, "v{version}: the log");
        assert_eq!(
            log[4].body,
            r#"{"type":"submit","assignment":"A1","contributions":3}"#
        );
        assert_eq!(
            store.cursor(&s, "assignments").await.unwrap(),
            Some(Cursor("page-5".into()))
        );
        assert_eq!(store.load_snapshot(&s).await.unwrap().unwrap().seq, 5);
        let pending = store.pending(&s).await.unwrap();
        assert_eq!(pending.len(), 1, "v{version}: the outbox");
        assert_eq!(pending[0].id, EffectId::new(s.clone(), 4));
        let failed = store
            .effect(&EffectId::new(s.clone(), 3))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            failed.state,
            OutboxState::Failed {
                error: "insufficient funds".into()
            }
        );
        let ledger = store.ledger(&s).await.unwrap();
        assert_eq!(ledger.len(), 2, "v{version}: the ledger");
        assert_eq!((ledger[0].amount.minor, ledger[0].paid), (50, true));
        let mid = store.read_log(&s, 2, 2).await.unwrap();
        assert_eq!(
            mid.iter()
                .map(|r| (r.seq, r.at.as_millis()))
                .collect::<Vec<_>>(),
            [(3, 120_000), (4, 180_000)],
            "v{version}: a range from the middle of the log"
        );
        assert_eq!(
            mid[1].body,
            r#"{"type":"arrive","worker":"W2","assignment":"A2","hit":"HIT1"}"#
        );
        // Writing goes on after the stored log.
        assert_eq!(store.append(&s, &[], None).await.unwrap(), 6);
        drop(store);

        assert_eq!(
            user_version(&path),
            SqliteStore::SCHEMA_VERSION,
            "v{version}"
        );
        assert_eq!(
            schema(&path),
            schema(&fresh),
            "v{version} migrates to the latest schema"
        );
        let conn = Connection::open(&path).unwrap();
        let (workers, paid): (i64, i64) = conn
            .query_row(
                "SELECT workers, paid_minor FROM study_sessions WHERE session = 'pilot-2024'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!((workers, paid), (2, 50), "v{version}: the views read it");
        let (how, present): (String, i64) = conn
            .query_row(
                "SELECT left_how, present_ms FROM study_assignments WHERE assignment = 'A2'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!((how.as_str(), present), ("released", 120_000), "v{version}");
        let expired: i64 = conn
            .query_row("SELECT count(expired_at_ms) FROM study_hits", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(expired, 0, "v{version}: the expiry is still pending");
        if *version >= 3 {
            let (stage, decision, state): (String, String, String) = conn
                .query_row(
                    "SELECT stage, decision, state FROM pipeline_decisions WHERE assignment = 'A1'",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .unwrap();
            assert_eq!(
                (stage.as_str(), decision.as_str(), state.as_str()),
                ("submit", "accept", "done")
            );
            let (label, result): (String, String) = conn
                .query_row("SELECT label, result FROM pipeline_answers", [], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .unwrap();
            assert_eq!((label.as_str(), result.as_str()), ("yes", "yes"));
            let owner: String = conn
                .query_row("SELECT owner FROM leases", [], |r| r.get(0))
                .unwrap();
            assert_eq!(owner, "host-a/4242");
        }
        drop(conn);

        // New inputs (packed into one row) continue the old log, read back with it.
        let store = SqliteStore::open(&path, SqliteOptions::default()).unwrap();
        let beats: Vec<NewInput> = (0..3)
            .map(|i| NewInput {
                at: Timestamp::from_millis(310_000 + i),
                body: format!(r#"{{"type":"heartbeat","assignment":"A{i}"}}"#),
            })
            .collect();
        assert_eq!(store.append(&s, &beats, None).await.unwrap(), 9);
        let log = store.read_log(&s, 5, usize::MAX).await.unwrap();
        assert_eq!(
            log.iter().map(|r| r.seq).collect::<Vec<_>>(),
            [6, 7, 8, 9],
            "v{version}"
        );
        assert_eq!(log[0].body, r#"{"type":"stop"}"#);
        assert_eq!(log[3].body, beats[2].body);
        drop(store);
        let conn = Connection::open(&path).unwrap();
        let heartbeats: i64 = conn
            .query_row(
                "SELECT count(*) FROM study_inputs WHERE type = 'heartbeat' AND seq > 6",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(
            heartbeats, 3,
            "v{version}: the view reads the packed inputs"
        );
    }
}
