//! `cargo bench --bench peers [-- compare|slow|memory] [CYCLES|N…]`: keyrotor side
//! by side with External Secrets Operator (ESO) v0.16.2 and the naive
//! overwrite, on the real cluster (`tests/cluster/up --real-nodes 1`, then
//! `source tests/cluster/.run/env` and `eval "$(.ci/tools)"`) with ESO built
//! by `tests/cluster/eso/build`; see docs/comparison.md.
//!
//! - `compare [CYCLES]` (default 3): the real-node stage of the e2e suite
//!   (two verifier Deployments and one presenter Deployment of two pods, the
//!   sample app calling every 25 ms, every request recorded) under (a)
//!   keyrotor Report mode, (b) keyrotor Rollout mode, (c) ESO: a `Password`
//!   generator behind an `ExternalSecret` with a short `refreshInterval`
//!   writing one Secret that every pod mounts, and a rollout restart of every
//!   Deployment on each change of the Secret's data, done here the way
//!   Stakater Reloader's `annotations` strategy does it (Reloader is not
//!   served by the Go module proxy), (d) the naive overwrite.
//! - `slow [CYCLES]` (default 1): one verifier pod, and a presenter
//!   Deployment of 6 pods that read the key from `secretKeyRef` environment
//!   variables and become ready 20 s after they start, under keyrotor Rollout
//!   mode and the ESO path: when the old key goes, against when the rollout
//!   ended.
//! - `memory [N…]` (default 100 1000): N ApiKeyRotations (each with a
//!   consumer pod on a kwok node) and N ExternalSecrets with a Password
//!   generator each, both operators with their defaults, their RSS.
//!
//! Both operators run as processes on this host against the cluster (admin
//! kubeconfig), so their memory is read from /proc the same way. Every wait
//! is bounded; every process started here is stopped by its PID.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Secret};
use keyrotor::api::ApiKeyRotation;
use keyrotor::wire::{self as k, RevisionReport};
use kube::ResourceExt;
use kube::api::{Api, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams, PostParams};
use kube::discovery::ApiResource;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher;
use serde_json::json;

use keyrotor_testsupport::e2e::cluster::{self, Cluster, repo};
use keyrotor_testsupport::e2e::realnode::{self, *};
use keyrotor_testsupport::e2e::scenario::{
    apply, report, request_rotation, rollout, rotation, wait_stable,
};

const ROTATION: &str = "api";
/// ESO's refresh interval in the comparison: each refresh runs the
/// generator, so each one is a rotation.
const ESO_REFRESH: &str = "30s";
/// In the slow case, longer than one rollout of the slow Deployment.
const ESO_REFRESH_SLOW: &str = "150s";
const RELOADER_ANNOTATION: &str = "reloader.stakater.com/last-reloaded-from";

fn keyrotor_bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_keyrotor"))
}

/// The ESO cache directory (`tests/cluster/eso/build` prints it).
fn eso_dir() -> Option<PathBuf> {
    let out = Command::new(repo().join("tests/cluster/eso/build"))
        .stderr(Stdio::inherit())
        .output()
        .ok()?;
    if !out.status.success() {
        eprintln!("peers: tests/cluster/eso/build failed: ESO is left out");
        return None;
    }
    Some(PathBuf::from(String::from_utf8(out.stdout).ok()?.trim()))
}

/// A process started here, stopped by its PID (SIGTERM, then SIGKILL).
struct Proc {
    child: Child,
    name: &'static str,
}

