//! Missing evidence is never confirmation: a group with no consumer found,
//! a listed workload that does not exist, a consumer reading the key through
//! env, Traffic silence; and stalls found by progress rather than at the
//! maximum grace, each with its own reason, said once.

use super::*;

fn stalled(w: &World) -> Option<(&'static str, String)> {
    w.condition(types::MIGRATION_STALLED)
        .filter(|c| c.status)
        .map(|c| (c.reason, c.message.clone()))
}

fn count(w: &World, reason: &str) -> usize {
    w.events.iter().filter(|e| e.reason == reason).count()
}

/// Rotates and promotes version 2 (every verifier confirms).
fn promoted(w: &mut World) {
    rotate(w, "r1");
    w.sync_and_report_all();
    w.reconcile().unwrap();
    assert_eq!(w.current(), Some(2));
}

#[test]
fn a_group_with_no_consumer_holds_the_old_key_and_says_so_once() {
    let mut w = world(policy());
    // The presenters run where keyrotor does not look (another namespace).
    w.pods.retain(|p| p.group != Group::Presenters);
    promoted(&mut w);
    for _ in 0..3 {
        w.advance(400); // well past the minimum grace (300 s)
        w.reconcile().unwrap();
        assert_eq!(w.accepted(), set(&[1, 2]), "version 1 stays accepted");
    }
    let (reason, message) = stalled(&w).expect("MigrationStalled");
    assert_eq!(reason, reasons::NO_CONSUMERS);
    for part in [
        "no presenters found",
        "sim/presenter-app",
        "namespace sim",
        "minConsumers: 1",
        "version(s) 1 stay accepted",
        "minConsumers: 0",
    ] {
        assert!(message.contains(part), "{part:?} missing in {message}");
    }
    assert_eq!(
        count(&w, events::NO_CONSUMERS),
        1,
        "said once, not per plan"
    );
    // A consumer appears and reports: the cycle completes.
    w.add_pod(Group::Presenters, false);
    w.sync_and_report_all();
    w.reconcile().unwrap();
    assert_eq!(w.accepted(), set(&[2]));
    assert_eq!(stalled(&w), None);
}

#[test]
fn a_group_declared_out_of_sight_needs_no_consumer() {
    let mut p = policy();
    p.presenters.min_consumers = 0;
    let mut w = world(p);
    w.pods.retain(|p| p.group != Group::Presenters);
    promoted(&mut w);
    w.advance(299);
    w.reconcile().unwrap();
    assert_eq!(w.accepted(), set(&[1, 2]), "the minimum grace still holds");
    w.advance(1);
    w.reconcile().unwrap();
    assert_eq!(w.accepted(), set(&[2]));
    assert_eq!(count(&w, events::NO_CONSUMERS), 0);
}

#[test]
fn the_first_key_needs_no_consumer() {
    let mut w = World::new(policy());
    w.reconcile().unwrap();
    w.reconcile().unwrap();
    assert_eq!(w.current(), Some(1));
    assert_eq!(stalled(&w), None);
}

#[test]
fn too_few_consumers_hold_as_none_do() {
    let mut p = policy();
    p.verifiers.min_consumers = 3;
    let mut w = world(p);
    let last = w.pods.iter().rposition(|p| p.group == Group::Verifiers);
    w.remove_pod(last.unwrap());
    rotate(&mut w, "r1");
    w.sync_and_report_all();
    w.reconcile().unwrap();
    assert_eq!(
        w.current(),
        Some(1),
        "two verifiers of three found, both confirmed"
    );
    let (reason, message) = stalled(&w).unwrap();
    assert_eq!(reason, reasons::NO_CONSUMERS);
    assert!(
        message.starts_with("too few verifiers found (2 of"),
        "{message}"
    );
    assert!(message.contains("presenters keep version 1"), "{message}");
    w.add_pod(Group::Verifiers, false);
    w.sync_and_report_all();
    w.reconcile().unwrap();
    assert_eq!(w.current(), Some(2));
}

#[test]
fn an_external_verifier_counts_as_the_verifier_found() {
    let mut w = world(Policy {
        verifier_hook: true,
        ..policy()
    });
    w.pods.retain(|p| p.group != Group::Verifiers);
    rotate(&mut w, "r1");
    w.reconcile().unwrap(); // the hook stages version 2
    w.reconcile().unwrap();
    assert_eq!(w.current(), Some(2), "the hook confirmed: nothing missing");
    assert_eq!(count(&w, events::NO_CONSUMERS), 0);
}

