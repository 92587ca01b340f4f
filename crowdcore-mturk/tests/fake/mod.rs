//! A fake Amazon Mechanical Turk requester API for tests: an axum app speaking AWS JSON 1.1
//! (`POST /`, `X-Amz-Target: MTurkRequesterServiceV20170117.<Op>`, `Content-Type:
//! application/x-amz-json-1.1`, a SigV4 `Authorization` it verifies with the test secret for
//! `us-east-1/mturk-requester`), keeping HITs, assignments, bonuses and money in memory.
//!
//! It behaves as MTurk does where crowdcore depends on it: `UniqueRequestToken`s are remembered
//! per operation for [`TOKEN_WINDOW_MS`] (24 hours on the fake's clock) from their first use,
//! and a reuse within that window gets MTurk's duplicate error
//! (`AWS.MechanicalTurk.HitAlreadyExists` for HITs, `AWS.MechanicalTurk.DuplicateRequest`
//! otherwise) without doing anything; after it the token is forgotten and the call is carried
//! out again; `ListBonusPayments` lists what was paid; lists are
//! paged with `NextToken`; only submitted, approved and rejected assignments are listed;
//! approving needs a submitted assignment; a HIT made with fewer than 10 assignments never
//! reaches 10; posting escrows rewards plus MTurk's fee.
//!
//! Workers act through [`FakeMturk::accept`], [`FakeMturk::submit`] and
//! [`FakeMturk::return_assignment`] (the worker's side, as a test helper). A seeded fault plan
//! ([`FakeMturk::set_faults`]) throttles, fails with 5xx, or carries a call out and then answers
//! too late, at a given rate.
//!
//! It is also a fake SQS on the same port (AWS JSON 1.0, `X-Amz-Target: AmazonSQS.<Op>`,
//! signed for `sqs`), holding one queue ([`FakeMturk::queue_url`]). A HIT type set with
//! `UpdateNotificationSettings` (SQS, version `2014-08-15`) writes MTurk's notification
//! documents into it when its assignments are submitted, returned, abandoned, approved or
//! rejected and when its HITs expire. A HIT type set to notify an SNS topic (transport SNS, an
//! `arn:aws:sns:` destination) has its messages delivered to the same queue as SNS envelopes of
//! that topic (as a subscribed queue gets them), signed by the signer a test installs
//! ([`FakeMturk::set_sns_signer`]; the fake knows no key) or unsigned without one. Events wait until the next `ReceiveMessage` and go out
//! several to a message (up to [`World::batch_size`]); a received message is hidden for its
//! visibility timeout on the fake's clock and delivered again if not deleted by then. SQS faults
//! ([`FakeMturk::set_sqs_faults`]): throttling, 5xx, and a message whose visibility runs out at
//! once (delivered twice).

#![allow(dead_code, unreachable_pub)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

use crowdcore::clock::Clock;

/// The access key tests sign with.
pub const ACCESS_KEY: &str = "AKIDFAKEMTURKTEST";
/// Its secret.
pub const SECRET_KEY: &str = "fake-secret-not-a-real-key";
/// The target prefix of every operation.
pub const TARGET_PREFIX: &str = "MTurkRequesterServiceV20170117.";
/// The target prefix of every SQS operation.
pub const SQS_PREFIX: &str = "AmazonSQS.";
/// The queue's path under the fake's URL.
pub const QUEUE_PATH: &str = "/123456789012/mturk-events";
/// How long MTurk remembers a `UniqueRequestToken` after its first use.
pub const TOKEN_WINDOW_MS: u64 = 24 * 3_600_000;
/// SQS's default visibility timeout, in seconds.
pub const DEFAULT_VISIBILITY_S: u64 = 30;

/// How a faulty SQS call fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SqsFault {
    /// `RequestThrottled` "Rate exceeded"; nothing done.
    Throttle,
    /// HTTP 500 `InternalError`; nothing done.
    ServerError,
    /// A `ReceiveMessage` whose messages become visible again at once (their visibility timeout
    /// ran out): they are delivered twice.
    Redeliver,
}

/// A message in the fake queue.
#[derive(Debug, Clone)]
pub struct QueueMessage {
    pub id: String,
    pub body: String,
    /// The events it carries.
    pub events: usize,
    /// Hidden until then (ms on the fake's clock).
    pub visible_at_ms: u64,
    /// Every receipt handle it was delivered with.
    pub receipts: Vec<String>,
    pub deleted: bool,
}

/// How a faulty call fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fault {
    /// `ThrottlingException` "Rate exceeded"; nothing done.
    Throttle,
    /// HTTP 500 `ServiceFault` or a bare 503; nothing done.
    ServerError,
    /// Carried out, then answered after the client gave up.
    LateAnswer,
}

/// Faults injected so far, by kind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FaultCounts {
    /// Calls answered (or not) so far.
    pub calls: u64,
    /// Throttled.
    pub throttled: u64,
    /// 5xx.
    pub server_errors: u64,
    /// Carried out but answered too late.
    pub late: u64,
}

