//! The test PostgreSQL itself: it starts as an unprivileged user, accepts
//! the superuser's SCRAM login over loopback and refuses a wrong password,
//! and stops when told.

use std::process::{Command, Stdio};

use keyrotor_testsupport::postgres::{ADMIN_PASSWORD, ADMIN_USER, PostgresServer};

/// `psql -c 'SELECT 1'` as the superuser with `password` (from a
/// passfile, not argv); its stdout on success.
fn select_one(pg: &PostgresServer, password: &str) -> Option<String> {
    let passfile = std::env::temp_dir().join(format!("keyrotor-pgpass-{}", pg.port));
    std::fs::write(
        &passfile,
        format!("127.0.0.1:{}:*:{ADMIN_USER}:{password}\n", pg.port),
    )
    .unwrap();
    std::fs::set_permissions(
        &passfile,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let out = Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-U",
            ADMIN_USER,
            "-d",
            "postgres",
            "-w",
            "-tAc",
            "SELECT 1",
        ])
        .args(["-p", &pg.port.to_string()])
        .env("PGPASSFILE", &passfile)
        .env("PGCONNECT_TIMEOUT", "10")
        .stdin(Stdio::null())
        .output()
        .expect("psql runs");
    let _ = std::fs::remove_file(&passfile);
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

#[tokio::test]
async fn postgres_starts_unprivileged_accepts_a_scram_login_and_stops() {
    let mut pg = PostgresServer::start().await;
    let pid = pg.pid().expect("running");
    let owner = std::fs::metadata(format!("/proc/{pid}"))
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m))
        .unwrap();
    assert_ne!(owner, 0, "postgres runs as an unprivileged user");

    assert_eq!(select_one(&pg, ADMIN_PASSWORD).as_deref(), Some("1"));
    assert_eq!(select_one(&pg, "not-the-password"), None);
    let log = pg.log();
    assert!(log.contains("password authentication failed"), "{log}");
    assert!(!log.contains(ADMIN_PASSWORD), "the log holds no password");

    pg.stop();
    assert!(pg.pid().is_none());
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "the postmaster is gone"
    );
    assert!(
        tokio::net::TcpStream::connect(pg.address()).await.is_err(),
        "nothing listens on its port after stop"
    );
}

#[tokio::test]
async fn the_hooks_own_client_logs_in_with_scram_and_runs_queries() {
    let pg = PostgresServer::start().await;
    let mut admin = pg.admin().await;
    let one = admin.query("SELECT 1 AS one").await.unwrap();
    assert_eq!(one.columns, ["one"]);
    assert_eq!(one.rows, [[Some("1".to_string())]]);
    assert_eq!(one.tags, ["SELECT 1"]);

    // A server error keeps the connection usable and names its SQLSTATE.
    let e = admin
        .query("SELECT * FROM no_such_table")
        .await
        .unwrap_err();
    assert_eq!(e.sqlstate(), Some("42P01"), "{e}");
    assert_eq!(
        admin.query("SELECT NULL, 'x'").await.unwrap().rows,
        [[None, Some("x".to_string())]]
    );

    // A role given a SCRAM verifier (not its password) logs in with the password.
    let verifier =
        keyrotor_hooks::postgres::scram::verifier("app-a-password", b"0123456789abcdef", 4096)
            .unwrap();
    admin
        .query(&format!("CREATE ROLE app_a LOGIN PASSWORD '{}'", *verifier))
        .await
        .unwrap();
    let mut app = pg.login("app_a", "app-a-password").await.unwrap();
    assert_eq!(
        app.query("SELECT current_user").await.unwrap().rows,
        [[Some("app_a".to_string())]]
    );
    app.close().await;
    let wrong = pg.login("app_a", "not-the-password").await.err().unwrap();
    assert_eq!(wrong.sqlstate(), Some("28P01"), "{wrong}");
    assert!(!wrong.to_string().contains("not-the-password"));
    let log = pg.log();
    assert!(
        !log.contains("app-a-password") && !log.contains("not-the-password"),
        "{log}"
    );
    admin.close().await;
}

