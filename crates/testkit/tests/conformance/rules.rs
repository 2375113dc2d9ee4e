//! Conformance of the in-memory Kubernetes API: one test per apiserver rule the operator
//! relies on. Each test names the rule it mirrors and fails if the fake stops honouring it.

use crate::support::*;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use keyrotor_testkit::FakeApi;
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, Preconditions, WatchEvent,
    WatchParams,
};
use kube::{Resource, ResourceExt};
use serde_json::json;
use std::time::Duration;

/// Rule: create returns the stored object with uid, creationTimestamp and resourceVersion;
/// get and list return it; stringData is folded into base64 data; type defaults to Opaque.
#[tokio::test]
async fn create_get_list_roundtrip() {
    bounded(async {
        let api = FakeApi::new();
        let secrets: Api<Secret> = Api::namespaced(api.client(), "default");
        let created =
            within(secrets.create(&PostParams::default(), &secret("s1", json!({"k": "hello"}))))
                .await
                .unwrap();
        assert!(created.metadata.uid.is_some() && created.metadata.creation_timestamp.is_some());
        assert_eq!(created.type_.as_deref(), Some("Opaque"));
        assert_eq!(created.data.as_ref().unwrap()["k"].0, b"hello");
        let got = secrets.get("s1").await.unwrap();
        assert_eq!(got, created);
        let list = secrets.list(&ListParams::default()).await.unwrap();
        assert_eq!(list.items.len(), 1);
        assert!(
            rv(&created)
                <= list
                    .metadata
                    .resource_version
                    .unwrap()
                    .parse::<u64>()
                    .unwrap()
        );
    })
    .await;
}

/// Rule: `metadata.generateName` makes the server pick a unique name with that prefix.
#[tokio::test]
async fn generate_name_picks_unique_names() {
    bounded(async {
        let api = FakeApi::new();
        let cms: Api<ConfigMap> = Api::default_namespaced(api.client());
        let mut cm = ConfigMap::default();
        cm.metadata.generate_name = Some("gen-".into());
        let a = cms.create(&PostParams::default(), &cm).await.unwrap();
        let b = cms.create(&PostParams::default(), &cm).await.unwrap();
        assert!(a.name_any().starts_with("gen-") && a.name_any().len() == 9);
        assert_ne!(a.name_any(), b.name_any());
    })
    .await;
}

/// Rule: errors are `Status` objects: 404 NotFound, 409 AlreadyExists, 404 for a missing namespace.
#[tokio::test]
async fn errors_are_status_objects() {
    bounded(async {
        let api = FakeApi::new();
        let secrets: Api<Secret> = Api::namespaced(api.client(), "default");
        assert_eq!(
            err(secrets.get("nope").await.unwrap_err()),
            (404, "NotFound".into())
        );
        secrets
            .create(&PostParams::default(), &secret("dup", json!({})))
            .await
            .unwrap();
        assert_eq!(
            err(secrets
                .create(&PostParams::default(), &secret("dup", json!({})))
                .await
                .unwrap_err()),
            (409, "AlreadyExists".into())
        );
        let elsewhere: Api<Secret> = Api::namespaced(api.client(), "missing-ns");
        assert_eq!(
            err(elsewhere
                .create(&PostParams::default(), &secret("x", json!({})))
                .await
                .unwrap_err())
            .0,
            404
        );
    })
    .await;
}

