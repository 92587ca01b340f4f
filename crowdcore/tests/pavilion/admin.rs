//! The operator's commands: stop (release both queues, pay them, stop hiring), expire (close
//! every HIT, also unaccepted ones and those posted later), expire one HIT (its open slots are
//! hired anew), migrate (capped by `max_active`, beginning the task) and set targets (hire up to
//! new maximums, release the newest above them).

use crate::support::{FULL, check, check_from};

/// [`crate::support::SMALL`] with a base pay, so releases show their payment.
const PAID: &str = "min_active=1 max_active=2 min_waiting=1 max_waiting=1 base_pay_cents=100";
/// [`PAID`] on a platform whose posts all answer with one HIT (Prolific).
const ONE_HIT: &str = "min_active=1 max_active=2 min_waiting=1 max_waiting=1 base_pay_cents=100 posts_reopen_hits=true";
const MANUAL: &str =
    "min_active=1 max_active=2 min_waiting=1 max_waiting=1 base_pay_cents=100 start=manual";
/// [`MANUAL`] with W1, W2, W3 waiting (arrived in that order) and no slot open.
const MANUAL_FULL: &str = "
    0 start
    1 posted H1 3
    2 arrive W1 A1 H1
    3 arrive W2 A2 H1
    4 arrive W3 A3 H1
";

// ----- stop ----------------------------------------------------------------------------------

#[test]
fn stop_releases_and_pays_both_queues() {
    let m = check_from(
        PAID,
        FULL,
        "10 stop",
        "
        10 #5 release W1 A1 job_stopped
        10 #6 pay W1 A1 base 100
        10 #7 release W2 A2 job_stopped
        10 #8 pay W2 A2 base 100
        10 #9 release W3 A3 job_stopped
        10 #10 pay W3 A3 base 100
        ",
    );
    assert_eq!(m.present(), 0);
    assert_eq!(m.spent().minor, 300);
}

#[test]
fn stop_before_the_task_begins_releases_the_waiting_queue() {
    check_from(
        MANUAL,
        MANUAL_FULL,
        "10 stop",
        "
        10 #2 release W1 A1 job_stopped
        10 #3 pay W1 A1 base 100
        10 #4 release W2 A2 job_stopped
        10 #5 pay W2 A2 base 100
        10 #6 release W3 A3 job_stopped
        10 #7 pay W3 A3 base 100
        ",
    );
}

#[test]
fn stop_ends_hiring_and_turns_later_arrivals_away() {
    check_from(
        PAID,
        FULL,
        "
        10 submit A3
        11 stop
        12 posted H2 1 #6
        13 arrive W4 A4 H2
        14 tick
        next_timeout none
        ",
        "
        10 #5 pay W3 A3 base 100
        10 #6 hire 1
        11 #7 release W1 A1 job_stopped
        11 #8 pay W1 A1 base 100
        11 #9 release W2 A2 job_stopped
        11 #10 pay W2 A2 base 100
        12 #11 expire_hits H2
        13 #12 turn_away W4 A4 job_ended
        ",
    );
}

#[test]
fn released_workers_have_left() {
    check_from(
        PAID,
        FULL,
        "
        10 stop
        11 submit A1
        12 hb A3
        ",
        "
        10 #5 release W1 A1 job_stopped
        10 #6 pay W1 A1 base 100
        10 #7 release W2 A2 job_stopped
        10 #8 pay W2 A2 base 100
        10 #9 release W3 A3 job_stopped
        10 #10 pay W3 A3 base 100
        11 rejected assignment A1 already left
        12 rejected assignment A3 already left
        ",
    );
}

// ----- expire --------------------------------------------------------------------------------

#[test]
fn expire_closes_every_hit_also_unaccepted_ones() {
    check(
        PAID,
        "
        0 start
        1 posted H1 2
        2 posted H2 1
        3 arrive W1 A1 H1
        10 expire
        ",
        "
        0 #1 hire 3
        1 #2 hire 1
        10 #3 expire_hits H1 H2
        ",
    );
}

#[test]
fn expire_closes_hits_posted_after_it() {
    check(
        PAID,
        "
        0 start
        1 posted H1 1
        2 expire
        3 posted H2 2
        ",
        "
        0 #1 hire 3
        1 #2 hire 2
        2 #3 expire_hits H1
        3 #4 expire_hits H2
        ",
    );
}

