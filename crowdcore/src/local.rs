//! The local marketplace: a real [`Platform`] that lives in the process (the Daemo model).
//!
//! Requesters post HITs with slots and qualification requirements; workers — people through an
//! HTTP front, or programs — list the work they may take, accept a slot, submit, or return it;
//! an assignment held past its duration is abandoned and its slot re-opens; requesters approve,
//! reject, pay bonuses, block workers and grant qualifications; every worker's earnings and the
//! requester's spending are tracked. Idempotency keys are honoured the way MTurk honours
//! `UniqueRequestToken`: a repeated key returns the first result and does nothing more, and
//! every repeat is counted, so tests can prove a driver never did anything twice.
//!
//! It reads time from a [`Clock`], so it runs in real time or in a simulation's virtual time.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::clock::Clock;
use crate::model::{
    AssignmentId, Currency, HitId, HitSpec, Money, QualificationRequirement, Timestamp, WorkerId,
};
use crate::platform::{
    AssignmentStatus, AssignmentUpdate, Capabilities, Cursor, IdempotencyKey, Page, Platform,
    PlatformError, PlatformErrorKind,
};

/// How many updates one [`Platform::updates`] page holds.
pub const PAGE_SIZE: usize = 100;

/// A worker as the marketplace knows them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerProfile {
    /// Two-letter country code.
    pub locale: String,
    /// Assignments approved before this marketplace's records began.
    pub prior_approved: u32,
    /// Assignments rejected before this marketplace's records began.
    pub prior_rejected: u32,
}

impl Default for WorkerProfile {
    fn default() -> Self {
        Self {
            locale: "US".into(),
            prior_approved: 1_000,
            prior_rejected: 0,
        }
    }
}

/// A HIT as a worker browsing the marketplace sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listing {
    /// The HIT.
    pub hit: HitId,
    /// Its title.
    pub title: String,
    /// Its reward.
    pub reward: Money,
    /// Slots still open.
    pub open_slots: u32,
}

/// Why a worker's action on the marketplace failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MarketError {
    /// No such HIT.
    #[error("unknown HIT {0}")]
    UnknownHit(HitId),
    /// No such assignment.
    #[error("unknown assignment {0}")]
    UnknownAssignment(AssignmentId),
    /// The HIT is expired or past its lifetime.
    #[error("HIT {0} is closed")]
    HitClosed(HitId),
    /// Every slot is taken.
    #[error("HIT {0} has no open slot")]
    NoSlot(HitId),
    /// The worker does not meet a requirement.
    #[error("worker {0} does not qualify")]
    NotQualified(WorkerId),
    /// The worker is blocked.
    #[error("worker {0} is blocked")]
    Blocked(WorkerId),
    /// The worker already holds or held a slot of this HIT.
    #[error("worker {0} already took this HIT")]
    AlreadyTaken(WorkerId),
    /// The assignment is not the worker's to act on in its state.
    #[error("assignment {0} is {1:?}")]
    WrongState(AssignmentId, AssignmentStatus),
}

#[derive(Debug)]
struct Hit {
    spec: HitSpec,
    slots: u32,
    /// Slots held or used up (accepted, submitted, approved, rejected).
    taken: u32,
    expires_at: Timestamp,
    expired: bool,
    workers: HashSet<WorkerId>,
    /// Posting number: listings are oldest first.
    number: u64,
}

#[derive(Debug)]
struct Assignment {
    worker: WorkerId,
    hit: HitId,
    status: AssignmentStatus,
    deadline: Timestamp,
    answer: Option<String>,
}

#[derive(Debug, Default)]
struct Market {
    funds: i64,
    currency: Currency,
    spent: i64,
    hits: HashMap<HitId, Hit>,
    /// HITs with open slots (not expired; lifetime checked when listing), by posting number.
    listed: BTreeMap<u64, HitId>,
    next_hit: u64,
    /// Held assignments by deadline, to find abandonments without a scan.
    deadlines: BTreeSet<(Timestamp, AssignmentId)>,
    /// Approved and rejected counts per worker.
    record_counts: HashMap<WorkerId, (u32, u32)>,
    assignments: BTreeMap<AssignmentId, Assignment>,
    next_assignment: u64,
    updates: Vec<AssignmentUpdate>,
    keys: HashMap<String, (u32, Option<HitId>)>,
    duplicates: u64,
    profiles: HashMap<WorkerId, WorkerProfile>,
    qualifications: HashMap<(WorkerId, String), i64>,
    blocked: HashSet<WorkerId>,
    earnings: HashMap<WorkerId, i64>,
    bonuses: Vec<(WorkerId, Option<AssignmentId>, Money)>,
    messages: Vec<(WorkerId, String)>,
}

