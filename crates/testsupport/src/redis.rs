//! A real `redis-server` on loopback for the verifier hook tests, the
//! reference hook process (`keyrotor hook redis`), and presenter clients
//! that log in to Redis every 25 ms with the key their "volume" holds.
//! Every process is started here and stopped by its PID (on drop too).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use keyrotor_hooks::redis::resp::{Connection, Reply};
use tokio::task::JoinHandle;

use crate::eventually::eventually_every;

/// The admin password of the test Redis (`default` user).
pub const ADMIN_PASSWORD: &str = "redis-admin-for-tests";
/// The user whose passwords rotate.
pub const USER: &str = "app";

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

fn scratch(what: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "keyrotor-{what}-{}-{}",
        std::process::id(),
        free_port()
    ));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// SIGKILL by PID, then reap.
fn stop(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

pub struct RedisServer {
    child: Child,
    pub port: u16,
    dir: PathBuf,
}

impl RedisServer {
    /// Starts `redis-server` with its own config and dir; user `app` exists
    /// and is on, with no password yet (the hook gives it version 1).
    pub async fn start() -> RedisServer {
        let port = free_port();
        let dir = scratch("redis");
        let conf = dir.join("redis.conf");
        std::fs::write(
            &conf,
            format!(
                "bind 127.0.0.1\nport {port}\ndir {}\nsave \"\"\nappendonly no\ndaemonize no\nprotected-mode yes\n\
                 user default on >{ADMIN_PASSWORD} ~* &* +@all\nuser {USER} on ~* &* +@all\n",
                dir.display()
            ),
        )
        .unwrap();
        let child = Command::new("redis-server")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server runs (Debian's redis-server; .ci/debs installs it)");
        let r = RedisServer { child, port, dir };
        eventually_every(
            "redis-server answers",
            Duration::from_secs(20),
            Duration::from_millis(50),
            async || r.admin().await.is_some(),
        )
        .await;
        r
    }

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// A connection logged in as the admin.
    pub async fn admin(&self) -> Option<Connection> {
        let mut c = Connection::connect(&self.address()).await.ok()?;
        let r = c
            .call(&[b"AUTH", b"default", ADMIN_PASSWORD.as_bytes()])
            .await
            .ok()?;
        (r == Reply::Simple("OK".into())).then_some(c)
    }

    /// The SHA-256 digests of `app`'s passwords.
    pub async fn passwords(&self) -> Vec<String> {
        let mut c = self.admin().await.expect("admin login");
        let Ok(Reply::Array(Some(fields))) = c.call(&[b"ACL", b"GETUSER", USER.as_bytes()]).await
        else {
            panic!("ACL GETUSER {USER} failed");
        };
        let mut it = fields.into_iter();
        while let Some(name) = it.next() {
            let value = it.next();
            if name.text().as_deref() == Some("passwords")
                && let Some(Reply::Array(Some(items))) = value
            {
                let mut p: Vec<String> = items.iter().filter_map(Reply::text).collect();
                p.sort();
                return p;
            }
        }
        Vec::new()
    }

    /// The naive rotation: replace every password with `key` in one command.
    pub async fn reset_password(&self, key: &str) {
        let mut c = self.admin().await.expect("admin login");
        let rule = format!(">{key}");
        let r = c
            .call(&[
                b"ACL",
                b"SETUSER",
                USER.as_bytes(),
                b"resetpass",
                rule.as_bytes(),
            ])
            .await
            .unwrap();
        assert_eq!(r, Reply::Simple("OK".into()));
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        stop(&mut self.child);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `keyrotor hook redis` as its own process.
pub struct HookProcess {
    child: Option<Child>,
    bin: PathBuf,
    pub port: u16,
    redis: String,
    dir: PathBuf,
    issuer: bool,
    /// `--token-review-audience` and the ServiceAccounts it allows, instead
    /// of the token file.
    pub review: Option<(String, String)>,
    /// `--user`: [`USER`] unless a test points the hook at another one.
    pub user: String,
}

impl HookProcess {
    /// Starts the hook as an issuer too (`--issuer-secret-file`).
    pub async fn start_issuer(bin: &Path, redis: &RedisServer, token: &str) -> HookProcess {
        let mut h = HookProcess::start(bin, redis, token).await;
        std::fs::write(
            h.dir.join("issuer"),
            "issuer-secret-for-tests-0123456789abcdef",
        )
        .unwrap();
        h.issuer = true;
        h.restart().await;
        h
    }

    /// Starts the hook for user `app` of `redis`, accepting `token`.
    pub async fn start(bin: &Path, redis: &RedisServer, token: &str) -> HookProcess {
        let dir = scratch("redis-hook");
        std::fs::write(dir.join("token"), token).unwrap();
        std::fs::write(dir.join("admin"), ADMIN_PASSWORD).unwrap();
        let mut h = HookProcess {
            child: None,
            bin: bin.to_path_buf(),
            port: free_port(),
            redis: redis.address(),
            dir,
            issuer: false,
            review: None,
            user: USER.into(),
        };
        h.restart().await;
        h
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }

    /// SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            stop(&mut c);
        }
    }

    /// (Re)starts it on the same port and waits until it listens.
    pub async fn restart(&mut self) {
        self.kill();
        let child = Command::new(&self.bin)
            .args([
                "hook",
                "redis",
                "--user",
                &self.user,
                "--admin-user",
                "default",
            ])
            .arg("--listen")
            .arg(format!("127.0.0.1:{}", self.port))
            .arg("--redis")
            .arg(&self.redis)
            .arg("--admin-password-file")
            .arg(self.dir.join("admin"))
            .args(match &self.review {
                None => vec![
                    "--token-file".into(),
                    self.dir.join("token").into_os_string(),
                ],
                Some((audience, allowed)) => vec![
                    "--token-review-audience".into(),
                    audience.into(),
                    "--allow-service-account".into(),
                    allowed.into(),
                ],
            })
            .args(
                self.issuer
                    .then(|| ["--issuer-secret-file".into(), self.dir.join("issuer")])
                    .into_iter()
                    .flatten(),
            )
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(self.dir.join("log"))
                    .unwrap(),
            ))
            .spawn()
            .expect("keyrotor hook redis starts");
        self.child = Some(child);
        crate::listening("the redis hook", self.port).await;
    }

    /// What the hook logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
    }
}

