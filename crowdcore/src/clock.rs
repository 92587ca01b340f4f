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

#[cfg(test)]
mod tests {
    use super::*;

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