impl FaultCounts {
    /// All injected faults.
    pub fn total(&self) -> u64 {
        self.throttled + self.server_errors + self.late
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Accepted,
    Submitted,
    Approved,
    Rejected,
    Returned,
    Abandoned,
}

impl Status {
    fn listed(self) -> Option<&'static str> {
        match self {
            Status::Submitted => Some("Submitted"),
            Status::Approved => Some("Approved"),
            Status::Rejected => Some("Rejected"),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct FakeHit {
    pub id: String,
    pub type_id: String,
    pub max_assignments: u32,
    pub created_ms: u64,
    pub expires_ms: u64,
    pub annotation: Option<String>,
    pub question: String,
    pub workers: HashSet<String>,
    /// Assignments accepted, submitted, approved or rejected (not returned or abandoned).
    pub taken: u32,
}

#[derive(Debug, Clone)]
pub struct FakeAssignment {
    pub id: String,
    pub hit: String,
    pub worker: String,
    pub status: Status,
    pub accept_ms: u64,
    pub deadline_ms: u64,
    pub submit_ms: Option<u64>,
    pub approval_ms: Option<u64>,
    pub rejection_ms: Option<u64>,
    pub answer: Option<String>,
    pub feedback: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Bonus {
    pub worker: String,
    pub assignment: String,
    pub cents: i64,
    pub token: Option<String>,
    pub reason: String,
    pub granted_ms: u64,
}

/// SQS faults injected so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SqsFaultCounts {
    pub calls: u64,
    pub throttled: u64,
    pub server_errors: u64,
    pub redelivered: u64,
}

struct SqsFaults {
    rng: ChaCha8Rng,
    rate: f64,
    counts: SqsFaultCounts,
}

struct Faults {
    rng: ChaCha8Rng,
    rate: f64,
    late_ms: u64,
    counts: FaultCounts,
}

#[derive(Default)]
pub struct World {
    pub balance_cents: i64,
    pub hit_types: Vec<(String, Value)>,
    pub hits: BTreeMap<String, FakeHit>,
    pub assignments: BTreeMap<String, FakeAssignment>,
    /// Token uses per (operation, token); the first result.
    pub tokens: HashMap<(String, String), (u32, Value)>,
    /// When each (operation, token) was first used (since it was last forgotten).
    pub token_first_ms: HashMap<(String, String), u64>,
    pub bonuses: Vec<Bonus>,
    pub blocks: HashMap<String, String>,
    pub qualifications: HashMap<(String, String), i64>,
    pub qualification_types: Vec<String>,
    pub messages: Vec<(String, String, String)>,
    /// Workers NotifyWorkers soft-fails for, and how many more times.
    pub soft_fail: HashMap<String, u32>,
    /// Every request: operation and body.
    pub requests: Vec<(String, Value)>,
    /// Forced errors for the next calls of an operation: (operation, status, body).
    pub scripted: Vec<(String, u16, Value)>,
    /// The most items one list page holds, whatever MaxResults says.
    pub page_cap: usize,
    /// Earnings per worker (approved rewards and bonuses).
    pub earnings: HashMap<String, i64>,
    /// Notification settings per HIT type (`UpdateNotificationSettings` bodies).
    pub notifications: HashMap<String, Value>,
    /// Events not yet in a message.
    pub pending_events: Vec<Value>,
    /// Every event ever written, in order (the MTurk side's record).
    pub emitted: Vec<Value>,
    /// The queue, oldest first (deleted messages stay, marked).
    pub queue: Vec<QueueMessage>,
    /// The most events one message carries.
    pub batch_size: usize,
    /// Signs the SNS envelopes of HIT types notifying a topic.
    pub sns_signer: Option<SnsSigner>,
    next_id: u64,
    /// Message ids and receipt serials (apart from HIT and assignment ids, so that a session
    /// with notifications gets the same ids as one without).
    next_message: u64,
}

/// Signs an SNS envelope in place (sets `SignatureVersion`, `Signature`, `SigningCertURL`).
pub type SnsSigner = Arc<dyn Fn(&mut Value) + Send + Sync>;

/// The fake, running on a local port.
#[derive(Clone)]
pub struct FakeMturk {
    world: Arc<Mutex<World>>,
    faults: Arc<Mutex<Option<Faults>>>,
    sqs_faults: Arc<Mutex<Option<SqsFaults>>>,
    clock: Arc<dyn Clock>,
    /// Where it listens.
    pub addr: SocketAddr,
}

fn secs(ms: u64) -> f64 {
    ms as f64 / 1000.0
}

/// `2026-01-01T00:00:10Z` (with milliseconds when there are any), as MTurk's events carry it.
fn iso8601(ms: u64) -> String {
    // Days to a civil date (Howard Hinnant's algorithm); no date crate in the fake, which
    // the examples' tests include too.
    let (days, rest) = ((ms / 86_400_000) as i64, ms % 86_400_000);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let (h, m, sec, milli) = (
        rest / 3_600_000,
        rest / 60_000 % 60,
        rest / 1_000 % 60,
        rest % 1_000,
    );
    if milli == 0 {
        format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{sec:02}Z")
    } else {
        format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{sec:02}.{milli:03}Z")
    }
}

fn request_error(code: &str, message: &str) -> (u16, Value) {
    (
        400,
        json!({"__type": "RequestError", "Message": message, "TurkErrorCode": code}),
    )
}

type Answer = Result<Value, (u16, Value)>;

/// The worker side's `externalSubmit`: a page posts its form (urlencoded, `assignmentId` and
/// answer fields) and MTurk takes the submission; posting it again changes nothing.
async fn external_submit(
    axum::extract::State(fake): axum::extract::State<FakeMturk>,
    body: String,
) -> (StatusCode, String) {
    // The fake's ids need no percent-decoding; the fake is also built without a URL crate
    // (the examples' tests include it).
    let id = body
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == "assignmentId")
        .map(|(_, v)| v.to_owned());
    let Some(id) = id else {
        return (StatusCode::BAD_REQUEST, "no assignmentId".into());
    };
    let submitted = matches!(
        fake.assignment(&id).map(|a| a.status),
        Some(Status::Submitted | Status::Approved)
    );
    if submitted {
        return (StatusCode::OK, "already submitted".into());
    }
    match fake.submit(&id, &body) {
        Ok(()) => (StatusCode::OK, "submitted".into()),
        Err(e) => (StatusCode::BAD_REQUEST, e),
    }
}

impl FakeMturk {
    /// Starts the fake on a free local port with `balance_cents` to spend, on `clock`.
    pub async fn start(clock: Arc<dyn Clock>, balance_cents: i64) -> Self {
        let world = World {
            balance_cents,
            page_cap: 100,
            batch_size: 3,
            ..World::default()
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a local port");
        let addr = listener.local_addr().expect("local address");
        let fake = Self {
            world: Arc::new(Mutex::new(world)),
            faults: Arc::new(Mutex::new(None)),
            sqs_faults: Arc::new(Mutex::new(None)),
            clock,
            addr,
        };
        let app = Router::new()
            .route("/", post(handle))
            .route("/mturk/externalSubmit", post(external_submit))
            .with_state(fake.clone());
        tokio::spawn(async move {
            axum::serve(listener, app).await.expect("the fake serves");
        });
        fake
    }

    /// The endpoint URL to give the SDK.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn world(&self) -> MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Injects faults into `rate` of the calls from now on, drawn from `seed`; a late answer
    /// comes after `late_ms`.
    pub fn set_faults(&self, seed: u64, rate: f64, late_ms: u64) {
        *self.faults.lock().unwrap() = Some(Faults {
            rng: ChaCha8Rng::seed_from_u64(seed),
            rate,
            late_ms,
            counts: FaultCounts::default(),
        });
    }

    /// The queue's URL (give it to `NotificationSettings` with [`url`](Self::url) as the
    /// endpoint).
    pub fn queue_url(&self) -> String {
        format!("{}{QUEUE_PATH}", self.url())
    }

    /// Injects SQS faults into `rate` of the SQS calls from now on, drawn from `seed`.
    pub fn set_sqs_faults(&self, seed: u64, rate: f64) {
        *self.sqs_faults.lock().unwrap() = Some(SqsFaults {
            rng: ChaCha8Rng::seed_from_u64(seed),
            rate,
            counts: SqsFaultCounts::default(),
        });
    }

    /// SQS faults injected so far.
    pub fn sqs_fault_counts(&self) -> SqsFaultCounts {
        self.sqs_faults
            .lock()
            .unwrap()
            .as_ref()
            .map(|f| f.counts.clone())
            .unwrap_or_default()
    }

    /// Messages not deleted yet (visible or hidden), and events not yet in a message.
    pub fn undelivered(&self) -> (usize, usize) {
        let w = self.world();
        (
            w.queue.iter().filter(|m| !m.deleted).count(),
            w.pending_events.len(),
        )
    }

    /// Every event written so far.
    pub fn emitted(&self) -> Vec<Value> {
        self.world().emitted.clone()
    }

    /// Signs the SNS envelopes written from now on with `signer`.
    pub fn set_sns_signer(&self, signer: SnsSigner) {
        self.world().sns_signer = Some(signer);
    }

    /// Moves the pending events into messages now.
    pub fn flush_events(&self) {
        let now = self.clock.now().as_millis();
        self.world().flush_events(now);
    }

    /// Abandons the assignments whose duration ran out (as a worker's next look would).
    pub fn abandon_overdue(&self) {
        let now = self.clock.now().as_millis();
        self.world().abandon_overdue(now);
    }

    /// No more faults.
    pub fn clear_faults(&self) {
        *self.faults.lock().unwrap() = None;
    }

    /// No more faults, but keep the counts of those injected.
    pub fn clear_faults_keep_counts(&self) {
        if let Some(f) = self.faults.lock().unwrap().as_mut() {
            f.rate = 0.0;
        }
    }

    /// Faults injected so far.
    pub fn fault_counts(&self) -> FaultCounts {
        self.faults
            .lock()
            .unwrap()
            .as_ref()
            .map(|f| f.counts.clone())
            .unwrap_or_default()
    }

    /// Makes the next call of `op` fail with `status` and `body`.
    pub fn script(&self, op: &str, status: u16, body: Value) {
        self.world().scripted.push((op.to_owned(), status, body));
    }

    /// Makes the next call of `op` succeed at the fake but answer after `ms` (a lost answer).
    pub fn answer_late(&self, op: &str, ms: u64) {
        self.world().scripted.push((op.to_owned(), 0, json!(ms)));
    }

    /// Request bodies of `op`, oldest first.
    pub fn requests(&self, op: &str) -> Vec<Value> {
        self.world()
            .requests
            .iter()
            .filter(|(o, _)| o == op)
            .map(|(_, b)| b.clone())
            .collect()
    }

    /// Operations called, in order.
    pub fn operations(&self) -> Vec<String> {
        self.world()
            .requests
            .iter()
            .map(|(o, _)| o.clone())
            .collect()
    }

    /// How many times a token was presented to `op`.
    pub fn token_uses(&self, op: &str, token: &str) -> u32 {
        self.world()
            .tokens
            .get(&(op.to_owned(), token.to_owned()))
            .map_or(0, |(n, _)| *n)
    }

    pub fn hits(&self) -> Vec<FakeHit> {
        self.world().hits.values().cloned().collect()
    }

    pub fn bonuses(&self) -> Vec<Bonus> {
        self.world().bonuses.clone()
    }

    pub fn assignment(&self, id: &str) -> Option<FakeAssignment> {
        self.world().assignments.get(id).cloned()
    }

    pub fn earnings(&self, worker: &str) -> i64 {
        self.world().earnings.get(worker).copied().unwrap_or(0)
    }

    // ----- the worker's side -------------------------------------------------------------------

    /// HITs `worker` may accept now, oldest first.
    pub fn available(&self, worker: &str) -> Vec<String> {
        let now = self.clock.now().as_millis();
        let mut w = self.world();
        w.abandon_overdue(now);
        if w.blocks.contains_key(worker) {
            return Vec::new();
        }
        w.hits
            .values()
            .filter(|h| h.open(now) > 0 && !h.workers.contains(worker))
            .map(|h| h.id.clone())
            .collect()
    }

    /// `worker` accepts an assignment of `hit`.
    pub fn accept(&self, worker: &str, hit: &str) -> Result<String, String> {
        let now = self.clock.now().as_millis();
        let mut w = self.world();
        w.abandon_overdue(now);
        let duration_ms = {
            let h = w.hits.get(hit).ok_or("no such HIT")?;
            if h.open(now) == 0 {
                return Err("no open assignment".into());
            }
            if h.workers.contains(worker) {
                return Err("already taken".into());
            }
            let t = w
                .hit_types
                .iter()
                .find(|(id, _)| *id == h.type_id)
                .ok_or("type")?;
            t.1["AssignmentDurationInSeconds"].as_u64().unwrap_or(3600) * 1000
        };
        w.next_id += 1;
        let id = format!("A{:05}", w.next_id);
        let h = w.hits.get_mut(hit).expect("checked above");
        h.workers.insert(worker.to_owned());
        h.taken += 1;
        w.assignments.insert(
            id.clone(),
            FakeAssignment {
                id: id.clone(),
                hit: hit.to_owned(),
                worker: worker.to_owned(),
                status: Status::Accepted,
                accept_ms: now,
                deadline_ms: now + duration_ms,
                submit_ms: None,
                approval_ms: None,
                rejection_ms: None,
                answer: None,
                feedback: None,
            },
        );
        Ok(id)
    }

    /// The worker submits.
    pub fn submit(&self, assignment: &str, answer: &str) -> Result<(), String> {
        let now = self.clock.now().as_millis();
        let mut w = self.world();
        w.abandon_overdue(now);
        let a = w
            .assignments
            .get_mut(assignment)
            .ok_or("no such assignment")?;
        if a.status != Status::Accepted {
            return Err(format!("assignment is {:?}", a.status));
        }
        a.status = Status::Submitted;
        a.submit_ms = Some(now);
        a.answer = Some(answer.to_owned());
        let hit = a.hit.clone();
        w.emit("AssignmentSubmitted", &hit, Some(assignment), now);
        Ok(())
    }

    /// The worker returns the assignment; it is offered again.
    pub fn return_assignment(&self, assignment: &str) -> Result<(), String> {
        let now = self.clock.now().as_millis();
        let mut w = self.world();
        w.abandon_overdue(now);
        let a = w
            .assignments
            .get_mut(assignment)
            .ok_or("no such assignment")?;
        if a.status != Status::Accepted {
            return Err(format!("assignment is {:?}", a.status));
        }
        a.status = Status::Returned;
        let hit = a.hit.clone();
        if let Some(h) = w.hits.get_mut(&hit) {
            h.taken -= 1;
        }
        w.emit("AssignmentReturned", &hit, Some(assignment), now);
        Ok(())
    }
}

impl FakeHit {
    fn open(&self, now: u64) -> u32 {
        if now >= self.expires_ms {
            0
        } else {
            self.max_assignments - self.taken
        }
    }

