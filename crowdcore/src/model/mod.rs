//! Plain data used by every part of crowdcore: identifiers, money, time and HIT specifications.
//!
//! Everything here is serde data with no behaviour beyond validation and arithmetic.

mod hit;
mod ids;
mod money;
mod time;

pub use hit::{Comparator, HitSpec, QualificationRequirement, SpecError};
pub use ids::{
    AssignmentId, EffectId, HitId, ProjectId, ReservationId, SessionId, TemplateId, WorkerId,
};
pub use money::{Currency, CurrencyError, Money, MoneyError, money_as_cents};
pub use time::Timestamp;
