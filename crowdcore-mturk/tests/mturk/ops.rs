//! What goes over the wire for every operation the platform uses.

use crowdcore::clock::Clock;
use crowdcore::model::{Comparator, QualificationRequirement};
use crowdcore::platform::{Platform, PlatformErrorKind};
use crowdcore::{AssignmentId, HitId, Money, WorkerId};
use serde_json::json;

use crate::{config, key, platform_with, setup, spec};

#[tokio::test]
async fn posting_creates_a_hit_type_once_and_a_hit_with_an_external_question() {
    let (_, fake, platform) = setup().await;
    let mut s = spec();
    s.qualifications = vec![
        QualificationRequirement::ApprovalRate { min_percent: 95 },
        QualificationRequirement::ApprovedCount { min: 100 },
        QualificationRequirement::Locale {
            countries: vec!["US".into(), "CA".into()],
        },
        QualificationRequirement::Custom {
            qualification: "3TRAINEDQUAL".into(),
            comparator: Comparator::GreaterThanOrEqualTo,
            value: 2,
        },
        QualificationRequirement::Custom {
            qualification: "3BANNEDQUAL".into(),
            comparator: Comparator::DoesNotExist,
            value: 0,
        },
    ];
    let first = platform.post(&s, 3, &key("s1", 1)).await.unwrap();
    let second = platform.post(&s, 2, &key("s1", 2)).await.unwrap();
    assert_ne!(first, second);

    let types = fake.requests("CreateHITType");
    assert_eq!(types.len(), 1, "the HIT type is cached per spec");
    assert_eq!(
        types[0],
        json!({
            "AutoApprovalDelayInSeconds": 86_400,
            "AssignmentDurationInSeconds": 3_600,
            "Reward": "0.50",
            "Title": "Label photos in real time",
            "Keywords": "real-time,labeling",
            "Description": "Wait for a task, then label photos as they arrive.",
            "QualificationRequirements": [
                {"QualificationTypeId": "000000000000000000L0", "Comparator": "GreaterThanOrEqualTo", "IntegerValues": [95]},
                {"QualificationTypeId": "00000000000000000040", "Comparator": "GreaterThanOrEqualTo", "IntegerValues": [100]},
                {"QualificationTypeId": "00000000000000000071", "Comparator": "In", "LocaleValues": [{"Country": "US"}, {"Country": "CA"}]},
                {"QualificationTypeId": "3TRAINEDQUAL", "Comparator": "GreaterThanOrEqualTo", "IntegerValues": [2]},
                {"QualificationTypeId": "3BANNEDQUAL", "Comparator": "DoesNotExist"},
            ],
        })
    );
    let hits = fake.requests("CreateHITWithHITType");
    assert_eq!(hits.len(), 2);
    assert_eq!(
        hits[0],
        json!({
            "HITTypeId": "T0001",
            "MaxAssignments": 3,
            "LifetimeInSeconds": 86_400,
            "Question": "<ExternalQuestion xmlns=\"http://mechanicalturk.amazonaws.com/AWSMechanicalTurkDataSchemas/2006-07-14/ExternalQuestion.xsd\"><ExternalURL>https://front.example/land?study=7</ExternalURL><FrameHeight>640</FrameHeight></ExternalQuestion>",
            "RequesterAnnotation": "crowdcore:s1/1",
            "UniqueRequestToken": "s1/1",
        })
    );
    assert_eq!(hits[1]["MaxAssignments"], 2);
    // Before its first post the platform looked for HITs already made with its keys.
    assert_eq!(fake.requests("ListHITs").len(), 1);
    assert_eq!(fake.requests("ListHITs")[0], json!({"MaxResults": 100}));
    // Escrowed: 3 × 0.50 + 20 % and 2 × 0.50 + 20 %.
    assert_eq!(fake.world().balance_cents, 100_000 - 180 - 120);
    // A different spec is a different HIT type.
    let other = crowdcore::HitSpec {
        reward: Money::usd_cents(75),
        ..spec()
    };
    platform.post(&other, 1, &key("s1", 3)).await.unwrap();
    assert_eq!(fake.requests("CreateHITType").len(), 2);
}