impl Proc {
    fn start(name: &'static str, cmd: &mut Command, log: &Path) -> Proc {
        let file = std::fs::File::create(log).unwrap();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("start {name}: {e}"));
        Proc { child, name }
    }

    /// Resident set size now, in KiB (VmRSS of /proc/PID/status).
    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    }

    fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        for _ in 0..50 {
            if !self.running() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        eprintln!("peers: {} did not stop on SIGTERM; SIGKILL", self.name);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Samples a process's RSS every 500 ms; the peak so far.
fn sample_rss(p: &Arc<Mutex<Proc>>) -> Arc<Mutex<u64>> {
    let peak = Arc::new(Mutex::new(0u64));
    let (p, out) = (Arc::downgrade(p), peak.clone());
    tokio::spawn(async move {
        while let Some(p) = p.upgrade() {
            let rss = p.lock().unwrap().rss_kib();
            drop(p);
            {
                let mut peak = out.lock().unwrap();
                *peak = (*peak).max(rss);
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    });
    peak
}

fn keyrotor_operator(cluster: &Cluster, namespace: Option<&str>, log: &str) -> Proc {
    let admin = format!("127.0.0.1:{}", free_port());
    let mut cmd = Command::new(keyrotor_bin());
    cmd.args(["run", "--admin-address", &admin])
        .env("KUBECONFIG", &cluster.kubeconfig)
        .env("POD_NAME", "keyrotor-peers")
        .env("RUST_LOG", "info");
    if let Some(ns) = namespace {
        cmd.args(["--namespace", ns, "--lease-namespace", ns]);
    }
    Proc::start("keyrotor", &mut cmd, &cluster.dir.join(log))
}

fn eso_operator(cluster: &Cluster, eso: &Path, namespace: Option<&str>, log: &str) -> Proc {
    let mut cmd = Command::new(eso.join("external-secrets"));
    // Metrics off: the default would listen on every interface.
    cmd.args(["--metrics-addr", "0"])
        .env("KUBECONFIG", &cluster.kubeconfig);
    if let Some(ns) = namespace {
        cmd.args(["--namespace", ns]);
    }
    Proc::start("external-secrets", &mut cmd, &cluster.dir.join(log))
}

fn install_eso_crds(cluster: &Cluster, eso: &Path) {
    cluster.ok(&[
        "apply",
        "--server-side",
        "--force-conflicts",
        "-f",
        eso.join("crds.yaml").to_str().unwrap(),
    ]);
    for crd in [
        "externalsecrets.external-secrets.io",
        "passwords.generators.external-secrets.io",
    ] {
        cluster.ok(&[
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            &format!("crd/{crd}"),
        ]);
    }
}

fn dynamic(
    client: &kube::Client,
    ns: &str,
    group: &str,
    version: &str,
    kind: &str,
) -> Api<DynamicObject> {
    let ar = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind));
    Api::namespaced_with(client.clone(), ns, &ar)
}

/// A Password generator and an ExternalSecret writing Secret `target` in the
/// layout the sample app reads (one Secret for both roles, version 1, the
/// verifier's digest computed by ESO's template).
async fn eso_objects(client: &kube::Client, ns: &str, name: &str, target: &str, refresh: &str) {
    let password = json!({
        "apiVersion": "generators.external-secrets.io/v1alpha1", "kind": "Password",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"length": 32, "digits": 6, "symbols": 0, "noUpper": false, "allowRepeat": true},
    });
    let external = json!({
        "apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "refreshInterval": refresh,
            "target": {"name": target, "template": {"data": {
                "rotation": ROTATION, "role": "verifier,presenter", "revision": "1",
                "accepted": "1", "v1.sha256": "{{ .password | sha256sum }}",
                "version": "1", "key": "{{ .password }}",
            }}},
            "dataFrom": [{"sourceRef": {"generatorRef": {
                "apiVersion": "generators.external-secrets.io/v1alpha1",
                "kind": "Password", "name": name,
            }}}],
        }
    });
    let pp = PatchParams::apply("peers").force();
    dynamic(
        client,
        ns,
        "generators.external-secrets.io",
        "v1alpha1",
        "Password",
    )
    .patch(name, &pp, &Patch::Apply(&password))
    .await
    .unwrap();
    dynamic(client, ns, "external-secrets.io", "v1", "ExternalSecret")
        .patch(name, &pp, &Patch::Apply(&external))
        .await
        .unwrap();
}

fn data_hash(s: &Secret) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    let data: BTreeMap<_, _> = s.data.clone().unwrap_or_default().into_iter().collect();
    for (k, v) in data {
        k.hash(&mut h);
        v.0.hash(&mut h);
    }
    h.finish()
}