    fn status(&self, now: u64, completed: u32) -> &'static str {
        if now < self.expires_ms && self.open(now) > 0 {
            "Assignable"
        } else if completed >= self.max_assignments || now >= self.expires_ms {
            "Reviewable"
        } else {
            "Unassignable"
        }
    }
}

impl World {
    fn abandon_overdue(&mut self, now: u64) {
        let overdue: Vec<String> = self
            .assignments
            .values()
            .filter(|a| a.status == Status::Accepted && a.deadline_ms <= now)
            .map(|a| a.id.clone())
            .collect();
        for id in overdue {
            let a = self.assignments.get_mut(&id).expect("listed above");
            a.status = Status::Abandoned;
            let (hit, at) = (a.hit.clone(), a.deadline_ms);
            if let Some(h) = self.hits.get_mut(&hit) {
                h.taken -= 1;
            }
            self.emit("AssignmentAbandoned", &hit, Some(&id), at);
        }
    }

    /// Writes an event of `hit` if its HIT type notifies of `kind`.
    fn emit(&mut self, kind: &str, hit: &str, assignment: Option<&str>, at_ms: u64) {
        let Some(type_id) = self.hits.get(hit).map(|h| h.type_id.clone()) else {
            return;
        };
        let Some(settings) = self.notifications.get(&type_id) else {
            return;
        };
        let wanted = settings["Notification"]["EventTypes"]
            .as_array()
            .is_some_and(|a| a.iter().any(|e| e.as_str() == Some(kind)));
        if !wanted || settings.get("Active").and_then(Value::as_bool) == Some(false) {
            return;
        }
        let mut event = json!({
            "EventType": kind,
            "EventTimestamp": iso8601(at_ms),
            "HITId": hit,
            "HITTypeId": type_id,
        });
        if let Some(a) = assignment {
            event["AssignmentId"] = json!(a);
        }
        self.emitted.push(event.clone());
        self.pending_events.push(event);
    }

