//! Durability: a `Competition` logs every accepted input in its store before applying it, so a
//! restart — dropping it and opening the same session of the same store — loses no deferred
//! answer and scores identically; so does a crash at any store write.

use std::sync::Arc;

use crowdcore::model::SessionId;
use crowdcore::score::{Competition, CompetitionError, Event, Refused, Scorers};
use crowdcore::store::{FailMode, FailingStore, MemoryStore, NewInput, Store};
use crowdcore::{Timestamp, WorkerId};

use crate::support::{board_lines, lines, parse, scorers};

/// Deferred answers in three kinds, a custom scorer, a deadline that refuses one answer, and
/// truths that arrive late.
const SCRIPT: &str = r#"
    0 kind k accuracy
    0 kind p log_loss
    0 kind h custom halves higher
    0 post t1 k deadline=5000
    0 post t2 k
    0 post q1 p
    0 post h1 h
    1 submit t1 ann cat
    1 submit t1 bob dog
    2 submit t2 ann dog
    2 submit q1 ann {"cat": 0.8, "dog": 0.2}
    3 submit q1 bob cat
    3 submit h1 ann 0.25
    4 submit h1 bob 0.75
    4 submit t2 eve dog
    5000 submit t1 eve cat
    6000 tick
    7000 reveal t1 cat
    7000 submit t2 bob cat
    8000 reveal q1 dog
    8000 reveal h1 ok
    9000 reveal t2 dog
"#;

fn session() -> SessionId {
    SessionId::new("contest")
}

async fn open(store: Arc<dyn Store>, snapshot_every: u64) -> Result<Competition, CompetitionError> {
    Competition::builder(store, session())
        .scorers(scorers())
        .snapshot_every(snapshot_every)
        .open()
        .await
}

/// What a competition shows: the machine's state and every board.
fn state(c: &Competition) -> (String, Vec<Vec<String>>) {
    let snapshot = serde_json::to_string(&c.board().snapshot()).unwrap();
    let mut boards: Vec<Vec<String>> = ["k", "p", "h"]
        .iter()
        .map(|k| board_lines(&c.leaderboard(&(*k).into()).unwrap()))
        .collect();
    boards.push(board_lines(&c.overall().unwrap()));
    (snapshot, boards)
}

/// Runs the script, restarting (drop and open the same store) before input number `i` for
/// every `i` in `restarts`. Returns the final state and the events seen.
async fn run(restarts: &[usize], snapshot_every: u64) -> ((String, Vec<Vec<String>>), Vec<Event>) {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let mut c = open(store.clone(), snapshot_every).await.unwrap();
    let mut events = Vec::new();
    for (i, line) in lines(SCRIPT).iter().enumerate() {
        if restarts.contains(&i) {
            let pending = c.board().pending();
            drop(c);
            c = open(store.clone(), snapshot_every).await.unwrap();
            assert_eq!(c.board().pending(), pending, "a deferred answer was lost");
        }
        let (at, input) = parse(line);
        match c.handle_at(at, input).await {
            Ok(()) => events.extend(std::iter::from_fn(|| c.poll_event())),
            Err(CompetitionError::Refused(Refused::PastDeadline { .. })) => {}
            Err(e) => panic!("`{line}`: {e}"),
        }
    }
    (state(&c), events)
}

#[tokio::test]
async fn a_restart_anywhere_loses_no_deferred_answer_and_scores_identically() {
    let (want, want_events) = run(&[], 0).await;
    let n = lines(SCRIPT).len();
    assert_eq!(
        want_events
            .iter()
            .filter(|e| matches!(e, Event::Deferred { .. }))
            .count(),
        9
    );
    assert!(
        want.1[3].len() == 3,
        "everyone is on the overall board: {:?}",
        want.1[3]
    );
    for i in 1..n {
        let (got, events) = run(&[i], 0).await;
        assert_eq!(got, want, "restart before input {i}");
        assert_eq!(
            events, want_events,
            "restart before input {i}: events differ"
        );
    }
    // Restarting before every input, with and without snapshots along the way.
    let all: Vec<usize> = (1..n).collect();
    for every in [0, 1, 3] {
        assert_eq!(run(&all, every).await.0, want, "snapshot every {every}");
    }
}

#[tokio::test]
async fn refused_inputs_are_not_logged() {
    let store = Arc::new(MemoryStore::new());
    let mut c = open(store.clone(), 0).await.unwrap();
    for line in lines(SCRIPT) {
        let (at, input) = parse(&line);
        let _ = c.handle_at(at, input).await;
    }
    let log = store.read_log(&session(), 0, usize::MAX).await.unwrap();
    assert_eq!(
        log.len(),
        lines(SCRIPT).len() - 1,
        "the late answer is not in the log"
    );
    assert!(log.iter().all(|r| !r.body.contains("\"5000\"")));
}

