//! The seed's four rules, as consequences of hiring the deficit: a worker leaving the waiting
//! queue by submitting is replaced by a hire (rule 1); leaving the active queue by submitting
//! promotes the oldest waiting worker and hires (rule 2); leaving the active queue by returning
//! or abandoning promotes (rule 3); leaving the waiting queue that way does nothing (rule 4).
//! Rules 3 and 4 rely on the platform re-opening the slot; when it does not
//! (`returned_slots_reopen=false`) the machine hires for it instead.
//!
//! Every case starts from [`FULL`]: W1 and W2 active, W3 waiting, three seats, no slot open.

use crate::support::{FULL, check, check_from};

/// [`crate::support::SMALL`] with a base pay, so submissions show.
const REOPEN: &str = "min_active=1 max_active=2 min_waiting=1 max_waiting=1 base_pay_cents=100";
const NO_REOPEN: &str = "min_active=1 max_active=2 min_waiting=1 max_waiting=1 base_pay_cents=100 returned_slots_reopen=false";

#[test]
fn rule_1_a_waiting_worker_submits_so_hire_one() {
    for config in [REOPEN, NO_REOPEN] {
        check_from(
            config,
            FULL,
            "10 submit A3",
            "
            10 #5 pay W3 A3 base 100
            10 #6 hire 1
            ",
        );
    }
}

#[test]
fn rule_2_an_active_worker_submits_so_promote_the_oldest_and_hire_one() {
    for config in [REOPEN, NO_REOPEN] {
        check_from(
            config,
            FULL,
            "10 submit A1",
            "
            10 #5 pay W1 A1 base 100
            10 #6 promote W3 A3
            10 #7 hire 1
            ",
        );
    }
}

#[test]
fn rule_3_an_active_worker_returns_so_promote_and_the_slot_reopens() {
    check_from(REOPEN, FULL, "10 return A2", "10 #5 promote W3 A3");
}

#[test]
fn rule_3_an_active_worker_abandons_so_promote_and_the_slot_reopens() {
    check_from(REOPEN, FULL, "10 abandon A1", "10 #5 promote W3 A3");
}

#[test]
fn rule_3_without_reopening_the_machine_hires_for_the_lost_slot() {
    for leave in ["10 return A1", "10 abandon A1"] {
        check_from(
            NO_REOPEN,
            FULL,
            leave,
            "
            10 #5 promote W3 A3
            10 #6 hire 1
            ",
        );
    }
}

#[test]
fn rule_4_a_waiting_worker_returns_and_nothing_happens() {
    for leave in ["10 return A3", "10 abandon A3"] {
        check_from(REOPEN, FULL, leave, "");
    }
}

#[test]
fn rule_4_the_reopened_slot_seats_the_next_arrival_without_a_hire() {
    check_from(
        REOPEN,
        FULL,
        "
        10 return A3
        11 arrive W4 A4 H1
        12 submit A1
        ",
        "
        12 #5 pay W1 A1 base 100
        12 #6 promote W4 A4
        12 #7 hire 1
        ",
    );
}

#[test]
fn rule_4_without_reopening_the_machine_hires_for_the_lost_slot() {
    for leave in ["10 return A3", "10 abandon A3"] {
        check_from(NO_REOPEN, FULL, leave, "10 #5 hire 1");
    }
}

#[test]
fn promotion_is_first_in_first_out() {
    check(
        "min_active=1 max_active=1 min_waiting=1 max_waiting=3",
        "
        0 start
        1 posted H1 4
        2 arrive W1 A1 H1
        3 arrive W2 A2 H1
        4 arrive W3 A3 H1
        5 arrive W4 A4 H1
        10 return A1
        11 submit A2
        12 abandon A3
        ",
        "
        0 #1 hire 4
        3 #2 notify task_began 2
        3 #3 promote W1 A1
        10 #4 promote W2 A2
        11 #5 promote W3 A3
        11 #6 hire 1
        12 #7 promote W4 A4
        ",
    );
}

#[test]
fn a_short_post_is_topped_up_at_once() {
    check(
        "min_active=1 max_active=2 min_waiting=1 max_waiting=1",
        "
        0 start
        1 posted H1 2
        ",
        "
        0 #1 hire 3
        1 #2 hire 1
        ",
    );
}

#[test]
fn hires_in_flight_count_so_departures_hire_only_the_deficit() {
    check_from(
        REOPEN,
        FULL,
        "
        10 submit A3
        11 return A1
        12 submit A2
        ",
        "
        10 #5 pay W3 A3 base 100
        10 #6 hire 1
        12 #7 pay W2 A2 base 100
        12 #8 hire 1
        ",
    );
}

#[test]
fn departures_during_a_hiring_pause_are_hired_for_in_one_go() {
    check_from(
        REOPEN,
        FULL,
        "
        10 submit A3
        11 failed #6 throttled
        12 submit A1
        13 submit A2
        next_timeout 60011
        timeout
        ",
        "
        10 #5 pay W3 A3 base 100
        10 #6 hire 1
        11 #7 notify hire_failed 60011 throttled
        12 #8 pay W1 A1 base 100
        13 #9 pay W2 A2 base 100
        60011 #10 hire 3
        ",
    );
}

#[test]
fn hire_results_can_answer_hires_out_of_order() {
    check_from(
        REOPEN,
        FULL,
        "
        10 submit A3
        11 submit A2
        12 posted H3 1 #8
        13 posted H2 1 #6
        14 arrive W4 A4 H2
        15 arrive W5 A5 H3
        ",
        "
        10 #5 pay W3 A3 base 100
        10 #6 hire 1
        11 #7 pay W2 A2 base 100
        11 #8 hire 1
        14 #9 promote W4 A4
        ",
    );
}
