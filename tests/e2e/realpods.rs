//! Real pods on a real kubelet (tests/cluster/up --real-nodes 1): the proof
//! users install keyrotor for. Verifier and presenter pods run keyrotor's
//! sample app and reporter sidecar from a hand-made image, mount the Secrets
//! through kubelet's projected volumes, and call each other over 127.0.0.1
//! while the operator, installed by `helm install` from charts/ as a pod on
//! that node, rotates the key back to back. Every request is recorded:
//! keyrotor must reject none. The same pods and traffic under the naive
//! overwrite-in-place (what most tools do) must reject some.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Secret};
use keyrotor::api::{ApiKeyRotation, keys as k};
use keyrotor::keys::{Alphabet, KeySpec, SecretKey};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use super::cluster::{self, Cluster, repo};
use super::observer::Observer;
use super::support::*;

pub const ROTATIONS: u64 = 20;
const IMAGE: &str = "keyrotor.dev/keyrotor:e2e";

/// Whether real nodes run; if not, why (said loudly, past the capture).
pub fn real_nodes(cluster: &Cluster) -> bool {
    let n: u32 = std::env::var("KEYROTOR_CLUSTER_REAL_NODES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    if n == 0 {
        let why = std::fs::read_to_string(cluster.dir.join("real-nodes-skipped"))
            .unwrap_or_else(|_| "the cluster was started without --real-nodes".into());
        let _ = writeln!(
            std::io::stderr(),
            "\n*** real-pod scenario SKIPPED: {} ***\n",
            why.trim()
        );
    }
    n > 0
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The API server as pods on a hostNetwork node reach it (the `kubernetes`
/// Service's cluster IP is not routed here: there is no kube-proxy).
fn api_env() -> Value {
    let server = std::env::var("KEYROTOR_CLUSTER_SERVER").expect("KEYROTOR_CLUSTER_SERVER");
    let port = server.rsplit(':').next().unwrap().to_string();
    json!([
        {"name": "KUBERNETES_SERVICE_HOST", "value": "127.0.0.1"},
        {"name": "KUBERNETES_SERVICE_PORT", "value": port},
    ])
}

/// A real-node pod template: the sample app and the reporter sidecar, both
/// keyrotor's binary, reading the Secret kubelet projects at /keys.
fn template(app: &str, secret: &str, args: Value, records: &Path) -> Value {
    let mut env = api_env();
    for (name, path) in [
        ("POD_NAME", "metadata.name"),
        ("POD_NAMESPACE", "metadata.namespace"),
    ] {
        env.as_array_mut()
            .unwrap()
            .push(json!({"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}}));
    }
    let security = json!({
        "runAsNonRoot": true, "runAsUser": 65532, "allowPrivilegeEscalation": false,
        "readOnlyRootFilesystem": true, "capabilities": {"drop": ["ALL"]},
    });
    json!({
        "metadata": {"labels": {"app": app}},
        "spec": {
            "hostNetwork": true,
            "enableServiceLinks": false,
            "serviceAccountName": "app",
            "nodeSelector": {"type": "real"},
            "tolerations": [{"key": "keyrotor.dev/real", "operator": "Exists", "effect": "NoSchedule"}],
            "terminationGracePeriodSeconds": 2,
            "containers": [
                {
                    "name": "app", "image": IMAGE, "imagePullPolicy": "Never",
                    "args": args, "env": env.clone(), "securityContext": security.clone(),
                    "volumeMounts": [
                        {"name": "keys", "mountPath": "/keys", "readOnly": true},
                        {"name": "records", "mountPath": "/records"},
                    ],
                },
                {
                    "name": "reporter", "image": IMAGE, "imagePullPolicy": "Never",
                    "args": ["reporter", "--dir", "/keys", "--poll-seconds", "1"],
                    "env": env, "securityContext": security,
                    "volumeMounts": [{"name": "keys", "mountPath": "/keys", "readOnly": true}],
                },
            ],
            "volumes": [
                {"name": "keys", "projected": {"sources": [{"secret": {"name": secret}}]}},
                {"name": "records", "hostPath": {"path": records.to_str().unwrap(), "type": "Directory"}},
            ],
        }
    })
}

fn deployment(ns: &str, name: &str, replicas: i32, template: Value) -> Deployment {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": template["metadata"]["labels"]["app"]}},
            "template": template,
        }
    }))
    .unwrap()
}

/// Every recorded request: (status, version) per line of every record file.
fn requests(records: &Path) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(records).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap_or_default();
        for line in text.lines() {
            if let Ok(v) = serde_json::from_str::<Value>(line) {
                out.push((
                    v["status"].as_u64().unwrap_or(0),
                    v["version"].as_u64().unwrap_or(0),
                ));
            }
        }
    }
    out
}

struct Tally {
    sent: usize,
    rejected: usize,
    unanswered: usize,
}

fn tally(all: &[(u64, u64)]) -> Tally {
    Tally {
        sent: all.len(),
        rejected: all.iter().filter(|(s, _)| *s == 401).count(),
        unanswered: all.iter().filter(|(s, _)| *s == 0).count(),
    }
}

