//! [`TolokaPlatform`]: crowdcore's [`Platform`] over one Toloka pool.
//!
//! | crowdcore | Toloka |
//! | --- | --- |
//! | a HIT | a task in the configured pool (input values from [`InputMapper`]) |
//! | its slots | the task's overlap |
//! | post | `POST /tasks` in an async operation keyed by an `operation_id` from the key |
//! | add slots | `PATCH /tasks/{id}` with a higher overlap |
//! | expire | `PATCH /tasks/{id}/set-overlap-or-min` with overlap 0 |
//! | updates | `GET /assignments` per time field (created, submitted, accepted, …), cursor in JSON |
//! | assignment (confirm an arrival) | `GET /assignments/{id}` with a short retry budget |
//! | approve / reject | `PATCH /assignments/{id}` with `ACCEPTED` / `REJECTED` and a comment |
//! | bonus | `POST /user-bonuses` in an async operation keyed by the key |
//! | block | `PUT /user-restrictions` (scope and expiry from [`BlockPolicy`]) |
//! | qualifications | skills: `PUT /user-skills`, `DELETE /user-skills/{id}` |
//! | balance | `GET /requester` |
//!
//! Toloka hands a task's slot out again when its assignment is skipped or expires, so
//! [`Capabilities::returned_slots_reopen`] is true.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use crowdcore::clock::{Clock, SystemClock};
use crowdcore::model::{AssignmentId, HitId, HitSpec, Money, Timestamp, WorkerId};
use crowdcore::platform::{
    AssignmentRecord, AssignmentStatus as CoreStatus, AssignmentUpdate, Capabilities, Cursor,
    IdempotencyKey, Page, Platform, PlatformError, PlatformErrorKind,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::client::{RetryPolicy, TolokaClient};
use crate::error::TolokaError;
use crate::model::{
    Assignment, AssignmentFilter, AssignmentSort, AssignmentStatus, CreateTasksOptions,
    LocalizedText, NewTask, NewUserBonus, NewUserRestriction, RestrictionScope, SetUserSkill,
    TimeBound, TimeField, TolokaTime, Usd, UsdError,
};

/// Turns a HIT spec into a task's `input_values` (they must match the project's input spec).
pub type InputMapper = Arc<dyn Fn(&HitSpec) -> Map<String, Value> + Send + Sync>;

/// Where [`Platform::block`] blocks a worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlockPolicy {
    /// Every project of the requester.
    AllProjects,
    /// One project.
    Project(String),
    /// The platform's pool only.
    Pool,
}

/// How a [`TolokaPlatform`] maps crowdcore onto a pool.
#[derive(Clone)]
pub struct TolokaPlatformConfig {
    /// The pool HITs become tasks in.
    pub pool_id: String,
    /// A HIT spec's task inputs. The default is `{"url": landing_url}`.
    pub input: InputMapper,
    /// Open the pool when posting a task into it, if it is closed.
    pub open_pool: bool,
    /// How long an event may take to show up in Toloka's listings (they are eventually
    /// consistent). The assignment cursor reads up to now but re-reads this window on every
    /// poll, skipping what it reported, so nothing younger than this is missed. Default 60 s,
    /// the lag toloka-kit's streaming cursors use. The cursor holds the ids reported within it.
    pub time_lag: Duration,
    /// Assignments per listing request.
    pub page_size: u32,
    /// The public comment of an approval.
    pub accept_comment: String,
    /// Where blocks apply.
    pub block: BlockPolicy,
    /// How long a block lasts; `None` blocks for good.
    pub block_for: Option<Duration>,
    /// The clock the time lag and block expiry are measured on (Unix milliseconds).
    pub clock: Arc<dyn Clock>,
    /// Retries of [`Platform::assignment`], a read a worker's page waits on (the HTTP front
    /// confirms an arrival with it): short, instead of the client's policy, which may sleep
    /// a 429's `Retry-After` of up to two minutes. The default tries 3 times, 100 to 400 ms
    /// apart, waits at most 1 s for a 429 (a longer `Retry-After`, or an hourly or daily quota,
    /// is returned at once as `Throttled`, which is retryable).
    pub lookup_retry: RetryPolicy,
    /// The timeout of each [`Platform::assignment`] request (default 3 s). With the default
    /// retries a lookup gives up after about 3 × 3 s + 2 × 1 s = 11 s at worst.
    pub lookup_timeout: Duration,
}

