//! Toloka's REST objects as typed Rust data: pools, tasks, assignments, operations, bonuses,
//! restrictions, skills, the requester, and the search pages they come in.
//!
//! Field names are Toloka's (snake_case JSON). Fields this crate does not model are kept in an
//! `extra` map where an object is read and written back, and ignored elsewhere, so a newer
//! Toloka does not break reading.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, NaiveDateTime};
use crowdcore::model::{Currency, Money, Timestamp};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

// ----- scalars ---------------------------------------------------------------------------------

/// A Toloka date and time: UTC, written without a zone (`2024-05-01T12:00:00.123`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TolokaTime(NaiveDateTime);

impl TolokaTime {
    /// The time `ts` milliseconds after the Unix epoch, if representable.
    pub fn from_timestamp(ts: Timestamp) -> Option<Self> {
        let ms = i64::try_from(ts.as_millis()).ok()?;
        DateTime::from_timestamp_millis(ms).map(|d| Self(d.naive_utc()))
    }

    /// Milliseconds since the Unix epoch (0 for times before it).
    pub fn to_timestamp(self) -> Timestamp {
        Timestamp::from_millis(u64::try_from(self.0.and_utc().timestamp_millis()).unwrap_or(0))
    }

    /// Reads Toloka's formats: with or without fractional seconds, with or without a trailing
    /// `Z` or offset (an offset is converted to UTC).
    pub fn parse(text: &str) -> Option<Self> {
        if let Ok(d) = DateTime::parse_from_rfc3339(text) {
            return Some(Self(d.naive_utc()));
        }
        let text = text.strip_suffix('Z').unwrap_or(text);
        NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
            .ok()
            .map(Self)
    }
}

impl fmt::Display for TolokaTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.format("%Y-%m-%dT%H:%M:%S%.3f"))
    }
}

impl fmt::Debug for TolokaTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl Serialize for TolokaTime {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for TolokaTime {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        TolokaTime::parse(&text)
            .ok_or_else(|| serde::de::Error::custom(format!("bad Toloka time {text:?}")))
    }
}

/// An amount of US dollars in millionths (Toloka pays in dollars with fractions of a cent).
///
/// On the wire it is a JSON number (`1.5`) or a decimal string (`"1.50"`); a string is read
/// exactly, a number is rounded once to the nearest millionth. No arithmetic is done in floats.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Usd {
    /// Millionths of a dollar.
    pub micros: i64,
}

/// A crowdcore amount Toloka cannot take.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UsdError {
    /// Toloka pays in US dollars only.
    #[error("{0}: Toloka pays in USD")]
    NotUsd(Money),
    /// More cents than millionths of a dollar fit in an `i64` (above ~922 trillion dollars).
    #[error("{0} is too large for Toloka's millionths of a dollar")]
    TooLarge(Money),
}

impl Usd {
    /// `cents` US cents.
    ///
    /// # Panics
    ///
    /// Above `i64::MAX / 10 000` cents (in a `const`, at compile time); see
    /// [`checked_from_cents`](Self::checked_from_cents).
    pub const fn from_cents(cents: i64) -> Self {
        match Self::checked_from_cents(cents) {
            Some(usd) => usd,
            None => panic!("more cents than fit in millionths of a dollar"),
        }
    }

    /// `cents` US cents, or `None` if that many millionths do not fit in an `i64`.
    pub const fn checked_from_cents(cents: i64) -> Option<Self> {
        match cents.checked_mul(10_000) {
            Some(micros) => Some(Self { micros }),
            None => None,
        }
    }

    /// A crowdcore amount in US dollars.
    pub fn from_money(money: Money) -> Result<Self, UsdError> {
        if money.currency != Currency::USD {
            return Err(UsdError::NotUsd(money));
        }
        Self::checked_from_cents(money.minor).ok_or(UsdError::TooLarge(money))
    }