/// The in-process marketplace. Clones share the same market.
#[derive(Debug, Clone)]
pub struct LocalMarketplace {
    inner: Arc<Mutex<Market>>,
    clock: Arc<dyn Clock>,
}

impl LocalMarketplace {
    /// A marketplace whose requester has `funds` to spend.
    pub fn new(clock: Arc<dyn Clock>, funds: Money) -> Self {
        let market = Market {
            funds: funds.minor,
            currency: funds.currency,
            ..Market::default()
        };
        Self {
            inner: Arc::new(Mutex::new(market)),
            clock,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Market> {
        // Every method validates before it mutates, so data behind a poisoned lock is intact.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    // ----- the worker's side -------------------------------------------------------------------

    /// Registers (or replaces) what the market knows of a worker. Unknown workers get
    /// [`WorkerProfile::default`].
    pub fn set_profile(&self, worker: WorkerId, profile: WorkerProfile) {
        self.lock().profiles.insert(worker, profile);
    }

    /// The HITs `worker` may accept now, oldest first.
    pub fn available(&self, worker: &WorkerId) -> Vec<Listing> {
        self.listings(worker, usize::MAX)
    }

    /// The oldest HIT `worker` may accept now, if any (what a worker taking the first thing on
    /// offer sees; cheaper than [`available`](Self::available)).
    pub fn first_available(&self, worker: &WorkerId) -> Option<Listing> {
        self.listings(worker, 1).pop()
    }

    fn listings(&self, worker: &WorkerId, limit: usize) -> Vec<Listing> {
        let now = self.clock.now();
        let mut m = self.lock();
        m.abandon_overdue(now);
        if m.blocked.contains(worker) {
            return Vec::new();
        }
        let m = &mut *m;
        let mut closed = Vec::new();
        let mut found = Vec::new();
        for (&number, id) in &m.listed {
            let h = &m.hits[id];
            if h.open(now) == 0 {
                closed.push(number); // past its lifetime: gone for good
            } else if !h.workers.contains(worker) && m.qualifies(worker, &h.spec) {
                found.push(Listing {
                    hit: id.clone(),
                    title: h.spec.title.clone(),
                    reward: h.spec.reward,
                    open_slots: h.open(now),
                });
                if found.len() >= limit {
                    break;
                }
            }
        }
        for n in closed {
            m.listed.remove(&n);
        }
        found
    }

    /// `worker` accepts a slot of `hit`.
    pub fn accept(&self, worker: &WorkerId, hit: &HitId) -> Result<AssignmentId, MarketError> {
        let now = self.clock.now();
        let mut m = self.lock();
        m.abandon_overdue(now);
        if m.blocked.contains(worker) {
            return Err(MarketError::Blocked(worker.clone()));
        }
        let h = m
            .hits
            .get(hit)
            .ok_or_else(|| MarketError::UnknownHit(hit.clone()))?;
        if h.expired || now >= h.expires_at {
            return Err(MarketError::HitClosed(hit.clone()));
        }
        if h.open(now) == 0 {
            return Err(MarketError::NoSlot(hit.clone()));
        }
        if h.workers.contains(worker) {
            return Err(MarketError::AlreadyTaken(worker.clone()));
        }
        if !m.qualifies(worker, &h.spec) {
            return Err(MarketError::NotQualified(worker.clone()));
        }
        let deadline = now.plus_millis(h.spec.assignment_duration_ms);
        m.next_assignment += 1;
        let id = AssignmentId::new(format!("A{}", m.next_assignment));
        let h = m.hits.get_mut(hit).expect("checked above");
        h.taken += 1;
        h.workers.insert(worker.clone());
        let (full, number) = (h.taken >= h.slots, h.number);
        if full {
            m.listed.remove(&number);
        }
        m.deadlines.insert((deadline, id.clone()));
        m.assignments.insert(
            id.clone(),
            Assignment {
                worker: worker.clone(),
                hit: hit.clone(),
                status: AssignmentStatus::Accepted,
                deadline,
                answer: None,
            },
        );
        m.record(&id, AssignmentStatus::Accepted, now);
        Ok(id)
    }

    /// The worker submits their work.
    pub fn submit(
        &self,
        assignment: &AssignmentId,
        answer: Option<String>,
    ) -> Result<(), MarketError> {
        let now = self.clock.now();
        let mut m = self.lock();
        m.abandon_overdue(now);
        let a = m.held(assignment)?;
        a.status = AssignmentStatus::Submitted;
        a.answer = answer;
        let deadline = a.deadline;
        m.deadlines.remove(&(deadline, assignment.clone()));
        m.record(assignment, AssignmentStatus::Submitted, now);
        Ok(())
    }

    /// The worker gives the slot back; it re-opens.
    pub fn return_assignment(&self, assignment: &AssignmentId) -> Result<(), MarketError> {
        let now = self.clock.now();
        let mut m = self.lock();
        m.abandon_overdue(now);
        let a = m.held(assignment)?;
        a.status = AssignmentStatus::Returned;
        let (hit, deadline) = (a.hit.clone(), a.deadline);
        m.deadlines.remove(&(deadline, assignment.clone()));
        m.reopen(&hit);
        m.record(assignment, AssignmentStatus::Returned, now);
        Ok(())
    }

    /// Marks every assignment held past its duration abandoned (re-opening its slot). Other
    /// calls do this too; call it to make abandonments visible without another action.
    pub fn expire_overdue(&self) {
        let now = self.clock.now();
        self.lock().abandon_overdue(now);
    }

    // ----- what tests and reports read ---------------------------------------------------------

    /// What `worker` has earned (approved rewards and bonuses).
    pub fn earnings(&self, worker: &WorkerId) -> Money {
        let m = self.lock();
        Money::new(m.earnings.get(worker).copied().unwrap_or(0), m.currency)
    }

    /// What the requester has spent.
    pub fn spending(&self) -> Money {
        let m = self.lock();
        Money::new(m.spent, m.currency)
    }

    /// How many calls repeated an idempotency key already used (and so did nothing).
    pub fn duplicate_calls(&self) -> u64 {
        self.lock().duplicates
    }

    /// How many times `key` was used.
    pub fn key_uses(&self, key: &IdempotencyKey) -> u32 {
        self.lock().keys.get(key.as_str()).map_or(0, |(n, _)| *n)
    }

    /// Every bonus paid: worker, assignment, amount.
    pub fn bonuses(&self) -> Vec<(WorkerId, Option<AssignmentId>, Money)> {
        self.lock().bonuses.clone()
    }

    /// An assignment's status.
    pub fn status(&self, assignment: &AssignmentId) -> Option<AssignmentStatus> {
        self.lock().assignments.get(assignment).map(|a| a.status)
    }

    /// Every HIT posted, with (slots, taken, expired).
    pub fn hits(&self) -> Vec<(HitId, u32, u32, bool)> {
        let m = self.lock();
        let mut hits: Vec<_> = m.hits.iter().map(|(id, h)| (h.number, id, h)).collect();
        hits.sort_by_key(|(n, _, _)| *n);
        hits.into_iter()
            .map(|(_, id, h)| (id.clone(), h.slots, h.taken, h.expired))
            .collect()
    }

    /// Messages sent to workers.
    pub fn messages(&self) -> Vec<(WorkerId, String)> {
        self.lock().messages.clone()
    }

    fn key_seen(m: &mut Market, key: &IdempotencyKey) -> Option<Option<HitId>> {
        let seen = m.keys.get_mut(key.as_str()).map(|(n, hit)| {
            *n += 1;
            hit.clone()
        });
        if seen.is_some() {
            m.duplicates += 1;
        }
        seen
    }
}

impl Hit {
    fn open(&self, now: Timestamp) -> u32 {
        if self.expired || now >= self.expires_at {
            0
        } else {
            self.slots - self.taken
        }
    }
}

impl Market {
    fn record(&mut self, assignment: &AssignmentId, status: AssignmentStatus, at: Timestamp) {
        let a = &self.assignments[assignment];
        self.updates.push(AssignmentUpdate {
            assignment: assignment.clone(),
            worker: a.worker.clone(),
            hit: a.hit.clone(),
            status,
            at,
        });
    }

    fn held(&mut self, assignment: &AssignmentId) -> Result<&mut Assignment, MarketError> {
        let a = self
            .assignments
            .get_mut(assignment)
            .ok_or_else(|| MarketError::UnknownAssignment(assignment.clone()))?;
        if a.status != AssignmentStatus::Accepted {
            return Err(MarketError::WrongState(assignment.clone(), a.status));
        }
        Ok(a)
    }

    fn abandon_overdue(&mut self, now: Timestamp) {
        while let Some((deadline, _)) = self.deadlines.first() {
            if *deadline > now {
                break;
            }
            let (_, id) = self.deadlines.pop_first().expect("first exists");
            let a = self
                .assignments
                .get_mut(&id)
                .expect("deadlines hold known assignments");
            a.status = AssignmentStatus::Abandoned;
            let hit = a.hit.clone();
            self.reopen(&hit);
            self.record(&id, AssignmentStatus::Abandoned, now);
        }
    }

    /// A held slot of `hit` opens again.
    fn reopen(&mut self, hit: &HitId) {
        if let Some(h) = self.hits.get_mut(hit) {
            h.taken -= 1;
            if !h.expired {
                self.listed.insert(h.number, hit.clone());
            }
        }
    }

    fn qualifies(&self, worker: &WorkerId, spec: &HitSpec) -> bool {
        if spec.qualifications.is_empty() {
            return true;
        }
        let profile = self.profiles.get(worker).cloned().unwrap_or_default();
        let (here_approved, here_rejected) =
            self.record_counts.get(worker).copied().unwrap_or_default();
        let approved = profile.prior_approved + here_approved;
        let rejected = profile.prior_rejected + here_rejected;
        spec.qualifications.iter().all(|q| match q {
            QualificationRequirement::ApprovalRate { min_percent } => {
                let total = approved + rejected;
                total == 0
                    || u64::from(approved) * 100 >= u64::from(*min_percent) * u64::from(total)
            }
            QualificationRequirement::ApprovedCount { min } => approved >= *min,
            QualificationRequirement::Locale { countries } => countries.contains(&profile.locale),
            QualificationRequirement::Custom {
                qualification,
                comparator,
                value,
            } => {
                let held = self
                    .qualifications
                    .get(&(worker.clone(), qualification.clone()))
                    .copied();
                comparator.admits(held, *value)
            }
        })
    }

    fn pay(&mut self, worker: &WorkerId, amount: Money) -> Result<(), PlatformError> {
        if amount.currency != self.currency {
            return Err(err(
                PlatformErrorKind::BadRequest,
                "CurrencyMismatch",
                "wrong currency",
            ));
        }
        if self.funds - self.spent < amount.minor {
            return Err(err(
                PlatformErrorKind::InsufficientFunds,
                "InsufficientFunds",
                "the requester's balance is too low",
            ));
        }
        self.spent += amount.minor;
        *self.earnings.entry(worker.clone()).or_default() += amount.minor;
        Ok(())
    }
}

fn err(kind: PlatformErrorKind, code: &str, message: impl Into<String>) -> PlatformError {
    PlatformError::new(kind, code, message)
}

#[async_trait]
impl Platform for LocalMarketplace {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            returned_slots_reopen: true,
            push_notifications: false,
            bonus_without_assignment: false,
            max_slots_per_hit: None,
        }
    }

    async fn post(
        &self,
        spec: &HitSpec,
        slots: u32,
        key: &IdempotencyKey,
    ) -> Result<HitId, PlatformError> {
        let now = self.clock.now();
        let mut m = self.lock();
        if let Some(first) = Self::key_seen(&mut m, key) {
            return first.ok_or_else(|| {
                err(
                    PlatformErrorKind::Conflict,
                    "KeyReused",
                    "key used by another call",
                )
            });
        }
        spec.validate()
            .map_err(|e| err(PlatformErrorKind::BadRequest, "InvalidSpec", e.to_string()))?;
        if slots == 0 || slots > spec.max_assignments {
            return Err(err(
                PlatformErrorKind::BadRequest,
                "InvalidSlots",
                format!(
                    "{slots} slots; the spec allows 1 to {}",
                    spec.max_assignments
                ),
            ));
        }
        let cost = spec.reward.minor.saturating_mul(i64::from(slots));
        if m.funds - m.spent < cost {
            return Err(err(
                PlatformErrorKind::InsufficientFunds,
                "InsufficientFunds",
                format!(
                    "posting costs {cost} but the balance is {}",
                    m.funds - m.spent
                ),
            ));
        }
        m.next_hit += 1;
        let number = m.next_hit;
        let id = HitId::new(format!("H{number}"));
        m.hits.insert(
            id.clone(),
            Hit {
                spec: spec.clone(),
                slots,
                taken: 0,
                expires_at: now.plus_millis(spec.lifetime_ms),
                expired: false,
                workers: HashSet::new(),
                number,
            },
        );
        m.listed.insert(number, id.clone());
        m.keys
            .insert(key.as_str().to_owned(), (1, Some(id.clone())));
        Ok(id)
    }

    async fn add_slots(
        &self,
        hit: &HitId,
        n: u32,
        key: &IdempotencyKey,
    ) -> Result<(), PlatformError> {
        let mut m = self.lock();
        if Self::key_seen(&mut m, key).is_some() {
            return Ok(());
        }
        let h = m
            .hits
            .get_mut(hit)
            .ok_or_else(|| err(PlatformErrorKind::NotFound, "UnknownHit", hit.to_string()))?;
        h.slots += n;
        let number = h.number;
        m.listed.insert(number, hit.clone());
        m.keys.insert(key.as_str().to_owned(), (1, None));
        Ok(())
    }

    async fn expire(&self, hit: &HitId) -> Result<(), PlatformError> {
        let mut m = self.lock();
        let h = m
            .hits
            .get_mut(hit)
            .ok_or_else(|| err(PlatformErrorKind::NotFound, "UnknownHit", hit.to_string()))?;
        h.expired = true;
        let number = h.number;
        m.listed.remove(&number);
        Ok(())
    }

    async fn updates(
        &self,
        cursor: Option<&Cursor>,
    ) -> Result<Page<AssignmentUpdate>, PlatformError> {
        let now = self.clock.now();
        let mut m = self.lock();
        m.abandon_overdue(now);
        let start = match cursor {
            None => 0,
            Some(c) => c
                .0
                .parse::<usize>()
                .ok()
                .filter(|&i| i <= m.updates.len())
                .ok_or_else(|| err(PlatformErrorKind::BadRequest, "InvalidCursor", c.0.clone()))?,
        };
        let end = (start + PAGE_SIZE).min(m.updates.len());
        Ok(Page {
            items: m.updates[start..end].to_vec(),
            next: Some(Cursor(end.to_string())),
        })
    }

    async fn approve(
        &self,
        assignment: &AssignmentId,
        _key: &IdempotencyKey,
    ) -> Result<(), PlatformError> {
        let now = self.clock.now();
        let mut m = self.lock();
        // An assignment held past its duration was abandoned: there is nothing to approve.
        m.abandon_overdue(now);
        let a = m.assignments.get(assignment).ok_or_else(|| {
            err(
                PlatformErrorKind::NotFound,
                "UnknownAssignment",
                assignment.to_string(),
            )
        })?;
        match a.status {
            AssignmentStatus::Approved => return Ok(()), // approving twice is harmless
            // The local market lets a requester approve work the page auto-submits.
            AssignmentStatus::Accepted | AssignmentStatus::Submitted => {}
            other => {
                return Err(err(
                    PlatformErrorKind::Conflict,
                    "InvalidAssignmentState",
                    format!("assignment {assignment} is {other:?}"),
                ));
            }
        }
        let (worker, hit) = (a.worker.clone(), a.hit.clone());
        let reward = m.hits[&hit].spec.reward;
        m.pay(&worker, reward)?;
        let a = m.assignments.get_mut(assignment).expect("checked above");
        a.status = AssignmentStatus::Approved;
        let deadline = a.deadline;
        m.deadlines.remove(&(deadline, assignment.clone()));
        m.record_counts.entry(worker).or_default().0 += 1;
        m.record(assignment, AssignmentStatus::Approved, now);
        Ok(())
    }

    async fn reject(
        &self,
        assignment: &AssignmentId,
        feedback: &str,
        _key: &IdempotencyKey,
    ) -> Result<(), PlatformError> {
        let now = self.clock.now();
        let mut m = self.lock();
        let a = m.assignments.get_mut(assignment).ok_or_else(|| {
            err(
                PlatformErrorKind::NotFound,
                "UnknownAssignment",
                assignment.to_string(),
            )
        })?;
        match a.status {
            AssignmentStatus::Rejected => return Ok(()),
            AssignmentStatus::Submitted => {}
            other => {
                return Err(err(
                    PlatformErrorKind::Conflict,
                    "InvalidAssignmentState",
                    format!("assignment {assignment} is {other:?}"),
                ));
            }
        }
        a.status = AssignmentStatus::Rejected;
        let worker = a.worker.clone();
        m.record_counts.entry(worker.clone()).or_default().1 += 1;
        m.messages.push((worker, format!("rejected: {feedback}")));
        m.record(assignment, AssignmentStatus::Rejected, now);
        Ok(())
    }

    async fn bonus(
        &self,
        worker: &WorkerId,
        assignment: Option<&AssignmentId>,
        amount: Money,
        _reason: &str,
        key: &IdempotencyKey,
    ) -> Result<(), PlatformError> {
        let mut m = self.lock();
        if Self::key_seen(&mut m, key).is_some() {
            return Ok(());
        }
        let Some(assignment) = assignment else {
            return Err(err(
                PlatformErrorKind::BadRequest,
                "AssignmentRequired",
                "a bonus needs an assignment",
            ));
        };
        let a = m.assignments.get(assignment).ok_or_else(|| {
            err(
                PlatformErrorKind::NotFound,
                "UnknownAssignment",
                assignment.to_string(),
            )
        })?;
        if &a.worker != worker {
            return Err(err(
                PlatformErrorKind::BadRequest,
                "WorkerMismatch",
                "the assignment is another worker's",
            ));
        }
        if amount.minor <= 0 {
            return Err(err(
                PlatformErrorKind::BadRequest,
                "InvalidAmount",
                amount.to_string(),
            ));
        }
        m.pay(worker, amount)?;
        m.bonuses
            .push((worker.clone(), Some(assignment.clone()), amount));
        m.keys.insert(key.as_str().to_owned(), (1, None));
        Ok(())
    }

    async fn notify(
        &self,
        workers: &[WorkerId],
        subject: &str,
        message: &str,
    ) -> Result<(), PlatformError> {
        let mut m = self.lock();
        for w in workers {
            m.messages
                .push((w.clone(), format!("{subject}: {message}")));
        }
        Ok(())
    }

    async fn block(&self, worker: &WorkerId, _reason: &str) -> Result<(), PlatformError> {
        self.lock().blocked.insert(worker.clone());
        Ok(())
    }

    async fn grant_qualification(
        &self,
        worker: &WorkerId,
        qualification: &str,
        value: i64,
    ) -> Result<(), PlatformError> {
        self.lock()
            .qualifications
            .insert((worker.clone(), qualification.to_owned()), value);
        Ok(())
    }

    async fn revoke_qualification(
        &self,
        worker: &WorkerId,
        qualification: &str,
    ) -> Result<(), PlatformError> {
        self.lock()
            .qualifications
            .remove(&(worker.clone(), qualification.to_owned()));
        Ok(())
    }

    async fn balance(&self) -> Result<Money, PlatformError> {
        let m = self.lock();
        Ok(Money::new(m.funds - m.spent, m.currency))
    }
}
