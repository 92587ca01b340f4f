//! Observer cursors as data: a listing of `(id, time, visible at)` rows, polls at given
//! times, and the ids each poll must find.

use crowdcore::pipeline::{
    AssignmentPage, AssignmentStatus, Observer, ObserverConfig, PoolAssignment, PoolId, TimeField,
};
use crowdcore::{AssignmentId, Timestamp, WorkerId};

/// An assignment submitted at `time`, listed from `visible`.
struct Row(&'static str, u64, u64);

fn assignment(id: &str, time: u64) -> PoolAssignment {
    PoolAssignment {
        id: AssignmentId::new(id),
        pool: PoolId::new("p"),
        worker: WorkerId::new("w"),
        status: AssignmentStatus::Submitted,
        created: Timestamp::from_millis(time),
        submitted: Some(Timestamp::from_millis(time)),
        accepted: None,
        rejected: None,
        tasks: vec![],
        solutions: vec![],
    }
}

fn config(lag_ms: u64, page_size: u32) -> ObserverConfig {
    ObserverConfig {
        field: TimeField::Submitted,
        status: vec![AssignmentStatus::Submitted],
        lag_ms,
        page_size,
    }
}

/// Polls `rows` at each time in `polls` and checks the ids found; also checks that a cursor
/// saved after every page and restored gives the same result (the runtime stores it).
fn check(config: ObserverConfig, rows: &[Row], polls: &[(u64, &[&str])]) {
    for restore in [false, true] {
        let mut observer = Observer::new(PoolId::new("p"), config.clone());
        let mut pages = 0;
        for (now, want) in polls {
            let now = Timestamp::from_millis(*now);
            let mut found = Vec::new();
            while let Some(query) = observer.next_query(now) {
                pages += 1;
                assert!(pages < 1_000, "the observer does not stop paging");
                let mut items: Vec<PoolAssignment> = rows
                    .iter()
                    .filter(|r| r.2 <= now.as_millis())
                    .map(|r| assignment(r.0, r.1))
                    .filter(|a| query.matches(a))
                    .collect();
                items.sort_by(|a, b| match query.sort {
                    crowdcore::pipeline::SortBy::TimeThenId => {
                        (a.submitted, &a.id).cmp(&(b.submitted, &b.id))
                    }
                    crowdcore::pipeline::SortBy::Id => a.id.cmp(&b.id),
                });
                let has_more = items.len() > query.limit as usize;
                items.truncate(query.limit as usize);
                let page = AssignmentPage { items, has_more };
                let fresh = observer.ingest(&query, &page).expect("a page that fits");
                found.extend(fresh.into_iter().map(|a| a.id.as_str().to_owned()));
                if restore {
                    let text = serde_json::to_string(observer.cursor()).unwrap();
                    observer = Observer::resume(
                        PoolId::new("p"),
                        config.clone(),
                        serde_json::from_str(&text).unwrap(),
                    );
                }
            }
            assert_eq!(found, *want, "poll at {now} (restoring: {restore})");
        }
    }
}

#[test]
fn each_assignment_once_in_time_order() {
    check(
        config(0, 10),
        &[Row("a1", 10, 10), Row("a2", 20, 20), Row("a3", 30, 30)],
        &[(25, &["a1", "a2"]), (40, &["a3"]), (50, &[])],
    );
}

#[test]
fn equal_timestamps_across_polls_are_remembered_by_id() {
    // a2 shares a1's time but is listed later: `_gte` finds it, the remembered id skips a1.
    check(
        config(0, 10),
        &[
            Row("a1", 100, 100),
            Row("a2", 100, 150),
            Row("a3", 100, 110),
        ],
        &[(101, &["a1"]), (120, &["a3"]), (200, &["a2"]), (300, &[])],
    );
}

#[test]
fn a_whole_page_of_one_timestamp_is_paged_by_id() {
    check(
        config(0, 2),
        &[
            Row("a1", 100, 0),
            Row("a2", 100, 0),
            Row("a3", 100, 0),
            Row("a4", 100, 0),
            Row("a5", 100, 0),
            Row("a6", 101, 0),
            Row("a7", 102, 0),
        ],
        &[
            (200, &["a1", "a2", "a3", "a4", "a5", "a6", "a7"]),
            (300, &[]),
        ],
    );
}

#[test]
fn a_full_page_with_seen_ids_does_not_loop() {
    // The first poll sees a1, a2 at 100; later a3 and a4 appear at 100 too. The page of
    // three (a1, a2, a3) is one timestamp and full: paged by id.
    check(
        config(0, 3),
        &[
            Row("a1", 100, 0),
            Row("a2", 100, 0),
            Row("a3", 100, 150),
            Row("a4", 100, 150),
            Row("a5", 120, 150),
        ],
        &[(110, &["a1", "a2"]), (200, &["a3", "a4", "a5"]), (300, &[])],
    );
}

#[test]
fn without_a_lag_a_late_listing_is_missed() {
    // a1 (time 100) is listed only at 150; a2 (time 110) at once. Without a lag the cursor
    // moves past 100 before a1 shows: a1 is lost. This is why the lag exists.
    check(
        config(0, 10),
        &[Row("a1", 100, 150), Row("a2", 110, 110)],
        &[(120, &["a2"]), (200, &[])],
    );
}

#[test]
fn the_lag_waits_for_late_listings() {
    check(
        config(60, 10),
        &[Row("a1", 100, 150), Row("a2", 110, 110)],
        &[(120, &[]), (165, &["a1"]), (171, &["a2"]), (300, &[])],
    );
}

#[test]
fn the_default_lag_is_a_minute() {
    assert_eq!(ObserverConfig::default().lag_ms, 60_000);
    check(
        ObserverConfig::default(),
        &[Row("a1", 1_000, 30_000)],
        &[(60_000, &[]), (61_001, &["a1"])],
    );
}

#[test]
fn caught_up_is_the_bound_of_the_last_complete_listing() {
    let mut observer = Observer::new(PoolId::new("p"), config(60, 2));
    let now = Timestamp::from_millis(1_000);
    let query = observer.next_query(now).unwrap();
    assert_eq!(query.lt, Some(Timestamp::from_millis(940)));
    let page = AssignmentPage {
        items: vec![assignment("a1", 10), assignment("a2", 20)],
        has_more: true,
    };
    observer.ingest(&query, &page).unwrap();
    assert_eq!(observer.cursor().caught_up, None, "a listing in progress");
    // The next page keeps the bound even though time moved on.
    let query = observer.next_query(Timestamp::from_millis(5_000)).unwrap();
    assert_eq!(query.lt, Some(Timestamp::from_millis(940)));
    let page = AssignmentPage {
        items: vec![],
        has_more: false,
    };
    observer.ingest(&query, &page).unwrap();
    assert_eq!(
        observer.cursor().caught_up,
        Some(Timestamp::from_millis(940))
    );
    // That poll is over; the next one starts when time has moved.
    assert_eq!(observer.next_query(Timestamp::from_millis(1_000)), None);
    assert!(observer.next_query(Timestamp::from_millis(1_001)).is_some());
}

#[test]
fn a_page_that_ignores_the_query_is_refused_and_changes_nothing() {
    let mut observer = Observer::new(PoolId::new("p"), config(0, 10));
    let now = Timestamp::from_millis(1_000);
    let query = observer.next_query(now).unwrap();
    let good = AssignmentPage {
        items: vec![assignment("a2", 50)],
        has_more: true,
    };
    observer.ingest(&query, &good).unwrap();
    let before = observer.cursor().clone();
    let query = observer.next_query(now).unwrap();
    for items in [
        vec![assignment("a1", 40)], // before the `_gte` bound
        vec![assignment("a4", 70), assignment("a3", 60)], // out of order
        vec![assignment("a5", 1_000)], // past the `_lt` bound
    ] {
        let page = AssignmentPage {
            items,
            has_more: false,
        };
        assert!(observer.ingest(&query, &page).is_err());
        assert_eq!(observer.cursor(), &before);
    }
}

/// Runs an observer over a random listing: returns every id found, in order.
fn observe_all(
    rows: &[(String, u64, u64)],
    lag_ms: u64,
    page_size: u32,
    polls: &[u64],
) -> Vec<String> {
    let mut observer = Observer::new(PoolId::new("p"), config(lag_ms, page_size));
    let mut found = Vec::new();
    let mut pages = 0;
    for &now in polls {
        let now = Timestamp::from_millis(now);
        while let Some(query) = observer.next_query(now) {
            pages += 1;
            assert!(pages < 100_000, "the observer does not stop paging");
            let mut items: Vec<PoolAssignment> = rows
                .iter()
                .filter(|r| r.2 <= now.as_millis())
                .map(|r| assignment(&r.0, r.1))
                .filter(|a| query.matches(a))
                .collect();
            items.sort_by(|a, b| match query.sort {
                crowdcore::pipeline::SortBy::TimeThenId => {
                    (a.submitted, &a.id).cmp(&(b.submitted, &b.id))
                }
                crowdcore::pipeline::SortBy::Id => a.id.cmp(&b.id),
            });
            let has_more = items.len() > query.limit as usize;
            items.truncate(query.limit as usize);
            let page = AssignmentPage { items, has_more };
            let fresh = observer.ingest(&query, &page).expect("a page that fits");
            found.extend(fresh.into_iter().map(|a| a.id.as_str().to_owned()));
        }
    }
    found
}

proptest::proptest! {
    /// Whatever the timestamps (many equal), page sizes and poll times: an assignment is never
    /// found twice; and when every listing delay is within the lag, every one is found.
    #[test]
    fn every_assignment_once_whatever_the_listing(
        times in proptest::collection::vec((0u64..60, 0u64..40), 0..40),
        lag_ms in 0u64..50,
        page_size in 1u32..5,
        steps in proptest::collection::vec(1u64..40, 1..30),
    ) {
        let rows: Vec<(String, u64, u64)> = times
            .iter()
            .enumerate()
            .map(|(i, (t, delay))| (format!("a{i:03}"), 100 + t, 100 + t + delay))
            .collect();
        let mut polls: Vec<u64> = steps
            .iter()
            .scan(100, |now, step| {
                *now += step;
                Some(*now)
            })
            .collect();
        // A last poll after everything is listed and past the lag.
        polls.push(1_000);
        let found = observe_all(&rows, lag_ms, page_size, &polls);
        let mut unique = found.clone();
        unique.sort();
        unique.dedup();
        proptest::prop_assert_eq!(unique.len(), found.len(), "found twice: {:?}", found);
        if times.iter().all(|(_, delay)| *delay <= lag_ms) {
            proptest::prop_assert_eq!(unique.len(), rows.len(), "missed some: {:?}", found);
        }
    }
}
