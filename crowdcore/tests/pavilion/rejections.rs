//! Bad input is a typed error that leaves the state exactly as it was: every refused line in
//! these cases is checked by the harness (`support::run`) to leave [`Pavilion::snapshot`]
//! unchanged and to emit nothing, and the effect ids after a refusal carry on without a gap.
//! Bad configurations are refused when the machine is made.

use crowdcore::SessionId;
use crowdcore::pavilion::{ConfigError, Input, Pavilion, Rejected};
use crowdcore::{AssignmentId, Timestamp};

use crate::support::{FULL, SMALL, check, check_from, config, machine};

#[test]
fn time_cannot_go_back() {
    check_from(
        SMALL,
        FULL,
        "
        3 tick
        3 submit A1
        4 submit A1
        ",
        "
        3 rejected time went back from 4ms to 3ms
        3 rejected time went back from 4ms to 3ms
        4 #5 promote W3 A3
        4 #6 hire 1
        ",
    );
}

#[test]
fn an_unknown_assignment_is_refused_by_every_worker_input() {
    check_from(
        SMALL,
        FULL,
        "
        10 hb A9
        11 submit A9
        12 return A9
        13 abandon A9
        14 contributed A9 3
        ",
        "
        10 rejected unknown assignment A9
        11 rejected unknown assignment A9
        12 rejected unknown assignment A9
        13 rejected unknown assignment A9
        14 rejected unknown assignment A9
        ",
    );
}

#[test]
fn a_departed_assignment_never_comes_back() {
    check_from(
        SMALL,
        FULL,
        "
        10 submit A3
        11 submit A3
        12 hb A3
        13 return A3
        14 abandon A3
        15 arrive W3 A3 H1
        16 contributed A3 1
        ",
        "
        10 #5 hire 1
        11 rejected assignment A3 already left
        12 rejected assignment A3 already left
        13 rejected assignment A3 already left
        14 rejected assignment A3 already left
        15 rejected assignment A3 already left
        16 rejected assignment A3 already left
        ",
    );
}

#[test]
fn an_arrival_naming_another_worker_is_refused() {
    check_from(
        SMALL,
        FULL,
        "
        10 arrive W9 A1 H1
        11 arrive W9 A3 H1
        ",
        "
        10 rejected assignment A1 belongs to W1, not W9
        11 rejected assignment A3 belongs to W3, not W9
        ",
    );
}

#[test]
fn an_arrival_through_a_hit_never_posted_is_refused() {
    check(
        SMALL,
        "
        0 start
        1 arrive W1 A1 H1
        2 posted H1 3
        3 arrive W1 A1 H2
        4 arrive W1 A1 H1
        ",
        "
        0 #1 hire 3
        1 rejected unknown HIT H1
        3 rejected unknown HIT H2
        ",
    );
}

#[test]
fn a_hire_result_with_no_hire_in_flight_is_refused() {
    check_from(
        SMALL,
        FULL,
        "
        10 posted H2 1
        11 failed boom
        ",
        "
        10 rejected no hire is in flight
        11 rejected no hire is in flight
        ",
    );
}

#[test]
fn a_hire_result_for_a_hire_not_in_flight_is_refused() {
    check(
        SMALL,
        "
        0 start
        1 posted H1 3 #2
        2 failed #7 boom
        3 posted H1 3 #other/1
        4 posted H1 3 #1
        5 posted H1 3 #1
        6 failed #1
        ",
        "
        0 #1 hire 3
        1 rejected hire s/2 is not in flight
        2 rejected hire s/7 is not in flight
        3 rejected hire other/1 is not in flight
        5 rejected hire s/1 is not in flight
        6 rejected hire s/1 is not in flight
        ",
    );
}

#[test]
fn admin_commands_that_need_a_started_session() {
    check(
        SMALL,
        "
        0 expire
        1 migrate 1
        ",
        "
        0 rejected the session has not started
        1 rejected the session has not started
        ",
    );
}

