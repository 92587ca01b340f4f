//! The [`Store`] contract: what every store must do, as async functions that panic with a
//! message naming the broken property. Compiled with the `contract` feature, and run by
//! crowdcore's own tests against [`MemoryStore`](super::MemoryStore) and by each backend's
//! tests against its store, so that all stores behave alike.
//!
//! Each property takes a fresh, empty store; [`run_all`] runs them all, each on a store of its
//! own from `make`. Run it on a multi-threaded tokio runtime so that the concurrency properties
//! are really concurrent:
//!
//! ```no_run
//! use std::sync::Arc;
//!
//! use crowdcore::store::{MemoryStore, Store, contract};
//!
//! #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
//! async fn memory_store_meets_the_contract() {
//!     contract::run_all(|| Arc::new(MemoryStore::new()) as Arc<dyn Store>).await;
//! }
//! ```
//!
//! The properties cover what the engine relies on: sequence numbers, log paging, cursors
//! written with their inputs, snapshots, the outbox (idempotent enqueue, atomic completion,
//! order), effect lookup, metadata, and concurrent appends. What only a durable store can
//! promise (data survives a restart, a full disk writes nothing) is for the backend's own
//! tests.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::{
    Commit, Completion, JOURNAL_RESULT, LeaseOutcome, LedgerEntry, LogRecord, NewEffect, NewInput,
    OutboxEntry, OutboxState, Store, StoreError, StoredSnapshot, Write,
};
use crate::model::{AssignmentId, EffectId, Money, SessionId, Timestamp, WorkerId};
use crate::platform::Cursor;

/// Runs every property, each on a fresh store from `make`.
pub async fn run_all(make: impl Fn() -> Arc<dyn Store>) {
    sequence_numbers(make()).await;
    read_log_paging(make()).await;
    log_ranges_across_writes(make()).await;
    append_with_cursor(make()).await;
    cursor_is_visible_with_its_inputs(make()).await;
    snapshots(make()).await;
    enqueue_is_idempotent(make()).await;
    complete_is_atomic(make()).await;
    complete_twice_changes_nothing(make()).await;
    complete_unknown_effect(make()).await;
    completion_is_visible_all_at_once(make()).await;
    pending_in_id_order(make()).await;
    effect_lookup(make()).await;
    metadata(make()).await;
    concurrent_appends(make()).await;
    commit_writes_everything(make()).await;
    commit_refuses_a_snapshot_past_the_end(make()).await;
    write_all_in_order(make()).await;
    leases(make()).await;
}

// ----- helpers ---------------------------------------------------------------------------------

fn session(name: &str) -> SessionId {
    SessionId::new(format!("contract-{name}"))
}

fn input(at: u64, body: &str) -> NewInput {
    NewInput {
        at: Timestamp::from_millis(at),
        body: body.to_owned(),
    }
}

fn effect(session: &SessionId, seq: u64, body: &str) -> NewEffect {
    NewEffect {
        id: EffectId::new(session.clone(), seq),
        body: body.to_owned(),
    }
}

fn payment(effect: &EffectId, worker: &str, cents: i64, paid: bool, at: u64) -> LedgerEntry {
    LedgerEntry {
        effect: effect.clone(),
        worker: WorkerId::new(worker),
        assignment: Some(AssignmentId::new(format!("{worker}-assignment"))),
        kind: "base".to_owned(),
        amount: Money::usd_cents(cents),
        paid,
        at: Timestamp::from_millis(at),
    }
}

fn done(result: &str) -> OutboxState {
    OutboxState::Done {
        result: result.to_owned(),
    }
}

async fn whole_log(store: &dyn Store, session: &SessionId) -> Vec<LogRecord> {
    store
        .read_log(session, 0, usize::MAX)
        .await
        .unwrap_or_else(|e| panic!("read_log of {session} failed: {e}"))
}

fn seqs(log: &[LogRecord]) -> Vec<u64> {
    log.iter().map(|r| r.seq).collect()
}

fn bodies(log: &[LogRecord]) -> Vec<&str> {
    log.iter().map(|r| r.body.as_str()).collect()
}

fn ok<T>(property: &str, what: &str, result: Result<T, StoreError>) -> T {
    result.unwrap_or_else(|e| panic!("{property}: {what} failed: {e}"))
}

// ----- the log ---------------------------------------------------------------------------------

/// Sequence numbers start at 1, have no gaps, are what `append` returns, and are counted per
/// session: appending to one session never moves another's.
pub async fn sequence_numbers(store: Arc<dyn Store>) {
    const P: &str = "sequence_numbers";
    let (a, b) = (session("a"), session("b"));
    let store = &*store;
    let end = ok(P, "empty append", store.append(&a, &[], None).await);
    assert_eq!(end, 0, "{P}: an empty append to a new session returns 0");
    let end = ok(
        P,
        "append",
        store
            .append(&a, &[input(10, "a1"), input(11, "a2")], None)
            .await,
    );
    assert_eq!(end, 2, "{P}: two inputs to a new session end at 2");
    let end = ok(
        P,
        "append",
        store.append(&a, &[input(12, "a3")], None).await,
    );
    assert_eq!(end, 3, "{P}: the next input is 3");
    let end = ok(P, "empty append", store.append(&a, &[], None).await);
    assert_eq!(end, 3, "{P}: an empty append returns the log's end");

    let end = ok(P, "append", store.append(&b, &[input(5, "b1")], None).await);
    assert_eq!(end, 1, "{P}: another session starts at 1");
    let end = ok(
        P,
        "append",
        store.append(&a, &[input(13, "a4")], None).await,
    );
    assert_eq!(end, 4, "{P}: appending to b did not move a");

    let log = whole_log(store, &a).await;
    assert_eq!(seqs(&log), [1, 2, 3, 4], "{P}: a's sequence numbers");
    assert_eq!(bodies(&log), ["a1", "a2", "a3", "a4"], "{P}: a's bodies");
    assert_eq!(
        log.iter().map(|r| r.at.as_millis()).collect::<Vec<_>>(),
        [10, 11, 12, 13],
        "{P}: a's times are kept"
    );
    let log = whole_log(store, &b).await;
    assert_eq!(seqs(&log), [1], "{P}: b's sequence numbers");
    assert_eq!(bodies(&log), ["b1"], "{P}: b's bodies");
    assert!(
        whole_log(store, &session("never")).await.is_empty(),
        "{P}: a session never written has an empty log"
    );
}

