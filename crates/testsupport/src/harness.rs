//! A cluster for controller tests: the in-memory API, the real controller
//! running against it, simulated kubelets and reporter sidecars, and an
//! observer that records every Secret and Pod change to check the invariants
//! over the whole history.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, Secret};
use keyrotor::api::ApiKeyRotation;
use keyrotor::controller;
use keyrotor::wire as k;
use keyrotor_testkit::FakeApi;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use tokio::task::JoinHandle;

use crate::eventually::eventually_every;
use crate::{kubelet, observer};

pub const NS: &str = "default";

pub struct Harness {
    pub api: Arc<FakeApi>,
    pub client: Client,
    controller: Option<JoinHandle<()>>,
    kubelet: JoinHandle<()>,
    /// Pods whose kubelet never refreshes their volume (and so never report).
    pub stuck: Arc<Mutex<BTreeSet<String>>>,
    pub observer: observer::Observer,
    pub metrics: Arc<keyrotor::ops::Metrics>,
    /// The namespaces the controller watches (its `watchNamespaces`).
    watch: Vec<String>,
}

impl Harness {
    pub async fn new() -> Harness {
        Harness::watching(&[NS]).await
    }

    /// A harness whose controller watches `namespaces` (which it creates,
    /// but for `default`), each with its simulated kubelet.
    pub async fn watching(namespaces: &[&str]) -> Harness {
        Harness::start(namespaces, false).await
    }

    /// As [`Harness::watching`], with the controller watching the whole
    /// cluster (no `watchNamespaces`).
    pub async fn cluster_wide(namespaces: &[&str]) -> Harness {
        Harness::start(namespaces, true).await
    }

    async fn start(namespaces: &[&str], cluster_wide: bool) -> Harness {
        // `RUST_LOG=keyrotor=debug cargo test …` shows the controller's logs.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let api = Arc::new(FakeApi::new());
        api.register_crd(&<ApiKeyRotation as kube::CustomResourceExt>::crd());
        let client = api.client();
        let stuck = Arc::new(Mutex::new(BTreeSet::new()));
        let nss: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
        let mut kubelets = Vec::new();
        for ns in namespaces {
            if *ns != NS {
                let obj = serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap();
                nss.create(&PostParams::default(), &obj)
                    .await
                    .expect("namespace");
            }
            let (client, ns, stuck) = (client.clone(), ns.to_string(), stuck.clone());
            kubelets.push(async move { kubelet::poll(client, &ns, stuck).await });
        }
        let kubelet = tokio::spawn(async move {
            futures::future::join_all(kubelets).await;
        });
        // One history across every watched namespace: copies included.
        let observer = observer::Observer::start_in(client.clone(), namespaces).await;
        let metrics = Arc::new(keyrotor::ops::Metrics::new(controller::ERROR_CATEGORIES));
        let mut h = Harness {
            api,
            client,
            controller: None,
            kubelet,
            stuck,
            observer,
            metrics,
            watch: if cluster_wide {
                Vec::new()
            } else {
                namespaces.iter().map(|n| n.to_string()).collect()
            },
        };
        h.start_controller();
        h
    }

    /// Two verifier pods mounting `verifier`, two presenter pods mounting
    /// `presenter`, and rotation `api` applied with `spec` and published at version 1.
    pub async fn with_rotation(verifier: &str, presenter: &str, spec: &str) -> Harness {
        let h = Harness::new().await;
        for i in 0..2 {
            h.add_pod(&format!("server-{i}"), &[verifier], &[("app", "server")])
                .await;
            h.add_pod(&format!("client-{i}"), &[presenter], &[("app", "client")])
                .await;
        }
        h.apply("api", spec).await;
        h.wait_published(verifier, presenter, &[1], 1, 10).await;
        h
    }

    pub fn start_controller(&mut self) {
        let client = self.client.clone();
        let config = controller::Config {
            namespaces: self.watch.clone(),
            instance: Some("test".into()),
            concurrency: 0,
            list_secrets: false,
        };
        let health = Arc::new(keyrotor::ops::Health::default());
        let run = controller::run(client, config, self.metrics.clone(), health);
        self.controller = Some(tokio::spawn(run));
    }

    pub fn stop_controller(&mut self) {
        if let Some(h) = self.controller.take() {
            h.abort();
        }
    }

    pub fn rotations(&self) -> Api<ApiKeyRotation> {
        Api::namespaced(self.client.clone(), NS)
    }

    pub fn secrets(&self) -> Api<Secret> {
        Api::namespaced(self.client.clone(), NS)
    }

