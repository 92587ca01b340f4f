//! Turning workers away: an arrival with no seat for it (the platform delivered more than was
//! hired, or the targets fell while slots were open) is turned away as `job_full`; after stop,
//! as `job_ended`. A turned-away worker is not seated, not paid, and cannot come back.

use crate::support::{FULL, SMALL, check, check_from};

#[test]
fn an_arrival_beyond_every_seat_is_turned_away() {
    let m = check_from(
        SMALL,
        FULL,
        "10 arrive W4 A4 H1",
        "10 #5 turn_away W4 A4 job_full\n10 #6 expire_hits H1",
    );
    assert_eq!(m.present(), 3);
}

#[test]
fn an_arrival_through_an_open_slot_after_the_targets_fell_is_turned_away() {
    check(
        SMALL,
        "
        0 start
        1 posted H1 3
        2 arrive W1 A1 H1
        3 arrive W2 A2 H1
        10 targets 1 2 0 0
        11 arrive W3 A3 H1
        ",
        "
        0 #1 hire 3
        3 #2 notify task_began 2
        3 #3 promote W1 A1
        3 #4 promote W2 A2
        11 #5 turn_away W3 A3 job_full
        ",
    );
}

#[test]
fn an_arrival_after_stop_is_turned_away_as_job_ended() {
    check(
        SMALL,
        "
        0 start
        1 posted H1 3
        2 stop
        3 arrive W1 A1 H1
        ",
        "
        0 #1 hire 3
        3 #2 turn_away W1 A1 job_ended
        ",
    );
}

#[test]
fn a_turned_away_worker_is_unpaid_and_cannot_come_back() {
    // They came through a slot the machine did not count, so their HIT is expired at once.
    check_from(
        "min_active=1 max_active=2 min_waiting=1 max_waiting=1 base_pay_cents=100",
        FULL,
        "
        10 arrive W4 A4 H1
        11 arrive W4 A4 H1
        12 submit A4
        13 return A4
        14 return A4
        15 stop
        ",
        "
        10 #5 turn_away W4 A4 job_full
        10 #6 expire_hits H1
        11 rejected assignment A4 already left
        12 rejected assignment A4 already left
        14 rejected assignment A4 already left
        15 #7 release W1 A1 job_stopped
        15 #8 pay W1 A1 base 100
        15 #9 release W2 A2 job_stopped
        15 #10 pay W2 A2 base 100
        15 #11 release W3 A3 job_stopped
        15 #12 pay W3 A3 base 100
        ",
    );
}

#[test]
fn a_turned_away_arrival_does_not_trigger_hiring() {
    check_from(
        SMALL,
        FULL,
        "
        10 submit A3
        11 arrive W4 A4 H1
        12 arrive W5 A5 H1
        ",
        "
        10 #5 hire 1
        11 #6 turn_away W4 A4 job_full
        11 #7 expire_hits H1
        12 #8 turn_away W5 A5 job_full
        ",
    );
}
