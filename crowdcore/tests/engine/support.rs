//! The pieces every engine test uses: a configuration, a host that drives an engine and
//! restarts it when its store fails, a store that fails on its N-th write, a deterministic
//! crowd workload on the virtual clock, and the checks that a run did nothing twice.

use std::collections::BTreeMap;
use std::sync::Arc;

use crowdcore::clock::{Clock, VirtualClock};
use crowdcore::engine::{Engine, EngineBuilder, EngineConfig, EngineError, RetryPolicy};
use crowdcore::local::{LocalMarketplace, MarketError};
use crowdcore::pavilion::{Departure, Effect, EffectKind, PavilionConfig, SeatState};
use crowdcore::platform::{AssignmentStatus, IdempotencyKey, Platform};
use crowdcore::store::{MemoryStore, OutboxState, Store};
use crowdcore::{AssignmentId, EffectId, HitId, HitSpec, Money, SessionId, Timestamp, WorkerId};

/// When every test begins: far from zero so that no time saturates.
pub(crate) const T0: Timestamp = Timestamp::from_millis(1_000_000);

/// Seconds after [`T0`].
pub(crate) fn at(secs: u64) -> Timestamp {
    T0.plus_millis(secs * 1_000)
}

/// The HIT the engine posts: its reward is the machine's base pay.
pub(crate) fn spec() -> HitSpec {
    HitSpec {
        title: "Label photos in real time".into(),
        description: "Wait for a task, then label photos as they arrive.".into(),
        keywords: vec!["real-time".into()],
        reward: Money::usd_cents(50),
        assignment_duration_ms: 3_600_000,
        lifetime_ms: 86_400_000,
        max_assignments: 10,
        auto_approval_delay_ms: 86_400_000,
        qualifications: Vec::new(),
        landing_url: "https://example.org/task".into(),
        frame_height: 600,
    }
}

/// Two active seats and two waiting seats; the task begins with two workers present. Pay:
/// 50 ¢ base, 6 ¢ a minute waiting, 12 ¢ a minute active, 5 ¢ a contribution.
pub(crate) fn config() -> EngineConfig {
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
        base_ms: 100,
        max_ms: 2_000,
    };
    config.observe_every_ms = 10_000;
    config.snapshot_every = 7;
    config
}

/// A fresh market with plenty of money, on `clock`.
pub(crate) fn market(clock: &VirtualClock) -> LocalMarketplace {
    LocalMarketplace::new(Arc::new(clock.clone()), Money::usd_cents(1_000_000))
}

/// The key the engine uses for an effect.
pub(crate) fn key(id: &EffectId) -> IdempotencyKey {
    IdempotencyKey::for_effect(id)
}

// ----- a host that survives store failures --------------------------------------------------

/// A call a host makes on the engine.
#[derive(Debug, Clone)]
pub(crate) enum Op {
    Start,
    Stop,
    Expire,
    Advance,
    Arrive(WorkerId, AssignmentId, HitId),
    Heartbeat(AssignmentId),
    Submit(AssignmentId, u32),
    Return(AssignmentId),
}

/// Drives one session. When a call fails because the store failed, it drops the engine (as a
/// crashed process would lose it), starts a new one on the same store, platform, session and
/// clock, lets it catch up (one `advance`), and makes the call again, as a page or an operator
/// would. A repeated call the machine refuses had gone through the first time.
pub(crate) struct Host {
    pub(crate) platform: Arc<dyn Platform>,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) config: EngineConfig,
    pub(crate) clock: VirtualClock,
    pub(crate) session: SessionId,
    engine: Option<Engine>,
    /// Engines started after the first.
    pub(crate) restarts: u32,
}

impl Host {
    /// A host with its engine started.
    pub(crate) async fn new(
        platform: Arc<dyn Platform>,
        store: Arc<dyn Store>,
        clock: VirtualClock,
        session: SessionId,
    ) -> Self {
        let mut host = Self {
            platform,
            store,
            config: config(),
            clock,
            session,
            engine: None,
            restarts: 0,
        };
        host.ensure().await;
        host.restarts = 0;
        host
    }

