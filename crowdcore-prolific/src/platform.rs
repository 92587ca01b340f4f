//! [`ProlificPlatform`]: crowdcore's [`Platform`] over one Prolific study per session.
//!
//! See the crate docs for the mapping.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use crowdcore::clock::{Clock, SystemClock};
use crowdcore::model::{
    AssignmentId, Currency, HitId, HitSpec, Money, QualificationRequirement, SessionId, Timestamp,
    WorkerId,
};
use crowdcore::platform::{
    AssignmentRecord, AssignmentStatus, AssignmentUpdate, Capabilities, Cursor, IdempotencyKey,
    Page, Platform, PlatformError, PlatformErrorKind,
};
use crowdcore::store::Store;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::client::ProlificClient;
use crate::error::ProlificError;
use crate::model::{
    CodeAction, CompletionCode, NewStudy, RejectionCategory, Study, StudyAction, StudyStatus,
    Submission, SubmissionAction, SubmissionStatus, SubmissionTransition,
};

/// Where a participant who finished goes: Prolific's completion redirect with `code`.
pub fn completion_url(code: &str) -> String {
    let code: String = code
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    format!("https://app.prolific.com/submissions/complete?cc={code}")
}

/// The `filter_id` of Prolific's participant-group blocklist filter.
pub const BLOCKLIST_FILTER: &str = "participant_group_blocklist";

/// How a [`ProlificPlatform`] maps crowdcore onto a workspace.
#[derive(Clone)]
pub struct ProlificPlatformConfig {
    /// The workspace (balance, groups, hooks).
    pub workspace_id: String,
    /// The project studies are created in.
    pub project_id: String,
    /// What marks this session's study: its `internal_name` is `crowdcore:{tag}`. Use the
    /// session id; a study carrying it is found again after a lost answer or a crash instead
    /// of being created twice.
    pub tag: String,
    /// The completion code participants finish with (the redirect's `cc`). Submissions with
    /// it wait for review (`MANUALLY_REVIEW`): crowdcore approves what its ledger pays.
    pub completion_code: String,
    /// The study's estimated completion time in minutes.
    pub estimated_minutes: u32,
    /// `desktop`, `tablet`, `mobile`.
    pub device_compatibility: Vec<String>,
    /// ISO 3166 country codes to the choice ids of Prolific's
    /// `current-country-of-residence` filter, for [`QualificationRequirement::Locale`]. A
    /// country missing here makes the post fail (never a wider audience than asked).
    pub country_choices: BTreeMap<String, String>,
    /// The `rejection_category` of [`Platform::reject`].
    pub rejection_category: RejectionCategory,
    /// The most the session may spend: the workspace's available balance is checked against
    /// it before the study is published.
    pub budget: Option<Money>,
    /// Blocks go into this participant group, excluded by the study's filters. `None`: a
    /// group named `crowdcore blocked {tag}` is created with the study.
    pub block_group: Option<String>,
    /// How long a bonus payment whose answer was lost may take to show on its submission
    /// before it is taken as not paid and sent again (Prolific pays "in the following
    /// minutes"). Until then the bonus call fails with a retryable `PayUnconfirmed`.
    pub pay_settle: Duration,
    /// The clock of update times and the settling window.
    pub clock: Arc<dyn Clock>,
}

impl ProlificPlatformConfig {
    /// Defaults for a workspace, project and session tag.
    pub fn new(
        workspace_id: impl Into<String>,
        project_id: impl Into<String>,
        tag: impl Into<String>,
    ) -> Self {
        let tag = tag.into();
        Self {
            workspace_id: workspace_id.into(),
            project_id: project_id.into(),
            completion_code: completion_code_for(&tag),
            tag,
            estimated_minutes: 10,
            device_compatibility: vec!["desktop".into()],
            country_choices: BTreeMap::new(),
            rejection_category: RejectionCategory::Other,
            budget: None,
            block_group: None,
            pay_settle: Duration::from_secs(15 * 60),
            clock: Arc::new(SystemClock),
        }
    }

    /// The start of the study's `internal_name`: `crowdcore:{tag}`, followed by `:` and the
    /// key of the post that created it.
    pub fn internal_name(&self) -> String {
        format!("crowdcore:{}", self.tag)
    }

    /// Whether a study's `internal_name` marks it as this session's.
    pub fn is_ours(&self, internal_name: &str) -> bool {
        internal_name
            .strip_prefix(&self.internal_name())
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(':'))
    }
}

/// A completion code derived from the tag: 8 uppercase letters and digits, stable.
fn completion_code_for(tag: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in tag.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
    }
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    (0..8)
        .map(|i| ALPHABET[((h >> (i * 5)) & 31) as usize] as char)
        .collect()
}

