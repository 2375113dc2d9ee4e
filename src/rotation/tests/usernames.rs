//! User names (`spec.usernames`): one name for every version, or two that
//! alternate so that the user presenters send is never the one whose
//! password changes; a version keeps the name it was created with, and the
//! hook's system (one password per user, as PostgreSQL) never rejects a
//! presenter.

use super::*;

fn alternating() -> Policy {
    Policy {
        verifier_hook: true,
        usernames: vec!["app_blue".into(), "app_green".into()],
        ..policy()
    }
}

/// A world whose hook's system holds one password per user.
fn one_password_per_user(policy: Policy) -> World {
    let mut w = World::new(policy);
    w.hook.one_password_per_user = true;
    for _ in 0..2 {
        w.add_pod(Group::Verifiers, false);
        w.add_pod(Group::Presenters, false);
    }
    w.settle().unwrap();
    w
}

fn name(w: &World, v: Version) -> Option<&str> {
    w.versions[&v].username.as_deref()
}

fn rotate_and_settle(w: &mut World, token: &str) {
    rotate(w, token);
    w.settle().unwrap();
}

#[test]
fn two_names_alternate_from_the_first_version_on() {
    let mut w = one_password_per_user(alternating());
    assert_eq!(
        name(&w, 1),
        Some("app_blue"),
        "the first version takes the first name"
    );
    for (n, want) in [
        (2, "app_green"),
        (3, "app_blue"),
        (4, "app_green"),
        (5, "app_blue"),
    ] {
        rotate_and_settle(&mut w, &format!("r{n}"));
        assert_eq!(w.current(), Some(n));
        assert_eq!(name(&w, n), Some(want), "version {n}");
    }
    let history = &w.last_plan.as_ref().unwrap().report.versions;
    let current = history.iter().find(|r| r.version == 5).unwrap();
    assert_eq!(
        current.username.as_deref(),
        Some("app_blue"),
        "status shows it"
    );
}

#[test]
fn one_name_goes_with_every_version_and_none_leaves_versions_without() {
    let mut w = world(Policy {
        usernames: vec!["api".into()],
        ..policy()
    });
    rotate_and_settle(&mut w, "r1");
    assert_eq!((name(&w, 2), w.current()), (Some("api"), Some(2)));
    let mut w = world(policy());
    rotate_and_settle(&mut w, "r1");
    assert_eq!(name(&w, 2), None);
    let history = &w.last_plan.as_ref().unwrap().report.versions;
    assert!(history.iter().all(|r| r.username.is_none()));
}

#[test]
fn a_spec_edit_names_only_the_versions_created_after_it() {
    let mut w = world(policy());
    w.policy.usernames = vec!["app_blue".into(), "app_green".into()];
    assert_eq!(name(&w, 1), None, "version 1 keeps having no name");
    rotate_and_settle(&mut w, "r1");
    assert_eq!(
        name(&w, 2),
        Some("app_blue"),
        "after a version without one: the first"
    );
    w.policy.usernames = vec!["app_red".into(), "app_green".into()];
    assert_eq!(name(&w, 2), Some("app_blue"));
    rotate_and_settle(&mut w, "r2");
    assert_eq!(
        name(&w, 3),
        Some("app_red"),
        "the current version's name is not on the list: the first"
    );
    rotate_and_settle(&mut w, "r3");
    assert_eq!(name(&w, 4), Some("app_green"));
}

#[test]
fn an_adopted_version_carries_the_first_name() {
    let mut w = one_password_per_user(Policy {
        adopt: true,
        ..alternating()
    });
    assert_eq!(w.versions[&1].origin, Origin::Adopted);
    assert_eq!(name(&w, 1), Some("app_blue"));
    rotate_and_settle(&mut w, "r1");
    assert_eq!(name(&w, 2), Some("app_green"));
}

#[test]
fn a_crash_between_creating_and_staging_keeps_the_name_of_the_version_created() {
    let mut w = one_password_per_user(alternating());
    w.crash_after = Some(1);
    rotate(&mut w, "r1");
    assert_eq!(name(&w, 2), Some("app_green"));
    w.restart(StatusOnRestart::Lost);
    w.settle().unwrap();
    assert_eq!((w.current(), name(&w, 2)), (Some(2), Some("app_green")));
}

#[test]
fn the_replacement_of_a_revoked_current_version_takes_its_user_while_the_previous_is_still_held() {
    let mut w = one_password_per_user(alternating());
    rotate(&mut w, "r1");
    w.sync_and_report_all();
    w.reconcile().unwrap(); // the hook stages version 2
    w.reconcile().unwrap(); // presenters get it; version 1 stays for the grace
    assert_eq!((w.current(), w.accepted()), (Some(2), set(&[1, 2])));
    w.policy.revoked.insert(2);
    w.settle().unwrap();
    assert_eq!(w.current(), Some(3));
    assert_eq!(
        name(&w, 3),
        Some("app_green"),
        "app_blue still carries version 1, which presenters may hold: version 3 takes the revoked version's user"
    );
}

#[test]
fn after_a_revoked_current_version_alone_the_other_name_follows() {
    let mut w = one_password_per_user(alternating());
    w.policy.revoked.insert(1);
    w.settle().unwrap();
    assert_eq!((w.current(), name(&w, 2)), (Some(2), Some("app_green")));
}

#[test]
fn a_single_user_with_one_password_rejects_presenters_and_two_alternating_do_not() {
    // What alternating users are for: the naive rotation of one user's
    // password breaks the presenters that have not moved yet.
    let mut w = one_password_per_user(Policy {
        usernames: vec!["app".into()],
        ..alternating()
    });
    rotate(&mut w, "r1");
    w.sync_and_report_all();
    let failed = (0..4).any(|_| w.reconcile().and_then(|_| w.check()).is_err());
    assert!(
        failed,
        "one user: staging version 2 ends version 1's password"
    );
    let mut w = one_password_per_user(alternating());
    rotate(&mut w, "r1");
    w.sync_and_report_all();
    for _ in 0..4 {
        w.reconcile().unwrap();
        w.check().unwrap();
    }
    w.settle().unwrap();
}

#[test]
fn two_names_choose_the_one_the_current_version_does_not_carry() {
    let p = alternating();
    let free = |_: &str| false;
    assert_eq!(p.username_after(None, free).as_deref(), Some("app_blue"));
    assert_eq!(
        p.username_after(Some("app_blue"), free).as_deref(),
        Some("app_green")
    );
    assert_eq!(
        p.username_after(Some("app_green"), free).as_deref(),
        Some("app_blue")
    );
    assert_eq!(
        p.username_after(Some("other"), free).as_deref(),
        Some("app_blue")
    );
    let blue_in_use = |n: &str| n == "app_blue";
    assert_eq!(
        p.username_after(Some("app_green"), blue_in_use).as_deref(),
        Some("app_green"),
        "the current (revoked) version's user, since the other is in use"
    );
    let both = |_: &str| true;
    assert_eq!(
        p.username_after(Some("app_green"), both).as_deref(),
        Some("app_blue")
    );
    assert_eq!(policy().username_after(Some("x"), free), None);
}
