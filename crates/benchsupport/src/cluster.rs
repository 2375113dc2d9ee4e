//! The benchmark's cluster: the in-memory API served over HTTP on 127.0.0.1,
//! filled directly through its store (setup is not what is measured), and a
//! simulated kubelet + reporter sidecar that confirms every projected Secret
//! change on the pods that mount it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, CustomResourceExt, ResourceExt};
use serde_json::{Value, json};

use keyrotor::api::ApiKeyRotation;
use keyrotor::wire as k;
use keyrotor_testkit::{FakeApi, HttpServer, PatchKind, ResourceType, WriteOpts};

use keyrotor_testsupport::kubelet;

/// Field manager of the benchmark's own writes (setup, rotation requests).
pub const BENCH_MANAGER: &str = "bench";
/// Field manager of the simulated kubelets' reports.
pub const KUBELET_MANAGER: &str = "kubelet-sim";

/// Shape of the cluster: `rotations` ApiKeyRotations, each consumed by
/// `pods_per_rotation` pods (half verifiers, half presenters), in namespaces of
/// `per_namespace` rotations.
#[derive(Clone, Copy, Debug)]
pub struct Shape {
    pub rotations: usize,
    pub pods_per_rotation: usize,
    pub per_namespace: usize,
}

impl Shape {
    pub fn namespace(&self, i: usize) -> String {
        format!("bench-{:04}", i / self.per_namespace.max(1))
    }

    pub fn name(i: usize) -> String {
        format!("r{i:05}")
    }

    fn verifiers(&self) -> usize {
        (self.pods_per_rotation / 2).max(1)
    }

    fn presenters(&self) -> usize {
        self.pods_per_rotation
            .saturating_sub(self.verifiers())
            .max(1)
    }

    pub fn pods(&self) -> usize {
        self.rotations * (self.verifiers() + self.presenters())
    }
}

/// Pods mounting each projected Secret: (namespace, Secret) → pod names.
type Mounts = HashMap<(String, String), Vec<String>>;

/// Each rotation's settled version (see [`Cluster::settled`]), as last seen.
pub(super) type Settled = Arc<Mutex<HashMap<(String, String), Option<u64>>>>;

pub struct Cluster {
    pub api: Arc<FakeApi>,
    pub server: HttpServer,
    pub kubeconfig: PathBuf,
    settled: Settled,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

fn ty(api: &FakeApi, group: &str, version: &str, plural: &str) -> ResourceType {
    api.store()
        .find_type(group, version, plural)
        .unwrap_or_else(|| panic!("the in-memory API serves {group}/{version}/{plural}"))
}

fn opts(manager: &str, subresource: &str) -> WriteOpts {
    WriteOpts {
        manager: manager.into(),
        subresource: subresource.into(),
        force: true,
    }
}

/// The spec every benchmark rotation gets: Report mode for both groups
/// (pods are found through their volumes), no schedule, a one-second grace.
fn rotation(shape: &Shape, i: usize) -> Value {
    let name = Shape::name(i);
    json!({
        "apiVersion": k::API_VERSION, "kind": "ApiKeyRotation",
        "metadata": {"name": name, "namespace": shape.namespace(i)},
        "spec": {
            "secrets": {"verifier": format!("{name}-verifier"), "presenter": format!("{name}-key")},
            "gracePeriod": {"minimum": "1s", "maximum": "1h"},
        },
    })
}

fn pod(ns: &str, name: &str, secret: &str, app: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": {"app": app}},
        "spec": {
            "containers": [{"name": "app", "image": "registry.example/app:1.0",
                            "volumeMounts": [{"name": "key", "mountPath": "/etc/api-key", "readOnly": true}]}],
            "volumes": [{"name": "key", "secret": {"secretName": secret}}],
        },
    })
}

impl Cluster {
    /// Builds the cluster and starts the simulated kubelets; the operator is not running yet.
    pub async fn start(shape: Shape, dir: &Path) -> std::io::Result<Cluster> {
        // Watch replay only needs to cover a reconnect; the default history is plenty.
        let api = Arc::new(FakeApi::new());
        api.register_crd(&ApiKeyRotation::crd());
        let (pods, rotations) = (
            ty(&api, "", "v1", "pods"),
            ty(&api, "keyrotor.dev", "v1alpha1", "apikeyrotations"),
        );
        let store = api.store();
        let mut mounts: Mounts = HashMap::new();
        for i in 0..shape.rotations {
            let ns = shape.namespace(i);
            if i % shape.per_namespace.max(1) == 0 {
                store.ensure_namespace(&ns);
            }
            let name = Shape::name(i);
            let groups = [
                ("server", format!("{name}-verifier"), shape.verifiers()),
                ("client", format!("{name}-key"), shape.presenters()),
            ];
            for (app, secret, count) in groups {
                for j in 0..count {
                    let pod_name = format!("{name}-{app}-{j}");
                    store
                        .create(
                            &pods,
                            Some(&ns),
                            pod(&ns, &pod_name, &secret, app),
                            &opts(BENCH_MANAGER, ""),
                        )
                        .map_err(std::io::Error::other)?;
                    store
                        .patch(
                            &pods,
                            Some(&ns),
                            &pod_name,
                            PatchKind::Merge,
                            br#"{"status":{"phase":"Running"}}"#,
                            &opts(KUBELET_MANAGER, "status"),
                        )
                        .map_err(std::io::Error::other)?;
                    mounts
                        .entry((ns.clone(), secret.clone()))
                        .or_default()
                        .push(pod_name);
                }
            }
            store
                .create(
                    &rotations,
                    Some(&ns),
                    rotation(&shape, i),
                    &opts(BENCH_MANAGER, ""),
                )
                .map_err(std::io::Error::other)?;
        }
        let server = api.listen().await?;
        let kubeconfig = dir.join("kubeconfig");
        server.write_kubeconfig(&kubeconfig, "default")?;
        let settled = Settled::default();
        let tasks = vec![
            tokio::spawn(kubelet(api.clone(), mounts)),
            tokio::spawn(watch_settled(api.client(), settled.clone())),
        ];
        Ok(Cluster {
            api,
            server,
            kubeconfig,
            settled,
            tasks,
        })
    }

