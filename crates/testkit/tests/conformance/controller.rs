//! The kube-runtime machinery the operator's controller is built from, against the fake:
//! a `Controller` that `.owns()` Secrets and `.watches()` Pods, writing with server-side
//! apply (immutable Secrets, status through `/status`), then going quiet.

use crate::support::*;

use futures::FutureExt;
use futures::StreamExt;
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{Pod, Secret};
use keyrotor_testkit::FakeApi;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{CustomResource, CustomResourceExt, Resource, ResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// A rotation-like custom resource: the Secret it owns is named after its generation.
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
#[serde(rename_all = "camelCase")]
pub struct RotorStatus {
    observed_generation: i64,
    pods: usize,
}

const T: Duration = Duration::from_secs(15);
const POD_ANNOTATION: &str = "test.keyrotor.dev/rotor";

struct Ctx {
    client: kube::Client,
    reconciles: AtomicUsize,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Error(#[from] kube::Error);

async fn reconcile(r: Arc<Rotor>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    ctx.reconciles.fetch_add(1, Ordering::SeqCst);
    let ns = r.namespace().unwrap();
    let generation = r.meta().generation.unwrap();
    let name = format!("{}-g{generation}", r.name_any());
    let pp = PatchParams::apply("keyrotor").force();
    let secret = json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {
            "name": name,
            "labels": {"app.kubernetes.io/managed-by": "keyrotor"},
            "annotations": {"test.keyrotor.dev/generation": generation.to_string()},
            "ownerReferences": [r.controller_owner_ref(&()).unwrap()],
        },
        "data": {"key": b64(&r.spec.key)},
        "immutable": true,
    });
    Api::<Secret>::namespaced(ctx.client.clone(), &ns)
        .patch(&name, &pp, &Patch::Apply(secret))
        .await?;
    let pods = Api::<Pod>::namespaced(ctx.client.clone(), &ns)
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|p| p.annotations().get(POD_ANNOTATION) == Some(&r.name_any()))
        .count();
    let status = json!({
        "apiVersion": "test.keyrotor.dev/v1", "kind": "Rotor",
        "status": {"observedGeneration": generation, "pods": pods},
    });
    Api::<Rotor>::namespaced(ctx.client.clone(), &ns)
        .patch_status(&r.name_any(), &pp, &Patch::Apply(status))
        .await?;
    Ok(Action::await_change())
}

fn error_policy(_: Arc<Rotor>, _: &Error, _: Arc<Ctx>) -> Action {
    Action::requeue(Duration::from_millis(20))
}

fn b64(s: &str) -> String {
    use k8s_openapi::ByteString;
    serde_json::to_value(ByteString(s.as_bytes().to_vec()))
        .unwrap()
        .as_str()
        .unwrap()
        .to_string()
}

fn status(api: &FakeApi) -> Option<(i64, i64)> {
    let r = api
        .store()
        .peek("test.keyrotor.dev", "rotors", Some("default"), "r")?;
    Some((
        r.pointer("/status/observedGeneration")?.as_i64()?,
        r.pointer("/status/pods")?.as_i64()?,
    ))
}

/// The controller with full objects for its owned Secrets and watched Pods.
fn full_objects(ctx: Arc<Ctx>) -> BoxFuture<'static, ()> {
    let client = ctx.client.clone();
    Controller::new(
        Api::<Rotor>::all(client.clone()),
        watcher::Config::default(),
    )
    .owns(
        Api::<Secret>::all(client.clone()),
        watcher::Config::default(),
    )
    .watches(
        Api::<Pod>::all(client),
        watcher::Config::default(),
        |pod: Pod| {
            let rotor = pod.annotations().get(POD_ANNOTATION)?.clone();
            Some(ObjectRef::<Rotor>::new(&rotor).within(&pod.namespace()?))
        },
    )
    .run(reconcile, error_policy, ctx)
    .for_each(|_| async {})
    .boxed()
}

