//! Configuration of the Pavilion machine.

use serde::{Deserialize, Serialize};

use crate::model::{Currency, Money};

/// How large the two queues should be. Changed at run time by [`Input::SetTargets`].
///
/// The machine hires until `present + open slots + hires in flight` reaches
/// `max_active + max_waiting`: the active queue full and the waiting queue full behind it.
/// The minimums define when the task begins (see [`StartCondition::Auto`]).
///
/// [`Input::SetTargets`]: super::Input::SetTargets
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Targets {
    /// Workers the task needs to begin (with `min_waiting`, under the default start condition).
    pub min_active: u32,
    /// Most workers on the task at once.
    pub max_active: u32,
    /// Workers that must stand by before the task begins (default start condition).
    pub min_waiting: u32,
    /// Most workers standing by once the task runs.
    pub max_waiting: u32,
}

impl Targets {
    /// Every seat there is: `max_active + max_waiting`. Hiring fills up to this.
    pub fn capacity(&self) -> u32 {
        self.max_active.saturating_add(self.max_waiting)
    }

    /// Checks that the targets make sense.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.check(false)
    }

    /// [`validate`](Self::validate), except that `max_active` may be 0 if `idle_ok` (a
    /// retainer's pool with nothing to route, see `Pavilion::new_pool`).
    pub(crate) fn check(&self, idle_ok: bool) -> Result<(), ConfigError> {
        if self.max_active == 0 && !idle_ok {
            return Err(ConfigError::ZeroMaxActive);
        }
        if self.max_active < self.min_active {
            return Err(ConfigError::MaxBelowMin {
                queue: "active",
                min: self.min_active,
                max: self.max_active,
            });
        }
        if self.max_waiting < self.min_waiting {
            return Err(ConfigError::MaxBelowMin {
                queue: "waiting",
                min: self.min_waiting,
                max: self.max_waiting,
            });
        }
        Ok(())
    }
}

/// When the task begins (workers start moving from waiting to active) once the operator has
/// started the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StartCondition {
    /// When at least `min_active + min_waiting` workers are present (the seed's rule, counted
    /// after the arrival is seated: the seed counted before and began one worker late).
    #[default]
    Auto,
    /// When at least this many workers are present.
    Present(u32),
    /// Only when the operator migrates workers ([`Input::Migrate`](super::Input::Migrate)).
    Manual,
}

/// Everything the Pavilion machine needs to know up front. Field names are the replay
/// format's config keys (see the crate README).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PavilionConfig {
    /// See [`Targets::min_active`].
    pub min_active: u32,
    /// See [`Targets::max_active`].
    pub max_active: u32,
    /// See [`Targets::min_waiting`].
    pub min_waiting: u32,
    /// See [`Targets::max_waiting`].
    pub max_waiting: u32,
    /// When the task begins.
    pub start: StartCondition,
    /// A present worker silent for this long has abandoned.
    pub heartbeat_timeout_ms: u64,
    /// Whether the platform re-opens the slot of a returned or abandoned assignment (MTurk and
    /// Toloka do). If it does, such a departure needs no new hire.
    pub returned_slots_reopen: bool,
    /// After a hire fails, wait this long before hiring again.
    pub hire_retry_ms: u64,
    /// The most the session may commit, in minor units; `None` for no cap.
    pub budget_cents: Option<i64>,
    /// The currency of the budget and every rate.
    pub currency: Currency,
    /// Base pay per assignment that submits or is released (the HIT reward).
    pub base_pay_cents: i64,
    /// Bonus per minute spent in the waiting queue.
    pub waiting_cents_per_minute: i64,
    /// Bonus per minute spent in the active queue.
    pub active_cents_per_minute: i64,
    /// Bonus per contribution, for the contributions the machine counts (see
    /// [`contributions_from_host`](Self::contributions_from_host)); a page's own number is
    /// never taken beyond [`max_contributions_per_assignment`](Self::max_contributions_per_assignment).
    pub per_contribution_cents: i64,
    /// The most contributions one assignment is paid for, whoever counted them. Required when
    /// `per_contribution_cents` is positive and the host does not count
    /// ([`contributions_from_host`](Self::contributions_from_host) false): the count then comes
    /// from the worker's submission, which a page decides. `None`: no cap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_contributions_per_assignment: Option<u32>,
    /// Contributions are counted by the host ([`Input::Contributed`]); the number a submission
    /// reports is ignored. When false, an assignment the host counted is paid its count, and
    /// one it did not is paid what its submission reports, up to
    /// [`max_contributions_per_assignment`](Self::max_contributions_per_assignment).
    ///
    /// [`Input::Contributed`]: super::Input::Contributed
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub contributions_from_host: bool,
    /// A post may answer with a HIT expired earlier, and re-opens it (the platform's
    /// [`Capabilities::posts_reopen_expired_hits`]: Prolific keeps one study for every hire).
    /// When false, slots posted onto an expired HIT never count as open.
    ///
    /// [`Capabilities::posts_reopen_expired_hits`]: crate::platform::Capabilities::posts_reopen_expired_hits
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub posts_reopen_hits: bool,
}

