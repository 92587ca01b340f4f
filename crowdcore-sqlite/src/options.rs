//! How a [`SqliteStore`](crate::SqliteStore) commits: its configuration.

use std::time::Duration;

/// How hard a commit pushes data to the disk (SQLite's `PRAGMA synchronous`, in WAL mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Synchronous {
    /// `synchronous=FULL`: a write is on the disk (the WAL is fsynced) before the store
    /// acknowledges it. Neither a crash of the process nor a power cut or an OS crash loses an
    /// acknowledged write. Costs one fsync per commit — per *batch* with group commit.
    #[default]
    Full,
    /// `synchronous=NORMAL`: commits are written to the WAL but not fsynced; the WAL is
    /// synced at checkpoints. A crash of the process loses nothing acknowledged, but a power
    /// cut or an OS crash can lose the last commits (never corrupting the database). Much
    /// faster on disks with slow fsync. Choose it only if losing the last moments of a study
    /// to a power cut is acceptable: the engine would then re-do effects whose completion was
    /// lost (safely, with their idempotency keys), but it may forget inputs it had acted on.
    Normal,
}

impl Synchronous {
    pub(crate) fn pragma(self) -> &'static str {
        match self {
            Synchronous::Full => "FULL",
            Synchronous::Normal => "NORMAL",
        }
    }
}

/// How writes are grouped into transactions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CommitMode {
    /// Group commit: the writer thread drains every write waiting for it (up to
    /// [`SqliteOptions::max_batch`]) into one `BEGIN IMMEDIATE` transaction, so many concurrent
    /// writers share one fsync. Each write is still atomic on its own and is acknowledged only
    /// after its transaction committed; a write that is refused (an unknown effect, a snapshot
    /// past the log's end) writes nothing and does not affect the others in its batch.
    #[default]
    Group,
    /// One transaction per write call, in order: the baseline that group commit is measured
    /// against, and the mode for hosts that want each write committed alone.
    PerWrite,
}

/// The configuration of a [`SqliteStore`](crate::SqliteStore). `SqliteOptions::default()` is
/// the durable default: `synchronous=FULL`, group commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqliteOptions {
    /// How hard a commit pushes to the disk.
    pub synchronous: Synchronous,
    /// How writes are grouped into transactions.
    pub commit: CommitMode,
    /// The most writes one group-commit transaction takes.
    pub max_batch: usize,
    /// Group commit only: how long a transaction may wait for more writes when the last one
    /// answered several writers (who are likely to write again at once), so that they share
    /// its fsync. Gathering stops as soon as writes pause for 50 µs, so a lone writer, or a
    /// quiet moment, never waits. `Duration::ZERO`: never wait.
    pub group_wait: Duration,
    /// How long a connection waits for a lock another process holds before the call fails
    /// with [`StoreError::Locked`](crowdcore::store::StoreError::Locked).
    pub busy_timeout: Duration,
    /// Caps the database's size: a write that would grow it past this fails with
    /// [`StoreError::Full`](crowdcore::store::StoreError::Full), as on a full disk
    /// (`PRAGMA max_page_count`). `None`: no cap but the disk's.
    pub max_size_bytes: Option<u64>,
    /// Reader connections kept open between reads (more are opened while reads overlap).
    pub idle_readers: usize,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        Self {
            synchronous: Synchronous::Full,
            commit: CommitMode::Group,
            max_batch: 1024,
            group_wait: Duration::from_millis(1),
            busy_timeout: Duration::from_secs(5),
            max_size_bytes: None,
            idle_readers: 4,
        }
    }
}