/// The same controller watching Secrets and Pods as metadata only (`PartialObjectMeta`).
fn metadata_only(ctx: Arc<Ctx>) -> BoxFuture<'static, ()> {
    let client = ctx.client.clone();
    Controller::new(
        Api::<Rotor>::all(client.clone()),
        watcher::Config::default(),
    )
    .owns(
        Api::<PartialObjectMeta<Secret>>::all(client.clone()),
        watcher::Config::default(),
    )
    .watches(
        Api::<PartialObjectMeta<Pod>>::all(client),
        watcher::Config::default(),
        |pod: PartialObjectMeta<Pod>| {
            let rotor = pod.annotations().get(POD_ANNOTATION)?.clone();
            Some(ObjectRef::<Rotor>::new(&rotor).within(&pod.namespace()?))
        },
    )
    .run(reconcile, error_policy, ctx)
    .for_each(|_| async {})
    .boxed()
}

/// The controller shape keyrotor uses (full objects) converges, reacts to owned Secrets
/// and watched Pods, and at steady state makes no effective writes and no reconciles.
#[tokio::test]
async fn controller_owns_secrets_and_watches_pods() {
    bounded(async {
        converges_and_reacts(full_objects).await;
    })
    .await;
}

/// Same, with `.owns()`/`.watches()` on `Api<PartialObjectMeta<_>>` (metadata-only lists
/// and watches).
#[tokio::test]
async fn controller_with_metadata_only_owns_and_watches() {
    bounded(async {
        converges_and_reacts(metadata_only).await;
    })
    .await;
}

async fn converges_and_reacts(controller: fn(Arc<Ctx>) -> BoxFuture<'static, ()>) {
    let api = FakeApi::new();
    api.register_crd(&Rotor::crd());
    let client = api.client();
    let ctx = Arc::new(Ctx {
        client: client.clone(),
        reconciles: AtomicUsize::new(0),
    });
    let controller = controller(ctx.clone());
    let task = tokio::spawn(controller);

    let rotors: Api<Rotor> = Api::default_namespaced(client.clone());
    let secrets: Api<Secret> = Api::default_namespaced(client.clone());
    rotors
        .create(
            &PostParams::default(),
            &Rotor::new("r", RotorSpec { key: "k1".into() }),
        )
        .await
        .unwrap();
    eventually("first reconcile", T, || async {
        status(&api) == Some((1, 0))
    })
    .await;
    let s = secrets.get("r-g1").await.unwrap();
    assert_eq!(s.immutable, Some(true));
    assert_eq!(s.data.as_ref().unwrap()["key"].0, b"k1");
    assert_eq!(s.owner_references()[0].name, "r");
    assert_eq!(s.labels()["app.kubernetes.io/managed-by"], "keyrotor");

    // .watches(): a Pod pointing at the rotor triggers a reconcile.
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "p", "annotations": {POD_ANNOTATION: "r"}},
        "spec": {"containers": [{"name": "c", "image": "i"}]},
    }))
    .unwrap();
    Api::<Pod>::default_namespaced(client.clone())
        .create(&PostParams::default(), &pod)
        .await
        .unwrap();
    eventually("pod seen", T, || async { status(&api) == Some((1, 1)) }).await;

    // .owns(): deleting the owned Secret triggers a reconcile that re-creates it.
    secrets
        .delete("r-g1", &DeleteParams::default())
        .await
        .unwrap();
    eventually("secret re-created", T, || async {
        api.store()
            .peek("", "secrets", Some("default"), "r-g1")
            .is_some()
    })
    .await;

    // A spec change bumps the generation: a new immutable Secret, status follows.
    rotors
        .patch(
            "r",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"key": "k2"}})),
        )
        .await
        .unwrap();
    eventually("generation 2", T, || async { status(&api) == Some((2, 1)) }).await;
    assert_eq!(
        secrets.get("r-g2").await.unwrap().data.unwrap()["key"].0,
        b"k2"
    );

    // Steady state: reconciles caused by its own no-op writes must not loop.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (reconciles, effective) = (
        ctx.reconciles.load(Ordering::SeqCst),
        api.faults().effective_writes().len(),
    );
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(ctx.reconciles.load(Ordering::SeqCst), reconciles);
    assert_eq!(api.faults().effective_writes().len(), effective);
    let mine = api.faults().writes_by_manager("keyrotor");
    assert!(mine.iter().all(|w| w.verb == "apply"), "{mine:?}");
    assert!(mine.iter().any(|w| w.subresource == "status"));
    assert_eq!(
        api.faults().write_counts_by_manager()["keyrotor"],
        mine.len() as u64
    );
    task.abort();
}