    /// Pending events into messages of up to `batch_size` events each.
    fn flush_events(&mut self, now: u64) {
        let events = std::mem::take(&mut self.pending_events);
        // The SNS topic each event's HIT type notifies, if it notifies one.
        let topic_of = |e: &Value| {
            let t = e["HITTypeId"].as_str()?;
            let n = &self.notifications.get(t)?["Notification"];
            (n["Transport"] == "SNS").then(|| n["Destination"].as_str().map(str::to_owned))?
        };
        let mut runs: Vec<(Option<String>, Vec<Value>)> = Vec::new();
        for e in events {
            let topic = topic_of(&e);
            match runs.last_mut() {
                Some((t, run)) if *t == topic && run.len() < self.batch_size.max(1) => {
                    run.push(e);
                }
                _ => runs.push((topic, vec![e])),
            }
        }
        for (topic, chunk) in runs {
            self.next_message += 1;
            let id = format!("M{:05}", self.next_message);
            let doc = json!({
                "EventDocId": format!("doc-{id}"),
                "SourceAccount": "123456789012",
                "CustomerId": "AFAKECUSTOMER",
                "EventDocVersion": "2014-08-15",
                "Events": chunk,
            });
            let body = match topic {
                None => doc,
                Some(topic) => {
                    let mut envelope = json!({
                        "Type": "Notification",
                        "MessageId": format!("0000{:04}-sns0-4000-8000-{id:0>12}", self.next_message),
                        "TopicArn": topic,
                        "Message": doc.to_string(),
                        "Timestamp": iso8601(now),
                        "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe",
                    });
                    if let Some(sign) = &self.sns_signer {
                        sign(&mut envelope);
                    }
                    envelope
                }
            };
            self.queue.push(QueueMessage {
                id,
                body: body.to_string(),
                events: chunk.len(),
                visible_at_ms: now,
                receipts: Vec::new(),
                deleted: false,
            });
        }
    }

    /// One SQS operation.
    fn execute_sqs(&mut self, op: &str, body: &Value, now: u64, redeliver: bool) -> Answer {
        let sqs_error = |code: &str, message: &str| {
            (
                400,
                json!({"__type": format!("com.amazonaws.sqs#{code}"), "message": message}),
            )
        };
        let queue = body.get("QueueUrl").and_then(Value::as_str).unwrap_or("");
        if !queue.ends_with(QUEUE_PATH) {
            return Err(sqs_error(
                "QueueDoesNotExist",
                "The specified queue does not exist.",
            ));
        }
        let handle = || {
            body.get("ReceiptHandle")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| sqs_error("MissingParameter", "ReceiptHandle"))
        };
        match op {
            "ReceiveMessage" => {
                self.abandon_overdue(now);
                self.flush_events(now);
                let max = body
                    .get("MaxNumberOfMessages")
                    .and_then(Value::as_u64)
                    .unwrap_or(1);
                if !(1..=10).contains(&max) {
                    return Err(sqs_error("InvalidParameterValue", "MaxNumberOfMessages"));
                }
                let hide_s = body
                    .get("VisibilityTimeout")
                    .and_then(Value::as_u64)
                    .unwrap_or(DEFAULT_VISIBILITY_S);
                self.next_message += 1;
                let serial = self.next_message;
                let mut out = Vec::new();
                for m in self
                    .queue
                    .iter_mut()
                    .filter(|m| !m.deleted && m.visible_at_ms <= now)
                    .take(max as usize)
                {
                    let receipt = format!("rh-{}-{serial}", m.id);
                    m.receipts.push(receipt.clone());
                    m.visible_at_ms = if redeliver { now } else { now + hide_s * 1000 };
                    out.push(json!({
                        "MessageId": m.id,
                        "ReceiptHandle": receipt,
                        "Body": m.body,
                    }));
                }
                if out.is_empty() {
                    Ok(json!({}))
                } else {
                    Ok(json!({ "Messages": out }))
                }
            }
            "DeleteMessage" => {
                let h = handle()?;
                let m = self
                    .queue
                    .iter_mut()
                    .find(|m| m.receipts.contains(&h))
                    .ok_or_else(|| {
                        sqs_error(
                            "ReceiptHandleIsInvalid",
                            "The input receipt handle is invalid.",
                        )
                    })?;
                m.deleted = true;
                Ok(json!({}))
            }
            "ChangeMessageVisibility" => {
                let h = handle()?;
                let s = body
                    .get("VisibilityTimeout")
                    .and_then(Value::as_u64)
                    .ok_or_else(|| sqs_error("MissingParameter", "VisibilityTimeout"))?;
                let m = self
                    .queue
                    .iter_mut()
                    .find(|m| m.receipts.last() == Some(&h) && !m.deleted)
                    .ok_or_else(|| {
                        sqs_error(
                            "ReceiptHandleIsInvalid",
                            "The input receipt handle is invalid.",
                        )
                    })?;
                m.visible_at_ms = now + s * 1000;
                Ok(json!({}))
            }
            _ => Err(sqs_error("UnknownOperationException", op)),
        }
    }

    fn hit_json(&self, h: &FakeHit, now: u64) -> Value {
        let t = &self
            .hit_types
            .iter()
            .find(|(id, _)| *id == h.type_id)
            .expect("HITs have types")
            .1;
        let of_hit = || self.assignments.values().filter(|a| a.hit == h.id);
        let pending = of_hit().filter(|a| a.status == Status::Accepted).count() as u32;
        let completed = of_hit().filter(|a| a.status.listed().is_some()).count() as u32;
        let mut v = json!({
            "HITId": h.id,
            "HITTypeId": h.type_id,
            "HITGroupId": format!("G{}", h.type_id),
            "CreationTime": secs(h.created_ms),
            "Title": t["Title"],
            "Description": t["Description"],
            "Question": h.question,
            "Keywords": t["Keywords"],
            "HITStatus": h.status(now, completed),
            "MaxAssignments": h.max_assignments,
            "Reward": t["Reward"],
            "AutoApprovalDelayInSeconds": t["AutoApprovalDelayInSeconds"],
            "Expiration": secs(h.expires_ms),
            "AssignmentDurationInSeconds": t["AssignmentDurationInSeconds"],
            "QualificationRequirements": t.get("QualificationRequirements").cloned().unwrap_or(json!([])),
            "NumberOfAssignmentsPending": pending,
            "NumberOfAssignmentsAvailable": h.open(now),
            "NumberOfAssignmentsCompleted": completed,
        });
        if let Some(a) = &h.annotation {
            v["RequesterAnnotation"] = json!(a);
        }
        v
    }

    fn assignment_json(a: &FakeAssignment) -> Value {
        let mut v = json!({
            "AssignmentId": a.id,
            "WorkerId": a.worker,
            "HITId": a.hit,
            "AssignmentStatus": a.status.listed().unwrap_or("Submitted"),
            "AcceptTime": secs(a.accept_ms),
            "Deadline": secs(a.deadline_ms),
        });
        for (k, t) in [
            ("SubmitTime", a.submit_ms),
            ("ApprovalTime", a.approval_ms),
            ("RejectionTime", a.rejection_ms),
        ] {
            if let Some(t) = t {
                v[k] = json!(secs(t));
            }
        }
        if let Some(answer) = &a.answer {
            v["Answer"] = json!(answer);
        }
        if let Some(f) = &a.feedback {
            v["RequesterFeedback"] = json!(f);
        }
        v
    }

    /// A page of `items` after `NextToken`, at most `MaxResults` (and the cap).
    fn page(&self, items: Vec<Value>, body: &Value, field: &str) -> Answer {
        let start = match body.get("NextToken").and_then(Value::as_str) {
            None => 0,
            Some(t) => t
                .strip_prefix("next-")
                .and_then(|n| n.parse::<usize>().ok())
                .filter(|&n| n <= items.len())
                .ok_or_else(|| {
                    request_error("AWS.MechanicalTurk.InvalidNextToken", "bad NextToken")
                })?,
        };
        let max = body.get("MaxResults").and_then(Value::as_u64).unwrap_or(10) as usize;
        if !(1..=100).contains(&max) {
            return Err(request_error(
                "AWS.ParameterOutOfRange",
                "MaxResults is 1 to 100",
            ));
        }
        let end = (start + max.min(self.page_cap)).min(items.len());
        let mut v = json!({ field: items[start..end].to_vec(), "NumResults": end - start });
        if end < items.len() {
            v["NextToken"] = json!(format!("next-{end}"));
        }
        Ok(v)
    }

