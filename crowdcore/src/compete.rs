//! Programmatic participants on the local marketplace: the crowdsource "compete" pattern.
//!
//! A requester posts competition tasks through an [`Arena`], which puts each on the
//! [`LocalMarketplace`] as a HIT and remembers its task, kind and payload. A program — a bot,
//! a model — implements [`Participant`] (or wraps a closure with [`participant`]) to
//! **subscribe to task kinds** and answer automatically: [`Arena::play`] lists the HITs the
//! participant may take, and for each of a kind it subscribes to, accepts it, asks for an
//! answer and submits it — through the marketplace's ordinary worker API, the same one people
//! use, so bots, models and people compete on the same tasks. [`Arena::observe`] then reads the
//! submissions back from the marketplace, as any requester would, and records them in a
//! [`Competition`], which scores them and ranks the participants.
//!
//! ```
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use crowdcore::clock::VirtualClock;
//! use crowdcore::compete::{Arena, participant};
//! use crowdcore::local::LocalMarketplace;
//! use crowdcore::model::{EffectId, HitSpec, Money};
//! use crowdcore::platform::IdempotencyKey;
//! use crowdcore::score::{Competition, KindConfig, Metric, NewTask};
//! use crowdcore::store::MemoryStore;
//! use crowdcore::{SessionId, Timestamp};
//!
//! let clock = Arc::new(VirtualClock::new(Timestamp::ZERO));
//! let market = LocalMarketplace::new(clock.clone(), Money::usd_cents(10_000));
//! let arena = Arena::new(market);
//! let session = SessionId::new("quick");
//! let mut contest = Competition::builder(Arc::new(MemoryStore::new()), session.clone())
//!     .clock(clock)
//!     .open()
//!     .await?;
//! contest.define_kind("parity", KindConfig::new(Metric::Accuracy)).await?;
//! for n in 0..4u64 {
//!     let task = format!("n{n}");
//!     let truth = if n % 2 == 0 { "even" } else { "odd" };
//!     contest.post_task(NewTask::new(task.as_str(), "parity").truth(truth)).await?;
//!     let key = IdempotencyKey::for_effect(&EffectId::new(session.clone(), n + 1));
//!     let spec = HitSpec {
//!         title: "Even or odd?".into(),
//!         description: "Say whether the number is even or odd.".into(),
//!         keywords: Vec::new(),
//!         reward: Money::usd_cents(5),
//!         assignment_duration_ms: 60_000,
//!         lifetime_ms: 3_600_000,
//!         max_assignments: 2,
//!         auto_approval_delay_ms: 60_000,
//!         qualifications: Vec::new(),
//!         landing_url: "https://example.org/task".into(),
//!         frame_height: 600,
//!     };
//!     arena.post(task.into(), "parity".into(), n.to_string(), &spec, 2, &key).await?;
//! }
//! // Two bots subscribe to the kind: one reads the number, one always says "even".
//! let mut reader = participant("reader", ["parity"], |t| {
//!     let n: u64 = t.payload.parse().ok()?;
//!     Some(if n % 2 == 0 { "even" } else { "odd" }.to_owned())
//! });
//! let mut lazy = participant("lazy", ["parity"], |_| Some("even".to_owned()));
//! arena.play(&mut reader, usize::MAX)?;
//! arena.play(&mut lazy, usize::MAX)?;
//! arena.observe(&mut contest).await?;
//! let board = contest.leaderboard(&"parity".into())?;
//! assert_eq!(board.standings[0].participant.as_str(), "reader");
//! assert_eq!((board.standings[0].score, board.standings[1].score), (1.0, 0.5));
//! # Ok(()) }
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(run()).unwrap();
//! ```

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::local::{LocalMarketplace, MarketError};
use crate::model::{HitId, HitSpec, WorkerId};
use crate::platform::{AssignmentStatus, IdempotencyKey, Platform, PlatformError};
use crate::score::{Competition, KindId, Observed, ObservedOutcome, TaskId};
use crate::store::StoreError;

/// The name of the observer cursor [`Arena::observe`] keeps in the competition's session.
pub const CURSOR: &str = "compete";

/// A competition task as a participant sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskView {
    /// The HIT it is posted as.
    pub hit: HitId,
    /// The task.
    pub task: TaskId,
    /// Its kind.
    pub kind: KindId,
    /// What to answer about: an item's text, a URL, JSON features — the requester's choice.
    pub payload: String,
}

/// A program that competes: it subscribes to task kinds and answers their tasks.
pub trait Participant: Send {
    /// Its worker id on the marketplace (and so on the leaderboards).
    fn id(&self) -> &WorkerId;

    /// The kinds it subscribes to: it is offered tasks of these kinds only.
    fn kinds(&self) -> &[KindId];

