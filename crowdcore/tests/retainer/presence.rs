//! Worker presence: a `waiting` or `working` ping (or a poll) keeps a worker present; a worker
//! silent past the heartbeat timeout is gone — from the pool (which hires again) or from the
//! task (whose place is routed again).

use crate::support::check;

/// R1 starts late (1000 s), so only heartbeats fall due: W1 and W2 wait since 2 and 3 ms.
const WAITING_TWO: &str = "
    0 template T
    0 make R1 T 2 1000000 F1
    1 posted T#2 H1 2
    2 arrive W1 A1 H1
    3 arrive W2 A2 H1
";

#[test]
fn pings_and_polls_keep_workers_present() {
    crate::support::check_from(
        "",
        WAITING_TWO,
        "
        20000 ping A1
        25000 poll A2
        next_timeout 50000
        40000 ping A1 working
        next_timeout 55000
        ",
        "",
    );
}

#[test]
fn a_silent_waiting_worker_is_gone_and_the_pool_hires_again() {
    crate::support::check_from(
        "",
        WAITING_TWO,
        "
        20000 ping A2
        next_timeout 30002
        timeout
        next_timeout 50000
        ",
        "
        30002 T#3 timed_out W1 A1
        30002 T#4 hire 1
        ",
    );
}

#[test]
fn a_silent_routed_worker_is_gone_and_their_place_is_routed_again() {
    check(
        "",
        "
        0 template T
        0 make R1 T 1 1000000 F1
        0 make R2 T 1 1000000 F2
        1 posted T#2 H1 1
        1 posted T#3 H2 1
        2 arrive W1 A1 H1
        3 arrive W2 A2 H2
        10 invoke R1
        20000 ping A2
        timeout
        state R1 invoked 1 0 1
        task A2 F1
        ",
        "
        0 T#1 notify task_began 0
        0 T#2 hire 1
        0 T#3 hire 1
        10 T#4 route W1 A1 R1 F1
        30002 T#5 timed_out W1 A1
        30002 T#6 route W2 A2 R1 F1
        30002 T#7 hire 1
        ",
    );
}

#[test]
fn a_worker_who_left_cannot_ping() {
    check(
        "",
        "
        0 template T
        0 make R1 T 1 1000000 F1
        1 posted T#2 H1 1
        2 arrive W1 A1 H1
        3 submit A1
        4 ping A1
        5 poll A9
        ",
        "
        0 T#1 notify task_began 0
        0 T#2 hire 1
        3 T#3 pay W1 A1 base 50
        3 T#4 hire 1
        4 rejected template T: assignment A1 already left
        5 rejected unknown assignment A9
        ",
    );
}

#[test]
fn a_page_reload_is_an_arrival_again() {
    crate::support::check_from(
        "",
        WAITING_TWO,
        "
        20000 arrive W1 A1 H1
        next_timeout 30003
        ",
        "",
    );
}
