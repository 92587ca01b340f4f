//! Runs the Pavilion bench's event stream through fresh machines, for instruction counts and
//! profiles (criterion's wall-clock numbers are noisy on a shared machine):
//!
//! ```text
//! cargo build --release -p crowdcore-benches --example pavilion_stream
//! valgrind --tool=callgrind --toggle-collect='*pavilion_stream::drive*' \
//!     target/release/examples/pavilion_stream 3
//! perf record -g target/release/examples/pavilion_stream 300
//! ```
//!
//! The argument is the number of passes (default 1). Prints the events and effects handled.

use std::hint::black_box;

use crowdcore::Timestamp;
use crowdcore::pavilion::{Input, Pavilion};
use crowdcore_benches::pavilion_stream::{fresh_machine, stream};

/// One pass: every event through `machine`, draining the effects after each, as the bench does.
#[inline(never)]
fn drive(machine: &mut Pavilion, events: Vec<(Timestamp, Input)>) -> usize {
    let mut effects = 0;
    for (at, input) in events {
        if machine.handle(at, input).is_err() {
            panic!("the stream was accepted when it was generated");
        }
        while let Some(effect) = machine.poll_effect() {
            black_box(effect);
            effects += 1;
        }
    }
    effects
}

fn main() {
    let passes: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("passes is a number"))
        .unwrap_or(1);
    let events = stream();
    let mut effects = 0;
    for _ in 0..passes {
        let mut machine = fresh_machine();
        let copy = events.clone();
        effects += drive(&mut machine, copy);
        black_box(&machine);
    }
    println!(
        "{} events, {} effects in {passes} passes",
        events.len() * passes,
        effects
    );
}
