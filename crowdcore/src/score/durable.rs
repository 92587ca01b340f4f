//! [`Competition`]: the [`Scoreboard`] driven durably through a [`Store`].

use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;

use super::{
    Event, Input, KindConfig, KindId, Leaderboard, NewTask, QueryError, Refused, RestoreError,
    Scoreboard, Scorers, SkillMethod, Snapshot, TaskId,
};
use crate::clock::{Clock, SystemClock};
use crate::engine::to_json;
use crate::model::{SessionId, Timestamp, WorkerId};
use crate::platform::Cursor;
use crate::store::{NewInput, Store, StoreError, StoredSnapshot};

/// The session metadata key that marks a session as a competition's.
pub const FORMAT_KEY: &str = "score_format";
/// The value of [`FORMAT_KEY`]: the log holds [`Input`]s as JSON.
pub const FORMAT: &str = "crowdcore.score/1";

/// Why a competition call failed.
#[derive(Debug, thiserror::Error)]
pub enum CompetitionError {
    /// The machine refused the input; nothing was logged or changed.
    #[error("refused: {0}")]
    Refused(#[from] Refused),
    /// The store failed; the input is not applied (it may or may not be in the log: after a
    /// restart, it is applied if it is).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The session in the store belongs to something else (another driver's log).
    #[error("session {0} in the store is not a competition")]
    NotACompetition(SessionId),
    /// The store's contents cannot be replayed (unreadable, or refused now: were the same
    /// custom scorers registered?).
    #[error("cannot recover the competition: {0}")]
    Recovery(String),
}

impl From<RestoreError> for CompetitionError {
    fn from(e: RestoreError) -> Self {
        CompetitionError::Recovery(e.to_string())
    }
}

/// A submission a driver read from a platform, for [`Competition::record_observed`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    /// When the participant submitted (the platform's time).
    pub at: Timestamp,
    /// The task.
    pub task: TaskId,
    /// Who.
    pub participant: WorkerId,
    /// The answer.
    pub answer: String,
}

/// What [`Competition::record_observed`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ObservedOutcome {
    /// Submissions logged and applied.
    pub accepted: u32,
    /// Submissions refused (each also reported as [`Event::Refused`]).
    pub refused: u32,
}

/// Opens a [`Competition`].
pub struct CompetitionBuilder {
    store: Arc<dyn Store>,
    session: SessionId,
    clock: Arc<dyn Clock>,
    scorers: Scorers,
    snapshot_every: u64,
}

impl CompetitionBuilder {
    /// Uses `clock` (default: the system clock) to time the inputs of the host calls.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The custom scorers of the competition's kinds (the same every time it is opened).
    pub fn scorers(mut self, scorers: Scorers) -> Self {
        self.scorers = scorers;
        self
    }

    /// Saves a snapshot every `n` inputs (default 1 000; 0: never), so opening replays at most
    /// that many.
    pub fn snapshot_every(mut self, n: u64) -> Self {
        self.snapshot_every = n;
        self
    }

    /// Opens the session, recovering it if the store holds it: restores the snapshot and
    /// replays the log after it. Events of the replayed inputs are not emitted again.
    pub async fn open(self) -> Result<Competition, CompetitionError> {
        let CompetitionBuilder {
            store,
            session,
            clock,
            scorers,
            snapshot_every,
        } = self;
        match store.meta(&session, FORMAT_KEY).await? {
            Some(format) if format == FORMAT => {}
            Some(_) => return Err(CompetitionError::NotACompetition(session)),
            None => {
                let used = !store.read_log(&session, 0, 1).await?.is_empty()
                    || store.load_snapshot(&session).await?.is_some();
                if used {
                    return Err(CompetitionError::NotACompetition(session));
                }
                store.put_meta(&session, FORMAT_KEY, FORMAT).await?;
            }
        }
        let (mut board, mut seq) = match store.load_snapshot(&session).await? {
            Some(stored) => {
                let snapshot: Snapshot = serde_json::from_str(&stored.body)
                    .map_err(|e| CompetitionError::Recovery(format!("snapshot: {e}")))?;
                (Scoreboard::restore(snapshot, scorers)?, stored.seq)
            }
            None => (Scoreboard::new(scorers), 0),
        };
        loop {
            let page = store.read_log(&session, seq, 4096).await?;
            if page.is_empty() {
                break;
            }
            for record in page {
                if record.seq != seq + 1 {
                    return Err(CompetitionError::Recovery(format!(
                        "log jumps from {seq} to {}",
                        record.seq
                    )));
                }
                seq = record.seq;
                let input: Input = serde_json::from_str(&record.body)
                    .map_err(|e| CompetitionError::Recovery(format!("log entry {seq}: {e}")))?;
                // Only accepted inputs are logged, so a refusal now means the machine differs
                // from the one that logged it (another set of custom scorers, say).
                board.handle(record.at, input).map_err(|e| {
                    CompetitionError::Recovery(format!("log entry {seq} is refused now: {e}"))
                })?;
                while board.poll_event().is_some() {}
            }
        }
        Ok(Competition {
            store,
            session,
            clock,
            board,
            seq,
            events: VecDeque::new(),
            snapshot_every,
            since_snapshot: 0,
        })
    }
}