/// `read_log(after, limit)` returns up to `limit` records with sequence numbers above
/// `after`, in order.
pub async fn read_log_paging(store: Arc<dyn Store>) {
    const P: &str = "read_log_paging";
    let s = session("paging");
    let inputs: Vec<NewInput> = (1..=10).map(|n| input(n, &format!("i{n}"))).collect();
    ok(P, "append", store.append(&s, &inputs, None).await);
    let page = |after: u64, limit: usize| {
        let store = store.clone();
        let s = s.clone();
        async move { seqs(&ok(P, "read_log", store.read_log(&s, after, limit).await)) }
    };
    assert_eq!(page(0, 3).await, [1, 2, 3], "{P}: first page");
    assert_eq!(page(3, 3).await, [4, 5, 6], "{P}: second page");
    assert_eq!(page(6, 3).await, [7, 8, 9], "{P}: third page");
    assert_eq!(page(9, 3).await, [10], "{P}: a short last page");
    assert!(page(10, 3).await.is_empty(), "{P}: nothing after the end");
    assert!(
        page(1_000, 3).await.is_empty(),
        "{P}: nothing far past the end"
    );
    assert!(
        page(0, 0).await.is_empty(),
        "{P}: a limit of 0 returns nothing"
    );
    assert_eq!(
        page(0, usize::MAX).await,
        (1..=10).collect::<Vec<_>>(),
        "{P}: a huge limit returns everything"
    );
    let mut all = Vec::new();
    let mut after = 0;
    loop {
        let records = ok(P, "read_log", store.read_log(&s, after, 4).await);
        let Some(last) = records.last() else { break };
        after = last.seq;
        all.extend(records);
    }
    assert_eq!(
        bodies(&all),
        (1..=10).map(|n| format!("i{n}")).collect::<Vec<_>>(),
        "{P}: paging through the log reads every record once, in order"
    );
}

/// However a store lays its log out (SQLite packs a write's consecutive JSON inputs into one
/// row), every range reads back input by input: from any point, of any length, across the
/// bounds of writes and of rows, with JSON and other bodies mixed; and a batch refused half way
/// leaves the log whole (at most a prefix of the batch in it), the next write continuing it.
pub async fn log_ranges_across_writes(store: Arc<dyn Store>) {
    const P: &str = "log_ranges_across_writes";
    let s = session("ranges");
    let store = &*store;
    let body = |n: u64| match n {
        100 => "not json".to_owned(),
        101 => format!(" {{\"n\":{n}}}"),
        102 => format!("{{\"n\":{n}}}\n"),
        _ => format!(r#"{{"type":"heartbeat","n":{n},"s":"a \"quoted\" ] }} string"}}"#),
    };
    let inputs = |ns: std::ops::RangeInclusive<u64>| -> Vec<NewInput> {
        ns.map(|n| input(n * 10, &body(n))).collect()
    };
    let end = ok(P, "append", store.append(&s, &inputs(1..=300), None).await);
    assert_eq!(end, 300, "{P}: one append of 300 inputs");
    let e = effect(&s, 1, "hire");
    let recorded = Completion {
        id: e.id.clone(),
        state: done("posted"),
        ledger: Vec::new(),
        inputs: inputs(311..=311),
    };
    let batch = [
        Write::Append {
            inputs: inputs(301..=310),
            cursor: None,
        },
        Write::Record {
            effect: e.clone(),
            completion: recorded.clone(),
        },
        Write::Append {
            inputs: inputs(312..=312),
            cursor: None,
        },
    ];
    ok(P, "write_all", store.write_all(&s, &batch).await);
    let end = ok(
        P,
        "append",
        store.append(&s, &inputs(313..=313), None).await,
    );
    assert_eq!(end, 313, "{P}: a lone input after the batch");

    let all = whole_log(store, &s).await;
    let want: Vec<LogRecord> = (1..=313)
        .map(|n| LogRecord {
            seq: n,
            at: Timestamp::from_millis(n * 10),
            body: body(n),
        })
        .collect();
    assert_eq!(
        all, want,
        "{P}: the whole log, input by input, byte for byte"
    );
    let points = [
        0, 1, 2, 63, 64, 98, 99, 100, 101, 102, 103, 200, 255, 256, 257, 299, 300, 301, 305, 309,
        310, 311, 312, 313, 314, 1_000,
    ];
    for after in points {
        for limit in [1, 2, 7, 64, 300, usize::MAX] {
            let got = ok(P, "read_log", store.read_log(&s, after, limit).await);
            let expected: Vec<LogRecord> = want
                .iter()
                .filter(|r| r.seq > after)
                .take(limit)
                .cloned()
                .collect();
            assert_eq!(got, expected, "{P}: read_log(after {after}, limit {limit})");
        }
    }

    // A batch refused half way (its record's effect is in the outbox already) leaves at most
    // a prefix of its writes (SQLite: none), and the log whole: the next write continues it.
    let refused = [
        Write::Append {
            inputs: inputs(314..=320),
            cursor: None,
        },
        Write::Record {
            effect: e.clone(),
            completion: recorded,
        },
    ];
    assert!(
        store.write_all(&s, &refused).await.is_err(),
        "{P}: recording an effect the outbox has is refused"
    );
    let after = whole_log(store, &s).await;
    assert_eq!(
        after[..want.len()],
        want[..],
        "{P}: the refused batch changed nothing before it"
    );
    let kept: Vec<LogRecord> = (314..=320)
        .map(|n| LogRecord {
            seq: n,
            at: Timestamp::from_millis(n * 10),
            body: body(n),
        })
        .take(after.len() - want.len())
        .collect();
    assert_eq!(
        after[want.len()..],
        kept[..],
        "{P}: what the refused batch left is a prefix of it"
    );
    let end = after.len() as u64;
    let next = ok(
        P,
        "append",
        store.append(&s, &inputs(400..=402), None).await,
    );
    assert_eq!(next, end + 3, "{P}: the next write continues the log");
    let tail = ok(P, "read_log", store.read_log(&s, end - 1, usize::MAX).await);
    assert_eq!(
        seqs(&tail),
        [end, end + 1, end + 2, end + 3],
        "{P}: and reads back after it"
    );
    assert_eq!(bodies(&tail)[1..], [body(400), body(401), body(402)]);
}

/// An append can set an observer cursor in the same write; the cursor belongs to its session
/// and name, and an append of no inputs can still move it.
pub async fn append_with_cursor(store: Arc<dyn Store>) {
    const P: &str = "append_with_cursor";
    let (s, other) = (session("cursor"), session("cursor-other"));
    let store = &*store;
    assert_eq!(
        ok(P, "cursor", store.cursor(&s, "obs").await),
        None,
        "{P}: no cursor before one is set"
    );
    let c1 = Cursor("page-1".to_owned());
    let end = ok(
        P,
        "append",
        store.append(&s, &[input(1, "x")], Some(("obs", &c1))).await,
    );
    assert_eq!(end, 1, "{P}: the append returns its last sequence number");
    assert_eq!(
        ok(P, "cursor", store.cursor(&s, "obs").await),
        Some(c1.clone()),
        "{P}: the cursor is set"
    );
    assert_eq!(
        bodies(&whole_log(store, &s).await),
        ["x"],
        "{P}: and the input is logged"
    );

    let c2 = Cursor("page-2".to_owned());
    let end = ok(P, "append", store.append(&s, &[], Some(("obs", &c2))).await);
    assert_eq!(end, 1, "{P}: a cursor-only append returns the log's end");
    assert_eq!(
        ok(P, "cursor", store.cursor(&s, "obs").await),
        Some(c2.clone()),
        "{P}: a cursor-only append moves the cursor"
    );
    assert_eq!(
        ok(P, "cursor", store.cursor(&s, "other-name").await),
        None,
        "{P}: cursors are per name"
    );
    assert_eq!(
        ok(P, "cursor", store.cursor(&other, "obs").await),
        None,
        "{P}: cursors are per session"
    );
    ok(P, "append", store.append(&s, &[input(2, "y")], None).await);
    assert_eq!(
        ok(P, "cursor", store.cursor(&s, "obs").await),
        Some(c2),
        "{P}: an append without a cursor leaves it alone"
    );
}

/// A reader never sees a cursor ahead of the inputs written with it: the cursor and its
/// inputs become visible together.
pub async fn cursor_is_visible_with_its_inputs(store: Arc<dyn Store>) {
    const P: &str = "cursor_is_visible_with_its_inputs";
    const ROUNDS: u64 = 100;
    let s = session("cursor-atomic");
    let stop = Arc::new(AtomicBool::new(false));
    let checks = Arc::new(AtomicU64::new(0));
    let reader = {
        let (store, s, stop, checks) = (store.clone(), s.clone(), stop.clone(), checks.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Acquire) {
                // The cursor names how many inputs were appended with it; read it first, so
                // the log read after it must hold at least that many.
                let cursor = ok(P, "cursor", store.cursor(&s, "obs").await);
                let log = ok(P, "read_log", store.read_log(&s, 0, usize::MAX).await);
                if let Some(Cursor(c)) = cursor {
                    let promised: usize = c.parse().expect("the writer writes numbers");
                    assert!(
                        log.len() >= promised,
                        "{P}: cursor {promised} is visible before its inputs (log has {})",
                        log.len()
                    );
                }
                checks.fetch_add(1, Ordering::AcqRel);
                tokio::task::yield_now().await;
            }
        })
    };
    reader_started(&checks, &reader).await;
    let mut appended = 0u64;
    for round in 0..ROUNDS {
        let inputs: Vec<NewInput> = (0..=round % 3)
            .map(|k| input(round, &format!("r{round}-{k}")))
            .collect();
        appended += inputs.len() as u64;
        let cursor = Cursor(appended.to_string());
        let end = ok(
            P,
            "append",
            store.append(&s, &inputs, Some(("obs", &cursor))).await,
        );
        assert_eq!(end, appended, "{P}: append returns the log's end");
        tokio::task::yield_now().await;
    }
    stop.store(true, Ordering::Release);
    reader
        .await
        .unwrap_or_else(|e| panic!("{P}: reader panicked: {e}"));
}

