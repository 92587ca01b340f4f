//! Follows the engine's events: each worker page's state (and nobody else's), the recent events
//! and the queue-size history for the status page.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{broadcast, watch};

use super::HttpConfig;
use super::finish::{self, PageRecords};
use super::worker::PlatformForm;
use crate::clock::Clock;
use crate::engine::{EngineEvent, EngineHandle};
use crate::model::{AssignmentId, Money, Timestamp, WorkerId};
use crate::pavilion::{Departure, EffectKind, ReleaseReason, Snapshot, TurnAwayReason};

/// Where a worker's page stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PageStatus {
    /// The arrival is being recorded.
    Arriving,
    /// In the waiting queue: paid to stand by.
    Waiting,
    /// On the task: it is their turn.
    Active,
    /// Turned away: every seat was taken.
    JobFull,
    /// Turned away: the job had ended.
    JobEnded,
    /// Turned away: the budget could not cover them.
    OverBudget,
    /// Turned away: the worker already holds a seat under another assignment.
    AlreadySeated,
    /// Released by the operator (the job stopped, or the targets were lowered): their work is
    /// submitted for them and paid.
    Released,
    /// Their page went silent past the heartbeat timeout.
    TimedOut,
    /// They submitted.
    Submitted,
    /// They returned the assignment.
    Returned,
    /// The platform reported the assignment abandoned.
    Abandoned,
}

impl PageStatus {
    /// Whether the worker has left (the page has nothing more to wait for).
    pub fn is_final(self) -> bool {
        !matches!(self, Self::Arriving | Self::Waiting | Self::Active)
    }
}

/// What a worker's page is told about itself. It never names anyone else.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PageState {
    /// Where they stand.
    pub status: PageStatus,
    /// Why they were released (`job_stopped`, `targets_lowered`), if they were.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<ReleaseReason>,
    /// When they arrived (ms since the epoch).
    pub arrived_at: Option<Timestamp>,
    /// When they were promoted, if they were.
    pub promoted_at: Option<Timestamp>,
    /// The server's time when this was sent, to compute time waited without trusting the
    /// browser's clock.
    pub now: Timestamp,
    /// What they have been paid so far in this session, in minor units.
    pub earned_cents: i64,
    /// How to finish on the platform, once their work is over (submitted, or released by the
    /// operator) and the platform wants the page to finish there: post this form (MTurk's
    /// `externalSubmit`, only ever to an allow-listed origin). Posting it again is harmless.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub form: Option<Box<PlatformForm>>,
}

impl PageState {
    fn new(status: PageStatus) -> Self {
        Self {
            status,
            reason: None,
            arrived_at: None,
            promoted_at: None,
            now: Timestamp::ZERO,
            earned_cents: 0,
            form: None,
        }
    }
}

/// How sure a page state is: a later update only replaces one of a lower rank, so events and
/// snapshots may arrive in any order and the page still only moves forward.
fn rank(status: PageStatus, exact: bool) -> u8 {
    match status {
        PageStatus::Arriving => 0,
        PageStatus::Waiting => 1,
        PageStatus::Active => 2,
        _ if exact => 4,
        _ => 3,
    }
}

struct Page {
    worker: WorkerId,
    rank: u8,
    /// Whether the page is in `Pages::departed` (it reached a final status).
    departed: bool,
    tx: watch::Sender<PageState>,
    submit_to: Option<String>,
    /// The contributions the page reported with its submission (the form carries them).
    contributions: u32,
    /// When a heartbeat of this page last went to the engine.
    forwarded_at: Option<Timestamp>,
}

/// A point of the status page's chart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub(crate) struct Point {
    pub(crate) t: Timestamp,
    pub(crate) waiting: u32,
    pub(crate) active: u32,
}

/// An engine event as the status page shows it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Stamped {
    pub(crate) at: Timestamp,
    pub(crate) event: EngineEvent,
}

/// What the status streams receive.
#[derive(Debug, Clone)]
pub(crate) enum Broadcast {
    Event(Arc<Stamped>),
    Point(Point),
}

/// The pages, and the order in which they left, so that what the hub keeps stays bounded: a
/// departed page is kept for `keep_ms` (a reload learns how it ended) and at most `keep`
/// of them at once, oldest evicted first. Present pages are bounded by the machine's seats.
struct Pages {
    map: HashMap<AssignmentId, Page>,
    departed: VecDeque<(AssignmentId, Timestamp)>,
    keep: usize,
    keep_ms: u64,
}

