//! Engine tests over the in-memory store and the local marketplace, on a virtual clock: the
//! seed rules end to end, recovery from a crash at every store write, seeded platform faults,
//! bad input through the host API, and a stored session whose configuration changed.
//!
//! `support.rs` holds the host (`crowdcore::testkit::Host`, which restarts a crashed engine),
//! the deterministic crowd workload on the local market and the "nothing done twice" checks.

mod bad_input;
mod config_changed;
mod faults;
mod late_submit;
mod permanent_errors;
mod pushed;
mod recovery;
mod retainer;
mod seed_rules;
mod slow_platform;
mod stopped;
mod support;