/// A competition: a [`Scoreboard`] whose every input is in a [`Store`]'s log before the machine
/// sees it (record, then act), so that answers waiting for their truth — and everything else —
/// survive a restart: [`Competition::builder`] + [`open`](CompetitionBuilder::open) on the same
/// store and session rebuilds the same state, bit for bit, by replaying the log.
///
/// Only inputs the machine accepts are logged: each is [checked](Scoreboard::check) first, and
/// a refusal is returned without touching the store. Submissions read from a platform go through
/// [`record_observed`](Self::record_observed), which logs them together with the observer's
/// cursor in one write, so a restart neither loses nor repeats one.
///
/// # Queries
///
/// [`leaderboard`](Self::leaderboard), [`skill_leaderboard`](Self::skill_leaderboard) and
/// [`overall`](Self::overall) are the query API of competitions: what a status page or an admin
/// endpoint serves. They read the machine's state and never touch the store.
///
/// ```
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
/// use crowdcore::score::{Competition, KindConfig, Metric, NewTask};
/// use crowdcore::store::MemoryStore;
/// use crowdcore::{SessionId, WorkerId};
///
/// let store = Arc::new(MemoryStore::new());
/// let session = SessionId::new("contest");
/// let mut c = Competition::builder(store.clone(), session.clone()).open().await?;
/// c.define_kind("ages", KindConfig::new(Metric::MeanAbsoluteError)).await?;
/// c.post_task(NewTask::new("photo-1", "ages")).await?; // truth comes later
/// c.submit("photo-1", "bot", "31.5").await?;
/// drop(c); // the process restarts
///
/// let mut c = Competition::builder(store, session).open().await?;
/// c.reveal("photo-1", "30").await?; // the waiting answer is scored now
/// let board = c.leaderboard(&"ages".into())?;
/// assert_eq!(board.standings[0].score, 1.5);
/// # Ok(()) }
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(run()).unwrap();
/// ```
pub struct Competition {
    store: Arc<dyn Store>,
    session: SessionId,
    clock: Arc<dyn Clock>,
    board: Scoreboard,
    /// The last log sequence number.
    seq: u64,
    events: VecDeque<Event>,
    snapshot_every: u64,
    since_snapshot: u64,
}

impl std::fmt::Debug for Competition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Competition")
            .field("session", &self.session)
            .field("seq", &self.seq)
            .finish_non_exhaustive()
    }
}

impl Competition {
    /// A competition in `session` of `store` (new, or recovered by
    /// [`open`](CompetitionBuilder::open)).
    pub fn builder(store: Arc<dyn Store>, session: SessionId) -> CompetitionBuilder {
        CompetitionBuilder {
            store,
            session,
            clock: Arc::new(SystemClock),
            scorers: Scorers::new(),
            snapshot_every: 1_000,
        }
    }

    // ----- host API ----------------------------------------------------------------------------

    /// Defines a task kind (again with the same config: nothing happens).
    pub async fn define_kind(
        &mut self,
        kind: impl Into<KindId>,
        config: KindConfig,
    ) -> Result<(), CompetitionError> {
        let kind = kind.into();
        self.handle(Input::DefineKind { kind, config }).await
    }

    /// Posts a task.
    pub async fn post_task(&mut self, task: NewTask) -> Result<(), CompetitionError> {
        self.handle(Input::PostTask(task)).await
    }

    /// A participant answers a task now.
    pub async fn submit(
        &mut self,
        task: impl Into<TaskId>,
        participant: impl Into<WorkerId>,
        answer: impl Into<String>,
    ) -> Result<(), CompetitionError> {
        let input = Input::Submit {
            task: task.into(),
            participant: participant.into(),
            answer: answer.into(),
        };
        self.handle(input).await
    }

    /// A task's truth arrives; its waiting answers are scored.
    pub async fn reveal(
        &mut self,
        task: impl Into<TaskId>,
        truth: impl Into<String>,
    ) -> Result<(), CompetitionError> {
        let input = Input::RevealTruth {
            task: task.into(),
            truth: truth.into(),
        };
        self.handle(input).await
    }

    /// Closes the tasks whose deadline has passed by the clock (logged as a tick, only if one
    /// is due).
    pub async fn advance(&mut self) -> Result<(), CompetitionError> {
        let now = self.clock.now();
        if self.board.poll_timeout().is_some_and(|at| at <= now) {
            self.handle_at(now, Input::Tick).await?;
        }
        Ok(())
    }

    /// Records `input` at the clock's time, then applies it.
    pub async fn handle(&mut self, input: Input) -> Result<(), CompetitionError> {
        let now = self.clock.now();
        self.handle_at(now, input).await
    }