    /// The amount in whole cents, rounded half away from zero.
    pub fn to_money(self) -> Money {
        // In 128 bits: adding the half cent cannot overflow, and the result (at most
        // `i64::MAX / 10 000 + 1` in size) fits back.
        let micros = i128::from(self.micros);
        let cents = (micros + micros.signum() * 5_000) / 10_000;
        Money::usd_cents(cents as i64)
    }

    /// Reads a decimal text (`"1.50"`, `"-0.005"`) exactly, to millionths.
    pub fn parse(text: &str) -> Option<Self> {
        let (neg, digits) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let (whole, frac) = digits.split_once('.').unwrap_or((digits, ""));
        if whole.is_empty() && frac.is_empty()
            || frac.len() > 6
            || !whole
                .bytes()
                .chain(frac.bytes())
                .all(|b| b.is_ascii_digit())
        {
            return None;
        }
        let whole: i64 = if whole.is_empty() {
            0
        } else {
            whole.parse().ok()?
        };
        let mut frac_micros: i64 = 0;
        for (i, b) in frac.bytes().enumerate() {
            frac_micros += i64::from(b - b'0') * 10_i64.pow(5 - i as u32);
        }
        let micros = whole.checked_mul(1_000_000)?.checked_add(frac_micros)?;
        Some(Self {
            micros: if neg { -micros } else { micros },
        })
    }
}

impl fmt::Display for Usd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.micros < 0 { "-" } else { "" };
        let abs = self.micros.unsigned_abs();
        let mut frac = format!("{:06}", abs % 1_000_000);
        while frac.len() > 2 && frac.ends_with('0') {
            frac.pop();
        }
        write!(f, "{sign}{}.{frac}", abs / 1_000_000)
    }
}

impl fmt::Debug for Usd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self} USD")
    }
}

impl Serialize for Usd {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // The shortest decimal that reads back as the same double is the amount's own text.
        let text = self.to_string();
        let number: f64 = text.parse().map_err(serde::ser::Error::custom)?;
        s.serialize_f64(number)
    }
}

impl<'de> Deserialize<'de> for Usd {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::String(s) => {
                Usd::parse(&s).ok_or_else(|| serde::de::Error::custom(format!("bad amount {s:?}")))
            }
            Value::Number(n) => {
                // serde_json prints a number's shortest round-trip text: parse that exactly.
                let text = n.to_string();
                Usd::parse(&text)
                    .or_else(|| {
                        // An exponent form (`1e-7`, `2e20`): rounded once, refused out of range.
                        n.as_f64()
                            .map(|x| (x * 1e6).round())
                            .filter(|micros| micros.abs() < 9.2e18)
                            .map(|micros| Usd {
                                micros: micros as i64,
                            })
                    })
                    .ok_or_else(|| serde::de::Error::custom(format!("bad amount {text}")))
            }
            other => Err(serde::de::Error::custom(format!("bad amount {other}"))),
        }
    }
}

/// Texts in several languages, by ISO 639 code (`EN`, `RU`, …).
pub type LocalizedText = std::collections::BTreeMap<String, String>;

// ----- pools -----------------------------------------------------------------------------------

/// A pool's status.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PoolStatus {
    /// Tasks are being handed out.
    Open,
    /// No tasks are handed out.
    Closed,
    /// Archived.
    Archived,
    /// Locked by an operation.
    Locked,
    /// A status this crate does not know.
    #[serde(untagged)]
    Other(String),
}

/// The pool's defaults for new tasks.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct PoolDefaults {
    /// Overlap given to tasks created with `allow_defaults=true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_overlap_for_new_tasks: Option<u32>,
    /// Overlap given to task suites created with `allow_defaults=true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_overlap_for_new_task_suites: Option<u32>,
}

