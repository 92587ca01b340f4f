//! What is written survives the store: written, dropped, reopened — all there, whatever the
//! commit mode it was written or reopened with.

use std::path::Path;
use std::sync::Arc;

use crowdcore::platform::Cursor;
use crowdcore::store::{
    Completion, LedgerEntry, NewEffect, NewInput, OutboxEntry, OutboxState, Store, StoredSnapshot,
};
use crowdcore::{AssignmentId, EffectId, Money, SessionId, Timestamp, WorkerId};
use crowdcore_sqlite::{CommitMode, SqliteOptions, SqliteStore, Synchronous};

fn input(at: u64, body: &str) -> NewInput {
    NewInput {
        at: Timestamp::from_millis(at),
        body: body.to_owned(),
    }
}

fn payment(effect: &EffectId) -> LedgerEntry {
    LedgerEntry {
        effect: effect.clone(),
        worker: WorkerId::new("W1"),
        assignment: Some(AssignmentId::new("A1")),
        kind: "waiting_bonus".to_owned(),
        amount: Money::usd_cents(-1_205),
        paid: true,
        at: Timestamp::from_millis(1_700_000_000_000),
    }
}

/// Writes one of everything to session `s`.
async fn write_everything(store: &dyn Store, s: &SessionId) {
    store
        .append(
            s,
            &[input(1, "start"), input(2, "arrive")],
            Some(("obs", &Cursor("c1".into()))),
        )
        .await
        .unwrap();
    store
        .save_snapshot(
            s,
            &StoredSnapshot {
                seq: 2,
                body: "{\"snapshot\":true}".into(),
            },
        )
        .await
        .unwrap();
    let e1 = EffectId::new(s.clone(), 1);
    let e2 = EffectId::new(s.clone(), 2);
    store
        .enqueue(
            s,
            &[
                NewEffect {
                    id: e1.clone(),
                    body: "pay".into(),
                },
                NewEffect {
                    id: e2.clone(),
                    body: "hire".into(),
                },
            ],
        )
        .await
        .unwrap();
    let fresh = store
        .complete(
            s,
            &Completion {
                id: e1.clone(),
                state: OutboxState::Done {
                    result: "paid ✓".into(),
                },
                ledger: vec![payment(&e1)],
                inputs: vec![input(3, "paid")],
            },
        )
        .await
        .unwrap();
    assert!(fresh);
    store
        .put_meta(s, "engine_config", "{\"k\":1}")
        .await
        .unwrap();
}

/// Checks that session `s` holds exactly what [`write_everything`] wrote.
async fn check_everything(store: &dyn Store, s: &SessionId) {
    let log = store.read_log(s, 0, usize::MAX).await.unwrap();
    let got: Vec<(u64, u64, &str)> = log
        .iter()
        .map(|r| (r.seq, r.at.as_millis(), r.body.as_str()))
        .collect();
    assert_eq!(got, [(1, 1, "start"), (2, 2, "arrive"), (3, 3, "paid")]);
    assert_eq!(
        store.cursor(s, "obs").await.unwrap(),
        Some(Cursor("c1".into()))
    );
    assert_eq!(
        store.load_snapshot(s).await.unwrap(),
        Some(StoredSnapshot {
            seq: 2,
            body: "{\"snapshot\":true}".into()
        })
    );
    let e1 = EffectId::new(s.clone(), 1);
    let e2 = EffectId::new(s.clone(), 2);
    assert_eq!(
        store.effect(&e1).await.unwrap(),
        Some(OutboxEntry {
            id: e1.clone(),
            body: "pay".into(),
            state: OutboxState::Done {
                result: "paid ✓".into()
            }
        })
    );
    assert_eq!(
        store.pending(s).await.unwrap(),
        [OutboxEntry {
            id: e2,
            body: "hire".into(),
            state: OutboxState::Pending
        }]
    );
    assert_eq!(store.ledger(s).await.unwrap(), [payment(&e1)]);
    assert_eq!(
        store.meta(s, "engine_config").await.unwrap().as_deref(),
        Some("{\"k\":1}")
    );
}

fn options(commit: CommitMode, synchronous: Synchronous) -> SqliteOptions {
    SqliteOptions {
        commit,
        synchronous,
        ..SqliteOptions::default()
    }
}