    /// Its answer to a task, in the form the kind's metric reads; `None` passes (the slot is
    /// returned for someone else).
    fn answer(&mut self, task: &TaskView) -> Option<String>;
}

/// A [`Participant`] made of a closure; see [`participant`].
pub struct FnParticipant<F> {
    id: WorkerId,
    kinds: Vec<KindId>,
    answer: F,
}

/// A participant `id`, subscribed to `kinds`, that answers with `answer`.
pub fn participant<F, K>(
    id: impl Into<WorkerId>,
    kinds: impl IntoIterator<Item = K>,
    answer: F,
) -> FnParticipant<F>
where
    F: FnMut(&TaskView) -> Option<String> + Send,
    K: Into<KindId>,
{
    FnParticipant {
        id: id.into(),
        kinds: kinds.into_iter().map(Into::into).collect(),
        answer,
    }
}

impl<F> Participant for FnParticipant<F>
where
    F: FnMut(&TaskView) -> Option<String> + Send,
{
    fn id(&self) -> &WorkerId {
        &self.id
    }

    fn kinds(&self) -> &[KindId] {
        &self.kinds
    }

    fn answer(&mut self, task: &TaskView) -> Option<String> {
        (self.answer)(task)
    }
}

impl<F> std::fmt::Debug for FnParticipant<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FnParticipant")
            .field("id", &self.id)
            .field("kinds", &self.kinds)
            .finish_non_exhaustive()
    }
}

/// What one [`Arena::play`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Played {
    /// Tasks answered (accepted and submitted).
    pub answered: u32,
    /// Tasks passed on (accepted, then returned).
    pub passed: u32,
    /// Tasks listed but gone by the time the participant tried to accept (another worker took
    /// the last slot, the HIT closed).
    pub missed: u32,
}