/// Waits until a reader task has made its first check (or died), so that it runs beside the
/// writes.
async fn reader_started(checks: &AtomicU64, reader: &tokio::task::JoinHandle<()>) {
    while checks.load(Ordering::Acquire) == 0 && !reader.is_finished() {
        tokio::task::yield_now().await;
    }
}

// ----- snapshots -------------------------------------------------------------------------------

/// A saved snapshot replaces the previous one; one past the log's end is refused and changes
/// nothing; snapshots are per session.
pub async fn snapshots(store: Arc<dyn Store>) {
    const P: &str = "snapshots";
    let (s, other) = (session("snap"), session("snap-other"));
    let store = &*store;
    assert_eq!(
        ok(P, "load_snapshot", store.load_snapshot(&s).await),
        None,
        "{P}: no snapshot before one is saved"
    );
    let at = |seq: u64, body: &str| StoredSnapshot {
        seq,
        body: body.to_owned(),
    };
    ok(
        P,
        "a snapshot at 0 on an empty log",
        store.save_snapshot(&s, &at(0, "fresh")).await,
    );
    assert_eq!(
        ok(P, "load_snapshot", store.load_snapshot(&s).await),
        Some(at(0, "fresh")),
        "{P}: a snapshot of a fresh machine"
    );
    let inputs: Vec<NewInput> = (1..=3).map(|n| input(n, "i")).collect();
    ok(P, "append", store.append(&s, &inputs, None).await);
    ok(
        P,
        "save_snapshot",
        store.save_snapshot(&s, &at(2, "two")).await,
    );
    assert_eq!(
        ok(P, "load_snapshot", store.load_snapshot(&s).await),
        Some(at(2, "two")),
        "{P}: the saved snapshot loads back"
    );
    ok(
        P,
        "save_snapshot",
        store.save_snapshot(&s, &at(3, "three")).await,
    );
    assert_eq!(
        ok(P, "load_snapshot", store.load_snapshot(&s).await),
        Some(at(3, "three")),
        "{P}: a new snapshot replaces the old one"
    );
    assert!(
        store.save_snapshot(&s, &at(4, "future")).await.is_err(),
        "{P}: a snapshot past the log's end (3) is refused"
    );
    assert_eq!(
        ok(P, "load_snapshot", store.load_snapshot(&s).await),
        Some(at(3, "three")),
        "{P}: a refused snapshot changes nothing"
    );
    assert_eq!(
        ok(P, "load_snapshot", store.load_snapshot(&other).await),
        None,
        "{P}: snapshots are per session"
    );
    assert!(
        store.save_snapshot(&other, &at(1, "x")).await.is_err(),
        "{P}: another session's log is empty, so a snapshot at 1 is past its end"
    );
    assert_eq!(
        seqs(&whole_log(store, &s).await),
        [1, 2, 3],
        "{P}: snapshots leave the log alone"
    );
}

