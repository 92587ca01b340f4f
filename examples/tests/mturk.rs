//! The `mturk` admin example against the fake MTurk of crowdcore-mturk's tests: it reads the
//! balance, lists the HITs with the effects that posted them, and expires one session's HITs
//! and no other's. Credentials come from the environment, as from the standard chain.

#[path = "../../crowdcore-mturk/tests/fake/mod.rs"]
mod fake;

mod common;

use std::process::Command;
use std::sync::Arc;

use aws_credential_types::Credentials;
use crowdcore::clock::SystemClock;
use crowdcore::platform::{IdempotencyKey, Platform};
use crowdcore::{EffectId, HitSpec, Money, SessionId};
use crowdcore_mturk::{Endpoint, MturkConfig, MturkPlatform};

/// Runs the example with the test credentials in the environment and nothing else from it.
async fn mturk(url: &str, args: &[&str]) -> (bool, String, String) {
    let mut cmd = Command::new(common::example("mturk"));
    cmd.arg("--endpoint-url").arg(url).args(args);
    cmd.env_clear()
        .env("AWS_ACCESS_KEY_ID", fake::ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", fake::SECRET_KEY)
        .env("AWS_CONFIG_FILE", "/nonexistent")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
        .env("AWS_EC2_METADATA_DISABLED", "true");
    let out = tokio::task::spawn_blocking(move || cmd.output().expect("the example runs"))
        .await
        .expect("joined");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn spec() -> HitSpec {
    HitSpec {
        title: "Label photos".into(),
        description: "Label photos as they arrive.".into(),
        keywords: Vec::new(),
        reward: Money::usd_cents(50),
        assignment_duration_ms: 600_000,
        lifetime_ms: 3_600_000,
        max_assignments: 5,
        auto_approval_delay_ms: 3_600_000,
        qualifications: Vec::new(),
        landing_url: "https://front.example/land".into(),
        frame_height: 600,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn balance_list_and_expire_a_session() {
    let fake = fake::FakeMturk::start(Arc::new(SystemClock), 123_456).await;
    let url = fake.url();
    let creds = Credentials::new(fake::ACCESS_KEY, fake::SECRET_KEY, None, None, "test");
    let platform = MturkPlatform::connect_with_credentials(
        MturkConfig::new(Endpoint::Url(url.clone())),
        creds,
    )
    .await;
    let key = |s: &str, n| IdempotencyKey::for_effect(&EffectId::new(SessionId::new(s), n));
    let a1 = platform.post(&spec(), 2, &key("alpha", 1)).await.unwrap();
    let a2 = platform.post(&spec(), 3, &key("alpha", 2)).await.unwrap();
    let b1 = platform.post(&spec(), 1, &key("beta", 1)).await.unwrap();

    let (ok, out, err) = mturk(&url, &["balance"]).await;
    assert!(ok, "{err}");
    // 1 234.56 $ less the three postings with MTurk's 20 % fee.
    assert_eq!(out.trim(), "1230.96");

    let (ok, out, err) = mturk(&url, &["list-hits"]).await;
    assert!(ok, "{err}");
    let rows: Vec<Vec<&str>> = out.lines().map(|l| l.split('\t').collect()).collect();
    assert_eq!(rows.len(), 3, "{out}");
    assert_eq!(rows[0][0], a1.as_str());
    assert_eq!(rows[0][1], "Assignable");
    assert_eq!(rows[0][2], "2");
    assert_eq!(rows[0][7], "alpha/1");
    assert_eq!(rows[2][7], "beta/1");

    let (ok, out, err) = mturk(&url, &["list-hits", "--session", "alpha", "--json"]).await;
    assert!(ok, "{err}");
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[1]["hit"], a2.as_str());
    assert_eq!(lines[1]["effect"], "alpha/2");

    let (ok, out, err) = mturk(&url, &["expire-session", "alpha"]).await;
    assert!(ok, "{err}");
    assert_eq!(out.lines().collect::<Vec<_>>(), [a1.as_str(), a2.as_str()]);
    assert_eq!(
        fake.available("W1"),
        [b1.to_string()],
        "beta's HIT stays open"
    );

    // An endpoint that refuses: a failure exit and a message, no panic.
    let (ok, _, err) = mturk("http://127.0.0.1:9", &["balance"]).await;
    assert!(!ok);
    assert!(err.contains("error:"), "{err}");
}
