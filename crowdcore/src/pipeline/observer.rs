//! The observer: which assignments of a pool are new. Pure — no clock, no I/O: the runtime
//! passes the time in, sends the [`AssignmentQuery`] it asks for, and feeds the page back.
//!
//! The cursor is a time on a [`TimeField`] and the ids already seen at exactly that time.
//! Each listing asks for `field >= cursor time` (Toloka's `_gte`), sorted by time then id, and
//! skips the ids it remembers, so assignments sharing a timestamp are neither lost nor seen
//! twice. When a whole full page shares one timestamp, the `_gte` query would return the same
//! page forever, so the observer pages through that timestamp by id (`id_gt`) and then moves
//! past it. Listings only reach up to `now − lag`: platforms list new writes late (eventual
//! consistency), and an assignment that appears after the cursor moved past its time would be
//! missed; toloka-kit added the same lag (default 60 s) after it missed events.
//!
//! ```
//! use crowdcore::Timestamp;
//! use crowdcore::pipeline::{AssignmentPage, Observer, ObserverConfig, PoolId};
//!
//! let mut observer = Observer::new(PoolId::new("p1"), ObserverConfig::default());
//! let now = Timestamp::from_millis(120_000);
//! while let Some(query) = observer.next_query(now) {
//!     let page = AssignmentPage { items: vec![], has_more: false }; // platform.list_assignments(&query)
//!     let fresh = observer.ingest(&query, &page).unwrap();
//!     assert!(fresh.is_empty());
//! }
//! assert_eq!(observer.cursor().caught_up, Some(Timestamp::from_millis(60_000)));
//! ```

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::platform::{
    AssignmentPage, AssignmentQuery, AssignmentStatus, PoolAssignment, PoolId, SortBy, TimeField,
};
use crate::model::{AssignmentId, Timestamp};

/// How an observer lists a pool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ObserverConfig {
    /// The time field the cursor follows.
    pub field: TimeField,
    /// Only assignments in these statuses (empty: any).
    pub status: Vec<AssignmentStatus>,
    /// Listings reach only up to `now − lag_ms`.
    pub lag_ms: u64,
    /// Page size.
    pub page_size: u32,
}

impl Default for ObserverConfig {
    fn default() -> Self {
        Self {
            field: TimeField::Submitted,
            status: vec![AssignmentStatus::Submitted],
            lag_ms: 60_000,
            page_size: 100,
        }
    }
}

/// Where an observer stands: stored in the store with the assignments it produced.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObserverCursor {
    /// Everything before this time is seen (`None`: nothing yet).
    pub time: Option<Timestamp>,
    /// Ids seen at exactly `time`.
    pub seen: BTreeSet<AssignmentId>,
    /// Every assignment at `time` is seen too: the next listing starts after it.
    pub time_done: bool,
    /// Paging through one timestamp by id: the last id read.
    pub paging: Option<AssignmentId>,
    /// The upper bound of the last listing that reached the end: everything with a time
    /// before it is seen.
    pub caught_up: Option<Timestamp>,
    /// The upper bound of the listing in progress.
    pub bound: Option<Timestamp>,
}

/// An observer's page did not fit the query it answered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ObserveError {
    /// An item lacks the time field the query filtered on.
    #[error("assignment {0} has no value for the observed time field")]
    NoTime(AssignmentId),
    /// An item lies outside the query's bounds or order: the platform ignored a filter.
    #[error("assignment {0} is outside the query's bounds or order")]
    OutOfOrder(AssignmentId),
}

/// Finds a pool's new assignments. See the module docs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observer {
    pool: PoolId,
    config: ObserverConfig,
    cursor: ObserverCursor,
}

impl Observer {
    /// An observer of `pool` that has seen nothing.
    pub fn new(pool: PoolId, config: ObserverConfig) -> Self {
        Self::resume(pool, config, ObserverCursor::default())
    }

    /// An observer of `pool` resuming from `cursor`.
    pub fn resume(pool: PoolId, config: ObserverConfig, cursor: ObserverCursor) -> Self {
        Self {
            pool,
            config,
            cursor,
        }
    }

    /// Where it stands.
    pub fn cursor(&self) -> &ObserverCursor {
        &self.cursor
    }

    /// Its pool.
    pub fn pool(&self) -> &PoolId {
        &self.pool
    }