impl Pages {
    fn get(&self, a: &AssignmentId) -> Option<&Page> {
        self.map.get(a)
    }

    fn get_mut(&mut self, a: &AssignmentId) -> Option<&mut Page> {
        self.map.get_mut(a)
    }

    /// Notes that `a`'s page may have just left, then evicts what is over the bounds.
    fn settle(&mut self, a: &AssignmentId, now: Timestamp) {
        if let Some(page) = self.map.get_mut(a)
            && !page.departed
            && page.tx.borrow().status.is_final()
        {
            page.departed = true;
            self.departed.push_back((a.clone(), now));
        }
        self.evict(now);
    }

    fn evict(&mut self, now: Timestamp) {
        while let Some((_, at)) = self.departed.front() {
            let over = self.departed.len() > self.keep;
            if !over && now.millis_since(*at) < self.keep_ms {
                break;
            }
            let (a, _) = self.departed.pop_front().expect("front exists");
            self.map.remove(&a);
        }
    }
}

pub(crate) struct Hub {
    /// The form every page finishes with, where the front has a fixed completion redirect.
    redirect: Option<PlatformForm>,
    pages: Mutex<Pages>,
    recent: Mutex<VecDeque<Arc<Stamped>>>,
    history: Mutex<VecDeque<Point>>,
    tx: broadcast::Sender<Broadcast>,
    keep_events: usize,
}

