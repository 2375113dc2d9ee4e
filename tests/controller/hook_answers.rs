//! The answers of the hook protocol beyond "done": `204` is done, `202`
//! ("not yet") holds the step without failing and is asked again after its
//! `retryAfterSeconds`, and a refusal (4xx) holds the rotation with
//! `Ready=False HookRefused` and `status.hookRefusal` until the spec or
//! `keyrotor.dev/retry-hook` changes, across a restart of the operator. A
//! reason that echoes the key never reaches status or events, and every key
//! stays valid throughout.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use keyrotor::conditions::{events, reasons, types};
use keyrotor::wire::RETRY_HOOK;
use keyrotor_testsupport::harness::{Harness, NS};
use kube::Api;
use serde_json::json;
use tokio::net::TcpStream;

use crate::hook_faults::{FakeServer, create_token, read_request, respond, step_name};
use crate::scenario::{P, V, check_invariants};

/// How the hook answers `stage` (every other step: `204`).
#[derive(Clone, Debug, PartialEq)]
enum Mode {
    /// `204 No Content`.
    NoContent,
    /// `202` with this `retryAfterSeconds` and reason.
    Pending(u32, &'static str),
    /// `409` with this reason.
    Refused(&'static str),
    /// `409` whose reason is the key it was sent.
    RefusedEchoingKey,
}

struct Hook {
    mode: Mode,
    /// [`step_name`] of every request, with when it came.
    seen: Vec<(String, Instant)>,
}

type FakeHook = FakeServer<Hook>;

impl FakeHook {
    fn set(&self, mode: Mode) {
        self.state.lock().unwrap().mode = mode;
    }

    fn calls(&self, step: &str) -> usize {
        let s = self.state.lock().unwrap();
        s.seen.iter().filter(|(k, _)| k == step).count()
    }
}

async fn answer(mut stream: TcpStream, state: Arc<Mutex<Hook>>) {
    let Some((_, body)) = read_request(&mut stream).await else {
        return;
    };
    let request: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let mode = {
        let mut s = state.lock().unwrap();
        s.seen.push((step_name(&request), Instant::now()));
        s.mode.clone()
    };
    let (status, body) = match (request["step"].as_str(), mode) {
        (Some("stage"), Mode::Pending(after, reason)) => (
            "202 Accepted",
            json!({"done": false, "retryAfterSeconds": after, "reason": reason}),
        ),
        (Some("stage"), Mode::Refused(reason)) => {
            ("409 Conflict", json!({"done": false, "reason": reason}))
        }
        (Some("stage"), Mode::RefusedEchoingKey) => (
            "409 Conflict",
            json!({"done": false, "reason": format!("cannot use {}", request["key"].as_str().unwrap_or_default())}),
        ),
        _ => return respond(stream, "204 No Content", "").await,
    };
    respond(stream, status, &body.to_string()).await;
}

fn spec(url: &str, extra: &str) -> String {
    format!(
        "secrets: {{verifier: {V}, presenter: {P}}}\n\
         gracePeriod: {{minimum: 200ms, maximum: 120s}}\n\
         verifierHook: {{url: '{url}', tokenSecretRef: {{name: hook-token, key: token}}, timeoutSeconds: 1}}\n{extra}"
    )
}

/// Two verifier and two presenter pods, and rotation `api` published at
/// version 1 through a hook answering `stage` with `204`.
async fn started(hook: &FakeHook) -> Harness {
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
    h
}

/// (reason, message) of condition `type_`, and whether it is True.
async fn condition(h: &Harness, type_: &str) -> (String, String, bool) {
    let status = h.rotation("api").await.status.unwrap_or_default();
    status
        .condition(type_)
        .map(|c| (c.reason.clone(), c.message.clone(), c.status == "True"))
        .unwrap_or_default()
}

/// Every event of `reason`, with how many times it was said (a repeated
/// event is one object with a series count).
async fn said(h: &Harness, reason: &str) -> Vec<(String, i32)> {
    let api: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(h.client.clone(), NS);
    api.list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some(reason))
        .map(|e| {
            let count = e.series.as_ref().map_or(1, |s| s.count);
            (e.note.unwrap_or_default(), count)
        })
        .collect()
}

fn times(events: &[(String, i32)]) -> i32 {
    events.iter().map(|(_, n)| n).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_hook_holds_the_step_without_failing_and_the_cycle_goes_on_once_it_is_done() {
    let state = Hook {
        mode: Mode::NoContent,
        seen: Vec::new(),
    };
    let hook = FakeServer::start(state, answer).await;
    let h = started(&hook).await;
    assert_eq!(hook.calls("default/api/v1/stage"), 1, "204 is done");

    hook.set(Mode::Pending(2, "propagating to 3 regions"));
    h.apply("api", &spec(&hook.url, "rotationRequest: r2"))
        .await;
    let waiting = "the verifier hook has not finished staging version 2 (HTTP 202): propagating to 3 regions; asking again in 2 s";
    h.wait("Progressing=True WaitingForHook", 20, || async {
        condition(&h, types::PROGRESSING).await
            == (reasons::WAITING_FOR_HOOK.into(), waiting.into(), true)
    })
    .await;
    // Held for a while: asked again about every 2 s, never failing.
    tokio::time::sleep(Duration::from_secs(7)).await;
    let asked = hook.calls("default/api/v2/stage");
    assert!(
        (3..=8).contains(&asked),
        "asked {asked} times in about 7 s at retryAfterSeconds: 2"
    );
    assert!(
        h.events(events::HOOK_FAILED).await.is_empty(),
        "no HookFailed"
    );
    let (ready, _, is_ready) = condition(&h, types::READY).await;
    assert_eq!((ready.as_str(), is_ready), (reasons::ROTATING, true));
    assert_eq!(h.current(P).await, Some(1), "presenters keep version 1");
    assert_eq!(
        said(&h, events::HOOK_PENDING).await,
        [(waiting.to_string(), 1)],
        "said once while the text stays"
    );
    let asked_at: Vec<Instant> = {
        let s = hook.state.lock().unwrap();
        s.seen
            .iter()
            .filter(|(k, _)| k == "default/api/v2/stage")
            .map(|(_, at)| *at)
            .collect()
    };
    let gaps: Vec<Duration> = asked_at.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(
        gaps.iter().all(|g| *g >= Duration::from_millis(1500)),
        "asked again only after retryAfterSeconds: {gaps:?}"
    );

    hook.set(Mode::NoContent);
    h.wait_published(V, P, &[2], 2, 30).await;
    let (progressing, _, _) = condition(&h, types::PROGRESSING).await;
    assert_ne!(progressing, reasons::WAITING_FOR_HOOK);
    assert!(h.events(events::HOOK_FAILED).await.is_empty());
    check_invariants(&h, &[]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_is_not_asked_again_across_a_restart_until_the_retry_annotation_changes() {
    let state = Hook {
        mode: Mode::NoContent,
        seen: Vec::new(),
    };
    let hook = FakeServer::start(state, answer).await;
    let mut h = started(&hook).await;
    let stage = "default/api/v2/stage";

    // A refusal whose reason repeats the key: shown without its reason.
    hook.set(Mode::RefusedEchoingKey);
    h.apply("api", &spec(&hook.url, "rotationRequest: r2"))
        .await;
    h.wait("Ready=False HookRefused", 20, || async {
        condition(&h, types::READY).await.0 == reasons::HOOK_REFUSED
    })
    .await;
    let (_, message, _) = condition(&h, types::READY).await;
    assert!(
        message.starts_with("the verifier hook refused to stage version 2 (HTTP 409, no reason given); fix the cause, then change the spec or run kubectl annotate apikeyrotation api -n default keyrotor.dev/retry-hook=<any new value> --overwrite to ask again"),
        "{message}"
    );
    let key = String::from_utf8(
        h.secret("api-v2").await.unwrap().data.unwrap()["key"]
            .0
            .clone(),
    )
    .unwrap();
    let refusal = h
        .rotation("api")
        .await
        .status
        .unwrap()
        .hook_refusal
        .unwrap();
    assert_eq!(
        (
            refusal.hook.as_str(),
            refusal.step.as_str(),
            refusal.version,
            refusal.status
        ),
        ("verifierHook", "stage", 2, 409)
    );
    assert_eq!((refusal.reason, refusal.retry_token), (None, None));

    // Asked again: refused for a reason it may show.
    hook.set(Mode::Refused("role app_green is missing"));
    h.annotate_rotation("api", RETRY_HOOK, "1").await;
    let refused =
        "the verifier hook refused to stage version 2 (HTTP 409): role app_green is missing; fix";
    h.wait("the reason shown", 20, || async {
        condition(&h, types::READY).await.1.starts_with(refused)
    })
    .await;
    let refusal = h
        .rotation("api")
        .await
        .status
        .unwrap()
        .hook_refusal
        .unwrap();
    assert_eq!(refusal.reason.as_deref(), Some("role app_green is missing"));
    assert_eq!(refusal.retry_token.as_deref(), Some("1"));

    // Nothing asks again: not pods reporting, not two restarts.
    let asked = hook.calls(stage);
    assert_eq!(asked, 2, "once per refusal");
    h.add_pod("server-2", &[V], &[("app", "server")]).await;
    for _ in 0..2 {
        h.stop_controller();
        let before = h.reconciles();
        h.start_controller();
        h.wait("a reconcile after the restart", 10, || async {
            h.reconciles() > before
        })
        .await;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(hook.calls(stage), asked, "not asked again");
    assert_eq!(
        times(&said(&h, events::HOOK_REFUSED).await),
        2,
        "one event per refusal"
    );
    assert_eq!(h.current(P).await, Some(1), "presenters keep version 1");
    assert_eq!(h.accepted(V).await, [1, 2].into(), "nothing else moved");
    assert!(h.events(events::HOOK_FAILED).await.is_empty());

    // Asked again unfixed: refused again, said again though the text is the same.
    h.annotate_rotation("api", RETRY_HOOK, "2").await;
    h.wait("refused again", 20, || async {
        let status = h.rotation("api").await.status.unwrap_or_default();
        status.hook_refusal.and_then(|r| r.retry_token).as_deref() == Some("2")
    })
    .await;
    assert_eq!(hook.calls(stage), asked + 1);
    h.wait("a third HookRefused event", 10, || async {
        times(&said(&h, events::HOOK_REFUSED).await) == 3
    })
    .await;

    // Fixed, and asked again: the cycle completes and the record goes.
    hook.set(Mode::NoContent);
    h.annotate_rotation("api", RETRY_HOOK, "3").await;
    h.wait_published(V, P, &[2], 2, 30).await;
    h.wait("the refusal cleared", 10, || async {
        let status = h.rotation("api").await.status.unwrap_or_default();
        status.hook_refusal.is_none()
            && status
                .condition(types::READY)
                .is_some_and(|c| c.status == "True")
    })
    .await;
    check_invariants(&h, &[]);
    // I4: the echoed key reached neither status nor an event.
    let rot = serde_json::to_string(&h.rotation("api").await).unwrap();
    let api: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(h.client.clone(), NS);
    let evs = serde_json::to_string(&api.list(&Default::default()).await.unwrap()).unwrap();
    assert!(!rot.contains(&key) && !evs.contains(&key), "the key leaked");
}
