//! The consumer libraries on the real kubelet node (tests/cluster/up
//! --real-nodes 1): a Python API (python/examples/verifier_server.py) and
//! clients in Go, TypeScript and Java (their examples), each in a real pod
//! whose image packs its runtime, each caching the key in memory through
//! its library, beside the reporter sidecar. The Go and TypeScript clients
//! look for a new key only every 10 s, as caching clients do (the Java
//! example has no such setting: its library looks every second).
//!
//! Confirming through their libraries (the handshake directory), keyrotor
//! retires a key only once every process has moved on: ten rotations back
//! to back with requests every 25 ms, none rejected. The same apps with
//! the same settings, confirming through the sidecar's reading of the
//! volume, for ten more: keyrotor retires keys the clients still hold, and
//! requests are rejected. Both counts are printed.

use std::io::Write;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use keyrotor::wire::{self as k, RevisionReport};
use keyrotor_testsupport::e2e::libraries::{
    App, Confirmation, Counts, GO_PRESENTER, HANDSHAKE_DIR, JAVA_PRESENTER, NODE_PRESENTER,
    PYTHON_VERIFIER, counts, pack_apps, template,
};
use keyrotor_testsupport::eventually;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::Value;

use super::cluster::{self, Cluster, TestNamespace};
use super::namespaces::{revision, wait_reports};
use super::observer::Observer;
use super::operator::keyrotor;
use super::realnode::{
    ROTATION, deployment, free_port, install_operator, operator_log, prepare, real_nodes,
    uninstall_operator,
};
use super::scenario::{
    apply, assert_no_key_material, check_history, report, request_rotation, rotation, wait_stable,
};

const NS: &str = "libraries-e2e";
/// Rotations under traffic, each way (at least 10).
const CYCLES: u64 = 10;
/// How often the clients look for a new key: they cache it in between.
const CLIENT_RELOAD: Duration = Duration::from_secs(10);
/// How often the API looks for new accepted keys.
const API_RELOAD: Duration = Duration::from_secs(1);
const PRESENTERS: [App; 3] = [GO_PRESENTER, NODE_PRESENTER, JAVA_PRESENTER];

/// The apps running in the namespace, and the port each listens on.
struct Apps {
    api: (App, u16),
    clients: Vec<(App, u16)>,
}

#[tokio::test]
async fn apps_caching_their_key_reject_nothing_when_their_library_confirms_and_some_when_the_volume_does()
 {
    let Some(cluster) = cluster::get().await else {
        return;
    };
    if !real_nodes(cluster) {
        return;
    }
    let started = Instant::now();
    let (_ns, operator, client) = setup(cluster).await;
    let observer = Observer::start(client.clone(), NS).await;
    apply(&client, NS, &rotation_under_test()).await;
    wait_stable(&client, NS, ROTATION, 1, Duration::from_secs(60)).await;

    // Each app confirms through its library.
    let apps = start(&client, Confirmation::Library).await;
    wait_running(&client, &apps).await;
    assert_handshake(cluster, &client, &apps).await;
    let ours = rotations(&client, &apps, 1, "library").await;
    assert_handshake(cluster, &client, &apps).await;
    check_history(&observer, ROTATION);
    let mut logs = app_logs(cluster, &apps);
    logs.push(operator_log(cluster, &operator.name));
    assert_no_key_material(cluster, NS, &observer, &logs);
    observer.stop();
    stop(&client, &apps).await;
    for ((app, _), counts) in apps.clients.iter().zip(&ours) {
        let name = app.name;
        assert_eq!(
            counts.rejected, 0,
            "{name}: keyrotor let requests be rejected"
        );
        assert_eq!(counts.errors, 0, "{name}: requests went unanswered");
        assert!(counts.ok > 100, "{name}: too little traffic: {}", counts.ok);
    }

    // The same apps with the same settings; the sidecar confirms what
    // their volumes hold.
    let apps = start(&client, Confirmation::Volume).await;
    wait_running(&client, &apps).await;
    let naive = rotations(&client, &apps, 1 + CYCLES, "volume").await;
    stop(&client, &apps).await;

    let library = ours.iter().fold(Counts::default(), |a, c| a.add(c));
    let volume = naive.iter().fold(Counts::default(), |a, c| a.add(c));
    let _ = writeln!(
        std::io::stderr(),
        "apps caching their key, {CYCLES} rotations each: confirmed by their libraries \
         {} requests, {} rejected; confirmed by the volume {} requests, {} rejected \
         ({:.0?} in all)",
        library.sent(),
        library.rejected,
        volume.sent(),
        volume.rejected,
        started.elapsed()
    );
    assert!(volume.rejected > 0, "volume confirmation rejected nothing");
    assert!(
        uninstall_operator(cluster, &operator.name),
        "helm uninstall failed"
    );
}