    /// Counts a token's use; `Some(first result)` if it was seen within the last
    /// [`TOKEN_WINDOW_MS`]. An older token is forgotten: the call goes through as new.
    fn token_seen(&mut self, op: &str, body: &Value, now: u64) -> Option<Value> {
        let token = body.get("UniqueRequestToken")?.as_str()?.to_owned();
        let k = (op.to_owned(), token);
        let entry = self.tokens.get_mut(&k)?;
        entry.0 += 1;
        let first = self.token_first_ms.get(&k).copied().unwrap_or(0);
        (now.saturating_sub(first) < TOKEN_WINDOW_MS).then(|| entry.1.clone())
    }

    /// Remembers a token's result from `now` on (keeping its count of uses).
    fn remember(&mut self, op: &str, body: &Value, result: &Value, now: u64) {
        if let Some(token) = body.get("UniqueRequestToken").and_then(Value::as_str) {
            let k = (op.to_owned(), token.to_owned());
            let uses = self.tokens.get(&k).map_or(1, |(n, _)| *n);
            self.tokens.insert(k.clone(), (uses, result.clone()));
            self.token_first_ms.insert(k, now);
        }
    }

    fn execute(&mut self, op: &str, body: &Value, now: u64) -> Answer {
        self.abandon_overdue(now);
        let s = |k: &str| body.get(k).and_then(Value::as_str).map(str::to_owned);
        let need = |k: &str| {
            s(k).ok_or_else(|| {
                request_error(
                    "AWS.MechanicalTurk.ParameterMissing",
                    &format!("{k} is required"),
                )
            })
        };
        match op {
            "GetAccountBalance" => Ok(json!({
                "AvailableBalance": format!("{}.{:02}", self.balance_cents / 100, self.balance_cents % 100)
            })),
            "CreateHITType" => {
                for k in ["Title", "Description", "Reward"] {
                    need(k)?;
                }
                let Some(duration) = body
                    .get("AssignmentDurationInSeconds")
                    .and_then(Value::as_u64)
                else {
                    return Err(request_error(
                        "AWS.MechanicalTurk.ParameterMissing",
                        "AssignmentDurationInSeconds",
                    ));
                };
                if !(30..=31_536_000).contains(&duration) {
                    return Err(request_error(
                        "AWS.ParameterOutOfRange",
                        "AssignmentDurationInSeconds",
                    ));
                }
                // The same parameters give the same HIT type, as on MTurk.
                if let Some((id, _)) = self.hit_types.iter().find(|(_, b)| b == body) {
                    return Ok(json!({"HITTypeId": id}));
                }
                let id = format!("T{:04}", self.hit_types.len() + 1);
                self.hit_types.push((id.clone(), body.clone()));
                Ok(json!({"HITTypeId": id}))
            }
            "CreateHITWithHITType" => {
                if let Some(first) = self.token_seen(op, body, now) {
                    let hit = first["HIT"]["HITId"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned();
                    return Err(request_error(
                        "AWS.MechanicalTurk.HitAlreadyExists",
                        &format!(
                            "There is already a HIT which exists with the same UniqueRequestToken. HITId: {hit}"
                        ),
                    ));
                }
                let type_id = need("HITTypeId")?;
                let reward = self
                    .hit_types
                    .iter()
                    .find(|(id, _)| *id == type_id)
                    .map(|(_, t)| t["Reward"].as_str().unwrap_or("0").to_owned())
                    .ok_or_else(|| {
                        request_error("AWS.MechanicalTurk.HITTypeDoesNotExist", "no such HIT type")
                    })?;
                let question = need("Question")?;
                if !question.contains("<ExternalQuestion") || !question.contains("<ExternalURL>") {
                    return Err(request_error(
                        "AWS.MechanicalTurk.XMLParseError",
                        "not an ExternalQuestion",
                    ));
                }
                let n = body
                    .get("MaxAssignments")
                    .and_then(Value::as_u64)
                    .unwrap_or(1) as u32;
                let lifetime = body
                    .get("LifetimeInSeconds")
                    .and_then(Value::as_u64)
                    .unwrap_or(0);
                if !(30..=31_536_000).contains(&lifetime) {
                    return Err(request_error(
                        "AWS.ParameterOutOfRange",
                        "LifetimeInSeconds",
                    ));
                }
                let reward_cents = cents(&reward);
                let cost = cost_with_fee(reward_cents, n);
                if cost > self.balance_cents {
                    return Err(request_error(
                        "AWS.MechanicalTurk.InsufficientFunds",
                        "This Requester has insufficient funds in their account to complete this transaction.",
                    ));
                }
                self.balance_cents -= cost;
                self.next_id += 1;
                let id = format!("H{:05}", self.next_id);
                let hit = FakeHit {
                    id: id.clone(),
                    type_id,
                    max_assignments: n,
                    created_ms: now,
                    expires_ms: now + lifetime * 1000,
                    annotation: s("RequesterAnnotation"),
                    question,
                    workers: HashSet::new(),
                    taken: 0,
                };
                let out = json!({"HIT": self.hit_json(&hit, now)});
                self.hits.insert(id, hit);
                self.remember(op, body, &out, now);
                Ok(out)
            }
            "CreateAdditionalAssignmentsForHIT" => {
                if self.token_seen(op, body, now).is_some() {
                    return Err(request_error(
                        "AWS.MechanicalTurk.DuplicateRequest",
                        "The request has the same UniqueRequestToken as an earlier one.",
                    ));
                }
                let id = need("HITId")?;
                let n = body
                    .get("NumberOfAdditionalAssignments")
                    .and_then(Value::as_u64)
                    .unwrap_or(0) as u32;
                let h = self.hits.get(&id).ok_or_else(|| {
                    request_error("AWS.MechanicalTurk.HITDoesNotExist", "no such HIT")
                })?;
                if h.max_assignments < 10 && h.max_assignments + n >= 10 {
                    return Err(request_error(
                        "AWS.MechanicalTurk.InvalidMaximumAssignmentsIncrease",
                        "a HIT created with fewer than 10 assignments cannot reach 10",
                    ));
                }
                let type_id = h.type_id.clone();
                let reward = self
                    .hit_types
                    .iter()
                    .find(|(t, _)| *t == type_id)
                    .map(|(_, t)| cents(t["Reward"].as_str().unwrap_or("0")))
                    .unwrap_or(0);
                let cost = cost_with_fee(reward, n);
                if cost > self.balance_cents {
                    return Err(request_error(
                        "AWS.MechanicalTurk.InsufficientFunds",
                        "insufficient funds",
                    ));
                }
                self.balance_cents -= cost;
                self.hits.get_mut(&id).expect("checked").max_assignments += n;
                let out = json!({});
                self.remember(op, body, &out, now);
                Ok(out)
            }
            "UpdateExpirationForHIT" => {
                let id = need("HITId")?;
                let at = body
                    .get("ExpireAt")
                    .and_then(Value::as_f64)
                    .ok_or_else(|| {
                        request_error("AWS.MechanicalTurk.ParameterMissing", "ExpireAt")
                    })?;
                // MTurk makes its own token of the HIT and the time, and refuses it again.
                let token = (op.to_owned(), format!("{id}{at}"));
                if let Some(entry) = self.tokens.get_mut(&token) {
                    entry.0 += 1;
                    let message = format!(
                        "The idempotency token \"{id}{at}\" has already been processed. (1626172412406)"
                    );
                    return Err((400, json!({"__type": "RequestError", "Message": message})));
                }
                if self.hits.contains_key(&id) {
                    self.tokens.insert(token, (1, json!({})));
                }
                let h = self.hits.get_mut(&id).ok_or_else(|| {
                    request_error("AWS.MechanicalTurk.HITDoesNotExist", "no such HIT")
                })?;
                let at_ms = (at * 1000.0).max(0.0) as u64;
                h.expires_ms = if at_ms <= now {
                    now.min(h.expires_ms)
                } else {
                    at_ms
                };
                if h.expires_ms <= now {
                    self.emit("HITExpired", &id, None, now);
                }
                Ok(json!({}))
            }
            "ListHITs" => {
                let items = self.hits.values().map(|h| self.hit_json(h, now)).collect();
                self.page(items, body, "HITs")
            }
            "GetHIT" => {
                let id = need("HITId")?;
                let h = self.hits.get(&id).ok_or_else(|| {
                    request_error("AWS.MechanicalTurk.HITDoesNotExist", "no such HIT")
                })?;
                Ok(json!({"HIT": self.hit_json(h, now)}))
            }
            "ListAssignmentsForHIT" => {
                let id = need("HITId")?;
                if !self.hits.contains_key(&id) {
                    return Err(request_error(
                        "AWS.MechanicalTurk.HITDoesNotExist",
                        "no such HIT",
                    ));
                }
                let wanted: Option<Vec<String>> = body
                    .get("AssignmentStatuses")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(Value::as_str)
                            .map(str::to_owned)
                            .collect()
                    });
                let items = self
                    .assignments
                    .values()
                    .filter(|a| a.hit == id)
                    .filter(|a| {
                        a.status.listed().is_some_and(|s| {
                            wanted.as_ref().is_none_or(|w| w.iter().any(|x| x == s))
                        })
                    })
                    .map(Self::assignment_json)
                    .collect();
                self.page(items, body, "Assignments")
            }
            "GetAssignment" => {
                let id = need("AssignmentId")?;
                let a = self.assignments.get(&id).ok_or_else(|| {
                    request_error(
                        "AWS.MechanicalTurk.AssignmentDoesNotExist",
                        &format!("Assignment {id} does not exist. (1767225600000)"),
                    )
                })?;
                // MTurk retrieves an assignment only once it is Submitted, Approved or
                // Rejected: one being worked on (or given back) is refused.
                if a.status.listed().is_none() {
                    return Err(request_error(
                        "AWS.MechanicalTurk.InvalidAssignmentState",
                        "This operation can be called with a status of: Submitted, Approved, Rejected (1767225600000)",
                    ));
                }
                let h = &self.hits[&a.hit];
                Ok(json!({"Assignment": Self::assignment_json(a), "HIT": self.hit_json(h, now)}))
            }
            "ApproveAssignment" => {
                let id = need("AssignmentId")?;
                let a = self.assignments.get_mut(&id).ok_or_else(|| {
                    request_error(
                        "AWS.MechanicalTurk.AssignmentDoesNotExist",
                        "no such assignment",
                    )
                })?;
                if a.status != Status::Submitted {
                    return Err(request_error(
                        "AWS.MechanicalTurk.InvalidAssignmentState",
                        "This operation can be called with a status of: Submitted",
                    ));
                }
                a.status = Status::Approved;
                a.approval_ms = Some(now);
                a.feedback = s("RequesterFeedback");
                let (hit, worker) = (a.hit.clone(), a.worker.clone());
                self.emit("AssignmentApproved", &hit, Some(&id), now);
                let type_id = self.hits[&hit].type_id.clone();
                let reward = self
                    .hit_types
                    .iter()
                    .find(|(t, _)| *t == type_id)
                    .map(|(_, t)| cents(t["Reward"].as_str().unwrap_or("0")))
                    .unwrap_or(0);
                *self.earnings.entry(worker).or_default() += reward;
                Ok(json!({}))
            }
            "RejectAssignment" => {
                let id = need("AssignmentId")?;
                let feedback = need("RequesterFeedback")?;
                let a = self.assignments.get_mut(&id).ok_or_else(|| {
                    request_error(
                        "AWS.MechanicalTurk.AssignmentDoesNotExist",
                        "no such assignment",
                    )
                })?;
                if a.status != Status::Submitted {
                    return Err(request_error(
                        "AWS.MechanicalTurk.InvalidAssignmentState",
                        "This operation can be called with a status of: Submitted",
                    ));
                }
                a.status = Status::Rejected;
                a.rejection_ms = Some(now);
                a.feedback = Some(feedback);
                let hit = a.hit.clone();
                self.emit("AssignmentRejected", &hit, Some(&id), now);
                Ok(json!({}))
            }
            "SendBonus" => {
                if self.token_seen(op, body, now).is_some() {
                    return Err(request_error(
                        "AWS.MechanicalTurk.DuplicateRequest",
                        "The bonus was already paid: the UniqueRequestToken was used before.",
                    ));
                }
                let worker = need("WorkerId")?;
                let assignment = need("AssignmentId")?;
                let reason = need("Reason")?;
                let amount = need("BonusAmount")?;
                let a = self.assignments.get(&assignment).ok_or_else(|| {
                    request_error(
                        "AWS.MechanicalTurk.AssignmentDoesNotExist",
                        "no such assignment",
                    )
                })?;
                if a.worker != worker {
                    return Err(request_error(
                        "AWS.MechanicalTurk.InvalidParameterValue",
                        "another worker's assignment",
                    ));
                }
                if a.status.listed().is_none() {
                    return Err(request_error(
                        "AWS.MechanicalTurk.InvalidAssignmentState",
                        "a bonus needs a submitted assignment",
                    ));
                }
                let c = cents(&amount);
                if c <= 0 {
                    return Err(request_error("AWS.ParameterOutOfRange", "BonusAmount"));
                }
                let cost = c + ((c * 20 + 99) / 100).max(1);
                if cost > self.balance_cents {
                    return Err(request_error(
                        "AWS.MechanicalTurk.InsufficientFunds",
                        "insufficient funds",
                    ));
                }
                self.balance_cents -= cost;
                *self.earnings.entry(worker.clone()).or_default() += c;
                self.bonuses.push(Bonus {
                    worker,
                    assignment,
                    cents: c,
                    token: s("UniqueRequestToken"),
                    reason,
                    granted_ms: now,
                });
                let out = json!({});
                self.remember(op, body, &out, now);
                Ok(out)
            }
            "ListBonusPayments" => {
                let (hit, assignment) = (s("HITId"), s("AssignmentId"));
                if hit.is_some() == assignment.is_some() {
                    return Err(request_error(
                        "AWS.MechanicalTurk.InvalidParameterValue",
                        "Exactly one of HITId and AssignmentId is required",
                    ));
                }
                if let Some(h) = &hit
                    && !self.hits.contains_key(h)
                {
                    return Err(request_error(
                        "AWS.MechanicalTurk.HITDoesNotExist",
                        "no such HIT",
                    ));
                }
                let items = self
                    .bonuses
                    .iter()
                    .filter(|b| match (&hit, &assignment) {
                        (_, Some(a)) => b.assignment == *a,
                        (Some(h), None) => self
                            .assignments
                            .get(&b.assignment)
                            .is_some_and(|a| a.hit == *h),
                        (None, None) => false,
                    })
                    .map(|b| {
                        json!({
                            "WorkerId": b.worker,
                            "BonusAmount": format!("{}.{:02}", b.cents / 100, b.cents % 100),
                            "AssignmentId": b.assignment,
                            "Reason": b.reason,
                            "GrantTime": secs(b.granted_ms),
                        })
                    })
                    .collect();
                self.page(items, body, "BonusPayments")
            }
            "NotifyWorkers" => {
                let subject = need("Subject")?;
                let text = need("MessageText")?;
                let workers: Vec<String> = body
                    .get("WorkerIds")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(Value::as_str)
                            .map(str::to_owned)
                            .collect()
                    })
                    .unwrap_or_default();
                if workers.is_empty() || workers.len() > 100 {
                    return Err(request_error(
                        "AWS.ParameterOutOfRange",
                        "WorkerIds holds 1 to 100 ids",
                    ));
                }
                let mut failures = Vec::new();
                for w in workers {
                    match self.soft_fail.get_mut(&w) {
                        Some(n) if *n > 0 => {
                            *n -= 1;
                            failures.push(json!({
                                "NotifyWorkersFailureCode": "SoftFailure",
                                "NotifyWorkersFailureMessage": "try again later",
                                "WorkerId": w,
                            }));
                        }
                        _ if w.starts_with("UNKNOWN") => failures.push(json!({
                            "NotifyWorkersFailureCode": "HardFailure",
                            "NotifyWorkersFailureMessage": "no such worker",
                            "WorkerId": w,
                        })),
                        _ => self.messages.push((w, subject.clone(), text.clone())),
                    }
                }
                Ok(json!({"NotifyWorkersFailureStatuses": failures}))
            }
            "CreateWorkerBlock" => {
                let w = need("WorkerId")?;
                let reason = need("Reason")?;
                self.blocks.insert(w, reason);
                Ok(json!({}))
            }
            "AssociateQualificationWithWorker" => {
                let q = need("QualificationTypeId")?;
                let w = need("WorkerId")?;
                let v = body
                    .get("IntegerValue")
                    .and_then(Value::as_i64)
                    .unwrap_or(1);
                self.qualifications.insert((w, q), v);
                Ok(json!({}))
            }
            "GetQualificationScore" => {
                let q = need("QualificationTypeId")?;
                let w = need("WorkerId")?;
                let v = self
                    .qualifications
                    .get(&(w.clone(), q.clone()))
                    .ok_or_else(|| {
                        request_error(
                            "AWS.MechanicalTurk.QualificationDoesNotExist",
                            "You requested a Qualification that does not exist.",
                        )
                    })?;
                Ok(
                    json!({"Qualification": {"QualificationTypeId": q, "WorkerId": w, "IntegerValue": v, "Status": "Granted"}}),
                )
            }
            "DisassociateQualificationFromWorker" => {
                let q = need("QualificationTypeId")?;
                let w = need("WorkerId")?;
                self.qualifications.remove(&(w, q));
                Ok(json!({}))
            }
            "UpdateNotificationSettings" => {
                let type_id = need("HITTypeId")?;
                if !self.hit_types.iter().any(|(t, _)| *t == type_id) {
                    return Err(request_error(
                        "AWS.MechanicalTurk.HITTypeDoesNotExist",
                        "no such HIT type",
                    ));
                }
                let n = body.get("Notification").cloned().unwrap_or(json!({}));
                let events = n["EventTypes"].as_array().cloned().unwrap_or_default();
                let destination = n["Destination"].as_str().unwrap_or("");
                let reachable = match n["Transport"].as_str() {
                    Some("SQS") => destination.ends_with(QUEUE_PATH),
                    // Any topic: the fake's queue stands for its subscriber.
                    Some("SNS") => destination.starts_with("arn:aws:sns:"),
                    _ => false,
                };
                if !reachable || n["Version"] != "2014-08-15" || events.is_empty() {
                    return Err(request_error(
                        "AWS.MechanicalTurk.InvalidParameterValue",
                        "Notification needs Destination (the queue, or a topic for SNS), Transport SQS or SNS, Version 2014-08-15 and EventTypes",
                    ));
                }
                self.notifications.insert(type_id, body.clone());
                Ok(json!({}))
            }
            "CreateQualificationType" => {
                let name = need("Name")?;
                need("Description")?;
                need("QualificationTypeStatus")?;
                let id = format!("Q{:04}", self.qualification_types.len() + 1);
                self.qualification_types.push(name.clone());
                Ok(json!({"QualificationType": {"QualificationTypeId": id, "Name": name}}))
            }
            _ => Err((
                400,
                json!({"__type": "UnknownOperationException", "message": format!("unknown operation {op}")}),
            )),
        }
    }
}