/// Rule: one global, monotonic resourceVersion across all types; an update carrying a stale
/// resourceVersion is 409 Conflict (optimistic concurrency).
#[tokio::test]
async fn stale_resource_version_is_conflict_and_versions_are_global() {
    bounded(async {
        let api = FakeApi::new();
        let client = api.client();
        let secrets: Api<Secret> = Api::default_namespaced(client.clone());
        let cms: Api<ConfigMap> = Api::default_namespaced(client);
        let s = secrets
            .create(&PostParams::default(), &secret("s", json!({"a": "1"})))
            .await
            .unwrap();
        let c = cms
            .create(
                &PostParams::default(),
                &ConfigMap {
                    metadata: kube::api::ObjectMeta {
                        name: Some("c".into()),
                        ..Default::default()
                    },
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(rv(&c), rv(&s) + 1, "versions are one global counter");
        let mut first = s.clone();
        first
            .data
            .as_mut()
            .unwrap()
            .insert("a".into(), k8s_openapi::ByteString(b"2".to_vec()));
        let updated = secrets
            .replace("s", &PostParams::default(), &first)
            .await
            .unwrap();
        assert!(rv(&updated) > rv(&c));
        let mut stale = s.clone();
        stale
            .data
            .as_mut()
            .unwrap()
            .insert("a".into(), k8s_openapi::ByteString(b"3".to_vec()));
        assert_eq!(
            err(secrets
                .replace("s", &PostParams::default(), &stale)
                .await
                .unwrap_err()),
            (409, "Conflict".into())
        );
    })
    .await;
}

/// Rule: a write that changes nothing is a no-op: same resourceVersion, no watch event.
/// (Without this a status write re-triggers its own reconcile forever.)
#[tokio::test]
async fn noop_update_keeps_resource_version_and_sends_no_event() {
    bounded(async {
        let api = FakeApi::new();
        let secrets: Api<Secret> = Api::default_namespaced(api.client());
        let s = secrets
            .create(&PostParams::default(), &secret("s", json!({"a": "1"})))
            .await
            .unwrap();
        let mut w = secrets
            .watch(&WatchParams::default(), &s.resource_version().unwrap())
            .await
            .unwrap()
            .boxed();
        let same = secrets
            .replace("s", &PostParams::default(), &s)
            .await
            .unwrap();
        assert_eq!(same.resource_version(), s.resource_version());
        let patched = secrets
            .patch(
                "s",
                &PatchParams::default(),
                &Patch::Merge(json!({"data": {"a": "MQ=="}})),
            )
            .await
            .unwrap();
        assert_eq!(patched.resource_version(), s.resource_version());
        no_event(&mut w, Duration::from_millis(300)).await;
    })
    .await;
}

/// Rule (server-side apply): re-applying an identical configuration is a no-op — the
/// same resourceVersion and no watch event.
#[tokio::test]
async fn ssa_identical_reapply_is_noop() {
    bounded(async {
        let api = api_with_widgets();
        let widgets: Api<Widget> = Api::default_namespaced(api.client());
        let pp = PatchParams::apply("keyrotor");
        let cfg = json!({"apiVersion": "test.keyrotor.dev/v1", "kind": "Widget", "metadata": {"name": "w", "labels": {"a": "b"}}, "spec": {"size": 1}});
        let first = widgets.patch("w", &pp, &Patch::Apply(&cfg)).await.unwrap();
        let mut w = widgets
            .watch(&WatchParams::default(), &first.resource_version().unwrap())
            .await
            .unwrap()
            .boxed();
        let second = widgets.patch("w", &pp, &Patch::Apply(&cfg)).await.unwrap();
        assert_eq!(second.resource_version(), first.resource_version());
        no_event(&mut w, Duration::from_millis(300)).await;
        // ...and status applies too.
        let spp = PatchParams::apply("keyrotor");
        let st =
            json!({"apiVersion": "test.keyrotor.dev/v1", "kind": "Widget", "status": {"observed": 1}});
        let a = widgets
            .patch_status("w", &spp, &Patch::Apply(&st))
            .await
            .unwrap();
        let b = widgets
            .patch_status("w", &spp, &Patch::Apply(&st))
            .await
            .unwrap();
        assert_eq!(a.resource_version(), b.resource_version());
        assert!(matches!(next_event(&mut w).await, WatchEvent::Modified(_)));
        no_event(&mut w, Duration::from_millis(300)).await;
    })
    .await;
}

/// Rule (SSA): fields a manager stops applying are removed, unless another manager owns them.
#[tokio::test]
async fn ssa_removes_fields_no_longer_applied() {
    bounded(async {
        let api = FakeApi::new();
        let cms: Api<ConfigMap> = Api::default_namespaced(api.client());
        let apply = |mgr: &str, data: serde_json::Value| {
            let cms = cms.clone();
            let pp = PatchParams::apply(mgr);
            async move {
                cms.patch("c", &pp, &Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": data})))
                    .await
                    .unwrap()
            }
        };
        apply("one", json!({"a": "1", "b": "2"})).await;
        apply("two", json!({"b": "2"})).await; // shared ownership of b
        let c = apply("one", json!({"a": "1"})).await; // one drops b: two still owns it
        assert_eq!(
            c.data.as_ref().unwrap().get("b").map(String::as_str),
            Some("2")
        );
        let c = apply("one", json!({"x": "9"})).await; // one drops a: nobody else owns it
        let data = c.data.unwrap();
        assert!(!data.contains_key("a"));
        assert_eq!(data.get("x").map(String::as_str), Some("9"));
        let managers: Vec<String> = c
            .metadata
            .managed_fields
            .unwrap()
            .into_iter()
            .filter_map(|m| m.manager)
            .collect();
        assert!(managers.contains(&"one".to_string()) && managers.contains(&"two".to_string()));
    })
    .await;
}

/// Rule (SSA): applying a different value for a field another manager owns is 409
/// Conflict; `force=true` takes the field over.
#[tokio::test]
async fn ssa_conflicts_unless_forced() {
    bounded(async {
        let api = FakeApi::new();
        let cms: Api<ConfigMap> = Api::default_namespaced(api.client());
        let cfg = |v: &str| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": v}});
        cms.patch("c", &PatchParams::apply("one"), &Patch::Apply(cfg("1")))
            .await
            .unwrap();
        let e = cms
            .patch("c", &PatchParams::apply("two"), &Patch::Apply(cfg("2")))
            .await
            .unwrap_err();
        assert_eq!(err(e), (409, "Conflict".into()));
        // A non-apply update also takes ownership, so the original applier now conflicts.
        cms.patch(
            "c",
            &PatchParams::apply("two").force(),
            &Patch::Apply(cfg("2")),
        )
        .await
        .unwrap();
        assert_eq!(cms.get("c").await.unwrap().data.unwrap()["k"], "2");
        let e = cms
            .patch("c", &PatchParams::apply("one"), &Patch::Apply(cfg("1")))
            .await
            .unwrap_err();
        assert_eq!(err(e).0, 409);
        cms.patch(
            "c",
            &PatchParams {
                field_manager: Some("editor".into()),
                ..Default::default()
            },
            &Patch::Merge(json!({"data": {"k": "3"}})),
        )
        .await
        .unwrap();
        let e = cms
            .patch("c", &PatchParams::apply("two"), &Patch::Apply(cfg("2")))
            .await
            .unwrap_err();
        assert_eq!(
            err(e).0,
            409,
            "the editor's update took the field from the applier"
        );
    })
    .await;
}

/// Rule: JSON merge patch (RFC 7386, null deletes), JSON patch (RFC 6902, failing test op
/// is 422) and strategic merge patch (containers merge by name, maps merge).
#[tokio::test]
async fn merge_json_and_strategic_patches() {
    bounded(async {
        let api = FakeApi::new();
        let deps: Api<Deployment> = Api::default_namespaced(api.client());
        let d: Deployment = serde_json::from_value(json!({
            "metadata": {"name": "d", "labels": {"a": "1", "b": "2"}},
            "spec": {"selector": {"matchLabels": {"app": "d"}}, "template": {"metadata": {"labels": {"app": "d"}},
                "spec": {"containers": [{"name": "app", "image": "app:1"}, {"name": "side", "image": "side:1"}]}}}
        })).unwrap();
        deps.create(&PostParams::default(), &d).await.unwrap();
        let pp = PatchParams::default();
        let d = deps
            .patch(
                "d",
                &pp,
                &Patch::Merge(json!({"metadata": {"labels": {"a": null, "c": "3"}}})),
            )
            .await
            .unwrap();
        assert_eq!(
            d.labels().keys().cloned().collect::<Vec<_>>(),
            vec!["b", "c"]
        );
        let jp: json_patch::Patch = serde_json::from_value(
            json!([{"op": "replace", "path": "/metadata/labels/b", "value": "x"}]),
        )
        .unwrap();
        let d = deps.patch("d", &pp, &Patch::<()>::Json(jp)).await.unwrap();
        assert_eq!(d.labels()["b"], "x");
        let bad: json_patch::Patch = serde_json::from_value(
            json!([{"op": "test", "path": "/metadata/labels/b", "value": "nope"}]),
        )
        .unwrap();
        assert_eq!(
            err(deps
                .patch("d", &pp, &Patch::<()>::Json(bad))
                .await
                .unwrap_err())
            .0,
            422
        );
        let d = deps
            .patch(
                "d",
                &pp,
                &Patch::Strategic(
                    json!({"spec": {"template": {"metadata": {"annotations": {"restartedAt": "now"}},
                "spec": {"containers": [{"name": "side", "image": "side:2"}]}}}}),
                ),
            )
            .await
            .unwrap();
        let tpl = d.spec.unwrap().template;
        let containers = tpl.spec.unwrap().containers;
        assert_eq!(
            containers.len(),
            2,
            "strategic merge keeps the other container"
        );
        assert_eq!(containers[1].image.as_deref(), Some("side:2"));
        assert_eq!(
            tpl.metadata.unwrap().annotations.unwrap()["restartedAt"],
            "now"
        );
    })
    .await;
}

/// Rule (status subresource): writes to the main resource ignore status, writes to
/// /status ignore everything else, and `metadata.generation` bumps only on spec changes.
#[tokio::test]
async fn status_subresource_and_generation() {
    bounded(async {
        let api = api_with_widgets();
        let widgets: Api<Widget> = Api::default_namespaced(api.client());
        let mut w = Widget::new("w", WidgetSpec { size: 1 });
        w.status = Some(WidgetStatus { observed: 42 });
        let w = widgets.create(&PostParams::default(), &w).await.unwrap();
        assert_eq!(w.status, None, "status is dropped on create");
        assert_eq!(w.metadata.generation, Some(1));
        let w = widgets
            .patch_status(
                "w",
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"size": 5}, "status": {"observed": 1}})),
            )
            .await
            .unwrap();
        assert_eq!(
            (w.spec.size, w.status.clone().unwrap().observed),
            (1, 1),
            "/status ignores spec"
        );
        assert_eq!(
            w.metadata.generation,
            Some(1),
            "status writes do not bump generation"
        );
        let w = widgets
            .patch(
                "w",
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"size": 2}, "status": {"observed": 9}})),
            )
            .await
            .unwrap();
        assert_eq!(
            (w.spec.size, w.status.clone().unwrap().observed),
            (2, 1),
            "main resource ignores status"
        );
        assert_eq!(w.metadata.generation, Some(2));
        let w = widgets
            .patch(
                "w",
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"labels": {"x": "y"}}})),
            )
            .await
            .unwrap();
        assert_eq!(
            w.metadata.generation,
            Some(2),
            "metadata changes do not bump generation"
        );
    })
    .await;
}

