//! Lists longer than a page are followed with `NextToken`; the update cursor reports each
//! event once, in order, also from a fresh instance.

use crowdcore::clock::VirtualClock;
use crowdcore::platform::{AssignmentStatus, Cursor, Platform};
use crowdcore::{AssignmentId, HitId};

use crate::{config, key, platform_with, setup, spec};

async fn drain(p: &dyn Platform, cursor: &mut Option<Cursor>) -> Vec<(String, AssignmentStatus)> {
    let mut got = Vec::new();
    for _ in 0..100 {
        let page = p.updates(cursor.as_ref()).await.unwrap();
        let moved = page.next != *cursor;
        got.extend(
            page.items
                .iter()
                .map(|u| (u.assignment.to_string(), u.status)),
        );
        *cursor = page.next;
        if !moved {
            return got;
        }
    }
    panic!("the cursor never settled");
}

#[tokio::test]
async fn hits_and_assignments_are_paged_and_each_event_reported_once() {
    let (clock, fake, platform) = setup().await;
    fake.world().page_cap = 2;
    let mut hits: Vec<HitId> = Vec::new();
    for i in 1..=5 {
        hits.push(platform.post(&spec(), 5, &key("s", i)).await.unwrap());
    }
    assert_eq!(platform.list_hits().await.unwrap().len(), 5);
    let listed = fake.requests("ListHITs");
    assert!(
        listed.iter().any(|b| b.get("NextToken").is_some()),
        "{listed:?}"
    );
    let step = |c: &VirtualClock| c.advance(1_000);
    let mut ids = Vec::new();
    for (h, hit) in hits.iter().enumerate() {
        for w in 0..3 {
            step(&clock);
            let a = fake.accept(&format!("W{h}{w}"), hit.as_str()).unwrap();
            step(&clock);
            fake.submit(&a, "x").unwrap();
            ids.push(a);
        }
    }
    let mut cursor = None;
    let first = drain(platform.as_ref(), &mut cursor).await;
    let expected: Vec<_> = ids
        .iter()
        .map(|a| (a.clone(), AssignmentStatus::Submitted))
        .collect();
    assert_eq!(first, expected, "time order, each once");
    assert!(
        fake.requests("ListAssignmentsForHIT")
            .iter()
            .any(|b| b.get("NextToken").is_some())
    );
    step(&clock);
    platform
        .approve(&AssignmentId::new(ids[4].as_str()), &key("s", 10))
        .await
        .unwrap();
    // A fresh instance resumes from the stored cursor text.
    let fresh = platform_with(config(&fake)).await;
    let text = cursor.clone().unwrap().0;
    let mut resumed = Some(Cursor(text));
    let next = drain(&fresh, &mut resumed).await;
    assert_eq!(next, [(ids[4].clone(), AssignmentStatus::Approved)]);
    assert!(drain(&fresh, &mut resumed).await.is_empty());
    let e = fresh.updates(Some(&Cursor("17".into()))).await.unwrap_err();
    assert_eq!(e.code, "InvalidCursor");
}

#[tokio::test]
async fn only_hits_whose_counts_moved_are_listed_again() {
    let (_, fake, _) = setup().await;
    let mut c = config(&fake);
    c.settle_window_ms = 0; // trust MTurk's counts at once
    let platform = platform_with(c).await;
    let h1 = platform.post(&spec(), 3, &key("s", 1)).await.unwrap();
    let h2 = platform.post(&spec(), 3, &key("s", 2)).await.unwrap();
    let listings = |fake: &crate::fake::FakeMturk| -> Vec<String> {
        fake.requests("ListAssignmentsForHIT")
            .iter()
            .map(|b| b["HITId"].as_str().unwrap().to_owned())
            .collect()
    };
    let mut cursor = None;
    assert!(drain(&platform, &mut cursor).await.is_empty());
    assert_eq!(
        listings(&fake),
        [h1.to_string(), h2.to_string()],
        "both seen once"
    );
    assert!(drain(&platform, &mut cursor).await.is_empty());
    assert_eq!(listings(&fake).len(), 2, "nothing moved: nothing listed");
    let a = fake.accept("W1", h2.as_str()).unwrap();
    fake.submit(&a, "x").unwrap();
    let got = drain(&platform, &mut cursor).await;
    assert_eq!(got, [(a.clone(), AssignmentStatus::Submitted)]);
    assert_eq!(
        listings(&fake)[2..],
        [h2.to_string()],
        "only the HIT that moved"
    );
}

#[tokio::test]
async fn skipping_quiet_hits_loses_nothing_across_pages_or_a_lost_page() {
    let (clock, fake, _) = setup().await;
    let mut c = config(&fake);
    c.settle_window_ms = 0;
    let platform = platform_with(c).await;
    let mut expected = Vec::new();
    for h in 0..11 {
        let hit = platform.post(&spec(), 10, &key("s", h)).await.unwrap();
        for w in 0..10 {
            clock.advance(1_000);
            let a = fake.accept(&format!("W{h}-{w}"), hit.as_str()).unwrap();
            fake.submit(&a, "x").unwrap();
            expected.push((a, AssignmentStatus::Submitted));
        }
    }
    // 110 events: more than a page.
    let first = platform.updates(None).await.unwrap();
    assert_eq!(first.items.len(), crowdcore_mturk::PAGE_SIZE);
    // The caller loses that page and asks again from the start: it gets it again.
    let again = platform.updates(None).await.unwrap();
    assert_eq!(again.items, first.items);
    let mut cursor = again.next.clone();
    let rest = drain(&platform, &mut cursor).await;
    let mut all: Vec<_> = again
        .items
        .iter()
        .map(|u| (u.assignment.to_string(), u.status))
        .collect();
    all.extend(rest);
    assert_eq!(all, expected, "every event once, in order, across pages");
    assert!(drain(&platform, &mut cursor).await.is_empty());
}

#[tokio::test]
async fn a_caller_that_lost_a_page_gets_it_again_from_the_same_instance() {
    let (_, fake, _) = setup().await;
    let mut c = config(&fake);
    c.settle_window_ms = 0;
    let platform = platform_with(c).await;
    let hit = platform.post(&spec(), 3, &key("s", 1)).await.unwrap();
    let a = fake.accept("W1", hit.as_str()).unwrap();
    fake.submit(&a, "x").unwrap();
    let page = platform.updates(None).await.unwrap();
    assert_eq!(page.items.len(), 1);
    // The engine failed to record that page (a store error) and polls from where it was.
    let again = platform.updates(None).await.unwrap();
    assert_eq!(again.items, page.items);
    assert_eq!(again.next, page.next);
}
