//! The exceptions to the normal cycle: revocation, rollback, suspend,
//! adoption, and restarts or crashes that lose status.

use super::*;

#[test]
fn emergency_revoke_drops_the_current_key_and_promotes_a_fresh_one_at_once() {
    let mut w = world(policy());
    w.policy.revoked.insert(1);
    w.reconcile().unwrap();
    assert_eq!((w.accepted(), w.current()), (set(&[2]), Some(2)));
    assert!(!w.versions.contains_key(&1));
    assert!(has_event(&w, events::VERSION_REVOKED));
    let state = w
        .record
        .history
        .iter()
        .find(|r| r.version == 1)
        .unwrap()
        .state;
    assert_eq!(state, VersionState::Revoked);
}

#[test]
fn revoking_the_previous_key_during_grace_drops_only_it() {
    let mut w = world(policy());
    rotate(&mut w, "r1");
    w.sync_and_report_all();
    w.reconcile().unwrap();
    w.policy.revoked.insert(1);
    w.reconcile().unwrap();
    assert_eq!((w.accepted(), w.current()), (set(&[2]), Some(2)));
}

#[test]
fn a_version_revoked_in_advance_is_never_issued() {
    let mut w = world(policy());
    w.policy.revoked.insert(2);
    rotate(&mut w, "r1");
    assert_eq!(w.accepted(), set(&[1, 3]));
}

