//! Real crash tests of the main job: the `simulate` example runs a seeded study on a SQLite file
//! in a child process; the test kills it with SIGKILL at random moments, starts it again each
//! time, and once it has finished compares it with an uninterrupted run of the same seed: the
//! same `summary.json`, byte for byte; the same ledger (every payment once, at the same time);
//! no input lost (log sequence numbers 1, 2, 3, … without a gap); no idempotency key answered
//! twice by the finishing process's platform.
//!
//! Kills: 20 by default; `CROWDCORE_CRASH_KILLS=100` (or more) for a longer run. The seed of
//! the kill times: `CROWDCORE_CRASH_SEED` (default 1).

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crowdcore::SessionId;
use crowdcore::store::{LedgerEntry, Store};
use crowdcore_sqlite::{SqliteOptions, SqliteStore};

const SEED: &str = "3";
const SESSION: &str = "simulate-pavilion-3";

fn command(out: &Path) -> Command {
    let mut cmd = Command::new(common::example("simulate"));
    cmd.args([
        "--seed",
        SEED,
        "--hours",
        "1",
        "--policy",
        "pavilion",
        "--max-active",
        "6",
    ])
    .arg("--out")
    .arg(out)
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    cmd
}

fn run_to_end(out: &Path) -> String {
    let output = command(out).output().expect("simulate runs");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "simulate failed: {stderr}");
    stderr
}

/// The ledger, and whether the log has no gap, of the study in `out`.
fn inspect(out: &Path) -> (Vec<LedgerEntry>, bool) {
    let store = SqliteStore::open(out.join("study.db"), SqliteOptions::default()).expect("db");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let session = SessionId::new(SESSION);
        let ledger = store.ledger(&session).await.expect("ledger");
        let log = store.read_log(&session, 0, usize::MAX).await.expect("log");
        let contiguous = log.iter().enumerate().all(|(i, r)| r.seq == i as u64 + 1);
        assert!(!log.is_empty());
        (ledger, contiguous)
    })
}

/// How many inputs the study's log holds now (0 before the file exists). Read with a plain
/// SQLite connection, as a researcher would, while the study writes.
fn log_len(db: &Path) -> u64 {
    let Ok(conn) = rusqlite::Connection::open_with_flags(
        db,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    ) else {
        return 0;
    };
    conn.query_row(
        "SELECT count(*) FROM log WHERE session = ?1",
        [SESSION],
        |row| row.get::<_, i64>(0),
    )
    .map_or(0, |n| n as u64)
}

/// A small deterministic generator for kill times (xorshift64*).
struct Dice(u64);

impl Dice {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n.max(1)
    }
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn a_study_killed_at_random_moments_ends_as_an_uninterrupted_one() {
    let dir = tempfile::tempdir().expect("temp dir");
    let clean = dir.path().join("clean");
    let started = Instant::now();
    run_to_end(&clean);
    let took = started.elapsed();
    let expected = std::fs::read(clean.join("summary.json")).expect("summary");
    let (expected_ledger, contiguous) = inspect(&clean);
    let expected_log_len = log_len(&clean.join("study.db"));
    assert!(
        expected_log_len > 100,
        "a study long enough to kill: {expected_log_len} inputs"
    );
    assert!(contiguous);
    assert!(!expected_ledger.is_empty());

    let kills = env_u64("CROWDCORE_CRASH_KILLS", 20);
    let mut dice = Dice(env_u64("CROWDCORE_CRASH_SEED", 1).max(1));
    // Kill moments spread over the whole study: sorted random log positions, each plus a few
    // random milliseconds, so that kills land in every phase (catching up, fresh writes,
    // between a platform call and its record, mid-transaction) rather than at start-up.
    let total = expected_log_len;
    let mut targets: Vec<u64> = (0..kills).map(|_| 1 + dice.below(total - 1)).collect();
    targets.sort_unstable();
    let crashed = dir.path().join("crashed");
    let db = crashed.join("study.db");
    let mut killed_mid_run = 0;
    for target in targets {
        let mut child = command(&crashed).spawn().expect("simulate starts");
        let deadline = Instant::now() + took * 20 + Duration::from_secs(10);
        loop {
            if child.try_wait().expect("child status").is_some() || Instant::now() > deadline {
                break;
            }
            if log_len(&db) >= target {
                std::thread::sleep(Duration::from_millis(dice.below(4)));
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        if child.try_wait().expect("child status").is_none() {
            killed_mid_run += 1;
        }
        child.kill().ok(); // SIGKILL on Unix; an error means it had already exited
        child.wait().expect("child reaped");
    }
    let stderr = run_to_end(&crashed);
    let (ledger, contiguous) = inspect(&crashed);

    assert!(
        killed_mid_run * 10 >= kills * 9,
        "only {killed_mid_run} of {kills} kills landed while the study ran"
    );
    assert!(contiguous, "an input was lost: the log has a gap");
    assert_eq!(
        ledger, expected_ledger,
        "the ledger differs from an uninterrupted run's"
    );
    let summary = std::fs::read(crashed.join("summary.json")).expect("summary");
    assert_eq!(
        String::from_utf8_lossy(&summary),
        String::from_utf8_lossy(&expected),
        "summary.json differs from an uninterrupted run's ({stderr})"
    );
    let value: serde_json::Value = serde_json::from_slice(&summary).expect("json");
    // The finishing process re-ran the seeded world against the stored log on a fresh in-process
    // marketplace (see crowdcore::sim::run_durable): that marketplace answered no key twice.
    // Keys sent to the marketplaces of killed processes died with them; what proves that no
    // effect was carried out twice is the ledger above, equal to the uninterrupted run's.
    assert_eq!(value["policies"]["pavilion"]["platform_duplicate_calls"], 0);
    eprintln!(
        "{kills} kills, {killed_mid_run} while the study ran; uninterrupted run took {took:?}"
    );

    // Done is done: another run does no new work and writes the same summary.
    let again = run_to_end(&crashed);
    assert!(again.contains("already finished"), "{again}");
    assert_eq!(
        std::fs::read(crashed.join("summary.json")).expect("summary"),
        expected
    );
}
