//! Durable inputs per second through `SqliteStore`, against raw rusqlite loops writing the
//! same rows to the same schema with the same settings (WAL, `synchronous=FULL`), in one
//! criterion group so that the ratios are measured in one run on one machine:
//!
//! - `store_group_commit`: `CONCURRENT` tokio tasks, one per session, each appending one input
//!   at a time, so the writer thread batches what queues up (group commit) — against
//!   `raw_100_per_tx`, a loop inserting the same rows (the same sessions, interleaved the same
//!   way) 100 per transaction. Goal: ≥ 0.5 × raw.
//! - `store_per_write`: one task appending one input at a time with `CommitMode::PerWrite`
//!   (one transaction per input) — against `raw_1_per_tx`, single-row transactions. Goal:
//!   ≥ 0.8 × raw.
//!
//! Criterion runs each benchmark in turn, so on a shared machine a burst of someone else's disk
//! traffic can land on one side of a comparison only. After the group, the binary therefore
//! also runs the pairs interleaved (store, raw, raw, store, …) for
//! `CROWDCORE_BENCH_PAIRED_ROUNDS` rounds (default 15; 0 skips) and prints the median of the
//! per-round throughput ratios: the number to quote.
//!
//! The databases live in a temporary directory on the disk of `$CROWDCORE_BENCH_DIR` (default:
//! the system's temporary directory; point it at a real disk if that is a tmpfs, or the
//! fsyncs cost nothing). Run:
//!
//! ```text
//! cargo bench -p crowdcore-benches --bench store -- --warm-up-time 1 --measurement-time 5
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group};
use crowdcore::store::{NewInput, Store};
use crowdcore::{SessionId, Timestamp};
use crowdcore_sqlite::{CommitMode, SqliteOptions, SqliteStore};
use rusqlite::{Connection, params};

/// Appending tasks in the group-commit case.
const CONCURRENT: usize = 100;
/// Inputs per iteration in the batched cases (each task appends `BATCHED / CONCURRENT`).
const BATCHED: u64 = 2_000;
/// Inputs per iteration in the one-per-transaction cases.
const SINGLE: u64 = 20;

/// A heartbeat as the engine logs it: a typical input.
fn body(n: u64) -> String {
    format!(r#"{{"type":"heartbeat","assignment":"3XQ7-ASSIGNMENT-{n:08}"}}"#)
}

fn bench_dir() -> tempfile::TempDir {
    match std::env::var_os("CROWDCORE_BENCH_DIR") {
        Some(dir) => tempfile::tempdir_in(dir),
        None => tempfile::tempdir(),
    }
    .expect("a temporary directory for the benchmark databases")
}

/// A fresh database with the store's schema, opened raw with the store's settings.
fn raw_connection(path: &Path) -> Connection {
    drop(SqliteStore::open(path, SqliteOptions::default()).expect("create the schema"));
    let conn = Connection::open(path).expect("open raw");
    conn.pragma_update(None, "journal_mode", "WAL").unwrap();
    conn.pragma_update(None, "synchronous", "FULL").unwrap();
    conn.pragma_update(None, "foreign_keys", true).unwrap();
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    conn
}

/// Raw rusqlite writing the rows the store writes: `count` inputs spread round-robin over
/// `sessions` (each session's next sequence number in turn, as concurrent appenders produce
/// them), `per_tx` rows to a transaction. Returns the time taken.
fn raw_inserts(
    conn: &Connection,
    sessions: &mut [(String, u64)],
    count: u64,
    per_tx: u64,
) -> Duration {
    let start = Instant::now();
    let n = sessions.len();
    let mut rows = (0..).map(|i| i % n).take(count as usize);
    let mut written = 0;
    while written < count {
        conn.execute_batch("BEGIN IMMEDIATE").unwrap();
        let mut insert = conn
            .prepare_cached(
                "INSERT INTO log_runs (session, seq, n, at_ms, body) VALUES (?1, ?2, 1, ?3, ?4)",
            )
            .unwrap();
        for row in rows.by_ref().take(per_tx as usize) {
            let (session, seq) = &mut sessions[row];
            *seq += 1;
            let at = i64::try_from(*seq).unwrap();
            insert
                .execute(params![session.as_str(), at, at, body(*seq)])
                .unwrap();
            written += 1;
        }
        drop(insert);
        conn.execute_batch("COMMIT").unwrap();
    }
    start.elapsed()
}

/// One task per session appends `count` inputs in all, one input per append; returns the time.
async fn concurrent_appends(
    store: &Arc<SqliteStore>,
    sessions: &[SessionId],
    count: u64,
) -> Duration {
    let per_task = count / sessions.len() as u64;
    let start = Instant::now();
    let tasks: Vec<_> = sessions
        .iter()
        .map(|s| {
            let (store, s) = (store.clone(), s.clone());
            tokio::spawn(async move {
                for n in 0..per_task {
                    let input = NewInput {
                        at: Timestamp::from_millis(n),
                        body: body(n),
                    };
                    store.append(&s, &[input], None).await.unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    start.elapsed()
}

/// One task appends `count` inputs, one at a time, after `*n`; returns the time.
async fn sequential_appends(
    store: &SqliteStore,
    s: &SessionId,
    n: &mut u64,
    count: u64,
) -> Duration {
    let start = Instant::now();
    for _ in 0..count {
        *n += 1;
        let input = NewInput {
            at: Timestamp::from_millis(*n),
            body: body(*n),
        };
        store.append(s, &[input], None).await.unwrap();
    }
    start.elapsed()
}

fn store(path: PathBuf, commit: CommitMode) -> Arc<SqliteStore> {
    let options = SqliteOptions {
        commit,
        ..SqliteOptions::default()
    };
    Arc::new(SqliteStore::open(path, options).expect("open the store"))
}

/// The databases and runtime every measurement uses.
struct Setup {
    _dir: tempfile::TempDir,
    runtime: tokio::runtime::Runtime,
    group: Arc<SqliteStore>,
    sessions: Vec<SessionId>,
    raw100: Connection,
    raw100_sessions: Vec<(String, u64)>,
    single: Arc<SqliteStore>,
    single_session: SessionId,
    single_n: u64,
    raw1: Connection,
    raw1_sessions: Vec<(String, u64)>,
}

impl Setup {
    fn new() -> Self {
        let dir = bench_dir();
        let raw = |name: &str, sessions: usize| {
            let conn = raw_connection(&dir.path().join(name));
            let sessions: Vec<(String, u64)> =
                (0..sessions).map(|t| (format!("task-{t}"), 0)).collect();
            for (s, _) in &sessions {
                conn.execute("INSERT INTO sessions VALUES (?1)", [s])
                    .unwrap();
            }
            (conn, sessions)
        };
        let (raw100, raw100_sessions) = raw("raw100.db", CONCURRENT);
        let (raw1, raw1_sessions) = raw("raw1.db", 1);
        Self {
            runtime: tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .build()
                .expect("a tokio runtime"),
            group: store(dir.path().join("group.db"), CommitMode::Group),
            sessions: (0..CONCURRENT)
                .map(|t| SessionId::new(format!("task-{t}")))
                .collect(),
            raw100,
            raw100_sessions,
            single: store(dir.path().join("single.db"), CommitMode::PerWrite),
            single_session: SessionId::new("single"),
            single_n: 0,
            raw1,
            raw1_sessions,
            _dir: dir,
        }
    }

    fn store_group_commit(&mut self, count: u64) -> Duration {
        let (store, sessions) = (&self.group, &self.sessions);
        self.runtime
            .block_on(concurrent_appends(store, sessions, count))
    }

    fn raw_100_per_tx(&mut self, count: u64) -> Duration {
        raw_inserts(&self.raw100, &mut self.raw100_sessions, count, 100)
    }

    fn store_per_write(&mut self, count: u64) -> Duration {
        let (store, s, n) = (&self.single, &self.single_session, &mut self.single_n);
        self.runtime
            .block_on(sequential_appends(store, s, n, count))
    }

    fn raw_1_per_tx(&mut self, count: u64) -> Duration {
        raw_inserts(&self.raw1, &mut self.raw1_sessions, count, 1)
    }
}

fn store_benches(c: &mut Criterion) {
    let setup = std::cell::RefCell::new(Setup::new());
    let mut group = c.benchmark_group("store");
    group.sample_size(10);
    group.throughput(Throughput::Elements(BATCHED));
    group.bench_function("store_group_commit", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| setup.borrow_mut().store_group_commit(BATCHED))
                .sum()
        });
    });
    group.bench_function("raw_100_per_tx", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| setup.borrow_mut().raw_100_per_tx(BATCHED))
                .sum()
        });
    });
    group.throughput(Throughput::Elements(SINGLE));
    group.bench_function("store_per_write", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| setup.borrow_mut().store_per_write(SINGLE))
                .sum()
        });
    });
    group.bench_function("raw_1_per_tx", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| setup.borrow_mut().raw_1_per_tx(SINGLE))
                .sum()
        });
    });
    group.finish();
}