/// What Stakater Reloader (`--reload-strategy=annotations`) does for a
/// Secret: on every change of its data, patch the pod template annotation
/// of every Deployment that uses it, so the Deployment rolls. Returns when
/// each change was seen.
fn reloader(client: &kube::Client, ns: &str, secret: &str) -> Arc<Mutex<Vec<Instant>>> {
    let changes: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let out = changes.clone();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let (ns, secret) = (ns.to_string(), secret.to_string());
    tokio::spawn(async move {
        let config = watcher::Config::default().fields(&format!("metadata.name={secret}"));
        let mut s = watcher::watcher(secrets, config)
            .default_backoff()
            .applied_objects()
            .boxed();
        let mut last = None;
        while let Some(Ok(s)) = s.next().await {
            let hash = data_hash(&s);
            let first = last.is_none();
            if last.replace(hash) == Some(hash) || first {
                continue; // unchanged data, or the state at start
            }
            out.lock().unwrap().push(Instant::now());
            let value = json!({
                "type": "SECRET", "name": secret, "namespace": ns,
                "hash": format!("{hash:016x}"),
                "observedAt": jiff::Timestamp::now().as_second(),
            })
            .to_string();
            let patch = json!({"spec": {"template": {"metadata": {"annotations": {
                RELOADER_ANNOTATION: value,
            }}}}});
            for d in deployments
                .list(&ListParams::default())
                .await
                .unwrap()
                .items
            {
                deployments
                    .patch(
                        &d.name_any(),
                        &PatchParams::default(),
                        &Patch::Merge(&patch),
                    )
                    .await
                    .unwrap();
            }
        }
    });
    changes
}

/// Whether every Deployment of the namespace finished its rollout.
async fn rolled_out(deployments: &Api<Deployment>) -> bool {
    let list = deployments
        .list(&ListParams::default())
        .await
        .unwrap()
        .items;
    list.iter().all(|d| {
        let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
        let Some(s) = &d.status else { return false };
        s.observed_generation >= d.metadata.generation
            && s.updated_replicas == Some(want)
            && s.ready_replicas == Some(want)
            && s.replicas == Some(want)
    })
}

/// Every pod UID the namespace ever had while recording.
fn pod_uids(client: &kube::Client, ns: &str) -> Arc<Mutex<BTreeSet<String>>> {
    let seen: Arc<Mutex<BTreeSet<String>>> = Arc::default();
    let out = seen.clone();
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    tokio::spawn(async move {
        let mut s = watcher::watcher(pods, watcher::Config::default())
            .default_backoff()
            .applied_objects()
            .boxed();
        while let Some(Ok(p)) = s.next().await {
            if let Some(uid) = p.metadata.uid {
                out.lock().unwrap().insert(uid);
            }
        }
    });
    seen
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Report,
    Rollout,
    Eso,
    Naive,
}

impl Mode {
    fn label(self) -> &'static str {
        match self {
            Mode::Report => "keyrotor Report",
            Mode::Rollout => "keyrotor Rollout",
            Mode::Eso => "ESO + restart",
            Mode::Naive => "naive overwrite",
        }
    }
    fn ns(self) -> &'static str {
        match self {
            Mode::Report => "peers-report",
            Mode::Rollout => "peers-rollout",
            Mode::Eso => "peers-eso",
            Mode::Naive => "peers-naive",
        }
    }
}

struct Outcome {
    mode: Mode,
    rotations: usize,
    sent: usize,
    rejected: usize,
    unanswered: usize,
    pods_replaced: usize,
    container_restarts: i32,
    per_rotation: Vec<Duration>,
    rss_peak_kib: Option<u64>,
    /// Slow case: seconds from the end of the presenters' rollout to the
    /// old key's removal (negative: removed while the rollout still ran).
    retire_vs_rollout: Vec<f64>,
    /// How long the traffic was recorded.
    window: Duration,
}

async fn wait_for(what: &str, limit: Duration, mut f: impl AsyncFnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if f().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!("peers: gave up waiting for {what} after {limit:?}");
    false
}

/// The slow-rollout case: one verifier Deployment and a 6-replica
/// presenter Deployment `app` whose pods take the key from `secretKeyRef`
/// environment variables and turn ready 20 s after they start.
const SLOW_REPLICAS: i32 = 6;
const SLOW_READY_SECONDS: i32 = 20;

