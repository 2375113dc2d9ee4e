//! The alternating-users plan over database states, with a model of what
//! the planned statements do to `pg_roles`, so whole cycles (and a hook
//! restarted mid-cycle) can be replayed.

use super::*;

const UID: &str = "0f1e2d3c-4b5a-6978-8a9b-acbdcedf0011";
const SALT: &[u8] = b"0123456789abcdef";

fn pair() -> Pair {
    let r = |n| RoleName::new(n).unwrap();
    Pair::new(r("app_a"), r("app_b"), r("app")).unwrap()
}

fn role(name: &str, can_login: bool, mark: Option<u64>) -> RoleState {
    RoleState {
        name: RoleName::new(name).unwrap(),
        can_login,
        mark: mark.map(|version| Mark {
            uid: UID.into(),
            version,
        }),
        member: true,
    }
}

fn fresh() -> State {
    State([role("app_a", false, None), role("app_b", false, None)])
}

fn password(version: u64) -> String {
    format!("password-of-version-{version}")
}

/// keyrotor's `spec.usernames: [app_a, app_b]`: version 1 on app_a, then
/// each version on the role its predecessor did not use.
fn username(version: u64) -> Option<&'static str> {
    Some(if version % 2 == 1 { "app_a" } else { "app_b" })
}

fn staged(state: &State, version: u64) -> Result<Stage, PlanError> {
    stage(
        &pair(),
        state,
        UID,
        version,
        username(version),
        &password(version),
        SALT,
    )
}

