//! The controller through the real kube-runtime `Controller` on the in-memory
//! API: every scenario of the zero-downtime protocol, with the invariants
//! checked over the whole recorded history of Secrets and Pods.

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Event as CoreEvent, Secret};
use keyrotor::rotation::{Stage, VersionState};
use keyrotor::wire as k;
use keyrotor_testsupport::harness::{Harness, NS, annotation};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::json;

use crate::scenario::{P, Scenario, V, check_invariants};

/// The protocol's rotation: a grace long enough to watch each stage.
const API: Scenario = Scenario { min_grace: "1s" };

fn assert_invariants(h: &Harness, excused: &[u64]) {
    let n = check_invariants(h, excused);
    assert!(n > 10, "the observer recorded the history ({n} changes)");
}

async fn status(h: &Harness) -> keyrotor::api::ApiKeyRotationStatus {
    h.rotation("api").await.status.unwrap_or_default()
}

async fn condition(h: &Harness, type_: &str) -> Option<(String, String, String)> {
    let s = status(h).await;
    s.condition(type_)
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

async fn event_reasons(h: &Harness) -> Vec<String> {
    let api: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(h.client.clone(), NS);
    let mut out: Vec<String> = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|e| e.reason)
        .collect();
    let core: Api<CoreEvent> = Api::namespaced(h.client.clone(), NS);
    if let Ok(list) = core.list(&ListParams::default()).await {
        out.extend(list.items.into_iter().filter_map(|e| e.reason));
    }
    out
}

#[tokio::test]
async fn a_full_cooperative_rotation_publishes_verifiers_first_and_retires_the_old_key() {
    let h = API.started("").await;
    let before = h.keyrotor_writes();
    API.request_rotation(&h, "", "r1").await;
    h.wait_published(V, P, &[1, 2], 2, 10).await;
    h.wait_published(V, P, &[2], 2, 10).await;
    h.wait("version 1 Secret deleted", 5, || async {
        h.secret("api-v1").await.is_none()
    })
    .await;
    h.wait("status Stable on version 2", 5, || async {
        let s = status(&h).await;
        s.stage == Some(Stage::Stable)
            && s.current_version == Some(2)
            && s.versions
                .iter()
                .any(|v| v.version == 1 && v.state == VersionState::Retired)
    })
    .await;
    let log: Vec<_> = h
        .api
        .faults()
        .effective_writes()
        .into_iter()
        .filter(|w| w.field_manager == "keyrotor")
        .skip(before)
        .collect();
    let count = |resource: &str, sub: &str| {
        log.iter()
            .filter(|w| w.resource == resource && w.subresource == sub)
            .count()
    };
    let (secrets, status_writes, nudges) = (
        count("secrets", ""),
        count("apikeyrotations", "status"),
        count("pods", ""),
    );
    println!(
        "one full cycle: {secrets} Secret writes + 1 delete, {status_writes} status writes, {nudges} nudges"
    );
    // create version, stage (verifier), promote (presenter), retire (verifier)
    assert_eq!(secrets, 4);
    // Staging, Promoting, Stable: progress inside a step is coalesced.
    assert_eq!(status_writes, 3, "{status_writes} status writes");
    assert!(
        secrets + 1 + status_writes <= 8,
        "the issue's budget per cycle"
    );
    assert!(nudges <= 4, "{nudges} nudges for 4 pods");
    let s = status(&h).await;
    assert!(
        s.versions
            .iter()
            .all(|v| v.fingerprint.starts_with("sha256:"))
    );
    assert_eq!(condition(&h, "Ready").await.unwrap().0, "True");
    let reasons = event_reasons(&h).await;
    for r in [
        "VersionCreated",
        "VersionStaged",
        "VersionPromoted",
        "VersionRetired",
    ] {
        assert!(
            reasons.iter().any(|x| x == r),
            "missing event {r} in {reasons:?}"
        );
    }
    assert_invariants(&h, &[]);
}

