//! Opening the session and beginning the task: nothing happens before `start`; `start` hires
//! every seat; the task begins when the start condition holds, counted after the arrival is
//! seated (`>=`, not one worker late), or, under `start=manual`, only when the operator
//! migrates.

use crate::support::{FULL, SMALL, check, check_from};

#[test]
fn a_full_house() {
    check(
        SMALL,
        FULL,
        "
        0 #1 hire 3
        3 #2 notify task_began 2
        3 #3 promote W1 A1
        3 #4 promote W2 A2
        ",
    );
}

#[test]
fn nothing_is_hired_before_start() {
    let m = check("", "0 tick\n 5 tick", "");
    assert_eq!(m.poll_timeout(), None);
    assert_eq!(m.hires_in_flight(), 0);
}

#[test]
fn start_hires_every_seat_at_once() {
    check("", "0 start", "0 #1 hire 5");
    check(
        "max_active=7 min_waiting=0 max_waiting=0",
        "0 start",
        "0 #1 hire 7",
    );
}

#[test]
fn auto_begins_on_the_arrival_that_reaches_min_active_plus_min_waiting() {
    check(
        "min_active=2 max_active=3 min_waiting=1 max_waiting=2",
        "
        0 start
        1 posted H1 5
        2 arrive W1 A1 H1
        3 arrive W2 A2 H1
        4 arrive W3 A3 H1
        5 arrive W4 A4 H1
        6 arrive W5 A5 H1
        ",
        "
        0 #1 hire 5
        4 #2 notify task_began 3
        4 #3 promote W1 A1
        4 #4 promote W2 A2
        4 #5 promote W3 A3
        ",
    );
}

#[test]
fn auto_with_one_needed_begins_on_the_first_arrival() {
    check(
        "min_active=1 max_active=2 min_waiting=0 max_waiting=1",
        "
        0 start
        1 posted H1 3
        2 arrive W1 A1 H1
        3 arrive W2 A2 H1
        ",
        "
        0 #1 hire 3
        2 #2 notify task_began 1
        2 #3 promote W1 A1
        3 #4 promote W2 A2
        ",
    );
}

#[test]
fn present_n_begins_on_the_nth_arrival() {
    check(
        r#"min_active=1 max_active=3 min_waiting=1 max_waiting=2 start={"present":4}"#,
        "
        0 start
        1 posted H1 5
        2 arrive W1 A1 H1
        3 arrive W2 A2 H1
        4 arrive W3 A3 H1
        5 arrive W4 A4 H1
        ",
        "
        0 #1 hire 5
        5 #2 notify task_began 4
        5 #3 promote W1 A1
        5 #4 promote W2 A2
        5 #5 promote W3 A3
        ",
    );
}

#[test]
fn present_zero_begins_at_start() {
    check(
        r#"min_active=1 max_active=1 min_waiting=0 max_waiting=1 start={"present":0}"#,
        "
        0 start
        1 posted H1 2
        2 arrive W1 A1 H1
        ",
        "
        0 #1 notify task_began 0
        0 #2 hire 2
        2 #3 promote W1 A1
        ",
    );
}

#[test]
fn manual_never_begins_by_arrivals() {
    let m = check(
        "min_active=1 max_active=2 min_waiting=1 max_waiting=1 start=manual",
        "
        0 start
        1 posted H1 3
        2 arrive W1 A1 H1
        3 arrive W2 A2 H1
        4 arrive W3 A3 H1
        ",
        "0 #1 hire 3",
    );
    assert_eq!((m.waiting_len(), m.active_len()), (3, 0));
}

#[test]
fn manual_begins_when_the_operator_migrates() {
    check(
        "min_active=1 max_active=2 min_waiting=1 max_waiting=1 start=manual",
        "
        0 start
        1 posted H1 3
        2 arrive W1 A1 H1
        3 arrive W2 A2 H1
        4 arrive W3 A3 H1
        10 migrate 2
        11 submit A1
        ",
        "
        0 #1 hire 3
        10 #2 notify task_began 3
        10 #3 promote W1 A1
        10 #4 promote W2 A2
        11 #5 promote W3 A3
        11 #6 hire 1
        ",
    );
}

#[test]
fn the_task_begins_only_once() {
    check_from(
        SMALL,
        FULL,
        "
        10 return A1
        11 return A2
        12 return A3
        13 arrive W4 A4 H1
        14 arrive W5 A5 H1
        ",
        "
        10 #5 promote W3 A3
        13 #6 promote W4 A4
        14 #7 promote W5 A5
        ",
    );
}
