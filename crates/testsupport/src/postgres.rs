//! A real PostgreSQL (Debian's 15) on loopback for the PostgreSQL hook's
//! tests. PostgreSQL refuses to run as root, so when the tests run as root
//! the server runs as `nobody` (`setpriv`), its data in a fresh temp dir
//! owned by that uid. Logins are SCRAM-SHA-256 over TCP from 127.0.0.1 only
//! (no Unix socket); the superuser's password reaches `initdb` through a
//! file, never argv or a log. The server logs every statement
//! (`log_statement = 'all'`), so a test can prove that no password reaches
//! its log. The server is started and stopped here by its PID (on drop
//! too), and every wait is bounded.
//!
//! Beside it: the roles docs/postgres.md sets up ([`PostgresServer::setup_roles`]),
//! `keyrotor hook postgres` as its own process ([`PgHook`]), and clients
//! that log in every 25 ms with the user name and password their Secret
//! holds ([`Clients`]).

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use keyrotor_hooks::postgres::wire::{self, Connection, Login};
use zeroize::Zeroizing;

use crate::eventually::eventually_every;
use crate::redis::free_port;

mod clients;
mod hook;

pub use clients::{Clients, Credential, Logins, PresenterSecret};
pub use hook::PgHook;

/// The bootstrap superuser, and its password (a file in the data's parent).
pub const ADMIN_USER: &str = "postgres";
pub const ADMIN_PASSWORD: &str = "postgres-admin-for-tests";

/// The uid/gid the server runs as when the tests run as root (`nobody`).
const UNPRIVILEGED: u32 = 65534;
/// Where Debian installs PostgreSQL 15's server binaries.
const DEBIAN_BIN: &str = "/usr/lib/postgresql/15/bin";

pub struct PostgresServer {
    child: Option<Child>,
    pub port: u16,
    /// Holds `data/`, the password file and the server's log.
    dir: PathBuf,
}

impl PostgresServer {
    /// Runs `initdb` and starts `postgres`; answers once the superuser
    /// can log in.
    pub async fn start() -> PostgresServer {
        let dir = scratch("postgres");
        let data = dir.join("data");
        let pwfile = dir.join("pwfile");
        std::fs::write(&pwfile, ADMIN_PASSWORD).unwrap();
        let owner = as_root().then_some(UNPRIVILEGED);
        if let Some(uid) = owner {
            for p in [&dir, &pwfile] {
                std::os::unix::fs::chown(p, Some(uid), Some(uid)).expect("chown to nobody");
            }
        }
        initdb(owner, &data, &pwfile);
        let _ = std::fs::remove_file(&pwfile);
        let port = free_port();
        configure(&data, port);
        let log = std::fs::File::create(dir.join("log")).unwrap();
        let child = unprivileged(owner, &binary("postgres"))
            .arg("-D")
            .arg(&data)
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("postgres starts (Debian's postgresql-15)");
        let pg = PostgresServer {
            child: Some(child),
            port,
            dir,
        };
        // Listening is not enough: until recovery ends it answers 57P03.
        eventually_every(
            "postgres lets the superuser log in",
            Duration::from_secs(30),
            Duration::from_millis(50),
            async || match pg.login(ADMIN_USER, ADMIN_PASSWORD).await {
                Ok(c) => {
                    c.close().await;
                    true
                }
                Err(_) => false,
            },
        )
        .await;
        pg
    }

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Logs in to database `postgres` as `user` with `password`.
    pub async fn login(&self, user: &str, password: &str) -> Result<Connection, wire::Error> {
        let login = Login {
            user: user.into(),
            password: Zeroizing::new(password.into()),
            database: "postgres".into(),
        };
        Connection::login(&self.address(), &login).await
    }

    /// A connection as the superuser.
    pub async fn admin(&self) -> Connection {
        self.login(ADMIN_USER, ADMIN_PASSWORD)
            .await
            .expect("the superuser logs in")
    }

    /// What the server logged so far (no password is ever in it).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
    }

    /// The server's PID while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// A fast shutdown (SIGINT to the postmaster: it ends every session and
    /// its backends), SIGKILL after 10 s; reaps the process either way.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A new private directory `keyrotor-<what>-…` of its own: created here,
/// never one another test (of this process or another) also uses, which
/// its owner's drop would delete.
pub(crate) fn scratch(what: &str) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    loop {
        let dir = std::env::temp_dir().join(format!(
            "keyrotor-{what}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        match std::fs::create_dir(&dir) {
            Ok(()) => {
                // Password files pass through it: no one else may look in.
                std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))
                    .expect("scratch dir private");
                return dir;
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => panic!("scratch dir {}: {e}", dir.display()),
        }
    }
}

fn as_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

/// `name` from PATH if there, else from Debian's server directory.
fn binary(name: &str) -> PathBuf {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| Path::new(DEBIAN_BIN).join(name))
}

/// `program`, run as `owner` when given (the tests run as root).
fn unprivileged(owner: Option<u32>, program: &Path) -> Command {
    match owner {
        None => Command::new(program),
        Some(uid) => {
            let mut c = Command::new("setpriv");
            c.arg(format!("--reuid={uid}"))
                .arg(format!("--regid={uid}"))
                .arg("--clear-groups")
                .arg(program);
            c
        }
    }
}

