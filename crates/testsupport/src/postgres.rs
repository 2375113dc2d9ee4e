//! A real PostgreSQL (Debian's 15) on loopback for the PostgreSQL hook's
//! tests. PostgreSQL refuses to run as root, so when the tests run as root
//! the server runs as `nobody` (`setpriv`), its data in a fresh temp dir
//! owned by that uid. Logins are SCRAM-SHA-256 over TCP from 127.0.0.1 only
//! (no Unix socket); the superuser's password reaches `initdb` through a
//! file, never argv or a log. The server is started and stopped here by
//! its PID (on drop too), and every wait is bounded.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use keyrotor_hooks::postgres::wire::{self, Connection, Login};
use zeroize::Zeroizing;

use crate::eventually::eventually_every;
use crate::redis::free_port;

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
    /// Runs `initdb` and starts `postgres`; answers once it accepts TCP
    /// connections on its port (the caller proves logins).
    pub async fn start() -> PostgresServer {
        let dir = scratch();
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
        eventually_every(
            "postgres listens on its port",
            Duration::from_secs(30),
            Duration::from_millis(50),
            async || {
                tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .is_ok()
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

fn scratch() -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "keyrotor-postgres-{}-{}",
        std::process::id(),
        free_port()
    ));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    // The password file passes through it: no one else may look in.
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .expect("scratch dir private");
    dir
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
         password_encryption = 'scram-sha-256'\nfsync = off\nmax_connections = 100\n"
    ));
    std::fs::write(&conf, text).unwrap();
    std::fs::write(
        data.join("pg_hba.conf"),
        "host all all 127.0.0.1/32 scram-sha-256\n",
    )
    .unwrap();
}