#[tokio::test]
async fn a_crash_at_any_store_write_recovers_to_the_same_state() {
    let (want, _) = run(&[], 2).await;
    for mode in [FailMode::Before, FailMode::After] {
        let mut crashes = 0;
        for fail_at in 1..=40 {
            let memory: Arc<dyn Store> = Arc::new(MemoryStore::new());
            let failing: Arc<dyn Store> =
                Arc::new(FailingStore::new(memory.clone(), Some(fail_at), mode));
            let mut c = open(failing.clone(), 2).await.unwrap();
            let mut crashed = false;
            for line in lines(SCRIPT) {
                let (at, input) = parse(&line);
                let result = c.handle_at(at, input.clone()).await;
                let Err(CompetitionError::Store(_)) = result else {
                    continue;
                };
                // The process dies; a new one opens the same database and sends the input again.
                crashed = true;
                c = open(memory.clone(), 2).await.unwrap();
                match c.handle_at(at, input).await {
                    // Defining a kind again and ticking again change nothing.
                    Ok(()) if line.contains(" kind ") || line.contains(" tick") => {}
                    Ok(()) => assert_eq!(mode, FailMode::Before, "`{line}` was logged"),
                    // Already logged before the crash: the repeat is recognised.
                    Err(CompetitionError::Refused(
                        Refused::AlreadyAnswered { .. }
                        | Refused::TaskExists(_)
                        | Refused::TruthKnown(_),
                    )) => assert_eq!(mode, FailMode::After),
                    Err(e) => panic!("{mode:?} at write {fail_at}, `{line}`: {e}"),
                }
            }
            let reopened = open(memory.clone(), 2).await.unwrap();
            assert_eq!(
                state(&c),
                want,
                "{mode:?} at write {fail_at} (crashed: {crashed})"
            );
            assert_eq!(
                state(&reopened),
                want,
                "{mode:?} at write {fail_at}, reopened"
            );
            crashes += u32::from(crashed);
        }
        // Every logged input's write (a failed snapshot write is no crash: the log is the
        // record, the snapshot a shortcut).
        assert_eq!(crashes, 21, "{mode:?}");
    }
}

#[tokio::test]
async fn observed_submissions_and_their_cursor_are_one_write() {
    use crowdcore::platform::Cursor;
    use crowdcore::score::Observed;

    let store = Arc::new(MemoryStore::new());
    let mut c = open(store.clone(), 0).await.unwrap();
    for line in lines(SCRIPT).iter().take(7) {
        let (at, input) = parse(line);
        c.handle_at(at, input).await.unwrap();
    }
    let seen = |who: &str, task: &str, at: u64| Observed {
        at: Timestamp::from_millis(at),
        task: task.into(),
        participant: WorkerId::new(who),
        answer: "cat".into(),
    };
    let batch = [
        seen("ann", "t1", 1),
        seen("ann", "t1", 2),    // repeated in the batch
        seen("bob", "t1", 6000), // late
        seen("bob", "t2", 3),
        seen("bob", "nope", 3), // unknown task
    ];
    let cursor = Cursor("5".into());
    let outcome = c
        .record_observed(&batch, Some(("obs", &cursor)))
        .await
        .unwrap();
    assert_eq!((outcome.accepted, outcome.refused), (2, 3));
    let refused: Vec<String> = std::iter::from_fn(|| c.poll_event())
        .filter_map(|e| match e {
            Event::Refused { reason, .. } => Some(reason.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(
        refused,
        [
            "ann already answered task t1",
            "task t1 closed at 5000ms; the answer came at 6000ms",
            "unknown task nope"
        ]
    );
    drop(c);
    let c = open(store.clone(), 0).await.unwrap();
    assert_eq!(c.cursor("obs").await.unwrap(), Some(cursor));
    assert_eq!(c.board().pending(), 2);
}

#[tokio::test]
async fn a_session_that_is_not_a_competition_or_lacks_its_scorers_is_not_opened() {
    let store = Arc::new(MemoryStore::new());
    let other = NewInput {
        at: Timestamp::ZERO,
        body: r#"{"input":"start"}"#.into(),
    };
    store.append(&session(), &[other], None).await.unwrap();
    assert!(matches!(
        open(store, 0).await,
        Err(CompetitionError::NotACompetition(_))
    ));

    let store = Arc::new(MemoryStore::new());
    let mut c = open(store.clone(), 0).await.unwrap();
    let (at, input) = parse("0 kind h custom halves higher");
    c.handle_at(at, input).await.unwrap();
    drop(c);
    let without = Competition::builder(store.clone(), session())
        .scorers(Scorers::new())
        .open()
        .await;
    match without {
        Err(CompetitionError::Recovery(msg)) => assert!(msg.contains("halves"), "{msg}"),
        other => panic!("opened without its scorer: {other:?}"),
    }
}

#[tokio::test]
async fn advance_logs_a_tick_only_when_a_deadline_is_due() {
    use crowdcore::clock::VirtualClock;
    use crowdcore::score::{KindConfig, Metric, NewTask};

    let store = Arc::new(MemoryStore::new());
    let clock = Arc::new(VirtualClock::new(Timestamp::ZERO));
    let mut c = Competition::builder(store.clone(), session())
        .clock(clock.clone())
        .open()
        .await
        .unwrap();
    c.define_kind("k", KindConfig::new(Metric::Accuracy))
        .await
        .unwrap();
    let deadline = Timestamp::from_millis(1_000);
    c.post_task(NewTask::new("t", "k").deadline(deadline))
        .await
        .unwrap();
    assert_eq!(c.next_wakeup(), Some(deadline));
    clock.advance(999);
    c.advance().await.unwrap();
    assert_eq!(c.poll_event(), None);
    clock.advance(1);
    c.advance().await.unwrap();
    assert!(matches!(c.poll_event(), Some(Event::Closed { .. })));
    assert_eq!(c.next_wakeup(), None);
    c.define_kind("k", KindConfig::new(Metric::Accuracy))
        .await
        .unwrap();
    let log = store.read_log(&session(), 0, usize::MAX).await.unwrap();
    assert_eq!(
        log.len(),
        3,
        "define, post, one tick (defining k again logs nothing)"
    );
    assert_eq!(
        c.submit("t", "late", "x").await.unwrap_err().to_string(),
        "refused: task t closed at 1000ms; the answer came at 1000ms"
    );
}