#[test]
fn start_twice_is_refused() {
    check(
        SMALL,
        "
        0 start
        1 start
        ",
        "
        0 #1 hire 3
        1 rejected the session has already started
        ",
    );
}

#[test]
fn a_stopped_job_refuses_start_stop_migrate_and_targets() {
    check(
        SMALL,
        "
        0 start
        1 stop
        2 start
        3 stop
        4 migrate 1
        5 targets 1 2 1 1
        ",
        "
        0 #1 hire 3
        2 rejected the job has stopped
        3 rejected the job has stopped
        4 rejected the job has stopped
        5 rejected the job has stopped
        ",
    );
}

#[test]
fn targets_that_cannot_work_are_refused() {
    check_from(
        SMALL,
        FULL,
        "
        10 targets 0 0 0 1
        11 targets 3 2 0 1
        12 targets 1 2 2 1
        13 targets 1 2 0 0
        ",
        "
        10 rejected bad targets: max_active must be at least 1
        11 rejected bad targets: max_active (2) is below min_active (3)
        12 rejected bad targets: max_waiting (1) is below min_waiting (2)
        13 #5 release W3 A3 targets_lowered
        ",
    );
}

#[test]
fn targets_that_make_a_fixed_start_unreachable_are_refused() {
    check(
        r#"min_active=1 max_active=2 min_waiting=1 max_waiting=1 start={"present":3}"#,
        "0 targets 1 1 0 1",
        "0 rejected bad targets: the task needs 3 workers present to begin but there are only 2 seats",
    );
}

#[test]
fn a_refusal_leaves_the_state_as_it_was() {
    // The harness checks this for every refused line; here it is spelled out once.
    let mut m = machine(SMALL);
    m.handle(Timestamp::from_millis(0), Input::Start).unwrap();
    let before = m.snapshot();
    let refused = m.handle(
        Timestamp::from_millis(5),
        Input::Submit {
            assignment: AssignmentId::new("A1"),
            contributions: 1,
        },
    );
    assert_eq!(
        refused,
        Err(Rejected::UnknownAssignment(AssignmentId::new("A1")))
    );
    assert_eq!(m.snapshot(), before);
    assert_eq!(m.now(), Timestamp::from_millis(0));
}

#[test]
fn bad_configurations_are_refused_up_front() {
    let new = |spec: &str| Pavilion::new(SessionId::new("s"), config(spec)).map(|_| ());
    assert_eq!(
        new("max_active=0 min_active=0"),
        Err(ConfigError::ZeroMaxActive)
    );
    assert_eq!(
        new("min_active=4 max_active=3"),
        Err(ConfigError::MaxBelowMin {
            queue: "active",
            min: 4,
            max: 3
        })
    );
    assert_eq!(
        new("min_waiting=3 max_waiting=2"),
        Err(ConfigError::MaxBelowMin {
            queue: "waiting",
            min: 3,
            max: 2
        })
    );
    assert_eq!(
        new(r#"start={"present":6}"#),
        Err(ConfigError::StartUnreachable {
            need: 6,
            capacity: 5
        })
    );
    assert_eq!(
        new("heartbeat_timeout_ms=0"),
        Err(ConfigError::Zero("heartbeat_timeout_ms"))
    );
    assert_eq!(
        new("hire_retry_ms=0"),
        Err(ConfigError::Zero("hire_retry_ms"))
    );
    assert_eq!(
        new("budget_cents=-1"),
        Err(ConfigError::Negative("budget_cents"))
    );
    assert_eq!(
        new("waiting_cents_per_minute=-1"),
        Err(ConfigError::Negative("waiting_cents_per_minute"))
    );
    // Paying per contribution on the pages' word needs a cap; the host's word does not.
    assert_eq!(
        new("per_contribution_cents=5"),
        Err(ConfigError::UncappedContributions)
    );
    assert_eq!(
        new("per_contribution_cents=5 max_contributions_per_assignment=10"),
        Ok(())
    );
    assert_eq!(
        new("per_contribution_cents=5 contributions_from_host=true"),
        Ok(())
    );
    assert_eq!(new(""), Ok(()));
}
