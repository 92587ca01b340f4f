//! Time-boxed fuzzing of the Pavilion machine on stable Rust: `arbtest` feeds random bytes,
//! read as a [`Case`], to [`crowdcore_fuzz::run`] until the time budget runs out.
//!
//! - `CROWDCORE_FUZZ_SECONDS`: the budget in seconds (fractions allowed; default 2).
//! - `ARBTEST_SEED`: replay one failing case (arbtest prints the seed on failure).

use std::time::Duration;

use arbtest::arbtest;
use crowdcore_fuzz::{Case, run};

fn budget() -> Duration {
    match std::env::var("CROWDCORE_FUZZ_SECONDS") {
        Ok(s) => {
            let secs: f64 = s
                .trim()
                .parse()
                .unwrap_or_else(|_| panic!("CROWDCORE_FUZZ_SECONDS={s:?} is not a number"));
            Duration::from_secs_f64(secs)
        }
        Err(_) => Duration::from_secs(2),
    }
}

#[test]
fn pavilion_invariants_hold_under_fuzzing() {
    arbtest(|u| {
        let case: Case = u.arbitrary()?;
        run(&case);
        Ok(())
    })
    .size_max(1 << 14)
    .budget(budget())
    .run();
}
