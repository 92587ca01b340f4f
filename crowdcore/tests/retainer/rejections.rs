//! Bad input is a typed error that leaves the state exactly as it was: every refused line is
//! checked by the harness to leave `Retainer::snapshot` unchanged and to emit nothing.

use crowdcore::model::{Currency, Money};
use crowdcore::pavilion::ConfigError;
use crowdcore::retainer::{Input, Rejected, Retainer};
use crowdcore::{SessionId, TemplateId, Timestamp};

use crate::support::{POOL_OF_TWO, check, check_from, config, spec};

#[test]
fn templates_and_reservations_must_exist_and_be_unique() {
    check_from(
        "",
        POOL_OF_TWO,
        "
        10 template T
        11 make R1 T 1 90000 F1
        12 make R2 X 1 90000 F2
        13 make R3 T 0 90000 F3
        14 invoke R9
        15 cancel R9
        16 finish R9
        17 unfinish R9
        18 finish_all X
        ",
        "
        10 rejected template T is already registered
        11 rejected reservation R1 already exists
        12 rejected unknown template X
        13 rejected reservation R3 needs no workers
        14 rejected unknown reservation R9
        15 rejected unknown reservation R9
        16 rejected unknown reservation R9
        17 rejected unknown reservation R9
        18 rejected unknown template X
        ",
    );
}

#[test]
fn operations_must_fit_the_reservations_state() {
    check_from(
        "",
        POOL_OF_TWO,
        "
        10 finish R1
        11 unfinish R1
        12 invoke R1
        13 invoke R1
        14 unfinish R1
        15 cancel R1
        16 invoke R1
        17 finish R1
        18 unfinish R1
        19 cancel R1
        ",
        "
        10 rejected cannot finish reservation R1: it is made
        11 rejected cannot unfinish reservation R1: it is made
        12 T#3 route W1 A1 R1 F1
        12 T#4 route W2 A2 R1 F1
        13 rejected cannot invoke reservation R1: it is invoked
        14 rejected cannot unfinish reservation R1: it is invoked
        15 #1 notify_workers R1 cancelled W1/A1 W2/A2
        16 rejected cannot invoke reservation R1: it is cancelled
        17 rejected cannot finish reservation R1: it is cancelled
        18 rejected cannot unfinish reservation R1: it is cancelled
        19 rejected cannot cancel reservation R1: it is cancelled
        ",
    );
}

#[test]
fn platform_events_must_name_what_the_pools_know() {
    check_from(
        "",
        POOL_OF_TWO,
        "
        10 arrive W9 A9 H9
        11 submit A9
        12 return A9
        13 abandon A9
        14 posted X#2 H2 1
        15 posted T#9 H2 1
        16 failed T#9
        17 arrive W1 A1 H1
        18 arrive W5 A1 H1
        ",
        "
        10 rejected unknown HIT H9
        11 rejected unknown assignment A9
        12 rejected unknown assignment A9
        13 rejected unknown assignment A9
        14 rejected hire s/X/2 is not of a pool of this retainer
        15 rejected template T: hire s/T/9 is not in flight
        16 rejected template T: hire s/T/9 is not in flight
        18 rejected template T: assignment A1 belongs to W1, not W5
        ",
    );
}

#[test]
fn a_hit_belongs_to_one_template() {
    check(
        "",
        "
        0 template T
        0 template U
        0 make R1 T 1 90000 F1
        0 make R2 U 1 90000 F2
        1 posted T#2 H1 1
        2 posted U#2 H1 1
        3 arrive W1 A1 H1
        ",
        "
        0 T#1 notify task_began 0
        0 U#1 notify task_began 0
        0 T#2 hire 1
        0 U#2 hire 1
        2 rejected HIT H1 belongs to template T
        ",
    );
}

#[test]
fn time_cannot_go_back() {
    check_from(
        "",
        POOL_OF_TWO,
        "
        2 tick
        2 invoke R1
        ",
        "
        2 rejected time went back from 3ms to 2ms
        2 rejected time went back from 3ms to 2ms
        ",
    );
}

#[test]
fn a_bad_spec_or_budget_is_refused_and_changes_nothing() {
    let mut m = Retainer::new(SessionId::new("s"), config("")).unwrap();
    let before = m.snapshot();
    let mut bad = spec(50);
    bad.reward = Money::new(-1, Currency::USD);
    let refused = m.handle(
        Timestamp::ZERO,
        Input::RegisterTemplate {
            template: TemplateId::new("T"),
            spec: bad,
            pool: None,
            budget_cents: None,
        },
    );
    assert!(
        matches!(refused, Err(Rejected::BadSpec { .. })),
        "{refused:?}"
    );
    let refused = m.handle(
        Timestamp::ZERO,
        Input::RegisterTemplate {
            template: TemplateId::new("T"),
            spec: spec(50),
            pool: None,
            budget_cents: Some(-5),
        },
    );
    assert_eq!(
        refused,
        Err(Rejected::BadPool {
            template: TemplateId::new("T"),
            source: ConfigError::Negative("budget_cents"),
        })
    );
    assert_eq!(m.snapshot(), before);
    assert_eq!(m.poll_effect(), None);
}

#[test]
fn a_bad_configuration_is_refused() {
    let new = |spec: &str| Retainer::new(SessionId::new("s"), config(spec)).map(|_| ());
    assert_eq!(
        new("refresh_after_ms=0"),
        Err(ConfigError::Zero("refresh_after_ms"))
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
        new("waiting_cents_per_minute=-1"),
        Err(ConfigError::Negative("waiting_cents_per_minute"))
    );
    assert_eq!(new("precruit_ms=0 refresh_after_ms=1"), Ok(()));
}
