//! The writer thread: the one owner of the write connection. It takes writes over a channel,
//! runs them in `BEGIN IMMEDIATE` transactions — many per transaction in group-commit mode —
//! and answers each only after its transaction committed.

use std::collections::{HashMap, HashSet};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use crowdcore::SessionId;
use crowdcore::Timestamp;
use crowdcore::platform::Cursor;
use crowdcore::store::{
    self, Commit, Completion, JOURNAL_RESULT, LeaseOutcome, LedgerEntry, NewEffect, NewInput,
    OutboxState, StoreError, StoredSnapshot,
};
use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::oneshot;

use crate::error::store_error;
use crate::options::{CommitMode, SqliteOptions};
use crate::packed;

/// While gathering a batch, a pause this long between writes ends it.
const GATHER_GAP: Duration = Duration::from_micros(50);

/// A write, owned so that it can cross to the writer thread.
#[derive(Debug)]
pub(crate) enum Write {
    Append {
        session: SessionId,
        inputs: Vec<NewInput>,
        cursor: Option<(String, Cursor)>,
    },
    SaveSnapshot {
        session: SessionId,
        snapshot: StoredSnapshot,
    },
    Enqueue {
        session: SessionId,
        effects: Vec<NewEffect>,
    },
    Complete {
        session: SessionId,
        completion: Completion,
    },
    PutMeta {
        session: SessionId,
        key: String,
        value: String,
    },
    Commit {
        session: SessionId,
        commit: Commit,
    },
    /// [`crowdcore::store::Store::write_all`]: every write or none.
    Batch {
        session: SessionId,
        writes: Vec<store::Write>,
    },
    AcquireLease {
        name: String,
        owner: String,
        now: Timestamp,
        ttl_ms: u64,
    },
    ReleaseLease {
        name: String,
        owner: String,
    },
}

/// What a successful write answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Written {
    /// An append: the log's last sequence number.
    Seq(u64),
    /// A completion: whether it was fresh. A lease release: whether it was held.
    Fresh(bool),
    /// A lease request: what it found.
    Lease(LeaseOutcome),
    /// Anything else.
    Done,
}

pub(crate) type Reply = oneshot::Sender<Result<Written, StoreError>>;

/// A read run on the writer's connection (in-memory databases have no other).
pub(crate) type ReadJob = Box<dyn FnOnce(&Connection) + Send>;

/// What the writer thread is asked to do.
pub(crate) enum Command {
    Write(Write, Reply),
    Read(ReadJob),
}

/// Why a write failed.
enum Failure {
    /// Refused before writing anything (an unknown effect, a value out of range): the rest of
    /// the batch is unaffected.
    Refused(StoreError),
    /// SQLite failed, possibly half way: the transaction must be rolled back.
    Sql(rusqlite::Error),
}

impl From<rusqlite::Error> for Failure {
    fn from(e: rusqlite::Error) -> Self {
        Failure::Sql(e)
    }
}

/// Where a failed transaction failed.
enum TxFailure {
    /// Beginning or committing: the same for every write in it.
    Transaction(rusqlite::Error),
    /// In one of the writes.
    Write(rusqlite::Error),
}

/// What the writer knows about sessions: each one's last sequence number, and which have a
/// row in `sessions`.
#[derive(Default)]
struct Known {
    last_seq: HashMap<SessionId, u64>,
    sessions: HashSet<SessionId>,
}

/// A transaction's view of sessions: what was committed before it (valid while no other
/// connection has written), and what it learnt itself, kept only if it commits.
struct TxState<'a> {
    committed: &'a Known,
    new: Known,
}

impl TxState<'_> {
    fn last_seq(&self, session: &SessionId) -> Option<u64> {
        let seq = self.new.last_seq.get(session);
        seq.or_else(|| self.committed.last_seq.get(session))
            .copied()
    }

    fn has_session(&self, session: &SessionId) -> bool {
        self.new.sessions.contains(session) || self.committed.sessions.contains(session)
    }
}

pub(crate) struct Writer {
    conn: Connection,
    mode: CommitMode,
    max_batch: usize,
    /// Transactions committed so far.
    commits: u64,
    /// How long a batch may wait for more writers ([`SqliteOptions::group_wait`]).
    group_wait: Duration,
    /// Writes in the last batch.
    last_batch: usize,
    /// What committed transactions left, as of `data_version`.
    known: Known,
    /// SQLite's `PRAGMA data_version` when `known` was last valid: it changes when another
    /// connection (another process) commits, and then `known` is forgotten.
    data_version: Option<i64>,
}

impl Writer {
    pub(crate) fn new(conn: Connection, options: &SqliteOptions) -> Self {
        Self {
            conn,
            mode: options.commit,
            max_batch: options.max_batch.max(1),
            commits: 0,
            group_wait: options.group_wait,
            last_batch: 0,
            known: Known::default(),
            data_version: None,
        }
    }

