//! A whole Pavilion session through the engine on MTurk (the fake): simulated workers find the
//! HITs, accept, land on the page (the engine hears `arrive`), heartbeat, submit or return at
//! the fake; the engine posts, approves, pays bonuses and expires through `MturkPlatform`, and
//! polls it for assignment updates. With seeded faults at the fake, and with the process
//! crashing at a store write (engine and platform started afresh), the session ends with the
//! same ledger and the same money at MTurk, and nothing done twice. Fed by push notifications
//! through the fake SQS queue instead of polling (with and without SQS faults), it ends the
//! same too.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crowdcore::clock::{Clock, VirtualClock};
use crowdcore::engine::{Engine, EngineBuilder, EngineConfig, EngineError, RetryPolicy};
use crowdcore::pavilion::{Departure, Effect, EffectKind, SeatState};
use crowdcore::platform::{AssignmentUpdate, Platform};
use crowdcore::store::{FailMode, FailingStore, MemoryStore, Store};
use crowdcore::testkit::{
    self, Fed, Market, Op, Payment, Plan, Rig, Sim, SimState, Write, done_hires, payments,
    run_crowd, study_config, study_crowd,
};
use crowdcore::{AssignmentId, HitId, SessionId, Timestamp, WorkerId};
use crowdcore_mturk::{MturkConfig, NotificationReader};

use crate::fake::DEFAULT_VISIBILITY_S;
use crate::fake::FakeMturk;
use crate::{FAULT_LATE_MS, T0, fault_config, platform_with, push_config, reader_with, spec};

const SESSION: &str = "mturk-session";

fn at(secs: u64) -> Timestamp {
    T0.plus_millis(secs * 1_000)
}

/// The shared study ([`crowdcore::testkit::study_config`]) with short engine retries, so that
/// faults settle well inside the 10 s grid.
fn engine_config() -> EngineConfig {
    let mut config = study_config(spec());
    config.retry = RetryPolicy {
        base_ms: 20,
        max_ms: 400,
    };
    config
}

/// The process's side of the session, for the shared host: when the store fails the process
/// "dies", and a new platform instance starts with the new engine on the same store and fake.
/// In push mode, the engine is fed from the queue before each advance.
struct Mturk {
    fake: FakeMturk,
    /// Restarts that found a HIT at MTurk whose hire the store had not recorded: a crash
    /// between the create and its record.
    orphans: u32,
    mturk: MturkConfig,
    /// Push mode: the queue the engine is fed from before each advance.
    reader: Option<Arc<NotificationReader>>,
    /// Events handed to the engine from the queue.
    pushed_events: usize,
    /// The store's write counter, and the numbers of the writes that recorded pushed updates.
    counter: Option<Arc<FailingStore>>,
    push_writes: Vec<u64>,
}

type Host = testkit::Host<Mturk>;

/// A host on the fake, its engine started.
async fn start_host(
    fake: FakeMturk,
    mturk: MturkConfig,
    store: Arc<dyn Store>,
    clock: VirtualClock,
) -> Host {
    let rig = Mturk {
        fake,
        orphans: 0,
        mturk,
        reader: None,
        pushed_events: 0,
        counter: None,
        push_writes: Vec::new(),
    };
    Host::new(rig, store, engine_config(), clock, SessionId::new(SESSION))
        .started()
        .await
}

impl Mturk {
    /// Hires pending in the store whose HIT MTurk already has.
    async fn count_orphans(&mut self, store: &Arc<dyn Store>) {
        let Ok(pending) = store.pending(&SessionId::new(SESSION)).await else {
            return;
        };
        let annotations: Vec<String> = self
            .fake
            .hits()
            .into_iter()
            .filter_map(|h| h.annotation)
            .collect();
        for entry in pending {
            let effect: Effect = serde_json::from_str(&entry.body).unwrap();
            let posted = annotations.contains(&format!("crowdcore:{}", effect.id));
            if matches!(effect.kind, EffectKind::Hire { .. }) && posted {
                self.orphans += 1;
            }
        }
    }
}

