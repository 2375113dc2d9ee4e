//! What scenarios share: manifests for rotations and consumers, waiting with
//! a bound, reading status, the audit log, and the scan for key material.

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Event;
use keyrotor::api::ApiKeyRotation;
use keyrotor::rotation::Stage;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

use super::cluster::{Cluster, OPERATOR_NS, OPERATOR_SA};
use crate::eventually::eventually;
use crate::observer::Observer;

/// Waits until `name` no longer exists in `api` (deleted, finalizers done).
pub async fn wait_gone<K>(api: &Api<K>, name: &str, what: &str, limit: Duration)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    eventually(what, limit, || async {
        api.get_opt(name).await.unwrap().is_none().then_some(())
    })
    .await
}

/// A consumer group's `consumers.*` entry.
pub fn rollout(workload: &str) -> Value {
    json!({"confirmation": "Rollout", "workloads": [{"kind": "Deployment", "name": workload}]})
}

pub fn report() -> Value {
    json!({"confirmation": "Report"})
}

/// An ApiKeyRotation with Secrets `<name>-verifier` / `<name>-key`, a short
/// grace, and no scheduled rotation within a test's lifetime.
pub fn rotation(ns: &str, name: &str, verifiers: Value, presenters: Value) -> Value {
    json!({
        "apiVersion": "keyrotor.dev/v1alpha1", "kind": "ApiKeyRotation",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "secrets": {"verifier": format!("{name}-verifier"), "presenter": format!("{name}-key")},
            "schedule": {"interval": "720h"},
            "gracePeriod": {"minimum": "2s", "maximum": "1h"},
            "consumers": {"verifiers": verifiers, "presenters": presenters},
        }
    })
}

pub async fn apply(client: &Client, ns: &str, obj: &Value) {
    let api: Api<ApiKeyRotation> = Api::namespaced(client.clone(), ns);
    let name = obj["metadata"]["name"].as_str().unwrap();
    api.patch(name, &PatchParams::apply("e2e").force(), &Patch::Apply(obj))
        .await
        .unwrap();
}

/// Asks for a rotation the way Git would: a new `spec.rotationRequest`.
pub async fn request_rotation(client: &Client, ns: &str, name: &str, request: &str) {
    let api: Api<ApiKeyRotation> = Api::namespaced(client.clone(), ns);
    let patch = json!({"spec": {"rotationRequest": request}});
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
}

/// A Deployment on kwok nodes whose pods mount `secret` through a projected
/// volume (what makes them consumers).
pub fn deployment(ns: &str, name: &str, replicas: i32, secret: &str) -> Deployment {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": pod_spec(secret, None),
            }
        }
    }))
    .unwrap()
}

/// A pod spec for a kwok node (nothing runs: kwok only plays the kubelet).
pub fn pod_spec(secret: &str, service_account: Option<&str>) -> Value {
    let mut spec = json!({
        "nodeSelector": {"type": "kwok"},
        "containers": [{
            "name": "app", "image": "keyrotor.dev/e2e-app:none",
            "volumeMounts": [{"name": "key", "mountPath": "/keys", "readOnly": true}],
        }],
        "volumes": [{"name": "key", "projected": {"sources": [{"secret": {"name": secret}}]}}],
    });
    if let Some(sa) = service_account {
        spec["serviceAccountName"] = json!(sa);
    }
    spec
}

pub async fn create_deployment(client: &Client, d: &Deployment) {
    let ns = d.namespace().unwrap();
    let api: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    api.create(&Default::default(), d).await.unwrap();
}

/// Deployments `server` (verifiers) and `client` (presenters) of `replicas`
/// kwok pods each, and rotation `api` over them in Rollout mode, published
/// (Stable at version 1).
pub async fn rollout_rotation(client: &Client, ns: &str, replicas: i32) {
    create_deployment(client, &deployment(ns, "server", replicas, "api-verifier")).await;
    create_deployment(client, &deployment(ns, "client", replicas, "api-key")).await;
    let r = rotation(ns, "api", rollout("server"), rollout("client"));
    apply(client, ns, &r).await;
    wait_stable(client, ns, "api", 1, Duration::from_secs(120)).await;
}