    /// Serves commands until every sender is gone; then the connection closes. Returns the
    /// number of transactions it committed.
    pub(crate) fn run(mut self, commands: Receiver<Command>) -> u64 {
        while let Ok(first) = commands.recv() {
            let mut batch = vec![first];
            if self.mode == CommitMode::Group {
                self.gather(&commands, &mut batch);
            }
            let writes_in_batch = batch
                .iter()
                .filter(|c| matches!(c, Command::Write(..)))
                .count();
            let mut writes = Vec::new();
            for command in batch {
                match command {
                    Command::Write(write, reply) => writes.push((write, reply)),
                    Command::Read(job) => {
                        // Reads see only committed writes: finish the writes queued before.
                        self.flush(std::mem::take(&mut writes));
                        job(&self.conn);
                    }
                }
            }
            self.flush(writes);
            self.last_batch = writes_in_batch;
        }
        self.commits
    }

    /// Adds to `batch` everything that queued up while the last transaction committed. If
    /// that transaction answered several writers, they are likely to write again at once:
    /// keep gathering while writes keep coming (each within [`GATHER_GAP`]), for at most
    /// `group_wait`, so that they share this transaction's fsync instead of starting the
    /// next one. A lone writer never waits.
    fn gather(&self, commands: &Receiver<Command>, batch: &mut Vec<Command>) {
        let drain = |batch: &mut Vec<Command>| {
            while batch.len() < self.max_batch {
                match commands.try_recv() {
                    Ok(command) => batch.push(command),
                    Err(_) => break,
                }
            }
        };
        drain(batch);
        if self.last_batch < 2 || self.group_wait.is_zero() {
            return;
        }
        let deadline = Instant::now() + self.group_wait;
        while batch.len() < self.max_batch {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            match commands.recv_timeout(left.min(GATHER_GAP)) {
                Ok(command) => {
                    batch.push(command);
                    drain(batch);
                }
                Err(_) => break,
            }
        }
    }

    fn flush(&mut self, writes: Vec<(Write, Reply)>) {
        if writes.is_empty() {
            return;
        }
        match self.mode {
            CommitMode::Group => self.commit(writes),
            CommitMode::PerWrite => {
                for write in writes {
                    self.commit(vec![write]);
                }
            }
        }
    }

    /// Runs `writes` in one transaction and answers each. If one of them fails in SQLite
    /// (a full disk, say), the transaction is rolled back and each write is tried alone, so
    /// that every caller hears about its own write.
    fn commit(&mut self, writes: Vec<(Write, Reply)>) {
        match self.transaction(&writes) {
            Ok(results) => {
                for ((_, reply), result) in writes.into_iter().zip(results) {
                    // A caller that stopped waiting is fine: its write is committed.
                    let _ = reply.send(result);
                }
            }
            Err(failure) => {
                if !self.conn.is_autocommit() {
                    // Best effort: a failed rollback leaves SQLite rolling back by itself.
                    let _ = self.conn.execute_batch("ROLLBACK");
                }
                match failure {
                    TxFailure::Write(_) if writes.len() > 1 => {
                        for write in writes {
                            self.commit(vec![write]);
                        }
                    }
                    TxFailure::Write(e) | TxFailure::Transaction(e) => {
                        let error = store_error(e);
                        for (_, reply) in writes {
                            let _ = reply.send(Err(error.clone()));
                        }
                    }
                }
            }
        }
    }

    fn transaction(
        &mut self,
        writes: &[(Write, Reply)],
    ) -> Result<Vec<Result<Written, StoreError>>, TxFailure> {
        let conn = &self.conn;
        conn.prepare_cached("BEGIN IMMEDIATE")
            .and_then(|mut s| s.execute([]))
            .map_err(TxFailure::Transaction)?;
        let version: i64 = conn
            .prepare_cached("PRAGMA data_version")
            .and_then(|mut s| s.query_row([], |r| r.get(0)))
            .map_err(TxFailure::Transaction)?;
        if self.data_version != Some(version) {
            // Someone else wrote (or this is the first transaction): ask the database again.
            self.known = Known::default();
            self.data_version = Some(version);
        }
        let mut state = TxState {
            committed: &self.known,
            new: Known::default(),
        };
        let mut results = Vec::with_capacity(writes.len());
        for (write, _) in writes {
            match apply(conn, &mut state, write) {
                Ok(written) => results.push(Ok(written)),
                Err(Failure::Refused(e)) => results.push(Err(e)),
                Err(Failure::Sql(e)) => return Err(TxFailure::Write(e)),
            }
        }
        conn.prepare_cached("COMMIT")
            .and_then(|mut s| s.execute([]))
            .map_err(TxFailure::Transaction)?;
        let Known { last_seq, sessions } = state.new;
        self.known.last_seq.extend(last_seq);
        self.known.sessions.extend(sessions);
        self.commits += 1;
        Ok(results)
    }
}

// ----- the writes --------------------------------------------------------------------------------

