//! `TolokaPlatform` (crowdcore's Platform over a pool) against the fake Toloka.

mod common;

use std::sync::Arc;
use std::time::Duration;

use axum::http::Method;
use common::*;
use crowdcore::model::{AssignmentId, HitId, HitSpec, Money, WorkerId};
use crowdcore::platform::{
    AssignmentStatus as Core, AssignmentUpdate, Cursor, IdempotencyKey, Platform, PlatformErrorKind,
};
use crowdcore_toloka::fake::{Fault, FaultPlan};
use crowdcore_toloka::{
    BlockPolicy, TolokaClient, TolokaPlatform, TolokaPlatformConfig, UpdatesCursor,
};
use serde_json::{Map, Value, json};

fn spec(url: &str) -> HitSpec {
    HitSpec {
        title: "Label a photo".into(),
        description: "Say what is in the photo".into(),
        keywords: vec![],
        reward: Money::usd_cents(5),
        assignment_duration_ms: 600_000,
        lifetime_ms: 86_400_000,
        max_assignments: 10,
        auto_approval_delay_ms: 86_400_000,
        qualifications: vec![],
        landing_url: if url.starts_with("https://") {
            url.into()
        } else {
            format!("https://tasks.example/{url}")
        },
        frame_height: 600,
    }
}

fn key(s: &str) -> IdempotencyKey {
    serde_json::from_value(json!(s)).unwrap()
}

fn platform(w: &World, pool: &str, tune: impl FnOnce(&mut TolokaPlatformConfig)) -> TolokaPlatform {
    let mut config = TolokaPlatformConfig::new(pool);
    config.clock = w.clock.clone();
    config.time_lag = Duration::ZERO;
    config.input = Arc::new(|s: &HitSpec| {
        let mut m = Map::new();
        m.insert("image".into(), Value::String(s.landing_url.clone()));
        m
    });
    tune(&mut config);
    TolokaPlatform::new(w.client.clone(), config)
}

/// Every update from `cursor` on: polls until the cursor stops moving with nothing new, or
/// fifty polls in a row bring nothing (a cursor re-reading its window keeps moving while the
/// clock stands still), as the engine's observer would over time.
async fn drain(
    p: &TolokaPlatform,
    mut cursor: Option<Cursor>,
) -> (Vec<AssignmentUpdate>, Option<Cursor>) {
    let mut all = Vec::new();
    let mut quiet = 0;
    for _ in 0..5_000 {
        let page = p.updates(cursor.as_ref()).await.unwrap();
        quiet = if page.items.is_empty() { quiet + 1 } else { 0 };
        all.extend(page.items);
        let moved = page.next != cursor;
        cursor = page.next;
        if quiet > 0 && !moved || quiet == 50 {
            return (all, cursor);
        }
    }
    panic!("updates never settled");
}

#[tokio::test]
async fn posting_creates_one_task_per_key_with_overlap_as_slots() {
    let w = world().await;
    let pool = w.fake.create_pool("prj", cents(5));
    let p = platform(&w, &pool, |_| {});
    let caps = p.capabilities();
    assert!(caps.returned_slots_reopen);
    assert!(caps.bonus_without_assignment);
    assert!(!caps.push_notifications);

    w.fake
        .inject(Some(Method::POST), "/tasks", Fault::LostAnswer, 1);
    let hit = p
        .post(&spec("https://img/1.png"), 3, &key("s/1"))
        .await
        .unwrap();
    let again = p
        .post(&spec("https://img/1.png"), 3, &key("s/1"))
        .await
        .unwrap();
    assert_eq!(hit, again);
    assert_eq!(w.fake.task_ids(&pool), [hit.as_str().to_owned()]);
    assert_eq!(w.fake.task_overlap(hit.as_str()), Some(3));
    assert_eq!(
        w.fake.task_input(hit.as_str()).unwrap()["image"],
        "https://img/1.png"
    );
    assert_eq!(w.fake.pool_status(&pool).as_deref(), Some("OPEN"));

    let other = p
        .post(&spec("https://img/2.png"), 1, &key("s/2"))
        .await
        .unwrap();
    assert_ne!(other, hit);
    assert_eq!(w.fake.task_count(), 2);
    // The operation id comes from the key: the same in a new process.
    let fresh = platform(&w, &pool, |_| {});
    assert_eq!(
        fresh.operation_id("post", &key("s/1")),
        p.operation_id("post", &key("s/1"))
    );
    assert_eq!(
        fresh
            .post(&spec("https://img/1.png"), 3, &key("s/1"))
            .await
            .unwrap(),
        hit
    );
    assert_eq!(w.fake.task_count(), 2);

    let err = p.post(&spec("x"), 0, &key("s/3")).await.unwrap_err();
    assert_eq!(err.kind, PlatformErrorKind::BadRequest);
    let bad = platform(&w, "no-such-pool", |_| {});
    let err = bad.post(&spec("x"), 1, &key("s/4")).await.unwrap_err();
    assert_eq!(err.kind, PlatformErrorKind::BadRequest, "{err}");
}