impl Drop for HookProcess {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Login outcomes of the presenter clients.
#[derive(Default)]
pub struct Logins {
    pub ok: AtomicU64,
    pub failed: AtomicU64,
}

impl Logins {
    pub fn ok(&self) -> u64 {
        self.ok.load(Ordering::Relaxed)
    }
    pub fn failed(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }
}

/// Where a client's key comes from: `load()` gives (key, revision) as its
/// volume would hold it now; `loaded(revision)` is told after the client
/// switched to it (a report, for keyrotor's presenters).
pub trait KeySource: Send + Sync + 'static {
    fn load(&self) -> futures::future::BoxFuture<'_, Option<(String, String)>>;
    fn loaded(&self, revision: String) -> futures::future::BoxFuture<'_, ()>;
}

/// Presenter clients: each logs in as `app` every 25 ms with the key it
/// loaded, and reloads its key every 100–600 ms (a kubelet's lag, each
/// client its own), so a key change reaches clients one by one.
pub struct Clients {
    stop: Arc<AtomicBool>,
    tasks: Vec<JoinHandle<()>>,
    pub logins: Arc<Logins>,
}

impl Clients {
    pub fn start(redis: &RedisServer, sources: Vec<Arc<dyn KeySource>>) -> Clients {
        let stop = Arc::new(AtomicBool::new(false));
        let logins = Arc::new(Logins::default());
        let tasks = sources
            .into_iter()
            .enumerate()
            .map(|(i, source)| {
                let (stop, logins, address) = (stop.clone(), logins.clone(), redis.address());
                tokio::spawn(client(i as u64, address, source, stop, logins))
            })
            .collect();
        Clients {
            stop,
            tasks,
            logins,
        }
    }