impl fmt::Debug for ProlificPlatformConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProlificPlatformConfig")
            .field("workspace_id", &self.workspace_id)
            .field("project_id", &self.project_id)
            .field("tag", &self.tag)
            .field("estimated_minutes", &self.estimated_minutes)
            .field("budget", &self.budget)
            .field("pay_settle", &self.pay_settle)
            .finish_non_exhaustive()
    }
}

/// What the platform must remember across restarts: in the session's store metadata when
/// it has one ([`ProlificPlatform::with_store`]), else in memory (safe within one process
/// only).
enum Journal {
    Store {
        store: Arc<dyn Store>,
        session: SessionId,
    },
    Memory(Mutex<HashMap<String, String>>),
}

impl Journal {
    async fn get(&self, key: &str) -> Result<Option<String>, ProlificError> {
        match self {
            Journal::Store { store, session } => store
                .meta(session, &format!("prolific/{key}"))
                .await
                .map_err(|e| ProlificError::Store(e.to_string())),
            Journal::Memory(m) => Ok(m.lock().expect("journal lock").get(key).cloned()),
        }
    }

    async fn put(&self, key: &str, value: &str) -> Result<(), ProlificError> {
        match self {
            Journal::Store { store, session } => store
                .put_meta(session, &format!("prolific/{key}"), value)
                .await
                .map_err(|e| ProlificError::Store(e.to_string())),
            Journal::Memory(m) => {
                m.lock()
                    .expect("journal lock")
                    .insert(key.to_owned(), value.to_owned());
                Ok(())
            }
        }
    }
}

/// Where one bonus is, kept in the journal under its idempotency key. The bulk bonus id is
/// recorded before anything is paid; `Paying` is recorded before the pay call is sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum BonusRecord {
    /// Set up on Prolific, not paid.
    Created {
        /// The bulk bonus.
        bulk: String,
        /// The submission it pays.
        submission: String,
        /// How many bonus payments the submission showed before this one.
        before: usize,
    },
    /// The pay call was (or is about to be) sent; its outcome is not known yet.
    Paying {
        /// The bulk bonus.
        bulk: String,
        /// The submission it pays.
        submission: String,
        /// How many bonus payments the submission showed before this one.
        before: usize,
        /// When the pay call went out (Unix ms).
        since_ms: u64,
    },
    /// Paid: never sent again.
    Paid {
        /// The bulk bonus.
        bulk: String,
    },
}

/// The updates cursor: the study and the last status reported for each submission, so that
/// each change is reported once, and none is lost (a status read but not reported is not in
/// the cursor).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdatesCursor {
    /// The session's study, once known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub study: Option<String>,
    /// Submission id → the crowdcore status last reported.
    #[serde(default)]
    pub seen: BTreeMap<String, AssignmentStatus>,
}

impl UpdatesCursor {
    /// Reads a cursor from its text.
    pub fn decode(cursor: &Cursor) -> Result<Self, PlatformError> {
        serde_json::from_str(&cursor.0)
            .map_err(|e| PlatformError::bad_request("InvalidCursor", e.to_string()))
    }

    /// The cursor as text.
    pub fn encode(&self) -> Cursor {
        // Strings and enums: serialization cannot fail.
        Cursor(serde_json::to_string(self).expect("a cursor is plain data"))
    }
}

/// The update a submission of `study` stands for (None: a status crowdcore does not follow,
/// or no participant), timed by Prolific's start or completion time where it gives one, else
/// `now`.
fn update_of(sub: &Submission, study: &str, now: Timestamp) -> Option<AssignmentUpdate> {
    let status = core_status(&sub.status)?;
    let worker = sub.participant.as_deref()?;
    let at = match status {
        AssignmentStatus::Accepted => parse_time(sub.started_at.as_deref()),
        AssignmentStatus::Submitted | AssignmentStatus::Approved | AssignmentStatus::Rejected => {
            parse_time(sub.completed_at.as_deref())
        }
        AssignmentStatus::Returned | AssignmentStatus::Abandoned => None,
    }
    .unwrap_or(now);
    Some(AssignmentUpdate {
        assignment: AssignmentId::new(&sub.id),
        worker: WorkerId::new(worker),
        hit: HitId::new(study),
        status,
        at,
    })
}