const HOUR_MS: u64 = 3_600_000;

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section leaves its data consistent before anything can panic.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Hub {
    /// A hub following `engine`; its task ends when the engine's event channel closes.
    pub(crate) fn spawn(
        engine: EngineHandle,
        clock: Arc<dyn Clock>,
        config: &HttpConfig,
        records: Arc<PageRecords>,
    ) -> Arc<Self> {
        let (tx, _) = broadcast::channel(4096);
        let hub = Arc::new(Self {
            pages: Mutex::new(Pages {
                map: HashMap::new(),
                departed: VecDeque::new(),
                keep: config.keep_departed_pages,
                keep_ms: config.keep_departed_pages_ms,
            }),
            recent: Mutex::new(VecDeque::new()),
            history: Mutex::new(VecDeque::new()),
            tx,
            keep_events: config.recent_events.max(1),
            redirect: config.finish_redirect.as_deref().map(finish::redirect_form),
        });
        let every = Duration::from_millis(config.sample_every_ms.max(100));
        let mut events = engine.subscribe();
        let weak = Arc::downgrade(&hub);
        tokio::spawn(async move {
            // Subscribed before the snapshot: whatever happens in between is seen twice,
            // which ranks make harmless.
            if let Ok(snap) = engine.snapshot().await
                && let Some(hub) = weak.upgrade()
            {
                hub.load(&snap, clock.now());
                // After a restart the seated pages' platform addresses come from the store:
                // a page that arrived before it and is released after it still finishes.
                hub.restore(&snap, &records).await;
            }
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    event = events.recv() => {
                        let Some(hub) = weak.upgrade() else { return };
                        match event {
                            Ok(event) => hub.follow(event, clock.now()),
                            Err(broadcast::error::RecvError::Lagged(n)) => {
                                tracing::warn!(missed = n, "http front fell behind the engine's events");
                                if let Ok(snap) = engine.snapshot().await {
                                    hub.load(&snap, clock.now());
                                    hub.restore(&snap, &records).await;
                                }
                            }
                            Err(broadcast::error::RecvError::Closed) => return,
                        }
                    }
                    _ = tick.tick() => {
                        let Ok(snap) = engine.snapshot().await else { return };
                        let Some(hub) = weak.upgrade() else { return };
                        hub.sample(&snap, clock.now());
                    }
                }
            }
        });
        hub
    }

    /// Takes page states from a snapshot (at start, and after missing events).
    fn load(&self, snap: &Snapshot, now: Timestamp) {
        let mut pages = lock(&self.pages);
        for (seat, status) in snap
            .waiting
            .iter()
            .map(|s| (s, PageStatus::Waiting))
            .chain(snap.active.iter().map(|s| (s, PageStatus::Active)))
        {
            let page = pages
                .map
                .entry(seat.assignment.clone())
                .or_insert_with(|| new_page(seat.worker.clone(), None));
            update(page, rank(status, false), |s| {
                s.status = status;
                s.arrived_at = Some(seat.arrived_at);
                s.promoted_at = seat.promoted_at;
            });
        }
        // Departures update the pages the hub keeps and add none: the snapshot lists every
        // departure of the session, which would make the hub grow without bound. A page that
        // reloads after leaving learns how it ended from the engine (`arrive`).
        for gone in &snap.departed {
            let status = departed_status(gone.how, snap.phase);
            if let Some(page) = pages.get_mut(&gone.assignment) {
                update(page, rank(status, false), |s| s.status = status);
                pages.settle(&gone.assignment, now);
            }
        }
        drop(pages);
        self.sample(snap, now);
    }

    fn sample(&self, snap: &Snapshot, now: Timestamp) {
        lock(&self.pages).evict(now);
        let point = Point {
            t: now,
            waiting: snap.waiting.len() as u32,
            active: snap.active.len() as u32,
        };
        let mut history = lock(&self.history);
        history.push_back(point);
        while history
            .front()
            .is_some_and(|p| now.millis_since(p.t) > HOUR_MS)
        {
            history.pop_front();
        }
        drop(history);
        let _ = self.tx.send(Broadcast::Point(point));
    }

    /// One engine event: the page it concerns, the recent list, the status streams.
    fn follow(&self, event: EngineEvent, now: Timestamp) {
        if let EngineEvent::Effect(effect) = &event {
            if let EffectKind::Pay {
                assignment, amount, ..
            } = &effect.kind
            {
                let mut pages = lock(&self.pages);
                if let Some(page) = pages.get_mut(assignment) {
                    add_earned(page, *amount);
                }
            }
            self.apply(&effect.kind, effect.at);
        }
        let stamped = Arc::new(Stamped { at: now, event });
        let mut recent = lock(&self.recent);
        recent.push_back(stamped.clone());
        while recent.len() > self.keep_events {
            recent.pop_front();
        }
        drop(recent);
        let _ = self.tx.send(Broadcast::Event(stamped));
    }

    /// Moves the page an effect speaks of (idempotent: the arrival handler applies the effects
    /// of its own input too, so its answer is exact).
    pub(crate) fn apply(&self, kind: &EffectKind, at: Timestamp) {
        let (assignment, status, reason) = match kind {
            EffectKind::Promote { assignment, .. } => (assignment, PageStatus::Active, None),
            EffectKind::Release {
                assignment, reason, ..
            } => (assignment, PageStatus::Released, Some(*reason)),
            EffectKind::TurnAway {
                assignment, reason, ..
            } => {
                let status = match reason {
                    TurnAwayReason::JobFull => PageStatus::JobFull,
                    TurnAwayReason::JobEnded => PageStatus::JobEnded,
                    TurnAwayReason::OverBudget => PageStatus::OverBudget,
                    TurnAwayReason::AlreadySeated => PageStatus::AlreadySeated,
                };
                (assignment, status, None)
            }
            EffectKind::TimedOut { assignment, .. } => (assignment, PageStatus::TimedOut, None),
            _ => return,
        };
        let mut pages = lock(&self.pages);
        if let Some(page) = pages.get_mut(assignment) {
            update(page, rank(status, true), |s| {
                s.status = status;
                s.reason = reason;
                if status == PageStatus::Active {
                    s.promoted_at = Some(at);
                }
            });
            refresh_form(page, assignment, self.redirect.as_ref());
            pages.settle(assignment, at);
        }
    }

    /// Notes a page about to arrive. `Err(())` if another worker's page holds the assignment.
    pub(crate) fn register(
        &self,
        assignment: &AssignmentId,
        worker: &WorkerId,
        submit_to: Option<String>,
    ) -> Result<(), ()> {
        let mut pages = lock(&self.pages);
        match pages.get_mut(assignment) {
            Some(page) if &page.worker != worker => Err(()),
            Some(page) => {
                if submit_to.is_some() {
                    page.submit_to = submit_to;
                    refresh_form(page, assignment, self.redirect.as_ref());
                }
                Ok(())
            }
            None => {
                pages
                    .map
                    .insert(assignment.clone(), new_page(worker.clone(), submit_to));
                Ok(())
            }
        }
    }

    /// Forgets a page whose arrival the engine refused and that never got further.
    pub(crate) fn unregister(&self, assignment: &AssignmentId) {
        let mut pages = lock(&self.pages);
        if pages.get(assignment).is_some_and(|p| p.rank == 0) {
            pages.map.remove(assignment);
        }
    }

    /// Sets a page's state after an input of its own went through (`arrived`: waiting since
    /// `at`; or a departure).
    pub(crate) fn set(&self, assignment: &AssignmentId, status: PageStatus, at: Timestamp) {
        let mut pages = lock(&self.pages);
        if let Some(page) = pages.get_mut(assignment) {
            update(page, rank(status, true), |s| {
                s.status = status;
                if s.arrived_at.is_none() {
                    s.arrived_at = Some(at);
                }
            });
            // The arrival time is known even if an event ranked the page first.
            page.tx.send_if_modified(|s| {
                let fresh = s.arrived_at.is_none();
                if fresh {
                    s.arrived_at = Some(at);
                }
                fresh
            });
            refresh_form(page, assignment, self.redirect.as_ref());
            pages.settle(assignment, at);
        }
    }

    /// Notes the contributions the page reported with its submission (for its form).
    pub(crate) fn set_contributions(&self, assignment: &AssignmentId, contributions: u32) {
        if let Some(page) = lock(&self.pages).get_mut(assignment) {
            page.contributions = contributions;
        }
    }

    /// Gives `assignment`'s page the platform address recorded for it, if it has none.
    pub(crate) fn set_submit_to(&self, assignment: &AssignmentId, origin: String) {
        if let Some(page) = lock(&self.pages).get_mut(assignment)
            && page.submit_to.is_none()
        {
            page.submit_to = Some(origin);
            refresh_form(page, assignment, self.redirect.as_ref());
        }
    }

    /// Reads back the platform addresses of the snapshot's seated pages the hub has none for.
    async fn restore(&self, snap: &Snapshot, records: &PageRecords) {
        if !records.durable() {
            return;
        }
        let missing: Vec<AssignmentId> = {
            let pages = lock(&self.pages);
            snap.waiting
                .iter()
                .chain(&snap.active)
                .filter(|s| {
                    pages
                        .get(&s.assignment)
                        .is_some_and(|p| p.submit_to.is_none())
                })
                .map(|s| s.assignment.clone())
                .collect()
        };
        for a in missing {
            if let Some(origin) = records.submit_to(&a).await {
                self.set_submit_to(&a, origin);
            }
        }
    }

    /// The worker whose page holds `assignment`, if the hub keeps it.
    pub(crate) fn worker(&self, assignment: &AssignmentId) -> Option<WorkerId> {
        lock(&self.pages).get(assignment).map(|p| p.worker.clone())
    }

    /// Pages kept (present and recently departed).
    pub(crate) fn len(&self) -> usize {
        lock(&self.pages).map.len()
    }

    /// Whether a heartbeat of `assignment` at `now` must go to the engine: the page is present
    /// and none went in the last `gap_ms` (then `now` is noted as the last one sent). A page
    /// the hub does not know as present always goes, so the engine answers for it.
    pub(crate) fn forward_heartbeat(
        &self,
        assignment: &AssignmentId,
        now: Timestamp,
        gap_ms: u64,
    ) -> bool {
        let mut pages = lock(&self.pages);
        let Some(page) = pages.get_mut(assignment) else {
            return true;
        };
        let present = matches!(
            page.tx.borrow().status,
            PageStatus::Waiting | PageStatus::Active
        );
        let recent = page
            .forwarded_at
            .is_some_and(|t| now.millis_since(t) < gap_ms);
        if present && recent {
            return false;
        }
        page.forwarded_at = Some(now);
        true
    }

    /// The heartbeat [`forward_heartbeat`](Self::forward_heartbeat) let through did not reach
    /// the engine: the page's next heartbeat goes, instead of waiting out the gap.
    pub(crate) fn heartbeat_not_forwarded(&self, assignment: &AssignmentId) {
        if let Some(page) = lock(&self.pages).get_mut(assignment) {
            page.forwarded_at = None;
        }
    }

    /// A page's state, if it ever arrived.
    pub(crate) fn state(&self, assignment: &AssignmentId) -> Option<PageState> {
        lock(&self.pages)
            .get(assignment)
            .map(|p| p.tx.borrow().clone())
    }

    /// The platform submit address the page arrived with.
    pub(crate) fn submit_to(&self, assignment: &AssignmentId) -> Option<String> {
        lock(&self.pages)
            .get(assignment)
            .and_then(|p| p.submit_to.clone())
    }

    /// A receiver of the page's states.
    pub(crate) fn watch(&self, assignment: &AssignmentId) -> Option<watch::Receiver<PageState>> {
        lock(&self.pages).get(assignment).map(|p| p.tx.subscribe())
    }

    pub(crate) fn recent(&self) -> Vec<Arc<Stamped>> {
        lock(&self.recent).iter().cloned().collect()
    }

    pub(crate) fn history(&self) -> Vec<Point> {
        lock(&self.history).iter().copied().collect()
    }

    pub(crate) fn listen(&self) -> broadcast::Receiver<Broadcast> {
        self.tx.subscribe()
    }
}