async fn compare(
    cluster: &'static Cluster,
    mode: Mode,
    eso: Option<&Path>,
    cycles: usize,
    slow: bool,
) -> Outcome {
    let ns_name = if slow {
        format!("{}-slow", mode.ns())
    } else {
        mode.ns().to_string()
    };
    let ns = cluster.namespace(&ns_name).await;
    let client = cluster.client().await;
    let records = prepare(cluster, &ns.name, keyrotor_bin(), "records");
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns.name);
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns.name);
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns.name);

    let (verifier_secret, presenter_secret) = match mode {
        Mode::Eso => ("api-shared", "api-shared"),
        _ => ("api-verifier", "api-key"),
    };
    let mut operator = None;
    match mode {
        Mode::Report | Mode::Rollout => {
            operator = Some(keyrotor_operator(
                cluster,
                Some(&ns.name),
                &format!("{}.log", ns.name),
            ));
            let (v, p) = if mode == Mode::Report {
                (report(), report())
            } else {
                let w = |n: &str| json!({"kind": "Deployment", "name": n});
                let mut v = rollout("verifier-0");
                if !slow {
                    v["workloads"] = json!([w("verifier-0"), w("verifier-1")]);
                }
                (v, rollout(if slow { "app" } else { "presenter" }))
            };
            let mut r = rotation(&ns.name, ROTATION, v, p);
            r["spec"]["gracePeriod"]["minimum"] = "1s".into();
            apply(&client, &ns.name, &r).await;
            wait_stable(&client, &ns.name, ROTATION, 1, Duration::from_secs(60)).await;
        }
        Mode::Eso => {
            let eso = eso.unwrap();
            let refresh = if slow { ESO_REFRESH_SLOW } else { ESO_REFRESH };
            eso_objects(&client, &ns.name, ROTATION, "api-shared", refresh).await;
            operator = Some(eso_operator(
                cluster,
                eso,
                Some(&ns.name),
                &format!("{}.log", ns.name),
            ));
            let ok = wait_for("ESO's first Secret", Duration::from_secs(60), async || {
                secrets.get_opt("api-shared").await.unwrap().is_some()
            })
            .await;
            assert!(
                ok,
                "ESO wrote no Secret; see {}",
                cluster.dir.join(format!("{}.log", ns.name)).display()
            );
        }
        Mode::Naive => {
            // overwrite() applies data only: the Secrets must exist.
            for name in ["api-verifier", "api-key"] {
                let s: Secret =
                    serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
                secrets.create(&PostParams::default(), &s).await.unwrap();
            }
            overwrite(&secrets, ROTATION, 1, 1).await
        }
    }
    let operator = operator.map(|p| Arc::new(Mutex::new(p)));
    let peak = operator.as_ref().map(sample_rss);

    // The same pods as the real-node stage; verifiers are recreated, not
    // surged, on a restart: on hostNetwork two pods cannot hold one port.
    let ports = if slow {
        vec![free_port()]
    } else {
        vec![free_port(), free_port()]
    };
    for (i, port) in ports.iter().enumerate() {
        let t = template("verifier", verifier_secret, verifier_args(*port), &records);
        let mut d = realnode::deployment(&ns.name, &format!("verifier-{i}"), 1, t);
        d.spec.as_mut().unwrap().strategy =
            Some(serde_json::from_value(json!({"type": "Recreate"})).unwrap());
        deployments
            .create(&PostParams::default(), &d)
            .await
            .unwrap();
    }
    let mut args = realnode::presenter_args(&ports);
    if slow {
        args.push("--from-env".into());
    }
    let mut t = template("presenter", presenter_secret, json!(args), &records);
    let (name, replicas) = if slow {
        let app = &mut t["spec"]["containers"][0];
        for (var, key) in [("API_KEY", "key"), ("API_KEY_VERSION", "version")] {
            app["env"]
                .as_array_mut()
                .unwrap()
                .push(json!({"name": var, "valueFrom": {
                    "secretKeyRef": {"name": presenter_secret, "key": key},
                }}));
        }
        app["readinessProbe"] = json!({
            "exec": {"command": ["/usr/local/bin/keyrotor", "--version"]},
            "initialDelaySeconds": SLOW_READY_SECONDS, "periodSeconds": 1,
        });
        ("app", SLOW_REPLICAS)
    } else {
        ("presenter", 2)
    };
    deployments
        .create(
            &PostParams::default(),
            &realnode::deployment(&ns.name, name, replicas, t),
        )
        .await
        .unwrap();
    let ready = wait_for(
        "pods to roll out and serve",
        Duration::from_secs(180),
        async || {
            rolled_out(&deployments).await
                && requests(&records, 0)
                    .iter()
                    .filter(|(s, _)| *s == 200)
                    .count()
                    > 20
        },
    )
    .await;
    assert!(ready, "the stage did not come up");
    let changes = (mode == Mode::Eso).then(|| reloader(&client, &ns.name, "api-shared"));
    let uids = pod_uids(&client, &ns.name);
    tokio::time::sleep(Duration::from_secs(2)).await;
    wait_for(
        "no rollout in progress",
        Duration::from_secs(120),
        async || rolled_out(&deployments).await,
    )
    .await;
    let initial = uids.lock().unwrap().len();

    // ESO refreshes on its own clock: changes seen before the measurement
    // starts (while the stage came up) are not counted as its rotations.
    let base = changes.as_ref().map_or(0, |c| c.lock().unwrap().len());
    let since = now_ms();
    let began = Instant::now();
    let mut per_rotation = Vec::new();
    let mut retire_vs_rollout = Vec::new();
    for i in 0..cycles {
        let version = i as u64 + 2;
        let track = slow.then(|| {
            track_retirement(
                deployments.clone(),
                secrets.clone(),
                version - 1,
                mode != Mode::Eso,
            )
        });
        match mode {
            Mode::Report | Mode::Rollout => {
                let start = Instant::now();
                request_rotation(&client, &ns.name, ROTATION, &format!("peers-{i}")).await;
                wait_stable(
                    &client,
                    &ns.name,
                    ROTATION,
                    version,
                    Duration::from_secs(300),
                )
                .await;
                per_rotation.push(start.elapsed());
            }
            Mode::Naive => {
                let start = Instant::now();
                overwrite(&secrets, ROTATION, version, version).await;
                if wait_for(
                    "pods to load the overwrite",
                    Duration::from_secs(180),
                    async || all_report(&pods, ROTATION, version).await,
                )
                .await
                {
                    per_rotation.push(start.elapsed());
                }
            }
            Mode::Eso => {
                let changes = changes.as_ref().unwrap();
                let changed =
                    wait_for("ESO's next refresh", Duration::from_secs(200), async || {
                        changes.lock().unwrap().len() > base + i
                    })
                    .await;
                if !changed {
                    break;
                }
                let start = changes.lock().unwrap()[base + i];
                if let Some(t) = &track {
                    // ESO overwrote the Secret: the old key is gone for
                    // whatever reads the Secret from now on.
                    t.lock().unwrap().1.get_or_insert(start);
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
                if wait_for(
                    "the restarts to roll out",
                    Duration::from_secs(180),
                    async || rolled_out(&deployments).await,
                )
                .await
                {
                    per_rotation.push(start.elapsed());
                }
            }
        }
        if let Some(t) = track {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let (done, retired) = *t.lock().unwrap();
            if let (Some(d), Some(r)) = (done, retired) {
                // Positive: the old key went after the rollout finished.
                let secs = if r >= d {
                    (r - d).as_secs_f64()
                } else {
                    -(d - r).as_secs_f64()
                };
                retire_vs_rollout.push(secs);
            }
        }
        eprintln!(
            "peers: {} rotation {}: {:.1?}",
            mode.label(),
            i + 1,
            per_rotation.last()
        );
    }
    // Requests in flight at the end are recorded too.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let t = tally(&requests(&records, since));
    let window = began.elapsed();
    let restarts = pods
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .flat_map(|p| {
            p.status
                .iter()
                .flat_map(|s| s.container_statuses.iter().flatten())
        })
        .map(|c| c.restart_count)
        .sum();
    let replaced = uids.lock().unwrap().len() - initial;
    let rss = peak.map(|p| *p.lock().unwrap());
    drop(operator);
    let _ = deployments
        .delete_collection(&Default::default(), &ListParams::default())
        .await;
    Outcome {
        mode,
        rotations: per_rotation.len(),
        sent: t.sent,
        rejected: t.rejected,
        unanswered: t.unanswered,
        pods_replaced: replaced,
        container_restarts: restarts,
        per_rotation,
        rss_peak_kib: rss,
        retire_vs_rollout,
        window,
    }
}