/// Installs the operator with helm onto the real node, from the local image.
fn helm_install(cluster: &Cluster, release: &str, ns: &str, watch: &str) {
    let admin = free_port();
    let env = api_env();
    let out = std::process::Command::new(helm())
        .args(["install", release, "charts/keyrotor", "--namespace", ns])
        .args(["--create-namespace", "--wait", "--timeout", "120s"])
        .args(["--set", "image.repository=keyrotor.dev/keyrotor"])
        .args(["--set", "image.tag=e2e", "--set", "image.pullPolicy=Never"])
        .args(["--set", "crds.enabled=false", "--set", "reporterPolicy.enabled=false"])
        .args(["--set", "hostNetwork=true", "--set", "replicaCount=1"])
        .args(["--set", &format!("admin.port={admin}")])
        .args(["--set", &format!("watchNamespaces={{{watch}}}")])
        .args(["--set", "nodeSelector.type=real"])
        .args([
            "--set-json",
            r#"tolerations=[{"key":"keyrotor.dev/real","operator":"Exists","effect":"NoSchedule"}]"#,
        ])
        .args(["--set-json", &format!("extraEnv={env}")])
        .env("KUBECONFIG", &cluster.kubeconfig)
        .current_dir(repo())
        .output()
        .expect("run helm (set KEYROTOR_HELM)");
    assert!(
        out.status.success(),
        "helm install failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// helm 4 from .ci/tools (`eval "$(.ci/tools)"`), else PATH's.
pub fn helm() -> String {
    std::env::var("KEYROTOR_HELM").unwrap_or_else(|_| "helm".into())
}

fn key() -> SecretKey {
    SecretKey::generate(&KeySpec {
        alphabet: Alphabet::Base62,
        length: 32,
        prefix: String::new(),
        checksum: false,
    })
    .unwrap()
}

/// The naive strategy: overwrite both Secrets in place with version `v`
/// (verifiers accept only it, presenters send it), as most tools do.
async fn overwrite(secrets: &Api<Secret>, rotation: &str, v: u64, revision: u64) {
    let key = key();
    let b = |s: &str| ByteString(s.as_bytes().to_vec());
    let common = |role: &str| {
        BTreeMap::from([
            ("rotation".to_string(), b(rotation)),
            ("role".to_string(), b(role)),
            ("revision".to_string(), b(&revision.to_string())),
        ])
    };
    let mut verifier = common("verifier");
    verifier.insert("accepted".into(), b(&v.to_string()));
    verifier.insert(format!("v{v}.sha256"), b(&key.digest()));
    let mut presenter = common("presenter");
    presenter.insert("version".into(), b(&v.to_string()));
    presenter.insert("key".into(), b(key.expose()));
    for (name, data) in [
        (format!("{rotation}-verifier"), verifier),
        (format!("{rotation}-key"), presenter),
    ] {
        let patch = json!({"apiVersion": "v1", "kind": "Secret", "data": data});
        secrets
            .patch(
                &name,
                &PatchParams::apply("naive").force(),
                &Patch::Apply(&patch),
            )
            .await
            .unwrap();
    }
}

/// Whether every pod of the namespace reports `revision` for its role.
async fn all_report(pods: &Api<Pod>, rotation: &str, revision: u64) -> bool {
    let list = pods.list(&ListParams::default()).await.unwrap().items;
    !list.is_empty()
        && list.iter().all(|p| {
            ["verifier", "presenter"].iter().any(|role| {
                p.annotations()
                    .get(&k::report(rotation, role))
                    .and_then(|v| v.parse::<u64>().ok())
                    == Some(revision)
            })
        })
}

#[tokio::test]
async fn real_pods_see_zero_rejections_and_the_naive_overwrite_does_not() {
    let Some(cluster) = cluster::get().await else {
        return;
    };
    if !real_nodes(cluster) {
        return;
    }
    let ns = cluster.namespace("e2e-realpods").await;
    let client = cluster.client().await;
    let image = std::process::Command::new(repo().join("tests/cluster/images"))
        .args(["app", env!("CARGO_BIN_EXE_keyrotor")])
        .arg("--dir")
        .arg(&cluster.dir)
        .status()
        .unwrap();
    assert!(image.success(), "packing the image failed");

    let rbac = std::fs::read_to_string(repo().join("examples/reporter-rbac.yaml"))
        .unwrap()
        .replace("namespace: shop", &format!("namespace: {}", ns.name))
        .replace("orders-api", "app");
    cluster.ok(&["create", "serviceaccount", "app", "-n", &ns.name]);
    cluster.ok_stdin(&["apply", "-f", "-"], &rbac);
    let records: PathBuf = cluster.dir.join(format!("records-{}", ns.name));
    let _ = std::fs::remove_dir_all(&records);
    std::fs::create_dir_all(&records).unwrap();
    // The apps run as a non-root user and write their records here.
    std::process::Command::new("chmod")
        .args(["1777", records.to_str().unwrap()])
        .status()
        .unwrap();

    let operator_ns = format!("{}-operator", ns.name);
    helm_install(cluster, "keyrotor-real", &operator_ns, &ns.name);
    let observer = Observer::start(client.clone(), &ns.name).await;

    let name = "api";
    let mut r = rotation(&ns.name, name, report(), report());
    r["spec"]["gracePeriod"]["minimum"] = "1s".into();
    apply(&client, &ns.name, &r).await;
    wait_stable(&client, &ns.name, name, 1, Duration::from_secs(60)).await;

    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns.name);
    let ports = [free_port(), free_port()];
    for (i, port) in ports.iter().enumerate() {
        let args = json!([
            "sample-app",
            "verifier",
            "--dir",
            "/keys",
            "--listen",
            format!("127.0.0.1:{port}")
        ]);
        let t = template("verifier", "api-verifier", args, &records);
        let d = deployment(&ns.name, &format!("verifier-{i}"), 1, t);
        deployments
            .create(&PostParams::default(), &d)
            .await
            .unwrap();
    }
    let mut args = vec![
        "sample-app",
        "presenter",
        "--dir",
        "/keys",
        "--record",
        "/records/$(POD_NAME).jsonl",
        "--interval-ms",
        "25",
    ]
    .into_iter()
    .map(String::from)
    .collect::<Vec<_>>();
    for port in ports {
        args.extend(["--target".to_string(), format!("127.0.0.1:{port}")]);
    }
    let t = template("presenter", "api-key", json!(args), &records);
    deployments
        .create(
            &PostParams::default(),
            &deployment(&ns.name, "presenter", 2, t),
        )
        .await
        .unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns.name);
    eventually(
        "pods to run and report",
        Duration::from_secs(120),
        || async { all_report(&pods, name, 1).await.then_some(()) },
    )
    .await;
    eventually("traffic", Duration::from_secs(30), || async {
        (requests(&records).iter().filter(|(s, _)| *s == 200).count() > 20).then_some(())
    })
    .await;

    // keyrotor: rotations back to back.
    let before = requests(&records).len();
    let started = Instant::now();
    let mut cycles = Vec::new();
    for i in 0..ROTATIONS {
        let t = Instant::now();
        request_rotation(&client, &ns.name, name, &format!("r{i}")).await;
        wait_stable(&client, &ns.name, name, i + 2, Duration::from_secs(180)).await;
        cycles.push(t.elapsed());
    }
    let total = started.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let ours = tally(&requests(&records)[before..]);
    let mean = total / ROTATIONS as u32;
    let slowest = cycles.iter().max().unwrap();
    let _ = writeln!(
        std::io::stderr(),
        "keyrotor on real pods: {ROTATIONS} rotations, mean cycle {mean:.2?}, slowest {slowest:.2?}; \
         {} requests, {} rejected, {} unanswered",
        ours.sent,
        ours.rejected,
        ours.unanswered
    );
    check_history(&observer, name);
    assert_eq!(ours.rejected, 0, "keyrotor let requests be rejected");
    assert_eq!(ours.unanswered, 0, "requests went unanswered");
    assert!(ours.sent > 100, "too little traffic: {}", ours.sent);

    // The naive overwrite on the same pods: keyrotor lets go of the Secrets
    // (Orphan keeps them), then they are overwritten in place.
    let rotations: Api<ApiKeyRotation> = Api::namespaced(client.clone(), &ns.name);
    r["spec"]["deletionPolicy"] = "Orphan".into();
    apply(&client, &ns.name, &r).await;
    rotations
        .delete(name, &DeleteParams::default())
        .await
        .unwrap();
    eventually("the rotation to go", Duration::from_secs(60), || async {
        rotations
            .get_opt(name)
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns.name);
    let revision: u64 = secrets.get("api-verifier").await.unwrap().annotations()[k::REVISION]
        .parse()
        .unwrap();
    let before = requests(&records).len();
    let mut naive = tally(&[]);
    // Each overwrite waits until every pod loaded it (kubelet's own pace:
    // up to ~90 s); stop once requests were rejected (bounded).
    for round in 1..=3u64 {
        let revision = revision + round;
        overwrite(&secrets, name, 1000 + round, revision).await;
        eventually(
            "pods to load the overwrite",
            Duration::from_secs(200),
            || async { all_report(&pods, name, revision).await.then_some(()) },
        )
        .await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        naive = tally(&requests(&records)[before..]);
        if naive.rejected > 0 {
            break;
        }
    }
    let _ = writeln!(
        std::io::stderr(),
        "naive overwrite on the same pods: {} requests, {} rejected",
        naive.sent,
        naive.rejected
    );
    assert!(naive.rejected > 0, "the naive overwrite rejected nothing");

    let out = std::process::Command::new(helm())
        .args([
            "uninstall",
            "keyrotor-real",
            "--namespace",
            &operator_ns,
            "--wait",
        ])
        .env("KUBECONFIG", &cluster.kubeconfig)
        .output()
        .unwrap();
    assert!(out.status.success(), "helm uninstall failed");
    deployments
        .delete_collection(&DeleteParams::default(), &ListParams::default())
        .await
        .unwrap();
    let _ = cluster.kubectl(&["delete", "namespace", &operator_ns, "--wait=false"], None);
    observer.stop();
}
