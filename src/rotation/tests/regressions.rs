//! Minimal failing inputs the property test found, kept as named
//! regressions.

use super::property::{Step, run_history};
use super::*;

/// The policy shape the property test's minimal failing inputs share.
fn found_policy(grace_secs: i64, combined: bool, rollout_verifiers: bool) -> Policy {
    let mut p = policy();
    p.grace_minimum = SignedDuration::from_secs(grace_secs);
    p.grace_maximum = SignedDuration::from_secs(grace_secs);
    p.combined = combined;
    for g in [&mut p.verifiers, &mut p.presenters] {
        g.propagation_delay = SignedDuration::from_secs(30);
    }
    if rollout_verifiers {
        p.verifiers.mode = Mode::Rollout;
        p.verifiers.workloads = vec![workload_id(Group::Verifiers)];
    }
    p
}

/// Found by the property test in CI: a rollback, a crash mid-apply and a
/// restart that loses status once reissued version 2 with another key.
#[test]
fn a_crash_after_a_rollback_never_reissues_a_version_number() {
    let p = found_policy(0, false, true);
    let steps = vec![
        Step::Advance(0),
        Step::Rotate(0),
        Step::Rollback(0),
        Step::Rollout(true),
        Step::Crash(1),
        Step::Advance(0),
        Step::Advance(0),
        Step::Restart(0),
    ];
    run_history(p, steps).unwrap();
}

/// Found by the property test: a rollback right after promotion, with the
/// clock stepping back, in the single-Secret layout.
#[test]
fn a_rollback_right_after_promotion_keeps_the_grace_when_the_clock_steps_back() {
    let p = found_policy(27, true, true);
    let steps = vec![
        Step::Restart(0),
        Step::Rotate(0),
        Step::Rollout(true),
        Step::Advance(-5),
        Step::Rollback(0),
    ];
    run_history(p, steps).unwrap();
}

/// Found by the property test: the clock steps back, status is lost, and a
/// staged version is rolled back; presenters never held it, so it goes at once.
#[test]
fn a_version_presenters_never_held_needs_no_grace() {
    let p = found_policy(30, true, false);
    let steps = vec![
        Step::Advance(0),
        Step::Rollout(false),
        Step::Advance(-2),
        Step::Rollback(0),
        Step::Rotate(0),
        Step::Sync(8692945967864240796),
        Step::Restart(0),
    ];
    run_history(p, steps).unwrap();
}
