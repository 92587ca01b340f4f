//! The simulations' event queue: events by time, and events due at the same time in the order
//! they were scheduled (so a seeded run is the same on every machine).

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use crate::model::Timestamp;

/// Scheduled events of a discrete-event simulation.
#[derive(Debug)]
pub(crate) struct EventQueue<E> {
    heap: BinaryHeap<Reverse<(Timestamp, u64, E)>>,
    seq: u64,
}

impl<E: Ord> EventQueue<E> {
    pub(crate) fn new() -> Self {
        Self {
            heap: BinaryHeap::new(),
            seq: 0,
        }
    }

    /// Schedules `event` at `at`, after everything already scheduled at that time.
    pub(crate) fn schedule(&mut self, at: Timestamp, event: E) {
        self.seq += 1;
        self.heap.push(Reverse((at, self.seq, event)));
    }

    /// When the next event falls due.
    pub(crate) fn next_at(&self) -> Option<Timestamp> {
        self.heap.peek().map(|Reverse((at, _, _))| *at)
    }

    /// Takes the next event due at or before `now`.
    pub(crate) fn pop_due(&mut self, now: Timestamp) -> Option<E> {
        if self.next_at()? > now {
            return None;
        }
        self.heap.pop().map(|Reverse((_, _, event))| event)
    }
}

/// The instant a simulation steps to next: the earlier of its next event and the engine's next
/// wake-up, or `end` when neither is scheduled.
pub(crate) fn next_step(
    event: Option<Timestamp>,
    wakeup: Option<Timestamp>,
    end: Timestamp,
) -> Timestamp {
    match (event, wakeup) {
        (Some(a), Some(b)) => a.min(b),
        (a, b) => a.or(b).unwrap_or(end),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_come_by_time_then_in_the_order_scheduled() {
        let mut q = EventQueue::new();
        let t = Timestamp::from_millis;
        q.schedule(t(20), 'c');
        q.schedule(t(10), 'b');
        q.schedule(t(10), 'a'); // after 'b': scheduled later at the same time
        q.schedule(t(30), 'd');
        assert_eq!(q.next_at(), Some(t(10)));
        assert_eq!(q.pop_due(t(5)), None);
        let due: Vec<char> = std::iter::from_fn(|| q.pop_due(t(20))).collect();
        assert_eq!(due, ['b', 'a', 'c']);
        assert_eq!(q.next_at(), Some(t(30)));
        assert_eq!(next_step(q.next_at(), Some(t(25)), t(100)), t(25));
        assert_eq!(next_step(None, None, t(100)), t(100));
        assert_eq!(next_step(q.next_at(), None, t(100)), t(30));
    }
}
