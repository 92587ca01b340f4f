//! Criterion benchmarks for crowdcore: see `benches/` and this crate's README.

pub mod pavilion_stream;