/// The default [`TolokaPlatformConfig::lookup_retry`].
fn lookup_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 3,
        base_delay: Duration::from_millis(200),
        max_delay: Duration::from_millis(400),
        minute_quota_wait: Duration::from_secs(1),
        max_retry_after: Duration::from_secs(1),
    }
}

impl TolokaPlatformConfig {
    /// Defaults for `pool_id`.
    pub fn new(pool_id: impl Into<String>) -> Self {
        Self {
            pool_id: pool_id.into(),
            input: Arc::new(|spec: &HitSpec| {
                let mut m = Map::new();
                m.insert("url".into(), Value::String(spec.landing_url.clone()));
                m
            }),
            open_pool: true,
            time_lag: Duration::from_secs(60),
            page_size: 100,
            accept_comment: "Accepted".into(),
            block: BlockPolicy::AllProjects,
            block_for: None,
            clock: Arc::new(SystemClock),
            lookup_retry: lookup_retry(),
            lookup_timeout: Duration::from_secs(3),
        }
    }
}

impl fmt::Debug for TolokaPlatformConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TolokaPlatformConfig")
            .field("pool_id", &self.pool_id)
            .field("open_pool", &self.open_pool)
            .field("time_lag", &self.time_lag)
            .field("page_size", &self.page_size)
            .field("block", &self.block)
            .field("block_for", &self.block_for)
            .field("lookup_retry", &self.lookup_retry)
            .field("lookup_timeout", &self.lookup_timeout)
            .finish_non_exhaustive()
    }
}

/// Where the assignment observer is, per time field: the JSON inside a [`Cursor`]. It
/// survives restarts (store it; pass it back) and never skips an event older than the lag.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdatesCursor {
    /// One position per time field.
    pub fields: BTreeMap<TimeField, FieldCursor>,
}

/// The position of one time field's stream.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldCursor {
    /// Where the next read starts (Unix ms): the last page's end while catching up, else
    /// `now − time_lag`, so events that show up late are still read.
    pub at_ms: u64,
    /// Events already reported that a later read may meet again (those at or after the
    /// settled time `now − time_lag`, or `at_ms` if earlier), as (time, id): they are skipped.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub seen: Vec<(u64, String)>,
    /// Everything at `at_ms` was read (after paging through it by id): continue after it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub past: bool,
    /// Paging by id through a page-full of events that share `at_ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_after: Option<String>,
    /// The settled time (`now − time_lag`) when the current pass over the field began: a pass
    /// reads from `at_ms` up to now, over one or more polls; the next pass starts here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pass_from: Option<u64>,
}

impl UpdatesCursor {
    /// Reads a cursor from its text.
    pub fn decode(cursor: &Cursor) -> Result<Self, PlatformError> {
        serde_json::from_str(&cursor.0).map_err(|e| {
            PlatformError::new(
                PlatformErrorKind::BadRequest,
                "InvalidCursor",
                e.to_string(),
            )
        })
    }

    /// The cursor as text.
    pub fn encode(&self) -> Cursor {
        // Plain data with string keys: serialization cannot fail.
        Cursor(serde_json::to_string(self).expect("a cursor is plain data"))
    }
}

/// crowdcore's [`Platform`] over one Toloka pool.
#[derive(Debug)]
pub struct TolokaPlatform {
    client: TolokaClient,
    config: TolokaPlatformConfig,
    /// `add_slots` keys seen by this process and the overlap they set.
    slot_targets: Mutex<HashMap<IdempotencyKey, u32>>,
}

/// The namespace of the operation ids derived from idempotency keys.
const KEY_NAMESPACE: Uuid = Uuid::from_u128(0x6a0c_7f0e_5b1d_4c2a_9e47_c0c0_7e1a_b0ca);

