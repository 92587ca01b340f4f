//! The `server` example on `--platform mturk`, against the fake MTurk of crowdcore-mturk's
//! tests: starting the session posts a HIT whose ExternalQuestion points at the server's public
//! landing page and whose annotation names the session, and a worker who accepted it on MTurk
//! lands through the real worker endpoint and takes a seat.

#[path = "../../crowdcore-mturk/tests/fake/mod.rs"]
mod fake;

mod common;

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crowdcore::clock::SystemClock;
use serde_json::{Value, json};

const ADMIN_KEY: &str = "test-admin-key-0123456789";
const PUBLIC: &str = "https://study.example.org";
const SESSION: &str = "server-mturk-test";

/// The server process, killed when dropped.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Polls `check` every 100 ms until it answers, for at most `secs` seconds.
async fn eventually<T>(secs: u64, what: &str, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_posts_to_mturk_and_seats_an_mturk_worker() {
    let fake = fake::FakeMturk::start(Arc::new(SystemClock), 1_000_000).await;
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let child = Command::new(common::example("server"))
        .args(["--platform", "mturk", "--endpoint-url", &fake.url()])
        // The MTurk backend cannot confirm arrivals yet (`confirms_assignments` is false):
        // the server refuses it without this. Once it can, the flag changes nothing (a
        // platform that confirms is always asked) and can go.
        .arg("--unsafe-trust-arrivals")
        .args(["--store", "memory", "--session", SESSION])
        .args([
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--public-url",
            PUBLIC,
        ])
        .env_clear()
        .env("CROWDCORE_ADMIN_KEY", ADMIN_KEY)
        .env("CROWDCORE_PAGE_SECRET", "test-page-secret-0123456789")
        .env("AWS_ACCESS_KEY_ID", fake::ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", fake::SECRET_KEY)
        .env("AWS_CONFIG_FILE", "/nonexistent")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the server starts");
    let _server = Server(child);
    let client = reqwest::Client::new();

    // Up: the status page answers.
    eventually(30, "the server to listen", async || {
        let r = client.get(format!("{base}/status")).send().await.ok()?;
        r.status().is_success().then_some(())
    })
    .await;

    // The operator starts the session: the engine hires, the platform posts on MTurk.
    let started = client
        .post(format!("{base}/api/start"))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .expect("start");
    assert!(started.status().is_success(), "{started:?}");
    let hit = eventually(30, "a HIT on the fake MTurk", async || {
        fake.hits().into_iter().next()
    })
    .await;
    assert!(
        hit.question.contains(&format!("{PUBLIC}/work")),
        "the ExternalQuestion points at the landing page: {}",
        hit.question
    );
    assert!(
        hit.annotation
            .as_deref()
            .is_some_and(|a| a.contains(SESSION)),
        "the annotation names the session's effect: {:?}",
        hit.annotation
    );

    // A worker accepts it on MTurk and lands on the page.
    let assignment = fake.accept("W1", &hit.id).expect("accept");
    let arrived: Value = client
        .post(format!("{base}/w/arrive"))
        .json(&json!({
            "assignment_id": assignment,
            "hit_id": hit.id,
            "worker_id": "W1",
            "turk_submit_to": "https://workersandbox.mturk.com",
        }))
        .send()
        .await
        .expect("arrive")
        .json()
        .await
        .expect("a JSON answer");
    assert!(arrived["token"].as_str().is_some(), "{arrived}");
    let snapshot: Value = client
        .get(format!("{base}/api/snapshot"))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .expect("snapshot")
        .json()
        .await
        .expect("a JSON snapshot");
    let seated = ["waiting", "active"].iter().any(|queue| {
        snapshot[*queue]
            .as_array()
            .is_some_and(|q| q.iter().any(|s| s["assignment"] == json!(assignment)))
    });
    assert!(seated, "the MTurk worker holds a seat: {snapshot}");
}
