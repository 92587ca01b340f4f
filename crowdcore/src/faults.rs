//! A fault-injecting [`Platform`] wrapper, for testing drivers against a crowd platform that
//! misbehaves the way real ones do.
//!
//! [`FaultyPlatform`] wraps any platform and, at a configurable rate drawn from a seeded RNG,
//! makes calls fail with a retryable error instead of answering:
//!
//! - [`FaultKind::Throttled`] and [`FaultKind::Unavailable`]: the call is refused and **not
//!   executed** (a throttle, an HTTP 5xx before the service did anything);
//! - [`FaultKind::Timeout`]: the call **is executed** on the inner platform, then its answer is
//!   lost and the caller gets a timeout. This is the fault that makes idempotency keys matter:
//!   a driver that retries without the original key does the work twice.
//!
//! It can also make calls slow, or never answer ([`Latency`], per [`CallClass`]): a platform
//! call can take a minute in the field, and a driver must go on serving its workers meanwhile.
//! The wait is on tokio's clock, so a test with paused time runs it instantly.
//!
//! The same seed and the same sequence of calls give the same faults, so a test that fails
//! fails again. [`capabilities`](Platform::capabilities) is never faulty.
//!
//! ```
//! use std::sync::Arc;
//! use crowdcore::clock::VirtualClock;
//! use crowdcore::faults::FaultyPlatform;
//! use crowdcore::local::LocalMarketplace;
//! use crowdcore::Money;
//!
//! let market = LocalMarketplace::new(Arc::new(VirtualClock::default()), Money::usd_cents(10_000));
//! // One call in ten fails, reproducibly.
//! let flaky = Arc::new(FaultyPlatform::new(Arc::new(market.clone()), 7, 0.1));
//! assert_eq!(flaky.injected().total(), 0);
//! ```

use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::model::{AssignmentId, HitId, HitSpec, Money, WorkerId};
use crate::platform::{
    AssignmentRecord, AssignmentUpdate, Capabilities, Cursor, IdempotencyKey, Page, Platform,
    PlatformError, PlatformErrorKind,
};

/// A fault the wrapper can inject. Every kind is retryable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// Refused as throttled; the inner platform never sees the call.
    Throttled,
    /// Refused as a 5xx; the inner platform never sees the call.
    Unavailable,
    /// Executed on the inner platform, then the answer is lost.
    Timeout,
}

impl FaultKind {
    const ALL: [FaultKind; 3] = [
        FaultKind::Throttled,
        FaultKind::Unavailable,
        FaultKind::Timeout,
    ];

    /// The error the caller sees.
    pub fn error(self) -> PlatformError {
        match self {
            FaultKind::Throttled => PlatformError::new(
                PlatformErrorKind::Throttled,
                "ThrottlingException",
                "injected fault: rate exceeded",
            ),
            FaultKind::Unavailable => PlatformError::new(
                PlatformErrorKind::Unavailable,
                "503",
                "injected fault: service unavailable",
            ),
            FaultKind::Timeout => PlatformError::new(
                PlatformErrorKind::Timeout,
                "Timeout",
                "injected fault: the call was carried out but its answer was lost",
            ),
        }
    }
}

/// The kinds of platform call whose latency can be set apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallClass {
    /// Calls that change something: post, add slots, expire, approve, reject, bonus, notify,
    /// block, grant and revoke qualifications — what an outbox effect calls.
    Effect,
    /// [`Platform::updates`]: an observer's poll.
    Poll,
    /// Reads of one thing: [`Platform::assignment`] (confirming an arrival) and
    /// [`Platform::balance`].
    Lookup,
}

/// How long a call takes before it reaches the inner platform.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Latency {
    /// At once.
    #[default]
    Immediate,
    /// After this long (on tokio's clock).
    After(std::time::Duration),
    /// Never: the call hangs until its caller gives up on it.
    Never,
}

impl Latency {
    async fn wait(self) {
        match self {
            Latency::Immediate => {}
            Latency::After(d) => tokio::time::sleep(d).await,
            Latency::Never => std::future::pending::<()>().await,
        }
    }
}