/// crowdcore's status of a Prolific submission status; `None` for one that is not (yet) a
/// seat: a reservation, or a status this crate does not know.
pub fn core_status(status: &SubmissionStatus) -> Option<AssignmentStatus> {
    Some(match status {
        SubmissionStatus::Active => AssignmentStatus::Accepted,
        SubmissionStatus::AwaitingReview => AssignmentStatus::Submitted,
        SubmissionStatus::Approved | SubmissionStatus::PartiallyApproved => {
            AssignmentStatus::Approved
        }
        SubmissionStatus::Rejected => AssignmentStatus::Rejected,
        // Both give the place back to Prolific, which hands it out again.
        SubmissionStatus::Returned | SubmissionStatus::ScreenedOut => AssignmentStatus::Returned,
        SubmissionStatus::TimedOut => AssignmentStatus::Abandoned,
        SubmissionStatus::Reserved | SubmissionStatus::Other(_) => return None,
    })
}

fn parse_time(text: Option<&str>) -> Option<Timestamp> {
    let t = chrono::DateTime::parse_from_rfc3339(text?).ok()?;
    u64::try_from(t.timestamp_millis())
        .ok()
        .map(Timestamp::from_millis)
}

/// An amount in major units with two decimals (`4.25`), as `csv_bonuses` takes it.
pub fn major_units(amount: Money) -> String {
    format!("{}.{:02}", amount.minor / 100, amount.minor % 100)
}

/// crowdcore's [`Platform`] over one Prolific study per session.
pub struct ProlificPlatform {
    client: ProlificClient,
    config: ProlificPlatformConfig,
    journal: Journal,
    /// The session's study id, once known.
    study: Mutex<Option<String>>,
    /// Posts one at a time: each reads the places and raises them, and the first creates the
    /// study.
    posting: tokio::sync::Mutex<()>,
}

