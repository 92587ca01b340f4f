//! Clocks for drivers. Pure machines never read one; the engine reads whichever it is given,
//! so the same engine code runs in real time and in a simulation's virtual time.

use std::fmt::Debug;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::model::Timestamp;

/// A source of the current time.
pub trait Clock: Send + Sync + Debug {
    /// Now.
    fn now(&self) -> Timestamp;
}

/// Wall-clock time: milliseconds since the Unix epoch.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        Timestamp::from_millis(ms)
    }
}

/// Time that moves only when told to. Clones share the same time.
#[derive(Debug, Clone, Default)]
pub struct VirtualClock {
    ms: Arc<AtomicU64>,
}

impl VirtualClock {
    /// A clock at `start`.
    pub fn new(start: Timestamp) -> Self {
        Self {
            ms: Arc::new(AtomicU64::new(start.as_millis())),
        }
    }

    /// Moves the clock to `to`; a time earlier than now is ignored (time never goes back).
    pub fn set(&self, to: Timestamp) {
        self.ms.fetch_max(to.as_millis(), Ordering::SeqCst);
    }

    /// Moves the clock `ms` milliseconds forward.
    pub fn advance(&self, ms: u64) {
        self.ms.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for VirtualClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_millis(self.ms.load(Ordering::SeqCst))
    }
}

/// Tokio's time, from `start`: `start` plus the time elapsed on tokio's clock since the clock
/// was made. Under tokio's paused time (`#[tokio::test(start_paused = true)]`) a spawned
/// engine's minutes pass in microseconds and its timers, a platform's latency and the
/// engine's deadlines all read the same time, so slow-platform tests run exactly. Clones
/// share the origin. Must be made inside a tokio runtime.
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    origin: tokio::time::Instant,
    start: Timestamp,
}

impl TokioClock {
    /// A clock reading `start` now.
    pub fn new(start: Timestamp) -> Self {
        Self {
            origin: tokio::time::Instant::now(),
            start,
        }
    }
}

impl Clock for TokioClock {
    fn now(&self) -> Timestamp {
        let elapsed = u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.start.plus_millis(elapsed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn tokio_time_reads_as_its_start_plus_what_elapsed() {
        let clock = TokioClock::new(Timestamp::from_millis(1_000));
        assert_eq!(clock.now(), Timestamp::from_millis(1_000));
        tokio::time::sleep(std::time::Duration::from_secs(60)).await;
        assert_eq!(clock.now(), Timestamp::from_millis(61_000));
    }

    #[test]
    fn virtual_time_only_moves_forward() {
        let clock = VirtualClock::new(Timestamp::from_millis(10));
        let shared = clock.clone();
        clock.advance(5);
        assert_eq!(shared.now(), Timestamp::from_millis(15));
        clock.set(Timestamp::from_millis(3));
        assert_eq!(shared.now(), Timestamp::from_millis(15));
        clock.set(Timestamp::from_millis(40));
        assert_eq!(shared.now(), Timestamp::from_millis(40));
    }

    #[test]
    fn system_time_is_after_2020() {
        assert!(SystemClock.now() > Timestamp::from_millis(1_577_836_800_000));
    }
}
