//! Pool sizes: `unmet_need` waits as many workers as the made reservations need (an invoked
//! reservation's unmet need is active room, hired for once); `fixed` keeps a set number while
//! the template has a live reservation and lets them go when it has none; a template may set
//! its own.

use crate::support::{check, check_from};

#[test]
fn unmet_need_pools_for_made_reservations_and_hires_invoked_need_once() {
    check(
        "",
        "
        0 template T
        0 make R1 T 2 90000 F1
        0 make R2 T 3 90000 F2
        targets T 0 5
        1 invoke R2
        targets T 3 2
        ",
        "
        0 T#1 notify task_began 0
        0 T#2 hire 2
        0 T#3 hire 3
        ",
    );
}

#[test]
fn a_template_may_set_its_own_pool_size() {
    check(
        "pool={\"fixed\":3}",
        "
        0 template T pool=1
        0 template U
        0 template V pool=unmet
        0 make R1 T 5 90000 F1
        0 make R2 U 5 90000 F2
        0 make R3 V 5 90000 F3
        targets T 0 1
        targets U 0 3
        targets V 0 5
        ",
        "
        0 T#1 notify task_began 0
        0 U#1 notify task_began 0
        0 V#1 notify task_began 0
        0 T#2 hire 1
        0 U#2 hire 3
        0 V#2 hire 5
        ",
    );
}

/// A fixed pool of 2 for R1 (needs 1): W1 and W2 wait.
const FIXED_TWO: &str = "
    0 template T pool=2
    0 make R1 T 1 90000 F1
    1 posted T#2 H1 2
    2 arrive W1 A1 H1
    3 arrive W2 A2 H1
";

#[test]
fn a_fixed_pool_is_refilled_after_routing() {
    check_from(
        "",
        FIXED_TWO,
        "
        10 invoke R1
        targets T 1 2
        11 posted T#4 H2 1
        12 arrive W3 A3 H2
        ",
        "
        10 T#3 route W1 A1 R1 F1
        10 T#4 hire 1
        ",
    );
}

#[test]
fn a_fixed_pool_is_let_go_when_no_reservation_is_live() {
    check_from(
        "",
        FIXED_TWO,
        "
        10 invoke R1
        11 finish R1
        targets T 1 0
        12 posted T#4 H2 1
        ",
        "
        10 T#3 route W1 A1 R1 F1
        10 T#4 hire 1
        11 T#5 release W2 A2 targets_lowered
        11 T#6 pay W2 A2 base 50
        // The refill hire comes back after all: its HIT is not wanted.
        12 T#7 expire_hits H2
        ",
    );
}

#[test]
fn pools_pay_waiting_and_working_time() {
    check_from(
        "waiting_cents_per_minute=6 active_cents_per_minute=12 heartbeat_timeout_ms=1000000",
        "
        0 template T
        0 make R1 T 1 90000 F1
        0 make R2 T 1 90000 F2
        1 posted T#2 H1 1
        1 posted T#3 H2 1
        1 arrive W1 A1 H1
        ",
        "
        60001 invoke R1
        120001 submit A1
        ",
        "
        60001 T#4 route W1 A1 R1 F1
        120001 T#5 pay W1 A1 base 50
        120001 T#6 pay W1 A1 waiting_bonus 6
        120001 T#7 pay W1 A1 active_bonus 12
        ",
    );
}

#[test]
fn a_pool_pays_contributions_the_host_counted_or_the_page_reported_up_to_the_cap() {
    // W1's page claims four billion: the cap (3) is paid. W2 was counted by the host (2):
    // that is paid, whatever the page says.
    check_from(
        "per_contribution_cents=5 max_contributions_per_assignment=3 heartbeat_timeout_ms=1000000",
        "
        0 template T
        0 make R1 T 2 90000 F1
        1 posted T#2 H1 2
        1 arrive W1 A1 H1
        1 arrive W2 A2 H1
        ",
        "
        2 invoke R1
        3 contributed A2 2
        4 submit A1 4000000000
        5 submit A2 9
        6 contributed A9 1
        ",
        "
        2 T#3 route W1 A1 R1 F1
        2 T#4 route W2 A2 R1 F1
        4 T#5 pay W1 A1 base 50
        4 T#6 pay W1 A1 contribution_bonus 15
        5 T#7 pay W2 A2 base 50
        5 T#8 pay W2 A2 contribution_bonus 10
        6 rejected unknown assignment A9
        ",
    );
}

#[test]
fn a_retainer_paying_on_pages_word_without_a_cap_is_refused() {
    let refused = crowdcore::retainer::Retainer::new(
        crowdcore::SessionId::new("s"),
        crate::support::config("per_contribution_cents=5"),
    );
    assert_eq!(
        refused.err(),
        Some(crowdcore::pavilion::ConfigError::UncappedContributions)
    );
}
