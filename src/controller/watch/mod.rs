//! The watch wiring: one kube-runtime `Controller` per watched namespace (or
//! one for the cluster) over ApiKeyRotations, owning their Secrets, fed by
//! the consumer pods (through the slim [`PodCache`]) and the workloads they
//! name. Started afresh after each outage of the API (`outage`); `/readyz`
//! turns ready once every cache has synced (`readiness`).

mod outage;
mod readiness;

use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Namespace, Pod, Secret};
use kube::core::PartialObjectMeta;
use kube::runtime::controller::Config as ControllerConfig;
use kube::runtime::reflector::{self, ObjectRef, Store, reflector};
use kube::runtime::{Controller, WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tracing::{debug, info, warn};

use super::cache::{PodCache, RotationIndex};
use super::context::Context;
use super::memory::Memory;
use super::reach::Reach;
use super::steps::{error_policy, reconcile};
use crate::api::ApiKeyRotation;
use crate::ops::{Health, Metrics};
use crate::rotation::WorkloadKind;
use crate::wire as k;
use outage::ApiHealth;
use readiness::Readiness;

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
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
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
    let reach = Arc::new(Reach::new(config.namespaces.clone()));
    let _namespaces = AbortOnDrop(tokio::spawn(namespaces(client.clone(), reach.clone())));
    let readiness = Readiness::new(scopes.len(), health);
    let runs = scopes.into_iter().enumerate().map(|(index, namespace)| {
        let scope = Scope {
            index,
            namespace,
            readiness: readiness.clone(),
            api: api.clone(),
            reach: reach.clone(),
        };
        supervise(client.clone(), config.clone(), metrics.clone(), scope)
    });
    futures::future::join_all(runs).await;
}

/// One scope's controller, started afresh after each outage of the API.
async fn supervise(client: Client, config: Config, metrics: Arc<Metrics>, scope: Scope) {
    let mut outages = scope.api.outages();
    loop {
        scope.readiness.set_synced(scope.index, false);
        let run = run_scope(
            client.clone(),
            config.clone(),
            metrics.clone(),
            scope.clone(),
        );
        tokio::select! {
            () = run => return,
            _ = outages.changed() => debug!(namespace = ?scope.namespace, "controller restarted after an outage"),
        }
    }
}

/// One scope: its namespace (None: the cluster), its place in the
/// readiness count and the API's health.
#[derive(Clone)]
struct Scope {
    index: usize,
    namespace: Option<String>,
    readiness: Arc<Readiness>,
    api: Arc<ApiHealth>,
    reach: Arc<Reach>,
}

impl Scope {
    /// Tells readiness what one of this scope's watches yields.
    fn track<K>(&self, watch: &'static str) -> impl FnMut(&watcher::Result<K>) + use<K> {
        let (readiness, index) = (self.readiness.clone(), self.index);
        move |event| readiness.watch(index, watch, event)
    }

    /// A watch of `K` in this scope, tracked for readiness.
    fn watch<K>(
        &self,
        client: &Client,
        name: &'static str,
        config: watcher::Config,
    ) -> impl Stream<Item = watcher::Result<watcher::Event<K>>> + Send + use<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + DeserializeOwned
            + std::fmt::Debug
            + Send
            + 'static,
    {
        watcher(api::<K>(client, &self.namespace), config)
            .default_backoff()
            .inspect(self.track(name))
    }
}