#[tokio::test]
async fn slots_are_added_once_per_key_and_expiry_stops_the_task() {
    let w = world().await;
    let pool = w.fake.create_pool("prj", cents(5));
    let p = platform(&w, &pool, |_| {});
    let hit = p.post(&spec("u"), 1, &key("post")).await.unwrap();
    w.fake
        .inject(Some(Method::PATCH), "/tasks/", Fault::LostAnswer, 1);
    p.add_slots(&hit, 2, &key("more")).await.unwrap();
    p.add_slots(&hit, 2, &key("more")).await.unwrap();
    assert_eq!(w.fake.task_overlap(hit.as_str()), Some(3));
    p.add_slots(&hit, 1, &key("more-2")).await.unwrap();
    assert_eq!(w.fake.task_overlap(hit.as_str()), Some(4));

    let a = w.fake.take(hit.as_str(), "w1").unwrap();
    w.fake.take(hit.as_str(), "w2").unwrap();
    w.fake.submit(&a, json!({})).unwrap();
    p.expire(&hit).await.unwrap();
    p.expire(&hit).await.unwrap();
    assert_eq!(
        w.fake.task_overlap(hit.as_str()),
        Some(2),
        "overlap cut to the slots taken"
    );
    assert!(w.fake.take(hit.as_str(), "w3").is_err());
    let err = p.expire(&HitId::new("nope")).await.unwrap_err();
    assert_eq!(err.kind, PlatformErrorKind::NotFound);
}

#[tokio::test]
async fn updates_report_every_change_once_in_time_order_and_the_cursor_survives_restart() {
    let w = world().await;
    let pool = w.fake.create_pool("prj", cents(5));
    let p = platform(&w, &pool, |c| c.page_size = 2);
    let hit = p.post(&spec("u"), 2, &key("post")).await.unwrap();
    w.clock.advance(1_000);
    let a = w.fake.take(hit.as_str(), "w1").unwrap();
    w.clock.advance(1_000);
    let b = w.fake.take(hit.as_str(), "w2").unwrap();
    w.clock.advance(1_000);
    w.fake.skip(&b).unwrap(); // the slot opens again
    w.clock.advance(1_000);
    let c = w.fake.take(hit.as_str(), "w3").unwrap();
    w.clock.advance(1_000);
    w.fake.submit(&a, json!({ "label": "cat" })).unwrap();

    let (first, cursor) = drain(&p, None).await;
    let seen: Vec<(String, Core)> = first
        .iter()
        .map(|u| (u.assignment.as_str().to_owned(), u.status))
        .collect();
    assert_eq!(
        seen,
        [
            (a.clone(), Core::Accepted),
            (b.clone(), Core::Accepted),
            (b.clone(), Core::Returned),
            (c.clone(), Core::Accepted),
            (a.clone(), Core::Submitted),
        ]
    );
    assert!(first.iter().all(|u| u.hit == hit));
    assert_eq!(first[0].worker, WorkerId::new("w1"));
    assert!(first.windows(2).all(|x| x[0].at <= x[1].at));

    // A new process with the stored cursor sees only what happened since.
    w.clock.advance(1_000);
    p.approve(&AssignmentId::new(a.as_str()), &key("ok-a"))
        .await
        .unwrap();
    w.clock.advance(1_000);
    w.fake.expire(&c).unwrap();
    let stored = serde_json::to_string(&cursor).unwrap();
    let restarted = platform(&w, &pool, |c| c.page_size = 2);
    let (second, _) = drain(&restarted, serde_json::from_str(&stored).unwrap()).await;
    let seen: Vec<(String, Core)> = second
        .iter()
        .map(|u| (u.assignment.as_str().to_owned(), u.status))
        .collect();
    assert_eq!(
        seen,
        [(a.clone(), Core::Approved), (c.clone(), Core::Abandoned)]
    );
    let bad = p
        .updates(Some(&Cursor("{not json".into())))
        .await
        .unwrap_err();
    assert_eq!(bad.kind, PlatformErrorKind::BadRequest);
}