#[tokio::test]
async fn a_bad_spec_or_slot_count_sends_nothing() {
    let (_, fake, platform) = setup().await;
    let cases = [
        (spec(), 0),
        (spec(), 11),
        (
            crowdcore::HitSpec {
                title: " ".into(),
                ..spec()
            },
            1,
        ),
    ];
    for (s, slots) in cases {
        let e = platform.post(&s, slots, &key("s", 1)).await.unwrap_err();
        assert_eq!(e.kind, PlatformErrorKind::BadRequest, "{e}");
    }
    // MTurk frames only https pages.
    let mut c = config(&fake);
    c.landing_url = Some("http://front.example/land".into());
    let plain = platform_with(c).await;
    let e = plain.post(&spec(), 1, &key("s", 1)).await.unwrap_err();
    assert_eq!(e.code, "InvalidLandingUrl");
    assert!(fake.operations().is_empty(), "{:?}", fake.operations());
}

#[tokio::test]
async fn slots_are_added_with_a_token_but_never_across_ten() {
    let (_, fake, platform) = setup().await;
    let small = platform.post(&spec(), 3, &key("s", 1)).await.unwrap();
    platform.add_slots(&small, 6, &key("s", 2)).await.unwrap();
    assert_eq!(
        fake.requests("CreateAdditionalAssignmentsForHIT"),
        [
            json!({"HITId": small.as_str(), "NumberOfAdditionalAssignments": 6, "UniqueRequestToken": "s/2"})
        ]
    );
    // 9 + 1 would cross 10: refused here, nothing sent.
    let e = platform
        .add_slots(&small, 1, &key("s", 3))
        .await
        .unwrap_err();
    assert_eq!(e.code, "InvalidMaximumAssignmentsIncrease");
    assert_eq!(fake.requests("CreateAdditionalAssignmentsForHIT").len(), 1);
    assert_eq!(fake.hits()[0].max_assignments, 9);
    // A HIT with 10 already grows freely; a fresh instance asks MTurk how many it has.
    let big = platform.post(&spec(), 10, &key("s", 4)).await.unwrap();
    let fresh = platform_with(config(&fake)).await;
    fresh.add_slots(&big, 5, &key("s", 5)).await.unwrap();
    assert_eq!(fake.requests("GetHIT"), [json!({"HITId": big.as_str()})]);
    assert_eq!(fake.hits()[1].max_assignments, 15);
}

#[tokio::test]
async fn expiring_sets_the_expiration_in_the_past() {
    let (clock, fake, platform) = setup().await;
    let hit = platform.post(&spec(), 2, &key("s", 1)).await.unwrap();
    assert_eq!(fake.available("W1"), [hit.to_string()]);
    platform.expire(&hit).await.unwrap();
    platform.expire(&hit).await.unwrap();
    let sent = fake.requests("UpdateExpirationForHIT");
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[0]["HITId"], hit.as_str());
    assert!(sent[0]["ExpireAt"].as_f64().unwrap() * 1000.0 <= clock.now().as_millis() as f64);
    assert!(fake.available("W1").is_empty());
    assert_eq!(
        fake.token_uses("UpdateExpirationForHIT", &format!("{hit}0")),
        2,
        "the second call was refused as processed, and that is success"
    );
    let e = platform.expire(&HitId::new("NOPE")).await.unwrap_err();
    assert_eq!(
        (e.kind, e.code.as_str()),
        (
            PlatformErrorKind::NotFound,
            "AWS.MechanicalTurk.HITDoesNotExist"
        )
    );
}