/// Runs one write inside the current transaction. A write is refused only before it has
/// written anything.
fn apply(conn: &Connection, state: &mut TxState<'_>, write: &Write) -> Result<Written, Failure> {
    match write {
        Write::Append {
            session,
            inputs,
            cursor,
        } => {
            let rows = input_rows(inputs)?;
            let mut seq = last_seq(conn, state, session)?;
            if rows.is_empty() && cursor.is_none() {
                return Ok(Written::Seq(seq));
            }
            ensure_session(conn, state, session)?;
            seq = insert_inputs(conn, session, seq, &rows)?;
            if let Some((name, Cursor(cursor))) = cursor {
                set_cursor(conn, session, name, cursor)?;
            }
            state.new.last_seq.insert(session.clone(), seq);
            Ok(Written::Seq(seq))
        }
        Write::SaveSnapshot { session, snapshot } => save_snapshot(conn, state, session, snapshot),
        Write::Enqueue { session, effects } => enqueue(conn, state, session, effects),
        Write::Complete {
            session,
            completion,
        } => complete(conn, state, session, completion, None),
        Write::PutMeta {
            session,
            key,
            value,
        } => put_meta(conn, state, session, key, value),
        Write::Commit { session, commit } => commit_batch(conn, state, session, commit),
        Write::Batch { session, writes } => batch(conn, state, session, writes),
        Write::AcquireLease {
            name,
            owner,
            now,
            ttl_ms,
        } => {
            let now_ms = sql_int(now.as_millis(), "lease time")?;
            let expires = now.plus_millis(*ttl_ms);
            let expires_ms = sql_int(expires.as_millis(), "lease expiry")?;
            let held: Option<(String, i64)> = conn
                .prepare_cached("SELECT owner, expires_at_ms FROM leases WHERE name = ?1")?
                .query_row([name], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?;
            if let Some((holder, until)) = held
                && holder != *owner
                && until > now_ms
            {
                return Ok(Written::Lease(LeaseOutcome::Held {
                    owner: holder,
                    expires: Timestamp::from_millis(u64::try_from(until).unwrap_or(0)),
                }));
            }
            conn.prepare_cached(
                "INSERT INTO leases (name, owner, expires_at_ms) VALUES (?1, ?2, ?3)
                 ON CONFLICT (name) DO UPDATE SET owner = excluded.owner,
                                                  expires_at_ms = excluded.expires_at_ms",
            )?
            .execute(params![name, owner, expires_ms])?;
            Ok(Written::Lease(LeaseOutcome::Acquired { expires }))
        }
        Write::ReleaseLease { name, owner } => {
            let n = conn
                .prepare_cached("DELETE FROM leases WHERE name = ?1 AND owner = ?2")?
                .execute([name, owner])?;
            Ok(Written::Fresh(n > 0))
        }
    }
}

fn set_cursor(
    conn: &Connection,
    session: &SessionId,
    name: &str,
    cursor: &str,
) -> Result<(), Failure> {
    conn.prepare_cached(
        "INSERT INTO cursors (session, name, cursor) VALUES (?1, ?2, ?3)
         ON CONFLICT (session, name) DO UPDATE SET cursor = excluded.cursor",
    )?
    .execute(params![session.as_str(), name, cursor])?;
    Ok(())
}

fn save_snapshot(
    conn: &Connection,
    state: &mut TxState<'_>,
    session: &SessionId,
    snapshot: &StoredSnapshot,
) -> Result<Written, Failure> {
    let end = last_seq(conn, state, session)?;
    if snapshot.seq > end {
        return Err(Failure::Refused(StoreError::Other(format!(
            "snapshot at {} is past the log's end {end}",
            snapshot.seq
        ))));
    }
    let seq = sql_int(snapshot.seq, "snapshot sequence number")?;
    ensure_session(conn, state, session)?;
    conn.prepare_cached(
        "INSERT INTO snapshots (session, seq, body) VALUES (?1, ?2, ?3)
         ON CONFLICT (session) DO UPDATE SET seq = excluded.seq, body = excluded.body",
    )?
    .execute(params![session.as_str(), seq, snapshot.body])?;
    Ok(Written::Done)
}

fn enqueue(
    conn: &Connection,
    state: &mut TxState<'_>,
    session: &SessionId,
    effects: &[NewEffect],
) -> Result<Written, Failure> {
    let rows = effects
        .iter()
        .map(|e| Ok((sql_int(e.id.seq, "effect sequence number")?, e)))
        .collect::<Result<Vec<_>, Failure>>()?;
    if rows.is_empty() {
        return Ok(Written::Done);
    }
    ensure_session(conn, state, session)?;
    let rows: Vec<(i64, String, &str)> = rows
        .into_iter()
        .map(|(seq, e)| (seq, e.id.to_string(), e.body.as_str()))
        .collect();
    insert_rows(
        conn,
        session,
        (
            "INSERT INTO outbox (session, seq, id, body)",
            "ON CONFLICT (session, seq) DO NOTHING",
        ),
        "INSERT INTO outbox (session, seq, id, body) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (session, seq) DO NOTHING",
        &rows,
    )?;
    Ok(Written::Done)
}

fn put_meta(
    conn: &Connection,
    state: &mut TxState<'_>,
    session: &SessionId,
    key: &str,
    value: &str,
) -> Result<Written, Failure> {
    ensure_session(conn, state, session)?;
    conn.prepare_cached(
        "INSERT INTO meta (session, key, value) VALUES (?1, ?2, ?3)
         ON CONFLICT (session, key) DO UPDATE SET value = excluded.value",
    )?
    .execute(params![session.as_str(), key, value])?;
    Ok(Written::Done)
}

/// A [`Write::Batch`]: each write as its single-write form would run, under a savepoint, so
/// that a refusal half way (a completion whose effect is finished already) writes nothing.
fn batch(
    conn: &Connection,
    state: &mut TxState<'_>,
    session: &SessionId,
    writes: &[store::Write],
) -> Result<Written, Failure> {
    conn.prepare_cached("SAVEPOINT batch")?.execute([])?;
    let before = Known {
        last_seq: state.new.last_seq.clone(),
        sessions: state.new.sessions.clone(),
    };
    match batch_writes(conn, state, session, writes) {
        Ok(()) => {
            conn.prepare_cached("RELEASE batch")?.execute([])?;
            Ok(Written::Done)
        }
        Err(Failure::Refused(e)) => {
            conn.prepare_cached("ROLLBACK TO batch")?.execute([])?;
            conn.prepare_cached("RELEASE batch")?.execute([])?;
            state.new = before;
            Err(Failure::Refused(e))
        }
        Err(e) => Err(e),
    }
}

fn batch_writes(
    conn: &Connection,
    state: &mut TxState<'_>,
    session: &SessionId,
    writes: &[store::Write],
) -> Result<(), Failure> {
    // The batch is one transaction, and enqueueing leaves an effect that is there as it is, so
    // every effect can go in first, many rows to a statement: a completion later in the batch
    // finds its effect either way.
    let effects: Vec<NewEffect> = writes
        .iter()
        .filter_map(|w| match w {
            store::Write::Enqueue(effects) => Some(effects.iter().cloned()),
            _ => None,
        })
        .flatten()
        .collect();
    enqueue(conn, state, session, &effects)?;
    // Likewise the batch's inputs, from appends and completions alike, go into the log at the
    // end, as few packed rows as they make: nothing in the batch reads the log's rows (the
    // log's end is `state`'s), and a refusal half way drops them with the savepoint.
    let start = last_seq(conn, state, session)?;
    let mut later = Later::default();
    for write in writes {
        // The single-write forms, borrowed rather than cloned where they can be.
        match write {
            store::Write::Append { inputs, cursor } => {
                let rows = input_rows(inputs)?;
                if rows.is_empty() && cursor.is_none() {
                    continue;
                }
                ensure_session(conn, state, session)?;
                let end = room(last_seq(conn, state, session)?, rows.len())?;
                later.log.extend(rows);
                if let Some((name, Cursor(cursor))) = cursor {
                    set_cursor(conn, session, name, cursor)?;
                }
                state.new.last_seq.insert(session.clone(), end);
            }
            store::Write::Enqueue(_) => {} // above
            store::Write::Complete(completion) => {
                if complete(conn, state, session, completion, Some(&mut later))?
                    != Written::Fresh(true)
                {
                    return Err(Failure::Refused(StoreError::Corrupt(format!(
                        "effect {} was finished already when its completion was written",
                        completion.id
                    ))));
                }
            }
            store::Write::Record { effect, completion } => {
                record(conn, state, session, effect, completion, &mut later)?;
            }
            store::Write::Snapshot(snapshot) => {
                save_snapshot(conn, state, session, snapshot)?;
            }
            store::Write::Meta { key, value } => {
                put_meta(conn, state, session, key, value)?;
            }
        }
    }
    insert_ledger(conn, session, &later.ledger)?;
    if !later.log.is_empty() {
        let end = insert_inputs(conn, session, start, &later.log)?;
        debug_assert_eq!(
            Some(end),
            state.last_seq(session),
            "the batch's inputs in order"
        );
    }
    Ok(())
}

/// A [`Commit`]: everything checked first, then inputs, cursors, outbox rows and snapshot.
fn commit_batch(
    conn: &Connection,
    state: &mut TxState<'_>,
    session: &SessionId,
    commit: &Commit,
) -> Result<Written, Failure> {
    let rows = input_rows(&commit.inputs)?;
    let mut seq = last_seq(conn, state, session)?;
    let end = room(seq, rows.len())?;
    let effect_rows = commit
        .effects
        .iter()
        .chain(&commit.journal)
        .map(|e| sql_int(e.id.seq, "effect sequence number"))
        .collect::<Result<Vec<_>, Failure>>()?;
    let snapshot_seq = match &commit.snapshot {
        Some(snapshot) if snapshot.seq > end => {
            return Err(Failure::Refused(StoreError::Other(format!(
                "snapshot at {} is past the log's end {end}",
                snapshot.seq
            ))));
        }
        Some(snapshot) => Some(sql_int(snapshot.seq, "snapshot sequence number")?),
        None => None,
    };
    if rows.is_empty()
        && commit.cursors.is_empty()
        && effect_rows.is_empty()
        && snapshot_seq.is_none()
    {
        return Ok(Written::Seq(seq));
    }
    ensure_session(conn, state, session)?;
    seq = insert_inputs(conn, session, seq, &rows)?;
    state.new.last_seq.insert(session.clone(), seq);
    for (name, Cursor(cursor)) in &commit.cursors {
        set_cursor(conn, session, name, cursor)?;
    }
    let mut insert = conn.prepare_cached(
        "INSERT INTO outbox (session, seq, id, body, state, result) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (session, seq) DO NOTHING",
    )?;
    let pending = commit.effects.iter().map(|e| (e, "pending", None));
    let journal = commit
        .journal
        .iter()
        .map(|e| (e, "done", Some(JOURNAL_RESULT)));
    for ((e, state_name, result), row) in pending.chain(journal).zip(effect_rows) {
        insert.execute(params![
            session.as_str(),
            row,
            e.id.to_string(),
            e.body,
            state_name,
            result
        ])?;
    }
    if let (Some(snapshot), Some(at)) = (&commit.snapshot, snapshot_seq) {
        conn.prepare_cached(
            "INSERT INTO snapshots (session, seq, body) VALUES (?1, ?2, ?3)
             ON CONFLICT (session) DO UPDATE SET seq = excluded.seq, body = excluded.body",
        )?
        .execute(params![session.as_str(), at, snapshot.body])?;
    }
    Ok(Written::Seq(seq))
}

/// A completion; its inputs and ledger entries are written now, or pushed onto `later` (a
/// batch's, written at its end).
fn complete<'a>(
    conn: &Connection,
    state: &mut TxState<'_>,
    session: &SessionId,
    completion: &'a Completion,
    later: Option<&mut Later<'a>>,
) -> Result<Written, Failure> {
    let id = &completion.id;
    let unknown = || Failure::Refused(StoreError::UnknownEffect(id.clone()));
    let seq = i64::try_from(id.seq).map_err(|_| unknown())?;
    // Everything is checked before anything is written.
    let Checked {
        inputs,
        ledger,
        outbox: (state_name, result, error),
    } = check_completion(conn, state, session, completion)?;
    // One statement in the common case: the effect is there and pending.
    let changed = conn
        .prepare_cached(
            "UPDATE outbox SET state = ?3, result = ?4, error = ?5
             WHERE session = ?1 AND seq = ?2 AND id = ?6 AND state = 'pending'",
        )?
        .execute(params![
            session.as_str(),
            seq,
            state_name,
            result,
            error,
            id.to_string()
        ])?;
    if changed == 0 {
        // Nothing was written: it is finished already, or not this session's effect.
        let found: Option<String> = conn
            .prepare_cached("SELECT id FROM outbox WHERE session = ?1 AND seq = ?2")?
            .query_row(params![session.as_str(), seq], |r| r.get(0))
            .optional()?;
        return match found {
            Some(stored) if stored == id.to_string() => Ok(Written::Fresh(false)),
            _ => Err(unknown()),
        };
    }
    finish_rows(conn, state, session, &ledger, &inputs, later)?;
    Ok(Written::Fresh(true))
}

