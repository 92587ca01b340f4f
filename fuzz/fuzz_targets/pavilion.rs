//! libFuzzer target: the Pavilion machine under arbitrary op sequences. Run it with
//! `cargo fuzz run pavilion` (see the crate README for the stable-toolchain command).

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|case: crowdcore_fuzz::Case| crowdcore_fuzz::run(&case));