    /// A host on a fresh memory store and market at [`T0`].
    pub(crate) async fn fresh() -> (Self, LocalMarketplace, MemoryStore) {
        let clock = VirtualClock::new(T0);
        let market = market(&clock);
        let store = MemoryStore::new();
        let host = Self::new(
            Arc::new(market.clone()),
            Arc::new(store.clone()),
            clock,
            SessionId::new("engine-test"),
        )
        .await;
        (host, market, store)
    }

    /// The running engine.
    pub(crate) fn engine(&mut self) -> &mut Engine {
        self.engine.as_mut().expect("the engine runs between calls")
    }

    /// Starts an engine if none runs, retrying while the store fails.
    async fn ensure(&mut self) {
        for _ in 0..10 {
            if self.engine.is_some() {
                return;
            }
            self.restarts += 1;
            let started = EngineBuilder::new(
                self.platform.clone(),
                self.store.clone(),
                self.config.clone(),
            )
            .session(self.session.clone())
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

    /// Makes `op`, restarting the engine as often as the store fails.
    pub(crate) async fn call(&mut self, op: Op) -> Result<(), EngineError> {
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
                // The first try was logged before the store failed: it counted.
                Err(EngineError::Rejected(_)) if repeated => return Ok(()),
                other => return other,
            }
        }
        panic!("{op:?} failed ten times");
    }

    /// When the engine has work next.
    pub(crate) async fn next_wakeup(&mut self) -> Option<Timestamp> {
        self.ensure().await;
        self.engine().next_wakeup()
    }

    /// Moves the clock to `t` (never back), advancing the engine at every wakeup up to it.
    pub(crate) async fn run_until(&mut self, t: Timestamp) {
        for _ in 0..10_000 {
            match self.next_wakeup().await {
                Some(w) if w <= t => {
                    self.clock.set(w);
                    self.call(Op::Advance).await.expect("advance");
                }
                _ => {
                    self.clock.set(t);
                    return;
                }
            }
        }
        panic!("the engine kept waking up before {t}");
    }

    /// Advances the engine until nothing is left to do (after the job stopped).
    pub(crate) async fn settle(&mut self) {
        for _ in 0..10_000 {
            let Some(w) = self.next_wakeup().await else {
                assert_eq!(self.engine().pending_effects(), 0);
                return;
            };
            self.clock.set(w);
            self.call(Op::Advance).await.expect("advance");
        }
        panic!("the engine never settled");
    }

    /// Where an assignment sits in the machine.
    pub(crate) fn seat(&mut self, assignment: &AssignmentId) -> Option<SeatState> {
        self.engine().machine().seat_of(assignment)
    }
}

// ----- a store that fails on its N-th write ---------------------------------------------------

// ----- a deterministic crowd ------------------------------------------------------------------

/// What a simulated worker does once seated.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Plan {
    /// Works `work_s` seconds once active, then submits `contributions` units.
    Work { work_s: u64, contributions: u32 },
    /// Gives up waiting after `after_s` seconds and submits for the waiting pay; works 30 s
    /// and submits one unit if promoted first.
    GiveUp { after_s: u64 },
    /// Returns the assignment `after_s` seconds after arriving.
    Return { after_s: u64 },
    /// Closes the page `after_s` seconds after arriving: no more heartbeats.
    Vanish { after_s: u64 },
}

#[derive(Debug)]
enum State {
    /// Looking for work; tries left.
    Browsing(u32),
    Holding {
        assignment: AssignmentId,
        since: Timestamp,
        active_since: Option<Timestamp>,
    },
    Gone,
}

#[derive(Debug)]
struct Sim {
    id: WorkerId,
    plan: Plan,
    state: State,
    next: Timestamp,
}

