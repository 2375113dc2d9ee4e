//! The scale bench on a real API server (`--kubeconfig`, e.g. the kwok
//! cluster of tests/cluster): the same shape as the in-memory run, but the
//! pods are real Pod objects bound to kwok nodes (kwok turns them Running),
//! the reporters are simulated here and patch their pods over HTTP as the
//! sidecar would, and the operator runs with the ServiceAccount token and
//! RBAC of deploy/. The objects are kept between runs, so the `--concurrency`
//! values run back to back on the same cluster: for each, a fresh operator
//! converges, then one rotation cycle of every rotation is measured.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod, Secret, ServiceAccount};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

use super::cluster::{Settled, Shape, watch_settled};
use super::operator::{Operator, Scrape};
use super::probe::{self, Cpu, Phases, ServerTimes};
use super::{BenchArgs, progress, until};
use keyrotor::api::ApiKeyRotation;
use keyrotor::wire as k;
use keyrotor_testsupport::e2e::cluster::Cluster as Real;
use keyrotor_testsupport::kubelet;

/// Label on everything the bench creates.
const BENCH_LABEL: &str = "keyrotor.dev/bench";
/// Requests the bench itself keeps in flight while setting up or asking.
const IN_FLIGHT: usize = 16;

/// One measured cycle at one `--concurrency`.
pub struct Run {
    pub concurrency: u16,
    pub rotations: usize,
    /// A fresh operator: start until every rotation was reconciled to Stable.
    pub converged: Duration,
    pub cycle: Duration,
    pub latency: Vec<(f64, u64)>,
    pub failed: u64,
    pub phases: Phases,
    pub cpu: Vec<(&'static str, f64)>,
    pub server: ServerTimes,
    pub peak_rss_kib: u64,
}

fn namespace(shape: &Shape, i: usize) -> String {
    format!(
        "scale{}-{:02}",
        shape.rotations,
        i / shape.per_namespace.max(1)
    )
}

/// Pods mounting each projected Secret: (namespace, Secret) → pod names.
type Mounts = HashMap<(String, String), Vec<String>>;

fn mounts(shape: &Shape) -> Mounts {
    let mut m = Mounts::new();
    for i in 0..shape.rotations {
        let name = Shape::name(i);
        for (app, secret, count) in groups(shape, &name) {
            let pods = (0..count).map(|j| format!("{name}-{app}-{j}")).collect();
            m.insert((namespace(shape, i), secret), pods);
        }
    }
    m
}

fn groups(shape: &Shape, name: &str) -> [(&'static str, String, usize); 2] {
    let verifiers = (shape.pods_per_rotation / 2).max(1);
    let presenters = shape.pods_per_rotation.saturating_sub(verifiers).max(1);
    [
        ("server", format!("{name}-verifier"), verifiers),
        ("client", format!("{name}-key"), presenters),
    ]
}

async fn create<K>(api: &Api<K>, obj: Value) -> Result<(), String>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    let obj: K = serde_json::from_value(obj).map_err(|e| e.to_string())?;
    match api.create(&PostParams::default(), &obj).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(()), // kept from an earlier run
        Err(e) => Err(format!("create {}: {e}", obj.name_any())),
    }
}

/// Namespaces, pods (bound to kwok nodes, no scheduler) and rotations;
/// whatever exists already is kept.
async fn setup(client: &Client, shape: &Shape) -> Result<(), String> {
    let nodes: Vec<String> = Api::<Node>::all(client.clone())
        .list(&ListParams::default().labels("type=kwok"))
        .await
        .map_err(|e| e.to_string())?
        .items
        .iter()
        .map(|n| n.name_any())
        .collect();
    if nodes.is_empty() {
        return Err("no kwok node (label type=kwok): start tests/cluster/up".into());
    }
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let count = shape.rotations.div_ceil(shape.per_namespace.max(1));
    for ns in (0..count).map(|j| namespace(shape, j * shape.per_namespace.max(1))) {
        create(
            &namespaces,
            json!({"metadata": {"name": ns, "labels": {BENCH_LABEL: "scale"}}}),
        )
        .await?;
        // Pods need the namespace's default ServiceAccount.
        let sa: Api<ServiceAccount> = Api::namespaced(client.clone(), &ns);
        until(
            "the default ServiceAccount",
            Duration::from_secs(60),
            || {
                let sa = sa.clone();
                async move { matches!(sa.get_opt("default").await, Ok(Some(_))) }
            },
        )
        .await?;
    }
    let pods = (0..shape.rotations).flat_map(|i| {
        let name = Shape::name(i);
        let ns = namespace(shape, i);
        let node = nodes[i % nodes.len()].clone();
        groups(shape, &name)
            .into_iter()
            .flat_map(move |(app, secret, n)| {
                let (ns, node, name) = (ns.clone(), node.clone(), name.clone());
                (0..n).map(move |j| (ns.clone(), pod(&name, app, j, &secret, &node)))
            })
    });
    let results: Vec<Result<(), String>> = futures::stream::iter(pods)
        .map(|(ns, pod)| {
            let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
            async move { create(&api, pod).await }
        })
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await;
    results.into_iter().collect::<Result<(), String>>()?;
    let results: Vec<Result<(), String>> = futures::stream::iter(0..shape.rotations)
        .map(|i| {
            let api: Api<ApiKeyRotation> = Api::namespaced(client.clone(), &namespace(shape, i));
            async move { create(&api, rotation(shape, i)).await }
        })
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await;
    results.into_iter().collect()
}