fn open(path: &Path, options: SqliteOptions) -> SqliteStore {
    SqliteStore::open(path, options).expect("open")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn everything_written_is_there_after_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let modes = [
        options(CommitMode::Group, Synchronous::Full),
        options(CommitMode::PerWrite, Synchronous::Full),
        options(CommitMode::Group, Synchronous::Normal),
    ];
    for (n, written_with) in modes.iter().enumerate() {
        let path = dir.path().join(format!("{n}.db"));
        let s = SessionId::new(format!("session-{n}"));
        {
            let store = open(&path, written_with.clone());
            write_everything(&store, &s).await;
            check_everything(&store, &s).await;
        }
        for reopened_with in &modes {
            let store = open(&path, reopened_with.clone());
            check_everything(&store, &s).await;
            // And it goes on where it stopped.
            assert_eq!(store.append(&s, &[], None).await.unwrap(), 3);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_are_all_there_after_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("concurrent.db");
    let sessions: Vec<SessionId> = (0..4).map(|n| SessionId::new(format!("s{n}"))).collect();
    {
        let store = Arc::new(open(&path, SqliteOptions::default()));
        let mut tasks = Vec::new();
        for t in 0..32 {
            let store = store.clone();
            let s = sessions[t % sessions.len()].clone();
            tasks.push(tokio::spawn(async move {
                for n in 0..25 {
                    store
                        .append(&s, &[input(n, &format!("t{t}-{n}"))], None)
                        .await
                        .unwrap();
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
    }
    let store = open(&path, SqliteOptions::default());
    for s in &sessions {
        let log = store.read_log(s, 0, usize::MAX).await.unwrap();
        assert_eq!(log.len(), 8 * 25, "{s}");
        assert!(
            log.iter().zip(1..).all(|(r, seq)| r.seq == seq),
            "{s}: no gaps"
        );
    }
}

#[tokio::test]
async fn a_clone_keeps_the_store_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("clone.db");
    let s = SessionId::new("s");
    let store = open(&path, SqliteOptions::default());
    let clone = store.clone();
    drop(store);
    assert_eq!(clone.append(&s, &[input(1, "x")], None).await, Ok(1));
    assert_eq!(clone.path(), Some(path.as_path()));
    drop(clone);
    let store = open(&path, SqliteOptions::default());
    assert_eq!(store.read_log(&s, 0, 10).await.unwrap().len(), 1);
}

#[tokio::test]
async fn two_stores_on_one_file_keep_one_numbering() {
    // As two processes would: each store's writer must notice the other's commits.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.db");
    let a = open(&path, SqliteOptions::default());
    let b = open(&path, SqliteOptions::default());
    let s = SessionId::new("s");
    for n in 1..=10u64 {
        let store = if n % 3 == 0 { &b } else { &a };
        assert_eq!(
            store.append(&s, &[input(n, &format!("i{n}"))], None).await,
            Ok(n)
        );
    }
    let log = b.read_log(&s, 0, usize::MAX).await.unwrap();
    assert_eq!(log.len(), 10);
    assert!(log.iter().zip(1..).all(|(r, n)| r.body == format!("i{n}")));
}

/// A `write_all` batch is one transaction: refused half way, none of its packed log rows (nor
/// its ledger rows) are written, and the file reopens with the log it had, packed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_batch_writes_none_of_its_packed_rows() {
    use crowdcore::store::{StoreError, Write};

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("batch.db");
    let s = SessionId::new("s");
    let beat = |n: u64| input(n, &format!(r#"{{"type":"heartbeat","n":{n}}}"#));
    let e = NewEffect {
        id: EffectId::new(s.clone(), 1),
        body: r#"{"type":"pay"}"#.into(),
    };
    let paid = Completion {
        id: e.id.clone(),
        state: OutboxState::Done {
            result: "paid".into(),
        },
        ledger: vec![payment(&e.id)],
        inputs: vec![beat(11)],
    };
    let store = open(&path, SqliteOptions::default());
    let first = [
        Write::Append {
            inputs: (1..=10).map(beat).collect(),
            cursor: None,
        },
        Write::Record {
            effect: e.clone(),
            completion: paid.clone(),
        },
    ];
    store.write_all(&s, &first).await.unwrap();
    let refused = [
        Write::Append {
            inputs: (12..=40).map(beat).collect(),
            cursor: None,
        },
        // Written as it comes (not held to the batch's end as log and ledger rows are): only
        // the transaction's rollback can take it back.
        Write::Meta {
            key: "before-the-refusal".into(),
            value: "x".into(),
        },
        Write::Record {
            effect: e.clone(),
            completion: paid.clone(),
        },
    ];
    assert!(matches!(
        store.write_all(&s, &refused).await,
        Err(StoreError::Corrupt(_))
    ));
    drop(store);

    let conn = rusqlite::Connection::open(&path).unwrap();
    let count = |sql: &str| -> i64 { conn.query_row(sql, [], |r| r.get(0)).unwrap() };
    assert_eq!(count("SELECT count(*) FROM log_runs"), 1, "one packed row");
    assert_eq!(count("SELECT n FROM log_runs"), 11);
    assert_eq!(count("SELECT count(*) FROM log"), 11, "the view unpacks it");
    assert_eq!(count("SELECT count(*) FROM ledger"), 1);
    drop(conn);

    let store = open(&path, SqliteOptions::default());
    assert_eq!(
        store.meta(&s, "before-the-refusal").await.unwrap(),
        None,
        "the refused batch's earlier writes were rolled back"
    );
    let log = store.read_log(&s, 0, usize::MAX).await.unwrap();
    let want: Vec<String> = (1..=11).map(|n| beat(n).body).collect();
    assert_eq!(log.iter().map(|r| r.body.clone()).collect::<Vec<_>>(), want);
    assert_eq!(store.append(&s, &[beat(12)], None).await.unwrap(), 12);
}
