//! After MTurk's 24-hour `UniqueRequestToken` window: a bonus or extra assignments asked again
//! under a token MTurk has forgotten are first reconciled with what MTurk shows
//! (`ListBonusPayments`, `GetHIT`), so that nothing is paid or added twice however late the
//! retry — by the same instance or a fresh one. The fake forgets tokens after 24 hours.

use std::sync::Arc;

use crowdcore::clock::VirtualClock;
use crowdcore::platform::{Platform, PlatformErrorKind};
use crowdcore::{AssignmentId, HitId, Money, WorkerId};
use crowdcore_mturk::MturkPlatform;
use serde_json::json;

use crate::fake::{FakeMturk, TOKEN_WINDOW_MS};
use crate::{LATE_MS, config, key, platform_with, setup, spec};

const HOUR_MS: u64 = 3_600_000;

/// A platform on `fake` reading time from `clock`.
async fn on_clock(fake: &FakeMturk, clock: &VirtualClock) -> MturkPlatform {
    platform_with(config(fake))
        .await
        .with_clock(Arc::new(clock.clone()))
}

/// A HIT of `slots` with one submitted assignment of W1.
async fn submitted(
    fake: &FakeMturk,
    platform: &MturkPlatform,
    slots: u32,
) -> (HitId, AssignmentId) {
    let hit = platform.post(&spec(), slots, &key("s", 1)).await.unwrap();
    let a = fake.accept("W1", hit.as_str()).unwrap();
    fake.submit(&a, "x").unwrap();
    (hit, AssignmentId::new(a))
}

fn server_error() -> serde_json::Value {
    json!({"__type": "ServiceFault", "Message": "internal", "TurkErrorCode": "AWS.MechanicalTurk.ServiceFault"})
}

#[tokio::test]
async fn the_fake_forgets_a_token_after_24_hours() {
    let (clock, fake, platform) = setup().await;
    let (_, a) = submitted(&fake, &platform, 1).await;
    let send = || {
        platform
            .client()
            .send_bonus()
            .worker_id("W1")
            .assignment_id(a.as_str())
            .bonus_amount("0.10")
            .reason("r")
            .unique_request_token("t-1")
            .send()
    };
    send().await.unwrap();
    clock.advance(TOKEN_WINDOW_MS - 1);
    assert!(send().await.is_err(), "a duplicate within the window");
    clock.advance(1);
    send().await.unwrap();
    assert_eq!(
        fake.bonuses().len(),
        2,
        "MTurk pays a forgotten token again"
    );
    assert_eq!(fake.token_uses("SendBonus", "t-1"), 3);
}

#[tokio::test]
async fn a_bonus_whose_answer_was_lost_is_paid_once_when_retried_25_hours_later() {
    let (clock, fake, _) = setup().await;
    let platform = on_clock(&fake, &clock).await;
    let (_, a) = submitted(&fake, &platform, 1).await;
    let w = WorkerId::new("W1");
    let k = key("s", 2);
    fake.answer_late("SendBonus", LATE_MS);
    let e = platform
        .bonus(&w, Some(&a), Money::usd_cents(30), "waiting_bonus", &k)
        .await
        .unwrap_err();
    assert_eq!(e.kind, PlatformErrorKind::Timeout, "{e}");
    assert_eq!(
        fake.bonuses().len(),
        1,
        "paid at MTurk; the answer was lost"
    );

    clock.advance(25 * HOUR_MS);
    platform
        .bonus(&w, Some(&a), Money::usd_cents(30), "waiting_bonus", &k)
        .await
        .unwrap();
    assert_eq!(fake.bonuses().len(), 1, "not paid twice");
    assert_eq!(fake.earnings("W1"), 30);
    assert_eq!(
        fake.requests("SendBonus").len(),
        1,
        "found paid: not sent again"
    );
    // Another bonus of the same amount under another key is another payment.
    platform
        .bonus(
            &w,
            Some(&a),
            Money::usd_cents(30),
            "waiting_bonus",
            &key("s", 3),
        )
        .await
        .unwrap();
    assert_eq!(fake.bonuses().len(), 2);
}

