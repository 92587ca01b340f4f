//! Configuration of the retainer machine.

use serde::{Deserialize, Serialize};

use crate::model::HitSpec;
use crate::pavilion::{ConfigError, PavilionConfig, StartCondition};

/// How many workers a template's pool keeps waiting: its pool's `max_waiting`.
///
/// Serialized as `"unmet_need"` or `{"fixed": 4}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PoolTarget {
    /// As many as the template's made (not yet invoked) reservations need together. An
    /// invoked reservation's unmet need is not counted here: it is routing demand, the pool's
    /// active room, which the pool hires for already.
    #[default]
    UnmetNeed,
    /// This many while the template has a live (made or invoked) reservation, none otherwise.
    /// Size it with [`smallest_pool`](super::smallest_pool) for an allowed miss probability.
    Fixed(u32),
}

/// Everything the retainer needs to know up front. Each template's pool is a
/// [`Pavilion`](crate::pavilion::Pavilion) configured from these fields, the template's
/// [`HitSpec`] (its reward is the base pay) and the budget given when it was registered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetainerConfig {
    /// The pool size of templates registered without their own.
    pub pool: PoolTarget,
    /// A present worker whose page has not pinged for this long is gone.
    pub heartbeat_timeout_ms: u64,
    /// Whether the platform re-opens the slot of a returned or abandoned assignment.
    pub returned_slots_reopen: bool,
    /// After a hire fails, wait this long before hiring again (per template).
    pub hire_retry_ms: u64,
    /// Repost a HIT that still has open slots once it is this old: close it and hire its open
    /// slots anew, so the work stays near the top of the platform's listing (the seed systems
    /// used 2 s to 3 min; LegionTools 200 s). `None`: never.
    pub refresh_after_ms: Option<u64>,
    /// Alert the pool's waiting workers this long before a reservation's `start_at`
    /// (precruitment). `None`: never.
    pub precruit_ms: Option<u64>,
    /// Bonus per minute a worker waits in a pool.
    pub waiting_cents_per_minute: i64,
    /// Bonus per minute a worker spends routed to a task.
    pub active_cents_per_minute: i64,
    /// Bonus per contribution: as [`PavilionConfig::per_contribution_cents`], on the count
    /// [`contributions_from_host`](Self::contributions_from_host) and
    /// [`max_contributions_per_assignment`](Self::max_contributions_per_assignment) decide.
    pub per_contribution_cents: i64,
    /// The most contributions one assignment is paid for (see
    /// [`PavilionConfig::max_contributions_per_assignment`]); required when contributions are
    /// paid and only pages count them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_contributions_per_assignment: Option<u32>,
    /// Contributions are counted by the host ([`Input::Contributed`](super::Input::Contributed)),
    /// never by a submission (see [`PavilionConfig::contributions_from_host`]).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub contributions_from_host: bool,
}

impl Default for RetainerConfig {
    fn default() -> Self {
        Self {
            pool: PoolTarget::UnmetNeed,
            heartbeat_timeout_ms: 30_000,
            returned_slots_reopen: true,
            hire_retry_ms: 60_000,
            refresh_after_ms: None,
            precruit_ms: None,
            waiting_cents_per_minute: 0,
            active_cents_per_minute: 0,
            per_contribution_cents: 0,
            max_contributions_per_assignment: None,
            contributions_from_host: false,
        }
    }
}

impl RetainerConfig {
    /// Checks the configuration.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.refresh_after_ms == Some(0) {
            return Err(ConfigError::Zero("refresh_after_ms"));
        }
        // Everything else is the pools' configuration: check it as a pool would.
        self.pool_config(None, 0, Default::default()).check(true)
    }

    /// The configuration of a template's pool: targets 0 (the retainer sets them), the task
    /// begins at once, base pay `base_pay_cents` in `currency`, capped by `budget_cents`.
    pub(crate) fn pool_config(
        &self,
        budget_cents: Option<i64>,
        base_pay_cents: i64,
        currency: crate::model::Currency,
    ) -> PavilionConfig {
        PavilionConfig {
            min_active: 0,
            max_active: 0,
            min_waiting: 0,
            max_waiting: 0,
            start: StartCondition::Auto,
            heartbeat_timeout_ms: self.heartbeat_timeout_ms,
            returned_slots_reopen: self.returned_slots_reopen,
            hire_retry_ms: self.hire_retry_ms,
            budget_cents,
            currency,
            base_pay_cents,
            waiting_cents_per_minute: self.waiting_cents_per_minute,
            active_cents_per_minute: self.active_cents_per_minute,
            per_contribution_cents: self.per_contribution_cents,
            max_contributions_per_assignment: self.max_contributions_per_assignment,
            contributions_from_host: self.contributions_from_host,
            // The retainer's pools are not yet adapted to a platform that keeps one HIT.
            posts_reopen_hits: false,
        }
    }

    /// The pool configuration for a template.
    pub(crate) fn pool_config_for(
        &self,
        spec: &HitSpec,
        budget_cents: Option<i64>,
    ) -> PavilionConfig {
        self.pool_config(budget_cents, spec.reward.minor, spec.reward.currency)
    }
}