fn new_page(worker: WorkerId, submit_to: Option<String>) -> Page {
    Page {
        worker,
        rank: 0,
        departed: false,
        tx: watch::Sender::new(PageState::new(PageStatus::Arriving)),
        submit_to,
        contributions: 0,
        forwarded_at: None,
    }
}

/// Gives the page its finishing form once its work is over: the front's completion redirect,
/// or the platform form of the page's address once that is known.
fn refresh_form(page: &mut Page, assignment: &AssignmentId, redirect: Option<&PlatformForm>) {
    let form = match (redirect, page.submit_to.as_deref()) {
        (Some(form), _) => form.clone(),
        (None, Some(origin)) => finish::mturk_form(origin, assignment, page.contributions),
        (None, None) => return,
    };
    page.tx.send_if_modified(|s| {
        let over = matches!(s.status, PageStatus::Submitted | PageStatus::Released);
        let fresh = over && s.form.as_deref() != Some(&form);
        if fresh {
            s.form = Some(Box::new(form));
        }
        fresh
    });
}

fn update(page: &mut Page, rank: u8, f: impl FnOnce(&mut PageState)) {
    if rank <= page.rank {
        return;
    }
    page.rank = rank;
    page.tx.send_modify(f);
}

fn add_earned(page: &mut Page, amount: Money) {
    page.tx
        .send_modify(|s| s.earned_cents = s.earned_cents.saturating_add(amount.minor));
}