/// How many calls the wrapper saw and how many faults it injected, by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultCounts {
    /// Calls made through the wrapper (not counting `capabilities`).
    pub calls: u64,
    /// Of those, effect calls ([`CallClass::Effect`]).
    pub effects: u64,
    /// Of those, polls ([`CallClass::Poll`]).
    pub polls: u64,
    /// Of those, lookups ([`CallClass::Lookup`]).
    pub lookups: u64,
    /// Calls refused as throttled.
    pub throttled: u64,
    /// Calls refused as unavailable.
    pub unavailable: u64,
    /// Calls executed whose answer was then lost.
    pub timeouts: u64,
}

impl FaultCounts {
    /// Faults of every kind.
    pub fn total(&self) -> u64 {
        self.throttled + self.unavailable + self.timeouts
    }

    /// Faults of one kind.
    pub fn of(&self, kind: FaultKind) -> u64 {
        match kind {
            FaultKind::Throttled => self.throttled,
            FaultKind::Unavailable => self.unavailable,
            FaultKind::Timeout => self.timeouts,
        }
    }
}

#[derive(Debug)]
struct State {
    rng: ChaCha8Rng,
    rate: f64,
    /// The kinds a fault is drawn from (never empty).
    kinds: Vec<FaultKind>,
    counts: FaultCounts,
    /// Latency of effects, polls and lookups, in [`CallClass`] order.
    latency: [Latency; 3],
    /// The next this many effect calls panic (a bug in a platform's code).
    panics: u32,
}

impl CallClass {
    fn index(self) -> usize {
        match self {
            CallClass::Effect => 0,
            CallClass::Poll => 1,
            CallClass::Lookup => 2,
        }
    }
}

/// A [`Platform`] that makes a seeded fraction of calls fail. See the [module docs](self).
pub struct FaultyPlatform {
    inner: Arc<dyn Platform>,
    state: Mutex<State>,
}

impl std::fmt::Debug for FaultyPlatform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.lock();
        f.debug_struct("FaultyPlatform")
            .field("rate", &state.rate)
            .field("counts", &state.counts)
            .finish_non_exhaustive()
    }
}

impl FaultyPlatform {
    /// Wraps `inner`, failing each call with probability `rate` (clamped to `0.0..=1.0`; NaN
    /// counts as 0), with faults drawn from an RNG seeded with `seed`. A faulty call is
    /// throttled, unavailable or timed out with equal probability.
    pub fn new(inner: Arc<dyn Platform>, seed: u64, rate: f64) -> Self {
        Self {
            inner,
            state: Mutex::new(State {
                rng: ChaCha8Rng::seed_from_u64(seed),
                rate: clamp_rate(rate),
                kinds: FaultKind::ALL.to_vec(),
                counts: FaultCounts::default(),
                latency: [Latency::Immediate; 3],
                panics: 0,
            }),
        }
    }

    /// Changes the fault rate from the next call on (0 turns faults off).
    pub fn set_rate(&self, rate: f64) {
        self.lock().rate = clamp_rate(rate);
    }

    /// Draws faults from `kinds` only, with equal probability, from the next call on (all
    /// three when `kinds` is empty): e.g. only [`FaultKind::Throttled`] for a platform that
    /// answers 429 to everything for a while.
    pub fn set_kinds(&self, kinds: &[FaultKind]) {
        self.lock().kinds = if kinds.is_empty() {
            FaultKind::ALL.to_vec()
        } else {
            kinds.to_vec()
        };
    }

    /// The fault rate in force.
    pub fn rate(&self) -> f64 {
        self.lock().rate
    }

    /// Makes calls of `class` take `latency` from the next call on (before the fault gate
    /// decides what happens to them; a call already waiting keeps its wait).
    pub fn set_latency(&self, class: CallClass, latency: Latency) {
        self.lock().latency[class.index()] = latency;
    }