    pub fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), NS)
    }

    /// Applies an ApiKeyRotation given as YAML (the `spec:` body), as a user would.
    pub async fn apply(&self, name: &str, spec_yaml: &str) -> ApiKeyRotation {
        let spec: serde_json::Value = serde_yaml::from_str(spec_yaml).expect("spec YAML");
        let obj = json!({
            "apiVersion": "keyrotor.dev/v1alpha1", "kind": "ApiKeyRotation",
            "metadata": {"name": name, "namespace": NS}, "spec": spec,
        });
        self.rotations()
            .patch(
                name,
                &PatchParams::apply("test").force(),
                &Patch::Apply(&obj),
            )
            .await
            .expect("apply rotation")
    }

    pub async fn annotate_rotation(&self, name: &str, key: &str, value: &str) {
        let patch = json!({"metadata": {"annotations": {key: value}}});
        self.rotations()
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap();
    }

    pub async fn rotation(&self, name: &str) -> ApiKeyRotation {
        self.rotations().get(name).await.expect("rotation exists")
    }

    /// A running pod that mounts `secrets` as volumes.
    pub async fn add_pod(&self, name: &str, secrets: &[&str], labels: &[(&str, &str)]) {
        let volumes: Vec<_> = secrets
            .iter()
            .enumerate()
            .map(|(i, s)| json!({"name": format!("v{i}"), "secret": {"secretName": s}}))
            .collect();
        let spec = json!({"containers": [{"name": "app", "image": "app"}], "volumes": volumes});
        self.running_pod(name, labels, spec).await;
    }

    /// A running pod whose container reads `secret`'s `key` through an
    /// environment variable (`secretKeyRef`). The simulated kubelet still
    /// reports the Secret's revision for it, as a reporter sidecar that
    /// mounts the Secret would: what its process holds never changes.
    pub async fn add_env_pod(&self, name: &str, secret: &str, labels: &[(&str, &str)]) {
        let env = json!([{"name": "API_KEY", "valueFrom": {"secretKeyRef": {"name": secret, "key": "key"}}}]);
        let spec = json!({"containers": [{"name": "app", "image": "app", "env": env}]});
        self.running_pod(name, labels, spec).await;
    }

    /// Creates pod `name` with `spec` and marks it Running.
    async fn running_pod(&self, name: &str, labels: &[(&str, &str)], spec: serde_json::Value) {
        let labels: BTreeMap<&str, &str> = labels.iter().copied().collect();
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": NS, "labels": labels},
            "spec": spec,
        }))
        .unwrap();
        self.pods()
            .create(&PostParams::default(), &pod)
            .await
            .unwrap();
        let status = json!({"status": {"phase": "Running"}});
        self.pods()
            .patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
            .await
            .unwrap();
    }

    /// Events about rotation objects with `reason`: their notes.
    pub async fn events(&self, reason: &str) -> Vec<String> {
        let api: Api<k8s_openapi::api::events::v1::Event> =
            Api::namespaced(self.client.clone(), NS);
        api.list(&Default::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .filter(|e| e.reason.as_deref() == Some(reason))
            .filter_map(|e| e.note)
            .collect()
    }

    /// Successful reconciles so far (the controller's own metric).
    pub fn reconciles(&self) -> u64 {
        self.metrics
            .encode()
            .lines()
            .find_map(|l| l.strip_prefix("keyrotor_reconciles_total{result=\"ok\"} "))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0)
    }

    pub async fn delete_pod(&self, name: &str) {
        self.pods()
            .delete(name, &DeleteParams::default())
            .await
            .unwrap();
    }

    pub fn set_stuck(&self, pod: &str, stuck: bool) {
        let mut s = self.stuck.lock().unwrap();
        if stuck {
            s.insert(pod.to_string());
        } else {
            s.remove(pod);
        }
    }

    pub async fn secret(&self, name: &str) -> Option<Secret> {
        self.secrets().get_opt(name).await.unwrap()
    }

    /// Versions the verifier Secret accepts.
    pub async fn accepted(&self, secret: &str) -> BTreeSet<u64> {
        let Some(s) = self.secret(secret).await else {
            return BTreeSet::new();
        };
        annotation(&s, k::ACCEPTED)
            .map(|a| a.split(',').filter_map(|v| v.parse().ok()).collect())
            .unwrap_or_default()
    }

    /// Version the presenter Secret presents.
    pub async fn current(&self, secret: &str) -> Option<u64> {
        annotation(&self.secret(secret).await?, k::CURRENT)?
            .parse()
            .ok()
    }

    /// Polls `check` every 50 ms until it holds, for at most `secs` seconds.
    pub async fn wait(&self, what: &str, secs: u64, check: impl AsyncFnMut() -> bool) {
        let (limit, every) = (Duration::from_secs(secs), Duration::from_millis(50));
        eventually_every(what, limit, every, check).await
    }

    /// Waits until the verifier and presenter Secrets publish (accepted, current).
    pub async fn wait_published(
        &self,
        verifier: &str,
        presenter: &str,
        accepted: &[u64],
        current: u64,
        secs: u64,
    ) {
        let want: BTreeSet<u64> = accepted.iter().copied().collect();
        self.wait(
            &format!("accepted {want:?}, current {current}"),
            secs,
            || async {
                self.accepted(verifier).await == want
                    && self.current(presenter).await == Some(current)
            },
        )
        .await;
    }

    /// Effective writes (changed something) made by keyrotor so far.
    pub fn keyrotor_writes(&self) -> usize {
        self.api
            .faults()
            .effective_writes()
            .iter()
            .filter(|w| w.field_manager == "keyrotor" && w.resource != "events")
            .count()
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.stop_controller();
        self.kubelet.abort();
        self.observer.stop();
    }
}

pub fn annotation<'a>(obj: &'a impl ResourceExt, key: &str) -> Option<&'a str> {
    obj.annotations().get(key).map(String::as_str)
}
