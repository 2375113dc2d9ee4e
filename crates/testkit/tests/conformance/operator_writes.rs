//! The exact writes keyrotor's controller makes, each checked against the apiserver rule
//! it relies on: SSA of immutable Secrets, SSA of a custom resource's status, merge and
//! apply patches on Pods, finalizer-guarded deletion, and garbage collection vs. orphans.

use crate::support::*;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Pod, Secret};
use keyrotor_testkit::FakeApi;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, WatchParams};
use kube::{CustomResource, CustomResourceExt, Resource, ResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::time::Duration;

#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, JsonSchema, PartialEq)]
#[kube(
    group = "test.keyrotor.dev",
    version = "v1",
    kind = "Rotor",
    namespaced,
    status = "RotorStatus"
)]
pub struct RotorSpec {
    key: String,
}

#[derive(Deserialize, Serialize, Clone, Debug, JsonSchema, Default, PartialEq)]
pub struct RotorStatus {
    phase: String,
}

/// The same kind without a status subresource (status is then part of the "spec").
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, JsonSchema, PartialEq)]
#[kube(
    group = "test.keyrotor.dev",
    version = "v1",
    kind = "Plain",
    namespaced
)]
pub struct PlainSpec {
    key: String,
}

fn api() -> FakeApi {
    let api = FakeApi::new();
    api.register_crd(&Rotor::crd());
    api.register_crd(&Plain::crd());
    api
}

fn generation<K: Resource>(k: &K) -> i64 {
    k.meta().generation.expect("generation is set")
}

fn rotor_secret(owner: &Rotor, key: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {
            "name": "r-key",
            "labels": {"app.kubernetes.io/managed-by": "keyrotor"},
            "annotations": {"test.keyrotor.dev/fingerprint": "abc"},
            "ownerReferences": [owner.controller_owner_ref(&()).unwrap()],
        },
        "data": {"key": key},
        "immutable": true,
    })
}

/// Rules (SSA): an apply of an immutable Secret with data, labels, annotations and
/// ownerReferences by manager `keyrotor` with force creates it, records `keyrotor` as the
/// Apply manager; re-applying identical content keeps the resourceVersion and sends no
/// watch event; a different `data` is 422 (immutable), even forced.
#[tokio::test]
async fn ssa_immutable_secret_and_identical_reapply() {
    bounded(async {
        let api = api();
        let rotors: Api<Rotor> = Api::default_namespaced(api.client());
        let secrets: Api<Secret> = Api::default_namespaced(api.client());
        let r = rotors
            .create(
                &PostParams::default(),
                &Rotor::new("r", RotorSpec { key: "k".into() }),
            )
            .await
            .unwrap();
        let pp = PatchParams::apply("keyrotor").force();
        let body = rotor_secret(&r, "czE="); // "s1"
        let s = secrets
            .patch("r-key", &pp, &Patch::Apply(&body))
            .await
            .unwrap();
        assert_eq!(s.immutable, Some(true));
        assert_eq!(s.data.as_ref().unwrap()["key"].0, b"s1");
        assert_eq!(s.owner_references()[0].uid, r.uid().unwrap());
        let mf = s.managed_fields();
        assert_eq!(mf.len(), 1);
        assert_eq!(
            (mf[0].manager.as_deref(), mf[0].operation.as_deref()),
            (Some("keyrotor"), Some("Apply"))
        );
        let rv = s.resource_version().unwrap();
        let mut w = secrets
            .watch(&WatchParams::default(), &rv)
            .await
            .unwrap()
            .boxed();
        // Wait past a second boundary so a timestamp refresh would show up as a change.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let again = secrets
            .patch("r-key", &pp, &Patch::Apply(&body))
            .await
            .unwrap();
        assert_eq!(again.resource_version().unwrap(), rv);
        assert_eq!(again.managed_fields(), s.managed_fields());
        no_event(&mut w, Duration::from_millis(300)).await;
        let changed = rotor_secret(&r, "czI=");
        let e = secrets
            .patch("r-key", &pp, &Patch::Apply(&changed))
            .await
            .unwrap_err();
        assert_eq!(code(e), 422);
        assert_eq!(api.faults().writes_by_manager("keyrotor").len(), 3);
    })
    .await;
}

