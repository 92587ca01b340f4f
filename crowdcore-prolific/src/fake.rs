//! A local fake Prolific for tests (feature `fake`): an axum app on 127.0.0.1 that speaks the
//! paths, bodies, pagination (`results`, `_links`, `meta`) and error documents
//! (`{"error": {"status", "error_code", "title", "detail", …}}`) of the endpoints this crate
//! uses, with simulated participants and injected faults.
//!
//! Faults: 429 with `Retry-After`, 503, an answer lost *after* the action happened (a 502
//! once the request was carried out), a slow answer. The fake counts what must never happen
//! twice: studies created with the same `internal_name`, pays of one bulk bonus, reviews of
//! a reviewed submission.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// A fault the fake can inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// 429 with `Retry-After: 0`; nothing is done.
    Throttle,
    /// 503; nothing is done.
    Unavailable,
    /// The request is carried out, then the answer is lost (a 502).
    LostAnswer,
    /// The answer comes after [`FakeConfig::slow_ms`].
    SlowAnswer,
}

/// How the fake starts.
#[derive(Debug, Clone)]
pub struct FakeConfig {
    /// The token requests must carry (`Authorization: Token …`).
    pub token: String,
    /// The workspace's currency.
    pub currency: String,
    /// The workspace's available balance in minor units.
    pub balance: i64,
    /// Items per page when a request gives no `page_size`.
    pub page_size: usize,
    /// Random faults: per mille of requests, and which kinds.
    pub fault_per_mille: u32,
    /// The kinds random faults are drawn from.
    pub fault_kinds: Vec<Fault>,
    /// The seed of the fault draws.
    pub seed: u64,
    /// How long a [`Fault::SlowAnswer`] holds its answer, in ms.
    pub slow_ms: u64,
}

impl Default for FakeConfig {
    fn default() -> Self {
        Self {
            token: "fake-token".into(),
            currency: "GBP".into(),
            balance: 1_000_000,
            page_size: 20,
            fault_per_mille: 0,
            fault_kinds: vec![Fault::Throttle, Fault::Unavailable, Fault::LostAnswer],
            seed: 1,
            slow_ms: 200,
        }
    }
}

/// Why a simulated participant could not act.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParticipantError {
    /// No such study or submission.
    #[error("not found: {0}")]
    NotFound(String),
    /// The study is not recruiting.
    #[error("study is {0}")]
    NotRecruiting(String),
    /// Every place is taken.
    #[error("no place free")]
    Full,
    /// The participant is excluded (a blocklist group) or took part already.
    #[error("not eligible")]
    NotEligible,
    /// The submission is not active.
    #[error("submission is {0}")]
    NotActive(String),
}

#[derive(Debug, Clone)]
struct FakeStudy {
    body: Value,
    status: String,
    places: u32,
}

#[derive(Debug, Clone)]
struct FakeSubmission {
    study: String,
    participant: String,
    status: String,
    started_at: String,
    completed_at: Option<String>,
    code: Option<String>,
    bonuses: Vec<i64>,
    reviews: u32,
}

#[derive(Debug, Clone)]
struct FakeBulk {
    study: String,
    lines: Vec<(String, i64)>,
    pays: u32,
}

#[derive(Debug)]
struct World {
    config: FakeConfig,
    rng: u64,
    next_id: u64,
    now_s: u64,
    studies: BTreeMap<String, FakeStudy>,
    submissions: BTreeMap<String, FakeSubmission>,
    bulks: BTreeMap<String, FakeBulk>,
    groups: BTreeMap<String, BTreeSet<String>>,
    messages: Vec<Value>,
    subscriptions: BTreeMap<String, (Value, String)>,
    balance: i64,
    created_names: BTreeMap<String, u32>,
    scripted: Vec<(Option<Method>, String, Fault, u32)>,
    faults: u64,
    review_repeats: u64,
    requests: u64,
    bad_auth: u64,
}

type Shared = Arc<Mutex<World>>;