/// The crowd: every worker's plan and first look at the market, in seconds after [`T0`].
///
/// Times are on a grid that keeps a run insensitive to short platform retries: workers look
/// for work at 5 s past each 10 s, act on their page (heartbeat, submit, return) on each 10 s,
/// and heartbeat deadlines (30 s) fall on the grid too; retries settle within a few seconds.
pub(crate) fn crowd() -> Vec<(u64, Plan)> {
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
        (125, vanish(95)),
        (155, work(70, 2)),
        (185, give_up(30)),
        (215, work(100, 5)),
        (245, work(60, 1)),
        (305, give_back(20)),
        (335, work(50, 2)),
        (395, work(30, 1)),
        (435, give_up(40)),
        // Still there when the job stops: released and paid.
        (455, work(300, 1)),
        (485, work(300, 2)),
        (515, give_up(300)),
        (545, work(300, 3)),
        (575, give_back(300)),
    ]
}

/// When the workload expires the HITs and stops the job, in seconds after [`T0`].
pub(crate) const END_S: u64 = 600;

/// Runs the [`crowd`] against the host's engine and `market` from [`T0`] to the end of the
/// job, then lets the engine settle.
pub(crate) async fn run_workload(host: &mut Host, market: &LocalMarketplace) {
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
        host.clock.set(t);
        if engine_next.is_some_and(|w| w <= t) {
            host.call(Op::Advance).await.expect("advance");
        }
        if t >= end {
            break;
        }
        for sim in crowd.iter_mut().filter(|s| s.next <= t) {
            step(sim, t, host, market).await;
        }
    }
    assert!(
        host.clock.now() >= end,
        "the workload did not reach its end"
    );
    host.call(Op::Expire).await.expect("expire");
    host.call(Op::Stop).await.expect("stop");
    host.settle().await;
}

async fn step(sim: &mut Sim, t: Timestamp, host: &mut Host, market: &LocalMarketplace) {
    const TEN_S: u64 = 10_000;
    match &mut sim.state {
        State::Gone => {}
        State::Browsing(tries) => {
            let Some(listing) = market.available(&sim.id).into_iter().next() else {
                *tries -= 1;
                sim.next = t.plus_millis(TEN_S);
                if *tries == 0 {
                    sim.state = State::Gone;
                }
                return;
            };
            let assignment = market.accept(&sim.id, &listing.hit).expect("accept");
            host.call(Op::Arrive(sim.id.clone(), assignment.clone(), listing.hit))
                .await
                .unwrap_or_else(|e| panic!("{} arriving: {e}", sim.id));
            sim.state = State::Holding {
                assignment,
                since: t,
                active_since: None,
            };
            // Pages act on the 10 s grid; arrivals come 5 s past it.
            sim.next = t.plus_millis(TEN_S / 2);
        }
        State::Holding {
            assignment,
            since,
            active_since,
        } => {
            let a = assignment.clone();
            let held = t.millis_since(*since) / 1_000;
            let seat = host.seat(&a).expect("the machine knows every arrival");
            if seat == SeatState::Active {
                active_since.get_or_insert(t);
            }
            let worked = active_since.map_or(0, |s| t.millis_since(s) / 1_000);
            enum Act {
                Beat,
                Submit(u32),
                Return,
                Leave,
            }
            let act = match (seat, sim.plan) {
                (SeatState::Left(Departure::TurnedAway), _) => Act::Return,
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
                    // The page reports to the engine first, then submits to the platform.
                    host.call(Op::Submit(a.clone(), n))
                        .await
                        .unwrap_or_else(|e| panic!("{} submit: {e}", sim.id));
                    // The engine approves at once (the local market approves work the page
                    // auto-submits), so the market may already call the assignment approved.
                    match market.submit(&a, Some("answer".into())) {
                        Ok(()) | Err(MarketError::WrongState(_, AssignmentStatus::Approved)) => {}
                        Err(e) => panic!("{} submit at the market: {e}", sim.id),
                    }
                }
                Act::Return => {
                    // The page reports first, also for a worker turned away (who holds the
                    // slot until they give it back), so the observer's report of the same
                    // return finds nothing left to do whenever it polls.
                    host.call(Op::Return(a.clone()))
                        .await
                        .unwrap_or_else(|e| panic!("{} return: {e}", sim.id));
                    market.return_assignment(&a).expect("return");
                }
                Act::Leave => {}
            }
            sim.state = State::Gone;
        }
    }
}