/// Rules (status subresource + SSA): `patch_status` with `Patch::Apply` sets status only —
/// spec in the body is ignored, generation does not move — and needs apiVersion/kind
/// (400 without); a second manager applying a different status value conflicts (409)
/// unless forced.
#[tokio::test]
async fn ssa_status_of_custom_resource() {
    bounded(async {
        let api = api();
        let rotors: Api<Rotor> = Api::default_namespaced(api.client());
        rotors
            .create(
                &PostParams::default(),
                &Rotor::new("r", RotorSpec { key: "k".into() }),
            )
            .await
            .unwrap();
        let pp = PatchParams::apply("keyrotor").force();
        let body = json!({
            "apiVersion": "test.keyrotor.dev/v1", "kind": "Rotor",
            "spec": {"key": "ignored"},
            "status": {"phase": "Ready"},
        });
        let r = rotors
            .patch_status("r", &pp, &Patch::Apply(&body))
            .await
            .unwrap();
        assert_eq!(r.status.as_ref().unwrap().phase, "Ready");
        assert_eq!(r.spec.key, "k");
        assert_eq!(generation(&r), 1);
        let status_mgr = r
            .managed_fields()
            .iter()
            .find(|m| m.manager.as_deref() == Some("keyrotor"))
            .unwrap();
        assert_eq!(status_mgr.subresource.as_deref(), Some("status"));
        let no_kind = json!({"status": {"phase": "Other"}});
        let e = rotors
            .patch_status("r", &pp, &Patch::Apply(&no_kind))
            .await
            .unwrap_err();
        assert_eq!(code(e), 400);
        let other = json!({
            "apiVersion": "test.keyrotor.dev/v1", "kind": "Rotor",
            "status": {"phase": "Failed"},
        });
        let e = rotors
            .patch_status("r", &PatchParams::apply("other"), &Patch::Apply(&other))
            .await
            .unwrap_err();
        assert_eq!(code(e), 409);
        let forced = rotors
            .patch_status(
                "r",
                &PatchParams::apply("other").force(),
                &Patch::Apply(&other),
            )
            .await
            .unwrap();
        assert_eq!(forced.status.unwrap().phase, "Failed");
    })
    .await;
}

/// Rule (metadata.generation): custom resources get generation 1, +1 on spec changes only
/// (not on metadata or, with a status subresource, status); without a status subresource
/// status is ordinary content and bumps it too.
#[tokio::test]
async fn generation_of_custom_resources() {
    bounded(async {
        let api = api();
        let rotors: Api<Rotor> = Api::default_namespaced(api.client());
        let merge = |v: Value| Patch::Merge(v);
        let pp = PatchParams::default();
        let r = rotors
            .create(
                &PostParams::default(),
                &Rotor::new("r", RotorSpec { key: "k".into() }),
            )
            .await
            .unwrap();
        assert_eq!(generation(&r), 1);
        let r = rotors
            .patch(
                "r",
                &pp,
                &merge(json!({"metadata": {"labels": {"a": "b"}}})),
            )
            .await
            .unwrap();
        assert_eq!(generation(&r), 1, "metadata changes keep the generation");
        let r = rotors
            .patch_status("r", &pp, &merge(json!({"status": {"phase": "x"}})))
            .await
            .unwrap();
        assert_eq!(generation(&r), 1, "status changes keep the generation");
        let r = rotors
            .patch("r", &pp, &merge(json!({"spec": {"key": "k2"}})))
            .await
            .unwrap();
        assert_eq!(generation(&r), 2);

        let plains: Api<Plain> = Api::default_namespaced(api.client());
        let p = plains
            .create(
                &PostParams::default(),
                &Plain::new("p", PlainSpec { key: "k".into() }),
            )
            .await
            .unwrap();
        assert_eq!(generation(&p), 1, "every custom resource tracks generation");
        let p = plains
            .patch("p", &pp, &merge(json!({"status": {"any": 1}})))
            .await
            .unwrap();
        assert_eq!(generation(&p), 2, "without /status, status is content");
    })
    .await;
}