// ----- the outbox ------------------------------------------------------------------------------

/// Enqueueing an effect that is already in the outbox, in any state, leaves it as it is.
pub async fn enqueue_is_idempotent(store: Arc<dyn Store>) {
    const P: &str = "enqueue_is_idempotent";
    let s = session("enqueue");
    let store = &*store;
    let (e1, e2, e3) = (
        effect(&s, 1, "one"),
        effect(&s, 2, "two"),
        effect(&s, 3, "three"),
    );
    ok(
        P,
        "enqueue",
        store.enqueue(&s, &[e1.clone(), e2.clone()]).await,
    );
    let pending = ok(P, "pending", store.pending(&s).await);
    assert_eq!(
        pending,
        [
            entry(&e1, OutboxState::Pending),
            entry(&e2, OutboxState::Pending)
        ],
        "{P}: enqueued effects are pending"
    );
    let done_e2 = Completion {
        id: e2.id.clone(),
        state: done("posted"),
        ledger: Vec::new(),
        inputs: Vec::new(),
    };
    assert!(
        ok(P, "complete", store.complete(&s, &done_e2).await),
        "{P}: completing a pending effect returns true"
    );
    // Again, with other bodies, plus a new one: only the new one is added.
    let again = [
        effect(&s, 1, "changed"),
        effect(&s, 2, "changed"),
        e3.clone(),
    ];
    ok(P, "enqueue again", store.enqueue(&s, &again).await);
    assert_eq!(
        ok(P, "effect", store.effect(&e1.id).await),
        Some(entry(&e1, OutboxState::Pending)),
        "{P}: a pending effect enqueued again keeps its body"
    );
    assert_eq!(
        ok(P, "effect", store.effect(&e2.id).await),
        Some(entry(&e2, done("posted"))),
        "{P}: a done effect enqueued again stays done, with its body"
    );
    assert_eq!(
        ok(P, "pending", store.pending(&s).await),
        [
            entry(&e1, OutboxState::Pending),
            entry(&e3, OutboxState::Pending)
        ],
        "{P}: pending after enqueueing again"
    );
    ok(P, "enqueue nothing", store.enqueue(&s, &[]).await);
    assert_eq!(
        ok(P, "pending", store.pending(&s).await).len(),
        2,
        "{P}: enqueueing nothing changes nothing"
    );
    assert!(
        whole_log(store, &s).await.is_empty(),
        "{P}: the outbox leaves the log alone"
    );
}

fn entry(e: &NewEffect, state: OutboxState) -> OutboxEntry {
    OutboxEntry {
        id: e.id.clone(),
        body: e.body.clone(),
        state,
    }
}

/// `complete` records the effect's state, its ledger entries and its inputs together; the
/// inputs continue the session's log; the ledger reads back in the order written.
pub async fn complete_is_atomic(store: Arc<dyn Store>) {
    const P: &str = "complete_is_atomic";
    let s = session("complete");
    let store = &*store;
    ok(
        P,
        "append",
        store
            .append(&s, &[input(1, "start"), input(2, "arrive")], None)
            .await,
    );
    let (e1, e2, e3) = (
        effect(&s, 1, "hire"),
        effect(&s, 2, "pay"),
        effect(&s, 3, "pay"),
    );
    ok(
        P,
        "enqueue",
        store
            .enqueue(&s, &[e1.clone(), e2.clone(), e3.clone()])
            .await,
    );

    let hired = Completion {
        id: e1.id.clone(),
        state: done("hit-1"),
        ledger: Vec::new(),
        inputs: vec![input(3, "hire_posted")],
    };
    assert!(
        ok(P, "complete", store.complete(&s, &hired).await),
        "{P}: fresh completion"
    );
    let paid = Completion {
        id: e2.id.clone(),
        state: done("paid"),
        ledger: vec![
            payment(&e2.id, "w1", 50, true, 4),
            payment(&e2.id, "w2", 25, true, 4),
        ],
        inputs: vec![input(4, "paid-1"), input(4, "paid-2")],
    };
    assert!(
        ok(P, "complete", store.complete(&s, &paid).await),
        "{P}: fresh completion"
    );
    let failed = Completion {
        id: e3.id.clone(),
        state: OutboxState::Failed {
            error: "insufficient funds".to_owned(),
        },
        ledger: vec![payment(&e3.id, "w3", 75, false, 5)],
        inputs: Vec::new(),
    };
    assert!(
        ok(P, "complete", store.complete(&s, &failed).await),
        "{P}: fresh completion"
    );

    assert_eq!(
        ok(P, "effect", store.effect(&e1.id).await),
        Some(entry(&e1, done("hit-1"))),
        "{P}: the effect is done with its result"
    );
    assert_eq!(
        ok(P, "effect", store.effect(&e3.id).await),
        Some(entry(
            &e3,
            OutboxState::Failed {
                error: "insufficient funds".to_owned()
            }
        )),
        "{P}: the effect failed with its error"
    );
    assert!(
        ok(P, "pending", store.pending(&s).await).is_empty(),
        "{P}: completed effects are not pending"
    );
    let log = whole_log(store, &s).await;
    assert_eq!(
        seqs(&log),
        [1, 2, 3, 4, 5],
        "{P}: completion inputs continue the log"
    );
    assert_eq!(
        bodies(&log),
        ["start", "arrive", "hire_posted", "paid-1", "paid-2"],
        "{P}: completion inputs are logged in order"
    );
    assert_eq!(
        ok(P, "ledger", store.ledger(&s).await),
        [paid.ledger.clone(), failed.ledger.clone()].concat(),
        "{P}: the ledger holds every entry, in the order written, failed payments too"
    );
    let end = ok(
        P,
        "append",
        store.append(&s, &[input(6, "next")], None).await,
    );
    assert_eq!(end, 6, "{P}: appends continue after completion inputs");
}

