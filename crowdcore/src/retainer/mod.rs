//! The retainer machine: recruit workers *before* work exists, so that a task starts within
//! seconds of being invoked.
//!
//! A host registers HIT templates ([`HitSpec`]s) and makes **reservations** — `needed` workers
//! for a task it names (`foreign_id`, `payload`), starting at `start_at`. The retainer keeps a
//! **pool** of workers waiting on each template's landing page and, once a reservation is
//! **invoked** (by the host, or by itself at `start_at`), **routes** pool workers to its task.
//! Like the [Pavilion](crate::pavilion), it contains no I/O and reads no clock: the same inputs
//! give the same state and effects.
//!
//! # Composition: the pool *is* a Pavilion's waiting queue
//!
//! Each template owns one inner [`Pavilion`] (its session is `<session>/<template>`, so the
//! ids of its effects are unique and deterministic). Its **waiting queue is the retainer
//! pool**; its **active queue is the workers routed to tasks**. The Pavilion does what it
//! already does — hires the deficit and never more, within its budget; tracks heartbeats and
//! times out silent pages; pays waiting and active time; turns away arrivals it has no seat
//! for — and the retainer steers it through its targets, after every input:
//!
//! - `max_active` = workers routed and still present + the unmet need of invoked
//!   reservations. Invoking a reservation raises it, so the Pavilion promotes its oldest
//!   waiting workers (and hires for what the pool cannot give);
//! - `max_waiting` = the pool size for the template's live reservations ([`PoolTarget`]).
//!
//! Each promotion the Pavilion makes becomes a [`EffectKind::Route`] (with the promotion's
//! id) to the **oldest invoked reservation that still needs workers**. Routing is sticky (an
//! assignment routed stays routed) and never gives a reservation more than `needed` workers
//! present or submitted; a routed worker who leaves without submitting (returns, abandons,
//! falls silent) frees their place, which is routed again. Finishing a reservation stops
//! routing to it (its unmet need leaves `max_active`); its workers keep working. Cancelling
//! also lowers `max_waiting` (the Pavilion releases the newest waiting workers above it) and
//! expires the HITs whose open slots nobody needs any more. Every other Pavilion effect (hire,
//! pay, release, turn away, time-out, expire HITs, notices) is passed on as an
//! [`EffectKind::Pool`] effect, with its Pavilion id.
//!
//! The inner Pavilions run in *pool mode* (crate-internal, see `Pavilion::new_pool`), which
//! differs from a stand-alone Pavilion in three rules the composition needs: `max_active` may
//! be 0 (nothing to route); an active worker who leaves takes their seat along (the retainer,
//! not the Pavilion, decides whether their place is routed again); and new targets promote
//! waiting workers into the room they open before releasing anyone above `max_waiting`.
//!
//! Time-driven rules fall due on [`Input::Tick`] ([`handle_timeout`](Retainer::handle_timeout)):
//! heartbeat deadlines and hiring pauses (the pools'), auto-invocation at `start_at`,
//! precruitment alerts ([`RetainerConfig::precruit_ms`] before `start_at`) and HIT refreshes
//! (a HIT with open slots older than [`RetainerConfig::refresh_after_ms`] is expired through
//! [`pavilion::Input::ExpireHit`], and its pool hires the slots anew, so the work stays visible).
//!
//! [`erlang_b`] and [`smallest_pool`] size a pool for an allowed miss probability.
//!
//! # Driving it
//!
//! The contract is the Pavilion's: getters ([`snapshot`](Retainer::snapshot),
//! [`list`](Retainer::list), [`task_for`](Retainer::task_for), …), inputs
//! ([`handle`](Retainer::handle), [`handle_timeout`](Retainer::handle_timeout)) and outputs
//! ([`poll_effect`](Retainer::poll_effect), [`poll_timeout`](Retainer::poll_timeout)). After
//! every input, drain `poll_effect`; then ask `poll_timeout` when to call `handle_timeout`.

mod config;
mod erlang;
mod io;
mod snapshot;

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use rustc_hash::FxHashMap;

pub use config::{PoolTarget, RetainerConfig};
pub use erlang::{MAX_POOL, PoolSize, SizingError, erlang_b, smallest_pool};
pub use io::{
    Action, Effect, EffectKind, Input, PingKind, Rejected, ReservationState, RoutedTask,
    WorkerNotice, WorkerRef,
};
pub use snapshot::{
    HitView, RefreshView, ReservationView, RouteStatus, RouteView, Snapshot, TemplateView,
};

use crate::model::{
    AssignmentId, EffectId, HitId, HitSpec, ReservationId, SessionId, TemplateId, Timestamp,
    WorkerId,
};
use crate::pavilion::{
    self, ConfigError, Departure, Input as PoolInput, Pavilion, SeatState, Targets,
};

/// The retainer machine. See the [module docs](self) for how it works.
///
/// # Driving contract
///
/// ```no_run
/// # use crowdcore::retainer::{Retainer, RetainerConfig, Input, Effect};
/// # use crowdcore::{SessionId, Timestamp};
/// # fn now() -> Timestamp { Timestamp::ZERO }
/// # fn next_input() -> Input { Input::Tick }
/// # fn carry_out(_: Effect) {}
/// let mut retainer = Retainer::new(SessionId::new("study-1"), RetainerConfig::default())?;
/// loop {
///     // 1. Feed the next input: a template, a reservation, a ping, a platform event, …
///     //    (record it in the log first). A refused input leaves the state unchanged.
///     if let Err(rejected) = retainer.handle(now(), next_input()) {
///         eprintln!("rejected: {rejected}");
///     }
///     // 2. Drain every effect it produced (record each in an outbox first). A pool effect
///     //    is carried out as the Pavilion's (`Effect::pool_effect`); a route sends the
///     //    worker's page to the task; answer each hire with `HirePosted` / `HireFailed`.
///     while let Some(effect) = retainer.poll_effect() {
///         carry_out(effect);
///     }
///     // 3. Let time pass: heartbeats, auto-invocations, precruitment and HIT refreshes.
///     while let Some(at) = retainer.poll_timeout().filter(|at| *at <= now()) {
///         retainer.handle_timeout(at);
///         while let Some(effect) = retainer.poll_effect() {
///             carry_out(effect);
///         }
///     }
///     # break;
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct Retainer {
    session: SessionId,
    config: RetainerConfig,
    now: Timestamp,

    templates: Vec<Template>,
    template_index: FxHashMap<TemplateId, usize>,
    /// A pool's session → its template, to read a hire id.
    pool_index: FxHashMap<SessionId, usize>,

    reservations: Vec<Reservation>,
    reservation_index: FxHashMap<ReservationId, usize>,
    /// Made reservations by (start_at, index): their auto-invocations.
    starts: BTreeSet<(Timestamp, usize)>,
    /// Made reservations not yet precruited, by (alert time, index).
    precruits: BTreeSet<(Timestamp, usize)>,
    next_invoke_order: u64,

    routes: Vec<Route>,
    route_index: FxHashMap<AssignmentId, usize>,
    /// The template whose pool each assignment arrived in.
    assignments: FxHashMap<AssignmentId, usize>,

    hits: Vec<Hit>,
    hit_index: FxHashMap<HitId, usize>,
    /// HIT refreshes (due, hit index), soonest first.
    refreshes: VecDeque<(Timestamp, usize)>,

    effects: VecDeque<Effect>,
    next_seq: u64,
}

