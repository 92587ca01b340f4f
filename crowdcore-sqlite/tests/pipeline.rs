//! A multi-pool pipeline (`crowdcore::pipeline`) on an SQLite file: the three-stage flow
//! against the in-memory fake, with the process "restarting" (store closed and reopened,
//! pipeline rebuilt) every few ticks; the decisions and answers views; the lease across two
//! handles of one file.

use std::sync::Arc;

use crowdcore::SessionId;
use crowdcore::clock::{Clock, VirtualClock};
use crowdcore::pipeline::{
    Action, Decision, FakeConfig, FakePipeline, Fanout, MajorityVerify, NewTask, ObserverConfig,
    Pipeline, PipelineBuilder, PipelineConfig, PipelineError, PipelinePlatform, PoolId, Stage,
};
use crowdcore::store::Store;
use crowdcore::{Money, Timestamp};
use crowdcore_sqlite::{SqliteOptions, SqliteStore};
use rusqlite::Connection;
use serde_json::json;

const T0: Timestamp = Timestamp::from_millis(1_700_000_000_000);

fn pool(stage: &str) -> PoolId {
    PoolId::new(format!("pool-{stage}"))
}

async fn fake(clock: &VirtualClock) -> FakePipeline {
    let fake = FakePipeline::new(Arc::new(clock.clone()), FakeConfig::new(31, 10, 0.85));
    for stage in ["submit", "validate", "quality"] {
        fake.add_pool(&pool(stage), true);
    }
    let tasks: Vec<NewTask> = (0..5)
        .map(|i| NewTask {
            input_values: json!({"place": format!("place-{i}")})
                .as_object()
                .cloned()
                .unwrap(),
            overlap: 1,
            group: None,
        })
        .collect();
    fake.add_tasks(&pool("submit"), &tasks).unwrap();
    fake.open_pool(&pool("submit")).await.unwrap();
    fake
}