#[tokio::test]
async fn verifiers_get_digests_and_presenters_get_the_key() {
    let h = API.started("").await;
    let v = h.secret(V).await.unwrap();
    let p = h.secret(P).await.unwrap();
    let data = |s: &Secret, f: &str| {
        s.data
            .as_ref()
            .unwrap()
            .get(f)
            .map(|b| String::from_utf8(b.0.clone()).unwrap())
    };
    let key = data(&p, "key").unwrap();
    assert_eq!(
        data(&v, "v1.sha256").unwrap(),
        keyrotor::keys::digest_of(key.as_bytes())
    );
    assert!(
        data(&v, "key").is_none(),
        "verifiers never get the key by default"
    );
    let version = h.secret("api-v1").await.unwrap();
    assert_eq!(version.immutable, Some(true));
    assert_eq!(version.owner_references()[0].name, "api");
    assert_eq!(
        annotation(&version, k::FINGERPRINT).unwrap(),
        status(&h).await.versions[0].fingerprint
    );
}

#[tokio::test]
async fn a_lagging_presenter_keeps_the_old_key_and_stalls_after_the_maximum_grace() {
    let h = Harness::new().await;
    h.add_pod("server-0", &[V], &[]).await;
    h.add_pod("client-0", &[P], &[]).await;
    h.apply("api", &API.spec("").replace("maximum: 60s", "maximum: 3s"))
        .await;
    h.wait_published(V, P, &[1], 1, 10).await;
    h.set_stuck("client-0", true);
    h.apply(
        "api",
        &format!(
            "{}\nrotationRequest: r1",
            API.spec("").replace("maximum: 60s", "maximum: 3s")
        ),
    )
    .await;
    h.wait_published(V, P, &[1, 2], 2, 10).await;
    h.wait("MigrationStalled", 10, || async {
        condition(&h, "MigrationStalled")
            .await
            .is_some_and(|c| c.0 == "True")
    })
    .await;
    assert_eq!(
        h.accepted(V).await,
        [1, 2].into(),
        "onTimeout Wait keeps the old key"
    );
    let (_, reason, message) = condition(&h, "MigrationStalled").await.unwrap();
    assert_eq!(reason, "PresentersStalled");
    assert!(message.contains("presenters"), "{message}");
    assert!(
        event_reasons(&h)
            .await
            .iter()
            .any(|r| r == "MigrationStalled")
    );
    assert!(
        status(&h)
            .await
            .confirmation
            .unwrap()
            .presenters
            .waiting_for
            .contains(&"client-0".to_string())
    );
    // onTimeout: Retire retires it anyway.
    h.apply(
        "api",
        &format!(
            "{}\nrotationRequest: r1",
            API.spec("")
                .replace("maximum: 60s", "maximum: 3s, onTimeout: Retire")
        ),
    )
    .await;
    h.wait_published(V, P, &[2], 2, 10).await;
    assert_invariants(&h, &[1]);
}

