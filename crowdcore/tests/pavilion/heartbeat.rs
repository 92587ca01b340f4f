//! Heartbeats: a present worker silent for `heartbeat_timeout_ms` is gone (`timed_out`), found
//! by asking `poll_timeout` and calling `handle_timeout` then; a heartbeat or a page reload (a
//! second arrival of the same assignment) pushes the deadline back and changes nothing else.

use crate::support::{check, check_from};

/// One active seat and one waiting seat, a 1 s timeout, base pay to see who is paid.
const ONE: &str = "min_active=1 max_active=1 min_waiting=0 max_waiting=1 heartbeat_timeout_ms=1000 base_pay_cents=100";
/// [`ONE`] with W1 active (arrived at 10) and W2 waiting (arrived at 20).
const BOTH: &str = "
    0 start
    1 posted H1 2
    10 arrive W1 A1 H1
    20 arrive W2 A2 H1
";
// BOTH's effects: #1 hire 2, #2 notify task_began 1, #3 promote W1 A1.

#[test]
fn the_first_deadline_is_the_oldest_silence() {
    check_from(ONE, BOTH, "next_timeout 1010", "");
}

#[test]
fn a_silent_active_worker_times_out_and_the_next_is_promoted() {
    check_from(
        ONE,
        BOTH,
        "
        500 hb A2
        timeout
        next_timeout 1500
        ",
        "
        1010 #4 timed_out W1 A1
        1010 #5 promote W2 A2
        1010 #6 hire 1
        ",
    );
}

#[test]
fn a_silent_waiting_worker_times_out() {
    check_from(
        ONE,
        BOTH,
        "
        900 hb A1
        timeout
        next_timeout 1900
        ",
        "1020 #4 timed_out W2 A2\n1020 #5 hire 1",
    );
}

#[test]
fn a_timed_out_slot_is_hired_for_whether_or_not_the_platform_reopens_slots() {
    check_from(
        &format!("{ONE} returned_slots_reopen=false"),
        BOTH,
        "
        900 hb A1
        timeout
        ",
        "
        1020 #4 timed_out W2 A2
        1020 #5 hire 1
        ",
    );
}

#[test]
fn workers_silent_together_time_out_together_in_queue_order() {
    check_from(
        ONE,
        BOTH,
        "
        500 hb A2
        500 hb A1
        next_timeout 1500
        timeout
        next_timeout none
        ",
        "
        1500 #4 timed_out W1 A1
        1500 #5 timed_out W2 A2
        1500 #6 hire 2
        ",
    );
}

#[test]
fn a_tick_before_the_deadline_does_nothing_and_at_it_times_out() {
    check_from(
        ONE,
        BOTH,
        "
        1009 tick
        1010 tick
        ",
        "
        1010 #4 timed_out W1 A1
        1010 #5 promote W2 A2
        1010 #6 hire 1
        ",
    );
}

#[test]
fn a_heartbeat_keeps_a_worker_alive() {
    check_from(
        ONE,
        BOTH,
        "
        1000 hb A1
        1010 hb A2
        1999 tick
        2000 tick
        ",
        "
        2000 #4 timed_out W1 A1
        2000 #5 promote W2 A2
        2000 #6 hire 1
        ",
    );
}

#[test]
fn a_page_reload_resumes_the_seat_and_pushes_the_deadline() {
    let m = check_from(
        ONE,
        BOTH,
        "
        900 arrive W1 A1 H1
        910 arrive W2 A2 H1
        next_timeout 1900
        ",
        "",
    );
    assert_eq!((m.active_len(), m.waiting_len()), (1, 1));
}

#[test]
fn a_reloaded_worker_is_not_seated_twice_nor_paid_twice() {
    check_from(
        ONE,
        BOTH,
        "
        30 arrive W2 A2 H1
        40 arrive W1 A1 H1
        50 submit A1
        60 submit A2
        ",
        "
        50 #4 pay W1 A1 base 100
        50 #5 promote W2 A2
        50 #6 hire 1
        60 #7 pay W2 A2 base 100
        60 #8 hire 1
        ",
    );
}

#[test]
fn a_worker_who_timed_out_cannot_come_back() {
    check_from(
        ONE,
        BOTH,
        "
        500 hb A2
        timeout
        1100 hb A1
        1200 arrive W1 A1 H1
        1300 submit A1
        ",
        "
        1010 #4 timed_out W1 A1
        1010 #5 promote W2 A2
        1010 #6 hire 1
        1100 rejected assignment A1 already left
        1200 rejected assignment A1 already left
        1300 rejected assignment A1 already left
        ",
    );
}

#[test]
fn a_hiring_pause_is_found_through_poll_timeout() {
    check(
        "min_active=1 max_active=1 min_waiting=0 max_waiting=0 hire_retry_ms=500",
        "
        0 start
        10 failed no funds
        next_timeout 510
        timeout
        next_timeout none
        ",
        "
        0 #1 hire 1
        10 #2 notify hire_failed 510 no funds
        510 #3 hire 1
        ",
    );
}

// A timed-out worker's page is gone but their assignment is not: the platform frees the slot
// only when they return it or it is abandoned. The machine hires for the seat at once and
// counts the freed slot as open only if the seat was not refilled meanwhile; otherwise the slot
// is surplus and its HIT is expired (a worker taking it could only be turned away).

#[test]
fn a_platform_return_of_a_timed_out_slot_after_the_rehire_expires_its_hit() {
    check_from(
        ONE,
        BOTH,
        "
        900 hb A1
        timeout
        1100 return A2
        1200 abandon A2
        ",
        "
        1020 #4 timed_out W2 A2
        1020 #5 hire 1
        1100 #6 expire_hits H1
        1200 rejected assignment A2 already left
        ",
    );
}

#[test]
fn a_platform_return_of_a_timed_out_slot_reopens_it_when_the_seat_is_still_empty() {
    // By 61030 W1 went silent too; A2's re-opened slot covers one of the two empty seats, so
    // the machine hires one, not two.
    check_from(
        ONE,
        BOTH,
        "
        900 hb A1
        timeout
        1030 failed #5
        1040 abandon A2
        61030 tick
        ",
        "
        1020 #4 timed_out W2 A2
        1020 #5 hire 1
        1030 #6 notify hire_failed 61030
        61030 #7 timed_out W1 A1
        61030 #8 hire 1
        ",
    );
}

#[test]
fn a_timed_out_worker_cannot_submit_after_all() {
    check_from(
        ONE,
        BOTH,
        "
        900 hb A1
        timeout
        1100 submit A2
        ",
        "
        1020 #4 timed_out W2 A2
        1020 #5 hire 1
        1100 rejected assignment A2 already left
        ",
    );
}

#[test]
fn deadlines_that_saturate_at_the_end_of_time_settle_a_worker_once() {
    // Both heartbeats' deadlines are u64::MAX: two live entries for one worker.
    check(
        "min_active=1 max_active=1 min_waiting=0 max_waiting=1 heartbeat_timeout_ms=30000",
        "
        0 start
        1 posted H1 2
        18446744073709531615 arrive W1 A1 H1
        18446744073709541615 hb A1
        18446744073709551615 tick
        ",
        "
        0 #1 hire 2
        18446744073709531615 #2 notify task_began 1
        18446744073709531615 #3 promote W1 A1
        18446744073709551615 #4 timed_out W1 A1
        18446744073709551615 #5 hire 1
        ",
    );
}
