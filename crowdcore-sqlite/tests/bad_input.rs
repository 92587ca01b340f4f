//! Bad input is a clear, typed error that writes nothing: a file that is not SQLite, a
//! database from a newer schema, a database another connection holds locked, a full disk.

use std::path::Path;
use std::time::Duration;

use crowdcore::SessionId;
use crowdcore::Timestamp;
use crowdcore::store::{NewInput, Store, StoreError};
use crowdcore_sqlite::{OpenError, SqliteOptions, SqliteStore};
use rusqlite::Connection;

fn input(body: &str) -> NewInput {
    NewInput {
        at: Timestamp::from_millis(1),
        body: body.to_owned(),
    }
}

/// The files in `dir`, by name.
fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn quick() -> SqliteOptions {
    SqliteOptions {
        busy_timeout: Duration::from_millis(50),
        ..SqliteOptions::default()
    }
}

#[test]
fn a_file_that_is_not_sqlite_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    for (name, bytes) in [
        ("notes.txt", b"worker,minutes\nA1,12\n".to_vec()),
        ("short", b"SQLite".to_vec()),
        ("binary", (0..=255u8).cycle().take(8192).collect()),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, &bytes).unwrap();
        match SqliteStore::open(&path, SqliteOptions::default()) {
            Err(OpenError::NotADatabase { path: reported }) => assert_eq!(reported, path),
            other => panic!("{name}: expected NotADatabase, got {other:?}"),
        }
        assert_eq!(std::fs::read(&path).unwrap(), bytes, "{name} is unchanged");
    }
    assert_eq!(
        files(dir.path()),
        ["binary", "notes.txt", "short"],
        "no file was created"
    );
    let message = SqliteStore::open(dir.path().join("notes.txt"), SqliteOptions::default())
        .unwrap_err()
        .to_string();
    assert!(message.contains("is not an SQLite database"), "{message}");
}

#[test]
fn a_database_from_a_newer_schema_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let newer = SqliteStore::SCHEMA_VERSION + 1;
    for wal in [false, true] {
        let path = dir.path().join(format!("future-{wal}.db"));
        {
            let conn = Connection::open(&path).unwrap();
            if wal {
                conn.pragma_update(None, "journal_mode", "WAL").unwrap();
            }
            conn.execute_batch(
                "CREATE TABLE things_to_come (x TEXT); INSERT INTO things_to_come VALUES ('v2')",
            )
            .unwrap();
            conn.pragma_update(None, "user_version", newer).unwrap();
        }
        let bytes = std::fs::read(&path).unwrap();
        match SqliteStore::open(&path, SqliteOptions::default()) {
            Err(OpenError::NewerSchema {
                found, supported, ..
            }) => {
                assert_eq!((found, supported), (newer, SqliteStore::SCHEMA_VERSION));
            }
            other => panic!("expected NewerSchema, got {other:?}"),
        }
        assert_eq!(
            std::fs::read(&path).unwrap(),
            bytes,
            "the file is unchanged (wal: {wal})"
        );
        let conn = Connection::open(&path).unwrap();
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(version, newer);
        let tables: i64 = conn
            .query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get(0))
            .unwrap();
        assert_eq!(tables, 1, "no table was added");
    }
    let err =
        SqliteStore::open(dir.path().join("future-true.db"), SqliteOptions::default()).unwrap_err();
    assert!(
        err.to_string()
            .contains("newer than this crowdcore-sqlite reads"),
        "{err}"
    );
    assert!(matches!(StoreError::from(err), StoreError::Corrupt(_)));
}

#[tokio::test]
async fn a_locked_database_is_a_locked_error_that_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("locked.db");
    let store = SqliteStore::open(&path, quick()).unwrap();
    let s = SessionId::new("s");
    assert_eq!(store.append(&s, &[input("first")], None).await, Ok(1));

    // Another process takes the write lock and keeps it.
    let other = Connection::open(&path).unwrap();
    other.execute_batch("BEGIN EXCLUSIVE").unwrap();
    match store.append(&s, &[input("blocked")], None).await {
        Err(StoreError::Locked(message)) => assert!(message.contains("locked"), "{message}"),
        other => panic!("expected Locked, got {other:?}"),
    }
    assert!(matches!(
        store.put_meta(&s, "k", "v").await,
        Err(StoreError::Locked(_))
    ));
    // Readers are not blocked in WAL mode.
    let log = store.read_log(&s, 0, 10).await.unwrap();
    assert_eq!(
        log.len(),
        1,
        "reads still work, and the failed writes wrote nothing"
    );

    other.execute_batch("ROLLBACK").unwrap();
    assert_eq!(
        store.append(&s, &[input("second")], None).await,
        Ok(2),
        "once the lock is gone, writes go on where they left off"
    );
    assert_eq!(store.meta(&s, "k").await, Ok(None));
}

#[test]
fn opening_a_database_locked_for_its_migration_is_a_locked_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("busy.db");
    let other = Connection::open(&path).unwrap();
    other.pragma_update(None, "journal_mode", "WAL").unwrap();
    other
        .execute_batch("BEGIN EXCLUSIVE; CREATE TABLE t (x)")
        .unwrap();
    match SqliteStore::open(&path, quick()) {
        Err(OpenError::Locked { .. }) => {}
        other => panic!("expected Locked, got {other:?}"),
    }
    other.execute_batch("ROLLBACK").unwrap();
    SqliteStore::open(&path, quick()).expect("opens once the lock is gone");
}

#[tokio::test]
async fn a_full_disk_is_a_full_error_that_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("full.db");
    let store = SqliteStore::open(
        &path,
        SqliteOptions {
            max_size_bytes: Some(256 * 1024),
            ..SqliteOptions::default()
        },
    )
    .unwrap();
    let s = SessionId::new("s");
    let body = "x".repeat(4096);
    let mut last = 0;
    let error = loop {
        match store.append(&s, &[input(&body), input(&body)], None).await {
            Ok(seq) => last = seq,
            Err(e) => break e,
        }
        assert!(last < 1_000, "the size cap never bit");
    };
    assert!(matches!(error, StoreError::Full(_)), "{error:?}");
    assert!(last > 0);
    let log = store.read_log(&s, 0, usize::MAX).await.unwrap();
    assert_eq!(
        log.len() as u64,
        last,
        "the failed append wrote none of its two inputs"
    );
    // Small writes that fit still work, and number on from the last success.
    assert_eq!(
        store.append(&s, &[input("small")], None).await,
        Ok(last + 1)
    );
}
