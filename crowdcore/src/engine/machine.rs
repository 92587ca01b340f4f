//! What the engine needs of a machine: [`Machine`], and its two implementations — the
//! [`Pavilion`] and the [`Retainer`].

use std::fmt;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::model::{AssignmentId, EffectId, HitId, HitSpec, Money, SessionId, Timestamp, WorkerId};
use crate::pavilion::{self, Pavilion, PayKind};
use crate::platform::{AssignmentStatus, AssignmentUpdate, Capabilities};
use crate::retainer::{self, Retainer, RetainerConfig};

use super::{CallPolicy, ConfigProblem, EngineConfig, EngineError, RetryPolicy};

/// A pure machine the [`Engine`](super::Engine) can drive durably: its inputs go to the log,
/// its effects to the outbox, and each effect maps to one platform [`Action`].
///
/// The methods mirror the machines' own driving contract (`handle`, `poll_effect`,
/// `poll_timeout`); the rest tells the engine how to configure, recover and carry out. The
/// crate implements it for [`Pavilion`] and [`Retainer`].
pub trait Machine: Sized + Send + Sync + 'static {
    /// An input, as logged.
    type Input: Clone
        + fmt::Debug
        + PartialEq
        + Serialize
        + DeserializeOwned
        + Send
        + Sync
        + 'static;
    /// An effect, as queued in the outbox.
    type Effect: Clone
        + fmt::Debug
        + PartialEq
        + Serialize
        + DeserializeOwned
        + Send
        + Sync
        + 'static;
    /// The whole state, as saved in snapshots.
    type Snapshot: Clone + fmt::Debug + Serialize + DeserializeOwned + Send + Sync + 'static;
    /// The engine's configuration for this machine (stored with the session: a resumed session
    /// must have the same).
    type Config: Clone
        + fmt::Debug
        + PartialEq
        + Serialize
        + DeserializeOwned
        + Send
        + Sync
        + 'static;
    /// Why an input was refused.
    type Rejected: std::error::Error + Clone + PartialEq + Send + Sync + 'static;

    /// Checks `config` and adapts it to what the platform can do (whether returned slots
    /// re-open), before it is stored.
    fn prepare(
        config: &mut Self::Config,
        capabilities: &Capabilities,
    ) -> Result<(), EngineError<Self::Rejected>>;
    /// How the engine retries, observes and snapshots.
    fn driving(config: &Self::Config) -> Driving;
    /// A fresh machine for `session`.
    fn create(
        session: SessionId,
        config: &Self::Config,
    ) -> Result<Self, EngineError<Self::Rejected>>;
    /// The machine a snapshot holds.
    fn restore(snapshot: Self::Snapshot) -> Result<Self, EngineError<Self::Rejected>>;
    /// Feeds one input.
    fn handle(&mut self, now: Timestamp, input: Self::Input) -> Result<(), Self::Rejected>;
    /// The next effect.
    fn poll_effect(&mut self) -> Option<Self::Effect>;
    /// When time next matters ([`Machine::tick`] is logged and fed then).
    fn poll_timeout(&self) -> Option<Timestamp>;
    /// The latest time the machine has seen.
    fn now(&self) -> Timestamp;
    /// The whole state.
    fn snapshot(&self) -> Self::Snapshot;
    /// The input that lets time pass.
    fn tick() -> Self::Input;
    /// Whether the platform should be polled for assignment updates now.
    fn observing(&self) -> bool;
    /// The effect's id: its idempotency key and outbox id.
    fn effect_id(effect: &Self::Effect) -> &EffectId;
    /// What carrying the effect out means.
    fn action<'a>(&'a self, config: &'a Self::Config, effect: &'a Self::Effect) -> Action<'a>;
    /// The input reporting that a hire effect was carried out.
    fn posted(effect: &Self::Effect, hit: HitId, slots: u32) -> Self::Input;
    /// The input reporting that a hire effect failed for good.
    fn hire_failed(effect: &Self::Effect, reason: String) -> Self::Input;
    /// The input a platform's assignment update means, if any.
    fn update_input(update: &AssignmentUpdate) -> Option<Self::Input>;
    /// How long after `effect`'s approval is first refused as not submitted yet the worker may
    /// still submit (its assignment's duration, at most): the engine keeps retrying until then.
    fn submit_window_ms(&self, config: &Self::Config, effect: &Self::Effect) -> u64 {
        let _ = (config, effect);
        DEFAULT_SUBMIT_WINDOW_MS
    }
}

