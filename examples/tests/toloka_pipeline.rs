//! The `toloka_pipeline` example end to end against a fake Toloka that lives in this test
//! process (a real port, so it outlives the example's processes): seeded simulated workers
//! answer over time, listings lag behind writes, pool opens and closes take time and lock the
//! pool, seeded 429s, 503s and lost answers. A run killed with SIGKILL at seeded moments and
//! started again until it finishes ends with the same decisions as an uninterrupted run (a
//! restart re-sending an open that the killed run left running waits for it), and the fake saw
//! no task created twice, no bonus paid twice, and the same reviews. Runs that leave decisions
//! failed or pending exit non-zero and list them; a misdeclared project stops the example
//! before anything is created.
//!
//! Kills: 5 by default, `CROWDCORE_TOLOKA_KILLS=50` for a longer run; their seed
//! `CROWDCORE_TOLOKA_KILL_SEED` (default 1); the crowd's (answers, worker picks, fault draws)
//! `CROWDCORE_TOLOKA_CROWD_SEED` (default 11). The real sandbox run is opt-in:
//! `CROWDCORE_TOLOKA_SANDBOX=1`, `TOLOKA_API_KEY` (or `TOLOKA_OAUTH_TOKEN`) and
//! `CROWDCORE_TOLOKA_POOLS=submit,validate,quality` (sandbox pool ids).

mod common;

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crowdcore::clock::SystemClock;
use crowdcore_toloka::fake::{FakeConfig, FakeToloka, Fault, FaultPlan};
use crowdcore_toloka::model::{AssignmentFilter, CreateTasksOptions, NewTask, Usd};
use crowdcore_toloka::{ClientConfig, Credentials, TolokaClient};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Map, Value, json};

const PLACES: usize = 8;
const WORKERS: usize = 8;
const DEFAULT_CROWD_SEED: u64 = 11;

/// A stable 64-bit hash (FNV-1a) of the seed and some text.
fn hash(seed: u64, text: &str) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64 ^ seed;
    for b in text.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
    }
    // splitmix64's finalizer, so that similar texts give unrelated low digits
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// What the `k`-th answer to a task is: a function of the seed, the task's input and `k`
/// only, so that who answers and when does not change any decision.
fn answer(seed: u64, input: &Map<String, Value>, k: u32) -> Value {
    let right = hash(seed, &format!("{}/{k}", about(input))) % 10 < 8;
    if let Some(place) = input.get("place").and_then(Value::as_str) {
        let n = 1 + hash(seed, place) % 3;
        let photos: Vec<String> = (0..n)
            .map(|i| {
                let valid = if hash(seed, &format!("{place}/{i}/v")) % 10 < 8 {
                    "valid"
                } else {
                    "invalid"
                };
                let hq = if hash(seed, &format!("{place}/{i}/q")) % 10 < 7 {
                    "hq"
                } else {
                    "lq"
                };
                format!("{valid}-{hq}-{place}-{i}")
            })
            .collect();
        json!({ "photos": photos })
    } else if let Some(item) = input.get("item").and_then(Value::as_str) {
        let truth = item.starts_with("valid");
        json!({ "verdict": if truth == right { "yes" } else { "no" } })
    } else if let Some(items) = input.get("items").and_then(Value::as_array) {
        let truth = items
            .iter()
            .all(|i| i.as_str().is_some_and(|s| s.contains("-hq-")));
        json!({ "quality": if truth == right { "good" } else { "bad" } })
    } else {
        json!({})
    }
}

/// A fake Toloka with three pools, the submit pool open with one task per place, and a crowd
/// working it in the background.
struct World {
    fake: Arc<FakeToloka>,
    pools: [String; 3],
    crowd: tokio::task::JoinHandle<()>,
}

impl Drop for World {
    fn drop(&mut self) {
        self.crowd.abort();
    }
}

fn client(fake: &FakeToloka) -> TolokaClient {
    TolokaClient::new(ClientConfig::new(
        fake.base_url(),
        Credentials::ApiKey("test-key".into()),
    ))
    .expect("client")
}