// ----- what a run comes to -------------------------------------------------------------------

/// A ledger entry without its time: (effect, worker, kind, amount, paid).
pub(crate) type Payment = (EffectId, WorkerId, String, i64, bool);

/// What a finished run comes to, for comparing runs.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Outcome {
    /// The ledger as a sorted multiset.
    pub(crate) ledger: Vec<Payment>,
    /// Earnings per worker at the market.
    pub(crate) earnings: BTreeMap<WorkerId, i64>,
    /// The requester's spending at the market.
    pub(crate) spending: i64,
    /// Every HIT posted: (id, slots, taken, expired).
    pub(crate) hits: Vec<(HitId, u32, u32, bool)>,
}

/// Reads a finished run's outcome.
pub(crate) async fn outcome(host: &mut Host, market: &LocalMarketplace) -> Outcome {
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
    let earnings = payments
        .iter()
        .map(|p| (p.1.clone(), market.earnings(&p.1).minor))
        .collect();
    Outcome {
        ledger: payments,
        earnings,
        spending: market.spending().minor,
        hits: market.hits(),
    }
}

/// Checks that a finished run did nothing twice and lost nothing: the log has no gaps, every
/// platform effect is done, each hire posted exactly one HIT, each bonus was paid once, each
/// base pay approved its assignment, and the market's money matches the ledger.
pub(crate) async fn check_done_once(host: &mut Host, market: &LocalMarketplace) {
    let store = host.store.clone();
    let session = host.session.clone();
    let log = store.read_log(&session, 0, usize::MAX).await.unwrap();
    for (i, record) in log.iter().enumerate() {
        assert_eq!(record.seq, i as u64 + 1, "the log has a gap");
    }

    let next_effect = host.engine().snapshot().next_effect_seq;
    let mut hires = Vec::new();
    for seq in 1..next_effect {
        let id = EffectId::new(session.clone(), seq);
        let Some(entry) = store.effect(&id).await.unwrap() else {
            continue; // news for pages, never in the outbox
        };
        assert!(
            matches!(entry.state, OutboxState::Done { .. }),
            "effect {id} is {:?}",
            entry.state
        );
        let effect: Effect = serde_json::from_str(&entry.body).unwrap();
        if let EffectKind::Hire { .. } = effect.kind {
            assert!(market.key_uses(&key(&id)) >= 1, "hire {id} never posted");
            hires.push(id);
        }
    }
    assert_eq!(market.hits().len(), hires.len(), "HITs posted vs hires");

    let ledger = host.engine().ledger().await.unwrap();
    let mut ids: Vec<&EffectId> = ledger.iter().map(|e| &e.effect).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), ledger.len(), "an effect was recorded twice");
    assert!(ledger.iter().all(|e| e.paid), "a payment failed");
    let bonuses = ledger.iter().filter(|e| e.kind != "base").count();
    assert_eq!(market.bonuses().len(), bonuses, "bonuses paid vs ledger");
    for e in ledger.iter().filter(|e| e.kind == "base") {
        let a = e
            .assignment
            .as_ref()
            .expect("base pay names its assignment");
        assert_eq!(market.status(a), Some(AssignmentStatus::Approved));
    }
    let mut owed: BTreeMap<&WorkerId, i64> = BTreeMap::new();
    for e in &ledger {
        *owed.entry(&e.worker).or_default() += e.amount.minor;
    }
    for (worker, amount) in &owed {
        assert_eq!(
            market.earnings(worker).minor,
            *amount,
            "earnings of {worker}"
        );
    }
    assert_eq!(market.spending().minor, owed.values().sum::<i64>());
}
