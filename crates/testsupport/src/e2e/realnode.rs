//! The real-pod stage (tests/cluster/up --real-nodes 1), shared by the
//! real-pod scenario and the nudge benchmark: the operator installed by helm
//! as a pod on the real node from the release image (`.ci/image`, the one
//! users install), verifier and presenter pods running keyrotor's sample app
//! and the reporter sidecar (`keyrotor-sidecar`, as pods run it) from a
//! hand-made image, traffic between them recorded; and the naive overwrite to
//! compare with.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Secret};
use keyrotor::keys::{Alphabet, KeySpec, SecretKey};
use keyrotor::wire::{self as k, RevisionReport};
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use super::cluster::{Cluster, TestNamespace, repo};
use super::scenario::*;
use crate::eventually::eventually;

pub const ROTATIONS: u64 = 20;
/// The app image (tests/cluster/images app): `keyrotor` and `keyrotor-sidecar`.
pub const IMAGE: &str = "keyrotor.dev/keyrotor:e2e";
/// Where the app image has the sidecar binary (tests/cluster/images); a
/// sidecar container names it as its command.
pub const SIDECAR: &str = "/usr/local/bin/keyrotor-sidecar";

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

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The API server as pods on a hostNetwork node reach it (the `kubernetes`
/// Service's cluster IP is not routed here: there is no kube-proxy).
pub fn api_env() -> Value {
    let server = std::env::var("KEYROTOR_CLUSTER_SERVER").expect("KEYROTOR_CLUSTER_SERVER");
    let port = server.rsplit(':').next().unwrap().to_string();
    json!([
        {"name": "KUBERNETES_SERVICE_HOST", "value": "127.0.0.1"},
        {"name": "KUBERNETES_SERVICE_PORT", "value": port},
    ])
}

/// A consumer container's environment: the API server (see [`api_env`])
/// and the pod's name and namespace from the Downward API.
pub fn pod_env() -> Value {
    let mut env = api_env();
    for (name, path) in [
        ("POD_NAME", "metadata.name"),
        ("POD_NAMESPACE", "metadata.namespace"),
    ] {
        env.as_array_mut()
            .unwrap()
            .push(json!({"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}}));
    }
    env
}

/// The restricted securityContext every test container runs with.
pub fn restricted() -> Value {
    json!({
        "runAsNonRoot": true, "runAsUser": 65532, "allowPrivilegeEscalation": false,
        "readOnlyRootFilesystem": true, "capabilities": {"drop": ["ALL"]},
    })
}

/// `sample-app verifier` checking keys against /keys on 127.0.0.1:`port`.
pub fn verifier_args(port: u16) -> serde_json::Value {
    json!([
        "sample-app",
        "verifier",
        "--dir",
        "/keys",
        "--listen",
        format!("127.0.0.1:{port}")
    ])
}

/// `sample-app presenter` calling `targets` on 127.0.0.1 every 25 ms and
/// recording each outcome under /records.
pub fn presenter_args(targets: &[u16]) -> Vec<String> {
    let mut args: Vec<String> = [
        "sample-app",
        "presenter",
        "--dir",
        "/keys",
        "--record",
        "/records/$(POD_NAME).jsonl",
        "--interval-ms",
        "25",
    ]
    .map(String::from)
    .to_vec();
    for port in targets {
        args.extend(["--target".to_string(), format!("127.0.0.1:{port}")]);
    }
    args
}

/// A real-node pod template: the sample app (`keyrotor`) and the reporter
/// sidecar (`keyrotor-sidecar`), reading the Secret kubelet projects at /keys.
pub fn template(app: &str, secret: &str, args: Value, records: &Path) -> Value {
    let env = pod_env();
    let security = restricted();
    let containers = json!([
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
            "command": [SIDECAR],
            "args": ["reporter", "--dir", "/keys", "--poll-seconds", "1"],
            "env": env, "securityContext": security,
            "volumeMounts": [{"name": "keys", "mountPath": "/keys", "readOnly": true}],
        },
    ]);
    let volumes = json!([
        {"name": "keys", "projected": {"sources": [{"secret": {"name": secret}}]}},
        {"name": "records", "hostPath": {"path": records.to_str().unwrap(), "type": "Directory"}},
    ]);
    real_pod(app, containers, volumes)
}

/// A pod template for the real node (hostNetwork, its taint tolerated, the
/// `app` ServiceAccount) labelled `app`, of these containers and volumes.
pub fn real_pod(app: &str, containers: Value, volumes: Value) -> Value {
    json!({
        "metadata": {"labels": {"app": app}},
        "spec": {
            "hostNetwork": true,
            "enableServiceLinks": false,
            "serviceAccountName": "app",
            "nodeSelector": {"type": "real"},
            "tolerations": [{"key": "keyrotor.dev/real", "operator": "Exists", "effect": "NoSchedule"}],
            "terminationGracePeriodSeconds": 2,
            "containers": containers,
            "volumes": volumes,
        }
    })
}

pub fn deployment(ns: &str, name: &str, replicas: i32, template: Value) -> Deployment {
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

/// Every request recorded since `since` (ms since the epoch): (status,
/// version), from every presenter's record file.
pub fn requests(records: &Path, since: i64) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(records).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap_or_default();
        for line in text.lines() {
            let Ok(v) = serde_json::from_str::<Value>(line) else {
                continue; // a line being written
            };
            if v["ms"].as_i64().unwrap_or(0) >= since {
                out.push((
                    v["status"].as_u64().unwrap_or(0),
                    v["version"].as_u64().unwrap_or(0),
                ));
            }
        }
    }
    out
}

pub fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

pub struct Tally {
    pub sent: usize,
    pub rejected: usize,
    pub unanswered: usize,
}

pub fn tally(all: &[(u64, u64)]) -> Tally {
    Tally {
        sent: all.len(),
        rejected: all.iter().filter(|(s, _)| *s == 401).count(),
        unanswered: all.iter().filter(|(s, _)| *s == 0).count(),
    }
}

/// The operator image users install, as `.ci/image` builds it (the release
/// binary from scratch: docs/image.md), imported into every real node; its
/// name, which is the chart's default image.
pub fn release_image(cluster: &Cluster) -> &'static str {
    static BUILT: OnceLock<(PathBuf, String)> = OnceLock::new();
    import_built(cluster, &BUILT, "operator")
}

/// The sidecar image users put in consumer pods (`.ci/image sidecar`: the
/// slim `keyrotor-sidecar` from scratch), imported into every real node; its
/// name.
pub fn sidecar_image(cluster: &Cluster) -> &'static str {
    static BUILT: OnceLock<(PathBuf, String)> = OnceLock::new();
    import_built(cluster, &BUILT, "sidecar")
}