    /// Makes the next `n` effect calls panic instead of answering (before reaching the inner
    /// platform), as a bug in a platform's code would: a driver must lose nothing to it.
    pub fn panic_next(&self, n: u32) {
        self.lock().panics = n;
    }

    /// The latency of calls of `class`.
    pub fn latency(&self, class: CallClass) -> Latency {
        self.lock().latency[class.index()]
    }

    /// Calls seen and faults injected so far.
    pub fn injected(&self) -> FaultCounts {
        self.lock().counts
    }

    /// The wrapped platform.
    pub fn inner(&self) -> &Arc<dyn Platform> {
        &self.inner
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is a counter and an RNG, consistent after every statement.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Decides the fate of one call of `class`, counts it, and says how long it takes.
    fn draw(&self, class: CallClass) -> (Option<FaultKind>, Latency) {
        let mut s = self.lock();
        s.counts.calls += 1;
        match class {
            CallClass::Effect => s.counts.effects += 1,
            CallClass::Poll => s.counts.polls += 1,
            CallClass::Lookup => s.counts.lookups += 1,
        }
        let latency = s.latency[class.index()];
        if class == CallClass::Effect && s.panics > 0 {
            s.panics -= 1;
            drop(s);
            panic!("injected fault: a platform call panicked");
        }
        // Two draws for every call, faulty or not, so that changing the rate shifts which
        // calls fail but not the stream of draws behind them.
        let unit = s.rng.random::<f64>();
        let kinds = s.kinds.len();
        let pick = s.rng.random_range(0..kinds);
        if unit >= s.rate {
            return (None, latency);
        }
        let kind = s.kinds[pick];
        match kind {
            FaultKind::Throttled => s.counts.throttled += 1,
            FaultKind::Unavailable => s.counts.unavailable += 1,
            FaultKind::Timeout => s.counts.timeouts += 1,
        }
        (Some(kind), latency)
    }

    /// Runs `call`, of `class`, through the fault gate after its latency. The future is lazy:
    /// a refused call is dropped without ever being polled, so the inner platform never sees
    /// it.
    async fn gate<T>(
        &self,
        class: CallClass,
        call: impl Future<Output = Result<T, PlatformError>> + Send,
    ) -> Result<T, PlatformError> {
        let (fault, latency) = self.draw(class);
        latency.wait().await;
        match fault {
            None => call.await,
            Some(FaultKind::Timeout) => {
                // Whatever the inner platform answered, the caller never hears it.
                let _ = call.await;
                Err(FaultKind::Timeout.error())
            }
            Some(refused) => Err(refused.error()),
        }
    }
}

fn clamp_rate(rate: f64) -> f64 {
    if rate.is_nan() {
        0.0
    } else {
        rate.clamp(0.0, 1.0)
    }
}

#[async_trait]
impl Platform for FaultyPlatform {
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    async fn post(
        &self,
        spec: &HitSpec,
        slots: u32,
        key: &IdempotencyKey,
    ) -> Result<HitId, PlatformError> {
        self.gate(CallClass::Effect, self.inner.post(spec, slots, key))
            .await
    }

    async fn assignment(
        &self,
        assignment: &AssignmentId,
    ) -> Result<Option<AssignmentRecord>, PlatformError> {
        self.gate(CallClass::Lookup, self.inner.assignment(assignment))
            .await
    }

    async fn add_slots(
        &self,
        hit: &HitId,
        n: u32,
        key: &IdempotencyKey,
    ) -> Result<(), PlatformError> {
        self.gate(CallClass::Effect, self.inner.add_slots(hit, n, key))
            .await
    }

    async fn expire(&self, hit: &HitId) -> Result<(), PlatformError> {
        self.gate(CallClass::Effect, self.inner.expire(hit)).await
    }

    async fn updates(
        &self,
        cursor: Option<&Cursor>,
    ) -> Result<Page<AssignmentUpdate>, PlatformError> {
        self.gate(CallClass::Poll, self.inner.updates(cursor)).await
    }

    async fn approve(
        &self,
        assignment: &AssignmentId,
        key: &IdempotencyKey,
    ) -> Result<(), PlatformError> {
        self.gate(CallClass::Effect, self.inner.approve(assignment, key))
            .await
    }

