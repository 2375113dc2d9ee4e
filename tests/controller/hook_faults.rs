//! A verifier hook that misbehaves in every way the protocol names (down,
//! slow, 5xx, a malformed, oversized or lost answer, a missing token
//! Secret): each raises `Ready=False HookFailed` and a `HookFailed` event
//! that say what failed, is retried with the same idempotency key, never
//! lets a presenter ahead of the hook, and never copies a body anywhere.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use keyrotor::conditions::{events, reasons, types};
use keyrotor_testsupport::harness::{Harness, NS};
use kube::Api;
use kube::api::{DeleteParams, PostParams};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::scenario::{P, V, check_invariants};

#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    Ok,
    Unavailable,
    Malformed,
    Oversized,
    Slow,
    Lost,
    /// HTTP 500 whose body repeats the request, key included.
    Echo,
}

#[derive(Default)]
struct State {
    mode: Option<Mode>,
    /// ([`step_name`], bearer token seen) of every request.
    seen: Vec<(String, String)>,
}

/// A hook endpoint on loopback whose answers the test chooses: `answer`
/// serves each connection with the shared state `S`.
pub(crate) struct FakeServer<S> {
    pub state: Arc<Mutex<S>>,
    pub url: String,
    task: tokio::task::JoinHandle<()>,
}

impl<S: Send + 'static> FakeServer<S> {
    pub async fn start<F, Fut>(state: S, answer: F) -> FakeServer<S>
    where
        F: Fn(TcpStream, Arc<Mutex<S>>) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(state));
        let s = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(answer(stream, s.clone()));
            }
        });
        FakeServer { state, url, task }
    }
}

impl<S> Drop for FakeServer<S> {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type FakeHook = FakeServer<State>;

impl FakeHook {
    fn set(&self, mode: Mode) {
        self.state.lock().unwrap().mode = Some(mode);
    }

    fn calls(&self, idempotency_key: &str) -> usize {
        let s = self.state.lock().unwrap();
        s.seen.iter().filter(|(k, _)| k == idempotency_key).count()
    }
}

/// `<namespace>/<rotation>/v<version>/<step>` of a request: its
/// idempotency key without the uid, which a test does not know in advance.
pub(crate) fn step_name(request: &serde_json::Value) -> String {
    let field = |f: &str| request[f].as_str().unwrap_or_default().to_string();
    format!(
        "{}/{}/v{}/{}",
        field("namespace"),
        field("rotation"),
        request["version"].as_u64().unwrap_or_default(),
        field("step")
    )
}

/// One HTTP/1.1 request off `stream`: its head and body (None if cut off).
pub(crate) async fn read_request(stream: &mut TcpStream) -> Option<(String, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_string();
        let length: usize = head
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-length:")
                    .map(|v| v.trim().parse().unwrap_or(0))
            })
            .unwrap_or(0);
        if buf.len() >= end + 4 + length {
            return Some((head, buf[end + 4..end + 4 + length].to_vec()));
        }
    }
}

