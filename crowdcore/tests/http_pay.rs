//! Issue 15, "no worker who did the work goes unpaid", through the HTTP front: a page's
//! platform submit address survives a restart, a submit whose answer was lost is told again how
//! to finish, and workers released by a stop finish on the platform and are paid what the
//! ledger says.

#[path = "common/http.rs"]
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crowdcore::model::{Money, WorkerId};
use crowdcore::pavilion::PavilionConfig;
use crowdcore::store::{FailMode, LedgerEntry, MemoryStore, Store};
use crowdcore::testkit::{Write, fail_when};
use serde_json::{Value, json};
use support::{PATIENCE, Page, TestServer, small};

const SANDBOX: &str = "https://workersandbox.mturk.com";
const FORM: &str = "https://workersandbox.mturk.com/mturk/externalSubmit";

/// A store that, once `crashed` is set, fails every write (the process died): the old engine
/// can do nothing more, the new one recovers from `inner`.
fn crashable(inner: Arc<MemoryStore>, crashed: Arc<AtomicBool>) -> Arc<dyn Store> {
    Arc::new(fail_when(inner, move |_, _| {
        crashed.load(Ordering::SeqCst).then_some(FailMode::Before)
    }))
}

/// A page of `worker` that arrived from MTurk (with its `turkSubmitTo`), or from elsewhere.
async fn arrive_from(s: &TestServer, worker: &str, submit_to: Option<&str>) -> Page {
    let (a, h) = s.take(worker).await;
    let mut body = json!({"assignment_id": a.as_str(), "hit_id": h.as_str(), "worker_id": worker});
    if let Some(to) = submit_to {
        body["turk_submit_to"] = json!(to);
    }
    let (status, body) = s.post("/w/arrive", body).await;
    assert_eq!(status, 200, "arrive: {body}");
    Page {
        worker: worker.to_owned(),
        assignment: a.to_string(),
        hit: h.to_string(),
        token: body["token"].as_str().unwrap().to_owned(),
        state: body["state"].clone(),
    }
}

async fn submit(s: &TestServer, p: &Page, contributions: u32) -> (u16, Value) {
    s.post(
        "/w/submit",
        json!({"assignment_id": p.assignment, "token": p.token, "contributions": contributions}),
    )
    .await
}

