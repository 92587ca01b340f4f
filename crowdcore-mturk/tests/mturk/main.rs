//! `MturkPlatform` at the wire level, against the fake MTurk in `tests/fake` (AWS JSON 1.1 on a
//! local port, signed with static test credentials): the request bodies of every operation,
//! paging, token reuse, error mapping, seeded faults, a crash between a create and its record,
//! and a whole Pavilion session driven by the engine with simulated workers, polled or fed by
//! push notifications through the fake SQS queue.

#[path = "../fake/mod.rs"]
mod fake;

mod crash;
mod errors;
mod faults;
mod front;
mod lookup;
mod notify;
mod ops;
mod paging;
mod session;
mod sns;
mod tokens;
mod window;

use std::sync::Arc;

use aws_credential_types::Credentials;
use crowdcore::clock::VirtualClock;
use crowdcore::platform::IdempotencyKey;
use crowdcore::{EffectId, HitSpec, SessionId, Timestamp};
use crowdcore_mturk::{
    Endpoint, MturkConfig, MturkPlatform, NotificationReader, NotificationSettings, RetrySettings,
    TimeoutSettings,
};

use fake::{ACCESS_KEY, FakeMturk, SECRET_KEY};

/// When every test begins (ms since the epoch): a real-looking date.
pub(crate) const T0: Timestamp = Timestamp::from_millis(1_767_225_600_000);

/// How long the fake waits before a late answer, and how long the client waits for one: the
/// client gives up first, so the call is done at the fake and lost to the caller. Generous, so
/// that a loaded machine never times out a call the test expects to succeed.
pub(crate) const LATE_MS: u64 = 3_000;
pub(crate) const ATTEMPT_MS: u64 = 1_500;
/// The same for the fault tests, where many answers come late and every call is retried (so a
/// spurious timeout on a loaded machine changes nothing).
pub(crate) const FAULT_LATE_MS: u64 = 900;
pub(crate) const FAULT_ATTEMPT_MS: u64 = 300;

/// A configuration pointing at `fake`: one SDK attempt (the caller retries).
pub(crate) fn config(fake: &FakeMturk) -> MturkConfig {
    let mut c = MturkConfig::new(Endpoint::Url(fake.url()));
    c.landing_url = Some("https://front.example/land?study=7".into());
    c.retry = RetrySettings {
        max_attempts: 1,
        initial_backoff_ms: 1,
        max_backoff_ms: 5,
    };
    c.timeouts = TimeoutSettings {
        connect_ms: 2_000,
        attempt_ms: ATTEMPT_MS,
        operation_ms: 10_000,
    };
    c
}

/// [`config`] with the short timeouts of the fault tests.
pub(crate) fn fault_config(fake: &FakeMturk) -> MturkConfig {
    let mut c = config(fake);
    c.timeouts.attempt_ms = FAULT_ATTEMPT_MS;
    c
}

/// `config` with the fake's queue for notifications: short polls (the fake is local).
pub(crate) fn push_config(mut config: MturkConfig, fake: &FakeMturk) -> MturkConfig {
    let mut n = NotificationSettings::new(fake.queue_url());
    n.endpoint_url = Some(fake.url());
    n.wait_time_s = 0;
    config.notifications = Some(n);
    config
}

/// A notification reader on `fake`'s queue with the static test credentials.
pub(crate) async fn reader_with(config: &MturkConfig) -> NotificationReader {
    let creds = Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "crowdcore-mturk-tests");
    NotificationReader::connect_with_credentials(config, creds)
        .await
        .expect("the configuration names a queue")
}

/// A platform on `fake` with the static test credentials.
pub(crate) async fn platform_with(config: MturkConfig) -> MturkPlatform {
    let creds = Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "crowdcore-mturk-tests");
    MturkPlatform::connect_with_credentials(config, creds).await
}

/// A fake on a virtual clock at [`T0`] with 1 000 $ and a platform on it.
pub(crate) async fn setup() -> (VirtualClock, FakeMturk, Arc<MturkPlatform>) {
    let clock = VirtualClock::new(T0);
    let fake = FakeMturk::start(Arc::new(clock.clone()), 100_000).await;
    let platform = Arc::new(platform_with(config(&fake)).await);
    (clock, fake, platform)
}

/// The shared test HIT ([`crowdcore::testkit::spec`]) with two keywords and a taller frame.
pub(crate) fn spec() -> HitSpec {
    HitSpec {
        keywords: vec!["real-time".into(), "labeling".into()],
        frame_height: 640,
        ..crowdcore::testkit::spec()
    }
}

pub(crate) fn key(session: &str, seq: u64) -> IdempotencyKey {
    IdempotencyKey::for_effect(&EffectId::new(SessionId::new(session), seq))
}
