//! [`SqliteStore`]: opening, the reader connections, and the [`Store`] implementation.

use std::fmt;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use async_trait::async_trait;
use crowdcore::AssignmentId;
use crowdcore::model::{Currency, EffectId, Money, SessionId, Timestamp, WorkerId};
use crowdcore::platform::Cursor;
use crowdcore::store::{
    self, Commit, Completion, LeaseOutcome, LedgerEntry, LogRecord, NewEffect, NewInput,
    OutboxEntry, OutboxState, Store, StoreError, StoredSnapshot,
};
use rusqlite::types::Type;
use rusqlite::{Connection, OpenFlags, OptionalExtension, Row, params};
use tokio::sync::oneshot;

use crate::error::{OpenError, store_error};
use crate::options::SqliteOptions;
use crate::packed;
use crate::schema::{self, LATEST, Migrated};
use crate::writer::{Command, Write, Writer, Written};

/// The first 16 bytes of every SQLite database file.
const HEADER: &[u8; 16] = b"SQLite format 3\0";

/// A durable [`Store`] on an SQLite file. See the [crate docs](crate) for the design and the
/// schema.
///
/// Cheap to clone: clones share the writer thread and the reader connections. When the last
/// clone is dropped, the writer finishes the writes it has, closes the database and its
/// thread ends (the drop waits for it).
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: Option<PathBuf>,
    commands: Option<Sender<Command>>,
    writer: Option<JoinHandle<u64>>,
    /// `None` for an in-memory database, whose reads go through the writer's connection.
    readers: Option<Arc<Readers>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Closing the channel ends the writer's loop once it has done what it was sent.
        self.commands.take();
        if let Some(writer) = self.writer.take() {
            // A writer that panicked has nothing more to clean up.
            let _ = writer.join();
        }
    }
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (or creates) the database at `path` and brings its schema up to date.
    ///
    /// Refuses, writing nothing, a file that is not an SQLite database
    /// ([`OpenError::NotADatabase`]) and a database from a newer schema version
    /// ([`OpenError::NewerSchema`]).
    pub fn open(path: impl AsRef<Path>, options: SqliteOptions) -> Result<Self, OpenError> {
        let path = path.as_ref();
        check_header(path)?;
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags)
            .map_err(|e| OpenError::from_sqlite(path, e))?;
        let conn = prepare(conn, path, &options, true)?;
        let readers = Readers {
            path: path.to_owned(),
            options: options.clone(),
            idle: Mutex::new(Vec::new()),
        };
        Ok(Self::start(
            conn,
            Some(path.to_owned()),
            Some(Arc::new(readers)),
            &options,
        ))
    }

    /// A database in memory, with the default options: for tests. Its data is gone when the
    /// store is dropped, and its reads go through the writer thread.
    pub fn open_in_memory() -> Result<Self, OpenError> {
        Self::open_in_memory_with(SqliteOptions::default())
    }

    /// [`open_in_memory`](Self::open_in_memory) with `options` (the commit mode and batch
    /// size matter; durability settings do not).
    pub fn open_in_memory_with(options: SqliteOptions) -> Result<Self, OpenError> {
        let path = Path::new(":memory:");
        let conn = Connection::open_in_memory().map_err(|e| OpenError::from_sqlite(path, e))?;
        let conn = prepare(conn, path, &options, false)?;
        Ok(Self::start(conn, None, None, &options))
    }

    fn start(
        conn: Connection,
        path: Option<PathBuf>,
        readers: Option<Arc<Readers>>,
        options: &SqliteOptions,
    ) -> Self {
        let (commands, receiver) = mpsc::channel();
        let writer = Writer::new(conn, options);
        let writer = std::thread::Builder::new()
            .name("crowdcore-sqlite-writer".into())
            .spawn(move || writer.run(receiver))
            // Only fails when the OS cannot make a thread at all, which nothing can recover.
            .expect("spawn the SQLite writer thread");
        Self {
            inner: Arc::new(Inner {
                path,
                commands: Some(commands),
                writer: Some(writer),
                readers,
            }),
        }
    }

    /// The database file, or `None` in memory.
    pub fn path(&self) -> Option<&Path> {
        self.inner.path.as_deref()
    }

    /// The schema version this build writes (`PRAGMA user_version`).
    pub const SCHEMA_VERSION: i64 = LATEST;

    fn send(&self, command: Command) -> Result<(), StoreError> {
        self.inner
            .commands
            .as_ref()
            .ok_or(StoreError::Closed)?
            .send(command)
            .map_err(|_| StoreError::Closed)
    }

    async fn write(&self, write: Write) -> Result<Written, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::Write(write, reply))?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    /// Runs `query` on a reader connection (on tokio's blocking pool), or on the writer's
    /// connection for an in-memory database.
    async fn read<T: Send + 'static>(
        &self,
        query: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        match &self.inner.readers {
            Some(readers) => {
                let readers = readers.clone();
                tokio::task::spawn_blocking(move || readers.run(query))
                    .await
                    .map_err(|e| StoreError::Other(format!("read task failed: {e}")))?
            }
            None => {
                let (reply, answer) = oneshot::channel();
                self.send(Command::Read(Box::new(move |conn| {
                    let _ = reply.send(query(conn).map_err(store_error));
                })))?;
                answer.await.map_err(|_| StoreError::Closed)?
            }
        }
    }
}

