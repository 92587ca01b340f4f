//! After a failed store write the engine refuses every call: the machine may have moved past
//! what the store holds, so going on could hire or pay under ids a recovery would reuse.

use std::sync::Arc;

use crowdcore::clock::VirtualClock;
use crowdcore::engine::{EngineBuilder, EngineError};
use crowdcore::store::{FailMode, FailingStore, MemoryStore, Store};

use crate::support::{T0, config, market};

#[tokio::test]
async fn a_failed_write_stops_the_engine_and_a_new_one_recovers() {
    let clock = VirtualClock::new(T0);
    let market = market(&clock);
    let inner = Arc::new(MemoryStore::new());
    // Writes: config meta is not counted; 1 = the start input, 2 = the hire's enqueue.
    let failing = Arc::new(FailingStore::new(inner.clone(), Some(2), FailMode::Before));
    let mut engine = EngineBuilder::new(Arc::new(market.clone()), failing, config())
        .clock(Arc::new(clock.clone()))
        .start()
        .await
        .unwrap();
    let session = engine.session().clone();
    assert!(matches!(engine.start().await, Err(EngineError::Store(_))));
    assert!(matches!(engine.advance().await, Err(EngineError::Stopped)));
    assert!(matches!(engine.stop().await, Err(EngineError::Stopped)));
    assert!(market.hits().is_empty(), "nothing reached the platform");

    let mut again = EngineBuilder::new(Arc::new(market.clone()), inner.clone(), config())
        .clock(Arc::new(clock))
        .session(session.clone())
        .start()
        .await
        .unwrap();
    again.advance().await.unwrap();
    assert_eq!(
        market.hits().len(),
        1,
        "the recovered engine posted the hire once"
    );
    assert_eq!(inner.pending(&session).await.unwrap().len(), 0);
}
