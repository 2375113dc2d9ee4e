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