/// Writes one JSON answer and closes the connection.
pub(crate) async fn respond(mut stream: TcpStream, status: &str, body: &str) {
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

async fn answer(mut stream: TcpStream, state: Arc<Mutex<State>>) {
    let Some((head, body)) = read_request(&mut stream).await else {
        return;
    };
    let request: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let token = head
        .lines()
        .find_map(|l| {
            l.strip_prefix("authorization: Bearer ")
                .or_else(|| l.strip_prefix("Authorization: Bearer "))
        })
        .unwrap_or_default()
        .to_string();
    let mode = {
        let mut s = state.lock().unwrap();
        s.seen.push((step_name(&request), token));
        s.mode.unwrap_or(Mode::Ok)
    };
    let (status, body) = match mode {
        Mode::Ok => ("200 OK", r#"{"done":true}"#.to_string()),
        Mode::Unavailable => ("503 Service Unavailable", r#"{"done":false}"#.to_string()),
        Mode::Malformed => ("200 OK", "<html>not json</html>".to_string()),
        Mode::Oversized => (
            "200 OK",
            format!(r#"{{"done":true,"message":"{}"}}"#, "x".repeat(100 * 1024)),
        ),
        Mode::Slow => {
            tokio::time::sleep(Duration::from_secs(3)).await;
            ("200 OK", r#"{"done":true}"#.to_string())
        }
        Mode::Lost => return, // acted (or not), and the answer never arrives
        Mode::Echo => (
            "500 Internal Server Error",
            String::from_utf8_lossy(&body).to_string(),
        ),
    };
    respond(stream, status, &body).await;
}

const TOKEN: &str = "fault-hook-token";

fn spec(url: &str, extra: &str) -> String {
    format!(
        "secrets: {{verifier: {V}, presenter: {P}}}\n\
         gracePeriod: {{minimum: 200ms, maximum: 120s}}\n\
         verifierHook: {{url: '{url}', tokenSecretRef: {{name: hook-token, key: token}}, timeoutSeconds: 1}}\n{extra}"
    )
}

pub(crate) async fn create_token(h: &Harness) {
    let token: Secret = serde_json::from_value(json!({
        "metadata": {"name": "hook-token", "namespace": NS}, "stringData": {"token": TOKEN},
    }))
    .unwrap();
    h.secrets()
        .create(&PostParams::default(), &token)
        .await
        .unwrap();
}

async fn ready(h: &Harness) -> (String, String) {
    let rot = h.rotation("api").await;
    rot.status
        .unwrap_or_default()
        .conditions
        .into_iter()
        .find(|c| c.type_ == types::READY)
        .map(|c| (c.reason, c.message))
        .unwrap_or_default()
}

async fn hook_failed_events(h: &Harness) -> Vec<String> {
    let api: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(h.client.clone(), NS);
    api.list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some(events::HOOK_FAILED))
        .filter_map(|e| e.note)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_hook_fault_raises_hook_failed_is_retried_and_never_lets_a_presenter_ahead() {
    let state = State {
        mode: Some(Mode::Ok),
        ..Default::default()
    };
    let hook = FakeServer::start(state, answer).await;
    let h = Harness::new().await;
    create_token(&h).await;
    for i in 0..2 {
        h.add_pod(&format!("server-{i}"), &[V], &[("app", "server")])
            .await;
        h.add_pod(&format!("client-{i}"), &[P], &[("app", "client")])
            .await;
    }
    h.apply("api", &spec(&hook.url, "")).await;
    h.wait_published(V, P, &[1], 1, 20).await;
    assert_eq!(
        hook.calls("default/api/v1/stage"),
        1,
        "version 1 staged once"
    );

    // (fault, what the condition and event must say, attempts in one call)
    let cases = [
        (Mode::Unavailable, "answered HTTP 503", 3),
        (Mode::Malformed, "not {\"done\": true} JSON", 1),
        (Mode::Oversized, "longer than 65536 bytes", 1),
        (Mode::Slow, "no answer within 1s", 3),
        (Mode::Lost, "HTTP exchange failed", 3),
        (Mode::Echo, "answered HTTP 500", 3),
    ];
    let mut keys = Vec::new();
    let mut n = 1;
    for (mode, says, attempts) in cases {
        n += 1;
        hook.set(mode);
        h.apply("api", &spec(&hook.url, &format!("rotationRequest: r{n}")))
            .await;
        let stage = format!("default/api/v{n}/stage");
        h.wait(&format!("{mode:?}: Ready=False HookFailed"), 30, || async {
            let (reason, msg) = ready(&h).await;
            reason == reasons::HOOK_FAILED
                && msg.contains(says)
                && msg.contains(&format!("stage version {n}"))
        })
        .await;
        assert!(
            hook_failed_events(&h)
                .await
                .iter()
                .any(|e| e.contains(says)),
            "{mode:?}: a HookFailed event says {says:?}"
        );
        assert!(
            hook.calls(&stage) >= attempts,
            "{mode:?}: {} calls",
            hook.calls(&stage)
        );
        assert_eq!(
            h.current(P).await,
            Some(n - 1),
            "{mode:?}: no presenter gets version {n}"
        );
        keys.push(
            String::from_utf8(
                h.secret(&format!("api-v{n}")).await.unwrap().data.unwrap()["key"]
                    .0
                    .clone(),
            )
            .unwrap(),
        );
        hook.set(Mode::Ok);
        h.wait_published(V, P, &[n], n, 60).await;
        h.wait("Ready again", 20, || async {
            ready(&h).await.0 != reasons::HOOK_FAILED
        })
        .await;
        // The verifier Secret shrinks first, then the hook is told: wait
        // for the call rather than assume it came with the shrink.
        let retire = format!("default/api/v{}/retire", n - 1);
        let what = format!("{mode:?}: version {} retired through the hook", n - 1);
        h.wait(&what, 20, || async { hook.calls(&retire) >= 1 })
            .await;
    }

    // The token Secret goes missing: the condition names it.
    h.secrets()
        .delete("hook-token", &DeleteParams::default())
        .await
        .unwrap();
    n += 1;
    h.apply("api", &spec(&hook.url, &format!("rotationRequest: r{n}")))
        .await;
    h.wait("token Secret missing", 30, || async {
        let (reason, msg) = ready(&h).await;
        reason == reasons::HOOK_FAILED
            && msg.contains("token Secret default/hook-token: does not exist")
    })
    .await;
    assert_eq!(
        hook.calls(&format!("default/api/v{n}/stage")),
        0,
        "nothing sent without a token"
    );
    create_token(&h).await;
    h.wait_published(V, P, &[n], n, 60).await;

    {
        let s = hook.state.lock().unwrap();
        assert!(
            s.seen.iter().all(|(_, t)| t == TOKEN),
            "every call carries the bearer token"
        );
    }
    check_invariants(&h, &[]);
    // I4: no key, not even the one the echoing hook sent back, in status or events.
    let rot = serde_json::to_string(&h.rotation("api").await).unwrap();
    let evs = hook_failed_events(&h).await.join("\n");
    for k in &keys {
        assert!(
            !rot.contains(k.as_str()) && !evs.contains(k.as_str()),
            "a key leaked"
        );
    }
}