/// The validate project's input fields as the handlers fill them (`Fanout`'s tasks).
fn validate_inputs() -> Value {
    json!({
        "item": { "type": "string" },
        "group": { "type": "string" },
        "group_size": { "type": "integer" },
        "origin_assignment": { "type": "string" },
        "origin_stage": { "type": "string" },
        "origin_worker": { "type": "string" },
    })
}

/// The quality project's input fields (`Action::Forward`'s tasks).
fn quality_inputs() -> Value {
    let mut spec = validate_inputs();
    let fields = spec.as_object_mut().expect("an object");
    fields.remove("item");
    fields.insert("items".into(), json!({ "type": "array_string" }));
    spec
}

async fn world(seed: u64) -> World {
    world_with(seed, |_| {}, validate_inputs()).await
}

/// A world whose pool operations outlast the example's lease (1 s): a run started after a
/// kill re-sends an open the killed run left running and meets the pool locked by it.
async fn world_locking(seed: u64) -> World {
    world_with(seed, |c| c.pool_operation_ms = 1_500, validate_inputs()).await
}

/// A world whose fake is tuned by `tune`, with this input spec on the validate project.
async fn world_with(seed: u64, tune: impl FnOnce(&mut FakeConfig), validate: Value) -> World {
    let mut config = FakeConfig::new(Arc::new(SystemClock));
    config.listing_lag_ms = 300;
    config.operation_polls = 1;
    // Opening and closing a pool takes a while and locks it, as on Toloka.
    config.pool_operation_ms = 150;
    tune(&mut config);
    let fake = Arc::new(FakeToloka::start(config).await.expect("fake starts"));
    fake.set_auto_close(true);
    let projects = [
        fake.create_project(
            json!({ "place": { "type": "string" } }),
            json!({ "photos": { "type": "array_string" } }),
        ),
        fake.create_project(validate, json!({ "verdict": { "type": "string" } })),
        fake.create_project(quality_inputs(), json!({ "quality": { "type": "string" } })),
    ];
    let pools = projects.map(|p| fake.create_pool(&p, Usd::from_cents(5)));
    let tasks: Vec<NewTask> = (0..PLACES)
        .map(|i| {
            let input = json!({ "place": format!("place-{i:02}") });
            NewTask::new(&pools[0], input.as_object().cloned().expect("object"), 1)
        })
        .collect();
    let options = CreateTasksOptions {
        open_pool: true,
        ..CreateTasksOptions::default()
    };
    client(&fake)
        .create_tasks(&tasks, options, None)
        .await
        .expect("submit tasks");
    // From now on, 5 % of the example's requests fail: throttled, unavailable, or done with
    // the answer lost.
    fake.set_faults(FaultPlan {
        seed,
        per_mille: 50,
        kinds: vec![Fault::Throttle, Fault::Unavailable, Fault::LostAnswer],
        slow_ms: 0,
    });
    let crowd = tokio::spawn(work(fake.clone(), pools.clone(), seed));
    World { fake, pools, crowd }
}

