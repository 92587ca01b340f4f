//! A real browser on the HTTP front: headless Chromium, driven over WebDriver by fantoccini,
//! loads the landing page, waits, is promoted over Server-Sent Events, does the task and
//! submits; the status page renders its queues. Screenshots go to `target/screenshots/`.
//!
//! Needs `chromedriver` and `chromium` (Debian: `apt-get install chromium chromium-driver`;
//! `.ci/run` installs them). Without them the test prints a note and passes, unless
//! `CROWDCORE_REQUIRE_BROWSER=1` (set by `.ci/run`), where it fails.

#[path = "common/http.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use crowdcore::model::AssignmentId;
use crowdcore::pavilion::{Departure, PavilionConfig};
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::json;
use support::{ADMIN_KEY, PATIENCE, TestServer};

fn find_on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    })
}

fn screenshots() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target/tmp has a parent")
        .join("screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

struct Driver {
    child: tokio::process::Child,
    _profile: PathBuf,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        let _ = std::fs::remove_dir_all(&self._profile);
    }
}

async fn browser() -> Option<(Driver, Client)> {
    let driver = std::env::var_os("CHROMEDRIVER")
        .map(PathBuf::from)
        .or_else(|| find_on_path("chromedriver"));
    let Some(driver) = driver else {
        if std::env::var("CROWDCORE_REQUIRE_BROWSER").is_ok_and(|v| v == "1") {
            panic!("chromedriver is not installed and CROWDCORE_REQUIRE_BROWSER=1");
        }
        eprintln!(
            "note: skipping the browser test: no chromedriver on PATH \
             (apt-get install chromium chromium-driver)"
        );
        return None;
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = tokio::process::Command::new(&driver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("chromedriver starts");
    let profile =
        std::env::temp_dir().join(format!("crowdcore-chromium-{}-{port}", std::process::id()));
    let driver = Driver {
        child,
        _profile: profile.clone(),
    };
    let mut args = vec![
        "--headless".to_owned(),
        "--no-sandbox".to_owned(),
        "--disable-gpu".to_owned(),
        "--disable-quic".to_owned(),
        "--no-first-run".to_owned(),
        "--disable-background-networking".to_owned(),
        "--disable-component-update".to_owned(),
        "--disable-sync".to_owned(),
        "--disable-dev-shm-usage".to_owned(),
        "--window-size=1280,1000".to_owned(),
        format!("--user-data-dir={}", profile.display()),
    ];
    args.sort();
    let mut chrome = json!({ "args": args });
    let binary = std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .or_else(|| find_on_path("chromium"));
    if let Some(b) = binary {
        chrome["binary"] = json!(b.display().to_string());
    }
    let mut caps = serde_json::Map::new();
    caps.insert("goog:chromeOptions".to_owned(), chrome);
    let url = format!("http://127.0.0.1:{port}");
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        // Plain HTTP to the local chromedriver: no TLS needed.
        match ClientBuilder::new(HttpConnector::new())
            .capabilities(caps.clone())
            .connect(&url)
            .await
        {
            Ok(client) => return Some((driver, client)),
            Err(e) if tokio::time::Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("cannot start a browser session: {e}"),
        }
    }
}

async fn shot(c: &Client, name: &str) {
    let png = c.screenshot().await.expect("screenshot");
    let path = screenshots().join(name);
    std::fs::write(&path, png).unwrap();
    eprintln!("screenshot: {}", path.display());
}

async fn wait_css(c: &Client, css: &str) {
    if let Err(e) = c
        .wait()
        .at_most(PATIENCE)
        .for_element(Locator::Css(css))
        .await
    {
        shot(c, "failure.png").await;
        panic!("waiting for {css}: {e}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_waits_is_promoted_over_sse_and_submits() {
    let Some((_driver, c)) = browser().await else {
        return;
    };
    let config = PavilionConfig {
        min_active: 1,
        max_active: 1,
        min_waiting: 0,
        max_waiting: 2,
        base_pay_cents: 50,
        waiting_cents_per_minute: 10,
        active_cents_per_minute: 20,
        per_contribution_cents: 5,
        max_contributions_per_assignment: Some(20),
        budget_cents: Some(5_000),
        ..PavilionConfig::default()
    };
    // Heartbeats far apart: a promotion the page shows within the test's patience came over
    // the event stream, not in a heartbeat's answer.
    let s = TestServer::start_with(config, |h| h.heartbeat_every_ms = 120_000).await;
    assert_eq!(s.admin("POST", "/api/start", None).await.0, 200);
    let robot = s.arrive("robot-1").await;
    assert_eq!(robot.state["status"], "active");

    // Preview mode.
    c.goto(&s.url("/work?assignmentId=ASSIGNMENT_ID_NOT_AVAILABLE&hitId=H"))
        .await
        .unwrap();
    wait_css(&c, "body[data-status='preview']").await;
    shot(&c, "landing-preview.png").await;

    // The worker accepts on the platform and lands on the page: they wait.
    let (a, h) = s.take("browser-worker").await;
    c.goto(&s.url(&format!(
        "/work?assignmentId={a}&hitId={h}&workerId=browser-worker"
    )))
    .await
    .unwrap();
    wait_css(&c, "body[data-status='waiting']").await;
    wait_css(&c, "#link.ok").await; // the event stream is open
    tokio::time::sleep(Duration::from_millis(1_100)).await; // let the clock tick on screen
    let waited = c
        .find(Locator::Id("waited"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(waited.starts_with("0:0"), "time waited shows: {waited}");
    shot(&c, "landing-waiting.png").await;

    // The active worker submits: the browser's page is promoted over SSE.
    let (status, _) = s.post("/w/submit", TestServer::page_body(&robot)).await;
    assert_eq!(status, 200);
    wait_css(&c, "body[data-status='active']").await;
    assert_eq!(
        c.find(Locator::Id("link"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "live"
    );
    shot(&c, "landing-active.png").await;

    // Two units of work, then submit.
    for _ in 0..2 {
        c.find(Locator::Id("unit"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
    }
    c.find(Locator::Id("submit-active"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_css(&c, "body[data-status='submitted']").await;
    shot(&c, "landing-submitted.png").await;
    let snap = s.snapshot().await;
    let gone = snap
        .departed
        .iter()
        .find(|d| d.assignment == a)
        .expect("the browser's worker left");
    assert_eq!(gone.how, Departure::Submitted);
    // The two units reached the engine (and were paid); the platform has the assignment
    // approved.
    let ledger = s.engine.ledger().await.unwrap();
    let bonus = ledger
        .iter()
        .find(|e| e.assignment.as_ref() == Some(&a) && e.kind == "contribution_bonus")
        .expect("a contribution bonus");
    assert_eq!(bonus.amount.minor, 2 * 5);
    assert_eq!(
        s.market.status(&AssignmentId::new(a.as_str())),
        Some(crowdcore::platform::AssignmentStatus::Approved)
    );

    // The status page: a wrong key gets the sign-in form; the right one, the queues.
    let r1 = s.arrive("robot-2").await;
    let r2 = s.arrive("robot-3").await;
    assert_eq!(r1.state["status"], "active");
    assert_eq!(r2.state["status"], "waiting");
    c.goto(&s.url("/status#key=not-the-key-at-all"))
        .await
        .unwrap();
    wait_css(&c, "body[data-ready='login']").await;
    c.goto(&s.url(&format!("/status#key={ADMIN_KEY}")))
        .await
        .unwrap();
    wait_css(&c, "body[data-ready='yes']").await;
    wait_css(&c, "#active-rows tr").await;
    wait_css(&c, "#waiting-rows tr").await;
    wait_css(&c, "#chart path.line").await;
    let active = c
        .find(Locator::Id("active-rows"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let waiting = c
        .find(Locator::Id("waiting-rows"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(active.contains("robot-2"), "{active}");
    assert!(waiting.contains("robot-3"), "{waiting}");
    let url = c.current_url().await.unwrap();
    assert!(!url.as_str().contains(ADMIN_KEY), "the key left the URL");
    // The live stream moves the page: robot-2 submits, robot-3 moves up.
    s.post("/w/submit", TestServer::page_body(&r1)).await;
    c.wait()
        .at_most(PATIENCE)
        .for_element(Locator::XPath(
            "//tbody[@id='active-rows']/tr/td[contains(., 'robot-3')]",
        ))
        .await
        .expect("robot-3 shows as active");
    shot(&c, "status.png").await;
    c.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retainer_page_is_routed_by_polling_and_the_status_page_lists_reservations() {
    let Some((_driver, c)) = browser().await else {
        return;
    };
    let s = TestServer::start_retainer().await;
    let spec = serde_json::to_value(support::spec()).unwrap();
    let (status, _) = s
        .admin(
            "POST",
            "/api/templates",
            Some(json!({"template": "T", "spec": spec})),
        )
        .await;
    assert_eq!(status, 200);
    for (id, needed) in [("R1", 2), ("R2", 1)] {
        let (status, body) = s
            .admin(
                "POST",
                "/api/reservations",
                Some(
                    json!({"reservation": id, "template": "T", "foreign_id": format!("task-{id}"),
                            "start_at_ms": 4_102_444_800_000u64, "needed": needed}),
                ),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    // A worker on call: the retainer page waits, polls, and is routed once R1 is invoked.
    let (a, h) = s.take("on-call-worker").await;
    c.goto(&s.url(&format!(
        "/retainer?assignmentId={a}&hitId={h}&workerId=on-call-worker"
    )))
    .await
    .unwrap();
    wait_css(&c, "body[data-status='waiting']").await;
    assert_eq!(
        s.admin("POST", "/api/reservations/R1/invoke", None).await.0,
        200
    );
    wait_css(&c, "body[data-status='routed']").await;
    let task = c
        .find(Locator::Id("task"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(task, "task-R1");
    shot(&c, "retainer-routed.png").await;
    c.find(Locator::Id("submit-routed"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_css(&c, "body[data-status='submitted']").await;

    c.goto(&s.url(&format!("/status#key={ADMIN_KEY}")))
        .await
        .unwrap();
    wait_css(&c, "body[data-ready='yes']").await;
    wait_css(&c, "#reservations:not([hidden]) #reservation-rows tr").await;
    let rows = c
        .find(Locator::Id("reservation-rows"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        rows.contains("task-R1") && rows.contains("invoked"),
        "{rows}"
    );
    assert!(rows.contains("task-R2") && rows.contains("made"), "{rows}");
    shot(&c, "status-reservations.png").await;
    c.close().await.unwrap();
}