/// Completing an effect that is no longer pending returns `Ok(false)` and writes nothing:
/// not its state, not its ledger entries, not its inputs.
pub async fn complete_twice_changes_nothing(store: Arc<dyn Store>) {
    const P: &str = "complete_twice_changes_nothing";
    let s = session("complete-twice");
    let store = &*store;
    let e1 = effect(&s, 1, "pay");
    ok(
        P,
        "enqueue",
        store.enqueue(&s, std::slice::from_ref(&e1)).await,
    );
    let first = Completion {
        id: e1.id.clone(),
        state: done("paid"),
        ledger: vec![payment(&e1.id, "w1", 50, true, 1)],
        inputs: vec![input(1, "paid")],
    };
    assert!(
        ok(P, "complete", store.complete(&s, &first).await),
        "{P}: the first completion"
    );
    for second in [
        first.clone(),
        Completion {
            id: e1.id.clone(),
            state: OutboxState::Failed {
                error: "later".to_owned(),
            },
            ledger: vec![payment(&e1.id, "w1", 99, false, 2)],
            inputs: vec![input(2, "again"), input(2, "and again")],
        },
    ] {
        assert!(
            !ok(P, "complete again", store.complete(&s, &second).await),
            "{P}: a second completion returns false"
        );
        assert_eq!(
            ok(P, "effect", store.effect(&e1.id).await),
            Some(entry(&e1, done("paid"))),
            "{P}: a second completion leaves the state"
        );
        assert_eq!(
            ok(P, "ledger", store.ledger(&s).await),
            first.ledger,
            "{P}: a second completion adds no ledger entry"
        );
        assert_eq!(
            bodies(&whole_log(store, &s).await),
            ["paid"],
            "{P}: a second completion logs no input"
        );
    }
}

/// Completing an effect that was never enqueued is `StoreError::UnknownEffect` and writes
/// nothing.
pub async fn complete_unknown_effect(store: Arc<dyn Store>) {
    const P: &str = "complete_unknown_effect";
    let (s, other) = (session("unknown"), session("unknown-other"));
    let store = &*store;
    ok(
        P,
        "append",
        store.append(&s, &[input(1, "start")], None).await,
    );
    ok(
        P,
        "enqueue",
        store.enqueue(&s, &[effect(&s, 1, "one")]).await,
    );
    ok(
        P,
        "enqueue",
        store.enqueue(&other, &[effect(&other, 2, "x")]).await,
    );
    let unknown_ids = [
        EffectId::new(s.clone(), 99),
        // The sequence number of another session's effect.
        EffectId::new(s.clone(), 2),
    ];
    for id in unknown_ids {
        let completion = Completion {
            id: id.clone(),
            state: done("paid"),
            ledger: vec![payment(&id, "w1", 50, true, 2)],
            inputs: vec![input(2, "paid")],
        };
        match store.complete(&s, &completion).await {
            Err(StoreError::UnknownEffect(reported)) => {
                assert_eq!(reported, id, "{P}: the error names the effect")
            }
            other => panic!("{P}: completing unknown {id} gave {other:?}, not UnknownEffect"),
        }
        assert_eq!(
            ok(P, "effect", store.effect(&id).await),
            None,
            "{P}: the unknown effect was not created"
        );
    }
    assert!(
        ok(P, "ledger", store.ledger(&s).await).is_empty(),
        "{P}: no ledger entry was written"
    );
    assert_eq!(
        bodies(&whole_log(store, &s).await),
        ["start"],
        "{P}: no input was logged"
    );
    assert_eq!(
        ok(P, "pending", store.pending(&s).await).len(),
        1,
        "{P}: the outbox is as it was"
    );
    assert_eq!(
        ok(P, "pending", store.pending(&other).await).len(),
        1,
        "{P}: the other session's outbox is as it was"
    );
}

/// A reader sees an effect's completion whole or not at all: done state, ledger entry and
/// fed-back input appear together.
pub async fn completion_is_visible_all_at_once(store: Arc<dyn Store>) {
    const P: &str = "completion_is_visible_all_at_once";
    const EFFECTS: u64 = 60;
    let s = session("complete-visible");
    let effects: Vec<NewEffect> = (1..=EFFECTS).map(|n| effect(&s, n, "pay")).collect();
    ok(P, "enqueue", store.enqueue(&s, &effects).await);
    let stop = Arc::new(AtomicBool::new(false));
    let checks = Arc::new(AtomicU64::new(0));
    let reader = {
        let (store, s, stop, checks) = (store.clone(), s.clone(), stop.clone(), checks.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Acquire) {
                // Done effects read first must have their entries in the ledger and log read
                // after; and inputs read first must have their effects done when read after.
                let pending = ok(P, "pending", store.pending(&s).await).len() as u64;
                let ledger = ok(P, "ledger", store.ledger(&s).await).len() as u64;
                let log = ok(P, "read_log", store.read_log(&s, 0, usize::MAX).await).len() as u64;
                let done_before = EFFECTS - pending;
                assert!(
                    ledger >= done_before && log >= done_before,
                    "{P}: {done_before} effects done but only {ledger} ledger entries and \
                     {log} inputs visible after"
                );
                let log = ok(P, "read_log", store.read_log(&s, 0, usize::MAX).await).len() as u64;
                let pending = ok(P, "pending", store.pending(&s).await).len() as u64;
                assert!(
                    EFFECTS - pending >= log,
                    "{P}: {log} completion inputs visible but only {} effects done after",
                    EFFECTS - pending
                );
                checks.fetch_add(1, Ordering::AcqRel);
                tokio::task::yield_now().await;
            }
        })
    };
    reader_started(&checks, &reader).await;
    for e in &effects {
        let completion = Completion {
            id: e.id.clone(),
            state: done("paid"),
            ledger: vec![payment(&e.id, "w", 1, true, e.id.seq)],
            inputs: vec![input(e.id.seq, "paid")],
        };
        assert!(
            ok(P, "complete", store.complete(&s, &completion).await),
            "{P}: fresh completion"
        );
        tokio::task::yield_now().await;
    }
    stop.store(true, Ordering::Release);
    reader
        .await
        .unwrap_or_else(|e| panic!("{P}: reader panicked: {e}"));
    assert_eq!(
        ok(P, "ledger", store.ledger(&s).await).len() as u64,
        EFFECTS,
        "{P}: every completion wrote its ledger entry"
    );
}