/// [`Machine::submit_window_ms`] for a machine that does not know its assignments' duration:
/// one hour, the default [`HitSpec`](crate::model::HitSpec) duration.
pub const DEFAULT_SUBMIT_WINDOW_MS: u64 = 3_600_000;

/// A configuration that says which machine it configures, so that
/// [`EngineBuilder::new`](super::EngineBuilder::new) knows the machine from the config.
pub trait MachineConfig: Sized {
    /// The machine.
    type Machine: Machine<Config = Self>;
    /// The configuration as the machine's own type (itself: the compiler cannot see that a
    /// type parameter equals an associated type without being told).
    fn into_config(self) -> <Self::Machine as Machine>::Config;
}

impl MachineConfig for EngineConfig {
    type Machine = Pavilion;
    fn into_config(self) -> EngineConfig {
        self
    }
}

impl MachineConfig for RetainerEngineConfig {
    type Machine = Retainer;
    fn into_config(self) -> RetainerEngineConfig {
        self
    }
}

/// How the engine retries, observes and snapshots: the parts of a configuration that are the
/// engine's, not the machine's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Driving {
    /// Retries of retryable platform errors.
    pub retry: RetryPolicy,
    /// How a spawned engine makes platform calls.
    pub calls: CallPolicy,
    /// How often to poll the platform for assignment updates, in milliseconds.
    pub observe_every_ms: u64,
    /// Save a snapshot every this many inputs (0: never).
    pub snapshot_every: u64,
}

/// What carrying out an effect means to the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action<'a> {
    /// Post `slots` slots of `spec`; answered with [`Machine::posted`] or
    /// [`Machine::hire_failed`].
    Post {
        /// What to post.
        spec: &'a HitSpec,
        /// How many slots.
        slots: u32,
    },
    /// Pay: base pay approves the assignment; any other kind is a bonus. Goes to the ledger.
    Pay {
        /// Who.
        worker: &'a WorkerId,
        /// For which assignment.
        assignment: &'a AssignmentId,
        /// What for.
        kind: PayKind,
        /// How much.
        amount: Money,
    },
    /// Close these HITs.
    Expire {
        /// The HITs.
        hits: &'a [HitId],
    },
    /// A message to worker pages: journaled and published, no platform call.
    Deliver,
    /// An operator notice: published only, not journaled.
    Publish,
}

impl Action<'_> {
    /// Whether the effect goes through the outbox.
    pub fn journaled(&self) -> bool {
        !matches!(self, Action::Publish)
    }
}

/// The platform's departures as inputs of the shape both machines share.
macro_rules! departure_input {
    ($($input:ident)::+, $update:expr) => {{
        let assignment = $update.assignment.clone();
        match $update.status {
            AssignmentStatus::Returned => Some($($input)::+::Return { assignment }),
            AssignmentStatus::Abandoned => Some($($input)::+::Abandon { assignment }),
            AssignmentStatus::Submitted => Some($($input)::+::Submit {
                assignment,
                contributions: 0,
            }),
            AssignmentStatus::Accepted
            | AssignmentStatus::Approved
            | AssignmentStatus::Rejected => None,
        }
    }};
}

/// A Pavilion effect's action; `spec` is what its hires post.
fn pavilion_action<'a>(spec: &'a HitSpec, kind: &'a pavilion::EffectKind) -> Action<'a> {
    use pavilion::EffectKind as K;
    match kind {
        K::Hire { count } => Action::Post {
            spec,
            slots: *count,
        },
        K::Pay {
            worker,
            assignment,
            kind,
            amount,
        } => Action::Pay {
            worker,
            assignment,
            kind: *kind,
            amount: *amount,
        },
        K::ExpireHits { hits } => Action::Expire { hits },
        K::Notify { .. } => Action::Publish,
        // Messages to a worker's page: journaled so who was where when is on record.
        _ => Action::Deliver,
    }
}

impl Machine for Pavilion {
    type Input = pavilion::Input;
    type Effect = pavilion::Effect;
    type Snapshot = pavilion::Snapshot;
    type Config = EngineConfig;
    type Rejected = pavilion::Rejected;

    fn prepare(config: &mut EngineConfig, capabilities: &Capabilities) -> Result<(), EngineError> {
        // The platform, not the config, knows whether returned slots re-open.
        config.pavilion.returned_slots_reopen = capabilities.returned_slots_reopen;
        config.pavilion.posts_reopen_hits = capabilities.posts_reopen_expired_hits;
        config.spec.validate().map_err(ConfigProblem::from)?;
        config.pavilion.validate()?;
        // The HIT's reward is the base pay: the platform pays the reward when the assignment
        // is approved, and the machine budgets and records `base_pay_cents` for it. Two
        // numbers for one payment would make the ledger and the budget wrong.
        let base = Money::new(config.pavilion.base_pay_cents, config.pavilion.currency);
        if config.spec.reward != base {
            return Err(ConfigProblem::RewardIsNotBasePay {
                reward: config.spec.reward,
                base_pay: base,
            }
            .into());
        }
        Ok(())
    }

