//! The verifier hook as a verifier: presenters wait for its recorded
//! answer, it retires a version only after presenters left it, just before
//! the key is deleted, and a lost answer or a hook that is down only delays.

use super::*;

fn hooked() -> Policy {
    Policy {
        verifier_hook: true,
        ..policy()
    }
}

fn calls(w: &World) -> Vec<(HookStep, Version)> {
    w.last_plan
        .iter()
        .flat_map(|p| &p.actions)
        .filter_map(|a| match a {
            Action::CallHook { step, version } => Some((*step, *version)),
            _ => None,
        })
        .collect()
}

#[test]
fn presenters_get_a_version_only_after_the_hook_accepted_it() {
    let mut w = world(hooked());
    assert_eq!(
        w.hook.accepts,
        set(&[1]),
        "the first key went through the hook too"
    );
    w.hook.down = true;
    rotate(&mut w, "r1");
    w.sync_and_report_all();
    for _ in 0..3 {
        w.reconcile().unwrap();
        assert_eq!(
            w.current(),
            Some(1),
            "verifier pods confirmed, the hook did not"
        );
    }
    assert_eq!(w.stage(), Some(Stage::Staging));
    w.hook.down = false;
    w.reconcile().unwrap();
    assert_eq!(calls(&w), [(HookStep::Stage, 2)]);
    assert!(w.versions[&2].hook_accepted, "the answer is recorded");
    assert_eq!(
        w.current(),
        Some(1),
        "promotion is the next plan, on the recorded answer"
    );
    w.reconcile().unwrap();
    assert_eq!(w.current(), Some(2));
    assert_eq!(w.hook.accepts, set(&[1, 2]));
}

#[test]
fn the_waiting_reason_names_the_hook() {
    let mut w = world(hooked());
    rotate(&mut w, "r1");
    w.sync_and_report_all();
    w.reconcile().unwrap();
    assert_eq!(calls(&w), [(HookStep::Stage, 2)]);
    let progressing = w.condition(types::PROGRESSING).unwrap();
    assert_eq!(progressing.reason, reasons::WAITING_FOR_HOOK);
}

#[test]
fn the_hook_retires_the_old_version_after_presenters_moved_and_before_its_key_goes() {
    let mut w = world(hooked());
    rotate(&mut w, "r1");
    w.sync_and_report_all();
    w.reconcile().unwrap(); // hook stage
    w.reconcile().unwrap(); // promote
    w.sync_and_report_all();
    w.reconcile().unwrap();
    assert_eq!(
        w.hook.accepts,
        set(&[1, 2]),
        "grace: the hook keeps version 1"
    );
    w.advance(301);
    w.reconcile().unwrap();
    let actions = &w.last_plan.as_ref().unwrap().actions;
    let retire = actions
        .iter()
        .position(|a| {
            matches!(
                a,
                Action::CallHook {
                    step: HookStep::Retire,
                    version: 1
                }
            )
        })
        .expect("retire called");
    let shrink = actions
        .iter()
        .position(
            |a| matches!(a, Action::WriteProjection { accepted, .. } if *accepted == set(&[2])),
        )
        .unwrap();
    let delete = actions
        .iter()
        .position(|a| matches!(a, Action::DeleteVersion { version: 1 }))
        .unwrap();
    assert!(shrink < retire && retire < delete, "{actions:?}");
    assert_eq!(w.hook.accepts, set(&[2]));
}

#[test]
fn a_retire_that_fails_keeps_the_key_and_is_asked_again() {
    let mut w = world(hooked());
    rotate(&mut w, "r1");
    w.sync_and_report_all();
    w.reconcile().unwrap();
    w.reconcile().unwrap();
    w.sync_and_report_all();
    w.advance(301);
    w.hook.lose_answer = true; // the hook removes it, but keyrotor never hears
    w.reconcile().unwrap();
    assert!(
        w.versions.contains_key(&1),
        "no answer: the key is not deleted"
    );
    w.reconcile().unwrap();
    assert_eq!(
        calls(&w),
        [(HookStep::Retire, 1)],
        "asked again, same version"
    );
    assert!(!w.versions.contains_key(&1));
    assert_eq!(w.hook.accepts, set(&[2]));
}

