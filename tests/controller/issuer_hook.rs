//! An issuer hook (`spec.issuerHook`) mints every version's key: keyrotor
//! stores exactly what it answered, asks again with the same idempotency
//! key after a lost answer (and gets the same key back), refuses an
//! unusable key (or none: a `204`) with `HookFailed` while the current key
//! stays in place, and sends `retire` with the issuer's `keyId` before it
//! deletes a version.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use keyrotor::conditions::{reasons, types};
use keyrotor::keys::digest_of;
use keyrotor_testsupport::harness::{Harness, NS};
use serde_json::json;
use tokio::net::TcpStream;

use crate::hook_faults::{FakeServer, read_request, respond, step_name};
use crate::scenario::{P, V, check_invariants};

#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    Ok,
    /// Mints (once) and closes the connection without answering.
    LoseAnswer,
    /// Answers a key too short to use.
    ShortKey,
    /// Answers `204 No Content`: done, but no key.
    NoContent,
}

#[derive(Default)]
struct Issuer {
    mode: Option<Mode>,
    /// idempotencyKey → the key minted for it (what a real issuer stores).
    minted: BTreeMap<String, String>,
    /// Every request, as JSON.
    seen: Vec<serde_json::Value>,
}

type FakeIssuer = FakeServer<Issuer>;

impl FakeIssuer {
    fn set(&self, mode: Mode) {
        self.state.lock().unwrap().mode = Some(mode);
    }

    fn seen(&self, step: &str) -> Vec<serde_json::Value> {
        let s = self.state.lock().unwrap();
        s.seen
            .iter()
            .filter(|r| step_name(r) == step)
            .cloned()
            .collect()
    }

    /// The key minted for the request named by [`step_name`] `step`.
    fn minted(&self, step: &str) -> Option<String> {
        let s = self.state.lock().unwrap();
        let request = s.seen.iter().find(|r| step_name(r) == step)?;
        s.minted.get(request["idempotencyKey"].as_str()?).cloned()
    }
}

