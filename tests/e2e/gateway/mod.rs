//! A gateway verifies rotating keys with no code in the API behind it, on
//! the real node: nginx (`auth_request`), Envoy (`ext_authz`, HTTP service)
//! and Traefik (`ForwardAuth`, from its Middleware) each ask the
//! `keyrotor-sidecar verifier` sidecar in front of `keyrotor sample-app
//! verifier`, one pod per gateway, configured as the examples and
//! docs/gateways.md show ([`pods`]). Presenters call through each gateway
//! every 25 ms while keyrotor rotates back to back: nothing may be refused
//! through any of them. A presenter pinned to the first key shows up, after
//! its retirement, in each sidecar's traffic report with the client's
//! address as its gateway passed it on, in the retired-version metric and
//! as a Warning event on the rotation. Then the naive overwrite on the same
//! pods refuses some through each gateway.

mod pods;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Secret};
use k8s_openapi::api::events::v1::Event;
use keyrotor::api::ApiKeyRotation;
use keyrotor::wire::{self as k, Traffic};
use keyrotor_testsupport::eventually;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use serde_json::{Value, json};

use super::cluster::{self, Cluster};
use super::observer::Observer;
use super::operator::{Operator, keyrotor, logs_of};
use super::realnode::{self, *};
use super::scenario::*;
pub(super) use pods::NGINX;
use pods::{Gateway, Kind};

/// The scenario's gateways: two nginx, one Envoy, one Traefik (one
/// Traefik per namespace: it reads the namespace's Middleware).
fn gateways() -> Vec<Gateway> {
    vec![
        Gateway::new(Kind::Nginx, 0),
        Gateway::new(Kind::Nginx, 1),
        Gateway::new(Kind::Envoy, 0),
        Gateway::new(Kind::Traefik, 0),
    ]
}

fn presenters(secret: &str, targets: &[u16], records: &Path) -> Value {
    template("presenter", secret, json!(presenter_args(targets)), records)
}

/// Requests refused or unanswered among `all` (anything but 200).
pub(super) fn failed(all: &[(u64, u64)]) -> usize {
    all.iter().filter(|(s, _)| *s != 200).count()
}

/// The calls through one kind of gateway: where its presenters record them.
struct Calls {
    kind: Kind,
    records: PathBuf,
}

async fn deploy(deployments: &Api<Deployment>, d: Deployment) {
    deployments
        .create(&PostParams::default(), &d)
        .await
        .unwrap();
}

/// The gateway pods, and per kind its presenters: as many as its gateways,
/// each calling them in turn every 25 ms (so each gateway has a request
/// every 25 ms), recording into a directory of their own.
async fn start_traffic(
    cluster: &Cluster,
    client: &kube::Client,
    ns: &str,
    gateways: &[Gateway],
) -> Vec<Calls> {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    for gw in gateways {
        deploy(
            &deployments,
            realnode::deployment(ns, &gw.name, 1, gw.template(ns)),
        )
        .await;
    }
    let mut traffic = Vec::new();
    for kind in Kind::ALL {
        let ports: Vec<u16> = gateways
            .iter()
            .filter(|gw| gw.kind == kind)
            .map(|gw| gw.ports.gateway)
            .collect();
        let records = records_dir(cluster, &format!("{}-{ns}", kind.name()));
        let mut t = presenters("api-key", &ports, &records);
        let name = format!("presenter-{}", kind.name());
        t["metadata"]["labels"]["app"] = name.clone().into();
        deploy(
            &deployments,
            realnode::deployment(ns, &name, ports.len() as i32, t),
        )
        .await;
        traffic.push(Calls { kind, records });
    }
    traffic
}

/// A presenter pinned to version 1: a copy of the presenter Secret that
/// keyrotor does not know (it names another rotation, so its reports are
/// not the rotation's), calling the first gateway of each kind.
async fn start_pinned(client: &kube::Client, ns: &str, gateways: &[&Gateway], records: &Path) {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let mut data = secrets
        .get("api-key")
        .await
        .unwrap()
        .data
        .unwrap_or_default();
    data.insert(
        "rotation".into(),
        k8s_openapi::ByteString(b"pinned".to_vec()),
    );
    let pinned: Secret = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "pinned-key", "namespace": ns},
        "data": serde_json::to_value(&data).unwrap(),
    }))
    .unwrap();
    secrets
        .create(&PostParams::default(), &pinned)
        .await
        .unwrap();
    let ports: Vec<u16> = gateways.iter().map(|gw| gw.ports.gateway).collect();
    let mut t = presenters("pinned-key", &ports, records);
    t["metadata"]["labels"]["app"] = "pinned".into();
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    deploy(&deployments, realnode::deployment(ns, "pinned", 1, t)).await;
}

