//! ProlificPlatform against the fake Prolific: studies, places, arrivals, updates, reviews,
//! bonuses, messages, blocks, balance — and exactly once under lost answers and crashes.

mod common;

use std::sync::Arc;

use common::*;
use crowdcore::model::{AssignmentId, HitId, Money, QualificationRequirement, WorkerId};
use crowdcore::platform::{AssignmentStatus, Cursor, IdempotencyKey, Platform, PlatformErrorKind};
use crowdcore::store::{MemoryStore, Store};
use crowdcore::testkit::spec;
use crowdcore_prolific::fake::Fault;
use crowdcore_prolific::{BonusRecord, UpdatesCursor};
use reqwest::Method;

fn key(n: u32) -> IdempotencyKey {
    IdempotencyKey::for_effect(&crowdcore::model::EffectId::new(
        crowdcore::model::SessionId::new("s"),
        u64::from(n),
    ))
}

fn places(w: &World, study: &HitId) -> (u64, String) {
    let s = w.fake.study(study.as_str()).expect("study");
    (
        s["total_available_places"].as_u64().unwrap(),
        s["status"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn posts_share_one_study_whose_places_only_grow() {
    let w = world().await;
    let p = w.platform("sess-a");
    let hit = p.post(&spec(), 2, &key(1)).await.unwrap();
    assert_eq!(places(&w, &hit), (2, "ACTIVE".into()));
    let body = w.fake.study(hit.as_str()).unwrap();
    let url = body["external_study_url"].as_str().unwrap();
    assert_eq!(
        url,
        "https://example.org/task?PROLIFIC_PID={{%PROLIFIC_PID%}}&STUDY_ID={{%STUDY_ID%}}&SESSION_ID={{%SESSION_ID%}}"
    );
    assert_eq!(body["reward"], 50);
    assert_eq!(body["naivety_distribution_rate"], 0.0);
    assert_eq!(body["maximum_allowed_time"], 60);
    assert_eq!(
        body["internal_name"],
        format!("crowdcore:sess-a:{}", key(1))
    );
    assert_eq!(
        body["completion_codes"][0]["actions"][0]["action"],
        "MANUALLY_REVIEW"
    );

    // A later hire raises the same study; repeating its key raises nothing more.
    assert_eq!(p.post(&spec(), 3, &key(2)).await.unwrap(), hit);
    assert_eq!(places(&w, &hit).0, 5);
    assert_eq!(p.post(&spec(), 3, &key(2)).await.unwrap(), hit);
    assert_eq!(places(&w, &hit).0, 5);

    // An expiry pauses it; the next hire starts it again with places for what it asks.
    p.expire(&hit).await.unwrap();
    p.expire(&hit).await.unwrap();
    assert_eq!(places(&w, &hit), (5, "PAUSED".into()));
    let s1 = w.fake.start_submission(hit.as_str(), "p1");
    assert!(s1.is_err(), "a paused study takes nobody");
    assert_eq!(p.post(&spec(), 1, &key(3)).await.unwrap(), hit);
    // Nobody holds a place, five are free: the free places cover the hire (none added).
    assert_eq!(places(&w, &hit), (5, "ACTIVE".into()));
    assert_eq!(w.fake.studies_created("crowdcore:sess-a"), 1);
}

#[tokio::test]
async fn a_lost_creation_is_found_again_not_created_twice() {
    let w = world().await;
    // The study is created, then its answer is lost (more times than the client retries
    // would matter for, since creation is never repeated blindly).
    w.fake
        .inject(Some(Method::POST), "/api/v1/studies/", Fault::LostAnswer, 1);
    let p = w.platform("sess-b");
    let err = p.post(&spec(), 2, &key(1)).await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert_eq!(w.fake.study_ids().len(), 1);
    // The engine re-sends with the same key, or a restarted process does: found by name.
    let fresh = w.platform("sess-b");
    let hit = fresh.post(&spec(), 2, &key(1)).await.unwrap();
    assert_eq!(places(&w, &hit), (2, "ACTIVE".into()));
    assert_eq!(w.fake.studies_created("crowdcore:sess-b"), 1);
}

#[tokio::test]
async fn a_lost_raise_is_not_applied_twice_across_a_restart() {
    let w = world().await;
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let p = w.platform_on("sess-c", store.clone());
    let hit = p.post(&spec(), 2, &key(1)).await.unwrap();
    w.fake.inject(
        Some(Method::PATCH),
        "/api/v1/studies/",
        Fault::LostAnswer,
        20,
    );
    assert!(p.post(&spec(), 3, &key(2)).await.is_err());
    assert_eq!(places(&w, &hit).0, 5, "raised once, answer lost");
    // A restart: a new platform on the same store, same key.
    let again = w.platform_on("sess-c", store);
    w.fake.inject(None, "/api/v1/", Fault::Throttle, 0);
    let _ = again.post(&spec(), 3, &key(2)).await; // the remaining lost answers may fail it
    assert_eq!(places(&w, &hit).0, 5, "the recorded target is absolute");
}

#[tokio::test]
async fn funds_are_checked_before_publishing() {
    let w = world_with(|c| c.balance = 60).await;
    let p = w.platform("sess-d");
    let err = p.post(&spec(), 2, &key(1)).await.unwrap_err();
    assert_eq!(err.kind, PlatformErrorKind::InsufficientFunds, "{err}");
    assert!(w.fake.study_ids().is_empty(), "nothing was created");
    assert_eq!(p.balance().await.unwrap(), Money::usd_cents(60));

    let w = world().await;
    let mut config = w.config("sess-e");
    config.budget = Some(Money::usd_cents(5_000_000));
    let p = crowdcore_prolific::ProlificPlatform::new(w.client.clone(), config);
    let err = p.post(&spec(), 1, &key(1)).await.unwrap_err();
    assert_eq!(err.kind, PlatformErrorKind::InsufficientFunds);
    assert!(err.message.contains("50000.00"), "{err}");
}

#[tokio::test]
async fn qualifications_become_filters_or_fail_the_post() {
    let w = world().await;
    let mut s = spec();
    s.qualifications = vec![
        QualificationRequirement::ApprovalRate { min_percent: 95 },
        QualificationRequirement::ApprovedCount { min: 100 },
    ];
    let p = w.platform("sess-f");
    let hit = p.post(&s, 1, &key(1)).await.unwrap();
    let filters = w.fake.study(hit.as_str()).unwrap()["filters"].clone();
    assert_eq!(filters[0]["filter_id"], "approval_rate");
    assert_eq!(filters[0]["selected_range"]["lower"], 95);
    assert_eq!(filters[1]["filter_id"], "approval_numbers");
    assert_eq!(filters[2]["filter_id"], "participant_group_blocklist");

    s.qualifications = vec![QualificationRequirement::Locale {
        countries: vec!["GB".into()],
    }];
    let err = w.platform("sess-g").post(&s, 1, &key(1)).await.unwrap_err();
    assert_eq!(err.kind, PlatformErrorKind::BadRequest);
    assert!(err.message.contains("GB"), "{err}");
}

#[tokio::test]
async fn arrivals_are_confirmed_and_updates_reported_once() {
    let w = world().await;
    let p = w.platform("sess-h");
    let hit = p.post(&spec(), 8, &key(1)).await.unwrap();
    let mut subs = Vec::new();
    for i in 0..7 {
        subs.push(
            w.fake
                .start_submission(hit.as_str(), &format!("p{i}"))
                .unwrap(),
        );
    }
    // Confirmation: the submission exists, is that participant's, on that study, ACTIVE.
    let rec = p
        .assignment(&AssignmentId::new(&subs[0]))
        .await
        .unwrap()
        .unwrap();
    assert!(rec.confirms(&WorkerId::new("p0"), &hit));
    assert!(!rec.confirms(&WorkerId::new("p1"), &hit));
    assert!(
        p.assignment(&AssignmentId::new("nope"))
            .await
            .unwrap()
            .is_none()
    );

    let mut cursor: Option<Cursor> = None;
    let poll = async |cursor: &mut Option<Cursor>| {
        let page = p.updates(cursor.as_ref()).await.unwrap();
        *cursor = page.next;
        page.items
            .into_iter()
            .map(|u| (u.assignment.as_str().to_owned(), u.status))
            .collect::<Vec<_>>()
    };
    let first = poll(&mut cursor).await;
    assert_eq!(
        first.len(),
        7,
        "seven pages of three and one: every submission"
    );
    assert!(first.iter().all(|(_, s)| *s == AssignmentStatus::Accepted));
    assert!(poll(&mut cursor).await.is_empty(), "nothing twice");

    w.fake.complete(&subs[0], "X").unwrap();
    w.fake.return_submission(&subs[1]).unwrap();
    w.fake.time_out(&subs[2]).unwrap();
    let mut second = poll(&mut cursor).await;
    second.sort_by(|a, b| a.0.cmp(&b.0));
    let mut want = vec![
        (subs[0].clone(), AssignmentStatus::Submitted),
        (subs[1].clone(), AssignmentStatus::Returned),
        (subs[2].clone(), AssignmentStatus::Abandoned),
    ];
    want.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(second, want);
    assert!(poll(&mut cursor).await.is_empty());
    // A returned place is free again on Prolific's side.
    assert!(p.capabilities().returned_slots_reopen);
    // Eight places, five held (seven started, two gave theirs back): three free.
    for p in ["p8", "p9", "p10"] {
        w.fake.start_submission(hit.as_str(), p).unwrap();
    }
    assert!(
        w.fake.start_submission(hit.as_str(), "p11").is_err(),
        "full"
    );
    // The cursor survives being stored as text.
    let text = cursor.clone().unwrap();
    let decoded = UpdatesCursor::decode(&text).unwrap();
    assert_eq!(decoded.study.as_deref(), Some(hit.as_str()));
    assert_eq!(poll(&mut cursor).await.len(), 3);
}

#[tokio::test]
async fn reviews_are_idempotent_and_rejections_checked_first() {
    let w = world().await;
    let p = w.platform("sess-i");
    let hit = p.post(&spec(), 3, &key(1)).await.unwrap();
    let a = w.fake.start_submission(hit.as_str(), "p1").unwrap();
    let b = w.fake.start_submission(hit.as_str(), "p2").unwrap();
    let (a, b) = (AssignmentId::new(&a), AssignmentId::new(&b));

    // Not submitted yet: the engine's "not submitted" (it waits for the participant).
    let err = p.approve(&a, &key(2)).await.unwrap_err();
    assert_eq!(err.kind, PlatformErrorKind::Conflict, "{err}");
    assert_eq!(err.code, crowdcore::engine::NOT_SUBMITTED, "{err}");
    w.fake.complete(a.as_str(), "X").unwrap();
    p.approve(&a, &key(2)).await.unwrap();
    p.approve(&a, &key(2)).await.unwrap();
    assert_eq!(
        w.fake.submission_status(a.as_str()).as_deref(),
        Some("APPROVED")
    );

    w.fake.complete(b.as_str(), "X").unwrap();
    let before = w.fake.request_count();
    let err = p.reject(&b, "bad", &key(3)).await.unwrap_err();
    assert_eq!(err.kind, PlatformErrorKind::BadRequest);
    assert!(err.message.contains("at least 100"), "{err}");
    assert_eq!(w.fake.request_count(), before, "refused before sending");
    let why = "The answers do not follow the instructions on the first page: every photo was \
               labelled with the same label, including the attention checks.";
    p.reject(&b, why, &key(3)).await.unwrap();
    assert_eq!(
        w.fake.submission_status(b.as_str()).as_deref(),
        Some("REJECTED")
    );
    // Approving a rejected submission is refused for its state.
    let err = p.approve(&b, &key(4)).await.unwrap_err();
    assert_eq!(err.kind, PlatformErrorKind::Conflict);
}

#[tokio::test]
async fn a_bonus_whose_pay_answer_was_lost_is_paid_once() {
    let w = world().await;
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let p = w.platform_on("sess-j", store.clone());
    let hit = p.post(&spec(), 1, &key(1)).await.unwrap();
    let s = w.fake.start_submission(hit.as_str(), "p1").unwrap();
    let (worker, a) = (WorkerId::new("p1"), AssignmentId::new(&s));

    // The pay goes through, its answer is lost: recorded as paying.
    w.fake.inject(
        Some(Method::POST),
        "/api/v1/bulk-bonus-payments/",
        Fault::LostAnswer,
        1,
    );
    // With the settling window zero, the reconciliation in the same call sees it paid.
    p.bonus(&worker, Some(&a), Money::usd_cents(125), "waiting", &key(7))
        .await
        .unwrap();
    assert_eq!(w.fake.bonuses_paid(&s), vec![125]);
    // Again, and from a restarted process on the same store: nothing more.
    p.bonus(&worker, Some(&a), Money::usd_cents(125), "waiting", &key(7))
        .await
        .unwrap();
    let restarted = w.platform_on("sess-j", store);
    restarted
        .bonus(&worker, Some(&a), Money::usd_cents(125), "waiting", &key(7))
        .await
        .unwrap();
    assert!(matches!(
        restarted.bonus_record(&key(7)).await.unwrap(),
        Some(BonusRecord::Paid { .. })
    ));
    assert_eq!(w.fake.bonuses_paid(&s), vec![125]);
    assert_eq!(w.fake.repeated_pays(), 0);
    // A second bonus with its own key is paid too.
    p.bonus(&worker, None, Money::usd_cents(30), "active", &key(8))
        .await
        .unwrap();
    assert_eq!(w.fake.bonuses_paid(&s), vec![125, 30]);
}

#[tokio::test]
async fn a_crash_between_recording_and_paying_pays_once() {
    // The platform recorded Paying and died before (or while) the pay call went out.
    let w = world().await;
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let p = w.platform_on("sess-k", store.clone());
    let hit = p.post(&spec(), 2, &key(1)).await.unwrap();
    let s1 = w.fake.start_submission(hit.as_str(), "p1").unwrap();
    let s2 = w.fake.start_submission(hit.as_str(), "p2").unwrap();
    let session = crowdcore::model::SessionId::new("sess-k");
    let client = w.client.clone();

    // p1's pay was sent before the crash (Prolific paid); p2's was not.
    for (s, paid, k) in [(&s1, true, 11), (&s2, false, 12)] {
        let bulk = client
            .create_bulk_bonus(hit.as_str(), &format!("{s},0.40\n"))
            .await
            .unwrap();
        if paid {
            client.pay_bulk_bonus(&bulk.id).await.unwrap();
        }
        let record = BonusRecord::Paying {
            bulk: bulk.id,
            submission: s.clone(),
            before: 0,
            since_ms: START_MS,
        };
        store
            .put_meta(
                &session,
                &format!("prolific/bonus/{}", key(k)),
                &serde_json::to_string(&record).unwrap(),
            )
            .await
            .unwrap();
    }
    let restarted = w.platform_on("sess-k", store);
    for (s, k, p) in [(&s1, 11, "p1"), (&s2, 12, "p2")] {
        restarted
            .bonus(
                &WorkerId::new(p),
                Some(&AssignmentId::new(s)),
                Money::usd_cents(40),
                "b",
                &key(k),
            )
            .await
            .unwrap();
    }
    assert_eq!(w.fake.bonuses_paid(&s1), vec![40]);
    assert_eq!(w.fake.bonuses_paid(&s2), vec![40]);
    assert_eq!(w.fake.repeated_pays(), 0);
}

#[tokio::test]
async fn unconfirmed_pays_wait_for_the_settling_window() {
    let w = world().await;
    let mut config = w.config("sess-l");
    config.pay_settle = std::time::Duration::from_secs(600);
    let p = crowdcore_prolific::ProlificPlatform::new(w.client.clone(), config);
    let hit = p.post(&spec(), 1, &key(1)).await.unwrap();
    let s = w.fake.start_submission(hit.as_str(), "p1").unwrap();
    let a = AssignmentId::new(&s);
    // The pay is refused with a 503 (may have happened, by the client's rules): not seen
    // paid, so the bonus waits rather than pays again.
    w.fake.inject(
        Some(Method::POST),
        "/api/v1/bulk-bonus-payments/",
        Fault::Unavailable,
        1,
    );
    let err = p
        .bonus(
            &WorkerId::new("p1"),
            Some(&a),
            Money::usd_cents(10),
            "b",
            &key(2),
        )
        .await
        .unwrap_err();
    assert!(err.is_retryable());
    assert_eq!(err.code, "PayUnconfirmed", "{err}");
    assert!(w.fake.bonuses_paid(&s).is_empty());
    // Within the window: still waiting.
    w.clock.advance(60_000);
    assert!(
        p.bonus(
            &WorkerId::new("p1"),
            Some(&a),
            Money::usd_cents(10),
            "b",
            &key(2)
        )
        .await
        .is_err()
    );
    // Past it: not paid, so sent again, once.
    w.clock.advance(600_000);
    p.bonus(
        &WorkerId::new("p1"),
        Some(&a),
        Money::usd_cents(10),
        "b",
        &key(2),
    )
    .await
    .unwrap();
    assert_eq!(w.fake.bonuses_paid(&s), vec![10]);
    assert_eq!(w.fake.repeated_pays(), 0);
}

#[tokio::test]
async fn exactly_once_under_twenty_percent_faults() {
    let w = world_with(|c| {
        c.seed = 7;
        c.fault_kinds = vec![Fault::Throttle, Fault::Unavailable, Fault::LostAnswer];
    })
    .await;
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let p = w.platform_on("sess-m", store.clone());
    let hit = p.post(&spec(), 12, &key(1)).await.unwrap();
    let mut subs = Vec::new();
    for i in 0..12 {
        let s = w
            .fake
            .start_submission(hit.as_str(), &format!("p{i}"))
            .unwrap();
        w.fake.complete(&s, "X").unwrap();
        subs.push(s);
    }
    w.fake.set_fault_rate(200);
    // Every effect is re-sent until it succeeds, as the engine does, each attempt from a
    // restarted platform on the same store (a crash between attempts).
    let mut cursor = None;
    for (i, s) in subs.iter().enumerate() {
        let a = AssignmentId::new(s);
        let worker = WorkerId::new(format!("p{i}"));
        let mut tries = 0;
        loop {
            tries += 1;
            assert!(tries < 200, "effect {i} never went through");
            // A fresh platform on the same store each try: a restart between attempts.
            let platform = w.platform_on("sess-m", store.clone());
            let approved = platform.approve(&a, &key(100 + i as u32)).await;
            if approved.is_err() {
                continue;
            }
            let paid = platform
                .bonus(
                    &worker,
                    Some(&a),
                    Money::usd_cents(25 + i as i64),
                    "b",
                    &key(200 + i as u32),
                )
                .await;
            if paid.is_ok() {
                break;
            }
        }
        // Raise places now and then with retried keys.
        for _ in 0..3 {
            if p.post(&spec(), 1, &key(300 + i as u32)).await.is_ok() {
                break;
            }
        }
        if let Ok(page) = p.updates(cursor.as_ref()).await {
            cursor = page.next;
        }
    }
    assert!(
        w.fake.faults_injected() > 10,
        "faults were injected: {}",
        w.fake.faults_injected()
    );
    w.fake.set_fault_rate(0);
    for (i, s) in subs.iter().enumerate() {
        assert_eq!(w.fake.submission_status(s).as_deref(), Some("APPROVED"));
        assert_eq!(
            w.fake.bonuses_paid(s),
            vec![25 + i as i64],
            "submission {i}"
        );
    }
    assert_eq!(w.fake.repeated_pays(), 0, "no bulk bonus paid twice");
    assert_eq!(w.fake.studies_created("crowdcore:sess-m"), 1);
    // Places: 12, plus one per successful distinct post key at most.
    let total = places(&w, &hit).0;
    assert!(total <= 12 + 12, "no place raised past the need: {total}");
}

#[tokio::test]
async fn messages_and_blocks() {
    let w = world().await;
    let p = w.platform("sess-n");
    let hit = p.post(&spec(), 3, &key(1)).await.unwrap();
    p.notify(&[WorkerId::new("p1")], "Work soon", "A task opens at noon.")
        .await
        .unwrap();
    p.notify(
        &[WorkerId::new("p1"), WorkerId::new("p2")],
        "Work now",
        "Come back to the page.",
    )
    .await
    .unwrap();
    let m = w.fake.messages();
    assert_eq!(m[0]["recipient_id"], "p1");
    assert_eq!(m[0]["study_id"], hit.as_str());
    assert_eq!(m[1]["ids"].as_array().unwrap().len(), 2);

    p.block(&WorkerId::new("p3"), "spam").await.unwrap();
    let err = w.fake.start_submission(hit.as_str(), "p3").unwrap_err();
    assert_eq!(err, crowdcore_prolific::fake::ParticipantError::NotEligible);
    w.fake.start_submission(hit.as_str(), "p4").unwrap();
    let err = p
        .grant_qualification(&WorkerId::new("p4"), "q", 1)
        .await
        .unwrap_err();
    assert_eq!(err.kind, PlatformErrorKind::BadRequest);
}

#[tokio::test]
async fn throttles_are_waited_out_and_bad_tokens_refused() {
    let w = world().await;
    w.fake
        .inject(None, "/api/v1/workspaces/", Fault::Throttle, 3);
    let p = w.platform("sess-o");
    assert_eq!(p.balance().await.unwrap().minor, 1_000_000);
    assert_eq!(w.fake.faults_injected(), 3);

    let mut c = crowdcore_prolific::ClientConfig::new(
        w.fake.base_url(),
        crowdcore_prolific::Credentials::new("wrong"),
    );
    c.retry = fast_retries();
    let bad = crowdcore_prolific::ProlificClient::new(c).unwrap();
    let err = bad.balance(WORKSPACE).await.unwrap_err();
    assert_eq!(err.status(), Some(401));
    assert!(!err.is_retryable());
    assert_eq!(w.fake.bad_auth_count(), 1, "not retried");
}

#[tokio::test]
async fn webhook_subscription_is_confirmed_with_its_hook_secret() {
    let w = world().await;
    let secret = w.client.create_hook_secret(WORKSPACE).await.unwrap();
    assert!(!format!("{secret:?}").contains(&secret.value));
    let sub = crowdcore_prolific::webhook::subscribe(
        &w.client,
        WORKSPACE,
        "https://example.org/prolific/hooks",
    )
    .await
    .unwrap();
    assert!(sub.is_enabled);
    assert_eq!(sub.event_type, "submission.status.change");
    assert_eq!(w.fake.subscriptions()[0]["is_enabled"], true);
    let err = crowdcore_prolific::webhook::subscribe(&w.client, WORKSPACE, "http://localhost/x")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("https://"));
}