#[tokio::test]
async fn a_page_full_of_one_timestamp_is_paged_by_id_without_loss_or_repeats() {
    let w = world().await;
    let pool = w.fake.create_pool("prj", cents(5));
    let p = platform(&w, &pool, |c| c.page_size = 3);
    let hit = p.post(&spec("u"), 10, &key("post")).await.unwrap();
    // Ten workers take the task in the same millisecond; five submit in the next one.
    let ids: Vec<String> = (0..10)
        .map(|n| w.fake.take(hit.as_str(), &format!("w{n}")).unwrap())
        .collect();
    w.clock.advance(1);
    for a in &ids[..5] {
        w.fake.submit(a, json!({})).unwrap();
    }
    let (updates, cursor) = drain(&p, None).await;
    let created: Vec<&str> = updates
        .iter()
        .filter(|u| u.status == Core::Accepted)
        .map(|u| u.assignment.as_str())
        .collect();
    let submitted: Vec<&str> = updates
        .iter()
        .filter(|u| u.status == Core::Submitted)
        .map(|u| u.assignment.as_str())
        .collect();
    assert_eq!(created, ids.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(
        submitted,
        ids[..5].iter().map(String::as_str).collect::<Vec<_>>()
    );
    // Nothing new: nothing more, however often it is asked.
    let (more, _) = drain(&p, cursor).await;
    assert!(more.is_empty(), "{more:?}");
    // The id paging really happened.
    assert!(
        calls(&w.fake, "GET", "/assignments")
            .iter()
            .any(|r| r.param("id_gt").is_some() && r.param("sort") == Some("id"))
    );
}

#[tokio::test]
async fn the_time_lag_catches_events_that_a_lagging_listing_shows_late() {
    let w = world().await;
    let pool = w.fake.create_pool("prj", cents(5));
    let eager = platform(&w, &pool, |c| c.time_lag = Duration::ZERO);
    let patient = platform(&w, &pool, |c| {
        c.time_lag = Duration::from_secs(10);
        c.page_size = 1; // so it catches up page by page, past A's time
    });
    let hit = eager.post(&spec("u"), 5, &key("post")).await.unwrap();

    // A is written at t+1s but the listing shows it only 5 s later; B at t+2s and C at t+2.5s
    // show at once. Both cursors are read at t+3s, when A is not listed yet.
    w.clock.advance(1_000);
    w.fake.set_listing_lag(5_000);
    let a = w.fake.take(hit.as_str(), "wa").unwrap();
    w.clock.advance(1_000);
    w.fake.set_listing_lag(0);
    let b = w.fake.take(hit.as_str(), "wb").unwrap();
    w.clock.advance(500);
    let c = w.fake.take(hit.as_str(), "wc").unwrap();
    w.clock.advance(500);

    let (eager_first, eager_cursor) = drain(&eager, None).await;
    let (patient_first, patient_cursor) = drain(&patient, None).await;
    let ids = |u: &[AssignmentUpdate]| -> Vec<String> {
        u.iter().map(|u| u.assignment.as_str().to_owned()).collect()
    };
    // Both report B and C at once: the cursor reads up to now.
    assert_eq!(ids(&eager_first), [b.clone(), c.clone()]);
    assert_eq!(ids(&patient_first), [b.clone(), c.clone()]);

    w.clock.advance(20_000);
    let (eager_rest, _) = drain(&eager, eager_cursor).await;
    let (patient_rest, patient_cursor) = drain(&patient, patient_cursor).await;
    assert!(
        eager_rest.is_empty(),
        "A came in behind the eager cursor: missed"
    );
    // The patient cursor re-read its 10 s window: A, once, and B and C not again.
    assert_eq!(ids(&patient_rest), std::slice::from_ref(&a));
    assert_eq!(patient_rest[0].at.as_millis(), START_MS + 1_000);
    // Past the window the cursor forgets what it reported: it stays small.
    let kept = UpdatesCursor::decode(&patient_cursor.unwrap()).unwrap();
    assert!(kept.fields.values().all(|f| f.seen.is_empty()), "{kept:?}");
}

#[tokio::test]
async fn reviews_bonuses_blocks_and_skills_through_the_platform() {
    let w = world().await;
    let pool = w.fake.create_pool("prj", cents(30));
    let skill = w.fake.create_skill("quality");
    let p = platform(&w, &pool, |c| {
        c.block = BlockPolicy::Pool;
        c.block_for = Some(Duration::from_secs(3_600));
        c.accept_comment = "Thank you".into();
    });
    let start = p.balance().await.unwrap();
    assert_eq!(start, Money::usd_cents(100_000));
    let hit = p.post(&spec("u"), 3, &key("post")).await.unwrap();
    let a = w.fake.take(hit.as_str(), "w1").unwrap();
    let b = w.fake.take(hit.as_str(), "w2").unwrap();
    w.fake.submit(&a, json!({ "label": "cat" })).unwrap();
    w.fake.submit(&b, json!({ "label": "dog" })).unwrap();
    let (a_id, b_id) = (AssignmentId::new(a.as_str()), AssignmentId::new(b.as_str()));

    p.approve(&a_id, &key("approve-a")).await.unwrap();
    p.approve(&a_id, &key("approve-a")).await.unwrap();
    assert_eq!(w.fake.assignment_comment(&a).as_deref(), Some("Thank you"));
    p.reject(&b_id, "Not a dog", &key("reject-b"))
        .await
        .unwrap();
    let err = p.approve(&b_id, &key("approve-b")).await.unwrap_err();
    assert_eq!(err.kind, PlatformErrorKind::Conflict);
    assert_eq!(err.code, "ALREADY_REVIEWED");

    let w1 = WorkerId::new("w1");
    w.fake
        .inject(Some(Method::POST), "/user-bonuses", Fault::Unavailable, 1);
    w.fake
        .inject(Some(Method::GET), "/operations/", Fault::LostAnswer, 1);
    p.bonus(
        &w1,
        Some(&a_id),
        Money::usd_cents(12),
        "Fast and right",
        &key("bonus-1"),
    )
    .await
    .unwrap();
    p.bonus(
        &w1,
        Some(&a_id),
        Money::usd_cents(12),
        "Fast and right",
        &key("bonus-1"),
    )
    .await
    .unwrap();
    p.bonus(&w1, None, Money::usd_cents(7), "", &key("bonus-2"))
        .await
        .unwrap();
    let bonuses = w.fake.bonuses();
    assert_eq!(bonuses.len(), 2);
    assert_eq!(bonuses[0]["amount"], json!(0.12));
    assert_eq!(bonuses[0]["public_message"]["EN"], "Fast and right");
    assert_eq!(bonuses[0]["private_comment"], "bonus-1");
    assert_eq!(bonuses[1]["without_message"], true);
    let err = p
        .bonus(
            &w1,
            None,
            Money::new(5, "EUR".parse_currency()),
            "x",
            &key("bonus-3"),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind, PlatformErrorKind::BadRequest);
    assert_eq!(
        p.balance().await.unwrap(),
        Money::usd_cents(100_000 - 30 - 12 - 7)
    );

    p.block(&WorkerId::new("w3"), "spam").await.unwrap();
    let r = &w.fake.restrictions()[0];
    assert_eq!(r["scope"], "POOL");
    assert_eq!(r["pool_id"], pool.as_str());
    assert_eq!(r["private_comment"], "spam");
    assert_eq!(r["will_expire"], "2024-05-01T01:00:00.000");
    assert!(w.fake.take(hit.as_str(), "w3").is_err());

    p.grant_qualification(&w1, &skill, 80).await.unwrap();
    p.grant_qualification(&w1, &skill, 90).await.unwrap();
    let skills = w.fake.user_skills();
    assert_eq!(skills.len(), 1);
    assert_eq!(skills[0]["value"], 90);
    assert_eq!(
        p.grant_qualification(&w1, &skill, 101)
            .await
            .unwrap_err()
            .kind,
        PlatformErrorKind::BadRequest
    );
    p.revoke_qualification(&w1, &skill).await.unwrap();
    p.revoke_qualification(&w1, &skill).await.unwrap();
    assert!(w.fake.user_skills().is_empty());

    p.notify(std::slice::from_ref(&w1), "News", "More work tomorrow")
        .await
        .unwrap();
    let m = &w.fake.messages()[0];
    assert_eq!(m["recipients_ids"], json!(["w1"]));
    assert_eq!(m["topic"]["EN"], "News");
}

trait ParseCurrency {
    fn parse_currency(self) -> crowdcore::model::Currency;
}

impl ParseCurrency for &str {
    fn parse_currency(self) -> crowdcore::model::Currency {
        crowdcore::model::Currency::new(self).unwrap()
    }
}

#[tokio::test]
async fn every_effect_resent_under_seeded_faults_happens_once() {
    let w = world_with(|c| {
        c.faults = FaultPlan::seeded(7, 300);
        c.operation_polls = 1;
    })
    .await;
    let mut config = client_config(&w.fake);
    config.retry.max_attempts = 30;
    let client = TolokaClient::new(config).unwrap();
    let pool = w.fake.create_pool("prj", cents(5));
    let mut pc = TolokaPlatformConfig::new(&pool);
    pc.clock = w.clock.clone();
    pc.time_lag = Duration::ZERO;
    let p = TolokaPlatform::new(client, pc);
    let mut hits = Vec::new();
    for n in 0..6 {
        // Each effect is sent twice, as a driver does after a crash before recording it.
        let k = key(&format!("post/{n}"));
        let first = p.post(&spec(&format!("u{n}")), 2, &k).await.unwrap();
        assert_eq!(p.post(&spec(&format!("u{n}")), 2, &k).await.unwrap(), first);
        hits.push(first);
    }
    w.fake
        .work(&pool, &["w1", "w2"], |_, _| json!({ "ok": true }));
    let (updates, _) = drain(&p, None).await;
    let submitted: Vec<_> = updates
        .iter()
        .filter(|u| u.status == Core::Submitted)
        .collect();
    assert_eq!(submitted.len(), 12);
    for (i, u) in submitted.iter().enumerate() {
        let k = key(&format!("review/{i}"));
        p.approve(&u.assignment, &k).await.unwrap();
        p.approve(&u.assignment, &k).await.unwrap();
        let k = key(&format!("bonus/{i}"));
        p.bonus(
            &u.worker,
            Some(&u.assignment),
            Money::usd_cents(2),
            "thanks",
            &k,
        )
        .await
        .unwrap();
        p.bonus(
            &u.worker,
            Some(&u.assignment),
            Money::usd_cents(2),
            "thanks",
            &k,
        )
        .await
        .unwrap();
    }
    assert!(w.fake.faults_injected() > 20);
    assert_eq!(w.fake.task_count(), 6);
    assert_eq!(w.fake.bonuses().len(), 12);
    assert_eq!(w.fake.charged(), cents(12 * 5 + 12 * 2));
    assert!(
        hits.iter()
            .all(|h| w.fake.task_overlap(h.as_str()) == Some(2))
    );
}

/// A small deterministic generator (xorshift64*), so the test needs no RNG crate API.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n.max(1)
    }
}

