//! Events per second of the Pavilion machine on a realistic mixed event stream, beside a bare
//! hash-map baseline over the same ids. See this crate's README for the numbers.
//!
//! ```text
//! cargo bench -p crowdcore-benches --bench pavilion
//! ```
//!
//! The stream is generated once, deterministically (a fixed-seed xorshift), by a simulated
//! driver running a real machine: it answers every `hire` effect with `hire_posted`, lets
//! workers arrive into open slots, and has present workers heartbeat, submit (mostly active
//! workers) or return. About two thirds of the events are heartbeats; the rest are arrivals,
//! submits, returns and hire answers (the mix is printed when the bench starts). Every event
//! of the stream is accepted by the machine.
//!
//! Three benchmarks in one group, all with `Throughput::Elements(events in the stream)`:
//!
//! - `machine`: a fresh machine handles every event of the stream, draining `poll_effect`
//!   after each one, as a driver does.
//! - `hashmap_baseline`: the issue's baseline, a bare `HashMap` insert+remove loop over the
//!   same ids: the least a driver could do per event, one `insert` (arrival, heartbeat, hire
//!   answer) or `remove` (submit, return) on a fresh standard-library `HashMap` (SipHash-1-3,
//!   randomly keyed) keyed by the event's assignment id (the HIT id for a hire answer), with
//!   the event's time as the value.
//! - `fx_hashmap_baseline`: the same loop on an `FxHashMap` (rustc-hash), the hasher the
//!   machine itself uses: a stricter comparison, which measures the machine's logic alone,
//!   not a hasher choice.
//!
//! All consume pre-built event vectors, cloned outside the timed region by `iter_batched` with
//! `BatchSize::PerIteration` (one 100 000-event copy, about 4.8 MB, set up right before each timed
//! run: a driver handles an input right after parsing it, so it is in cache; batching many
//! copies, as `LargeInput` does, measures memory bandwidth more than the machine), and return
//! their state so that dropping it is not timed either.

use std::collections::HashMap;
use std::hint::black_box;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use crowdcore::pavilion::{EffectKind, Input};
use crowdcore::{AssignmentId, Timestamp};
use crowdcore_benches::pavilion_stream::{drive, fresh_machine, stream};
use rustc_hash::FxHashMap;

fn kind(input: &Input) -> &'static str {
    match input {
        Input::Arrive { .. } => "arrive",
        Input::Heartbeat { .. } => "heartbeat",
        Input::Submit { .. } => "submit",
        Input::Return { .. } => "return",
        Input::HirePosted { .. } => "hire_posted",
        Input::Start => "start",
        _ => "other",
    }
}

/// The kind of an effect, for the mix printed at start.
fn effect_kind(kind: &EffectKind) -> &'static str {
    match kind {
        EffectKind::Hire { .. } => "hire",
        EffectKind::Promote { .. } => "promote",
        EffectKind::Release { .. } => "release",
        EffectKind::TurnAway { .. } => "turn_away",
        EffectKind::TimedOut { .. } => "timed_out",
        EffectKind::Pay { .. } => "pay",
        EffectKind::ExpireHits { .. } => "expire_hits",
        EffectKind::Notify { .. } => "notify",
    }
}

/// Counts items by name, in order of first appearance, as `name share%, …`.
fn mix<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let mut counts: Vec<(&str, usize)> = Vec::new();
    let mut total = 0;
    for name in names {
        total += 1;
        match counts.iter_mut().find(|(k, _)| *k == name) {
            Some((_, n)) => *n += 1,
            None => counts.push((name, 1)),
        }
    }
    counts
        .iter()
        .map(|(k, n)| format!("{k} {:.1}%", 100.0 * *n as f64 / total as f64))
        .collect::<Vec<_>>()
        .join(", ")
}

/// One hash-map operation per event: remove for a departure, insert for anything else.
#[derive(Clone)]
enum Op {
    Insert(AssignmentId, Timestamp),
    Remove(AssignmentId),
}

fn baseline_ops(events: &[(Timestamp, Input)]) -> Vec<Op> {
    events
        .iter()
        .map(|(at, input)| match input {
            Input::Arrive { assignment, .. } | Input::Heartbeat { assignment } => {
                Op::Insert(assignment.clone(), *at)
            }
            Input::Submit { assignment, .. } | Input::Return { assignment } => {
                Op::Remove(assignment.clone())
            }
            Input::HirePosted { hit, .. } => Op::Insert(AssignmentId::new(hit.as_str()), *at),
            _ => Op::Insert(AssignmentId::new("start"), *at),
        })
        .collect()
}

fn pavilion(c: &mut Criterion) {
    let events = stream();
    // Once, untimed: check the stream and print its mix.
    let mut machine = fresh_machine();
    let mut effects = Vec::new();
    for (at, input) in events.clone() {
        machine
            .handle(at, input)
            .expect("the stream was accepted when it was generated");
        while let Some(effect) = machine.poll_effect() {
            effects.push(effect_kind(&effect.kind));
        }
    }
    eprintln!(
        "pavilion stream: {} events ({}); {} effects ({}); {} workers present at the end",
        events.len(),
        mix(events.iter().map(|(_, input)| kind(input))),
        effects.len(),
        mix(effects.iter().copied()),
        machine.present(),
    );
    let ops = baseline_ops(&events);
    let template = fresh_machine();

    let mut group = c.benchmark_group("pavilion");
    group.throughput(Throughput::Elements(events.len() as u64));
    group.bench_function("machine", |b| {
        b.iter_batched(
            || (template.clone(), events.clone()),
            |(mut machine, events)| {
                black_box(drive(&mut machine, events));
                machine
            },
            BatchSize::PerIteration,
        )
    });
    group.bench_function("hashmap_baseline", |b| {
        b.iter_batched(
            || ops.clone(),
            |ops| replay_ops(HashMap::new(), ops),
            BatchSize::PerIteration,
        )
    });
    group.bench_function("fx_hashmap_baseline", |b| {
        b.iter_batched(
            || ops.clone(),
            |ops| replay_ops(FxHashMap::default(), ops),
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

/// The baseline's loop, over either map.
fn replay_ops<S: std::hash::BuildHasher>(
    mut map: HashMap<AssignmentId, Timestamp, S>,
    ops: Vec<Op>,
) -> HashMap<AssignmentId, Timestamp, S> {
    for op in ops {
        match op {
            Op::Insert(a, at) => {
                black_box(map.insert(a, at));
            }
            Op::Remove(a) => {
                black_box(map.remove(&a));
            }
        }
    }
    map
}

criterion_group!(benches, pavilion);
criterion_main!(benches);