#[tokio::test]
async fn nginx_envoy_and_traefik_with_the_verifier_sidecar_refuse_nothing_and_name_a_client_that_missed_the_rotation()
 {
    let Some(cluster) = cluster::get().await else {
        return;
    };
    if !real_nodes(cluster) {
        return;
    }
    let ns = cluster.namespace("e2e-gateway").await;
    let client = cluster.client().await;
    prepare(cluster, &ns.name, keyrotor(), "records");
    let pinned_records = records_dir(cluster, &format!("pinned-{}", ns.name));
    let operator = Operator::watching(cluster, &ns.name, "keyrotor-gateway");
    let observer = Observer::start(client.clone(), &ns.name).await;

    let mut r = rotation(&ns.name, ROTATION, report(), report());
    r["spec"]["gracePeriod"]["minimum"] = "1s".into();
    apply(&client, &ns.name, &r).await;
    wait_stable(&client, &ns.name, ROTATION, 1, Duration::from_secs(60)).await;

    let gateways = gateways();
    pods::prepare(cluster, &client, &ns.name, &gateways).await;
    let traffic = start_traffic(cluster, &client, &ns.name, &gateways).await;
    let first: Vec<&Gateway> = Kind::ALL
        .iter()
        .filter_map(|kind| gateways.iter().find(|gw| gw.kind == *kind))
        .collect();
    start_pinned(&client, &ns.name, &first, &pinned_records).await;
    for t in &traffic {
        let what = format!("traffic through {}", t.kind.name());
        eventually(&what, Duration::from_secs(120), async || {
            let ok = requests(&t.records, 0)
                .iter()
                .filter(|(s, _)| *s == 200)
                .count();
            (ok > 40).then_some(())
        })
        .await;
    }

    // keyrotor: rotations back to back.
    let since = now_ms();
    let started = Instant::now();
    let mut slowest = Duration::ZERO;
    for i in 0..ROTATIONS {
        let t = Instant::now();
        request_rotation(&client, &ns.name, ROTATION, &format!("r{i}")).await;
        wait_stable(&client, &ns.name, ROTATION, i + 2, Duration::from_secs(180)).await;
        slowest = slowest.max(t.elapsed());
    }
    let mean = started.elapsed() / ROTATIONS as u32;
    tokio::time::sleep(Duration::from_secs(2)).await;
    check_history(&observer, ROTATION);
    for t in &traffic {
        let ours = requests(&t.records, since);
        let _ = writeln!(
            std::io::stderr(),
            "{} + keyrotor verifier on real pods: {ROTATIONS} rotations, mean cycle {mean:.2?}, slowest {slowest:.2?}; {} requests, {} refused or unanswered",
            t.kind.check(),
            ours.len(),
            failed(&ours)
        );
        assert_eq!(
            failed(&ours),
            0,
            "requests through {} were refused",
            t.kind.name()
        );
        assert!(
            ours.len() > 200,
            "too little traffic through {}: {}",
            t.kind.name(),
            ours.len()
        );
    }

    // The pinned presenter: refused since v1 retired, as a retired version.
    let pinned_refused = requests(&pinned_records, since)
        .iter()
        .filter(|(s, _)| *s == 401)
        .count();
    assert!(pinned_refused > 0, "the pinned presenter was never refused");
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns.name);
    for gw in &first {
        retired_seen_through(&pods, &ns.name, gw).await;
    }
    named_in_event_and_status(cluster, &client, &ns.name, gateways.len()).await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns.name);
    deployments
        .delete("pinned", &DeleteParams::default())
        .await
        .unwrap();
    eventually(
        "the pinned presenter to go",
        Duration::from_secs(60),
        async || {
            let pinned = ListParams::default().labels("app=pinned");
            pods.list(&pinned).await.is_ok_and(|l| l.items.is_empty())
        },
    )
    .await;
    // I4 for the sidecar too: its log names versions and a client, no key.
    let mut logs = logs_of(&[&operator]);
    for gw in &gateways {
        let deploy = format!("deploy/{}", gw.name);
        let log = cluster.ok(&["logs", &deploy, "-c", "verifier", "-n", &ns.name]);
        assert!(log.contains("verifier started"), "{log}");
        logs.push((format!("verifier of {}", gw.name), log));
    }
    assert_no_key_material(cluster, &ns.name, &observer, &logs);

    naive_overwrite(&client, &ns.name, &r, &traffic).await;
    observer.stop();
}