    /// Asks every rotation for a new version (the `kubectl keyrotor rotate` path).
    pub fn request_rotation(&self, shape: &Shape, token: &str) -> std::io::Result<()> {
        let rotations = ty(&self.api, "keyrotor.dev", "v1alpha1", "apikeyrotations");
        let body =
            serde_json::to_vec(&json!({"metadata": {"annotations": {k::ROTATE_REQUEST: token}}}))
                .map_err(std::io::Error::other)?;
        for i in 0..shape.rotations {
            self.api
                .store()
                .patch(
                    &rotations,
                    Some(&shape.namespace(i)),
                    &Shape::name(i),
                    PatchKind::Merge,
                    &body,
                    &opts(BENCH_MANAGER, ""),
                )
                .map_err(std::io::Error::other)?;
        }
        Ok(())
    }

    /// How many rotations are Stable on `version` with only that version accepted
    /// and Ready, as `kubectl get akr` shows them. Kept up to date from a watch:
    /// scanning 10,000 rotations under the API's lock four times a second held
    /// it ~30 ms each time and showed up in the operator's reconcile tail.
    pub fn settled(&self, version: u64) -> usize {
        let settled = self.settled.lock().expect("settled tally");
        settled.values().filter(|v| **v == Some(version)).count()
    }

    /// Write requests made by keyrotor so far. Setup and the simulated
    /// kubelets write through the store directly, so every logged write came
    /// from the operator over HTTP: Secret deletes and events, which carry no
    /// field manager, are counted too.
    pub fn keyrotor_writes(&self) -> Vec<keyrotor_testkit::WriteRecord> {
        self.api.faults().write_log()
    }
}

/// Follows every rotation's status: the version it is settled on, if any.
pub(super) async fn watch_settled(client: kube::Client, settled: Settled) {
    let rotations: Api<ApiKeyRotation> = Api::all(client);
    let stream = watcher(rotations, watcher::Config::default())
        .default_backoff()
        .applied_objects();
    let mut stream = std::pin::pin!(stream);
    while let Some(Ok(rot)) = stream.next().await {
        let version = rot.status.as_ref().and_then(|s| {
            let ready = s
                .conditions
                .iter()
                .any(|c| c.type_ == keyrotor::conditions::types::READY && c.status == "True");
            (s.stage == Some(keyrotor::rotation::Stage::Stable)
                && s.accepted_versions.len() == 1
                && ready)
                .then_some(s.current_version)
                .flatten()
        });
        let key = (rot.namespace().unwrap_or_default(), rot.name_any());
        settled.lock().expect("settled tally").insert(key, version);
    }
}

/// Simulated kubelets and reporter sidecars at scale: when a projected Secret
/// changes, every pod mounting it loads it at once and reports
/// ([`kubelet::reports`]) straight into the store, as the reporter sidecar
/// does after a nudge. A watch, not [`kubelet::poll`]: polling 10,000 pods
/// would load the API more than the operator does.
async fn kubelet(api: Arc<FakeApi>, mounts: Mounts) {
    let pods = ty(&api, "", "v1", "pods");
    let secrets: Api<Secret> = Api::all(api.client());
    let reported: Mutex<HashMap<(String, String, String), String>> = Mutex::new(HashMap::new());
    let stream = watcher(
        secrets,
        watcher::Config::default().labels(k::ROTATION_LABEL),
    )
    .default_backoff()
    .applied_objects();
    let mut stream = std::pin::pin!(stream);
    while let Some(event) = stream.next().await {
        let Ok(secret) = event else { continue };
        let ns = secret.namespace().unwrap_or_default();
        let Some(pod_names) = mounts.get(&(ns.clone(), secret.name_any())) else {
            continue;
        };
        let Some(reports) = kubelet::reports(&secret) else {
            continue;
        };
        for pod in pod_names {
            let mut annotations = serde_json::Map::new();
            for (key, revision) in &reports {
                let mut seen = reported.lock().unwrap_or_else(|e| e.into_inner());
                let id = (ns.clone(), pod.clone(), key.clone());
                if seen.get(&id) != Some(revision) {
                    seen.insert(id, revision.clone());
                    annotations.insert(key.clone(), Value::String(revision.clone()));
                }
            }
            if annotations.is_empty() {
                continue;
            }
            let body = json!({"metadata": {"annotations": annotations}});
            let _ = api.store().patch(
                &pods,
                Some(&ns),
                pod,
                PatchKind::Merge,
                body.to_string().as_bytes(),
                &opts(KUBELET_MANAGER, ""),
            );
        }
    }
}
