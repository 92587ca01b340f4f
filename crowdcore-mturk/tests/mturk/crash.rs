//! A crash between a create and its record: the engine re-sends the effect with its key from a
//! fresh process; the HIT is not posted twice.

use crowdcore::platform::Platform;

use crate::{LATE_MS, config, key, platform_with, setup, spec};

#[tokio::test]
async fn a_fresh_instance_finds_the_hit_its_predecessor_posted() {
    let (_, fake, first) = setup().await;
    let hit = first.post(&spec(), 3, &key("sess", 1)).await.unwrap();
    drop(first); // crashed before recording the HIT
    let second = platform_with(config(&fake)).await;
    assert_eq!(second.post(&spec(), 3, &key("sess", 1)).await.unwrap(), hit);
    assert_eq!(fake.hits().len(), 1);
    assert_eq!(
        fake.requests("CreateHITWithHITType").len(),
        1,
        "found by annotation: not even re-sent"
    );
}

#[tokio::test]
async fn a_fresh_instance_resolves_a_create_whose_answer_was_lost() {
    let (_, fake, first) = setup().await;
    // The first process posted; the answer never came back; it died.
    fake.answer_late("CreateHITWithHITType", LATE_MS);
    assert!(first.post(&spec(), 3, &key("sess", 1)).await.is_err());
    drop(first);
    let second = platform_with(config(&fake)).await;
    let hit = second.post(&spec(), 3, &key("sess", 1)).await.unwrap();
    assert_eq!(hit.as_str(), fake.hits()[0].id);
    assert_eq!(fake.hits().len(), 1);
}

#[tokio::test]
async fn scoped_instances_see_only_their_session() {
    let (_, fake, _) = setup().await;
    let mut a = config(&fake);
    a.scope = Some("alpha".into());
    let mut b = config(&fake);
    b.scope = Some("beta".into());
    let (a, b) = (platform_with(a).await, platform_with(b).await);
    let ha = a.post(&spec(), 1, &key("alpha", 1)).await.unwrap();
    let hb = b.post(&spec(), 1, &key("beta", 1)).await.unwrap();
    let fresh_a = platform_with({
        let mut c = config(&fake);
        c.scope = Some("alpha".into());
        c
    })
    .await;
    assert_eq!(
        fresh_a.watched_hits().await.unwrap(),
        std::slice::from_ref(&ha)
    );
    // Expiring a session touches its HITs only.
    let expired = b.expire_session("beta").await.unwrap();
    assert_eq!(expired, [hb]);
    assert_eq!(fake.available("W1"), [ha.to_string()]);
}

#[tokio::test]
async fn a_digest_key_is_found_whatever_the_scope() {
    let (_, fake, _) = setup().await;
    // A session id so long that its keys are digests, which no scope can recognise.
    let long = "s".repeat(80);
    let mut c = config(&fake);
    c.scope = Some(long.clone());
    let first = platform_with(c.clone()).await;
    let k = key(&long, 1);
    assert!(!k.as_str().starts_with(&long));
    let hit = first.post(&spec(), 2, &k).await.unwrap();
    assert_eq!(
        first.watched_hits().await.unwrap(),
        std::slice::from_ref(&hit),
        "its own HIT is watched"
    );
    let second = platform_with(c).await;
    assert_eq!(second.post(&spec(), 2, &k).await.unwrap(), hit);
    assert_eq!(fake.requests("CreateHITWithHITType").len(), 1);
    assert_eq!(second.watched_hits().await.unwrap(), [hit]);
}