/// Rule: Secrets with `immutable: true` reject data changes with 422 Invalid.
#[tokio::test]
async fn immutable_secret_rejects_data_changes() {
    bounded(async {
        let api = FakeApi::new();
        let secrets: Api<Secret> = Api::default_namespaced(api.client());
        let mut s = secret("imm", json!({"k": "v"}));
        s.immutable = Some(true);
        secrets.create(&PostParams::default(), &s).await.unwrap();
        let e = secrets
            .patch(
                "imm",
                &PatchParams::default(),
                &Patch::Merge(json!({"data": {"k": "eA=="}})),
            )
            .await
            .unwrap_err();
        assert_eq!(err(e), (422, "Invalid".into()));
        let e = secrets
            .patch(
                "imm",
                &PatchParams::default(),
                &Patch::Merge(json!({"immutable": false})),
            )
            .await
            .unwrap_err();
        assert_eq!(err(e).0, 422);
        // Metadata may still change.
        secrets
            .patch(
                "imm",
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"labels": {"a": "b"}}})),
            )
            .await
            .unwrap();
        // A Secret's type is immutable for every Secret.
        let e = secrets
            .patch(
                "imm",
                &PatchParams::default(),
                &Patch::Merge(json!({"type": "kubernetes.io/tls"})),
            )
            .await
            .unwrap_err();
        assert_eq!(err(e), (422, "Invalid".into()));
    })
    .await;
}