#[test]
fn revoking_a_number_never_issued_is_said_once() {
    let mut w = world(policy());
    w.policy.revoked.insert(5);
    w.reconcile().unwrap();
    let said = |w: &World| {
        w.events
            .iter()
            .filter(|e| e.reason == events::REVOKED_IN_ADVANCE)
            .map(|e| e.note.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        said(&w),
        [
            "version 5 has not been issued (the highest is 1): its revocation is recorded in advance and version 5 will never be issued"
        ]
    );
    assert_eq!(w.record.revoked_in_advance, set(&[5]));
    // Nothing changed: not said again; a second number is.
    w.reconcile().unwrap();
    assert_eq!(said(&w).len(), 1);
    w.policy.revoked.insert(7);
    w.reconcile().unwrap();
    assert_eq!(said(&w).len(), 2);
    assert!(said(&w)[1].starts_with("version 7 has not been issued"));
}

#[test]
fn rollback_during_grace_returns_presenters_to_the_previous_key() {
    let mut w = world(policy());
    rotate(&mut w, "r1");
    w.sync_and_report_all();
    w.reconcile().unwrap();
    assert_eq!(w.current(), Some(2));
    w.rollback.annotation = Some("b1".into());
    w.reconcile().unwrap();
    assert_eq!((w.accepted(), w.current()), (set(&[1, 2]), Some(1)));
    assert!(has_event(&w, events::ROLLED_BACK));
    w.settle().unwrap();
    assert_eq!((w.accepted(), w.current()), (set(&[1]), Some(1)));
    let state = w
        .record
        .history
        .iter()
        .find(|r| r.version == 2)
        .unwrap()
        .state;
    assert_eq!(state, VersionState::Abandoned);
    rotate(&mut w, "r2");
    assert_eq!(w.accepted(), set(&[1, 3]), "version 2 is never reused");
}

#[test]
fn a_crash_between_the_two_writes_of_a_rollback_still_returns_presenters() {
    let mut w = world(policy());
    rotate(&mut w, "r1");
    w.sync_and_report_all();
    w.reconcile().unwrap();
    assert_eq!(w.current(), Some(2));
    // The rollback marks version 2 abandoned, then moves presenters back:
    // crash after the mark, so only version 2's Secret knows of it.
    w.crash_after = Some(1);
    w.rollback.annotation = Some("b1".into());
    w.reconcile().unwrap();
    assert!(w.versions[&2].abandoned.is_some());
    assert_eq!(
        w.current(),
        Some(2),
        "the crash came before presenters moved"
    );
    w.reconcile().unwrap();
    assert_eq!((w.accepted(), w.current()), (set(&[1, 2]), Some(1)));
    assert!(has_event(&w, events::ROLLED_BACK));
    w.settle().unwrap();
    assert_eq!((w.accepted(), w.current()), (set(&[1]), Some(1)));
}

#[test]
fn a_rollback_before_staging_holds_even_when_status_missed_the_rotation() {
    let mut w = world(policy());
    // Crash after creating version 2: only its Secret knows request r1.
    w.crash_after = Some(1);
    rotate(&mut w, "r1");
    assert!(w.versions.contains_key(&2));
    w.rollback.spec = Some("b1".into());
    for _ in 0..5 {
        w.reconcile().unwrap();
        w.advance(60);
    }
    assert!(
        !w.versions.contains_key(&2),
        "version 2 abandoned and deleted"
    );
    assert_eq!((w.accepted(), w.current()), (set(&[1]), Some(1)));
    assert_eq!(w.highest_issued(), Some(2), "no new rotation for r1");
    assert!(
        !has_event(&w, events::ROLLBACK_REJECTED),
        "b1 acted on once"
    );
}

#[test]
fn rollback_with_nothing_to_return_to_is_rejected_with_an_event() {
    let mut w = world(policy());
    w.rollback.spec = Some("b1".into());
    w.reconcile().unwrap();
    assert!(has_event(&w, events::ROLLBACK_REJECTED));
    assert_eq!(w.current(), Some(1));
    let n = w.events.len();
    w.reconcile().unwrap();
    assert_eq!(w.events.len(), n, "handled once");
}

#[test]
fn suspend_holds_a_cycle_where_it_is() {
    let mut w = world(policy());
    rotate(&mut w, "r1");
    w.policy.suspend = true;
    w.sync_and_report_all();
    w.reconcile().unwrap();
    assert_eq!(w.current(), Some(1));
    assert_eq!(
        w.condition(types::READY).unwrap().reason,
        reasons::SUSPENDED
    );
    w.policy.suspend = false;
    w.reconcile().unwrap();
    assert_eq!(w.current(), Some(2));
}

#[test]
fn adoption_publishes_the_existing_key_as_version_one_on_both_sides() {
    let mut p = policy();
    p.adopt = true;
    let mut w = World::new(p);
    w.adoption_available = false;
    w.add_pod(Group::Verifiers, true);
    w.reconcile().unwrap();
    assert_eq!(
        w.condition(types::READY).unwrap().reason,
        reasons::ADOPTION_PENDING
    );
    assert!(w.versions.is_empty());
    w.adoption_available = true;
    w.reconcile().unwrap();
    assert_eq!((w.accepted(), w.current()), (set(&[1]), Some(1)));
    assert_eq!(w.versions[&1].origin, Origin::Adopted);
}

#[test]
fn a_restart_that_loses_status_replans_from_the_secrets() {
    let mut w = world(policy());
    rotate(&mut w, "r1");
    w.sync_and_report_all();
    w.reconcile().unwrap();
    w.restart(StatusOnRestart::Lost);
    w.sync_and_report_all();
    w.advance(301);
    w.reconcile().unwrap();
    assert_eq!((w.accepted(), w.current()), (set(&[2]), Some(2)));
}

#[test]
fn a_crash_between_creating_and_staging_a_version_reuses_it() {
    let mut w = world(policy());
    w.crash_after = Some(1);
    rotate(&mut w, "r1");
    assert!(w.versions.contains_key(&2));
    assert_eq!(w.accepted(), set(&[1]));
    w.restart(StatusOnRestart::Lost);
    w.reconcile().unwrap();
    assert_eq!(w.accepted(), set(&[1, 2]));
    w.settle().unwrap();
    assert_eq!(w.current(), Some(2));
    assert_eq!(w.highest_issued(), Some(2), "the request did not run twice");
}

#[test]
fn after_a_revoke_pods_not_yet_reloaded_are_nudged_and_after_a_retire_none() {
    let mut p = policy();
    p.verifiers.nudge = true;
    p.presenters.nudge = true;
    let mut w = world(p);
    let nudged = |w: &World| -> Vec<Group> {
        w.last_plan
            .as_ref()
            .unwrap()
            .actions
            .iter()
            .filter_map(|a| match a {
                Action::Nudge { group, .. } => Some(*group),
                _ => None,
            })
            .collect()
    };
    // An ordinary cycle to its end: the Stable after the retire nudges nobody.
    rotate(&mut w, "r1");
    w.settle().unwrap();
    assert_eq!(w.stage(), Some(Stage::Stable));
    w.reconcile().unwrap();
    assert_eq!(nudged(&w), []);
    // Revoking the current key: publish, switch, shrink at once; the next
    // plan (Stable) nudges both groups, whose pods have not reloaded.
    w.policy.revoked.insert(2);
    w.reconcile().unwrap();
    assert_eq!((w.accepted(), w.current()), (set(&[3]), Some(3)));
    w.reconcile().unwrap();
    assert_eq!(w.stage(), Some(Stage::Stable));
    assert_eq!(nudged(&w), [Group::Verifiers, Group::Presenters]);
    // Once they reloaded and reported: nothing (I8).
    w.sync_and_report_all();
    w.reconcile().unwrap();
    assert_eq!(nudged(&w), []);
}