/// A completion's rows, checked before anything is written: its inputs (with room in the log),
/// its ledger entries, and the outbox's `(state, result, error)`.
struct Checked<'a> {
    inputs: Vec<(i64, &'a str)>,
    ledger: Vec<(&'a LedgerEntry, i64)>,
    outbox: (&'static str, Option<&'a str>, Option<&'a str>),
}

fn check_completion<'a>(
    conn: &Connection,
    state: &mut TxState<'_>,
    session: &SessionId,
    completion: &'a Completion,
) -> Result<Checked<'a>, Failure> {
    let inputs = input_rows(&completion.inputs)?;
    let ledger = completion
        .ledger
        .iter()
        .map(|e| Ok((e, sql_int(e.at.as_millis(), "ledger time")?)))
        .collect::<Result<Vec<_>, Failure>>()?;
    if !inputs.is_empty() {
        room(last_seq(conn, state, session)?, inputs.len())?;
    }
    let outbox = match &completion.state {
        OutboxState::Pending => ("pending", None, None),
        OutboxState::Done { result } => ("done", Some(result.as_str()), None),
        OutboxState::Failed { error } => ("failed", None, Some(error.as_str())),
    };
    Ok(Checked {
        inputs,
        ledger,
        outbox,
    })
}

/// A [`store::Write::Record`]: the effect goes into the outbox already finished, with its
/// completion's ledger entries and inputs (into `later`: records come only in batches). An
/// effect that is there already refuses it.
fn record<'a>(
    conn: &Connection,
    state: &mut TxState<'_>,
    session: &SessionId,
    effect: &NewEffect,
    completion: &'a Completion,
    later: &mut Later<'a>,
) -> Result<(), Failure> {
    let id = &completion.id;
    if effect.id != *id {
        return Err(Failure::Refused(StoreError::Other(format!(
            "a record of effect {} carries the completion of {id}",
            effect.id
        ))));
    }
    let seq = sql_int(id.seq, "effect sequence number")?;
    let Checked {
        inputs,
        ledger,
        outbox: (state_name, result, error),
    } = check_completion(conn, state, session, completion)?;
    ensure_session(conn, state, session)?;
    let inserted = conn
        .prepare_cached(
            "INSERT INTO outbox (session, seq, id, body, state, result, error)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (session, seq) DO NOTHING",
        )?
        .execute(params![
            session.as_str(),
            seq,
            id.to_string(),
            effect.body,
            state_name,
            result,
            error
        ])?;
    if inserted == 0 {
        return Err(Failure::Refused(StoreError::Corrupt(format!(
            "effect {id} was in the outbox already when it was recorded as new"
        ))));
    }
    finish_rows(conn, state, session, &ledger, &inputs, Some(later))
}