/// When the presenter Deployment `app` finished rolling out a new template,
/// and (`keyrotor`) when version `old` left the verifier Secret's accepted
/// set; polled every 250 ms for at most 10 minutes.
type Track = Arc<Mutex<(Option<Instant>, Option<Instant>)>>;

fn track_retirement(
    deployments: Api<Deployment>,
    secrets: Api<Secret>,
    old: u64,
    keyrotor: bool,
) -> Track {
    let out: Track = Arc::default();
    let t = out.clone();
    tokio::spawn(async move {
        let generation = |d: &Deployment| d.metadata.generation.unwrap_or(0);
        let Ok(start) = deployments.get("app").await else {
            return;
        };
        let deadline = Instant::now() + Duration::from_secs(600);
        while Instant::now() < deadline && Arc::strong_count(&t) > 1 {
            if let Ok(d) = deployments.get("app").await {
                let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
                let rolled = d.status.as_ref().is_some_and(|s| {
                    s.observed_generation >= d.metadata.generation
                        && s.updated_replicas == Some(want)
                        && s.ready_replicas == Some(want)
                        && s.replicas == Some(want)
                });
                if generation(&d) > generation(&start) && rolled {
                    t.lock().unwrap().0.get_or_insert(Instant::now());
                }
            }
            if keyrotor
                && let Ok(s) = secrets.get("api-verifier").await
                && !s
                    .annotations()
                    .get(k::ACCEPTED)
                    .is_some_and(|a| a.split(',').any(|v| v == old.to_string()))
            {
                t.lock().unwrap().1.get_or_insert(Instant::now());
            }
            let (done, retired) = *t.lock().unwrap();
            if done.is_some() && retired.is_some() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    });
    out
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn print_compare(rows: &[Outcome], cycles: usize, slow: bool) {
    if slow {
        println!(
            "\nSlow rollout, {cycles} rotation(s) each on one real kubelet: 1 verifier Deployment (1 pod) + presenter Deployment `app` ({SLOW_REPLICAS} pods, key from secretKeyRef env vars, ready {SLOW_READY_SECONDS} s after start), calling every 25 ms"
        );
    } else {
        println!(
            "\n{cycles} rotations each on one real kubelet: 2 verifier Deployments (1 pod) + 1 presenter Deployment (2 pods), presenters calling every 25 ms"
        );
    }
    print!("{:<28}", "");
    for r in rows {
        print!("{:>18}", r.mode.label());
    }
    println!();
    let line = |label: &str, f: &dyn Fn(&Outcome) -> String| {
        print!("{label:<28}");
        for r in rows {
            print!("{:>18}", f(r));
        }
        println!();
    };
    line("rotations completed", &|r| r.rotations.to_string());
    line("traffic recorded for", &|r| {
        format!("{:.0} s", r.window.as_secs_f64())
    });
    line("requests sent", &|r| r.sent.to_string());
    line("requests rejected (401)", &|r| r.rejected.to_string());
    line("requests unanswered", &|r| r.unanswered.to_string());
    line("pods replaced", &|r| r.pods_replaced.to_string());
    line("container restarts", &|r| r.container_restarts.to_string());
    line("time per rotation (mean)", &|r| {
        if r.per_rotation.is_empty() {
            return "-".into();
        }
        let total: Duration = r.per_rotation.iter().sum();
        format!(
            "{:.1} s",
            (total / r.per_rotation.len() as u32).as_secs_f64()
        )
    });
    if slow {
        line("old key gone vs rollout end", &|r| {
            r.retire_vs_rollout
                .iter()
                .map(|s| format!("{s:+.1} s"))
                .collect::<Vec<_>>()
                .join(" ")
        });
    }
    line("operator RSS (peak)", &|r| {
        r.rss_peak_kib.map(mib).unwrap_or_else(|| "-".into())
    });
}

/// N rotations (each with a consumer pod on a kwok node) and N
/// ExternalSecrets with a Password generator each; both operators watch
/// every namespace with their defaults. Peak and settled RSS of each.
async fn memory(
    cluster: &'static Cluster,
    eso: Option<&Path>,
    n: usize,
) -> (u64, u64, Option<(u64, u64)>) {
    let ns = cluster.namespace(&format!("peers-mem-{n}")).await;
    let client = cluster.client().await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns.name);
    let rotations: Api<ApiKeyRotation> = Api::namespaced(client.clone(), &ns.name);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns.name);
    let create = futures::stream::iter(0..n)
        .map(|i| {
            let (client, pods, ns) = (client.clone(), pods.clone(), ns.name.clone());
            async move {
                let name = format!("k{i}");
                let r = rotation(&ns, &name, report(), report());
                apply(&client, &ns, &r).await;
                let pod: Pod = serde_json::from_value(json!({
                    "apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": format!("p{i}"), "namespace": ns},
                    "spec": {
                        "nodeSelector": {"type": "kwok"},
                        "containers": [{"name": "app", "image": "keyrotor.dev/e2e-app:none",
                            "volumeMounts": [{"name": "keys", "mountPath": "/keys"}]}],
                        "volumes": [{"name": "keys", "projected": {"sources": [
                            {"secret": {"name": format!("{name}-verifier")}},
                            {"secret": {"name": format!("{name}-key")}},
                        ]}}],
                    }
                }))
                .unwrap();
                pods.create(&PostParams::default(), &pod).await.unwrap();
                if eso.is_some() {
                    eso_objects(
                        &client,
                        &ns,
                        &format!("e{i}"),
                        &format!("e{i}-secret"),
                        "1h",
                    )
                    .await;
                }
            }
        })
        .buffer_unordered(8)
        .collect::<Vec<()>>();
    create.await;
    eprintln!("peers: memory N={n}: objects created");
    let kubelets = simulated_kubelets(&client, &ns.name);

    let keyrotor = Arc::new(Mutex::new(keyrotor_operator(
        cluster,
        None,
        &format!("peers-mem-{n}-keyrotor.log"),
    )));
    let eso_proc = eso.map(|e| {
        Arc::new(Mutex::new(eso_operator(
            cluster,
            e,
            None,
            &format!("peers-mem-{n}-eso.log"),
        )))
    });
    let kpeak = sample_rss(&keyrotor);
    let epeak = eso_proc.as_ref().map(sample_rss);
    let limit = Duration::from_secs(120 + n as u64 / 2);
    wait_for("every rotation to publish version 1", limit, async || {
        let list = rotations.list(&ListParams::default()).await.unwrap().items;
        list.len() == n
            && list
                .iter()
                .all(|r| r.status.as_ref().and_then(|s| s.current_version) == Some(1))
    })
    .await;
    if eso.is_some() {
        wait_for("every ExternalSecret's Secret", limit, async || {
            let lp = ListParams::default().labels("reconcile.external-secrets.io/managed=true");
            secrets.list_metadata(&lp).await.unwrap().items.len() == n
        })
        .await;
    }
    // Settled: after both finished the first pass and idled for a while.
    tokio::time::sleep(Duration::from_secs(15)).await;
    let k = (*kpeak.lock().unwrap(), keyrotor.lock().unwrap().rss_kib());
    let e = eso_proc.as_ref().map(|p| {
        (
            *epeak.as_ref().unwrap().lock().unwrap(),
            p.lock().unwrap().rss_kib(),
        )
    });
    drop(keyrotor);
    drop(eso_proc);
    kubelets.abort();
    // No operator runs any more: drop the finalizers (8 at a time; one
    // kubectl per object would take minutes at 1,000) so the namespace goes.
    let names: Vec<String> = rotations
        .list_metadata(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(|r| r.name_any())
        .collect();
    futures::stream::iter(names)
        .map(|name| {
            let rotations = rotations.clone();
            async move {
                let patch = json!({"metadata": {"finalizers": null}});
                let _ = rotations
                    .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await;
            }
        })
        .buffer_unordered(8)
        .collect::<Vec<()>>()
        .await;
    (k.0, k.1, e)
}

