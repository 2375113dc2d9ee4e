//! Confirmation: lagging, stuck and departing consumers, the grace periods
//! and their timeout, and each confirmation mode (Report with nudges,
//! Rollout, Delay, Traffic).

use super::*;

#[test]
fn old_key_stays_while_a_presenter_lags() {
    let mut w = world(policy());
    let lagging = w.add_pod(Group::Presenters, false);
    w.sync_and_report_all();
    rotate(&mut w, "r1");
    w.sync_and_report_all();
    w.reconcile().unwrap();
    assert_eq!(w.current(), Some(2));
    let i = w.pods.iter().position(|p| p.name == lagging).unwrap();
    w.pods[i].stuck = true;
    w.sync_and_report_all();
    w.advance(3000);
    w.reconcile().unwrap();
    assert_eq!(w.accepted(), set(&[1, 2]));
    let progressing = w.condition(types::PROGRESSING).unwrap();
    assert_eq!(progressing.reason, reasons::WAITING_FOR_PRESENTERS);
    let waiting = &w.last_plan.as_ref().unwrap().report.presenters.waiting_for;
    assert_eq!(waiting, &vec![lagging]);
}

#[test]
fn migration_stalls_after_the_maximum_grace_and_says_so_once() {
    let mut w = world(policy());
    rotate(&mut w, "r1");
    w.sync_and_report_all();
    w.reconcile().unwrap();
    w.pods
        .iter_mut()
        .filter(|p| p.group == Group::Presenters)
        .for_each(|p| p.stuck = true);
    w.advance(3601);
    w.reconcile().unwrap();
    w.reconcile().unwrap();
    let stalled = w.condition(types::MIGRATION_STALLED).unwrap();
    assert!(stalled.status);
    assert_eq!(stalled.reason, reasons::PRESENTERS_STALLED);
    assert_eq!(
        w.accepted(),
        set(&[1, 2]),
        "onTimeout Wait keeps the old key"
    );
    let warnings = w
        .events
        .iter()
        .filter(|e| e.reason == events::MIGRATION_STALLED)
        .count();
    assert_eq!(warnings, 1);
}

#[test]
fn on_timeout_retire_retires_anyway_after_the_maximum_grace() {
    let mut p = policy();
    p.on_timeout = OnTimeout::Retire;
    let mut w = world(p);
    rotate(&mut w, "r1");
    w.sync_and_report_all();
    w.reconcile().unwrap();
    w.pods
        .iter_mut()
        .filter(|p| p.group == Group::Presenters)
        .for_each(|p| p.stuck = true);
    w.advance(1000);
    w.reconcile().unwrap();
    assert_eq!(w.accepted(), set(&[1, 2]));
    w.advance(2601);
    w.reconcile().unwrap();
    assert_eq!(w.accepted(), set(&[2]));
    assert!(has_event(&w, events::RETIRED_ON_TIMEOUT));
}

#[test]
fn no_presenter_gets_a_key_a_verifier_has_not_confirmed() {
    let mut w = world(policy());
    let i = w
        .pods
        .iter()
        .position(|p| p.group == Group::Verifiers)
        .unwrap();
    w.pods[i].stuck = true;
    rotate(&mut w, "r1");
    for _ in 0..5 {
        w.sync_and_report_all();
        w.advance(4000);
        w.reconcile().unwrap();
        assert_eq!(w.current(), Some(1));
    }
    let stalled = w.condition(types::MIGRATION_STALLED).unwrap();
    assert_eq!(stalled.reason, reasons::VERIFIERS_STALLED);
}

#[test]
fn a_verifier_pod_that_starts_mid_staging_is_waited_for() {
    let mut w = world(policy());
    rotate(&mut w, "r1");
    w.sync_and_report_all();
    w.add_pod(Group::Verifiers, true);
    w.reconcile().unwrap();
    assert_eq!(w.current(), Some(1), "the new pod has not reported yet");
    let i = w.pods.len() - 1;
    w.pods[i].stuck = false;
    w.report(i);
    w.reconcile().unwrap();
    assert_eq!(w.current(), Some(2));
}

