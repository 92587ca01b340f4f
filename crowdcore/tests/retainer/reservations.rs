//! The reservation lifecycle: make (recruit a pool), invoke (route; also by itself at
//! `start_at`), cancel (release the pool, expire surplus HITs, tell routed workers), finish
//! (stop routing, let work complete), unfinish (route again), finish all, list.

use crowdcore::retainer::ReservationState;
use crowdcore::{ReservationId, TemplateId};

use crate::support::{POOL_OF_TWO, check, check_from};

// ----- make ------------------------------------------------------------------------------------

#[test]
fn a_template_alone_hires_nobody() {
    check(
        "",
        "
        0 template T
        targets T 0 0
        next_timeout none
        ",
        "0 T#1 notify task_began 0",
    );
}

#[test]
fn make_recruits_a_pool_for_the_reservation() {
    check(
        "",
        "
        0 template T
        5 make R1 T 3 20000 F1
        targets T 0 3
        state R1 made 0 0 0
        next_timeout 20000
        ",
        "
        0 T#1 notify task_began 0
        5 T#2 hire 3
        ",
    );
}

#[test]
fn a_second_reservation_grows_the_pool_by_its_need() {
    check_from(
        "",
        POOL_OF_TWO,
        "
        10 make R2 T 3 30000 F2
        targets T 0 5
        ",
        "10 T#3 hire 3",
    );
}

// ----- invoke ------------------------------------------------------------------------------------

#[test]
fn invoke_routes_the_oldest_waiting_workers_to_the_task() {
    check_from(
        "",
        POOL_OF_TWO,
        "
        10 invoke R1
        task A1 F1
        task A2 F1
        state R1 invoked 2 0 0
        targets T 2 0
        ",
        "
        10 T#3 route W1 A1 R1 F1
        10 T#4 route W2 A2 R1 F1
        ",
    );
}

#[test]
fn a_reservation_invokes_itself_at_start_at() {
    check_from(
        "",
        POOL_OF_TWO,
        "
        next_timeout 20000
        19999 tick
        state R1 made
        timeout
        state R1 invoked 2 0 0
        ",
        "
        20000 T#3 route W1 A1 R1 F1
        20000 T#4 route W2 A2 R1 F1
        ",
    );
}

#[test]
fn a_late_tick_invokes_every_reservation_due_in_start_order() {
    check(
        "",
        "
        0 template T
        0 make R2 T 1 8000 F2
        0 make R1 T 1 5000 F1
        1 posted T#2 H1 1
        1 posted T#3 H2 1
        2 arrive W1 A1 H1
        3 arrive W2 A2 H2
        9000 tick
        ",
        "
        0 T#1 notify task_began 0
        0 T#2 hire 1
        0 T#3 hire 1
        9000 T#4 route W1 A1 R1 F1
        9000 T#5 route W2 A2 R2 F2
        ",
    );
}

#[test]
fn invoking_early_takes_the_auto_invocation_off() {
    check_from(
        "",
        POOL_OF_TWO,
        "
        10 invoke R1
        // Only the heartbeat deadlines are left (W1 arrived at 2).
        next_timeout 30002
        ",
        "
        10 T#3 route W1 A1 R1 F1
        10 T#4 route W2 A2 R1 F1
        ",
    );
}

#[test]
fn a_reservation_made_with_a_past_start_is_invoked_on_the_next_tick() {
    check_from(
        "",
        POOL_OF_TWO,
        "
        10 make R2 T 1 0 F2
        next_timeout 0
        timeout
        ",
        "
        10 T#3 hire 1
        10 T#4 route W1 A1 R2 F2
        ",
    );
}

// ----- cancel -----------------------------------------------------------------------------------

#[test]
fn cancelling_a_made_reservation_releases_its_pool() {
    check_from(
        "",
        POOL_OF_TWO,
        "
        10 cancel R1
        state R1 cancelled
        targets T 0 0
        next_timeout none
        ",
        "
        10 T#3 release W2 A2 targets_lowered
        10 T#4 pay W2 A2 base 50
        10 T#5 release W1 A1 targets_lowered
        10 T#6 pay W1 A1 base 50
        ",
    );
}

#[test]
fn cancelling_expires_the_hits_posted_for_it() {
    check(
        "",
        "
        0 template T
        0 make R1 T 3 20000 F1
        1 posted T#2 H1 3
        2 arrive W1 A1 H1
        10 cancel R1
        ",
        "
        0 T#1 notify task_began 0
        0 T#2 hire 3
        10 T#3 release W1 A1 targets_lowered
        10 T#4 pay W1 A1 base 50
        10 T#5 expire_hits H1
        ",
    );
}

#[test]
fn a_hit_posted_after_its_reservation_was_cancelled_is_expired() {
    check(
        "",
        "
        0 template T
        0 make R1 T 2 20000 F1
        10 cancel R1
        11 posted T#2 H1 2
        ",
        "
        0 T#1 notify task_began 0
        0 T#2 hire 2
        11 T#3 expire_hits H1
        ",
    );
}

#[test]
fn cancelling_one_reservation_keeps_the_pool_of_the_others() {
    check(
        "",
        "
        0 template T
        0 make R1 T 2 20000 F1
        0 make R2 T 1 20000 F2
        1 posted T#2 H1 2
        1 posted T#3 H2 1
        2 arrive W1 A1 H1
        3 arrive W2 A2 H1
        4 arrive W3 A3 H2
        10 cancel R1
        targets T 0 1
        ",
        "
        0 T#1 notify task_began 0
        0 T#2 hire 2
        0 T#3 hire 1
        10 T#4 release W3 A3 targets_lowered
        10 T#5 pay W3 A3 base 50
        10 T#6 release W2 A2 targets_lowered
        10 T#7 pay W2 A2 base 50
        ",
    );
}

