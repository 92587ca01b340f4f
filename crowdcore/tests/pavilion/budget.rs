//! The budget cap: base pay is reserved for every seat when it is hired, so hiring stops where
//! the budget does; bonuses are paid only from what is left; arrivals the budget cannot seat are
//! turned away; the operator is told once.

use crate::support::{FULL, check, check_from};

/// Three seats at 100 each, but room for two.
const TIGHT: &str =
    "min_active=1 max_active=2 min_waiting=1 max_waiting=1 base_pay_cents=100 budget_cents=200";

#[test]
fn hiring_is_capped_by_the_budget_and_the_operator_is_told() {
    check(
        TIGHT,
        "0 start",
        "
        0 #1 notify budget_exhausted 0 200
        0 #2 hire 2
        ",
    );
}

#[test]
fn the_budget_notice_is_given_once() {
    let m = check(
        TIGHT,
        "
        0 start
        1 posted H1 2
        2 arrive W1 A1 H1
        3 arrive W2 A2 H1
        10 submit A1
        11 submit A2
        ",
        "
        0 #1 notify budget_exhausted 0 200
        0 #2 hire 2
        3 #3 notify task_began 2
        3 #4 promote W1 A1
        3 #5 promote W2 A2
        10 #6 pay W1 A1 base 100
        11 #7 pay W2 A2 base 100
        ",
    );
    assert_eq!(m.spent().minor, 200);
}

#[test]
fn an_unpaid_departure_frees_its_reservation_for_a_hire() {
    check(
        &format!("{TIGHT} returned_slots_reopen=false"),
        "
        0 start
        1 posted H1 2
        2 arrive W1 A1 H1
        3 arrive W2 A2 H1
        10 return A1
        ",
        "
        0 #1 notify budget_exhausted 0 200
        0 #2 hire 2
        3 #3 notify task_began 2
        3 #4 promote W1 A1
        3 #5 promote W2 A2
        10 #6 hire 1
        ",
    );
}

#[test]
fn an_arrival_the_budget_cannot_seat_is_turned_away() {
    check(
        TIGHT,
        "
        0 start
        1 posted H1 2
        2 arrive W1 A1 H1
        3 arrive W2 A2 H1
        4 arrive W3 A3 H1
        ",
        "
        0 #1 notify budget_exhausted 0 200
        0 #2 hire 2
        3 #3 notify task_began 2
        3 #4 promote W1 A1
        3 #5 promote W2 A2
        4 #6 turn_away W3 A3 over_budget
        4 #7 expire_hits H1
        ",
    );
}

#[test]
fn bonuses_are_paid_only_from_what_the_reservations_leave() {
    let m = check_from(
        "min_active=1 max_active=2 min_waiting=1 max_waiting=1 base_pay_cents=100 budget_cents=350 \
         waiting_cents_per_minute=100 active_cents_per_minute=100",
        FULL,
        "
        60004 submit A3
        60005 submit A1
        60006 submit A2
        ",
        "
        60004 #5 pay W3 A3 base 100
        60004 #6 notify budget_exhausted 300 350
        60004 #7 pay W3 A3 waiting_bonus 50
        60005 #8 pay W1 A1 base 100
        60006 #9 pay W2 A2 base 100
        ",
    );
    assert_eq!(m.spent().minor, 350);
}

#[test]
fn with_no_base_pay_only_bonuses_are_capped_and_hiring_goes_on() {
    check_from(
        "min_active=1 max_active=2 min_waiting=1 max_waiting=1 budget_cents=10 \
         waiting_cents_per_minute=100",
        FULL,
        "60004 submit A3",
        "
        60004 #5 notify budget_exhausted 0 10
        60004 #6 pay W3 A3 waiting_bonus 10
        60004 #7 hire 1
        ",
    );
}

#[test]
fn a_post_with_more_slots_than_asked_cannot_overspend() {
    let m = check(
        TIGHT,
        "
        0 start
        1 posted H1 3
        2 arrive W1 A1 H1
        3 arrive W2 A2 H1
        4 arrive W3 A3 H1
        10 submit A1
        11 submit A2
        ",
        "
        0 #1 notify budget_exhausted 0 200
        0 #2 hire 2
        3 #3 notify task_began 2
        3 #4 promote W1 A1
        3 #5 promote W2 A2
        4 #6 turn_away W3 A3 over_budget
        4 #7 expire_hits H1
        10 #8 pay W1 A1 base 100
        11 #9 pay W2 A2 base 100
        ",
    );
    assert_eq!(m.spent().minor, 200);
}
