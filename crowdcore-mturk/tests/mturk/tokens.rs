//! `UniqueRequestToken` reuse: a repeated key never creates or pays twice, and MTurk's
//! duplicate error resolves to the first result.

use crowdcore::platform::Platform;
use crowdcore::{AssignmentId, Money, WorkerId};

use crate::{LATE_MS, config, key, platform_with, setup, spec};

#[tokio::test]
async fn a_repeated_post_returns_the_first_hit_without_asking_mturk_again() {
    let (_, fake, platform) = setup().await;
    let first = platform.post(&spec(), 2, &key("s", 1)).await.unwrap();
    let again = platform.post(&spec(), 2, &key("s", 1)).await.unwrap();
    assert_eq!(first, again);
    assert_eq!(fake.hits().len(), 1);
    assert_eq!(fake.token_uses("CreateHITWithHITType", "s/1"), 1);
}

#[tokio::test]
async fn a_duplicate_token_error_is_resolved_to_the_hit_it_made() {
    let (_, fake, platform) = setup().await;
    // Another instance has listed the HITs before this one posted.
    let other = platform_with(config(&fake)).await;
    other.post(&spec(), 1, &key("s", 9)).await.unwrap();
    let hit = platform.post(&spec(), 2, &key("s", 1)).await.unwrap();
    // `other` does not know `s/1` was posted: MTurk refuses the token, the HIT is found by
    // its annotation.
    let found = other.post(&spec(), 2, &key("s", 1)).await.unwrap();
    assert_eq!(found, hit);
    assert_eq!(fake.token_uses("CreateHITWithHITType", "s/1"), 2);
    assert_eq!(fake.hits().len(), 2);
}

#[tokio::test]
async fn a_lost_answer_is_retried_with_the_same_token() {
    let (_, fake, platform) = setup().await;
    fake.answer_late("CreateHITWithHITType", LATE_MS);
    let e = platform.post(&spec(), 2, &key("s", 1)).await.unwrap_err();
    assert_eq!(
        e.kind,
        crowdcore::platform::PlatformErrorKind::Timeout,
        "{e}"
    );
    assert_eq!(
        fake.hits().len(),
        1,
        "MTurk made the HIT; the answer was lost"
    );
    let hit = platform.post(&spec(), 2, &key("s", 1)).await.unwrap();
    assert_eq!(hit.as_str(), fake.hits()[0].id);
    assert_eq!(fake.hits().len(), 1);
    assert_eq!(fake.token_uses("CreateHITWithHITType", "s/1"), 2);
}

#[tokio::test]
async fn a_token_mturk_forgot_is_looked_up_by_annotation_before_it_is_sent_again() {
    let (_, fake, _) = setup().await;
    let mut c = config(&fake);
    c.token_lifetime_ms = 0; // every token is "older than 24 hours"
    let platform = platform_with(c).await;
    fake.answer_late("CreateHITWithHITType", LATE_MS);
    assert!(platform.post(&spec(), 2, &key("s", 1)).await.is_err());
    // A day later MTurk would create a second HIT for the same token.
    fake.world().tokens.clear();
    let hit = platform.post(&spec(), 2, &key("s", 1)).await.unwrap();
    assert_eq!(hit.as_str(), fake.hits()[0].id);
    assert_eq!(fake.hits().len(), 1, "not posted twice");
    assert_eq!(fake.requests("CreateHITWithHITType").len(), 1);
}

#[tokio::test]
async fn bonuses_and_extra_slots_are_done_once_per_token() {
    let (_, fake, platform) = setup().await;
    let hit = platform.post(&spec(), 10, &key("s", 1)).await.unwrap();
    let a = fake.accept("W1", hit.as_str()).unwrap();
    fake.submit(&a, "x").unwrap();
    let a = AssignmentId::new(a);
    let w = WorkerId::new("W1");
    for _ in 0..3 {
        platform
            .bonus(
                &w,
                Some(&a),
                Money::usd_cents(25),
                "active_bonus",
                &key("s", 2),
            )
            .await
            .unwrap();
        platform.add_slots(&hit, 2, &key("s", 3)).await.unwrap();
    }
    assert_eq!(fake.bonuses().len(), 1);
    assert_eq!(fake.earnings("W1"), 25);
    assert_eq!(fake.token_uses("SendBonus", "s/2"), 3);
    assert_eq!(fake.hits()[0].max_assignments, 12);
    assert_eq!(
        fake.token_uses("CreateAdditionalAssignmentsForHIT", "s/3"),
        3
    );
    // A different key is a different bonus.
    platform
        .bonus(
            &w,
            Some(&a),
            Money::usd_cents(25),
            "active_bonus",
            &key("s", 4),
        )
        .await
        .unwrap();
    assert_eq!(fake.bonuses().len(), 2);
}