    pub async fn stop(self) -> Arc<Logins> {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            let _ = t.await;
        }
        self.logins
    }
}

async fn client(
    seed: u64,
    address: String,
    source: Arc<dyn KeySource>,
    stop: Arc<AtomicBool>,
    logins: Arc<Logins>,
) {
    let mut rng = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut lag = move || {
        rng = rng
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        Duration::from_millis(100 + (rng >> 33) % 500)
    };
    let mut conn = None;
    let mut key: Option<(String, String)> = None;
    let mut reload_at = tokio::time::Instant::now();
    // Bounded: a test stops its clients; 30 minutes is the backstop.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(1800);
    while !stop.load(Ordering::Relaxed) && tokio::time::Instant::now() < deadline {
        if tokio::time::Instant::now() >= reload_at {
            if let Some(fresh) = source.load().await
                && key.as_ref().map(|k| &k.1) != Some(&fresh.1)
            {
                let revision = fresh.1.clone();
                key = Some(fresh);
                source.loaded(revision).await;
            }
            reload_at = tokio::time::Instant::now() + lag();
        }
        if let Some((k, _)) = &key {
            if conn.is_none() {
                conn = Connection::connect(&address).await.ok();
            }
            if let Some(c) = conn.as_mut() {
                match c.call(&[b"AUTH", USER.as_bytes(), k.as_bytes()]).await {
                    Ok(Reply::Simple(_)) => {
                        logins.ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(_) => {
                        logins.failed.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(_) => conn = None,
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Hex SHA-256, as Redis lists passwords.
pub fn sha256_hex(key: &str) -> String {
    keyrotor::keys::digest_of(key.as_bytes())
}

/// A client's volume: Secret `name` as the API holds it (`key`, and
/// `revision` when it has one), and, for a keyrotor presenter pod, the
/// report of what the client loaded (as the client library reports).
pub struct SecretVolume {
    pub secrets: kube::Api<k8s_openapi::api::core::v1::Secret>,
    pub name: String,
    /// (pods, pod name, rotation): where the client reports its revision.
    pub report: Option<(kube::Api<k8s_openapi::api::core::v1::Pod>, String, String)>,
}

fn data(s: &k8s_openapi::api::core::v1::Secret, field: &str) -> Option<String> {
    let b = s.data.as_ref()?.get(field)?;
    Some(String::from_utf8_lossy(&b.0).into_owned())
}

impl KeySource for SecretVolume {
    fn load(&self) -> futures::future::BoxFuture<'_, Option<(String, String)>> {
        Box::pin(async move {
            let s = self.secrets.get_opt(&self.name).await.ok()??;
            let key = data(&s, keyrotor::wire::KEY)?;
            let revision = data(&s, keyrotor::wire::REVISION_FILE).unwrap_or_else(|| key.clone());
            Some((key, revision))
        })
    }
    fn loaded(&self, revision: String) -> futures::future::BoxFuture<'_, ()> {
        Box::pin(async move {
            let Some((pods, pod, rotation)) = &self.report else {
                return;
            };
            // A Secret without a revision (not keyrotor's) has nothing to report.
            let Some(revision) = keyrotor::wire::parse_number(revision.trim_ascii()) else {
                return;
            };
            let (key, value) = keyrotor::wire::RevisionReport(revision)
                .annotation(rotation, keyrotor::wire::ROLE_PRESENTER);
            let patch = serde_json::json!({"metadata": {"annotations": {key: value}}});
            let _ = pods
                .patch(
                    pod,
                    &kube::api::PatchParams::default(),
                    &kube::api::Patch::Merge(&patch),
                )
                .await;
        })
    }
}
