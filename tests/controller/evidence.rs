//! Missing evidence is never confirmation, through the real controller: a
//! group with no consumer holds the old key and says so once, a pod that
//! reads the key through env is named at once and never counted, a group
//! that stops confirming stalls by progress with the reason that names the
//! cause, a verifier hook added to a Stable rotation gets the current key,
//! and a restarted operator repeats no announcement.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use keyrotor::conditions::{events, reasons, types};
use keyrotor::wire as k;
use keyrotor_testsupport::harness::{Harness, annotation};
use kube::api::{Patch, PatchParams};
use serde_json::json;
use tokio::net::TcpStream;

use crate::hook_faults::{FakeServer, create_token, read_request, respond, step_name};
use crate::scenario::{P, Scenario, V, check_invariants};

/// Rotation `api` with a one-second minimum grace.
const API: Scenario = Scenario { min_grace: "1s" };

async fn condition(h: &Harness, type_: &str) -> (String, String, String) {
    let status = h.rotation("api").await.status.unwrap_or_default();
    status
        .condition(type_)
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
        .unwrap_or_default()
}

async fn stalled(h: &Harness) -> Option<(String, String)> {
    let (status, reason, message) = condition(h, types::MIGRATION_STALLED).await;
    (status == "True").then_some((reason, message))
}

async fn wait_stalled(h: &Harness, reason: &str, secs: u64) -> String {
    h.wait(&format!("MigrationStalled {reason}"), secs, || async {
        stalled(h).await.is_some_and(|(r, _)| r == reason)
    })
    .await;
    stalled(h).await.unwrap().1
}