async fn start(
    platform: Arc<dyn PipelinePlatform>,
    store: Arc<dyn Store>,
    clock: &VirtualClock,
    owner: &str,
) -> Result<Pipeline, PipelineError> {
    let observer = ObserverConfig {
        lag_ms: 30_000,
        page_size: 5,
        ..ObserverConfig::default()
    };
    let yes = vec![
        Action::AcceptOrigin {
            comment: "ok".into(),
        },
        Action::Forward {
            stage: "quality".into(),
        },
    ];
    let no = vec![Action::RejectOrigin {
        comment: "not the place".into(),
    }];
    let good = vec![Action::BonusOrigin {
        amount: Money::usd_cents(25),
        comment: "great".into(),
    }];
    PipelineBuilder::new(platform, store, SessionId::new("photos"))
        .clock(Arc::new(clock.clone()))
        .owner(owner)
        .config(PipelineConfig {
            period_ms: 10_000,
            snapshot_every: 7,
            ..PipelineConfig::default()
        })
        .stage(
            Stage::new(
                "submit",
                pool("submit"),
                1,
                Fanout::new("validate", Some("photos")),
            )
            .observer(observer.clone()),
        )
        .stage(
            Stage::new(
                "validate",
                pool("validate"),
                3,
                MajorityVerify::new("verdict", "yes", yes, no),
            )
            .observer(observer.clone()),
        )
        .stage(
            Stage::new(
                "quality",
                pool("quality"),
                3,
                MajorityVerify::new("quality", "good", good, vec![]),
            )
            .observer(observer),
        )
        .start()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_stages_on_a_file_with_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pipeline.db");
    let clock = VirtualClock::new(T0);
    let fake = fake(&clock).await;
    let platform: Arc<dyn PipelinePlatform> = Arc::new(fake.clone());
    let mut ticks = 0;
    let mut restarts = 0;
    let decisions = 'run: loop {
        // A process: open the file, run three ticks, die without a goodbye.
        let store: Arc<dyn Store> =
            Arc::new(SqliteStore::open(&path, SqliteOptions::default()).unwrap());
        let mut p = start(platform.clone(), store, &clock, "host")
            .await
            .unwrap();
        for _ in 0..3 {
            ticks += 1;
            assert!(ticks < 1_000, "the pipeline did not finish");
            if p.tick().await.unwrap().finished {
                let mut decisions = Vec::new();
                let mut answers = Vec::new();
                p.write_logs(&mut decisions, &mut answers).await.unwrap();
                break 'run (p.decisions().await.unwrap(), decisions, answers);
            }
            clock.advance(10_000);
        }
        restarts += 1;
    };
    assert!(restarts > 3, "only {restarts} restarts");
    let (entries, decisions_tsv, answers_tsv) = decisions;
    let counts = fake.counts();
    assert_eq!(counts.duplicate_tasks, 0, "{counts:?}");
    assert_eq!(counts.duplicate_reviews, 0, "{counts:?}");
    assert_eq!(counts.duplicate_bonuses, 0, "{counts:?}");
    let reviews = entries
        .iter()
        .filter(|e| {
            matches!(
                e.record.decision,
                Decision::Accept { .. } | Decision::Reject { .. }
            )
        })
        .count() as u64;
    assert_eq!(counts.accepts + counts.rejects, reviews);

    // The views say what the store says.
    let conn = Connection::open(&path).unwrap();
    let decided: i64 = conn
        .query_row(
            "SELECT count(*) FROM pipeline_decisions WHERE session = 'photos' AND state = 'done'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let answers: i64 = conn
        .query_row(
            "SELECT count(*) FROM pipeline_answers WHERE session = 'photos'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let logged_answers = entries
        .iter()
        .filter(|e| matches!(e.record.decision, Decision::Answer { .. }))
        .count() as i64;
    assert_eq!(answers, logged_answers);
    assert_eq!(decided, entries.len() as i64 - logged_answers);
    let submits_reviewed: i64 = conn
        .query_row(
            "SELECT count(DISTINCT assignment) FROM pipeline_decisions
             WHERE stage = 'submit' AND decision IN ('accept', 'reject')",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(submits_reviewed, 5, "every submission reviewed once");
    let bonus_minor: i64 = conn
        .query_row(
            "SELECT coalesce(sum(amount_minor), 0) FROM pipeline_decisions WHERE decision = 'bonus'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let paid: i64 = conn
        .query_row(
            "SELECT coalesce(sum(amount_minor), 0) FROM ledger WHERE kind = 'bonus' AND paid = 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(bonus_minor, paid, "the ledger holds each bonus once");
    assert!(!fake.bonuses().is_empty(), "no bonus was paid");
    assert_eq!(paid, 25 * fake.bonuses().len() as i64);
    // The TSV logs have a row per view row.
    let tsv_rows = String::from_utf8(decisions_tsv).unwrap().lines().count() as i64 - 1;
    assert_eq!(tsv_rows, decided);
    let tsv_answers = String::from_utf8(answers_tsv).unwrap().lines().count() as i64 - 1;
    assert_eq!(tsv_answers, answers);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_runs_cannot_share_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pipeline.db");
    let clock = VirtualClock::new(T0);
    let platform: Arc<dyn PipelinePlatform> = Arc::new(fake(&clock).await);
    let first: Arc<dyn Store> =
        Arc::new(SqliteStore::open(&path, SqliteOptions::default()).unwrap());
    let mut running = start(platform.clone(), first, &clock, "host-a")
        .await
        .unwrap();
    // Another process opens the same file.
    let second: Arc<dyn Store> =
        Arc::new(SqliteStore::open(&path, SqliteOptions::default()).unwrap());
    match start(platform.clone(), second.clone(), &clock, "host-b").await {
        Err(PipelineError::InUse { owner, expires }) => {
            assert_eq!(owner, "host-a");
            assert!(expires > clock.now());
        }
        other => panic!("a second run started: {other:?}"),
    }
    // Once the first gives the lease up, the second starts.
    running.release().await.unwrap();
    start(platform, second, &clock, "host-b").await.unwrap();
}

/// Drives the flow to its end on `store`, a tick per period; a tick that fails on the store
/// drops the pipeline and starts a new one from the same store at the same virtual time.
async fn drive(
    store: Arc<dyn Store>,
) -> (Vec<(Decision, bool)>, crowdcore::pipeline::FakeCounts, u32) {
    let clock = VirtualClock::new(T0);
    let fake = fake(&clock).await;
    let platform: Arc<dyn PipelinePlatform> = Arc::new(fake.clone());
    let mut pipeline: Option<Pipeline> = None;
    let mut restarts = 0;
    for _ in 0..1_000 {
        let p = match pipeline.as_mut() {
            Some(p) => p,
            None => match start(platform.clone(), store.clone(), &clock, "host").await {
                Ok(p) => pipeline.insert(p),
                Err(PipelineError::Store(_)) => {
                    restarts += 1;
                    continue;
                }
                Err(e) => panic!("{e}"),
            },
        };
        match p.tick().await {
            Ok(tick) if tick.finished => {
                let decisions = p
                    .decisions()
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|e| {
                        let done = matches!(e.state, crowdcore::store::OutboxState::Done { .. });
                        (e.record.decision, done)
                    })
                    .collect();
                return (decisions, fake.counts(), restarts);
            }
            Ok(_) => clock.advance(10_000),
            Err(PipelineError::Store(_)) => {
                pipeline = None;
                restarts += 1;
            }
            Err(e) => panic!("{e}"),
        }
    }
    panic!("the pipeline did not finish");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_sqlite_write_anywhere_changes_nothing() {
    use crowdcore::store::{FailMode, FailingStore};
    let counting = Arc::new(FailingStore::new(
        Arc::new(SqliteStore::open_in_memory().unwrap()),
        None,
        FailMode::Before,
    ));
    let (baseline, counts, _) = drive(counting.clone()).await;
    assert_eq!(
        counts.duplicate_reviews + counts.duplicate_tasks + counts.duplicate_bonuses,
        0
    );
    assert!(baseline.iter().all(|(_, done)| *done));
    let writes = counting.writes();
    // Every third write, in both modes (`CROWDCORE_SQLITE_CRASH_STEP=1` for every write).
    let step: u64 = std::env::var("CROWDCORE_SQLITE_CRASH_STEP")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
        .max(1);
    for mode in [FailMode::Before, FailMode::After] {
        for n in (1..=writes).step_by(step as usize) {
            let store = Arc::new(FailingStore::new(
                Arc::new(SqliteStore::open_in_memory().unwrap()),
                Some(n),
                mode,
            ));
            let (decisions, counts, restarts) = drive(store).await;
            assert_eq!(restarts, 1, "write {n} {mode:?}");
            assert_eq!(decisions, baseline, "write {n} {mode:?}");
            assert_eq!(
                counts.duplicate_reviews + counts.duplicate_tasks + counts.duplicate_bonuses,
                0,
                "write {n} {mode:?}: {counts:?}"
            );
        }
    }
}