#[test]
fn expire_with_nothing_posted_yet_closes_the_hit_when_it_comes() {
    check(
        PAID,
        "
        0 start
        1 expire
        2 posted H1 3
        3 expire
        ",
        "
        0 #1 hire 3
        2 #2 expire_hits H1
        ",
    );
}

#[test]
fn after_expire_workers_keep_their_seats_and_nobody_is_hired() {
    check_from(
        PAID,
        FULL,
        "
        10 expire
        11 submit A1
        12 return A2
        13 submit A3
        ",
        "
        10 #5 expire_hits H1
        11 #6 pay W1 A1 base 100
        11 #7 promote W3 A3
        13 #8 pay W3 A3 base 100
        ",
    );
}

#[test]
fn expire_cancels_a_hiring_pause() {
    check_from(
        &format!("{PAID} heartbeat_timeout_ms=1000000"),
        FULL,
        "
        10 submit A3
        11 failed
        next_timeout 60011
        12 expire
        // only W1's heartbeat deadline is left
        next_timeout 1000002
        ",
        "
        10 #5 pay W3 A3 base 100
        10 #6 hire 1
        11 #7 notify hire_failed 60011
        12 #8 expire_hits H1
        ",
    );
}

// ----- expire one HIT ------------------------------------------------------------------------

#[test]
fn expire_hit_closes_that_hit_and_hires_its_open_slots_anew() {
    let m = check(
        PAID,
        "
        0 start
        1 posted H1 2
        2 posted H2 1 #2
        3 arrive W1 A1 H1
        10 expire_hit H1
        ",
        "
        0 #1 hire 3
        1 #2 hire 1
        10 #3 expire_hits H1
        10 #4 hire 1
        ",
    );
    // W1 keeps the seat they took through H1; H2's slot is still open; one hire in flight.
    assert_eq!(
        (m.present(), m.open_slots(), m.hires_in_flight()),
        (1, 1, 1)
    );
}

/// A platform that keeps one HIT for every hire (Prolific: one study whose places only grow)
/// answers the hire after an `expire_hit` with the same HIT: the post re-opens it.
#[test]
fn a_post_onto_an_expired_hit_reopens_it_while_hiring_is_open() {
    let m = check(
        ONE_HIT,
        "
        0 start
        1 posted H1 3
        2 arrive W1 A1 H1
        10 expire_hit H1
        11 posted H1 2 #3
        12 arrive W2 A2 H1
        ",
        "
        0 #1 hire 3
        10 #2 expire_hits H1
        10 #3 hire 2
        12 #4 notify task_began 2
        12 #5 promote W1 A1
        12 #6 promote W2 A2
        ",
    );
    assert_eq!(
        (m.present(), m.open_slots(), m.hires_in_flight()),
        (2, 1, 0)
    );
}

/// After the job's `expire` the same HIT posted again is closed at once, as a new one is.
#[test]
fn a_post_onto_an_expired_hit_after_expire_closes_it_again() {
    let m = check(
        ONE_HIT,
        "
        0 start
        1 posted H1 2
        2 expire
        3 posted H1 1
        ",
        "
        0 #1 hire 3
        1 #2 hire 1
        2 #3 expire_hits H1
        ",
    );
    assert_eq!((m.open_slots(), m.hires_in_flight()), (0, 0));
}

#[test]
fn expire_hit_of_a_fully_taken_hit_hires_nobody_and_workers_keep_their_seats() {
    check_from(
        PAID,
        FULL,
        "
        10 expire_hit H1
        11 submit A3
        12 return A1
        ",
        "
        10 #5 expire_hits H1
        11 #6 pay W3 A3 base 100
        11 #7 hire 1
        // A1's slot does not re-open on a closed HIT: the seat is hired for instead.
        12 #8 hire 1
        ",
    );
}

#[test]
fn expire_hit_of_a_closed_hit_does_nothing() {
    check(
        PAID,
        "
        0 start
        1 posted H1 3
        10 expire_hit H1
        11 expire_hit H1
        12 posted H2 3
        13 expire
        14 expire_hit H2
        ",
        "
        0 #1 hire 3
        10 #2 expire_hits H1
        10 #3 hire 3
        13 #4 expire_hits H2
        ",
    );
}

#[test]
fn expire_hit_after_expire_hires_nobody() {
    check(
        PAID,
        "
        0 start
        1 posted H1 2
        2 posted H2 1
        3 expire
        4 expire_hit H1
        ",
        "
        0 #1 hire 3
        1 #2 hire 1
        3 #3 expire_hits H1 H2
        ",
    );
}