/// Cents in MTurk's dollar text.
pub fn cents(text: &str) -> i64 {
    let (whole, frac) = text.split_once('.').unwrap_or((text, "0"));
    let frac = format!("{frac:0<2}");
    whole.parse::<i64>().unwrap_or(0) * 100 + frac[..2].parse::<i64>().unwrap_or(0)
}

/// Rewards plus MTurk's fee (20 %, 40 % at 10 or more assignments, at least half a cent each).
pub fn cost_with_fee(reward_cents: i64, n: u32) -> i64 {
    let rewards = reward_cents * i64::from(n);
    let percent = if n >= 10 { 40 } else { 20 };
    let tenths = (rewards * 10 * percent / 100).max(5 * i64::from(n));
    rewards + (tenths + 9) / 10
}

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

fn hmac(key: &[u8], data: &str) -> Vec<u8> {
    use hmac::Mac;
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(data.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data))
}

/// Checks the request's SigV4 signature with the test secret, for `service`
/// (`mturk-requester`, `sqs`) in `us-east-1`, as AWS does.
fn check_signature(headers: &HeaderMap, body: &[u8], service: &str) -> Result<(), String> {
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .ok_or("no Authorization header")?;
    let rest = auth
        .strip_prefix("AWS4-HMAC-SHA256 ")
        .ok_or("not AWS4-HMAC-SHA256")?;
    let mut credential = None;
    let mut signed = None;
    let mut signature = None;
    for part in rest.split(',') {
        let (k, v) = part
            .trim()
            .split_once('=')
            .ok_or("malformed Authorization")?;
        match k {
            "Credential" => credential = Some(v),
            "SignedHeaders" => signed = Some(v),
            "Signature" => signature = Some(v),
            _ => {}
        }
    }
    let (credential, signed, signature) = (
        credential.ok_or("no Credential")?,
        signed.ok_or("no SignedHeaders")?,
        signature.ok_or("no Signature")?,
    );
    let scope = credential
        .strip_prefix(&format!("{ACCESS_KEY}/"))
        .ok_or("unknown access key")?;
    let date = scope.split('/').next().unwrap_or_default();
    if scope != format!("{date}/us-east-1/{service}/aws4_request") {
        return Err(format!("wrong credential scope {scope}"));
    }
    let amz_date = headers
        .get("x-amz-date")
        .and_then(|v| v.to_str().ok())
        .ok_or("no X-Amz-Date")?;
    let mut canonical_headers = String::new();
    for name in signed.split(';') {
        let value = headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| format!("signed header {name} missing"))?;
        let value = value.split_whitespace().collect::<Vec<_>>().join(" ");
        canonical_headers.push_str(&format!("{name}:{value}\n"));
    }
    let canonical = format!(
        "POST\n/\n\n{canonical_headers}\n{signed}\n{}",
        sha256_hex(body)
    );
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        sha256_hex(canonical.as_bytes())
    );
    let k_date = hmac(format!("AWS4{SECRET_KEY}").as_bytes(), date);
    let k_region = hmac(&k_date, "us-east-1");
    let k_service = hmac(&k_region, service);
    let k_signing = hmac(&k_service, "aws4_request");
    let expected = hex::encode(hmac(&k_signing, &to_sign));
    if expected != signature {
        return Err("the request signature does not match".into());
    }
    Ok(())
}

