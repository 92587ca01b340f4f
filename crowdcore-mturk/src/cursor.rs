//! The update cursor: MTurk has no stream of assignment events, only the assignments of each
//! HIT with their submit, approval and rejection times. The cursor turns those into a stream.
//!
//! A cursor holds a watermark (the latest event time reported) and the events reported within
//! the settle window before it. Polling lists every watched HIT's assignments, derives their
//! events, and reports those at or after `watermark - window` that the cursor has not seen, in
//! time order. An event MTurk lists late — up to the window after it happened — is still
//! reported, once; one listed later than that is missed. The cursor is plain text, so it
//! survives a restart in the engine's store.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crowdcore::platform::{AssignmentStatus, AssignmentUpdate, Cursor};

/// One assignment event, ordered by time then assignment then status.
#[derive(Debug, Clone)]
pub(crate) struct Event {
    pub(crate) at_ms: u64,
    pub(crate) assignment: String,
    pub(crate) status: u8,
    pub(crate) update: AssignmentUpdate,
}

/// Letters for the statuses MTurk lists.
pub(crate) fn status_code(status: AssignmentStatus) -> u8 {
    match status {
        AssignmentStatus::Submitted => b's',
        AssignmentStatus::Approved => b'a',
        AssignmentStatus::Rejected => b'r',
        AssignmentStatus::Accepted => b'c',
        AssignmentStatus::Returned => b't',
        AssignmentStatus::Abandoned => b'b',
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Position {
    /// The latest event time reported, in ms since the epoch.
    w: u64,
    /// Events reported at or after `w - window`: (time, assignment, status letter).
    seen: BTreeSet<(u64, String, char)>,
}

impl Position {
    pub(crate) fn parse(cursor: Option<&Cursor>) -> Option<Self> {
        match cursor {
            None => Some(Self::default()),
            Some(c) => serde_json::from_str(&c.0).ok(),
        }
    }

    pub(crate) fn to_cursor(&self) -> Cursor {
        // A struct of an integer and strings always serializes.
        Cursor(serde_json::to_string(self).expect("plain data serializes"))
    }

    /// The events after this position, at most `limit`, and the position after them; and
    /// whether events remain beyond the limit.
    pub(crate) fn advance(
        &self,
        mut events: Vec<Event>,
        window_ms: u64,
        limit: usize,
    ) -> (Vec<AssignmentUpdate>, Position, bool) {
        let floor = self.w.saturating_sub(window_ms);
        events.retain(|e| {
            e.at_ms >= floor
                && !self
                    .seen
                    .contains(&(e.at_ms, e.assignment.clone(), char::from(e.status)))
        });
        events.sort_by(|a, b| {
            (a.at_ms, &a.assignment, a.status).cmp(&(b.at_ms, &b.assignment, b.status))
        });
        events.dedup_by(|a, b| {
            a.at_ms == b.at_ms && a.assignment == b.assignment && a.status == b.status
        });
        let more = events.len() > limit;
        events.truncate(limit);
        let w = events.last().map_or(self.w, |e| e.at_ms.max(self.w));
        let floor = w.saturating_sub(window_ms);
        let mut seen: BTreeSet<_> = self
            .seen
            .iter()
            .filter(|(t, _, _)| *t >= floor)
            .cloned()
            .collect();
        seen.extend(
            events
                .iter()
                .filter(|e| e.at_ms >= floor)
                .map(|e| (e.at_ms, e.assignment.clone(), char::from(e.status))),
        );
        let updates = events.into_iter().map(|e| e.update).collect();
        (updates, Position { w, seen }, more)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crowdcore::{AssignmentId, HitId, Timestamp, WorkerId};

    fn ev(at_ms: u64, a: &str, status: AssignmentStatus) -> Event {
        Event {
            at_ms,
            assignment: a.into(),
            status: status_code(status),
            update: AssignmentUpdate {
                assignment: AssignmentId::new(a),
                worker: WorkerId::new("W"),
                hit: HitId::new("H"),
                status,
                at: Timestamp::from_millis(at_ms),
            },
        }
    }

    use AssignmentStatus::{Approved, Submitted};

    #[test]
    fn each_event_is_reported_once_in_time_order_also_when_listed_late() {
        let start = Position::parse(None).unwrap();
        let (got, p1, more) = start.advance(
            vec![ev(2_000, "A2", Submitted), ev(1_000, "A1", Submitted)],
            60_000,
            10,
        );
        assert!(!more);
        let names: Vec<_> = got.iter().map(|u| u.assignment.to_string()).collect();
        assert_eq!(
            names,
            ["A2", "A1"]
                .map(String::from)
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
        );
        // The cursor survives as text; the same listing reports nothing new.
        let p1 = Position::parse(Some(&p1.to_cursor())).unwrap();
        let (again, p2, _) = p1.advance(
            vec![ev(1_000, "A1", Submitted), ev(2_000, "A2", Submitted)],
            60_000,
            10,
        );
        assert!(again.is_empty());
        assert_eq!(
            p2.to_cursor(),
            p1.to_cursor(),
            "nothing new: the same cursor"
        );
        // A3 happened before the watermark but is listed only now: still reported, once.
        let listing = vec![
            ev(1_000, "A1", Submitted),
            ev(1_500, "A3", Submitted),
            ev(2_000, "A2", Submitted),
            ev(9_000, "A1", Approved),
        ];
        let (late, p3, _) = p2.advance(listing.clone(), 60_000, 10);
        assert_eq!(late.len(), 2);
        assert_eq!(late[0].assignment.as_str(), "A3");
        assert_eq!(late[1].status, Approved);
        let (none, _, _) = p3.advance(listing, 60_000, 10);
        assert!(none.is_empty());
    }

    #[test]
    fn pages_split_at_the_limit_without_losing_events_at_the_same_time() {
        let listing: Vec<_> = (0..5)
            .map(|i| ev(1_000, &format!("A{i}"), Submitted))
            .collect();
        let (first, p, more) = Position::default().advance(listing.clone(), 0, 2);
        assert!(more);
        assert_eq!(first.len(), 2);
        let (second, p, more) = p.advance(listing.clone(), 0, 2);
        assert!(more);
        let (third, _, more) = p.advance(listing, 0, 2);
        assert!(!more);
        // Each event exactly once, in order: a repeat across a page boundary would show here.
        let all: Vec<String> = first
            .into_iter()
            .chain(second)
            .chain(third)
            .map(|u| u.assignment.to_string())
            .collect();
        assert_eq!(all, ["A0", "A1", "A2", "A3", "A4"]);
    }

    #[test]
    fn garbage_is_not_a_cursor() {
        assert!(Position::parse(Some(&Cursor("17".into()))).is_none());
    }
}
