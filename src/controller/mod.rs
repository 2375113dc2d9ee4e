//! The operator: a kube-runtime `Controller` over ApiKeyRotations that owns
//! their Secrets and watches the consumer pods and workloads they name.
//!
//! observe (I/O) → plan (pure, `crate::rotation`) → apply (I/O) → status (I/O).

mod apply;
mod context;
mod error;
mod events;
mod freshness;
pub mod hook;
pub mod index;
mod known_secrets;
mod nudges;
pub mod observe;
mod outage;
pub mod pods;
mod readiness;
mod reconcile;
pub mod render;
mod repair;
mod rollout;
pub mod stale_clients;
mod status;

use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{self, ObjectRef, Store, reflector};
use kube::runtime::{Controller, WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use tracing::{debug, info, warn};

pub use context::Context;
pub use error::{CATEGORIES as ERROR_CATEGORIES, Error};
use index::{PodCache, RotationIndex};
use known_secrets::KnownSecrets;
use outage::ApiHealth;
use readiness::Readiness;
pub use reconcile::{error_policy, reconcile};

use crate::api::ApiKeyRotation;
use crate::ops::{Health, Metrics};
use crate::rotation::WorkloadKind;
use crate::wire as k;

/// Where the controller looks.
#[derive(Clone, Debug, Default)]
pub struct Config {
    /// Watch only these namespaces (all namespaces when empty).
    pub namespaces: Vec<String>,
    /// This replica's name, for events.
    pub instance: Option<String>,
    /// Reconciles allowed at once (0: unbounded).
    pub concurrency: u16,
    /// Every observe LISTs the rotation's Secrets consistently.
    pub list_secrets: bool,
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

/// Runs the controller until a shutdown signal: one controller per watched
/// namespace, or one for the whole cluster. `health` turns ready once every
/// cache has synced, and again after each outage of the API (see `outage`).
pub async fn run(client: Client, config: Config, metrics: Arc<Metrics>, health: Arc<Health>) {
    let scopes: Vec<Option<String>> = if config.namespaces.is_empty() {
        vec![None]
    } else {
        config.namespaces.iter().cloned().map(Some).collect()
    };
    let api = ApiHealth::new(client.clone());
    tokio::spawn(api.clone().run(health.clone()));
    let readiness = Readiness::new(scopes.len(), health);
    let runs = scopes.into_iter().enumerate().map(|(i, ns)| {
        supervise(
            client.clone(),
            ns,
            config.clone(),
            metrics.clone(),
            Scope {
                index: i,
                readiness: readiness.clone(),
                api: api.clone(),
            },
        )
    });
    futures::future::join_all(runs).await;
}

/// One scope's controller, started afresh after each outage of the API.
async fn supervise(
    client: Client,
    namespace: Option<String>,
    config: Config,
    metrics: Arc<Metrics>,
    scope: Scope,
) {
    let mut outages = scope.api.outages();
    loop {
        scope.readiness.set_synced(scope.index, false);
        let run = run_scope(
            client.clone(),
            namespace.clone(),
            config.clone(),
            metrics.clone(),
            scope.clone(),
        );
        tokio::select! {
            () = run => return,
            _ = outages.changed() => debug!(namespace = ?namespace, "controller restarted after an outage"),
        }
    }
}

/// What a scope shares with the others: its place in the readiness count
/// and the API's health.
#[derive(Clone)]
struct Scope {
    index: usize,
    readiness: Arc<Readiness>,
    api: Arc<ApiHealth>,
}

impl Scope {
    /// Tells readiness what one of this scope's watches yields.
    fn track<K>(&self, watch: &'static str) -> impl FnMut(&watcher::Result<K>) + use<K> {
        let (readiness, index) = (self.readiness.clone(), self.index);
        move |event| readiness.watch(index, watch, event)
    }
}

async fn run_scope(
    client: Client,
    namespace: Option<String>,
    config: Config,
    metrics: Arc<Metrics>,
    scope: Scope,
) {
    let ns = &namespace;
    let pod_cache = Arc::new(PodCache::default());
    let rotation_index = Arc::new(RotationIndex::default());
    // Pod events update the slim cache, then name the rotations to reconcile.
    let pod_triggers = {
        let (cache, index, health) = (pod_cache.clone(), rotation_index.clone(), scope.api.clone());
        watcher(api::<Pod>(&client, ns), watcher::Config::default())
            .default_backoff()
            .inspect(scope.track("Pod"))
            .flat_map(move |event| {
                let refs = match event {
                    Ok(event) => cache
                        .apply(&event)
                        .map(|(ns, pod)| index.rotations_for(&ns, &pod))
                        .unwrap_or_default(),
                    Err(e) => {
                        warn!(error = %e, "pod watch failed; retrying");
                        health.suspect();
                        Vec::new()
                    }
                };
                futures::stream::iter(refs)
            })
    };
    let ctx = Arc::new(Context::new(
        client.clone(),
        pod_cache.clone(),
        KnownSecrets::new(!config.list_secrets),
        config.instance.clone(),
        metrics,
    ));
    let (rotations, rotation_writer) = reflector::store::<ApiKeyRotation>();
    let index = rotation_index.clone();
    let rotation_events = reflector(
        rotation_writer,
        watcher(
            api::<ApiKeyRotation>(&client, ns),
            watcher::Config::default(),
        )
        // Nothing reads them, and every status write adds to them.
        .modify(|r| r.metadata.managed_fields = None),
    )
    .default_backoff()
    .inspect(scope.track("ApiKeyRotation"))
    .inspect(move |event| {
        if let Ok(event) = event {
            index.apply(event);
        }
    })
    .applied_objects();
    let controller = Controller::for_stream(rotation_events, rotations.clone())
        .with_config(kube::runtime::controller::Config::default().concurrency(config.concurrency));
    let synced_rotations = rotations.clone();
    let ready = scope.clone();
    // Aborted with the scope (a restart after an outage starts its own).
    let _sync_task = AbortOnDrop(tokio::spawn(async move {
        if synced(&synced_rotations).await {
            while !pod_cache.is_ready() {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            ready.readiness.set_synced(ready.index, true);
        }
    }));
    let api_health = scope.api.clone();
    let (r2, r3, r4) = (rotations.clone(), rotations.clone(), rotations);
    controller
        .owns_stream(
            watcher(
                api::<Secret>(&client, ns),
                watcher::Config::default().labels(k::ROTATION_LABEL),
            )
            .default_backoff()
            .inspect(scope.track("Secret"))
            .touched_objects(),
        )
        .reconcile_on(pod_triggers)
        .watches_stream(
            watcher(
                api::<PartialObjectMeta<Deployment>>(&client, ns),
                watcher::Config::default(),
            )
            .default_backoff()
            .inspect(scope.track("Deployment"))
            .touched_objects(),
            move |m| by_workload(&r2, WorkloadKind::Deployment, &m.name_any(), m.namespace()),
        )
        .watches_stream(
            watcher(
                api::<PartialObjectMeta<StatefulSet>>(&client, ns),
                watcher::Config::default(),
            )
            .default_backoff()
            .inspect(scope.track("StatefulSet"))
            .touched_objects(),
            move |m| by_workload(&r3, WorkloadKind::StatefulSet, &m.name_any(), m.namespace()),
        )
        .watches_stream(
            watcher(
                api::<PartialObjectMeta<DaemonSet>>(&client, ns),
                watcher::Config::default(),
            )
            .default_backoff()
            .inspect(scope.track("DaemonSet"))
            .touched_objects(),
            move |m| by_workload(&r4, WorkloadKind::DaemonSet, &m.name_any(), m.namespace()),
        )
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx)
        .for_each(|res| {
            match res {
                Ok((obj, _)) => debug!(rotation = %obj, "reconciled"),
                Err(e) => {
                    debug!(error = %e, "reconcile error");
                    api_health.suspect();
                }
            }
            async {}
        })
        .await;
    info!("controller stopped");
}

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Whether a reflector store has synced (false if its writer went away).
///
/// kube's `Store::wait_until_ready` sits on one oneshot channel that keeps a
/// single waker: with the `Controller` waiting on the same store, only the
/// last waiter is woken and `/readyz` stayed 503 for good (found by the scale
/// benchmark). Looking again every 100 ms does not depend on that wakeup.
async fn synced<K>(store: &Store<K>) -> bool
where
    K: kube::runtime::reflector::Lookup + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    loop {
        let wait = tokio::time::timeout(
            std::time::Duration::from_millis(100),
            store.wait_until_ready(),
        );
        if let Ok(result) = wait.await {
            return result.is_ok();
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn readiness_is_seen_while_another_task_waits_on_the_same_store() {
        let (store, mut writer) = reflector::store::<Pod>();
        // Polled last before the store turns ready, like the Controller's own wait.
        let other = store.clone();
        let mine = tokio::spawn(async move { synced(&store).await });
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let theirs = tokio::spawn(async move { other.wait_until_ready().await.is_ok() });
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        writer.apply_watcher_event(&watcher::Event::Init);
        writer.apply_watcher_event(&watcher::Event::InitDone);
        let seen = tokio::time::timeout(std::time::Duration::from_secs(2), mine).await;
        assert!(matches!(seen, Ok(Ok(true))), "readiness not seen: {seen:?}");
        theirs.abort();
    }
}