#[async_trait::async_trait(?Send)]
impl Rig for Mturk {
    async fn platform(&mut self, store: &Arc<dyn Store>, restart: bool) -> Arc<dyn Platform> {
        if restart {
            self.count_orphans(store).await;
        }
        Arc::new(platform_with(self.mturk.clone()).await)
    }

    /// Push mode: hands everything visible on the queue to the engine. A message whose
    /// hand-over or delete failed comes again after its visibility timeout.
    async fn feed(&mut self, engine: &mut Engine) -> Fed {
        let Some(reader) = self.reader.clone() else {
            return Fed {
                store_failed: false,
                done: true,
            };
        };
        let mut store_failed = false;
        let counter = self.counter.clone();
        let push_writes = &mut self.push_writes;
        let result = reader
            .pump(&mut async |u: &[AssignmentUpdate]| {
                if let (Some(c), false) = (&counter, u.is_empty()) {
                    push_writes.push(c.writes() + 1);
                }
                let pushed = engine.push_updates(u).await;
                store_failed |= matches!(pushed, Err(EngineError::Store(_)));
                pushed
            })
            .await;
        let done = match result {
            Ok(stats) => {
                self.pushed_events += stats.events;
                stats.received == 0
            }
            Err(e) => {
                assert!(e.is_retryable(), "{e}");
                false
            }
        };
        Fed { store_failed, done }
    }
}

/// The crowd of crowdcore's engine tests without the workers who first look at 125, 245, 395,
/// 435 and 545 s: first looks at 5 s past each 10 s, page actions on each 10 s.
fn crowd() -> Vec<(u64, Plan)> {
    study_crowd()
        .into_iter()
        .filter(|(first, _)| ![125, 245, 395, 435, 545].contains(first))
        .collect()
}

const END_S: u64 = 600;

async fn run_workload(host: &mut Host, fake: &FakeMturk) {
    let mut crowd = Sim::crowd(T0, crowd());
    run_crowd(host, fake, &mut crowd, T0, at(END_S)).await;
    host.call(Op::Expire).await.expect("expire");
    host.call(Op::Stop).await.expect("stop");
    // Pages of released workers submit to MTurk (that is how a released worker gets paid);
    // turned-away workers give their slot back.
    for sim in &mut crowd {
        if let SimState::Holding { assignment, .. } = &sim.state {
            match host.engine().machine().seat_of(assignment) {
                Some(SeatState::Left(Departure::Released)) => {
                    fake.submit(assignment.as_str(), "released")
                        .expect("submit");
                }
                Some(SeatState::Left(Departure::TurnedAway)) => {
                    fake.return_assignment(assignment.as_str()).expect("return");
                }
                _ => {}
            }
            sim.state = SimState::Gone;
        }
    }
    host.settle().await;
}

/// The workers' side of MTurk: a released worker's page submits (MTurk pays on approval of a
/// submitted assignment).
impl Market for FakeMturk {
    fn find(&self, worker: &WorkerId) -> Option<HitId> {
        self.available(worker.as_str())
            .into_iter()
            .next()
            .map(HitId::new)
    }

    fn accept(&self, worker: &WorkerId, hit: &HitId) -> Result<AssignmentId, String> {
        FakeMturk::accept(self, worker.as_str(), hit.as_str()).map(AssignmentId::new)
    }

    fn submit(&self, assignment: &AssignmentId, answer: &str) -> Result<(), String> {
        FakeMturk::submit(self, assignment.as_str(), answer)
    }

    fn give_back(&self, assignment: &AssignmentId) -> Result<(), String> {
        self.return_assignment(assignment.as_str())
    }

    fn released(&self, assignment: &AssignmentId) -> Result<(), String> {
        FakeMturk::submit(self, assignment.as_str(), "released")
    }
}

#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    ledger: Vec<Payment>,
    /// (HIT, assignments, expired).
    hits: Vec<(String, u32, bool)>,
    /// (worker, assignment, cents).
    bonuses: Vec<(String, String, i64)>,
    /// Assignment statuses at MTurk.
    statuses: Vec<(String, String)>,
    earnings: BTreeMap<String, i64>,
    balance: i64,
}