fn status_of(field: TimeField) -> CoreStatus {
    match field {
        TimeField::Created => CoreStatus::Accepted,
        TimeField::Submitted => CoreStatus::Submitted,
        TimeField::Accepted => CoreStatus::Approved,
        TimeField::Rejected => CoreStatus::Rejected,
        TimeField::Skipped => CoreStatus::Returned,
        TimeField::Expired => CoreStatus::Abandoned,
    }
}

/// A bonus as Toloka takes it: a positive amount of US dollars. Refused before anything is
/// sent otherwise.
pub(crate) fn bonus_usd(amount: Money) -> Result<Usd, PlatformError> {
    let usd = Usd::from_money(amount).map_err(|e| {
        let code = match e {
            UsdError::NotUsd(_) => "InvalidCurrency",
            UsdError::TooLarge(_) => "InvalidAmount",
        };
        PlatformError::bad_request(code, e.to_string())
    })?;
    if usd.micros <= 0 {
        return Err(PlatformError::bad_request(
            "InvalidAmount",
            format!("bonus {amount} is not positive"),
        ));
    }
    Ok(usd)
}

/// What an assignment's Toloka status means to crowdcore: the same mapping as the time
/// fields [`Platform::updates`] reads (`ACTIVE` is held, as its `created` time is).
fn status_from(s: AssignmentStatus) -> CoreStatus {
    match s {
        AssignmentStatus::Active => CoreStatus::Accepted,
        AssignmentStatus::Submitted => CoreStatus::Submitted,
        AssignmentStatus::Accepted => CoreStatus::Approved,
        AssignmentStatus::Rejected => CoreStatus::Rejected,
        AssignmentStatus::Skipped => CoreStatus::Returned,
        AssignmentStatus::Expired => CoreStatus::Abandoned,
    }
}

/// The HIT an assignment is on: its task (what [`Platform::post`] returned), as
/// [`Platform::updates`] reports it.
fn hit_of(a: &Assignment) -> HitId {
    let id = a
        .tasks
        .first()
        .map(|task| task.id.clone())
        .unwrap_or_else(|| a.task_suite_id.clone());
    HitId::new(id)
}

fn millis(a: &Assignment, field: TimeField) -> Option<u64> {
    a.time_of(field).map(|t| t.to_timestamp().as_millis())
}

fn time(ms: u64) -> Result<TolokaTime, PlatformError> {
    TolokaTime::from_timestamp(Timestamp::from_millis(ms)).ok_or_else(|| {
        PlatformError::bad_request("InvalidCursor", format!("time {ms} out of range"))
    })
}

impl TolokaPlatform {
    /// A platform posting into `config.pool_id` through `client`.
    pub fn new(client: TolokaClient, config: TolokaPlatformConfig) -> Self {
        Self {
            client,
            config,
            slot_targets: Mutex::new(HashMap::new()),
        }
    }

    /// The client.
    pub fn client(&self) -> &TolokaClient {
        &self.client
    }

    /// The configuration.
    pub fn config(&self) -> &TolokaPlatformConfig {
        &self.config
    }

    /// The Toloka `operation_id` used for an idempotency key: a UUID v5 of the pool, the
    /// call's purpose and the key, the same in every process.
    pub fn operation_id(&self, purpose: &str, key: &IdempotencyKey) -> Uuid {
        let name = format!("{}/{purpose}/{}", self.config.pool_id, key.as_str());
        Uuid::new_v5(&KEY_NAMESPACE, name.as_bytes())
    }

    fn now_ms(&self) -> u64 {
        self.config.clock.now().as_millis()
    }
}