    fn driving(config: &EngineConfig) -> Driving {
        Driving {
            retry: config.retry.clone(),
            calls: config.calls.clone(),
            observe_every_ms: config.observe_every_ms,
            snapshot_every: config.snapshot_every,
        }
    }

    fn create(session: SessionId, config: &EngineConfig) -> Result<Self, EngineError> {
        Ok(Pavilion::new(session, config.pavilion.clone())?)
    }

    fn restore(snapshot: pavilion::Snapshot) -> Result<Self, EngineError> {
        Ok(Pavilion::restore(snapshot)?)
    }

    fn handle(&mut self, now: Timestamp, input: pavilion::Input) -> Result<(), pavilion::Rejected> {
        Pavilion::handle(self, now, input)
    }

    fn poll_effect(&mut self) -> Option<pavilion::Effect> {
        Pavilion::poll_effect(self)
    }

    fn poll_timeout(&self) -> Option<Timestamp> {
        Pavilion::poll_timeout(self)
    }

    fn now(&self) -> Timestamp {
        Pavilion::now(self)
    }

    fn snapshot(&self) -> pavilion::Snapshot {
        Pavilion::snapshot(self)
    }

    fn tick() -> pavilion::Input {
        pavilion::Input::Tick
    }

    fn observing(&self) -> bool {
        matches!(
            self.phase(),
            pavilion::Phase::Recruiting | pavilion::Phase::Running
        )
    }

    fn effect_id(effect: &pavilion::Effect) -> &EffectId {
        &effect.id
    }

    fn action<'a>(&'a self, config: &'a EngineConfig, effect: &'a pavilion::Effect) -> Action<'a> {
        pavilion_action(&config.spec, &effect.kind)
    }

    fn posted(effect: &pavilion::Effect, hit: HitId, slots: u32) -> pavilion::Input {
        pavilion::Input::HirePosted {
            hire: Some(effect.id.clone()),
            hit,
            slots,
        }
    }

    fn hire_failed(effect: &pavilion::Effect, reason: String) -> pavilion::Input {
        pavilion::Input::HireFailed {
            hire: Some(effect.id.clone()),
            reason,
        }
    }

    fn update_input(update: &AssignmentUpdate) -> Option<pavilion::Input> {
        departure_input!(pavilion::Input, update)
    }

    fn submit_window_ms(&self, config: &EngineConfig, _effect: &pavilion::Effect) -> u64 {
        config.spec.assignment_duration_ms
    }
}

/// The engine's configuration for a [`Retainer`]: the machine's and the driving settings.
/// Templates are not here: they are inputs ([`retainer::Input::RegisterTemplate`]), logged
/// like any other.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetainerEngineConfig {
    /// The retainer's configuration.
    pub retainer: RetainerConfig,
    /// Retries of retryable platform errors.
    #[serde(default)]
    pub retry: RetryPolicy,
    /// How a spawned engine makes platform calls.
    #[serde(default)]
    pub calls: CallPolicy,
    /// How often to poll the platform for assignment updates, in milliseconds (ignored by
    /// platforms that push).
    pub observe_every_ms: u64,
    /// Save a snapshot every this many inputs (0: never).
    pub snapshot_every: u64,
}

impl RetainerEngineConfig {
    /// A configuration with default retry, observe and snapshot settings.
    pub fn new(retainer: RetainerConfig) -> Self {
        Self {
            retainer,
            retry: RetryPolicy::default(),
            calls: CallPolicy::default(),
            observe_every_ms: 10_000,
            snapshot_every: 1_000,
        }
    }
}

impl Machine for Retainer {
    type Input = retainer::Input;
    type Effect = retainer::Effect;
    type Snapshot = retainer::Snapshot;
    type Config = RetainerEngineConfig;
    type Rejected = retainer::Rejected;

    fn prepare(
        config: &mut RetainerEngineConfig,
        capabilities: &Capabilities,
    ) -> Result<(), EngineError<retainer::Rejected>> {
        config.retainer.returned_slots_reopen = capabilities.returned_slots_reopen;
        config
            .retainer
            .validate()
            .map_err(|e| EngineError::Config(e.into()))
    }