async fn outcome(host: &mut Host, fake: &FakeMturk) -> Outcome {
    let ledger = host.engine().ledger().await.expect("ledger");
    let payments = payments(&ledger);
    let now = host.clock.now().as_millis();
    let w = fake.world();
    let mut bonuses: Vec<_> = w
        .bonuses
        .iter()
        .map(|b| (b.worker.clone(), b.assignment.clone(), b.cents))
        .collect();
    bonuses.sort();
    Outcome {
        ledger: payments,
        hits: w
            .hits
            .values()
            .map(|h| (h.id.clone(), h.max_assignments, h.expires_ms <= now))
            .collect(),
        bonuses,
        statuses: w
            .assignments
            .values()
            .map(|a| (a.id.clone(), format!("{:?}", a.status)))
            .collect(),
        earnings: w.earnings.iter().map(|(k, v)| (k.clone(), *v)).collect(),
        balance: w.balance_cents,
    }
}

/// Nothing done twice, nothing lost: every platform effect done, one HIT per hire (by
/// annotation), one bonus per bonus entry and token, every base pay approved at MTurk, and
/// MTurk's earnings equal to the ledger.
async fn check_done_once(host: &mut Host, fake: &FakeMturk) {
    let mut hires: Vec<String> = done_hires(host)
        .await
        .iter()
        .map(|id| format!("crowdcore:{id}"))
        .collect();
    let mut annotations: Vec<String> = fake
        .hits()
        .into_iter()
        .map(|h| h.annotation.expect("every HIT is annotated"))
        .collect();
    annotations.sort();
    hires.sort();
    assert_eq!(annotations, hires, "one HIT per hire");

    let ledger = host.engine().ledger().await.unwrap();
    assert!(
        ledger.iter().all(|e| e.paid),
        "a payment failed: {ledger:?}"
    );
    let bonuses = fake.bonuses();
    assert_eq!(
        bonuses.len(),
        ledger.iter().filter(|e| e.kind != "base").count(),
        "bonuses at MTurk vs the ledger"
    );
    let mut tokens: Vec<_> = bonuses.iter().filter_map(|b| b.token.clone()).collect();
    tokens.sort();
    tokens.dedup();
    assert_eq!(tokens.len(), bonuses.len(), "a bonus token paid twice");
    for e in ledger.iter().filter(|e| e.kind == "base") {
        let a = e
            .assignment
            .as_ref()
            .expect("base pay names its assignment");
        let status = fake.assignment(a.as_str()).map(|a| a.status);
        assert_eq!(status, Some(crate::fake::Status::Approved), "{a}");
    }
    let mut owed: BTreeMap<String, i64> = BTreeMap::new();
    for e in &ledger {
        *owed.entry(e.worker.to_string()).or_default() += e.amount.minor;
    }
    for (worker, amount) in &owed {
        assert_eq!(fake.earnings(worker), *amount, "earnings of {worker}");
    }
}

async fn run(seed: Option<u64>, crash_at: Option<(u64, FailMode)>) -> (Outcome, FakeMturk, u32) {
    let clock = VirtualClock::new(T0);
    let fake = FakeMturk::start(Arc::new(clock.clone()), 1_000_000).await;
    if let Some(seed) = seed {
        fake.set_faults(seed, 0.2, FAULT_LATE_MS);
    }
    let mut mturk = fault_config(&fake);
    mturk.scope = Some(SESSION.into());
    let memory: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let store: Arc<dyn Store> = match crash_at {
        Some((n, mode)) => Arc::new(FailingStore::new(memory, Some(n), mode)),
        None => memory,
    };
    let mut host = start_host(fake.clone(), mturk, store, clock).await;
    run_workload(&mut host, &fake).await;
    fake.clear_faults_keep_counts();
    check_done_once(&mut host, &fake).await;
    let outcome = outcome(&mut host, &fake).await;
    (outcome, fake, host.rig.orphans)
}