/// A pool: a set of tasks with a price, an overlap default and worker filters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pool {
    /// Pool id.
    pub id: String,
    /// Its project.
    pub project_id: String,
    /// The requester's name for it.
    #[serde(default)]
    pub private_name: String,
    /// Open, closed, …
    pub status: PoolStatus,
    /// Pay per task suite, in dollars.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reward_per_assignment: Option<Usd>,
    /// How long a worker may hold a task suite.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignment_max_duration_seconds: Option<u64>,
    /// When the pool closes by itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub will_expire: Option<TolokaTime>,
    /// Defaults for new tasks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub defaults: Option<PoolDefaults>,
    /// Why the pool was last closed (`MANUAL`, `EXPIRED`, `COMPLETED`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_close_reason: Option<String>,
    /// When it was created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<TolokaTime>,
    /// When it was last opened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_started: Option<TolokaTime>,
    /// Everything else Toloka sent (filters, quality control, mixer config, …).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

// ----- projects --------------------------------------------------------------------------------

/// A project (`GET /projects/{id}`): what this crate reads of it is the task specification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Project {
    /// Project id.
    pub id: String,
    /// The name workers see (by language).
    #[serde(default, skip_serializing_if = "LocalizedText::is_empty")]
    pub public_name: LocalizedText,
    /// `ACTIVE` or `ARCHIVED`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Its tasks' input and output fields.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_spec: Option<TaskSpec>,
    /// Everything else Toloka sent.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A project's task specification: the input fields a task may (or must) carry and the
/// output fields a worker's answer has, by name.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TaskSpec {
    /// Input fields.
    #[serde(default)]
    pub input_spec: BTreeMap<String, FieldSpec>,
    /// Output fields.
    #[serde(default)]
    pub output_spec: BTreeMap<String, FieldSpec>,
    /// Everything else (the view).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One field of a project's input or output specification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldSpec {
    /// Its type: `string`, `integer`, `float`, `boolean`, `url`, `file`, `coordinates`,
    /// `json`, or `array_` and one of those.
    #[serde(rename = "type")]
    pub kind: String,
    /// Whether every task (or answer) must carry it; Toloka's default is `true`.
    #[serde(default = "yes")]
    pub required: bool,
    /// Hidden from workers (input fields only).
    #[serde(default)]
    pub hidden: bool,
    /// Constraints (`min_length`, `allowed_values`, …).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

fn yes() -> bool {
    true
}

impl FieldSpec {
    /// A field of this type, required or not.
    pub fn new(kind: &str, required: bool) -> Self {
        Self {
            kind: kind.to_owned(),
            required,
            hidden: false,
            extra: Map::new(),
        }
    }

    /// Whether `value` has this field's type (constraints aside): a number for `integer`
    /// must be whole, `json` takes anything, an array type takes an array of its element
    /// type.
    pub fn accepts(&self, value: &Value) -> bool {
        fn scalar(kind: &str, v: &Value) -> bool {
            match kind {
                "string" | "url" | "file" | "coordinates" => v.is_string(),
                "integer" => v.is_i64() || v.is_u64(),
                "float" => v.is_number(),
                "boolean" => v.is_boolean(),
                "json" => true,
                // A type this crate does not know: Toloka is the judge.
                _ => true,
            }
        }
        match self.kind.strip_prefix("array_") {
            Some(element) => value
                .as_array()
                .is_some_and(|items| items.iter().all(|v| scalar(element, v))),
            None => scalar(&self.kind, value),
        }
    }
}

// ----- tasks -----------------------------------------------------------------------------------

/// A task to create.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewTask {
    /// The pool to put it in.
    pub pool_id: String,
    /// Input data, keyed by the project's input field names.
    pub input_values: Map<String, Value>,
    /// How many workers should do it (ignored with `allow_defaults=true`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overlap: Option<u32>,
    /// Hand it out to any number of workers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub infinite_overlap: Option<bool>,
    /// Only these workers may do it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reserved_for: Vec<String>,
    /// These workers may not do it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unavailable_for: Vec<String>,
    /// Correct answers, for control tasks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub known_solutions: Vec<Value>,
}

