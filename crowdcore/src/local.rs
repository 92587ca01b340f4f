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
    AssignmentId, Currency, HitId, HitSpec, Money, ProjectId, QualificationRequirement, Timestamp,
    WorkerId,
};
use crate::platform::{
    AssignmentRecord, AssignmentStatus, AssignmentUpdate, Capabilities, Cursor, IdempotencyKey,
    Page, Platform, PlatformError, PlatformErrorKind,
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
    /// The project that posted it, and pays for it.
    project: ProjectId,
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
    spent_by_project: HashMap<ProjectId, i64>,
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
    /// Approving an assignment its worker still holds is refused (MTurk's rule).
    approve_needs_submission: bool,
}

/// The in-process marketplace. Clones share the same market. A handle acts for one project
/// of the requester (see [`for_project`](Self::for_project)); all projects draw on one balance.
#[derive(Debug, Clone)]
pub struct LocalMarketplace {
    inner: Arc<Mutex<Market>>,
    clock: Arc<dyn Clock>,
    project: ProjectId,
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
            project: ProjectId::new("default"),
        }
    }

    /// A handle on the same market that posts and pays for `project`.
    pub fn for_project(&self, project: ProjectId) -> Self {
        Self {
            project,
            ..self.clone()
        }
    }

    /// The project this handle posts and pays for.
    pub fn project(&self) -> &ProjectId {
        &self.project
    }

    /// Whether approving an assignment its worker has not submitted yet is refused, as MTurk
    /// refuses it (`InvalidAssignmentState`, a conflict). Off by default: the local market
    /// lets a requester approve work its page auto-submits.
    pub fn require_submission_to_approve(&self, on: bool) {
        self.lock().approve_needs_submission = on;
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

    /// What this handle's project has spent.
    pub fn spending(&self) -> Money {
        self.spending_of(&self.project)
    }

    /// What `project` has spent.
    pub fn spending_of(&self, project: &ProjectId) -> Money {
        let m = self.lock();
        let spent = m.spent_by_project.get(project).copied().unwrap_or(0);
        Money::new(spent, m.currency)
    }

    /// What the requester has spent over all projects.
    pub fn total_spending(&self) -> Money {
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

    /// Who holds an assignment, through which HIT, and its status (what a landing page's
    /// arrival is checked against).
    pub fn holder(&self, assignment: &AssignmentId) -> Option<(WorkerId, HitId, AssignmentStatus)> {
        self.lock()
            .assignments
            .get(assignment)
            .map(|a| (a.worker.clone(), a.hit.clone(), a.status))
    }

    /// The answer submitted with an assignment, if any: what the requester reviews (and a
    /// competition scores).
    pub fn answer(&self, assignment: &AssignmentId) -> Option<String> {
        self.lock()
            .assignments
            .get(assignment)
            .and_then(|a| a.answer.clone())
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

    /// The HITs posted after the first `seen` ones, oldest first, with (slots, taken,
    /// expired): what [`hits`](Self::hits)`()[seen..]` holds, without copying the rest.
    pub fn hits_after(&self, seen: usize) -> Vec<(HitId, u32, u32, bool)> {
        let m = self.lock();
        let mut hits: Vec<_> = m
            .hits
            .iter()
            .filter(|(_, h)| h.number > seen as u64)
            .map(|(id, h)| (h.number, id, h))
            .collect();
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

    /// Pays `worker` for the HIT `hit`, charging the HIT's project.
    fn pay(&mut self, worker: &WorkerId, hit: &HitId, amount: Money) -> Result<(), PlatformError> {
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
        let project = self.hits[hit].project.clone();
        *self.spent_by_project.entry(project).or_default() += amount.minor;
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
            confirms_assignments: true,
            posts_reopen_expired_hits: false,
        }
    }

    async fn assignment(
        &self,
        assignment: &AssignmentId,
    ) -> Result<Option<AssignmentRecord>, PlatformError> {
        Ok(self
            .holder(assignment)
            .map(|(worker, hit, status)| AssignmentRecord {
                assignment: assignment.clone(),
                worker,
                hit,
                status,
            }))
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
                project: self.project.clone(),
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
            AssignmentStatus::Accepted if m.approve_needs_submission => {
                return Err(err(
                    PlatformErrorKind::Conflict,
                    "InvalidAssignmentState",
                    format!("assignment {assignment} is not submitted"),
                ));
            }
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
        m.pay(&worker, &hit, reward)?;
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
        let hit = a.hit.clone();
        m.pay(worker, &hit, amount)?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::VirtualClock;
    use crate::model::{Comparator, EffectId, SessionId};

    fn spec(slots: u32) -> HitSpec {
        HitSpec {
            title: "t".into(),
            description: "d".into(),
            keywords: Vec::new(),
            reward: Money::usd_cents(50),
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
        IdempotencyKey::for_effect(&EffectId::new(SessionId::new("s"), n))
    }

    fn setup(funds: i64) -> (VirtualClock, LocalMarketplace) {
        let clock = VirtualClock::new(Timestamp::ZERO);
        let market = LocalMarketplace::new(Arc::new(clock.clone()), Money::usd_cents(funds));
        (clock, market)
    }

    fn w(id: &str) -> WorkerId {
        WorkerId::new(id)
    }

    #[tokio::test]
    async fn a_repeated_key_returns_the_first_hit_and_is_counted() {
        let (_, market) = setup(10_000);
        let first = market.post(&spec(3), 3, &key(1)).await.unwrap();
        let again = market.post(&spec(3), 3, &key(1)).await.unwrap();
        assert_eq!(first, again);
        assert_eq!(market.hits().len(), 1);
        assert_eq!(market.duplicate_calls(), 1);
        assert_eq!(market.key_uses(&key(1)), 2);
        let other = market.post(&spec(3), 3, &key(2)).await.unwrap();
        assert_ne!(first, other);
    }

    #[tokio::test]
    async fn posting_checks_the_spec_the_slots_and_the_balance() {
        let (_, market) = setup(100);
        let kinds = [
            (spec(2), 3, PlatformErrorKind::BadRequest),
            (
                HitSpec {
                    title: String::new(),
                    ..spec(2)
                },
                1,
                PlatformErrorKind::BadRequest,
            ),
            (spec(3), 3, PlatformErrorKind::InsufficientFunds),
        ];
        for (i, (s, slots, kind)) in kinds.into_iter().enumerate() {
            let e = market.post(&s, slots, &key(i as u64)).await.unwrap_err();
            assert_eq!(e.kind, kind);
        }
        assert!(market.hits().is_empty());
    }

    #[tokio::test]
    async fn workers_take_slots_once_and_an_overdue_assignment_reopens_its_slot() {
        let (clock, market) = setup(10_000);
        let hit = market.post(&spec(1), 1, &key(1)).await.unwrap();
        let a = market.accept(&w("W1"), &hit).unwrap();
        assert_eq!(
            market.accept(&w("W2"), &hit),
            Err(MarketError::NoSlot(hit.clone()))
        );
        assert!(market.available(&w("W2")).is_empty());
        clock.advance(60_000);
        assert_eq!(
            market.first_available(&w("W2")).map(|l| l.hit),
            Some(hit.clone())
        );
        assert_eq!(market.status(&a), Some(AssignmentStatus::Abandoned));
        assert_eq!(
            market.accept(&w("W1"), &hit),
            Err(MarketError::AlreadyTaken(w("W1")))
        );
        let b = market.accept(&w("W2"), &hit).unwrap();
        market.return_assignment(&b).unwrap();
        assert_eq!(
            market.submit(&b, None),
            Err(MarketError::WrongState(
                b.clone(),
                AssignmentStatus::Returned
            ))
        );
        let page = market.updates(None).await.unwrap();
        let statuses: Vec<_> = page.items.iter().map(|u| u.status).collect();
        use AssignmentStatus::*;
        assert_eq!(statuses, [Accepted, Abandoned, Accepted, Returned]);
        let rest = market.updates(page.next.as_ref()).await.unwrap();
        assert!(rest.items.is_empty());
    }

    #[tokio::test]
    async fn the_requester_reads_submitted_answers() {
        let (_, market) = setup(10_000);
        let hit = market.post(&spec(2), 2, &key(1)).await.unwrap();
        let a = market.accept(&w("W1"), &hit).unwrap();
        let b = market.accept(&w("W2"), &hit).unwrap();
        assert_eq!(market.answer(&a), None, "nothing submitted yet");
        market.submit(&a, Some("cat".into())).unwrap();
        market.submit(&b, None).unwrap();
        assert_eq!(market.answer(&a).as_deref(), Some("cat"));
        assert_eq!(market.answer(&b), None);
        assert_eq!(market.answer(&AssignmentId::new("nope")), None);
    }

    #[tokio::test]
    async fn qualifications_and_blocks_decide_who_sees_work() {
        let (_, market) = setup(10_000);
        let gated = HitSpec {
            qualifications: vec![
                QualificationRequirement::Locale {
                    countries: vec!["DE".into()],
                },
                QualificationRequirement::Custom {
                    qualification: "trained".into(),
                    comparator: Comparator::GreaterThanOrEqualTo,
                    value: 2,
                },
            ],
            ..spec(5)
        };
        let hit = market.post(&gated, 5, &key(1)).await.unwrap();
        let german = WorkerProfile {
            locale: "DE".into(),
            ..WorkerProfile::default()
        };
        market.set_profile(w("W1"), german);
        assert_eq!(
            market.accept(&w("W1"), &hit),
            Err(MarketError::NotQualified(w("W1")))
        );
        market
            .grant_qualification(&w("W1"), "trained", 2)
            .await
            .unwrap();
        assert_eq!(market.available(&w("W1")).len(), 1);
        assert!(market.available(&w("W2")).is_empty(), "wrong locale");
        market.block(&w("W1"), "spam").await.unwrap();
        assert!(market.available(&w("W1")).is_empty());
        assert_eq!(
            market.accept(&w("W1"), &hit),
            Err(MarketError::Blocked(w("W1")))
        );
    }

    #[tokio::test]
    async fn approvals_and_bonuses_pay_once_and_are_charged_to_the_project() {
        let (_, market) = setup(10_000);
        let study = market.for_project(ProjectId::new("study"));
        let hit = study.post(&spec(2), 2, &key(1)).await.unwrap();
        let a = market.accept(&w("W1"), &hit).unwrap();
        market.submit(&a, Some("cat".into())).unwrap();
        study.approve(&a, &key(2)).await.unwrap();
        study.approve(&a, &key(2)).await.unwrap();
        study
            .bonus(&w("W1"), Some(&a), Money::usd_cents(7), "wait", &key(3))
            .await
            .unwrap();
        study
            .bonus(&w("W1"), Some(&a), Money::usd_cents(7), "wait", &key(3))
            .await
            .unwrap();
        assert_eq!(market.earnings(&w("W1")), Money::usd_cents(57));
        assert_eq!(study.spending(), Money::usd_cents(57));
        assert_eq!(
            market.spending(),
            Money::usd_cents(0),
            "the default project spent nothing"
        );
        assert_eq!(market.total_spending(), Money::usd_cents(57));
        assert_eq!(
            market.balance().await.unwrap(),
            Money::usd_cents(10_000 - 57)
        );
        let e = study
            .bonus(&w("W2"), Some(&a), Money::usd_cents(7), "x", &key(4))
            .await
            .unwrap_err();
        assert_eq!(e.kind, PlatformErrorKind::BadRequest);
        let e = study.reject(&a, "late", &key(5)).await.unwrap_err();
        assert_eq!(e.kind, PlatformErrorKind::Conflict);
    }
}