impl Default for PavilionConfig {
    fn default() -> Self {
        Self {
            min_active: 1,
            max_active: 3,
            min_waiting: 1,
            max_waiting: 2,
            start: StartCondition::Auto,
            heartbeat_timeout_ms: 30_000,
            returned_slots_reopen: true,
            posts_reopen_hits: false,
            hire_retry_ms: 60_000,
            budget_cents: None,
            currency: Currency::USD,
            base_pay_cents: 0,
            waiting_cents_per_minute: 0,
            active_cents_per_minute: 0,
            per_contribution_cents: 0,
            max_contributions_per_assignment: None,
            contributions_from_host: false,
        }
    }
}

impl PavilionConfig {
    /// The queue targets.
    pub fn targets(&self) -> Targets {
        Targets {
            min_active: self.min_active,
            max_active: self.max_active,
            min_waiting: self.min_waiting,
            max_waiting: self.max_waiting,
        }
    }

    pub(crate) fn set_targets(&mut self, t: Targets) {
        self.min_active = t.min_active;
        self.max_active = t.max_active;
        self.min_waiting = t.min_waiting;
        self.max_waiting = t.max_waiting;
    }

    /// How many present workers begin the task, or `None` if only the operator begins it.
    pub fn start_threshold(&self) -> Option<u32> {
        match self.start {
            StartCondition::Auto => Some(self.min_active.saturating_add(self.min_waiting)),
            StartCondition::Present(n) => Some(n),
            StartCondition::Manual => None,
        }
    }

    /// The budget as money, if capped.
    pub fn budget(&self) -> Option<Money> {
        self.budget_cents.map(|c| Money::new(c, self.currency))
    }

    /// Checks the whole configuration.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.check(false)
    }

    /// [`validate`](Self::validate), except that `max_active` may be 0 if `idle_ok`.
    pub(crate) fn check(&self, idle_ok: bool) -> Result<(), ConfigError> {
        let targets = self.targets();
        targets.check(idle_ok)?;
        if let Some(need) = self.start_threshold()
            && need > targets.capacity()
        {
            return Err(ConfigError::StartUnreachable {
                need,
                capacity: targets.capacity(),
            });
        }
        if self.heartbeat_timeout_ms == 0 {
            return Err(ConfigError::Zero("heartbeat_timeout_ms"));
        }
        if self.hire_retry_ms == 0 {
            return Err(ConfigError::Zero("hire_retry_ms"));
        }
        if self.budget_cents.is_some_and(|b| b < 0) {
            return Err(ConfigError::Negative("budget_cents"));
        }
        for (name, v) in [
            ("base_pay_cents", self.base_pay_cents),
            ("waiting_cents_per_minute", self.waiting_cents_per_minute),
            ("active_cents_per_minute", self.active_cents_per_minute),
            ("per_contribution_cents", self.per_contribution_cents),
        ] {
            if v < 0 {
                return Err(ConfigError::Negative(name));
            }
        }
        if self.per_contribution_cents > 0
            && !self.contributions_from_host
            && self.max_contributions_per_assignment.is_none()
        {
            return Err(ConfigError::UncappedContributions);
        }
        Ok(())
    }

    /// How many contributions an assignment is paid for: the host's count if it gave one
    /// (`confirmed`), else — unless only the host counts — the number its submission reported;
    /// either way at most [`max_contributions_per_assignment`](Self::max_contributions_per_assignment).
    pub fn payable_contributions(&self, confirmed: Option<u32>, reported: u32) -> u32 {
        let n = match confirmed {
            Some(n) => n,
            None if self.contributions_from_host => 0,
            None => reported,
        };
        self.max_contributions_per_assignment
            .map_or(n, |max| n.min(max))
    }
}

/// A configuration or a set of targets that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// `max_active` is zero: there would be no task to keep full.
    #[error("max_active must be at least 1")]
    ZeroMaxActive,
    /// A queue's maximum is below its minimum.
    #[error("max_{queue} ({max}) is below min_{queue} ({min})")]
    MaxBelowMin {
        /// `active` or `waiting`.
        queue: &'static str,
        /// The minimum given.
        min: u32,
        /// The maximum given.
        max: u32,
    },
    /// The start condition needs more workers than there are seats, so the task would never begin.
    #[error("the task needs {need} workers present to begin but there are only {capacity} seats")]
    StartUnreachable {
        /// Workers needed.
        need: u32,
        /// `max_active + max_waiting`.
        capacity: u32,
    },
    /// A duration that must be positive is zero.
    #[error("{0} must be greater than zero")]
    Zero(&'static str),
    /// An amount of money that must not be negative is.
    #[error("{0} must not be negative")]
    Negative(&'static str),
    /// Contributions are paid, counted from what a worker's page reports, with no cap: one
    /// submission could claim the whole budget.
    #[error(
        "per_contribution_cents is paid on the count a worker's page reports: set \
         max_contributions_per_assignment, or contributions_from_host = true and report counts \
         with the contributed input"
    )]
    UncappedContributions,
}