/// `.ci/image <kind>` once per process (`built` keeps its archive and name),
/// then the archive imported into every real node; the image's name.
/// `.ci/run` built the images already, so this only packs again, while after
/// a source edit cargo builds the binary first: never a stale image.
fn import_built(
    cluster: &Cluster,
    built: &'static OnceLock<(PathBuf, String)>,
    kind: &str,
) -> &'static str {
    let (archive, name) = built.get_or_init(|| {
        let lines = build_script(".ci/image", &[kind]);
        let [archive, name, ..] = &lines[..] else {
            panic!(".ci/image printed no archive and name: {lines:?}");
        };
        (PathBuf::from(archive), name.clone())
    });
    pack(cluster, &["import".as_ref(), archive.as_os_str()]);
    name
}

/// The release before this one, as [`previous_release`] finds it.
pub struct PreviousRelease {
    /// Its operator image's name (`<image>:<version>`), imported.
    pub image: String,
    /// Its Helm chart, from the same commit.
    pub chart: PathBuf,
}

/// The previous release (`.ci/previous-release`: built from this
/// repository's history at the commit Cargo.toml records, cached under
/// ~/.cache/keyrotor/releases/), its operator image imported into every
/// real node, once per process.
pub fn previous_release(cluster: &Cluster) -> &'static PreviousRelease {
    static BUILT: OnceLock<(PathBuf, PreviousRelease)> = OnceLock::new();
    let (archive, release) = BUILT.get_or_init(|| {
        let lines = build_script(".ci/previous-release", &[]);
        let [archive, image, chart, ..] = &lines[..] else {
            panic!(".ci/previous-release printed no archive, image and chart: {lines:?}");
        };
        let release = PreviousRelease {
            image: image.clone(),
            chart: PathBuf::from(chart),
        };
        (PathBuf::from(archive), release)
    });
    pack(cluster, &["import".as_ref(), archive.as_os_str()]);
    release
}

