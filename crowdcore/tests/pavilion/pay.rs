//! Pay: base pay (the HIT reward) for every assignment that submits or is released, a waiting
//! bonus and an active bonus computed from the machine's own timestamps (rounded to the nearest
//! cent, halves up), a per-contribution bonus on the host's count or, where it has none, the
//! submission's up to the cap; nothing for returns, abandons and time-outs. Zero amounts are
//! not paid.

use crate::support::{FULL, check_from};

const RATES: &str = "min_active=1 max_active=2 min_waiting=1 max_waiting=1 base_pay_cents=100 \
     waiting_cents_per_minute=10 active_cents_per_minute=20 per_contribution_cents=5 \
     max_contributions_per_assignment=10";

/// The same rates, but only the host counts contributions.
const HOST_COUNTS: &str = "min_active=1 max_active=2 min_waiting=1 max_waiting=1 base_pay_cents=100 \
     waiting_cents_per_minute=10 active_cents_per_minute=20 per_contribution_cents=5 \
     contributions_from_host=true";

#[test]
fn a_submission_claiming_four_billion_contributions_is_paid_the_cap() {
    check_from(
        RATES,
        FULL,
        "120004 submit A3 4000000000",
        "
        120004 #5 pay W3 A3 base 100
        120004 #6 pay W3 A3 waiting_bonus 20
        120004 #7 pay W3 A3 contribution_bonus 50
        120004 #8 hire 1
        ",
    );
}

#[test]
fn the_hosts_count_is_paid_whatever_the_submission_claims() {
    // Counts add up; the page's 7 is ignored, below or above the host's 3 + 2.
    check_from(
        RATES,
        FULL,
        "
        60000 contributed A3 3
        60001 contributed A3 2
        120004 submit A3 7
        ",
        "
        120004 #5 pay W3 A3 base 100
        120004 #6 pay W3 A3 waiting_bonus 20
        120004 #7 pay W3 A3 contribution_bonus 25
        120004 #8 hire 1
        ",
    );
}

#[test]
fn the_hosts_count_is_capped_too() {
    check_from(
        RATES,
        FULL,
        "
        60000 contributed A3 4000000000
        120004 submit A3
        ",
        "
        120004 #5 pay W3 A3 base 100
        120004 #6 pay W3 A3 waiting_bonus 20
        120004 #7 pay W3 A3 contribution_bonus 50
        120004 #8 hire 1
        ",
    );
}

#[test]
fn when_only_the_host_counts_a_submission_it_did_not_count_gets_no_contribution_bonus() {
    check_from(
        HOST_COUNTS,
        FULL,
        "120004 submit A3 4000000000",
        "
        120004 #5 pay W3 A3 base 100
        120004 #6 pay W3 A3 waiting_bonus 20
        120004 #7 hire 1
        ",
    );
}

#[test]
fn when_only_the_host_counts_its_count_is_paid_also_on_release() {
    // A release (the job stopped) pays the contributions the host counted.
    check_from(
        HOST_COUNTS,
        FULL,
        "
        60000 contributed A1 4
        60003 stop
        ",
        "
        60003 #5 release W1 A1 job_stopped
        60003 #6 pay W1 A1 base 100
        60003 #7 pay W1 A1 active_bonus 20
        60003 #8 pay W1 A1 contribution_bonus 20
        60003 #9 release W2 A2 job_stopped
        60003 #10 pay W2 A2 base 100
        60003 #11 pay W2 A2 active_bonus 20
        60003 #12 release W3 A3 job_stopped
        60003 #13 pay W3 A3 base 100
        60003 #14 pay W3 A3 waiting_bonus 10
        ",
    );
}

#[test]
fn waiting_time_is_paid_from_the_machines_clock() {
    check_from(
        RATES,
        FULL,
        "120004 submit A3",
        "
        120004 #5 pay W3 A3 base 100
        120004 #6 pay W3 A3 waiting_bonus 20
        120004 #7 hire 1
        ",
    );
}

#[test]
fn active_time_is_paid_from_promotion_to_submission() {
    check_from(
        RATES,
        FULL,
        "60003 submit A1",
        "
        60003 #5 pay W1 A1 base 100
        60003 #6 pay W1 A1 active_bonus 20
        60003 #7 promote W3 A3
        60003 #8 hire 1
        ",
    );
}

#[test]
fn a_promoted_worker_is_paid_every_part_in_order() {
    check_from(
        RATES,
        FULL,
        "
        30004 return A1
        90004 submit A3 2
        ",
        "
        30004 #5 promote W3 A3
        90004 #6 pay W3 A3 base 100
        90004 #7 pay W3 A3 waiting_bonus 5
        90004 #8 pay W3 A3 active_bonus 20
        90004 #9 pay W3 A3 contribution_bonus 10
        90004 #10 hire 1
        ",
    );
}

#[test]
fn released_workers_are_paid_their_time() {
    check_from(
        RATES,
        FULL,
        "60004 stop",
        "
        60004 #5 release W1 A1 job_stopped
        60004 #6 pay W1 A1 base 100
        60004 #7 pay W1 A1 active_bonus 20
        60004 #8 release W2 A2 job_stopped
        60004 #9 pay W2 A2 base 100
        60004 #10 pay W2 A2 active_bonus 20
        60004 #11 release W3 A3 job_stopped
        60004 #12 pay W3 A3 base 100
        60004 #13 pay W3 A3 waiting_bonus 10
        ",
    );
}

#[test]
fn returns_abandons_and_time_outs_are_not_paid() {
    check_from(
        RATES,
        FULL,
        "
        10 return A3
        11 abandon A2
        30002 tick
        ",
        "30002 #5 timed_out W1 A1\n30002 #6 hire 1",
    );
}

#[test]
fn bonuses_round_to_the_nearest_cent_halves_up() {
    // 10 cents a minute: 3000 ms is half a cent, 2999 ms is less.
    check_from(
        RATES,
        FULL,
        "3004 submit A3",
        "
        3004 #5 pay W3 A3 base 100
        3004 #6 pay W3 A3 waiting_bonus 1
        3004 #7 hire 1
        ",
    );
    check_from(
        RATES,
        FULL,
        "3003 submit A3",
        "
        3003 #5 pay W3 A3 base 100
        3003 #6 hire 1
        ",
    );
}
