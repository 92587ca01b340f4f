//! The `server` example on `--platform prolific`, against the fake Prolific, killed with
//! SIGKILL again and again while it pays: participants land through the real worker endpoint
//! (confirmed with Prolific), the operator stops the job, everyone finishes on Prolific's
//! completion redirect, and the server — restarted on its SQLite store after every kill —
//! pays each of them exactly what its ledger says: one study, no bulk bonus paid twice.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crowdcore_prolific::fake::{FakeConfig, FakeProlific, Fault};
use reqwest::Method;
use serde_json::{Value, json};

const ADMIN_KEY: &str = "test-admin-key-0123456789";
const PUBLIC: &str = "https://study.example.org";
const SESSION: &str = "server-prolific-test";

/// The server process, killed (SIGKILL) when dropped.
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

fn spawn(fake: &FakeProlific, db: &Path, port: u16) -> Server {
    let child = Command::new(common::example("server"))
        .args(["--platform", "prolific", "--prolific-url", &fake.base_url()])
        .args([
            "--workspace",
            "ws1",
            "--project",
            "prj1",
            "--currency",
            "USD",
        ])
        .args(["--store", "sqlite", "--db"])
        .arg(db)
        .args(["--session", SESSION])
        .args(["--min-active", "1", "--max-active", "2"])
        .args(["--min-waiting", "1", "--max-waiting", "1"])
        .args(["--base-cents", "50", "--waiting-cents-per-minute", "600"])
        .args([
            "--active-cents-per-minute",
            "600",
            "--budget-cents",
            "100000",
        ])
        .args([
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--public-url",
            PUBLIC,
        ])
        .env_clear()
        .env("CROWDCORE_ADMIN_KEY", ADMIN_KEY)
        .env("CROWDCORE_PAGE_SECRET", "test-page-secret-0123456789")
        .env("PROLIFIC_API_TOKEN", "fake-token")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the server starts");
    Server(child)
}

async fn eventually<T>(secs: u64, what: &str, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn admin(client: &reqwest::Client, base: &str, method: Method, path: &str) -> Option<Value> {
    let r = client
        .request(method, format!("{base}{path}"))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .ok()?;
    if !r.status().is_success() {
        return None;
    }
    r.json().await.ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_while_paying_the_server_pays_each_participant_once() {
    let fake = FakeProlific::start(FakeConfig {
        currency: "USD".into(),
        ..FakeConfig::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("server.db");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let mut server = spawn(&fake, &db, port);
    eventually(30, "the server to listen", async || {
        let r = client.get(format!("{base}/status")).send().await.ok()?;
        r.status().is_success().then_some(())
    })
    .await;
    admin(&client, &base, Method::POST, "/api/start")
        .await
        .expect("started");
    let study = eventually(30, "the study is published", async || {
        let id = fake.study_ids().into_iter().next()?;
        (fake.study(&id)?["status"] == "ACTIVE").then_some(id)
    })
    .await;
    let landing = fake.study(&study).unwrap()["external_study_url"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        landing.starts_with(&format!("{PUBLIC}/work?PROLIFIC_PID=")),
        "{landing}"
    );

    // Three participants take places and land on the page.
    let mut subs = Vec::new();
    for p in ["p1", "p2", "p3"] {
        let sub = fake.start_submission(&study, p).expect("a place");
        let body = json!({"assignment_id": sub, "hit_id": study, "worker_id": p});
        eventually(30, "the arrival", async || {
            let r = client
                .post(format!("{base}/w/arrive"))
                .json(&body)
                .send()
                .await
                .ok()?;
            r.status().is_success().then_some(())
        })
        .await;
        subs.push(sub);
    }
    tokio::time::sleep(Duration::from_millis(1_500)).await;

    // The job stops; everyone is sent to the completion redirect and follows it. Two pay
    // answers are lost after Prolific paid. The server is killed at moments spread over the
    // paying, and restarted on its store each time.
    fake.inject(
        Some(Method::POST),
        "/api/v1/bulk-bonus-payments/",
        Fault::LostAnswer,
        2,
    );
    admin(&client, &base, Method::POST, "/api/stop")
        .await
        .expect("stopped");
    let code = fake.study(&study).unwrap()["completion_codes"][0]["code"]
        .as_str()
        .unwrap()
        .to_owned();
    for s in &subs {
        fake.complete(s, &code).unwrap();
    }
    for delay in [40, 120, 90, 250, 60] {
        tokio::time::sleep(Duration::from_millis(delay)).await;
        drop(server); // SIGKILL
        server = spawn(&fake, &db, port);
        eventually(30, "the restarted server", async || {
            let r = client.get(format!("{base}/status")).send().await.ok()?;
            r.status().is_success().then_some(())
        })
        .await;
    }
    let ledger = eventually(60, "every payment made", async || {
        let l = admin(&client, &base, Method::GET, "/api/ledger").await?;
        let entries = l.as_array()?.clone();
        let bases = entries.iter().filter(|e| e["kind"] == "base").count();
        (bases == 3 && entries.iter().all(|e| e["paid"] == true)).then_some(entries)
    })
    .await;
    for (i, s) in subs.iter().enumerate() {
        let worker = format!("p{}", i + 1);
        assert_eq!(
            fake.submission_status(s).as_deref(),
            Some("APPROVED"),
            "{worker}"
        );
        let owed: i64 = ledger
            .iter()
            .filter(|e| e["worker"] == worker.as_str())
            .map(|e| e["amount"]["minor"].as_i64().unwrap())
            .sum();
        let paid = 50 + fake.bonuses_paid(s).iter().sum::<i64>();
        assert_eq!(paid, owed, "{worker} was paid what the ledger says");
    }
    assert!(
        ledger.iter().any(|e| e["kind"] != "base"),
        "bonuses were paid: {ledger:?}"
    );
    assert!(
        fake.faults_injected() >= 1,
        "a pay answer was lost and reconciled"
    );
    assert_eq!(fake.repeated_pays(), 0, "no bulk bonus paid twice");
    assert_eq!(fake.studies_created(&format!("crowdcore:{SESSION}")), 1);
    drop(server);
}