impl NewTask {
    /// A task for `pool_id` with these inputs and this overlap.
    pub fn new(pool_id: impl Into<String>, input_values: Map<String, Value>, overlap: u32) -> Self {
        Self {
            pool_id: pool_id.into(),
            input_values,
            overlap: Some(overlap),
            infinite_overlap: None,
            reserved_for: Vec::new(),
            unavailable_for: Vec::new(),
            known_solutions: Vec::new(),
        }
    }
}

/// A task as Toloka stores it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Task {
    /// Task id.
    pub id: String,
    /// Its pool.
    pub pool_id: String,
    /// Its input data.
    #[serde(default)]
    pub input_values: Map<String, Value>,
    /// How many workers should do it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overlap: Option<u32>,
    /// How many more times it will be handed out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remaining_overlap: Option<u32>,
    /// Handed out without limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub infinite_overlap: Option<bool>,
    /// When it was created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<TolokaTime>,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Options of task creation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CreateTasksOptions {
    /// Use the pool's default overlap instead of each task's.
    pub allow_defaults: bool,
    /// Open the pool after adding the tasks if it is closed.
    pub open_pool: bool,
    /// Add the valid tasks and report the invalid ones instead of failing the whole batch.
    pub skip_invalid_items: bool,
}

/// Why one field of one item failed validation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldError {
    /// Toloka's code (`VALUE_REQUIRED`, …).
    pub code: String,
    /// Its message.
    #[serde(default)]
    pub message: String,
}

/// The result of a batch creation: created items by their index in the request, and
/// validation errors by index and field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound(deserialize = "T: Deserialize<'de>"))]
pub struct BatchCreated<T> {
    /// Created items, keyed by the index of the input item (`"0"`, `"1"`, …).
    #[serde(default)]
    pub items: std::collections::BTreeMap<String, T>,
    /// Rejected items: index → field → error.
    #[serde(default)]
    pub validation_errors: std::collections::BTreeMap<String, Map<String, Value>>,
}

impl<T> BatchCreated<T> {
    /// The item created from input `index`.
    pub fn item(&self, index: usize) -> Option<&T> {
        self.items.get(&index.to_string())
    }
}

// ----- assignments -----------------------------------------------------------------------------

/// An assignment's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AssignmentStatus {
    /// A worker holds it.
    Active,
    /// The worker submitted; waiting for review.
    Submitted,
    /// The requester accepted it (paid).
    Accepted,
    /// The requester rejected it.
    Rejected,
    /// The worker skipped it (gave it back).
    Skipped,
    /// The worker ran out of time.
    Expired,
}

impl AssignmentStatus {
    /// The name Toloka uses in filters (`SUBMITTED`).
    pub fn as_str(self) -> &'static str {
        match self {
            AssignmentStatus::Active => "ACTIVE",
            AssignmentStatus::Submitted => "SUBMITTED",
            AssignmentStatus::Accepted => "ACCEPTED",
            AssignmentStatus::Rejected => "REJECTED",
            AssignmentStatus::Skipped => "SKIPPED",
            AssignmentStatus::Expired => "EXPIRED",
        }
    }
}

/// One worker's answers to the tasks of a suite.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Solution {
    /// Output values keyed by the project's output field names.
    #[serde(default)]
    pub output_values: Map<String, Value>,
}

/// A task suite handed to one worker, with their answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Assignment {
    /// Assignment id.
    pub id: String,
    /// The task suite.
    #[serde(default)]
    pub task_suite_id: String,
    /// Its pool.
    pub pool_id: String,
    /// The worker.
    pub user_id: String,
    /// Its status.
    pub status: AssignmentStatus,
    /// What the worker is paid for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reward: Option<Usd>,
    /// The tasks of the suite.
    #[serde(default)]
    pub tasks: Vec<Task>,
    /// The worker's answers, in the order of `tasks`.
    #[serde(default)]
    pub solutions: Vec<Solution>,
    /// Bonuses paid for it.
    #[serde(default)]
    pub bonus_ids: Vec<String>,
    /// When it was handed out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<TolokaTime>,
    /// When the worker submitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub submitted: Option<TolokaTime>,
    /// When the requester accepted it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accepted: Option<TolokaTime>,
    /// When the requester rejected it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejected: Option<TolokaTime>,
    /// When the worker skipped it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<TolokaTime>,
    /// When it expired.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expired: Option<TolokaTime>,
    /// The comment given with the review.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_comment: Option<String>,
}