#[tokio::test]
async fn under_random_listing_delays_within_the_lag_every_event_is_reported_exactly_once() {
    for seed in 1..=6_u64 {
        let w = world().await;
        let pool = w.fake.create_pool("prj", cents(5));
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let lag_ms = 5_000;
        let p = platform(&w, &pool, |c| {
            c.time_lag = Duration::from_millis(lag_ms);
            c.page_size = 1 + rng.below(3) as u32;
        });
        let hit = p.post(&spec("u"), 200, &key("post")).await.unwrap();
        let mut expected = Vec::new();
        let mut active: Vec<String> = Vec::new();
        let mut reported = Vec::new();
        let mut cursor = None;
        for step in 0..80 {
            w.clock.advance(rng.below(1_500));
            // Each write shows in listings after its own delay, at most the platform's lag.
            w.fake.set_listing_lag(rng.below(lag_ms + 1));
            match rng.below(4) {
                0 | 1 => {
                    let a = w.fake.take(hit.as_str(), &format!("w{step}")).unwrap();
                    expected.push((a.clone(), Core::Accepted));
                    active.push(a);
                }
                _ if !active.is_empty() => {
                    let a = active.swap_remove(rng.below(active.len() as u64) as usize);
                    let status = match rng.below(3) {
                        0 => {
                            w.fake.submit(&a, json!({})).unwrap();
                            Core::Submitted
                        }
                        1 => {
                            w.fake.skip(&a).unwrap();
                            Core::Returned
                        }
                        _ => {
                            w.fake.expire(&a).unwrap();
                            Core::Abandoned
                        }
                    };
                    expected.push((a, status));
                }
                _ => {}
            }
            if rng.below(2) == 0 {
                let page = p.updates(cursor.as_ref()).await.unwrap();
                reported.extend(page.items);
                cursor = page.next;
            }
        }
        w.clock.advance(2 * lag_ms);
        let (rest, _) = drain(&p, cursor).await;
        reported.extend(rest);
        let mut got: Vec<(String, Core)> = reported
            .iter()
            .map(|u| (u.assignment.as_str().to_owned(), u.status))
            .collect();
        got.sort_by(|a, b| (&a.0, a.1 as u8).cmp(&(&b.0, b.1 as u8)));
        expected.sort_by(|a, b| (&a.0, a.1 as u8).cmp(&(&b.0, b.1 as u8)));
        assert_eq!(got, expected, "seed {seed}");
    }
}