fn lock(world: &Shared) -> MutexGuard<'_, World> {
    // Handlers validate before they mutate: data behind a poisoned lock is intact.
    world.lock().unwrap_or_else(|e| e.into_inner())
}

fn error(status: StatusCode, code: i64, title: &str, detail: Value) -> Response {
    let doc = json!({ "error": {
        "status": status.as_u16(),
        "error_code": code,
        "title": title,
        "detail": detail,
        "additional_information": format!("/api/v1/errors/{code}"),
        "interactive": false,
    }});
    (status, axum::Json(doc)).into_response()
}

fn bad_request(detail: impl Into<Value>) -> Response {
    error(
        StatusCode::BAD_REQUEST,
        140001,
        "Bad request",
        detail.into(),
    )
}

fn not_found(what: &str) -> Response {
    error(
        StatusCode::NOT_FOUND,
        140401,
        "Not found",
        Value::String(format!("{what} not found")),
    )
}

fn ok(status: StatusCode, body: Value) -> Response {
    (status, axum::Json(body)).into_response()
}

/// Statuses that hold a place.
fn holds_place(status: &str) -> bool {
    matches!(
        status,
        "RESERVED" | "ACTIVE" | "AWAITING REVIEW" | "APPROVED" | "REJECTED" | "PARTIALLY APPROVED"
    )
}

impl World {
    fn id(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        // 24 hex characters, like Prolific's ids; ordered by creation.
        format!("{prefix}{:0>22x}", self.next_id)
    }

    fn time(&mut self) -> String {
        self.now_s += 1;
        chrono::DateTime::from_timestamp(self.now_s as i64, 0)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
            .unwrap_or_default()
    }

    fn taken(&self, study: &str) -> u32 {
        self.submissions
            .values()
            .filter(|s| s.study == study && holds_place(&s.status))
            .count() as u32
    }

    fn study_json(&self, id: &str) -> Value {
        let s = &self.studies[id];
        let mut b = s.body.clone();
        b["id"] = json!(id);
        b["status"] = json!(s.status);
        b["total_available_places"] = json!(s.places);
        b["places_taken"] = json!(self.taken(id));
        b
    }

    fn submission_json(&self, id: &str, listing: bool) -> Value {
        let s = &self.submissions[id];
        let mut v = json!({
            "id": id,
            "status": s.status,
            "started_at": s.started_at,
            "completed_at": s.completed_at,
            "study_code": s.code,
        });
        if listing {
            v["participant_id"] = json!(s.participant);
        } else {
            v["participant"] = json!(s.participant);
            v["study_id"] = json!(s.study);
            v["entered_code"] = json!(s.code);
            v["bonus_payments"] = json!(s.bonuses);
        }
        v
    }

    fn draw(&mut self, method: &Method, path: &str) -> Option<Fault> {
        if let Some(i) = self.scripted.iter().position(|(m, prefix, _, left)| {
            *left > 0 && m.as_ref().is_none_or(|m| m == method) && path.starts_with(prefix.as_str())
        }) {
            self.scripted[i].3 -= 1;
            return Some(self.scripted[i].2);
        }
        if self.config.fault_per_mille == 0 || self.config.fault_kinds.is_empty() {
            return None;
        }
        // xorshift64*: deterministic per seed.
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        let r = self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d);
        if (r % 1000) as u32 >= self.config.fault_per_mille {
            return None;
        }
        let kinds = &self.config.fault_kinds;
        Some(kinds[((r >> 20) % kinds.len() as u64) as usize])
    }
}

