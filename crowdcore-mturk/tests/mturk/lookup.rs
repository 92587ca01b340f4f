//! `Platform::assignment` on MTurk (`GetAssignment`): who holds an assignment and on which HIT,
//! read back for a worker page; made-up ids, other workers' and other sessions' assignments,
//! what MTurk does not show before a submit, and bounded retries on the page's path.

use std::time::{Duration, Instant};

use crowdcore::platform::{AssignmentStatus, Platform, PlatformErrorKind};
use crowdcore::{AssignmentId, HitId, WorkerId};
use crowdcore_mturk::LookupSettings;
use serde_json::json;

use crate::{LATE_MS, config, key, platform_with, setup, spec};

#[tokio::test]
async fn a_submitted_assignment_is_read_back_with_its_worker_and_hit() {
    let (_, fake, platform) = setup().await;
    let hit = platform.post(&spec(), 2, &key("s", 1)).await.unwrap();
    let a = fake.accept("W1", hit.as_str()).unwrap();
    fake.submit(&a, "x").unwrap();
    let record = platform
        .assignment(&AssignmentId::new(&a))
        .await
        .unwrap()
        .expect("MTurk shows a submitted assignment");
    assert_eq!(record.assignment.as_str(), a);
    assert_eq!(record.worker, WorkerId::new("W1"));
    assert_eq!(record.hit, hit);
    assert_eq!(record.status, AssignmentStatus::Submitted);
    assert!(
        record.confirms(&WorkerId::new("W1"), &hit),
        "a reload after submit"
    );
    assert_eq!(fake.requests("GetAssignment"), [json!({"AssignmentId": a})]);

    // Approved and rejected ones too (they no longer confirm a page).
    platform
        .approve(&record.assignment, &key("s", 2))
        .await
        .unwrap();
    let approved = platform
        .assignment(&record.assignment)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(approved.status, AssignmentStatus::Approved);
    assert!(!approved.confirms(&WorkerId::new("W1"), &hit));
    let b = fake.accept("W2", hit.as_str()).unwrap();
    fake.submit(&b, "y").unwrap();
    platform
        .reject(&AssignmentId::new(&b), "no", &key("s", 3))
        .await
        .unwrap();
    let rejected = platform.assignment(&AssignmentId::new(&b)).await.unwrap();
    assert_eq!(rejected.unwrap().status, AssignmentStatus::Rejected);
}

#[tokio::test]
async fn a_made_up_id_is_none() {
    let (_, fake, platform) = setup().await;
    platform.post(&spec(), 1, &key("s", 1)).await.unwrap();
    for id in ["3XMADEUPASSIGNMENTID0000000000", "A99999"] {
        assert_eq!(platform.assignment(&AssignmentId::new(id)).await, Ok(None));
    }
    // Not even asked: the preview placeholder, an empty id, an id longer than MTurk's.
    for id in [
        "ASSIGNMENT_ID_NOT_AVAILABLE".to_owned(),
        String::new(),
        "A".repeat(256),
    ] {
        assert_eq!(platform.assignment(&AssignmentId::new(id)).await, Ok(None));
    }
    assert_eq!(fake.requests("GetAssignment").len(), 2);
}

#[tokio::test]
async fn another_workers_assignment_is_read_as_theirs() {
    let (_, fake, platform) = setup().await;
    let hit = platform.post(&spec(), 2, &key("s", 1)).await.unwrap();
    let a = fake.accept("W1", hit.as_str()).unwrap();
    fake.submit(&a, "x").unwrap();
    // W2's page claims W1's assignment: the record names W1, so it does not confirm W2.
    let record = platform
        .assignment(&AssignmentId::new(&a))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.worker, WorkerId::new("W1"));
    assert!(!record.confirms(&WorkerId::new("W2"), &hit));
    assert!(record.confirms(&WorkerId::new("W1"), &hit));
}

#[tokio::test]
async fn another_sessions_assignment_names_its_own_hit() {
    let (_, fake, _) = setup().await;
    let scoped = |session: &str| {
        let mut c = config(&fake);
        c.scope = Some(session.into());
        c
    };
    let ours = platform_with(scoped("ours")).await;
    let theirs = platform_with(scoped("theirs")).await;
    let our_hit = ours.post(&spec(), 1, &key("ours", 1)).await.unwrap();
    let their_hit = theirs.post(&spec(), 1, &key("theirs", 1)).await.unwrap();
    let a = fake.accept("W1", their_hit.as_str()).unwrap();
    fake.submit(&a, "x").unwrap();
    // The same requester account: MTurk answers, with the other session's HIT; a page on our
    // HIT claiming it is not confirmed.
    let record = ours
        .assignment(&AssignmentId::new(&a))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.hit, their_hit);
    assert!(!record.confirms(&WorkerId::new("W1"), &our_hit));
}

