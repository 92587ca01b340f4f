//! Shared setup: a fake Prolific, a client with fast retries, a platform on a virtual clock.

#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;
use std::time::Duration;

use crowdcore::clock::VirtualClock;
use crowdcore::model::{SessionId, Timestamp};
use crowdcore::store::Store;
use crowdcore_prolific::fake::{FakeConfig, FakeProlific};
use crowdcore_prolific::{
    ClientConfig, Credentials, ProlificClient, ProlificPlatform, ProlificPlatformConfig,
    RetryPolicy,
};

/// 2027-01-15T08:00:00Z.
pub const START_MS: u64 = 1_800_000_000_000;

pub const WORKSPACE: &str = "ws1";
pub const PROJECT: &str = "prj1";

pub struct World {
    pub clock: Arc<VirtualClock>,
    pub fake: FakeProlific,
    pub client: ProlificClient,
}

pub fn fast_retries() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 10,
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(10),
        max_retry_after: Duration::from_secs(1),
    }
}

pub fn client_for(fake: &FakeProlific) -> ProlificClient {
    let mut c = ClientConfig::new(fake.base_url(), Credentials::new("fake-token"));
    c.retry = fast_retries();
    c.timeout = Duration::from_secs(5);
    c.page_size = 3; // small pages, so that every listing pages
    ProlificClient::new(c).expect("client")
}

pub async fn world_with(tune: impl FnOnce(&mut FakeConfig)) -> World {
    let mut config = FakeConfig {
        currency: "USD".into(),
        ..FakeConfig::default()
    };
    tune(&mut config);
    let fake = FakeProlific::start(config).await.expect("fake starts");
    let client = client_for(&fake);
    World {
        clock: Arc::new(VirtualClock::new(Timestamp::from_millis(START_MS))),
        fake,
        client,
    }
}

pub async fn world() -> World {
    world_with(|_| {}).await
}

impl World {
    pub fn config(&self, tag: &str) -> ProlificPlatformConfig {
        let mut c = ProlificPlatformConfig::new(WORKSPACE, PROJECT, tag);
        c.clock = self.clock.clone();
        c.pay_settle = Duration::ZERO;
        c
    }

    pub fn platform(&self, tag: &str) -> ProlificPlatform {
        ProlificPlatform::new(self.client.clone(), self.config(tag))
    }

    pub fn platform_on(&self, tag: &str, store: Arc<dyn Store>) -> ProlificPlatform {
        ProlificPlatform::with_store(
            self.client.clone(),
            self.config(tag),
            store,
            SessionId::new(tag),
        )
    }
}