#[tokio::test]
async fn an_assignment_is_read_back_with_its_worker_task_and_status() {
    let w = world().await;
    let pool = w.fake.create_pool("prj", cents(5));
    let p = platform(&w, &pool, |_| {});
    assert!(p.capabilities().confirms_assignments);
    let hit = p.post(&spec("img/1"), 2, &key("a/1")).await.unwrap();
    let a = w.fake.take(hit.as_str(), "w7").unwrap();

    // A made-up id (and an empty one, which is not even sent) is no assignment.
    for id in ["made-up", "", "../pools/1"] {
        let before = w.fake.request_count();
        assert_eq!(p.assignment(&AssignmentId::new(id)).await.unwrap(), None);
        if id.is_empty() {
            assert_eq!(w.fake.request_count(), before);
        }
    }

    let p = &p;
    let read = |id: &str| {
        let id = AssignmentId::new(id);
        async move { p.assignment(&id).await.unwrap().expect("the assignment") }
    };
    let record = read(&a).await;
    assert_eq!(record.assignment, AssignmentId::new(a.as_str()));
    assert_eq!(record.worker, WorkerId::new("w7"));
    // The HIT is the task, as `post` and `updates` name it; the pool is every HIT's.
    assert_eq!(record.hit, hit);
    assert_eq!(record.status, Core::Accepted);
    assert!(record.confirms(&WorkerId::new("w7"), &hit));
    assert!(!record.confirms(&WorkerId::new("w8"), &hit));
    assert!(!record.confirms(&WorkerId::new("w7"), &HitId::new(pool.as_str())));
    let sent = calls(&w.fake, "GET", "/assignments/").pop().unwrap();
    assert_eq!(sent.path, format!("/assignments/{a}"));

    // Every Toloka status, mapped.
    w.fake.submit(&a, json!({ "label": "cat" })).unwrap();
    assert_eq!(read(&a).await.status, Core::Submitted);
    p.approve(&AssignmentId::new(a.as_str()), &key("ap/1"))
        .await
        .unwrap();
    assert_eq!(read(&a).await.status, Core::Approved);
    let b = w.fake.take(hit.as_str(), "w8").unwrap();
    w.fake.submit(&b, json!({ "label": "dog" })).unwrap();
    p.reject(&AssignmentId::new(b.as_str()), "wrong", &key("rj/1"))
        .await
        .unwrap();
    assert_eq!(read(&b).await.status, Core::Rejected);
    let other = p.post(&spec("img/2"), 2, &key("a/2")).await.unwrap();
    let c = w.fake.take(other.as_str(), "w9").unwrap();
    w.fake.skip(&c).unwrap();
    assert_eq!(read(&c).await.status, Core::Returned);
    let d = w.fake.take(other.as_str(), "w9").unwrap();
    w.fake.expire(&d).unwrap();
    let record = read(&d).await;
    assert_eq!(record.status, Core::Abandoned);
    assert_eq!(record.hit, other);
    assert!(!record.confirms(&WorkerId::new("w9"), &other));
}