/// A running fake Prolific. Dropping it stops the server.
#[derive(Debug)]
pub struct FakeProlific {
    addr: SocketAddr,
    world: Shared,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FakeProlific {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl FakeProlific {
    /// Starts the fake on a free port of 127.0.0.1.
    pub async fn start(config: FakeConfig) -> std::io::Result<Self> {
        let world = World {
            rng: config.seed.max(1),
            balance: config.balance,
            config,
            next_id: 0,
            now_s: 1_800_000_000,
            studies: BTreeMap::new(),
            submissions: BTreeMap::new(),
            bulks: BTreeMap::new(),
            groups: BTreeMap::new(),
            messages: Vec::new(),
            subscriptions: BTreeMap::new(),
            created_names: BTreeMap::new(),
            scripted: Vec::new(),
            faults: 0,
            review_repeats: 0,
            requests: 0,
            bad_auth: 0,
        };
        let world = Arc::new(Mutex::new(world));
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let app = Router::new()
            .fallback(handle)
            .with_state((world.clone(), addr));
        let server = tokio::spawn(async move {
            // Ends only when the handle is dropped (the task is aborted).
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self {
            addr,
            world,
            server,
        })
    }

    /// The origin to give a client: `http://127.0.0.1:port`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn world(&self) -> MutexGuard<'_, World> {
        lock(&self.world)
    }

    /// Injects `fault` into the next `times` requests matching `method` (any if `None`)
    /// and whose path starts with `path_prefix`.
    pub fn inject(&self, method: Option<Method>, path_prefix: &str, fault: Fault, times: u32) {
        self.world()
            .scripted
            .push((method, path_prefix.to_owned(), fault, times));
    }

    /// Random faults from now on: `per_mille` of requests.
    pub fn set_fault_rate(&self, per_mille: u32) {
        self.world().config.fault_per_mille = per_mille;
    }

    /// Faults injected so far.
    pub fn faults_injected(&self) -> u64 {
        self.world().faults
    }

    /// Requests served so far.
    pub fn request_count(&self) -> u64 {
        self.world().requests
    }

    /// Requests refused for a missing or wrong token.
    pub fn bad_auth_count(&self) -> u64 {
        self.world().bad_auth
    }

    // ----- participants ----------------------------------------------------------------------

    /// A participant takes a place in a study: a new ACTIVE submission, its id.
    pub fn start_submission(
        &self,
        study: &str,
        participant: &str,
    ) -> Result<String, ParticipantError> {
        let mut w = self.world();
        let Some(s) = w.studies.get(study) else {
            return Err(ParticipantError::NotFound(study.into()));
        };
        if s.status != "ACTIVE" {
            return Err(ParticipantError::NotRecruiting(s.status.clone()));
        }
        let blocked = s.body["filters"].as_array().into_iter().flatten().any(|f| {
            f["filter_id"] == crate::BLOCKLIST_FILTER
                && f["selected_values"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|g| {
                        g.as_str()
                            .and_then(|g| w.groups.get(g))
                            .is_some_and(|m| m.contains(participant))
                    })
        });
        let again = w
            .submissions
            .values()
            .any(|x| x.study == study && x.participant == participant);
        if blocked || again {
            return Err(ParticipantError::NotEligible);
        }
        if w.taken(study) >= s.places {
            return Err(ParticipantError::Full);
        }
        let id = w.id("5");
        let started_at = w.time();
        w.submissions.insert(
            id.clone(),
            FakeSubmission {
                study: study.into(),
                participant: participant.into(),
                status: "ACTIVE".into(),
                started_at,
                completed_at: None,
                code: None,
                bonuses: Vec::new(),
                reviews: 0,
            },
        );
        Ok(id)
    }

    fn move_active(&self, id: &str, to: &str, code: Option<&str>) -> Result<(), ParticipantError> {
        let mut w = self.world();
        let at = w.time();
        let Some(s) = w.submissions.get_mut(id) else {
            return Err(ParticipantError::NotFound(id.into()));
        };
        if s.status != "ACTIVE" {
            return Err(ParticipantError::NotActive(s.status.clone()));
        }
        s.status = to.into();
        if to == "AWAITING REVIEW" {
            s.completed_at = Some(at);
            s.code = code.map(str::to_owned);
        }
        Ok(())
    }

    /// The participant finishes with a completion code (the redirect): AWAITING REVIEW.
    pub fn complete(&self, submission: &str, code: &str) -> Result<(), ParticipantError> {
        self.move_active(submission, "AWAITING REVIEW", Some(code))
    }

    /// The participant returns the submission: the place is free again.
    pub fn return_submission(&self, submission: &str) -> Result<(), ParticipantError> {
        self.move_active(submission, "RETURNED", None)
    }

    /// The maximum time passes: TIMED-OUT, the place is free again.
    pub fn time_out(&self, submission: &str) -> Result<(), ParticipantError> {
        self.move_active(submission, "TIMED-OUT", None)
    }

    // ----- what happened ---------------------------------------------------------------------

    /// Every study id, oldest first.
    pub fn study_ids(&self) -> Vec<String> {
        self.world().studies.keys().cloned().collect()
    }

    /// A study as the API shows it.
    pub fn study(&self, id: &str) -> Option<Value> {
        let w = self.world();
        w.studies.contains_key(id).then(|| w.study_json(id))
    }

    /// How many studies were created with an `internal_name` starting with `prefix`.
    pub fn studies_created(&self, prefix: &str) -> u32 {
        self.world()
            .created_names
            .iter()
            .filter(|(name, _)| name.starts_with(prefix))
            .map(|(_, n)| n)
            .sum()
    }

    /// A submission's status.
    pub fn submission_status(&self, id: &str) -> Option<String> {
        self.world().submissions.get(id).map(|s| s.status.clone())
    }

    /// Bonuses paid on a submission, in minor units.
    pub fn bonuses_paid(&self, submission: &str) -> Vec<i64> {
        self.world()
            .submissions
            .get(submission)
            .map(|s| s.bonuses.clone())
            .unwrap_or_default()
    }

    /// Bulk bonuses paid more than once.
    pub fn repeated_pays(&self) -> u32 {
        self.world()
            .bulks
            .values()
            .map(|b| b.pays.saturating_sub(1))
            .sum()
    }

    /// Bulk bonuses set up.
    pub fn bulk_bonuses(&self) -> usize {
        self.world().bulks.len()
    }

    /// Reviews (approve or reject) asked of a submission reviewed already.
    pub fn review_repeats(&self) -> u64 {
        self.world().review_repeats
    }

    /// Messages sent.
    pub fn messages(&self) -> Vec<Value> {
        self.world().messages.clone()
    }

    /// The members of a participant group.
    pub fn group_members(&self, group: &str) -> Vec<String> {
        self.world()
            .groups
            .get(group)
            .map(|m| m.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// The workspace's available balance in minor units.
    pub fn balance(&self) -> i64 {
        self.world().balance
    }

    /// The subscriptions and whether each is confirmed.
    pub fn subscriptions(&self) -> Vec<Value> {
        self.world()
            .subscriptions
            .values()
            .map(|(v, _)| v.clone())
            .collect()
    }
}

async fn handle(
    State((world, addr)): State<(Shared, SocketAddr)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_owned();
    let query: BTreeMap<String, String> = uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (k.to_owned(), v.to_owned()),
            None => (p.to_owned(), String::new()),
        })
        .collect();
    let body: Value = if body.is_empty() {
        Value::Null
    } else {
        match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(e) => return bad_request(format!("JSON parse error - {e}")),
        }
    };
    let (fault, slow_ms) = {
        let mut w = lock(&world);
        w.requests += 1;
        let want = format!("Token {}", w.config.token);
        if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(want.as_str()) {
            w.bad_auth += 1;
            return error(
                StatusCode::UNAUTHORIZED,
                140100,
                "Unauthorized",
                json!("Invalid token."),
            );
        }
        let f = w.draw(&method, &path);
        if f.is_some() {
            w.faults += 1;
        }
        (f, w.config.slow_ms)
    };
    match fault {
        Some(Fault::Throttle) => {
            let mut r = error(
                StatusCode::TOO_MANY_REQUESTS,
                142900,
                "Too many requests",
                json!("Request was throttled. Expected available in 0 seconds."),
            );
            r.headers_mut()
                .insert("retry-after", axum::http::HeaderValue::from_static("0"));
            return r;
        }
        Some(Fault::Unavailable) => {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                150300,
                "Service unavailable",
                json!("try again"),
            );
        }
        _ => {}
    }
    let response = {
        let mut w = lock(&world);
        route(&mut w, addr, &method, &path, &query, body)
    };
    match fault {
        Some(Fault::LostAnswer) => error(
            StatusCode::BAD_GATEWAY,
            150200,
            "Bad gateway",
            json!("the answer was lost"),
        ),
        Some(Fault::SlowAnswer) => {
            tokio::time::sleep(Duration::from_millis(slow_ms)).await;
            response
        }
        _ => response,
    }
}

