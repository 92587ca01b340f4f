//! The HTTP front over a real loopback socket, with reqwest as the client: the seed's rules
//! through the worker endpoints, every admin route, auth failures, token forgery, and a bounded
//! fuzz of malformed requests.

#[path = "common/http.rs"]
mod support;

use crowdcore::engine::EngineEvent;
use crowdcore::http::{TokenClaims, page_token};
use crowdcore::model::{AssignmentId, Timestamp, WorkerId};
use crowdcore::pavilion::{Departure, EffectKind, PavilionConfig, Phase};
use crowdcore::platform::AssignmentStatus;
use serde_json::{Value, json};
use support::{ADMIN_KEY, Page, TestServer, small};
use tokio::sync::broadcast;

fn drain(rx: &mut broadcast::Receiver<EngineEvent>) -> Vec<EffectKind> {
    let mut out = Vec::new();
    while let Ok(e) = rx.try_recv() {
        if let EngineEvent::Effect(e) = e {
            out.push(e.kind);
        }
    }
    out
}

fn hires(effects: &[EffectKind]) -> u32 {
    effects
        .iter()
        .map(|k| match k {
            EffectKind::Hire { count } => *count,
            _ => 0,
        })
        .sum()
}

fn promoted(effects: &[EffectKind]) -> Vec<String> {
    effects
        .iter()
        .filter_map(|k| match k {
            EffectKind::Promote { worker, .. } => Some(worker.to_string()),
            _ => None,
        })
        .collect()
}