#[tokio::test]
async fn review_and_pay_send_what_mturk_expects() {
    let (_, fake, platform) = setup().await;
    let hit = platform.post(&spec(), 3, &key("s", 1)).await.unwrap();
    let a1 = fake.accept("W1", hit.as_str()).unwrap();
    let a2 = fake.accept("W2", hit.as_str()).unwrap();
    fake.submit(&a1, "cat").unwrap();
    fake.submit(&a2, "dog").unwrap();
    let (a1, a2) = (AssignmentId::new(a1), AssignmentId::new(a2));
    platform.approve(&a1, &key("s", 2)).await.unwrap();
    platform.approve(&a1, &key("s", 2)).await.unwrap(); // approving twice is fine
    platform
        .reject(&a2, "off topic", &key("s", 3))
        .await
        .unwrap();
    platform
        .reject(&a2, "off topic", &key("s", 3))
        .await
        .unwrap();
    platform
        .bonus(
            &WorkerId::new("W1"),
            Some(&a1),
            Money::usd_cents(7),
            "waiting_bonus",
            &key("s", 4),
        )
        .await
        .unwrap();
    assert_eq!(
        fake.requests("ApproveAssignment")[0],
        json!({"AssignmentId": a1.as_str()})
    );
    assert_eq!(
        fake.requests("RejectAssignment")[0],
        json!({"AssignmentId": a2.as_str(), "RequesterFeedback": "off topic"})
    );
    assert_eq!(
        fake.requests("SendBonus"),
        [
            json!({"WorkerId": "W1", "BonusAmount": "0.07", "AssignmentId": a1.as_str(), "Reason": crowdcore_mturk::wire::bonus_reason("waiting_bonus", &key("s", 4)), "UniqueRequestToken": "s/4"})
        ]
    );
    // A fresh instance first looks for the bonus among those paid (MTurk may have forgotten
    // the token).
    assert_eq!(
        fake.requests("ListBonusPayments"),
        [json!({"AssignmentId": a1.as_str(), "MaxResults": 100})]
    );
    // The second approve and reject found the assignment done with GetAssignment.
    assert_eq!(fake.requests("GetAssignment").len(), 2);
    assert_eq!(fake.earnings("W1"), 57);
    // Approving what was rejected is a conflict; a bonus needs an assignment.
    let e = platform.approve(&a2, &key("s", 5)).await.unwrap_err();
    assert_eq!(e.kind, PlatformErrorKind::Conflict);
    let e = platform
        .bonus(
            &WorkerId::new("W1"),
            None,
            Money::usd_cents(7),
            "x",
            &key("s", 6),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind, PlatformErrorKind::BadRequest);
    let eur = Money::new(7, crowdcore::model::Currency::new("EUR").unwrap());
    let e = platform
        .bonus(&WorkerId::new("W1"), Some(&a1), eur, "x", &key("s", 7))
        .await
        .unwrap_err();
    assert_eq!(e.code, "CurrencyMismatch");
    assert_eq!(fake.requests("SendBonus").len(), 1);
}

#[tokio::test]
async fn approving_before_mturk_has_the_submission_is_retried_not_failed() {
    let (_, fake, platform) = setup().await;
    let hit = platform.post(&spec(), 1, &key("s", 1)).await.unwrap();
    let a = AssignmentId::new(fake.accept("W1", hit.as_str()).unwrap());
    // The page told the engine first; MTurk still shows the assignment accepted.
    let e = platform.approve(&a, &key("s", 2)).await.unwrap_err();
    assert!(e.is_retryable(), "{e}");
    assert_eq!(e.code, "NotSubmittedYet");
    let e = platform
        .bonus(
            &WorkerId::new("W1"),
            Some(&a),
            Money::usd_cents(5),
            "wait",
            &key("s", 3),
        )
        .await
        .unwrap_err();
    assert!(e.is_retryable(), "{e}");
    fake.submit(a.as_str(), "done").unwrap();
    platform.approve(&a, &key("s", 2)).await.unwrap();
    platform
        .bonus(
            &WorkerId::new("W1"),
            Some(&a),
            Money::usd_cents(5),
            "wait",
            &key("s", 3),
        )
        .await
        .unwrap();
    assert_eq!(fake.earnings("W1"), 55);
    // An assignment that never shows up fails for good after the retries.
    let ghost = AssignmentId::new("GHOST");
    let mut last = None;
    for _ in 0..=crowdcore_mturk::UNSUBMITTED_RETRIES {
        last = Some(platform.approve(&ghost, &key("s", 9)).await.unwrap_err());
    }
    let last = last.unwrap();
    assert!(!last.is_retryable());
    assert_eq!(last.kind, PlatformErrorKind::NotFound);
}