fn page(
    addr: SocketAddr,
    path: &str,
    query: &BTreeMap<String, String>,
    default_size: usize,
    items: Vec<Value>,
) -> Response {
    let size = query
        .get("page_size")
        .and_then(|s| s.parse::<usize>().ok())
        .unwrap_or(default_size)
        .clamp(1, 200);
    let number = query
        .get("page")
        .and_then(|s| s.parse::<usize>().ok())
        .unwrap_or(1)
        .max(1);
    let count = items.len();
    let results: Vec<Value> = items
        .into_iter()
        .skip((number - 1) * size)
        .take(size)
        .collect();
    let link = |n: usize| {
        let mut q: Vec<String> = query
            .iter()
            .filter(|(k, _)| k.as_str() != "page")
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        q.push(format!("page={n}"));
        format!("http://{addr}{path}?{}", q.join("&"))
    };
    let next = (number * size < count).then(|| link(number + 1));
    let previous = (number > 1).then(|| link(number - 1));
    ok(
        StatusCode::OK,
        json!({
            "results": results,
            "_links": {
                "self": { "href": link(number), "title": "Current" },
                "next": { "href": next, "title": "Next" },
                "previous": { "href": previous, "title": "Previous" },
                "last": { "href": link(count.div_ceil(size).max(1)), "title": "Last" },
            },
            "meta": { "count": count },
        }),
    )
}

