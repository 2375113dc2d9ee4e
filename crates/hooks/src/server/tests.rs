//! The shared server as keyrotor and kubelet see it: health endpoints,
//! every answer in the shape keyrotor reads ([`Outcome::read`]), and one
//! step at a time per rotation.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use keyrotor_consumer::hook::{HookRequest, Outcome, Step};
use keyrotor_consumer::keys::digest_of;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::*;
use crate::auth::TokenFile;

const TOKEN: &str = "server-test-token";

/// Answers by version: 1 done, 2 pending, 3 refused, 4 done after 200 ms
/// (counting the steps of one rotation that run at once).
#[derive(Default)]
struct Fake {
    down: AtomicBool,
    running: Mutex<HashMap<String, usize>>,
    /// Most steps of one rotation that ran at once.
    most_per_rotation: AtomicUsize,
    /// Most steps that ran at once, every rotation together.
    most: AtomicUsize,
}

impl Steps for Fake {
    async fn step(&self, _: Step, r: &HookRequest) -> Answer {
        match r.version {
            1 => Done::from(format!("version {} accepted", r.version)).into(),
            2 => Answer::Pending {
                retry_after: 90_000,
                reason: "propagating".into(),
            },
            3 => refuse(StatusCode::CONFLICT, "role app_b is missing").into(),
            _ => {
                let (mine, all) = {
                    let mut running = self.running.lock().unwrap();
                    *running.entry(r.uid.clone()).or_default() += 1;
                    (running[&r.uid], running.values().sum())
                };
                self.most_per_rotation.fetch_max(mine, Ordering::SeqCst);
                self.most.fetch_max(all, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(200)).await;
                *self.running.lock().unwrap().get_mut(&r.uid).unwrap() -= 1;
                Done::from("slow".to_string()).into()
            }
        }
    }

    async fn ready(&self) -> Result<(), String> {
        match self.down.load(Ordering::SeqCst) {
            true => Err("the system behind the hook is unreachable".into()),
            false => Ok(()),
        }
    }
}

/// A running server with `Fake` steps; stopped when dropped.
struct Running {
    addr: SocketAddr,
    fake: Arc<Fake>,
    task: tokio::task::JoinHandle<()>,
    dir: std::path::PathBuf,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Lets a test share the fake with the server.
struct Shared(Arc<Fake>);

impl Steps for Shared {
    async fn step(&self, step: Step, r: &HookRequest) -> Answer {
        self.0.step(step, r).await
    }
    async fn ready(&self) -> Result<(), String> {
        self.0.ready().await
    }
}

async fn start(name: &str) -> Running {
    let dir = std::env::temp_dir().join(format!("keyrotor-server-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("token"), format!("{TOKEN}\n")).unwrap();
    let auth = Auth::Tokens(TokenFile::open(&dir.join("token")).unwrap());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let fake = Arc::new(Fake::default());
    let hook = Shared(fake.clone());
    let task = tokio::spawn(async move {
        let _ = serve(listener, auth, hook).await;
    });
    Running {
        addr,
        fake,
        task,
        dir,
    }
}

/// One HTTP/1.1 exchange: the status and the body.
async fn exchange(addr: SocketAddr, head: &str, body: &[u8]) -> (u16, Vec<u8>) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "{head}\r\nHost: hook\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    let mut answer = Vec::new();
    let read = stream.read_to_end(&mut answer);
    tokio::time::timeout(Duration::from_secs(5), read)
        .await
        .unwrap()
        .unwrap();
    let end = answer.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let status = String::from_utf8_lossy(&answer[9..12]).parse().unwrap();
    (status, answer[end + 4..].to_vec())
}

async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let (status, body) = exchange(addr, &format!("GET {path} HTTP/1.1"), b"").await;
    (status, String::from_utf8(body).unwrap())
}

/// POSTs a `stage` of `version` for rotation `uid` and reads the answer as
/// keyrotor does.
async fn stage(addr: SocketAddr, token: &str, uid: &str, version: u64) -> Outcome {
    let key = format!("key-of-version-{version}-0123456789");
    let mut request = HookRequest::new(Step::Stage, "shop", "cache", uid, version);
    request.sha256 = digest_of(key.as_bytes());
    request.key = Some(key);
    let head = format!("POST /hook HTTP/1.1\r\nAuthorization: Bearer {token}");
    let (status, body) = exchange(addr, &head, &request.to_json()).await;
    Outcome::read(status, &body).unwrap()
}

#[tokio::test]
async fn healthz_says_the_process_serves_and_readyz_whether_the_system_behind_it_answers() {
    let s = start("health").await;
    assert_eq!(get(s.addr, "/healthz").await, (200, "ok\n".into()));
    assert_eq!(get(s.addr, "/readyz").await, (200, "ok\n".into()));
    s.fake.down.store(true, Ordering::SeqCst);
    assert_eq!(
        get(s.addr, "/readyz").await,
        (503, "the system behind the hook is unreachable\n".into())
    );
    assert_eq!(get(s.addr, "/healthz").await.0, 200, "still serving");
    assert_eq!(
        get(s.addr, "/hook").await.0,
        405,
        "a hook request is a POST"
    );
}

#[tokio::test]
async fn every_answer_reads_as_keyrotor_reads_it_done_pending_or_refused_with_its_reason() {
    let s = start("answers").await;
    assert!(matches!(
        stage(s.addr, TOKEN, "uid-1", 1).await,
        Outcome::Done(a) if a.done
    ));
    match stage(s.addr, TOKEN, "uid-1", 2).await {
        Outcome::Pending {
            retry_after,
            reason,
        } => assert_eq!(
            (retry_after, reason.as_deref()),
            (3600, Some("propagating"))
        ),
        other => panic!("{other:?}"),
    }
    match stage(s.addr, TOKEN, "uid-1", 3).await {
        Outcome::Refused { status, reason } => {
            assert_eq!(
                (status, reason.as_deref()),
                (409, Some("role app_b is missing"))
            )
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        stage(s.addr, "another-token", "uid-1", 1).await,
        Outcome::Failed(401)
    ));
    match stage(s.addr, TOKEN, "", 1).await {
        Outcome::Refused {
            status: 400,
            reason,
        } => {
            assert_eq!(
                reason.as_deref(),
                Some("every request needs the rotation's uid")
            )
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn steps_of_one_rotation_wait_for_each_other_and_other_rotations_do_not() {
    let s = start("locks").await;
    let asks = [
        stage(s.addr, TOKEN, "uid-a", 4),
        stage(s.addr, TOKEN, "uid-a", 4), // a retry overlapping its first attempt
        stage(s.addr, TOKEN, "uid-a", 5),
        stage(s.addr, TOKEN, "uid-b", 4),
    ];
    for outcome in futures::future::join_all(asks).await {
        assert!(matches!(outcome, Outcome::Done(_)), "{outcome:?}");
    }
    assert_eq!(s.fake.most_per_rotation.load(Ordering::SeqCst), 1);
    assert_eq!(
        s.fake.most.load(Ordering::SeqCst),
        2,
        "uid-b ran beside uid-a"
    );
}