/// Runs one of the repository's build scripts (`.ci/image`,
/// `.ci/previous-release`) into the test executable's target directory,
/// without the variables cargo set for the tests (see
/// [`crate::binaries::without_test_env`]); the lines it printed.
fn build_script(script: &str, args: &[&str]) -> Vec<String> {
    // `<target>/<profile>/deps/<test executable>`: the same target dir.
    let exe = std::env::current_exe().expect("the test executable's path");
    let target = exe.ancestors().nth(3).expect("the target directory");
    let mut command = std::process::Command::new(repo().join(script));
    crate::binaries::without_test_env(&mut command);
    let out = command
        .args(args)
        .env("CARGO_TARGET_DIR", target)
        .current_dir(repo())
        .stderr(std::process::Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("run {script} (Debian's umoci: .ci/debs umoci): {e}"));
    assert!(out.status.success(), "{script} {} failed", args.join(" "));
    let stdout = String::from_utf8(out.stdout).unwrap();
    stdout.lines().map(String::from).collect()
}

/// Installs the operator with helm onto the real node, watching `watch`
/// (comma-separated namespaces), from the chart's default image: the
/// release image, imported (no registry is reachable, so the pod can only
/// run that).
fn helm_install(cluster: &Cluster, release: &str, ns: &str, watch: &str) {
    release_image(cluster);
    #[rustfmt::skip]
    let mut args = vec![
        "install", release, "charts/keyrotor", "--namespace", ns, "--wait", "--timeout", "120s",
        "--set", "crds.enabled=false",
    ];
    let values = real_node_values(watch);
    args.extend(values.iter().map(String::as_str));
    run_helm(cluster, &args);
}

/// The chart values this cluster's real node needs, for an operator
/// watching `watch` (comma-separated namespaces): the node's network (no
/// CNI), its taint, the API server's address (no kube-proxy), a free admin
/// port (on the node's network, so each install or upgrade takes a new one:
/// a new pod starts beside the old one), and no reporter admission policy
/// (cluster-scoped, one per cluster).
pub fn real_node_values(watch: &str) -> Vec<String> {
    let admin = format!("admin.port={}", free_port());
    let watch = format!("watchNamespaces={{{watch}}}");
    let env = format!("extraEnv={}", api_env());
    let tolerations =
        r#"tolerations=[{"key":"keyrotor.dev/real","operator":"Exists","effect":"NoSchedule"}]"#;
    #[rustfmt::skip]
    let values = [
        "--set", "reporterPolicy.enabled=false",
        "--set", "hostNetwork=true", "--set", "replicaCount=1",
        "--set", &admin, "--set", &watch, "--set", "nodeSelector.type=real",
        "--set-json", tolerations, "--set-json", &env,
    ];
    values.map(String::from).to_vec()
}

/// The operator installed by helm as a pod on the real node, in the fresh
/// namespace `operator_ns`, watching the namespaces of `watch`, which must
/// exist: the chart grants its Role in each.
pub async fn install_operator(
    cluster: &'static Cluster,
    operator_ns: &str,
    watch: &[&str],
) -> TestNamespace {
    let operator_ns = cluster.namespace(operator_ns).await;
    let name = &operator_ns.name;
    helm_install(cluster, &helm_release(name), name, &watch.join(","));
    operator_ns
}