/// The pairs again, interleaved round by round; prints the median throughput ratios.
fn paired_ratios(rounds: usize) {
    let mut setup = Setup::new();
    type Side = fn(&mut Setup, u64) -> Duration;
    let pairs: [(&str, Side, Side, u64, f64); 2] = [
        (
            "group commit vs raw 100 per transaction",
            Setup::store_group_commit,
            Setup::raw_100_per_tx,
            BATCHED,
            0.5,
        ),
        (
            "one input per transaction vs raw single-row",
            Setup::store_per_write,
            Setup::raw_1_per_tx,
            SINGLE * 5,
            0.8,
        ),
    ];
    println!("\npaired, interleaved rounds ({rounds}): store ÷ raw throughput");
    for (name, store, raw, count, goal) in pairs {
        // Warm up both sides once.
        store(&mut setup, count);
        raw(&mut setup, count);
        let mut ratios = Vec::new();
        let (mut store_rates, mut raw_rates) = (Vec::new(), Vec::new());
        for round in 0..rounds {
            let (s, r) = if round % 2 == 0 {
                let s = store(&mut setup, count);
                (s, raw(&mut setup, count))
            } else {
                let r = raw(&mut setup, count);
                (store(&mut setup, count), r)
            };
            ratios.push(r.as_secs_f64() / s.as_secs_f64());
            store_rates.push(count as f64 / s.as_secs_f64());
            raw_rates.push(count as f64 / r.as_secs_f64());
        }
        let median = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let (lo, hi) = (
            ratios.iter().copied().fold(f64::INFINITY, f64::min),
            ratios.iter().copied().fold(0.0, f64::max),
        );
        let ratio = median(&mut ratios);
        println!(
            "  {name}: {ratio:.2} (goal ≥ {goal}; rounds {lo:.2}–{hi:.2}); \
             store {:.0} inputs/s, raw {:.0} inputs/s (medians)",
            median(&mut store_rates),
            median(&mut raw_rates),
        );
    }
}

criterion_group!(benches, store_benches);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    // Only when benchmarking (`cargo bench`), not when `cargo test` runs the bench once.
    if std::env::args().any(|a| a == "--bench") {
        let rounds = std::env::var("CROWDCORE_BENCH_PAIRED_ROUNDS")
            .ok()
            .and_then(|r| r.parse().ok())
            .unwrap_or(15);
        if rounds > 0 {
            paired_ratios(rounds);
        }
    }
}