fn pod(rotation: &str, app: &str, j: usize, secret: &str, node: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": format!("{rotation}-{app}-{j}"), "labels": {"app": app, BENCH_LABEL: "scale"}},
        "spec": {
            "nodeName": node,
            "automountServiceAccountToken": false,
            "containers": [{"name": "app", "image": "registry.example/app:1.0",
                            "volumeMounts": [{"name": "key", "mountPath": "/etc/api-key", "readOnly": true}]}],
            "volumes": [{"name": "key", "secret": {"secretName": secret}}],
        },
    })
}

/// As in the in-memory run: Report mode, no schedule, a one-second grace.
fn rotation(shape: &Shape, i: usize) -> Value {
    let name = Shape::name(i);
    json!({
        "apiVersion": k::API_VERSION, "kind": "ApiKeyRotation",
        "metadata": {"name": name, "namespace": namespace(shape, i), "labels": {BENCH_LABEL: "scale"}},
        "spec": {
            "secrets": {"verifier": format!("{name}-verifier"), "presenter": format!("{name}-key")},
            "gracePeriod": {"minimum": "1s", "maximum": "1h"},
        },
    })
}

/// Running bench pods, counted from one paged list.
async fn running(client: &Client) -> usize {
    let api: Api<Pod> = Api::all(client.clone());
    let mut lp = ListParams::default()
        .labels(&format!("{BENCH_LABEL}=scale"))
        .limit(1000);
    let mut n = 0;
    for _ in 0..1000 {
        let Ok(page) = api.list(&lp).await else {
            return n;
        };
        n += page
            .items
            .iter()
            .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
            .count();
        match page.metadata.continue_ {
            Some(c) if !c.is_empty() => lp = lp.continue_token(&c),
            _ => break,
        }
    }
    n
}

/// The revision each (namespace, pod, report annotation) was last given.
type Reported = HashMap<(String, String, String), String>;

/// Simulated reporters: when a projected Secret changes, every pod that
/// mounts it reports the new revision at once, each pod with its own patch
/// (as each pod's sidecar would). What pods already report is read first,
/// so a restarted bench sends nothing for what is already reported.
async fn reporters(client: Client, mounts: Mounts) {
    let reported: Arc<Mutex<Reported>> = Arc::default();
    let pods: Api<Pod> = Api::all(client.clone());
    let mut lp = ListParams::default()
        .labels(&format!("{BENCH_LABEL}=scale"))
        .limit(1000);
    for _ in 0..1000 {
        let Ok(page) = pods.list(&lp).await else {
            break;
        };
        {
            let mut seen = reported.lock().expect("reported");
            for p in &page.items {
                for (key, value) in p.annotations() {
                    if k::parse_report(key).is_some() {
                        let id = (p.namespace().unwrap_or_default(), p.name_any(), key.clone());
                        seen.insert(id, value.clone());
                    }
                }
            }
        }
        match page.metadata.continue_ {
            Some(c) if !c.is_empty() => lp = lp.continue_token(&c),
            _ => break,
        }
    }
    let secrets: Api<Secret> = Api::all(client.clone());
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
        let Some(names) = mounts.get(&(ns.clone(), secret.name_any())) else {
            continue;
        };
        let Some(reports) = kubelet::reports(&secret) else {
            continue;
        };
        for pod in names {
            let mut annotations = serde_json::Map::new();
            {
                let mut seen = reported.lock().expect("reported");
                for (key, revision) in &reports {
                    let id = (ns.clone(), pod.clone(), key.clone());
                    if seen.get(&id) != Some(revision) {
                        seen.insert(id, revision.clone());
                        annotations.insert(key.clone(), Value::String(revision.clone()));
                    }
                }
            }
            if annotations.is_empty() {
                continue;
            }
            let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
            let (pod, body) = (
                pod.clone(),
                json!({"metadata": {"annotations": annotations}}),
            );
            tokio::spawn(async move {
                let _ = api
                    .patch(&pod, &PatchParams::default(), &Patch::Merge(&body))
                    .await;
            });
        }
    }
}

/// Each rotation's settled version now (None: not settled).
fn versions(settled: &Settled, shape: &Shape) -> HashMap<(String, String), Option<u64>> {
    // Only the bench's own: other rotations in the cluster are not rotated.
    let prefix = format!("scale{}-", shape.rotations);
    let settled = settled.lock().expect("settled tally");
    settled
        .iter()
        .filter(|((ns, _), _)| ns.starts_with(&prefix))
        .map(|(k, v)| (k.clone(), *v))
        .collect()
}