/// Why [`Arena::observe`] failed.
#[derive(Debug, thiserror::Error)]
pub enum CompeteError {
    /// Reading the marketplace failed.
    #[error(transparent)]
    Platform(#[from] PlatformError),
    /// Recording in the competition's store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Competition tasks on a [`LocalMarketplace`]: posts them, lets [`Participant`]s play them,
/// and feeds the submissions to a [`Competition`]. Clones share the same tasks.
#[derive(Debug, Clone)]
pub struct Arena {
    market: LocalMarketplace,
    tasks: Arc<Mutex<BTreeMap<HitId, TaskView>>>,
}

impl Arena {
    /// An arena on `market` (the requester's handle: HITs are posted for its project).
    pub fn new(market: LocalMarketplace) -> Self {
        Self {
            market,
            tasks: Arc::default(),
        }
    }

    /// The marketplace.
    pub fn market(&self) -> &LocalMarketplace {
        &self.market
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<HitId, TaskView>> {
        // Inserts and reads only: data behind a poisoned lock is intact.
        self.tasks.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Posts `task` of `kind` as a HIT of `spec` with `slots` slots (one per participant
    /// wanted), and remembers it. Repeating `key` returns the first HIT, as
    /// [`Platform::post`] does. The competition is told separately (post the task to it too,
    /// with its truth and deadline), since a task may exist there before or without a HIT.
    pub async fn post(
        &self,
        task: TaskId,
        kind: KindId,
        payload: String,
        spec: &HitSpec,
        slots: u32,
        key: &IdempotencyKey,
    ) -> Result<HitId, PlatformError> {
        let hit = self.market.post(spec, slots, key).await?;
        self.register(hit.clone(), task, kind, payload);
        Ok(hit)
    }

    /// Remembers a HIT posted some other way as a competition task.
    pub fn register(&self, hit: HitId, task: TaskId, kind: KindId, payload: String) {
        let view = TaskView {
            hit: hit.clone(),
            task,
            kind,
            payload,
        };
        self.lock().insert(hit, view);
    }

    /// The competition task a HIT was posted for.
    pub fn task(&self, hit: &HitId) -> Option<TaskView> {
        self.lock().get(hit).cloned()
    }

    /// Lets `participant` take up to `limit` of the tasks it may accept now, oldest first,
    /// among those of the kinds it subscribes to: each is accepted, answered and submitted (or
    /// returned, if the participant passes). A task that slips away between listing and
    /// accepting is skipped. Fails only when the marketplace refuses the participant itself
    /// (blocked).
    pub fn play(
        &self,
        participant: &mut dyn Participant,
        limit: usize,
    ) -> Result<Played, MarketError> {
        let mut played = Played::default();
        let id = participant.id().clone();
        for listing in self.market.available(&id) {
            if (played.answered + played.passed) as usize >= limit {
                break;
            }
            let Some(view) = self.task(&listing.hit) else {
                continue; // not a competition task
            };
            if !participant.kinds().contains(&view.kind) {
                continue;
            }
            let assignment = match self.market.accept(&id, &listing.hit) {
                Ok(a) => a,
                Err(MarketError::Blocked(w)) => return Err(MarketError::Blocked(w)),
                Err(_) => {
                    played.missed += 1;
                    continue;
                }
            };
            match participant.answer(&view) {
                Some(answer) => {
                    self.market.submit(&assignment, Some(answer))?;
                    played.answered += 1;
                }
                None => {
                    self.market.return_assignment(&assignment)?;
                    played.passed += 1;
                }
            }
        }
        Ok(played)
    }

    /// Reads the submissions to competition tasks made on the marketplace since the last call
    /// (whoever made them: programs through [`play`](Self::play), or people) and records them
    /// in `competition`, with their submission times, together with the observer cursor
    /// ([`CURSOR`]) in the competition's store: after a restart, observing again picks up where
    /// the last recorded page ended, so no submission is lost or recorded twice. Refused
    /// submissions (late, say) come out of the competition as
    /// [`Event::Refused`](crate::score::Event::Refused).
    pub async fn observe(
        &self,
        competition: &mut Competition,
    ) -> Result<ObservedOutcome, CompeteError> {
        let mut cursor = competition.cursor(CURSOR).await?;
        let mut total = ObservedOutcome::default();
        loop {
            let page = self.market.updates(cursor.as_ref()).await?;
            let submissions: Vec<Observed> = page
                .items
                .iter()
                .filter(|u| u.status == AssignmentStatus::Submitted)
                .filter_map(|u| {
                    let view = self.task(&u.hit)?;
                    Some(Observed {
                        at: u.at,
                        task: view.task,
                        participant: u.worker.clone(),
                        answer: self.market.answer(&u.assignment).unwrap_or_default(),
                    })
                })
                .collect();
            let advanced = page.next.as_ref().filter(|n| Some(*n) != cursor.as_ref());
            if submissions.is_empty() && advanced.is_none() {
                return Ok(total);
            }
            let outcome = competition
                .record_observed(&submissions, advanced.map(|c| (CURSOR, c)))
                .await?;
            total.accepted += outcome.accepted;
            total.refused += outcome.refused;
            if advanced.is_none() || page.items.is_empty() {
                return Ok(total);
            }
            cursor = page.next;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::VirtualClock;
    use crate::model::{EffectId, Money, SessionId, Timestamp};
    use crate::score::{Event, KindConfig, Metric, NewTask, Refused};
    use crate::store::MemoryStore;

    fn spec(slots: u32) -> HitSpec {
        HitSpec {
            title: "t".into(),
            description: "d".into(),
            keywords: Vec::new(),
            reward: Money::usd_cents(5),
            assignment_duration_ms: 60_000,
            lifetime_ms: 3_600_000,
            max_assignments: slots,
            auto_approval_delay_ms: 1,
            qualifications: Vec::new(),
            landing_url: "https://example.org/".into(),
            frame_height: 600,
        }
    }

    fn key(n: u64) -> IdempotencyKey {
        IdempotencyKey::for_effect(&EffectId::new(SessionId::new("arena"), n))
    }

    struct World {
        clock: Arc<VirtualClock>,
        arena: Arena,
        store: Arc<MemoryStore>,
    }

    fn world() -> World {
        let clock = Arc::new(VirtualClock::new(Timestamp::ZERO));
        let market = LocalMarketplace::new(clock.clone(), Money::usd_cents(100_000));
        World {
            clock,
            arena: Arena::new(market),
            store: Arc::new(MemoryStore::new()),
        }
    }

    async fn competition(w: &World) -> Competition {
        Competition::builder(w.store.clone(), SessionId::new("c"))
            .clock(w.clock.clone())
            .open()
            .await
            .unwrap()
    }

    /// Posts `n` tasks `<kind>-<i>` with payload `i` on the market (slots each).
    async fn post(w: &World, kind: &str, n: u64, slots: u32) {
        for i in 0..n {
            let k = key(w.arena.lock().len() as u64 + 1);
            w.arena
                .post(
                    format!("{kind}-{i}").into(),
                    kind.into(),
                    i.to_string(),
                    &spec(slots),
                    slots,
                    &k,
                )
                .await
                .unwrap();
        }
    }

    #[tokio::test]
    async fn a_participant_gets_only_the_kinds_it_subscribes_to() {
        let w = world();
        post(&w, "a", 2, 1).await;
        post(&w, "b", 2, 1).await;
        let mut seen = Vec::new();
        let mut p = participant("bot", ["b"], |t: &TaskView| {
            seen.push((t.task.to_string(), t.payload.clone()));
            Some("x".into())
        });
        let played = w.arena.play(&mut p, usize::MAX).unwrap();
        assert_eq!(played.answered, 2);
        drop(p);
        assert_eq!(
            seen,
            [("b-0".into(), "0".into()), ("b-1".into(), "1".into())]
        );
        // The kind-a HITs are still open for someone else.
        assert_eq!(w.arena.market().available(&"other".into()).len(), 2);
    }

    #[tokio::test]
    async fn play_respects_the_limit_and_a_pass_returns_the_slot() {
        let w = world();
        post(&w, "a", 3, 1).await;
        let mut picky = participant("picky", ["a"], |t: &TaskView| {
            (t.payload != "0").then(|| "x".to_owned())
        });
        let played = w.arena.play(&mut picky, 2).unwrap();
        assert_eq!((played.answered, played.passed), (1, 1));
        // The passed task is open again, to others only; the third is still there for picky.
        let others: Vec<_> = w
            .arena
            .market()
            .available(&"other".into())
            .into_iter()
            .map(|l| w.arena.task(&l.hit).unwrap().task.to_string())
            .collect();
        assert_eq!(others, ["a-0", "a-2"]);
        let again = w.arena.play(&mut picky, usize::MAX).unwrap();
        assert_eq!((again.answered, again.passed), (1, 0));
    }

    #[tokio::test]
    async fn a_task_taken_between_listing_and_accepting_is_missed() {
        let w = world();
        post(&w, "a", 2, 1).await;
        let market = w.arena.market().clone();
        let second = market.hits()[1].0.clone();
        // While the bot answers the first task, someone else takes the second one's only slot.
        let mut bot = participant("bot", ["a"], move |_: &TaskView| {
            let _ = market.accept(&"fast".into(), &second);
            Some("x".to_owned())
        });
        let played = w.arena.play(&mut bot, usize::MAX).unwrap();
        let want = Played {
            answered: 1,
            passed: 0,
            missed: 1,
        };
        assert_eq!(played, want);
    }

    #[tokio::test]
    async fn observe_scores_market_submissions_and_refuses_late_ones() {
        let w = world();
        let mut c = competition(&w).await;
        c.define_kind("a", KindConfig::new(Metric::Accuracy))
            .await
            .unwrap();
        post(&w, "a", 2, 2).await;
        for i in 0..2 {
            let task = NewTask::new(format!("a-{i}"), "a")
                .truth("yes")
                .deadline(Timestamp::from_millis(60_000));
            c.post_task(task).await.unwrap();
        }
        let mut good = participant("good", ["a"], |_: &TaskView| Some("yes".into()));
        let mut slow = participant("slow", ["a"], |_: &TaskView| Some("yes".into()));
        w.arena.play(&mut good, usize::MAX).unwrap();
        w.clock.advance(30_000);
        w.arena.play(&mut slow, 1).unwrap();
        w.clock.advance(30_000); // the deadline
        w.arena.play(&mut slow, 1).unwrap();
        w.clock.advance(60_000);
        // Observed late: the times that count are the market's.
        let outcome = w.arena.observe(&mut c).await.unwrap();
        assert_eq!((outcome.accepted, outcome.refused), (3, 1));
        let refused: Vec<_> = std::iter::from_fn(|| c.poll_event())
            .filter_map(|e| match e {
                Event::Refused { reason, .. } => Some(reason),
                _ => None,
            })
            .collect();
        assert!(matches!(
            refused[..],
            [Refused::PastDeadline { at, .. }] if at == Timestamp::from_millis(60_000)
        ));
        let board = c.leaderboard(&"a".into()).unwrap();
        let rows: Vec<_> = board
            .standings
            .iter()
            .map(|s| (s.rank, s.participant.as_str(), s.answers))
            .collect();
        assert_eq!(rows, [(1, "good", 2), (1, "slow", 1)]);
        // Nothing new: nothing recorded twice.
        assert_eq!(
            w.arena.observe(&mut c).await.unwrap(),
            ObservedOutcome::default()
        );
    }

    #[tokio::test]
    async fn observing_resumes_from_the_stored_cursor_after_a_restart() {
        let w = world();
        let mut c = competition(&w).await;
        c.define_kind("a", KindConfig::new(Metric::Accuracy))
            .await
            .unwrap();
        post(&w, "a", 3, 1).await;
        for i in 0..3 {
            c.post_task(NewTask::new(format!("a-{i}"), "a"))
                .await
                .unwrap();
        }
        let mut bot = participant("bot", ["a"], |_: &TaskView| Some("yes".into()));
        w.arena.play(&mut bot, 1).unwrap();
        assert_eq!(w.arena.observe(&mut c).await.unwrap().accepted, 1);
        drop(c);
        w.arena.play(&mut bot, usize::MAX).unwrap();
        let mut c = competition(&w).await;
        assert_eq!(c.board().pending(), 1, "the deferred answer survived");
        let outcome = w.arena.observe(&mut c).await.unwrap();
        assert_eq!((outcome.accepted, outcome.refused), (2, 0));
        assert_eq!(c.board().pending(), 3);
    }
}