/// The namespace with what real-node pods need (see [`prepare`]), the apps'
/// images, and the operator installed by helm watching the namespace.
async fn setup(cluster: &'static Cluster) -> (TestNamespace, TestNamespace, Client) {
    let operator_ns = format!("{NS}-operator");
    uninstall_operator(cluster, &operator_ns);
    let ns = cluster.namespace(NS).await;
    prepare(cluster, NS, keyrotor(), "records");
    let all: Vec<App> = [PYTHON_VERIFIER].into_iter().chain(PRESENTERS).collect();
    pack_apps(cluster, &all);
    let operator = install_operator(cluster, &operator_ns, &[NS]).await;
    (ns, operator, cluster.client().await)
}

/// Rotation [`ROTATION`] in Report mode (1 s minimum grace), keyrotor
/// nudging kubelet after each Secret write.
fn rotation_under_test() -> Value {
    let mut r = rotation(NS, ROTATION, report(), report());
    r["spec"]["gracePeriod"]["minimum"] = "1s".into();
    for group in ["verifiers", "presenters"] {
        r["spec"]["consumers"][group]["nudge"] = true.into();
    }
    r
}

/// [`CYCLES`] rotations back to back from version `from` under the apps'
/// traffic; what each client saw, counted once every client has reloaded
/// (refusals of a key it still held are over by then).
async fn rotations(client: &Client, apps: &Apps, from: u64, via: &str) -> Vec<Counts> {
    let before = all_counts(apps);
    let t = Instant::now();
    for i in 0..CYCLES {
        request_rotation(client, NS, ROTATION, &format!("{via}-{i}")).await;
        let version = from + i + 1;
        wait_stable(client, NS, ROTATION, version, Duration::from_secs(180)).await;
    }
    let mean = t.elapsed() / CYCLES as u32;
    tokio::time::sleep(CLIENT_RELOAD + Duration::from_secs(2)).await;
    let seen = since(apps, &before);
    let what = format!("{CYCLES} rotations, mean cycle {mean:.2?}");
    say(via, apps, &seen, &what);
    seen
}

/// The Python API and the three clients, confirming `via`; the clients call
/// the API every 25 ms.
async fn start(client: &Client, via: Confirmation) -> Apps {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NS);
    let api = (PYTHON_VERIFIER, free_port());
    let target = format!("http://127.0.0.1:{}/", api.1);
    let clients: Vec<(App, u16)> = PRESENTERS.iter().map(|a| (*a, free_port())).collect();
    let mut pods = vec![(
        api.0,
        "api-verifier",
        vec![("PORT", api.1.to_string())],
        API_RELOAD,
    )];
    for (app, port) in &clients {
        let env = vec![
            ("PORT", port.to_string()),
            ("TARGET_URL", target.clone()),
            ("INTERVAL_MS", "25".to_string()),
        ];
        pods.push((*app, "api-key", env, CLIENT_RELOAD));
    }
    for (app, secret, vars, reload) in pods {
        let t = template(&app, secret, app.env(&vars, reload, via), via);
        let d = deployment(NS, app.name, 1, t);
        deployments
            .create(&PostParams::default(), &d)
            .await
            .unwrap();
    }
    Apps { api, clients }
}