#[test]
fn a_listed_workload_that_does_not_exist_holds_the_cycle() {
    let mut p = policy();
    p.verifiers = GroupPolicy {
        workloads: vec![workload_id(Group::Verifiers)],
        ..group(Mode::Rollout)
    };
    let mut w = world(p);
    w.set_workload_missing(Group::Verifiers, true);
    rotate(&mut w, "r1");
    for _ in 0..3 {
        w.advance(60);
        w.reconcile().unwrap();
        assert_eq!(w.current(), Some(1));
    }
    let (reason, message) = stalled(&w).unwrap();
    assert_eq!(reason, reasons::NO_CONSUMERS);
    assert!(
        message.contains("Deployment/verifier-app listed in spec.consumers.verifiers.workloads not found in namespace sim"),
        "{message}"
    );
    w.set_workload_missing(Group::Verifiers, false);
    w.reconcile().unwrap(); // stamped
    w.rollout_progress(Group::Verifiers);
    w.reconcile().unwrap();
    assert_eq!(w.current(), Some(2));
}

#[test]
fn a_workload_declared_optional_is_skipped_when_it_does_not_exist() {
    let mut p = policy();
    p.verifiers = GroupPolicy {
        workloads: vec![workload_id(Group::Verifiers)],
        min_consumers: 0,
        ..group(Mode::Rollout)
    };
    let mut w = world(p);
    w.set_workload_missing(Group::Verifiers, true);
    rotate(&mut w, "r1");
    w.reconcile().unwrap();
    assert_eq!(w.current(), Some(2));
}

#[test]
fn an_env_consumer_is_named_at_once_and_never_counted_as_confirmed() {
    let mut w = world(policy());
    let env = w.add_env_pod(Group::Presenters);
    w.sync_and_report_all();
    promoted(&mut w);
    w.sync_and_report_all();
    let written = w.last_plan.as_ref().unwrap().report.presenter_revision;
    let pod = w.pods.iter().find(|p| p.name == env).unwrap();
    assert_eq!(
        pod.reported,
        Some(written),
        "its sidecar reports the volume"
    );
    assert!(pod.loaded < written, "its process keeps version 1");
    w.reconcile().unwrap();
    let (reason, message) = stalled(&w).expect("named within one plan");
    assert_eq!(reason, reasons::CONSUMERS_CANNOT_CONFIRM);
    assert!(
        message.starts_with(&format!(
            "pod(s) {env} read Secret sim/presenter-app through an environment variable"
        )),
        "{message}"
    );
    assert!(message.contains("confirmation: Rollout"), "{message}");
    for _ in 0..3 {
        w.advance(400);
        w.reconcile().unwrap();
        assert_eq!(w.accepted(), set(&[1, 2]), "never counted as confirmed");
    }
    let progress = &w.last_plan.as_ref().unwrap().report.presenters;
    assert_eq!((progress.confirmed, progress.total), (2, 3));
    assert_eq!(progress.waiting_for, vec![env.clone()]);
    assert_eq!(count(&w, events::CONSUMERS_CANNOT_CONFIRM), 1);
    // Its workload restarted on the current key (or gone): the cycle ends.
    w.pods.retain(|p| p.name != env);
    w.reconcile().unwrap();
    assert_eq!(w.accepted(), set(&[2]));
}

#[test]
fn an_env_verifier_keeps_presenters_on_the_old_key() {
    let mut w = world(policy());
    w.add_env_pod(Group::Verifiers);
    rotate(&mut w, "r1");
    for _ in 0..3 {
        w.sync_and_report_all();
        w.advance(60);
        w.reconcile().unwrap();
        assert_eq!(w.current(), Some(1));
    }
    assert_eq!(stalled(&w).unwrap().0, reasons::CONSUMERS_CANNOT_CONFIRM);
}