#[tokio::test]
async fn workers_are_notified_in_batches_of_100_and_soft_failures_retried() {
    let (_, fake, platform) = setup().await;
    let workers: Vec<WorkerId> = (0..250)
        .map(|i| WorkerId::new(format!("W{i:03}")))
        .collect();
    fake.world().soft_fail.insert("W120".into(), 1);
    let mut with_unknown = workers.clone();
    with_unknown.push(WorkerId::new("UNKNOWN1"));
    platform
        .notify(&with_unknown, "New work", "A task opens at 3 pm.")
        .await
        .unwrap();
    let sent = fake.requests("NotifyWorkers");
    let sizes: Vec<usize> = sent
        .iter()
        .map(|b| b["WorkerIds"].as_array().unwrap().len())
        .collect();
    assert_eq!(sizes, [100, 100, 1, 51]);
    assert_eq!(
        sent[2]["WorkerIds"],
        json!(["W120"]),
        "only the soft failure again"
    );
    assert_eq!(sent[0]["Subject"], "New work");
    assert_eq!(sent[0]["MessageText"], "A task opens at 3 pm.");
    let messages = fake.world().messages.clone();
    let mut told: Vec<&str> = messages.iter().map(|(w, _, _)| w.as_str()).collect();
    told.sort();
    told.dedup();
    assert_eq!(
        told.len(),
        250,
        "everyone once; the unknown worker is skipped"
    );
    // A worker MTurk keeps failing softly: an error the caller may retry.
    fake.world().soft_fail.insert("W001".into(), 5);
    let e = platform.notify(&workers[..2], "s", "m").await.unwrap_err();
    assert!(e.is_retryable());
}

#[tokio::test]
async fn blocks_qualifications_and_balance() {
    let (_, fake, platform) = setup().await;
    let w = WorkerId::new("W9");
    platform.block(&w, "spam").await.unwrap();
    platform.grant_qualification(&w, "3QUAL", 4).await.unwrap();
    assert_eq!(
        platform.qualification_score(&w, "3QUAL").await.unwrap(),
        Some(4)
    );
    assert_eq!(
        fake.requests("GetQualificationScore"),
        [json!({"QualificationTypeId": "3QUAL", "WorkerId": "W9"})]
    );
    assert_eq!(
        fake.world()
            .qualifications
            .get(&("W9".into(), "3QUAL".into())),
        Some(&4)
    );
    platform.revoke_qualification(&w, "3QUAL").await.unwrap();
    assert!(fake.world().qualifications.is_empty());
    assert_eq!(
        platform.qualification_score(&w, "3QUAL").await.unwrap(),
        None
    );
    assert_eq!(
        fake.requests("CreateWorkerBlock"),
        [json!({"WorkerId": "W9", "Reason": "spam"})]
    );
    assert_eq!(
        fake.requests("AssociateQualificationWithWorker"),
        [
            json!({"QualificationTypeId": "3QUAL", "WorkerId": "W9", "IntegerValue": 4, "SendNotification": false})
        ]
    );
    assert_eq!(
        fake.requests("DisassociateQualificationFromWorker"),
        [json!({"WorkerId": "W9", "QualificationTypeId": "3QUAL", "Reason": "revoked"})]
    );
    let id = platform
        .create_qualification_type("trained", "passed the tutorial")
        .await
        .unwrap();
    assert_eq!(id, "Q0001");
    assert_eq!(platform.balance().await.unwrap(), Money::usd_cents(100_000));
    assert_eq!(fake.requests("GetAccountBalance"), [json!({})]);
    let e = platform
        .grant_qualification(&w, "3QUAL", 1 << 40)
        .await
        .unwrap_err();
    assert_eq!(e.kind, PlatformErrorKind::BadRequest);
}

#[tokio::test]
async fn the_balance_is_checked_before_posting_when_configured() {
    let (_, fake, _) = setup().await;
    fake.world().balance_cents = 500;
    let mut c = config(&fake);
    c.check_balance = true;
    let careful = platform_with(c).await;
    // 9 × 0.50 $ + 20 % = 5.40 $ > 5 $: refused before anything is created.
    let e = careful.post(&spec(), 9, &key("s", 1)).await.unwrap_err();
    assert_eq!(e.kind, PlatformErrorKind::InsufficientFunds);
    assert!(fake.requests("CreateHITWithHITType").is_empty());
    careful.post(&spec(), 8, &key("s", 2)).await.unwrap();
    // Without the check, MTurk's own refusal maps to the same kind.
    let (_, fake, platform) = setup().await;
    fake.world().balance_cents = 100;
    let e = platform.post(&spec(), 9, &key("s", 1)).await.unwrap_err();
    assert_eq!(
        (e.kind, e.code.as_str()),
        (
            PlatformErrorKind::InsufficientFunds,
            "AWS.MechanicalTurk.InsufficientFunds"
        )
    );
}