#[derive(Debug, Clone)]
struct Template {
    id: TemplateId,
    spec: HitSpec,
    target: PoolTarget,
    budget_cents: Option<i64>,
    pool: Pavilion,
    /// Its invoked reservations by invoke order (the routing order).
    invoked: BTreeMap<u64, usize>,
    /// Its made reservations.
    made: BTreeSet<usize>,
}

#[derive(Debug, Clone)]
struct Reservation {
    id: ReservationId,
    template: usize,
    foreign_id: String,
    payload: serde_json::Value,
    start_at: Timestamp,
    needed: u32,
    state: ReservationState,
    made_at: Timestamp,
    invoked_at: Option<Timestamp>,
    invoke_order: Option<u64>,
    precruited: bool,
    working: u32,
    submitted: u32,
    dropped: u32,
}

impl Reservation {
    fn unmet(&self) -> u32 {
        self.needed
            .saturating_sub(self.working)
            .saturating_sub(self.submitted)
    }
}

#[derive(Debug, Clone)]
struct Route {
    assignment: AssignmentId,
    worker: WorkerId,
    reservation: usize,
    routed_at: Timestamp,
    status: RouteStatus,
}

#[derive(Debug, Clone)]
struct Hit {
    id: HitId,
    template: usize,
    posted_at: Timestamp,
    expired: bool,
}

/// A snapshot that cannot be restored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RestoreError {
    /// Its configuration is invalid.
    #[error("bad configuration: {0}")]
    Config(#[from] ConfigError),
    /// A template's pool cannot be restored.
    #[error("template {template}: {source}")]
    Pool {
        /// The template.
        template: TemplateId,
        /// Why.
        source: pavilion::RestoreError,
    },
    /// Its parts contradict each other.
    #[error("inconsistent snapshot: {0}")]
    Inconsistent(String),
}

/// A reservation with its template, as [`Retainer::list`] gives it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Listing {
    /// The reservation.
    pub reservation: ReservationView,
    /// Its template's spec.
    pub spec: HitSpec,
}