impl Assignment {
    /// The time of one of its events (the field named by `field`).
    pub fn time_of(&self, field: TimeField) -> Option<TolokaTime> {
        match field {
            TimeField::Created => self.created,
            TimeField::Submitted => self.submitted,
            TimeField::Accepted => self.accepted,
            TimeField::Rejected => self.rejected,
            TimeField::Skipped => self.skipped,
            TimeField::Expired => self.expired,
        }
    }
}

/// The time fields of an assignment that searches filter and sort on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeField {
    /// Handed out (status `ACTIVE`).
    Created,
    /// Submitted.
    Submitted,
    /// Accepted by the requester.
    Accepted,
    /// Rejected by the requester.
    Rejected,
    /// Skipped by the worker.
    Skipped,
    /// Expired.
    Expired,
}

impl TimeField {
    /// Every field, in the order an assignment passes through them.
    pub const ALL: [TimeField; 6] = [
        TimeField::Created,
        TimeField::Submitted,
        TimeField::Accepted,
        TimeField::Rejected,
        TimeField::Skipped,
        TimeField::Expired,
    ];

    /// The field's name in queries (`submitted`).
    pub fn as_str(self) -> &'static str {
        match self {
            TimeField::Created => "created",
            TimeField::Submitted => "submitted",
            TimeField::Accepted => "accepted",
            TimeField::Rejected => "rejected",
            TimeField::Skipped => "skipped",
            TimeField::Expired => "expired",
        }
    }
}

/// A bound on a time field: `{field}_{op}={time}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeBound {
    /// Strictly after.
    Gt(TolokaTime),
    /// At or after.
    Gte(TolokaTime),
    /// Strictly before.
    Lt(TolokaTime),
    /// At or before.
    Lte(TolokaTime),
}

/// What to sort a search by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AssignmentSort {
    /// By id, ascending (the order `id_gt` paging needs).
    #[default]
    Id,
    /// By a time field, ascending, then by id.
    Time(TimeField),
}

/// Filters of `GET /assignments`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AssignmentFilter {
    /// Only this pool.
    pub pool_id: Option<String>,
    /// Only these statuses (any of them).
    pub status: Vec<AssignmentStatus>,
    /// Only this task.
    pub task_id: Option<String>,
    /// Only this task suite.
    pub task_suite_id: Option<String>,
    /// Only this worker.
    pub user_id: Option<String>,
    /// Only ids greater than this (paging).
    pub id_gt: Option<String>,
    /// Only ids at least this.
    pub id_gte: Option<String>,
    /// Only ids at most this.
    pub id_lte: Option<String>,
    /// Bounds on time fields.
    pub time: Vec<(TimeField, TimeBound)>,
    /// Sort order (ascending).
    pub sort: AssignmentSort,
    /// Page size (Toloka's default 50, at most 100 000).
    pub limit: Option<u32>,
}

impl AssignmentFilter {
    /// Assignments of one pool, sorted by id.
    pub fn pool(pool_id: impl Into<String>) -> Self {
        Self {
            pool_id: Some(pool_id.into()),
            ..Self::default()
        }
    }