fn retired_plan(state: &State, version: u64) -> Retire {
    retire(&pair(), state, UID, version, username(version)).unwrap()
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

fn retired(state: &State, plan: &Retire, version: u64) -> State {
    let mut next = state.clone();
    if let Retire::Disable { role, sql } = plan {
        for r in next.0.iter_mut().filter(|r| r.name == *role) {
            r.can_login = false;
            if sql.contains("COMMENT") {
                r.mark = Some(Mark {
                    uid: UID.into(),
                    version,
                });
            }
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
fn the_request_names_the_role_and_a_role_that_cannot_log_in_is_free() {
    let s = staged(&fresh(), 1).unwrap();
    assert_eq!((s.role.as_str(), s.standing), ("app_a", Standing::Free));
    let on_b = stage(&pair(), &fresh(), UID, 1, Some("app_b"), "p-1", SALT).unwrap();
    assert_eq!(
        on_b.role.as_str(),
        "app_b",
        "the username decides, not the hook"
    );
}

#[test]
fn versions_alternate_roles_and_each_retire_leaves_one_login_role_holding_the_current_version() {
    let mut state = fresh();
    let mut roles = Vec::new();
    for v in 1..=6u64 {
        let s = staged(&state, v).unwrap();
        assert_eq!(s.standing, Standing::Free);
        roles.push(s.role.as_str().to_string());
        state = committed(&state, &s, UID, v);
        if v > 1 {
            // Both live between stage vN and retire vN-1: the gapless part.
            assert_eq!(login_roles(&state).len(), 2);
            state = retired(&state, &retired_plan(&state, v - 1), v - 1);
        }
        assert_eq!(login_roles(&state), [(s.role.as_str(), Some(v))]);
    }
    assert_eq!(
        roles,
        ["app_a", "app_b", "app_a", "app_b", "app_a", "app_b"]
    );
}

#[test]
fn a_hook_restarted_after_its_stage_committed_finds_the_version_held() {
    // v3 on app_a serves; stage v4 committed on app_b, then the hook died.
    let before = State([role("app_a", true, Some(3)), role("app_b", false, Some(2))]);
    let first = staged(&before, 4).unwrap();
    let after = committed(&before, &first, UID, 4);
    let again = staged(&after, 4).unwrap();
    assert_eq!(
        (again.role.as_str(), again.standing),
        ("app_b", Standing::Held)
    );
    // Then retire v3 (and its repeat) leave app_b alone serving v4.
    let r = retired_plan(&after, 3);
    assert!(matches!(&r, Retire::Disable { role, .. } if role.as_str() == "app_a"));
    let end = retired(&after, &r, 3);
    assert!(matches!(retired_plan(&end, 3), Retire::Done { role } if role.as_str() == "app_a"));
    assert_eq!(login_roles(&end), [("app_b", Some(4))]);
}

#[test]
fn a_stage_lost_before_its_commit_is_planned_again_on_the_same_free_role() {
    let before = State([role("app_a", true, Some(3)), role("app_b", false, Some(2))]);
    let first = staged(&before, 4).unwrap();
    // Nothing committed: the database is as before, so is the plan.
    let again = staged(&before, 4).unwrap();
    assert_eq!((again.role, again.standing), (first.role, Standing::Free));
}

#[test]
fn a_stage_on_the_role_presenters_use_now_is_refused_with_the_reason() {
    // v3 serves on app_a; a version 4 naming app_a would cut its clients.
    let state = State([role("app_a", true, Some(3)), role("app_b", false, Some(2))]);
    let e = stage(&pair(), &state, UID, 4, Some("app_a"), "p", SALT).unwrap_err();
    assert_eq!(
        e.to_string(),
        "role app_a still logs in with version 3, which presenters may use; version 4 needs a \
         role that cannot log in (retire version 3 first)"
    );
}

#[test]
fn a_revoked_current_version_is_replaced_on_its_own_role_while_the_older_one_serves_on_the_other() {
    // Promoting: v3 on app_a still serves lagging presenters, v4 on app_b
    // is current and revoked; keyrotor names app_b for its replacement v5.
    let state = State([role("app_a", true, Some(3)), role("app_b", true, Some(4))]);
    let s = stage(&pair(), &state, UID, 5, Some("app_b"), "p-5", SALT).unwrap();
    assert_eq!(
        (s.role.as_str(), s.standing),
        ("app_b", Standing::Replacing(4))
    );
    let after = committed(&state, &s, UID, 5);
    // The revoked v4's retire then finds nothing of it: its password is gone.
    assert_eq!(
        retire(&pair(), &after, UID, 4, Some("app_b")).unwrap(),
        Retire::Unknown
    );
    assert_eq!(
        login_roles(&after),
        [("app_a", Some(3)), ("app_b", Some(5))]
    );
    // The older version's role is never the one replaced.
    assert!(matches!(
        stage(&pair(), &state, UID, 5, Some("app_a"), "p-5", SALT),
        Err(PlanError::Serving { serving: 3, .. })
    ));
}

#[test]
fn a_retired_version_is_never_logged_in_again_by_a_late_stage() {
    let state = State([role("app_a", false, Some(3)), role("app_b", true, Some(4))]);
    assert_eq!(
        stage(&pair(), &state, UID, 3, Some("app_a"), "p", SALT).unwrap_err(),
        PlanError::Stale {
            role: "app_b".into(),
            newer: 4,
            version: 3
        }
    );
    let state = State([role("app_a", false, Some(3)), role("app_b", false, Some(2))]);
    assert_eq!(
        stage(&pair(), &state, UID, 3, Some("app_a"), "p", SALT).unwrap_err(),
        PlanError::Retired {
            role: "app_a".into(),
            version: 3
        }
    );
}

#[test]
fn a_role_logging_in_with_a_password_this_rotation_did_not_set_is_foreign() {
    let by_hand = State([role("app_a", true, None), role("app_b", false, None)]);
    let s = staged(&by_hand, 1).unwrap();
    assert_eq!((s.role.as_str(), s.standing), ("app_a", Standing::Foreign));
    assert_eq!(
        s.mark,
        format!("COMMENT ON ROLE \"app_a\" IS 'keyrotor rotation {UID} version 1'")
    );
    // A re-created rotation (new uid) sees the old rotation's marks so too.
    let old = |name, can_login, version| RoleState {
        mark: Some(Mark {
            uid: "11111111-old".into(),
            version,
        }),
        ..role(name, can_login, None)
    };
    let state = State([old("app_a", false, 6), old("app_b", true, 7)]);
    assert_eq!(staged(&state, 1).unwrap().standing, Standing::Free);
    assert_eq!(staged(&state, 2).unwrap().standing, Standing::Foreign);
    assert_eq!(retired_plan(&state, 7), Retire::Unknown);
}

#[test]
fn a_request_without_a_username_or_naming_another_role_is_refused_with_the_fix() {
    let e = stage(&pair(), &fresh(), UID, 1, None, "p", SALT).unwrap_err();
    assert_eq!(
        e.to_string(),
        "version 1 names no user; this hook alternates the roles app_a and app_b: set \
         spec.usernames: [app_a, app_b]"
    );
    let e = stage(&pair(), &fresh(), UID, 1, Some("postgres"), "p", SALT).unwrap_err();
    assert_eq!(
        e.to_string(),
        "user \"postgres\" is not one of this hook's roles (app_a, app_b); fix spec.usernames"
    );
    assert!(matches!(
        retire(&pair(), &fresh(), UID, 1, Some("app")),
        Err(PlanError::NotInPair { .. })
    ));
}

#[test]
fn a_role_without_the_groups_privileges_is_refused() {
    let mut state = fresh();
    state.0[1].member = false;
    assert!(staged(&state, 1).is_ok());
    assert_eq!(
        staged(&state, 2).unwrap_err().to_string(),
        "role app_b does not inherit the privileges of app: run GRANT app TO app_b"
    );
}

#[test]
fn retire_never_disables_a_role_that_holds_another_version() {
    // app_a held v3, was retired, and now holds v5; a late retire of v3.
    let state = State([role("app_a", true, Some(5)), role("app_b", false, Some(4))]);
    assert_eq!(retired_plan(&state, 3), Retire::Unknown);
    assert_eq!(retired_plan(&state, 99), Retire::Unknown);
    assert_eq!(
        retire(&pair(), &state, UID, 3, None).unwrap(),
        Retire::Unknown
    );
    let other_rotation = State([role("app_a", true, None), role("app_b", false, None)]);
    assert_eq!(retired_plan(&other_rotation, 1), Retire::Unknown);
}

#[test]
fn retire_naming_a_role_other_than_the_one_holding_the_version_is_refused() {
    let state = State([role("app_a", true, Some(4)), role("app_b", true, Some(5))]);
    assert_eq!(
        retire(&pair(), &state, UID, 4, Some("app_b")).unwrap_err(),
        PlanError::Elsewhere {
            version: 4,
            held: "app_a".into(),
            username: "app_b".into()
        }
    );
}

#[test]
fn an_adopted_version_is_retired_only_while_its_successor_serves_and_then_stays_retired() {
    // v1 adopted on app_a (its password from before keyrotor, no mark).
    let adopted = State([role("app_a", true, None), role("app_b", false, None)]);
    assert_eq!(
        retired_plan(&adopted, 1),
        Retire::Unknown,
        "no successor yet"
    );
    let s = staged(&adopted, 2).unwrap();
    assert_eq!((s.role.as_str(), s.standing), ("app_b", Standing::Free));
    let both = committed(&adopted, &s, UID, 2);
    let r = retired_plan(&both, 1);
    assert_eq!(
        r,
        Retire::Disable {
            role: RoleName::new("app_a").unwrap(),
            sql: format!(
                "BEGIN; ALTER ROLE \"app_a\" WITH NOLOGIN; \
                 COMMENT ON ROLE \"app_a\" IS 'keyrotor rotation {UID} version 1'; COMMIT"
            )
        }
    );
    let end = retired(&both, &r, 1);
    assert!(matches!(retired_plan(&end, 1), Retire::Done { .. }));
    assert_eq!(login_roles(&end), [("app_b", Some(2))]);
    assert_eq!(staged(&end, 3).unwrap().standing, Standing::Free);
    // Without the request's username nothing unmarked is ever disabled.
    assert_eq!(
        retire(&pair(), &both, UID, 1, None).unwrap(),
        Retire::Unknown
    );
}

#[test]
fn the_stage_statement_sets_login_a_verifier_and_the_mark_in_one_transaction() {
    let s = stage(
        &pair(),
        &fresh(),
        UID,
        7,
        Some("app_a"),
        "s3cret'pass",
        SALT,
    )
    .unwrap();
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
    let pair = pair();
    assert_eq!(
        pair.state_query(),
        "SELECT rolname, rolcanlogin, shobj_description(oid, 'pg_authid'), \
         pg_catalog.pg_has_role(oid, 'app', 'USAGE') \
         FROM pg_catalog.pg_roles WHERE rolname IN ('app_a', 'app_b')"
    );
    let text = |s: &str| Some(s.to_string());
    let answer = Answer {
        rows: vec![
            vec![
                text("app_b"),
                text("f"),
                text("reporting login, ask Dana"),
                text("f"),
            ],
            vec![
                text("app_a"),
                text("t"),
                text(&format!("keyrotor rotation {UID} version 12")),
                text("t"),
            ],
        ],
        ..Answer::default()
    };
    let mut b = role("app_b", false, None);
    b.member = false;
    assert_eq!(
        pair.state(&answer).unwrap(),
        State([role("app_a", true, Some(12)), b])
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
    let r = |n| RoleName::new(n).unwrap();
    for (a, b, group) in [("a", "a", "g"), ("a", "b", "a"), ("a", "b", "b")] {
        assert_eq!(
            Pair::new(r(a), r(b), r(group)).unwrap_err(),
            PlanError::SameRoles
        );
    }
    assert!(stage(&pair(), &fresh(), "uid'; --", 1, Some("app_a"), "p", SALT).is_err());
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
    let (s, p) = issue(&pair(), &fresh(), secret, UID, 1, username(1), SALT).unwrap();
    let after = committed(&fresh(), &s, UID, 1);
    let (again, p_again) = issue(
        &pair(),
        &after,
        secret,
        UID,
        1,
        username(1),
        b"another-salt-123",
    )
    .unwrap();
    assert_eq!((&again.role, again.standing), (&s.role, Standing::Held));
    assert_eq!(*p, *p_again);
    let (next, p2) = issue(&pair(), &after, secret, UID, 2, username(2), SALT).unwrap();
    assert_eq!(next.role.as_str(), "app_b");
    assert_ne!(*p, *p2);
}