#[tokio::test]
async fn a_pavilion_session_ends_the_same_with_faults_as_without() {
    let (baseline, clean, orphans) = run(None, None).await;
    assert_eq!(orphans, 0);
    assert!(baseline.hits.len() >= 3, "{:?}", baseline.hits);
    assert!(baseline.hits.iter().all(|h| h.2), "every HIT expired");
    assert!(
        baseline.ledger.len() > 20,
        "{} payments",
        baseline.ledger.len()
    );
    assert!(!baseline.bonuses.is_empty());
    let calls = clean.operations().len();
    assert!(calls > 100, "only {calls} calls");
    let mut late = 0;
    for seed in 1..=4 {
        let (faulted, fake, _) = run(Some(seed), None).await;
        let counts = fake.fault_counts();
        assert!(counts.total() > 10, "seed {seed}: {counts:?}");
        assert_eq!(faulted, baseline, "seed {seed}: {counts:?}");
        late += counts.late;
    }
    assert!(late > 0);
}

/// The session fed by push notifications (no polling), with SQS faults drawn from `sqs_seed`.
async fn run_push(sqs_seed: Option<u64>) -> (Outcome, FakeMturk, usize) {
    let (outcome, fake, events, _) = run_push_crashing(sqs_seed, None).await;
    (outcome, fake, events)
}

/// [`run_push`] with the process dying at store write `crash_at`; also returns the numbers of
/// the store writes that recorded pushed updates (with a failing store).
async fn run_push_crashing(
    sqs_seed: Option<u64>,
    crash_at: Option<(u64, FailMode)>,
) -> (Outcome, FakeMturk, usize, Vec<u64>) {
    let clock = VirtualClock::new(T0);
    let fake = FakeMturk::start(Arc::new(clock.clone()), 1_000_000).await;
    if let Some(seed) = sqs_seed {
        fake.set_sqs_faults(seed, 0.2);
    }
    let mut mturk = push_config(fault_config(&fake), &fake);
    mturk.scope = Some(SESSION.into());
    let reader = Arc::new(reader_with(&mturk).await);
    let memory: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let failing =
        crash_at.map(|(n, mode)| Arc::new(FailingStore::new(memory.clone(), Some(n), mode)));
    let store: Arc<dyn Store> = match &failing {
        Some(f) => f.clone(),
        None => memory,
    };
    let mut host = start_host(fake.clone(), mturk, store, clock.clone()).await;
    host.rig.reader = Some(reader);
    host.rig.counter = failing.clone();
    run_workload(&mut host, &fake).await;
    // What is still hidden (a failed delete, a failed hand-over) comes after its timeout.
    for _ in 0..100 {
        if fake.undelivered() == (0, 0) {
            break;
        }
        clock.advance(DEFAULT_VISIBILITY_S * 1000);
        host.feed().await;
    }
    assert_eq!(fake.undelivered(), (0, 0), "the queue drained");
    check_done_once(&mut host, &fake).await;
    let outcome = outcome(&mut host, &fake).await;
    (outcome, fake, host.rig.pushed_events, host.rig.push_writes)
}

#[tokio::test]
async fn a_pavilion_session_fed_by_push_notifications_ends_as_the_polled_one() {
    let (baseline, polled, _) = run(None, None).await;
    assert!(!polled.requests("ListAssignmentsForHIT").is_empty());
    for seed in [None, Some(1), Some(2)] {
        let (pushed, fake, events) = run_push(seed).await;
        assert_eq!(pushed, baseline, "SQS faults {seed:?}");
        assert!(
            fake.requests("ListAssignmentsForHIT").is_empty(),
            "the engine polled"
        );
        let emitted = fake.emitted().len();
        assert!(emitted > 20, "{emitted} events");
        // Every event handed over, some twice when SQS redelivered.
        assert!(events >= emitted, "{events} of {emitted} events pushed");
        if seed.is_some() {
            let counts = fake.sqs_fault_counts();
            assert!(counts.throttled + counts.server_errors > 0, "{counts:?}");
        } else {
            assert_eq!(events, emitted);
        }
    }
}