    /// The query string pairs.
    pub fn to_query(&self) -> Vec<(String, String)> {
        let mut q = Vec::new();
        let mut push = |k: &str, v: String| q.push((k.to_owned(), v));
        if let Some(v) = &self.pool_id {
            push("pool_id", v.clone());
        }
        if !self.status.is_empty() {
            let s: Vec<&str> = self.status.iter().map(|s| s.as_str()).collect();
            push("status", s.join(","));
        }
        if let Some(v) = &self.task_id {
            push("task_id", v.clone());
        }
        if let Some(v) = &self.task_suite_id {
            push("task_suite_id", v.clone());
        }
        if let Some(v) = &self.user_id {
            push("user_id", v.clone());
        }
        if let Some(v) = &self.id_gt {
            push("id_gt", v.clone());
        }
        if let Some(v) = &self.id_gte {
            push("id_gte", v.clone());
        }
        if let Some(v) = &self.id_lte {
            push("id_lte", v.clone());
        }
        for (field, bound) in &self.time {
            let (op, t) = match bound {
                TimeBound::Gt(t) => ("gt", t),
                TimeBound::Gte(t) => ("gte", t),
                TimeBound::Lt(t) => ("lt", t),
                TimeBound::Lte(t) => ("lte", t),
            };
            push(&format!("{}_{op}", field.as_str()), t.to_string());
        }
        let sort = match self.sort {
            AssignmentSort::Id => "id".to_owned(),
            AssignmentSort::Time(f) => format!("{},id", f.as_str()),
        };
        push("sort", sort);
        if let Some(l) = self.limit {
            push("limit", l.to_string());
        }
        q
    }
}

/// One page of a search, and whether more match.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound(deserialize = "T: Deserialize<'de>"))]
pub struct SearchPage<T> {
    /// The items, in the requested order.
    #[serde(default)]
    pub items: Vec<T>,
    /// More items match beyond this page.
    #[serde(default)]
    pub has_more: bool,
}

/// The body of `PATCH /assignments/{id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AssignmentPatch {
    /// `ACCEPTED` or `REJECTED`.
    pub status: AssignmentStatus,
    /// A comment for the worker.
    pub public_comment: String,
}

// ----- operations ------------------------------------------------------------------------------

/// An asynchronous operation's status.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OperationStatus {
    /// Not started.
    Pending,
    /// In progress.
    Running,
    /// Done.
    Success,
    /// Done, with errors.
    Fail,
    /// A status this crate does not know.
    #[serde(untagged)]
    Other(String),
}

/// An asynchronous operation (`POOL.OPEN`, `TASK.BATCH_CREATE`, `USER_BONUS.BATCH_CREATE`, …).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Operation {
    /// Operation id (a UUID; the `operation_id` given when it was started, if any).
    pub id: String,
    /// Its type (`TASK.BATCH_CREATE`).
    #[serde(rename = "type")]
    pub kind: String,
    /// Its status.
    pub status: OperationStatus,
    /// When it was requested.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub submitted: Option<TolokaTime>,
    /// When it started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started: Option<TolokaTime>,
    /// When it finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished: Option<TolokaTime>,
    /// Progress in percent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<u32>,
    /// The request's parameters (`pool_id`, …).
    #[serde(default)]
    pub parameters: Value,
    /// Completion details (`items_count`, a failure's reason).
    #[serde(default)]
    pub details: Value,
}

impl Operation {
    /// Finished, well or not.
    pub fn is_completed(&self) -> bool {
        matches!(
            self.status,
            OperationStatus::Success | OperationStatus::Fail
        )
    }
}

/// One line of an operation's log (`GET /operations/{id}/log`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OperationLogItem {
    /// What happened (`TASK_CREATE`, `TASK_VALIDATE`, `USER_BONUS_PERSIST`, …).
    #[serde(rename = "type")]
    pub kind: String,
    /// Whether it worked.
    pub success: bool,
    /// The item as sent.
    #[serde(default)]
    pub input: Value,
    /// The result: `{"task_id": …}`, `{"user_bonus_id": …}`, or field errors.
    #[serde(default)]
    pub output: Value,
}

// ----- money, people ---------------------------------------------------------------------------