async fn leave(s: &TestServer, p: &Page, how: &str) -> Value {
    let (status, body) = s.post(&format!("/w/{how}"), TestServer::page_body(p)).await;
    assert_eq!(status, 200, "{how}: {body}");
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_rules_hold_through_the_worker_endpoints() {
    let s = TestServer::start(small()).await;
    let mut events = s.engine.subscribe();
    assert_eq!(s.admin("POST", "/api/start", None).await.0, 200);
    assert_eq!(hires(&drain(&mut events)), 2, "start hires the capacity");

    // Two arrivals: the first waits, the second begins the task; the oldest goes active.
    let w1 = s.arrive("alice").await;
    assert_eq!(w1.state["status"], "waiting");
    let mut w1_stream = s.stream(&w1).await;
    let w2 = s.arrive("bob").await;
    assert_eq!(w2.state["status"], "waiting", "bob waits behind alice");
    w1_stream.until("active").await;
    let mut w2_stream = s.stream(&w2).await;
    w2_stream.until("waiting").await;
    drain(&mut events);

    // Rule 2: the active worker submits ⇒ the oldest waiting is promoted, and one is hired.
    let body = leave(&s, &w1, "submit").await;
    assert_eq!(body["state"]["status"], "submitted");
    assert!(
        body.get("form").is_none(),
        "the local platform has no submit form"
    );
    let fx = drain(&mut events);
    assert_eq!(promoted(&fx), vec!["bob"]);
    assert_eq!(hires(&fx), 1);
    w2_stream.until("active").await;
    assert_eq!(
        s.market.status(&AssignmentId::new(w1.assignment.as_str())),
        Some(AssignmentStatus::Approved),
        "the platform took the submission (and the engine paid it)"
    );

    // Rule 3: the active worker returns ⇒ the oldest waiting is promoted; no hire, because
    // the platform re-opens the slot.
    let w3 = s.arrive("carol").await;
    assert_eq!(w3.state["status"], "waiting");
    drain(&mut events);
    let body = leave(&s, &w2, "return").await;
    assert_eq!(body["state"]["status"], "returned");
    let fx = drain(&mut events);
    assert_eq!(promoted(&fx), vec!["carol"]);
    assert_eq!(hires(&fx), 0);
    assert_eq!(
        s.market.status(&AssignmentId::new(w2.assignment.as_str())),
        Some(AssignmentStatus::Returned)
    );

    // Rule 4: a waiting worker returns ⇒ nothing (the slot re-opens on the platform).
    let w4 = s.arrive("dave").await;
    assert_eq!(w4.state["status"], "waiting");
    drain(&mut events);
    leave(&s, &w4, "return").await;
    let fx = drain(&mut events);
    assert_eq!(hires(&fx), 0);
    assert!(promoted(&fx).is_empty());

    // Rule 1: a waiting worker submits ⇒ hire one.
    let w5 = s.arrive("erin").await;
    assert_eq!(w5.state["status"], "waiting");
    drain(&mut events);
    leave(&s, &w5, "submit").await;
    let fx = drain(&mut events);
    assert_eq!(hires(&fx), 1);
    assert!(promoted(&fx).is_empty());

    // Stop: everyone present is released; their pages hear it. A worker who took a slot
    // before the stop and lands after it is turned away, and told the job ended.
    let (ga, gh) = s.take("grace").await;
    let mut w3_stream = s.stream(&w3).await;
    assert_eq!(s.admin("POST", "/api/stop", None).await.0, 200);
    let released = w3_stream.until("released").await;
    assert_eq!(released["reason"], "job_stopped");
    let (status, body) = s
        .post(
            "/w/arrive",
            json!({"assignment_id": ga.as_str(), "hit_id": gh.as_str(), "worker_id": "grace"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["state"]["status"], "job_ended");

    // Heartbeats after leaving are refused with the page's state.
    let (status, body) = s.post("/w/heartbeat", TestServer::page_body(&w3)).await;
    assert_eq!(status, 409);
    assert_eq!(body["code"], "already_left");
    assert_eq!(body["state"]["status"], "released");

    // A reload after leaving learns how it ended (with its token again).
    let (status, body) = s
        .post(
            "/w/arrive",
            json!({"assignment_id": w1.assignment, "hit_id": w1.hit, "worker_id": "alice"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["state"]["status"], "submitted");
    assert!(body["token"].as_str().is_some_and(|t| !t.is_empty()));

    // No page ever heard another worker's ids.
    let names = ["alice", "bob", "carol", "dave", "erin", "grace"];
    for (stream, own) in [(&w1_stream, &w1), (&w2_stream, &w2), (&w3_stream, &w3)] {
        let raw = stream.raw.lock().unwrap().clone();
        assert!(raw.contains("event: state"), "{raw}");
        for p in [&w1, &w2, &w3, &w4, &w5] {
            if p.assignment != own.assignment {
                assert!(!raw.contains(&format!("\"{}\"", p.assignment)), "{raw}");
            }
        }
        for n in names {
            assert!(!raw.contains(n), "a page heard {n}: {raw}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_keep_a_page_and_polling_reads_the_same_state() {
    let mut cfg = small();
    cfg.min_waiting = 0;
    cfg.start = crowdcore::pavilion::StartCondition::Manual;
    let s = TestServer::start(cfg).await;
    s.admin("POST", "/api/start", None).await;
    let w = s.arrive("alice").await;
    for _ in 0..3 {
        let (status, body) = s.post("/w/heartbeat", TestServer::page_body(&w)).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["status"], "waiting");
        assert!(body["arrived_at"].as_u64().unwrap() <= body["now"].as_u64().unwrap());
    }
    let (status, polled) = s.poll(&w).await;
    assert_eq!(status, 200);
    assert_eq!(polled["status"], "waiting");
    // Manual start: the operator migrates; the page is promoted.
    let mut stream = s.stream(&w).await;
    assert_eq!(
        s.admin("POST", "/api/migrate", Some(json!({"count": 1})))
            .await
            .0,
        200
    );
    let active = stream.until("active").await;
    assert!(active["promoted_at"].as_u64().is_some());
    let (_, polled) = s.poll(&w).await;
    assert_eq!(polled["status"], "active");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_within_the_forward_gap_are_answered_without_an_input() {
    let mut cfg = small();
    cfg.start = crowdcore::pavilion::StartCondition::Manual;
    let s = TestServer::start_with(cfg, |h| h.heartbeat_forward_gap_ms = 3_600_000).await;
    s.admin("POST", "/api/start", None).await;
    let w = s.arrive("alice").await;
    let seen = || async { s.snapshot().await.waiting[0].last_seen };
    let (status, _) = s.post("/w/heartbeat", TestServer::page_body(&w)).await;
    assert_eq!(status, 200);
    let first = seen().await;
    for _ in 0..3 {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let (status, body) = s.post("/w/heartbeat", TestServer::page_body(&w)).await;
        assert_eq!((status, body["status"].as_str()), (200, Some("waiting")));
    }
    assert_eq!(
        seen().await,
        first,
        "no heartbeat within the gap reached the engine"
    );

    // Without a gap, each heartbeat is an input.
    let s = TestServer::start(small()).await;
    s.admin("POST", "/api/start", None).await;
    let w = s.arrive("bob").await;
    let before = s.snapshot().await.waiting[0].last_seen;
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    s.post("/w/heartbeat", TestServer::page_body(&w)).await;
    assert!(s.snapshot().await.waiting[0].last_seen > before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mturk_page_gets_the_platforms_submit_form_and_only_from_mturk() {
    let s = TestServer::start(small()).await;
    s.admin("POST", "/api/start", None).await;
    let (a, h) = s.take("alice").await;
    // A crafted link cannot make the page post its form elsewhere.
    let (status, body) = s
        .post(
            "/w/arrive",
            json!({"assignment_id": a.as_str(), "hit_id": h.as_str(), "worker_id": "alice",
                   "turk_submit_to": "https://evil.example"}),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("bad_submit_target"))
    );
    assert!(
        s.snapshot().await.waiting.is_empty(),
        "nothing was recorded"
    );
    let (status, body) = s
        .post(
            "/w/arrive",
            json!({"assignment_id": a.as_str(), "hit_id": h.as_str(), "worker_id": "alice",
                   "turk_submit_to": "https://workersandbox.mturk.com/"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let token = body["token"].as_str().unwrap();
    let (status, body) = s
        .post(
            "/w/submit",
            json!({"assignment_id": a.as_str(), "token": token, "contributions": 3}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["form"]["action"],
        "https://workersandbox.mturk.com/mturk/externalSubmit"
    );
    assert_eq!(
        body["form"]["fields"][0],
        json!(["assignmentId", a.as_str()])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_admin_route_works_with_the_key() {
    let s = TestServer::start(small()).await;
    // Before start.
    let (status, body) = s
        .admin("POST", "/api/migrate", Some(json!({"count": 1})))
        .await;
    assert_eq!((status, body["code"].as_str()), (409, Some("not_started")));
    let (status, body) = s.admin("POST", "/api/start", None).await;
    assert_eq!((status, body.clone()), (200, json!({"ok": true})));
    let (status, body) = s.admin("POST", "/api/start", Some(json!({}))).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("already_started"))
    );

    let w1 = s.arrive("alice").await;
    let _w2 = s.arrive("bob").await;

    let (status, snap) = s.admin("GET", "/api/snapshot", None).await;
    assert_eq!(status, 200);
    assert_eq!(snap["phase"], "running");
    assert_eq!(snap["active"][0]["worker"], "alice");

    let (status, st) = s.admin("GET", "/api/status", None).await;
    assert_eq!(status, 200);
    assert_eq!(
        st["status"]["active"][0]["assignment"],
        w1.assignment.as_str()
    );
    assert_eq!(st["status"]["waiting"][0]["worker"], "bob");
    assert!(st["history"].as_array().is_some());
    assert!(
        st["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["event"]["type"] == "promote"),
        "{st}"
    );

    // Targets: a good set, a bad set (refused, nothing changes), an unknown field.
    let t = json!({"min_active": 1, "max_active": 2, "min_waiting": 1, "max_waiting": 2});
    assert_eq!(s.admin("PUT", "/api/targets", Some(t)).await.0, 200);
    assert_eq!(s.snapshot().await.config.max_active, 2);
    let bad = json!({"min_active": 3, "max_active": 2, "min_waiting": 1, "max_waiting": 2});
    let (status, body) = s.admin("PUT", "/api/targets", Some(bad)).await;
    assert_eq!((status, body["code"].as_str()), (422, Some("bad_targets")));
    let extra =
        json!({"min_active": 1, "max_active": 2, "min_waiting": 1, "max_waiting": 2, "x": 1});
    let (status, body) = s.admin("PUT", "/api/targets", Some(extra)).await;
    assert_eq!((status, body["code"].as_str()), (422, Some("invalid_body")));
    assert_eq!(s.snapshot().await.config.max_active, 2);

    // Migrate moves bob up now that there is room.
    assert_eq!(
        s.admin("POST", "/api/migrate", Some(json!({"count": 5})))
            .await
            .0,
        200
    );
    assert_eq!(s.snapshot().await.active.len(), 2);

    // Expire closes the HITs; stop releases everyone and pays.
    assert_eq!(s.admin("POST", "/api/expire", None).await.0, 200);
    assert!(s.snapshot().await.hiring_closed);
    assert_eq!(s.admin("POST", "/api/stop", None).await.0, 200);
    let snap = s.snapshot().await;
    assert_eq!(snap.phase, Phase::Stopped);
    assert!(snap.departed.iter().all(|d| d.how == Departure::Released));
    let (status, body) = s.admin("POST", "/api/stop", None).await;
    assert_eq!((status, body["code"].as_str()), (409, Some("job_stopped")));

    let (status, ledger) = s.admin("GET", "/api/ledger", None).await;
    assert_eq!(status, 200);
    let ledger = ledger.as_array().unwrap().clone();
    assert!(
        ledger
            .iter()
            .any(|e| e["worker"] == "alice" && e["kind"] == "base")
    );
    let (status, board) = s.admin("GET", "/api/leaderboard", None).await;
    assert_eq!(status, 200);
    let board = board.as_array().unwrap();
    assert_eq!(board.len(), 2);
    assert_eq!(board[0]["rank"], 1);
    let paid: i64 = ledger
        .iter()
        .filter(|e| e["paid"] == true)
        .map(|e| e["amount"]["minor"].as_i64().unwrap())
        .sum();
    let ranked: i64 = board
        .iter()
        .map(|e| e["paid_cents"].as_i64().unwrap())
        .sum();
    assert_eq!(paid, ranked);

    // The status stream opens with the whole page.
    let r = s
        .client
        .get(s.url("/api/status/stream"))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let mut stream = support::Stream::of(r);
    let first = tokio::time::timeout(support::PATIENCE, async {
        loop {
            let raw = stream.raw.lock().unwrap().clone();
            if raw.contains("\n\n") {
                return raw;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap();
    assert!(first.starts_with("event: page\n"), "{first}");
    let _ = &mut stream;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_admin_is_reachable_without_the_key() {
    let s = TestServer::start(small()).await;
    let routes = [
        ("POST", "/api/start"),
        ("POST", "/api/stop"),
        ("POST", "/api/expire"),
        ("POST", "/api/migrate"),
        ("PUT", "/api/targets"),
        ("GET", "/api/snapshot"),
        ("GET", "/api/ledger"),
        ("GET", "/api/leaderboard"),
        ("GET", "/api/status"),
        ("GET", "/api/status/stream"),
    ];
    let before = s.snapshot().await;
    for (method, path) in routes {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let attempts = [
            None,
            Some(("authorization", "Bearer wrong-key-wrong-key".to_owned())),
            Some(("authorization", format!("bearer {ADMIN_KEY}"))),
            Some(("authorization", format!("Bearer {ADMIN_KEY}x"))),
            Some(("authorization", format!("Basic {ADMIN_KEY}"))),
            Some(("x-api-key", ADMIN_KEY[..ADMIN_KEY.len() - 1].to_owned())),
            Some(("cookie", format!("key={ADMIN_KEY}"))),
        ];
        for header in attempts {
            let mut r = s
                .client
                .request(m.clone(), s.url(path))
                .json(&json!({"count": 1, "min_active": 1, "max_active": 1, "min_waiting": 0, "max_waiting": 0}));
            if let Some((k, v)) = &header {
                r = r.header(*k, v);
            }
            let r = r.send().await.unwrap();
            assert_eq!(r.status(), 401, "{method} {path} with {header:?}");
            let body: Value = r.json().await.unwrap();
            assert_eq!(body["code"], "unauthorized");
        }
        // The key in the query string is not a way in either.
        let r = s
            .client
            .request(m.clone(), s.url(&format!("{path}?key={ADMIN_KEY}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
    }
    assert_eq!(s.snapshot().await, before, "nothing changed");
    // The X-Api-Key header is accepted.
    let r = s
        .client
        .get(s.url("/api/snapshot"))
        .header("x-api-key", ADMIN_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // The status page is static: it holds no data and no key.
    let html = s
        .client
        .get(s.url("/status"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("Operator sign-in"));
    assert!(!html.contains(before.session.as_str()));
    assert!(!html.contains(ADMIN_KEY));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_cannot_be_forged_or_reused_for_another_page() {
    let s = TestServer::start(small()).await;
    s.admin("POST", "/api/start", None).await;
    let w1 = s.arrive("alice").await;
    let w2 = s.arrive("bob").await;
    // Someone who learned alice's assignment cannot arrive on it as another worker: the
    // platform says it is alice's.
    let (status, body) = s
        .post(
            "/w/arrive",
            json!({"assignment_id": w1.assignment, "hit_id": w1.hit, "worker_id": "mallory"}),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("not_confirmed"))
    );
    assert!(body.get("token").is_none());

    // Nor can anyone take a seat with a made-up assignment on a real HIT, even under a real
    // worker's id: the platform does not confirm it.
    for (a, h, w) in [
        ("made-up", w1.hit.as_str(), "mallory"),
        ("made-up-too", w2.hit.as_str(), "bob"),
    ] {
        let (status, body) = s
            .post(
                "/w/arrive",
                json!({"assignment_id": a, "hit_id": h, "worker_id": w}),
            )
            .await;
        assert_eq!(
            (status, body["code"].as_str()),
            (403, Some("not_confirmed")),
            "{a}"
        );
    }

    let other_secret = crowdcore::http::Secret::new(b"another-secret-0123456789".to_vec()).unwrap();
    let claims = |worker: &str| TokenClaims {
        session: s.engine.session().clone(),
        assignment: AssignmentId::new(w1.assignment.as_str()),
        worker: WorkerId::new(worker),
        expires_at: Timestamp::from_millis(u64::MAX / 2),
    };
    let forged = [
        w2.token.clone(),                            // bob's token
        page_token(&other_secret, &claims("alice")), // wrong key
        page_token(&s.secret, &claims("bob")),       // alice's assignment, bob's name
        w1.token[..w1.token.len() - 2].to_owned(),   // truncated
        format!("{}00", w1.token),                   // extended
        altered(&w1.token),                          // one MAC digit changed
        String::new(),
        "not hex at all".to_owned(),
        "0".repeat(64),
    ];
    let before = s.snapshot().await;
    for token in &forged {
        let page = json!({"assignment_id": w1.assignment, "token": token});
        for path in ["/w/heartbeat", "/w/submit", "/w/return"] {
            let (status, body) = s.post(path, page.clone()).await;
            assert_eq!(
                (status, body["code"].as_str()),
                (403, Some("bad_token")),
                "{path}"
            );
        }
        let r = s
            .client
            .get(s.url("/w/state"))
            .query(&[("assignment_id", w1.assignment.as_str())])
            .header(crowdcore::http::PAGE_TOKEN_HEADER, token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "/w/state");
        // Nor does any page token (or forgery) open an event stream: only a ticket does.
        let r = s
            .client
            .get(s.url("/w/events"))
            .query(&[("assignment_id", w1.assignment.as_str()), ("ticket", token)])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "/w/events");
    }
    let r = s
        .client
        .get(s.url("/w/events"))
        .query(&[
            ("assignment_id", w1.assignment.as_str()),
            ("ticket", w1.token.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "a page token is not a ticket");
    let after = s.snapshot().await;
    assert_eq!(after, before, "no forged call reached the engine");
    assert_eq!(after.departed.len(), 0);
    // Each page's own token still works.
    let (status, _) = s.post("/w/heartbeat", TestServer::page_body(&w1)).await;
    assert_eq!(status, 200);
}

/// `token` with its last hex digit changed (always a different digit: an uppercase copy of a
/// token whose MAC happens to hold no `a`–`f` would decode to the same bytes).
fn altered(token: &str) -> String {
    let (head, last) = token.split_at(token.len() - 1);
    format!("{head}{}", if last == "0" { "1" } else { "0" })
}

/// A small deterministic generator, so the fuzz is the same on every run.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[(self.next() as usize) % xs.len()]
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_get_clear_4xx_and_change_nothing() {
    const LIMIT: usize = 4096;
    let s = TestServer::start_full(small(), |c| c.max_body_bytes = LIMIT, true).await;
    s.admin("POST", "/api/start", None).await;
    let spec = serde_json::to_value(support::spec()).unwrap();
    s.admin(
        "POST",
        "/api/templates",
        Some(json!({"template": "T", "spec": spec})),
    )
    .await;
    s.admin(
        "POST",
        "/api/reservations",
        Some(
            json!({"reservation": "R1", "template": "T", "foreign_id": "t",
                    "start_at_ms": 4_102_444_800_000u64, "needed": 1}),
        ),
    )
    .await;
    let reservations_before = s.admin("GET", "/api/reservations", None).await;
    let w1 = s.arrive("alice").await;
    let w2 = s.arrive("bob").await;
    let before = s.snapshot().await;
    let ghost = AssignmentId::new("ghost-assignment");
    let ghost_token = page_token(
        &s.secret,
        &TokenClaims {
            session: s.engine.session().clone(),
            assignment: ghost.clone(),
            worker: WorkerId::new("ghost"),
            expires_at: Timestamp::from_millis(u64::MAX / 2),
        },
    );

    let huge = "x".repeat(64 * 1024);
    let bodies: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"null".to_vec(),
        b"[]".to_vec(),
        b"{".to_vec(),
        b"\xff\xfe\xfd".to_vec(),
        b"{\"assignment_id\": \"\xff\xfe\"}".to_vec(),
        format!("{{\"assignment_id\": \"{huge}\", \"token\": \"t\"}}").into_bytes(),
        b"{\"assignment_id\": 5, \"token\": true}".to_vec(),
        b"{\"assignment_id\": null, \"token\": null}".to_vec(),
        format!("{{\"assignment_id\": \"{}\", \"token\": \"{}\", \"extra\": 1}}", w1.assignment, w1.token).into_bytes(),
        format!("{{\"assignment_id\": \"{}\", \"token\": \"{}\", \"contributions\": -1}}", w1.assignment, w1.token).into_bytes(),
        format!("{{\"assignment_id\": \"{}\", \"token\": \"{}\", \"contributions\": 1.5}}", w1.assignment, w1.token).into_bytes(),
        format!("{{\"assignment_id\": \"{}\", \"token\": \"{}\", \"contributions\": 99999999999}}", w1.assignment, w1.token).into_bytes(),
        format!("{{\"assignment_id\": \"{ghost}\", \"token\": \"{ghost_token}\"}}").into_bytes(),
        format!("{{\"assignment_id\": \"{}\", \"token\": \"{}\"}}", w1.assignment, w2.token).into_bytes(),
        b"{\"assignment_id\": \"a\\u0000b\", \"token\": \"00\"}".to_vec(),
        b"{\"assignment_id\": \"\", \"hit_id\": \"\", \"worker_id\": \"\"}".to_vec(),
        b"{\"assignment_id\": \"ASSIGNMENT_ID_NOT_AVAILABLE\", \"hit_id\": \"h\", \"worker_id\": \"w\"}".to_vec(),
        b"{\"assignment_id\": \"new-a\", \"hit_id\": \"no-such-hit\", \"worker_id\": \"w\"}".to_vec(),
        format!("{{\"assignment_id\": \"{}\", \"hit_id\": \"{}\", \"worker_id\": \"mallory\"}}", w2.assignment, w2.hit).into_bytes(),
        "[".repeat(10_000).into_bytes(),
        b"{\"count\": \"1\"}".to_vec(),
        b"{\"count\": -3}".to_vec(),
        b"{\"count\": 1, \"now\": 1}".to_vec(),
        b"{\"min_active\": \"x\"}".to_vec(),
        b"{\"min_active\": 5, \"max_active\": 1, \"min_waiting\": 0, \"max_waiting\": 0}".to_vec(),
        b"{\"min_active\": 0, \"max_active\": 0, \"min_waiting\": 0, \"max_waiting\": 0}".to_vec(),
        b"{\"unknown\": true}".to_vec(),
        b"{\"template\": \"T\", \"spec\": {\"title\": 1}}".to_vec(),
        b"{\"reservation\": \"R1\", \"template\": \"T\", \"foreign_id\": \"x\", \"start_at_ms\": 1, \"needed\": 1}".to_vec(),
        b"{\"reservation\": \"R3\", \"template\": \"T\", \"foreign_id\": \"x\", \"start_at_ms\": -1, \"needed\": 1}".to_vec(),
        b"{\"reservation\": \"R4\", \"template\": \"T\", \"foreign_id\": \"x\", \"start_at_ms\": 1, \"needed\": 0}".to_vec(),
        b"{\"template\": 7}".to_vec(),
        format!("{{\"assignment_id\": \"{}\", \"token\": \"{}\", \"kind\": \"dancing\"}}", w1.assignment, w1.token).into_bytes(),
    ];
    let posts = [
        "/w/arrive",
        "/w/heartbeat",
        "/w/submit",
        "/w/return",
        "/api/migrate",
        "/api/targets",
        "/api/start",
        "/api/templates",
        "/api/reservations",
        "/api/reservations/R9/invoke",
        "/api/reservations/R1/explode",
        "/api/reservations/finish_all",
        "/r/arrive",
        "/r/ping",
        "/r/gettask",
        "/r/submit",
        "/r/return",
    ];
    let queries = [
        "/w/state?assignment_id=%FF%FE&token=00".to_owned(),
        "/w/state?assignment_id=a".to_owned(),
        "/w/state?token=abc".to_owned(),
        format!("/w/state?assignment_id={ghost}&token={ghost_token}"),
        format!("/w/events?assignment_id={ghost}&ticket={ghost_token}"),
        format!(
            "/w/events?assignment_id={}&ticket={}",
            w1.assignment, w2.token
        ),
        format!(
            "/w/events?assignment_id={}&token={}",
            w1.assignment, w1.token
        ),
        "/w/events?assignment_id=a&token=b&x=%00".to_owned(),
        "/w/nowhere".to_owned(),
        "/api/nowhere".to_owned(),
        "/api/%FF".to_owned(),
        format!(
            "/w/state?assignment_id={}&token={}",
            "a".repeat(10_000),
            "0"
        ),
    ];
    let content_types = [
        "application/json",
        "application/json",
        "text/plain",
        "application/x-www-form-urlencoded",
        "",
    ];
    // A fresh connection per request: a connection the server closed after refusing an
    // oversized body must not be reused for the next case.
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let mut rng = Lcg(0x5eed);
    let cases = std::env::var("CROWDCORE_HTTP_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(400);
    let mut last_len;
    let mut last_method;
    for case in 0..cases {
        last_len = 0;
        let r = if rng.next().is_multiple_of(4) {
            let q = rng.pick(&queries).clone();
            let method = rng
                .pick(&["GET", "GET", "POST", "DELETE", "PATCH"])
                .to_owned();
            last_method = method;
            client
                .request(
                    reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
                    s.url(&q),
                )
                .send()
                .await
        } else {
            let path = *rng.pick(&posts);
            let body = rng.pick(&bodies).clone();
            last_len = body.len();
            let ct = *rng.pick(&content_types);
            let method = rng.pick(&["POST", "POST", "POST", "PUT", "GET"]).to_owned();
            last_method = method;
            let mut req = client
                .request(
                    reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
                    s.url(path),
                )
                .body(body);
            if !ct.is_empty() {
                req = req.header("content-type", ct);
            }
            if path.starts_with("/api/") {
                req = req.bearer_auth(ADMIN_KEY);
            }
            req.send().await
        };
        let r = match r {
            Ok(r) => r,
            // A body over the limit is answered 413 before it is read; the client may still
            // be writing it when the server closes the connection. The 413 itself is checked
            // below with a body the socket takes whole.
            Err(_) if last_len > LIMIT => continue,
            Err(e) => panic!("case {case}: the server dropped the request: {e}"),
        };
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        if status == 200 {
            // Only a well-formed request that changes nothing may pass: a read, or a heartbeat
            // of a present page (checked below: nothing changed).
            assert!(
                last_method == "GET" || text.contains("\"status\""),
                "case {case}: 200 with {text}"
            );
            continue;
        }
        assert!(
            (400..500).contains(&status),
            "case {case}: status {status}: {text}"
        );
        let body: Value =
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("case {case}: not JSON: {text}"));
        assert!(
            body["code"].as_str().is_some_and(|c| !c.is_empty()),
            "{body}"
        );
        assert!(body["message"].as_str().is_some(), "{body}");
    }
    // Just over the limit: a clear 413.
    for path in ["/w/heartbeat", "/w/arrive", "/api/migrate"] {
        let r = client
            .post(s.url(path))
            .bearer_auth(ADMIN_KEY)
            .header("content-type", "application/json")
            .body(format!("{{\"assignment_id\": \"{}\"}}", "y".repeat(LIMIT)))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 413, "{path}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["code"], "body_too_large");
    }
    assert_eq!(
        s.admin("GET", "/api/reservations", None).await,
        reservations_before,
        "no reservation changed"
    );
    let after = s.snapshot().await;
    // Heartbeats of present pages may have moved `last_seen` and the machine's clock; nothing
    // else may differ.
    let then = before.now;
    let strip = |mut snap: crowdcore::pavilion::Snapshot| {
        snap.now = then;
        for seat in snap.waiting.iter_mut().chain(snap.active.iter_mut()) {
            seat.last_seen = then;
        }
        snap
    };
    assert_eq!(strip(after), strip(before));
    assert!(!s.engine.is_finished());
    let _ = PavilionConfig::default();
}

// ----- the interim retainer routes --------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reservations_route_a_polling_worker_through_the_retainer_routes() {
    let s = TestServer::start_retainer().await;
    let spec = serde_json::to_value(support::spec()).unwrap();
    let (status, body) = s
        .admin(
            "POST",
            "/api/templates",
            Some(json!({"template": "T", "spec": spec})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = s
        .admin(
            "POST",
            "/api/templates",
            Some(json!({"template": "T", "spec": spec})),
        )
        .await;
    assert_eq!((status, body["code"].as_str()), (409, Some("duplicate")));
    let far = 4_102_444_800_000u64; // 2100: invoked by hand, not by time
    let (status, body) = s
        .admin(
            "POST",
            "/api/reservations",
            Some(
                json!({"reservation": "R1", "template": "T", "foreign_id": "task-42",
                        "payload": {"image": "cat.png"}, "start_at_ms": far, "needed": 1}),
            ),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = s
        .admin(
            "POST",
            "/api/reservations",
            Some(
                json!({"reservation": "R2", "template": "nope", "foreign_id": "x",
                        "start_at_ms": far, "needed": 1}),
            ),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("unknown_template"))
    );

    // The pool hired for R1; a worker takes the slot and lands on the retainer page.
    let (a, h) = s.take("alice").await;
    let (status, body) = s
        .post(
            "/r/arrive",
            json!({"assignment_id": a.as_str(), "hit_id": h.as_str(), "worker_id": "alice"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let token = body["token"].as_str().unwrap().to_owned();
    let page = json!({"assignment_id": a.as_str(), "token": token});
    let (status, body) = s
        .post(
            "/r/arrive",
            json!({"assignment_id": "made-up", "hit_id": h.as_str(), "worker_id": "alice"}),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("not_confirmed"))
    );
    let (status, body) = s.post("/r/gettask", page.clone()).await;
    assert_eq!((status, body.clone()), (200, json!({"task": null})));
    let mut ping = page.clone();
    ping["kind"] = json!("waiting");
    assert_eq!(s.post("/r/ping", ping).await.0, 200);

    // Someone else's token gets nothing.
    let forged = json!({"assignment_id": a.as_str(), "token": "00".repeat(32)});
    let (status, body) = s.post("/r/gettask", forged).await;
    assert_eq!((status, body["code"].as_str()), (403, Some("bad_token")));

    // Invoke: the polling worker is routed to the task.
    assert_eq!(
        s.admin("POST", "/api/reservations/R1/invoke", None).await.0,
        200
    );
    let (status, body) = s.post("/r/gettask", page.clone()).await;
    assert_eq!(status, 200);
    assert_eq!(body["task"]["task"], "task-42");
    assert_eq!(body["task"]["reservation"], "R1");
    assert_eq!(body["task"]["payload"], json!({"image": "cat.png"}));

    let (status, one) = s.admin("GET", "/api/reservations/R1", None).await;
    assert_eq!(status, 200);
    assert_eq!(one["state"], "invoked");
    assert_eq!(one["working"], 1);
    let (status, all) = s.admin("GET", "/api/reservations", None).await;
    assert_eq!(status, 200);
    assert_eq!(all.as_array().unwrap().len(), 1);

    // Lifecycle: finish, unfinish, finish all, then cancel; wrong steps are refused.
    assert_eq!(
        s.admin("POST", "/api/reservations/R1/finish", None).await.0,
        200
    );
    let (status, body) = s.admin("POST", "/api/reservations/R1/finish", None).await;
    assert_eq!((status, body["code"].as_str()), (409, Some("not_allowed")));
    assert_eq!(
        s.admin("POST", "/api/reservations/R1/unfinish", None)
            .await
            .0,
        200
    );
    assert_eq!(
        s.admin(
            "POST",
            "/api/reservations/finish_all",
            Some(json!({"template": "T"}))
        )
        .await
        .0,
        200
    );
    assert_eq!(
        s.admin("GET", "/api/reservations/R1", None).await.1["state"],
        "finished"
    );
    assert_eq!(
        s.admin("POST", "/api/reservations/R1/cancel", None).await.0,
        200
    );
    let (status, body) = s.admin("POST", "/api/reservations/R9/invoke", None).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("unknown_reservation"))
    );
    let (status, body) = s.admin("POST", "/api/reservations/R1/explode", None).await;
    assert_eq!((status, body["code"].as_str()), (404, Some("not_found")));

    // The routed worker submits; a second submit is refused as already left.
    let mut done = page.clone();
    done["contributions"] = json!(2);
    assert_eq!(s.post("/r/submit", done.clone()).await.0, 200);
    let (status, body) = s.post("/r/submit", done).await;
    assert_eq!((status, body["code"].as_str()), (409, Some("already_left")));

    // Nothing of it without the key.
    for (method, path) in [
        ("POST", "/api/templates"),
        ("POST", "/api/reservations"),
        ("GET", "/api/reservations"),
        ("GET", "/api/reservations/R1"),
        ("POST", "/api/reservations/R1/invoke"),
        ("POST", "/api/reservations/finish_all"),
    ] {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let r = s
            .client
            .request(m, s.url(path))
            .header("authorization", "Bearer not-the-admin-key")
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{method} {path}");
    }
}
