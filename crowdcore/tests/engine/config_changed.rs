//! `EngineBuilder::start` refuses to resume a stored session with a different configuration,
//! and leaves the stored session intact.

use std::sync::Arc;

use crowdcore::SessionId;
use crowdcore::clock::VirtualClock;
use crowdcore::engine::{ConfigProblem, EngineBuilder, EngineConfig, EngineError};
use crowdcore::store::MemoryStore;

use crate::support::{T0, config, market};

#[tokio::test]
async fn a_stored_session_with_another_config_is_refused() {
    let clock = VirtualClock::new(T0);
    let market = Arc::new(market(&clock));
    let store = Arc::new(MemoryStore::new());
    let session = SessionId::new("configured");
    let start = |config: EngineConfig| {
        EngineBuilder::new(market.clone(), store.clone(), config)
            .session(session.clone())
            .clock(Arc::new(clock.clone()))
            .start()
    };

    let mut engine = start(config()).await.unwrap();
    engine.start().await.unwrap();
    let snapshot = engine.snapshot();
    drop(engine);

    let mut bigger = config();
    bigger.pavilion.max_active = 3;
    let mut slower = config();
    slower.retry.max_ms = 10_000;
    let mut other_hit = config();
    other_hit.spec.reward = crowdcore::Money::usd_cents(75);
    other_hit.pavilion.base_pay_cents = 75;
    for changed in [bigger, slower, other_hit] {
        match start(changed).await {
            Err(EngineError::ConfigChanged(s)) => assert_eq!(s, session),
            other => panic!("expected ConfigChanged, got {other:?}"),
        }
    }

    // An invalid configuration is refused before the store is read.
    let mut invalid = config();
    invalid.pavilion.min_waiting = 5;
    assert!(matches!(start(invalid).await, Err(EngineError::Config(_))));
    // The HIT's reward is the base pay: two different numbers are refused, and said so.
    let mut two_prices = config();
    two_prices.spec.reward = crowdcore::Money::usd_cents(75);
    match start(two_prices).await {
        Err(EngineError::Config(problem)) => {
            let m = problem.to_string();
            assert!(
                matches!(problem, ConfigProblem::RewardIsNotBasePay { .. })
                    && m.contains("reward (0.75 USD)")
                    && m.contains("base pay (0.50 USD)"),
                "{m}"
            );
        }
        other => panic!("expected a config error, got {other:?}"),
    }

    // The session is intact: the original configuration resumes it where it was.
    let engine = start(config()).await.unwrap();
    assert_eq!(engine.snapshot(), snapshot);
    // The platform decides whether returned slots re-open, whatever the config says.
    let mut reopen_flag = config();
    reopen_flag.pavilion.returned_slots_reopen = false;
    assert!(start(reopen_flag).await.is_ok());
}