async fn run_scope(client: Client, config: Config, metrics: Arc<Metrics>, scope: Scope) {
    let pod_cache = Arc::new(PodCache::default());
    let rotation_index = Arc::new(RotationIndex::default());
    let routed = scope.reach.scope(&scope.namespace, pod_cache.clone());
    let ctx = Arc::new(Context::new(
        client.clone(),
        pod_cache.clone(),
        scope.reach.clone(),
        Memory::new(!config.list_secrets),
        config.instance.clone(),
        metrics,
    ));
    let (rotations, rotation_writer) = reflector::store::<ApiKeyRotation>();
    let index = rotation_index.clone();
    let reach = scope.reach.clone();
    let rotation_events = reflector(
        rotation_writer,
        // Nothing reads managed fields, and every status write adds to them.
        scope
            .watch::<ApiKeyRotation>(&client, "ApiKeyRotation", watcher::Config::default())
            .modify(|r| r.metadata.managed_fields = None),
    )
    .inspect(move |event| {
        if let Ok(event) = event {
            index.apply(event);
            reach.on_rotation(event);
        }
    })
    .applied_objects();
    // Aborted with the scope (a restart after an outage starts its own).
    let _ready = AbortOnDrop(tokio::spawn(ready_when_synced(
        rotations.clone(),
        pod_cache.clone(),
        scope.clone(),
    )));
    let pods = pod_triggers(&client, &scope, pod_cache, rotation_index);
    let (reach, feeder) = (scope.reach.clone(), scope.namespace.clone());
    // Copies in other namespaces have no owner reference: their changes
    // wake their rotation through `reach`.
    let secrets = scope
        .watch::<Secret>(
            &client,
            "Secret",
            watcher::Config::default().labels(k::ROTATION_LABEL),
        )
        .inspect(move |event| {
            if let Ok(event) = event {
                reach.on_copy(reach.copies.apply(&feeder, event));
            }
        });
    let controller = Controller::for_stream(rotation_events, rotations.clone())
        .with_config(ControllerConfig::default().concurrency(config.concurrency))
        .owns_stream(secrets.touched_objects())
        .reconcile_on(futures::stream::select(pods, routed));
    let api_health = scope.api.clone();
    workloads(controller, &client, &scope, &rotations)
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

/// Pod events update the slim cache, then name the rotations to reconcile.
fn pod_triggers(
    client: &Client,
    scope: &Scope,
    cache: Arc<PodCache>,
    index: Arc<RotationIndex>,
) -> impl Stream<Item = ObjectRef<ApiKeyRotation>> + Send + use<> {
    let health = scope.api.clone();
    let reach = scope.reach.clone();
    scope
        .watch::<Pod>(client, "Pod", watcher::Config::default())
        .flat_map(move |event| {
            let refs = match event {
                Ok(event) => cache
                    .apply(&event)
                    .map(|(ns, pod)| {
                        reach.on_pod(&ns, &pod);
                        index.rotations_for(&ns, &pod)
                    })
                    .unwrap_or_default(),
                Err(e) => {
                    warn!(error = %e, "pod watch failed; retrying");
                    health.suspect();
                    Vec::new()
                }
            };
            futures::stream::iter(refs)
        })
}

/// The workloads Rollout mode restarts: their changes reconcile the
/// rotations that name them (metadata only: keyrotor reads their specs by
/// GET when it needs them).
fn workloads(
    controller: Controller<ApiKeyRotation>,
    client: &Client,
    scope: &Scope,
    rotations: &Store<ApiKeyRotation>,
) -> Controller<ApiKeyRotation> {
    let (d, s, ds) = (rotations.clone(), rotations.clone(), rotations.clone());
    let all = watcher::Config::default;
    controller
        .watches_stream(
            scope
                .watch::<PartialObjectMeta<Deployment>>(client, "Deployment", all())
                .touched_objects(),
            move |m| by_workload(&d, WorkloadKind::Deployment, &m.name_any(), m.namespace()),
        )
        .watches_stream(
            scope
                .watch::<PartialObjectMeta<StatefulSet>>(client, "StatefulSet", all())
                .touched_objects(),
            move |m| by_workload(&s, WorkloadKind::StatefulSet, &m.name_any(), m.namespace()),
        )
        .watches_stream(
            scope
                .watch::<PartialObjectMeta<DaemonSet>>(client, "DaemonSet", all())
                .touched_objects(),
            move |m| by_workload(&ds, WorkloadKind::DaemonSet, &m.name_any(), m.namespace()),
        )
}

/// Namespace metadata for consent and `namespaceSelector`, cluster-wide,
/// for every scope; a change wakes the rotations that reach other
/// namespaces. Retried with backoff for good (an RBAC without `list
/// namespaces` leaves only cross-namespace rotations waiting).
async fn namespaces(client: Client, reach: Arc<Reach>) {
    let api: Api<PartialObjectMeta<Namespace>> = Api::all(client);
    let events = watcher(api, watcher::Config::default()).default_backoff();
    events
        .for_each(|event| {
            match event {
                Ok(event) => {
                    reach.namespace_watch(None);
                    reach.namespaces.apply(&event);
                    // A relist wakes them once, at its end.
                    if !matches!(event, watcher::Event::Init | watcher::Event::InitApply(_)) {
                        reach.on_namespace();
                    }
                }
                Err(e) => {
                    warn!(error = %e, "namespace watch failed; retrying");
                    reach.namespace_watch(Some(e.to_string()));
                }
            }
            async {}
        })
        .await;
}

/// Marks the scope synced once the rotations and the pod cache are.
async fn ready_when_synced(rotations: Store<ApiKeyRotation>, pods: Arc<PodCache>, scope: Scope) {
    if synced(&rotations).await {
        while !pods.is_ready() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        scope.readiness.set_synced(scope.index, true);
    }
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
        let wait = tokio::time::timeout(Duration::from_millis(100), store.wait_until_ready());
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
        tokio::time::sleep(Duration::from_millis(20)).await;
        let theirs = tokio::spawn(async move { other.wait_until_ready().await.is_ok() });
        tokio::time::sleep(Duration::from_millis(20)).await;
        writer.apply_watcher_event(&watcher::Event::Init);
        writer.apply_watcher_event(&watcher::Event::InitDone);
        let seen = tokio::time::timeout(Duration::from_secs(2), mine).await;
        assert!(matches!(seen, Ok(Ok(true))), "readiness not seen: {seen:?}");
        theirs.abort();
    }
}
