//! The Store contract suite (`crowdcore::store::contract`) against [`MemoryStore`]. Needs the
//! `contract` feature; `cargo test --workspace` turns it on (crowdcore-sqlite's tests use it).

use std::sync::Arc;

use crowdcore::store::{MemoryStore, Store, contract};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_store_meets_the_contract() {
    contract::run_all(|| Arc::new(MemoryStore::new()) as Arc<dyn Store>).await;
}

#[tokio::test(flavor = "current_thread")]
async fn memory_store_meets_the_contract_on_one_thread() {
    contract::run_all(|| Arc::new(MemoryStore::new()) as Arc<dyn Store>).await;
}
