//! Scenario tests of the Pavilion machine, written as data: each case is a config, a list of
//! inputs and the full list of effects they must produce (see `support.rs` for the language).
//! One module per behaviour.

mod admin;
mod budget;
mod heartbeat;
mod job_full;
mod pay;
mod rejections;
mod rules;
#[path = "../common/script.rs"]
mod script;
mod start;
mod support;
