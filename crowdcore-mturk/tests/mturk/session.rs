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

use crowdcore::clock::{Clock, VirtualClock};
use crowdcore::engine::{Engine, EngineBuilder, EngineConfig, EngineError, RetryPolicy};
use crowdcore::pavilion::{Departure, Effect, EffectKind, PavilionConfig, SeatState};
use crowdcore::platform::{AssignmentUpdate, Cursor};
use crowdcore::store::{
    Completion, FailMode, FailingStore, LedgerEntry, LogRecord, MemoryStore, NewEffect, NewInput,
    OutboxEntry, OutboxState, Store, StoreError, StoredSnapshot,
};
use crowdcore::{AssignmentId, EffectId, HitId, SessionId, Timestamp, WorkerId};
use crowdcore_mturk::{MturkConfig, NotificationReader};

use crate::fake::DEFAULT_VISIBILITY_S;
use crate::fake::FakeMturk;
use crate::{FAULT_LATE_MS, T0, fault_config, platform_with, push_config, reader_with, spec};

const SESSION: &str = "mturk-session";

fn at(secs: u64) -> Timestamp {
    T0.plus_millis(secs * 1_000)
}

/// Two active and two waiting seats; 50 ¢ base, 6 ¢ a minute waiting, 12 ¢ active, 5 ¢ a
/// contribution; short engine retries so that faults settle well inside the 10 s grid.
fn engine_config() -> EngineConfig {
    let pavilion = PavilionConfig {
        min_active: 1,
        max_active: 2,
        min_waiting: 1,
        max_waiting: 2,
        heartbeat_timeout_ms: 30_000,
        base_pay_cents: 50,
        waiting_cents_per_minute: 6,
        active_cents_per_minute: 12,
        per_contribution_cents: 5,
        ..PavilionConfig::default()
    };
    let mut config = EngineConfig::new(spec(), pavilion);
    config.retry = RetryPolicy {
        base_ms: 20,
        max_ms: 400,
    };
    config.observe_every_ms = 10_000;
    config.snapshot_every = 7;
    config
}

#[derive(Debug, Clone)]
enum Op {
    Start,
    Stop,
    Expire,
    Advance,
    Arrive(WorkerId, AssignmentId, HitId),
    Heartbeat(AssignmentId),
    Submit(AssignmentId, u32),
    Return(AssignmentId),
}

/// Drives the session; when the store fails, the process "dies": a new platform instance and a
/// new engine start on the same store and fake, and the call is made again.
struct Host {
    fake: FakeMturk,
    /// Restarts that found a HIT at MTurk whose hire the store had not recorded: a crash
    /// between the create and its record.
    orphans: u32,
    /// The first engine started.
    started: bool,
    mturk: MturkConfig,
    store: Arc<dyn Store>,
    clock: VirtualClock,
    engine: Option<Engine>,
    restarts: u32,
    /// Push mode: the queue the engine is fed from before each advance.
    reader: Option<Arc<NotificationReader>>,
    /// Events handed to the engine from the queue.
    pushed_events: usize,
    /// The store's write counter, and the numbers of the writes that recorded pushed updates.
    counter: Option<Arc<FailingStore>>,
    push_writes: Vec<u64>,
}

impl Host {
    async fn new(
        fake: FakeMturk,
        mturk: MturkConfig,
        store: Arc<dyn Store>,
        clock: VirtualClock,
    ) -> Self {
        let mut host = Self {
            fake,
            orphans: 0,
            started: false,
            mturk,
            store,
            clock,
            engine: None,
            restarts: 0,
            reader: None,
            pushed_events: 0,
            counter: None,
            push_writes: Vec::new(),
        };
        host.ensure().await;
        host.restarts = 0;
        host.started = true;
        host
    }