/// `pending` lists a session's pending effects by sequence number (numerically), whatever
/// the order they were enqueued in.
pub async fn pending_in_id_order(store: Arc<dyn Store>) {
    const P: &str = "pending_in_id_order";
    let (s, other) = (session("order"), session("order-other"));
    let store = &*store;
    for batch in [vec![100, 9], vec![2, 10], vec![1, 20, 3]] {
        let effects: Vec<NewEffect> = batch
            .iter()
            .map(|&n| effect(&s, n, &format!("e{n}")))
            .collect();
        ok(P, "enqueue", store.enqueue(&s, &effects).await);
    }
    ok(
        P,
        "enqueue",
        store.enqueue(&other, &[effect(&other, 5, "o5")]).await,
    );
    let done_10 = Completion {
        id: EffectId::new(s.clone(), 10),
        state: done("ok"),
        ledger: Vec::new(),
        inputs: Vec::new(),
    };
    ok(P, "complete", store.complete(&s, &done_10).await);
    let pending: Vec<u64> = ok(P, "pending", store.pending(&s).await)
        .iter()
        .map(|e| e.id.seq)
        .collect();
    assert_eq!(
        pending,
        [1, 2, 3, 9, 20, 100],
        "{P}: pending effects in id order, without done ones or other sessions'"
    );
    assert!(
        ok(P, "pending", store.pending(&session("none")).await).is_empty(),
        "{P}: a session without effects has none pending"
    );
}

/// `effect(id)` finds an effect in any state by its id, and nothing for an id never
/// enqueued.
pub async fn effect_lookup(store: Arc<dyn Store>) {
    const P: &str = "effect_lookup";
    let (s, other) = (session("lookup"), session("lookup-other"));
    let store = &*store;
    let (e1, e2, e3) = (
        effect(&s, 1, "one"),
        effect(&s, 2, "two"),
        effect(&s, 3, "three"),
    );
    ok(
        P,
        "enqueue",
        store
            .enqueue(&s, &[e1.clone(), e2.clone(), e3.clone()])
            .await,
    );
    let finish = |e: &NewEffect, state: OutboxState| Completion {
        id: e.id.clone(),
        state,
        ledger: Vec::new(),
        inputs: Vec::new(),
    };
    ok(
        P,
        "complete",
        store.complete(&s, &finish(&e2, done("r"))).await,
    );
    let failed = OutboxState::Failed {
        error: "e".to_owned(),
    };
    ok(
        P,
        "complete",
        store.complete(&s, &finish(&e3, failed.clone())).await,
    );
    for (e, state) in [(&e1, OutboxState::Pending), (&e2, done("r")), (&e3, failed)] {
        assert_eq!(
            ok(P, "effect", store.effect(&e.id).await),
            Some(entry(e, state)),
            "{P}: effect {} is found in its state",
            e.id
        );
    }
    for id in [EffectId::new(s.clone(), 4), EffectId::new(other.clone(), 1)] {
        assert_eq!(
            ok(P, "effect", store.effect(&id).await),
            None,
            "{P}: {id} was never enqueued"
        );
    }
}

// ----- metadata --------------------------------------------------------------------------------

/// Metadata values are per session and key; setting one again replaces it.
pub async fn metadata(store: Arc<dyn Store>) {
    const P: &str = "metadata";
    let (s, other) = (session("meta"), session("meta-other"));
    let store = &*store;
    assert_eq!(
        ok(P, "meta", store.meta(&s, "config").await),
        None,
        "{P}: unset"
    );
    ok(
        P,
        "put_meta",
        store.put_meta(&s, "config", "{\"a\":1}").await,
    );
    ok(P, "put_meta", store.put_meta(&s, "name", "pilot").await);
    assert_eq!(
        ok(P, "meta", store.meta(&s, "config").await).as_deref(),
        Some("{\"a\":1}"),
        "{P}: a value reads back"
    );
    ok(
        P,
        "put_meta",
        store.put_meta(&s, "config", "{\"a\":2}").await,
    );
    assert_eq!(
        ok(P, "meta", store.meta(&s, "config").await).as_deref(),
        Some("{\"a\":2}"),
        "{P}: setting again replaces"
    );
    assert_eq!(
        ok(P, "meta", store.meta(&s, "name").await).as_deref(),
        Some("pilot"),
        "{P}: other keys are untouched"
    );
    assert_eq!(
        ok(P, "meta", store.meta(&other, "config").await),
        None,
        "{P}: metadata is per session"
    );
    ok(P, "put_meta", store.put_meta(&s, "empty", "").await);
    assert_eq!(
        ok(P, "meta", store.meta(&s, "empty").await).as_deref(),
        Some(""),
        "{P}: an empty value is a value"
    );
}

// ----- concurrency -----------------------------------------------------------------------------

