//! The `prolific` admin example against the fake Prolific: it reads the balance, lists the
//! project's studies with the session that created each, and stops one session's study and
//! no other's. The token comes from the environment.

mod common;

use std::process::Command;

use crowdcore::platform::{IdempotencyKey, Platform};
use crowdcore::{EffectId, HitSpec, Money, SessionId};
use crowdcore_prolific::fake::{FakeConfig, FakeProlific};
use crowdcore_prolific::{
    ClientConfig, Credentials, ProlificClient, ProlificPlatform, ProlificPlatformConfig,
};

/// Runs the example with the fake's token in the environment and nothing else from it.
async fn prolific(url: &str, args: &[&str]) -> (bool, String, String) {
    let mut cmd = Command::new(common::example("prolific"));
    cmd.arg("--prolific-url").arg(url).args(args);
    cmd.env_clear().env("PROLIFIC_API_TOKEN", "fake-token");
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
async fn balance_studies_and_stop() {
    let fake = FakeProlific::start(FakeConfig {
        currency: "USD".into(),
        balance: 123_456,
        ..FakeConfig::default()
    })
    .await
    .unwrap();
    let url = fake.base_url();
    let client =
        ProlificClient::new(ClientConfig::new(&url, Credentials::new("fake-token"))).unwrap();
    let mut studies = Vec::new();
    for session in ["s-one", "s-two"] {
        let p = ProlificPlatform::new(
            client.clone(),
            ProlificPlatformConfig::new("ws", "prj", session),
        );
        let key = IdempotencyKey::for_effect(&EffectId::new(SessionId::new(session), 1));
        studies.push(p.post(&spec(), 2, &key).await.unwrap());
    }
    let spent = 2 * 2 * 50;

    let (ok, out, err) = prolific(&url, &["balance", "--workspace", "ws"]).await;
    assert!(ok, "{err}");
    assert_eq!(
        out,
        format!(
            "available\t{:.2} USD\ntotal\t{:.2} USD\n",
            (123_456 - spent) as f64 / 100.0,
            (123_456 - spent) as f64 / 100.0
        )
    );

    let (ok, out, err) = prolific(&url, &["studies", "--project", "prj"]).await;
    assert!(ok, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(
        lines[0].starts_with(&format!("{}\tACTIVE\t0/2\ts-one\t", studies[0])),
        "{out}"
    );
    assert!(lines[1].contains("\ts-two\t"), "{out}");

    let (ok, out, err) = prolific(&url, &["stop", "--project", "prj", "--session", "s-one"]).await;
    assert!(ok, "{err}");
    assert_eq!(out, format!("{}\tCOMPLETED\n", studies[0]));
    assert_eq!(
        fake.study(studies[0].as_str()).unwrap()["status"],
        "COMPLETED"
    );
    assert_eq!(fake.study(studies[1].as_str()).unwrap()["status"], "ACTIVE");

    let (ok, _, err) = prolific(&url, &["stop", "--project", "prj", "--session", "nobody"]).await;
    assert!(!ok);
    assert!(err.contains("no study of session nobody"), "{err}");
    assert!(!err.contains("fake-token") && !out.contains("fake-token"));
}
