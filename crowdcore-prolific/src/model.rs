//! Prolific's JSON: the request and response bodies of the endpoints this crate uses, as the
//! API reference (docs.prolific.com/api-reference) describes them. Unknown fields are ignored
//! on reading, so that Prolific may add fields.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A page of a Prolific listing: `results`, `_links` (`next` is the URL of the next page,
/// `null` on the last) and `meta` (`count`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ListPage<T> {
    /// The items of this page.
    pub results: Vec<T>,
    /// Links to the neighbouring pages.
    #[serde(default, rename = "_links")]
    pub links: Links,
    /// How many items the whole listing has.
    #[serde(default)]
    pub meta: Meta,
}

/// The `_links` of a listing.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Links {
    /// The next page, if any.
    #[serde(default)]
    pub next: Link,
    /// The previous page, if any.
    #[serde(default)]
    pub previous: Link,
}

/// One link of a listing: `{"href": url-or-null, "title": …}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Link {
    /// The URL, `None` where there is no such page.
    #[serde(default)]
    pub href: Option<String>,
}

/// The `meta` of a listing.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Meta {
    /// Items in the whole listing.
    #[serde(default)]
    pub count: Option<u64>,
}

/// Where a study is (`status`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum StudyStatus {
    /// A draft.
    #[serde(rename = "UNPUBLISHED")]
    Unpublished,
    /// Scheduled to publish.
    #[serde(rename = "SCHEDULED")]
    Scheduled,
    /// Being published.
    #[serde(rename = "PUBLISHING")]
    Publishing,
    /// Recruiting.
    #[serde(rename = "ACTIVE")]
    Active,
    /// Paused: no new participants; the active ones may finish.
    #[serde(rename = "PAUSED")]
    Paused,
    /// Every place is taken and submissions wait for review.
    #[serde(rename = "AWAITING REVIEW")]
    AwaitingReview,
    /// Stopped or finished for good.
    #[serde(rename = "COMPLETED")]
    Completed,
    /// A status this crate does not know.
    #[serde(untagged)]
    Other(String),
}

/// A study's action (`POST /api/v1/studies/{id}/transition/`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StudyAction {
    /// Publish a draft.
    Publish,
    /// Pause recruiting.
    Pause,
    /// Resume a paused study.
    Start,
    /// Stop for good.
    Stop,
}

/// A study as Prolific returns it (the fields this crate reads).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Study {
    /// The study's id.
    pub id: String,
    /// The public name.
    #[serde(default)]
    pub name: String,
    /// The private name: carries the crowdcore key that created the study.
    #[serde(default)]
    pub internal_name: Option<String>,
    /// Where it is.
    pub status: StudyStatus,
    /// Places in all.
    #[serde(default)]
    pub total_available_places: u32,
    /// Places held by participants (active, submitted, reviewed).
    #[serde(default)]
    pub places_taken: u32,
    /// Reward per place, in minor units of the study's currency.
    #[serde(default)]
    pub reward: i64,
    /// The landing URL.
    #[serde(default)]
    pub external_study_url: Option<String>,
    /// Its completion codes.
    #[serde(default)]
    pub completion_codes: Vec<CompletionCode>,
    /// The project it is in.
    #[serde(default)]
    pub project: Option<String>,
    /// Its filters.
    #[serde(default)]
    pub filters: Vec<Value>,
}

/// `POST /api/v1/studies/`: a draft study.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewStudy {
    /// Public name.
    pub name: String,
    /// Private name (our key).
    pub internal_name: String,
    /// Public description.
    pub description: String,
    /// The landing page, with `{{%PROLIFIC_PID%}}`, `{{%STUDY_ID%}}`, `{{%SESSION_ID%}}`.
    pub external_study_url: String,
    /// `url_parameters`: Prolific appends the ids to the URL.
    pub prolific_id_option: String,
    /// How participants finish.
    pub completion_codes: Vec<CompletionCode>,
    /// Places.
    pub total_available_places: u32,
    /// Minutes the study should take.
    pub estimated_completion_time: u32,
    /// Minutes after which a submission times out.
    pub maximum_allowed_time: u32,
    /// Reward per place in minor units.
    pub reward: i64,
    /// `desktop`, `tablet`, `mobile`.
    pub device_compatibility: Vec<String>,
    /// Who may take part.
    pub filters: Vec<Value>,
    /// 0: every eligible participant is told at once (fastest recruiting).
    pub naivety_distribution_rate: f64,
    /// The project to create it in.
    pub project: String,
}