/// A bonus to pay.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewUserBonus {
    /// The worker.
    pub user_id: String,
    /// How much, in dollars.
    pub amount: Usd,
    /// The assignment it is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignment_id: Option<String>,
    /// A note only the requester sees.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_comment: Option<String>,
    /// The message's title, by language.
    #[serde(default, skip_serializing_if = "LocalizedText::is_empty")]
    pub public_title: LocalizedText,
    /// The message's text, by language.
    #[serde(default, skip_serializing_if = "LocalizedText::is_empty")]
    pub public_message: LocalizedText,
    /// Pay without a message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub without_message: Option<bool>,
}

/// A bonus as Toloka stores it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserBonus {
    /// Bonus id.
    pub id: String,
    /// The worker.
    pub user_id: String,
    /// How much.
    pub amount: Usd,
    /// The assignment it is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignment_id: Option<String>,
    /// The requester's note.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_comment: Option<String>,
    /// When it was paid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<TolokaTime>,
}

/// Where a restriction applies.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "scope", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RestrictionScope {
    /// Every project of this requester.
    AllProjects,
    /// One project.
    Project {
        /// The project.
        project_id: String,
    },
    /// One pool.
    Pool {
        /// The pool.
        pool_id: String,
    },
}

/// A block to put on a worker (`PUT /user-restrictions`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewUserRestriction {
    /// The worker.
    pub user_id: String,
    /// Where.
    #[serde(flatten)]
    pub scope: RestrictionScope,
    /// A note only the requester sees.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_comment: Option<String>,
    /// When access comes back; `None` blocks for good.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub will_expire: Option<TolokaTime>,
}

/// A restriction as Toloka stores it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserRestriction {
    /// Restriction id.
    pub id: String,
    /// The worker.
    pub user_id: String,
    /// Where.
    #[serde(flatten)]
    pub scope: RestrictionScope,
    /// The requester's note.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_comment: Option<String>,
    /// When access comes back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub will_expire: Option<TolokaTime>,
    /// When it was made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<TolokaTime>,
}

/// A skill: a number from 0 to 100 the requester keeps per worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Skill {
    /// Skill id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// A note only the requester sees.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_comment: Option<String>,
    /// Whether workers see their value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hidden: Option<bool>,
    /// When it was made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<TolokaTime>,
}

/// A worker's value of a skill.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserSkill {
    /// Record id.
    pub id: String,
    /// The skill.
    pub skill_id: String,
    /// The worker.
    pub user_id: String,
    /// The value rounded to an integer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<i64>,
    /// The exact value (0 to 100), as decimal text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exact_value: Option<Value>,
    /// When it was first set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<TolokaTime>,
    /// When it last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modified: Option<TolokaTime>,
}

/// The body of `PUT /user-skills`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SetUserSkill {
    /// The skill.
    pub skill_id: String,
    /// The worker.
    pub user_id: String,
    /// The value, 0 to 100.
    pub value: f64,
}