/// The pinned presenter's retired key, through `gw`: counted by its sidecar
/// (metric and the traffic report on its pod) with the client's address as
/// the gateway passed it on: the presenter's, 127.0.0.1, never the
/// gateway's own or one a client could write itself.
async fn retired_seen_through(pods: &Api<Pod>, ns: &str, gw: &Gateway) {
    let admin: std::net::SocketAddr = format!("127.0.0.1:{}", gw.admin).parse().unwrap();
    let metrics = keyrotor::ops::admin::get(admin, "/metrics")
        .await
        .unwrap()
        .1;
    let retired = format!(
        r#"keyrotor_verifier_retired_presented_total{{namespace="{ns}",name="api",version="1"}} "#
    );
    assert!(
        metrics.contains(&retired),
        "no retired count through {}:\n{metrics}",
        gw.name
    );
    let what = format!("the traffic report of {}", gw.name);
    let report: Traffic = eventually(&what, Duration::from_secs(30), async || {
        let lp = ListParams::default().labels(&format!("app={}", gw.name));
        let pod = pods.list(&lp).await.ok()?.items.pop()?;
        let t: Traffic = pod.annotations().get(&k::traffic(ROTATION))?.parse().ok()?;
        t.retired.contains_key(&1).then_some(t)
    })
    .await;
    let _ = writeln!(std::io::stderr(), "{} reported {report}", gw.kind.check());
    assert_eq!(
        report.client,
        Some("127.0.0.1".parse().unwrap()),
        "{} passed on another client address: {report}",
        gw.name
    );
}

/// The Warning event names the retired version and the client; `kubectl
/// keyrotor status` shows what every endpoint checked.
async fn named_in_event_and_status(
    cluster: &Cluster,
    client: &kube::Client,
    ns: &str,
    endpoints: usize,
) {
    let events: Api<Event> = Api::namespaced(client.clone(), ns);
    let warning = eventually(
        "a RetiredKeyPresented event",
        Duration::from_secs(30),
        async || {
            let list = events.list(&ListParams::default()).await.ok()?.items;
            list.into_iter()
                .find(|e| e.reason.as_deref() == Some("RetiredKeyPresented"))
                .and_then(|e| e.note)
        },
    )
    .await;
    let _ = writeln!(std::io::stderr(), "event: {warning}");
    assert!(
        warning.contains("retired version(s) 1") && warning.contains("127.0.0.1"),
        "{warning}"
    );
    let status = eventually(
        "status shows the retired version",
        Duration::from_secs(30),
        async || {
            let out = std::process::Command::new(env!("CARGO_BIN_EXE_kubectl-keyrotor"))
                .args(["status", ROTATION, "-n", ns])
                .env("KUBECONFIG", &cluster.kubeconfig)
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout).to_string();
            text.contains("Retired versions still presented")
                .then_some(text)
        },
    )
    .await;
    let _ = writeln!(std::io::stderr(), "kubectl keyrotor status:\n{status}");
    assert!(
        status.contains(&format!("Traffic at {endpoints} verifier endpoint(s)")),
        "{status}"
    );
}

/// The naive overwrite on the same pods, rounds until each gateway kind
/// refused some (at most four).
async fn naive_overwrite(client: &kube::Client, ns: &str, r: &Value, traffic: &[Calls]) {
    let rotations: Api<ApiKeyRotation> = Api::namespaced(client.clone(), ns);
    let mut r = r.clone();
    r["spec"]["deletionPolicy"] = "Orphan".into();
    apply(client, ns, &r).await;
    rotations
        .delete(ROTATION, &DeleteParams::default())
        .await
        .unwrap();
    wait_gone(
        &rotations,
        ROTATION,
        "the rotation to go",
        Duration::from_secs(60),
    )
    .await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let revision: u64 = secrets.get("api-verifier").await.unwrap().annotations()[k::REVISION]
        .parse()
        .unwrap();
    let since = now_ms();
    let refused = |t: &Calls| failed(&requests(&t.records, since));
    for round in 1..=4u64 {
        let revision = revision + round;
        overwrite(&secrets, ROTATION, 1000 + round, revision).await;
        eventually(
            "pods to load the overwrite",
            Duration::from_secs(200),
            async || all_report(&pods, ROTATION, revision).await.then_some(()),
        )
        .await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        if traffic.iter().all(|t| refused(t) > 0) {
            break;
        }
    }
    for t in traffic {
        let naive = requests(&t.records, since);
        let _ = writeln!(
            std::io::stderr(),
            "naive overwrite behind the same {}: {} requests, {} refused",
            t.kind.check(),
            naive.len(),
            failed(&naive)
        );
    }
    for t in traffic {
        assert!(
            refused(t) > 0,
            "the naive overwrite refused nothing through {}",
            t.kind.name()
        );
    }
}
