//! Aggregation on 1 M answers: majority vote, Dawid–Skene cold, and Dawid–Skene warm-started
//! after 1 % more answers arrive. See this crate's README for the numbers and for crowd-kit on
//! the same data.
//!
//! ```text
//! cargo bench -p crowdcore-benches --bench aggregate
//! # also write the data set as TSV (for the aggregate example and crowd-kit):
//! CROWDCORE_AGGREGATE_TSV=/tmp/aggregate_1m.tsv cargo bench -p crowdcore-benches --bench aggregate
//! ```
//!
//! The data set is generated deterministically (fixed-seed xorshift): 100 000 tasks × 10
//! answers from 10 distinct workers out of 1 000, 5 classes with uniform truth. One worker in
//! ten is a spammer (uniform answers), one in ten confuses each class with the next (45 %
//! next class, 35 % right, else uniform), the rest are right with probability
//! `0.3 + 0.5 · (w mod 8) / 7` and otherwise answer uniformly.
//!
//! Benchmarks (`Throughput::Elements(answers)`), each on answers already interned:
//!
//! - `mv`: [`MajorityVote::fit`].
//! - `ds`: [`DawidSkene::fit`] with crowd-kit's defaults (≤ 100 iterations, tol 1e-5).
//! - `ds_refit_after_1pct`: the first 99 % of the answers were fitted; the last 1 % (new
//!   tasks) arrive; [`DawidSkene::refit`] warm-starts from the previous fit. Compare with `ds`,
//!   the cold fit of the same 100 %.
//! - `intern`: building [`Answers`] from the 1 M string triples.

use std::hint::black_box;
use std::io::Write;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use crowdcore::aggregate::{Answers, DawidSkene, MajorityVote};

const TASKS: usize = 100_000;
const PER_TASK: usize = 10;
const WORKERS: usize = 1_000;
const CLASSES: usize = 5;

/// The answers as string triples, in generation order (task by task).
fn generate() -> Vec<(String, String, String)> {
    let mut state = 0x9E37_79B9_7F4A_7C15_u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut rows = Vec::with_capacity(TASKS * PER_TASK);
    let mut chosen = [0usize; PER_TASK];
    for t in 0..TASKS {
        let truth = (next() % CLASSES as u64) as usize;
        let mut n = 0;
        while n < PER_TASK {
            let w = (next() % WORKERS as u64) as usize;
            if chosen[..n].contains(&w) {
                continue;
            }
            chosen[n] = w;
            n += 1;
            let coin = (next() % 1_000_000) as f64 / 1_000_000.0;
            let label = match w % 10 {
                // spammer
                9 => (next() % CLASSES as u64) as usize,
                // confuses each class with the next one
                8 if coin < 0.45 => (truth + 1) % CLASSES,
                8 if coin < 0.8 => truth,
                _ if coin < 0.3 + 0.5 * (w % 8) as f64 / 7.0 => truth,
                _ => (next() % CLASSES as u64) as usize,
            };
            rows.push((format!("t{t}"), format!("w{w}"), format!("c{label}")));
        }
    }
    rows
}

fn intern(rows: &[(String, String, String)]) -> Answers {
    let mut answers = Answers::with_capacity(rows.len());
    for (t, w, l) in rows {
        answers.push(t, w, l);
    }
    answers
}

fn bench(c: &mut Criterion) {
    let rows = generate();
    if let Ok(path) = std::env::var("CROWDCORE_AGGREGATE_TSV") {
        let mut out = std::io::BufWriter::new(std::fs::File::create(&path).expect("create TSV"));
        writeln!(out, "task\tworker\tlabel").unwrap();
        for (t, w, l) in &rows {
            writeln!(out, "{t}\t{w}\t{l}").unwrap();
        }
        out.flush().unwrap();
        eprintln!("wrote {} answers to {path}", rows.len());
    }
    let all = intern(&rows);
    let split = rows.len() - rows.len() / 100;
    let before = intern(&rows[..split]);
    let ds = DawidSkene::default();
    let previous = ds.fit(&before).unwrap();
    let cold = ds.fit(&all).unwrap();
    let warm = ds.refit(&all, &previous, None).unwrap();
    let agree = (0..all.n_tasks())
        .filter(|&t| cold.label(t) == warm.label(t))
        .count();
    eprintln!(
        "ds: cold {} iterations, warm {} iterations; labels agree on {agree} / {} tasks",
        cold.iterations(),
        warm.iterations(),
        all.n_tasks()
    );

    let mut group = c.benchmark_group("aggregate_1m");
    group.sample_size(10);
    group.throughput(Throughput::Elements(rows.len() as u64));
    group.bench_function("mv", |b| {
        b.iter(|| black_box(MajorityVote::default().fit(&all).unwrap()))
    });
    group.bench_function("ds", |b| b.iter(|| black_box(ds.fit(&all).unwrap())));
    group.bench_function("ds_refit_after_1pct", |b| {
        b.iter(|| black_box(ds.refit(&all, &previous, None).unwrap()))
    });
    group.bench_function("intern", |b| b.iter(|| black_box(intern(&rows))));
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
