//! Notifications through an SNS topic (MTurk → SNS → SQS): only envelopes signed by SNS for the
//! configured topic are accepted — forged, unsigned, foreign-topic and misdirected ones are
//! refused, logged and left on the queue — and, with the session given, only events of the
//! session's HITs become updates.
//!
//! The signing key and certificate are test-only (`tests/data/sns/`, see its README): messages
//! are signed here (SignatureVersion 2 with ring; a version 1 message was signed once with
//! openssl) and the certificate is served by a local fetcher at an `sns.us-east-1` URL, so no
//! test touches the network.

use std::collections::HashMap;
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crowdcore::platform::{AssignmentStatus, AssignmentUpdate, Platform};
use crowdcore_mturk::{
    CertFetcher, MturkPlatform, NotificationReader, PumpStats, SnsMessage, SnsVerifier,
};
use serde_json::{Value, json};

use crate::fake::{FakeMturk, QueueMessage};
use crate::{T0, config, key, platform_with, push_config, reader_with, spec};

const TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:mturk-events";
const CERT_URL: &str = "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-testonly.pem";
/// TEST ONLY: see tests/data/sns/README.md.
const TEST_KEY: &[u8] = include_bytes!("../data/sns/test-only-key.pk8");
const TEST_CERT: &[u8] = include_bytes!("../data/sns/test-only-cert.pem");
const SIGNED_V1: &str = include_str!("../data/sns/notification-v1.json");

/// Serves the test certificate at [`CERT_URL`], counting fetches.
#[derive(Debug, Default)]
struct LocalCerts {
    fetched: AtomicUsize,
}

#[async_trait::async_trait]
impl CertFetcher for LocalCerts {
    async fn fetch(&self, url: &url::Url) -> Result<Vec<u8>, String> {
        self.fetched.fetch_add(1, Ordering::SeqCst);
        let certs = HashMap::from([(CERT_URL, TEST_CERT)]);
        certs
            .get(url.as_str())
            .map(|c| c.to_vec())
            .ok_or_else(|| format!("404 {url}"))
    }
}

/// Signs an envelope with the test key, SignatureVersion 2 (SHA256withRSA), naming the test
/// certificate's URL.
fn sign(envelope: &mut Value) {
    envelope["SignatureVersion"] = json!("2");
    envelope["SigningCertURL"] = json!(CERT_URL);
    let m = SnsMessage::from_body(&envelope.to_string()).expect("an envelope");
    let text = m.string_to_sign().expect("signable");
    let key = ring::signature::RsaKeyPair::from_pkcs8(TEST_KEY).expect("the test key");
    let mut sig = vec![0; key.public().modulus_len()];
    key.sign(
        &ring::signature::RSA_PKCS1_SHA256,
        &ring::rand::SystemRandom::new(),
        text.as_bytes(),
        &mut sig,
    )
    .expect("signing");
    envelope["Signature"] = json!(aws_smithy_types::base64::encode(&sig));
}

/// An SNS notification of `topic` carrying MTurk's `document`, signed.
fn envelope(document: &str, n: usize, topic: &str) -> Value {
    let mut e = json!({
        "Type": "Notification",
        "MessageId": format!("5fe0a1c2-0000-4000-8000-{n:012}"),
        "TopicArn": topic,
        "Message": document,
        "Timestamp": "2026-01-01T00:00:11.000Z",
        "SigningCertURL": CERT_URL,
        "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe&SubscriptionArn=x",
    });
    sign(&mut e);
    e
}

/// Wraps every message waiting in the fake's queue in a signed SNS envelope, as SNS delivers
/// to a subscribed queue.
fn through_sns(fake: &FakeMturk) {
    fake.flush_events();
    let mut w = fake.world();
    for (n, m) in w.queue.iter_mut().enumerate() {
        m.body = envelope(&m.body, n, TOPIC).to_string();
    }
}

/// Puts a message with `body` in the fake's queue.
fn enqueue(fake: &FakeMturk, id: &str, body: String) {
    fake.world().queue.push(QueueMessage {
        id: id.into(),
        body,
        events: 1,
        visible_at_ms: 0,
        receipts: Vec::new(),
        deleted: false,
    });
}

