//! Routing: atomic and sticky; oldest waiting worker first, oldest invoked reservation first;
//! never more than `needed` workers working or submitted on a reservation; a routed worker who
//! leaves without submitting frees their place, which is routed again; one pool per template.

use crowdcore::AssignmentId;
use crowdcore::retainer::Rejected;

use crate::support::{POOL_OF_TWO, check, check_from};

#[test]
fn the_oldest_invoked_reservation_gets_workers_first() {
    check(
        "",
        "
        0 template T
        0 make R1 T 1 90000 F1
        0 make R2 T 1 90000 F2
        10 invoke R2
        11 invoke R1
        12 posted T#2 H1 1
        12 posted T#3 H2 1
        13 arrive W1 A1 H2
        14 arrive W2 A2 H1
        ",
        "
        0 T#1 notify task_began 0
        0 T#2 hire 1
        0 T#3 hire 1
        13 T#4 route W1 A1 R2 F2
        14 T#5 route W2 A2 R1 F1
        ",
    );
}

#[test]
fn an_arrival_goes_straight_to_an_invoked_reservation_that_needs_workers() {
    check(
        "",
        "
        0 template T
        0 make R1 T 2 90000 F1
        1 invoke R1
        2 posted T#2 H1 2
        3 arrive W1 A1 H1
        task A1 F1
        ",
        "
        0 T#1 notify task_began 0
        0 T#2 hire 2
        3 T#3 route W1 A1 R1 F1
        ",
    );
}

#[test]
fn a_reservation_never_gets_more_workers_than_it_needs() {
    check(
        "pool={\"fixed\":3}",
        "
        0 template T
        0 make R1 T 1 90000 F1
        1 posted T#2 H1 3
        2 arrive W1 A1 H1
        3 arrive W2 A2 H1
        4 arrive W3 A3 H1
        10 invoke R1
        state R1 invoked 1 0 0
        task A2 none
        task A3 none
        targets T 1 3
        ",
        "
        0 T#1 notify task_began 0
        0 T#2 hire 3
        10 T#3 route W1 A1 R1 F1
        // The pool is refilled to 3 for the live reservation.
        10 T#4 hire 1
        ",
    );
}

#[test]
fn routes_are_sticky() {
    let m = check_from(
        "",
        POOL_OF_TWO,
        "
        10 make R2 T 1 90000 F2
        11 invoke R1
        12 invoke R2
        13 posted T#3 H2 1
        14 arrive W3 A3 H2
        15 submit A1
        task A1 F1
        task A3 F2
        state R1 invoked 1 1 0
        ",
        "
        10 T#3 hire 1
        11 T#4 route W1 A1 R1 F1
        11 T#5 route W2 A2 R1 F1
        14 T#6 route W3 A3 R2 F2
        15 T#7 pay W1 A1 base 50
        ",
    );
    // The answer stays after the worker left.
    let task = m.task_for(&AssignmentId::new("A1")).unwrap().unwrap();
    assert_eq!(task.task, "F1");
}

#[test]
fn a_worker_who_submits_has_done_their_part_and_is_not_replaced() {
    check_from(
        "",
        POOL_OF_TWO,
        "
        10 invoke R1
        11 submit A1 3
        state R1 invoked 1 1 0
        targets T 1 0
        ",
        "
        10 T#3 route W1 A1 R1 F1
        10 T#4 route W2 A2 R1 F1
        11 T#5 pay W1 A1 base 50
        ",
    );
}

#[test]
fn a_routed_worker_who_returns_is_replaced_from_the_pool() {
    check_from(
        "pool={\"fixed\":2}",
        POOL_OF_TWO,
        "
        // A fixed pool does not grow for R2.
        10 make R2 T 1 90000 F2
        11 invoke R2
        12 posted T#4 H2 1
        13 arrive W3 A3 H2
        14 return A1
        state R2 invoked 1 0 1
        task A2 F2
        ",
        "
        11 T#3 route W1 A1 R2 F2
        11 T#4 hire 1
        // W2 (the oldest waiting) takes W1's place; A1's slot re-opens for the pool.
        14 T#5 route W2 A2 R2 F2
        ",
    );
}

#[test]
fn a_routed_worker_who_is_abandoned_is_replaced_by_a_new_hire() {
    check(
        "",
        "
        0 template T
        0 make R1 T 1 90000 F1
        1 posted T#2 H1 1
        2 arrive W1 A1 H1
        10 invoke R1
        11 abandon A1
        12 arrive W2 A2 H1
        state R1 invoked 1 0 1
        ",
        "
        0 T#1 notify task_began 0
        0 T#2 hire 1
        10 T#3 route W1 A1 R1 F1
        // The abandoned slot re-opens on H1: nobody needs to be hired.
        12 T#4 route W2 A2 R1 F1
        ",
    );
}

#[test]
fn each_template_has_its_own_pool() {
    check(
        "",
        "
        0 template T
        0 template U
        0 make R1 T 1 90000 F1
        0 make R2 U 1 90000 F2
        1 posted T#2 H1 1
        1 posted U#2 H2 1
        2 arrive W1 A1 H1
        3 arrive W2 A2 H2
        10 invoke R2
        task A1 none
        task A2 F2
        ",
        "
        0 T#1 notify task_began 0
        0 U#1 notify task_began 0
        0 T#2 hire 1
        0 U#2 hire 1
        10 U#3 route W2 A2 R2 F2
        ",
    );
}

#[test]
fn the_payload_goes_with_the_route() {
    check(
        "",
        "
        0 template T
        0 make R1 T 1 90000 F1 {\"url\": \"https://example.invalid/task/1\"}
        1 posted T#2 H1 1
        2 arrive W1 A1 H1
        10 invoke R1
        ",
        "
        0 T#1 notify task_began 0
        0 T#2 hire 1
        10 T#3 route W1 A1 R1 F1 {\"url\":\"https://example.invalid/task/1\"}
        ",
    );
}

#[test]
fn polling_answers_nothing_yet_then_the_task() {
    let m = check_from(
        "",
        POOL_OF_TWO,
        "
        10 poll A1
        task A1 none
        11 invoke R1
        12 poll A1
        task A1 F1
        ",
        "
        11 T#3 route W1 A1 R1 F1
        11 T#4 route W2 A2 R1 F1
        ",
    );
    let task = m.task_for(&AssignmentId::new("A1")).unwrap().unwrap();
    assert_eq!(task.reservation.as_str(), "R1");
    assert_eq!(task.payload, serde_json::Value::Null);
    assert_eq!(
        m.task_for(&AssignmentId::new("A9")),
        Err(Rejected::UnknownAssignment(AssignmentId::new("A9")))
    );
}