#[tokio::test]
async fn a_verifier_that_never_confirms_means_no_presenter_gets_the_new_key() {
    let h = API.started("").await;
    h.set_stuck("server-1", true);
    API.request_rotation(&h, "", "r1").await;
    h.wait("staged", 10, || async {
        h.accepted(V).await == [1, 2].into()
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(h.current(P).await, Some(1));
    let c = condition(&h, "Progressing").await.unwrap();
    assert_eq!(
        (c.0.as_str(), c.1.as_str()),
        ("True", "WaitingForVerifiers")
    );
    h.set_stuck("server-1", false);
    h.wait_published(V, P, &[2], 2, 10).await;
    assert_invariants(&h, &[]);
}

#[tokio::test]
async fn a_pod_that_mounts_the_secret_but_matches_no_selector_is_still_waited_for() {
    let extra = "consumers:\n  presenters:\n    selector: {matchLabels: {app: client}}";
    let h = API.started(extra).await;
    h.add_pod("sneaky", &[P], &[("app", "batch")]).await;
    h.wait("sneaky reported", 5, || async {
        h.pods()
            .get("sneaky")
            .await
            .ok()
            .and_then(|p| annotation(&p, &k::report("api", "presenter")).map(String::from))
            .is_some()
    })
    .await;
    h.set_stuck("sneaky", true);
    API.request_rotation(&h, extra, "r1").await;
    h.wait_published(V, P, &[1, 2], 2, 10).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        h.accepted(V).await,
        [1, 2].into(),
        "the unselected pod still holds version 1"
    );
    h.set_stuck("sneaky", false);
    h.wait_published(V, P, &[2], 2, 10).await;
    assert_invariants(&h, &[]);
}

#[tokio::test]
async fn traffic_mode_holds_the_old_key_while_a_verifier_still_sees_it() {
    let extra = "consumers:\n  presenters:\n    traffic: {quietWindow: 2s}";
    let h = API.started(extra).await;
    API.request_rotation(&h, extra, "r1").await;
    h.wait_published(V, P, &[1, 2], 2, 10).await;
    // An outside client keeps presenting version 1 to server-0 for 3 seconds.
    for _ in 0..6 {
        let seen = k::LastSeen([(1, jiff::Timestamp::now())].into());
        let (key, value) = seen.annotation("api");
        let patch = json!({"metadata": {"annotations": {key: value}}});
        h.pods()
            .patch("server-0", &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(h.accepted(V).await, [1, 2].into());
    }
    assert_eq!(
        condition(&h, "Progressing").await.unwrap().1,
        "WaitingForQuietTraffic"
    );
    // It moved to version 2, which server-0 reports seeing (silence alone
    // would not count as quiet); bounded by the wait below.
    let last_v1 = jiff::Timestamp::now();
    let reporter = {
        let pods = h.pods();
        tokio::spawn(async move {
            for _ in 0..40 {
                let seen = k::LastSeen([(1, last_v1), (2, jiff::Timestamp::now())].into());
                let (key, value) = seen.annotation("api");
                let patch = json!({"metadata": {"annotations": {key: value}}});
                let _ = pods
                    .patch("server-0", &PatchParams::default(), &Patch::Merge(&patch))
                    .await;
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        })
    };
    h.wait_published(V, P, &[2], 2, 10).await;
    reporter.abort();
    let retired = status(&h).await;
    assert!(retired.traffic.iter().any(|t| t.version == 1));
    assert_invariants(&h, &[]);
}

#[tokio::test]
async fn rollout_mode_restarts_each_workload_and_waits_for_its_rollout() {
    let h = Harness::new().await;
    let deployments: Api<Deployment> = Api::namespaced(h.client.clone(), NS);
    for (name, secret) in [("server", V), ("client", P)] {
        let d: Deployment = serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": NS},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "app", "image": "app"}],
                                           "volumes": [{"name": "k", "secret": {"secretName": secret}}]}}}
        }))
        .unwrap();
        deployments
            .create(&PostParams::default(), &d)
            .await
            .unwrap();
    }
    // A tiny deployment controller: complete every rollout 300 ms after it starts.
    let api = deployments.clone();
    let rollouts = tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(300)).await;
            for d in api.list(&ListParams::default()).await.unwrap().items {
                let generation = d.metadata.generation;
                let seen = d.status.as_ref().and_then(|s| s.observed_generation);
                if generation != seen {
                    let status = json!({"status": {"observedGeneration": generation, "replicas": 1, "updatedReplicas": 1, "availableReplicas": 1, "readyReplicas": 1}});
                    api.patch_status(
                        &d.name_any(),
                        &PatchParams::default(),
                        &Patch::Merge(&status),
                    )
                    .await
                    .unwrap();
                }
            }
        }
    });
    let extra = "consumers:\n  verifiers: {confirmation: Rollout, workloads: [{kind: Deployment, name: server}]}\n  presenters: {confirmation: Rollout, workloads: [{kind: Deployment, name: client}]}";
    h.apply("api", &API.spec(extra)).await;
    h.wait_published(V, P, &[1], 1, 10).await;
    API.request_rotation(&h, extra, "r1").await;
    h.wait_published(V, P, &[2], 2, 15).await;
    let server = deployments.get("server").await.unwrap();
    let stamp = server
        .spec
        .unwrap()
        .template
        .metadata
        .unwrap()
        .annotations
        .unwrap();
    assert!(
        stamp.contains_key(&k::report("api", "verifier")),
        "the verifier workload was restarted"
    );
    rollouts.abort();
}