impl Retainer {
    /// A new retainer for `session`, with no templates and no reservations.
    pub fn new(session: SessionId, config: RetainerConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self {
            session,
            config,
            now: Timestamp::ZERO,
            templates: Vec::new(),
            template_index: FxHashMap::default(),
            pool_index: FxHashMap::default(),
            reservations: Vec::new(),
            reservation_index: FxHashMap::default(),
            starts: BTreeSet::new(),
            precruits: BTreeSet::new(),
            next_invoke_order: 0,
            routes: Vec::new(),
            route_index: FxHashMap::default(),
            assignments: FxHashMap::default(),
            hits: Vec::new(),
            hit_index: FxHashMap::default(),
            refreshes: VecDeque::new(),
            effects: VecDeque::new(),
            next_seq: 1,
        })
    }

    // ----- getters ---------------------------------------------------------------------------

    /// The session this retainer runs.
    pub fn session(&self) -> &SessionId {
        &self.session
    }

    /// The configuration.
    pub fn config(&self) -> &RetainerConfig {
        &self.config
    }

    /// The latest time the retainer has seen.
    pub fn now(&self) -> Timestamp {
        self.now
    }

    /// A registered template's spec.
    pub fn template(&self, template: &TemplateId) -> Option<&HitSpec> {
        self.template_index
            .get(template)
            .map(|&t| &self.templates[t].spec)
    }

    /// The spec of the template whose pool posted `hit`, if one did.
    pub fn spec_of_hit(&self, hit: &HitId) -> Option<&HitSpec> {
        self.hit_index
            .get(hit)
            .map(|&h| &self.templates[self.hits[h].template].spec)
    }

    /// How many contributions `assignment` would be paid for if it submitted now reporting
    /// `reported` (its pool's
    /// [`PavilionConfig::payable_contributions`](crate::pavilion::PavilionConfig::payable_contributions));
    /// `None` if it is not present.
    pub fn payable_contributions(&self, assignment: &AssignmentId, reported: u32) -> Option<u32> {
        let &t = self.assignments.get(assignment)?;
        self.templates[t]
            .pool
            .payable_contributions(assignment, reported)
    }

    /// The registered templates' ids, in the order they were registered.
    pub fn templates(&self) -> impl ExactSizeIterator<Item = &TemplateId> {
        self.templates.iter().map(|t| &t.id)
    }

    /// A template's pool (read only): its waiting queue is the retainer pool, its active
    /// queue the routed workers.
    pub fn pool(&self, template: &TemplateId) -> Option<&Pavilion> {
        self.template_index
            .get(template)
            .map(|&t| &self.templates[t].pool)
    }

    /// A reservation as it stands.
    pub fn reservation(&self, reservation: &ReservationId) -> Option<ReservationView> {
        self.reservation_index
            .get(reservation)
            .map(|&r| self.reservation_view(r))
    }

    /// Every reservation with its template's spec, in the order they were made.
    pub fn list(&self) -> Vec<Listing> {
        (0..self.reservations.len())
            .map(|r| Listing {
                reservation: self.reservation_view(r),
                spec: self.templates[self.reservations[r].template].spec.clone(),
            })
            .collect()
    }

    /// The answer to a worker's poll: the task their assignment was routed to, or `None` if
    /// it was not (yet). Routes are sticky: the answer stays once given.
    pub fn task_for(&self, assignment: &AssignmentId) -> Result<Option<RoutedTask>, Rejected> {
        if !self.assignments.contains_key(assignment) {
            return Err(Rejected::UnknownAssignment(assignment.clone()));
        }
        Ok(self.route_index.get(assignment).map(|&i| {
            let r = &self.reservations[self.routes[i].reservation];
            RoutedTask {
                reservation: r.id.clone(),
                task: r.foreign_id.clone(),
                payload: r.payload.clone(),
            }
        }))
    }

    /// The whole state as plain data.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            session: self.session.clone(),
            config: self.config.clone(),
            now: self.now,
            templates: self
                .templates
                .iter()
                .map(|t| TemplateView {
                    template: t.id.clone(),
                    spec: t.spec.clone(),
                    pool_target: t.target,
                    budget_cents: t.budget_cents,
                    pool: t.pool.snapshot(),
                })
                .collect(),
            reservations: (0..self.reservations.len())
                .map(|r| self.reservation_view(r))
                .collect(),
            routes: self
                .routes
                .iter()
                .map(|r| RouteView {
                    assignment: r.assignment.clone(),
                    worker: r.worker.clone(),
                    reservation: self.reservations[r.reservation].id.clone(),
                    routed_at: r.routed_at,
                    status: r.status,
                })
                .collect(),
            hits: self
                .hits
                .iter()
                .map(|h| HitView {
                    hit: h.id.clone(),
                    template: self.templates[h.template].id.clone(),
                    posted_at: h.posted_at,
                    expired: h.expired,
                })
                .collect(),
            refreshes: self
                .refreshes
                .iter()
                .map(|&(due, h)| RefreshView {
                    hit: self.hits[h].id.clone(),
                    due,
                })
                .collect(),
            next_invoke_order: self.next_invoke_order,
            next_effect_seq: self.next_seq,
            pending_effects: self.effects.iter().cloned().collect(),
        }
    }

    /// Rebuilds a retainer from a [`snapshot`](Self::snapshot). The result behaves exactly as
    /// the retainer the snapshot was taken from.
    pub fn restore(snapshot: Snapshot) -> Result<Self, RestoreError> {
        let Snapshot {
            session,
            config,
            now,
            templates,
            reservations,
            routes,
            hits,
            refreshes,
            next_invoke_order,
            next_effect_seq,
            pending_effects,
        } = snapshot;
        let bad = |msg: String| Err(RestoreError::Inconsistent(msg));
        let mut m = Retainer::new(session, config)?;
        m.now = now;
        m.next_invoke_order = next_invoke_order;
        m.next_seq = next_effect_seq;
        for t in templates {
            if m.template_index.contains_key(&t.template) {
                return bad(format!("template {} listed twice", t.template));
            }
            let pool_session = m.pool_session(&t.template);
            if t.pool.session != pool_session {
                return bad(format!(
                    "template {} has pool {}",
                    t.template, t.pool.session
                ));
            }
            if !t.pool.pending_effects.is_empty() {
                return bad(format!(
                    "template {}'s pool has effects pending",
                    t.template
                ));
            }
            let index = m.templates.len();
            let pool =
                Pavilion::restore_pool(t.pool.clone()).map_err(|source| RestoreError::Pool {
                    template: t.template.clone(),
                    source,
                })?;
            for a in t.pool.waiting.iter().chain(&t.pool.active) {
                m.assignments.insert(a.assignment.clone(), index);
            }
            for d in &t.pool.departed {
                m.assignments.insert(d.assignment.clone(), index);
            }
            m.template_index.insert(t.template.clone(), index);
            m.pool_index.insert(pool_session, index);
            m.templates.push(Template {
                id: t.template,
                spec: t.spec,
                target: t.pool_target,
                budget_cents: t.budget_cents,
                pool,
                invoked: BTreeMap::new(),
                made: BTreeSet::new(),
            });
        }
        for v in &reservations {
            if m.reservation_index.contains_key(&v.reservation) {
                return bad(format!("reservation {} listed twice", v.reservation));
            }
            let Some(&t) = m.template_index.get(&v.template) else {
                return bad(format!("reservation {} of unknown template", v.reservation));
            };
            let index = m.reservations.len();
            match (v.state, v.invoke_order) {
                (ReservationState::Made, None) => {
                    m.templates[t].made.insert(index);
                    m.starts.insert((v.start_at, index));
                    if !v.precruited
                        && let Some(at) = m.precruit_at(v.start_at)
                    {
                        m.precruits.insert((at, index));
                    }
                }
                (ReservationState::Invoked, Some(order)) if order < next_invoke_order => {
                    if m.templates[t].invoked.insert(order, index).is_some() {
                        return bad(format!("invoke order {order} given twice"));
                    }
                }
                (ReservationState::Finished, Some(order)) if order < next_invoke_order => {}
                (ReservationState::Cancelled, _) => {}
                (state, order) => {
                    return bad(format!(
                        "reservation {} is {state} with invoke order {order:?}",
                        v.reservation
                    ));
                }
            }
            if v.needed == 0 {
                return bad(format!("reservation {} needs nobody", v.reservation));
            }
            m.reservation_index.insert(v.reservation.clone(), index);
            m.reservations.push(Reservation {
                id: v.reservation.clone(),
                template: t,
                foreign_id: v.foreign_id.clone(),
                payload: v.payload.clone(),
                start_at: v.start_at,
                needed: v.needed,
                state: v.state,
                made_at: v.made_at,
                invoked_at: v.invoked_at,
                invoke_order: v.invoke_order,
                precruited: v.precruited,
                working: 0,
                submitted: 0,
                dropped: 0,
            });
        }
        for v in routes {
            let Some(&r) = m.reservation_index.get(&v.reservation) else {
                return bad(format!("route of {} to unknown reservation", v.assignment));
            };
            let t = m.reservations[r].template;
            if m.assignments.get(&v.assignment) != Some(&t) {
                return bad(format!("routed {} is not of the pool", v.assignment));
            }
            let res = &mut m.reservations[r];
            match v.status {
                RouteStatus::Working => res.working += 1,
                RouteStatus::Submitted => res.submitted += 1,
                RouteStatus::Dropped => res.dropped += 1,
            }
            if m.route_index
                .insert(v.assignment.clone(), m.routes.len())
                .is_some()
            {
                return bad(format!("{} routed twice", v.assignment));
            }
            m.routes.push(Route {
                assignment: v.assignment,
                worker: v.worker,
                reservation: r,
                routed_at: v.routed_at,
                status: v.status,
            });
        }
        for (r, v) in reservations.iter().enumerate() {
            let res = &m.reservations[r];
            if (res.working, res.submitted, res.dropped) != (v.working, v.submitted, v.dropped) {
                return bad(format!("reservation {}'s counts disagree", v.reservation));
            }
        }
        for h in hits {
            let Some(&t) = m.template_index.get(&h.template) else {
                return bad(format!("HIT {} of unknown template", h.hit));
            };
            if m.hit_index.insert(h.hit.clone(), m.hits.len()).is_some() {
                return bad(format!("HIT {} listed twice", h.hit));
            }
            m.hits.push(Hit {
                id: h.hit,
                template: t,
                posted_at: h.posted_at,
                expired: h.expired,
            });
        }
        for v in refreshes {
            let Some(&h) = m.hit_index.get(&v.hit) else {
                return bad(format!("refresh of unknown HIT {}", v.hit));
            };
            m.refreshes.push_back((v.due, h));
        }
        m.effects = pending_effects.into();
        if let Err(e) = m.check_invariants() {
            return bad(e);
        }
        Ok(m)
    }

    // ----- inputs ----------------------------------------------------------------------------

    /// Feeds one input at time `now`. On `Err` the retainer is exactly as before.
    pub fn handle(&mut self, now: Timestamp, input: Input) -> Result<(), Rejected> {
        if now < self.now {
            return Err(Rejected::ClockWentBack {
                now,
                last: self.now,
            });
        }
        match input {
            Input::RegisterTemplate {
                template,
                spec,
                pool,
                budget_cents,
            } => self.register(now, template, spec, pool, budget_cents)?,
            Input::MakeReservation {
                reservation,
                template,
                foreign_id,
                payload,
                start_at,
                needed,
            } => self.make(
                now,
                reservation,
                template,
                foreign_id,
                payload,
                start_at,
                needed,
            )?,
            Input::Invoke { reservation } => self.act(now, &reservation, Action::Invoke)?,
            Input::Cancel { reservation } => self.act(now, &reservation, Action::Cancel)?,
            Input::Finish { reservation } => self.act(now, &reservation, Action::Finish)?,
            Input::Unfinish { reservation } => self.act(now, &reservation, Action::Unfinish)?,
            Input::FinishAll { template } => self.finish_all(now, template.as_ref())?,
            Input::Arrive {
                worker,
                assignment,
                hit,
            } => self.arrive(now, worker, assignment, hit)?,
            Input::Ping { assignment, .. } | Input::Poll { assignment } => {
                let input = PoolInput::Heartbeat {
                    assignment: assignment.clone(),
                };
                self.worker_input(now, &assignment, input)?
            }
            Input::Submit {
                assignment,
                contributions,
            } => {
                let input = PoolInput::Submit {
                    assignment: assignment.clone(),
                    contributions,
                };
                self.worker_input(now, &assignment, input)?
            }
            Input::Contributed { assignment, count } => {
                let input = PoolInput::Contributed {
                    assignment: assignment.clone(),
                    count,
                };
                self.worker_input(now, &assignment, input)?
            }
            Input::Return { assignment } => {
                let input = PoolInput::Return {
                    assignment: assignment.clone(),
                };
                self.worker_input(now, &assignment, input)?
            }
            Input::Abandon { assignment } => {
                let input = PoolInput::Abandon {
                    assignment: assignment.clone(),
                };
                self.worker_input(now, &assignment, input)?
            }
            Input::HirePosted { hire, hit, slots } => self.hire_posted(now, hire, hit, slots)?,
            Input::HireFailed { hire, reason } => {
                let t = self.template_of_hire(&hire)?;
                let input = PoolInput::HireFailed {
                    hire: Some(hire),
                    reason,
                };
                self.feed(now, t, input)?;
                self.drain(t);
                self.settle(t);
            }
            Input::Tick => self.tick(now),
        }
        self.tidy();
        Ok(())
    }

    /// Lets time pass to `now`: the same as [`Input::Tick`]; a `now` earlier than the
    /// retainer's time is taken as the retainer's time.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        let now = now.max(self.now);
        // Tick is refused only for a clock that went back, which `max` rules out.
        let _ = self.handle(now, Input::Tick);
    }

    // ----- outputs ---------------------------------------------------------------------------

    /// The next effect to carry out, oldest first.
    pub fn poll_effect(&mut self) -> Option<Effect> {
        self.effects.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) must be called next, if ever.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        let pools = self.templates.iter().filter_map(|t| t.pool.poll_timeout());
        let own = [
            self.starts.first().map(|(at, _)| *at),
            self.precruits.first().map(|(at, _)| *at),
            self.refreshes.front().map(|(at, _)| *at),
        ];
        pools.chain(own.into_iter().flatten()).min()
    }

    // ----- handlers: validate everything, then mutate ----------------------------------------

    fn register(
        &mut self,
        now: Timestamp,
        template: TemplateId,
        spec: HitSpec,
        pool: Option<PoolTarget>,
        budget_cents: Option<i64>,
    ) -> Result<(), Rejected> {
        if self.template_index.contains_key(&template) {
            return Err(Rejected::DuplicateTemplate(template));
        }
        if let Err(source) = spec.validate() {
            return Err(Rejected::BadSpec { template, source });
        }
        let session = self.pool_session(&template);
        let config = self.config.pool_config_for(&spec, budget_cents);
        let mut machine = match Pavilion::new_pool(session.clone(), config) {
            Ok(m) => m,
            Err(source) => return Err(Rejected::BadPool { template, source }),
        };
        // A fresh pool in setup takes `Start`; its targets are 0, so it hires nobody yet.
        machine
            .handle(now, PoolInput::Start)
            .expect("a new pool starts");
        self.now = now;
        let index = self.templates.len();
        self.template_index.insert(template.clone(), index);
        self.pool_index.insert(session, index);
        self.templates.push(Template {
            id: template,
            spec,
            target: pool.unwrap_or(self.config.pool),
            budget_cents,
            pool: machine,
            invoked: BTreeMap::new(),
            made: BTreeSet::new(),
        });
        self.drain(index);
        self.settle(index);
        Ok(())
    }

    #[allow(clippy::too_many_arguments)] // the fields of `Input::MakeReservation`
    fn make(
        &mut self,
        now: Timestamp,
        id: ReservationId,
        template: TemplateId,
        foreign_id: String,
        payload: serde_json::Value,
        start_at: Timestamp,
        needed: u32,
    ) -> Result<(), Rejected> {
        let Some(&t) = self.template_index.get(&template) else {
            return Err(Rejected::UnknownTemplate(template));
        };
        if self.reservation_index.contains_key(&id) {
            return Err(Rejected::DuplicateReservation(id));
        }
        if needed == 0 {
            return Err(Rejected::ZeroNeeded(id));
        }
        self.now = now;
        let r = self.reservations.len();
        self.reservation_index.insert(id.clone(), r);
        self.reservations.push(Reservation {
            id,
            template: t,
            foreign_id,
            payload,
            start_at,
            needed,
            state: ReservationState::Made,
            made_at: now,
            invoked_at: None,
            invoke_order: None,
            precruited: false,
            working: 0,
            submitted: 0,
            dropped: 0,
        });
        self.templates[t].made.insert(r);
        self.starts.insert((start_at, r));
        if let Some(at) = self.precruit_at(start_at) {
            self.precruits.insert((at, r));
        }
        self.settle(t);
        Ok(())
    }

    fn act(
        &mut self,
        now: Timestamp,
        reservation: &ReservationId,
        action: Action,
    ) -> Result<(), Rejected> {
        let Some(&r) = self.reservation_index.get(reservation) else {
            return Err(Rejected::UnknownReservation(reservation.clone()));
        };
        let state = self.reservations[r].state;
        let allowed = match action {
            Action::Invoke => state == ReservationState::Made,
            Action::Cancel => state != ReservationState::Cancelled,
            Action::Finish => state == ReservationState::Invoked,
            Action::Unfinish => state == ReservationState::Finished,
        };
        if !allowed {
            return Err(Rejected::NotAllowed {
                reservation: reservation.clone(),
                action,
                state,
            });
        }
        self.now = now;
        match action {
            Action::Invoke => self.invoke(r),
            Action::Cancel => self.cancel(r),
            Action::Finish => self.finish(r),
            Action::Unfinish => {
                let res = &mut self.reservations[r];
                res.state = ReservationState::Invoked;
                let order = res
                    .invoke_order
                    .expect("a finished reservation was invoked");
                self.templates[res.template].invoked.insert(order, r);
            }
        }
        self.settle(self.reservations[r].template);
        Ok(())
    }

    fn finish_all(
        &mut self,
        now: Timestamp,
        template: Option<&TemplateId>,
    ) -> Result<(), Rejected> {
        let only = match template {
            None => None,
            Some(id) => match self.template_index.get(id) {
                Some(&t) => Some(t),
                None => return Err(Rejected::UnknownTemplate(id.clone())),
            },
        };
        self.now = now;
        for t in 0..self.templates.len() {
            if only.is_some_and(|o| o != t) {
                continue;
            }
            let invoked: Vec<usize> = self.templates[t].invoked.values().copied().collect();
            for r in invoked {
                self.finish(r);
            }
            self.settle(t);
        }
        Ok(())
    }

    fn arrive(
        &mut self,
        now: Timestamp,
        worker: WorkerId,
        assignment: AssignmentId,
        hit: HitId,
    ) -> Result<(), Rejected> {
        // A known assignment goes to the pool it arrived in (a reload; or another pool's HIT,
        // which that pool refuses as unknown).
        let t = match self.assignments.get(&assignment) {
            Some(&t) => t,
            None => match self.hit_index.get(&hit) {
                Some(&h) => self.hits[h].template,
                None => return Err(Rejected::UnknownHit(hit)),
            },
        };
        let input = PoolInput::Arrive {
            worker,
            assignment: assignment.clone(),
            hit,
        };
        self.feed(now, t, input)?;
        self.assignments.insert(assignment, t);
        self.drain(t);
        self.settle(t);
        Ok(())
    }

    /// An input about one worker, for the pool they arrived in.
    fn worker_input(
        &mut self,
        now: Timestamp,
        assignment: &AssignmentId,
        input: PoolInput,
    ) -> Result<(), Rejected> {
        let Some(&t) = self.assignments.get(assignment) else {
            return Err(Rejected::UnknownAssignment(assignment.clone()));
        };
        self.feed(now, t, input)?;
        self.note_departure(t, assignment);
        self.drain(t);
        self.settle(t);
        Ok(())
    }

    fn hire_posted(
        &mut self,
        now: Timestamp,
        hire: EffectId,
        hit: HitId,
        slots: u32,
    ) -> Result<(), Rejected> {
        let t = self.template_of_hire(&hire)?;
        let known = self.hit_index.get(&hit).copied();
        if let Some(h) = known
            && self.hits[h].template != t
        {
            return Err(Rejected::HitOfAnotherTemplate {
                hit,
                template: self.templates[self.hits[h].template].id.clone(),
            });
        }
        let input = PoolInput::HirePosted {
            hire: Some(hire),
            hit: hit.clone(),
            slots,
        };
        self.feed(now, t, input)?;
        if known.is_none() {
            let h = self.hits.len();
            self.hit_index.insert(hit.clone(), h);
            self.hits.push(Hit {
                id: hit,
                template: t,
                posted_at: now,
                expired: false,
            });
            if let Some(age) = self.config.refresh_after_ms {
                self.refreshes.push_back((now.plus_millis(age), h));
            }
        }
        self.drain(t);
        self.settle(t);
        Ok(())
    }

    fn tick(&mut self, now: Timestamp) {
        self.now = now;
        // 1. The pools' own deadlines: heartbeats (routed workers who fall silent free their
        //    places) and hiring pauses.
        for t in 0..self.templates.len() {
            self.feed(now, t, PoolInput::Tick)
                .expect("a pool takes a tick at the retainer's time");
            self.drain(t);
        }
        // 2. Reservations due start, in (start_at, made) order.
        while let Some(&(at, r)) = self.starts.first() {
            if at > now {
                break;
            }
            self.invoke(r);
        }
        // 3. Route and re-target every pool.
        for t in 0..self.templates.len() {
            self.settle(t);
        }
        // 4. Precruitment alerts to whoever waits now.
        while let Some(&(at, r)) = self.precruits.first() {
            if at > now {
                break;
            }
            self.precruits.remove(&(at, r));
            self.precruit(r);
        }
        // 5. HIT refreshes.
        let Some(age) = self.config.refresh_after_ms else {
            return;
        };
        while let Some(&(due, h)) = self.refreshes.front() {
            if due > now {
                break;
            }
            self.refreshes.pop_front();
            if self.hits[h].expired {
                continue;
            }
            let t = self.hits[h].template;
            let hit = self.hits[h].id.clone();
            if open_slots(&self.templates[t].pool, &hit) > 0 {
                self.feed(now, t, PoolInput::ExpireHit { hit })
                    .expect("a pool closes a HIT it posted");
                self.drain(t);
            } else {
                // Nothing of it is listed; look again later (a slot may re-open).
                self.refreshes.push_back((now.plus_millis(age), h));
            }
        }
    }

    // ----- reservation transitions (validated by the callers) ---------------------------------

    fn invoke(&mut self, r: usize) {
        let now = self.now;
        let res = &mut self.reservations[r];
        res.state = ReservationState::Invoked;
        res.invoked_at = Some(now);
        res.precruited = true;
        let order = self.next_invoke_order;
        self.next_invoke_order += 1;
        res.invoke_order = Some(order);
        let (t, start_at) = (res.template, res.start_at);
        self.starts.remove(&(start_at, r));
        if let Some(at) = self.precruit_at(start_at) {
            self.precruits.remove(&(at, r));
        }
        let template = &mut self.templates[t];
        template.made.remove(&r);
        template.invoked.insert(order, r);
    }

    fn finish(&mut self, r: usize) {
        let res = &mut self.reservations[r];
        res.state = ReservationState::Finished;
        let order = res
            .invoke_order
            .expect("an invoked reservation has an invoke order");
        self.templates[res.template].invoked.remove(&order);
    }

    fn cancel(&mut self, r: usize) {
        let res = &mut self.reservations[r];
        let was = res.state;
        res.state = ReservationState::Cancelled;
        res.precruited = true;
        let (t, start_at, order) = (res.template, res.start_at, res.invoke_order);
        match was {
            ReservationState::Made => {
                self.starts.remove(&(start_at, r));
                if let Some(at) = self.precruit_at(start_at) {
                    self.precruits.remove(&(at, r));
                }
                self.templates[t].made.remove(&r);
            }
            ReservationState::Invoked => {
                let order = order.expect("an invoked reservation has an invoke order");
                self.templates[t].invoked.remove(&order);
            }
            ReservationState::Finished | ReservationState::Cancelled => {}
        }
        let workers: Vec<WorkerRef> = self
            .routes
            .iter()
            .filter(|route| route.reservation == r && route.status == RouteStatus::Working)
            .map(|route| WorkerRef {
                worker: route.worker.clone(),
                assignment: route.assignment.clone(),
            })
            .collect();
        if !workers.is_empty() {
            self.notify_workers(r, WorkerNotice::Cancelled, workers);
        }
    }

    fn precruit(&mut self, r: usize) {
        self.reservations[r].precruited = true;
        let t = self.reservations[r].template;
        let workers: Vec<WorkerRef> = self.templates[t]
            .pool
            .snapshot()
            .waiting
            .into_iter()
            .map(|s| WorkerRef {
                worker: s.worker,
                assignment: s.assignment,
            })
            .collect();
        if !workers.is_empty() {
            self.notify_workers(r, WorkerNotice::Precruit, workers);
        }
    }

    fn notify_workers(&mut self, r: usize, reason: WorkerNotice, workers: Vec<WorkerRef>) {
        let res = &self.reservations[r];
        let kind = EffectKind::NotifyWorkers {
            template: self.templates[res.template].id.clone(),
            reservation: res.id.clone(),
            reason,
            start_at: res.start_at,
            workers,
        };
        let id = EffectId::new(self.session.clone(), self.next_seq);
        self.next_seq += 1;
        self.effects.push_back(Effect {
            at: self.now,
            id,
            kind,
        });
    }

    // ----- the pools -------------------------------------------------------------------------

    /// Feeds an input to template `t`'s pool; on success the retainer's time is `now`.
    fn feed(&mut self, now: Timestamp, t: usize, input: PoolInput) -> Result<(), Rejected> {
        let template = &mut self.templates[t];
        template
            .pool
            .handle(now, input)
            .map_err(|source| Rejected::Pool {
                template: template.id.clone(),
                source,
            })?;
        self.now = now;
        Ok(())
    }

    /// Moves the pool's effects to the retainer's queue: a promotion becomes a route, the
    /// rest pass on as pool effects.
    fn drain(&mut self, t: usize) {
        while let Some(effect) = self.templates[t].pool.poll_effect() {
            let pavilion::Effect { at, id, kind } = effect;
            match kind {
                pavilion::EffectKind::Promote { worker, assignment } => {
                    self.route(t, worker, assignment, id, at);
                    continue;
                }
                pavilion::EffectKind::TimedOut { ref assignment, .. }
                | pavilion::EffectKind::Release { ref assignment, .. } => {
                    self.drop_route(assignment);
                }
                pavilion::EffectKind::ExpireHits { ref hits } => {
                    for hit in hits {
                        if let Some(&h) = self.hit_index.get(hit) {
                            self.hits[h].expired = true;
                        }
                    }
                }
                _ => {}
            }
            self.effects.push_back(Effect {
                at,
                id,
                kind: EffectKind::Pool {
                    template: self.templates[t].id.clone(),
                    effect: kind,
                },
            });
        }
    }

    /// Routes a worker the pool just promoted to the oldest invoked reservation that needs
    /// one.
    fn route(
        &mut self,
        t: usize,
        worker: WorkerId,
        assignment: AssignmentId,
        id: EffectId,
        at: Timestamp,
    ) {
        // Invariant: the pool promotes only into the room `settle` opened, which is the unmet
        // need of the invoked reservations (a leaving worker takes their seat along).
        let r = self.templates[t]
            .invoked
            .values()
            .copied()
            .find(|&r| self.reservations[r].unmet() > 0)
            .expect("a pool promotes only when an invoked reservation needs a worker");
        let res = &mut self.reservations[r];
        res.working += 1;
        let kind = EffectKind::Route {
            template: self.templates[t].id.clone(),
            reservation: res.id.clone(),
            worker: worker.clone(),
            assignment: assignment.clone(),
            task: res.foreign_id.clone(),
            payload: res.payload.clone(),
        };
        self.route_index
            .insert(assignment.clone(), self.routes.len());
        self.routes.push(Route {
            assignment,
            worker,
            reservation: r,
            routed_at: at,
            status: RouteStatus::Working,
        });
        self.effects.push_back(Effect { at, id, kind });
    }

    /// A routed worker left without submitting: their place is free again.
    fn drop_route(&mut self, assignment: &AssignmentId) {
        if let Some(&i) = self.route_index.get(assignment)
            && self.routes[i].status == RouteStatus::Working
        {
            self.routes[i].status = RouteStatus::Dropped;
            let res = &mut self.reservations[self.routes[i].reservation];
            res.working -= 1;
            res.dropped += 1;
        }
    }

    /// After an accepted worker input: if a routed worker left, count how.
    fn note_departure(&mut self, t: usize, assignment: &AssignmentId) {
        let Some(&i) = self.route_index.get(assignment) else {
            return;
        };
        if self.routes[i].status != RouteStatus::Working {
            return;
        }
        match self.templates[t].pool.seat_of(assignment) {
            Some(SeatState::Left(Departure::Submitted)) => {
                self.routes[i].status = RouteStatus::Submitted;
                let res = &mut self.reservations[self.routes[i].reservation];
                res.working -= 1;
                res.submitted += 1;
            }
            Some(SeatState::Left(_)) => self.drop_route(assignment),
            _ => {}
        }
    }

    /// The targets template `t`'s pool must have: `max_active` = routed workers present +
    /// unmet need of invoked reservations; `max_waiting` = its pool target.
    fn targets_of(&self, t: usize) -> Targets {
        let template = &self.templates[t];
        let unmet = template
            .invoked
            .values()
            .fold(0u32, |n, &r| n.saturating_add(self.reservations[r].unmet()));
        let waiting = match template.target {
            PoolTarget::UnmetNeed => template
                .made
                .iter()
                .fold(0u32, |n, &r| n.saturating_add(self.reservations[r].needed)),
            PoolTarget::Fixed(n) => {
                let live = !template.made.is_empty() || !template.invoked.is_empty();
                if live { n } else { 0 }
            }
        };
        Targets {
            min_active: 0,
            max_active: template.pool.active_len().saturating_add(unmet),
            min_waiting: 0,
            max_waiting: waiting,
        }
    }

    /// Brings template `t`'s pool in step with its reservations: sets its targets (the pool
    /// promotes into new active room, which routes; releases waiting workers above a lowered
    /// pool target; hires the deficit), then expires HITs whose open slots are all surplus.
    fn settle(&mut self, t: usize) {
        loop {
            let want = self.targets_of(t);
            if self.templates[t].pool.config().targets() == want {
                break;
            }
            // Pool targets always validate (minimums 0, `max_active` 0 allowed in a pool) and
            // a pool never stops; the time is the retainer's, which no pool is ahead of.
            self.feed(self.now, t, PoolInput::SetTargets(want))
                .expect("a pool takes its targets");
            self.drain(t);
        }
        self.expire_surplus(t);
    }

    /// Expires HITs whose open slots the pool no longer needs (after a cancel or finish, or
    /// hires answered after the need went away), oldest first, whole HITs only: a HIT some of
    /// whose slots are still wanted stays.
    fn expire_surplus(&mut self, t: usize) {
        let pool = &self.templates[t].pool;
        let counted = pool.present() + pool.open_slots() + pool.hires_in_flight();
        let mut surplus = counted.saturating_sub(pool.config().targets().capacity());
        if surplus == 0 || pool.open_slots() == 0 {
            return;
        }
        let hits = pool.snapshot().hits;
        for h in hits {
            if h.expired || h.open_slots == 0 || h.open_slots > surplus {
                continue;
            }
            surplus -= h.open_slots;
            self.feed(self.now, t, PoolInput::ExpireHit { hit: h.hit })
                .expect("a pool closes a HIT it posted");
            self.drain(t);
            if surplus == 0 {
                break;
            }
        }
    }

    // ----- helpers -----------------------------------------------------------------------------

    fn pool_session(&self, template: &TemplateId) -> SessionId {
        SessionId::new(format!("{}/{}", self.session, template))
    }

    fn template_of_hire(&self, hire: &EffectId) -> Result<usize, Rejected> {
        self.pool_index
            .get(&hire.session)
            .copied()
            .ok_or_else(|| Rejected::UnknownHire(hire.clone()))
    }

    fn precruit_at(&self, start_at: Timestamp) -> Option<Timestamp> {
        self.config
            .precruit_ms
            .map(|lead| Timestamp::from_millis(start_at.as_millis().saturating_sub(lead)))
    }

    fn reservation_view(&self, r: usize) -> ReservationView {
        let res = &self.reservations[r];
        ReservationView {
            reservation: res.id.clone(),
            template: self.templates[res.template].id.clone(),
            foreign_id: res.foreign_id.clone(),
            payload: res.payload.clone(),
            start_at: res.start_at,
            needed: res.needed,
            state: res.state,
            made_at: res.made_at,
            invoked_at: res.invoked_at,
            invoke_order: res.invoke_order,
            precruited: res.precruited,
            working: res.working,
            submitted: res.submitted,
            dropped: res.dropped,
        }
    }

    /// Drops refreshes of HITs already expired from the front, so that `poll_timeout` is
    /// exact.
    fn tidy(&mut self) {
        while let Some(&(_, h)) = self.refreshes.front() {
            if !self.hits[h].expired {
                break;
            }
            self.refreshes.pop_front();
        }
    }

    /// Checks the retainer's invariants; for tests and fuzzers. Returns the first violation.
    ///
    /// Holds after every input: every pool's own invariants; every pool's targets are its
    /// reservations' (`max_active` = routed present + unmet need of invoked reservations,
    /// `max_waiting` = the pool target); the pool's active queue is exactly the routed workers
    /// still working; no reservation has more than `needed` workers working or submitted; only
    /// reservations that were invoked have routes; the bookkeeping agrees with itself.
    pub fn check_invariants(&self) -> Result<(), String> {
        for (t, template) in self.templates.iter().enumerate() {
            template
                .pool
                .check_invariants()
                .map_err(|e| format!("pool of {}: {e}", template.id))?;
            let want = self.targets_of(t);
            let has = template.pool.config().targets();
            if has != want {
                return Err(format!(
                    "pool of {} has targets {has:?}, its reservations want {want:?}",
                    template.id
                ));
            }
            let working: u32 = self
                .reservations
                .iter()
                .filter(|r| r.template == t)
                .map(|r| r.working)
                .sum();
            if working != template.pool.active_len() {
                return Err(format!(
                    "pool of {} has {} active but {working} routed workers work",
                    template.id,
                    template.pool.active_len()
                ));
            }
            for (&order, &r) in &template.invoked {
                let res = &self.reservations[r];
                if res.template != t
                    || res.state != ReservationState::Invoked
                    || res.invoke_order != Some(order)
                {
                    return Err(format!("{} is listed invoked but is not", res.id));
                }
            }
            for &r in &template.made {
                let res = &self.reservations[r];
                if res.template != t || res.state != ReservationState::Made {
                    return Err(format!("{} is listed made but is not", res.id));
                }
            }
        }
        let mut counts = vec![(0u32, 0u32, 0u32); self.reservations.len()];
        for route in &self.routes {
            let c = &mut counts[route.reservation];
            match route.status {
                RouteStatus::Working => c.0 += 1,
                RouteStatus::Submitted => c.1 += 1,
                RouteStatus::Dropped => c.2 += 1,
            }
            let t = self.reservations[route.reservation].template;
            let seat = self.templates[t].pool.seat_of(&route.assignment);
            let working = route.status == RouteStatus::Working;
            if working != (seat == Some(SeatState::Active)) {
                return Err(format!(
                    "route of {} is {:?} but its seat is {seat:?}",
                    route.assignment, route.status
                ));
            }
            if self
                .route_index
                .get(&route.assignment)
                .map(|&i| &self.routes[i].assignment)
                != Some(&route.assignment)
            {
                return Err(format!("route of {} is not indexed", route.assignment));
            }
        }
        for (r, res) in self.reservations.iter().enumerate() {
            if counts[r] != (res.working, res.submitted, res.dropped) {
                return Err(format!("{}'s route counts are off", res.id));
            }
            if res.working + res.submitted > res.needed {
                return Err(format!(
                    "{} has {} working and {} submitted but needs {}",
                    res.id, res.working, res.submitted, res.needed
                ));
            }
            if res.invoke_order.is_none() && counts[r] != (0, 0, 0) {
                return Err(format!("{} was never invoked but has routes", res.id));
            }
            let made = res.state == ReservationState::Made;
            if made != self.starts.contains(&(res.start_at, r)) {
                return Err(format!("{}'s auto-invocation is off", res.id));
            }
        }
        if self
            .refreshes
            .iter()
            .zip(self.refreshes.iter().skip(1))
            .any(|(a, b)| a.0 > b.0)
        {
            return Err("refreshes are out of order".to_owned());
        }
        Ok(())
    }
}