    fn driving(config: &RetainerEngineConfig) -> Driving {
        Driving {
            retry: config.retry.clone(),
            calls: config.calls.clone(),
            observe_every_ms: config.observe_every_ms,
            snapshot_every: config.snapshot_every,
        }
    }

    fn create(
        session: SessionId,
        config: &RetainerEngineConfig,
    ) -> Result<Self, EngineError<retainer::Rejected>> {
        Retainer::new(session, config.retainer.clone()).map_err(|e| EngineError::Config(e.into()))
    }

    fn restore(snapshot: retainer::Snapshot) -> Result<Self, EngineError<retainer::Rejected>> {
        Retainer::restore(snapshot).map_err(|e| EngineError::Recovery(e.into()))
    }

    fn handle(&mut self, now: Timestamp, input: retainer::Input) -> Result<(), retainer::Rejected> {
        Retainer::handle(self, now, input)
    }

    fn poll_effect(&mut self) -> Option<retainer::Effect> {
        Retainer::poll_effect(self)
    }

    fn poll_timeout(&self) -> Option<Timestamp> {
        Retainer::poll_timeout(self)
    }

    fn now(&self) -> Timestamp {
        Retainer::now(self)
    }

    fn snapshot(&self) -> retainer::Snapshot {
        Retainer::snapshot(self)
    }

    fn tick() -> retainer::Input {
        retainer::Input::Tick
    }

    fn submit_window_ms(&self, _config: &RetainerEngineConfig, effect: &retainer::Effect) -> u64 {
        match &effect.kind {
            retainer::EffectKind::Pool { template, .. } => self
                .template(template)
                .map_or(DEFAULT_SUBMIT_WINDOW_MS, |spec| spec.assignment_duration_ms),
            _ => DEFAULT_SUBMIT_WINDOW_MS,
        }
    }

    fn observing(&self) -> bool {
        // Pools recruit whenever a template is registered.
        self.templates().len() > 0
    }

    fn effect_id(effect: &retainer::Effect) -> &EffectId {
        &effect.id
    }

    fn action<'a>(
        &'a self,
        _config: &'a RetainerEngineConfig,
        effect: &'a retainer::Effect,
    ) -> Action<'a> {
        match &effect.kind {
            retainer::EffectKind::Pool { template, effect } => match self.template(template) {
                Some(spec) => pavilion_action(spec, effect),
                // Templates are never removed: a pool effect's template is registered.
                None => unreachable!("effect of unknown template {template}"),
            },
            retainer::EffectKind::Route { .. } | retainer::EffectKind::NotifyWorkers { .. } => {
                Action::Deliver
            }
        }
    }

    fn posted(effect: &retainer::Effect, hit: HitId, slots: u32) -> retainer::Input {
        retainer::Input::HirePosted {
            hire: effect.id.clone(),
            hit,
            slots,
        }
    }

    fn hire_failed(effect: &retainer::Effect, reason: String) -> retainer::Input {
        retainer::Input::HireFailed {
            hire: effect.id.clone(),
            reason,
        }
    }

    fn update_input(update: &AssignmentUpdate) -> Option<retainer::Input> {
        departure_input!(retainer::Input, update)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::TemplateId;

    #[test]
    fn a_retainer_waits_for_a_submission_as_long_as_its_templates_assignments_last() {
        let config = RetainerEngineConfig::new(RetainerConfig::default());
        let mut machine = <Retainer as Machine>::create(SessionId::new("window"), &config).unwrap();
        let mut spec = crate::testkit::spec();
        spec.assignment_duration_ms = 600_000;
        let template = TemplateId::new("short");
        Machine::handle(
            &mut machine,
            Timestamp::from_millis(1),
            retainer::Input::RegisterTemplate {
                template: template.clone(),
                spec,
                pool: None,
                budget_cents: None,
            },
        )
        .unwrap();
        let pay = |template: TemplateId| retainer::Effect {
            at: Timestamp::from_millis(1),
            id: EffectId::new(SessionId::new("window"), 9),
            kind: retainer::EffectKind::Pool {
                template,
                effect: pavilion::EffectKind::Pay {
                    worker: WorkerId::new("w"),
                    assignment: AssignmentId::new("a"),
                    kind: PayKind::Base,
                    amount: Money::usd_cents(50),
                },
            },
        };
        assert_eq!(machine.submit_window_ms(&config, &pay(template)), 600_000);
        assert_eq!(
            machine.submit_window_ms(&config, &pay(TemplateId::new("unknown"))),
            DEFAULT_SUBMIT_WINDOW_MS
        );
    }
}
