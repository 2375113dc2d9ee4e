//! The conformance kit (`keyrotor hook check`) run in-process against the
//! reference Redis hook on a real `redis-server` (loopback), against the
//! deliberately broken hook (examples/broken_hook), and against a patient
//! hook that answers 204 and 202: the rows a hook author would read.

#[path = "../examples/broken_hook/hook.rs"]
mod fake;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use keyrotor_hooks::check::{self, Options, Report, Role};
use keyrotor_hooks::redis::RedisHookArgs;
use keyrotor_hooks::redis::resp::{Connection, Reply};
use zeroize::Zeroizing;

const TOKEN: &str = "hook-token-for-the-kit";
const ADMIN_PASSWORD: &str = "redis-admin-for-the-kit";
const ISSUER_SECRET: &str = "issuer-secret-for-the-kit-0123456789abcdef";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

fn scratch(what: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "keyrotor-check-{what}-{}-{}",
        std::process::id(),
        free_port()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Polls `ready` every 50 ms for at most 20 s.
async fn wait_for(what: &str, mut ready: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ready().await {
        assert!(Instant::now() < deadline, "{what} within 20 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `redis-server` on loopback with user `app` (no password yet), stopped
/// by its PID when dropped.
struct Redis {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Redis {
    async fn start() -> Redis {
        let (port, dir) = (free_port(), scratch("redis"));
        let conf = dir.join("redis.conf");
        std::fs::write(
            &conf,
            format!(
                "bind 127.0.0.1\nport {port}\ndir {}\nsave \"\"\nappendonly no\n\
                 user default on >{ADMIN_PASSWORD} ~* &* +@all\nuser app on ~* &* +@all\n",
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
        let redis = Redis { child, port, dir };
        wait_for("redis-server answers", async || {
            redis.admin().await.is_some()
        })
        .await;
        redis
    }

    async fn admin(&self) -> Option<Connection> {
        let mut c = Connection::connect(&format!("127.0.0.1:{}", self.port))
            .await
            .ok()?;
        let r = c
            .call(&[b"AUTH", b"default", ADMIN_PASSWORD.as_bytes()])
            .await;
        (r.ok()? == Reply::Simple("OK".into())).then_some(c)
    }

    /// The SHA-256 digests of `app`'s passwords.
    async fn passwords(&self) -> Vec<String> {
        let mut c = self.admin().await.expect("admin login");
        let Ok(Reply::Array(Some(fields))) = c.call(&[b"ACL", b"GETUSER", b"app"]).await else {
            panic!("ACL GETUSER app failed");
        };
        let mut it = fields.into_iter();
        while let Some(name) = it.next() {
            let value = it.next();
            if name.text().as_deref() == Some("passwords")
                && let Some(Reply::Array(Some(items))) = value
            {
                return items.iter().filter_map(Reply::text).collect();
            }
        }
        Vec::new()
    }

    /// `keyrotor hook redis` for user `app`, in this process; an issuer
    /// too when `issuer`. Stopped when the task is aborted.
    async fn hook(&self, issuer: bool) -> Served {
        let dir = scratch("redis-hook");
        std::fs::write(dir.join("token"), TOKEN).unwrap();
        std::fs::write(dir.join("admin"), ADMIN_PASSWORD).unwrap();
        std::fs::write(dir.join("issuer"), ISSUER_SECRET).unwrap();
        #[derive(Parser)]
        struct Flags {
            #[command(flatten)]
            args: RedisHookArgs,
        }
        let port = free_port();
        let mut argv: Vec<String> = vec!["hook".into(), "--user".into(), "app".into()];
        let path = |f: &str| dir.join(f).display().to_string();
        argv.extend(["--listen".into(), format!("127.0.0.1:{port}")]);
        argv.extend(["--redis".into(), format!("127.0.0.1:{}", self.port)]);
        argv.extend(["--admin-password-file".into(), path("admin")]);
        argv.extend(["--token-file".into(), path("token")]);
        if issuer {
            argv.extend(["--issuer-secret-file".into(), path("issuer")]);
        }
        let args = Flags::try_parse_from(argv).unwrap().args;
        let task = tokio::spawn(keyrotor_hooks::redis::main(args));
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        wait_for("the redis hook listens", async || {
            tokio::net::TcpStream::connect(addr).await.is_ok()
        })
        .await;
        Served { addr, task, dir }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A hook served by a task of this test.
struct Served {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<Result<(), keyrotor_hooks::Error>>,
    dir: PathBuf,
}

impl Served {
    fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.task.abort();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The broken or patient hook on a loopback port of its own.
async fn fake_hook(mode: fake::Mode, usernames: &[&str]) -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let names = usernames.iter().map(|s| s.to_string()).collect();
    let hook = Arc::new(fake::Hook::new(mode, TOKEN.into(), names));
    (url, tokio::spawn(fake::serve(listener, hook)))
}

async fn check(url: &str, role: Role, usernames: &[&str]) -> Report {
    let names = usernames.iter().map(|s| s.to_string()).collect();
    let options = Options::new(url, Zeroizing::new(TOKEN.into()), role, names).unwrap();
    check::run(&options).await
}

/// The checks that failed, by name.
fn failed(report: &Report) -> Vec<&str> {
    report
        .rows
        .iter()
        .filter(|r| !r.passed)
        .map(|r| r.check.as_str())
        .collect()
}

/// Until the reference server serves `/healthz` and `/readyz` (the
/// protocol's health endpoints), their rows may fail with 405.
fn got<'a>(report: &'a Report, check: &str) -> &'a str {
    &report
        .row(check)
        .unwrap_or_else(|| panic!("no row {check:?}"))
        .got
}

#[tokio::test]
async fn the_redis_hook_passes_as_a_verifier_and_keeps_only_the_last_version() {
    let redis = Redis::start().await;
    let hook = redis.hook(false).await;
    let report = check(&hook.url(), Role::Verifier, &["app"]).await;
    println!("{}", report.markdown());
    assert_eq!(failed(&report), Vec::<&str>::new());
    assert_eq!(report.rows.len(), 19, "18 checks and the foreign user name");
    assert_eq!(
        got(&report, "stage v13 of apiVersion hooks.keyrotor.dev/v2"),
        "HTTP 400 refused: apiVersion must be hooks.keyrotor.dev/v1"
    );
    assert_eq!(
        got(&report, "stage v10 without a token"),
        "HTTP 401, the token refused"
    );
    assert_eq!(got(&report, "stage v3 twice at once"), "both HTTP 200 done");
    let foreign = got(&report, "stage v16 for a user name the hook was not given");
    assert!(
        foreign.starts_with("HTTP 409 refused: this hook rotates the passwords of Redis user app"),
        "{foreign}"
    );
    // The clean-up retired v2 and v3 but Redis keeps a user's last password.
    assert_eq!(redis.passwords().await.len(), 1);
    assert_eq!(
        report.notes,
        vec![
            "clean-up: v3 stays at the hook (HTTP 409 refused: refusing to remove the user's only password; keyrotor stages the next one first)"
        ]
    );
}

#[tokio::test]
async fn the_redis_hook_passes_as_an_issuer_and_the_table_never_shows_a_key() {
    let redis = Redis::start().await;
    let hook = redis.hook(true).await;
    let report = check(&hook.url(), Role::Issuer, &["app"]).await;
    println!("{}", report.markdown());
    assert_eq!(failed(&report), Vec::<&str>::new());
    assert_eq!(
        got(&report, "issue v1 again (same uid and idempotency key)"),
        "HTTP 200 done, a 43-byte key"
    );
    // The keys the hook issued, derived as it derives them: none is shown.
    let shown = format!("{}{}", report.markdown(), report.json());
    let secret = ISSUER_SECRET.as_bytes();
    for (uid, versions) in [(&report.uids[0], 1..=3), (&report.uids[1], 2..=2)] {
        for v in versions {
            let key = keyrotor_hooks::issue::derive(secret, uid, v);
            assert!(!shown.contains(key.as_str()), "v{v}'s key is shown");
        }
    }
    // Everything issued was retired but the last key, the re-created
    // rotation's v2, which Redis keeps as the user's only password.
    let last = keyrotor_hooks::issue::derive(secret, &report.uids[1], 2);
    let digest = keyrotor_consumer::keys::digest_of(last.as_bytes());
    assert_eq!(redis.passwords().await, vec![digest]);
    assert_eq!(report.notes[0], "clean-up: retired v3");
}

#[tokio::test]
async fn the_broken_hook_fails_and_the_table_names_each_broken_behaviour() {
    let (url, server) = fake_hook(fake::Mode::Broken, &[]).await;
    let report = check(&url, Role::Verifier, &[]).await;
    println!("{}", report.markdown());
    server.abort();
    assert_eq!(
        failed(&report),
        [
            "stage v10 without a token",
            "stage v11 with a wrong token",
            "stage v12 with the token and more characters",
            "stage v1 again (a retry)",
            "stage v1 with a field of a newer keyrotor",
            "stage v2, answer lost, asked again",
            "retire v1 again (a retry)",
            "retire v17, never staged",
            "stage v3 twice at once",
        ]
    );
    // Accepts any token.
    assert_eq!(
        got(&report, "stage v11 with a wrong token"),
        "HTTP 200 done"
    );
    // 200 with a body that is not JSON to a repeated stage.
    let not_json =
        "HTTP 200: the hook's answer was not {\"done\": true} JSON (not JSON of that shape)";
    assert_eq!(got(&report, "stage v1 again (a retry)"), not_json);
    assert_eq!(got(&report, "stage v2, answer lost, asked again"), not_json);
    // 500 to retire of a version it does not hold.
    let failed_call = "HTTP 500, a failed call (keyrotor retries it)";
    assert_eq!(got(&report, "retire v17, never staged"), failed_call);
    assert!(report.markdown().ends_with("9 of 18 checks passed\n"));
}

#[tokio::test]
async fn the_broken_issuer_answers_a_new_key_to_a_repeated_issue_and_the_command_fails() {
    let (url, server) = fake_hook(fake::Mode::Broken, &[]).await;
    let dir = scratch("broken-issuer");
    std::fs::write(dir.join("token"), TOKEN).unwrap();
    let args = check::CheckArgs {
        url,
        token_file: dir.join("token"),
        issuer: true,
        usernames: vec![],
        json: Some(dir.join("report.json")),
        timeout: 10,
        pending_limit: 120,
        ca_file: None,
    };
    let said = check::main(args).await.unwrap_err().to_string();
    server.abort();
    assert_eq!(said, "9 of 18 checks failed");
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("report.json")).unwrap()).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(json["passed"], false);
    let row = |name: &str| {
        json["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["check"] == name)
            .unwrap_or_else(|| panic!("no row {name:?}"))
            .clone()
    };
    let again = row("issue v1 again (same uid and idempotency key)");
    assert_eq!(again["passed"], false);
    assert!(
        again["got"]
            .as_str()
            .unwrap()
            .ends_with("a different key than the first answer"),
        "{again}"
    );
    let twice = row("issue v3 twice at once");
    assert_eq!(twice["expected"], "both done with one new key");
    assert_eq!(twice["passed"], false);
    assert_eq!(
        row("issue v2 of the rotation re-created (new uid, same name)")["passed"],
        true
    );
    assert_eq!(
        row("retire v17, never issued")["got"],
        "HTTP 500, a failed call (keyrotor retries it)"
    );
    assert_eq!(row("issue v10 without a token")["passed"], false);
}

#[tokio::test]
async fn a_hook_that_answers_204_and_202_passes_with_alternating_users() {
    let users = ["app_blue", "app_green"];
    let (url, server) = fake_hook(fake::Mode::Patient, &users).await;
    let verifier = check(&url, Role::Verifier, &users).await;
    println!("{}", verifier.markdown());
    let issuer = check(&url, Role::Issuer, &users).await;
    println!("{}", issuer.markdown());
    // The same hook, told the user names the other way round.
    let swapped = check(&url, Role::Verifier, &["app_green", "app_blue"]).await;
    server.abort();
    assert_eq!(failed(&verifier), Vec::<&str>::new());
    assert_eq!(failed(&issuer), Vec::<&str>::new());
    // Asked again after retryAfterSeconds (1 s), then done with a 204.
    let stage = got(&verifier, "stage v1");
    assert!(
        stage.starts_with("HTTP 204 done (after 1 pending answer, "),
        "{stage}"
    );
    assert_eq!(
        got(
            &verifier,
            "stage v16 for a user name the hook was not given"
        ),
        "HTTP 409 refused: version 16 is app_green's"
    );
    assert_eq!(
        got(&swapped, "stage v1"),
        "HTTP 409 refused: version 1 is app_blue's"
    );
}

#[tokio::test]
async fn a_step_still_pending_at_the_pending_limit_fails_its_row() {
    let (url, server) = fake_hook(fake::Mode::Patient, &[]).await;
    let token = Zeroizing::new(TOKEN.to_string());
    let mut options = Options::new(&url, token, Role::Verifier, vec![]).unwrap();
    // Less than the hook's retryAfterSeconds: a pending step is not asked again.
    options.pending_limit = Duration::ZERO;
    let report = check::run(&options).await;
    server.abort();
    assert_eq!(
        got(&report, "stage v1"),
        "HTTP 202 pending: propagating (ask again in 1 s)"
    );
    assert!(!report.row("stage v1").unwrap().passed);
    // A retry of the same request finds it no longer pending.
    assert!(report.row("stage v1 again (a retry)").unwrap().passed);
}