fn route(
    w: &mut World,
    addr: SocketAddr,
    method: &Method,
    path: &str,
    query: &BTreeMap<String, String>,
    body: Value,
) -> Response {
    let parts: Vec<&str> = path
        .trim_start_matches("/api/v1/")
        .trim_end_matches('/')
        .split('/')
        .collect();
    if !path.starts_with("/api/v1/") {
        return not_found("path");
    }
    let size = w.config.page_size;
    match (method.as_str(), parts.as_slice()) {
        ("POST", ["studies"]) => create_study(w, body),
        ("GET", ["studies", id]) => match w.studies.contains_key(*id) {
            true => ok(StatusCode::OK, w.study_json(id)),
            false => not_found("Study"),
        },
        ("PATCH", ["studies", id]) => patch_study(w, id, body),
        ("DELETE", ["studies", id]) => match w.studies.get(*id) {
            None => not_found("Study"),
            Some(s) if s.status != "UNPUBLISHED" => {
                bad_request("Only unpublished studies can be deleted.")
            }
            Some(_) => {
                w.studies.remove(*id);
                StatusCode::NO_CONTENT.into_response()
            }
        },
        ("POST", ["studies", id, "transition"]) => transition_study(w, id, body),
        ("GET", ["projects", project, "studies"]) => {
            let ids: Vec<String> = w
                .studies
                .iter()
                .filter(|(_, s)| s.body["project"] == *project)
                .map(|(id, _)| id.clone())
                .collect();
            let items = ids.iter().map(|id| w.study_json(id)).collect();
            page(addr, path, query, size, items)
        }
        ("GET", ["submissions"]) => {
            let Some(study) = query.get("study") else {
                return bad_request(json!({ "study": ["This field is required."] }));
            };
            let ids: Vec<String> = w
                .submissions
                .iter()
                .filter(|(_, s)| &s.study == study)
                .map(|(id, _)| id.clone())
                .collect();
            let items = ids.iter().map(|id| w.submission_json(id, true)).collect();
            page(addr, path, query, size, items)
        }
        ("POST", ["submissions", "bulk-approve"]) => {
            let ids: Vec<String> = body["submission_ids"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect();
            for id in &ids {
                let Some(s) = w.submissions.get(id) else {
                    return bad_request(format!("submission {id} not found"));
                };
                if s.status != "AWAITING REVIEW" && s.status != "APPROVED" {
                    return bad_request(format!("submission {id} is {}", s.status));
                }
            }
            for id in ids {
                review(w, &id, "APPROVED");
            }
            ok(StatusCode::OK, json!({}))
        }
        ("POST", ["submissions", "bonus-payments"]) => create_bulk(w, body),
        ("GET", ["submissions", id]) => match w.submissions.contains_key(*id) {
            true => ok(StatusCode::OK, w.submission_json(id, false)),
            false => not_found("Submission"),
        },
        ("POST", ["submissions", id, "transition"]) => transition_submission(w, id, body),
        ("POST", ["bulk-bonus-payments", id, "pay"]) => {
            let Some(b) = w.bulks.get_mut(*id) else {
                return not_found("Bulk bonus payment");
            };
            b.pays += 1;
            let lines = b.lines.clone();
            for (sub, cents) in lines {
                w.balance -= cents;
                if let Some(s) = w.submissions.get_mut(&sub) {
                    s.bonuses.push(cents);
                }
            }
            ok(StatusCode::ACCEPTED, json!({}))
        }
        ("POST", ["messages"]) => {
            if body["recipient_id"].as_str().is_none() || body["body"].as_str().is_none() {
                return bad_request(json!({ "recipient_id": ["This field is required."] }));
            }
            w.messages.push(body);
            ok(StatusCode::OK, json!({}))
        }
        ("POST", ["messages", "bulk"]) => {
            if !body["ids"].is_array() || body["body"].as_str().is_none() {
                return bad_request(json!({ "ids": ["This field is required."] }));
            }
            w.messages.push(body);
            ok(StatusCode::OK, json!({}))
        }
        ("POST", ["participant-groups"]) => {
            let id = w.id("6");
            w.groups.insert(id.clone(), BTreeSet::new());
            ok(
                StatusCode::CREATED,
                json!({ "id": id, "name": body["name"], "workspace_id": body["workspace_id"] }),
            )
        }
        ("POST", ["participant-groups", id, "participants"]) => {
            let Some(g) = w.groups.get_mut(*id) else {
                return not_found("Participant group");
            };
            for p in body["participant_ids"].as_array().into_iter().flatten() {
                if let Some(p) = p.as_str() {
                    g.insert(p.to_owned());
                }
            }
            ok(StatusCode::OK, json!({ "results": [] }))
        }
        ("GET", ["workspaces", _, "balance"]) => ok(
            StatusCode::OK,
            json!({
                "currency_code": w.config.currency,
                "total_balance": w.balance,
                "balance_breakdown": { "rewards": w.balance, "fees": 0, "vat": 0 },
                "available_balance": w.balance,
                "available_balance_breakdown": { "rewards": w.balance, "fees": 0, "vat": 0 },
            }),
        ),
        ("POST", ["hooks", "secrets"]) => {
            let id = w.id("7");
            ok(
                StatusCode::OK,
                json!({ "id": id, "value": format!("secret-{id}"), "workspace_id": body["workspace_id"] }),
            )
        }
        ("POST", ["hooks", "subscriptions"]) => {
            let id = w.id("8");
            let secret = format!("hook-{id}");
            let sub = json!({
                "id": id, "event_type": body["event_type"], "target_url": body["target_url"],
                "workspace_id": body["workspace_id"], "is_enabled": false,
            });
            w.subscriptions.insert(id, (sub.clone(), secret.clone()));
            let mut r = ok(StatusCode::CREATED, json!({ "results": [sub] }));
            if let Ok(v) = axum::http::HeaderValue::from_str(&secret) {
                r.headers_mut().insert("x-hook-secret", v);
            }
            r
        }
        ("POST", ["hooks", "subscriptions", id]) => {
            let Some((sub, secret)) = w.subscriptions.get_mut(*id) else {
                return not_found("Subscription");
            };
            if body["secret"].as_str() != Some(secret.as_str()) {
                return bad_request("The secret does not match.");
            }
            sub["is_enabled"] = json!(true);
            ok(StatusCode::OK, sub.clone())
        }
        _ => not_found("path"),
    }
}

fn create_study(w: &mut World, body: Value) -> Response {
    let mut invalid = serde_json::Map::new();
    for field in [
        "name",
        "description",
        "external_study_url",
        "project",
        "internal_name",
    ] {
        if body[field].as_str().is_none_or(str::is_empty) {
            invalid.insert(field.into(), json!(["This field is required."]));
        }
    }
    for field in [
        "total_available_places",
        "reward",
        "estimated_completion_time",
    ] {
        if body[field].as_i64().is_none_or(|n| n < 1) {
            invalid.insert(
                field.into(),
                json!(["Ensure this value is greater than or equal to 1."]),
            );
        }
    }
    if body["completion_codes"]
        .as_array()
        .is_none_or(Vec::is_empty)
    {
        invalid.insert(
            "completion_codes".into(),
            json!(["At least one completion code is required."]),
        );
    }
    if !invalid.is_empty() {
        return bad_request(Value::Object(invalid));
    }
    let id = w.id("4");
    let name = body["internal_name"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    *w.created_names.entry(name).or_insert(0) += 1;
    let places = body["total_available_places"].as_u64().unwrap_or(0) as u32;
    w.studies.insert(
        id.clone(),
        FakeStudy {
            body,
            status: "UNPUBLISHED".into(),
            places,
        },
    );
    ok(StatusCode::CREATED, w.study_json(&id))
}

fn patch_study(w: &mut World, id: &str, body: Value) -> Response {
    let Some(s) = w.studies.get(id) else {
        return not_found("Study");
    };
    if let Some(n) = body.get("total_available_places") {
        let Some(n) = n.as_u64().map(|n| n as u32) else {
            return bad_request(
                json!({ "total_available_places": ["A valid integer is required."] }),
            );
        };
        let published = s.status != "UNPUBLISHED";
        if published && n < s.places {
            return bad_request(json!({ "total_available_places": [
                "You can only increase the number of places of a published study."
            ]}));
        }
        let cost = i64::from(n.saturating_sub(s.places)) * s.body["reward"].as_i64().unwrap_or(0);
        if published && cost > w.balance {
            return bad_request("Insufficient balance to increase the places.");
        }
        if published {
            w.balance -= cost;
        }
        w.studies.get_mut(id).expect("checked").places = n;
    }
    ok(StatusCode::OK, w.study_json(id))
}

fn transition_study(w: &mut World, id: &str, body: Value) -> Response {
    let Some(s) = w.studies.get(id) else {
        return not_found("Study");
    };
    let action = body["action"].as_str().unwrap_or_default();
    let next = match (action, s.status.as_str()) {
        ("PUBLISH", "UNPUBLISHED") => {
            let cost = i64::from(s.places) * s.body["reward"].as_i64().unwrap_or(0);
            if cost > w.balance {
                return bad_request("Insufficient balance to publish the study.");
            }
            w.balance -= cost;
            "ACTIVE"
        }
        ("PUBLISH", "ACTIVE") | ("START", "ACTIVE") => "ACTIVE",
        ("PAUSE", "ACTIVE" | "PAUSED") => "PAUSED",
        ("START", "PAUSED") => "ACTIVE",
        ("STOP", "ACTIVE" | "PAUSED" | "AWAITING REVIEW" | "COMPLETED") => "COMPLETED",
        (a, st) => {
            return bad_request(format!("The transition {a} is not allowed from {st}."));
        }
    };
    w.studies.get_mut(id).expect("checked").status = next.into();
    ok(StatusCode::OK, w.study_json(id))
}

fn review(w: &mut World, id: &str, to: &str) {
    if let Some(s) = w.submissions.get_mut(id) {
        s.reviews += 1;
        if s.reviews > 1 {
            w.review_repeats += 1;
        }
        s.status = to.into();
    }
}

fn transition_submission(w: &mut World, id: &str, body: Value) -> Response {
    let Some(s) = w.submissions.get(id) else {
        return not_found("Submission");
    };
    let action = body["action"].as_str().unwrap_or_default();
    let to = match action {
        "APPROVE" => "APPROVED",
        "REJECT" => {
            let message = body["message"].as_str().unwrap_or_default();
            if message.chars().count() < 100 {
                return bad_request(
                    json!({ "message": ["Ensure this field has at least 100 characters."] }),
                );
            }
            const CATEGORIES: &[&str] = &[
                "TOO_QUICKLY",
                "TOO_SLOWLY",
                "FAILED_INSTRUCTIONS",
                "INCOMP_LONGIT",
                "FAILED_CHECK",
                "LOW_EFFORT",
                "MALINGERING",
                "NO_CODE",
                "BAD_CODE",
                "NO_DATA",
                "UNSUPP_DEVICE",
                "OTHER",
            ];
            if !body["rejection_category"]
                .as_str()
                .is_some_and(|c| CATEGORIES.contains(&c))
            {
                return bad_request(
                    json!({ "rejection_category": ["A valid choice is required."] }),
                );
            }
            "REJECTED"
        }
        other => return bad_request(format!("\"{other}\" is not a valid choice.")),
    };
    if s.status == to {
        // Prolific ignores a repeated transition; the fake counts it.
        w.review_repeats += 1;
        return ok(StatusCode::OK, w.submission_json(id, false));
    }
    if s.status != "AWAITING REVIEW" {
        return bad_request(format!(
            "Submission can only be transitioned from AWAITING REVIEW, it is {}.",
            s.status
        ));
    }
    review(w, id, to);
    ok(StatusCode::OK, w.submission_json(id, false))
}

fn create_bulk(w: &mut World, body: Value) -> Response {
    let Some(study) = body["study_id"].as_str().map(str::to_owned) else {
        return bad_request(json!({ "study_id": ["This field is required."] }));
    };
    if !w.studies.contains_key(&study) {
        return bad_request(json!({ "study_id": ["Study not found."] }));
    }
    let csv = body["csv_bonuses"].as_str().unwrap_or_default();
    let mut lines = Vec::new();
    let mut wrong = Vec::new();
    for line in csv.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let Some((who, amount)) = line.split_once(',') else {
            return bad_request(format!("Invalid line: {line}"));
        };
        let Some(cents) = parse_major(amount.trim()) else {
            return bad_request(format!("Invalid amount: {amount}"));
        };
        let who = who.trim();
        let sub = w
            .submissions
            .iter()
            .find(|(id, s)| s.study == study && (id.as_str() == who || s.participant == who));
        match sub {
            Some((id, _)) => lines.push((id.clone(), cents)),
            None => wrong.push(who.to_owned()),
        }
    }
    if !wrong.is_empty() {
        return bad_request(format!(
            "The following IDs did not take part in the study: {}",
            wrong.join(", ")
        ));
    }
    if lines.is_empty() {
        return bad_request(json!({ "csv_bonuses": ["This field is required."] }));
    }
    let id = w.id("9");
    let amount: i64 = lines.iter().map(|(_, c)| c).sum();
    w.bulks.insert(
        id.clone(),
        FakeBulk {
            study: study.clone(),
            lines,
            pays: 0,
        },
    );
    let _ = &w.bulks[&id].study;
    ok(
        StatusCode::CREATED,
        json!({
            "id": id, "study": study, "amount": amount as f64, "fees": 0.0, "vat": 0.0,
            "total_amount": amount as f64, "csv_bonuses": csv,
        }),
    )
}

/// `4.25` → 425 minor units.
fn parse_major(text: &str) -> Option<i64> {
    let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
    if frac.len() > 2 || whole.is_empty() {
        return None;
    }
    let whole: i64 = whole.parse().ok()?;
    let frac: i64 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<2}").parse().ok()?
    };
    (whole >= 0).then_some(whole * 100 + frac)
}