/// Every 30 ms: due assignments are submitted (the `k`-th answer of their task), then two
/// seeded workers try to take a task in each pool and hold it 1 to 3 steps.
async fn work(fake: Arc<FakeToloka>, pools: [String; 3], seed: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut active: Vec<(String, u64)> = Vec::new();
    let mut answered: HashMap<String, u32> = HashMap::new();
    for step in 0u64.. {
        let (due, later): (Vec<_>, Vec<_>) = active.into_iter().partition(|(_, at)| *at <= step);
        active = later;
        for (a, _) in due {
            let task = fake.assignment_task(&a).expect("a task");
            let input = fake.task_input(&task).expect("an input");
            let k = answered.entry(task).or_default();
            fake.submit(&a, answer(seed, &input, *k)).expect("submit");
            *k += 1;
        }
        for pool in &pools {
            for _ in 0..2 {
                let worker = format!("w{}", rng.random_range(0..WORKERS));
                if let Ok(Some(a)) = fake.take_next(pool, &worker) {
                    active.push((a, step + 1 + rng.random_range(0..3u64)));
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
}

fn command(w: &World, db: &Path, log: &Path) -> Command {
    let mut cmd = Command::new(common::example("toloka_pipeline"));
    cmd.arg("--base-url")
        .arg(w.fake.base_url())
        .args(["--submit-pool", &w.pools[0]])
        .args(["--validate-pool", &w.pools[1]])
        .args(["--quality-pool", &w.pools[2]])
        .arg("--db")
        .arg(db)
        .args(["--period-s", "0.1", "--lag-s", "1", "--lease-s", "1"])
        .args(["--operation-poll-ms", "20"])
        .env("TOLOKA_API_KEY", "test-key")
        .env_remove("TOLOKA_OAUTH_TOKEN")
        .env(
            "RUST_LOG",
            std::env::var("CROWDCORE_TOLOKA_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdout(Stdio::from(
            File::create(log.with_extension("out")).expect("log"),
        ))
        .stderr(Stdio::from(File::create(log).expect("log")));
    cmd
}

async fn wait(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("child status") {
            return status;
        }
        if Instant::now() > deadline {
            child.kill().ok();
            child.wait().ok();
            return child.wait().expect("reaped");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Runs the example to its end; returns its stdout.
async fn run_to_end(w: &World, db: &Path, n: usize) -> String {
    let log = db.with_file_name(format!("run-{n}.log"));
    let mut child = command(w, db, &log).spawn().expect("example starts");
    let status = wait(
        &mut child,
        Duration::from_secs(
            std::env::var("CROWDCORE_TOLOKA_RUN_LIMIT_S")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(240),
        ),
    )
    .await;
    let stdout = std::fs::read_to_string(log.with_extension("out")).unwrap_or_default();
    let stderr = std::fs::read_to_string(&log).unwrap_or_default();
    if !status.success() {
        let c = client(&w.fake);
        for pool in &w.pools {
            let all = c
                .all_assignments(&AssignmentFilter::pool(pool.clone()))
                .await;
            let statuses: Vec<String> = all
                .map(|v| {
                    v.iter()
                        .map(|a| format!("{}:{}", a.id, a.status.as_str()))
                        .collect()
                })
                .unwrap_or_default();
            eprintln!(
                "pool {pool} {:?}: {} tasks; {statuses:?}",
                w.fake.pool_status(pool),
                w.fake.task_ids(pool).len()
            );
        }
        panic!(
            "toloka_pipeline failed: {}\n{stdout}",
            stderr.lines().rev().take(30).collect::<Vec<_>>().join("\n")
        );
    }
    assert!(stdout.contains("all pools closed and drained"), "{stdout}");
    stdout
}

/// The report's lines (decisions per stage and kind, answers, observed per stage).
fn report(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .filter(|l| !l.starts_with("logs:") && !l.starts_with("all pools"))
        .map(str::to_owned)
        .collect()
}

/// A task's input as a stable key: what it is about, without the run's assignment ids.
fn about(input: &Map<String, Value>) -> String {
    for k in ["place", "item"] {
        if let Some(v) = input.get(k).and_then(Value::as_str) {
            return format!("{k}={v}");
        }
    }
    match input.get("items").and_then(Value::as_array) {
        Some(items) => format!("items={}", Value::Array(items.clone())),
        None => format!("{input:?}"),
    }
}

/// What the fake ended with, keyed by what tasks are about (not by the run's ids), plus the
/// duplicates it saw.
struct Outcome {
    /// Decisions-log rows as (stage, about, decision, comment), sorted.
    decisions: Vec<(String, String, String, String)>,
    /// Per pool and task: the sorted statuses of its assignments.
    statuses: BTreeMap<(usize, String), Vec<String>>,
    /// Bonuses by the place of the submission they were paid for, with their amounts.
    bonuses: BTreeMap<String, Vec<i64>>,
    /// Tasks per pool.
    tasks: [usize; 3],
}

async fn outcome(w: &World, out: &Path) -> Outcome {
    w.fake.set_faults(FaultPlan::none());
    // Listings lag 300 ms behind writes: wait until they show the last reviews.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let client = client(&w.fake);
    let mut key_of: HashMap<String, (usize, String)> = HashMap::new();
    let mut statuses: BTreeMap<(usize, String), Vec<String>> = BTreeMap::new();
    let mut tasks = [0; 3];
    for (i, pool) in w.pools.iter().enumerate() {
        let ids = w.fake.task_ids(pool);
        let inputs: Vec<String> = ids
            .iter()
            .map(|t| about(&w.fake.task_input(t).expect("input")))
            .collect();
        let mut unique = inputs.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(
            unique.len(),
            inputs.len(),
            "a task was created twice in pool {i}: {inputs:?}"
        );
        tasks[i] = ids.len();
        for a in client
            .all_assignments(&AssignmentFilter::pool(pool.clone()))
            .await
            .expect("assignments")
        {
            let key = about(&a.tasks[0].input_values);
            statuses
                .entry((i, key.clone()))
                .or_default()
                .push(a.status.as_str().to_owned());
            key_of.insert(a.id, (i, key));
        }
    }
    for s in statuses.values_mut() {
        s.sort();
    }
    let mut bonuses: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    let mut per_assignment: HashMap<String, usize> = HashMap::new();
    for b in w.fake.bonuses() {
        let a = b["assignment_id"]
            .as_str()
            .expect("a bonus for an assignment")
            .to_owned();
        *per_assignment.entry(a.clone()).or_default() += 1;
        let amount: Usd = serde_json::from_value(b["amount"].clone()).expect("amount");
        bonuses
            .entry(key_of[&a].1.clone())
            .or_default()
            .push(amount.micros);
    }
    assert!(
        per_assignment.values().all(|n| *n == 1),
        "a bonus was paid twice: {per_assignment:?}"
    );
    let text = std::fs::read_to_string(out.join("decisions.tsv")).expect("decisions.tsv");
    let mut decisions: Vec<(String, String, String, String)> = text
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            assert_eq!(f.len(), 5, "{l}");
            let about = key_of
                .get(f[2])
                .map_or_else(|| f[2].to_owned(), |k| k.1.clone());
            (f[1].to_owned(), about, f[3].to_owned(), f[4].to_owned())
        })
        .collect();
    decisions.sort();
    Outcome {
        decisions,
        statuses,
        bonuses,
        tasks,
    }
}

/// A small deterministic generator for kill points (xorshift64*).
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipeline_killed_at_random_moments_ends_as_an_uninterrupted_one() {
    let dir = tempfile::tempdir().expect("temp dir");
    // CROWDCORE_TOLOKA_KEEP=1 keeps the stores and logs for a look afterwards.
    let (_guard, root) = if std::env::var_os("CROWDCORE_TOLOKA_KEEP").is_some() {
        let kept = dir.keep();
        eprintln!("keeping {}", kept.display());
        (None, kept)
    } else {
        let root = dir.path().to_path_buf();
        (Some(dir), root)
    };
    let started = Instant::now();

    // The uninterrupted run.
    let crowd_seed = env_u64("CROWDCORE_TOLOKA_CROWD_SEED", DEFAULT_CROWD_SEED);
    let clean = world_locking(crowd_seed).await;
    let clean_dir = root.join("clean");
    std::fs::create_dir_all(&clean_dir).expect("dir");
    let clean_out = run_to_end(&clean, &clean_dir.join("pipeline.db"), 0).await;
    let took = started.elapsed();
    let requests = clean.fake.request_count() as u64;
    let expected = outcome(&clean, &clean_dir).await;
    assert_eq!(expected.tasks[0], PLACES);
    // The default crowd exercises every kind of decision (other seeds may not).
    if crowd_seed == DEFAULT_CROWD_SEED {
        assert!(
            expected.tasks[1] >= PLACES,
            "validate tasks: {:?}",
            expected.tasks
        );
        assert!(expected.tasks[2] > 0, "no submission reached quality");
        assert!(
            !expected.bonuses.is_empty(),
            "no bonus paid: {:?}",
            expected.decisions
        );
        assert!(
            expected.decisions.iter().any(|d| d.2 == "reject"),
            "a flow without a rejection: {:?}",
            expected.decisions
        );
    }
    let clean_faults = clean.fake.faults_injected();
    drop(clean);

    // The same crowd, with the example killed at seeded points and started again.
    let kills = env_u64("CROWDCORE_TOLOKA_KILLS", 5);
    let mut dice = Dice(env_u64("CROWDCORE_TOLOKA_KILL_SEED", 1).max(1));
    let crashed = world_locking(crowd_seed).await;
    let crashed_dir = root.join("crashed");
    std::fs::create_dir_all(&crashed_dir).expect("dir");
    let db = crashed_dir.join("pipeline.db");
    let mut killed_mid_run = 0;
    for n in 1..=kills {
        let log = crashed_dir.join(format!("run-{n}.log"));
        let mut child = command(&crashed, &db, &log)
            .spawn()
            .expect("example starts");
        let from = crashed.fake.request_count() as u64;
        // A life of a random number of requests (up to an uninterrupted run's, shared out).
        let life = 1 + dice.below(requests / kills.max(1));
        let deadline = Instant::now() + took * 4 + Duration::from_secs(10);
        while child.try_wait().expect("child status").is_none()
            && Instant::now() < deadline
            && (crashed.fake.request_count() as u64) < from + life
        {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        tokio::time::sleep(Duration::from_millis(dice.below(5))).await;
        if child.try_wait().expect("child status").is_none() {
            killed_mid_run += 1;
        }
        child.kill().ok(); // SIGKILL; an error means it had already exited
        child.wait().expect("child reaped");
    }
    let crashed_out = run_to_end(&crashed, &db, kills as usize + 1).await;
    let got = outcome(&crashed, &crashed_dir).await;

    assert!(
        killed_mid_run * 10 >= kills * 8,
        "only {killed_mid_run} of {kills} kills landed while the example ran"
    );
    assert_eq!(got.tasks, expected.tasks, "tasks per pool");
    assert_eq!(got.bonuses, expected.bonuses, "bonuses by submission");
    assert_eq!(
        got.statuses, expected.statuses,
        "assignment statuses by task"
    );
    assert_eq!(got.decisions, expected.decisions, "decisions");
    assert_eq!(report(&crashed_out), report(&clean_out), "the final report");
    assert!(
        !report(&clean_out).iter().any(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            f.len() == 5 && f[2] != "done" && (f[3] != "0" || f[4] != "0")
        }),
        "a decision pending or failed: {clean_out}"
    );
    eprintln!(
        "toloka_pipeline: uninterrupted run {took:?}, {requests} requests, {clean_faults} faults; \
         crashed run: {kills} kills ({killed_mid_run} mid-run), {} requests, {} faults, \
         {} creations re-sent and found (409 OPERATION_ALREADY_EXISTS), {} reviews re-sent and found, \
         {} pool opens or closes that met a running pool operation (409 POOL_LOCKED_BY_ANOTHER_OPERATION); \
         tasks per pool {:?}, {} bonuses, {} decisions; total {:?}",
        crashed.fake.request_count(),
        crashed.fake.faults_injected(),
        crashed.fake.operation_repeats(),
        crashed.fake.review_repeats(),
        crashed.fake.lock_refusals(),
        got.tasks,
        got.bonuses.values().map(Vec::len).sum::<usize>(),
        got.decisions.len(),
        started.elapsed(),
    );
    print!("{crashed_out}");
}

#[test]
fn without_a_token_the_example_refuses_to_run() {
    let output = Command::new(common::example("toloka_pipeline"))
        .args([
            "--submit-pool",
            "1",
            "--validate-pool",
            "2",
            "--quality-pool",
            "3",
        ])
        .arg("--db")
        .arg(std::env::temp_dir().join("crowdcore-toloka-pipeline-no-token/pipeline.db"))
        .env_remove("TOLOKA_API_KEY")
        .env_remove("TOLOKA_OAUTH_TOKEN")
        .output()
        .expect("runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("no Toloka token"), "{stderr}");
}

#[test]
fn the_real_sandbox_is_opt_in() {
    if std::env::var("CROWDCORE_TOLOKA_SANDBOX").as_deref() != Ok("1") {
        eprintln!(
            "skipped: set CROWDCORE_TOLOKA_SANDBOX=1, TOLOKA_API_KEY and CROWDCORE_TOLOKA_POOLS=submit,validate,quality (sandbox pool ids) to run toloka_pipeline against the Toloka sandbox"
        );
        return;
    }
    let pools = std::env::var("CROWDCORE_TOLOKA_POOLS").expect("CROWDCORE_TOLOKA_POOLS");
    let pools: Vec<&str> = pools.split(',').map(str::trim).collect();
    assert_eq!(
        pools.len(),
        3,
        "CROWDCORE_TOLOKA_POOLS=submit,validate,quality"
    );
    let dir = tempfile::tempdir().expect("temp dir");
    // Real workers are slow: poll every 10 s and stop after the first pass with Ctrl-C's
    // equivalent is not available here, so the run ends when the pools are drained.
    let output = Command::new(common::example("toloka_pipeline"))
        .args(["--base-url", crowdcore_toloka::SANDBOX_URL])
        .args([
            "--submit-pool",
            pools[0],
            "--validate-pool",
            pools[1],
            "--quality-pool",
            pools[2],
        ])
        .arg("--db")
        .arg(dir.path().join("pipeline.db"))
        .args(["--period-s", "10", "--lag-s", "60"])
        .output()
        .expect("runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    print!("{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_stops_after_the_tick_and_the_next_run_resumes_at_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let w = world(env_u64("CROWDCORE_TOLOKA_CROWD_SEED", DEFAULT_CROWD_SEED)).await;
    let db = dir.path().join("pipeline.db");
    let log = dir.path().join("first.log");
    let mut child = command(&w, &db, &log).spawn().expect("example starts");
    // Interrupt once the validate stage has tasks (mid-flow).
    let deadline = Instant::now() + Duration::from_secs(60);
    while w.fake.task_ids(&w.pools[1]).is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let sent = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(sent.success());
    let status = wait(&mut child, Duration::from_secs(60)).await;
    let stdout = std::fs::read_to_string(log.with_extension("out")).expect("stdout");
    let stderr = std::fs::read_to_string(&log).expect("stderr");
    // 0 if every decision made so far was carried out, 2 if some are still pending (a fault
    // in the last tick): then they are listed.
    match status.code() {
        Some(0) => assert!(!stderr.contains("pending:"), "{stderr}"),
        Some(2) => assert!(stderr.contains("pending:"), "{stderr}"),
        other => panic!("exit {other:?}: {stdout}\n{stderr}"),
    }
    assert!(stdout.contains("stopped by Ctrl-C"), "{stdout}");
    assert!(stdout.contains("stage\tdecision\tdone"), "{stdout}");
    let decisions = std::fs::read_to_string(dir.path().join("decisions.tsv")).expect("decisions");
    assert!(decisions.lines().count() > 1, "{decisions}");

    // The lease was given up: the next run starts without waiting and finishes the flow.
    let second = run_to_end(&w, &db, 2).await;
    let stderr = std::fs::read_to_string(dir.path().join("run-2.log")).expect("log");
    assert!(!stderr.contains("waiting"), "{stderr}");
    let got = outcome(&w, dir.path()).await;
    assert_eq!(got.tasks[0], PLACES);
    assert!(
        report(&second)
            .iter()
            .any(|l| l.starts_with("submit\taccept"))
    );
}

/// Runs the example once to its end; returns its exit status, stdout and stderr.
async fn run_once(w: &World, db: &Path) -> (std::process::ExitStatus, String, String) {
    let log = db.with_file_name("run.log");
    let mut child = command(w, db, &log).spawn().expect("example starts");
    let status = wait(&mut child, Duration::from_secs(240)).await;
    let stdout = std::fs::read_to_string(log.with_extension("out")).unwrap_or_default();
    let stderr = std::fs::read_to_string(&log).unwrap_or_default();
    (status, stdout, stderr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decisions_that_fail_for_good_make_the_run_exit_non_zero_and_are_listed() {
    let dir = tempfile::tempdir().expect("temp dir");
    // No money: every acceptance and bonus is refused for good (409 NOT_ENOUGH_BALANCE);
    // rejections and task creations go through, and the pools still close and drain.
    let w = world_with(
        DEFAULT_CROWD_SEED,
        |c| c.balance = Usd::from_cents(0),
        validate_inputs(),
    )
    .await;
    let (status, stdout, stderr) = run_once(&w, &dir.path().join("pipeline.db")).await;
    assert_eq!(status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(!stdout.contains("all pools closed and drained"), "{stdout}");
    assert!(
        stdout.contains("not every decision was carried out"),
        "{stdout}"
    );
    let failed: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("failed: "))
        .collect();
    assert!(!failed.is_empty(), "{stderr}");
    assert!(
        failed
            .iter()
            .all(|l| l.contains("\taccept\t") || l.contains("\tbonus\t")),
        "{failed:?}"
    );
    assert!(
        failed.iter().all(|l| l.contains("NOT_ENOUGH_BALANCE")),
        "{failed:?}"
    );
    assert!(
        failed
            .iter()
            .any(|l| l.starts_with("failed: submit\taccept\t")),
        "{failed:?}"
    );
    assert!(
        stderr.contains(&format!(
            "error: {} decision(s) failed for good",
            failed.len()
        )),
        "{stderr}"
    );
    // The report's failed column agrees.
    let failed_in_report: u64 = report(&stdout)
        .iter()
        .filter_map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (f.len() == 5).then(|| f[4].parse::<u64>().ok()).flatten()
        })
        .sum();
    assert_eq!(failed_in_report, failed.len() as u64, "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decisions_left_pending_make_a_stopped_run_exit_non_zero_and_are_listed() {
    let dir = tempfile::tempdir().expect("temp dir");
    let w = world(DEFAULT_CROWD_SEED).await;
    w.fake.set_faults(FaultPlan::none());
    // Every task creation meets a spent daily quota: a retryable refusal, returned at once,
    // so the decisions stay pending.
    w.fake.inject(
        Some(axum::http::Method::POST),
        "/tasks",
        Fault::QuotaExhausted,
        u32::MAX,
    );
    let db = dir.path().join("pipeline.db");
    let log = dir.path().join("run.log");
    let before = w.fake.request_count();
    let mut child = command(&w, &db, &log).spawn().expect("example starts");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !w.fake.requests()[before..]
        .iter()
        .any(|r| r.method == "POST" && r.path == "/tasks")
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let sent = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(sent.success());
    let status = wait(&mut child, Duration::from_secs(60)).await;
    let stdout = std::fs::read_to_string(log.with_extension("out")).expect("stdout");
    let stderr = std::fs::read_to_string(&log).expect("stderr");
    assert_eq!(status.code(), Some(2), "{stdout}\n{stderr}");
    assert!(stdout.contains("stopped by Ctrl-C"), "{stdout}");
    let pending: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("pending: "))
        .collect();
    assert!(
        pending
            .iter()
            .any(|l| l.starts_with("pending: validate\tcreate_tasks\t")),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "error: {} decision(s) still pending",
            pending.len()
        )),
        "{stderr}"
    );
    assert!(w.fake.task_ids(&w.pools[1]).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_misdeclared_project_stops_the_run_before_anything_is_created() {
    let dir = tempfile::tempdir().expect("temp dir");
    // The validate project declares the old single field list, every field required (Toloka's
    // default): `items` is never written to a validate task, so every one would be refused.
    let mut validate = validate_inputs();
    validate["items"] = json!({ "type": "array_string" });
    let w = world_with(DEFAULT_CROWD_SEED, |_| {}, validate).await;
    w.fake.set_faults(FaultPlan::none());
    let before = w.fake.request_count();
    let (status, stdout, stderr) = run_once(&w, &dir.path().join("pipeline.db")).await;
    assert_eq!(status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stderr.contains("stage validate"), "{stderr}");
    assert!(stderr.contains("\"items\" is required"), "{stderr}");
    let sent = &w.fake.requests()[before..];
    assert!(sent.iter().all(|r| r.method == "GET"), "{sent:?}");
    assert!(w.fake.task_ids(&w.pools[1]).is_empty());
    assert!(
        !dir.path().join("pipeline.db").exists(),
        "the store is not even created"
    );
}
