//! The alternating-users plan over database states, with a model of what
//! the planned statements do to `pg_roles`, so whole cycles (and a hook
//! restarted mid-cycle) can be replayed.

use super::*;

const UID: &str = "0f1e2d3c-4b5a-6978-8a9b-acbdcedf0011";
const SALT: &[u8] = b"0123456789abcdef";

fn role(name: &str, can_login: bool, mark: Option<u64>) -> RoleState {
    RoleState {
        name: RoleName::new(name).unwrap(),
        can_login,
        mark: mark.map(|version| Mark {
            uid: UID.into(),
            version,
        }),
    }
}

fn fresh() -> State {
    State([role("app_a", false, None), role("app_b", false, None)])
}

fn password(version: u64) -> String {
    format!("password-of-version-{version}")
}

/// What the database holds after a stage's transaction commits.
fn committed(state: &State, s: &Stage, uid: &str, version: u64) -> State {
    let mut next = state.clone();
    for r in next.0.iter_mut().filter(|r| r.name == s.role) {
        r.can_login = true;
        r.mark = Some(Mark {
            uid: uid.into(),
            version,
        });
    }
    next
}

fn retired(state: &State, plan: &Retire) -> State {
    let mut next = state.clone();
    if let Retire::Disable { role, .. } = plan {
        for r in next.0.iter_mut().filter(|r| r.name == *role) {
            r.can_login = false;
        }
    }
    next
}

fn login_roles(state: &State) -> Vec<(&str, Option<u64>)> {
    state
        .0
        .iter()
        .filter(|r| r.can_login)
        .map(|r| (r.name.as_str(), r.mark.as_ref().map(|m| m.version)))
        .collect()
}

#[test]
fn the_first_version_goes_to_a_role_that_cannot_log_in() {
    let s = stage(&fresh(), UID, 1, &password(1), SALT).unwrap();
    assert_eq!(s.role.as_str(), "app_a");
    assert!(!s.repeated);
    let serving_by_hand = State([role("app_a", true, None), role("app_b", false, None)]);
    let s = stage(&serving_by_hand, UID, 1, &password(1), SALT).unwrap();
    assert_eq!(
        s.role.as_str(),
        "app_b",
        "the role clients use keeps working"
    );
}

#[test]
fn versions_alternate_roles_and_each_retire_leaves_one_login_role_holding_the_current_version() {
    let mut state = fresh();
    let mut roles = Vec::new();
    for v in 1..=6u64 {
        let s = stage(&state, UID, v, &password(v), SALT).unwrap();
        roles.push(s.role.as_str().to_string());
        state = committed(&state, &s, UID, v);
        if v > 1 {
            // Both live between stage vN and retire vN-1: the gapless part.
            assert_eq!(login_roles(&state).len(), 2);
            state = retired(&state, &retire(&state, UID, v - 1).unwrap());
        }
        assert_eq!(login_roles(&state), [(s.role.as_str(), Some(v))]);
    }
    assert_eq!(
        roles,
        ["app_a", "app_b", "app_a", "app_b", "app_a", "app_b"]
    );
}

#[test]
fn a_hook_restarted_after_its_stage_committed_finds_the_same_role_not_the_other() {
    // v3 on app_a serves; stage v4 committed on app_b, then the hook died.
    let before = State([role("app_a", true, Some(3)), role("app_b", false, Some(2))]);
    let first = stage(&before, UID, 4, &password(4), SALT).unwrap();
    let after = committed(&before, &first, UID, 4);
    let again = stage(&after, UID, 4, &password(4), SALT).unwrap();
    assert_eq!(again.role, first.role);
    assert_eq!(again.role.as_str(), "app_b");
    assert!(again.repeated, "the repeat re-asserts v4 on its role");
    // Then retire v3 (and its repeat) leave app_b alone serving v4.
    let r = retire(&after, UID, 3).unwrap();
    assert!(matches!(&r, Retire::Disable { role, .. } if role.as_str() == "app_a"));
    let end = retired(&after, &r);
    assert!(
        matches!(retire(&end, UID, 3).unwrap(), Retire::Done { role } if role.as_str() == "app_a")
    );
    assert_eq!(login_roles(&end), [("app_b", Some(4))]);
}

#[test]
fn a_stage_lost_before_its_commit_is_planned_again_on_the_same_role() {
    let before = State([role("app_a", true, Some(3)), role("app_b", false, Some(2))]);
    let first = stage(&before, UID, 4, &password(4), SALT).unwrap();
    // Nothing committed: the database is as before, so is the plan.
    let again = stage(&before, UID, 4, &password(4), SALT).unwrap();
    assert_eq!((again.role, again.repeated), (first.role, false));
}

#[test]
fn retire_never_disables_a_role_that_holds_another_version() {
    // app_a held v3, was retired, and now holds v5; a late retire of v3.
    let state = State([role("app_a", true, Some(5)), role("app_b", false, Some(4))]);
    assert_eq!(retire(&state, UID, 3).unwrap(), Retire::Unknown);
    assert_eq!(retire(&state, UID, 99).unwrap(), Retire::Unknown);
    let other_rotation = State([role("app_a", true, None), role("app_b", false, None)]);
    assert_eq!(retire(&other_rotation, UID, 1).unwrap(), Retire::Unknown);
}

#[test]
fn a_stage_older_than_what_a_role_holds_is_refused_as_stale() {
    let state = State([role("app_a", false, Some(3)), role("app_b", true, Some(4))]);
    assert_eq!(
        stage(&state, UID, 2, &password(2), SALT).unwrap_err(),
        PlanError::Stale {
            role: "app_b".into(),
            newer: 4,
            version: 2
        }
    );
}