#[tokio::test]
async fn an_assignment_still_being_worked_on_is_not_shown_before_its_submit() {
    let (_, fake, platform) = setup().await;
    assert!(
        !platform.capabilities().confirms_assignments,
        "MTurk cannot confirm an arrival: it shows assignments once submitted"
    );
    let hit = platform.post(&spec(), 2, &key("s", 1)).await.unwrap();
    let held = fake.accept("W1", hit.as_str()).unwrap();
    let given_back = fake.accept("W2", hit.as_str()).unwrap();
    fake.return_assignment(&given_back).unwrap();
    for id in [&held, &given_back] {
        assert_eq!(platform.assignment(&AssignmentId::new(id)).await, Ok(None));
    }
    fake.submit(&held, "x").unwrap();
    let record = platform
        .assignment(&AssignmentId::new(&held))
        .await
        .unwrap();
    assert!(record.unwrap().confirms(&WorkerId::new("W1"), &hit));
}

#[tokio::test]
async fn throttling_and_faults_are_retryable_errors() {
    let (_, fake, platform) = setup().await;
    let id = AssignmentId::new("A00001");
    let attempts = LookupSettings::default().max_attempts as usize;
    // Every attempt throttled, then every attempt failing at MTurk.
    for _ in 0..attempts {
        fake.script(
            "GetAssignment",
            400,
            json!({"__type": "ThrottlingException", "message": "Rate exceeded"}),
        );
    }
    let e = platform.assignment(&id).await.unwrap_err();
    assert_eq!(e.kind, PlatformErrorKind::Throttled, "{e}");
    assert!(e.is_retryable());
    for _ in 0..attempts {
        fake.script(
            "GetAssignment",
            500,
            json!({"__type": "ServiceFault", "Message": "internal", "TurkErrorCode": "AWS.MechanicalTurk.ServiceFault"}),
        );
    }
    let e = platform.assignment(&id).await.unwrap_err();
    assert_eq!(e.kind, PlatformErrorKind::Unavailable, "{e}");
    assert_eq!(fake.requests("GetAssignment").len(), 2 * attempts);
    // Credentials MTurk refuses are not "no such assignment": the page must not read them so.
    fake.script(
        "GetAssignment",
        400,
        json!({"__type": "UnrecognizedClientException", "message": "The security token included in the request is invalid."}),
    );
    let e = platform.assignment(&id).await.unwrap_err();
    assert!(!e.is_retryable(), "{e}");
    // Once MTurk answers again, the made-up id is none.
    assert_eq!(platform.assignment(&id).await, Ok(None));
}

#[tokio::test]
async fn a_lookup_on_the_page_path_is_bounded() {
    let (_, fake, _) = setup().await;
    let mut c = config(&fake);
    // The posting calls keep their patience; the lookup gets two short attempts.
    c.lookup = LookupSettings {
        max_attempts: 2,
        attempt_ms: 300,
        operation_ms: 1_000,
    };
    let platform = platform_with(c).await;
    let hit = platform.post(&spec(), 1, &key("s", 1)).await.unwrap();
    let a = fake.accept("W1", hit.as_str()).unwrap();
    fake.submit(&a, "x").unwrap();
    fake.answer_late("GetAssignment", LATE_MS);
    fake.answer_late("GetAssignment", LATE_MS);
    let started = Instant::now();
    let e = platform
        .assignment(&AssignmentId::new(&a))
        .await
        .unwrap_err();
    assert_eq!(e.kind, PlatformErrorKind::Timeout, "{e}");
    assert!(
        started.elapsed() < Duration::from_millis(LATE_MS),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        fake.requests("GetAssignment").len(),
        2,
        "two attempts, no more"
    );
    // Throttled once, answered on the second attempt: the SDK's retry absorbs it.
    fake.script(
        "GetAssignment",
        400,
        json!({"__type": "ThrottlingException", "message": "Rate exceeded"}),
    );
    let record = platform.assignment(&AssignmentId::new(&a)).await.unwrap();
    assert_eq!(record.map(|r| r.hit), Some(HitId::new(hit.as_str())));
}