#[test]
fn a_lost_stage_answer_is_asked_again_and_never_skipped() {
    let mut w = world(hooked());
    rotate(&mut w, "r1");
    w.sync_and_report_all();
    w.hook.lose_answer = true;
    w.reconcile().unwrap();
    assert!(w.hook.accepts.contains(&2), "the hook acted");
    assert!(!w.versions[&2].hook_accepted, "keyrotor did not hear");
    w.restart(StatusOnRestart::Lost);
    w.reconcile().unwrap();
    assert_eq!(calls(&w), [(HookStep::Stage, 2)]);
    assert_eq!(w.current(), Some(1));
    w.reconcile().unwrap();
    assert_eq!(w.current(), Some(2));
}

#[test]
fn revoking_the_current_key_waits_for_the_hook_to_hold_the_replacement() {
    let mut w = world(hooked());
    w.hook.down = true;
    w.policy.revoked.insert(1);
    w.reconcile().unwrap();
    assert_eq!(
        w.current(),
        Some(1),
        "presenters would be refused by the hook's system"
    );
    w.hook.down = false;
    w.settle().unwrap();
    assert_eq!(w.current(), Some(2));
    assert_eq!(
        w.hook.accepts,
        set(&[2]),
        "the revoked key is gone from the hook too"
    );
}

#[test]
fn an_issuer_is_never_asked_to_stage_and_is_told_to_retire_before_the_delete() {
    let mut w = world(Policy {
        issuer_hook: true,
        ..policy()
    });
    rotate(&mut w, "r1");
    w.sync_and_report_all();
    w.reconcile().unwrap();
    w.reconcile().unwrap();
    assert_eq!(w.current(), Some(2), "nothing waits on an issuer");
    w.sync_and_report_all();
    w.advance(301);
    w.reconcile().unwrap();
    let actions = &w.last_plan.as_ref().unwrap().actions;
    let retire = actions.iter().position(|a| {
        matches!(
            a,
            Action::CallHook {
                step: HookStep::Retire,
                version: 1
            }
        )
    });
    let delete = actions
        .iter()
        .position(|a| matches!(a, Action::DeleteVersion { version: 1 }));
    assert!(
        matches!((retire, delete), (Some(r), Some(d)) if r < d),
        "{actions:?}"
    );
    assert!(
        !actions.iter().any(|a| matches!(
            a,
            Action::CallHook {
                step: HookStep::Stage,
                ..
            }
        )),
        "{actions:?}"
    );
}

#[test]
fn while_the_hook_is_awaited_the_stall_names_the_hook() {
    let mut w = world(hooked());
    w.hook.down = true;
    rotate(&mut w, "r1");
    w.sync_and_report_all();
    w.advance(601);
    // The hook's call fails, so the plan is not applied; what it reports is
    // what the controller writes beside HookFailed.
    let answer = plan(&w.policy, &w.observe(), w.now);
    let by_type = |t: &str| answer.report.conditions.iter().find(|c| c.type_ == t);
    let progressing = by_type(types::PROGRESSING).unwrap();
    assert_eq!(progressing.reason, reasons::WAITING_FOR_HOOK);
    let stalled = by_type(types::MIGRATION_STALLED).unwrap();
    assert!(stalled.status);
    assert_eq!(stalled.reason, reasons::HOOK_STALLED);
    assert!(
        stalled
            .message
            .starts_with("the verifier hook has not accepted version 2 for 10m"),
        "{}",
        stalled.message
    );
    assert!(
        answer
            .events
            .iter()
            .any(|e| e.reason == events::MIGRATION_STALLED),
        "announced"
    );
}

#[test]
fn a_hook_added_to_a_stable_rotation_stages_the_current_version() {
    let mut w = world(policy());
    assert!(!w.versions[&1].hook_accepted);
    w.policy.verifier_hook = true;
    w.reconcile().unwrap();
    assert_eq!(calls(&w), [(HookStep::Stage, 1)]);
    assert_eq!(w.hook.accepts, set(&[1]));
    assert!(has_event(&w, events::HOOK_STAGED));
    assert_eq!(w.stage(), Some(Stage::Stable));
    w.reconcile().unwrap();
    let last = w.last_plan.as_ref().unwrap();
    assert!(
        last.actions.is_empty() && last.events.is_empty(),
        "asked once: {:?}",
        last.actions
    );
    // The next cycle goes through the hook as usual and retires version 1 there.
    rotate(&mut w, "r1");
    w.settle().unwrap();
    assert_eq!(w.hook.accepts, set(&[2]));
}