#[tokio::test]
async fn delay_mode_waits_the_propagation_delay_without_reports() {
    let extra = "consumers:\n  verifiers: {confirmation: Delay, propagationDelay: 1s}\n  presenters: {confirmation: Delay, propagationDelay: 1s}";
    let h = Harness::new().await;
    h.apply("api", &API.spec(extra)).await;
    h.wait_published(V, P, &[1], 1, 10).await;
    let t0 = std::time::Instant::now();
    API.request_rotation(&h, extra, "r1").await;
    h.wait_published(V, P, &[1, 2], 2, 10).await;
    assert!(
        t0.elapsed() >= Duration::from_secs(1),
        "promoted before the delay"
    );
    h.wait_published(V, P, &[2], 2, 10).await;
}

#[tokio::test]
async fn kubectl_rotate_through_the_annotation_survives_a_gitops_sync() {
    let h = API.started("").await;
    h.annotate_rotation("api", k::ROTATE_REQUEST, "2026-11-27T10:00:00Z")
        .await;
    h.wait_published(V, P, &[2], 2, 15).await;
    // Argo CD syncs the same spec from Git: the annotation is not part of it and the key stays.
    h.apply("api", &API.spec("")).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(h.current(P).await, Some(2));
    assert_eq!(
        status(&h)
            .await
            .handled_requests
            .unwrap()
            .rotate
            .annotation
            .as_deref(),
        Some("2026-11-27T10:00:00Z")
    );
}

#[tokio::test]
async fn emergency_revoke_drops_the_current_key_and_promotes_a_fresh_one_at_once() {
    let h = API.started("").await;
    h.apply("api", &API.spec("revokedVersions: [1]")).await;
    h.wait_published(V, P, &[2], 2, 10).await;
    // Version 2 is promoted before verifiers confirm it (the explicit exception
    // to I2): its requests may be rejected until they load it.
    h.wait("version 1 material deleted", 5, || async {
        h.secret("api-v1").await.is_none()
    })
    .await;
    h.wait("version 1 Revoked in status", 5, || async {
        status(&h)
            .await
            .versions
            .iter()
            .any(|v| v.version == 1 && v.state == VersionState::Revoked)
    })
    .await;
    assert!(
        event_reasons(&h)
            .await
            .iter()
            .any(|r| r == "VersionRevoked")
    );
    assert_invariants(&h, &[1, 2]);
}

#[tokio::test]
async fn rollback_during_grace_returns_presenters_to_the_previous_key() {
    let h = API.started("").await;
    let grace = API.spec("").replace("minimum: 1s", "minimum: 30s");
    h.apply("api", &format!("{grace}\nrotationRequest: r1"))
        .await;
    h.wait_published(V, P, &[1, 2], 2, 10).await;
    h.apply(
        "api",
        &format!("{grace}\nrotationRequest: r1\nrollbackRequest: b1"),
    )
    .await;
    h.wait_published(V, P, &[1, 2], 1, 10).await;
    h.apply(
        "api",
        &format!("{}\nrotationRequest: r1\nrollbackRequest: b1", API.spec("")),
    )
    .await;
    h.wait_published(V, P, &[1], 1, 10).await;
    h.wait("version 2 abandoned", 5, || async {
        status(&h)
            .await
            .versions
            .iter()
            .any(|v| v.version == 2 && v.state == VersionState::Abandoned)
    })
    .await;
    assert_invariants(&h, &[]);
}