/// A batch's log and ledger rows, in the order written, kept to be inserted at its end, many to
/// a statement (nothing in a batch reads them back; the log's end is in [`TxState`]).
#[derive(Default)]
struct Later<'a> {
    log: Vec<(i64, &'a str)>,
    ledger: Vec<(&'a LedgerEntry, i64)>,
}

/// The rows a finished effect adds: its ledger entries, and its inputs at the log's end (now,
/// or pushed onto `later` for the batch to write).
fn finish_rows<'a>(
    conn: &Connection,
    state: &mut TxState<'_>,
    session: &SessionId,
    ledger: &[(&'a LedgerEntry, i64)],
    inputs: &[(i64, &'a str)],
    later: Option<&mut Later<'a>>,
) -> Result<(), Failure> {
    let seq = if inputs.is_empty() {
        None
    } else {
        Some(last_seq(conn, state, session)?)
    };
    let end = match (later, seq) {
        (Some(later), seq) => {
            later.ledger.extend_from_slice(ledger);
            match seq {
                Some(seq) => {
                    let end = room(seq, inputs.len())?;
                    later.log.extend_from_slice(inputs);
                    Some(end)
                }
                None => None,
            }
        }
        (None, seq) => {
            insert_ledger(conn, session, ledger)?;
            match seq {
                Some(seq) => Some(insert_inputs(conn, session, seq, inputs)?),
                None => None,
            }
        }
    };
    if let Some(end) = end {
        state.new.last_seq.insert(session.clone(), end);
    }
    Ok(())
}

/// Ledger rows one multi-row insert takes (9 parameters each).
const LEDGER_ROWS_PER_INSERT: usize = 32;

/// Inserts ledger entries in order, [`LEDGER_ROWS_PER_INSERT`] to a statement and the rest one
/// by one (so `id`s follow the order given).
fn insert_ledger(
    conn: &Connection,
    session: &SessionId,
    ledger: &[(&LedgerEntry, i64)],
) -> Result<(), Failure> {
    const HEAD: &str = "INSERT INTO ledger
        (session, effect, worker, assignment, kind, amount_minor, currency, paid, at_ms) VALUES ";
    let bind = |insert: &mut rusqlite::CachedStatement<'_>,
                base: usize,
                (e, at): &(&LedgerEntry, i64)|
     -> rusqlite::Result<()> {
        insert.raw_bind_parameter(base + 1, session.as_str())?;
        insert.raw_bind_parameter(base + 2, e.effect.to_string())?;
        insert.raw_bind_parameter(base + 3, e.worker.as_str())?;
        insert.raw_bind_parameter(base + 4, e.assignment.as_ref().map(|a| a.as_str()))?;
        insert.raw_bind_parameter(base + 5, &e.kind)?;
        insert.raw_bind_parameter(base + 6, e.amount.minor)?;
        insert.raw_bind_parameter(base + 7, e.amount.currency.as_str())?;
        insert.raw_bind_parameter(base + 8, e.paid)?;
        insert.raw_bind_parameter(base + 9, at)
    };
    let values = |rows: usize| {
        let rows: Vec<String> = (0..rows)
            .map(|r| {
                let p: Vec<String> = (1..=9).map(|c| format!("?{}", 9 * r + c)).collect();
                format!("({})", p.join(", "))
            })
            .collect();
        format!("{HEAD}{}", rows.join(", "))
    };
    let mut chunks = ledger.chunks_exact(LEDGER_ROWS_PER_INSERT);
    if ledger.len() >= LEDGER_ROWS_PER_INSERT {
        let mut insert = conn.prepare_cached(&values(LEDGER_ROWS_PER_INSERT))?;
        for chunk in chunks.by_ref() {
            for (r, row) in chunk.iter().enumerate() {
                bind(&mut insert, 9 * r, row)?;
            }
            insert.raw_execute()?;
        }
    }
    if !chunks.remainder().is_empty() {
        let mut insert = conn.prepare_cached(&values(1))?;
        for row in chunks.remainder() {
            bind(&mut insert, 0, row)?;
            insert.raw_execute()?;
        }
    }
    Ok(())
}

/// Inputs as rows: their times checked to fit SQLite's integers.
fn input_rows(inputs: &[NewInput]) -> Result<Vec<(i64, &str)>, Failure> {
    inputs
        .iter()
        .map(|i| Ok((sql_int(i.at.as_millis(), "input time")?, i.body.as_str())))
        .collect()
}

/// Appends rows after `seq`; returns the new last sequence number. Checks before writing.
///
/// Consecutive inputs go into one `log_runs` row while they are [`packed::packable`] (up to
/// [`packed::MAX_RUN`] inputs and [`packed::MAX_RUN_BYTES`] of bodies): SQLite's cost is per
/// row far more than per byte. Any other input is a row of its own, and so is a lone input.
fn insert_inputs(
    conn: &Connection,
    session: &SessionId,
    seq: u64,
    rows: &[(i64, &str)],
) -> Result<u64, Failure> {
    let first = sql_int(seq, "sequence number")?;
    let last = room(seq, rows.len())?;
    if rows.is_empty() {
        return Ok(last);
    }
    let mut insert = conn.prepare_cached(
        "INSERT INTO log_runs (session, seq, n, at_ms, body) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    let mut next = first + 1;
    let mut i = 0;
    while i < rows.len() {
        let mut j = i;
        let mut bytes = 0;
        if rows.len() - i > 1 {
            while j < rows.len()
                && j - i < packed::MAX_RUN
                && bytes < packed::MAX_RUN_BYTES
                && packed::packable(rows[j].1)
            {
                bytes += rows[j].1.len();
                j += 1;
            }
        }
        let n = (j - i).max(1);
        let at = rows[i].0;
        if n > 1 {
            let body = packed::pack(&rows[i..j]);
            insert.execute(params![session.as_str(), next, n as i64, at, body])?;
        } else {
            insert.execute(params![session.as_str(), next, 1i64, at, rows[i].1])?;
        }
        next += n as i64;
        i += n;
    }
    Ok(last)
}

/// Outbox rows one multi-row insert takes (3 parameters each, plus the session: well under
/// SQLite's 32 766 parameters).
const ROWS_PER_INSERT: usize = 64;

/// `{head} VALUES (?1, ?2, ?3, ?4), (?1, ?5, ?6, ?7), … {tail}` for [`ROWS_PER_INSERT`] rows of
/// the session and three values each.
fn multi_row_insert(head: &str, tail: &str) -> String {
    let rows: Vec<String> = (0..ROWS_PER_INSERT)
        .map(|i| format!("(?1, ?{}, ?{}, ?{})", 3 * i + 2, 3 * i + 3, 3 * i + 4))
        .collect();
    format!("{head} VALUES {} {tail}", rows.join(", "))
}

/// Inserts rows of three values after the session, [`ROWS_PER_INSERT`] to a statement and the
/// rest one by one (`single` takes `?1` to `?4`).
fn insert_rows<A: rusqlite::ToSql, B: rusqlite::ToSql, C: rusqlite::ToSql>(
    conn: &Connection,
    session: &SessionId,
    (head, tail): (&str, &str),
    single: &str,
    rows: &[(A, B, C)],
) -> Result<(), Failure> {
    let mut chunks = rows.chunks_exact(ROWS_PER_INSERT);
    if rows.len() >= ROWS_PER_INSERT {
        let mut insert = conn.prepare_cached(&multi_row_insert(head, tail))?;
        for chunk in chunks.by_ref() {
            insert.raw_bind_parameter(1, session.as_str())?;
            for (i, (a, b, c)) in chunk.iter().enumerate() {
                insert.raw_bind_parameter(3 * i + 2, a)?;
                insert.raw_bind_parameter(3 * i + 3, b)?;
                insert.raw_bind_parameter(3 * i + 4, c)?;
            }
            insert.raw_execute()?;
        }
    }
    let mut insert = conn.prepare_cached(single)?;
    for (a, b, c) in chunks.remainder() {
        insert.execute(params![session.as_str(), a, b, c])?;
    }
    Ok(())
}

/// The last sequence number after appending `n` inputs after `seq`, if it fits.
fn room(seq: u64, n: usize) -> Result<u64, Failure> {
    let last = seq.saturating_add(n as u64);
    sql_int(last, "sequence number").map(|_| last)
}

/// The session's last sequence number in this transaction.
fn last_seq(
    conn: &Connection,
    state: &mut TxState<'_>,
    session: &SessionId,
) -> Result<u64, Failure> {
    if let Some(seq) = state.last_seq(session) {
        return Ok(seq);
    }
    let seq: Option<i64> = conn
        .prepare_cached(
            "SELECT seq + n - 1 FROM log_runs WHERE session = ?1 ORDER BY seq DESC LIMIT 1",
        )?
        .query_row([session.as_str()], |r| r.get(0))
        .optional()?;
    let seq = u64::try_from(seq.unwrap_or(0))
        .map_err(|_| Failure::Refused(StoreError::Corrupt("negative sequence number".into())))?;
    state.new.last_seq.insert(session.clone(), seq);
    Ok(seq)
}

/// Makes sure the session has its row in `sessions`, which every other table refers to.
fn ensure_session(
    conn: &Connection,
    state: &mut TxState<'_>,
    session: &SessionId,
) -> Result<(), Failure> {
    if !state.has_session(session) {
        conn.prepare_cached("INSERT INTO sessions (session) VALUES (?1) ON CONFLICT DO NOTHING")?
            .execute([session.as_str()])?;
        state.new.sessions.insert(session.clone());
    }
    Ok(())
}

/// A `u64` as SQLite's `i64`, or a refusal naming `what`.
fn sql_int(value: u64, what: &str) -> Result<i64, Failure> {
    i64::try_from(value).map_err(|_| {
        Failure::Refused(StoreError::Other(format!(
            "{what} {value} does not fit in SQLite's 64-bit integers"
        )))
    })
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use crowdcore::{EffectId, Timestamp};

    use super::*;
    use crate::schema;

    fn connection() -> Connection {
        let mut conn = Connection::open_in_memory().unwrap();
        schema::migrate_to(&mut conn, schema::LATEST).unwrap();
        conn
    }

    fn append(session: &str, body: &str) -> Write {
        Write::Append {
            session: SessionId::new(session),
            inputs: vec![NewInput {
                at: Timestamp::from_millis(1),
                body: body.to_owned(),
            }],
            cursor: None,
        }
    }

    /// Queues `writes` before the writer starts, runs it to the end, and returns the answers
    /// and the number of transactions committed.
    fn run(
        conn: Connection,
        mode: CommitMode,
        writes: Vec<Write>,
    ) -> (Vec<Result<Written, StoreError>>, u64) {
        let (tx, rx) = mpsc::channel();
        let mut answers = Vec::new();
        for write in writes {
            let (reply, answer) = oneshot::channel();
            tx.send(Command::Write(write, reply)).unwrap();
            answers.push(answer);
        }
        drop(tx);
        let options = SqliteOptions {
            commit: mode,
            ..SqliteOptions::default()
        };
        let commits = Writer::new(conn, &options).run(rx);
        let answers = answers
            .into_iter()
            .map(|mut a| a.try_recv().expect("every write is answered"))
            .collect();
        (answers, commits)
    }

    #[test]
    fn queued_writes_share_one_transaction() {
        let writes = (0..10).map(|n| append("s", &format!("i{n}"))).collect();
        let (answers, commits) = run(connection(), CommitMode::Group, writes);
        assert_eq!(commits, 1);
        let seqs: Vec<_> = answers.into_iter().map(Result::unwrap).collect();
        assert_eq!(seqs, (1..=10).map(Written::Seq).collect::<Vec<_>>());
    }

    #[test]
    fn per_write_mode_commits_each_write() {
        let writes = (0..10).map(|n| append("s", &format!("i{n}"))).collect();
        let (answers, commits) = run(connection(), CommitMode::PerWrite, writes);
        assert_eq!(commits, 10);
        assert!(answers.iter().all(Result::is_ok));
    }

    #[test]
    fn a_refused_write_does_not_disturb_its_batch() {
        let session = SessionId::new("s");
        let unknown = EffectId::new(session.clone(), 7);
        let writes = vec![
            append("s", "before"),
            Write::Complete {
                session: session.clone(),
                completion: Completion {
                    id: unknown.clone(),
                    state: OutboxState::Done { result: "r".into() },
                    ledger: Vec::new(),
                    inputs: vec![NewInput {
                        at: Timestamp::from_millis(2),
                        body: "never".into(),
                    }],
                },
            },
            append("s", "after"),
        ];
        let (answers, commits) = run(connection(), CommitMode::Group, writes);
        assert_eq!(commits, 1);
        assert_eq!(answers[0], Ok(Written::Seq(1)));
        assert_eq!(answers[1], Err(StoreError::UnknownEffect(unknown)));
        assert_eq!(
            answers[2],
            Ok(Written::Seq(2)),
            "the refused write took no number"
        );
    }

    #[test]
    fn a_write_that_fails_in_sqlite_is_answered_alone() {
        let conn = connection();
        // Room for small writes, not for a megabyte.
        let pages: i64 = conn
            .pragma_query_value(None, "page_count", |r| r.get(0))
            .unwrap();
        conn.pragma_update(None, "max_page_count", pages + 20)
            .unwrap();
        let writes = vec![
            append("a", "small"),
            append("b", &"x".repeat(1 << 20)),
            append("c", "small"),
        ];
        let (answers, commits) = run(conn, CommitMode::Group, writes);
        assert_eq!(answers[0], Ok(Written::Seq(1)));
        assert!(
            matches!(answers[1], Err(StoreError::Full(_))),
            "{:?}",
            answers[1]
        );
        assert_eq!(answers[2], Ok(Written::Seq(1)));
        assert_eq!(
            commits, 2,
            "the batch failed; the small writes committed alone"
        );
    }
}
