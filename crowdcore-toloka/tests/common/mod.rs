//! Shared setup: a fake Toloka on a virtual clock and a client with fast retries.

#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;
use std::time::Duration;

use crowdcore::clock::VirtualClock;
use crowdcore::model::Timestamp;
use crowdcore_toloka::fake::{FakeConfig, FakeToloka, RecordedRequest};
use crowdcore_toloka::model::{NewTask, Usd};
use crowdcore_toloka::{ClientConfig, Credentials, RetryPolicy, TolokaClient};
use serde_json::{Map, Value, json};

/// 2024-05-01T00:00:00Z, so times print as real dates.
pub const START_MS: u64 = 1_714_521_600_000;

pub struct World {
    pub clock: Arc<VirtualClock>,
    pub fake: FakeToloka,
    pub client: TolokaClient,
}

pub fn fast_retries() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 8,
        base_delay: Duration::from_millis(2),
        max_delay: Duration::from_millis(20),
        minute_quota_wait: Duration::from_millis(5),
        max_retry_after: Duration::from_secs(1),
    }
}

pub fn client_config(fake: &FakeToloka) -> ClientConfig {
    let mut c = ClientConfig::new(fake.base_url(), Credentials::ApiKey("test-key".into()));
    c.retry = fast_retries();
    c.operation_poll = Duration::from_millis(2);
    c.operation_wait = Duration::from_secs(10);
    c.timeout = Duration::from_secs(5);
    c
}

pub async fn world_with(tune: impl FnOnce(&mut FakeConfig)) -> World {
    let clock = Arc::new(VirtualClock::new(Timestamp::from_millis(START_MS)));
    let mut config = FakeConfig::new(clock.clone());
    tune(&mut config);
    let fake = FakeToloka::start(config).await.expect("fake starts");
    let client = TolokaClient::new(client_config(&fake)).expect("client");
    World {
        clock,
        fake,
        client,
    }
}

pub async fn world() -> World {
    world_with(|_| {}).await
}

pub fn cents(c: i64) -> Usd {
    Usd::from_cents(c)
}

pub fn inputs(v: Value) -> Map<String, Value> {
    v.as_object().cloned().expect("an object")
}

pub fn task(pool: &str, n: usize, overlap: u32) -> NewTask {
    NewTask::new(
        pool,
        inputs(json!({ "image": format!("https://img/{n}.png") })),
        overlap,
    )
}

/// The requests with this method whose path starts with `prefix`.
pub fn calls(fake: &FakeToloka, method: &str, prefix: &str) -> Vec<RecordedRequest> {
    fake.requests()
        .into_iter()
        .filter(|r| r.method == method && r.path.starts_with(prefix))
        .collect()
}
