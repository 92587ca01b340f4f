//! The engine test host that crowdcore's own tests and the backends' tests share (feature
//! `testkit`; not for production code).
//!
//! A [`Host`] drives one Pavilion session through an [`Engine`] on a [`Store`] and a
//! [`Platform`]: it makes the engine's calls ([`Op`]), advances it on a virtual clock, and when
//! a call fails because the store failed it does what a crashed and restarted process would —
//! drops the engine, starts a new one on the same store, session and clock, lets it catch up
//! (one `advance`), and makes the call again. Where the platform comes from on each start, and
//! what reaches the engine from outside before each advance (push notifications), is the
//! host's [`Rig`]; a plain `Arc<dyn Platform>` is a rig that reuses one platform.
//!
//! [`fail_when`] makes a [`FailingStore`] that fails the write a test picks (the k-th record of
//! a posted hire, say) instead of the N-th write; [`Sim`] is a simulated worker that follows a
//! [`Plan`] on a 10 s grid at any [`Market`], and [`run_crowd`] runs a crowd of them against a
//! host; [`study_config`] is the two-active, two-waiting study the engine tests run.
//!
//! ```no_run
//! # async fn run(platform: std::sync::Arc<dyn crowdcore::platform::Platform>) {
//! use std::sync::Arc;
//! use crowdcore::clock::VirtualClock;
//! use crowdcore::store::{FailMode, MemoryStore, Store};
//! use crowdcore::testkit::{Host, Op, fail_when, spec, study_config};
//! use crowdcore::{SessionId, Timestamp};
//!
//! // A store that loses the first write it is asked for: the host restarts the engine.
//! let memory = Arc::new(MemoryStore::new());
//! let store: Arc<dyn Store> =
//!     Arc::new(fail_when(memory, |n, _| (n == 1).then_some(FailMode::Before)));
//! let clock = VirtualClock::new(Timestamp::from_millis(1_000_000));
//! let session = SessionId::new("s");
//! let mut host = Host::new(platform, store, study_config(spec()), clock, session)
//!     .started()
//!     .await;
//! host.call(Op::Start).await.expect("start");
//! host.settle().await;
//! // Engines started again after the store failed.
//! println!("{} restarts", host.restarts);
//! # }
//! ```

use std::sync::Arc;

use async_trait::async_trait;

use crate::clock::{Clock, VirtualClock};
use crate::engine::{Engine, EngineBuilder, EngineConfig, EngineError, RetryPolicy};
use crate::local::{LocalMarketplace, MarketError};
use crate::model::{AssignmentId, EffectId, HitId, HitSpec, Money, SessionId, Timestamp, WorkerId};
use crate::pavilion::{Departure, Effect, EffectKind, PavilionConfig, SeatState};
use crate::platform::{AssignmentStatus, Platform};
use crate::store::{FailMode, FailingStore, LedgerEntry, OutboxState, Store};

pub use crate::store::failing::Write;

pub mod checker;
pub use checker::PavilionChecker;

// ----- the study ------------------------------------------------------------------------------