async fn request_rotation(client: &Client, shape: &Shape, token: &str) -> Result<(), String> {
    let body = json!({"metadata": {"annotations": {k::ROTATE_REQUEST: token}}});
    let results: Vec<Result<(), String>> = futures::stream::iter(0..shape.rotations)
        .map(|i| {
            let api: Api<ApiKeyRotation> = Api::namespaced(client.clone(), &namespace(shape, i));
            let body = &body;
            async move {
                api.patch(
                    &Shape::name(i),
                    &PatchParams::default(),
                    &Patch::Merge(body),
                )
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
            }
        })
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await;
    results.into_iter().collect()
}

/// Every `--concurrency` value in turn on one set of `shape` objects.
pub async fn run(
    args: &BenchArgs,
    binary: &Path,
    kubeconfig: &Path,
    shape: Shape,
    dir: &Path,
) -> Result<Vec<Run>, String> {
    let n = shape.rotations;
    let timeout = Duration::from_secs(args.timeout);
    let cluster = Real::setup(kubeconfig.to_path_buf()).await;
    let client = cluster.client().await;
    progress(
        n,
        &format!("setting up {} pods on kwok nodes", shape.pods()),
    );
    let started = Instant::now();
    setup(&client, &shape).await?;
    let pods = shape.pods();
    until("every pod Running", timeout, || async {
        running(&client).await >= pods
    })
    .await?;
    progress(
        n,
        &format!("set up in {:.0} s", started.elapsed().as_secs_f64()),
    );
    let all: usize = Api::<ApiKeyRotation>::all(client.clone())
        .list_metadata(&ListParams::default())
        .await
        .map_err(|e| e.to_string())?
        .items
        .len();
    if all != n {
        eprintln!(
            "scale: {all} ApiKeyRotations in the cluster, {n} of them the bench's: the others add load"
        );
    }
    let settled = Settled::default();
    let tasks = [
        tokio::spawn(reporters(client.clone(), mounts(&shape))),
        tokio::spawn(watch_settled(client.clone(), settled.clone())),
    ];
    let pids = probe::cluster_pids(&cluster.dir);
    let log = dir.join("keyrotor.log");
    let mut runs = Vec::new();
    let result = async {
        for (k, &concurrency) in args.concurrency.iter().enumerate() {
            runs.push(
                cycle(
                    &client,
                    &cluster,
                    &shape,
                    binary,
                    &log,
                    concurrency,
                    k,
                    &settled,
                    &pids,
                    timeout,
                )
                .await?,
            );
            // Each cycle's column as it ends: a later failure keeps it.
            eprintln!("{}", super::real_table(&runs[runs.len() - 1..]));
        }
        Ok::<(), String>(())
    }
    .await;
    for t in &tasks {
        t.abort();
    }
    result.map(|()| runs)
}

#[allow(clippy::too_many_arguments)]
async fn cycle(
    client: &Client,
    cluster: &Real,
    shape: &Shape,
    binary: &Path,
    log: &Path,
    concurrency: u16,
    k: usize,
    settled: &Settled,
    pids: &[(&'static str, u32)],
    timeout: Duration,
) -> Result<Run, String> {
    let n = shape.rotations;
    let op = Operator::start(binary, &cluster.operator_kubeconfig, log, concurrency)
        .map_err(|e| e.to_string())?;
    progress(
        n,
        &format!("--concurrency {concurrency}: operator pid {}", op.pid()),
    );
    let started = Instant::now();
    until("every rotation Stable", timeout, || async {
        op.metrics().await.stable >= n
            && versions(settled, shape)
                .values()
                .filter(|v| v.is_some())
                .count()
                >= n
    })
    .await?;
    let converged = started.elapsed();
    // Let the start's stragglers (held-back progress writes) pass.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let before = versions(settled, shape);
    let (scrape_before, server_before) = (op.metrics().await, ServerTimes::scrape(client).await);
    let log_from = std::fs::metadata(log).map_or(0, |m| m.len());
    let mut cpu = Cpu::start(pids, op.pid());
    progress(n, "rotating every key");
    let t0 = Instant::now();
    let token = format!("bench-{}-{k}", jiff::Timestamp::now().as_second());
    request_rotation(client, shape, &token).await?;
    until("every rotation one version further", timeout, || async {
        let now = versions(settled, shape);
        before.iter().all(|(key, v)| match (v, now.get(key)) {
            (Some(v), Some(Some(w))) => *w == v + 1,
            _ => false,
        })
    })
    .await?;
    let elapsed = t0.elapsed();
    // Trailing reconciles (a last status write) belong to the cycle too.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let scrape: Scrape = op.metrics().await;
    let server = ServerTimes::scrape(client).await.since(&server_before);
    let cpu = cpu.stop();
    let phases = Phases::read(log, log_from);
    let peak_rss_kib = op.memory().peak_rss_kib;
    op.stop().await;
    Ok(Run {
        concurrency,
        rotations: n,
        converged,
        cycle: elapsed,
        latency: scrape.since(&scrape_before),
        failed: scrape
            .reconciles_failed
            .saturating_sub(scrape_before.reconciles_failed),
        phases,
        cpu,
        server,
        peak_rss_kib,
    })
}
