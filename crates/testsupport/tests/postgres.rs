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