fn reply(status: u16, body: Value) -> Response {
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        [("content-type", "application/x-amz-json-1.1")],
        body.to_string(),
    )
        .into_response()
}

fn sqs_reply(status: u16, body: Value) -> Response {
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        [("content-type", "application/x-amz-json-1.0")],
        body.to_string(),
    )
        .into_response()
}

/// The fake SQS: checks the protocol and the signature, injects faults, long-polls a little.
async fn handle_sqs(fake: FakeMturk, op: String, headers: HeaderMap, body: Bytes) -> Response {
    let header = |k: &str| headers.get(k).and_then(|v| v.to_str().ok()).unwrap_or("");
    if header("content-type") != "application/x-amz-json-1.0" {
        return sqs_reply(
            400,
            json!({"__type": "com.amazonaws.sqs#SerializationException", "message": "wrong content type"}),
        );
    }
    if let Err(why) = check_signature(&headers, &body, "sqs") {
        return sqs_reply(
            400,
            json!({"__type": "com.amazonaws.sqs#InvalidSignatureException", "message": why}),
        );
    }
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return sqs_reply(
            400,
            json!({"__type": "com.amazonaws.sqs#SerializationException", "message": "not JSON"}),
        );
    };
    let fault = {
        let mut f = fake.sqs_faults.lock().unwrap();
        f.as_mut().and_then(|f| {
            f.counts.calls += 1;
            if f.rng.random::<f64>() >= f.rate {
                return None;
            }
            Some(match f.rng.random_range(0..3u32) {
                0 => {
                    f.counts.throttled += 1;
                    SqsFault::Throttle
                }
                1 => {
                    f.counts.server_errors += 1;
                    SqsFault::ServerError
                }
                _ => SqsFault::Redeliver,
            })
        })
    };
    {
        let mut w = fake.world();
        w.requests.push((op.clone(), body.clone()));
        if let Some(i) = w.scripted.iter().position(|(o, _, _)| *o == op) {
            let (_, status, out) = w.scripted.remove(i);
            return sqs_reply(status, out);
        }
    }
    match fault {
        Some(SqsFault::Throttle) => {
            return sqs_reply(
                400,
                json!({"__type": "com.amazonaws.sqs#RequestThrottled", "message": "Rate exceeded"}),
            );
        }
        Some(SqsFault::ServerError) => {
            return sqs_reply(
                500,
                json!({"__type": "com.amazonaws.sqs#InternalError", "message": "We encountered an internal error."}),
            );
        }
        _ => {}
    }
    // A long poll: wait (a little, in real time) for a message to turn up.
    let wait_ms = body
        .get("WaitTimeSeconds")
        .and_then(Value::as_u64)
        .unwrap_or(0)
        .saturating_mul(1000)
        .min(200);
    let started = std::time::Instant::now();
    loop {
        let now = fake.clock.now().as_millis();
        let (answer, empty) = {
            let mut w = fake.world();
            let redeliver = fault == Some(SqsFault::Redeliver) && op == "ReceiveMessage";
            let answer = w.execute_sqs(&op, &body, now, redeliver);
            let empty = op == "ReceiveMessage"
                && answer.as_ref().is_ok_and(|v| v.get("Messages").is_none());
            if redeliver && !empty {
                drop(w);
                if let Some(f) = fake.sqs_faults.lock().unwrap().as_mut() {
                    f.counts.redelivered += 1;
                }
            }
            (answer, empty)
        };
        if !empty || started.elapsed().as_millis() as u64 >= wait_ms {
            return match answer {
                Ok(v) => sqs_reply(200, v),
                Err((s, v)) => sqs_reply(s, v),
            };
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn handle(State(fake): State<FakeMturk>, headers: HeaderMap, body: Bytes) -> Response {
    let header = |k: &str| headers.get(k).and_then(|v| v.to_str().ok()).unwrap_or("");
    if let Some(op) = header("x-amz-target").strip_prefix(SQS_PREFIX) {
        let op = op.to_owned();
        return handle_sqs(fake, op, headers, body).await;
    }
    let Some(op) = header("x-amz-target")
        .strip_prefix(TARGET_PREFIX)
        .map(str::to_owned)
    else {
        return reply(
            400,
            json!({"__type": "UnknownOperationException", "message": "no X-Amz-Target"}),
        );
    };
    if header("content-type") != "application/x-amz-json-1.1" {
        return reply(
            400,
            json!({"__type": "SerializationException", "message": "wrong content type"}),
        );
    }
    if let Err(why) = check_signature(&headers, &body, "mturk-requester") {
        return reply(
            400,
            json!({"__type": "InvalidSignatureException", "message": why}),
        );
    }
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return reply(
            400,
            json!({"__type": "SerializationException", "message": "not JSON"}),
        );
    };
    let now = fake.clock.now().as_millis();
    let fault = {
        let mut f = fake.faults.lock().unwrap();
        f.as_mut().and_then(|f| {
            f.counts.calls += 1;
            if f.rng.random::<f64>() >= f.rate {
                return None;
            }
            let kind = match f.rng.random_range(0..3u32) {
                0 => {
                    f.counts.throttled += 1;
                    Fault::Throttle
                }
                1 => {
                    f.counts.server_errors += 1;
                    Fault::ServerError
                }
                _ => {
                    f.counts.late += 1;
                    Fault::LateAnswer
                }
            };
            Some((kind, f.late_ms, f.counts.calls))
        })
    };
    let ((status, out), late) = {
        let mut w = fake.world();
        w.requests.push((op.clone(), body.clone()));
        let mut late = fault
            .filter(|(k, _, _)| *k == Fault::LateAnswer)
            .map(|(_, ms, _)| ms);
        if let Some(i) = w.scripted.iter().position(|(o, _, _)| *o == op) {
            let (_, status, out) = w.scripted.remove(i);
            if status != 0 {
                return reply(status, out);
            }
            // Status 0: carry the call out, answer too late.
            late = Some(out.as_u64().unwrap_or(1_500));
        }
        match fault {
            Some((Fault::Throttle, _, _)) => {
                return reply(
                    400,
                    json!({"__type": "ThrottlingException", "message": "Rate exceeded"}),
                );
            }
            Some((Fault::ServerError, _, n)) if n % 2 == 0 => {
                return reply(
                    500,
                    json!({"__type": "ServiceFault", "Message": "We encountered an internal error.", "TurkErrorCode": "AWS.MechanicalTurk.ServiceFault"}),
                );
            }
            Some((Fault::ServerError, _, _)) => {
                return reply(503, json!({"message": "Service Unavailable"}));
            }
            _ => {}
        }
        let answer = match w.execute(&op, &body, now) {
            Ok(v) => (200, v),
            Err((s, v)) => (s, v),
        };
        (answer, late)
    };
    if let Some(ms) = late {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    reply(status, out)
}