/// Waits until every app reports the revision its Secret holds and every
/// client had requests accepted.
async fn wait_running(client: &Client, apps: &Apps) {
    let limit = Duration::from_secs(120);
    let v = revision(client, NS, "api-verifier").await;
    wait_reports(client, NS, apps.api.0.name, ROTATION, v, limit).await;
    let p = revision(client, NS, "api-key").await;
    for (app, port) in &apps.clients {
        wait_reports(client, NS, app.name, ROTATION, p, limit).await;
        let what = format!("{} to have requests accepted", app.name);
        eventually(&what, Duration::from_secs(60), async || {
            counts(*port).is_some_and(|c| c.ok > 20)
        })
        .await;
    }
}

/// The clients' counts now, in the order of `apps.clients`.
fn all_counts(apps: &Apps) -> Vec<Counts> {
    apps.clients
        .iter()
        .map(|(app, port)| counts(*port).unwrap_or_else(|| panic!("{}: no counts", app.name)))
        .collect()
}

/// What each client saw since `before`.
fn since(apps: &Apps, before: &[Counts]) -> Vec<Counts> {
    all_counts(apps)
        .iter()
        .zip(before)
        .map(|(now, then)| now.since(then))
        .collect()
}

fn say(via: &str, apps: &Apps, counts: &[Counts], what: &str) {
    for ((app, _), c) in apps.clients.iter().zip(counts) {
        let _ = writeln!(
            std::io::stderr(),
            "{via} confirmation, {what}: {} sent {}, {} rejected, {} errors",
            app.name,
            c.sent(),
            c.rejected,
            c.errors
        );
    }
}

/// Every app's library wrote, in the handshake directory, the revision its
/// pod reports: the sidecar reports what the process loaded.
async fn assert_handshake(cluster: &Cluster, client: &Client, apps: &Apps) {
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    let roles = [(apps.api.0, k::ROLE_VERIFIER)]
        .into_iter()
        .chain(apps.clients.iter().map(|(a, _)| (*a, k::ROLE_PRESENTER)));
    for (app, role) in roles {
        let file = format!("{HANDSHAKE_DIR}/{ROTATION}.{role}-revision");
        let deploy = format!("deploy/{}", app.name);
        let what = format!("{} to report what its library wrote to {file}", app.name);
        let lp = ListParams::default().labels(&format!("app={}", app.name));
        eventually(&what, Duration::from_secs(30), async || {
            let args = [
                "exec", "-n", NS, &deploy, "-c", "reporter", "--", "cat", &file,
            ];
            let out = cluster.kubectl(&args, None);
            let written = String::from_utf8_lossy(&out.stdout).parse().ok();
            let listed = pods.list(&lp).await.unwrap().items;
            let [pod] = listed.as_slice() else {
                return false;
            };
            let reported = RevisionReport::read(pod.annotations(), ROTATION, role);
            out.status.success() && written.is_some() && reported.map(|r| r.0) == written
        })
        .await;
    }
}

/// The logs of every app and its sidecar, to scan for key material.
fn app_logs(cluster: &Cluster, apps: &Apps) -> Vec<(String, String)> {
    let mut logs = Vec::new();
    let all = std::iter::once(&apps.api).chain(&apps.clients);
    for ((app, _), container) in all.flat_map(|a| [(a, "app"), (a, "reporter")]) {
        let deploy = format!("deploy/{}", app.name);
        let log = cluster.ok(&["logs", &deploy, "-n", NS, "-c", container, "--tail=-1"]);
        logs.push((format!("{} {container}", app.name), log));
    }
    logs
}

/// Deletes the apps' Deployments and waits until their pods are gone.
async fn stop(client: &Client, apps: &Apps) {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NS);
    for (app, _) in std::iter::once(&apps.api).chain(&apps.clients) {
        let _ = deployments.delete(app.name, &DeleteParams::default()).await;
    }
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    eventually(
        "the apps' pods to go",
        Duration::from_secs(120),
        async || {
            // The namespace holds nothing else.
            pods.list(&ListParams::default())
                .await
                .unwrap()
                .items
                .is_empty()
        },
    )
    .await;
}