#[test]
fn cancelling_an_invoked_reservation_tells_its_workers_and_routes_nobody_more() {
    check_from(
        "",
        POOL_OF_TWO,
        "
        10 invoke R1
        11 cancel R1
        12 return A2
        13 submit A1
        targets T 0 0
        task A1 F1
        ",
        "
        10 T#3 route W1 A1 R1 F1
        10 T#4 route W2 A2 R1 F1
        11 #1 notify_workers R1 cancelled W1/A1 W2/A2
        // A2's slot re-opens on H1 but nobody needs it: the HIT is expired.
        12 T#5 expire_hits H1
        13 T#6 pay W1 A1 base 50
        ",
    );
}

// ----- finish / unfinish ---------------------------------------------------------------------

/// T with R1 needing 3; H1 posted with 3 slots; W1 and W2 waiting; R1 invoked at 10, which
/// routed W1 (T#3) and W2 (T#4). H1 has one slot open.
const INVOKED_SHORT: &str = "
    0 template T
    0 make R1 T 3 20000 F1
    1 posted T#2 H1 3
    2 arrive W1 A1 H1
    3 arrive W2 A2 H1
    10 invoke R1
";

#[test]
fn finish_stops_routing_and_lets_current_work_complete() {
    check_from(
        "",
        INVOKED_SHORT,
        "
        11 finish R1
        state R1 finished 2 0 0
        targets T 2 0
        12 arrive W3 A3 H1
        13 submit A1
        14 ping A2 working
        ",
        "
        // The open slot R1 was still waiting for is not wanted any more.
        11 T#5 expire_hits H1
        12 T#6 turn_away W3 A3 job_full
        13 T#7 pay W1 A1 base 50
        ",
    );
}

#[test]
fn unfinish_routes_again() {
    check_from(
        "",
        INVOKED_SHORT,
        "
        11 finish R1
        12 unfinish R1
        state R1 invoked 2 0 0
        targets T 3 0
        13 posted T#6 H2 1
        14 arrive W3 A3 H2
        ",
        "
        11 T#5 expire_hits H1
        12 T#6 hire 1
        14 T#7 route W3 A3 R1 F1
        ",
    );
}

#[test]
fn finish_all_finishes_every_invoked_reservation_and_leaves_made_ones() {
    let m = check(
        "",
        "
        0 template T
        0 template U
        0 make R1 T 1 20000 F1
        0 make R2 U 1 20000 F2
        0 make R3 T 1 90000 F3
        1 invoke R1
        1 invoke R2
        2 finish_all
        ",
        "
        0 T#1 notify task_began 0
        0 U#1 notify task_began 0
        0 T#2 hire 1
        0 U#2 hire 1
        0 T#3 hire 1
        ",
    );
    let state = |r: &str| m.reservation(&ReservationId::new(r)).unwrap().state;
    assert_eq!(state("R1"), ReservationState::Finished);
    assert_eq!(state("R2"), ReservationState::Finished);
    assert_eq!(state("R3"), ReservationState::Made);
}

#[test]
fn finish_all_of_one_template_leaves_the_others() {
    let m = check(
        "",
        "
        0 template T
        0 template U
        0 make R1 T 1 20000 F1
        0 make R2 U 1 20000 F2
        1 invoke R1
        1 invoke R2
        2 finish_all U
        3 finish_all U
        ",
        "
        0 T#1 notify task_began 0
        0 U#1 notify task_began 0
        0 T#2 hire 1
        0 U#2 hire 1
        ",
    );
    let state = |r: &str| m.reservation(&ReservationId::new(r)).unwrap().state;
    assert_eq!(state("R1"), ReservationState::Invoked);
    assert_eq!(state("R2"), ReservationState::Finished);
}

// ----- list ------------------------------------------------------------------------------------

#[test]
fn list_gives_every_reservation_with_its_template() {
    let m = check(
        "",
        "
        0 template T reward=50
        0 template U reward=80
        0 make R1 T 2 20000 F1 {\"page\": 3}
        0 make R2 U 1 30000 F2
        1 cancel R2
        ",
        "
        0 T#1 notify task_began 0
        0 U#1 notify task_began 0
        0 T#2 hire 2
        0 U#2 hire 1
        ",
    );
    let list = m.list();
    assert_eq!(list.len(), 2);
    let (r1, r2) = (&list[0], &list[1]);
    assert_eq!(r1.reservation.reservation, ReservationId::new("R1"));
    assert_eq!(r1.reservation.template, TemplateId::new("T"));
    assert_eq!(r1.reservation.foreign_id, "F1");
    assert_eq!(r1.reservation.payload, serde_json::json!({"page": 3}));
    assert_eq!(r1.reservation.needed, 2);
    assert_eq!(r1.reservation.unmet(), 2);
    assert_eq!(r1.reservation.state, ReservationState::Made);
    assert_eq!(r1.spec.reward.minor, 50);
    assert_eq!(r2.reservation.state, ReservationState::Cancelled);
    assert_eq!(r2.spec.reward.minor, 80);
    assert_eq!(m.template(&TemplateId::new("U")).unwrap().reward.minor, 80);
}