/// The HIT the engine posts: its reward is the machine's base pay.
pub fn spec() -> HitSpec {
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
/// 50 ¢ base, 6 ¢ a minute waiting, 12 ¢ a minute active, 5 ¢ a contribution (at most 100
/// contributions an assignment, as its submission reports them).
pub fn pavilion_config() -> PavilionConfig {
    PavilionConfig {
        min_active: 1,
        max_active: 2,
        min_waiting: 1,
        max_waiting: 2,
        heartbeat_timeout_ms: 30_000,
        base_pay_cents: 50,
        waiting_cents_per_minute: 6,
        active_cents_per_minute: 12,
        per_contribution_cents: 5,
        max_contributions_per_assignment: Some(100),
        ..PavilionConfig::default()
    }
}

/// [`pavilion_config`] posting `spec`, with retries from 100 ms to 2 s, an observer poll every
/// 10 s and a snapshot every 7 inputs. Tests change what they need.
pub fn study_config(spec: HitSpec) -> EngineConfig {
    let mut config = EngineConfig::new(spec, pavilion_config());
    config.retry = RetryPolicy {
        base_ms: 100,
        max_ms: 2_000,
    };
    config.observe_every_ms = 10_000;
    config.snapshot_every = 7;
    config
}

// ----- a host that survives store failures ----------------------------------------------------

/// A call a host makes on the engine.
#[derive(Debug, Clone)]
pub enum Op {
    /// [`Engine::start`].
    Start,
    /// [`Engine::stop`].
    Stop,
    /// [`Engine::expire`].
    Expire,
    /// [`Engine::advance`] (after the rig's [`Rig::feed`]).
    Advance,
    /// [`Engine::observe`].
    Observe,
    /// [`Engine::arrive`].
    Arrive(WorkerId, AssignmentId, HitId),
    /// [`Engine::heartbeat`].
    Heartbeat(AssignmentId),
    /// [`Engine::submit`].
    Submit(AssignmentId, u32),
    /// [`Engine::return_assignment`].
    Return(AssignmentId),
}

impl Op {
    /// Makes the call on `engine`.
    pub async fn apply(self, engine: &mut Engine) -> Result<(), EngineError> {
        match self {
            Op::Start => engine.start().await,
            Op::Stop => engine.stop().await,
            Op::Expire => engine.expire().await,
            Op::Advance => engine.advance().await,
            Op::Observe => engine.observe().await,
            Op::Arrive(w, a, h) => engine.arrive(w, a, h).await,
            Op::Heartbeat(a) => engine.heartbeat(a).await,
            Op::Submit(a, n) => engine.submit(a, n).await,
            Op::Return(a) => engine.return_assignment(a).await,
        }
    }
}

/// What one [`Rig::feed`] came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fed {
    /// The engine's store failed while it took the inputs: the host drops the engine.
    pub store_failed: bool,
    /// Nothing more is waiting: the host stops feeding.
    pub done: bool,
}

/// What a [`Host`] runs against besides its store: the platform for each engine it starts,
/// and what reaches the engine from outside before each advance.
///
/// Its futures need not be `Send` (tests drive a host on one task).
#[async_trait(?Send)]
pub trait Rig {
    /// The platform for an engine about to start on `store`. `restart` is false until the
    /// host's first engine has come up.
    async fn platform(&mut self, store: &Arc<dyn Store>, restart: bool) -> Arc<dyn Platform>;

    /// Hands `engine` what has arrived for it (push notifications); the host calls it, with
    /// an engine started if none ran, until it is [`Fed::done`], before every [`Op::Advance`]
    /// and [`Host::settle`]. Nothing, by default.
    async fn feed(&mut self, engine: &mut Engine) -> Fed {
        let _ = engine;
        Fed {
            store_failed: false,
            done: true,
        }
    }
}

/// One platform for every engine, nothing fed.
#[async_trait(?Send)]
impl Rig for Arc<dyn Platform> {
    async fn platform(&mut self, _: &Arc<dyn Store>, _: bool) -> Arc<dyn Platform> {
        self.clone()
    }
}

/// Drives one session. When a call fails because the store failed, it drops the engine (as a
/// crashed process would lose it), starts a new one on the same store, session and clock
/// (and the platform its [`Rig`] gives), lets it catch up (one `advance`), and makes the call
/// again, as a page or an operator would. A repeated call the machine refuses had gone
/// through the first time.
pub struct Host<R: Rig = Arc<dyn Platform>> {
    /// Where platforms and pushed inputs come from.
    pub rig: R,
    /// The store every engine starts on.
    pub store: Arc<dyn Store>,
    /// The configuration every engine starts with.
    pub config: EngineConfig,
    /// The virtual clock every engine reads.
    pub clock: VirtualClock,
    /// The session every engine drives.
    pub session: SessionId,
    /// Engines started after the first ([`Host::started`]), or all of them.
    pub restarts: u32,
    engine: Option<Engine>,
    /// The first engine came up.
    up: bool,
}

impl<R: Rig> Host<R> {
    /// A host whose first call starts the engine; [`Host::restarts`] counts that start too
    /// (see [`Host::started`]).
    pub fn new(
        rig: R,
        store: Arc<dyn Store>,
        config: EngineConfig,
        clock: VirtualClock,
        session: SessionId,
    ) -> Self {
        Self {
            rig,
            store,
            config,
            clock,
            session,
            restarts: 0,
            engine: None,
            up: false,
        }
    }

    /// The host with its engine started; [`Host::restarts`] counts from here.
    pub async fn started(mut self) -> Self {
        self.ensure().await;
        self.restarts = 0;
        self
    }

    /// The running engine.
    ///
    /// # Panics
    ///
    /// If none runs: a call that failed on the store dropped it and nothing started another.
    pub fn engine(&mut self) -> &mut Engine {
        self.engine.as_mut().expect("the engine runs between calls")
    }