/// A completion code of a study: what the participant's redirect carries and what it does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompletionCode {
    /// The code in `?cc=`.
    pub code: String,
    /// `COMPLETED`, `FAILED_ATTENTION_CHECK`, …
    pub code_type: String,
    /// What Prolific does when a participant finishes with it.
    #[serde(default)]
    pub actions: Vec<CodeAction>,
}

/// One action of a completion code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodeAction {
    /// `MANUALLY_REVIEW`, `AUTOMATICALLY_APPROVE`, …
    pub action: String,
}

/// Where a submission is.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SubmissionStatus {
    /// Reserved a place, not started.
    #[serde(rename = "RESERVED")]
    Reserved,
    /// The participant is working.
    #[serde(rename = "ACTIVE")]
    Active,
    /// Finished, waiting for review.
    #[serde(rename = "AWAITING REVIEW")]
    AwaitingReview,
    /// Approved (paid).
    #[serde(rename = "APPROVED")]
    Approved,
    /// Partly approved.
    #[serde(rename = "PARTIALLY APPROVED")]
    PartiallyApproved,
    /// Rejected.
    #[serde(rename = "REJECTED")]
    Rejected,
    /// Returned by the participant: the place opens again.
    #[serde(rename = "RETURNED")]
    Returned,
    /// The maximum time passed: the place opens again.
    #[serde(rename = "TIMED-OUT")]
    TimedOut,
    /// Screened out by the study.
    #[serde(rename = "SCREENED-OUT", alias = "SCREENED OUT")]
    ScreenedOut,
    /// A status this crate does not know.
    #[serde(untagged)]
    Other(String),
}

/// A submission as Prolific returns it, from a listing or read alone (the two name some
/// fields differently; both are read).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "RawSubmission")]
pub struct Submission {
    /// The submission's id (the `SESSION_ID` of the landing URL).
    pub id: String,
    /// The participant (`participant_id` in listings, `participant` when read alone).
    pub participant: Option<String>,
    /// The study (`study_id`).
    pub study_id: Option<String>,
    /// Where it is.
    pub status: SubmissionStatus,
    /// When the participant started (RFC 3339).
    pub started_at: Option<String>,
    /// When it was completed (RFC 3339).
    pub completed_at: Option<String>,
    /// The code the participant finished with (`entered_code`, or `study_code` in listings).
    pub entered_code: Option<String>,
    /// Bonuses paid on it, in minor units.
    pub bonus_payments: Option<Vec<f64>>,
}

/// The submission's JSON with every name Prolific uses for a field.
#[derive(Deserialize)]
struct RawSubmission {
    id: String,
    #[serde(default)]
    participant: Option<String>,
    #[serde(default)]
    participant_id: Option<String>,
    #[serde(default)]
    study_id: Option<String>,
    #[serde(default)]
    study: Option<String>,
    status: SubmissionStatus,
    #[serde(default)]
    started_at: Option<String>,
    #[serde(default)]
    completed_at: Option<String>,
    #[serde(default)]
    entered_code: Option<String>,
    #[serde(default)]
    study_code: Option<String>,
    #[serde(default)]
    bonus_payments: Option<Vec<f64>>,
}

impl From<RawSubmission> for Submission {
    fn from(r: RawSubmission) -> Self {
        Self {
            id: r.id,
            participant: r.participant.or(r.participant_id),
            study_id: r.study_id.or(r.study),
            status: r.status,
            started_at: r.started_at,
            completed_at: r.completed_at,
            entered_code: r.entered_code.or(r.study_code),
            bonus_payments: r.bonus_payments,
        }
    }
}

/// A submission's action (`POST /api/v1/submissions/{id}/transition/`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SubmissionAction {
    /// Approve: the reward is paid.
    Approve,
    /// Reject, with a message and a category.
    Reject,
}

