//! Webhooks against the fake Prolific: a verified delivery leads to Prolific's own word about
//! the submission (read back), a forged or replayed one to nothing, an old one arriving late
//! is ignored, and a delivery that never comes is caught by the reconciliation poll.

mod common;

use std::time::Duration;

use common::*;
use crowdcore::platform::{AssignmentStatus, IdempotencyKey, Platform};
use crowdcore::testkit::spec;
use crowdcore_prolific::webhook::{
    Delivery, EVENT_ID_HEADER, EVENT_TIME_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER,
    WebhookReceiver, sign,
};
use reqwest::header::{HeaderMap, HeaderValue};

const SECRET: &str = "workspace-hook-secret";

fn delivery(secret: &str, now: u64, event: &str, at: u64, body: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    let ts = now.to_string();
    h.insert(
        SIGNATURE_HEADER,
        HeaderValue::from_str(&sign(secret, &ts, body.as_bytes())).unwrap(),
    );
    h.insert(TIMESTAMP_HEADER, HeaderValue::from_str(&ts).unwrap());
    h.insert(EVENT_ID_HEADER, HeaderValue::from_str(event).unwrap());
    h.insert(
        EVENT_TIME_HEADER,
        HeaderValue::from_str(&at.to_string()).unwrap(),
    );
    h
}

fn event(sub: &str, status: &str) -> String {
    format!(
        r#"{{"event_type":"submission.status.change","resource_id":"{sub}","status":"{status}"}}"#
    )
}

#[tokio::test]
async fn deliveries_are_verified_read_back_and_reconciled_by_the_poll() {
    let w = world().await;
    let p = w.platform("hooks");
    let key = IdempotencyKey::for_effect(&crowdcore::model::EffectId::new(
        crowdcore::model::SessionId::new("hooks"),
        1,
    ));
    let hit = p.post(&spec(), 3, &key).await.unwrap();
    let a = w.fake.start_submission(hit.as_str(), "p1").unwrap();
    let b = w.fake.start_submission(hit.as_str(), "p2").unwrap();
    let page = p.updates(None).await.unwrap();
    assert_eq!(page.items.len(), 2);
    let mut cursor = page.next;

    let r = WebhookReceiver::new(SECRET, Duration::from_secs(300));
    let now = 1_800_000_000;
    w.fake.complete(&a, "X").unwrap();
    let body = event(&a, "AWAITING REVIEW");
    let Some(Delivery::Accepted(change)) = r
        .answer(
            &delivery(SECRET, now, "ev-1", now, &body),
            body.as_bytes(),
            now,
        )
        .delivery
    else {
        panic!("a verified delivery is taken")
    };
    // What is pushed is Prolific's word, read back.
    let update = p.read_update(&change.submission).await.unwrap().unwrap();
    assert_eq!(update.status, AssignmentStatus::Submitted);
    assert_eq!(update.worker.as_str(), "p1");
    assert_eq!(update.hit, hit);

    // The same delivery again, a forged one, an old one replayed: nothing.
    let again = r.answer(
        &delivery(SECRET, now, "ev-1", now, &body),
        body.as_bytes(),
        now,
    );
    assert_eq!(again.delivery, Some(Delivery::Duplicate("ev-1".into())));
    let forged = event(&b, "AWAITING REVIEW");
    let answer = r.answer(
        &delivery("guess", now, "ev-9", now, &forged),
        forged.as_bytes(),
        now,
    );
    assert_eq!((answer.status, answer.delivery), (401, None));
    let old = now - 3_600;
    let replay = r.answer(
        &delivery(SECRET, old, "ev-0", old, &body),
        body.as_bytes(),
        now,
    );
    assert_eq!(replay.status, 401);
    // Out of order: ACTIVE (earlier) arrives after AWAITING REVIEW.
    let late = event(&a, "ACTIVE");
    let answer = r.answer(
        &delivery(SECRET, now, "ev-2", now - 30, &late),
        late.as_bytes(),
        now,
    );
    assert!(matches!(answer.delivery, Some(Delivery::Stale(_))));

    // p2 returns; its webhook is lost. The poll catches both changes, each once.
    w.fake.return_submission(&b).unwrap();
    let page = p.updates(cursor.as_ref()).await.unwrap();
    let mut got: Vec<(String, AssignmentStatus)> = page
        .items
        .iter()
        .map(|u| (u.assignment.as_str().to_owned(), u.status))
        .collect();
    got.sort_by(|x, y| x.0.cmp(&y.0));
    assert_eq!(
        got,
        vec![
            (a.clone(), AssignmentStatus::Submitted),
            (b.clone(), AssignmentStatus::Returned)
        ]
    );
    cursor = page.next;
    assert!(p.updates(cursor.as_ref()).await.unwrap().items.is_empty());
    // A submission of another study is never pushed.
    let other = w.platform("someone-else");
    assert!(other.read_update(&a).await.unwrap().is_none());
}
