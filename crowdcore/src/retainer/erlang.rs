//! Pool sizing with Erlang's loss formula (the M/M/c/c queue).
//!
//! Model the pool as `c` retained workers. Requests for a worker arrive as a Poisson stream at
//! rate λ; each takes a worker out of the pool for an exponentially distributed time with mean
//! T (the task, or however long it takes to recruit a replacement, whichever is the pool's
//! bottleneck); a request that finds the pool empty is *missed* (it waits for a fresh recruit).
//! With offered load `E = λ·T` erlangs, the miss probability is Erlang's B formula, and on
//! average `E·(1 − B)` workers are busy, so `c − E·(1 − B)` wait: the pool's waiting cost.
//! A task needing `k` workers at once is `k` requests (use `k·λ`).

use serde::{Deserialize, Serialize};

/// The largest pool [`smallest_pool`] looks at.
pub const MAX_POOL: u32 = 1_000_000;

/// Erlang's B formula: the probability that a request finds all `c` workers busy under
/// `offered_load` erlangs.
///
/// Computed with the recurrence `B(E, 0) = 1`, `B(E, k) = E·B(E, k−1) / (k + E·B(E, k−1))`,
/// which stays in `[0, 1]` (no factorials, no powers, no overflow) and takes `c` steps.
/// `NaN` for a negative or non-finite load.
pub fn erlang_b(offered_load: f64, c: u32) -> f64 {
    if !(offered_load.is_finite() && offered_load >= 0.0) {
        return f64::NAN;
    }
    let mut b = 1.0;
    for k in 1..=c {
        let eb = offered_load * b;
        b = eb / (f64::from(k) + eb);
    }
    b
}

/// A pool size and what it buys.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PoolSize {
    /// Workers to keep on retainer.
    pub c: u32,
    /// The offered load `E = arrival_rate · mean_task_time`, in erlangs.
    pub offered_load: f64,
    /// The probability that a request finds the pool empty: `B(E, c)`.
    pub miss_probability: f64,
    /// Workers busy on average: `E·(1 − B)`.
    pub expected_busy_workers: f64,
    /// Workers waiting on average, `c − E·(1 − B)`: what the pool costs in waiting pay.
    pub expected_idle_workers: f64,
}

/// Parameters [`smallest_pool`] cannot work with.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
pub enum SizingError {
    /// The arrival rate is negative or not finite.
    #[error("the arrival rate {0} is not a finite number >= 0")]
    BadArrivalRate(f64),
    /// The mean task time is negative or not finite.
    #[error("the mean task time {0} is not a finite number >= 0")]
    BadTaskTime(f64),
    /// The allowed miss probability is not in `(0, 1]`.
    #[error("the miss probability {0} is not in (0, 1]")]
    BadMissProbability(f64),
    /// No pool of at most [`MAX_POOL`] workers is enough.
    #[error("no pool of at most {MAX_POOL} workers misses at most {0} of the requests")]
    TooLarge(f64),
}

/// The smallest pool that misses at most `max_miss_probability` of the requests, when requests
/// arrive at `arrival_rate` per unit of time and each holds a worker for `mean_task_time` units
/// on average (the same unit: per second and seconds, per minute and minutes, …).
pub fn smallest_pool(
    arrival_rate: f64,
    mean_task_time: f64,
    max_miss_probability: f64,
) -> Result<PoolSize, SizingError> {
    if !(arrival_rate.is_finite() && arrival_rate >= 0.0) {
        return Err(SizingError::BadArrivalRate(arrival_rate));
    }
    if !(mean_task_time.is_finite() && mean_task_time >= 0.0) {
        return Err(SizingError::BadTaskTime(mean_task_time));
    }
    if !(max_miss_probability > 0.0 && max_miss_probability <= 1.0) {
        return Err(SizingError::BadMissProbability(max_miss_probability));
    }
    let load = arrival_rate * mean_task_time;
    if !load.is_finite() {
        return Err(SizingError::TooLarge(max_miss_probability));
    }
    // Walk the recurrence up from c = 0 until B falls to the target: B decreases in c.
    let (mut c, mut b) = (0u32, 1.0f64);
    while b > max_miss_probability {
        if c == MAX_POOL {
            return Err(SizingError::TooLarge(max_miss_probability));
        }
        c += 1;
        let eb = load * b;
        b = eb / (f64::from(c) + eb);
    }
    let busy = load * (1.0 - b);
    Ok(PoolSize {
        c,
        offered_load: load,
        miss_probability: b,
        expected_busy_workers: busy,
        expected_idle_workers: f64::from(c) - busy,
    })
}