/// Rule: delete of an object with finalizers only sets deletionTimestamp; removing the
/// last finalizer removes the object; no new finalizers may be added while deleting.
#[tokio::test]
async fn finalizers_and_deletion_timestamp() {
    bounded(async {
        let api = FakeApi::new();
        let cms: Api<ConfigMap> = Api::default_namespaced(api.client());
        let mut cm = ConfigMap::default();
        cm.metadata.name = Some("f".into());
        cm.metadata.finalizers = Some(vec!["keyrotor.dev/cleanup".into()]);
        cms.create(&PostParams::default(), &cm).await.unwrap();
        let mut w = cms
            .watch(&WatchParams::default(), "0")
            .await
            .unwrap()
            .boxed();
        assert!(matches!(next_event(&mut w).await, WatchEvent::Added(_)));
        let res = cms.delete("f", &DeleteParams::default()).await.unwrap();
        assert!(res.left().unwrap().metadata.deletion_timestamp.is_some());
        assert!(
            matches!(next_event(&mut w).await, WatchEvent::Modified(o) if o.metadata.deletion_timestamp.is_some())
        );
        let e = cms
            .patch(
                "f",
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"finalizers": ["keyrotor.dev/cleanup", "other"]}})),
            )
            .await
            .unwrap_err();
        assert_eq!(err(e).0, 422);
        cms.patch(
            "f",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": null}})),
        )
        .await
        .unwrap();
        assert!(matches!(next_event(&mut w).await, WatchEvent::Deleted(_)));
        assert_eq!(err(cms.get("f").await.unwrap_err()).0, 404);
    })
    .await;
}