/// Rules: a JSON merge patch on Pod annotations adds/removes only the keys it names
/// (null deletes) and an identical one is a no-op; an SSA of annotations by another
/// manager coexists with them, and dropping a key from a later apply removes just that key.
#[tokio::test]
async fn pod_annotation_merge_patch_and_apply() {
    bounded(async {
        let api = api();
        let pods: Api<Pod> = Api::default_namespaced(api.client());
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p", "annotations": {"keep": "1"}},
            "spec": {"containers": [{"name": "c", "image": "i"}]},
        }))
        .unwrap();
        pods.create(&PostParams::default(), &pod).await.unwrap();
        let nudge = Patch::Merge(json!({"metadata": {"annotations": {"keyrotor/nudge": "7"}}}));
        let p = pods
            .patch("p", &PatchParams::default(), &nudge)
            .await
            .unwrap();
        assert_eq!(p.annotations()["keep"], "1");
        assert_eq!(p.annotations()["keyrotor/nudge"], "7");
        let same = pods
            .patch("p", &PatchParams::default(), &nudge)
            .await
            .unwrap();
        assert_eq!(same.resource_version(), p.resource_version());

        let pp = PatchParams::apply("keyrotor").force();
        let apply = |v: Value| {
            Patch::Apply(json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "p", "annotations": v},
            }))
        };
        let p = pods
            .patch(
                "p",
                &pp,
                &apply(json!({"keyrotor/report": "ok", "keyrotor/seen": "1"})),
            )
            .await
            .unwrap();
        assert_eq!(p.annotations().len(), 4);
        let p = pods
            .patch("p", &pp, &apply(json!({"keyrotor/report": "ok"})))
            .await
            .unwrap();
        assert!(!p.annotations().contains_key("keyrotor/seen"));
        assert_eq!(p.annotations()["keyrotor/nudge"], "7");
        assert_eq!(p.spec.unwrap().containers[0].image.as_deref(), Some("i"));
        let p = pods
            .patch(
                "p",
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"annotations": {"keyrotor/nudge": null}}})),
            )
            .await
            .unwrap();
        assert!(!p.annotations().contains_key("keyrotor/nudge"));
        assert_eq!(p.annotations()["keyrotor/report"], "ok");
    })
    .await;
}

/// Rules (finalizers + garbage collector): deleting a custom resource with a finalizer
/// only sets deletionTimestamp (and bumps generation); it stays until the finalizer is
/// removed — by JSON patch or by merge patch — then it is gone, and the GC deletes the
/// Secrets it owns, but not one whose ownerReference was removed before (orphaned).
#[tokio::test]
async fn finalizer_deletion_then_gc_of_owned_secrets() {
    bounded(async {
        for json_patch in [true, false] {
            let api = api();
            let rotors: Api<Rotor> = Api::default_namespaced(api.client());
            let secrets: Api<Secret> = Api::default_namespaced(api.client());
            let mut rotor = Rotor::new("r", RotorSpec { key: "k".into() });
            rotor.meta_mut().finalizers = Some(vec!["keyrotor.dev/cleanup".into()]);
            let r = rotors.create(&PostParams::default(), &rotor).await.unwrap();
            let pp = PatchParams::apply("keyrotor").force();
            for name in ["owned", "orphan"] {
                let mut s = rotor_secret(&r, "czE=");
                s["metadata"]["name"] = json!(name);
                secrets.patch(name, &pp, &Patch::Apply(&s)).await.unwrap();
            }
            // The orphan loses its ownerReference (as keyrotor does before handing it over).
            secrets
                .patch(
                    "orphan",
                    &PatchParams::default(),
                    &Patch::Merge(json!({"metadata": {"ownerReferences": null}})),
                )
                .await
                .unwrap();

            rotors.delete("r", &DeleteParams::default()).await.unwrap();
            let deleting = rotors.get("r").await.unwrap();
            assert!(deleting.meta().deletion_timestamp.is_some());
            assert_eq!(generation(&deleting), 2, "deletion bumps the generation");
            assert!(secrets.get("owned").await.is_ok(), "owner still exists");

            if json_patch {
                let ops = json!([
                    {"op": "test", "path": "/metadata/resourceVersion",
                     "value": deleting.resource_version().unwrap()},
                    {"op": "remove", "path": "/metadata/finalizers/0"},
                ]);
                let patch = Patch::Json::<()>(serde_json::from_value(ops).unwrap());
                rotors
                    .patch("r", &PatchParams::default(), &patch)
                    .await
                    .unwrap();
            } else {
                let patch = Patch::Merge(json!({"metadata": {"finalizers": null}}));
                rotors
                    .patch("r", &PatchParams::default(), &patch)
                    .await
                    .unwrap();
            }
            assert_eq!(code(rotors.get("r").await.unwrap_err()), 404);
            assert_eq!(code(secrets.get("owned").await.unwrap_err()), 404);
            assert!(secrets.get("orphan").await.is_ok(), "orphans survive");
        }
    })
    .await;
}

