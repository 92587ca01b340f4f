//! Scenario tests of the scoring machine (`crowdcore::score`), written as data: each case is a
//! script of inputs and the events (and refusals) it must produce, and often the leaderboard it
//! must leave (see `support.rs` for the language). One module per behaviour; `restart.rs`
//! drives the durable `Competition` through restarts and store failures.

mod deadlines;
mod deferred;
mod leaderboards;
mod metrics;
mod restart;
#[path = "../common/script.rs"]
mod script;
mod support;
mod ties;