/// The account behind the token (`GET /requester`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Requester {
    /// Requester id.
    pub id: String,
    /// Money available, in dollars.
    pub balance: Usd,
    /// Public names by language.
    #[serde(default)]
    pub public_name: LocalizedText,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_every_toloka_format_and_write_one() {
        for text in [
            "2024-05-01T12:00:00",
            "2024-05-01T12:00:00.000",
            "2024-05-01T12:00:00Z",
            "2024-05-01T14:00:00+02:00",
        ] {
            let t = TolokaTime::parse(text).unwrap();
            assert_eq!(t.to_string(), "2024-05-01T12:00:00.000", "{text}");
        }
        let t = TolokaTime::parse("2024-05-01T12:00:00.123").unwrap();
        assert_eq!(TolokaTime::from_timestamp(t.to_timestamp()), Some(t));
        assert!(TolokaTime::parse("yesterday").is_none());
    }

    #[test]
    fn dollars_are_read_exactly() {
        assert_eq!(Usd::parse("1.50"), Some(Usd::from_cents(150)));
        assert_eq!(Usd::parse("-0.005").unwrap().micros, -5_000);
        assert_eq!(Usd::parse("3").unwrap(), Usd::from_cents(300));
        assert!(Usd::parse("1.2.3").is_none());
        assert!(Usd::parse("").is_none());
        assert!(Usd::parse("0.0000001").is_none());
        let u: Usd = serde_json::from_str("0.07").unwrap();
        assert_eq!(u, Usd::from_cents(7));
        let u: Usd = serde_json::from_str("\"12.34\"").unwrap();
        assert_eq!(u.to_money(), Money::usd_cents(1234));
        assert_eq!(serde_json::to_string(&Usd::from_cents(7)).unwrap(), "0.07");
        assert_eq!(serde_json::to_string(&Usd::from_cents(150)).unwrap(), "1.5");
        assert_eq!(Usd { micros: 5_000 }.to_money(), Money::usd_cents(1));
        assert_eq!(Usd { micros: -5_000 }.to_money(), Money::usd_cents(-1));
        assert_eq!(Usd { micros: 4_999 }.to_money(), Money::usd_cents(0));
    }

    #[test]
    fn amounts_toloka_cannot_take_are_errors_not_wrapped() {
        assert_eq!(
            Usd::from_money(Money::usd_cents(150)),
            Ok(Usd::from_cents(150))
        );
        let euros = Money::new(150, Currency::new("EUR").unwrap());
        assert_eq!(Usd::from_money(euros), Err(UsdError::NotUsd(euros)));
        let huge = Money::usd_cents(i64::MAX / 10_000 + 1);
        assert_eq!(Usd::from_money(huge), Err(UsdError::TooLarge(huge)));
        assert!(Usd::checked_from_cents(i64::MIN).is_none());
        let edge = Usd::from_money(Money::usd_cents(i64::MAX / 10_000)).unwrap();
        assert_eq!(edge.to_money(), Money::usd_cents(i64::MAX / 10_000));
        assert_eq!(
            Usd { micros: i64::MAX }.to_money(),
            Money::usd_cents(i64::MAX / 10_000 + 1)
        );
        assert_eq!(
            Usd { micros: i64::MIN }.to_money(),
            Money::usd_cents(i64::MIN / 10_000 - 1)
        );
        // A number too large for millionths is refused, not saturated.
        assert!(serde_json::from_str::<Usd>("1e20").is_err());
        assert_eq!(
            serde_json::from_str::<Usd>("1e-7").unwrap(),
            Usd { micros: 0 }
        );
        assert_eq!(
            serde_json::from_str::<Usd>("2.5e3").unwrap(),
            Usd::from_cents(250_000)
        );
    }

    #[test]
    fn filters_become_toloka_query_strings() {
        let t = TolokaTime::parse("2024-05-01T12:00:00").unwrap();
        let f = AssignmentFilter {
            status: vec![AssignmentStatus::Submitted, AssignmentStatus::Accepted],
            id_gt: Some("a1".into()),
            time: vec![(TimeField::Submitted, TimeBound::Gte(t))],
            sort: AssignmentSort::Time(TimeField::Submitted),
            limit: Some(10),
            ..AssignmentFilter::pool("p1")
        };
        let q: Vec<String> = f
            .to_query()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        assert_eq!(
            q,
            [
                "pool_id=p1",
                "status=SUBMITTED,ACCEPTED",
                "id_gt=a1",
                "submitted_gte=2024-05-01T12:00:00.000",
                "sort=submitted,id",
                "limit=10"
            ]
        );
    }

    #[test]
    fn restrictions_carry_their_scope_inline() {
        let r = NewUserRestriction {
            user_id: "w1".into(),
            scope: RestrictionScope::Pool {
                pool_id: "p1".into(),
            },
            private_comment: None,
            will_expire: None,
        };
        assert_eq!(
            serde_json::to_value(&r).unwrap(),
            serde_json::json!({"user_id": "w1", "scope": "POOL", "pool_id": "p1"})
        );
    }
}
