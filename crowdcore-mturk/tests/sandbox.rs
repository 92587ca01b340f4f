//! The real MTurk requester sandbox — opt-in, because it needs an AWS account and the network:
//!
//! ```text
//! CROWDCORE_MTURK_SANDBOX=1 AWS_ACCESS_KEY_ID=… AWS_SECRET_ACCESS_KEY=… \
//!     cargo test -p crowdcore-mturk --test sandbox -- --nocapture
//! ```
//!
//! (or `AWS_PROFILE=…`: any source of the standard credential chain). Without
//! `CROWDCORE_MTURK_SANDBOX=1`, or without credentials, it prints why it skipped and passes.
//! It reads the sandbox balance (play money), posts two one-assignment HITs under a fresh
//! session, checks that the same key — from the same instance, from a fresh instance, and from
//! an instance that must go through MTurk's duplicate-token error — gives the same HIT, adds an
//! assignment, polls for updates, and expires the HITs again. Sandbox HITs cost nothing.
//!
//! With `CROWDCORE_MTURK_SQS_QUEUE=<queue url>` as well (a queue whose policy lets
//! `mturk-requester.amazonaws.com` send to it), a second test posts a HIT with notifications
//! to that queue, asks MTurk for a test event (`SendTestEventNotification`) and reads it back
//! with the `NotificationReader`.

use std::time::Duration;

use aws_credential_types::provider::ProvideCredentials;
use crowdcore::platform::AssignmentUpdate;
use crowdcore::platform::{IdempotencyKey, Platform};
use crowdcore::{EffectId, HitSpec, Money, SessionId};
use crowdcore_mturk::{
    MturkConfig, MturkPlatform, NOTIFICATION_VERSION, NotificationReader, NotificationSettings,
};

async fn credentials_present() -> Result<(), String> {
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .http_client(
            aws_smithy_http_client::Builder::new()
                .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
                    aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
                ))
                .build_https(),
        )
        .load()
        .await;
    let provider = sdk.credentials_provider().ok_or("no credential provider")?;
    provider
        .provide_credentials()
        .await
        .map(|_| ())
        .map_err(|e| format!("no credentials: {e}"))
}

fn spec() -> HitSpec {
    HitSpec {
        title: "crowdcore sandbox check (please ignore)".into(),
        description: "An automated test of crowdcore's MTurk backend.".into(),
        keywords: vec!["test".into()],
        reward: Money::usd_cents(1),
        assignment_duration_ms: 300_000,
        lifetime_ms: 600_000,
        max_assignments: 2,
        auto_approval_delay_ms: 3_600_000,
        qualifications: Vec::new(),
        landing_url: "https://example.org/crowdcore-sandbox".into(),
        frame_height: 400,
    }
}