/// The open slots of one HIT of a pool.
fn open_slots(pool: &Pavilion, hit: &HitId) -> u32 {
    pool.snapshot()
        .hits
        .iter()
        .find(|h| &h.hit == hit)
        .map_or(0, |h| if h.expired { 0 } else { h.open_slots })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pavilion::{EffectKind as PK, PavilionConfig};

    fn pool_config() -> PavilionConfig {
        RetainerConfig::default().pool_config(None, 10, Default::default())
    }

    fn drain(p: &mut Pavilion) -> Vec<PK> {
        std::iter::from_fn(|| p.poll_effect())
            .map(|e| e.kind)
            .collect()
    }

    fn targets(max_active: u32, max_waiting: u32) -> PoolInput {
        PoolInput::SetTargets(Targets {
            min_active: 0,
            max_active,
            min_waiting: 0,
            max_waiting,
        })
    }

    /// A pool with W0 and W1 waiting (H posted with 2 slots).
    fn pool_of_two() -> Pavilion {
        let mut p = Pavilion::new_pool(SessionId::new("s/t"), pool_config()).unwrap();
        let t = |ms| Timestamp::from_millis(ms);
        p.handle(t(0), PoolInput::Start).unwrap();
        p.handle(t(0), targets(0, 2)).unwrap();
        let hire = EffectId::new(SessionId::new("s/t"), 2);
        p.handle(
            t(1),
            PoolInput::HirePosted {
                hire: Some(hire),
                hit: HitId::new("H"),
                slots: 2,
            },
        )
        .unwrap();
        for i in 0..2 {
            p.handle(
                t(2),
                PoolInput::Arrive {
                    worker: WorkerId::new(format!("W{i}")),
                    assignment: AssignmentId::new(format!("A{i}")),
                    hit: HitId::new("H"),
                },
            )
            .unwrap();
        }
        drain(&mut p);
        p
    }

    #[test]
    fn a_pool_may_have_no_active_room_and_a_plain_pavilion_may_not() {
        assert!(Pavilion::new(SessionId::new("s"), pool_config()).is_err());
        let p = pool_of_two();
        assert_eq!((p.waiting_len(), p.active_len()), (2, 0));
        assert_eq!(p.config().max_active, 0);
    }

    #[test]
    fn a_pool_promotes_into_new_room_before_releasing_above_max_waiting() {
        let mut p = pool_of_two();
        // Room for one, and nobody to wait: W0 moves up, W1 is released, nothing is hired.
        p.handle(Timestamp::from_millis(3), targets(1, 0)).unwrap();
        let kinds = drain(&mut p);
        assert!(matches!(&kinds[0], PK::Release { assignment, .. } if assignment.as_str() == "A1"));
        assert!(matches!(&kinds[1], PK::Pay { .. }));
        assert!(matches!(&kinds[2], PK::Promote { assignment, .. } if assignment.as_str() == "A0"));
        assert_eq!(kinds.len(), 3);
        assert_eq!((p.waiting_len(), p.active_len()), (0, 1));
    }

    #[test]
    fn a_pools_active_seat_leaves_with_its_worker() {
        let mut p = pool_of_two();
        p.handle(Timestamp::from_millis(3), targets(1, 1)).unwrap();
        drain(&mut p);
        let a0 = AssignmentId::new("A0");
        p.handle(
            Timestamp::from_millis(4),
            PoolInput::Submit {
                assignment: a0,
                contributions: 0,
            },
        )
        .unwrap();
        // W1 stays waiting: the seat went with W0; nobody is hired for it.
        let kinds = drain(&mut p);
        assert!(
            kinds.iter().all(|k| matches!(k, PK::Pay { .. })),
            "{kinds:?}"
        );
        assert_eq!(
            (p.config().max_active, p.waiting_len(), p.active_len()),
            (0, 1, 0)
        );
        p.check_invariants().unwrap();
        // And it comes back as a pool.
        let back = Pavilion::restore_pool(p.snapshot()).unwrap();
        assert_eq!(back.snapshot(), p.snapshot());
        assert!(Pavilion::restore(p.snapshot()).is_err());
    }
}
