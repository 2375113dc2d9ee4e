//! I4, secrets stay secret: during a whole rotation every log line (at trace
//! level, for every crate, kube and hyper included), every Event (both APIs),
//! and the rotation's spec and status are captured and scanned for every key
//! generated, raw and base64. The rotation has a verifier hook, so hook
//! request bodies (which carry keys) pass through the HTTP stack while it
//! logs at trace level. Its own test binary: the global log subscriber can
//! be set only once per process.
#![cfg(feature = "testkit")]

use std::collections::BTreeSet;
use std::io::Write;
use std::sync::{Arc, Mutex};

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Event as CoreEvent;
use k8s_openapi::api::events::v1::Event;
use keyrotor_testsupport::harness::{Harness, NS};
use kube::Api;
use kube::api::ListParams;

const V: &str = "api-verifier";
const P: &str = "api-key";

/// A `MakeWriter` that appends every log line to a shared buffer.
#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Buffer {
    type Writer = Buffer;
    fn make_writer(&'a self) -> Buffer {
        self.clone()
    }
}

/// A verifier hook on loopback that answers every step `done` (the request
/// bodies it reads hold keys; nothing here prints them).
async fn hook() -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    use keyrotor_testsupport::http1::read_request;
    use tokio::io::AsyncWriteExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = calls.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let counted = counted.clone();
            tokio::spawn(async move {
                if read_request(&mut s, &mut Vec::new()).await.is_none() {
                    return;
                }
                counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let body = r#"{"done":true}"#;
                let answer = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(answer.as_bytes()).await;
            });
        }
    });
    (url, calls)
}

/// Every key any version Secret holds right now.
async fn collect_keys(h: &Harness, keys: &mut BTreeSet<String>) {
    for s in h
        .secrets()
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
    {
        if s.metadata
            .name
            .as_deref()
            .is_some_and(|n| n.starts_with("api-v"))
            && let Some(k) = s.data.as_ref().and_then(|d| d.get("key"))
        {
            keys.insert(String::from_utf8(k.0.clone()).unwrap());
        }
    }
}

#[tokio::test]
async fn no_key_appears_in_logs_events_spec_or_status() {
    let logs = Buffer::default();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("trace"))
        .with_writer(logs.clone())
        .with_ansi(false)
        .init();
    let h = Harness::new().await;
    for i in 0..2 {
        h.add_pod(&format!("server-{i}"), &[V], &[]).await;
        h.add_pod(&format!("client-{i}"), &[P], &[]).await;
    }
    let token: k8s_openapi::api::core::v1::Secret = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "hook-token", "namespace": NS}, "stringData": {"token": "t0ken"},
    }))
    .unwrap();
    h.secrets()
        .create(&Default::default(), &token)
        .await
        .unwrap();
    let (url, calls) = hook().await;
    let spec = format!(
        "secrets: {{verifier: {V}, presenter: {P}}}\ngracePeriod: {{minimum: 200ms, maximum: 60s}}\n\
         verifierHook: {{url: '{url}', tokenSecretRef: {{name: hook-token, key: token}}}}\n"
    );
    h.apply("api", &spec).await;
    let mut keys = BTreeSet::new();
    h.wait_published(V, P, &[1], 1, 10).await;
    collect_keys(&h, &mut keys).await;
    h.apply("api", &format!("{spec}rotationRequest: r1")).await;
    h.wait_published(V, P, &[1, 2], 2, 10).await;
    collect_keys(&h, &mut keys).await;
    h.wait_published(V, P, &[2], 2, 10).await;
    h.wait("version 1 deleted", 10, || async {
        h.secret("api-v1").await.is_none()
    })
    .await;
    // A Secret edited by hand and a deleted version Secret exercise the repair paths too.
    h.secrets()
        .delete("api-v2", &Default::default())
        .await
        .unwrap();
    h.wait("version 2 recovered", 10, || async {
        h.secret("api-v2").await.is_some()
    })
    .await;
    assert_eq!(keys.len(), 2, "two keys generated");
    let called = calls.load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        called >= 3,
        "the hook staged 1 and 2 and retired 1 ({called} calls)"
    );

    let mut haystack = String::from_utf8_lossy(&logs.0.lock().unwrap()).to_string();
    let lines = haystack.lines().count();
    assert!(lines > 100, "trace logs were captured ({lines} lines)");
    let events: Api<Event> = Api::namespaced(h.client.clone(), NS);
    let core: Api<CoreEvent> = Api::namespaced(h.client.clone(), NS);
    let (e1, e2) = (
        events.list(&ListParams::default()).await.unwrap().items,
        core.list(&ListParams::default()).await.unwrap().items,
    );
    assert!(!e1.is_empty(), "events were recorded");
    haystack += &serde_json::to_string(&e1).unwrap();
    haystack += &serde_json::to_string(&e2).unwrap();
    let rot = h.rotation("api").await;
    haystack += &serde_json::to_string(&rot).unwrap();
    haystack += &format!("{rot:?}");
    for key in &keys {
        let b64 = serde_json::to_string(&ByteString(key.as_bytes().to_vec())).unwrap();
        let b64 = b64.trim_matches('"');
        assert!(!haystack.contains(key.as_str()), "a key leaked");
        assert!(!haystack.contains(b64), "a base64 key leaked");
    }
    println!(
        "scanned {lines} log lines, {} events, the rotation: no key among {} found",
        e1.len() + e2.len(),
        keys.len()
    );
}