    async fn reject(
        &self,
        assignment: &AssignmentId,
        feedback: &str,
        key: &IdempotencyKey,
    ) -> Result<(), PlatformError> {
        self.gate(
            CallClass::Effect,
            self.inner.reject(assignment, feedback, key),
        )
        .await
    }

    async fn bonus(
        &self,
        worker: &WorkerId,
        assignment: Option<&AssignmentId>,
        amount: Money,
        reason: &str,
        key: &IdempotencyKey,
    ) -> Result<(), PlatformError> {
        self.gate(
            CallClass::Effect,
            self.inner.bonus(worker, assignment, amount, reason, key),
        )
        .await
    }

    async fn notify(
        &self,
        workers: &[WorkerId],
        subject: &str,
        message: &str,
    ) -> Result<(), PlatformError> {
        self.gate(
            CallClass::Effect,
            self.inner.notify(workers, subject, message),
        )
        .await
    }

    async fn block(&self, worker: &WorkerId, reason: &str) -> Result<(), PlatformError> {
        self.gate(CallClass::Effect, self.inner.block(worker, reason))
            .await
    }

    async fn grant_qualification(
        &self,
        worker: &WorkerId,
        qualification: &str,
        value: i64,
    ) -> Result<(), PlatformError> {
        self.gate(
            CallClass::Effect,
            self.inner.grant_qualification(worker, qualification, value),
        )
        .await
    }

    async fn revoke_qualification(
        &self,
        worker: &WorkerId,
        qualification: &str,
    ) -> Result<(), PlatformError> {
        self.gate(
            CallClass::Effect,
            self.inner.revoke_qualification(worker, qualification),
        )
        .await
    }