/// `initdb` as `owner`: the superuser's password from `pwfile`, SCRAM for
/// every login; panics with its output on failure.
fn initdb(owner: Option<u32>, data: &Path, pwfile: &Path) {
    let out = unprivileged(owner, &binary("initdb"))
        .args(["--username", ADMIN_USER, "--auth", "scram-sha-256"])
        .args(["--encoding", "UTF8", "--no-locale", "--no-sync"])
        .arg(format!("--pwfile={}", pwfile.display()))
        .arg("--pgdata")
        .arg(data)
        .output()
        .expect("initdb runs (Debian's postgresql-15)");
    assert!(
        out.status.success(),
        "initdb failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Loopback TCP on `port`, no Unix socket, SCRAM for every login.
fn configure(data: &Path, port: u16) {
    let conf = data.join("postgresql.conf");
    let mut text = std::fs::read_to_string(&conf).unwrap();
    text.push_str(&format!(
        "\nlisten_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = ''\n\
         password_encryption = 'scram-sha-256'\nfsync = off\nmax_connections = 100\n\
         log_statement = 'all'\n"
    ));
    std::fs::write(&conf, text).unwrap();
    std::fs::write(
        data.join("pg_hba.conf"),
        "host all all 127.0.0.1/32 scram-sha-256\n",
    )
    .unwrap();
}

/// The login roles that take turns, the group holding their privileges,
/// and the role the hook logs in as (docs/postgres.md's names).
pub const ROLES: [&str; 2] = ["app_blue", "app_green"];
pub const GROUP: &str = "app";
pub const HOOK_ADMIN: &str = "keyrotor_admin";
pub const HOOK_ADMIN_PASSWORD: &str = "keyrotor-admin-for-tests";
/// The single login role the naive rotation overwrites.
pub const NAIVE_ROLE: &str = "app_naive";

impl PostgresServer {
    /// The one-time setup of docs/postgres.md: a table the group may read,
    /// both login roles in the group without a login, the hook's admin role
    /// with the grants it needs, and a plain login role for the naive
    /// rotation. Passwords go in as SCRAM verifiers: the log shows every
    /// statement.
    pub async fn setup_roles(&self) {
        let verifier = |password: &str| {
            keyrotor_hooks::postgres::scram::verifier(password, b"test-salt-16byte", 4096).unwrap()
        };
        let [blue, green] = ROLES;
        let mut root = self.quiet_admin().await;
        root.query(&format!(
            "CREATE TABLE orders (id int); INSERT INTO orders VALUES (42);
             CREATE ROLE {GROUP} NOLOGIN; GRANT SELECT ON orders TO {GROUP};
             CREATE ROLE {blue} NOLOGIN IN ROLE {GROUP};
             CREATE ROLE {green} NOLOGIN IN ROLE {GROUP};
             CREATE ROLE {HOOK_ADMIN} LOGIN CREATEROLE PASSWORD '{}';
             GRANT pg_signal_backend TO {HOOK_ADMIN};
             GRANT SET ON PARAMETER log_statement, log_min_error_statement,
               log_min_duration_statement, log_min_duration_sample TO {HOOK_ADMIN};
             CREATE ROLE {NAIVE_ROLE} NOLOGIN IN ROLE {GROUP}",
            *verifier(HOOK_ADMIN_PASSWORD)
        ))
        .await
        .expect("the documented setup runs");
        root.close().await;
    }

    /// The naive rotation: `ALTER ROLE app_naive LOGIN PASSWORD …` (as a
    /// verifier), replacing the one password the role has.
    pub async fn set_naive_password(&self, password: &str) {
        let v =
            keyrotor_hooks::postgres::scram::verifier(password, b"naive-salt-16byt", 4096).unwrap();
        let mut root = self.quiet_admin().await;
        root.query(&format!("ALTER ROLE {NAIVE_ROLE} LOGIN PASSWORD '{}'", *v))
            .await
            .unwrap();
        root.close().await;
    }

    /// A superuser session whose statements the server does not log: the
    /// test's own passwords stay out of the log the tests search.
    pub async fn quiet_admin(&self) -> Connection {
        let mut root = self.admin().await;
        root.query("SET log_statement = 'none'").await.unwrap();
        root
    }

    /// The roles of [`ROLES`] that can log in, with their comments.
    pub async fn login_roles(&self) -> Vec<(String, Option<String>)> {
        let mut root = self.admin().await;
        let a = root
            .query(&format!(
                "SELECT rolname, shobj_description(oid, 'pg_authid') FROM pg_roles \
                 WHERE rolcanlogin AND rolname IN ('{}', '{}') ORDER BY rolname",
                ROLES[0], ROLES[1]
            ))
            .await
            .unwrap();
        root.close().await;
        a.rows
            .into_iter()
            .map(|mut r| {
                let comment = r.pop().flatten();
                (r.pop().flatten().unwrap_or_default(), comment)
            })
            .collect()
    }

    /// Whether `user` logs in with `password`, as the app would (and reads
    /// a row with the group's privileges).
    pub async fn app_login(&self, user: &str, password: &str) -> Result<(), wire::Error> {
        let mut c = self.login(user, password).await?;
        let rows = c.query("SELECT id FROM orders").await?.rows;
        c.close().await;
        assert_eq!(
            rows,
            [[Some("42".to_string())]],
            "{user} has the group's privileges"
        );
        Ok(())
    }
}
