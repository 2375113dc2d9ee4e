//! `keyrotor hook postgres` as its own process for the tests: started,
//! killed and restarted by its PID, its log kept, and a request POSTed to
//! it as keyrotor sends one.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{GROUP, HOOK_ADMIN, HOOK_ADMIN_PASSWORD, PostgresServer, ROLES, scratch};
use crate::redis::free_port;

/// `keyrotor hook postgres` as its own process, for [`ROLES`] in
/// [`GROUP`], logging in as [`HOOK_ADMIN`].
pub struct PgHook {
    child: Option<Child>,
    bin: PathBuf,
    pub port: u16,
    postgres: String,
    dir: PathBuf,
    issuer: bool,
    /// `--terminate-sessions`.
    pub terminate_sessions: bool,
}

impl PgHook {
    /// Starts the hook for `pg`, accepting `token`; waits until it listens.
    pub async fn start(bin: &Path, pg: &PostgresServer, token: &str) -> PgHook {
        let dir = scratch("pg-hook");
        std::fs::write(dir.join("token"), token).unwrap();
        std::fs::write(dir.join("admin"), HOOK_ADMIN_PASSWORD).unwrap();
        std::fs::write(
            dir.join("issuer"),
            "issuer-secret-for-tests-0123456789abcdef",
        )
        .unwrap();
        let mut h = PgHook {
            child: None,
            bin: bin.to_path_buf(),
            port: free_port(),
            postgres: pg.address(),
            dir,
            issuer: false,
            terminate_sessions: false,
        };
        h.restart().await;
        h
    }

    /// Starts it as an issuer too (`--issuer-secret-file`).
    pub async fn start_issuer(bin: &Path, pg: &PostgresServer, token: &str) -> PgHook {
        let mut h = PgHook::start(bin, pg, token).await;
        h.issuer = true;
        h.restart().await;
        h
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGKILL by PID, as a crash would; reaps it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// (Re)starts it on the same port and waits until it listens.
    pub async fn restart(&mut self) {
        self.kill();
        let mut cmd = Command::new(&self.bin);
        cmd.args(["hook", "postgres", "--roles", &ROLES.join(",")])
            .args(["--group", GROUP, "--admin-user", HOOK_ADMIN])
            .args(["--database", "postgres", "--postgres", &self.postgres])
            .arg("--listen")
            .arg(format!("127.0.0.1:{}", self.port))
            .arg("--admin-password-file")
            .arg(self.dir.join("admin"))
            .arg("--token-file")
            .arg(self.dir.join("token"));
        if self.issuer {
            cmd.arg("--issuer-secret-file").arg(self.dir.join("issuer"));
        }
        if self.terminate_sessions {
            cmd.arg("--terminate-sessions");
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("log"))
            .unwrap();
        let child = cmd
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("keyrotor hook postgres starts");
        self.child = Some(child);
        crate::listening("the postgres hook", self.port).await;
    }

    /// What the hook logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
    }

    /// POSTs the hook request `body` with `token`, as keyrotor does (plain
    /// HTTP/1.1, one request per connection): the status and the answer.
    pub async fn post(&self, token: &str, body: &serde_json::Value) -> (u16, serde_json::Value) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let body = body.to_string();
        let exchange = async {
            let mut s = tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await?;
            s.write_all(
                format!(
                    "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n\
                     Content-Type: application/json\r\nContent-Length: {}\r\n\
                     Connection: close\r\n\r\n{body}",
                    body.len()
                )
                .as_bytes(),
            )
            .await?;
            let mut answer = Vec::new();
            s.read_to_end(&mut answer).await?;
            std::io::Result::Ok(answer)
        };
        let answer = tokio::time::timeout(Duration::from_secs(60), exchange)
            .await
            .expect("the hook answers within 60 s")
            .expect("the hook's answer");
        let answer = String::from_utf8_lossy(&answer);
        let (head, json) = answer.split_once("\r\n\r\n").expect("an HTTP answer");
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("a status line");
        (status, serde_json::from_str(json).unwrap_or_default())
    }
}

impl Drop for PgHook {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