/// Why a submission was rejected (`rejection_category`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RejectionCategory {
    /// Finished too quickly.
    TooQuickly,
    /// Took too long.
    TooSlowly,
    /// Did not follow the instructions.
    FailedInstructions,
    /// Did not finish a longitudinal study.
    IncompLongit,
    /// Failed a check.
    FailedCheck,
    /// Low effort.
    LowEffort,
    /// Malingering.
    Malingering,
    /// No completion code.
    NoCode,
    /// A wrong completion code.
    BadCode,
    /// No data.
    NoData,
    /// An unsupported device.
    UnsuppDevice,
    /// Anything else.
    Other,
}

/// The body of a submission transition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubmissionTransition {
    /// What to do.
    pub action: SubmissionAction,
    /// The rejection message (at least 100 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The rejection category.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejection_category: Option<RejectionCategory>,
}

/// `POST /api/v1/submissions/bonus-payments/`: a bulk bonus set up, not paid yet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BulkBonus {
    /// Its id: what `POST /api/v1/bulk-bonus-payments/{id}/pay/` takes.
    pub id: String,
    /// The study.
    #[serde(default)]
    pub study: Option<String>,
    /// What participants get, in minor units.
    #[serde(default)]
    pub amount: Option<f64>,
    /// Prolific's fees, in minor units.
    #[serde(default)]
    pub fees: Option<f64>,
    /// All that is taken from the balance, in minor units.
    #[serde(default)]
    pub total_amount: Option<f64>,
}

/// `GET /api/v1/workspaces/{id}/balance/`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Balance {
    /// The workspace's currency (`GBP`, `USD`).
    pub currency_code: String,
    /// All money in the workspace, in minor units.
    #[serde(default)]
    pub total_balance: i64,
    /// What is free to spend (not locked by published studies), in minor units.
    pub available_balance: i64,
}

/// A participant group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParticipantGroup {
    /// Its id.
    pub id: String,
    /// Its name.
    #[serde(default)]
    pub name: String,
}

/// A hook subscription.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Subscription {
    /// Its id.
    #[serde(default)]
    pub id: String,
    /// The event type (`submission.status.change`).
    pub event_type: String,
    /// Where events go.
    pub target_url: String,
    /// Whether it delivers (after the `X-Hook-Secret` confirmation).
    #[serde(default)]
    pub is_enabled: bool,
    /// The workspace.
    #[serde(default)]
    pub workspace_id: String,
}

/// A workspace's hook secret (`POST /api/v1/hooks/secrets/`).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct HookSecret {
    /// Its id.
    #[serde(default)]
    pub id: String,
    /// The secret: signs every delivery. Never logged.
    pub value: String,
    /// The workspace.
    #[serde(default)]
    pub workspace_id: String,
}

impl std::fmt::Debug for HookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HookSecret")
            .field("id", &self.id)
            .field("value", &"<redacted>")
            .field("workspace_id", &self.workspace_id)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_listings_and_statuses() {
        let page: ListPage<Submission> = serde_json::from_str(
            r#"{"results":[{"id":"s1","participant_id":"p1","status":"TIMED-OUT","started_at":"2026-01-01T00:00:00Z","study_code":null},
                            {"id":"s2","participant_id":"p2","status":"SCREENED OUT"},
                            {"id":"s3","participant_id":"p3","status":"SOMETHING NEW"}],
                "_links":{"next":{"href":"https://api.prolific.com/api/v1/submissions/?page=2"},"previous":{"href":null}},
                "meta":{"count":3}}"#,
        )
        .unwrap();
        assert_eq!(page.results[0].status, SubmissionStatus::TimedOut);
        assert_eq!(page.results[0].participant.as_deref(), Some("p1"));
        assert_eq!(page.results[1].status, SubmissionStatus::ScreenedOut);
        assert_eq!(
            page.results[2].status,
            SubmissionStatus::Other("SOMETHING NEW".into())
        );
        assert!(page.links.next.href.is_some());
        assert_eq!(page.meta.count, Some(3));
        let s: StudyStatus = serde_json::from_str(r#""AWAITING REVIEW""#).unwrap();
        assert_eq!(s, StudyStatus::AwaitingReview);
        assert_eq!(
            serde_json::to_string(&RejectionCategory::FailedInstructions).unwrap(),
            r#""FAILED_INSTRUCTIONS""#
        );
    }
}