#[tokio::test]
async fn suspend_pauses_rotation_and_resume_continues_it() {
    let h = API.started("").await;
    h.apply("api", &API.spec("suspend: true\nrotationRequest: r1"))
        .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(h.accepted(V).await, [1].into());
    assert_eq!(condition(&h, "Ready").await.unwrap().1, "Suspended");
    h.apply("api", &API.spec("suspend: false\nrotationRequest: r1"))
        .await;
    h.wait_published(V, P, &[2], 2, 10).await;
}

#[tokio::test]
async fn pods_replaced_mid_cycle_are_counted_from_their_first_report() {
    let h = API.started("").await;
    h.set_stuck("server-1", true);
    API.request_rotation(&h, "", "r1").await;
    h.wait("staged", 10, || async {
        h.accepted(V).await == [1, 2].into()
    })
    .await;
    h.delete_pod("server-1").await;
    h.add_pod("server-2", &[V], &[("app", "server")]).await;
    h.delete_pod("client-1").await;
    h.add_pod("client-2", &[P], &[("app", "client")]).await;
    h.wait_published(V, P, &[2], 2, 10).await;
    assert_invariants(&h, &[]);
}

#[tokio::test]
async fn two_rotations_sharing_pods_both_complete() {
    let h = Harness::new().await;
    h.add_pod("both-0", &[V, P, "b-verifier", "b-key"], &[])
        .await;
    h.apply("api", &API.spec("")).await;
    h.apply("b", "secrets: {verifier: b-verifier, presenter: b-key}\ngracePeriod: {minimum: 1s, maximum: 60s}").await;
    h.wait_published(V, P, &[1], 1, 10).await;
    h.wait_published("b-verifier", "b-key", &[1], 1, 10).await;
    API.request_rotation(&h, "", "r1").await;
    h.apply("b", "secrets: {verifier: b-verifier, presenter: b-key}\ngracePeriod: {minimum: 1s, maximum: 60s}\nrotationRequest: x").await;
    h.wait_published(V, P, &[2], 2, 10).await;
    h.wait_published("b-verifier", "b-key", &[2], 2, 10).await;
    let pod = h.pods().get("both-0").await.unwrap();
    assert!(
        annotation(&pod, &k::report("api", "presenter")).is_some()
            && annotation(&pod, &k::report("b", "presenter")).is_some()
    );
}

#[tokio::test]
async fn a_secret_keyrotor_does_not_own_is_never_touched() {
    let h = Harness::new().await;
    let foreign: Secret = serde_json::from_value(
        json!({"metadata": {"name": P, "namespace": NS}, "stringData": {"key": "someone-elses"}}),
    )
    .unwrap();
    h.secrets()
        .create(&PostParams::default(), &foreign)
        .await
        .unwrap();
    h.apply("api", &API.spec("")).await;
    h.wait("SecretConflict", 10, || async {
        condition(&h, "Ready")
            .await
            .is_some_and(|c| c.1 == "SecretConflict")
    })
    .await;
    let (_, _, message) = condition(&h, "Ready").await.unwrap();
    assert!(
        message.contains(P) && message.contains("not owned"),
        "{message}"
    );
    let after = h.secret(P).await.unwrap();
    assert_eq!(after.data.unwrap()["key"].0, b"someone-elses");
    assert!(after.metadata.owner_references.is_none());
    assert!(
        event_reasons(&h)
            .await
            .iter()
            .any(|r| r == "SecretConflict")
    );
}

