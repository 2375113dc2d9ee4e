//! The operator: a kube-runtime `Controller` over ApiKeyRotations that owns
//! their Secrets and watches the consumer pods and workloads they name.
//!
//! observe (I/O) → plan (pure, `crate::rotation`) → apply (I/O) → status (I/O).

mod apply;
mod context;
mod error;
mod freshness;
pub mod observe;
pub mod pods;
mod reconcile;
pub mod render;
mod repair;

use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{Controller, WatchStreamExt, reflector, watcher};
use kube::{Api, Client, ResourceExt};
use tracing::{debug, info};

pub use context::Context;
pub use error::Error;
pub use reconcile::{FINALIZER, error_policy, reconcile};

use crate::api::{ApiKeyRotation, keys as k};
use crate::rotation::WorkloadKind;

/// Where the controller looks.
#[derive(Clone, Debug, Default)]
pub struct Config {
    /// Watch only this namespace (all namespaces when `None`).
    pub namespace: Option<String>,
    /// This replica's name, for events.
    pub instance: Option<String>,
    /// Reconciles allowed at once (0: unbounded).
    pub concurrency: u16,
}

fn api<K>(client: &Client, ns: &Option<String>) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
{
    match ns {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// Runs the controller until the stream ends (shutdown signal).
pub async fn run(client: Client, config: Config) {
    let ns = &config.namespace;
    let (pod_store, pod_writer) = reflector::store::<Pod>();
    let pods = watcher(
        api::<Pod>(&client, ns),
        watcher::Config::default().any_semantic(),
    )
    .modify(pods::strip)
    .default_backoff()
    .reflect(pod_writer)
    .touched_objects();
    let ctx = Arc::new(Context::new(
        client.clone(),
        pod_store,
        config.instance.clone(),
    ));
    let controller = Controller::new(
        api::<ApiKeyRotation>(&client, ns),
        watcher::Config::default().any_semantic(),
    )
    .with_config(kube::runtime::controller::Config::default().concurrency(config.concurrency));
    let rotations = controller.store();
    let (r1, r2, r3, r4) = (
        rotations.clone(),
        rotations.clone(),
        rotations.clone(),
        rotations,
    );
    controller
        .owns(
            api::<Secret>(&client, ns),
            watcher::Config::default()
                .labels(k::ROTATION_LABEL)
                .any_semantic(),
        )
        .watches_stream(pods, move |pod: Pod| by_pod(&r1, &pod))
        .watches_stream(
            watcher(
                api::<PartialObjectMeta<Deployment>>(&client, ns),
                watcher::Config::default().any_semantic(),
            )
            .default_backoff()
            .touched_objects(),
            move |m| by_workload(&r2, WorkloadKind::Deployment, &m.name_any(), m.namespace()),
        )
        .watches_stream(
            watcher(
                api::<PartialObjectMeta<StatefulSet>>(&client, ns),
                watcher::Config::default().any_semantic(),
            )
            .default_backoff()
            .touched_objects(),
            move |m| by_workload(&r3, WorkloadKind::StatefulSet, &m.name_any(), m.namespace()),
        )
        .watches_stream(
            watcher(
                api::<PartialObjectMeta<DaemonSet>>(&client, ns),
                watcher::Config::default().any_semantic(),
            )
            .default_backoff()
            .touched_objects(),
            move |m| by_workload(&r4, WorkloadKind::DaemonSet, &m.name_any(), m.namespace()),
        )
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx)
        .for_each(|res| async move {
            match res {
                Ok((obj, _)) => debug!(rotation = %obj, "reconciled"),
                Err(e) => debug!(error = %e, "reconcile error"),
            }
        })
        .await;
    info!("controller stopped");
}

/// The rotations a pod consumes: it references one of their projected
/// Secrets, or a group's selector matches it.
fn by_pod(store: &Store<ApiKeyRotation>, pod: &Pod) -> Vec<ObjectRef<ApiKeyRotation>> {
    let refs = pod.spec.as_ref().map(pods::secret_refs).unwrap_or_default();
    store
        .state()
        .iter()
        .filter(|r| r.namespace() == pod.namespace())
        .filter(|r| {
            let s = &r.spec;
            refs.contains(&s.secrets.verifier)
                || refs.contains(&s.secrets.presenter)
                || [&s.consumers.verifiers, &s.consumers.presenters]
                    .iter()
                    .any(|g| {
                        g.selector
                            .as_ref()
                            .is_some_and(|sel| pods::selector_matches(sel, pod.labels()))
                    })
        })
        .map(|r| ObjectRef::from_obj(r.as_ref()))
        .collect()
}

/// The rotations that restart a workload in Rollout mode.
fn by_workload(
    store: &Store<ApiKeyRotation>,
    kind: WorkloadKind,
    name: &str,
    ns: Option<String>,
) -> Vec<ObjectRef<ApiKeyRotation>> {
    store
        .state()
        .iter()
        .filter(|r| r.namespace() == ns)
        .filter(|r| {
            [&r.spec.consumers.verifiers, &r.spec.consumers.presenters]
                .iter()
                .any(|g| g.workloads.iter().any(|w| w.kind == kind && w.name == name))
        })
        .map(|r| ObjectRef::from_obj(r.as_ref()))
        .collect()
}