#[tokio::test]
async fn a_group_with_no_consumer_holds_the_old_key_and_completes_once_a_consumer_reports() {
    let h = Harness::new().await;
    h.add_pod("server-0", &[V], &[("app", "server")]).await;
    // The presenters run elsewhere with a copy of the Secret: keyrotor sees none.
    h.apply("api", &API.spec("")).await;
    h.wait_published(V, P, &[1], 1, 10).await; // the first key needs none
    API.request_rotation(&h, "", "r1").await;
    h.wait_published(V, P, &[1, 2], 2, 10).await;
    let message = wait_stalled(&h, reasons::NO_CONSUMERS, 10).await;
    for part in [
        "no presenters found",
        "namespace default",
        &format!("Secret default/{P}"),
        "volume, projected volume, env or envFrom",
        "version(s) 1 stay accepted",
        "minConsumers: 0",
    ] {
        assert!(message.contains(part), "{part:?} missing in {message}");
    }
    // Well past the minimum grace, and over many reconciles: the old key
    // stays, and the event was sent once.
    for i in 0..4 {
        h.annotate_rotation("api", "example.com/poke", &i.to_string()) // a reconcile
            .await;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(h.accepted(V).await, [1, 2].into());
    let said = h.events(events::NO_CONSUMERS).await;
    assert_eq!(said.len(), 1, "{said:?}");
    assert_eq!(said[0], message);
    assert_eq!(
        condition(&h, types::READY).await.0,
        "True",
        "every key is valid"
    );

    h.add_pod("client-0", &[P], &[("app", "client")]).await;
    h.wait_published(V, P, &[2], 2, 10).await;
    h.wait("the stall cleared", 5, || async {
        stalled(&h).await.is_none()
    })
    .await;
    check_invariants(&h, &[]);
}

#[tokio::test]
async fn a_group_declared_out_of_sight_completes_without_consumers() {
    let extra = "consumers:\n  presenters: {minConsumers: 0}";
    let h = Harness::new().await;
    h.add_pod("server-0", &[V], &[("app", "server")]).await;
    h.apply("api", &API.spec(extra)).await;
    h.wait_published(V, P, &[1], 1, 10).await;
    API.request_rotation(&h, extra, "r1").await;
    h.wait_published(V, P, &[2], 2, 10).await;
    assert!(h.events(events::NO_CONSUMERS).await.is_empty());
}

#[tokio::test]
async fn a_pod_reading_the_key_through_env_is_named_at_once_and_never_counted_as_confirmed() {
    let h = API.started("").await;
    h.add_env_pod("env-client", P, &[("app", "client")]).await;
    API.request_rotation(&h, "", "r1").await;
    h.wait_published(V, P, &[1, 2], 2, 10).await;
    let promoted = std::time::Instant::now();
    let message = wait_stalled(&h, reasons::CONSUMERS_CANNOT_CONFIRM, 5).await;
    // Named as soon as presenters are waited for: no deadline involved.
    assert!(
        promoted.elapsed() < Duration::from_secs(3),
        "{:?}",
        promoted.elapsed()
    );
    assert!(
        message.starts_with(&format!(
            "pod(s) env-client read Secret default/{P} through an environment variable"
        )) && message.contains("confirmation: Rollout"),
        "{message}"
    );
    // Its reporter says it loaded the revision; it is still not confirmed.
    let revision = annotation(&h.secret(P).await.unwrap(), k::REVISION)
        .unwrap()
        .to_string();
    h.wait("env-client reported the revision", 5, || async {
        let pod = h.pods().get("env-client").await.unwrap();
        annotation(&pod, &k::report("api", "presenter")) == Some(revision.as_str())
    })
    .await;
    // Progress reaches status within its 10 s coalescing, past the grace.
    h.wait("two of three presenters confirmed", 15, || async {
        let status = h.rotation("api").await.status.unwrap();
        let presenters = status.confirmation.unwrap().presenters;
        (presenters.confirmed, presenters.total) == (2, 3)
            && presenters.waiting_for == ["env-client"]
    })
    .await;
    assert_eq!(h.accepted(V).await, [1, 2].into());
    assert_eq!(h.events(events::CONSUMERS_CANNOT_CONFIRM).await, [message]);
    // Its workload switched to Rollout or to a volume: the pod goes.
    h.delete_pod("env-client").await;
    h.wait_published(V, P, &[2], 2, 10).await;
    check_invariants(&h, &[]);
}

#[tokio::test]
async fn a_group_that_stops_confirming_stalls_after_the_progress_deadline_with_its_reason() {
    let extra = "progressDeadline: 2s";
    let mut h = API.started(extra).await;
    h.set_stuck("server-1", true);
    API.request_rotation(&h, extra, "r1").await;
    // The deadline counts from the progress status records, which it
    // writes at most every 10 s.
    let message = wait_stalled(&h, reasons::VERIFIERS_STALLED, 20).await;
    assert!(
        message.contains("no verifier confirmed revision")
            && message.contains("for 2s (spec.progressDeadline")
            && message.contains("waiting for server-1;"),
        "{message}"
    );
    assert_eq!(h.current(P).await, Some(1), "presenters keep version 1");
    h.set_stuck("client-0", true); // before it can see version 2
    h.set_stuck("server-1", false);
    h.wait_published(V, P, &[1, 2], 2, 10).await;
    let message = wait_stalled(&h, reasons::PRESENTERS_STALLED, 20).await;
    assert!(message.contains("waiting for client-0;"), "{message}");
    assert_eq!(
        h.accepted(V).await,
        [1, 2].into(),
        "a stall retires nothing"
    );
    // The grace maximum (60 s) is far away: found by progress.
    let (_, progressing, _) = condition(&h, types::PROGRESSING).await;
    assert_eq!(progressing, reasons::WAITING_FOR_PRESENTERS);
    // A restart neither restarts the deadline nor repeats the event.
    for _ in 0..2 {
        h.stop_controller();
        let before = h.reconciles();
        h.start_controller();
        h.wait("a reconcile after the restart", 10, || async {
            h.reconciles() > before
        })
        .await;
    }
    assert!(stalled(&h).await.is_some());
    assert_eq!(
        h.events(events::MIGRATION_STALLED).await.len(),
        2,
        "one per stall"
    );
    h.set_stuck("client-0", false);
    h.wait_published(V, P, &[2], 2, 10).await;
    h.wait("the stall cleared", 5, || async {
        stalled(&h).await.is_none()
    })
    .await;
    check_invariants(&h, &[]);
}

/// A verifier hook whose answers the test switches: accepting, or down.
async fn switchable(stream: TcpStream, up: Arc<Mutex<(bool, Vec<String>)>>) {
    let mut stream = stream;
    let Some((_, body)) = read_request(&mut stream).await else {
        return;
    };
    let request: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let ok = {
        let mut s = up.lock().unwrap();
        s.1.push(step_name(&request));
        s.0
    };
    if ok {
        respond(stream, "200 OK", r#"{"done":true}"#).await;
    } else {
        respond(stream, "503 Service Unavailable", r#"{"done":false}"#).await;
    }
}

fn hook_spec(url: &str) -> String {
    format!(
        "verifierHook: {{url: '{url}', tokenSecretRef: {{name: hook-token, key: token}}, timeoutSeconds: 1}}\nprogressDeadline: 2s"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hook_added_to_a_stable_rotation_gets_the_current_key_and_a_failing_one_stalls_by_name() {
    let hook = FakeServer::start((true, Vec::new()), switchable).await;
    let h = API.started("").await;
    create_token(&h).await;
    let extra = hook_spec(&hook.url);
    h.apply("api", &API.spec(&extra)).await;
    h.wait("version 1 staged at the hook", 10, || async {
        h.secret("api-v1")
            .await
            .is_some_and(|s| annotation(&s, k::HOOK_ACCEPTED).is_some())
    })
    .await;
    let calls = hook.state.lock().unwrap().1.clone();
    assert_eq!(calls, ["default/api/v1/stage"]);
    assert_eq!(h.events(events::HOOK_STAGED).await.len(), 1);
    assert_eq!(h.current(P).await, Some(1), "Stable, nothing else moved");

    // The hook goes down while a new version waits for it.
    hook.state.lock().unwrap().0 = false;
    API.request_rotation(&h, &extra, "r1").await;
    let message = wait_stalled(&h, reasons::HOOK_STALLED, 20).await;
    assert!(
        message.starts_with("the verifier hook has not accepted version 2 for 2s"),
        "{message}"
    );
    let (_, ready, _) = condition(&h, types::READY).await;
    assert_eq!(ready, reasons::HOOK_FAILED, "what failed, beside the stall");
    let metrics = h.metrics.encode();
    for line in [
        "keyrotor_stalled{namespace=\"default\",name=\"api\",reason=\"HookStalled\"} 1",
        "keyrotor_ready{namespace=\"default\",name=\"api\"} 0",
    ] {
        assert!(metrics.contains(line), "missing {line} in\n{metrics}");
    }
    assert_eq!(h.current(P).await, Some(1));
    let said = h.events(events::MIGRATION_STALLED).await;
    assert_eq!(said, [message]);
    hook.state.lock().unwrap().0 = true;
    h.wait_published(V, P, &[2], 2, 30).await;
    check_invariants(&h, &[]);
}

#[tokio::test]
async fn two_restarts_after_a_retired_key_was_presented_post_no_event_and_write_nothing() {
    let mut h = API.started("").await;
    // server-0's `keyrotor verifier` refused 71 requests with version 0.
    let (key, value) = k::Traffic::parse("accepted=1:500;retired=0:71;client=10.0.0.7")
        .unwrap()
        .annotation("api");
    let patch = json!({"metadata": {"annotations": {key: value}}});
    h.pods()
        .patch("server-0", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    h.wait("a RetiredKeyPresented event", 10, || async {
        !h.events(events::RETIRED_KEY_PRESENTED).await.is_empty()
    })
    .await;
    let said = h.events(events::RETIRED_KEY_PRESENTED).await;
    assert!(said[0].contains("server-0 refused 71 more"), "{said:?}");
    h.wait("the announcement kept in status", 5, || async {
        let status = h.rotation("api").await.status.unwrap_or_default();
        status
            .retired_key_refusals
            .iter()
            .any(|r| r.pod == "server-0" && r.refused == 71)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let writes = h.keyrotor_writes();
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
    assert_eq!(h.events(events::RETIRED_KEY_PRESENTED).await.len(), 1);
    assert_eq!(
        h.keyrotor_writes(),
        writes,
        "a restart with nothing to do writes nothing"
    );
    // New refusals are news again.
    let (key, value) = k::Traffic::parse("accepted=1:900;retired=0:75;client=10.0.0.7")
        .unwrap()
        .annotation("api");
    let patch = json!({"metadata": {"annotations": {key: value}}});
    h.pods()
        .patch("server-0", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    h.wait("the next RetiredKeyPresented", 10, || async {
        h.events(events::RETIRED_KEY_PRESENTED)
            .await
            .iter()
            .any(|n| n.contains("refused 4 more"))
    })
    .await;
}
