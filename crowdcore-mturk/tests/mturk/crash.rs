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

#[tokio::test]
async fn a_restarted_instance_watches_the_hits_of_its_long_session() {
    let (_, fake, _) = setup().await;
    // Two sessions whose effect ids are longer than a key: both post digested keys.
    let long = format!("{}-alpha", "s".repeat(70));
    let other = format!("{}-beta", "s".repeat(70));
    let scoped = |session: &str| {
        let mut c = config(&fake);
        c.scope = Some(session.to_owned());
        c
    };
    let first = platform_with(scoped(&long)).await;
    let mine = first.post(&spec(), 2, &key(&long, 1)).await.unwrap();
    let theirs = platform_with(scoped(&other))
        .await
        .post(&spec(), 2, &key(&other, 1))
        .await
        .unwrap();
    drop(first); // the process restarts; nothing of it is left
    let a = fake.accept("W1", mine.as_str()).unwrap();
    fake.submit(&a, "x").unwrap();
    let b = fake.accept("W2", theirs.as_str()).unwrap();
    fake.submit(&b, "x").unwrap();

    let second = platform_with(scoped(&long)).await;
    assert_eq!(
        second.watched_hits().await.unwrap(),
        std::slice::from_ref(&mine),
        "found by its annotation's digest, without posting again"
    );
    let page = second.updates(None).await.unwrap();
    let seen: Vec<_> = page
        .items
        .iter()
        .map(|u| u.assignment.to_string())
        .collect();
    assert_eq!(seen, [a], "the other long session's submission is not ours");
    assert_eq!(second.expire_session(&long).await.unwrap(), [mine]);
    assert_eq!(fake.requests("CreateHITWithHITType").len(), 2);
}