/// What a page shows once its worker has left, `how`, in a session in `phase`: turned away
/// from a stopped job is its end, from a running one a full job.
pub(crate) fn departed_status(how: Departure, phase: crate::pavilion::Phase) -> PageStatus {
    match how {
        Departure::Submitted => PageStatus::Submitted,
        Departure::Returned => PageStatus::Returned,
        Departure::Abandoned => PageStatus::Abandoned,
        Departure::TimedOut => PageStatus::TimedOut,
        Departure::Released => PageStatus::Released,
        Departure::TurnedAway if phase == crate::pavilion::Phase::Stopped => PageStatus::JobEnded,
        Departure::TurnedAway => PageStatus::JobFull,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pages(keep: usize, keep_ms: u64) -> Pages {
        Pages {
            map: HashMap::new(),
            departed: VecDeque::new(),
            keep,
            keep_ms,
        }
    }

    fn add(p: &mut Pages, a: &str, status: PageStatus, at: u64) {
        let a = AssignmentId::new(a);
        let mut page = new_page(WorkerId::new("w"), None);
        update(&mut page, rank(status, true), |s| s.status = status);
        p.map.insert(a.clone(), page);
        p.settle(&a, Timestamp::from_millis(at));
    }

    #[test]
    fn departed_pages_are_evicted_by_count_and_by_age_and_present_ones_stay() {
        let mut p = pages(2, 1_000);
        add(&mut p, "present", PageStatus::Waiting, 0);
        for (i, a) in ["d1", "d2", "d3"].into_iter().enumerate() {
            add(&mut p, a, PageStatus::Submitted, 10 + i as u64);
        }
        // Three departed, two kept: the oldest went.
        let kept = |p: &Pages, a: &str| p.map.contains_key(&AssignmentId::new(a));
        assert!(!kept(&p, "d1") && kept(&p, "d2") && kept(&p, "d3"));
        // Settling a page twice does not queue it twice.
        p.settle(&AssignmentId::new("d3"), Timestamp::from_millis(20));
        assert_eq!(p.departed.len(), 2);
        // Past their time, departed pages go; the present page stays, whatever its age.
        p.evict(Timestamp::from_millis(5_000));
        assert_eq!(p.map.len(), 1);
        assert!(kept(&p, "present"));
    }
}