/// Waits until the ledger satisfies `done`, and returns it.
async fn ledger_until(s: &TestServer, done: impl Fn(&[LedgerEntry]) -> bool) -> Vec<LedgerEntry> {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let ledger = s.engine.ledger().await.unwrap();
        if done(&ledger) {
            return ledger;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the ledger never got there: {ledger:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn base_paid(ledger: &[LedgerEntry], worker: &str) -> bool {
    ledger
        .iter()
        .any(|e| e.worker.as_str() == worker && e.kind == "base" && e.paid)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_that_arrived_before_a_restart_gets_its_form_after_it() {
    let memory = Arc::new(MemoryStore::new());
    let crashed = Arc::new(AtomicBool::new(false));
    let market = TestServer::market();
    let s1 = TestServer::start_on(
        small(),
        crashable(memory.clone(), crashed.clone()),
        market.clone(),
    )
    .await;
    assert_eq!(s1.admin("POST", "/api/start", None).await.0, 200);
    let alice = arrive_from(&s1, "alice", Some(SANDBOX)).await;
    assert_eq!(alice.state["status"], "waiting");

    // The server dies; a new one recovers the session from the store.
    crashed.store(true, Ordering::SeqCst);
    drop(s1);
    let s2 = TestServer::start_on(small(), memory.clone(), market.clone()).await;

    // The page, still open, submits to the new server: it is told where to finish.
    let (status, body) = submit(&s2, &alice, 2).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["state"]["status"], "submitted");
    assert_eq!(body["form"]["action"], FORM);
    assert_eq!(body["state"]["form"], body["form"]);
    assert_eq!(
        body["form"]["fields"][0],
        json!(["assignmentId", alice.assignment])
    );
    // A reload after the restart (MTurk's URL carries no address this time) learns the same.
    let (status, again) = s2
        .post(
            "/w/arrive",
            json!({"assignment_id": alice.assignment, "hit_id": alice.hit, "worker_id": "alice"}),
        )
        .await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["state"]["status"], "submitted");
    assert_eq!(again["state"]["form"]["action"], FORM);
    // And the engine pays her.
    ledger_until(&s2, |l| base_paid(l, "alice")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_submit_whose_answer_was_lost_is_told_again_how_to_finish() {
    let memory = Arc::new(MemoryStore::new());
    let crash_on_submit = Arc::new(AtomicBool::new(false));
    let armed = crash_on_submit.clone();
    // The submission is written, then the process dies before it answers the page.
    let store: Arc<dyn Store> = Arc::new(fail_when(memory.clone(), move |_, w| {
        let submits = |inputs: &[crowdcore::store::NewInput]| {
            inputs
                .iter()
                .any(|i| i.body.contains("\"type\":\"submit\""))
        };
        let hit = match w {
            Write::Append { inputs, .. } => submits(inputs),
            Write::Commit { commit, .. } => submits(&commit.inputs),
            _ => false,
        };
        if hit && armed.load(Ordering::SeqCst) {
            return Some(FailMode::After);
        }
        // Once the submission is in, the process is gone: nothing more is written.
        None
    }));
    let market = TestServer::market();
    let s1 = TestServer::start_on(small(), store, market.clone()).await;
    assert_eq!(s1.admin("POST", "/api/start", None).await.0, 200);
    let alice = arrive_from(&s1, "alice", Some(SANDBOX)).await;
    crash_on_submit.store(true, Ordering::SeqCst);
    let (status, body) = submit(&s1, &alice, 1).await;
    assert!(status >= 500, "the answer is lost: {status} {body}");
    drop(s1);

    let s2 = TestServer::start_on(small(), memory.clone(), market.clone()).await;
    // The retry is not a bare 409: the work is in, and the page is told how to finish.
    let (status, body) = submit(&s2, &alice, 1).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["state"]["status"], "submitted");
    assert_eq!(body["form"]["action"], FORM);
    // Retried again: the same answer.
    let (status, again) = submit(&s2, &alice, 1).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["form"], body["form"]);
    ledger_until(&s2, |l| base_paid(l, "alice")).await;
}

/// Five seats: three active, two waiting; the task begins once all five are in.
fn five() -> PavilionConfig {
    PavilionConfig {
        min_active: 3,
        max_active: 3,
        min_waiting: 2,
        max_waiting: 2,
        ..small()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_releases_five_seated_workers_and_each_is_paid_what_the_ledger_says() {
    let s = TestServer::start(five()).await;
    assert_eq!(s.admin("POST", "/api/start", None).await.0, 200);
    let names = ["ann", "ben", "cat", "dan", "eve"];
    let mut pages = Vec::new();
    for (i, w) in names.iter().enumerate() {
        // Two came from MTurk (their pages get the platform's form), three from elsewhere.
        let to = (i % 2 == 0 && i < 4).then_some(SANDBOX);
        pages.push(arrive_from(&s, w, to).await);
    }
    let snap = s.snapshot().await;
    assert_eq!((snap.active.len(), snap.waiting.len()), (3, 2));
    // Two pages stay open on the event stream; the others were closed (they poll later).
    let mut open = [s.stream(&pages[0]).await, s.stream(&pages[1]).await];
    tokio::time::sleep(Duration::from_millis(1_100)).await;

    assert_eq!(s.admin("POST", "/api/stop", None).await.0, 200);
    let released = open[0].until("released").await;
    assert_eq!(
        released["form"]["action"], FORM,
        "an MTurk page is told to finish there"
    );
    let released = open[1].until("released").await;
    assert!(
        released.get("form").is_none(),
        "a local page has no form to post"
    );
    for (i, p) in pages.iter().enumerate() {
        let (status, state) = s.poll(p).await;
        assert_eq!((status, state["status"].as_str()), (200, Some("released")));
        assert_eq!(
            state["form"]["action"].as_str(),
            (i == 0 || i == 2).then_some(FORM),
            "{}",
            p.worker
        );
        // A closed page that comes back and submits is answered, not refused.
        let (status, body) = submit(&s, p, 0).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["state"]["status"], "released");
    }

    // Every amount the ledger owes is paid, and the marketplace paid each worker exactly that.
    let ledger = ledger_until(&s, |l| names.iter().all(|w| base_paid(l, w))).await;
    for w in names {
        let mine: Vec<_> = ledger.iter().filter(|e| e.worker.as_str() == w).collect();
        assert!(mine.iter().all(|e| e.paid), "{w} is owed: {mine:?}");
        let owed = mine.iter().fold(Money::usd_cents(0), |sum, e| {
            sum.checked_add(e.amount).unwrap()
        });
        assert_eq!(s.market.earnings(&WorkerId::new(w)), owed, "{w}");
    }
    // Nothing is left owed, on the admin API and the status page.
    let (status, owed) = s.admin("GET", "/api/owed", None).await;
    assert_eq!((status, owed), (200, json!([])));
    let (status, page) = s.admin("GET", "/api/status", None).await;
    assert_eq!((status, &page["owed"]), (200, &json!([])));
}