#[tokio::test]
async fn an_assignment_lookup_retries_briefly_and_its_faults_stay_retryable() {
    let w = world().await;
    let pool = w.fake.create_pool("prj", cents(5));
    let hit = {
        let p = platform(&w, &pool, |_| {});
        p.post(&spec("img/1"), 1, &key("b/1")).await.unwrap()
    };
    let a = AssignmentId::new(w.fake.take(hit.as_str(), "w1").unwrap());
    // The lookup's own budget (the defaults, with the sleeps shortened for the test).
    let p = platform(&w, &pool, |c| {
        c.lookup_retry.base_delay = Duration::from_millis(2);
        c.lookup_retry.max_delay = Duration::from_millis(4);
    });
    assert_eq!(p.config().lookup_retry.max_attempts, 3);

    // A fault or two is retried within the budget.
    w.fake
        .inject(Some(Method::GET), "/assignments/", Fault::Unavailable, 1);
    w.fake
        .inject(Some(Method::GET), "/assignments/", Fault::Throttle, 1);
    assert_eq!(
        p.assignment(&a).await.unwrap().unwrap().worker,
        WorkerId::new("w1")
    );

    // More than the budget holds: a retryable error, after three tries.
    for (fault, kind) in [
        (Fault::Unavailable, PlatformErrorKind::Unavailable),
        (Fault::LostAnswer, PlatformErrorKind::Unavailable),
        (Fault::Throttle, PlatformErrorKind::Throttled),
    ] {
        w.fake
            .inject(Some(Method::GET), "/assignments/", fault, 100);
        let before = w.fake.request_count();
        let err = p.assignment(&a).await.unwrap_err();
        assert_eq!(err.kind, kind, "{fault:?}: {err}");
        assert!(err.is_retryable(), "{fault:?}: {err}");
        assert_eq!(w.fake.request_count() - before, 3, "{fault:?}");
        w.fake.clear_faults();
    }

    // A 429 asking for two minutes (which the client's own policy would sleep) and a spent
    // daily quota come back at once, retryable.
    let p = platform(&w, &pool, |_| {});
    for fault in [Fault::LongThrottle, Fault::QuotaExhausted] {
        w.fake.inject(Some(Method::GET), "/assignments/", fault, 1);
        let started = std::time::Instant::now();
        let err = p.assignment(&a).await.unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(5), "{fault:?}");
        assert_eq!(err.kind, PlatformErrorKind::Throttled, "{fault:?}: {err}");
        assert!(err.is_retryable());
    }
    assert_eq!(
        p.assignment(&a).await.unwrap().unwrap().status,
        Core::Accepted
    );
}