    /// Records `input` as happening at `at`, then applies it. Refused inputs are not recorded,
    /// nor is a kind defined again with the same config (which changes nothing).
    pub async fn handle_at(&mut self, at: Timestamp, input: Input) -> Result<(), CompetitionError> {
        self.board.check(at, &input)?;
        if let Input::DefineKind { kind, config } = &input
            && self.board.kind(kind).is_some_and(|k| k.config == *config)
        {
            return Ok(()); // a host repeating its setup: nothing to record
        }
        self.seq = self
            .store
            .append(&self.session, &[new_input(at, &input)], None)
            .await?;
        self.apply(at, input).await;
        Ok(())
    }

    /// Records submissions read from a platform, and the observer cursor `cursor.0` moved to
    /// `cursor.1`, in one write; then applies them. Refused submissions (late, repeated,
    /// malformed) are not recorded; each becomes an [`Event::Refused`]. A store failure records
    /// nothing and applies nothing, the cursor included.
    pub async fn record_observed(
        &mut self,
        submissions: &[Observed],
        cursor: Option<(&str, &Cursor)>,
    ) -> Result<ObservedOutcome, StoreError> {
        let mut accepted = Vec::new();
        let mut refused = Vec::new();
        // A submission's check reads only its task, which other submissions do not change, and
        // whether its participant answered it already: in the machine, or earlier in the batch.
        let mut seen = BTreeSet::new();
        for s in submissions {
            let input = Input::Submit {
                task: s.task.clone(),
                participant: s.participant.clone(),
                answer: s.answer.clone(),
            };
            let verdict = self.board.check(s.at, &input).and_then(|()| {
                if seen.insert((s.task.clone(), s.participant.clone())) {
                    Ok(())
                } else {
                    Err(Refused::AlreadyAnswered {
                        task: s.task.clone(),
                        participant: s.participant.clone(),
                    })
                }
            });
            match verdict {
                Ok(()) => accepted.push((s.at, input)),
                Err(reason) => refused.push(Event::Refused { input, reason }),
            }
        }
        if !accepted.is_empty() || cursor.is_some() {
            let records: Vec<NewInput> = accepted.iter().map(|(at, i)| new_input(*at, i)).collect();
            self.seq = self.store.append(&self.session, &records, cursor).await?;
        }
        let outcome = ObservedOutcome {
            accepted: accepted.len() as u32,
            refused: refused.len() as u32,
        };
        for (at, input) in accepted {
            self.apply(at, input).await;
        }
        self.events.extend(refused);
        Ok(outcome)
    }

    /// An observer's cursor, as last recorded with [`record_observed`](Self::record_observed).
    pub async fn cursor(&self, name: &str) -> Result<Option<Cursor>, StoreError> {
        self.store.cursor(&self.session, name).await
    }

    /// Saves the machine's state at the current log position.
    pub async fn save_snapshot(&mut self) -> Result<(), StoreError> {
        let body = to_json(&self.board.snapshot());
        let snapshot = StoredSnapshot {
            seq: self.seq,
            body,
        };
        self.store.save_snapshot(&self.session, &snapshot).await?;
        self.since_snapshot = 0;
        Ok(())
    }

    /// Applies an input that is in the log (or refused, and so not in it).
    async fn apply(&mut self, at: Timestamp, input: Input) {
        if let Err(e) = self.board.handle(at, input) {
            // Unreachable: the input was checked against this same state just before.
            tracing::error!(error = %e, "a checked input was refused");
        }
        while let Some(event) = self.board.poll_event() {
            self.events.push_back(event);
        }
        self.since_snapshot += 1;
        if self.snapshot_every > 0 && self.since_snapshot >= self.snapshot_every {
            // The log is the record; a snapshot only shortens the replay, so a failed one is
            // not the caller's failure.
            if let Err(e) = self.save_snapshot().await {
                tracing::warn!(error = %e, "could not save the competition's snapshot");
            }
        }
    }

    // ----- outputs -----------------------------------------------------------------------------

    /// The next event, oldest first (live inputs only: a restart does not repeat them).
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`advance`](Self::advance) has work next: the next deadline.
    pub fn next_wakeup(&self) -> Option<Timestamp> {
        self.board.poll_timeout()
    }

    // ----- queries -----------------------------------------------------------------------------

    /// The session.
    pub fn session(&self) -> &SessionId {
        &self.session
    }

    /// The machine, for its getters.
    pub fn board(&self) -> &Scoreboard {
        &self.board
    }

    /// A kind's leaderboard ([`Scoreboard::leaderboard`]).
    pub fn leaderboard(&self, kind: &KindId) -> Result<Leaderboard, QueryError> {
        self.board.leaderboard(kind)
    }

    /// A kind's leaderboard by aggregation skill ([`Scoreboard::skill_leaderboard`]).
    pub fn skill_leaderboard(
        &self,
        kind: &KindId,
        method: Option<SkillMethod>,
    ) -> Result<Leaderboard, QueryError> {
        self.board.skill_leaderboard(kind, method)
    }

    /// The overall leaderboard ([`Scoreboard::overall`]).
    pub fn overall(&self) -> Result<Leaderboard, QueryError> {
        self.board.overall()
    }
}

fn new_input(at: Timestamp, input: &Input) -> NewInput {
    NewInput {
        at,
        body: to_json(input),
    }
}