/// Rule (garbage collector): a dependent written after its owner is gone (a controller
/// racing the owner's deletion) is collected too; one whose owner exists is kept.
#[tokio::test]
async fn dependent_of_a_deleted_owner_is_collected() {
    bounded(async {
        let api = api();
        let rotors: Api<Rotor> = Api::default_namespaced(api.client());
        let secrets: Api<Secret> = Api::default_namespaced(api.client());
        let r = rotors
            .create(
                &PostParams::default(),
                &Rotor::new("r", RotorSpec { key: "k".into() }),
            )
            .await
            .unwrap();
        let pp = PatchParams::apply("keyrotor").force();
        secrets
            .patch("r-key", &pp, &Patch::Apply(rotor_secret(&r, "czE=")))
            .await
            .unwrap();
        assert!(secrets.get("r-key").await.is_ok(), "owner exists: kept");
        rotors.delete("r", &DeleteParams::default()).await.unwrap();
        assert_eq!(code(secrets.get("r-key").await.unwrap_err()), 404);
        // The stale controller re-applies the Secret for the deleted owner.
        secrets
            .patch("r-key", &pp, &Patch::Apply(rotor_secret(&r, "czE=")))
            .await
            .unwrap();
        assert_eq!(code(secrets.get("r-key").await.unwrap_err()), 404);
    })
    .await;
}

/// Rule (storage): an object to be created must not carry a resourceVersion — re-creating
/// a cached copy (e.g. after it was deleted) is a 500 from the apiserver, via POST or SSA.
#[tokio::test]
async fn create_with_resource_version_is_rejected() {
    bounded(async {
        let api = api();
        let secrets: Api<Secret> = Api::default_namespaced(api.client());
        let s: Secret = serde_json::from_value(json!({"metadata": {"name": "s"}})).unwrap();
        let cached = secrets.create(&PostParams::default(), &s).await.unwrap();
        secrets.delete("s", &DeleteParams::default()).await.unwrap();
        let e = secrets
            .create(&PostParams::default(), &cached)
            .await
            .unwrap_err();
        assert_eq!(code(e), 500);
        let mut body = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}});
        body["metadata"]["resourceVersion"] = json!(cached.resource_version().unwrap());
        let pp = PatchParams::apply("keyrotor");
        let e = secrets
            .patch("s", &pp, &Patch::Apply(&body))
            .await
            .unwrap_err();
        assert_eq!(code(e), 500);
        let mut fresh = cached.clone();
        fresh.metadata.resource_version = None;
        secrets
            .create(&PostParams::default(), &fresh)
            .await
            .unwrap();
    })
    .await;
}
