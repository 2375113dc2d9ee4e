//! Scenario 6: deleting an ApiKeyRotation. The finalizer cleans up per the
//! deletion policy and then lets go: Delete removes every Secret keyrotor
//! made; Orphan keeps the projected Secrets (consumers keep working) without
//! keyrotor's owner reference or labels, and removes the version Secrets.

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use keyrotor::api::ApiKeyRotation;
use keyrotor::wire as k;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams};

use super::cluster;
use super::observer::Observer;
use super::operator::{Operator, logs_of};
use super::scenario::*;

#[tokio::test]
async fn deletion_cleans_up_per_policy_and_never_sticks() {
    let Some(cluster) = cluster::get().await else {
        return;
    };
    let ns = cluster.namespace("e2e-deletion").await;
    let client = cluster.client().await;
    let observer = Observer::start(client.clone(), &ns.name).await;
    let mut operator = Operator::watching(cluster, &ns.name, "deletion");
    let delay = || serde_json::json!({"confirmation": "Delay", "propagationDelay": "1s"});
    for (name, policy) in [("gone", "Delete"), ("kept", "Orphan")] {
        let mut r = rotation(&ns.name, name, delay(), delay());
        r["spec"]["deletionPolicy"] = policy.into();
        apply(&client, &ns.name, &r).await;
    }
    for name in ["gone", "kept"] {
        wait_stable(&client, &ns.name, name, 1, Duration::from_secs(60)).await;
    }
    let rotations: Api<ApiKeyRotation> = Api::namespaced(client.clone(), &ns.name);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns.name);
    let kept_key = secrets.get("kept-key").await.unwrap().data.unwrap()["key"].clone();
    for name in ["gone", "kept"] {
        let r = rotations.get(name).await.unwrap();
        assert!(r.finalizers().iter().any(|f| f == "keyrotor.dev/cleanup"));
        rotations
            .delete(name, &DeleteParams::default())
            .await
            .unwrap();
    }
    for name in ["gone", "kept"] {
        let what = format!("{name} to be deleted (finalizer released)");
        wait_gone(&rotations, name, &what, Duration::from_secs(60)).await;
    }

    let names = |list: Vec<Secret>| -> Vec<String> { list.iter().map(|s| s.name_any()).collect() };
    let all = names(secrets.list(&ListParams::default()).await.unwrap().items);
    for s in ["gone-verifier", "gone-key", "gone-v1", "kept-v1"] {
        assert!(!all.contains(&s.to_string()), "{s} left behind: {all:?}");
    }
    // Orphaned: still there, same key, nothing of keyrotor's left on it.
    let kept = secrets.get("kept-key").await.unwrap();
    assert_eq!(
        kept.data.as_ref().unwrap()["key"],
        kept_key,
        "the orphaned key changed"
    );
    assert!(kept.owner_references().is_empty(), "still owned");
    assert!(!kept.labels().contains_key(k::ROTATION_LABEL));
    assert!(secrets.get_opt("kept-verifier").await.unwrap().is_some());
    // Garbage collection will not take them later either: wait past a GC pass.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(secrets.get_opt("kept-key").await.unwrap().is_some());

    assert_no_key_material(cluster, &ns.name, &observer, &logs_of(&[&operator]));
    operator.terminate();
    observer.stop();
}