    /// Hires pending in the store whose HIT MTurk already has.
    async fn count_orphans(&mut self) {
        let Ok(pending) = self.store.pending(&SessionId::new(SESSION)).await else {
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

    fn engine(&mut self) -> &mut Engine {
        self.engine.as_mut().expect("the engine runs between calls")
    }

    async fn ensure(&mut self) {
        for _ in 0..10 {
            if self.engine.is_some() {
                return;
            }
            if self.started {
                self.count_orphans().await;
            }
            self.restarts += 1;
            let platform = Arc::new(platform_with(self.mturk.clone()).await);
            let started = EngineBuilder::new(platform, self.store.clone(), engine_config())
                .session(SessionId::new(SESSION))
                .clock(Arc::new(self.clock.clone()))
                .start()
                .await;
            let mut engine = match started {
                Ok(engine) => engine,
                Err(EngineError::Store(_)) => continue,
                Err(e) => panic!("recovery failed: {e}"),
            };
            match engine.advance().await {
                Ok(()) => self.engine = Some(engine),
                Err(EngineError::Store(_)) => {}
                Err(e) => panic!("catching up after recovery failed: {e}"),
            }
        }
        assert!(self.engine.is_some(), "the engine never came back");
    }

    /// Push mode: hands everything visible on the queue to the engine. A message whose
    /// hand-over or delete failed comes again after its visibility timeout.
    async fn pump(&mut self) {
        let Some(reader) = self.reader.clone() else {
            return;
        };
        for _ in 0..1_000 {
            self.ensure().await;
            let engine = self.engine.as_mut().expect("ensured above");
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
            if store_failed {
                self.engine = None;
            }
            match result {
                Ok(stats) => {
                    self.pushed_events += stats.events;
                    if stats.received == 0 {
                        return;
                    }
                }
                Err(e) => assert!(e.is_retryable(), "{e}"),
            }
        }
        panic!("the queue never emptied");
    }

    async fn call(&mut self, op: Op) -> Result<(), EngineError> {
        if matches!(op, Op::Advance) {
            self.pump().await;
        }
        let mut repeated = false;
        for _ in 0..10 {
            self.ensure().await;
            let engine = self.engine();
            let result = match op.clone() {
                Op::Start => engine.start().await,
                Op::Stop => engine.stop().await,
                Op::Expire => engine.expire().await,
                Op::Advance => engine.advance().await,
                Op::Arrive(w, a, h) => engine.arrive(w, a, h).await,
                Op::Heartbeat(a) => engine.heartbeat(a).await,
                Op::Submit(a, n) => engine.submit(a, n).await,
                Op::Return(a) => engine.return_assignment(a).await,
            };
            match result {
                Err(EngineError::Store(_)) => {
                    self.engine = None;
                    repeated = true;
                }
                Err(EngineError::Rejected(_)) if repeated => return Ok(()),
                other => return other,
            }
        }
        panic!("{op:?} failed ten times");
    }

    async fn next_wakeup(&mut self) -> Option<Timestamp> {
        self.ensure().await;
        self.engine().next_wakeup()
    }

    async fn settle(&mut self) {
        self.pump().await;
        for _ in 0..10_000 {
            let Some(w) = self.next_wakeup().await else {
                assert_eq!(self.engine().pending_effects(), 0);
                return;
            };
            self.clock.set(w.max(self.clock.now()));
            self.call(Op::Advance).await.expect("advance");
        }
        panic!("the engine never settled");
    }
}

#[derive(Debug, Clone, Copy)]
enum Plan {
    Work { work_s: u64, contributions: u32 },
    GiveUp { after_s: u64 },
    Return { after_s: u64 },
    Vanish { after_s: u64 },
}

#[derive(Debug)]
enum State {
    Browsing(u32),
    Holding {
        assignment: AssignmentId,
        since: Timestamp,
        active_since: Option<Timestamp>,
    },
    Gone,
}

struct Sim {
    id: WorkerId,
    plan: Plan,
    state: State,
    next: Timestamp,
}

/// The crowd (as in crowdcore's engine tests): first looks at 5 s past each 10 s, page actions
/// on each 10 s.
fn crowd() -> Vec<(u64, Plan)> {
    let work = |work_s, contributions| Plan::Work {
        work_s,
        contributions,
    };
    let give_up = |after_s| Plan::GiveUp { after_s };
    let give_back = |after_s| Plan::Return { after_s };
    let vanish = |after_s| Plan::Vanish { after_s };
    vec![
        (5, work(120, 3)),
        (5, give_up(200)),
        (15, work(60, 1)),
        (15, give_back(45)),
        (25, work(90, 2)),
        (35, vanish(25)),
        (45, give_up(60)),
        (65, work(150, 4)),
        (75, give_back(120)),
        (95, work(40, 0)),
        (155, work(70, 2)),
        (185, give_up(30)),
        (215, work(100, 5)),
        (305, give_back(20)),
        (335, work(50, 2)),
        (455, work(300, 1)),
        (485, work(300, 2)),
        (515, give_up(300)),
        (575, give_back(300)),
    ]
}

const END_S: u64 = 600;

async fn run_workload(host: &mut Host, fake: &FakeMturk) {
    let mut crowd: Vec<Sim> = crowd()
        .into_iter()
        .enumerate()
        .map(|(i, (first, plan))| Sim {
            id: WorkerId::new(format!("W{i:02}")),
            plan,
            state: State::Browsing(6),
            next: at(first),
        })
        .collect();
    let end = at(END_S);
    host.clock.set(T0);
    host.call(Op::Start).await.expect("start");
    for _ in 0..100_000 {
        let worker_next = crowd
            .iter()
            .filter(|s| !matches!(s.state, State::Gone))
            .map(|s| s.next)
            .min();
        let engine_next = host.next_wakeup().await;
        let t = [worker_next, engine_next, Some(end)]
            .into_iter()
            .flatten()
            .min()
            .expect("the end is always there");
        host.clock.set(t.max(host.clock.now()));
        if engine_next.is_some_and(|w| w <= t) {
            host.call(Op::Advance).await.expect("advance");
        }
        if t >= end {
            break;
        }
        for sim in crowd.iter_mut().filter(|s| s.next <= t) {
            step(sim, t, host, fake).await;
        }
    }
    host.call(Op::Expire).await.expect("expire");
    host.call(Op::Stop).await.expect("stop");
    // Pages of released workers submit to MTurk (that is how a released worker gets paid);
    // turned-away workers give their slot back.
    for sim in &mut crowd {
        if let State::Holding { assignment, .. } = &sim.state {
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
            sim.state = State::Gone;
        }
    }
    host.settle().await;
}

async fn step(sim: &mut Sim, t: Timestamp, host: &mut Host, fake: &FakeMturk) {
    const TEN_S: u64 = 10_000;
    match &mut sim.state {
        State::Gone => {}
        State::Browsing(tries) => {
            let Some(hit) = fake.available(sim.id.as_str()).into_iter().next() else {
                *tries -= 1;
                sim.next = t.plus_millis(TEN_S);
                if *tries == 0 {
                    sim.state = State::Gone;
                }
                return;
            };
            let assignment = AssignmentId::new(fake.accept(sim.id.as_str(), &hit).expect("accept"));
            host.call(Op::Arrive(
                sim.id.clone(),
                assignment.clone(),
                HitId::new(hit),
            ))
            .await
            .unwrap_or_else(|e| panic!("{} arriving: {e}", sim.id));
            sim.state = State::Holding {
                assignment,
                since: t,
                active_since: None,
            };
            sim.next = t.plus_millis(TEN_S / 2);
        }
        State::Holding {
            assignment,
            since,
            active_since,
        } => {
            let a = assignment.clone();
            let held = t.millis_since(*since) / 1_000;
            let seat = host
                .engine()
                .machine()
                .seat_of(&a)
                .expect("the machine knows every arrival");
            if seat == SeatState::Active {
                active_since.get_or_insert(t);
            }
            let worked = active_since.map_or(0, |s| t.millis_since(s) / 1_000);
            enum Act {
                Beat,
                Submit(u32),
                Return,
                PageSubmits,
                Leave,
            }
            let act = match (seat, sim.plan) {
                (SeatState::Left(Departure::TurnedAway), _) => Act::Return,
                (SeatState::Left(Departure::Released), _) => Act::PageSubmits,
                (SeatState::Left(_), _) => Act::Leave,
                (_, Plan::Vanish { after_s }) if held >= after_s => Act::Leave,
                (_, Plan::Return { after_s }) if held >= after_s => Act::Return,
                (SeatState::Waiting, Plan::GiveUp { after_s }) if held >= after_s => Act::Submit(0),
                (SeatState::Active, Plan::GiveUp { .. }) if worked >= 30 => Act::Submit(1),
                (
                    SeatState::Active,
                    Plan::Work {
                        work_s,
                        contributions,
                    },
                ) if worked >= work_s => Act::Submit(contributions),
                _ => Act::Beat,
            };
            match act {
                Act::Beat => {
                    host.call(Op::Heartbeat(a))
                        .await
                        .unwrap_or_else(|e| panic!("{} heartbeat: {e}", sim.id));
                    sim.next = t.plus_millis(TEN_S);
                    return;
                }
                Act::Submit(n) => {
                    // The page reports to the engine first, then submits to MTurk: the
                    // engine's approval may reach MTurk before the submission does.
                    host.call(Op::Submit(a.clone(), n))
                        .await
                        .unwrap_or_else(|e| panic!("{} submit: {e}", sim.id));
                    fake.submit(a.as_str(), "answer").expect("submit at MTurk");
                }
                Act::PageSubmits => fake.submit(a.as_str(), "released").expect("submit"),
                Act::Return => {
                    host.call(Op::Return(a.clone()))
                        .await
                        .unwrap_or_else(|e| panic!("{} return: {e}", sim.id));
                    fake.return_assignment(a.as_str()).expect("return");
                }
                Act::Leave => {}
            }
            sim.state = State::Gone;
        }
    }
}

/// A ledger entry without its time: (effect, worker, kind, amount, paid).
type Payment = (EffectId, WorkerId, String, i64, bool);

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
    let mut payments: Vec<Payment> = ledger
        .iter()
        .map(|e| {
            (
                e.effect.clone(),
                e.worker.clone(),
                e.kind.clone(),
                e.amount.minor,
                e.paid,
            )
        })
        .collect();
    payments.sort();
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
    let session = SessionId::new(SESSION);
    let next_effect = host.engine().snapshot().next_effect_seq;
    let mut hires = Vec::new();
    for seq in 1..next_effect {
        let id = EffectId::new(session.clone(), seq);
        let Some(entry) = host.store.effect(&id).await.unwrap() else {
            continue;
        };
        assert!(
            matches!(entry.state, OutboxState::Done { .. }),
            "effect {id} is {:?}",
            entry.state
        );
        let effect: Effect = serde_json::from_str(&entry.body).unwrap();
        if let EffectKind::Hire { .. } = effect.kind {
            hires.push(format!("crowdcore:{id}"));
        }
    }
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
    let mut host = Host::new(fake.clone(), mturk, store, clock).await;
    run_workload(&mut host, &fake).await;
    fake.clear_faults_keep_counts();
    check_done_once(&mut host, &fake).await;
    let outcome = outcome(&mut host, &fake).await;
    (outcome, fake, host.orphans)
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
    let mut host = Host::new(fake.clone(), mturk, store, clock.clone()).await;
    host.reader = Some(reader);
    host.counter = failing.clone();
    run_workload(&mut host, &fake).await;
    // What is still hidden (a failed delete, a failed hand-over) comes after its timeout.
    for _ in 0..100 {
        if fake.undelivered() == (0, 0) {
            break;
        }
        clock.advance(DEFAULT_VISIBILITY_S * 1000);
        host.pump().await;
    }
    assert_eq!(fake.undelivered(), (0, 0), "the queue drained");
    check_done_once(&mut host, &fake).await;
    let outcome = outcome(&mut host, &fake).await;
    (outcome, fake, host.pushed_events, host.push_writes)
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
struct LoseHireRecord {
    inner: Arc<dyn Store>,
    k: u64,
    seen: std::sync::atomic::AtomicU64,
}

#[async_trait::async_trait]
impl Store for LoseHireRecord {
    async fn append(
        &self,
        session: &SessionId,
        inputs: &[NewInput],
        cursor: Option<(&str, &Cursor)>,
    ) -> Result<u64, StoreError> {
        self.inner.append(session, inputs, cursor).await
    }
    async fn read_log(
        &self,
        session: &SessionId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<LogRecord>, StoreError> {
        self.inner.read_log(session, after, limit).await
    }
    async fn save_snapshot(
        &self,
        session: &SessionId,
        s: &StoredSnapshot,
    ) -> Result<(), StoreError> {
        self.inner.save_snapshot(session, s).await
    }
    async fn load_snapshot(
        &self,
        session: &SessionId,
    ) -> Result<Option<StoredSnapshot>, StoreError> {
        self.inner.load_snapshot(session).await
    }
    async fn enqueue(&self, session: &SessionId, effects: &[NewEffect]) -> Result<(), StoreError> {
        self.inner.enqueue(session, effects).await
    }
    async fn complete(&self, session: &SessionId, c: &Completion) -> Result<bool, StoreError> {
        let posted = c.inputs.iter().any(|i| i.body.contains("\"hire_posted\""));
        if posted {
            let n = self.seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            if n == self.k {
                return Err(StoreError::Other(format!("lost the record of hire {n}")));
            }
        }
        self.inner.complete(session, c).await
    }
    async fn pending(&self, session: &SessionId) -> Result<Vec<OutboxEntry>, StoreError> {
        self.inner.pending(session).await
    }
    async fn effect(&self, id: &EffectId) -> Result<Option<OutboxEntry>, StoreError> {
        self.inner.effect(id).await
    }
    async fn cursor(&self, session: &SessionId, name: &str) -> Result<Option<Cursor>, StoreError> {
        self.inner.cursor(session, name).await
    }
    async fn ledger(&self, session: &SessionId) -> Result<Vec<LedgerEntry>, StoreError> {
        self.inner.ledger(session).await
    }
    async fn put_meta(
        &self,
        session: &SessionId,
        key: &str,
        value: &str,
    ) -> Result<(), StoreError> {
        self.inner.put_meta(session, key, value).await
    }
    async fn meta(&self, session: &SessionId, key: &str) -> Result<Option<String>, StoreError> {
        self.inner.meta(session, key).await
    }
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
        let store: Arc<dyn Store> = Arc::new(LoseHireRecord {
            inner: Arc::new(MemoryStore::new()),
            k,
            seen: Default::default(),
        });
        let mut host = Host::new(fake.clone(), mturk, store, clock).await;
        run_workload(&mut host, &fake).await;
        check_done_once(&mut host, &fake).await;
        assert_eq!(
            host.orphans, 1,
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
    let mut host = Host::new(fake.clone(), mturk, store, clock.clone()).await;
    host.reader = Some(reader);
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
    assert_eq!(host.pushed_events, 3);
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
