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
use crowdcore_toloka::{BlockPolicy, TolokaClient, TolokaPlatform, TolokaPlatformConfig};
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

/// Every update from `cursor` on, following pages until none come; returns them and the cursor.
async fn drain(
    p: &TolokaPlatform,
    mut cursor: Option<Cursor>,
) -> (Vec<AssignmentUpdate>, Option<Cursor>) {
    let mut all = Vec::new();
    for _ in 0..1_000 {
        let page = p.updates(cursor.as_ref()).await.unwrap();
        let empty = page.items.is_empty();
        all.extend(page.items);
        let moved = page.next != cursor;
        cursor = page.next;
        if empty && !moved {
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
    let patient = platform(&w, &pool, |c| c.time_lag = Duration::from_secs(10));
    let hit = eager.post(&spec("u"), 5, &key("post")).await.unwrap();

    // A is written at t+1s but the listing shows it only 5 s later; B at t+2s shows at once.
    w.clock.advance(1_000);
    w.fake.set_listing_lag(5_000);
    let a = w.fake.take(hit.as_str(), "wa").unwrap();
    w.clock.advance(1_000);
    w.fake.set_listing_lag(0);
    let b = w.fake.take(hit.as_str(), "wb").unwrap();
    w.clock.advance(1_000);

    let (eager_first, eager_cursor) = drain(&eager, None).await;
    let (patient_first, patient_cursor) = drain(&patient, None).await;
    assert_eq!(eager_first.len(), 1, "the eager cursor saw only B");
    assert!(patient_first.is_empty(), "the patient cursor waits");

    w.clock.advance(20_000);
    let (eager_rest, _) = drain(&eager, eager_cursor).await;
    let (patient_rest, _) = drain(&patient, patient_cursor).await;
    assert!(
        eager_rest.is_empty(),
        "A came in behind the eager cursor: missed"
    );
    let got: Vec<&str> = patient_rest.iter().map(|u| u.assignment.as_str()).collect();
    assert_eq!(got, [a.as_str(), b.as_str()]);
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