/// A fake, a platform with notifications, and a reader verifying SNS with the local
/// certificates.
async fn sns_setup() -> (
    FakeMturk,
    Arc<MturkPlatform>,
    NotificationReader,
    Arc<LocalCerts>,
) {
    let clock = crowdcore::clock::VirtualClock::new(T0);
    let fake = FakeMturk::start(Arc::new(clock), 100_000).await;
    let config = push_config(config(&fake), &fake);
    let platform = Arc::new(platform_with(config.clone()).await);
    let certs = Arc::new(LocalCerts::default());
    let reader = reader_with(&config)
        .await
        .with_sns_verifier(SnsVerifier::with_fetcher(TOPIC, certs.clone()));
    (fake, platform, reader, certs)
}

/// One pump collecting the updates handed over.
async fn pump(reader: &NotificationReader) -> (PumpStats, Vec<AssignmentUpdate>) {
    let mut got = Vec::new();
    let stats = reader
        .pump(&mut async |u: &[AssignmentUpdate]| {
            got.extend_from_slice(u);
            Ok::<(), String>(())
        })
        .await
        .expect("receive");
    (stats, got)
}

/// A HIT of `session` with `n` + 1 slots, `n` of whose workers submit; their assignments.
async fn submissions(
    fake: &FakeMturk,
    platform: &MturkPlatform,
    session: &str,
    n: u32,
) -> Vec<String> {
    let hit = platform
        .post(&spec(), n + 1, &key(session, 1))
        .await
        .unwrap();
    (0..n)
        .map(|i| {
            let a = fake
                .accept(&format!("W{session}{i}"), hit.as_str())
                .unwrap();
            fake.submit(&a, "x").unwrap();
            a
        })
        .collect()
}

/// Where this crate's log lines go while the guard lives (no colours).
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn capture_logs() -> (Arc<Mutex<Vec<u8>>>, tracing::subscriber::DefaultGuard) {
    let buf = Arc::new(Mutex::new(Vec::new()));
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        // This crate's own logs, at every level (the SDK's wire logs are not ours to vet).
        .with_env_filter("crowdcore_mturk=trace")
        .with_writer(move || Captured(writer.clone()))
        .finish();
    (buf, tracing::subscriber::set_default(subscriber))
}

#[tokio::test]
async fn signed_sns_notifications_are_accepted() {
    let (fake, platform, reader, certs) = sns_setup().await;
    let submitted = submissions(&fake, &platform, "s", 4).await;
    through_sns(&fake);
    let (stats, got) = pump(&reader).await;
    assert_eq!(
        (stats.received, stats.refused, stats.deleted),
        (2, 0, 2),
        "{stats:?}"
    );
    assert_eq!(
        got.iter()
            .map(|u| (u.assignment.to_string(), u.status))
            .collect::<Vec<_>>(),
        submitted
            .iter()
            .map(|a| (a.clone(), AssignmentStatus::Submitted))
            .collect::<Vec<_>>()
    );
    assert_eq!(fake.undelivered(), (0, 0));
    assert_eq!(
        certs.fetched.load(Ordering::SeqCst),
        1,
        "the certificate is kept"
    );
}

#[tokio::test]
async fn a_version_1_signature_is_accepted() {
    let (fake, _platform, reader, _certs) = sns_setup().await;
    enqueue(&fake, "MV1", SIGNED_V1.to_owned());
    let (stats, got) = pump(&reader).await;
    assert_eq!((stats.refused, stats.deleted), (0, 1), "{stats:?}");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].assignment.as_str(), "ASNSV1");
    // The same message with one byte of its payload changed no longer verifies.
    let mut forged: Value = serde_json::from_str(SIGNED_V1).unwrap();
    let message = forged["Message"]
        .as_str()
        .unwrap()
        .replace("ASNSV1", "ASNSV2");
    forged["Message"] = json!(message);
    enqueue(&fake, "MV1F", forged.to_string());
    let (stats, got) = pump(&reader).await;
    assert_eq!((stats.refused, got.len()), (1, 0), "{stats:?}");
}

