//! The normal cycle: the first key, the four stages in order, triggers
//! (schedule, requests), how many writes a cycle takes, and none when
//! nothing changed (I8).

use super::*;

#[test]
fn first_key_reaches_verifiers_before_presenters() {
    let mut w = World::new(policy());
    w.add_pod(Group::Verifiers, false);
    w.reconcile().unwrap();
    assert_eq!(w.accepted(), set(&[1]));
    assert_eq!(
        w.current(),
        None,
        "presenters wait for the verifier to confirm"
    );
    w.sync_and_report_all();
    w.reconcile().unwrap();
    assert_eq!(w.current(), Some(1));
    assert_eq!(w.stage(), Some(Stage::Stable));
}

#[test]
fn the_progressing_message_names_the_stage_its_reason_names() {
    let mut w = world(policy());
    rotate(&mut w, "r1");
    let said = |w: &World| {
        let c = w.condition(types::PROGRESSING).unwrap();
        (c.reason.to_string(), c.message.clone())
    };
    assert_eq!(
        said(&w),
        (
            reasons::WAITING_FOR_VERIFIERS.into(),
            "Staging version 2".into()
        )
    );
    w.sync_and_report_all();
    w.reconcile().unwrap();
    assert_eq!(w.current(), Some(2), "this plan promoted");
    assert_eq!(
        said(&w),
        (
            reasons::WAITING_FOR_PRESENTERS.into(),
            "Promoting version 2".into()
        )
    );
}

#[test]
fn a_full_cooperative_rotation_takes_the_four_stages_in_order() {
    let mut w = world(policy());
    rotate(&mut w, "r1");
    assert_eq!(
        (w.accepted(), w.current()),
        (set(&[1, 2]), Some(1)),
        "staged"
    );
    assert_eq!(w.stage(), Some(Stage::Staging));
    w.reconcile().unwrap();
    assert_eq!(
        w.current(),
        Some(1),
        "no promotion before verifiers confirm"
    );
    w.sync_and_report_all();
    w.reconcile().unwrap();
    assert_eq!(
        (w.accepted(), w.current()),
        (set(&[1, 2]), Some(2)),
        "promoted"
    );
    assert_eq!(w.stage(), Some(Stage::Promoting));
    w.sync_and_report_all();
    w.reconcile().unwrap();
    assert_eq!(
        w.accepted(),
        set(&[1, 2]),
        "old key stays for the minimum grace"
    );
    w.advance(301);
    w.reconcile().unwrap();
    assert_eq!((w.accepted(), w.current()), (set(&[2]), Some(2)), "retired");
    assert_eq!(w.stage(), Some(Stage::Stable));
    assert!(!w.versions.contains_key(&1), "old key material deleted");
    let states: Vec<_> = w
        .record
        .history
        .iter()
        .map(|r| (r.version, r.state))
        .collect();
    assert_eq!(
        states,
        vec![(1, VersionState::Retired), (2, VersionState::Current)]
    );
}

#[test]
fn a_scheduled_rotation_starts_when_due_and_not_before() {
    let mut p = policy();
    p.schedule = Some(schedule::Schedule::Interval(SignedDuration::from_hours(24)));
    let mut w = world(p);
    let next = w.last_plan.as_ref().unwrap().report.next_rotation.unwrap();
    assert_eq!(w.last_plan.as_ref().unwrap().wake_at, Some(next));
    w.now = next - SignedDuration::from_secs(1);
    w.reconcile().unwrap();
    assert_eq!(w.accepted(), set(&[1]));
    w.now = next;
    w.reconcile().unwrap();
    assert_eq!(w.accepted(), set(&[1, 2]));
}

#[test]
fn a_due_rotation_waits_for_the_cycle_in_flight() {
    let mut w = world(policy());
    rotate(&mut w, "r1");
    rotate(&mut w, "r2");
    assert_eq!(
        w.accepted(),
        set(&[1, 2]),
        "no version 3 while 2 is in flight"
    );
    w.settle().unwrap();
    assert_eq!(w.current(), Some(2));
    w.reconcile().unwrap();
    assert_eq!(
        w.accepted(),
        set(&[2, 3]),
        "the second request runs after the first cycle"
    );
    w.settle().unwrap();
    assert_eq!(w.current(), Some(3));
    w.reconcile().unwrap();
    assert_eq!(w.current(), Some(3), "each request runs once");
}

#[test]
fn steady_state_makes_no_writes() {
    let mut w = world(policy());
    let before = w.writes;
    for _ in 0..10 {
        w.advance(3600);
        w.reconcile().unwrap();
    }
    assert_eq!(w.writes, before);
}

#[test]
fn a_single_secret_layout_rotates_with_one_write_per_step() {
    let mut p = policy();
    p.combined = true;
    let mut w = world(p);
    let before = w.writes;
    rotate(&mut w, "r1");
    w.settle().unwrap();
    assert_eq!(w.current(), Some(2));
    // create, stage, promote, retire + delete = 5 writes
    assert_eq!(w.writes - before, 5);
}

#[test]
fn a_full_cycle_takes_six_writes_with_separate_secrets() {
    let mut w = world(policy());
    let before = w.writes;
    rotate(&mut w, "r1");
    w.settle().unwrap();
    // create version, verifier stage, presenter promote, verifier retire, delete version
    assert_eq!(w.writes - before, 5);
}