impl fmt::Debug for ProlificPlatform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProlificPlatform")
            .field("client", &self.client)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl ProlificPlatform {
    /// A platform keeping what it must remember (the study, each post's place target, each
    /// bonus's state) in memory: exactly once within one process. Use
    /// [`with_store`](Self::with_store) for exactly once across crashes.
    pub fn new(client: ProlificClient, config: ProlificPlatformConfig) -> Self {
        Self {
            client,
            config,
            journal: Journal::Memory(Mutex::new(HashMap::new())),
            study: Mutex::new(None),
            posting: tokio::sync::Mutex::new(()),
        }
    }

    /// A platform keeping what it must remember in `session`'s metadata in `store` (the
    /// engine's store): bonus ids are recorded before paying, and a restart finds the study
    /// and each post's target again.
    pub fn with_store(
        client: ProlificClient,
        config: ProlificPlatformConfig,
        store: Arc<dyn Store>,
        session: SessionId,
    ) -> Self {
        Self {
            journal: Journal::Store { store, session },
            ..Self::new(client, config)
        }
    }

    /// The client.
    pub fn client(&self) -> &ProlificClient {
        &self.client
    }

    /// The configuration.
    pub fn config(&self) -> &ProlificPlatformConfig {
        &self.config
    }

    /// Where participants of this session finish.
    pub fn completion_url(&self) -> String {
        completion_url(&self.config.completion_code)
    }

    /// The session's study, if it exists: remembered, or found on Prolific by its
    /// `internal_name`.
    pub async fn find_study(&self) -> Result<Option<Study>, ProlificError> {
        if let Some(id) = self.known_study().await? {
            return self.client.get_study(&id).await.map(Some);
        }
        let found = self
            .client
            .list_project_studies(&self.config.project_id)
            .await?
            .into_iter()
            .find(|s| {
                s.internal_name
                    .as_deref()
                    .is_some_and(|n| self.config.is_ours(n))
            });
        if let Some(s) = &found {
            self.remember_study(&s.id).await?;
        }
        Ok(found)
    }

    async fn known_study(&self) -> Result<Option<String>, ProlificError> {
        if let Some(id) = self.study.lock().expect("study lock").clone() {
            return Ok(Some(id));
        }
        let id = self.journal.get("study").await?;
        if let Some(id) = &id {
            *self.study.lock().expect("study lock") = Some(id.clone());
        }
        Ok(id)
    }

    async fn remember_study(&self, id: &str) -> Result<(), ProlificError> {
        self.journal.put("study", id).await?;
        *self.study.lock().expect("study lock") = Some(id.to_owned());
        Ok(())
    }

    /// The study's filters from a HIT spec's qualifications, and the blocklist group.
    fn filters(&self, spec: &HitSpec, group: Option<&str>) -> Result<Vec<Value>, ProlificError> {
        let mut out = Vec::new();
        for q in &spec.qualifications {
            match q {
                QualificationRequirement::ApprovalRate { min_percent } => out.push(json!({
                    "filter_id": "approval_rate",
                    "selected_range": { "lower": min_percent, "upper": 100 },
                })),
                QualificationRequirement::ApprovedCount { min } => out.push(json!({
                    "filter_id": "approval_numbers",
                    "selected_range": { "lower": min, "upper": null },
                })),
                QualificationRequirement::Locale { countries } => {
                    let mut choices = Vec::new();
                    for c in countries {
                        let Some(id) = self.config.country_choices.get(c) else {
                            return Err(ProlificError::Invalid(format!(
                                "country {c} has no Prolific choice id in country_choices"
                            )));
                        };
                        choices.push(id.clone());
                    }
                    out.push(json!({
                        "filter_id": "current-country-of-residence",
                        "selected_values": choices,
                    }));
                }
                QualificationRequirement::Custom { qualification, .. } => {
                    return Err(ProlificError::Invalid(format!(
                        "Prolific has no custom qualifications ({qualification}): use a \
                         participant group or a filter set"
                    )));
                }
            }
        }
        if let Some(g) = group {
            out.push(json!({ "filter_id": BLOCKLIST_FILTER, "selected_values": [g] }));
        }
        Ok(out)
    }

    /// The participant group blocks go into: configured, remembered, or created now.
    async fn block_group(&self) -> Result<String, ProlificError> {
        if let Some(g) = &self.config.block_group {
            return Ok(g.clone());
        }
        if let Some(g) = self.journal.get("block_group").await? {
            return Ok(g);
        }
        let name = format!("crowdcore blocked {}", self.config.tag);
        let group = self
            .client
            .create_participant_group(&self.config.workspace_id, &name)
            .await?;
        self.journal.put("block_group", &group.id).await?;
        Ok(group.id)
    }

    /// Refuses to spend what the workspace does not have: `places` more places at `reward`,
    /// and, before publishing (`publishing`), the configured budget.
    async fn check_funds(
        &self,
        reward: Money,
        places: u32,
        publishing: bool,
    ) -> Result<(), ProlificError> {
        let balance = self.client.balance(&self.config.workspace_id).await?;
        let currency = Currency::new(&balance.currency_code)
            .map_err(|e| ProlificError::Decode(e.to_string()))?;
        if currency != reward.currency {
            return Err(ProlificError::Invalid(format!(
                "the reward is in {} but the workspace pays in {currency}",
                reward.currency
            )));
        }
        let need = reward.minor.saturating_mul(i64::from(places));
        let budget = match self.config.budget {
            Some(b) if publishing => b.minor,
            _ => 0,
        };
        let need = need.max(budget);
        if balance.available_balance < need {
            return Err(ProlificError::Api(Box::new(crate::error::ApiError {
                status: 402,
                error_code: None,
                title: "Insufficient balance".into(),
                detail: format!(
                    "the workspace has {} {currency} available, the session needs {} (checked \
                     before publishing; nothing was published)",
                    major_units(Money::new(balance.available_balance, currency)),
                    major_units(Money::new(need, currency)),
                ),
                retry_after: None,
            })));
        }
        Ok(())
    }

    fn new_study(
        &self,
        spec: &HitSpec,
        places: u32,
        filters: Vec<Value>,
        key: &IdempotencyKey,
    ) -> NewStudy {
        let sep = if spec.landing_url.contains('?') {
            '&'
        } else {
            '?'
        };
        let url = format!(
            "{}{sep}PROLIFIC_PID={{{{%PROLIFIC_PID%}}}}&STUDY_ID={{{{%STUDY_ID%}}}}&SESSION_ID={{{{%SESSION_ID%}}}}",
            spec.landing_url
        );
        let max_minutes = spec.assignment_duration_ms.div_ceil(60_000) as u32;
        NewStudy {
            name: spec.title.clone(),
            internal_name: format!("{}:{key}", self.config.internal_name()),
            description: spec.description.clone(),
            external_study_url: url,
            prolific_id_option: "url_parameters".into(),
            completion_codes: vec![CompletionCode {
                code: self.config.completion_code.clone(),
                code_type: "COMPLETED".into(),
                actions: vec![CodeAction {
                    action: "MANUALLY_REVIEW".into(),
                }],
            }],
            total_available_places: places,
            estimated_completion_time: self.config.estimated_minutes,
            maximum_allowed_time: max_minutes.max(self.config.estimated_minutes),
            reward: spec.reward.minor,
            device_compatibility: self.config.device_compatibility.clone(),
            filters,
            naivety_distribution_rate: 0.0,
            project: self.config.project_id.clone(),
        }
    }

    async fn post_inner(
        &self,
        spec: &HitSpec,
        slots: u32,
        key: &IdempotencyKey,
    ) -> Result<HitId, ProlificError> {
        let _one = self.posting.lock().await;
        let target_key = format!("post/{key}");
        let recorded: Option<u32> = self
            .journal
            .get(&target_key)
            .await?
            .and_then(|t| t.parse().ok());
        let Some(study) = self.find_study().await? else {
            // None yet: create it. The target is recorded first, so that a retry after a lost
            // answer (which finds the study by its name) does not raise the places again.
            self.journal.put(&target_key, &slots.to_string()).await?;
            self.check_funds(spec.reward, slots, true).await?;
            let group = self.block_group().await?;
            let filters = self.filters(spec, Some(&group))?;
            let created = self
                .client
                .create_study(&self.new_study(spec, slots, filters, key))
                .await?;
            self.remember_study(&created.id).await?;
            self.client
                .transition_study(&created.id, StudyAction::Publish)
                .await?;
            return Ok(HitId::new(&created.id));
        };
        let created_by_this_key = study.internal_name.as_deref()
            == Some(format!("{}:{key}", self.config.internal_name()).as_str());
        let target = match recorded {
            Some(t) => t,
            // Created by this very post (its answer or the record of it was lost): its
            // places are the ones asked for.
            None if created_by_this_key => study.total_available_places.max(slots),
            None => {
                // A later hire: `slots` more places; after a pause (an expiry), the places
                // still free on Prolific count towards them (they cannot be taken back).
                let t = if study.status == StudyStatus::Paused {
                    study
                        .total_available_places
                        .max(study.places_taken.saturating_add(slots))
                } else {
                    study.total_available_places.saturating_add(slots)
                };
                self.journal.put(&target_key, &t.to_string()).await?;
                t
            }
        };
        let more = target.saturating_sub(study.total_available_places);
        match study.status {
            StudyStatus::Completed => {
                return Err(ProlificError::Api(Box::new(crate::error::ApiError {
                    status: 409,
                    error_code: None,
                    title: "Study completed".into(),
                    detail: format!("study {} is completed: it takes no more places", study.id),
                    retry_after: None,
                })));
            }
            StudyStatus::Unpublished => {
                // Created, not published yet (a crash or lost answer in between).
                if more > 0 {
                    self.client.set_places(&study.id, target).await?;
                }
                self.check_funds(spec.reward, target, true).await?;
                self.client
                    .transition_study(&study.id, StudyAction::Publish)
                    .await?;
            }
            _ => {
                if more > 0 {
                    self.check_funds(spec.reward, more, false).await?;
                    self.client.set_places(&study.id, target).await?;
                }
                if study.status == StudyStatus::Paused {
                    self.client
                        .transition_study(&study.id, StudyAction::Start)
                        .await?;
                }
            }
        }
        Ok(HitId::new(&study.id))
    }

    /// The study this platform posted, or an error naming what is missing.
    async fn study_id(&self) -> Result<String, ProlificError> {
        match self.known_study().await? {
            Some(id) => Ok(id),
            None => match self.find_study().await? {
                Some(s) => Ok(s.id),
                None => Err(ProlificError::Invalid(
                    "this session has no Prolific study yet".into(),
                )),
            },
        }
    }

    async fn submission_of(
        &self,
        worker: &WorkerId,
        assignment: Option<&AssignmentId>,
    ) -> Result<Submission, ProlificError> {
        let sub = match assignment {
            Some(a) => self.client.get_submission(a.as_str()).await?,
            None => {
                let study = self.study_id().await?;
                self.client
                    .list_submissions(&study)
                    .await?
                    .into_iter()
                    .find(|s| s.participant.as_deref() == Some(worker.as_str()))
            }
        };
        let Some(sub) = sub else {
            return Err(ProlificError::Invalid(format!(
                "no submission of participant {worker} to pay a bonus on"
            )));
        };
        if sub.participant.as_deref() != Some(worker.as_str()) {
            return Err(ProlificError::Invalid(format!(
                "submission {} is not participant {worker}'s",
                sub.id
            )));
        }
        Ok(sub)
    }

    async fn bonus_inner(
        &self,
        worker: &WorkerId,
        assignment: Option<&AssignmentId>,
        amount: Money,
        key: &IdempotencyKey,
    ) -> Result<(), ProlificError> {
        if amount.minor <= 0 {
            return Err(ProlificError::Invalid(format!(
                "a bonus must be positive, not {}",
                major_units(amount)
            )));
        }
        let jkey = format!("bonus/{key}");
        let mut record: Option<BonusRecord> = match self.journal.get(&jkey).await? {
            Some(text) => {
                Some(serde_json::from_str(&text).map_err(|e| ProlificError::Store(e.to_string()))?)
            }
            None => None,
        };
        loop {
            match record.take() {
                None => {
                    let sub = self.submission_of(worker, assignment).await?;
                    let study = match &sub.study_id {
                        Some(s) => s.clone(),
                        None => self.study_id().await?,
                    };
                    let csv = format!("{},{}\n", sub.id, major_units(amount));
                    let bulk = self.client.create_bulk_bonus(&study, &csv).await?;
                    let next = BonusRecord::Created {
                        bulk: bulk.id,
                        submission: sub.id.clone(),
                        before: sub.bonus_payments.as_ref().map_or(0, Vec::len),
                    };
                    self.save_bonus(&jkey, &next).await?;
                    record = Some(next);
                }
                Some(BonusRecord::Created {
                    bulk,
                    submission,
                    before,
                }) => {
                    let since_ms = self.config.clock.now().as_millis();
                    let paying = BonusRecord::Paying {
                        bulk: bulk.clone(),
                        submission: submission.clone(),
                        before,
                        since_ms,
                    };
                    // Recorded before the call: a crash during it is reconciled, not repeated.
                    self.save_bonus(&jkey, &paying).await?;
                    match self.client.pay_bulk_bonus(&bulk).await {
                        Ok(()) => {
                            self.save_bonus(&jkey, &BonusRecord::Paid { bulk }).await?;
                            return Ok(());
                        }
                        Err(e) if !e.may_have_happened() => {
                            // Prolific said no: nothing was paid; try again from set up.
                            let back = BonusRecord::Created {
                                bulk,
                                submission,
                                before,
                            };
                            self.save_bonus(&jkey, &back).await?;
                            return Err(e);
                        }
                        Err(e) => {
                            tracing::warn!(%bulk, error = %e, "bonus pay answer lost: reconciling");
                            record = Some(paying);
                        }
                    }
                }
                Some(BonusRecord::Paying {
                    bulk,
                    submission,
                    before,
                    since_ms,
                }) => {
                    let seen = self
                        .client
                        .get_submission(&submission)
                        .await?
                        .and_then(|s| s.bonus_payments)
                        .map_or(0, |b| b.len());
                    if seen > before {
                        self.save_bonus(&jkey, &BonusRecord::Paid { bulk }).await?;
                        return Ok(());
                    }
                    let waited = self.config.clock.now().as_millis().saturating_sub(since_ms);
                    if u128::from(waited) < self.config.pay_settle.as_millis() {
                        return Err(ProlificError::PayUnconfirmed(bulk));
                    }
                    // Not paid after the settling window: send it again.
                    record = Some(BonusRecord::Created {
                        bulk,
                        submission,
                        before,
                    });
                }
                Some(BonusRecord::Paid { .. }) => return Ok(()),
            }
        }
    }

    async fn save_bonus(&self, key: &str, record: &BonusRecord) -> Result<(), ProlificError> {
        let text = serde_json::to_string(record).expect("a bonus record is plain data");
        self.journal.put(key, &text).await
    }

    /// A bonus's state in the journal (for tests and operators).
    pub async fn bonus_record(
        &self,
        key: &IdempotencyKey,
    ) -> Result<Option<BonusRecord>, ProlificError> {
        match self.journal.get(&format!("bonus/{key}")).await? {
            Some(t) => serde_json::from_str(&t)
                .map(Some)
                .map_err(|e| ProlificError::Store(e.to_string())),
            None => Ok(None),
        }
    }

    /// A submission as an update, read back from Prolific (what a verified webhook leads to:
    /// Prolific's current word, not the event's, so a late or repeated event changes
    /// nothing). `None` for a submission of another study, or not a seat.
    pub async fn read_update(
        &self,
        submission: &str,
    ) -> Result<Option<AssignmentUpdate>, ProlificError> {
        let Some(sub) = self.client.get_submission(submission).await? else {
            return Ok(None);
        };
        let ours = self.known_study().await?;
        if sub.study_id.is_none() || sub.study_id != ours {
            return Ok(None);
        }
        let Some(study) = sub.study_id.clone() else {
            return Ok(None);
        };
        Ok(update_of(&sub, &study, self.config.clock.now()))
    }

    /// Stops the session's study for good (the admin CLI's stop): no new participants;
    /// those working may still submit. Idempotent.
    pub async fn stop_study(&self) -> Result<Option<Study>, ProlificError> {
        let Some(study) = self.find_study().await? else {
            return Ok(None);
        };
        if matches!(
            study.status,
            StudyStatus::Completed | StudyStatus::Unpublished
        ) {
            return Ok(Some(study));
        }
        self.client
            .transition_study(&study.id, StudyAction::Stop)
            .await
            .map(Some)
    }

    /// A submission transition, where done already is success. Refused for its state, the
    /// submission is read back: reviewed as asked → done; awaiting review (it was submitted
    /// meanwhile) → sent once more; still active → [`ProlificError::NotSubmitted`].
    async fn review(
        &self,
        assignment: &AssignmentId,
        transition: SubmissionTransition,
        done: SubmissionStatus,
    ) -> Result<(), ProlificError> {
        let mut tries = 0;
        loop {
            tries += 1;
            let e = match self
                .client
                .transition_submission(assignment.as_str(), &transition)
                .await
            {
                Ok(_) => return Ok(()),
                Err(e)
                    if e.status()
                        .is_some_and(|s| (400..500).contains(&s) && s != 429) =>
                {
                    e
                }
                Err(e) => return Err(e),
            };
            match self.client.get_submission(assignment.as_str()).await? {
                Some(s) if s.status == done => return Ok(()),
                Some(s) if s.status == SubmissionStatus::AwaitingReview && tries < 3 => continue,
                Some(s)
                    if matches!(
                        s.status,
                        SubmissionStatus::Active | SubmissionStatus::Reserved
                    ) =>
                {
                    return Err(ProlificError::NotSubmitted(s.id));
                }
                Some(s) => {
                    return Err(ProlificError::Api(Box::new(crate::error::ApiError {
                        status: 409,
                        error_code: e.api().and_then(|a| a.error_code),
                        title: format!("submission is {:?}", s.status),
                        detail: e.api().map(|a| a.detail.clone()).unwrap_or_default(),
                        retry_after: None,
                    })));
                }
                None => return Err(e),
            }
        }
    }
}