/// Rule: delete preconditions (uid, resourceVersion) that do not match are 409 Conflict.
#[tokio::test]
async fn delete_preconditions() {
    bounded(async {
        let api = FakeApi::new();
        let secrets: Api<Secret> = Api::default_namespaced(api.client());
        secrets
            .create(&PostParams::default(), &secret("p", json!({})))
            .await
            .unwrap();
        let dp = DeleteParams {
            preconditions: Some(Preconditions {
                uid: Some("wrong".into()),
                resource_version: None,
            }),
            ..Default::default()
        };
        assert_eq!(err(secrets.delete("p", &dp).await.unwrap_err()).0, 409);
        assert!(
            secrets
                .delete("p", &DeleteParams::default())
                .await
                .unwrap()
                .is_right()
        );
    })
    .await;
}

/// Rule (garbage collector): when every owner in ownerReferences is gone, the dependent
/// is deleted in the background (dependents of dependents too); Orphan keeps them.
#[tokio::test]
async fn owner_reference_garbage_collection() {
    bounded(async {
        let api = api_with_widgets();
        let client = api.client();
        let widgets: Api<Widget> = Api::default_namespaced(client.clone());
        let secrets: Api<Secret> = Api::default_namespaced(client.clone());
        let cms: Api<ConfigMap> = Api::default_namespaced(client);
        let owner = widgets
            .create(
                &PostParams::default(),
                &Widget::new("owner", WidgetSpec { size: 1 }),
            )
            .await
            .unwrap();
        let mut s = secret("dep", json!({}));
        s.metadata.owner_references = Some(vec![owner.controller_owner_ref(&()).unwrap()]);
        let s = secrets.create(&PostParams::default(), &s).await.unwrap();
        let mut grandchild = ConfigMap::default();
        grandchild.metadata.name = Some("grandchild".into());
        grandchild.metadata.owner_references = Some(vec![OwnerReference {
            api_version: "v1".into(),
            kind: "Secret".into(),
            name: "dep".into(),
            uid: s.uid().unwrap(),
            ..Default::default()
        }]);
        cms.create(&PostParams::default(), &grandchild)
            .await
            .unwrap();
        let mut unrelated = secret("keep", json!({}));
        unrelated.metadata.owner_references = Some(vec![
            owner.controller_owner_ref(&()).unwrap(),
            OwnerReference {
                api_version: "v1".into(),
                kind: "ConfigMap".into(),
                name: "other".into(),
                uid: "still-alive".into(),
                ..Default::default()
            },
        ]);
        // The second owner does not exist either, so this one goes too...
        secrets
            .create(&PostParams::default(), &unrelated)
            .await
            .unwrap();
        widgets
            .delete("owner", &DeleteParams::default())
            .await
            .unwrap();
        assert_eq!(err(secrets.get("dep").await.unwrap_err()).0, 404);
        assert_eq!(err(cms.get("grandchild").await.unwrap_err()).0, 404);
        assert_eq!(err(secrets.get("keep").await.unwrap_err()).0, 404);
        // Orphan propagation removes the reference instead.
        let owner = widgets
            .create(
                &PostParams::default(),
                &Widget::new("owner2", WidgetSpec { size: 1 }),
            )
            .await
            .unwrap();
        let mut s = secret("orphan", json!({}));
        s.metadata.owner_references = Some(vec![owner.controller_owner_ref(&()).unwrap()]);
        secrets.create(&PostParams::default(), &s).await.unwrap();
        widgets
            .delete("owner2", &DeleteParams::orphan())
            .await
            .unwrap();
        let s = secrets.get("orphan").await.unwrap();
        assert!(s.owner_references().is_empty());
    })
    .await;
}