#[tokio::test]
async fn an_invalid_spec_gets_a_condition_and_an_event_and_keys_stay_valid() {
    let h = API.started("").await;
    let key_before = h.secret(P).await.unwrap().data;
    // CEL would refuse this at the apiserver; the in-memory API does not run CEL,
    // which is the case of a cluster that skips it: keyrotor still refuses it.
    h.apply(
        "api",
        &API.spec("schedule: {cron: '61 * * * *'}\nrotationRequest: r1"),
    )
    .await;
    h.wait("InvalidSpec", 10, || async {
        condition(&h, "Ready")
            .await
            .is_some_and(|c| c.1 == "InvalidSpec")
    })
    .await;
    let (_, _, message) = condition(&h, "Ready").await.unwrap();
    assert!(message.contains("spec.schedule.cron"), "{message}");
    assert!(event_reasons(&h).await.iter().any(|r| r == "InvalidSpec"));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        h.secret(P).await.unwrap().data,
        key_before,
        "keys untouched"
    );
    assert_eq!(h.accepted(V).await, [1].into());
    h.apply("api", &API.spec("rotationRequest: r1")).await;
    h.wait_published(V, P, &[2], 2, 10).await;
}

#[tokio::test]
async fn deleting_with_policy_delete_removes_every_secret_and_the_finalizer() {
    let h = API.started("").await;
    assert!(
        h.rotation("api")
            .await
            .finalizers()
            .contains(&"keyrotor.dev/cleanup".to_string())
    );
    h.rotations()
        .delete("api", &DeleteParams::default())
        .await
        .unwrap();
    h.wait("rotation gone", 10, || async {
        h.rotations().get_opt("api").await.unwrap().is_none()
    })
    .await;
    h.wait("secrets gone", 5, || async {
        h.secrets()
            .list(&ListParams::default().labels(k::ROTATION_LABEL))
            .await
            .unwrap()
            .items
            .is_empty()
    })
    .await;
    assert!(h.secret(V).await.is_none() && h.secret(P).await.is_none());
}

#[tokio::test]
async fn deleting_with_policy_orphan_leaves_the_projected_secrets_to_consumers() {
    let h = API.started("deletionPolicy: Orphan").await;
    h.rotations()
        .delete("api", &DeleteParams::default())
        .await
        .unwrap();
    h.wait("rotation gone", 10, || async {
        h.rotations().get_opt("api").await.unwrap().is_none()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let p = h.secret(P).await.expect("presenter Secret kept");
    assert!(p.owner_references().is_empty());
    assert!(p.data.unwrap().contains_key("key"));
    assert!(h.secret(V).await.is_some());
    assert!(
        h.secret("api-v1").await.is_none(),
        "version key material is not orphaned"
    );
}

#[tokio::test]
async fn steady_state_makes_no_writes() {
    let h = API.started("").await;
    h.wait("status settled", 5, || async {
        status(&h).await.stage == Some(Stage::Stable)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = h.keyrotor_writes();
    // Pods keep reporting the same revision; nothing changes.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(h.keyrotor_writes(), before, "writes in a quiet period");
}

#[tokio::test]
async fn a_single_secret_layout_rotates_too() {
    let h = Harness::new().await;
    h.add_pod("peer-0", &["mesh"], &[]).await;
    h.add_pod("peer-1", &["mesh"], &[]).await;
    let s = "secrets: {verifier: mesh, presenter: mesh, verifierFormat: Plain}\ngracePeriod: {minimum: 1s, maximum: 60s}";
    h.apply("api", s).await;
    h.wait_published("mesh", "mesh", &[1], 1, 10).await;
    h.apply("api", &format!("{s}\nrotationRequest: r1")).await;
    h.wait_published("mesh", "mesh", &[2], 2, 10).await;
    let data = h.secret("mesh").await.unwrap().data.unwrap();
    assert_eq!(data["key"].0, data["v2.key"].0);
    h.observer.check("api", "mesh", "mesh", &[]).unwrap();
}
