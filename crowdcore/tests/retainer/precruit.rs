//! Precruitment: `precruit_ms` before a reservation's start, the pool's waiting workers are
//! alerted (once), unless the reservation was invoked or cancelled before.

use crate::support::{check, check_from};

/// Alerts 5 s ahead; heartbeats never time out in these cases.
const PRECRUIT: &str = "precruit_ms=5000 heartbeat_timeout_ms=100000000";

/// R1 needs 2, starts at 20 s; W1 and W2 wait.
const READY: &str = "
    0 template T
    0 make R1 T 2 20000 F1
    1 posted T#2 H1 2
    2 arrive W1 A1 H1
    3 arrive W2 A2 H1
";

#[test]
fn waiting_workers_are_alerted_before_the_start() {
    check_from(
        PRECRUIT,
        READY,
        "
        next_timeout 15000
        timeout
        next_timeout 20000
        timeout
        ",
        "
        15000 #1 notify_workers R1 precruit W1/A1 W2/A2
        20000 T#3 route W1 A1 R1 F1
        20000 T#4 route W2 A2 R1 F1
        ",
    );
}

#[test]
fn the_alert_goes_to_whoever_waits_then() {
    check(
        PRECRUIT,
        "
        0 template T
        0 make R1 T 2 20000 F1
        1 posted T#2 H1 2
        2 arrive W1 A1 H1
        15000 tick
        15001 arrive W2 A2 H1
        next_timeout 20000
        ",
        "
        0 T#1 notify task_began 0
        0 T#2 hire 2
        15000 #1 notify_workers R1 precruit W1/A1
        ",
    );
}

#[test]
fn no_alert_for_a_reservation_invoked_or_cancelled_before() {
    check_from(
        PRECRUIT,
        READY,
        "
        10 make R2 T 1 30000 F2
        11 invoke R1
        12 cancel R2
        // Only the heartbeat deadlines are left.
        next_timeout 100000002
        ",
        "
        10 T#3 hire 1
        11 T#4 route W1 A1 R1 F1
        11 T#5 route W2 A2 R1 F1
        ",
    );
}

#[test]
fn no_alert_to_an_empty_pool() {
    check(
        PRECRUIT,
        "
        0 template T
        0 make R1 T 2 20000 F1
        timeout
        next_timeout 20000
        ",
        "
        0 T#1 notify task_began 0
        0 T#2 hire 2
        ",
    );
}

#[test]
fn a_reservation_made_inside_the_window_is_alerted_on_the_next_tick() {
    check_from(
        PRECRUIT,
        READY,
        "
        15000 tick
        18000 make R2 T 1 21000 F2
        next_timeout 16000
        timeout
        ",
        "
        15000 #1 notify_workers R1 precruit W1/A1 W2/A2
        18000 T#3 hire 1
        18000 #2 notify_workers R2 precruit W1/A1 W2/A2
        ",
    );
}
