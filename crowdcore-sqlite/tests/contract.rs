//! The Store contract suite (`crowdcore::store::contract`, shared with `MemoryStore`) against
//! `SqliteStore`: in memory, and on files in every commit mode.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crowdcore::store::{Store, contract};
use crowdcore_sqlite::{CommitMode, SqliteOptions, SqliteStore, Synchronous};

/// Runs the suite on fresh files in a temporary directory, opened with `options`.
async fn on_files(options: SqliteOptions) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let n = AtomicU64::new(0);
    contract::run_all(|| {
        let path = dir
            .path()
            .join(format!("{}.db", n.fetch_add(1, Ordering::Relaxed)));
        Arc::new(SqliteStore::open(path, options.clone()).expect("open")) as Arc<dyn Store>
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_memory() {
    contract::run_all(|| Arc::new(SqliteStore::open_in_memory().expect("open")) as Arc<dyn Store>)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_memory_one_write_per_transaction() {
    let options = SqliteOptions {
        commit: CommitMode::PerWrite,
        ..SqliteOptions::default()
    };
    contract::run_all(|| {
        Arc::new(SqliteStore::open_in_memory_with(options.clone()).expect("open")) as Arc<dyn Store>
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_group_commit_full() {
    on_files(SqliteOptions::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_one_write_per_transaction() {
    on_files(SqliteOptions {
        commit: CommitMode::PerWrite,
        synchronous: Synchronous::Normal,
        ..SqliteOptions::default()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_group_commit_normal_tiny_batches() {
    on_files(SqliteOptions {
        synchronous: Synchronous::Normal,
        max_batch: 2,
        ..SqliteOptions::default()
    })
    .await;
}

#[tokio::test(flavor = "current_thread")]
async fn file_on_a_current_thread_runtime() {
    on_files(SqliteOptions {
        synchronous: Synchronous::Normal,
        ..SqliteOptions::default()
    })
    .await;
}