    /// Drops the engine, as a crashed process would lose it; the next call starts another.
    pub fn crash(&mut self) {
        self.engine = None;
    }

    /// Starts an engine if none runs, retrying while the store fails.
    ///
    /// # Panics
    ///
    /// If recovery fails for another reason, or ten starts in a row fail.
    pub async fn ensure(&mut self) {
        for _ in 0..10 {
            if self.engine.is_some() {
                self.up = true;
                return;
            }
            let platform = self.rig.platform(&self.store, self.up).await;
            self.restarts += 1;
            let started = EngineBuilder::new(platform, self.store.clone(), self.config.clone())
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
        self.up = true;
    }

    /// Hands the engine what its rig has for it (see [`Rig::feed`]), restarting it as often
    /// as the store fails.
    pub async fn feed(&mut self) {
        for _ in 0..1_000 {
            self.ensure().await;
            let engine = self.engine.as_mut().expect("ensured above");
            let fed = self.rig.feed(engine).await;
            if fed.store_failed {
                self.engine = None;
            }
            if fed.done {
                return;
            }
        }
        panic!("the rig never ran out of inputs");
    }

    /// Makes `op`, restarting the engine as often as the store fails.
    pub async fn call(&mut self, op: Op) -> Result<(), EngineError> {
        if matches!(op, Op::Advance) {
            self.feed().await;
        }
        let mut repeated = false;
        for _ in 0..10 {
            self.ensure().await;
            match op.clone().apply(self.engine()).await {
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
    pub async fn next_wakeup(&mut self) -> Option<Timestamp> {
        self.ensure().await;
        self.engine().next_wakeup()
    }

    /// Moves the clock to `t` (never back), advancing the engine at every wakeup up to it.
    pub async fn run_until(&mut self, t: Timestamp) {
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
    pub async fn settle(&mut self) {
        self.feed().await;
        for _ in 0..10_000 {
            let Some(w) = self.next_wakeup().await else {
                assert_eq!(self.engine().pending_effects(), 0);
                return;
            };
            // The clock never goes back.
            self.clock.set(w);
            self.call(Op::Advance).await.expect("advance");
        }
        panic!("the engine never settled");
    }

    /// Where an assignment sits in the machine.
    pub fn seat(&mut self, assignment: &AssignmentId) -> Option<SeatState> {
        self.engine().machine().seat_of(assignment)
    }
}

// ----- a store that fails the write a test picks ---------------------------------------------

/// A [`FailingStore`] over `inner` whose writes fail when `decide` says so: it sees each
/// write's number (1-based, failed ones included) and what is written, and answers how the
/// write fails, or `None` to let it through. Everything else forwards to `inner`.
pub fn fail_when(
    inner: Arc<dyn Store>,
    decide: impl Fn(u64, &Write<'_>) -> Option<FailMode> + Send + Sync + 'static,
) -> FailingStore {
    FailingStore::deciding(inner, Box::new(decide))
}

// ----- simulated workers ----------------------------------------------------------------------

/// What a simulated worker does once seated.
#[derive(Debug, Clone, Copy)]
pub enum Plan {
    /// Works `work_s` seconds once active, then submits `contributions` units.
    Work {
        /// Seconds of work once active.
        work_s: u64,
        /// Units submitted.
        contributions: u32,
    },
    /// Gives up waiting after `after_s` seconds and submits for the waiting pay; works 30 s
    /// and submits one unit if promoted first.
    GiveUp {
        /// Seconds after arriving.
        after_s: u64,
    },
    /// Returns the assignment `after_s` seconds after arriving.
    Return {
        /// Seconds after arriving.
        after_s: u64,
    },
    /// Closes the page `after_s` seconds after arriving: no more heartbeats.
    Vanish {
        /// Seconds after arriving.
        after_s: u64,
    },
}

/// Where a simulated worker is.
#[derive(Debug)]
pub enum SimState {
    /// Looking for work; tries left.
    Browsing(u32),
    /// On an assignment's page.
    Holding {
        /// The assignment.
        assignment: AssignmentId,
        /// When they arrived.
        since: Timestamp,
        /// When the machine first showed them active.
        active_since: Option<Timestamp>,
    },
    /// Done with the study.
    Gone,
}

/// A simulated worker.
#[derive(Debug)]
pub struct Sim {
    /// Who.
    pub id: WorkerId,
    /// What they do once seated.
    pub plan: Plan,
    /// Where they are.
    pub state: SimState,
    /// When they act next.
    pub next: Timestamp,
}

/// What a seated worker's page does now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Act {
    /// Heartbeats and stays.
    Beat,
    /// Submits this many units.
    Submit(u32),
    /// Gives the assignment back (also when turned away).
    Return,
    /// The machine released them; on platforms that pay on submission the page submits.
    Released,
    /// Leaves without a word.
    Leave,
}

impl Sim {
    /// The crowd: worker `W{i:02}` follows the `i`-th plan and first looks for work the given
    /// seconds after `t0`, six times 10 s apart at most.
    pub fn crowd(t0: Timestamp, plans: Vec<(u64, Plan)>) -> Vec<Sim> {
        plans
            .into_iter()
            .enumerate()
            .map(|(i, (first, plan))| Sim {
                id: WorkerId::new(format!("W{i:02}")),
                plan,
                state: SimState::Browsing(6),
                next: t0.plus_millis(first * 1_000),
            })
            .collect()
    }

    /// What a holding worker's page does at `t` with the machine showing `seat` (notes the
    /// moment they became active). A worker not holding an assignment does nothing.
    pub fn act(&mut self, t: Timestamp, seat: SeatState) -> Act {
        let SimState::Holding {
            since,
            active_since,
            ..
        } = &mut self.state
        else {
            return Act::Leave;
        };
        let held = t.millis_since(*since) / 1_000;
        if seat == SeatState::Active {
            active_since.get_or_insert(t);
        }
        let worked = active_since.map_or(0, |s| t.millis_since(s) / 1_000);
        match (seat, self.plan) {
            (SeatState::Left(Departure::TurnedAway), _) => Act::Return,
            (SeatState::Left(Departure::Released), _) => Act::Released,
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
        }
    }
}

/// The crowd: every worker's plan and first look at the market, in seconds after the
/// job starts, for [`Sim::crowd`].
///
/// Times are on a grid that keeps a run insensitive to short platform retries: workers look
/// for work at 5 s past each 10 s, act on their page (heartbeat, submit, return) on each 10 s,
/// and heartbeat deadlines (30 s) fall on the grid too; retries settle within a few seconds.
pub fn study_crowd() -> Vec<(u64, Plan)> {
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

/// The workers' side of a marketplace, for [`Sim`]s.
pub trait Market {
    /// The first HIT `worker` may accept, if any.
    fn find(&self, worker: &WorkerId) -> Option<HitId>;
    /// `worker` accepts `hit`.
    fn accept(&self, worker: &WorkerId, hit: &HitId) -> Result<AssignmentId, String>;
    /// The page submits `assignment` with `answer`.
    fn submit(&self, assignment: &AssignmentId, answer: &str) -> Result<(), String>;
    /// The page gives `assignment` back.
    fn give_back(&self, assignment: &AssignmentId) -> Result<(), String>;
    /// The machine released the worker on `assignment`: what their page does now. On a
    /// platform that pays on submission, it submits.
    fn released(&self, assignment: &AssignmentId) -> Result<(), String>;
}

/// The local marketplace, where the engine's approval pays a released worker.
impl Market for LocalMarketplace {
    fn find(&self, worker: &WorkerId) -> Option<HitId> {
        self.available(worker).into_iter().next().map(|l| l.hit)
    }

    fn accept(&self, worker: &WorkerId, hit: &HitId) -> Result<AssignmentId, String> {
        LocalMarketplace::accept(self, worker, hit).map_err(|e| e.to_string())
    }

    fn submit(&self, assignment: &AssignmentId, answer: &str) -> Result<(), String> {
        // The engine approves at once (the local market approves work the page
        // auto-submits), so the market may already call the assignment approved.
        match LocalMarketplace::submit(self, assignment, Some(answer.into())) {
            Ok(()) | Err(MarketError::WrongState(_, AssignmentStatus::Approved)) => Ok(()),
            Err(e) => Err(e.to_string()),
        }
    }

    fn give_back(&self, assignment: &AssignmentId) -> Result<(), String> {
        self.return_assignment(assignment)
            .map_err(|e| e.to_string())
    }

    fn released(&self, _: &AssignmentId) -> Result<(), String> {
        Ok(())
    }
}

impl Sim {
    /// What the worker does at `t` (their [`Sim::next`] time): looks for work and arrives, or
    /// acts on their page, reporting to the engine first and to `market` after.
    ///
    /// # Panics
    ///
    /// If the engine or the market refuses what the page does.
    pub async fn step<R: Rig>(&mut self, t: Timestamp, host: &mut Host<R>, market: &impl Market) {
        const TEN_S: u64 = 10_000;
        let id = self.id.clone();
        match &mut self.state {
            SimState::Gone => {}
            SimState::Browsing(tries) => {
                let Some(hit) = market.find(&id) else {
                    *tries -= 1;
                    self.next = t.plus_millis(TEN_S);
                    if *tries == 0 {
                        self.state = SimState::Gone;
                    }
                    return;
                };
                let assignment = market.accept(&id, &hit).expect("accept");
                host.call(Op::Arrive(id.clone(), assignment.clone(), hit))
                    .await
                    .unwrap_or_else(|e| panic!("{id} arriving: {e}"));
                self.state = SimState::Holding {
                    assignment,
                    since: t,
                    active_since: None,
                };
                // Pages act on the 10 s grid; arrivals come 5 s past it.
                self.next = t.plus_millis(TEN_S / 2);
            }
            SimState::Holding { assignment, .. } => {
                let a = assignment.clone();
                let seat = host.seat(&a).expect("the machine knows every arrival");
                match self.act(t, seat) {
                    Act::Beat => {
                        host.call(Op::Heartbeat(a))
                            .await
                            .unwrap_or_else(|e| panic!("{id} heartbeat: {e}"));
                        self.next = t.plus_millis(TEN_S);
                        return;
                    }
                    Act::Submit(n) => {
                        // The page reports to the engine first, then submits to the
                        // platform: the engine's approval may reach it before the submission.
                        host.call(Op::Submit(a.clone(), n))
                            .await
                            .unwrap_or_else(|e| panic!("{id} submit: {e}"));
                        market
                            .submit(&a, "answer")
                            .unwrap_or_else(|e| panic!("{id} submit at the platform: {e}"));
                    }
                    Act::Released => market
                        .released(&a)
                        .unwrap_or_else(|e| panic!("{id} released: {e}")),
                    Act::Return => {
                        // The page reports first, also for a worker turned away (who holds the
                        // slot until they give it back), so the observer's report of the same
                        // return finds nothing left to do whenever it polls.
                        host.call(Op::Return(a.clone()))
                            .await
                            .unwrap_or_else(|e| panic!("{id} return: {e}"));
                        market.give_back(&a).expect("return");
                    }
                    Act::Leave => {}
                }
                self.state = SimState::Gone;
            }
        }
    }
}

/// Starts the job at `start` and runs `crowd` against the host's engine and `market` until
/// `end`, advancing the engine at each of its wakeups on the way.
///
/// # Panics
///
/// If a call fails, or the run does not reach `end` in 100 000 steps.
pub async fn run_crowd<R: Rig>(
    host: &mut Host<R>,
    market: &impl Market,
    crowd: &mut [Sim],
    start: Timestamp,
    end: Timestamp,
) {
    host.clock.set(start);
    host.call(Op::Start).await.expect("start");
    for _ in 0..100_000 {
        let worker_next = crowd
            .iter()
            .filter(|s| !matches!(s.state, SimState::Gone))
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
            sim.step(t, host, market).await;
        }
    }
    assert!(
        host.clock.now() >= end,
        "the workload did not reach its end"
    );
}

// ----- what a run comes to --------------------------------------------------------------------

/// Checks that every effect of the host's session that is in the outbox is done (news for
/// pages never enters it), and returns the hires among them, in id order.
///
/// # Panics
///
/// If an effect is not done, or the store cannot be read.
pub async fn done_hires<R: Rig>(host: &mut Host<R>) -> Vec<EffectId> {
    let next_effect = host.engine().snapshot().next_effect_seq;
    let mut hires = Vec::new();
    for seq in 1..next_effect {
        let id = EffectId::new(host.session.clone(), seq);
        let Some(entry) = host.store.effect(&id).await.expect("the outbox") else {
            continue;
        };
        assert!(
            matches!(entry.state, OutboxState::Done { .. }),
            "effect {id} is {:?}",
            entry.state
        );
        let effect: Effect = serde_json::from_str(&entry.body).expect("an effect");
        if let EffectKind::Hire { .. } = effect.kind {
            hires.push(id);
        }
    }
    hires
}

/// A ledger entry without its time: (effect, worker, kind, amount, paid).
pub type Payment = (EffectId, WorkerId, String, i64, bool);

/// The ledger as a sorted multiset of [`Payment`]s, for comparing runs.
pub fn payments(ledger: &[LedgerEntry]) -> Vec<Payment> {
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
    payments
}
