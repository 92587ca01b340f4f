//! Runnable crowdcore programs live in this crate's `examples/`; see the README.