    async fn balance(&self) -> Result<Money, PlatformError> {
        self.gate(CallClass::Lookup, self.inner.balance()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::VirtualClock;
    use crate::local::LocalMarketplace;
    use crate::model::{EffectId, SessionId};

    fn spec() -> HitSpec {
        HitSpec {
            title: "Label photos".into(),
            description: "Wait, then label photos.".into(),
            keywords: Vec::new(),
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

    fn market() -> LocalMarketplace {
        LocalMarketplace::new(Arc::new(VirtualClock::default()), Money::usd_cents(100_000))
    }

    fn key(seq: u64) -> IdempotencyKey {
        IdempotencyKey::for_effect(&EffectId::new(SessionId::new("faults"), seq))
    }

    /// Posts `n` HITs with fresh keys through `p`, returning the outcome kinds.
    async fn post_many(p: &FaultyPlatform, n: u64) -> Vec<Option<PlatformErrorKind>> {
        let mut out = Vec::new();
        for seq in 1..=n {
            out.push(p.post(&spec(), 1, &key(seq)).await.err().map(|e| e.kind));
        }
        out
    }

    #[tokio::test]
    async fn rate_zero_passes_everything_through() {
        let m = market();
        let p = FaultyPlatform::new(Arc::new(m.clone()), 1, 0.0);
        assert!(post_many(&p, 50).await.iter().all(Option::is_none));
        assert_eq!(m.hits().len(), 50);
        let counts = p.injected();
        assert_eq!((counts.calls, counts.total()), (50, 0));
        assert_eq!(p.capabilities(), m.capabilities());
    }

    #[tokio::test]
    async fn rate_one_fails_every_call_with_every_kind() {
        let m = market();
        let p = FaultyPlatform::new(Arc::new(m.clone()), 2, 1.0);
        let outcomes = post_many(&p, 300).await;
        assert!(outcomes.iter().all(Option::is_some));
        let counts = p.injected();
        assert_eq!(counts.total(), 300);
        for kind in FaultKind::ALL {
            assert!(counts.of(kind) > 50, "{kind:?}: {counts:?}");
            assert!(kind.error().is_retryable());
        }
        // Only timed-out calls reached the market.
        assert_eq!(m.hits().len() as u64, counts.timeouts);
    }

    #[tokio::test]
    async fn refused_calls_are_not_executed_and_timeouts_are() {
        let m = market();
        let p = FaultyPlatform::new(Arc::new(m.clone()), 3, 0.5);
        let outcomes = post_many(&p, 200).await;
        let ok = outcomes.iter().filter(|o| o.is_none()).count() as u64;
        let counts = p.injected();
        assert_eq!(ok + counts.total(), 200);
        assert!(counts.total() > 60 && counts.total() < 140, "{counts:?}");
        assert_eq!(m.hits().len() as u64, ok + counts.timeouts);
        for seq in 1..=200 {
            let executed = m.key_uses(&key(seq)) == 1;
            let outcome = outcomes[seq as usize - 1];
            let expected = matches!(outcome, None | Some(PlatformErrorKind::Timeout));
            assert_eq!(executed, expected, "call {seq}: {outcome:?}");
        }
    }

    #[tokio::test]
    async fn a_timed_out_call_retried_with_its_key_is_done_once() {
        let m = market();
        let p = FaultyPlatform::new(Arc::new(m.clone()), 4, 1.0);
        // Find a call that times out: it was carried out but the caller never heard.
        let mut seq = 0;
        let lost = loop {
            seq += 1;
            let err = p.post(&spec(), 1, &key(seq)).await.unwrap_err();
            if err.kind == PlatformErrorKind::Timeout {
                break key(seq);
            }
        };
        p.set_rate(0.0);
        let first = p.post(&spec(), 1, &lost).await.expect("no faults now");
        let again = p.post(&spec(), 1, &lost).await.expect("no faults now");
        assert_eq!(first, again);
        assert_eq!(m.key_uses(&lost), 3);
        assert_eq!(m.duplicate_calls(), 2);
    }

    #[tokio::test]
    async fn the_same_seed_injects_the_same_faults() {
        let run = |seed| async move {
            let p = FaultyPlatform::new(Arc::new(market()), seed, 0.2);
            (post_many(&p, 100).await, p.injected())
        };
        let (a, counts_a) = run(9).await;
        let (b, counts_b) = run(9).await;
        let (c, _) = run(10).await;
        assert_eq!(a, b);
        assert_eq!(counts_a, counts_b);
        assert_ne!(a, c);
    }

    #[tokio::test(start_paused = true)]
    async fn calls_take_their_class_latency_and_never_means_never() {
        let m = market();
        let p = FaultyPlatform::new(Arc::new(m.clone()), 5, 0.0);
        p.set_latency(
            CallClass::Effect,
            Latency::After(std::time::Duration::from_secs(60)),
        );
        p.set_latency(CallClass::Poll, Latency::Never);
        let started = tokio::time::Instant::now();
        let hit = p.post(&spec(), 1, &key(1)).await.unwrap();
        assert_eq!(started.elapsed(), std::time::Duration::from_secs(60));
        assert_eq!(m.hits()[0].0, hit);
        // A lookup is not an effect: it answers at once.
        let started = tokio::time::Instant::now();
        p.balance().await.unwrap();
        assert_eq!(started.elapsed(), std::time::Duration::ZERO);
        // A poll never answers.
        let hung = tokio::time::timeout(std::time::Duration::from_secs(3_600), p.updates(None));
        assert!(hung.await.is_err());
        let counts = p.injected();
        assert_eq!(
            (counts.calls, counts.effects, counts.polls, counts.lookups),
            (3, 1, 1, 1)
        );
        assert_eq!(p.latency(CallClass::Lookup), Latency::Immediate);
    }

    #[test]
    fn rates_are_clamped() {
        let p = FaultyPlatform::new(Arc::new(market()), 0, 1.5);
        assert_eq!(p.rate(), 1.0);
        p.set_rate(-0.5);
        assert_eq!(p.rate(), 0.0);
        p.set_rate(f64::NAN);
        assert_eq!(p.rate(), 0.0);
        p.set_rate(0.2);
        assert_eq!(p.rate(), 0.2);
    }
}
