//! HIT refresh: a HIT with open slots older than `refresh_after_ms` is expired and its open
//! slots hired anew (on a new HIT), so the work stays visible; a fully taken HIT is looked at
//! again later; posting stops when enough workers are on hand; the posting state is in the
//! snapshot; hiring stays within the template's budget.

use crowdcore::retainer::Retainer;

use crate::support::check;

/// Refresh after 200 s; heartbeats never time out in these cases.
const REFRESH: &str = "refresh_after_ms=200000 heartbeat_timeout_ms=100000000";

#[test]
fn a_hit_with_open_slots_is_reposted_once_it_is_old() {
    check(
        REFRESH,
        "
        0 template T
        0 make R1 T 3 1000000 F1
        1 posted T#2 H1 3
        2 arrive W1 A1 H1
        next_timeout 200001
        200000 tick
        timeout
        200010 posted T#4 H2 2
        next_timeout 400010
        200020 arrive W2 A2 H2
        ",
        "
        0 T#1 notify task_began 0
        0 T#2 hire 3
        200001 T#3 expire_hits H1
        200001 T#4 hire 2
        ",
    );
}

#[test]
fn a_fully_taken_hit_is_looked_at_again_later() {
    check(
        REFRESH,
        "
        0 template T
        0 make R1 T 2 1000000 F1
        1 posted T#2 H1 2
        2 arrive W1 A1 H1
        3 arrive W2 A2 H1
        next_timeout 200001
        timeout
        next_timeout 400001
        300000 return A2
        timeout
        ",
        "
        0 T#1 notify task_began 0
        0 T#2 hire 2
        // A2's slot re-opened at 300 s on the old HIT: it is reposted.
        400001 T#3 expire_hits H1
        400001 T#4 hire 1
        ",
    );
}

#[test]
fn without_refresh_hits_are_never_reposted() {
    check(
        "heartbeat_timeout_ms=100000000",
        "
        0 template T
        0 make R1 T 3 1000000 F1
        1 posted T#2 H1 3
        next_timeout 1000000
        ",
        "
        0 T#1 notify task_began 0
        0 T#2 hire 3
        ",
    );
}

#[test]
fn posting_stops_when_enough_are_on_hand() {
    check(
        REFRESH,
        "
        0 template T
        0 make R1 T 2 1000000 F1
        1 posted T#2 H1 1
        1 posted T#2 H1 2
        1 posted T#3 H2 2
        2 arrive W1 A1 H2
        3 arrive W2 A2 H1
        targets T 0 2
        4 arrive W3 A3 H2
        ",
        "
        0 T#1 notify task_began 0
        0 T#2 hire 2
        // One slot short: hire one more.
        1 T#3 hire 1
        1 rejected template T: hire s/T/2 is not in flight
        // H2 got a slot more than asked: W3, who took it, is one too many, and H2 is closed.
        4 T#4 turn_away W3 A3 job_full
        4 T#5 expire_hits H2
        ",
    );
}

#[test]
fn the_posting_state_survives_a_restore() {
    let m = check(
        REFRESH,
        "
        0 template T
        0 make R1 T 3 1000000 F1
        1 posted T#2 H1 3
        2 arrive W1 A1 H1
        ",
        "
        0 T#1 notify task_began 0
        0 T#2 hire 3
        ",
    );
    let snapshot = m.snapshot();
    assert_eq!(snapshot.hits.len(), 1);
    assert_eq!(snapshot.hits[0].posted_at.as_millis(), 1);
    assert_eq!(snapshot.refreshes[0].due.as_millis(), 200_001);
    let json = serde_json::to_string(&snapshot).unwrap();
    let mut back = Retainer::restore(serde_json::from_str(&json).unwrap()).unwrap();
    assert_eq!(back.poll_timeout().map(|t| t.as_millis()), Some(200_001));
    back.handle_timeout(back.poll_timeout().unwrap());
    let kinds: Vec<String> = std::iter::from_fn(|| back.poll_effect())
        .map(|e| crate::support::render(&e))
        .collect();
    assert_eq!(kinds, ["200001 T#3 expire_hits H1", "200001 T#4 hire 2"]);
}

#[test]
fn hiring_stays_within_the_template_budget() {
    check(
        "",
        "
        0 template T reward=50 budget=100
        0 make R1 T 3 1000000 F1
        1 posted T#3 H1 2
        2 arrive W1 A1 H1
        3 submit A1
        ",
        "
        0 T#1 notify task_began 0
        0 T#2 notify budget_exhausted 0 100
        0 T#3 hire 2
        3 T#4 pay W1 A1 base 50
        ",
    );
}