#[tokio::test]
async fn a_fresh_instance_retrying_a_lost_bonus_a_day_later_pays_it_once() {
    let (clock, fake, _) = setup().await;
    let first = on_clock(&fake, &clock).await;
    let (_, a) = submitted(&fake, &first, 1).await;
    let w = WorkerId::new("W1");
    fake.answer_late("SendBonus", LATE_MS);
    assert!(
        first
            .bonus(&w, Some(&a), Money::usd_cents(45), "", &key("s", 2))
            .await
            .is_err()
    );
    drop(first); // the process died; the engine re-sends the effect from its outbox
    clock.advance(25 * HOUR_MS);
    let second = on_clock(&fake, &clock).await;
    second
        .bonus(&w, Some(&a), Money::usd_cents(45), "", &key("s", 2))
        .await
        .unwrap();
    assert_eq!(fake.bonuses().len(), 1);
    assert_eq!(fake.requests("SendBonus").len(), 1);
}

#[tokio::test]
async fn a_bonus_that_never_reached_mturk_is_paid_when_retried_25_hours_later() {
    let (clock, fake, _) = setup().await;
    let platform = on_clock(&fake, &clock).await;
    let (_, a) = submitted(&fake, &platform, 1).await;
    let w = WorkerId::new("W1");
    // Refused with a 5xx: nothing paid. A day later it is looked for, not found, and paid.
    fake.script("SendBonus", 500, server_error());
    let e = platform
        .bonus(&w, Some(&a), Money::usd_cents(20), "r", &key("s", 2))
        .await
        .unwrap_err();
    assert!(e.is_retryable(), "{e}");
    assert!(fake.bonuses().is_empty());
    clock.advance(25 * HOUR_MS);
    for _ in 0..2 {
        platform
            .bonus(&w, Some(&a), Money::usd_cents(20), "r", &key("s", 2))
            .await
            .unwrap();
    }
    assert_eq!(fake.bonuses().len(), 1);
    assert_eq!(fake.earnings("W1"), 20);
    // A different amount is not taken for ours: the marker and the amount must both match.
    fake.world().bonuses[0].cents = 21;
    clock.advance(25 * HOUR_MS);
    platform
        .bonus(&w, Some(&a), Money::usd_cents(20), "r", &key("s", 2))
        .await
        .unwrap();
    assert_eq!(fake.bonuses().len(), 2);
}

#[tokio::test]
async fn a_recent_resend_trusts_the_token_and_reads_nothing_back() {
    let (clock, fake, _) = setup().await;
    let platform = on_clock(&fake, &clock).await;
    let (_, a) = submitted(&fake, &platform, 1).await;
    let w = WorkerId::new("W1");
    fake.answer_late("SendBonus", LATE_MS);
    let k = key("s", 2);
    assert!(
        platform
            .bonus(&w, Some(&a), Money::usd_cents(5), "r", &k)
            .await
            .is_err()
    );
    clock.advance(23 * HOUR_MS);
    platform
        .bonus(&w, Some(&a), Money::usd_cents(5), "r", &k)
        .await
        .unwrap();
    assert_eq!(fake.bonuses().len(), 1);
    assert_eq!(
        fake.token_uses("SendBonus", k.as_str()),
        2,
        "MTurk's duplicate"
    );
    assert_eq!(
        fake.requests("ListBonusPayments").len(),
        1,
        "only before the first send"
    );
}

