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
//! The argument is the number of passes (default 1). Prints the events and effects handled,
//! and the mean wall time of one pass through [`drive`] (the events' copy and the machine's
//! drop are not timed): run two builds alternately for an A/B comparison on a noisy machine.

use std::hint::black_box;

use crowdcore_benches::pavilion_stream::{drive, fresh_machine, stream};

fn main() {
    let passes: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("passes is a number"))
        .unwrap_or(1);
    let events = stream();
    let mut effects = 0;
    let mut timed = std::time::Duration::ZERO;
    for _ in 0..passes {
        let mut machine = fresh_machine();
        let copy = events.clone();
        let t = std::time::Instant::now();
        effects += drive(&mut machine, copy);
        timed += t.elapsed();
        black_box(&machine);
    }
    eprintln!(
        "drive: {:.3} ms per pass",
        timed.as_secs_f64() * 1e3 / passes as f64
    );
    println!(
        "{} events, {} effects in {passes} passes",
        events.len() * passes,
        effects
    );
}