#[async_trait]
impl Platform for ProlificPlatform {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            // A returned or timed-out submission frees its place: Prolific hands it out again.
            returned_slots_reopen: true,
            // Webhooks ([`crate::webhook`]) speed the poll up; the poll stays the truth.
            push_notifications: false,
            bonus_without_assignment: true,
            max_slots_per_hit: None,
            confirms_assignments: true,
            // Every post answers with the session's study.
            posts_reopen_expired_hits: true,
        }
    }

    async fn post(
        &self,
        spec: &HitSpec,
        slots: u32,
        key: &IdempotencyKey,
    ) -> Result<HitId, PlatformError> {
        Ok(self.post_inner(spec, slots, key).await?)
    }

    async fn add_slots(
        &self,
        hit: &HitId,
        n: u32,
        key: &IdempotencyKey,
    ) -> Result<(), PlatformError> {
        let _one = self.posting.lock().await;
        let target_key = format!("post/{key}");
        let study = self.client.get_study(hit.as_str()).await?;
        let target = match self
            .journal
            .get(&target_key)
            .await?
            .and_then(|t| t.parse().ok())
        {
            Some(t) => t,
            None => {
                let t = study.total_available_places.saturating_add(n);
                self.journal.put(&target_key, &t.to_string()).await?;
                t
            }
        };
        if target > study.total_available_places {
            self.client.set_places(hit.as_str(), target).await?;
        }
        Ok(())
    }

    async fn assignment(
        &self,
        assignment: &AssignmentId,
    ) -> Result<Option<AssignmentRecord>, PlatformError> {
        let Some(sub) = self.client.get_submission(assignment.as_str()).await? else {
            return Ok(None);
        };
        let (Some(worker), Some(study)) = (sub.participant, sub.study_id) else {
            return Err(ProlificError::Decode(format!(
                "submission {} without a participant or study",
                sub.id
            ))
            .into());
        };
        // A reservation (not started) or an unknown status is not a seat.
        Ok(core_status(&sub.status).map(|status| AssignmentRecord {
            assignment: AssignmentId::new(&sub.id),
            worker: WorkerId::new(worker),
            hit: HitId::new(study),
            status,
        }))
    }

    async fn expire(&self, hit: &HitId) -> Result<(), PlatformError> {
        let _one = self.posting.lock().await;
        let study = self.client.get_study(hit.as_str()).await?;
        if matches!(
            study.status,
            StudyStatus::Active | StudyStatus::Publishing | StudyStatus::Scheduled
        ) {
            // Paused, not stopped: a later hire starts it again; participants working finish.
            self.client
                .transition_study(hit.as_str(), StudyAction::Pause)
                .await?;
        }
        Ok(())
    }

    async fn updates(
        &self,
        cursor: Option<&Cursor>,
    ) -> Result<Page<AssignmentUpdate>, PlatformError> {
        let mut state = match cursor {
            Some(c) => UpdatesCursor::decode(c)?,
            None => UpdatesCursor::default(),
        };
        let study = match &state.study {
            Some(s) => s.clone(),
            None => match self.known_study().await? {
                Some(s) => s,
                None => {
                    return Ok(Page {
                        items: Vec::new(),
                        next: cursor.cloned(),
                    });
                }
            },
        };
        let now = self.config.clock.now();
        let mut items = Vec::new();
        for sub in self.client.list_submissions(&study).await? {
            let Some(update) = update_of(&sub, &study, now) else {
                continue;
            };
            if state.seen.get(&sub.id) == Some(&update.status) {
                continue;
            }
            state.seen.insert(sub.id.clone(), update.status);
            items.push(update);
        }
        items.sort_by_key(|u| u.at);
        state.study = Some(study);
        Ok(Page {
            items,
            next: Some(state.encode()),
        })
    }

    async fn approve(
        &self,
        assignment: &AssignmentId,
        _key: &IdempotencyKey,
    ) -> Result<(), PlatformError> {
        let t = SubmissionTransition {
            action: SubmissionAction::Approve,
            message: None,
            rejection_category: None,
        };
        Ok(self
            .review(assignment, t, SubmissionStatus::Approved)
            .await?)
    }

    async fn reject(
        &self,
        assignment: &AssignmentId,
        feedback: &str,
        _key: &IdempotencyKey,
    ) -> Result<(), PlatformError> {
        let t = SubmissionTransition {
            action: SubmissionAction::Reject,
            message: Some(feedback.to_owned()),
            rejection_category: Some(self.config.rejection_category),
        };
        crate::client::check_rejection(t.message.as_deref(), t.rejection_category)?;
        Ok(self
            .review(assignment, t, SubmissionStatus::Rejected)
            .await?)
    }

    async fn bonus(
        &self,
        worker: &WorkerId,
        assignment: Option<&AssignmentId>,
        amount: Money,
        _reason: &str,
        key: &IdempotencyKey,
    ) -> Result<(), PlatformError> {
        Ok(self.bonus_inner(worker, assignment, amount, key).await?)
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
        let study = self.study_id().await?;
        let body = format!("{subject}\n\n{message}");
        if let [one] = workers {
            self.client
                .send_message(one.as_str(), &study, &body)
                .await?;
        } else {
            let ids: Vec<String> = workers.iter().map(|w| w.as_str().to_owned()).collect();
            self.client.send_bulk_message(&ids, &study, &body).await?;
        }
        Ok(())
    }

    async fn block(&self, worker: &WorkerId, _reason: &str) -> Result<(), PlatformError> {
        let group = self.block_group().await?;
        self.client
            .add_to_participant_group(&group, &[worker.as_str().to_owned()])
            .await?;
        Ok(())
    }

    async fn grant_qualification(
        &self,
        _worker: &WorkerId,
        qualification: &str,
        _value: i64,
    ) -> Result<(), PlatformError> {
        Err(PlatformError::new(
            PlatformErrorKind::BadRequest,
            "Unsupported",
            format!(
                "Prolific has no qualifications ({qualification}): add the participant to a \
                 participant group and filter studies by it"
            ),
        ))
    }

    async fn revoke_qualification(
        &self,
        _worker: &WorkerId,
        qualification: &str,
    ) -> Result<(), PlatformError> {
        Err(PlatformError::new(
            PlatformErrorKind::BadRequest,
            "Unsupported",
            format!("Prolific has no qualifications ({qualification})"),
        ))
    }

    async fn balance(&self) -> Result<Money, PlatformError> {
        let b = self.client.balance(&self.config.workspace_id).await?;
        let currency = Currency::new(&b.currency_code)
            .map_err(|e| PlatformError::bad_request("Decode", e.to_string()))?;
        Ok(Money::new(b.available_balance, currency))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_onto_crowdcore() {
        use SubmissionStatus as S;
        assert_eq!(core_status(&S::Active), Some(AssignmentStatus::Accepted));
        assert_eq!(
            core_status(&S::AwaitingReview),
            Some(AssignmentStatus::Submitted)
        );
        assert_eq!(core_status(&S::TimedOut), Some(AssignmentStatus::Abandoned));
        assert_eq!(core_status(&S::Returned), Some(AssignmentStatus::Returned));
        assert_eq!(
            core_status(&S::ScreenedOut),
            Some(AssignmentStatus::Returned)
        );
        assert_eq!(core_status(&S::Approved), Some(AssignmentStatus::Approved));
        assert_eq!(core_status(&S::Rejected), Some(AssignmentStatus::Rejected));
        assert_eq!(core_status(&S::Reserved), None);
    }

    #[test]
    fn amounts_and_codes() {
        assert_eq!(major_units(Money::usd_cents(425)), "4.25");
        assert_eq!(major_units(Money::usd_cents(7)), "0.07");
        let code = completion_code_for("session-1");
        assert_eq!(code.len(), 8);
        assert_eq!(code, completion_code_for("session-1"));
        assert_ne!(code, completion_code_for("session-2"));
        assert_eq!(
            completion_url("AB12\"><x"),
            "https://app.prolific.com/submissions/complete?cc=AB12x"
        );
    }
}