#[tokio::test]
async fn extra_assignments_whose_answer_was_lost_are_added_once_25_hours_later() {
    let (clock, fake, _) = setup().await;
    let platform = on_clock(&fake, &clock).await;
    let hit = platform.post(&spec(), 10, &key("s", 1)).await.unwrap();
    fake.answer_late("CreateAdditionalAssignmentsForHIT", LATE_MS);
    let e = platform.add_slots(&hit, 3, &key("s", 2)).await.unwrap_err();
    assert_eq!(e.kind, PlatformErrorKind::Timeout, "{e}");
    assert_eq!(
        fake.hits()[0].max_assignments,
        13,
        "added; the answer was lost"
    );
    clock.advance(25 * HOUR_MS);
    platform.add_slots(&hit, 3, &key("s", 2)).await.unwrap();
    assert_eq!(fake.hits()[0].max_assignments, 13, "not added twice");
    assert_eq!(fake.requests("CreateAdditionalAssignmentsForHIT").len(), 1);
    assert_eq!(fake.requests("GetHIT").len(), 1, "read back once");
    // The next key adds, and a day later it is not added again either.
    platform.add_slots(&hit, 2, &key("s", 3)).await.unwrap();
    assert_eq!(fake.hits()[0].max_assignments, 15);
    clock.advance(25 * HOUR_MS);
    platform.add_slots(&hit, 2, &key("s", 3)).await.unwrap();
    assert_eq!(fake.hits()[0].max_assignments, 15);
}

#[tokio::test]
async fn extra_assignments_that_never_reached_mturk_are_added_25_hours_later() {
    let (clock, fake, _) = setup().await;
    let platform = on_clock(&fake, &clock).await;
    let hit = platform.post(&spec(), 10, &key("s", 1)).await.unwrap();
    fake.script("CreateAdditionalAssignmentsForHIT", 500, server_error());
    assert!(platform.add_slots(&hit, 4, &key("s", 2)).await.is_err());
    assert_eq!(fake.hits()[0].max_assignments, 10);
    clock.advance(25 * HOUR_MS);
    platform.add_slots(&hit, 4, &key("s", 2)).await.unwrap();
    platform.add_slots(&hit, 4, &key("s", 2)).await.unwrap();
    assert_eq!(fake.hits()[0].max_assignments, 14, "added once");
}

#[tokio::test]
async fn a_fresh_instance_resends_extra_assignments_of_a_young_hit_under_the_token() {
    let (clock, fake, _) = setup().await;
    let first = on_clock(&fake, &clock).await;
    let hit = first.post(&spec(), 10, &key("s", 1)).await.unwrap();
    fake.answer_late("CreateAdditionalAssignmentsForHIT", LATE_MS);
    assert!(first.add_slots(&hit, 3, &key("s", 2)).await.is_err());
    drop(first);
    // Two hours later a new process re-sends it: the HIT is younger than MTurk's token
    // window, so the token is too, and MTurk refuses it as a duplicate.
    clock.advance(2 * HOUR_MS);
    let second = on_clock(&fake, &clock).await;
    second.add_slots(&hit, 3, &key("s", 2)).await.unwrap();
    assert_eq!(fake.hits()[0].max_assignments, 13);
    assert_eq!(
        fake.token_uses("CreateAdditionalAssignmentsForHIT", key("s", 2).as_str()),
        2
    );
}

#[tokio::test]
async fn a_bonus_for_a_recently_listed_submission_reads_nothing_back_until_it_is_old() {
    let (clock, fake, _) = setup().await;
    let platform = on_clock(&fake, &clock).await;
    let (_, a) = submitted(&fake, &platform, 1).await;
    platform.updates(None).await.unwrap(); // lists the submission, with its SubmitTime
    let w = WorkerId::new("W1");
    let k = key("s", 2);
    fake.answer_late("SendBonus", LATE_MS);
    assert!(
        platform
            .bonus(&w, Some(&a), Money::usd_cents(9), "r", &k)
            .await
            .is_err()
    );
    assert!(
        fake.requests("ListBonusPayments").is_empty(),
        "no token for a submission this recent can be older than MTurk's window"
    );
    clock.advance(25 * HOUR_MS);
    platform
        .bonus(&w, Some(&a), Money::usd_cents(9), "r", &k)
        .await
        .unwrap();
    assert_eq!(fake.bonuses().len(), 1);
    assert_eq!(fake.requests("ListBonusPayments").len(), 1);
    assert_eq!(fake.requests("SendBonus").len(), 1);
}