#[tokio::test]
async fn a_forged_sns_message_is_refused_and_logged() {
    let (fake, platform, reader, _certs) = sns_setup().await;
    let submitted = submissions(&fake, &platform, "s", 1).await;
    through_sns(&fake);
    // Someone who may write to the queue changes the assignment a genuine message names.
    let (forged_body, signature) = {
        let mut w = fake.world();
        let m = &mut w.queue[0];
        let mut e: Value = serde_json::from_str(&m.body).unwrap();
        let message = e["Message"]
            .as_str()
            .unwrap()
            .replace(&submitted[0], "A99999");
        e["Message"] = json!(message);
        m.body = e.to_string();
        (m.body.clone(), e["Signature"].as_str().unwrap().to_owned())
    };
    let (logs, guard) = capture_logs();
    let (stats, got) = pump(&reader).await;
    drop(guard);
    assert!(got.is_empty(), "nothing handed over: {got:?}");
    assert_eq!(
        (stats.received, stats.refused, stats.deleted),
        (1, 1, 0),
        "{stats:?}"
    );
    assert_eq!(
        fake.undelivered(),
        (1, 0),
        "left on the queue for its redrive policy"
    );
    let logs = String::from_utf8(logs.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("WARN"), "{logs}");
    assert!(logs.contains("SNS message refused"), "{logs}");
    assert!(logs.contains("bad sns signature"), "{logs}");
    assert!(
        !logs.contains(&signature),
        "the signature is not logged: {logs}"
    );
    assert!(!logs.contains("A99999"), "the body is not logged: {logs}");
    assert!(!logs.contains(&forged_body));
}

#[tokio::test]
async fn unsigned_foreign_and_misdirected_messages_are_refused_before_any_fetch() {
    let (fake, platform, reader, certs) = sns_setup().await;
    submissions(&fake, &platform, "s", 1).await;
    fake.flush_events();
    let document = fake.world().queue.remove(0).body;
    let genuine = envelope(&document, 1, TOPIC);
    let mut cases: Vec<(&str, Value)> = Vec::new();
    let mut unsigned = genuine.clone();
    unsigned.as_object_mut().unwrap().remove("Signature");
    cases.push(("unsigned", unsigned));
    // A genuine signature, but of someone else's topic (SNS signs every topic alike).
    cases.push((
        "another topic",
        envelope(&document, 2, "arn:aws:sns:us-east-1:999999999999:theirs"),
    ));
    for (what, url) in [
        (
            "plain http",
            "http://sns.us-east-1.amazonaws.com/SimpleNotificationService-testonly.pem",
        ),
        (
            "another host",
            "https://sns.us-east-1.amazonaws.com.evil.example/cert.pem",
        ),
        (
            "a port",
            "https://sns.us-east-1.amazonaws.com:8443/SimpleNotificationService-testonly.pem",
        ),
    ] {
        let mut e = genuine.clone();
        e["SigningCertURL"] = json!(url);
        cases.push((what, e));
    }
    let mut v3 = genuine.clone();
    v3["SignatureVersion"] = json!("3");
    cases.push(("version 3", v3));
    let n = cases.len();
    for (i, (_, body)) in cases.iter().enumerate() {
        enqueue(&fake, &format!("MBAD{i}"), body.to_string());
    }
    // A bare document where signed envelopes are required.
    enqueue(&fake, "MBARE", document.clone());
    let mut received = 0;
    let mut refused = 0;
    for _ in 0..3 {
        let (stats, got) = pump(&reader).await;
        assert!(got.is_empty(), "{got:?}");
        received += stats.received;
        refused += stats.refused;
    }
    assert_eq!((received, refused), (n + 1, n + 1));
    assert_eq!(
        certs.fetched.load(Ordering::SeqCst),
        0,
        "no certificate fetched for any"
    );

    // A reader not told of a topic refuses envelopes (it cannot tell whose they are) and takes
    // MTurk's bare documents, as MTurk writes them to the queue directly.
    let direct = reader_with(&push_config(config(&fake), &fake)).await;
    fake.world().queue.clear();
    enqueue(&fake, "MENV", genuine.to_string());
    enqueue(&fake, "MDOC", document);
    let (stats, got) = pump(&direct).await;
    assert_eq!(
        (stats.refused, stats.deleted, got.len()),
        (1, 1, 1),
        "{stats:?}"
    );
}