/// Many tasks appending at once to a few sessions: every input is logged exactly once, each
/// session's sequence numbers are 1.. without gaps, each task's inputs keep their order, and
/// each append returns the sequence number its last input got.
pub async fn concurrent_appends(store: Arc<dyn Store>) {
    const P: &str = "concurrent_appends";
    const TASKS: usize = 32;
    const SESSIONS: usize = 4;
    const APPENDS: u64 = 20;
    let sessions: Vec<SessionId> = (0..SESSIONS)
        .map(|n| session(&format!("concurrent-{n}")))
        .collect();
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let store = store.clone();
        let s = sessions[t % SESSIONS].clone();
        tasks.push(tokio::spawn(async move {
            let mut returned = Vec::new();
            for n in 0..APPENDS {
                // Alternate one and two inputs per append.
                let inputs: Vec<NewInput> = (0..1 + n % 2)
                    .map(|k| input(n, &format!("t{t}-n{n}-k{k}")))
                    .collect();
                let end = ok(P, "append", store.append(&s, &inputs, None).await);
                returned.push((end, inputs.last().map(|i| i.body.clone())));
                if n % 4 == 0 {
                    tokio::task::yield_now().await;
                }
            }
            (t, returned)
        }));
    }
    let mut by_task = HashMap::new();
    for task in tasks {
        let (t, returned) = task
            .await
            .unwrap_or_else(|e| panic!("{P}: an appending task panicked: {e}"));
        by_task.insert(t, returned);
    }
    let per_task = APPENDS + APPENDS / 2; // inputs appended by one task
    for (n, s) in sessions.iter().enumerate() {
        let log = whole_log(&*store, s).await;
        let tasks_here: Vec<usize> = (0..TASKS).filter(|t| t % SESSIONS == n).collect();
        let expected = tasks_here.len() as u64 * per_task;
        assert_eq!(
            log.len() as u64,
            expected,
            "{P}: session {s} lost or duplicated inputs"
        );
        assert_eq!(
            seqs(&log),
            (1..=expected).collect::<Vec<_>>(),
            "{P}: session {s}'s sequence numbers are 1.. without gaps"
        );
        for t in tasks_here {
            let prefix = format!("t{t}-");
            let mine: Vec<&str> = log
                .iter()
                .map(|r| r.body.as_str())
                .filter(|b| b.starts_with(&prefix))
                .collect();
            let wanted: Vec<String> = (0..APPENDS)
                .flat_map(|n| (0..1 + n % 2).map(move |k| format!("t{t}-n{n}-k{k}")))
                .collect();
            assert_eq!(
                mine, wanted,
                "{P}: task {t}'s inputs are logged once, in order"
            );
            for (end, last) in &by_task[&t] {
                let at = usize::try_from(*end).expect("small") - 1;
                assert_eq!(
                    Some(&log[at].body),
                    last.as_ref(),
                    "{P}: append returned {end}, the sequence number of its last input"
                );
            }
        }
    }
}

// ----- batches and leases ------------------------------------------------------------------------

/// `commit` appends its inputs after the log's end, sets its cursors, enqueues its effects as
/// pending and its journal as done, and saves its snapshot; ids already in the outbox stay as
/// they are; an empty commit changes nothing.
pub async fn commit_writes_everything(store: Arc<dyn Store>) {
    const P: &str = "commit_writes_everything";
    let s = session("commit");
    let store = &*store;
    ok(
        P,
        "append",
        store.append(&s, &[input(1, "first")], None).await,
    );
    let (e1, j2, e3) = (
        effect(&s, 1, "accept"),
        effect(&s, 2, "answer"),
        effect(&s, 3, "bonus"),
    );
    let commit = Commit {
        inputs: vec![input(2, "second"), input(3, "third")],
        cursors: vec![
            ("stage-a".into(), Cursor("a-1".into())),
            ("stage-b".into(), Cursor("b-1".into())),
        ],
        effects: vec![e1.clone(), e3.clone()],
        journal: vec![j2.clone()],
        snapshot: Some(StoredSnapshot {
            seq: 3,
            body: "state at 3".into(),
        }),
    };
    assert_eq!(
        ok(P, "commit", store.commit(&s, &commit).await),
        3,
        "{P}: commit returns the log's last sequence number"
    );
    let log = whole_log(store, &s).await;
    assert_eq!(seqs(&log), [1, 2, 3], "{P}: inputs continue the log");
    assert_eq!(bodies(&log), ["first", "second", "third"], "{P}: bodies");
    for (name, want) in [("stage-a", "a-1"), ("stage-b", "b-1")] {
        assert_eq!(
            ok(P, "cursor", store.cursor(&s, name).await),
            Some(Cursor(want.into())),
            "{P}: cursor {name}"
        );
    }
    assert_eq!(
        ok(P, "pending", store.pending(&s).await),
        [
            entry(&e1, OutboxState::Pending),
            entry(&e3, OutboxState::Pending)
        ],
        "{P}: effects are pending, the journal is not"
    );
    assert_eq!(
        ok(P, "effect", store.effect(&j2.id).await),
        Some(entry(&j2, done(JOURNAL_RESULT))),
        "{P}: a journal entry is done"
    );
    assert_eq!(
        ok(P, "snapshot", store.load_snapshot(&s).await).map(|n| n.seq),
        Some(3),
        "{P}: the snapshot is saved"
    );
    // Again after a crash: the same ids change nothing in the outbox.
    let done_e1 = Completion {
        id: e1.id.clone(),
        state: done("accepted"),
        ledger: Vec::new(),
        inputs: Vec::new(),
    };
    ok(P, "complete", store.complete(&s, &done_e1).await);
    let again = Commit {
        effects: vec![effect(&s, 1, "changed"), effect(&s, 2, "changed")],
        journal: vec![effect(&s, 3, "changed")],
        ..Commit::default()
    };
    assert_eq!(ok(P, "commit again", store.commit(&s, &again).await), 3);
    assert_eq!(
        ok(P, "effect", store.effect(&e1.id).await),
        Some(entry(&e1, done("accepted"))),
        "{P}: a done effect committed again stays done"
    );
    assert_eq!(
        ok(P, "pending", store.pending(&s).await),
        [entry(&e3, OutboxState::Pending)],
        "{P}: ids already in the outbox keep their state and body"
    );
    assert_eq!(
        ok(
            P,
            "empty commit",
            store.commit(&s, &Commit::default()).await
        ),
        3,
        "{P}: an empty commit returns the log's end"
    );
}