/// `helm uninstall` of the operator installed in `operator_ns` (the
/// chart's objects go; the namespace stays); whether helm succeeded (a
/// release that is not there is no failure). Run before a stage's
/// namespaces are made too: a release left by an interrupted run would
/// block the name, and its operator would fight this run's.
pub fn uninstall_operator(cluster: &Cluster, operator_ns: &str) -> bool {
    std::process::Command::new(helm())
        .args([
            "uninstall",
            &helm_release(operator_ns),
            "--ignore-not-found",
        ])
        .args(["--wait", "--namespace", operator_ns])
        .env("KUBECONFIG", &cluster.kubeconfig)
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The user the operator installed in `operator_ns` acts as (its
/// ServiceAccount), as the audit log names it.
pub fn operator_user(operator_ns: &str) -> String {
    format!(
        "system:serviceaccount:{operator_ns}:{}",
        helm_release(operator_ns)
    )
}

/// The operator's log (its pod in `operator_ns`), for `assert_no_key_material`.
pub fn operator_log(cluster: &Cluster, operator_ns: &str) -> (String, String) {
    let deploy = format!("deploy/{}", helm_release(operator_ns));
    let log = cluster.ok(&["logs", &deploy, "-n", operator_ns, "--tail=-1"]);
    (format!("operator {deploy}"), log)
}

/// Runs helm against the cluster; it must succeed. Returns stdout.
pub fn run_helm(cluster: &Cluster, args: &[&str]) -> String {
    let out = std::process::Command::new(helm())
        .args(args)
        .env("KUBECONFIG", &cluster.kubeconfig)
        .current_dir(repo())
        .output()
        .expect("run helm (set KEYROTOR_HELM)");
    assert!(
        out.status.success(),
        "helm {} failed: {}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
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
pub async fn overwrite(secrets: &Api<Secret>, rotation: &str, v: u64, revision: u64) {
    let key = key();
    let b = |s: &str| ByteString(s.as_bytes().to_vec());
    let common = |role: &str| {
        BTreeMap::from([
            (k::ROTATION_FILE.to_string(), b(rotation)),
            (k::ROLE_FILE.to_string(), b(role)),
            (k::REVISION_FILE.to_string(), b(&revision.to_string())),
        ])
    };
    let mut verifier = common(k::ROLE_VERIFIER);
    verifier.insert(k::ACCEPTED_FILE.into(), b(&v.to_string()));
    verifier.insert(k::digest_file(v), b(&key.digest()));
    let mut presenter = common(k::ROLE_PRESENTER);
    presenter.insert(k::VERSION.into(), b(&v.to_string()));
    presenter.insert(k::KEY.into(), b(key.expose()));
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
pub async fn all_report(pods: &Api<Pod>, rotation: &str, revision: u64) -> bool {
    all_report_matching(pods, &ListParams::default(), rotation, revision).await
}

/// Whether there are pods of `pods` matching `lp` and every one reports
/// `revision` for its role.
pub async fn all_report_matching(
    pods: &Api<Pod>,
    lp: &ListParams,
    rotation: &str,
    revision: u64,
) -> bool {
    let list = pods.list(lp).await.unwrap().items;
    !list.is_empty()
        && list.iter().all(|p| {
            [k::ROLE_VERIFIER, k::ROLE_PRESENTER].iter().any(|role| {
                RevisionReport::read(p.annotations(), rotation, role)
                    == Some(RevisionReport(revision))
            })
        })
}

/// What real-node pods of namespace `ns` need: `keyrotor` and
/// `keyrotor-sidecar` packed into the app image, the `app` ServiceAccount
/// with the reporter's RBAC, and an empty directory `<dir>-<ns>` the pods
/// write their records to.
pub fn prepare(cluster: &Cluster, ns: &str, keyrotor: &Path, dir: &str) -> PathBuf {
    pack(
        cluster,
        &[
            std::ffi::OsStr::new("app"),
            keyrotor.as_os_str(),
            crate::binaries::sidecar().as_os_str(),
        ],
    );
    consumer_account(cluster, ns);
    records_dir(cluster, &format!("{dir}-{ns}"))
}

/// The `app` ServiceAccount of namespace `ns` with the reporter's RBAC
/// (examples/reporter-rbac.yaml): what consumer pods run as.
pub fn consumer_account(cluster: &Cluster, ns: &str) {
    let rbac = std::fs::read_to_string(repo().join("examples/reporter-rbac.yaml"))
        .unwrap()
        .replace("namespace: shop", &format!("namespace: {ns}"))
        .replace("orders-api", "app");
    cluster.ok(&["create", "serviceaccount", "app", "-n", ns]);
    cluster.ok_stdin(&["apply", "-f", "-"], &rbac);
}

/// Packs an image (`tests/cluster/images ARGS…`) into every real node, one
/// at a time (see [`PACKING`]), once per process for the same arguments
/// (the binaries do not change while the tests run).
pub fn pack(cluster: &Cluster, args: &[&std::ffi::OsStr]) {
    let mut packed = PACKING.lock().unwrap_or_else(|e| e.into_inner());
    let id: Vec<std::ffi::OsString> = args.iter().map(|a| a.to_os_string()).collect();
    if packed.contains(&id) {
        return;
    }
    let image = std::process::Command::new(repo().join("tests/cluster/images"))
        .args(args)
        .arg("--dir")
        .arg(&cluster.dir)
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(image.success(), "packing the image failed");
    packed.insert(id);
}

/// An empty directory under the cluster's that non-root pods can write.
pub fn records_dir(cluster: &Cluster, name: &str) -> PathBuf {
    let records: PathBuf = cluster.dir.join(name);
    let _ = std::fs::remove_dir_all(&records);
    std::fs::create_dir_all(&records).unwrap();
    // The apps run as a non-root user and write their records here.
    std::process::Command::new("chmod")
        .args(["1777", records.to_str().unwrap()])
        .status()
        .unwrap();
    records
}

/// Real pods on a real node, with the operator installed by helm, running
/// rotation `api` (Report mode, 1 s minimum grace) under traffic.
pub struct Stage {
    pub ns: TestNamespace,
    pub operator_ns: TestNamespace,
    pub client: kube::Client,
    pub records: PathBuf,
    pub pods: Api<Pod>,
    pub rotation: Value,
}

pub const ROTATION: &str = "api";

/// The helm release of a stage: one per stage, so stages run side by side
/// (the chart's cluster-scoped objects are named after it).
pub fn helm_release(operator_ns: &str) -> String {
    format!("keyrotor-{operator_ns}")
}

/// Stages pack and import the same image: one at a time. Holds the
/// argument lists packed so far.
static PACKING: std::sync::Mutex<BTreeSet<Vec<std::ffi::OsString>>> =
    std::sync::Mutex::new(BTreeSet::new());

impl Stage {
    /// `nudge`: whether keyrotor nudges pods after a Secret write. `keyrotor`:
    /// the binary packed into the pods' image (the caller's build of it).
    pub async fn start(cluster: &'static Cluster, ns: &str, nudge: bool, keyrotor: &Path) -> Stage {
        let operator_ns = format!("{ns}-operator");
        uninstall_operator(cluster, &operator_ns);
        let ns = cluster.namespace(ns).await;
        let client = cluster.client().await;
        let records = prepare(cluster, &ns.name, keyrotor, "records");
        let operator_ns = install_operator(cluster, &operator_ns, &[&ns.name]).await;

        let mut rotation = rotation(&ns.name, ROTATION, report(), report());
        rotation["spec"]["gracePeriod"]["minimum"] = "1s".into();
        for group in ["verifiers", "presenters"] {
            rotation["spec"]["consumers"][group]["nudge"] = nudge.into();
        }
        apply(&client, &ns.name, &rotation).await;
        wait_stable(&client, &ns.name, ROTATION, 1, Duration::from_secs(60)).await;

        let ports = start_verifiers(&client, &ns.name, "verifier", "api-verifier", &records).await;
        let presenter = Consumers {
            name: "presenter",
            replicas: 2,
            secret: "api-key",
        };
        start_presenters(&client, &ns.name, &presenter, &ports, &records).await;
        let pods: Api<Pod> = Api::namespaced(client.clone(), &ns.name);
        eventually(
            "pods to run and report",
            Duration::from_secs(120),
            || async { all_report(&pods, ROTATION, 1).await.then_some(()) },
        )
        .await;
        wait_traffic(&records, 20).await;
        Stage {
            ns,
            operator_ns,
            client,
            records,
            pods,
            rotation,
        }
    }

    /// helm uninstall (the chart's objects go; the namespaces go on drop).
    pub fn uninstall(&self, cluster: &Cluster) {
        assert!(
            uninstall_operator(cluster, &self.operator_ns.name),
            "helm uninstall failed"
        );
    }
}

/// How many verifier pods a stage runs (each its own Deployment and port).
pub const VERIFIERS: usize = 2;

/// [`VERIFIERS`] Deployments `<name>-<i>` of one pod each in `ns` (hostNetwork:
/// each its own port), the sample verifier reading `secret`; their ports.
pub async fn start_verifiers(
    client: &kube::Client,
    ns: &str,
    name: &str,
    secret: &str,
    records: &Path,
) -> Vec<u16> {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let ports: Vec<u16> = (0..VERIFIERS).map(|_| free_port()).collect();
    for (i, port) in ports.iter().enumerate() {
        let t = template(name, secret, verifier_args(*port), records);
        let d = deployment(ns, &format!("{name}-{i}"), 1, t);
        deployments
            .create(&PostParams::default(), &d)
            .await
            .unwrap();
    }
    ports
}

/// A Deployment of consumer pods: its name (and pods' `app` label), its
/// size, and the Secret they read.
pub struct Consumers<'a> {
    pub name: &'a str,
    pub replicas: i32,
    pub secret: &'a str,
}

/// Deployment `c` in `ns`: the sample presenter reading `c.secret`, calling
/// `ports` every 25 ms and recording each outcome into `records`.
pub async fn start_presenters(
    client: &kube::Client,
    ns: &str,
    c: &Consumers<'_>,
    ports: &[u16],
    records: &Path,
) {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let t = template(c.name, c.secret, json!(presenter_args(ports)), records);
    deployments
        .create(
            &PostParams::default(),
            &deployment(ns, c.name, c.replicas, t),
        )
        .await
        .unwrap();
}

/// Waits (bounded) until the presenters recording into `records` had more
/// than `ok` requests answered 200.
pub async fn wait_traffic(records: &Path, ok: usize) {
    eventually("traffic", Duration::from_secs(30), || async {
        (requests(records, 0)
            .iter()
            .filter(|(s, _)| *s == 200)
            .count()
            > ok)
            .then_some(())
    })
    .await;
}