#[test]
fn a_stage_while_both_roles_still_log_in_is_refused_rather_than_cut_one() {
    let state = State([role("app_a", true, Some(3)), role("app_b", true, Some(4))]);
    let e = stage(&state, UID, 5, &password(5), SALT).unwrap_err();
    assert_eq!(
        e.to_string(),
        "app_a (version 3) and app_b (version 4) both still log in; retire one first"
    );
}

#[test]
fn a_recreated_rotation_ignores_the_old_marks_and_spares_the_serving_role() {
    let old = |name, can_login, version| RoleState {
        mark: Some(Mark {
            uid: "11111111-old".into(),
            version,
        }),
        ..role(name, can_login, None)
    };
    let state = State([old("app_a", false, 6), old("app_b", true, 7)]);
    let s = stage(&state, UID, 1, &password(1), SALT).unwrap();
    assert_eq!((s.role.as_str(), s.repeated), ("app_a", false));
    assert_eq!(retire(&state, UID, 7).unwrap(), Retire::Unknown);
}

#[test]
fn the_stage_statement_sets_login_a_verifier_and_the_mark_in_one_transaction() {
    let s = stage(&fresh(), UID, 7, "s3cret'pass", SALT).unwrap();
    let v = verifier("s3cret'pass", SALT, ITERATIONS).unwrap();
    assert_eq!(
        *s.sql,
        format!(
            "BEGIN; ALTER ROLE \"app_a\" WITH LOGIN PASSWORD '{}' VALID UNTIL 'infinity'; \
             COMMENT ON ROLE \"app_a\" IS 'keyrotor rotation {UID} version 7'; COMMIT",
            *v
        )
    );
    assert!(
        !s.sql.contains("s3cret"),
        "the server gets a verifier, never the password"
    );
    assert!(!format!("{s:?}").contains("SCRAM-SHA-256$"), "{s:?}");
}

#[test]
fn the_state_is_read_back_from_pg_roles_and_foreign_comments_are_no_marks() {
    let pair = Pair::new(
        RoleName::new("app_a").unwrap(),
        RoleName::new("app_b").unwrap(),
    )
    .unwrap();
    assert_eq!(
        pair.state_query(),
        "SELECT rolname, rolcanlogin, shobj_description(oid, 'pg_authid') \
         FROM pg_catalog.pg_roles WHERE rolname IN ('app_a', 'app_b')"
    );
    let text = |s: &str| Some(s.to_string());
    let answer = Answer {
        rows: vec![
            vec![text("app_b"), text("f"), text("reporting login, ask Dana")],
            vec![
                text("app_a"),
                text("t"),
                text(&format!("keyrotor rotation {UID} version 12")),
            ],
        ],
        ..Answer::default()
    };
    assert_eq!(
        pair.state(&answer).unwrap(),
        State([role("app_a", true, Some(12)), role("app_b", false, None)])
    );
    let missing = Answer {
        rows: answer.rows[..1].to_vec(),
        ..Answer::default()
    };
    assert_eq!(
        pair.state(&missing).unwrap_err(),
        PlanError::Missing("app_a".into())
    );
    assert_eq!(Mark::parse("keyrotor rotation x'y version 3"), None);
    assert_eq!(
        Mark::parse(&format!("keyrotor rotation {UID} version 0")),
        None
    );
}

#[test]
fn role_names_that_would_need_care_in_sql_are_refused() {
    for bad in [
        "",
        "App",
        "app-a",
        "app a",
        "a\"b",
        "x'; DROP ROLE y; --",
        "pg_monitor",
        "1app",
    ] {
        assert!(RoleName::new(bad).is_err(), "{bad:?}");
    }
    assert!(RoleName::new(&"a".repeat(64)).is_err());
    assert!(RoleName::new("_app_2").is_ok());
    let same = RoleName::new("app").unwrap();
    assert_eq!(
        Pair::new(same.clone(), same).unwrap_err(),
        PlanError::SameRoles
    );
    assert!(stage(&fresh(), "uid'; --", 1, "p", SALT).is_err());
}

#[test]
fn literals_and_identifiers_are_quoted() {
    assert_eq!(literal("it's"), "'it''s'");
    assert_eq!(literal(r"a\'b"), r"E'a\\''b'");
    assert_eq!(ident("we\"ird"), "\"we\"\"ird\"");
    assert_eq!(
        terminate_sessions(&RoleName::new("app_a").unwrap()),
        "SELECT pg_catalog.pg_terminate_backend(pid) FROM pg_catalog.pg_stat_activity \
         WHERE usename = 'app_a'"
    );
}

#[test]
fn a_repeated_issue_gives_the_same_password_on_the_same_role() {
    let secret = b"issuer-secret-for-tests-0123456789abcdef";
    let (s, p) = issue(&fresh(), secret, UID, 1, SALT).unwrap();
    let after = committed(&fresh(), &s, UID, 1);
    let (again, p_again) = issue(&after, secret, UID, 1, b"another-salt-123").unwrap();
    assert_eq!((&again.role, again.repeated), (&s.role, true));
    assert_eq!(*p, *p_again);
    let (next, p2) = issue(&after, secret, UID, 2, SALT).unwrap();
    assert_eq!(next.role.as_str(), "app_b");
    assert_ne!(*p, *p2);
}