/// The alternating-users plan run on the real server as a non-superuser
/// admin with only the documented grants: each version logs in on its own
/// role, retired versions are refused, a session opened before its
/// retirement stays open, and the database alone tells the next plan
/// where things stand.
#[tokio::test]
async fn the_alternating_users_plan_works_on_a_real_postgres_with_the_documented_grants() {
    use keyrotor_hooks::postgres::plan::{self, Pair, Retire, RoleName, Standing};

    const UID: &str = "6d1c8a2e-0b7f-4e55-9a3d-2f4e6b8c0d1a";
    let pg = PostgresServer::start().await;
    let mut root = pg.admin().await;
    root.query(
        "CREATE TABLE orders (id int); INSERT INTO orders VALUES (42);
         CREATE ROLE app NOLOGIN; GRANT SELECT ON orders TO app;
         CREATE ROLE app_a NOLOGIN IN ROLE app; CREATE ROLE app_b NOLOGIN IN ROLE app;
         CREATE ROLE keyrotor_admin LOGIN CREATEROLE PASSWORD 'admin-pw-for-tests'",
    )
    .await
    .unwrap();
    root.close().await;
    let mut admin = pg
        .login("keyrotor_admin", "admin-pw-for-tests")
        .await
        .unwrap();
    let pair = Pair::new(
        RoleName::new("app_a").unwrap(),
        RoleName::new("app_b").unwrap(),
        RoleName::new("app").unwrap(),
    )
    .unwrap();
    let password = |v: u64| format!("rotated-password-{v}-abcdefghijklmnop");
    // keyrotor's `spec.usernames: [app_a, app_b]`.
    let user = |v: u64| Some(if v % 2 == 1 { "app_a" } else { "app_b" });

    let mut held: Option<(String, keyrotor_hooks::postgres::wire::Connection)> = None;
    for v in 1..=4u64 {
        let state = pair
            .state(&admin.query(&pair.state_query()).await.unwrap())
            .unwrap();
        let salt = v.to_be_bytes().repeat(2);
        let s = plan::stage(&pair, &state, UID, v, user(v), &password(v), &salt).unwrap();
        assert_eq!(s.standing, Standing::Free);
        admin.query(&s.sql).await.unwrap();
        let mut client = pg.login(s.role.as_str(), &password(v)).await.unwrap();
        assert_eq!(
            client.query("SELECT id FROM orders").await.unwrap().rows,
            [[Some("42".to_string())]],
            "the login role has the group's privileges"
        );
        // Repeated after a restart: the same role, still the same password.
        let state = pair
            .state(&admin.query(&pair.state_query()).await.unwrap())
            .unwrap();
        let again = plan::stage(
            &pair,
            &state,
            UID,
            v,
            user(v),
            &password(v),
            b"another-salt-xyz",
        )
        .unwrap();
        assert_eq!((&again.role, again.standing), (&s.role, Standing::Held));
        admin.query(&again.sql).await.unwrap();
        pg.login(s.role.as_str(), &password(v))
            .await
            .unwrap()
            .close()
            .await;

        if let Some((old_role, mut old_session)) = held.take() {
            let r = plan::retire(&pair, &state, UID, v - 1, user(v - 1)).unwrap();
            let Retire::Disable { role, sql } = r else {
                panic!("retire v{} disables its role: {r:?}", v - 1);
            };
            assert_eq!(role.as_str(), old_role);
            admin.query(&sql).await.unwrap();
            let refused = pg.login(&old_role, &password(v - 1)).await.err().unwrap();
            assert_eq!(refused.sqlstate(), Some("28000"), "{refused}");
            assert_eq!(
                old_session.query("SELECT 1").await.unwrap().rows,
                [[Some("1".to_string())]],
                "a session opened before the retirement stays open"
            );
            old_session.close().await;
            let state = pair
                .state(&admin.query(&pair.state_query()).await.unwrap())
                .unwrap();
            assert!(matches!(
                plan::retire(&pair, &state, UID, v - 1, user(v - 1)).unwrap(),
                Retire::Done { .. }
            ));
            let live: Vec<_> = state.0.iter().filter(|r| r.can_login).collect();
            assert_eq!(live.len(), 1);
            assert_eq!(live[0].name, s.role);
            assert_eq!(live[0].mark.as_ref().map(|m| m.version), Some(v));
        }
        if v >= 3 {
            // The role now holds a fresh password: vN-2's no longer works.
            let stale = pg
                .login(s.role.as_str(), &password(v - 2))
                .await
                .err()
                .unwrap();
            assert_eq!(stale.sqlstate(), Some("28P01"), "{stale}");
        }
        held = Some((s.role.as_str().to_string(), client));
    }
    let log = pg.log();
    assert!(!log.contains("rotated-password"), "{log}");
    admin.close().await;
}