    /// The next listing to make at `now`, or `None` when there is nothing to ask until later.
    /// A listing in progress (a page with more after it) keeps its upper bound, so a poll
    /// spread over several pages reads one consistent range.
    pub fn next_query(&mut self, now: Timestamp) -> Option<AssignmentQuery> {
        let bound = match self.cursor.bound {
            Some(bound) => bound,
            None => {
                let bound =
                    Timestamp::from_millis(now.as_millis().saturating_sub(self.config.lag_ms));
                let start = self.start();
                if start.is_some_and(|s| s >= bound)
                    || self.cursor.caught_up.is_some_and(|c| c >= bound)
                    || bound == Timestamp::ZERO
                {
                    // Nothing can be new below `bound` yet, or this listing is done.
                    if start.is_some_and(|s| s >= bound) {
                        // Everything below `bound` is seen: so is the listing up to it.
                        self.cursor.caught_up = self.cursor.caught_up.max(Some(bound));
                    }
                    return None;
                }
                self.cursor.bound = Some(bound);
                bound
            }
        };
        let base = AssignmentQuery {
            pool: self.pool.clone(),
            status: self.config.status.clone(),
            field: self.config.field,
            gte: None,
            lt: Some(bound),
            id_gt: None,
            sort: SortBy::TimeThenId,
            limit: self.config.page_size.max(1),
        };
        Some(match (&self.cursor.paging, self.cursor.time) {
            (Some(after), Some(time)) => AssignmentQuery {
                gte: Some(time),
                lt: Some(time.plus_millis(1)),
                id_gt: Some(after.clone()),
                sort: SortBy::Id,
                ..base
            },
            _ => AssignmentQuery {
                gte: self.start(),
                ..base
            },
        })
    }

    /// Where the next time-ordered listing starts.
    fn start(&self) -> Option<Timestamp> {
        let time = self.cursor.time?;
        Some(if self.cursor.time_done {
            time.plus_millis(1)
        } else {
            time
        })
    }

    /// Takes the page that answered `query` and returns the assignments not seen before, in
    /// order; the cursor moves past them. Call [`next_query`](Self::next_query) again for
    /// the next page: it returns `None` once this poll is complete.
    ///
    /// A page that does not fit the query is refused and changes nothing.
    pub fn ingest(
        &mut self,
        query: &AssignmentQuery,
        page: &AssignmentPage,
    ) -> Result<Vec<PoolAssignment>, ObserveError> {
        let field = self.config.field;
        let mut times = Vec::with_capacity(page.items.len());
        let mut previous: Option<(Timestamp, &AssignmentId)> = None;
        for a in &page.items {
            let t = a
                .time(field)
                .ok_or_else(|| ObserveError::NoTime(a.id.clone()))?;
            let in_bounds = query.gte.is_none_or(|g| t >= g)
                && query.lt.is_none_or(|l| t < l)
                && query.id_gt.as_ref().is_none_or(|id| a.id > *id);
            let ordered = previous.is_none_or(|(pt, pid)| match query.sort {
                SortBy::TimeThenId => (pt, pid) < (t, &a.id),
                SortBy::Id => *pid < a.id,
            });
            if !in_bounds || !ordered {
                return Err(ObserveError::OutOfOrder(a.id.clone()));
            }
            previous = Some((t, &a.id));
            times.push(t);
        }
        let mut fresh = Vec::new();
        let c = &mut self.cursor;
        for (a, &t) in page.items.iter().zip(&times) {
            match c.time {
                Some(time) if t < time => continue,
                Some(time) if t == time => {
                    if c.time_done || !c.seen.insert(a.id.clone()) {
                        continue;
                    }
                }
                _ => {
                    c.time = Some(t);
                    c.time_done = false;
                    c.seen = BTreeSet::from([a.id.clone()]);
                }
            }
            fresh.push(a.clone());
        }
        let (first, last) = (times.first().copied(), times.last().copied());
        match query.sort {
            SortBy::Id => {
                if page.has_more {
                    c.paging = page.items.last().map(|a| a.id.clone());
                } else {
                    // The whole timestamp is read: move past it.
                    c.paging = None;
                    c.time_done = true;
                    c.seen.clear();
                }
            }
            SortBy::TimeThenId => {
                if page.has_more && first.is_some() && first == last {
                    // A full page of one timestamp: `_gte` would return it again; page by id.
                    c.paging = page.items.last().map(|a| a.id.clone());
                }
            }
        }
        let poll_done = match query.sort {
            // The end of one timestamp's id pages: the time-ordered listing goes on after it.
            SortBy::Id => page.items.is_empty() && page.has_more,
            SortBy::TimeThenId => !page.has_more || page.items.is_empty(),
        };
        if poll_done {
            c.caught_up = c.bound.take();
            c.paging = None;
        }
        Ok(fresh)
    }
}