#[tokio::test]
async fn the_sandbox_round_trip() {
    if std::env::var("CROWDCORE_MTURK_SANDBOX").as_deref() != Ok("1") {
        println!(
            "skipped: set CROWDCORE_MTURK_SANDBOX=1 (with AWS credentials) to run against the MTurk sandbox"
        );
        return;
    }
    if let Err(why) = credentials_present().await {
        println!("skipped: CROWDCORE_MTURK_SANDBOX=1 but {why}");
        return;
    }
    let session = SessionId::new_v7();
    let mut config = MturkConfig::sandbox();
    config.scope = Some(session.to_string());
    let key = |n| IdempotencyKey::for_effect(&EffectId::new(session.clone(), n));
    let a = MturkPlatform::connect(config.clone()).await;
    let balance = a.balance().await.expect("GetAccountBalance");
    println!("sandbox balance: {balance}");

    let hit = a.post(&spec(), 1, &key(1)).await.expect("post");
    println!("posted {hit} for session {session}");
    assert_eq!(
        a.post(&spec(), 1, &key(1)).await.unwrap(),
        hit,
        "same instance"
    );
    let fresh = MturkPlatform::connect(config.clone()).await;
    // ListHITs may lag a fresh HIT by a little: a duplicate-token answer is then retryable.
    let mut found = None;
    for _ in 0..10 {
        match fresh.post(&spec(), 1, &key(1)).await {
            Ok(h) => {
                found = Some(h);
                break;
            }
            Err(e) if e.is_retryable() => tokio::time::sleep(Duration::from_secs(2)).await,
            Err(e) => panic!("fresh instance: {e}"),
        }
    }
    assert_eq!(found.as_ref(), Some(&hit), "a fresh instance finds it");

    // `b` lists the session's HITs before `a` posts key 2; then posts key 2 itself, which MTurk
    // refuses as a duplicate token: resolved to `a`'s HIT.
    let b = MturkPlatform::connect(config.clone()).await;
    b.watched_hits().await.expect("ListHITs");
    let second = a.post(&spec(), 1, &key(2)).await.expect("post 2");
    let mut resolved = None;
    for _ in 0..10 {
        match b.post(&spec(), 1, &key(2)).await {
            Ok(h) => {
                resolved = Some(h);
                break;
            }
            Err(e) if e.is_retryable() => {
                println!("retrying: {e}");
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            Err(e) => panic!("duplicate token not resolved: {e}"),
        }
    }
    assert_eq!(resolved.as_ref(), Some(&second));

    a.add_slots(&hit, 1, &key(3))
        .await
        .expect("add an assignment");
    a.add_slots(&hit, 1, &key(3))
        .await
        .expect("the same token again");
    let page = a.updates(None).await.expect("updates");
    println!("{} updates (no worker took the HITs)", page.items.len());
    for h in [&hit, &second] {
        a.expire(h).await.expect("expire");
    }
    let listed = a.list_hits().await.expect("ListHITs");
    let mine = listed.iter().find(|h| h.hit == hit).expect("listed");
    assert_eq!(mine.max_assignments, 2, "one assignment added once");
    println!("ok: {} HITs on the sandbox account", listed.len());
}

#[tokio::test]
async fn sandbox_notifications_reach_the_queue() {
    let (Ok("1"), Ok(queue)) = (
        std::env::var("CROWDCORE_MTURK_SANDBOX").as_deref(),
        std::env::var("CROWDCORE_MTURK_SQS_QUEUE"),
    ) else {
        println!(
            "skipped: set CROWDCORE_MTURK_SANDBOX=1 and CROWDCORE_MTURK_SQS_QUEUE=<queue url> (with AWS credentials) to check notifications"
        );
        return;
    };
    if let Err(why) = credentials_present().await {
        println!("skipped: {why}");
        return;
    }
    let session = SessionId::new_v7();
    let mut config = MturkConfig::sandbox();
    config.scope = Some(session.to_string());
    let mut settings = NotificationSettings::new(queue.clone());
    settings.wait_time_s = 10;
    config.notifications = Some(settings);
    let platform = MturkPlatform::connect(config.clone()).await;
    assert!(platform.capabilities().push_notifications);
    let reader = NotificationReader::connect(&config).await.expect("queue");
    let key = IdempotencyKey::for_effect(&EffectId::new(session.clone(), 1));
    let hit = platform.post(&spec(), 1, &key).await.expect("post");
    println!("posted {hit}; notifications of its type go to {queue}");
    let notification = aws_sdk_mturk::types::NotificationSpecification::builder()
        .destination(&queue)
        .transport(aws_sdk_mturk::types::NotificationTransport::Sqs)
        .version(NOTIFICATION_VERSION)
        .event_types(aws_sdk_mturk::types::EventType::AssignmentSubmitted)
        .build()
        .expect("complete");
    platform
        .client()
        .send_test_event_notification()
        .notification(notification)
        .test_event_type(aws_sdk_mturk::types::EventType::AssignmentSubmitted)
        .send()
        .await
        .expect("SendTestEventNotification");
    let mut got: Vec<AssignmentUpdate> = Vec::new();
    let mut received = 0;
    for _ in 0..6 {
        let stats = reader
            .pump(&mut async |u: &[AssignmentUpdate]| {
                got.extend_from_slice(u);
                Ok::<(), String>(())
            })
            .await
            .expect("ReceiveMessage");
        println!("{stats:?}");
        assert_eq!(stats.malformed, 0, "MTurk's test message did not parse");
        received += stats.received;
        if received > 0 {
            break;
        }
    }
    platform.expire(&hit).await.expect("expire");
    assert!(received > 0, "no notification within a minute");
    println!("ok: {} updates from the test event: {got:?}", got.len());
}