#[tokio::test]
async fn a_crash_while_pushing_changes_nothing() {
    let (baseline, _, _) = run(None, None).await;
    // Which store writes record pushed updates, in a run that never fails.
    let (clean, _, _, push_writes) =
        run_push_crashing(None, Some((u64::MAX, FailMode::Before))).await;
    assert_eq!(clean, baseline);
    assert!(push_writes.len() > 10, "{push_writes:?}");
    // The process dies at some of them (before and after the write): the message stays on the
    // queue, comes again after its visibility timeout, and the session ends the same.
    let step = push_writes.len() / 4;
    for &n in push_writes.iter().step_by(step) {
        for mode in [FailMode::Before, FailMode::After] {
            let (crashed, fake, _, _) = run_push_crashing(None, Some((n, mode))).await;
            assert_eq!(crashed, baseline, "crash at write {n} ({mode:?})");
            let again = fake
                .world()
                .queue
                .iter()
                .filter(|m| m.receipts.len() > 1)
                .count();
            assert!(
                again > 0,
                "crash at write {n} ({mode:?}): nothing came again"
            );
        }
    }
}

#[tokio::test]
async fn a_crash_at_each_early_store_write_changes_nothing() {
    let (baseline, _, _) = run(None, None).await;
    let mut orphans = 0;
    for n in 1..=4 {
        for mode in [FailMode::Before, FailMode::After] {
            let (crashed, fake, found) = run(None, Some((n, mode))).await;
            assert_eq!(crashed, baseline, "crash at write {n} ({mode:?})");
            // Found by annotation: the fresh platform did not even send the create again.
            assert_eq!(
                fake.requests("CreateHITWithHITType").len(),
                fake.hits().len(),
                "crash at write {n} ({mode:?})"
            );
            orphans += found;
        }
    }
    assert!(orphans > 0, "no crash fell between a create and its record");
}

/// A store that loses the record of the `k`-th posted hire: the process dies after MTurk made
/// the HIT and before the store learnt of it.
fn lose_hire_record(k: u64) -> FailingStore {
    let seen = AtomicU64::new(0);
    testkit::fail_when(Arc::new(MemoryStore::new()), move |_, write| {
        let Write::Complete { completion, .. } = write else {
            return None;
        };
        let posted = completion
            .inputs
            .iter()
            .any(|i| i.body.contains("\"hire_posted\""));
        (posted && seen.fetch_add(1, Ordering::SeqCst) + 1 == k).then_some(FailMode::Before)
    })
}

#[tokio::test]
async fn a_crash_between_any_create_and_its_record_posts_nothing_twice() {
    let (baseline, _, _) = run(None, None).await;
    let hires = baseline.hits.len() as u64;
    for k in 1..=hires {
        let clock = VirtualClock::new(T0);
        let fake = FakeMturk::start(Arc::new(clock.clone()), 1_000_000).await;
        let mut mturk = fault_config(&fake);
        mturk.scope = Some(SESSION.into());
        let store: Arc<dyn Store> = Arc::new(lose_hire_record(k));
        let mut host = start_host(fake.clone(), mturk, store, clock).await;
        run_workload(&mut host, &fake).await;
        check_done_once(&mut host, &fake).await;
        assert_eq!(
            host.rig.orphans, 1,
            "hire {k}: the restart found its HIT unrecorded"
        );
        assert_eq!(outcome(&mut host, &fake).await, baseline, "hire {k}");
        assert_eq!(
            fake.requests("CreateHITWithHITType").len() as u64,
            hires,
            "hire {k}: found by annotation, not sent again"
        );
    }
}