/// `write_all` does what its writes would do one by one, in order: an effect enqueued and
/// completed in one batch is done, a recorded effect is in the outbox finished, a completion's
/// inputs continue the log between the appends around it, and a completion of an effect that is
/// finished already (or a record of one the outbox has) is refused as corrupt, paying and
/// logging nothing more.
pub async fn write_all_in_order(store: Arc<dyn Store>) {
    const P: &str = "write_all_in_order";
    let s = session("write-all");
    let store = &*store;
    let e1 = effect(&s, 1, "hire");
    let posted = Completion {
        id: e1.id.clone(),
        state: done("posted"),
        ledger: vec![payment(&e1.id, "w1", 5, true, 3)],
        inputs: vec![input(3, "posted")],
    };
    let e2 = effect(&s, 2, "bonus");
    let paid = Completion {
        id: e2.id.clone(),
        state: done("paid"),
        ledger: vec![payment(&e2.id, "w2", 7, true, 5)],
        inputs: vec![input(5, "bonus paid")],
    };
    let batch = [
        Write::Append {
            inputs: vec![input(1, "first"), input(2, "second")],
            cursor: Some(("obs".into(), Cursor("c-1".into()))),
        },
        Write::Enqueue(vec![e1.clone()]),
        Write::Complete(posted.clone()),
        Write::Append {
            inputs: vec![input(4, "fourth")],
            cursor: None,
        },
        Write::Record {
            effect: e2.clone(),
            completion: paid.clone(),
        },
        Write::Snapshot(StoredSnapshot {
            seq: 5,
            body: "state at 5".into(),
        }),
        Write::Meta {
            key: "k".into(),
            value: "v".into(),
        },
    ];
    ok(P, "write_all", store.write_all(&s, &batch).await);
    let log = whole_log(store, &s).await;
    assert_eq!(seqs(&log), [1, 2, 3, 4, 5], "{P}: one log, no gap");
    assert_eq!(
        bodies(&log),
        ["first", "second", "posted", "fourth", "bonus paid"],
        "{P}: a completion's inputs sit where it was written"
    );
    assert_eq!(
        ok(P, "effect", store.effect(&e1.id).await),
        Some(entry(&e1, done("posted"))),
        "{P}: enqueued and completed in one batch"
    );
    assert_eq!(
        ok(P, "effect", store.effect(&e2.id).await),
        Some(entry(&e2, done("paid"))),
        "{P}: a recorded effect is in the outbox, finished"
    );
    let both: Vec<LedgerEntry> = posted.ledger.iter().chain(&paid.ledger).cloned().collect();
    assert_eq!(ok(P, "ledger", store.ledger(&s).await), both);
    assert_eq!(
        ok(P, "cursor", store.cursor(&s, "obs").await),
        Some(Cursor("c-1".into()))
    );
    assert_eq!(
        ok(P, "snapshot", store.load_snapshot(&s).await).map(|n| n.seq),
        Some(5)
    );
    assert_eq!(
        ok(P, "meta", store.meta(&s, "k").await).as_deref(),
        Some("v")
    );
    // Batches that complete a finished effect, or record one the outbox has, are refused.
    for again in [
        Write::Complete(posted.clone()),
        Write::Record {
            effect: e2.clone(),
            completion: paid.clone(),
        },
    ] {
        assert!(
            matches!(
                store.write_all(&s, &[again]).await,
                Err(StoreError::Corrupt(_))
            ),
            "{P}: finishing a finished effect again in a batch is refused as corrupt"
        );
    }
    assert_eq!(
        ok(P, "ledger", store.ledger(&s).await),
        both,
        "{P}: the refused writes paid nothing"
    );
    assert_eq!(
        whole_log(store, &s).await.len(),
        5,
        "{P}: nor logged anything"
    );
}

/// A commit whose snapshot lies past the log's end (after its own inputs) writes nothing.
pub async fn commit_refuses_a_snapshot_past_the_end(store: Arc<dyn Store>) {
    const P: &str = "commit_refuses_a_snapshot_past_the_end";
    let s = session("commit-refused");
    let store = &*store;
    let bad = Commit {
        inputs: vec![input(1, "one")],
        cursors: vec![("c".into(), Cursor("moved".into()))],
        effects: vec![effect(&s, 1, "accept")],
        journal: vec![effect(&s, 2, "answer")],
        snapshot: Some(StoredSnapshot {
            seq: 2,
            body: "too far".into(),
        }),
    };
    assert!(
        store.commit(&s, &bad).await.is_err(),
        "{P}: the commit is refused"
    );
    assert!(whole_log(store, &s).await.is_empty(), "{P}: no input");
    assert_eq!(
        ok(P, "cursor", store.cursor(&s, "c").await),
        None,
        "{P}: no cursor"
    );
    assert!(
        ok(P, "pending", store.pending(&s).await).is_empty(),
        "{P}: no effect"
    );
    assert_eq!(
        ok(
            P,
            "effect",
            store.effect(&EffectId::new(s.clone(), 2)).await
        ),
        None,
        "{P}: no journal entry"
    );
    assert_eq!(
        ok(P, "snapshot", store.load_snapshot(&s).await),
        None,
        "{P}: no snapshot"
    );
}

/// A lease is held by one owner until it expires; its owner renews it; another owner takes
/// it over once it has expired; only the owner releases it; names are independent.
pub async fn leases(store: Arc<dyn Store>) {
    const P: &str = "leases";
    let store = &*store;
    let t = Timestamp::from_millis;
    assert_eq!(
        ok(
            P,
            "acquire",
            store.acquire_lease("run", "alice", t(1_000), 500).await
        ),
        LeaseOutcome::Acquired { expires: t(1_500) },
        "{P}: a free lease is acquired"
    );
    assert_eq!(
        ok(
            P,
            "acquire",
            store.acquire_lease("run", "bob", t(1_200), 500).await
        ),
        LeaseOutcome::Held {
            owner: "alice".into(),
            expires: t(1_500)
        },
        "{P}: a held lease is refused to another owner"
    );
    assert_eq!(
        ok(
            P,
            "acquire",
            store.acquire_lease("other", "bob", t(1_200), 500).await
        ),
        LeaseOutcome::Acquired { expires: t(1_700) },
        "{P}: another name is another lease"
    );
    assert_eq!(
        ok(
            P,
            "renew",
            store.acquire_lease("run", "alice", t(1_400), 500).await
        ),
        LeaseOutcome::Acquired { expires: t(1_900) },
        "{P}: the owner renews"
    );
    assert!(
        !ok(P, "release", store.release_lease("run", "bob").await),
        "{P}: only the owner releases"
    );
    assert_eq!(
        ok(
            P,
            "take over",
            store.acquire_lease("run", "bob", t(1_900), 500).await
        ),
        LeaseOutcome::Acquired { expires: t(2_400) },
        "{P}: an expired lease is taken over"
    );
    assert!(
        ok(P, "release", store.release_lease("run", "bob").await),
        "{P}: the owner releases"
    );
    assert_eq!(
        ok(
            P,
            "acquire",
            store.acquire_lease("run", "alice", t(2_000), 500).await
        ),
        LeaseOutcome::Acquired { expires: t(2_500) },
        "{P}: a released lease is free"
    );
}