/// The notes of the events of `reason` about rotation `name`.
pub async fn event_notes(client: &Client, ns: &str, name: &str, reason: &str) -> Vec<String> {
    let api: Api<Event> = Api::namespaced(client.clone(), ns);
    let lp = ListParams::default().fields(&format!(
        "reason={reason},involvedObject.kind=ApiKeyRotation,involvedObject.name={name}"
    ));
    api.list(&lp)
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|e| e.message.unwrap_or_default())
        .collect()
}

pub async fn get(client: &Client, ns: &str, name: &str) -> ApiKeyRotation {
    Api::<ApiKeyRotation>::namespaced(client.clone(), ns)
        .get(name)
        .await
        .unwrap()
}

/// Waits until the rotation is Stable at `version` for its latest spec.
pub async fn wait_stable(client: &Client, ns: &str, name: &str, version: u64, limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        let r = get(client, ns, name).await;
        let stable = r.status.as_ref().is_some_and(|s| {
            s.stage == Some(Stage::Stable)
                && s.current_version == Some(version)
                && s.observed_generation == r.metadata.generation
        });
        if stable {
            return;
        }
        // Status says what the rotation waits for (and holds no key, I4).
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?}: {ns}/{name} Stable at version {version}; generation {:?}, last status: {}",
            r.metadata.generation,
            serde_json::to_string(&r.status).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Checks I1, I5 and zero rejections over the recorded history of
/// rotation `name` (Secrets `<name>-verifier` / `<name>-key`).
pub fn check_history(observer: &Observer, name: &str) {
    let changes = observer
        .check(
            name,
            &format!("{name}-verifier"),
            &format!("{name}-key"),
            &[],
        )
        .unwrap_or_else(|e| panic!("invariant broken: {e}"));
    assert!(changes > 0, "the observer recorded nothing");
}

/// I4: no key any Secret held appears in the given process logs (name,
/// text), the events of the namespace, or any ApiKeyRotation.
pub fn assert_no_key_material(
    cluster: &Cluster,
    ns: &str,
    observer: &Observer,
    logs: &[(String, String)],
) {
    let keys = observer.keys();
    assert!(!keys.is_empty(), "no key was recorded; nothing to scan for");
    let mut places = vec![
        (
            "events".to_string(),
            cluster.ok(&["get", "events", "-n", ns, "-o", "yaml"]),
        ),
        (
            "apikeyrotations".to_string(),
            cluster.ok(&["get", "apikeyrotations", "-n", ns, "-o", "yaml"]),
        ),
    ];
    places.extend(logs.iter().map(|(n, t)| (format!("log of {n}"), t.clone())));
    for (place, text) in &places {
        for key in &keys {
            assert!(!text.contains(key.as_str()), "key material in {place}");
        }
    }
}

/// Writes the operator's ServiceAccount made in namespace `ns` since the
/// audit log was `from` bytes long (reads are not logged).
pub fn operator_writes(cluster: &Cluster, ns: &str, from: u64) -> Vec<String> {
    let user = format!("system:serviceaccount:{OPERATOR_NS}:{OPERATOR_SA}");
    writes_by(cluster, &user, ns, from)
}

/// Writes `user` made in namespace `ns` since the audit log was `from`
/// bytes long, as `verb resource/name` (`…/name/status` for a status write).
pub fn writes_by(cluster: &Cluster, user: &str, ns: &str, from: u64) -> Vec<String> {
    let path = cluster.dir.join("audit.log");
    let text = std::fs::read(&path).unwrap_or_default();
    String::from_utf8_lossy(&text[(from as usize).min(text.len())..])
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["user"]["username"] == user)
        .filter(|e| e["objectRef"]["namespace"] == ns)
        .map(|e| {
            let sub = e["objectRef"]["subresource"].as_str();
            format!(
                "{} {}/{}{}",
                e["verb"].as_str().unwrap_or("?"),
                e["objectRef"]["resource"].as_str().unwrap_or("?"),
                e["objectRef"]["name"].as_str().unwrap_or("?"),
                sub.map(|s| format!("/{s}")).unwrap_or_default()
            )
        })
        .collect()
}

/// The audit log's current length: where a count starts.
pub fn audit_mark(cluster: &Cluster) -> u64 {
    std::fs::metadata(cluster.dir.join("audit.log"))
        .map(|m| m.len())
        .unwrap_or(0)
}
