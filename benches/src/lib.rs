//! Criterion benchmarks for crowdcore: see `benches/` and this crate's README.