#[test]
fn a_group_that_stops_confirming_stalls_after_the_progress_deadline_not_the_maximum_grace() {
    let mut w = world(policy());
    let stuck = w.add_pod(Group::Presenters, true);
    promoted(&mut w);
    w.sync_and_report_all();
    w.reconcile().unwrap();
    let wake = w.last_plan.as_ref().unwrap().wake_at.unwrap();
    assert!(
        wake <= w.now + SignedDuration::from_secs(600),
        "wakes for the deadline"
    );
    w.advance(599);
    w.reconcile().unwrap();
    assert_eq!(stalled(&w), None);
    w.advance(1);
    w.reconcile().unwrap();
    let (reason, message) = stalled(&w).unwrap();
    assert_eq!(reason, reasons::PRESENTERS_STALLED);
    assert!(
        message.contains("no presenter confirmed revision")
            && message.contains("for 10m (spec.progressDeadline")
            && message.contains(&format!("waiting for {stuck}")),
        "{message}"
    );
    assert_eq!(w.accepted(), set(&[1, 2]), "a stall retires nothing");
    w.advance(60);
    w.reconcile().unwrap();
    assert_eq!(count(&w, events::MIGRATION_STALLED), 1);
}

#[test]
fn a_confirmation_starts_the_progress_deadline_again() {
    let mut w = world(policy());
    let late = w.add_pod(Group::Presenters, true);
    let stuck = w.add_pod(Group::Presenters, true);
    promoted(&mut w);
    w.sync_and_report_all();
    w.reconcile().unwrap();
    w.advance(500);
    let i = w.pods.iter().position(|p| p.name == late).unwrap();
    w.pods[i].stuck = false;
    w.sync(i);
    w.report(i);
    w.reconcile().unwrap();
    w.advance(500);
    w.reconcile().unwrap();
    assert_eq!(
        stalled(&w),
        None,
        "1000 s since the write, 500 s since a confirmation"
    );
    w.advance(100);
    w.reconcile().unwrap();
    let (_, message) = stalled(&w).unwrap();
    assert!(
        message.contains(&format!("waiting for {stuck};")),
        "{message}"
    );
}

#[test]
fn a_restart_neither_restarts_the_progress_deadline_nor_repeats_a_stall() {
    let mut w = world(policy());
    w.add_pod(Group::Presenters, true);
    promoted(&mut w);
    w.sync_and_report_all();
    w.reconcile().unwrap();
    w.advance(400);
    w.restart(StatusOnRestart::Kept);
    w.reconcile().unwrap();
    w.advance(200);
    w.reconcile().unwrap();
    assert!(
        stalled(&w).is_some(),
        "the deadline counts from the status kept"
    );
    for _ in 0..2 {
        w.restart(StatusOnRestart::Kept);
        w.reconcile().unwrap();
    }
    assert_eq!(count(&w, events::MIGRATION_STALLED), 1);
    let last = w.last_plan.as_ref().unwrap();
    assert!(
        last.actions.is_empty() && last.events.is_empty(),
        "nothing to do, nothing said"
    );
}

#[test]
fn silence_is_not_quiet_traffic_waits_for_a_live_usage_reporter() {
    let mut p = policy();
    p.quiet_window = Some(SignedDuration::from_secs(600));
    let mut w = world(p);
    promoted(&mut w);
    w.sync_and_report_all();
    w.advance(700);
    w.reconcile().unwrap();
    assert_eq!(w.accepted(), set(&[1, 2]), "no verifier reported anything");
    let (reason, message) = stalled(&w).unwrap();
    assert_eq!(reason, reasons::NO_USAGE_REPORTER);
    assert!(
        message.contains("no report yet") && message.contains("sim/verifier-app"),
        "{message}"
    );
    w.advance(60);
    w.reconcile().unwrap();
    assert_eq!(count(&w, events::NO_USAGE_REPORTER), 1);
    // A verifier reports traffic of version 2: a reporter is alive, and
    // version 1 was not seen for a whole window before it.
    w.outside_moves();
    w.outside_presents();
    w.reconcile().unwrap();
    assert_eq!(w.accepted(), set(&[2]));
}

#[test]
fn at_the_maximum_grace_traffic_not_presenters_is_named_when_every_presenter_confirmed() {
    let mut p = policy();
    p.quiet_window = Some(SignedDuration::from_secs(600));
    let mut w = world(p);
    w.outside_moves();
    promoted(&mut w);
    w.sync_and_report_all();
    for _ in 0..13 {
        w.advance(300);
        w.outside_presents(); // the outside client keeps version 1
        w.reconcile().unwrap();
    }
    assert_eq!(w.accepted(), set(&[1, 2]));
    let (reason, message) = stalled(&w).unwrap();
    assert_eq!(reason, reasons::TRAFFIC_NOT_QUIET);
    assert!(
        message.starts_with("every presenter confirmed"),
        "{message}"
    );
}