async fn answer(mut stream: TcpStream, state: Arc<Mutex<Issuer>>) {
    let Some((_, body)) = read_request(&mut stream).await else {
        return;
    };
    let request: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let id = request["idempotencyKey"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let version = request["version"].as_u64().unwrap_or_default();
    let (mode, key) = {
        let mut s = state.lock().unwrap();
        s.seen.push(request.clone());
        let mode = s.mode.unwrap_or(Mode::Ok);
        // Replay by idempotency key: a repeated issue gets the same key.
        let n = s.minted.len();
        let key = if request["step"] == "issue" {
            s.minted
                .entry(id.clone())
                .or_insert_with(|| format!("issued-{n}-{}", "k".repeat(24)))
                .clone()
        } else {
            String::new()
        };
        if mode == Mode::LoseAnswer {
            s.mode = Some(Mode::Ok);
        }
        (mode, key)
    };
    let body = match (request["step"].as_str(), mode) {
        (_, Mode::LoseAnswer) => return,
        (_, Mode::NoContent) => return respond(stream, "204 No Content", "").await,
        (Some("issue"), Mode::ShortKey) => json!({"done": true, "key": "short"}),
        (Some("issue"), _) => json!({"done": true, "key": key, "keyId": format!("kid-{version}")}),
        _ => json!({"done": true}),
    };
    respond(stream, "200 OK", &body.to_string()).await;
}

fn spec(url: &str, extra: &str) -> String {
    format!(
        "secrets: {{verifier: {V}, presenter: {P}}}\n\
         gracePeriod: {{minimum: 200ms, maximum: 120s}}\n\
         issuerHook: {{url: '{url}', tokenSecretRef: {{name: hook-token, key: token}}, timeoutSeconds: 2}}\n{extra}"
    )
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

async fn stored_key(h: &Harness, v: u64) -> Option<String> {
    let s = h.secret(&format!("api-v{v}")).await?;
    String::from_utf8(s.data?.get("key")?.0.clone()).ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_issuer_mints_every_key_once_and_revokes_it_by_its_id_after_presenters_left() {
    let state = Issuer {
        mode: Some(Mode::Ok),
        ..Default::default()
    };
    let issuer = FakeServer::start(state, answer).await;
    let h = Harness::new().await;
    crate::hook_faults::create_token(&h).await;
    for i in 0..2 {
        h.add_pod(&format!("server-{i}"), &[V], &[("app", "server")])
            .await;
        h.add_pod(&format!("client-{i}"), &[P], &[("app", "client")])
            .await;
    }
    h.apply("api", &spec(&issuer.url, "")).await;
    h.wait_published(V, P, &[1], 1, 20).await;
    let k1 = issuer.minted("default/api/v1/issue").expect("v1 issued");
    assert_eq!(stored_key(&h, 1).await, Some(k1.clone()), "the issued key");
    let v1 = h.secret("api-v1").await.unwrap();
    let ann = v1.metadata.annotations.unwrap_or_default();
    assert_eq!(
        ann.get(keyrotor::wire::HOOK_KEY_ID).map(String::as_str),
        Some("kid-1")
    );
    let uid = h.rotation("api").await.metadata.uid.unwrap();
    assert_eq!(issuer.seen("default/api/v1/issue")[0]["uid"], uid.as_str());

    // The answer to v2's issue is lost after the issuer minted: the retry
    // (same idempotency key) gets that key, and no second one is minted.
    issuer.set(Mode::LoseAnswer);
    h.apply("api", &spec(&issuer.url, "rotationRequest: r2"))
        .await;
    h.wait_published(V, P, &[2], 2, 60).await;
    assert!(
        issuer.seen("default/api/v2/issue").len() >= 2,
        "asked again"
    );
    let k2 = issuer.minted("default/api/v2/issue").unwrap();
    assert_eq!(stored_key(&h, 2).await, Some(k2.clone()));
    assert_eq!(
        issuer.state.lock().unwrap().minted.len(),
        2,
        "one key per version"
    );

    // v1 is revoked at the issuer by its id and digest, before its Secret goes.
    h.wait("retire v1 at the issuer", 20, || async {
        !issuer.seen("default/api/v1/retire").is_empty()
    })
    .await;
    let retire = &issuer.seen("default/api/v1/retire")[0];
    assert_eq!(retire["keyId"], "kid-1");
    assert_eq!(retire["sha256"], digest_of(k1.as_bytes()).as_str());
    assert!(retire.get("key").is_none(), "retire never carries the key");

    // An unusable key: HookFailed says why, no version 3, v2 stays current.
    issuer.set(Mode::ShortKey);
    h.apply("api", &spec(&issuer.url, "rotationRequest: r3"))
        .await;
    h.wait("HookFailed for a short key", 30, || async {
        let (reason, msg) = ready(&h).await;
        reason == reasons::HOOK_FAILED
            && msg.contains("the issuer hook could not issue version 3")
            && msg.contains("shorter than 16 bytes")
    })
    .await;
    assert!(h.secret("api-v3").await.is_none(), "nothing stored");
    assert_eq!(h.current(P).await, Some(2));
    assert_eq!(stored_key(&h, 2).await, Some(k2.clone()), "v2 untouched");
    issuer.set(Mode::Ok);
    h.wait_published(V, P, &[3], 3, 60).await;

    // A 204 is done without a body: an `issue` answered so has no key.
    issuer.set(Mode::NoContent);
    h.apply("api", &spec(&issuer.url, "rotationRequest: r4"))
        .await;
    h.wait("HookFailed for an issue without a key", 30, || async {
        let (reason, msg) = ready(&h).await;
        reason == reasons::HOOK_FAILED
            && msg.contains(
                "the issuer hook could not issue version 4: the issuer's answer has no key",
            )
    })
    .await;
    assert!(h.secret("api-v4").await.is_none(), "nothing stored");
    issuer.set(Mode::Ok);
    h.wait_published(V, P, &[4], 4, 60).await;

    check_invariants(&h, &[]);
    // I4: no issued key in status or events.
    let rot = serde_json::to_string(&h.rotation("api").await).unwrap();
    let api: kube::Api<k8s_openapi::api::events::v1::Event> =
        kube::Api::namespaced(h.client.clone(), NS);
    let evs = serde_json::to_string(&api.list(&Default::default()).await.unwrap()).unwrap();
    for k in [&k1, &k2] {
        assert!(!rot.contains(k.as_str()) && !evs.contains(k.as_str()));
    }
}
