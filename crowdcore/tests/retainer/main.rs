//! Scenario tests of the retainer machine, written as data: each case is a config, a list of
//! inputs and the full list of effects they must produce (see `support.rs` for the language).
//! One module per behaviour.

mod erlang;
mod format;
mod pools;
mod precruit;
mod presence;
mod refresh;
mod rejections;
mod reservations;
mod routing;
#[path = "../common/script.rs"]
mod script;
mod support;