/// The kwok pods of the memory run report what a kubelet would have
/// loaded: when Secret `k<i>-verifier` or `k<i>-key` changes, pod `p<i>`
/// gets the report annotation with its revision at once (as the reporter
/// sidecar would write it; the scale bench does the same in-process).
fn simulated_kubelets(client: &kube::Client, ns: &str) -> tokio::task::JoinHandle<()> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    tokio::spawn(async move {
        let mut s = watcher::watcher(secrets, watcher::Config::default())
            .default_backoff()
            .applied_objects()
            .boxed();
        while let Some(Ok(secret)) = s.next().await {
            let name = secret.name_any();
            let (rotation, role) = if let Some(r) = name.strip_suffix("-verifier") {
                (r, "verifier")
            } else if let Some(r) = name.strip_suffix("-key") {
                (r, "presenter")
            } else {
                continue;
            };
            let Some(revision) = secret.annotations().get(k::REVISION) else {
                continue;
            };
            let Some(revision) = k::parse_number(revision).map(RevisionReport) else {
                continue;
            };
            let pod = format!("p{}", rotation.trim_start_matches('k'));
            let (key, value) = revision.annotation(rotation, role);
            let patch = json!({"metadata": {"annotations": {key: value}}});
            let _ = pods
                .patch(&pod, &PatchParams::default(), &Patch::Merge(&patch))
                .await;
        }
    })
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let what = args.first().cloned().unwrap_or_else(|| "all".into());
    let numbers: Vec<usize> = args.iter().filter_map(|a| a.parse().ok()).collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let Some(cluster) = cluster::get().await else {
            return;
        };
        let eso = eso_dir();
        if let Some(e) = &eso {
            install_eso_crds(cluster, e);
        }
        if what == "all" || what == "compare" {
            if !real_nodes(cluster) {
                return;
            }
            let cycles = numbers.first().copied().unwrap_or(3);
            let mut rows = Vec::new();
            for mode in [Mode::Report, Mode::Rollout, Mode::Eso, Mode::Naive] {
                if mode == Mode::Eso && eso.is_none() {
                    continue;
                }
                rows.push(compare(cluster, mode, eso.as_deref(), cycles, false).await);
            }
            print_compare(&rows, cycles, false);
        }
        if what == "all" || what == "slow" {
            if !real_nodes(cluster) {
                return;
            }
            let cycles = if what == "slow" { numbers.first().copied() } else { None };
            let cycles = cycles.unwrap_or(1);
            let mut rows = Vec::new();
            for mode in [Mode::Rollout, Mode::Eso] {
                if mode == Mode::Eso && eso.is_none() {
                    continue;
                }
                rows.push(compare(cluster, mode, eso.as_deref(), cycles, true).await);
            }
            print_compare(&rows, cycles, true);
        }
        if what == "all" || what == "memory" {
            let sizes = if what == "memory" && !numbers.is_empty() {
                numbers.clone()
            } else {
                vec![100, 1000]
            };
            let mut rows = Vec::new();
            for n in sizes {
                rows.push((n, memory(cluster, eso.as_deref(), n).await));
            }
            println!("\nMemory, both operators with their defaults watching every namespace (RSS from /proc)");
            println!("{:>6}{:>22}{:>22}{:>10}", "N", "keyrotor peak/settled", "ESO peak/settled", "ESO/kr");
            for (n, (kp, ks, e)) in rows {
                let (es, ratio) = match e {
                    Some((ep, es)) => (
                        format!("{} / {}", mib(ep), mib(es)),
                        format!("{:.1}x", es as f64 / ks.max(1) as f64),
                    ),
                    None => ("-".into(), "-".into()),
                };
                println!("{n:>6}{:>22}{es:>22}{ratio:>10}", format!("{} / {}", mib(kp), mib(ks)));
            }
        }
    });
}