/// What MTurk alone knows reaches the engine through the queue: workers who return or submit
/// at MTurk without their page telling the engine leave their seats on the pushed events, and
/// the engine never polls.
#[tokio::test]
async fn returns_and_submissions_only_mturk_saw_reach_the_engine_by_push() {
    let clock = VirtualClock::new(T0);
    let fake = FakeMturk::start(Arc::new(clock.clone()), 1_000_000).await;
    let mut mturk = push_config(fault_config(&fake), &fake);
    mturk.scope = Some(SESSION.into());
    let reader = Arc::new(reader_with(&mturk).await);
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let mut host = start_host(fake.clone(), mturk, store, clock.clone()).await;
    host.rig.reader = Some(reader);
    host.call(Op::Start).await.expect("start");
    host.settle().await;
    let mut seats = Vec::new();
    for (i, hit) in fake
        .hits()
        .iter()
        .flat_map(|h| std::iter::repeat_n(h.id.clone(), h.max_assignments as usize))
        .take(2)
        .enumerate()
    {
        let worker = WorkerId::new(format!("W{i}"));
        let a = AssignmentId::new(fake.accept(worker.as_str(), &hit).expect("accept"));
        host.call(Op::Arrive(worker, a.clone(), HitId::new(hit)))
            .await
            .expect("arrive");
        seats.push(a);
    }
    assert!(
        seats
            .iter()
            .all(|a| !matches!(host.engine().machine().seat_of(a), Some(SeatState::Left(_)))),
        "both seated"
    );
    // Their pages never tell the engine.
    fake.return_assignment(seats[0].as_str()).expect("return");
    fake.submit(seats[1].as_str(), "done").expect("submit");
    clock.advance(1_000);
    host.call(Op::Advance).await.expect("advance");
    assert_eq!(
        host.engine().machine().seat_of(&seats[0]),
        Some(SeatState::Left(Departure::Returned))
    );
    assert_eq!(
        host.engine().machine().seat_of(&seats[1]),
        Some(SeatState::Left(Departure::Submitted))
    );
    // The submission was paid at once: its approval came through the queue too.
    let kinds: Vec<String> = fake
        .emitted()
        .iter()
        .map(|e| e["EventType"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(
        kinds,
        [
            "AssignmentReturned",
            "AssignmentSubmitted",
            "AssignmentApproved"
        ]
    );
    assert_eq!(host.rig.pushed_events, 3);
    assert!(fake.requests("ListAssignmentsForHIT").is_empty());
    assert_eq!(fake.undelivered(), (0, 0));
}

/// An engine running in its own task takes pushed updates through its handle: a return only
/// MTurk saw empties the seat, and the same message delivered again is refused harmlessly.
#[tokio::test]
async fn pushed_updates_reach_an_engine_through_its_handle() {
    let clock = VirtualClock::new(T0);
    let fake = FakeMturk::start(Arc::new(clock.clone()), 1_000_000).await;
    let mut mturk = push_config(fault_config(&fake), &fake);
    mturk.scope = Some(SESSION.into());
    let reader = reader_with(&mturk).await;
    let platform = Arc::new(platform_with(mturk).await);
    let mut engine = EngineBuilder::new(platform, Arc::new(MemoryStore::new()), engine_config())
        .session(SessionId::new(SESSION))
        .clock(Arc::new(clock.clone()))
        .start()
        .await
        .expect("engine");
    engine.start().await.expect("start");
    let hit = fake.hits()[0].id.clone();
    let a = AssignmentId::new(fake.accept("W1", &hit).expect("accept"));
    engine
        .arrive(WorkerId::new("W1"), a.clone(), HitId::new(hit.as_str()))
        .await
        .expect("arrive");
    let handle = engine.spawn();
    fake.return_assignment(a.as_str()).expect("return");

    let mut sink = async |u: &[AssignmentUpdate]| crowdcore_mturk::push_to_handle(&handle, u).await;
    let stats = reader.pump(&mut sink).await.expect("receive");
    assert_eq!((stats.updates, stats.deleted), (1, 1));
    let seat = {
        let a = a.clone();
        handle.read(move |m| m.seat_of(&a)).await.expect("read")
    };
    assert_eq!(seat, Some(SeatState::Left(Departure::Returned)));

    // The same event again (SQS delivered it twice): refused by the engine, handed over fine.
    let update = AssignmentUpdate {
        assignment: a.clone(),
        worker: WorkerId::new(""),
        hit: HitId::new(hit.as_str()),
        status: crowdcore::platform::AssignmentStatus::Returned,
        at: clock.now(),
    };
    let direct = handle
        .input(crowdcore::pavilion::Input::Return {
            assignment: a.clone(),
        })
        .await;
    assert!(
        matches!(direct, Err(crowdcore::engine::HandleError::Rejected(_))),
        "the engine refuses it: {direct:?}"
    );
    crowdcore_mturk::push_to_handle(&handle, std::slice::from_ref(&update))
        .await
        .expect("a repeated departure is harmless");
    assert!(!handle.is_finished());
}