#[test]
fn pods_that_go_away_stop_counting() {
    let mut w = world(policy());
    w.add_pod(Group::Presenters, true);
    rotate(&mut w, "r1");
    w.sync_and_report_all();
    w.reconcile().unwrap();
    w.sync_and_report_all();
    w.advance(400);
    w.reconcile().unwrap();
    assert_eq!(
        w.accepted(),
        set(&[1, 2]),
        "the stuck presenter holds the old key"
    );
    let stuck = w.pods.iter().position(|p| p.stuck).unwrap();
    w.remove_pod(stuck);
    w.reconcile().unwrap();
    assert_eq!(w.accepted(), set(&[2]));
}

#[test]
fn traffic_mode_holds_the_old_key_while_a_verifier_still_sees_it() {
    let mut p = policy();
    p.quiet_window = Some(SignedDuration::from_secs(600));
    let mut w = world(p);
    w.outside_moves();
    rotate(&mut w, "r1");
    w.sync_and_report_all();
    w.reconcile().unwrap();
    w.sync_and_report_all();
    // The outside client keeps presenting version 1 for 20 minutes.
    for _ in 0..4 {
        w.advance(300);
        w.outside_presents();
        w.reconcile().unwrap();
        assert_eq!(w.accepted(), set(&[1, 2]));
    }
    assert_eq!(
        w.condition(types::PROGRESSING).unwrap().reason,
        reasons::WAITING_FOR_QUIET
    );
    // It moves to version 2, which verifiers report seeing.
    w.outside_moves();
    w.advance(599);
    w.outside_presents();
    w.reconcile().unwrap();
    assert_eq!(w.accepted(), set(&[1, 2]), "quiet for 599s of 600s");
    w.advance(1);
    w.outside_presents();
    w.reconcile().unwrap();
    assert_eq!(w.accepted(), set(&[2]));
}

#[test]
fn rollout_mode_restarts_one_workload_at_a_time_and_waits_for_it() {
    let mut p = policy();
    p.verifiers = GroupPolicy {
        workloads: vec![workload_id(Group::Verifiers)],
        ..group(Mode::Rollout)
    };
    p.presenters = GroupPolicy {
        workloads: vec![workload_id(Group::Presenters)],
        ..group(Mode::Rollout)
    };
    let mut w = world(p);
    rotate(&mut w, "r1");
    w.reconcile().unwrap();
    let stamps = w.last_plan.as_ref().unwrap().actions.clone();
    assert!(
        matches!(
            &stamps[..],
            [Action::StampWorkload {
                group: Group::Verifiers,
                ..
            }]
        ),
        "{stamps:?}"
    );
    w.reconcile().unwrap();
    assert_eq!(w.current(), Some(1), "rollout not finished");
    w.rollout_progress(Group::Verifiers);
    w.reconcile().unwrap();
    assert_eq!(w.current(), Some(2));
    w.reconcile().unwrap();
    w.rollout_progress(Group::Presenters);
    w.advance(301);
    w.reconcile().unwrap();
    assert_eq!(w.accepted(), set(&[2]));
}

#[test]
fn delay_mode_waits_the_propagation_delay() {
    let mut p = policy();
    p.verifiers = group(Mode::Delay);
    p.presenters = group(Mode::Delay);
    let mut w = world(p);
    rotate(&mut w, "r1");
    w.advance(89);
    w.reconcile().unwrap();
    assert_eq!(w.current(), Some(1));
    let wake = w.last_plan.as_ref().unwrap().wake_at.unwrap();
    assert_eq!(
        wake,
        w.now + SignedDuration::from_secs(1),
        "wakes exactly when the delay ends"
    );
    w.advance(1);
    w.reconcile().unwrap();
    assert_eq!(w.current(), Some(2));
}

#[test]
fn nudges_are_bounded_and_backed_off() {
    let mut p = policy();
    p.verifiers.nudge = true;
    let mut w = world(p);
    let i = w
        .pods
        .iter()
        .position(|p| p.group == Group::Verifiers)
        .unwrap();
    w.pods[i].stuck = true;
    rotate(&mut w, "r1");
    let mut nudges = 0;
    for _ in 0..40 {
        w.reconcile().unwrap();
        nudges += w
            .last_plan
            .as_ref()
            .unwrap()
            .actions
            .iter()
            .filter(|a| matches!(a, Action::Nudge { .. }))
            .count();
        w.advance(5);
    }
    // The healthy verifier syncs at the first nudge; the stuck one gets four.
    assert_eq!(nudges, 4);
}