/// Refuses a file that exists, is not empty, and does not start as an SQLite database does.
fn check_header(path: &Path) -> Result<(), OpenError> {
    let mut file = match File::open(path) {
        Ok(file) => file,
        // Not there (SQLite creates it) or not readable (SQLite says why).
        Err(_) => return Ok(()),
    };
    let mut header = Vec::with_capacity(HEADER.len());
    file.by_ref()
        .take(HEADER.len() as u64)
        .read_to_end(&mut header)
        .map_err(|e| OpenError::Other {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
    if header.is_empty() || header == HEADER {
        Ok(())
    } else {
        Err(OpenError::NotADatabase {
            path: path.to_owned(),
        })
    }
}

/// Checks the schema version before anything is written, then sets the connection up (WAL,
/// synchronous, foreign keys, busy timeout, size cap) and migrates.
fn prepare(
    mut conn: Connection,
    path: &Path,
    options: &SqliteOptions,
    wal: bool,
) -> Result<Connection, OpenError> {
    let sqlite = |e| OpenError::from_sqlite(path, e);
    let newer = |found| OpenError::NewerSchema {
        path: path.to_owned(),
        found,
        supported: LATEST,
    };
    conn.busy_timeout(options.busy_timeout).map_err(sqlite)?;
    // Reading the version is the first access to the file: it fails on a file that is not
    // a database, and writes nothing.
    let found = schema::version(&conn).map_err(sqlite)?;
    if found > LATEST {
        return Err(newer(found));
    }
    if wal {
        let mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
            .map_err(sqlite)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(OpenError::Other {
                path: path.to_owned(),
                reason: format!("cannot use WAL mode (journal_mode is {mode})"),
            });
        }
    }
    conn.pragma_update(None, "synchronous", options.synchronous.pragma())
        .map_err(sqlite)?;
    conn.pragma_update(None, "foreign_keys", true)
        .map_err(sqlite)?;
    if let Some(bytes) = options.max_size_bytes {
        let page_size: i64 = conn
            .pragma_query_value(None, "page_size", |r| r.get(0))
            .map_err(sqlite)?;
        let pages = i64::try_from(bytes).unwrap_or(i64::MAX) / page_size.max(1);
        conn.pragma_update(None, "max_page_count", pages.max(1))
            .map_err(sqlite)?;
    }
    conn.set_prepared_statement_cache_capacity(64);
    match schema::migrate_to(&mut conn, LATEST).map_err(sqlite)? {
        Migrated::Newer(found) => Err(newer(found)),
        Migrated::From(from) => {
            if from < LATEST {
                tracing::info!(path = %path.display(), from, to = LATEST, "migrated the store");
            }
            Ok(conn)
        }
    }
}

/// Reader connections to a database file, kept between reads.
struct Readers {
    path: PathBuf,
    options: SqliteOptions,
    idle: Mutex<Vec<Connection>>,
}

impl Readers {
    fn run<T>(
        &self,
        query: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        let idle = self.lock().pop();
        let conn = match idle {
            Some(conn) => conn,
            None => self.open().map_err(store_error)?,
        };
        let result = query(&conn).map_err(store_error);
        let mut idle = self.lock();
        if idle.len() < self.options.idle_readers {
            idle.push(conn);
        }
        result
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Connection>> {
        // The pool holds only idle connections, whole whatever a panicking reader did.
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn open(&self) -> rusqlite::Result<Connection> {
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(self.options.busy_timeout)?;
        conn.pragma_update(None, "query_only", true)?;
        conn.set_prepared_statement_cache_capacity(32);
        Ok(conn)
    }
}

// ----- reading rows ------------------------------------------------------------------------------

fn u64_at(row: &Row<'_>, index: usize) -> rusqlite::Result<u64> {
    let value: i64 = row.get(index)?;
    u64::try_from(value).map_err(|_| rusqlite::Error::IntegralValueOutOfRange(index, value))
}

fn parsed<T, E>(
    index: usize,
    value: String,
    parse: impl FnOnce(&str) -> Result<T, E>,
) -> rusqlite::Result<T>
where
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    parse(&value)
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(index, Type::Text, e.into()))
}

fn effect_id_at(row: &Row<'_>, index: usize) -> rusqlite::Result<EffectId> {
    parsed(index, row.get(index)?, str::parse::<EffectId>)
}

/// An outbox row: `id, body, state, result, error`.
fn outbox_entry(row: &Row<'_>) -> rusqlite::Result<OutboxEntry> {
    let state: String = row.get(2)?;
    let state = match state.as_str() {
        "pending" => OutboxState::Pending,
        "done" => OutboxState::Done {
            result: row.get(3)?,
        },
        "failed" => OutboxState::Failed { error: row.get(4)? },
        other => {
            return Err(rusqlite::Error::FromSqlConversionFailure(
                2,
                Type::Text,
                format!("unknown outbox state {other:?}").into(),
            ));
        }
    };
    Ok(OutboxEntry {
        id: effect_id_at(row, 0)?,
        body: row.get(1)?,
        state,
    })
}

/// Up to `limit` inputs of the log from sequence number `first` on, unpacking packed rows
/// (`packed.rs`): the row holding `first` (the last one starting at or before it), then the
/// rows after it, at most `limit` rows since each holds at least one input.
fn read_log(
    conn: &Connection,
    session: &SessionId,
    first: i64,
    limit: usize,
) -> rusqlite::Result<Vec<LogRecord>> {
    let mut stmt = conn.prepare_cached(
        "SELECT seq, n, at_ms, body FROM log_runs
         WHERE session = ?1
           AND seq >= coalesce((SELECT max(seq) FROM log_runs
                                WHERE session = ?1 AND seq <= ?2), ?2)
         ORDER BY seq LIMIT ?3",
    )?;
    let mut rows = stmt.query(params![session.as_str(), first, clamp(limit as u64)])?;
    let mut out = Vec::new();
    let first = u64::try_from(first).unwrap_or(0);
    while out.len() < limit {
        let Some(row) = rows.next()? else { break };
        let seq = u64_at(row, 0)?;
        let n = u64_at(row, 1)?;
        let at = u64_at(row, 2)?;
        if n <= 1 {
            if seq >= first {
                out.push(LogRecord {
                    seq,
                    at: Timestamp::from_millis(at),
                    body: row.get(3)?,
                });
            }
            continue;
        }
        let body = row.get_ref(3)?.as_str()?;
        let damaged =
            |why: String| rusqlite::Error::FromSqlConversionFailure(3, Type::Text, why.into());
        let entries = packed::unpack(body).map_err(damaged)?;
        if entries.len() as u64 != n {
            return Err(damaged(format!(
                "packed log row at {seq} holds {} inputs, not {n}",
                entries.len()
            )));
        }
        for (seq, (at, body)) in (seq..).zip(entries) {
            if seq < first {
                continue;
            }
            if out.len() == limit {
                break;
            }
            let at = u64::try_from(at).map_err(|_| damaged(format!("negative time at {seq}")))?;
            out.push(LogRecord {
                seq,
                at: Timestamp::from_millis(at),
                body: body.to_owned(),
            });
        }
    }
    Ok(out)
}

/// The newest sequence number SQLite can hold, for bounds given as `u64`.
fn clamp(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

#[async_trait]
impl Store for SqliteStore {
    async fn append(
        &self,
        session: &SessionId,
        inputs: &[NewInput],
        cursor: Option<(&str, &Cursor)>,
    ) -> Result<u64, StoreError> {
        let write = Write::Append {
            session: session.clone(),
            inputs: inputs.to_vec(),
            cursor: cursor.map(|(name, c)| (name.to_owned(), c.clone())),
        };
        match self.write(write).await? {
            Written::Seq(seq) => Ok(seq),
            other => unreachable!("an append answers with a sequence number, not {other:?}"),
        }
    }

    async fn read_log(
        &self,
        session: &SessionId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<LogRecord>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let session = session.clone();
        let (first, limit) = (clamp(after.saturating_add(1)), limit);
        self.read(move |conn| read_log(conn, &session, first, limit))
            .await
    }

    async fn save_snapshot(
        &self,
        session: &SessionId,
        snapshot: &StoredSnapshot,
    ) -> Result<(), StoreError> {
        self.write(Write::SaveSnapshot {
            session: session.clone(),
            snapshot: snapshot.clone(),
        })
        .await
        .map(drop)
    }

    async fn load_snapshot(
        &self,
        session: &SessionId,
    ) -> Result<Option<StoredSnapshot>, StoreError> {
        let session = session.clone();
        self.read(move |conn| {
            conn.prepare_cached("SELECT seq, body FROM snapshots WHERE session = ?1")?
                .query_row([session.as_str()], |r| {
                    Ok(StoredSnapshot {
                        seq: u64_at(r, 0)?,
                        body: r.get(1)?,
                    })
                })
                .optional()
        })
        .await
    }

    async fn enqueue(&self, session: &SessionId, effects: &[NewEffect]) -> Result<(), StoreError> {
        self.write(Write::Enqueue {
            session: session.clone(),
            effects: effects.to_vec(),
        })
        .await
        .map(drop)
    }

    async fn complete(
        &self,
        session: &SessionId,
        completion: &Completion,
    ) -> Result<bool, StoreError> {
        let write = Write::Complete {
            session: session.clone(),
            completion: completion.clone(),
        };
        match self.write(write).await? {
            Written::Fresh(fresh) => Ok(fresh),
            other => unreachable!("a completion answers whether it was fresh, not {other:?}"),
        }
    }

    async fn pending(&self, session: &SessionId) -> Result<Vec<OutboxEntry>, StoreError> {
        let session = session.clone();
        self.read(move |conn| {
            conn.prepare_cached(
                "SELECT id, body, state, result, error FROM outbox
                 WHERE session = ?1 AND state = 'pending' ORDER BY seq",
            )?
            .query_map([session.as_str()], outbox_entry)?
            .collect()
        })
        .await
    }

    async fn effect(&self, id: &EffectId) -> Result<Option<OutboxEntry>, StoreError> {
        let Ok(seq) = i64::try_from(id.seq) else {
            return Ok(None);
        };
        let id = id.clone();
        self.read(move |conn| {
            let entry = conn
                .prepare_cached(
                    "SELECT id, body, state, result, error FROM outbox
                     WHERE session = ?1 AND seq = ?2",
                )?
                .query_row(params![id.session.as_str(), seq], outbox_entry)
                .optional()?;
            Ok(entry.filter(|e| e.id == id))
        })
        .await
    }

    async fn cursor(&self, session: &SessionId, name: &str) -> Result<Option<Cursor>, StoreError> {
        let (session, name) = (session.clone(), name.to_owned());
        self.read(move |conn| {
            conn.prepare_cached("SELECT cursor FROM cursors WHERE session = ?1 AND name = ?2")?
                .query_row(params![session.as_str(), name], |r| Ok(Cursor(r.get(0)?)))
                .optional()
        })
        .await
    }

    async fn ledger(&self, session: &SessionId) -> Result<Vec<LedgerEntry>, StoreError> {
        let session = session.clone();
        self.read(move |conn| {
            conn.prepare_cached(
                "SELECT effect, worker, assignment, kind, amount_minor, currency, paid, at_ms
                 FROM ledger WHERE session = ?1 ORDER BY id",
            )?
            .query_map([session.as_str()], |r| {
                Ok(LedgerEntry {
                    effect: effect_id_at(r, 0)?,
                    worker: WorkerId::new(r.get::<_, String>(1)?),
                    assignment: r.get::<_, Option<String>>(2)?.map(AssignmentId::new),
                    kind: r.get(3)?,
                    amount: Money::new(r.get(4)?, parsed(5, r.get(5)?, Currency::new)?),
                    paid: r.get(6)?,
                    at: Timestamp::from_millis(u64_at(r, 7)?),
                })
            })?
            .collect()
        })
        .await
    }

    async fn put_meta(
        &self,
        session: &SessionId,
        key: &str,
        value: &str,
    ) -> Result<(), StoreError> {
        self.write(Write::PutMeta {
            session: session.clone(),
            key: key.to_owned(),
            value: value.to_owned(),
        })
        .await
        .map(drop)
    }

    async fn meta(&self, session: &SessionId, key: &str) -> Result<Option<String>, StoreError> {
        let (session, key) = (session.clone(), key.to_owned());
        self.read(move |conn| {
            conn.prepare_cached("SELECT value FROM meta WHERE session = ?1 AND key = ?2")?
                .query_row(params![session.as_str(), key], |r| r.get(0))
                .optional()
        })
        .await
    }

    async fn commit(&self, session: &SessionId, commit: &Commit) -> Result<u64, StoreError> {
        let write = Write::Commit {
            session: session.clone(),
            commit: commit.clone(),
        };
        match self.write(write).await? {
            Written::Seq(seq) => Ok(seq),
            other => unreachable!("a commit answers with a sequence number, not {other:?}"),
        }
    }

    async fn write_all(
        &self,
        session: &SessionId,
        writes: &[store::Write],
    ) -> Result<(), StoreError> {
        if writes.is_empty() {
            return Ok(());
        }
        self.write(Write::Batch {
            session: session.clone(),
            writes: writes.to_vec(),
        })
        .await
        .map(drop)
    }

    async fn acquire_lease(
        &self,
        name: &str,
        owner: &str,
        now: Timestamp,
        ttl_ms: u64,
    ) -> Result<LeaseOutcome, StoreError> {
        let write = Write::AcquireLease {
            name: name.to_owned(),
            owner: owner.to_owned(),
            now,
            ttl_ms,
        };
        match self.write(write).await? {
            Written::Lease(outcome) => Ok(outcome),
            other => unreachable!("a lease request answers with its outcome, not {other:?}"),
        }
    }

    async fn release_lease(&self, name: &str, owner: &str) -> Result<bool, StoreError> {
        let write = Write::ReleaseLease {
            name: name.to_owned(),
            owner: owner.to_owned(),
        };
        match self.write(write).await? {
            Written::Fresh(held) => Ok(held),
            other => unreachable!("a lease release answers whether it held, not {other:?}"),
        }
    }
}