#[test]
fn expire_hit_of_an_unknown_hit_is_refused() {
    check_from(
        PAID,
        FULL,
        "
        10 expire_hit H9
        11 submit A3
        ",
        "
        10 rejected unknown HIT H9
        11 #5 pay W3 A3 base 100
        11 #6 hire 1
        ",
    );
}

#[test]
fn slots_posted_later_to_an_expired_hit_do_not_count() {
    check(
        PAID,
        "
        0 start
        1 posted H1 2
        10 expire_hit H1
        11 posted H1 1 #2
        ",
        "
        0 #1 hire 3
        1 #2 hire 1
        10 #3 expire_hits H1
        10 #4 hire 2
        // Hire #2 is answered with a slot on the closed HIT: it never opens, so it is hired again.
        11 #5 hire 1
        ",
    );
}

#[test]
fn expire_hit_during_a_hiring_pause_waits_for_the_pause() {
    check(
        PAID,
        "
        0 start
        1 posted H1 2
        2 failed
        3 expire_hit H1
        next_timeout 60002
        timeout
        ",
        "
        0 #1 hire 3
        1 #2 hire 1
        2 #3 notify hire_failed 60002
        3 #4 expire_hits H1
        60002 #5 hire 3
        ",
    );
}

// ----- migrate -------------------------------------------------------------------------------

#[test]
fn migrate_begins_the_task_and_is_capped_by_max_active() {
    let m = check_from(
        MANUAL,
        MANUAL_FULL,
        "10 migrate 5",
        "
        10 #2 notify task_began 3
        10 #3 promote W1 A1
        10 #4 promote W2 A2
        ",
    );
    assert_eq!((m.active_len(), m.waiting_len()), (2, 1));
}

#[test]
fn migrate_begins_the_task_before_the_start_condition_holds() {
    check(
        "min_active=2 max_active=2 min_waiting=1 max_waiting=1",
        "
        0 start
        1 posted H1 3
        2 arrive W1 A1 H1
        10 migrate 1
        11 arrive W2 A2 H1
        12 arrive W3 A3 H1
        ",
        "
        0 #1 hire 3
        10 #2 notify task_began 1
        10 #3 promote W1 A1
        11 #4 promote W2 A2
        ",
    );
}

#[test]
fn migrate_while_running_cannot_exceed_max_active() {
    let m = check_from(PAID, FULL, "10 migrate 3", "");
    assert_eq!((m.active_len(), m.waiting_len()), (2, 1));
}

// ----- set targets ---------------------------------------------------------------------------

#[test]
fn raising_the_targets_promotes_and_hires_the_difference() {
    check_from(
        PAID,
        FULL,
        "10 targets 1 3 1 2",
        "
        10 #5 promote W3 A3
        10 #6 hire 2
        ",
    );
}

#[test]
fn raising_the_targets_before_start_hires_nothing_until_start() {
    check(
        PAID,
        "
        0 targets 1 4 1 2
        1 start
        ",
        "1 #1 hire 6",
    );
}

#[test]
fn lowering_the_targets_releases_the_newest_of_each_queue() {
    check_from(
        PAID,
        FULL,
        "10 targets 1 1 0 0",
        "
        10 #5 release W2 A2 targets_lowered
        10 #6 pay W2 A2 base 100
        10 #7 release W3 A3 targets_lowered
        10 #8 pay W3 A3 base 100
        ",
    );
}

#[test]
fn lowering_max_waiting_releases_only_waiting_workers() {
    check_from(
        PAID,
        FULL,
        "10 targets 1 2 0 0",
        "
        10 #5 release W3 A3 targets_lowered
        10 #6 pay W3 A3 base 100
        ",
    );
}

#[test]
fn lowering_the_targets_before_the_task_begins_releases_the_newest_arrivals() {
    check_from(
        MANUAL,
        MANUAL_FULL,
        "10 targets 1 1 0 1",
        "
        10 #2 release W3 A3 targets_lowered
        10 #3 pay W3 A3 base 100
        ",
    );
}

#[test]
fn lowering_the_targets_to_what_is_there_releases_nobody_and_hires_nobody() {
    check(
        PAID,
        "
        0 start
        1 posted H1 3
        2 arrive W1 A1 H1
        3 arrive W2 A2 H1
        10 targets 1 2 0 0
        11 submit A1
        ",
        "
        0 #1 hire 3
        3 #2 notify task_began 2
        3 #3 promote W1 A1
        3 #4 promote W2 A2
        11 #5 pay W1 A1 base 100
        ",
    );
}