#[tokio::test]
async fn an_event_for_another_sessions_hit_is_dropped() {
    let clock = crowdcore::clock::VirtualClock::new(T0);
    let fake = FakeMturk::start(Arc::new(clock), 100_000).await;
    let scoped = |session: &str| {
        let mut c = push_config(config(&fake), &fake);
        c.scope = Some(session.into());
        c
    };
    let ours = Arc::new(platform_with(scoped("ours")).await);
    let theirs = platform_with(scoped("theirs")).await;
    let mine = submissions(&fake, &ours, "ours", 2).await;
    let other = submissions(&fake, &theirs, "theirs", 3).await;
    let reader = reader_with(&scoped("ours"))
        .await
        .with_session(ours.clone());
    let mut got = Vec::new();
    let mut stats = PumpStats::default();
    for _ in 0..3 {
        let (s, g) = pump(&reader).await;
        got.extend(g);
        stats.dropped += s.dropped;
        stats.deleted += s.deleted;
        stats.received += s.received;
    }
    let seen: Vec<String> = got.iter().map(|u| u.assignment.to_string()).collect();
    assert_eq!(seen, mine, "only our HIT's events");
    assert_eq!(stats.dropped, other.len());
    assert_eq!(
        stats.deleted, stats.received,
        "dropping is handling: nothing stays"
    );
    assert_eq!(fake.undelivered(), (0, 0));
    // A fresh instance of our session (nothing posted by it) knows its HITs by their keys.
    let restarted = Arc::new(platform_with(scoped("ours")).await);
    let a = fake.accept("W9", got[0].hit.as_str()).unwrap();
    fake.submit(&a, "x").unwrap();
    let reader = reader_with(&scoped("ours")).await.with_session(restarted);
    let (s, g) = pump(&reader).await;
    assert_eq!((s.dropped, g.len()), (0, 1), "{s:?}");
    assert!(ours.capabilities().push_notifications);
}

#[tokio::test]
async fn with_a_topic_configured_mturk_notifies_it_and_its_signed_messages_come_through() {
    let clock = crowdcore::clock::VirtualClock::new(T0);
    let fake = FakeMturk::start(Arc::new(clock), 100_000).await;
    let mut config = push_config(config(&fake), &fake);
    config
        .notifications
        .as_mut()
        .expect("push_config sets notifications")
        .sns_topic_arn = Some(TOPIC.into());
    let platform = platform_with(config.clone()).await;
    let certs = Arc::new(LocalCerts::default());
    let reader = reader_with(&config)
        .await
        .with_sns_verifier(SnsVerifier::with_fetcher(TOPIC, certs.clone()));
    fake.set_sns_signer(Arc::new(sign));
    let submitted = submissions(&fake, &platform, "s", 2).await;
    let settings = fake.requests("UpdateNotificationSettings");
    assert_eq!(settings.len(), 1);
    assert_eq!(settings[0]["Notification"]["Transport"], "SNS");
    assert_eq!(settings[0]["Notification"]["Destination"], TOPIC);
    let (stats, got) = pump(&reader).await;
    assert_eq!((stats.refused, stats.deleted), (0, 1), "{stats:?}");
    let seen: Vec<String> = got.iter().map(|u| u.assignment.to_string()).collect();
    assert_eq!(seen, submitted);

    // Unsigned envelopes (SNS would never write one) are refused.
    fake.world().sns_signer = None;
    let hit = &got[0].hit;
    let a = fake.accept("W-late", hit.as_str()).unwrap();
    fake.submit(&a, "x").unwrap();
    let (stats, got) = pump(&reader).await;
    assert_eq!((stats.refused, got.len()), (1, 0), "{stats:?}");
}
