//! Under Argo CD: the Secrets keyrotor writes for an ApiKeyRotation that
//! Argo CD tracks carry none of Argo CD's tracking labels or annotations, so
//! Argo CD never mistakes them for objects from Git (and never prunes them);
//! they belong to the rotation through their owner reference alone.

use keyrotor_testsupport::harness::{Harness, NS};
use kube::ResourceExt;
use kube::api::{ListParams, Patch, PatchParams};
use serde_json::json;

use crate::scenario::{P, V};

/// What Argo CD puts on the objects it syncs: the label-based tracking label,
/// the annotation-based tracking id, and sync options and waves.
const ARGO_LABELS: [(&str, &str); 2] = [
    ("app.kubernetes.io/instance", "payments"),
    ("argocd.argoproj.io/instance", "payments"),
];
const ARGO_ANNOTATIONS: [(&str, &str); 3] = [
    (
        "argocd.argoproj.io/tracking-id",
        "payments:keyrotor.dev/ApiKeyRotation:default/api",
    ),
    ("argocd.argoproj.io/sync-options", "Prune=false"),
    ("argocd.argoproj.io/sync-wave", "1"),
];

#[tokio::test]
async fn secrets_of_a_rotation_argo_cd_tracks_carry_no_argo_cd_metadata() {
    let h = Harness::new().await;
    h.add_pod("server-0", &[V], &[("app", "server")]).await;
    h.add_pod("client-0", &[P], &[("app", "client")]).await;
    let labels: serde_json::Map<_, _> = ARGO_LABELS
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    let annotations: serde_json::Map<_, _> = ARGO_ANNOTATIONS
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    let obj = json!({
        "apiVersion": "keyrotor.dev/v1alpha1", "kind": "ApiKeyRotation",
        "metadata": {"name": "api", "namespace": NS, "labels": labels, "annotations": annotations},
        "spec": {"secrets": {"verifier": V, "presenter": P},
                 "gracePeriod": {"minimum": "1s", "maximum": "60s"}},
    });
    h.rotations()
        .patch(
            "api",
            &PatchParams::apply("argocd-controller").force(),
            &Patch::Apply(&obj),
        )
        .await
        .unwrap();
    h.wait_published(V, P, &[1], 1, 10).await;
    // A second version too, so version Secrets written mid-cycle are covered.
    let mut again = obj.clone();
    again["spec"]["rotationRequest"] = json!("git-1");
    h.rotations()
        .patch(
            "api",
            &PatchParams::apply("argocd-controller").force(),
            &Patch::Apply(&again),
        )
        .await
        .unwrap();
    h.wait_published(V, P, &[2], 2, 15).await;

    let secrets = h
        .secrets()
        .list(&ListParams::default())
        .await
        .unwrap()
        .items;
    let written: Vec<_> = secrets
        .iter()
        .filter(|s| s.labels().contains_key(keyrotor::wire::ROTATION_LABEL))
        .collect();
    assert!(
        written.len() >= 3,
        "verifier, presenter and version Secrets"
    );
    for s in written {
        let name = s.name_any();
        for (key, _) in ARGO_LABELS {
            assert!(!s.labels().contains_key(key), "{name} has label {key}");
        }
        for (key, _) in ARGO_ANNOTATIONS {
            assert!(
                !s.annotations().contains_key(key),
                "{name} has annotation {key}"
            );
        }
        let argo = |k: &String| k.contains("argoproj.io");
        assert!(!s.labels().keys().any(argo), "{name}: {:?}", s.labels());
        assert!(
            !s.annotations().keys().any(argo),
            "{name}: {:?}",
            s.annotations()
        );
        let owners = s.owner_references();
        assert_eq!(owners.len(), 1, "{name} is owned by the rotation alone");
        assert_eq!(owners[0].kind, "ApiKeyRotation");
        assert_eq!(owners[0].controller, Some(true));
    }
}