#[async_trait]
impl Platform for TolokaPlatform {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            returned_slots_reopen: true,
            push_notifications: false,
            bonus_without_assignment: true,
            max_slots_per_hit: None,
            confirms_assignments: true,
            posts_reopen_expired_hits: false,
        }
    }

    /// `GET /assignments/{id}`: the worker (`user_id`), the HIT (the assignment's task, as
    /// [`post`](Platform::post) and [`updates`](Platform::updates) name HITs — not the pool,
    /// which every HIT of this platform shares) and the status (`ACTIVE` → accepted,
    /// `SUBMITTED` → submitted, `ACCEPTED` → approved, `REJECTED` → rejected, `SKIPPED` →
    /// returned, `EXPIRED` → abandoned). `404` is `Ok(None)`. A worker's page waits on this,
    /// so it retries under [`TolokaPlatformConfig::lookup_retry`] and
    /// [`lookup_timeout`](TolokaPlatformConfig::lookup_timeout), not the client's policy; a
    /// 429 or 5xx left over is a retryable error.
    async fn assignment(
        &self,
        assignment: &AssignmentId,
    ) -> Result<Option<AssignmentRecord>, PlatformError> {
        let found = self
            .client
            .lookup_assignment(
                assignment.as_str(),
                &self.config.lookup_retry,
                self.config.lookup_timeout,
            )
            .await?;
        Ok(found.map(|a| AssignmentRecord {
            assignment: AssignmentId::new(a.id.as_str()),
            worker: WorkerId::new(a.user_id.as_str()),
            hit: hit_of(&a),
            status: status_from(a.status),
        }))
    }

    async fn post(
        &self,
        spec: &HitSpec,
        slots: u32,
        key: &IdempotencyKey,
    ) -> Result<HitId, PlatformError> {
        if slots == 0 {
            return Err(PlatformError::bad_request(
                "InvalidSlots",
                "a task needs at least one slot",
            ));
        }
        spec.validate()
            .map_err(|e| PlatformError::bad_request("InvalidSpec", e.to_string()))?;
        let task = NewTask::new(&self.config.pool_id, (self.config.input)(spec), slots);
        let options = CreateTasksOptions {
            open_pool: self.config.open_pool,
            ..CreateTasksOptions::default()
        };
        let created = self
            .client
            .create_tasks(&[task], options, Some(self.operation_id("post", key)))
            .await?;
        let id = created.item(0).ok_or_else(|| {
            PlatformError::from(TolokaError::Validation(format!(
                "task not created: {}",
                serde_json::json!(created.validation_errors)
            )))
        })?;
        Ok(HitId::new(id.as_str()))
    }

    /// Raises the task's overlap by `n`. The overlap a key set is remembered in this process,
    /// so a retry with the same key sets the same overlap instead of adding again; across a
    /// restart Toloka keeps no record of the key, and a repeated call adds again (Toloka's
    /// task patch carries no operation id).
    async fn add_slots(
        &self,
        hit: &HitId,
        n: u32,
        key: &IdempotencyKey,
    ) -> Result<(), PlatformError> {
        let known = self
            .slot_targets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
            .copied();
        let target = match known {
            Some(t) => t,
            None => {
                let task = self.client.get_task(hit.as_str()).await?;
                let target = task.overlap.unwrap_or(0).saturating_add(n);
                self.slot_targets
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(key.clone(), target);
                target
            }
        };
        // The target stays: a repeat of the key, even after this succeeded, must set the same
        // overlap, not add again (Toloka keeps no key for this call).
        self.client.set_task_overlap(hit.as_str(), target).await?;
        Ok(())
    }

    async fn expire(&self, hit: &HitId) -> Result<(), PlatformError> {
        self.client.stop_task(hit.as_str()).await?;
        Ok(())
    }

    /// Reads each time field from its cursor up to now, so updates arrive as soon as Toloka
    /// lists them; each pass then starts again from the settled time (`now − time_lag`) of the
    /// pass before, remembering what it reported since, so an event listed late (with an
    /// earlier time) is still reported, once.
    /// Within a call updates are in time order; an event listed late comes after later ones.
    async fn updates(
        &self,
        cursor: Option<&Cursor>,
    ) -> Result<Page<AssignmentUpdate>, PlatformError> {
        let mut cur = match cursor {
            Some(c) => UpdatesCursor::decode(c)?,
            None => UpdatesCursor::default(),
        };
        let lag = u64::try_from(self.config.time_lag.as_millis()).unwrap_or(u64::MAX);
        let settled = self.now_ms().saturating_sub(lag);
        let limit = self.config.page_size.max(1);
        let mut pages = Vec::new();
        for field in TimeField::ALL {
            let fc = cur.fields.entry(field).or_default();
            fc.pass_from.get_or_insert(settled);
            let at = time(fc.at_ms)?;
            let mut filter = AssignmentFilter {
                limit: Some(limit),
                ..AssignmentFilter::pool(&self.config.pool_id)
            };
            if let Some(after) = &fc.id_after {
                filter.time = vec![(field, TimeBound::Gte(at)), (field, TimeBound::Lte(at))];
                filter.sort = AssignmentSort::Id;
                filter.id_gt = Some(after.clone());
            } else {
                let lower = if fc.past {
                    TimeBound::Gt(at)
                } else {
                    TimeBound::Gte(at)
                };
                filter.time = vec![(field, lower)];
                filter.sort = AssignmentSort::Time(field);
            }
            let page = self.client.find_assignments(&filter).await?;
            pages.push((field, page));
        }
        // A field catching up (a full page with news in it) may hold unread events from its
        // last time on: nothing later than the earliest such time is handed out yet, so a
        // backlog comes out in time order. A page of events already reported (a pass
        // re-reading its window) holds nothing back.
        let horizon = pages
            .iter()
            .filter(|(f, p)| {
                let seen = &cur.fields[f].seen;
                p.has_more
                    && p.items
                        .iter()
                        .any(|a| millis(a, *f).is_some_and(|t| !seen.contains(&(t, a.id.clone()))))
            })
            .filter_map(|(f, p)| p.items.last().and_then(|a| millis(a, *f)))
            .min()
            .unwrap_or(u64::MAX);
        let mut out = Vec::new();
        for (field, page) in pages {
            let fc = cur
                .fields
                .get_mut(&field)
                .expect("every field was inserted");
            let id_mode = fc.id_after.is_some();
            let mut cut = false;
            let mut last_read = None;
            for a in &page.items {
                let Some(t) = millis(a, field) else { continue };
                if t > horizon {
                    cut = true;
                    break;
                }
                last_read = Some(t);
                if id_mode {
                    fc.id_after = Some(a.id.clone());
                }
                let event = (t, a.id.clone());
                if fc.seen.contains(&event) {
                    continue;
                }
                fc.seen.push(event);
                out.push((
                    t,
                    field,
                    AssignmentUpdate {
                        assignment: AssignmentId::new(a.id.as_str()),
                        worker: WorkerId::new(a.user_id.as_str()),
                        hit: hit_of(a),
                        status: status_of(field),
                        at: Timestamp::from_millis(t),
                    },
                ));
            }
            let first = page.items.first().and_then(|a| millis(a, field));
            let last = page.items.last().and_then(|a| millis(a, field));
            if id_mode {
                if !page.has_more && !cut {
                    // Every event at this time is read: continue after it.
                    fc.id_after = None;
                    fc.past = true;
                }
            } else if page.has_more && !cut {
                if first.is_some() && first == last {
                    // A whole page shares one time: page through that time by id.
                    fc.at_ms = first.unwrap_or(fc.at_ms);
                    fc.past = false;
                    fc.id_after = page.items.last().map(|a| a.id.clone());
                } else if let Some(t) = last_read {
                    // Catching up: the next page starts at this page's last time.
                    if t > fc.at_ms {
                        fc.at_ms = t;
                        fc.past = false;
                    }
                }
            } else if !cut {
                // This pass read up to now. Everything older than the settled time at its
                // start was listed by then and read; the next pass starts there (what was
                // reported since is in `seen`), so an event listed late is not missed.
                fc.at_ms = fc.pass_from.take().unwrap_or(settled);
                fc.past = false;
            }
            // Keep what a later pass may meet again.
            let floor = fc.at_ms.min(fc.pass_from.unwrap_or(settled));
            fc.seen.retain(|(t, _)| *t >= floor);
        }
        out.sort_by(|a, b| (a.0, a.1, &a.2.assignment).cmp(&(b.0, b.1, &b.2.assignment)));
        Ok(Page {
            items: out.into_iter().map(|(_, _, u)| u).collect(),
            next: Some(cur.encode()),
        })
    }

    async fn approve(
        &self,
        assignment: &AssignmentId,
        _key: &IdempotencyKey,
    ) -> Result<(), PlatformError> {
        self.client
            .accept_assignment(assignment.as_str(), &self.config.accept_comment)
            .await?;
        Ok(())
    }

    async fn reject(
        &self,
        assignment: &AssignmentId,
        feedback: &str,
        _key: &IdempotencyKey,
    ) -> Result<(), PlatformError> {
        self.client
            .reject_assignment(assignment.as_str(), feedback)
            .await?;
        Ok(())
    }

    async fn bonus(
        &self,
        worker: &WorkerId,
        assignment: Option<&AssignmentId>,
        amount: Money,
        reason: &str,
        key: &IdempotencyKey,
    ) -> Result<(), PlatformError> {
        let usd = bonus_usd(amount)?;
        let text = |s: &str| LocalizedText::from([("EN".to_owned(), s.to_owned())]);
        let bonus = NewUserBonus {
            user_id: worker.as_str().to_owned(),
            amount: usd,
            assignment_id: assignment.map(|a| a.as_str().to_owned()),
            private_comment: Some(key.as_str().to_owned()),
            public_title: if reason.is_empty() {
                LocalizedText::new()
            } else {
                text("Bonus")
            },
            public_message: if reason.is_empty() {
                LocalizedText::new()
            } else {
                text(reason)
            },
            without_message: Some(reason.is_empty()),
        };
        self.client
            .create_user_bonus(&bonus, self.operation_id("bonus", key))
            .await?;
        Ok(())
    }

    async fn notify(
        &self,
        workers: &[WorkerId],
        subject: &str,
        message: &str,
    ) -> Result<(), PlatformError> {
        if workers.is_empty() {
            return Ok(());
        }
        let ids: Vec<String> = workers.iter().map(|w| w.as_str().to_owned()).collect();
        self.client.compose_message(&ids, subject, message).await?;
        Ok(())
    }

    async fn block(&self, worker: &WorkerId, reason: &str) -> Result<(), PlatformError> {
        let scope = match &self.config.block {
            BlockPolicy::AllProjects => RestrictionScope::AllProjects,
            BlockPolicy::Project(p) => RestrictionScope::Project {
                project_id: p.clone(),
            },
            BlockPolicy::Pool => RestrictionScope::Pool {
                pool_id: self.config.pool_id.clone(),
            },
        };
        let will_expire = match self.config.block_for {
            Some(d) => {
                let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
                Some(time(self.now_ms().saturating_add(ms))?)
            }
            None => None,
        };
        let restriction = NewUserRestriction {
            user_id: worker.as_str().to_owned(),
            scope,
            private_comment: (!reason.is_empty()).then(|| reason.to_owned()),
            will_expire,
        };
        self.client.set_user_restriction(&restriction).await?;
        Ok(())
    }

    /// Sets the worker's value of the skill named by `qualification` (a Toloka skill id);
    /// values must be 0 to 100.
    async fn grant_qualification(
        &self,
        worker: &WorkerId,
        qualification: &str,
        value: i64,
    ) -> Result<(), PlatformError> {
        if !(0..=100).contains(&value) {
            return Err(PlatformError::bad_request(
                "InvalidSkillValue",
                format!("{value}: a Toloka skill is 0 to 100"),
            ));
        }
        let set = SetUserSkill {
            skill_id: qualification.to_owned(),
            user_id: worker.as_str().to_owned(),
            value: value as f64,
        };
        self.client.set_user_skill(&set).await?;
        Ok(())
    }

    async fn revoke_qualification(
        &self,
        worker: &WorkerId,
        qualification: &str,
    ) -> Result<(), PlatformError> {
        let found = self
            .client
            .find_user_skills(Some(worker.as_str()), Some(qualification))
            .await?;
        for skill in found.items {
            match self.client.delete_user_skill(&skill.id).await {
                Ok(()) => {}
                // Deleted by an earlier try: the state already matches.
                Err(e) if e.platform_kind() == PlatformErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    async fn balance(&self) -> Result<Money, PlatformError> {
        Ok(self.client.get_requester().await?.balance.to_money())
    }
}
